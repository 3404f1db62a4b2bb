//! Typed, layered configuration: defaults → optional TOML file → environment → flags.
//!
//! Each setting is declared once, with [`section!`](section::section): its key in the TOML
//! file, its environment variable, its default, its check and its help. From that one
//! declaration come the file/env layer, the merge of layers, the resolved value and its row
//! in [`settings_table`] (the README and `funmagic.example.toml` are checked against it by
//! tests). One file per domain: [`database`], [`storage`], [`tasks`], [`auth`], [`billing`];
//! the top-level keys and `[log]` are here. Rules that join several settings (S3 needs both
//! keys, an OAuth client id needs its secret) are plain functions beside their section.
//! Secrets are [`SecretString`](secrecy::SecretString)s: they never appear in `Debug` output or in logs. Errors name
//! the setting (its env var or file key) and what is wrong.

pub mod auth;
pub mod billing;
pub mod database;
pub(crate) mod section;
pub mod storage;
pub mod tasks;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use secrecy::ExposeSecret;
use serde::Deserialize;

pub use auth::{AuthLayer, AuthSettings, MailLayer, MailSettings, OAuthLayer, OAuthProviderSettings, OAuthSettings};
pub use billing::{CreditsLayer, CreditsSettings, StripeLayer, StripeSettings};
pub use database::{DatabaseLayer, DatabaseSettings, DatabaseTarget, RedisLayer, RedisSettings};
pub use section::SettingDoc;
use section::{at_least, http_url, section};
pub use storage::{S3Layer, S3Settings, StorageLayer, StorageSettings};
pub use tasks::{LimitLayer, LimitSettings, ProviderLayer, ProviderSettings, TaskLayer, TaskSettings};

/// Every setting the server reads: the top-level keys, then each section.
pub fn settings_table() -> &'static [SettingDoc] {
    static TABLE: LazyLock<Vec<SettingDoc>> = LazyLock::new(|| {
        let mut rows = Vec::new();
        SettingsLayer::docs(&mut rows);
        rows
    });
    &TABLE
}

/// A configuration problem: which setting, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
    /// The setting may be right and its service not up yet (unreachable, starting): worth
    /// retrying at start (`startup_wait_secs`).
    pub retryable: bool,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { setting: setting.into(), problem: problem.into(), retryable: false }
    }

    /// A service that did not answer (or is starting up): [`ConfigError::retryable`].
    pub fn unreachable(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { retryable: true, ..Self::new(setting, problem) }
    }
}

section! {
    /// The top-level keys of the file; every section is a table inside it.
    pub struct SettingsLayer => ServerSettings in "" {
        listen: SocketAddr {
            env: "FUNMAGIC_LISTEN",
            default: SocketAddr::from(([127, 0, 0, 1], 8000)),
            help: "address to listen on; port 0 picks a free port",
        },
        data_dir: PathBuf {
            env: "FUNMAGIC_DATA_DIR",
            default: "./funmagic-data",
            help: "embedded SQLite database and file store",
        },
        public_url: String {
            env: "FUNMAGIC_PUBLIC_URL",
            shown: "http://<listen>",
            check: http_url,
            help: "external base URL used in links and signed URLs",
        },
        web_url: String {
            env: "FUNMAGIC_WEB_URL",
            shown: "(public_url: this server's own pages)",
            check: http_url,
            help: "base URL of the web app users are sent to: Stripe's return pages, mailed verification and reset links, OAuth callbackURL paths",
        },
        idle_timeout_secs: u64 {
            env: "FUNMAGIC_IDLE_TIMEOUT_SECS",
            default: 60u64,
            check: at_least(1),
            help: "a connection that sends and receives nothing this long is closed (half-sent requests, idle keep-alives)",
        },
        startup_wait_secs: u64 {
            env: "FUNMAGIC_STARTUP_WAIT_SECS",
            default: 60u64,
            help: "serve, worker and migrate retry an unreachable PostgreSQL or Redis for this long at start before giving up (0: fail at once); bad settings fail at once",
        },
        header_timeout_secs: u64 {
            env: "FUNMAGIC_HEADER_TIMEOUT_SECS",
            default: 30u64,
            check: at_least(1),
            help: "an HTTP/1 request head (request line and headers) must arrive whole within this of its first byte, however slowly it trickles in",
        },
    }
    nested {
        database: DatabaseLayer,
        redis: RedisLayer,
        s3: S3Layer,
        storage: StorageLayer,
        tasks: TaskLayer,
        providers: ProviderLayer,
        auth: AuthLayer,
        mail: MailLayer,
        oauth: OAuthLayer,
        limits: LimitLayer,
        credits: CreditsLayer,
        stripe: StripeLayer,
        log: LogLayer,
        metrics: MetricsLayer,
        webhooks: WebhookLayer,
    }
}

section! {
    /// Webhooks to customers' endpoints.
    pub struct WebhookLayer => WebhookSettings in "webhooks" {
        allow: Vec<String> {
            env: "FUNMAGIC_WEBHOOKS_ALLOW",
            default: Vec::<String>::new(),
            shown: "(none)",
            check: tasks::hosts,
            help: "comma-separated hosts (host or host:port) that webhook endpoints may reach over http and at private addresses (private deployments; tests)",
        },
        timeout_secs: u64 {
            env: "FUNMAGIC_WEBHOOKS_TIMEOUT_SECS",
            default: 15u64,
            check: at_least(1),
            help: "a webhook delivery not answered within this long has failed (retried on the schedule)",
        },
    }
}

section! {
    /// Metrics for Prometheus.
    pub struct MetricsLayer => MetricsSettings in "metrics" {
        listen: SocketAddr {
            env: "FUNMAGIC_METRICS_LISTEN",
            shown: "(off)",
            help: "address of a separate listener serving GET /metrics (Prometheus text format) in API and worker processes; never on the public port",
        },
    }
}

section! {
    /// Logging.
    pub struct LogLayer => LogSettings in "log" {
        level: String {
            env: "FUNMAGIC_LOG",
            or_env: "RUST_LOG",
            default: "info",
            help: "tracing filter, e.g. info,funmagic_api=debug",
        },
        format: LogFormat {
            env: "FUNMAGIC_LOG_FORMAT",
            default: LogFormat::Text,
            help: "text or json",
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("neither text nor json"),
        }
    }
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    /// The web app's base URL when it is not this server (`web_url`).
    pub web_url: Option<String>,
    /// Connections with no traffic either way this long are closed.
    pub idle_timeout_secs: u64,
    /// An HTTP/1 request head must arrive whole this soon after its first byte.
    pub header_timeout_secs: u64,
    /// How long a starting process retries an unreachable PostgreSQL or Redis.
    pub startup_wait_secs: u64,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub s3: Option<S3Settings>,
    pub storage: StorageSettings,
    pub tasks: TaskSettings,
    pub providers: ProviderSettings,
    pub auth: AuthSettings,
    pub mail: MailSettings,
    pub oauth: OAuthSettings,
    pub credits: CreditsSettings,
    pub limits: LimitSettings,
    pub stripe: Option<StripeSettings>,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub webhooks: WebhookSettings,
}

impl SettingsLayer {
    /// Parses a TOML config file; unknown keys are errors (a typo must not pass silently).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let setting = format!("--config {}", path.display());
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&setting, format!("cannot read the file: {e}")))?;
        Self::from_toml(&text).map_err(|e| ConfigError::new(setting, e.problem))
    }

    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::new("config file", e.to_string().trim().to_string()))
    }

    /// Applies defaults and validates; the result is complete or an error names the problem.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let server = self.values()?;
        Ok(Settings {
            listen: server.listen,
            data_dir: server.data_dir,
            public_url: server.public_url,
            web_url: server.web_url.map(|u| u.trim_end_matches('/').to_string()),
            idle_timeout_secs: server.idle_timeout_secs,
            header_timeout_secs: server.header_timeout_secs,
            startup_wait_secs: server.startup_wait_secs,
            database: self.database.values()?,
            redis: self.redis.values()?,
            s3: self.s3.values()?.resolve()?,
            storage: self.storage.values()?,
            tasks: self.tasks.values()?,
            providers: self.providers.values()?,
            auth: self.auth.values()?.normalized(),
            mail: self.mail.values()?,
            oauth: self.oauth.values()?.resolve()?,
            credits: self.credits.values()?,
            limits: self.limits.values()?,
            stripe: self.stripe.values()?.resolve()?,
            log: self.log.values()?,
            metrics: self.metrics.values()?,
            webhooks: self.webhooks.values()?,
        })
    }
}

/// The embedded default's welcome grant: enough for each catalogue tool a few times.
pub const EMBEDDED_WELCOME_CREDITS: i64 = 200;

impl Settings {
    /// Credits for a new account: `credits.signup_bonus` when set, else a welcome grant of
    /// [`EMBEDDED_WELCOME_CREDITS`] in the embedded default (so a newcomer can run the
    /// catalogue's tools at once) and none in scale-out, where operators decide.
    pub fn signup_bonus(&self) -> i64 {
        let embedded = !matches!(self.database_target(), Ok(DatabaseTarget::Postgres(_)));
        self.credits.signup_bonus.unwrap_or(if embedded { EMBEDDED_WELCOME_CREDITS } else { 0 })
    }

    /// Defaults only: what `funmagic-server serve` runs with on a fresh machine.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let layer = SettingsLayer { data_dir: Some(data_dir.into()), ..Default::default() };
        layer.resolve().expect("the defaults are valid")
    }

    /// Loads defaults → `config_file` (if any) → `env` → `flags`.
    pub fn load(
        config_file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: SettingsLayer,
    ) -> Result<Self, ConfigError> {
        let mut layer = SettingsLayer::default();
        if let Some(path) = config_file {
            layer = layer.merge(SettingsLayer::from_file(path)?);
        }
        layer = layer.merge(SettingsLayer::from_env(env)?);
        layer.merge(flags).resolve()
    }

    /// The database this configuration selects.
    pub fn database_target(&self) -> Result<DatabaseTarget, ConfigError> {
        match &self.database.url {
            None => Ok(DatabaseTarget::Sqlite(self.data_dir.join("funmagic.db"))),
            Some(url) => database::parse_database_url(url.expose_secret()),
        }
    }

    /// The base URL clients should use to reach this server.
    pub fn public_base_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{bound}"),
        }
    }
}

/// Redacts the password of a URL for logs: `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "***".into() };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let tail = tail.split('?').next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => format!("{scheme}://{authority}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_are_the_embedded_mode() {
        let s = Settings::load(None, env(&[]), SettingsLayer::default()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(s.database_target().unwrap(), DatabaseTarget::Sqlite("./funmagic-data/funmagic.db".into()));
        assert!(s.redis.url.is_none());
        assert!(s.s3.is_none());
    }

    #[test]
    fn layers_override_in_order() {
        let file = SettingsLayer::from_toml("listen = \"127.0.0.1:9000\"\n[redis]\nprefix = \"file\"\n").unwrap();
        let from_env = SettingsLayer::from_env(env(&[("FUNMAGIC_LISTEN", "127.0.0.1:9001")])).unwrap();
        let flags = SettingsLayer { data_dir: Some("/flags".into()), ..Default::default() };
        let s = SettingsLayer::default().merge(file).merge(from_env).merge(flags).resolve().unwrap();
        assert_eq!(s.listen.port(), 9001);
        assert_eq!(s.redis.prefix, "file");
        assert_eq!(s.data_dir, PathBuf::from("/flags"));
    }

    #[test]
    fn errors_name_the_setting() {
        let err = SettingsLayer::from_env(env(&[("FUNMAGIC_LISTEN", "nowhere")])).unwrap_err();
        assert_eq!(err.setting, "FUNMAGIC_LISTEN");
        let err = Settings::load(None, env(&[("DATABASE_URL", "mysql://x")]), SettingsLayer::default()).unwrap_err();
        assert_eq!(err.setting, "DATABASE_URL");
        assert!(err.problem.contains("mysql"), "{err}");
        let err = Settings::load(None, env(&[("S3_ENDPOINT", "http://127.0.0.1:3900")]), SettingsLayer::default())
            .unwrap_err();
        assert_eq!(err.setting, "S3_ACCESS_KEY");
        let err = SettingsLayer::from_toml("[databse]\nurl = \"x\"\n").unwrap_err();
        assert!(err.problem.contains("databse"), "{err}");
    }

    #[test]
    fn each_setting_is_read_checked_and_documented_from_its_declaration() {
        let err = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), SettingsLayer::default()).unwrap_err();
        let e = err(&[("FUNMAGIC_TASK_LEASE_SECS", "2")]);
        assert_eq!((e.setting.as_str(), e.problem.as_str()), ("FUNMAGIC_TASK_LEASE_SECS", "must be at least 3"));
        assert_eq!(err(&[("FUNMAGIC_LOG_FORMAT", "xml")]).setting, "FUNMAGIC_LOG_FORMAT");
        assert_eq!(
            err(&[("FUNMAGIC_TRUSTED_ORIGINS", "https://a.example,ftp://b")]).setting,
            "FUNMAGIC_TRUSTED_ORIGINS"
        );
        assert_eq!(err(&[("FUNMAGIC_SIGNUP_BONUS_CREDITS", "-1")]).setting, "FUNMAGIC_SIGNUP_BONUS_CREDITS");
        for bad in ["https://app.example/path", "app.example", "ftp://app.example", "https://u:p@app.example"] {
            assert_eq!(err(&[("FUNMAGIC_CORS_ORIGINS", bad)]).setting, "FUNMAGIC_CORS_ORIGINS", "{bad}");
        }
        assert_eq!(err(&[("FUNMAGIC_COOKIE_DOMAIN", "exa mple.com")]).setting, "FUNMAGIC_COOKIE_DOMAIN");
        assert_eq!(err(&[("FUNMAGIC_GITHUB_CLIENT_ID", "id")]).setting, "FUNMAGIC_GITHUB_CLIENT_SECRET");
        // The same check runs on a value from the file.
        let file = SettingsLayer::from_toml("[storage]\nquota_bytes = 0\n").unwrap();
        assert_eq!(file.resolve().unwrap_err().setting, "FUNMAGIC_STORAGE_QUOTA_BYTES");

        let s = Settings::load(
            None,
            env(&[
                ("RUST_LOG", "debug"),
                ("FUNMAGIC_LOG_FORMAT", "JSON"),
                ("FUNMAGIC_TRUSTED_ORIGINS", " https://a.example/ ,,https://b.example"),
            ]),
            SettingsLayer::default(),
        )
        .unwrap();
        assert_eq!(s.log.level, "debug", "RUST_LOG stands in for FUNMAGIC_LOG");
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.auth.trusted_origins, ["https://a.example", "https://b.example"]);
        let s =
            Settings::load(None, env(&[("FUNMAGIC_CORS_ORIGINS", "https://App.Example.com:443/")]), Default::default())
                .unwrap();
        assert_eq!(s.auth.cors_origins, ["https://app.example.com"], "as a browser sends it");
        assert_eq!(s.storage.max_image_bytes, 25 * 1024 * 1024);

        let table = settings_table();
        let row = |key: &str| table.iter().find(|d| d.key == key).unwrap_or_else(|| panic!("{key} is documented"));
        assert_eq!((row("listen").env, row("listen").default.as_str()), ("FUNMAGIC_LISTEN", "127.0.0.1:8000"));
        assert_eq!(row("storage.max_image_bytes").default, "26214400");
        assert_eq!(row("tasks.lease_secs").default, "45");
        assert_eq!(row("s3.access_key").default, "—");
        assert_eq!(row("log.format").default, "text");
        let mut envs: Vec<_> = table.iter().map(|d| d.env).collect();
        envs.sort_unstable();
        envs.dedup();
        assert_eq!(envs.len(), table.len(), "one variable per setting");
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::load(
            None,
            env(&[
                ("DATABASE_URL", "postgres://u:hunter2@db/x"),
                ("S3_ENDPOINT", "http://s3"),
                ("S3_ACCESS_KEY", "AK"),
                ("S3_SECRET_KEY", "topsecret"),
            ]),
            SettingsLayer::default(),
        )
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("topsecret"), "{dbg}");
        assert_eq!(redact_url("postgres://u:hunter2@db:5432/x?sslmode=require"), "postgres://u:***@db:5432/x");
        assert_eq!(redact_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
