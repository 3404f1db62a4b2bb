//! Strings in request bodies, typed so the spec says what the server accepts.
//!
//! Each type carries its rule (length in characters, a pattern, a format) into the spec and
//! parses strictly: a JSON string only, never a number, a boolean or `null` (poem-openapi's
//! `String` turns `1` and `true` into text). Most types enforce their rule while parsing, so
//! what the spec refuses the server refuses too (422 VALIDATION_FAILED). A few are *lenient*:
//! their rule is checked by the handler, which answers with its own error code (for example
//! PASSWORD_TOO_SHORT); those handlers call [`TextRule::accepts`] of the same type, so the
//! spec and the check cannot drift.
//!
//! [`Opt`] is the optional field: absent is `None`, and unlike `Option` it refuses `null`
//! (the spec does not say nullable).
//!
//! Patterns use only what ECMA-262, Python's `re` and Rust's `regex` read alike: explicit
//! classes with `\xNN`/`\uNNNN` escapes, `^`/`$`, `(?:…)` and quantifiers.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::LazyLock;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type};
use regex::Regex;
use serde_json::Value;

/// Characters that are not control characters (Unicode Cc: U+0000–U+001F, U+007F–U+009F).
#[cfg(test)]
const PRINTABLE: &str = r"[^\x00-\x1F\x7F-\x9F]";
/// Not a control character and not white space (what `str::trim` removes).
#[cfg(test)]
const VISIBLE: &str = r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";

/// Free text: no control characters but tab, line feed and carriage return.
const PROSE: &str = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$";
/// Lower-case letters, digits and inner dashes (tool slugs, tool type names).
pub const SLUG: &str = r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$";
/// Visible ASCII (tokens, codes, idempotency keys).
pub const VISIBLE_ASCII: &str = r"^[\x21-\x7E]+$";
/// A storage key: `/`-separated segments of letters, digits, `.`, `_` and `-`; no `.` or
/// `..` segment, no leading or trailing `/`.
pub const STORAGE_KEY: &str = r"^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*$";
/// An absolute http(s) URL without spaces, backslashes or credentials.
pub const HTTP_URL: &str = r"^https?://[^\x00-\x20\x7F\\/?#@]+(?:[/?#][^\x00-\x20\x7F\\]*)?$";
/// `HTTP_URL` or `STORAGE_KEY` (kept in step by a unit test).
pub const THUMBNAIL: &str = r"^(?:https?://[^\x00-\x20\x7F\\/?#@]+(?:[/?#][^\x00-\x20\x7F\\]*)?|(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)(?:/(?:[A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+))*)$";
/// An http(s) URL or a path on this site (one leading `/`).
pub const LINK: &str =
    r"^(?:https?://[^\x00-\x20\x7F\\/?#@]+(?:[/?#][^\x00-\x20\x7F\\]*)?|/(?:[^\x00-\x20\x7F\\/][^\x00-\x20\x7F\\]*)?)$";

/// What a string type accepts.
pub struct TextRule {
    pub min: usize,
    pub max: usize,
    pub pattern: Option<&'static str>,
    pub format: Option<&'static str>,
    /// The values, when the type is a closed set.
    pub values: &'static [&'static str],
}

impl TextRule {
    pub fn schema(&self) -> MetaSchema {
        MetaSchema {
            min_length: (self.min > 0 && self.values.is_empty()).then_some(self.min),
            max_length: self.values.is_empty().then_some(self.max),
            pattern: self.pattern.map(str::to_string),
            format: self.format,
            enum_items: self.values.iter().map(|v| Value::String((*v).to_string())).collect(),
            ..MetaSchema::new("string")
        }
    }

    fn accepts_with(&self, s: &str, re: Option<&Regex>) -> bool {
        if !self.values.is_empty() {
            return self.values.contains(&s);
        }
        let len = s.chars().count();
        len >= self.min && len <= self.max && re.is_none_or(|re| re.is_match(s))
    }
}

/// A string type of this module: its rule and whether parsing enforces it.
pub trait Text: Type + Sized {
    const RULE: TextRule;
    /// `false` when the handler checks the rule (with its own error code).
    const ENFORCED: bool;
    fn regex() -> Option<&'static Regex>;
    fn from_string(s: String) -> Self;

    /// Whether `s` satisfies the rule the spec states.
    fn accepts(s: &str) -> bool {
        Self::RULE.accepts_with(s, Self::regex())
    }

    fn parse_text(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => {
                if Self::ENFORCED && !Self::accepts(&s) {
                    return Err(ParseError::custom(Self::describe()));
                }
                Ok(Self::from_string(s))
            }
            Some(other) => Err(ParseError::expected_type(other)),
            None => Err(ParseError::expected_input()),
        }
    }

    fn describe() -> String {
        let r = &Self::RULE;
        if !r.values.is_empty() {
            return format!("expected one of {}", r.values.join(", "));
        }
        let mut s = format!("expected {} to {} characters", r.min, r.max);
        if let Some(f) = r.format {
            s.push_str(&format!(" ({f})"));
        }
        if let Some(p) = r.pattern {
            s.push_str(&format!(" matching {p}"));
        }
        s
    }
}

/// Defines a string type: `text_type!(Name, "doc", rule, enforced|lenient)`.
macro_rules! text_type {
    ($(#[$meta:meta])* $name:ident $(<const $g:ident: usize>)?, $rule:expr, $enforced:expr) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name$(<const $g: usize>)?(pub String);

        impl$(<const $g: usize>)? Text for $name$(<$g>)? {
            const RULE: TextRule = $rule;
            const ENFORCED: bool = $enforced;
            fn regex() -> Option<&'static Regex> {
                regex_for(Self::RULE.pattern)
            }
            fn from_string(s: String) -> Self {
                Self(s)
            }
        }

        impl$(<const $g: usize>)? $name$(<$g>)? {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }

            /// The spec's name of this type: `Line200` for `Line<200>`.
            pub fn schema_name() -> String {
                #[allow(unused_mut)]
                let mut name = String::from(stringify!($name));
                $(name.push_str(&$g.to_string());)?
                name
            }
        }

        impl$(<const $g: usize>)? Deref for $name$(<$g>)? {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl$(<const $g: usize>)? fmt::Debug for $name$(<$g>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl$(<const $g: usize>)? fmt::Display for $name$(<$g>)? {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl$(<const $g: usize>)? From<$name$(<$g>)?> for String {
            fn from(v: $name$(<$g>)?) -> String {
                v.0
            }
        }

        impl$(<const $g: usize>)? serde::Serialize for $name$(<$g>)? {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        impl$(<const $g: usize>)? Type for $name$(<$g>)? {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                Self::schema_name().into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Reference(Self::schema_name())
            }

            fn register(registry: &mut Registry) {
                registry.create_schema::<Self, _>(Self::schema_name(), |_| Self::RULE.schema());
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl$(<const $g: usize>)? ParseFromJSON for $name$(<$g>)? {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                Self::parse_text(value)
            }
        }

        impl$(<const $g: usize>)? ParseFromParameter for $name$(<$g>)? {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                Self::parse_text(Some(Value::String(value.to_string())))
            }
        }

        impl$(<const $g: usize>)? ToJSON for $name$(<$g>)? {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }
    };
}

/// Compiled patterns, one per distinct pattern string.
fn regex_for(pattern: Option<&'static str>) -> Option<&'static Regex> {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CACHE: LazyLock<Mutex<HashMap<&'static str, &'static Regex>>> = LazyLock::new(Default::default);
    let pattern = pattern?;
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    Some(cache.entry(pattern).or_insert_with(|| {
        // Patterns are constants of this module; a bad one fails every test that parses it.
        Box::leak(Box::new(Regex::new(pattern).expect("text pattern compiles")))
    }))
}

const fn rule(min: usize, max: usize, pattern: Option<&'static str>, format: Option<&'static str>) -> TextRule {
    TextRule { min, max, pattern, format, values: &[] }
}

/// The rule of one line of text of 1 to `max` characters.
const fn line_rule(max: usize) -> TextRule {
    TextRule { min: 1, max, pattern: Some(LINE_PATTERN), format: None, values: &[] }
}

/// One line of text: no control characters and at least one visible character (leading and
/// trailing spaces are trimmed by the handlers): `^PRINTABLE*VISIBLE PRINTABLE*$`, spelled
/// out (a unit test keeps it in step with its parts).
pub const LINE_PATTERN: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\x00-\x1F\x7F-\x9F]*$";

text_type!(
    /// One line of text of 1 to `MAX` characters: no control characters, not only spaces
    /// (titles, labels, names of things).
    Line<const MAX: usize>,
    line_rule(MAX),
    true
);

text_type!(
    /// Free text of at most `MAX` characters; line breaks and tabs allowed, other control
    /// characters not (descriptions, reasons).
    Prose<const MAX: usize>,
    rule(0, MAX, Some(PROSE), None),
    true
);

text_type!(
    /// A visible-ASCII token of 1 to `MAX` characters (codes, tokens, client ids).
    Token<const MAX: usize>,
    rule(1, MAX, Some(VISIBLE_ASCII), None),
    true
);

text_type!(
    /// A slug: 1 to `MAX` lower-case letters, digits and inner dashes.
    Slug<const MAX: usize>,
    rule(1, MAX, Some(SLUG), None),
    true
);

text_type!(
    /// A person's name: 1 to 100 characters, not only spaces, no control characters. The
    /// handler checks it (INVALID_NAME).
    Name,
    line_rule(crate::accounts::flows::MAX_NAME_LEN),
    false
);

text_type!(
    /// An email address (at most 254 characters). The handler checks and normalises it
    /// (INVALID_EMAIL).
    Email,
    rule(0, crate::accounts::flows::MAX_EMAIL_LEN, None, Some("email")),
    false
);

text_type!(
    /// A new password: 8 to 128 characters. The handler checks it (PASSWORD_TOO_SHORT,
    /// PASSWORD_TOO_LONG).
    NewPassword,
    rule(crate::auth::password::MIN_PASSWORD_LEN, crate::auth::password::MAX_PASSWORD_LEN, None, Some("password")),
    false
);

text_type!(
    /// A password being presented (sign-in, the current password): at most 1024 characters.
    Password,
    rule(0, 1024, None, Some("password")),
    true
);

text_type!(
    /// A storage key of at most 512 characters (see `STORAGE_KEY`).
    StorageKey,
    rule(1, 512, Some(STORAGE_KEY), None),
    true
);

text_type!(
    /// An absolute http(s) URL of at most 2048 characters. Handlers check it further
    /// (parsing, https outside loopback) and answer 422.
    HttpUrl,
    rule(10, 2048, Some(HTTP_URL), Some("uri")),
    true
);

text_type!(
    /// A banner's link: an http(s) URL or a path on this site, at most 2048 characters.
    /// The handler checks it further (see `auth::redirect::safe_link`) and answers 422.
    Link,
    rule(1, 2048, Some(LINK), None),
    true
);

text_type!(
    /// A banner's thumbnail: an http(s) URL or the key of an admin-bucket upload.
    Thumbnail,
    rule(1, 2048, Some(THUMBNAIL), None),
    true
);

text_type!(
    /// A file's name as the client knows it (at most 255 characters; the server cleans it).
    FileName,
    rule(0, 255, Some(PROSE), None),
    true
);

text_type!(
    /// A storage module: 1 to 32 lower-case letters, digits and dashes, not starting with
    /// a dash.
    Module,
    rule(1, 32, Some(r"^[a-z0-9][a-z0-9-]*$"), None),
    true
);

text_type!(
    /// A provider's name: 1 to 64 lower-case letters, digits, `-` and `_`.
    ProviderName,
    rule(1, 64, Some(r"^[a-z0-9_-]+$"), None),
    true
);

text_type!(
    /// A provider's API key: 8 to 512 characters, no control characters, no spaces around.
    ProviderKey,
    rule(8, 512, Some(r"^[^\x00-\x20\x7F-\x9F](?:[^\x00-\x1F\x7F-\x9F]*[^\x00-\x20\x7F-\x9F])?$"), Some("password")),
    true
);

text_type!(
    /// A lower-case ISO 4217 currency code.
    Currency,
    rule(3, 3, Some(r"^[a-z]{3}$"), None),
    true
);

text_type!(
    /// The media type of an upload. The handler answers 415 UNSUPPORTED_MEDIA_TYPE, naming
    /// the accepted types, for anything else.
    UploadContentType,
    TextRule {
        min: 1,
        max: 64,
        pattern: None,
        format: None,
        values: &["image/png", "image/jpeg", "image/webp", "model/gltf-binary", "application/ply", "model/obj"],
    },
    false
);

text_type!(
    /// RFC 8628's grant type. The handler answers the RFC's `unsupported_grant_type` (400)
    /// for anything else.
    DeviceGrantType,
    TextRule { min: 1, max: 64, pattern: None, format: None, values: &[DEVICE_GRANT_TYPE] },
    false
);

/// RFC 8628's `grant_type` value.
pub const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// An optional field: absent is `None`; `null` is refused (the spec does not say nullable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt<T>(pub Option<T>);

impl<T> Default for Opt<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T> Opt<T> {
    pub fn into_option(self) -> Option<T> {
        self.0
    }
}

impl<T: Copy> Opt<T> {
    /// The value, copied.
    pub fn get(&self) -> Option<T> {
        self.0
    }
}

impl<T: Deref<Target = str>> Opt<T> {
    /// The text, borrowed.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The text, as an owned `String`.
    pub fn to_owned_string(&self) -> Option<String> {
        self.0.as_deref().map(str::to_string)
    }
}

impl<T> Deref for Opt<T> {
    type Target = Option<T>;
    fn deref(&self) -> &Option<T> {
        &self.0
    }
}

impl<T> From<Option<T>> for Opt<T> {
    fn from(v: Option<T>) -> Self {
        Self(v)
    }
}

impl<T: Type> Type for Opt<T> {
    const IS_REQUIRED: bool = false;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(v) => v.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }

    fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Opt<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None => Ok(Self(None)),
            Some(Value::Null) => Err(ParseError::custom("null is not accepted here: leave the field out")),
            Some(v) => T::parse_from_json(Some(v)).map(|v| Self(Some(v))).map_err(ParseError::propagate),
        }
    }
}

impl<T: serde::Serialize> serde::Serialize for Opt<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<T: ToJSON> ToJSON for Opt<T> {
    fn to_json(&self) -> Option<Value> {
        self.0.as_ref().and_then(ToJSON::to_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_pattern_literal_matches_its_parts() {
        assert_eq!(LINE_PATTERN, format!("^{PRINTABLE}*{VISIBLE}{PRINTABLE}*$"));
    }

    #[test]
    fn combined_patterns_are_their_parts() {
        let inner = |p: &str| p.strip_prefix('^').unwrap().strip_suffix('$').unwrap().to_string();
        assert_eq!(THUMBNAIL, format!("^(?:{}|{})$", inner(HTTP_URL), inner(STORAGE_KEY)));
    }

    #[test]
    fn every_pattern_compiles() {
        for p in [LINE_PATTERN, PROSE, SLUG, VISIBLE_ASCII, STORAGE_KEY, HTTP_URL, LINK, THUMBNAIL] {
            Regex::new(p).unwrap();
        }
    }

    #[test]
    fn line_agrees_with_trim_and_controls() {
        for (s, ok) in [
            ("Ada", true),
            ("  Ada  ", true),
            ("", false),
            ("   ", false),
            ("\u{3000}\u{00A0}", false),
            ("A\u{0007}", false),
            ("A\nB", false),
            ("é", true),
            ("日本", true),
        ] {
            assert_eq!(Line::<10>::accepts(s), ok, "{s:?}");
            // The handlers' own reading: trimmed non-empty and no control characters.
            let handler = !s.trim().is_empty() && !s.chars().any(char::is_control);
            assert_eq!(handler, ok, "{s:?}");
            assert_eq!(Name::accepts(s), crate::accounts::flows::validate_name(s).is_ok(), "{s:?}");
        }
        assert!(!Line::<3>::accepts("abcd"));
        assert!(Line::<3>::accepts("abc"));
    }

    #[test]
    fn storage_keys_agree_with_the_local_store() {
        for key in [
            "a",
            "a/b.png",
            "shared/x/y/z.glb",
            ".hidden/x",
            "..x/y",
            ".",
            "..",
            "a/../b",
            "a/./b",
            "/a",
            "a/",
            "a//b",
            "a b",
            "é",
        ] {
            assert_eq!(StorageKey::accepts(key), crate::storage::local_key_check(key).is_ok(), "{key:?}");
        }
    }

    #[test]
    fn slugs_agree_with_the_tool_rule() {
        for s in ["a", "a-b", "a--b", "-a", "a-", "A", "a_b", "0"] {
            assert_eq!(Slug::<60>::accepts(s), crate::tools::validate_slug(s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn strict_parsing_refuses_other_json_types_and_null() {
        assert!(Line::<10>::parse_from_json(Some(Value::from(1))).is_err());
        assert!(Line::<10>::parse_from_json(Some(Value::Bool(true))).is_err());
        assert!(Line::<10>::parse_from_json(Some(Value::Null)).is_err());
        assert!(Opt::<Line<10>>::parse_from_json(Some(Value::Null)).is_err());
        assert_eq!(Opt::<Line<10>>::parse_from_json(None).unwrap(), Opt(None));
        assert_eq!(Opt::<bool>::parse_from_json(Some(Value::Bool(true))).unwrap(), Opt(Some(true)));
        // Lenient types carry their rule to the spec but leave the check to the handler.
        assert!(NewPassword::parse_from_json(Some(Value::from("short"))).is_ok());
        assert!(!NewPassword::accepts("short"));
        assert!(Line::<10>::parse_from_json(Some(Value::from(""))).is_err());
    }
}
