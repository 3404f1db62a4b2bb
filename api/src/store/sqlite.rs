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

    /// Ends a task: what `Store::task_finish` promises, in two calls to SQLite. The first
    /// ends the task (if it had not ended), drops its queue row and reads the task's
    /// reservation (`FINISH_END_SQL`); the second writes the rest (`finish_on`).
    pub async fn task_finish(
        &self,
        id: uuid::Uuid,
        end: &super::TaskEnd<'_>,
        unpark: i64,
    ) -> Result<super::Finished, super::LedgerError> {
        let rest = FinishRest {
            status: end.status,
            output: end.output.cloned(),
            error: end.error.map(str::to_string),
            spend: end.spend,
            dead: end.dead_letter.cloned(),
            step: end.step.map(|s| (s.step_id.to_string(), serde_json::json!({ "output": s.output }))),
            events: end.events(),
            unpark,
        };
        self.write(move |c| Box::pin(Self::finish_on(c, id, rest))).await
    }

    /// `$1` task, `$2` events recorded, `$3` now, `$4` status, `$5` the reservation's
    /// reference. Rows, told apart by `k`: `ended` (the task's event counter, if it had not
    /// ended), `queue` (its queue row's user), `reservation`.
    const FINISH_END_SQL: &'static str =
        "UPDATE tasks SET event_seq = event_seq + $2, updated_at = $3, status = $4, completed_at = $3
          WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled') RETURNING 'ended' AS k, event_seq;
         DELETE FROM task_queue WHERE task_id = $1 RETURNING 'queue' AS k, user_id;
         SELECT 'reservation' AS k, user_id, amount, status FROM credit_reservations WHERE reference_id = $5";

    async fn finish_on(
        c: &mut sqlx::SqliteConnection,
        id: uuid::Uuid,
        rest: FinishRest,
    ) -> Result<super::Finished, super::LedgerError> {
        use sqlx::Row;
        let now = super::now();
        let reference = id.to_string();
        let rows = sqlx::query(Self::FINISH_END_SQL)
            .bind(id)
            .bind(rest.events.len() as i64)
            .bind(now)
            .bind(rest.status.as_str())
            .bind(&reference)
            .fetch_all(&mut *c)
            .await
            .map_err(StoreError::from_sqlx)?;
        let (mut last, mut queue_user, mut reservation) = (None, None, None);
        for row in &rows {
            match row.try_get::<&str, _>("k").map_err(StoreError::from_sqlx)? {
                "ended" => last = Some(row.try_get::<i64, _>("event_seq").map_err(StoreError::from_sqlx)?),
                "queue" => {
                    queue_user = row.try_get::<Option<uuid::Uuid>, _>("user_id").map_err(StoreError::from_sqlx)?
                }
                _ => {
                    let user: uuid::Uuid = row.try_get("user_id").map_err(StoreError::from_sqlx)?;
                    let amount: i64 = row.try_get("amount").map_err(StoreError::from_sqlx)?;
                    let status: String = row.try_get("status").map_err(StoreError::from_sqlx)?;
                    reservation = Some((user, amount, status == "pending"));
                }
            }
        }
        let mut finished = super::Finished::default();
        let Some(last) = last else { return Ok(finished) };
        finished.ended = true;
        let first = last - rest.events.len() as i64 + 1;
        finished.events = rest
            .events
            .into_iter()
            .enumerate()
            .map(|(i, (kind, data))| super::Recorded {
                seq: first + i as i64,
                kind,
                data: super::event_data(kind, data),
            })
            .collect();
        let mut call = OneCall::default();
        let task = call.arg(id)?;
        let at = call.arg(now)?;
        for event in &finished.events {
            let (seq, kind, data) =
                (call.arg(event.seq)?, call.arg(event.kind)?, call.arg(sqlx::types::Json(&event.data))?);
            call.push(format_args!(
                "INSERT INTO task_events (task_id, seq, type, data, created_at) VALUES ({task}, {seq}, {kind}, {data}, {at});"
            ));
        }
        if let Some((step_id, patch)) = &rest.step {
            let (step_id, patch) = (call.arg(step_id.as_str())?, call.arg(sqlx::types::Json(patch))?);
            call.push(format_args!(
                "UPDATE task_steps SET status = 'completed', state = json_patch(state, {patch}), completed_at = {at}, updated_at = {at}
                  WHERE task_id = {task} AND step_id = {step_id};"
            ));
        }
        let (output, error) =
            (call.arg(rest.output.as_ref().map(sqlx::types::Json))?, call.arg(rest.error.as_deref())?);
        call.push(format_args!(
            "UPDATE task_payloads SET output = {output}, error = {error}, updated_at = {at} WHERE task_id = {task};"
        ));
        // The settlement (`credits_resolve_on`'s rows). Free tools reserve nothing.
        if let Some((user, amount, pending)) = reservation {
            let spend = rest.spend.unwrap_or(amount);
            if spend < 0 || spend > amount {
                return Err(super::LedgerError::SpendExceedsReservation);
            }
            if pending {
                Self::settle(&mut call, &at, user, &reference, amount, spend)?;
            }
        }
        if let Some(dead) = &rest.dead {
            let (reason, error, attempts) =
                (call.arg(dead.reason)?, call.arg(dead.error.as_str())?, call.arg(dead.attempts)?);
            call.push(format_args!(
                "INSERT INTO task_dead_letters (task_id, user_id, reason, error, attempts, created_at)
                 SELECT id, user_id, {reason}, {error}, {attempts}, {at} FROM tasks WHERE id = {task};"
            ));
        }
        if let Some(user) = queue_user.filter(|_| rest.unpark > 0) {
            // One writer: a claim refused at the limit has parked before this runs.
            let (user, n) = (call.arg(user)?, call.arg(rest.unpark)?);
            call.push(format_args!(
                "UPDATE task_queue SET parked = FALSE
                  WHERE task_id IN (SELECT task_id FROM task_queue WHERE user_id = {user} AND parked ORDER BY seq LIMIT {n})
                 RETURNING task_id;"
            ));
        }
        finished.unparked = call.fetch_scalars(c).await?;
        Ok(finished)
    }

    /// A pending reservation resolved: `spend` spent, the rest released, each booked.
    fn settle(
        call: &mut OneCall,
        at: &str,
        user: uuid::Uuid,
        reference: &str,
        amount: i64,
        spend: i64,
    ) -> StoreResult<()> {
        let release = amount - spend;
        let (user, reference_arg) = (call.arg(user)?, call.arg(reference.to_string())?);
        let (spend_arg, amount_arg) = (call.arg(spend)?, call.arg(amount)?);
        call.push(format_args!(
            "UPDATE credit_reservations SET status = 'resolved', spent = {spend_arg}, resolved_at = {at}
              WHERE reference_id = {reference_arg} AND status = 'pending';
             UPDATE credits SET balance = balance - {spend_arg}, reserved_balance = reserved_balance - {amount_arg},
                    lifetime_spent = lifetime_spent + {spend_arg}, updated_at = {at}
              WHERE user_id = {user};"
        ));
        // (kind, amount, reserved delta, reserved after = the balance's + this, description)
        let mut books = Vec::with_capacity(2);
        if spend > 0 {
            books.push((super::TransactionType::Spend, -spend, -spend, release, format!("spent on {reference}")));
        }
        if release > 0 {
            books.push((super::TransactionType::Refund, 0, -release, 0, format!("released from {reference}")));
        }
        for (kind, amount, delta, above, description) in books {
            let (row, kind) = (call.arg(uuid::Uuid::now_v7())?, call.arg(kind.as_str())?);
            let (amount, delta, above, description) =
                (call.arg(amount)?, call.arg(delta)?, call.arg(above)?, call.arg(description)?);
            call.push(format_args!(
                "INSERT INTO credit_transactions
                     (id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at)
                 SELECT {row}, {user}, {kind}, {amount}, balance, {delta}, reserved_balance + {above}, {reference_arg}, {description}, {at}
                   FROM credits WHERE user_id = {user};"
            ));
        }
        Ok(())
    }
}

/// What a task's end writes after its first call (see `SqliteStore::task_finish`).
struct FinishRest {
    status: super::TaskStatus,
    output: Option<serde_json::Value>,
    error: Option<String>,
    spend: Option<i64>,
    dead: Option<super::DeadLetter>,
    /// The last step folded in: its id and the patch of its state.
    step: Option<(String, serde_json::Value)>,
    /// The events to record, in order, with their data as recorded.
    events: Vec<(super::EventKind, serde_json::Value)>,
    unpark: i64,
}

/// Statements sent to SQLite as one call, their arguments numbered (`$n`) as they are added.
#[derive(Default)]
struct OneCall {
    sql: String,
    args: sqlx::sqlite::SqliteArguments,
}

impl OneCall {
    /// Adds an argument; its placeholder.
    fn arg<'t, T>(&mut self, value: T) -> StoreResult<String>
    where
        T: sqlx::Encode<'t, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    {
        use sqlx::Arguments;
        self.args.add(value).map_err(|e| StoreError::Other(sqlx::Error::Encode(e)))?;
        Ok(format!("${}", self.args.len()))
    }

    fn push(&mut self, statement: std::fmt::Arguments<'_>) {
        use std::fmt::Write;
        let _ = self.sql.write_fmt(statement);
        self.sql.push('\n');
    }

    /// Runs every statement; the first column of each row any of them returned.
    async fn fetch_scalars<T>(self, c: &mut sqlx::SqliteConnection) -> StoreResult<Vec<T>>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + Send + Unpin,
    {
        Ok(sqlx::query_scalar_with(sqlx::AssertSqlSafe(self.sql), self.args).fetch_all(c).await?)
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
