//! The SQLite engine (embedded default): one file in the data dir, WAL mode, foreign keys on.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

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

    /// The write transaction already excludes every other writer.
    async fn lock_user_queue_on(_conn: &mut sqlx::SqliteConnection, _user_id: uuid::Uuid) -> StoreResult<()> {
        Ok(())
    }
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

    pub async fn task_step_begin(
        &self,
        task_id: uuid::Uuid,
        step_id: &str,
        first_in_run: bool,
        event: serde_json::Value,
    ) -> StoreResult<Option<super::Recorded>> {
        let step_id = step_id.to_string();
        self.write(move |c| {
            Box::pin(async move { Self::step_begin_on(c, task_id, &step_id, first_in_run, event, super::now()).await })
        })
        .await
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

    /// The lease and what a run needs, in one call (`$1` task, `$2` lease end). Rows, told
    /// apart by `k`: `lease` (the queue row's runs), `task`, `input` (with the tool's
    /// version), then each `step` with its name in the tool's config.
    const CLAIM_TAKE_SQL: &'static str =
        "UPDATE task_queue SET lease_until = $2, attempts = attempts + 1, parked = FALSE
         WHERE task_id = $1 RETURNING 'lease' AS k, attempts;
         SELECT 'task' AS k, id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, attempts,
                cancel_requested, run_all_steps, created_at, updated_at, started_at, completed_at, trace_parent
           FROM tasks WHERE id = $1;
         SELECT 'input' AS k, p.input, t.updated_at
           FROM task_payloads p JOIN tasks tk ON tk.id = p.task_id JOIN tools t ON t.id = tk.tool_id
          WHERE p.task_id = $1;
         SELECT 'step' AS k, s.step_id, s.position, s.status, s.state, s.started_at, s.completed_at,
                (SELECT json_extract(j.value, '$.name')
                   FROM tasks tk JOIN tools t ON t.id = tk.tool_id, json_each(t.config, '$.steps') j
                  WHERE tk.id = $1 AND json_extract(j.value, '$.id') = s.step_id) AS name
           FROM task_steps s WHERE s.task_id = $1 ORDER BY s.position";

    /// One claim in the caller's transaction, in three calls to SQLite: the candidate, then
    /// its lease with everything the run needs (`CLAIM_TAKE_SQL`), then (when the run may go
    /// on: within `max_attempts`, not ended or to be cancelled) the start of its first step
    /// not completed yet. Each call is a hand-off to sqlx's SQLite thread and back, made by
    /// the one writer that every write in the process waits for.
    async fn claim_on(
        c: &mut sqlx::SqliteConnection,
        only: Option<uuid::Uuid>,
        lease: Duration,
        per_user: u32,
        max_attempts: u32,
    ) -> StoreResult<super::Claim> {
        use super::Claim;
        use sqlx::{FromRow, Row};
        let now = super::now();
        // The next due task is chosen within the limit, in this same write transaction; a
        // given one is counted again.
        let task_id = match Self::claim_candidate_on(&mut *c, only, per_user, only.is_some(), now).await? {
            Ok(task_id) => task_id,
            Err(answer) => return Ok(answer),
        };
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60));
        let rows = sqlx::query(Self::CLAIM_TAKE_SQL).bind(task_id).bind(until).fetch_all(&mut *c).await?;
        let (mut attempts, mut task, mut input) = (None, None, None);
        let mut steps = Vec::new();
        let mut names = Vec::new();
        for row in &rows {
            match row.try_get::<&str, _>("k")? {
                "lease" => attempts = Some(row.try_get::<i32, _>("attempts")?),
                "task" => task = Some(super::TaskRow::from_row(row)?),
                "input" => {
                    let value: sqlx::types::Json<serde_json::Value> = row.try_get("input")?;
                    input = Some((value.0, row.try_get::<DateTime<Utc>, _>("updated_at")?));
                }
                _ => {
                    names.push(row.try_get::<Option<String>, _>("name")?);
                    steps.push(super::TaskStepRow::from_row(row)?);
                }
            }
        }
        let (Some(attempts), Some(task), Some((input, tool_updated_at))) = (attempts, task, input) else {
            // A queue row whose task is gone: as if its read had found nothing.
            return Err(StoreError::NotFound);
        };
        let mut started = None;
        let runnable = !task.is_terminal() && !task.cancel_requested;
        if u32::try_from(attempts).is_ok_and(|a| a <= max_attempts)
            && runnable
            && let Some(i) = steps.iter().position(|s| s.status != super::StepStatus::Completed)
        {
            let step_id = steps[i].step_id.clone();
            let name = names[i].clone().unwrap_or_else(|| step_id.clone());
            let data = serde_json::json!({ "stepId": step_id, "stepName": name });
            if let Some(event) = Self::step_begin_on(&mut *c, task_id, &step_id, true, data, now).await? {
                started = Some((step_id, event));
            }
        }
        Ok(Claim::Claimed(Box::new(super::ClaimedTask { task, attempts, input, steps, tool_updated_at, started })))
    }

    /// A step starts, in one call: the task's update decides (its counter is the only row
    /// back); the `step_started` event and the step's own update follow only if the one
    /// before them changed a row (`changes()`). `$1` task, `$2` step, `$3` now, `$4` the
    /// event's data, `$5` its kind.
    const STEP_BEGIN_SQL: [&'static str; 2] = [
        "UPDATE tasks SET event_seq = event_seq + 1, updated_at = $3, status = 'running', current_step_id = $2
          WHERE id = $1 AND status IN ('queued', 'running') AND NOT cancel_requested RETURNING event_seq;
         INSERT INTO task_events (task_id, seq, type, data, created_at)
             SELECT $1, event_seq, $5, $4, $3 FROM tasks WHERE id = $1 AND changes() = 1;
         UPDATE task_steps SET status = 'running', started_at = COALESCE(started_at, $3), updated_at = $3
          WHERE task_id = $1 AND step_id = $2 AND changes() = 1",
        // The first step of a run: the run is counted and the task's start kept.
        "UPDATE tasks SET event_seq = event_seq + 1, updated_at = $3, status = 'running', current_step_id = $2,
                attempts = attempts + 1, started_at = COALESCE(started_at, $3)
          WHERE id = $1 AND status IN ('queued', 'running') AND NOT cancel_requested RETURNING event_seq;
         INSERT INTO task_events (task_id, seq, type, data, created_at)
             SELECT $1, event_seq, $5, $4, $3 FROM tasks WHERE id = $1 AND changes() = 1;
         UPDATE task_steps SET status = 'running', started_at = COALESCE(started_at, $3), updated_at = $3
          WHERE task_id = $1 AND step_id = $2 AND changes() = 1",
    ];

    /// A step starts: the task is running (its runs counted once per run, with
    /// `first_in_run`), the step is running, and `step_started` is recorded. `None` if the
    /// task has ended or is to be cancelled.
    async fn step_begin_on(
        c: &mut sqlx::SqliteConnection,
        task_id: uuid::Uuid,
        step_id: &str,
        first_in_run: bool,
        event: serde_json::Value,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<super::Recorded>> {
        let kind = super::EventKind::StepStarted;
        let data = super::event_data(kind, event);
        let seq: Vec<i64> = sqlx::query_scalar(Self::STEP_BEGIN_SQL[usize::from(first_in_run)])
            .bind(task_id)
            .bind(step_id)
            .bind(now)
            .bind(sqlx::types::Json(&data))
            .bind(kind)
            .fetch_all(&mut *c)
            .await?;
        Ok(seq.first().map(|&seq| super::Recorded { seq, kind, data }))
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
