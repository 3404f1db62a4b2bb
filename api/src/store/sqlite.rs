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
    /// The one writer of the task hot path (group commit; see `writer.rs`).
    writer: super::writer::Writer,
}

impl SqliteStore {
    pub async fn connect(path: &Path, max_connections: u32, timeout: Duration) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Writers outside the group-committing writer wait their turn rather than fail:
            // contention is never an error a client sees.
            .busy_timeout(timeout.max(Duration::from_secs(60)));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(timeout.max(Duration::from_secs(30)))
            .connect_with(options.clone())
            .await?;
        let writer = super::writer::Writer::start(options).await?;
        Ok(Self { pool, writer })
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
        let version: String = sqlx::query_scalar("SELECT sqlite_version()").fetch_one(&self.pool).await?;
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
    /// Deletes an account (see `delete_account_writes!`) in one write transaction, in which
    /// the super admin count it checks cannot change.
    pub async fn user_delete_account(&self, user_id: uuid::Uuid) -> StoreResult<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let supers: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM users WHERE role = 'super_admin'").fetch_all(&mut *tx).await?;
        if supers.len() == 1 && supers[0] == user_id {
            return Err(StoreError::Constraint("last_super_admin".into()));
        }
        let hashes = super::auth_queries::delete_account_writes!(tx, user_id, super::now());
        tx.commit().await?;
        Ok(hashes)
    }

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
        .await?;
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

    /// Runs `f` in a write transaction of the group-committing writer (see `writer.rs`):
    /// committed when this returns `Ok`, rolled back when `f` fails.
    pub(crate) async fn write<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: for<'c> FnOnce(&'c mut sqlx::SqliteConnection) -> futures::future::BoxFuture<'c, Result<R, E>>
            + Send
            + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.writer.write(f).await
    }

    /// SQLite holds the database write lock for the whole `BEGIN IMMEDIATE` transaction.
    async fn lock_credits_on(_conn: &mut sqlx::SqliteConnection, _user_id: uuid::Uuid) -> StoreResult<()> {
        Ok(())
    }
}

super::ledger_queries::ledger_queries!(SqliteStore, sqlx::Sqlite);

impl SqliteStore {
    /// The reservation's first statement is its write: SQLite takes the write lock there,
    /// so the quota it checks cannot change underneath it.
    async fn lock_user_storage_on(_conn: &mut sqlx::SqliteConnection, _user_id: uuid::Uuid) -> StoreResult<()> {
        Ok(())
    }
}

super::asset_queries::asset_queries!(SqliteStore, sqlx::Sqlite);

super::tool_queries::tool_queries!(SqliteStore);

super::content_queries::content_queries!(SqliteStore);
super::webhook_queries::webhook_queries!(SqliteStore);

impl SqliteStore {
    /// A new queue row's place in line (relative order is all that counts).
    const QUEUE_NEXT_SEQ: &'static str = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM task_queue)";
    /// A step state with a JSON object merged in.
    const STATE_MERGE: &'static str = "json_patch(state, $3)";
}

super::task_queries::task_queries!(SqliteStore, sqlx::Sqlite);

impl SqliteStore {
    /// Submits in the group-committed writer, whole on its connection (`sqlite_sync::submit`:
    /// the rows of `task_submit_tx`).
    pub async fn task_submit(
        &self,
        new: &super::NewTask,
    ) -> Result<(super::TaskRow, super::Recorded), super::LedgerError> {
        let new = new.clone();
        self.writer.write_sync(move |c| super::sqlite_sync::submit(c, &new)).await
    }

    /// Up to `max` due tasks claimed in one transaction of the writer, whole on its
    /// connection (`sqlite_sync::claim_many`).
    pub async fn queue_claim_many(
        &self,
        lease: Duration,
        per_user: u32,
        max_attempts: u32,
        max: usize,
    ) -> StoreResult<Vec<Box<super::ClaimedTask>>> {
        self.writer.write_sync(move |c| super::sqlite_sync::claim_many(c, lease, per_user, max_attempts, max)).await
    }

    pub async fn task_full(&self, id: uuid::Uuid) -> StoreResult<Option<super::TaskFull>> {
        let Some(task) = self.task_get(id).await? else { return Ok(None) };
        let payload = self.task_payload(id).await?;
        let steps = self.task_steps(id).await?;
        let queue_position =
            if task.status == super::TaskStatus::Queued { self.queue_position(id).await? } else { None };
        Ok(Some(super::TaskFull { task, payload, steps, queue_position }))
    }

    pub async fn task_stream_start(&self, id: uuid::Uuid, after: i64) -> StoreResult<Option<super::TaskStreamStart>> {
        let Some(task) = self.task_get(id).await? else { return Ok(None) };
        let queue_seq = if task.status == super::TaskStatus::Queued { self.queue_seq(id).await? } else { None };
        // Separate reads here: the counter before the history, so the history holds every
        // milestone up to it (later ones reach the stream through its channel).
        let event_seq = self.task_event_seqs(&[id]).await?.first().map_or(0, |(_, seq)| *seq);
        let events = self.task_events_after(id, after).await?;
        Ok(Some(super::TaskStreamStart { task, event_seq, queue_seq, events }))
    }

    pub async fn task_step_begin(
        &self,
        task_id: uuid::Uuid,
        step_id: &str,
        first_in_run: bool,
        event: serde_json::Value,
    ) -> StoreResult<Option<super::Recorded>> {
        let step_id = step_id.to_string();
        self.writer.write_sync(move |c| super::sqlite_sync::step_begin(c, task_id, &step_id, first_in_run, event)).await
    }

    pub async fn queue_claim(
        &self,
        only: Option<uuid::Uuid>,
        lease: Duration,
        per_user: u32,
        max_attempts: u32,
    ) -> StoreResult<super::Claim> {
        self.writer.write_sync(move |c| super::sqlite_sync::claim(c, only, lease, per_user, max_attempts)).await
    }

    /// Ends a task: what `Store::task_finish` promises, in one job of the writer run whole
    /// on its connection (`sqlite_sync::finish`).
    pub async fn task_finish(
        &self,
        id: uuid::Uuid,
        end: &super::TaskEnd<'_>,
        unpark: i64,
    ) -> Result<super::Finished, super::LedgerError> {
        let rest = super::sqlite_sync::FinishRest {
            status: end.status,
            output: end.output.cloned(),
            error: end.error.map(str::to_string),
            spend: end.spend,
            dead: end.dead_letter.cloned(),
            step: end.step.map(|s| (s.step_id.to_string(), serde_json::json!({ "output": s.output }))),
            events: end.events(),
            unpark,
        };
        self.writer.write_sync(move |c| super::sqlite_sync::finish(c, id, rest)).await
    }
}
