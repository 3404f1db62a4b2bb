//! The SQLite engine (embedded default): one file in the data dir, WAL mode, foreign keys on.

use std::path::Path;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::shared::shared_queries;
use super::{Engine, StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(path: &Path, max_connections: u32, timeout: Duration) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(timeout.max(Duration::from_secs(5)));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn migrate(&self) -> StoreResult<Vec<i64>> {
        super::migrate::migrator(Engine::Sqlite)
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(sqlx::Error::Migrate(Box::new(e))))?;
        Ok(super::migrate::versions())
    }

    pub async fn ping(&self) -> StoreResult<String> {
        let version: String =
            sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&self.pool).await.map_err(StoreError::from_sqlx)?;
        Ok(format!("SQLite {version}"))
    }

    pub async fn table_names(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(
            "SELECT name FROM sqlite_master
             WHERE type = 'table' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from_sqlx)
    }
}

shared_queries!(SqliteStore);

impl SqliteStore {
    /// One statement: SQLite runs writers one at a time, so the count it checks cannot
    /// change underneath it.
    pub async fn user_set_role(&self, user_id: uuid::Uuid, role: super::Role) -> StoreResult<super::UserRow> {
        let updated = sqlx::query_as::<_, super::UserRow>(concat!(
            "UPDATE users SET role = $2, updated_at = $3
             WHERE id = $1
               AND ($2 = 'super_admin' OR role <> 'super_admin'
                    OR (SELECT COUNT(*) FROM users WHERE role = 'super_admin') > 1)
             RETURNING ",
            user_columns!()
        ))
        .bind(user_id)
        .bind(role.as_str())
        .bind(super::now())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from_sqlx)?;
        match updated {
            Some(user) => Ok(user),
            None if self.user_get(user_id).await?.is_some() => Err(StoreError::Constraint("last_super_admin".into())),
            None => Err(StoreError::NotFound),
        }
    }
}

super::auth_queries::auth_queries!(SqliteStore);

impl SqliteStore {
    /// `BEGIN IMMEDIATE`: takes the write lock up front, so a transaction that reads and
    /// then writes waits its turn instead of failing with SQLITE_BUSY on the upgrade.
    pub(crate) async fn write_tx(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(StoreError::from_sqlx)
    }

    /// SQLite holds the database write lock for the whole `BEGIN IMMEDIATE` transaction.
    async fn lock_credits_on(_conn: &mut sqlx::SqliteConnection, _user_id: uuid::Uuid) -> StoreResult<()> {
        Ok(())
    }
}

super::ledger_queries::ledger_queries!(SqliteStore, sqlx::Sqlite);

super::asset_queries::asset_queries!(SqliteStore);

super::tool_queries::tool_queries!(SqliteStore);

super::content_queries::content_queries!(SqliteStore);

impl SqliteStore {
    /// The claim candidate: the oldest due, unleased task whose user is under the limit, or
    /// (`$3`) one given task. SQLite runs one writer at a time, so nothing is skipped.
    const CLAIM_CANDIDATE_SQL: &'static str = "SELECT q.task_id, t.user_id, q.available_at, q.lease_until
         FROM task_queue q JOIN tasks t ON t.id = q.task_id
         WHERE ($3 IS NULL AND q.available_at <= $1 AND (q.lease_until IS NULL OR q.lease_until < $1)
                AND ($2 = 0 OR (SELECT COUNT(*) FROM task_queue r JOIN tasks u ON u.id = r.task_id
                                WHERE u.user_id = t.user_id AND r.lease_until >= $1) < $2))
            OR q.task_id = $3
         ORDER BY q.available_at LIMIT 1";

    /// The write transaction already excludes every other writer.
    async fn lock_user_queue_on(_conn: &mut sqlx::SqliteConnection, _user_id: uuid::Uuid) -> StoreResult<()> {
        Ok(())
    }
}

super::task_queries::task_queries!(SqliteStore, sqlx::Sqlite);
