//! The application state shared by HTTP handlers and workers, and its construction from
//! [`Settings`]: database (migrated), Redis (optional), object storage — each checked at
//! start so the server never runs half-configured.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    started: Instant,
}

/// Whether to apply migrations while building the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    Apply,
    Skip,
}

impl AppState {
    /// Connects every backend the settings select, in order, and logs which serves what.
    pub async fn build(settings: Settings, migrations: Migrations) -> Result<Self, ConfigError> {
        let timeout = Duration::from_secs(settings.database.connect_timeout_secs);
        let store = Store::connect(&settings).await?;
        if migrations == Migrations::Apply {
            let versions = store
                .migrate()
                .await
                .map_err(|e| ConfigError::new("DATABASE_URL", format!("migrations failed: {e}")))?;
            tracing::debug!(?versions, "migrations applied");
        }
        let redis = RedisHandle::connect(&settings.redis, timeout).await?;
        let storage = ObjectStore::open(&settings).await?;
        let state = Self { inner: Arc::new(Inner { settings, store, redis, storage, started: Instant::now() }) };
        state.log_backends();
        Ok(state)
    }

    fn log_backends(&self) {
        let db = match self.settings().database.url.as_ref() {
            Some(url) => redact_url(secrecy::ExposeSecret::expose_secret(url)),
            None => self.settings().data_dir.join("funmagic.db").display().to_string(),
        };
        tracing::info!("database: {} ({db})", self.store().engine().as_str());
        match self.redis() {
            Some(r) => {
                tracing::info!("queue: redis streams ({}, prefix '{}')", r.url(), r.prefix());
                tracing::info!("events, rate limits, session cache: redis");
            }
            None => {
                tracing::info!("queue: embedded (in the {} database)", self.store().engine().as_str());
                tracing::info!("events, rate limits, session cache: in-process");
            }
        }
        tracing::info!("storage: {}", self.storage().describe());
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

    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}
