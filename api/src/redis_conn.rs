//! The Redis connection of scale-out mode: a reconnecting `ConnectionManager` for ordinary
//! commands, and the `Client` to open dedicated connections (blocking reads must not share
//! one). Every key is namespaced with the configured prefix.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;

use crate::config::{ConfigError, RedisSettings, redact_url};

#[derive(Clone)]
pub struct RedisHandle {
    client: redis::Client,
    manager: ConnectionManager,
    prefix: String,
    url: String,
    /// Commands whose answer nobody waits for, sent in pipelines (see [`RedisHandle::fire`]).
    fired: Arc<OnceLock<mpsc::UnboundedSender<redis::Cmd>>>,
}

/// Most commands in one pipeline of fired commands.
const FIRE_BATCH: usize = 512;

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHandle").field("url", &self.url).field("prefix", &self.prefix).finish()
    }
}

impl RedisHandle {
    /// Connects if `REDIS_URL` is set; `Ok(None)` means the embedded mode.
    pub async fn connect(settings: &RedisSettings, timeout: Duration) -> Result<Option<Self>, ConfigError> {
        let Some(url) = &settings.url else { return Ok(None) };
        let url = url.expose_secret();
        let redacted = redact_url(url);
        let client = redis::Client::open(url)
            .map_err(|e| ConfigError::new("REDIS_URL", format!("invalid URL {redacted}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2);
        let manager = tokio::time::timeout(timeout, ConnectionManager::new_with_config(client.clone(), config))
            .await
            .map_err(|_| ConfigError::new("REDIS_URL", format!("cannot connect to {redacted}: timed out")))?
            .map_err(|e| ConfigError::new("REDIS_URL", format!("cannot connect to {redacted}: {e}")))?;
        let handle = Self { client, manager, prefix: settings.prefix.clone(), url: redacted, fired: Arc::default() };
        handle
            .ping()
            .await
            .map_err(|e| ConfigError::new("REDIS_URL", format!("{} does not answer PING: {e}", handle.url)))?;
        Ok(Some(handle))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `prefix:suffix`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    /// A clone of the shared multiplexed connection.
    pub fn conn(&self) -> ConnectionManager {
        self.manager.clone()
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Sends a command whose answer nobody waits for (a PUBLISH, an XACK): one task sends
    /// every such command waiting at that moment as one pipeline, so many tasks' events
    /// cost one round trip. Commands go out in the order they were fired; a failure is
    /// logged (what they carry has a safety net: the database, the reconciler).
    pub fn fire(&self, cmd: redis::Cmd) {
        let tx = self.fired.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(fire_loop(self.conn(), rx));
            tx
        });
        let _ = tx.send(cmd);
    }

    /// Round trip; returns the server version.
    pub async fn ping(&self) -> Result<String, redis::RedisError> {
        let mut conn = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        let info: String = redis::cmd("INFO").arg("server").query_async(&mut conn).await?;
        let version =
            info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("unknown").trim().to_string();
        Ok(format!("Redis {version}"))
    }
}

async fn fire_loop(mut conn: ConnectionManager, mut rx: mpsc::UnboundedReceiver<redis::Cmd>) {
    let mut batch = Vec::with_capacity(FIRE_BATCH);
    while rx.recv_many(&mut batch, FIRE_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for cmd in batch.drain(..) {
            pipe.add_command(cmd).ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(error = %e, "sending a batch of Redis commands failed");
        }
    }
}
