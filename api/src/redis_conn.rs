//! The Redis connection of scale-out mode: a reconnecting `ConnectionManager` (or, for a
//! Redis Cluster, a cluster connection that follows the slots) for ordinary commands, and
//! dedicated connections for what must not share one: the queue reader's blocking reads and
//! the event subscriber. Every key is namespaced with the configured prefix; on a cluster
//! the prefix is a hash tag (`{funmagic}:…`), so every key lives in one slot and the
//! scripts, transactions and pipelines that touch several keys keep working.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use secrecy::ExposeSecret;

use crate::config::{ConfigError, RedisSettings, redact_url};

/// Where the commands go: one Redis, or a Redis Cluster.
#[derive(Clone)]
enum Target {
    Single { client: redis::Client, manager: ConnectionManager },
    Cluster(Box<ClusterTarget>),
}

/// A Redis Cluster: the client (for dedicated connections), the shared connection, and the
/// node URLs as given (for Pub/Sub on any node).
#[derive(Clone)]
struct ClusterTarget {
    client: ClusterClient,
    conn: ClusterConnection,
    nodes: Vec<String>,
}

#[derive(Clone)]
pub struct RedisHandle {
    target: Arc<Target>,
    prefix: String,
    /// What every key starts with: the prefix, or on a cluster `{prefix}` (a hash tag).
    key_prefix: String,
    url: String,
    /// Commands whose answer nobody waits for (a PUBLISH, an XACK), sent in pipelines (see
    /// [`RedisHandle::fire`]).
    fired: Arc<OnceLock<mpsc::UnboundedSender<redis::Cmd>>>,
}

/// A connection commands are sent over (`query_async(&mut conn)`, `AsyncCommands`).
#[derive(Clone)]
pub enum RedisConn {
    Manager(ConnectionManager),
    Plain(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Manager(c) => counted(c.req_packed_command(cmd)),
            RedisConn::Plain(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Manager(c) => counted(c.req_packed_commands(pipeline, offset, count)),
            RedisConn::Plain(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Manager(c) => c.get_db(),
            RedisConn::Plain(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// The `CLIENT SETNAME` of a blocking reader: `funmagic-blocking:` and the key prefix
/// (characters Redis refuses in a name replaced by `_`).
pub fn blocking_name(redis: &RedisHandle) -> String {
    let prefix: String = redis.prefix().chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect();
    format!("funmagic-blocking:{prefix}")
}

/// `sent`, counting a lost connection of the shared manager (only when metrics are kept:
/// otherwise the future is passed on as it is).
fn counted<'a, T: Send + 'a>(sent: RedisFuture<'a, T>) -> RedisFuture<'a, T> {
    if !crate::meter::enabled() {
        return sent;
    }
    Box::pin(async move {
        let answer = sent.await;
        if answer.as_ref().is_err_and(lost_connection) {
            crate::meter::redis_reconnect("commands");
        }
        answer
    })
}

/// Whether an error means the connection itself was lost: the test the connection
/// manager itself uses to decide to reconnect (a mere response timeout is not one).
fn lost_connection(e: &redis::RedisError) -> bool {
    e.is_unrecoverable_error()
}

/// Most commands in one pipeline of fired commands.
const FIRE_BATCH: usize = 512;

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHandle")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("cluster", &self.is_cluster())
            .finish()
    }
}

impl RedisHandle {
    /// Connects if `REDIS_URL` is set; `Ok(None)` means the embedded mode. Several
    /// comma-separated URLs (or `redis.cluster`) mean a Redis Cluster.
    pub async fn connect(settings: &RedisSettings, timeout: Duration) -> Result<Option<Self>, ConfigError> {
        let Some(url) = &settings.url else { return Ok(None) };
        let urls: Vec<&str> = url.expose_secret().split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
        let redacted = urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>().join(",");
        let unreachable = |e: &dyn std::fmt::Display| {
            ConfigError::unreachable("REDIS_URL", format!("cannot connect to {redacted}: {e}"))
        };
        let timed_out = || ConfigError::unreachable("REDIS_URL", format!("cannot connect to {redacted}: timed out"));
        let target = if urls.len() > 1 || settings.cluster {
            let client = ClusterClient::builder(urls.iter().copied())
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(2)
                .build()
                .map_err(|e| ConfigError::new("REDIS_URL", format!("invalid cluster URLs {redacted}: {e}")))?;
            let conn = tokio::time::timeout(timeout, client.get_async_connection())
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| unreachable(&e))?;
            Target::Cluster(Box::new(ClusterTarget {
                client,
                conn,
                nodes: urls.iter().map(|u| u.to_string()).collect(),
            }))
        } else {
            let client = redis::Client::open(urls[0])
                .map_err(|e| ConfigError::new("REDIS_URL", format!("invalid URL {redacted}: {e}")))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(2);
            let manager = tokio::time::timeout(timeout, ConnectionManager::new_with_config(client.clone(), config))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| unreachable(&e))?;
            Target::Single { client, manager }
        };
        let key_prefix = match target {
            Target::Cluster(_) => format!("{{{}}}", settings.prefix),
            Target::Single { .. } => settings.prefix.clone(),
        };
        let handle = Self {
            target: Arc::new(target),
            prefix: settings.prefix.clone(),
            key_prefix,
            url: redacted,
            fired: Arc::default(),
        };
        handle
            .ping()
            .await
            .map_err(|e| ConfigError::unreachable("REDIS_URL", format!("{} does not answer PING: {e}", handle.url)))?;
        Ok(Some(handle))
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(*self.target, Target::Cluster(_))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `prefix:suffix`; on a cluster `{prefix}:suffix` (one hash slot for every key).
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.key_prefix)
    }

    /// A clone of the shared multiplexed connection.
    pub fn conn(&self) -> RedisConn {
        match &*self.target {
            Target::Single { manager, .. } => RedisConn::Manager(manager.clone()),
            Target::Cluster(cluster) => RedisConn::Cluster(cluster.conn.clone()),
        }
    }

    /// A connection of its own without a response timeout, for blocking reads (`BLOCK`
    /// waits longer than a response timeout, and must not hold up anyone else's commands).
    pub async fn blocking_conn(&self) -> redis::RedisResult<RedisConn> {
        match &*self.target {
            Target::Single { client, .. } => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_response_timeout(None);
                let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
                // Named, so an operator (and a test) can tell these readers in CLIENT LIST. Best
                // effort: an ACL or a proxy may refuse CLIENT, and the reader works unnamed.
                let mut setname = redis::cmd("CLIENT");
                setname.arg("SETNAME").arg(blocking_name(self));
                if let Err(e) = setname.query_async::<()>(&mut conn).await {
                    tracing::debug!(error = %e, "CLIENT SETNAME refused; the queue reader stays unnamed");
                }
                Ok(RedisConn::Plain(conn))
            }
            Target::Cluster(cluster) => {
                let client = &cluster.client;
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(Duration::from_secs(5))
                    .set_response_timeout(Duration::from_secs(3600));
                Ok(RedisConn::Cluster(client.get_async_connection_with_config(config).await?))
            }
        }
    }

    /// A Pub/Sub connection. On a cluster, any node will do: a `PUBLISH` reaches the
    /// subscribers of every node; the first node that answers is taken.
    pub async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        match &*self.target {
            Target::Single { client, .. } => client.get_async_pubsub().await,
            Target::Cluster(cluster) => {
                let mut last = None;
                for node in &cluster.nodes {
                    match redis::Client::open(node.as_str()) {
                        Ok(client) => match client.get_async_pubsub().await {
                            Ok(pubsub) => return Ok(pubsub),
                            Err(e) => last = Some(e),
                        },
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no cluster node"))))
            }
        }
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
        // A cluster answers INFO from every node (a map by node): any node's will do.
        let info = match redis::cmd("INFO").arg("server").query_async::<redis::Value>(&mut conn).await? {
            redis::Value::Map(nodes) => nodes.into_iter().next().map(|(_, v)| v).unwrap_or(redis::Value::Nil),
            other => other,
        };
        let info: String = redis::from_redis_value(info)?;
        let version =
            info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("unknown").trim().to_string();
        Ok(format!("Redis {version}"))
    }
}

async fn fire_loop(mut conn: RedisConn, mut rx: mpsc::UnboundedReceiver<redis::Cmd>) {
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
