//! The PostgreSQL engine (scale-out mode).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use super::shared::shared_queries;
use super::{Engine, StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32, timeout: Duration) -> Result<Self, sqlx::Error> {
        let options: PgConnectOptions = url
            .parse::<PgConnectOptions>()?
            .application_name("funmagic")
            .log_statements(tracing::log::LevelFilter::Trace);
        // One direct connection first: it reports the real cause (refused, auth, unknown
        // database) where a pool would only say it timed out.
        let probe = tokio::time::timeout(timeout, options.connect()).await.map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out"))
        })??;
        sqlx::Connection::close(probe).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn migrate(&self) -> StoreResult<Vec<i64>> {
        super::migrate::migrator(Engine::Postgres)
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(sqlx::Error::Migrate(Box::new(e))))?;
        Ok(super::migrate::versions())
    }

    pub async fn ping(&self) -> StoreResult<String> {
        let version: String =
            sqlx::query_scalar("SHOW server_version").fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
        Ok(format!("PostgreSQL {version}"))
    }

    pub async fn table_names(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
               AND table_name NOT LIKE '\\_sqlx%'
             ORDER BY table_name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from_sqlx)
    }
}

shared_queries!(PgStore);
