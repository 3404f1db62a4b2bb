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
    /// The next claim candidate: the oldest due, unleased task whose user is under the
    /// limit ($2). SQLite runs one writer at a time, so nothing is skipped.
    const CLAIM_NEXT_SQL: &'static str = "SELECT q.task_id, q.user_id, q.available_at, q.lease_until
         FROM task_queue q
         WHERE q.available_at <= $1 AND (q.lease_until IS NULL OR q.lease_until < $1)
           AND ($2 = 0 OR (SELECT COUNT(*) FROM task_queue r WHERE r.user_id = q.user_id AND r.lease_until >= $1) < $2)
         ORDER BY q.available_at LIMIT 1";
    /// The given task's row.
    const CLAIM_ONE_SQL: &'static str =
        "SELECT task_id, user_id, available_at, lease_until FROM task_queue WHERE task_id = $1";
    /// A new queue row's place in line (relative order is all that counts).
    const QUEUE_NEXT_SEQ: &'static str = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM task_queue)";
    /// A step state with a JSON object merged in.
    const STATE_MERGE: &'static str = "json_patch(state, $3)";
    /// A step's name in its tool's config ($1 tool, $2 step id).
    const STEP_NAME_SQL: &'static str =
        "SELECT json_extract(s.value, '$.name') FROM tools t, json_each(t.config, '$.steps') s
         WHERE t.id = $1 AND json_extract(s.value, '$.id') = $2";

    /// The write transaction already excludes every other writer.
    async fn lock_user_queue_on(_conn: &mut sqlx::SqliteConnection, _user_id: uuid::Uuid) -> StoreResult<()> {
        Ok(())
    }
}

super::task_queries::task_queries!(SqliteStore, sqlx::Sqlite);

impl SqliteStore {
    /// Submits in the group-committed writer: the statements of `task_submit_tx`, sent to
    /// SQLite in two calls instead of one per statement (every call is a hand-off to
    /// sqlx's SQLite thread and back, and every write in the process waits on this writer):
    /// the reservation, whose answer decides, then every insert at once.
    pub async fn task_submit(
        &self,
        new: &super::NewTask,
    ) -> Result<(super::TaskRow, super::Recorded), super::LedgerError> {
        let new = new.clone();
        self.write(move |c| {
            Box::pin(async move {
                use sqlx::{FromRow, Row};
                let now = super::now();
                let after = if new.cost > 0 {
                    let updated = sqlx::query_as::<_, super::CreditsRow>(
                        super::sql::ledger::CREDITS_RESERVE_NEW_ON_UPDATE_CREDITS,
                    )
                    .bind(new.user_id)
                    .bind(new.cost)
                    .bind(now)
                    .fetch_optional(&mut *c)
                    .await?;
                    let Some(after) = updated else {
                        let available = Self::credits_row_on(&mut *c, new.user_id).await?.available();
                        return Err(super::LedgerError::Insufficient { available });
                    };
                    Some(after)
                } else {
                    None
                };
                let reference = new.id.to_string();
                let mut query = sqlx::query(sqlx::AssertSqlSafe(submit_sql(after.is_some(), new.steps.len())))
                    .bind(new.id)
                    .bind(new.user_id)
                    .bind(new.tool_id)
                    .bind(new.cost)
                    .bind(new.parent_task_id)
                    .bind(new.steps.first())
                    .bind(new.run_all_steps)
                    .bind(now)
                    .bind(&new.trace_parent)
                    .bind(&new.webhook_url)
                    .bind(uuid::Uuid::now_v7())
                    .bind(&reference)
                    .bind(uuid::Uuid::now_v7())
                    .bind(after.as_ref().map(|a| a.balance))
                    .bind(after.as_ref().map(|a| a.reserved_balance))
                    .bind(format!("reserved for {reference}"))
                    .bind(uuid::Uuid::now_v7())
                    .bind(sqlx::types::Json(&new.input));
                for step in &new.steps {
                    query = query.bind(uuid::Uuid::now_v7()).bind(step);
                }
                let rows = query.fetch_all(&mut *c).await?;
                let [task, event] = rows.as_slice() else {
                    return Err(super::StoreError::Other(sqlx::Error::Protocol(format!(
                        "a submit returned {} rows, not the task and its event",
                        rows.len()
                    )))
                    .into());
                };
                let task = super::TaskRow::from_row(task)?;
                let data: sqlx::types::Json<serde_json::Value> = event.try_get("data")?;
                Ok((task, super::Recorded { seq: 1, kind: super::EventKind::Queued, data: data.0 }))
            })
        })
        .await
    }

    pub async fn task_full(&self, id: uuid::Uuid) -> StoreResult<Option<super::TaskFull>> {
        let Some(task) = self.task_get(id).await? else { return Ok(None) };
        let payload = self.task_payload(id).await?;
        let steps = self.task_steps(id).await?;
        let queue_position =
            if task.status == super::TaskStatus::Queued { self.queue_position(id).await? } else { None };
        Ok(Some(super::TaskFull { task, payload, steps, queue_position }))
    }

    pub async fn task_step_begin(
        &self,
        task_id: uuid::Uuid,
        step_id: &str,
        first_in_run: bool,
        event: serde_json::Value,
    ) -> StoreResult<Option<super::Recorded>> {
        self.task_step_begin_tx(task_id, step_id, first_in_run, event).await
    }

    pub async fn task_finish(
        &self,
        id: uuid::Uuid,
        end: &super::TaskEnd<'_>,
        unpark: i64,
    ) -> Result<super::Finished, super::LedgerError> {
        self.task_finish_tx(id, end, unpark).await
    }

    pub async fn queue_claim(
        &self,
        only: Option<uuid::Uuid>,
        lease: Duration,
        per_user: u32,
        max_attempts: u32,
    ) -> StoreResult<super::Claim> {
        self.queue_claim_tx(only, lease, per_user, max_attempts).await
    }
}

/// The inserts of a submit, as one string of statements for SQLite (see
/// `SqliteStore::task_submit`; the same rows as `task_submit_tx`). Parameters: $1 task id,
/// $2 user, $3 tool, $4 cost, $5 parent, $6 first step, $7 run all steps, $8 now, $9 trace
/// parent, $10 webhook URL, $11 reservation id, $12 reference, $13 ledger row id, $14/$15
/// balance and reserved after the reservation, $16 description, $17 payload id, $18 input,
/// then an id and a step id per step. Rows back: the task, then the `queued` event's data.
fn submit_sql(reserved: bool, steps: usize) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(2048);
    if reserved {
        sql.push_str(
            "INSERT INTO credit_reservations (id, user_id, reference_id, amount, created_at) VALUES ($11, $2, $12, $4, $8);
             INSERT INTO credit_transactions
                 (id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at)
                 VALUES ($13, $2, 'reserve', 0, $14, $4, $15, $12, $16, $8);\n",
        );
    }
    sql.push_str(super::sql::tasks::TASK_SUBMIT_TX_INSERT_TASKS);
    sql.push_str(
        ";\nINSERT INTO task_payloads (id, task_id, input, created_at, updated_at) VALUES ($17, $1, $18, $8, $8);\n",
    );
    for i in 0..steps {
        let _ = writeln!(
            sql,
            "INSERT INTO task_steps (id, task_id, step_id, position, created_at, updated_at) VALUES (${}, $1, ${}, {i}, $8, $8);",
            19 + 2 * i,
            20 + 2 * i
        );
    }
    let _ = write!(
        sql,
        "INSERT INTO task_queue (task_id, user_id, available_at, created_at, seq) VALUES ($1, $2, $8, $8, {});
         INSERT INTO task_events (task_id, seq, type, data, created_at)
             SELECT $1, 1, 'queued',
                    json_object('position', MAX(q.seq - COALESCE((SELECT MIN(w.seq) FROM task_queue w WHERE w.lease_until IS NULL), q.seq), 0),
                                'type', 'queued'),
                    $8
               FROM task_queue q WHERE q.task_id = $1
             RETURNING data",
        SqliteStore::QUEUE_NEXT_SEQ
    );
    sql
}
