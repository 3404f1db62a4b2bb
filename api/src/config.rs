//! Typed, layered configuration: defaults → optional TOML file → environment → flags.
//!
//! Every setting has one key in the TOML file, one environment variable and a default;
//! [`SETTINGS_TABLE`] lists them (the README and `funmagic.example.toml` are checked
//! against it by tests). Secrets are [`SecretString`]s: they never appear in `Debug`
//! output or in logs. Errors name the setting (its env var or file key) and what is wrong.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// One row of the documentation table: file key, environment variable, default.
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    pub key: &'static str,
    pub env: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every setting the server reads, in the order the README documents them.
pub const SETTINGS_TABLE: &[SettingDoc] = &[
    SettingDoc {
        key: "listen",
        env: "FUNMAGIC_LISTEN",
        default: "127.0.0.1:8000",
        help: "address to listen on; port 0 picks a free port",
    },
    SettingDoc {
        key: "data_dir",
        env: "FUNMAGIC_DATA_DIR",
        default: "./funmagic-data",
        help: "embedded SQLite database and file store",
    },
    SettingDoc {
        key: "public_url",
        env: "FUNMAGIC_PUBLIC_URL",
        default: "http://<listen>",
        help: "external base URL used in links and signed URLs",
    },
    SettingDoc {
        key: "idle_timeout_secs",
        env: "FUNMAGIC_IDLE_TIMEOUT_SECS",
        default: "60",
        help: "a connection that sends and receives nothing this long is closed (half-sent requests, idle keep-alives)",
    },
    SettingDoc {
        key: "header_timeout_secs",
        env: "FUNMAGIC_HEADER_TIMEOUT_SECS",
        default: "30",
        help: "an HTTP/1 request head (request line and headers) must arrive whole within this of its first byte",
    },
    SettingDoc {
        key: "database.url",
        env: "DATABASE_URL",
        default: "sqlite in data_dir",
        help: "postgres://… for scale-out, sqlite://… for a specific file",
    },
    SettingDoc {
        key: "database.max_connections",
        env: "FUNMAGIC_DATABASE_MAX_CONNECTIONS",
        default: "10",
        help: "connection pool size",
    },
    SettingDoc {
        key: "database.connect_timeout_secs",
        env: "FUNMAGIC_DATABASE_CONNECT_TIMEOUT_SECS",
        default: "5",
        help: "give up connecting after this long",
    },
    SettingDoc {
        key: "redis.url",
        env: "REDIS_URL",
        default: "(unset: embedded queue)",
        help: "redis://… enables the Redis queue, events, caches and limits",
    },
    SettingDoc {
        key: "redis.prefix",
        env: "FUNMAGIC_REDIS_PREFIX",
        default: "funmagic",
        help: "prefix of every Redis key",
    },
    SettingDoc {
        key: "s3.endpoint",
        env: "S3_ENDPOINT",
        default: "(unset: local file store)",
        help: "S3-compatible endpoint; enables S3 storage",
    },
    SettingDoc { key: "s3.access_key", env: "S3_ACCESS_KEY", default: "", help: "S3 access key id" },
    SettingDoc { key: "s3.secret_key", env: "S3_SECRET_KEY", default: "", help: "S3 secret key" },
    SettingDoc { key: "s3.region", env: "S3_REGION", default: "us-east-1", help: "S3 region" },
    SettingDoc {
        key: "s3.bucket_public",
        env: "S3_BUCKET_PUBLIC",
        default: "funmagic-public",
        help: "bucket for published assets",
    },
    SettingDoc {
        key: "s3.bucket_private",
        env: "S3_BUCKET_PRIVATE",
        default: "funmagic-private",
        help: "bucket for user uploads and outputs",
    },
    SettingDoc {
        key: "s3.bucket_admin",
        env: "S3_BUCKET_ADMIN",
        default: "funmagic-admin",
        help: "bucket for admin assets",
    },
    SettingDoc {
        key: "s3.path_style",
        env: "FUNMAGIC_S3_PATH_STYLE",
        default: "true",
        help: "path-style bucket addressing (MinIO, Garage)",
    },
    SettingDoc {
        key: "s3.cdn_url",
        env: "CDN_URL",
        default: "(unset)",
        help: "base URL of the CDN in front of the public bucket",
    },
    SettingDoc {
        key: "storage.secret_key",
        env: "FUNMAGIC_SECRET_KEY",
        default: "(generated in data_dir/secret.key)",
        help: "key that signs the local file store's upload and download URLs",
    },
    SettingDoc {
        key: "storage.max_image_bytes",
        env: "FUNMAGIC_MAX_IMAGE_BYTES",
        default: "26214400",
        help: "largest image upload (25 MiB)",
    },
    SettingDoc {
        key: "storage.max_model_bytes",
        env: "FUNMAGIC_MAX_MODEL_BYTES",
        default: "209715200",
        help: "largest 3D model upload (200 MiB)",
    },
    SettingDoc {
        key: "storage.quota_bytes",
        env: "FUNMAGIC_STORAGE_QUOTA_BYTES",
        default: "1073741824",
        help: "storage per user (1 GiB)",
    },
    SettingDoc {
        key: "storage.upload_url_ttl_secs",
        env: "FUNMAGIC_UPLOAD_URL_TTL_SECS",
        default: "900",
        help: "lifetime of presigned upload URLs",
    },
    SettingDoc {
        key: "storage.download_url_ttl_secs",
        env: "FUNMAGIC_DOWNLOAD_URL_TTL_SECS",
        default: "3600",
        help: "lifetime of presigned download URLs",
    },
    SettingDoc {
        key: "storage.pending_upload_ttl_secs",
        env: "FUNMAGIC_PENDING_UPLOAD_TTL_SECS",
        default: "86400",
        help: "uploads not completed within this are deleted",
    },
    SettingDoc {
        key: "tasks.lease_secs",
        env: "FUNMAGIC_TASK_LEASE_SECS",
        default: "45",
        help: "a task whose worker stops renewing its lease this long is run by another worker",
    },
    SettingDoc {
        key: "tasks.max_attempts",
        env: "FUNMAGIC_TASK_MAX_ATTEMPTS",
        default: "3",
        help: "runs of a task before a transient failure becomes final",
    },
    SettingDoc {
        key: "tasks.retry_base_ms",
        env: "FUNMAGIC_TASK_RETRY_BASE_MS",
        default: "1000",
        help: "first retry delay; doubles per attempt (max 5 min), plus jitter",
    },
    SettingDoc {
        key: "tasks.step_timeout_secs",
        env: "FUNMAGIC_STEP_TIMEOUT_SECS",
        default: "900",
        help: "a step running longer is stopped and counts as a transient failure",
    },
    SettingDoc {
        key: "tasks.max_running_per_user",
        env: "FUNMAGIC_MAX_RUNNING_PER_USER",
        default: "3",
        help: "tasks of one user run at once at most (0 = no limit); the rest wait their turn",
    },
    SettingDoc {
        key: "tasks.reconcile_secs",
        env: "FUNMAGIC_QUEUE_RECONCILE_SECS",
        default: "30",
        help: "scale-out: a due task not picked up this long is sent to the Redis queue again",
    },
    SettingDoc {
        key: "tasks.event_ttl_secs",
        env: "FUNMAGIC_EVENT_STREAM_TTL_SECS",
        default: "3600",
        help: "scale-out: how long Redis keeps the latest progress of a running task (for streams that join late)",
    },
    SettingDoc {
        key: "providers.master_key",
        env: "FUNMAGIC_MASTER_KEY",
        default: "(generated in data_dir/master.key)",
        help: "32 bytes (base64 or 64 hex digits) that encrypt provider API keys (AES-256-GCM)",
    },
    SettingDoc {
        key: "providers.timeout_secs",
        env: "FUNMAGIC_PROVIDER_TIMEOUT_SECS",
        default: "60",
        help: "one HTTP request to OpenAI, fal.ai or Tripo takes at most this long",
    },
    SettingDoc {
        key: "providers.max_retries",
        env: "FUNMAGIC_PROVIDER_MAX_RETRIES",
        default: "3",
        help: "retries of one provider request on 429, 5xx and timeouts (Retry-After honoured)",
    },
    SettingDoc {
        key: "providers.poll_ms",
        env: "FUNMAGIC_PROVIDER_POLL_MS",
        default: "2000",
        help: "how often a queued provider job (fal.ai, Tripo) is polled",
    },
    SettingDoc {
        key: "providers.health_check_secs",
        env: "FUNMAGIC_PROVIDER_HEALTH_SECS",
        default: "300",
        help: "how often the API checks each active provider's health",
    },
    SettingDoc {
        key: "auth.session_ttl_days",
        env: "FUNMAGIC_SESSION_TTL_DAYS",
        default: "7",
        help: "sessions expire after this many days without use (rolling)",
    },
    SettingDoc {
        key: "auth.signup_enabled",
        env: "FUNMAGIC_SIGNUP_ENABLED",
        default: "true",
        help: "allow anyone to create an account",
    },
    SettingDoc {
        key: "auth.trusted_origins",
        env: "FUNMAGIC_TRUSTED_ORIGINS",
        default: "(public_url only)",
        help: "comma-separated extra origins allowed to send cookie-authenticated writes",
    },
    SettingDoc {
        key: "auth.argon2_memory_kib",
        env: "FUNMAGIC_ARGON2_MEMORY_KIB",
        default: "19456",
        help: "argon2id memory cost",
    },
    SettingDoc {
        key: "auth.argon2_iterations",
        env: "FUNMAGIC_ARGON2_ITERATIONS",
        default: "2",
        help: "argon2id time cost",
    },
    SettingDoc {
        key: "auth.argon2_parallelism",
        env: "FUNMAGIC_ARGON2_PARALLELISM",
        default: "1",
        help: "argon2id lanes",
    },
    SettingDoc {
        key: "auth.rate_limit_per_minute",
        env: "FUNMAGIC_AUTH_RATE_LIMIT_PER_MINUTE",
        default: "20",
        help: "sign-in, sign-up, reset and device requests per client IP per minute",
    },
    SettingDoc {
        key: "auth.rate_limit_per_email_per_minute",
        env: "FUNMAGIC_AUTH_RATE_LIMIT_PER_EMAIL_PER_MINUTE",
        default: "5",
        help: "sign-in attempts per email address and client address, reset mails per email address, per minute",
    },
    SettingDoc {
        key: "auth.trust_forwarded_for",
        env: "FUNMAGIC_TRUST_FORWARDED_FOR",
        default: "false",
        help: "behind one reverse proxy: take the client address from X-Forwarded-For",
    },
    SettingDoc {
        key: "auth.bootstrap_admin",
        env: "FUNMAGIC_BOOTSTRAP_ADMIN",
        default: "true",
        help: "embedded mode: create a super admin with printed credentials when there is none",
    },
    SettingDoc {
        key: "mail.smtp_url",
        env: "FUNMAGIC_SMTP_URL",
        default: "(unset: links go to the log)",
        help: "smtps://user:pass@host:465, or smtp://…:587?tls=required for STARTTLS",
    },
    SettingDoc {
        key: "mail.from",
        env: "FUNMAGIC_MAIL_FROM",
        default: "FunMagic <no-reply@localhost>",
        help: "sender of outgoing mail",
    },
    SettingDoc {
        key: "oauth.github_client_id",
        env: "FUNMAGIC_GITHUB_CLIENT_ID",
        default: "(unset: GitHub sign-in off)",
        help: "GitHub OAuth app client id",
    },
    SettingDoc {
        key: "oauth.github_client_secret",
        env: "FUNMAGIC_GITHUB_CLIENT_SECRET",
        default: "",
        help: "GitHub OAuth app client secret",
    },
    SettingDoc {
        key: "oauth.github_authorize_url",
        env: "FUNMAGIC_GITHUB_AUTHORIZE_URL",
        default: "https://github.com/login/oauth/authorize",
        help: "GitHub authorization endpoint",
    },
    SettingDoc {
        key: "oauth.github_token_url",
        env: "FUNMAGIC_GITHUB_TOKEN_URL",
        default: "https://github.com/login/oauth/access_token",
        help: "GitHub token endpoint",
    },
    SettingDoc {
        key: "oauth.github_api_url",
        env: "FUNMAGIC_GITHUB_API_URL",
        default: "https://api.github.com",
        help: "GitHub REST API base (user and emails)",
    },
    SettingDoc {
        key: "oauth.google_client_id",
        env: "FUNMAGIC_GOOGLE_CLIENT_ID",
        default: "(unset: Google sign-in off)",
        help: "Google OAuth client id",
    },
    SettingDoc {
        key: "oauth.google_client_secret",
        env: "FUNMAGIC_GOOGLE_CLIENT_SECRET",
        default: "",
        help: "Google OAuth client secret",
    },
    SettingDoc {
        key: "oauth.google_authorize_url",
        env: "FUNMAGIC_GOOGLE_AUTHORIZE_URL",
        default: "https://accounts.google.com/o/oauth2/v2/auth",
        help: "Google authorization endpoint",
    },
    SettingDoc {
        key: "oauth.google_token_url",
        env: "FUNMAGIC_GOOGLE_TOKEN_URL",
        default: "https://oauth2.googleapis.com/token",
        help: "Google token endpoint",
    },
    SettingDoc {
        key: "oauth.google_userinfo_url",
        env: "FUNMAGIC_GOOGLE_USERINFO_URL",
        default: "https://openidconnect.googleapis.com/v1/userinfo",
        help: "Google OpenID Connect userinfo endpoint",
    },
    SettingDoc {
        key: "limits.task_submits_per_minute",
        env: "FUNMAGIC_LIMIT_TASK_SUBMITS_PER_MINUTE",
        default: "6000",
        help: "task submissions per user per minute (0 = no limit); over it: 429 with Retry-After",
    },
    SettingDoc {
        key: "limits.presigns_per_minute",
        env: "FUNMAGIC_LIMIT_PRESIGNS_PER_MINUTE",
        default: "600",
        help: "upload URLs per user per minute (0 = no limit)",
    },
    SettingDoc {
        key: "limits.stream_opens_per_minute",
        env: "FUNMAGIC_LIMIT_STREAM_OPENS_PER_MINUTE",
        default: "1200",
        help: "task event streams opened per user per minute (0 = no limit)",
    },
    SettingDoc {
        key: "limits.max_streams_per_user",
        env: "FUNMAGIC_MAX_STREAMS_PER_USER",
        default: "100",
        help: "task event streams one user may hold open at once, per API process (0 = no limit)",
    },
    SettingDoc {
        key: "credits.signup_bonus",
        env: "FUNMAGIC_SIGNUP_BONUS_CREDITS",
        default: "0",
        help: "credits granted once to every new account",
    },
    SettingDoc {
        key: "stripe.secret_key",
        env: "STRIPE_SECRET_KEY",
        default: "(unset: purchases off)",
        help: "Stripe secret key for Checkout Sessions",
    },
    SettingDoc {
        key: "stripe.webhook_secret",
        env: "STRIPE_WEBHOOK_SECRET",
        default: "(unset)",
        help: "signing secret of the /api/webhooks/stripe endpoint (whsec_…)",
    },
    SettingDoc {
        key: "stripe.api_url",
        env: "FUNMAGIC_STRIPE_API_URL",
        default: "https://api.stripe.com",
        help: "Stripe API base URL",
    },
    SettingDoc {
        key: "stripe.success_url",
        env: "FUNMAGIC_CHECKOUT_SUCCESS_URL",
        default: "<public_url>/?checkout=success",
        help: "where Checkout sends the buyer after paying",
    },
    SettingDoc {
        key: "stripe.cancel_url",
        env: "FUNMAGIC_CHECKOUT_CANCEL_URL",
        default: "<public_url>/?checkout=cancelled",
        help: "where Checkout sends the buyer on cancel",
    },
    SettingDoc {
        key: "stripe.webhook_tolerance_secs",
        env: "FUNMAGIC_STRIPE_WEBHOOK_TOLERANCE_SECS",
        default: "300",
        help: "maximum age of a signed webhook",
    },
    SettingDoc {
        key: "log.level",
        env: "FUNMAGIC_LOG",
        default: "info",
        help: "tracing filter, e.g. info,funmagic_api=debug",
    },
    SettingDoc { key: "log.format", env: "FUNMAGIC_LOG_FORMAT", default: "text", help: "text or json" },
];

/// A configuration problem: which setting, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { setting: setting.into(), problem: problem.into() }
    }
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub public_url: Option<String>,
    /// Connections with no traffic either way this long are closed.
    pub idle_timeout_secs: u64,
    /// An HTTP/1 request head must arrive whole this soon after its first byte.
    pub header_timeout_secs: u64,
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
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// `None`: generated once into `<data_dir>/master.key`.
    pub master_key: Option<SecretString>,
    pub timeout_secs: u64,
    pub max_retries: u32,
    pub poll_ms: u64,
    pub health_check_secs: u64,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderLayer {
    pub master_key: Option<SecretString>,
    pub timeout_secs: Option<u64>,
    pub max_retries: Option<u32>,
    pub poll_ms: Option<u64>,
    pub health_check_secs: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct CreditsSettings {
    pub signup_bonus: i64,
}

/// Per-user request limits (0 = no limit); windows are one minute, counted in Redis in
/// scale-out mode and in process memory in the embedded default.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub task_submits_per_minute: u32,
    pub presigns_per_minute: u32,
    pub stream_opens_per_minute: u32,
    /// Open task event streams per user, counted per API process.
    pub max_streams_per_user: u32,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitLayer {
    pub task_submits_per_minute: Option<u32>,
    pub presigns_per_minute: Option<u32>,
    pub stream_opens_per_minute: Option<u32>,
    pub max_streams_per_user: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct StripeSettings {
    pub secret_key: SecretString,
    pub webhook_secret: Option<SecretString>,
    pub api_url: String,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub webhook_tolerance_secs: u64,
}

/// One OAuth provider's endpoints and credentials.
#[derive(Debug, Clone)]
pub struct OAuthProviderSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    pub authorize_url: String,
    pub token_url: String,
    /// GitHub: the REST API base; Google: the userinfo endpoint.
    pub api_url: String,
}

#[derive(Debug, Clone, Default)]
pub struct OAuthSettings {
    pub github: Option<OAuthProviderSettings>,
    pub google: Option<OAuthProviderSettings>,
}

#[derive(Debug, Clone)]
pub struct TaskSettings {
    pub lease_secs: u64,
    pub max_attempts: u32,
    pub retry_base_ms: u64,
    pub step_timeout_secs: u64,
    /// 0 = no limit.
    pub max_running_per_user: u32,
    pub reconcile_secs: u64,
    pub event_ttl_secs: u64,
}

#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// `None`: generated once into `<data_dir>/secret.key`.
    pub secret_key: Option<SecretString>,
    pub max_image_bytes: u64,
    pub max_model_bytes: u64,
    pub quota_bytes: u64,
    pub upload_url_ttl_secs: u64,
    pub download_url_ttl_secs: u64,
    pub pending_upload_ttl_secs: u64,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub session_ttl_days: u32,
    pub signup_enabled: bool,
    /// Origins (scheme://host[:port]) allowed besides the public URL's.
    pub trusted_origins: Vec<String>,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub rate_limit_per_minute: u32,
    pub rate_limit_per_email_per_minute: u32,
    pub trust_forwarded_for: bool,
    pub bootstrap_admin: bool,
}

#[derive(Debug, Clone)]
pub struct MailSettings {
    pub smtp_url: Option<SecretString>,
    pub from: String,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `None`: SQLite file `funmagic.db` inside the data dir.
    pub url: Option<SecretString>,
    pub max_connections: u32,
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `None`: the embedded queue, event bus and limits are used.
    pub url: Option<SecretString>,
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: SecretString,
    pub region: String,
    pub bucket_public: String,
    pub bucket_private: String,
    pub bucket_admin: String,
    pub path_style: bool,
    pub cdn_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

/// Which database engine a URL (or its absence) selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Postgres(String),
    Sqlite(PathBuf),
}

impl Settings {
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
            Some(url) => parse_database_url(url.expose_secret()),
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

fn parse_database_url(url: &str) -> Result<DatabaseTarget, ConfigError> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "postgres" | "postgresql" => Ok(DatabaseTarget::Postgres(url.to_string())),
        "sqlite" => {
            let rest = url.trim_start_matches("sqlite://");
            let path = rest.split('?').next().unwrap_or(rest);
            if path.is_empty() || path.contains(":memory:") {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    "an in-memory SQLite database loses every task and credit on restart; give a file path (sqlite://path/to/funmagic.db)",
                ));
            }
            Ok(DatabaseTarget::Sqlite(PathBuf::from(path)))
        }
        "" => Err(ConfigError::new("DATABASE_URL", "not a URL (expected postgres://… or sqlite://…)")),
        other => Err(ConfigError::new(
            "DATABASE_URL",
            format!("unsupported scheme '{other}' (expected postgres:// or sqlite://)"),
        )),
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

/// One layer of configuration: every field optional; later layers override earlier ones.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsLayer {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub public_url: Option<String>,
    pub idle_timeout_secs: Option<u64>,
    pub header_timeout_secs: Option<u64>,
    #[serde(default)]
    pub database: DatabaseLayer,
    #[serde(default)]
    pub redis: RedisLayer,
    #[serde(default)]
    pub s3: S3Layer,
    #[serde(default)]
    pub storage: StorageLayer,
    #[serde(default)]
    pub tasks: TaskLayer,
    #[serde(default)]
    pub providers: ProviderLayer,
    #[serde(default)]
    pub auth: AuthLayer,
    #[serde(default)]
    pub mail: MailLayer,
    #[serde(default)]
    pub oauth: OAuthLayer,
    #[serde(default)]
    pub credits: CreditsLayer,
    #[serde(default)]
    pub limits: LimitLayer,
    #[serde(default)]
    pub stripe: StripeLayer,
    #[serde(default)]
    pub log: LogLayer,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditsLayer {
    pub signup_bonus: Option<i64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeLayer {
    pub secret_key: Option<SecretString>,
    pub webhook_secret: Option<SecretString>,
    pub api_url: Option<String>,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub webhook_tolerance_secs: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthLayer {
    pub github_client_id: Option<String>,
    pub github_client_secret: Option<SecretString>,
    pub github_authorize_url: Option<String>,
    pub github_token_url: Option<String>,
    pub github_api_url: Option<String>,
    pub google_client_id: Option<String>,
    pub google_client_secret: Option<SecretString>,
    pub google_authorize_url: Option<String>,
    pub google_token_url: Option<String>,
    pub google_userinfo_url: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskLayer {
    pub lease_secs: Option<u64>,
    pub max_attempts: Option<u32>,
    pub retry_base_ms: Option<u64>,
    pub step_timeout_secs: Option<u64>,
    pub max_running_per_user: Option<u32>,
    pub reconcile_secs: Option<u64>,
    pub event_ttl_secs: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageLayer {
    pub secret_key: Option<SecretString>,
    pub max_image_bytes: Option<u64>,
    pub max_model_bytes: Option<u64>,
    pub quota_bytes: Option<u64>,
    pub upload_url_ttl_secs: Option<u64>,
    pub download_url_ttl_secs: Option<u64>,
    pub pending_upload_ttl_secs: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthLayer {
    pub session_ttl_days: Option<u32>,
    pub signup_enabled: Option<bool>,
    pub trusted_origins: Option<Vec<String>>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub argon2_parallelism: Option<u32>,
    pub rate_limit_per_minute: Option<u32>,
    pub rate_limit_per_email_per_minute: Option<u32>,
    pub trust_forwarded_for: Option<bool>,
    pub bootstrap_admin: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailLayer {
    pub smtp_url: Option<SecretString>,
    pub from: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseLayer {
    pub url: Option<SecretString>,
    pub max_connections: Option<u32>,
    pub connect_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisLayer {
    pub url: Option<SecretString>,
    pub prefix: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Layer {
    pub endpoint: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<SecretString>,
    pub region: Option<String>,
    pub bucket_public: Option<String>,
    pub bucket_private: Option<String>,
    pub bucket_admin: Option<String>,
    pub path_style: Option<bool>,
    pub cdn_url: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLayer {
    pub level: Option<String>,
    pub format: Option<LogFormat>,
}

/// `self.f = other.f.or(self.f)` for every listed field.
macro_rules! override_fields {
    ($base:expr, $top:expr; $($field:ident),* $(,)?) => {
        $( if $top.$field.is_some() { $base.$field = $top.$field; } )*
    };
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

    /// Reads the environment through `env` (so tests can pass a map).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let secret = |name: &str| get(name).map(SecretString::from);
        Ok(Self {
            listen: parse_env(&get, "FUNMAGIC_LISTEN")?,
            data_dir: get("FUNMAGIC_DATA_DIR").map(PathBuf::from),
            public_url: get("FUNMAGIC_PUBLIC_URL"),
            idle_timeout_secs: parse_env(&get, "FUNMAGIC_IDLE_TIMEOUT_SECS")?,
            header_timeout_secs: parse_env(&get, "FUNMAGIC_HEADER_TIMEOUT_SECS")?,
            database: DatabaseLayer {
                url: secret("DATABASE_URL"),
                max_connections: parse_env(&get, "FUNMAGIC_DATABASE_MAX_CONNECTIONS")?,
                connect_timeout_secs: parse_env(&get, "FUNMAGIC_DATABASE_CONNECT_TIMEOUT_SECS")?,
            },
            redis: RedisLayer { url: secret("REDIS_URL"), prefix: get("FUNMAGIC_REDIS_PREFIX") },
            s3: S3Layer {
                endpoint: get("S3_ENDPOINT"),
                access_key: get("S3_ACCESS_KEY"),
                secret_key: secret("S3_SECRET_KEY"),
                region: get("S3_REGION"),
                bucket_public: get("S3_BUCKET_PUBLIC"),
                bucket_private: get("S3_BUCKET_PRIVATE"),
                bucket_admin: get("S3_BUCKET_ADMIN"),
                path_style: parse_env(&get, "FUNMAGIC_S3_PATH_STYLE")?,
                cdn_url: get("CDN_URL"),
            },
            tasks: TaskLayer {
                lease_secs: parse_env(&get, "FUNMAGIC_TASK_LEASE_SECS")?,
                max_attempts: parse_env(&get, "FUNMAGIC_TASK_MAX_ATTEMPTS")?,
                retry_base_ms: parse_env(&get, "FUNMAGIC_TASK_RETRY_BASE_MS")?,
                step_timeout_secs: parse_env(&get, "FUNMAGIC_STEP_TIMEOUT_SECS")?,
                max_running_per_user: parse_env(&get, "FUNMAGIC_MAX_RUNNING_PER_USER")?,
                reconcile_secs: parse_env(&get, "FUNMAGIC_QUEUE_RECONCILE_SECS")?,
                event_ttl_secs: parse_env(&get, "FUNMAGIC_EVENT_STREAM_TTL_SECS")?,
            },
            providers: ProviderLayer {
                master_key: secret("FUNMAGIC_MASTER_KEY"),
                timeout_secs: parse_env(&get, "FUNMAGIC_PROVIDER_TIMEOUT_SECS")?,
                max_retries: parse_env(&get, "FUNMAGIC_PROVIDER_MAX_RETRIES")?,
                poll_ms: parse_env(&get, "FUNMAGIC_PROVIDER_POLL_MS")?,
                health_check_secs: parse_env(&get, "FUNMAGIC_PROVIDER_HEALTH_SECS")?,
            },
            storage: StorageLayer {
                secret_key: secret("FUNMAGIC_SECRET_KEY"),
                max_image_bytes: parse_env(&get, "FUNMAGIC_MAX_IMAGE_BYTES")?,
                max_model_bytes: parse_env(&get, "FUNMAGIC_MAX_MODEL_BYTES")?,
                quota_bytes: parse_env(&get, "FUNMAGIC_STORAGE_QUOTA_BYTES")?,
                upload_url_ttl_secs: parse_env(&get, "FUNMAGIC_UPLOAD_URL_TTL_SECS")?,
                download_url_ttl_secs: parse_env(&get, "FUNMAGIC_DOWNLOAD_URL_TTL_SECS")?,
                pending_upload_ttl_secs: parse_env(&get, "FUNMAGIC_PENDING_UPLOAD_TTL_SECS")?,
            },
            auth: AuthLayer {
                session_ttl_days: parse_env(&get, "FUNMAGIC_SESSION_TTL_DAYS")?,
                signup_enabled: parse_env(&get, "FUNMAGIC_SIGNUP_ENABLED")?,
                trusted_origins: get("FUNMAGIC_TRUSTED_ORIGINS")
                    .map(|v| v.split(',').map(|o| o.trim().to_string()).filter(|o| !o.is_empty()).collect()),
                argon2_memory_kib: parse_env(&get, "FUNMAGIC_ARGON2_MEMORY_KIB")?,
                argon2_iterations: parse_env(&get, "FUNMAGIC_ARGON2_ITERATIONS")?,
                argon2_parallelism: parse_env(&get, "FUNMAGIC_ARGON2_PARALLELISM")?,
                rate_limit_per_minute: parse_env(&get, "FUNMAGIC_AUTH_RATE_LIMIT_PER_MINUTE")?,
                rate_limit_per_email_per_minute: parse_env(&get, "FUNMAGIC_AUTH_RATE_LIMIT_PER_EMAIL_PER_MINUTE")?,
                trust_forwarded_for: parse_env(&get, "FUNMAGIC_TRUST_FORWARDED_FOR")?,
                bootstrap_admin: parse_env(&get, "FUNMAGIC_BOOTSTRAP_ADMIN")?,
            },
            mail: MailLayer { smtp_url: secret("FUNMAGIC_SMTP_URL"), from: get("FUNMAGIC_MAIL_FROM") },
            credits: CreditsLayer { signup_bonus: parse_env(&get, "FUNMAGIC_SIGNUP_BONUS_CREDITS")? },
            limits: LimitLayer {
                task_submits_per_minute: parse_env(&get, "FUNMAGIC_LIMIT_TASK_SUBMITS_PER_MINUTE")?,
                presigns_per_minute: parse_env(&get, "FUNMAGIC_LIMIT_PRESIGNS_PER_MINUTE")?,
                stream_opens_per_minute: parse_env(&get, "FUNMAGIC_LIMIT_STREAM_OPENS_PER_MINUTE")?,
                max_streams_per_user: parse_env(&get, "FUNMAGIC_MAX_STREAMS_PER_USER")?,
            },
            stripe: StripeLayer {
                secret_key: secret("STRIPE_SECRET_KEY"),
                webhook_secret: secret("STRIPE_WEBHOOK_SECRET"),
                api_url: get("FUNMAGIC_STRIPE_API_URL"),
                success_url: get("FUNMAGIC_CHECKOUT_SUCCESS_URL"),
                cancel_url: get("FUNMAGIC_CHECKOUT_CANCEL_URL"),
                webhook_tolerance_secs: parse_env(&get, "FUNMAGIC_STRIPE_WEBHOOK_TOLERANCE_SECS")?,
            },
            oauth: OAuthLayer {
                github_client_id: get("FUNMAGIC_GITHUB_CLIENT_ID"),
                github_client_secret: secret("FUNMAGIC_GITHUB_CLIENT_SECRET"),
                github_authorize_url: get("FUNMAGIC_GITHUB_AUTHORIZE_URL"),
                github_token_url: get("FUNMAGIC_GITHUB_TOKEN_URL"),
                github_api_url: get("FUNMAGIC_GITHUB_API_URL"),
                google_client_id: get("FUNMAGIC_GOOGLE_CLIENT_ID"),
                google_client_secret: secret("FUNMAGIC_GOOGLE_CLIENT_SECRET"),
                google_authorize_url: get("FUNMAGIC_GOOGLE_AUTHORIZE_URL"),
                google_token_url: get("FUNMAGIC_GOOGLE_TOKEN_URL"),
                google_userinfo_url: get("FUNMAGIC_GOOGLE_USERINFO_URL"),
            },
            log: LogLayer {
                level: get("FUNMAGIC_LOG").or_else(|| get("RUST_LOG")),
                format: match get("FUNMAGIC_LOG_FORMAT") {
                    None => None,
                    Some(v) => Some(match v.to_ascii_lowercase().as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => {
                            return Err(ConfigError::new(
                                "FUNMAGIC_LOG_FORMAT",
                                format!("'{v}' is neither text nor json"),
                            ));
                        }
                    }),
                },
            },
        })
    }

    /// `other` overrides `self` wherever it has a value.
    pub fn merge(mut self, other: Self) -> Self {
        override_fields!(self, other; listen, data_dir, public_url, idle_timeout_secs, header_timeout_secs);
        override_fields!(self.database, other.database; url, max_connections, connect_timeout_secs);
        override_fields!(self.redis, other.redis; url, prefix);
        override_fields!(self.s3, other.s3; endpoint, access_key, secret_key, region, bucket_public,
            bucket_private, bucket_admin, path_style, cdn_url);
        override_fields!(self.tasks, other.tasks; lease_secs, max_attempts, retry_base_ms, step_timeout_secs, max_running_per_user, reconcile_secs, event_ttl_secs);
        override_fields!(self.providers, other.providers; master_key, timeout_secs, max_retries, poll_ms,
            health_check_secs);
        override_fields!(self.storage, other.storage; secret_key, max_image_bytes, max_model_bytes, quota_bytes,
            upload_url_ttl_secs, download_url_ttl_secs, pending_upload_ttl_secs);
        override_fields!(self.auth, other.auth; session_ttl_days, signup_enabled,
            trusted_origins, argon2_memory_kib, argon2_iterations, argon2_parallelism, rate_limit_per_minute,
            rate_limit_per_email_per_minute, trust_forwarded_for, bootstrap_admin);
        override_fields!(self.mail, other.mail; smtp_url, from);
        override_fields!(self.oauth, other.oauth; github_client_id, github_client_secret, github_authorize_url,
            github_token_url, github_api_url, google_client_id, google_client_secret, google_authorize_url,
            google_token_url, google_userinfo_url);
        override_fields!(self.credits, other.credits; signup_bonus);
        override_fields!(self.limits, other.limits; task_submits_per_minute, presigns_per_minute,
            stream_opens_per_minute, max_streams_per_user);
        override_fields!(self.stripe, other.stripe; secret_key, webhook_secret, api_url, success_url, cancel_url,
            webhook_tolerance_secs);
        override_fields!(self.log, other.log; level, format);
        self
    }

    /// Applies defaults and validates; the result is complete or an error names the problem.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let max_connections = self.database.max_connections.unwrap_or(10);
        if max_connections == 0 {
            return Err(ConfigError::new("FUNMAGIC_DATABASE_MAX_CONNECTIONS", "must be at least 1"));
        }
        if let Some(url) = &self.public_url
            && !crate::urls::is_http_url(url)
        {
            return Err(ConfigError::new(
                "FUNMAGIC_PUBLIC_URL",
                format!("'{url}' must start with http:// or https://"),
            ));
        }
        let idle_timeout_secs = self.idle_timeout_secs.unwrap_or(60);
        if idle_timeout_secs == 0 {
            return Err(ConfigError::new("FUNMAGIC_IDLE_TIMEOUT_SECS", "must be at least 1"));
        }
        let header_timeout_secs = self.header_timeout_secs.unwrap_or(30);
        if header_timeout_secs == 0 {
            return Err(ConfigError::new("FUNMAGIC_HEADER_TIMEOUT_SECS", "must be at least 1"));
        }
        let settings = Settings {
            listen: self.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000))),
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from("./funmagic-data")),
            public_url: self.public_url,
            idle_timeout_secs,
            header_timeout_secs,
            database: DatabaseSettings {
                url: self.database.url,
                max_connections,
                connect_timeout_secs: self.database.connect_timeout_secs.unwrap_or(5).max(1),
            },
            redis: RedisSettings {
                url: self.redis.url,
                prefix: self.redis.prefix.unwrap_or_else(|| "funmagic".into()),
            },
            s3: resolve_s3(self.s3)?,
            storage: resolve_storage(self.storage)?,
            tasks: TaskSettings {
                lease_secs: match self.tasks.lease_secs.unwrap_or(45) {
                    n if n < 3 => return Err(ConfigError::new("FUNMAGIC_TASK_LEASE_SECS", "must be at least 3")),
                    n => n,
                },
                max_attempts: match self.tasks.max_attempts.unwrap_or(3) {
                    0 => return Err(ConfigError::new("FUNMAGIC_TASK_MAX_ATTEMPTS", "must be at least 1")),
                    n => n,
                },
                retry_base_ms: self.tasks.retry_base_ms.unwrap_or(1000),
                step_timeout_secs: match self.tasks.step_timeout_secs.unwrap_or(900) {
                    0 => return Err(ConfigError::new("FUNMAGIC_STEP_TIMEOUT_SECS", "must be at least 1")),
                    n => n,
                },
                max_running_per_user: self.tasks.max_running_per_user.unwrap_or(3),
                reconcile_secs: match self.tasks.reconcile_secs.unwrap_or(30) {
                    0 => return Err(ConfigError::new("FUNMAGIC_QUEUE_RECONCILE_SECS", "must be at least 1")),
                    n => n,
                },
                event_ttl_secs: match self.tasks.event_ttl_secs.unwrap_or(3600) {
                    0 => return Err(ConfigError::new("FUNMAGIC_EVENT_STREAM_TTL_SECS", "must be at least 1")),
                    n => n,
                },
            },
            providers: ProviderSettings {
                master_key: self.providers.master_key,
                timeout_secs: match self.providers.timeout_secs.unwrap_or(60) {
                    0 => return Err(ConfigError::new("FUNMAGIC_PROVIDER_TIMEOUT_SECS", "must be at least 1")),
                    n => n,
                },
                max_retries: self.providers.max_retries.unwrap_or(3),
                poll_ms: match self.providers.poll_ms.unwrap_or(2000) {
                    0 => return Err(ConfigError::new("FUNMAGIC_PROVIDER_POLL_MS", "must be at least 1")),
                    n => n,
                },
                health_check_secs: match self.providers.health_check_secs.unwrap_or(300) {
                    0 => return Err(ConfigError::new("FUNMAGIC_PROVIDER_HEALTH_SECS", "must be at least 1")),
                    n => n,
                },
            },
            auth: resolve_auth(self.auth)?,
            mail: MailSettings {
                smtp_url: self.mail.smtp_url,
                from: self.mail.from.unwrap_or_else(|| "FunMagic <no-reply@localhost>".into()),
            },
            oauth: resolve_oauth(self.oauth)?,
            credits: CreditsSettings {
                signup_bonus: match self.credits.signup_bonus.unwrap_or(0) {
                    n if n < 0 => {
                        return Err(ConfigError::new("FUNMAGIC_SIGNUP_BONUS_CREDITS", "must not be negative"));
                    }
                    n => n,
                },
            },
            limits: LimitSettings {
                task_submits_per_minute: self.limits.task_submits_per_minute.unwrap_or(6000),
                presigns_per_minute: self.limits.presigns_per_minute.unwrap_or(600),
                stream_opens_per_minute: self.limits.stream_opens_per_minute.unwrap_or(1200),
                max_streams_per_user: self.limits.max_streams_per_user.unwrap_or(100),
            },
            stripe: resolve_stripe(self.stripe)?,
            log: LogSettings {
                level: self.log.level.unwrap_or_else(|| "info".into()),
                format: self.log.format.unwrap_or(LogFormat::Text),
            },
        };
        settings.database_target()?;
        if let Some(url) = &settings.redis.url {
            let url = url.expose_secret();
            if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://")) {
                return Err(ConfigError::new("REDIS_URL", "must start with redis://, rediss:// or redis+unix://"));
            }
        }
        Ok(settings)
    }
}

fn resolve_storage(s: StorageLayer) -> Result<StorageSettings, ConfigError> {
    let positive = |value: Option<u64>, default: u64, env: &str| -> Result<u64, ConfigError> {
        match value.unwrap_or(default) {
            0 => Err(ConfigError::new(env, "must be at least 1")),
            v => Ok(v),
        }
    };
    if let Some(key) = &s.secret_key
        && key.expose_secret().len() < 32
    {
        return Err(ConfigError::new("FUNMAGIC_SECRET_KEY", "must be at least 32 characters"));
    }
    Ok(StorageSettings {
        secret_key: s.secret_key,
        max_image_bytes: positive(s.max_image_bytes, 25 * 1024 * 1024, "FUNMAGIC_MAX_IMAGE_BYTES")?,
        max_model_bytes: positive(s.max_model_bytes, 200 * 1024 * 1024, "FUNMAGIC_MAX_MODEL_BYTES")?,
        quota_bytes: positive(s.quota_bytes, 1024 * 1024 * 1024, "FUNMAGIC_STORAGE_QUOTA_BYTES")?,
        upload_url_ttl_secs: positive(s.upload_url_ttl_secs, 900, "FUNMAGIC_UPLOAD_URL_TTL_SECS")?,
        download_url_ttl_secs: positive(s.download_url_ttl_secs, 3600, "FUNMAGIC_DOWNLOAD_URL_TTL_SECS")?,
        pending_upload_ttl_secs: positive(s.pending_upload_ttl_secs, 86_400, "FUNMAGIC_PENDING_UPLOAD_TTL_SECS")?,
    })
}

fn resolve_auth(a: AuthLayer) -> Result<AuthSettings, ConfigError> {
    let positive = |value: Option<u32>, default: u32, env: &str| -> Result<u32, ConfigError> {
        match value.unwrap_or(default) {
            0 => Err(ConfigError::new(env, "must be at least 1")),
            v => Ok(v),
        }
    };
    let origins = a.trusted_origins.unwrap_or_default();
    if let Some(bad) = origins.iter().find(|o| !crate::urls::is_http_url(o)) {
        return Err(ConfigError::new("FUNMAGIC_TRUSTED_ORIGINS", format!("'{bad}' is not an http(s) origin")));
    }
    Ok(AuthSettings {
        session_ttl_days: positive(a.session_ttl_days, 7, "FUNMAGIC_SESSION_TTL_DAYS")?,
        signup_enabled: a.signup_enabled.unwrap_or(true),
        trusted_origins: origins.into_iter().map(|o| o.trim_end_matches('/').to_string()).collect(),
        argon2_memory_kib: positive(a.argon2_memory_kib, 19_456, "FUNMAGIC_ARGON2_MEMORY_KIB")?,
        argon2_iterations: positive(a.argon2_iterations, 2, "FUNMAGIC_ARGON2_ITERATIONS")?,
        argon2_parallelism: positive(a.argon2_parallelism, 1, "FUNMAGIC_ARGON2_PARALLELISM")?,
        rate_limit_per_minute: positive(a.rate_limit_per_minute, 20, "FUNMAGIC_AUTH_RATE_LIMIT_PER_MINUTE")?,
        rate_limit_per_email_per_minute: positive(
            a.rate_limit_per_email_per_minute,
            5,
            "FUNMAGIC_AUTH_RATE_LIMIT_PER_EMAIL_PER_MINUTE",
        )?,
        trust_forwarded_for: a.trust_forwarded_for.unwrap_or(false),
        bootstrap_admin: a.bootstrap_admin.unwrap_or(true),
    })
}

fn resolve_oauth(o: OAuthLayer) -> Result<OAuthSettings, ConfigError> {
    let provider = |name: &str,
                    id: Option<String>,
                    secret: Option<SecretString>,
                    urls: [(Option<String>, &str, &str); 3]|
     -> Result<Option<OAuthProviderSettings>, ConfigError> {
        let upper = name.to_ascii_uppercase();
        let (id, secret) = match (id, secret) {
            (None, None) => return Ok(None),
            (Some(id), Some(secret)) => (id, secret),
            (Some(_), None) => {
                return Err(ConfigError::new(format!("FUNMAGIC_{upper}_CLIENT_SECRET"), "required with the client id"));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(format!("FUNMAGIC_{upper}_CLIENT_ID"), "required with the client secret"));
            }
        };
        let mut resolved = vec![];
        for (value, env, default) in urls {
            let url = value.unwrap_or_else(|| default.to_string());
            if !crate::urls::is_http_url(&url) {
                return Err(ConfigError::new(env, format!("'{url}' is not an http(s) URL")));
            }
            resolved.push(url.trim_end_matches('/').to_string());
        }
        Ok(Some(OAuthProviderSettings {
            client_id: id,
            client_secret: secret,
            authorize_url: resolved[0].clone(),
            token_url: resolved[1].clone(),
            api_url: resolved[2].clone(),
        }))
    };
    Ok(OAuthSettings {
        github: provider(
            "github",
            o.github_client_id,
            o.github_client_secret,
            [
                (o.github_authorize_url, "FUNMAGIC_GITHUB_AUTHORIZE_URL", "https://github.com/login/oauth/authorize"),
                (o.github_token_url, "FUNMAGIC_GITHUB_TOKEN_URL", "https://github.com/login/oauth/access_token"),
                (o.github_api_url, "FUNMAGIC_GITHUB_API_URL", "https://api.github.com"),
            ],
        )?,
        google: provider(
            "google",
            o.google_client_id,
            o.google_client_secret,
            [
                (
                    o.google_authorize_url,
                    "FUNMAGIC_GOOGLE_AUTHORIZE_URL",
                    "https://accounts.google.com/o/oauth2/v2/auth",
                ),
                (o.google_token_url, "FUNMAGIC_GOOGLE_TOKEN_URL", "https://oauth2.googleapis.com/token"),
                (
                    o.google_userinfo_url,
                    "FUNMAGIC_GOOGLE_USERINFO_URL",
                    "https://openidconnect.googleapis.com/v1/userinfo",
                ),
            ],
        )?,
    })
}

fn resolve_stripe(s: StripeLayer) -> Result<Option<StripeSettings>, ConfigError> {
    let Some(secret_key) = s.secret_key else {
        if s.webhook_secret.is_some() {
            return Err(ConfigError::new("STRIPE_SECRET_KEY", "required when STRIPE_WEBHOOK_SECRET is set"));
        }
        return Ok(None);
    };
    let api_url = s.api_url.unwrap_or_else(|| "https://api.stripe.com".into());
    for (value, env) in [
        (Some(&api_url), "FUNMAGIC_STRIPE_API_URL"),
        (s.success_url.as_ref(), "FUNMAGIC_CHECKOUT_SUCCESS_URL"),
        (s.cancel_url.as_ref(), "FUNMAGIC_CHECKOUT_CANCEL_URL"),
    ] {
        if let Some(url) = value
            && !crate::urls::is_http_url(url)
        {
            return Err(ConfigError::new(env, format!("'{url}' is not an http(s) URL")));
        }
    }
    Ok(Some(StripeSettings {
        secret_key,
        webhook_secret: s.webhook_secret,
        api_url: api_url.trim_end_matches('/').to_string(),
        success_url: s.success_url,
        cancel_url: s.cancel_url,
        webhook_tolerance_secs: s.webhook_tolerance_secs.unwrap_or(300),
    }))
}

fn resolve_s3(s3: S3Layer) -> Result<Option<S3Settings>, ConfigError> {
    let Some(endpoint) = s3.endpoint else {
        let stray = [("S3_ACCESS_KEY", s3.access_key.is_some()), ("S3_SECRET_KEY", s3.secret_key.is_some())];
        if let Some((name, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(ConfigError::new(
                "S3_ENDPOINT",
                format!(
                    "{name} is set but S3_ENDPOINT is not; set both to use S3, or neither for the local file store"
                ),
            ));
        }
        return Ok(None);
    };
    if !crate::urls::is_http_url(&endpoint) {
        return Err(ConfigError::new("S3_ENDPOINT", format!("'{endpoint}' must start with http:// or https://")));
    }
    let access_key =
        s3.access_key.ok_or_else(|| ConfigError::new("S3_ACCESS_KEY", "required when S3_ENDPOINT is set"))?;
    let secret_key =
        s3.secret_key.ok_or_else(|| ConfigError::new("S3_SECRET_KEY", "required when S3_ENDPOINT is set"))?;
    Ok(Some(S3Settings {
        endpoint: endpoint.trim_end_matches('/').to_string(),
        access_key,
        secret_key,
        region: s3.region.unwrap_or_else(|| "us-east-1".into()),
        bucket_public: s3.bucket_public.unwrap_or_else(|| "funmagic-public".into()),
        bucket_private: s3.bucket_private.unwrap_or_else(|| "funmagic-private".into()),
        bucket_admin: s3.bucket_admin.unwrap_or_else(|| "funmagic-admin".into()),
        path_style: s3.path_style.unwrap_or(true),
        cdn_url: s3.cdn_url.map(|u| u.trim_end_matches('/').to_string()),
    }))
}

fn parse_env<T: std::str::FromStr>(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(None),
        Some(raw) => {
            raw.trim().parse().map(Some).map_err(|e| ConfigError::new(name, format!("invalid value '{raw}': {e}")))
        }
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
