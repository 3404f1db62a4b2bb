//! One declaration per setting: [`section!`] turns a list of settings into the file/env
//! layer (every field optional, `Deserialize` with unknown keys refused), its environment
//! reading, its merge, the resolved struct (defaults applied, simple checks run) and its rows
//! of the documentation table. Cross-setting rules (S3 needs both keys, an OAuth id needs its
//! secret, …) stay in plain functions beside each section.

use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;

use super::ConfigError;

/// One row of the documentation table: file key, environment variable, default, meaning.
#[derive(Debug, Clone)]
pub struct SettingDoc {
    pub key: String,
    pub env: &'static str,
    pub default: String,
    pub help: &'static str,
}

/// A value read from one environment variable.
pub trait EnvValue: Sized {
    /// `raw` is never empty or only spaces.
    fn parse_env(raw: String) -> Result<Self, String>;
}

macro_rules! env_from_str {
    ($($t:ty),*) => {$(
        impl EnvValue for $t {
            fn parse_env(raw: String) -> Result<Self, String> {
                raw.trim().parse().map_err(|e| format!("invalid value '{raw}': {e}"))
            }
        }
    )*};
}
env_from_str!(u32, u64, i64, bool, SocketAddr, super::LogFormat);

impl EnvValue for String {
    fn parse_env(raw: String) -> Result<Self, String> {
        Ok(raw)
    }
}

impl EnvValue for PathBuf {
    fn parse_env(raw: String) -> Result<Self, String> {
        Ok(PathBuf::from(raw))
    }
}

impl EnvValue for SecretString {
    fn parse_env(raw: String) -> Result<Self, String> {
        Ok(SecretString::from(raw))
    }
}

/// A comma-separated list; empty items are dropped.
impl EnvValue for Vec<String> {
    fn parse_env(raw: String) -> Result<Self, String> {
        Ok(raw.split(',').map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect())
    }
}

/// The first of `names` that is set (not empty), parsed; an error names that variable.
pub fn read_env<T: EnvValue>(get: &impl Fn(&str) -> Option<String>, names: &[&str]) -> Result<Option<T>, ConfigError> {
    for name in names {
        if let Some(raw) = get(name).filter(|v| !v.trim().is_empty()) {
            return T::parse_env(raw).map(Some).map_err(|problem| ConfigError::new(*name, problem));
        }
    }
    Ok(None)
}

/// How a default appears in the documentation table.
pub trait ShowDefault {
    fn show(&self) -> String;
}

macro_rules! show_display {
    ($($t:ty),*) => {$( impl ShowDefault for $t { fn show(&self) -> String { self.to_string() } } )*};
}
show_display!(u32, u64, i64, bool, SocketAddr, String);

impl ShowDefault for PathBuf {
    fn show(&self) -> String {
        self.display().to_string()
    }
}

impl ShowDefault for super::LogFormat {
    fn show(&self) -> String {
        match self {
            super::LogFormat::Text => "text".into(),
            super::LogFormat::Json => "json".into(),
        }
    }
}

impl ShowDefault for Vec<String> {
    fn show(&self) -> String {
        self.join(",")
    }
}

/// `tasks.lease_secs`, or `listen` for the top level.
pub fn doc_key(prefix: &str, field: &str) -> String {
    if prefix.is_empty() { field.to_string() } else { format!("{prefix}.{field}") }
}

/// Check: a number at least `min`.
pub fn at_least<T: PartialOrd + std::fmt::Display>(min: T) -> impl Fn(&T) -> Result<(), String> {
    move |v| if *v >= min { Ok(()) } else { Err(format!("must be at least {min}")) }
}

/// Check: at least `min` and at most `max`.
pub fn within<T: PartialOrd + std::fmt::Display>(min: T, max: T) -> impl Fn(&T) -> Result<(), String> {
    move |v| if *v >= min && *v <= max { Ok(()) } else { Err(format!("must be from {min} to {max}")) }
}

/// Check: an absolute http(s) URL.
pub fn http_url(v: &str) -> Result<(), String> {
    if crate::urls::is_http_url(v) { Ok(()) } else { Err(format!("'{v}' is not an http(s) URL")) }
}

/// Check: every item an absolute http(s) URL.
pub fn http_urls(v: &[String]) -> Result<(), String> {
    v.iter().try_for_each(|u| http_url(u))
}

/// Declares one configuration section. Per setting: its type, its environment variable
/// (and an older alias), an optional default (the resolved field is then `T`, else
/// `Option<T>`), an optional text for the documentation's default column, an optional
/// check, and the help text.
///
/// ```ignore
/// section! {
///     /// `[tasks]`
///     pub struct TaskLayer => TaskSettings in "tasks" {
///         lease_secs: u64 { env: "FUNMAGIC_TASK_LEASE_SECS", default: 45, check: at_least(3),
///                           help: "…" },
///     }
/// }
/// ```
/// generates `TaskLayer` (file/env layer with `from_env`, `merge`, `resolve`, `docs`) and
/// `TaskSettings` (the resolved values).
macro_rules! section {
    (
        $(#[$meta:meta])*
        pub struct $layer:ident => $resolved:ident in $prefix:literal {
            $(
                $field:ident : $ty:ty {
                    env: $env:literal
                    $(, or_env: $alt:literal)?
                    $(, default: $def:expr)?
                    $(, shown: $shown:literal)?
                    $(, check: $check:expr)?
                    , help: $help:literal $(,)?
                }
            ),* $(,)?
        }
        $( nested { $( $nfield:ident : $nlayer:ident ),* $(,)? } )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $layer {
            $( #[doc = $help] pub $field: Option<$ty>, )*
            $($( #[serde(default)] pub $nfield: $nlayer, )*)?
        }

        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $resolved {
            $( #[doc = $help] pub $field: $crate::config::section::section!(@resolved_ty $ty; $($def)?), )*
        }

        impl $layer {
            /// Reads this section (and the ones inside it) from the environment through `get`.
            pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, $crate::config::ConfigError> {
                Ok(Self {
                    $( $field: $crate::config::section::read_env(&get, &[$env $(, $alt)?])?, )*
                    $($( $nfield: $nlayer::from_env(&get)?, )*)?
                })
            }

            /// `top` overrides `self` wherever it has a value.
            pub fn merge(mut self, top: Self) -> Self {
                $( if top.$field.is_some() { self.$field = top.$field; } )*
                $($( self.$nfield = self.$nfield.merge(top.$nfield); )*)?
                self
            }

            /// Defaults applied and each setting's own check run (the nested sections are
            /// resolved by their owner).
            pub fn values(&self) -> Result<$resolved, $crate::config::ConfigError> {
                Ok($resolved {
                    $( $field: $crate::config::section::section!(
                        @value self.$field.clone(), $env, [$($def)?], [$($check)?]
                    ), )*
                })
            }

            /// This section's rows of the documentation table (and those of the nested ones).
            pub fn docs(out: &mut Vec<$crate::config::section::SettingDoc>) {
                $( out.push($crate::config::section::SettingDoc {
                    key: $crate::config::section::doc_key($prefix, stringify!($field)),
                    env: $env,
                    default: $crate::config::section::section!(@shown $ty; [$($shown)?]; [$($def)?]),
                    help: $help,
                }); )*
                $($( $nlayer::docs(out); )*)?
            }
        }
    };

    (@resolved_ty $ty:ty; ) => { Option<$ty> };
    (@resolved_ty $ty:ty; $def:expr) => { $ty };

    (@value $v:expr, $env:literal, [], [$($check:expr)?]) => {{
        let value = $v;
        $( if let Some(inner) = &value {
            ($check)(inner).map_err(|problem| $crate::config::ConfigError::new($env, problem))?;
        } )?
        value
    }};
    (@value $v:expr, $env:literal, [$def:expr], [$($check:expr)?]) => {{
        let value = match $v { Some(v) => v, None => From::from($def) };
        $( ($check)(&value).map_err(|problem| $crate::config::ConfigError::new($env, problem))?; )?
        value
    }};

    (@shown $ty:ty; [$shown:literal]; [$($def:expr)?]) => { $shown.to_string() };
    (@shown $ty:ty; []; [$def:expr]) => {{
        let value: $ty = From::from($def);
        $crate::config::section::ShowDefault::show(&value)
    }};
    (@shown $ty:ty; []; []) => { String::from("—") };
}
pub(crate) use section;
