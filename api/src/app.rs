//! The application state shared by HTTP handlers and workers, and its construction from
//! [`Settings`]: database (migrated), Redis (optional), object storage — each checked at
//! start so the server never runs half-configured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::OnceLock;

use crate::auth::Authenticator;
use crate::auth::mail::Mailer;
use crate::auth::password::PasswordHasherCfg;
use crate::auth::ratelimit::RateLimiter;
use crate::config::{ConfigError, Settings, redact_url};
use crate::redis_conn::RedisHandle;
use crate::storage::ObjectStore;
use crate::store::Store;

/// Cheap to clone; everything inside is shared.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    store: Store,
    redis: Option<RedisHandle>,
    storage: ObjectStore,
    authenticator: Authenticator,
    limiter: RateLimiter,
    hasher: PasswordHasherCfg,
    mailer: Mailer,
    /// The base URL clients reach us at: `public_url`, or the bound address once known.
    public_url: OnceLock<String>,
    /// How due tasks reach the workers (table, or Redis Stream), chosen once.
    queue: crate::queue::TaskQueue,
    /// Task events: publishing and following (in-process, or through Redis in scale-out).
    events: crate::events::Events,
    /// Tools and providers as the task hot path reads them.
    catalogue: crate::tools::Catalogue,
    /// The one outbound HTTP client (providers, OAuth, Stripe): one connection pool, so
    /// calls to the same host reuse connections. Timeouts are set per request.
    http: reqwest::Client,
    /// The guarded client for URLs users give (`imageUrl` inputs): no inside addresses.
    fetcher: crate::fetch::UrlFetcher,
    /// The guarded client for customers' webhook endpoints (no redirects, no inside addresses).
    webhook_poster: crate::fetch::WebhookPoster,
    /// Wakes this process's webhook dispatcher (a ping, a replay, a task's end).
    webhook_work: tokio::sync::Notify,
    /// Open task event streams per user in this process (`limits.max_streams_per_user`).
    stream_slots: crate::auth::ratelimit::StreamSlots,
    /// The line's bound: submissions held while `tasks.max_waiting` tasks wait.
    admission: crate::admission::Admission,
    /// Encrypts and decrypts provider API keys.
    master_key: crate::providers::crypto::MasterKey,
    /// What expiry decisions read (tests move it forward).
    clock: Arc<crate::clock::Clock>,
    started: Instant,
}

/// Whether to apply migrations while building the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Apply what is pending (`funmagic-server migrate`; refused through a pooler).
    Apply,
    /// What a starting process does: apply what is pending, or, behind a transaction pooler
    /// (`database.pooler`), only check that nothing is (migrations need a direct connection).
    AtStart,
    Skip,
}

impl AppState {
    /// Connects every backend the settings select, in order, and logs which serves what.
    pub async fn build(settings: Settings, migrations: Migrations) -> Result<Self, ConfigError> {
        let timeout = Duration::from_secs(settings.database.connect_timeout_secs);
        let store = Store::connect(&settings).await?;
        let check_only = migrations == Migrations::AtStart && store.behind_pooler();
        if check_only {
            let (applied, needed) = store
                .schema_versions()
                .await
                .map_err(|e| ConfigError::new("DATABASE_URL", format!("cannot read the applied migrations: {e}")))?;
            if applied < needed {
                return Err(ConfigError::new(
                    "DATABASE_URL",
                    format!(
                        "the database schema is at migration {applied}, this build needs {needed}: run \
                         `funmagic-server migrate` against PostgreSQL directly (not through the pooler) first"
                    ),
                ));
            }
        } else if migrations != Migrations::Skip {
            let versions = store
                .migrate()
                .await
                .map_err(|e| ConfigError::new("DATABASE_URL", format!("migrations failed: {e}")))?;
            tracing::debug!(?versions, "migrations applied");
        }
        let redis = RedisHandle::connect(&settings.redis, timeout).await?;
        let clock = Arc::new(crate::clock::Clock::default());
        let storage = ObjectStore::open(&settings, clock.clone()).await?;
        let master_key = crate::providers::crypto::load(&settings)?;
        let hasher =
            PasswordHasherCfg::new(&settings.auth).map_err(|e| ConfigError::new("FUNMAGIC_ARGON2_MEMORY_KIB", e))?;
        let mailer = Mailer::new(&settings.mail)?;
        let authenticator = Authenticator::new(store.clone(), redis.clone(), &settings.auth, clock.clone());
        let limiter = RateLimiter::new(redis.clone());
        let public_url = OnceLock::new();
        if let Some(url) = &settings.public_url {
            let _ = public_url.set(url.trim_end_matches('/').to_string());
        }
        let events = crate::events::Events::new(store.clone(), redis.clone(), settings.tasks.event_ttl_secs);
        let catalogue = crate::tools::Catalogue::new(store.clone());
        let queue = crate::queue::TaskQueue::new(redis.as_ref());
        let fetcher = crate::fetch::UrlFetcher::new(
            &settings.tasks.image_url_allow,
            Duration::from_secs(settings.tasks.image_url_timeout_secs),
        );
        let webhook_poster = crate::fetch::WebhookPoster::new(
            &settings.webhooks.allow,
            Duration::from_secs(settings.webhooks.timeout_secs),
        );
        // A held submission sends nothing while it waits: it is answered before the idle
        // timeout would close its connection.
        let admit_wait = Duration::from_secs(settings.tasks.admit_wait_secs)
            .min(Duration::from_secs(settings.idle_timeout_secs).saturating_sub(Duration::from_millis(500)));
        let admission = crate::admission::Admission::new(
            settings.tasks.max_waiting,
            settings.tasks.max_running_per_user,
            admit_wait,
        );
        let inner = Inner {
            admission,
            webhook_poster,
            webhook_work: tokio::sync::Notify::new(),
            settings,
            store,
            redis,
            storage,
            authenticator,
            limiter,
            hasher,
            mailer,
            public_url,
            queue,
            events,
            catalogue,
            stream_slots: Default::default(),
            fetcher,
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .user_agent(concat!("funmagic/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| ConfigError::new("HTTP client", e.to_string()))?,
            master_key,
            clock,
            started: Instant::now(),
        };
        let state = Self { inner: Arc::new(inner) };
        if migrations != Migrations::Skip {
            crate::tools::seed_defaults(state.store()).await.map_err(|e| {
                ConfigError::new("DATABASE_URL", format!("seeding the default tools failed: {}", e.message))
            })?;
        }
        state.log_backends();
        Ok(state)
    }

    fn log_backends(&self) {
        let db = match self.settings().database.url.as_ref() {
            Some(url) => redact_url(secrecy::ExposeSecret::expose_secret(url)),
            None => self.settings().data_dir.join("funmagic.db").display().to_string(),
        };
        tracing::info!("database: {} ({db})", self.store().engine().as_str());
        let engine = self.store().engine().as_str();
        match self.queue().delivery() {
            crate::queue::Delivery::Stream(q) => tracing::info!(
                "queue: Redis Stream consumer group ({}) over the task_queue table in {engine}",
                q.redis().url()
            ),
            crate::queue::Delivery::Table => tracing::info!("queue: task_queue table in {engine} (leased rows)"),
        }
        match self.redis() {
            Some(r) => tracing::info!("rate limits, session cache: redis ({}, prefix '{}')", r.url(), r.prefix()),
            None => tracing::info!("rate limits, session cache: in-process"),
        }
        match self.redis() {
            Some(_) => {
                tracing::info!("progress events: milestones in task_events ({engine}), live through Redis Pub/Sub")
            }
            None => tracing::info!("progress events: milestones in task_events ({engine}), live in-process"),
        }
        tracing::info!("storage: {}", self.storage().describe());
        tracing::info!("mail: {}", self.mailer().describe());
    }

    /// The clock expiry decisions read: use it, not the system time, for "has it expired?".
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.inner.clock
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn redis(&self) -> Option<&RedisHandle> {
        self.inner.redis.as_ref()
    }

    pub fn storage(&self) -> &ObjectStore {
        &self.inner.storage
    }

    pub fn authenticator(&self) -> &Authenticator {
        &self.inner.authenticator
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// The guarded client for webhook endpoints (see `fetch::WebhookPoster`).
    pub fn webhook_poster(&self) -> &crate::fetch::WebhookPoster {
        &self.inner.webhook_poster
    }

    /// Wakes this process's webhook dispatcher.
    pub fn webhook_wakeup(&self) {
        self.inner.webhook_work.notify_waiters();
    }

    /// Resolves when [`AppState::webhook_wakeup`] is called.
    pub async fn webhook_woken(&self) {
        self.inner.webhook_work.notified().await;
    }

    /// The guarded client for URLs users give (see `fetch`).
    pub fn fetcher(&self) -> &crate::fetch::UrlFetcher {
        &self.inner.fetcher
    }

    /// The shared outbound HTTP client; callers set each request's timeout.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The line's bound (see `admission`).
    pub fn admission(&self) -> &crate::admission::Admission {
        &self.inner.admission
    }

    pub fn stream_slots(&self) -> &crate::auth::ratelimit::StreamSlots {
        &self.inner.stream_slots
    }

    pub fn hasher(&self) -> &PasswordHasherCfg {
        &self.inner.hasher
    }

    pub fn mailer(&self) -> &Mailer {
        &self.inner.mailer
    }

    /// Records the bound address as the public URL unless one is configured.
    pub fn set_bound_addr(&self, addr: std::net::SocketAddr) {
        let host = if addr.ip().is_unspecified() { "localhost".to_string() } else { addr.ip().to_string() };
        let host = if addr.is_ipv6() && !addr.ip().is_unspecified() { format!("[{host}]") } else { host };
        let _ = self.inner.public_url.set(format!("http://{host}:{}", addr.port()));
    }

    /// Where clients reach this server (links in mail, device flow URLs).
    pub fn public_url(&self) -> String {
        self.inner.public_url.get().cloned().unwrap_or_else(|| format!("http://{}", self.settings().listen))
    }

    /// Where users' browsers are sent (Stripe's return pages, mailed links, OAuth paths):
    /// `web_url`, else this server.
    pub fn web_url(&self) -> String {
        self.settings().web_url.clone().unwrap_or_else(|| self.public_url())
    }

    /// The configured public URL only (for the CSRF origin list).
    pub fn configured_public_url(&self) -> Option<&str> {
        self.settings().public_url.as_deref()
    }

    pub fn queue(&self) -> &crate::queue::TaskQueue {
        &self.inner.queue
    }

    pub fn master_key(&self) -> &crate::providers::crypto::MasterKey {
        &self.inner.master_key
    }

    pub fn events(&self) -> &crate::events::Events {
        &self.inner.events
    }

    pub fn catalogue(&self) -> &crate::tools::Catalogue {
        &self.inner.catalogue
    }

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}
