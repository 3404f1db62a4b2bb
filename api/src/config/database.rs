//! `[database]` and `[redis]`: which engines hold the state.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use super::section::{at_least, section};

section! {
    /// The relational database.
    pub struct DatabaseLayer => DatabaseSettings in "database" {
        url: SecretString {
            env: "DATABASE_URL",
            shown: "sqlite in data_dir",
            check: |url: &SecretString| parse_database_url(url.expose_secret()).map(|_| ()).map_err(|e| e.problem),
            help: "postgres://… for scale-out, sqlite://… for a specific file",
        },
        max_connections: u32 {
            env: "FUNMAGIC_DATABASE_MAX_CONNECTIONS",
            default: 10u32,
            check: at_least(1),
            help: "connection pool size",
        },
        connect_timeout_secs: u64 {
            env: "FUNMAGIC_DATABASE_CONNECT_TIMEOUT_SECS",
            default: 5u64,
            check: at_least(1),
            help: "give up connecting after this long",
        },
        pooler: bool {
            env: "FUNMAGIC_DATABASE_POOLER",
            default: false,
            help: "DATABASE_URL is a transaction-pooling pooler's (PgBouncer pool_mode=transaction with server_reset_query=DEALLOCATE ALL, server_reset_query_always=1): every statement runs in its own transaction; migrations are checked, not applied, at start (run `funmagic-server migrate` against PostgreSQL directly)",
        },
    }
}

section! {
    /// Redis: when set, the queue, events, caches and limits are shared between processes.
    pub struct RedisLayer => RedisSettings in "redis" {
        url: SecretString {
            env: "REDIS_URL",
            shown: "(unset: embedded queue)",
            check: |url: &SecretString| {
                for url in url.expose_secret().split(',').map(str::trim) {
                    if !["redis://", "rediss://", "redis+unix://"].iter().any(|s| url.starts_with(s)) {
                        return Err("must start with redis://, rediss:// or redis+unix:// (several, comma-separated, for a Redis Cluster)".to_string());
                    }
                }
                Ok(())
            },
            help: "redis://… enables the Redis queue, events, caches and limits; several comma-separated node URLs mean a Redis Cluster",
        },
        cluster: bool {
            env: "FUNMAGIC_REDIS_CLUSTER",
            default: false,
            help: "REDIS_URL is a Redis Cluster's node even when it names one (several URLs always mean a cluster); every key then carries the prefix as a hash tag, so the keys of one script or transaction share a slot",
        },
        prefix: String {
            env: "FUNMAGIC_REDIS_PREFIX",
            default: "funmagic",
            help: "prefix of every Redis key",
        },
    }
}

/// Which database engine a URL (or its absence) selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    Postgres(String),
    Sqlite(PathBuf),
}

pub(super) fn parse_database_url(url: &str) -> Result<DatabaseTarget, ConfigError> {
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
