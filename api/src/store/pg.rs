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

impl PgStore {
    /// Locks every super admin row first, so two concurrent demotions cannot both pass
    /// the "not the last one" check.
    pub async fn user_set_role(&self, user_id: uuid::Uuid, role: super::Role) -> StoreResult<super::UserRow> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from_sqlx)?;
        let supers: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM users WHERE role = 'super_admin' ORDER BY id FOR UPDATE")
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
        let current: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        let current = current.ok_or(StoreError::NotFound)?;
        if current == "super_admin" && role != super::Role::SuperAdmin && supers.len() <= 1 {
            return Err(StoreError::Constraint("last_super_admin".into()));
        }
        let user = sqlx::query_as::<_, super::UserRow>(concat!(
            "UPDATE users SET role = $2, updated_at = $3 WHERE id = $1 RETURNING ",
            user_columns!()
        ))
        .bind(user_id)
        .bind(role.as_str())
        .bind(super::now())
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(user)
    }
}

super::auth_queries::auth_queries!(PgStore);

impl PgStore {
    /// A transaction for writes.
    pub(crate) async fn write_tx(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(StoreError::from_sqlx)
    }

    /// Row-locks the user's credits row for the rest of the transaction.
    async fn lock_credits_on(conn: &mut sqlx::PgConnection, user_id: uuid::Uuid) -> StoreResult<()> {
        sqlx::query("SELECT 1 FROM credits WHERE user_id = $1 FOR UPDATE")
            .bind(user_id)
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(StoreError::from_sqlx)
    }
}

super::ledger_queries::ledger_queries!(PgStore, sqlx::Postgres);

super::asset_queries::asset_queries!(PgStore);

super::tool_queries::tool_queries!(PgStore);

super::content_queries::content_queries!(PgStore);

impl PgStore {
    /// The claim candidate: the oldest due, unleased task whose user is under the limit, or
    /// (`$3`) one given task; rows another worker is claiming right now are skipped, so
    /// workers never wait on each other.
    const CLAIM_CANDIDATE_SQL: &'static str = "SELECT q.task_id, t.user_id, q.available_at, q.lease_until
         FROM task_queue q JOIN tasks t ON t.id = q.task_id
         WHERE ($3::uuid IS NULL AND q.available_at <= $1 AND (q.lease_until IS NULL OR q.lease_until < $1)
                AND ($2 = 0 OR (SELECT COUNT(*) FROM task_queue r JOIN tasks u ON u.id = r.task_id
                                WHERE u.user_id = t.user_id AND r.lease_until >= $1) < $2))
            OR q.task_id = $3
         ORDER BY q.available_at LIMIT 1 FOR UPDATE OF q SKIP LOCKED";

    /// Serializes claims of one user's tasks until the transaction ends.
    async fn lock_user_queue_on(conn: &mut sqlx::PgConnection, user_id: uuid::Uuid) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 7))")
            .bind(user_id)
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(StoreError::from_sqlx)
    }
}

super::task_queries::task_queries!(PgStore, sqlx::Postgres);
