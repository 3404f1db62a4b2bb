//! The PostgreSQL engine (scale-out mode).

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use super::shared::shared_queries;
use super::{Engine, StoreError, StoreResult};

#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: super::pg_pool::PgPoolHandle,
    /// Group commit of the hot path's calls (`pg_batch`), shared by the store's clones.
    batch: std::sync::Arc<Batchers>,
}

impl PgStore {
    /// `behind_pooler`: the URL is a transaction-pooling pooler's (see `pg_pool`).
    pub async fn connect(
        url: &str,
        max_connections: u32,
        timeout: Duration,
        behind_pooler: bool,
    ) -> Result<Self, sqlx::Error> {
        let mut options: PgConnectOptions = url
            .parse::<PgConnectOptions>()?
            .application_name("funmagic")
            .log_statements(tracing::log::LevelFilter::Trace);
        if behind_pooler {
            // No statement kept for reuse: it would live on one server connection only.
            options = options.statement_cache_capacity(0);
        }
        // TLS to a server on this machine protects nothing and costs every query on both
        // ends: unless the URL asks for an sslmode, loopback connections go without it
        // (elsewhere the driver's default, `prefer`, stands).
        if !url.contains("sslmode=") && is_loopback(options.get_host()) {
            options = options.ssl_mode(sqlx::postgres::PgSslMode::Disable);
        }
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
        Ok(Self { pool: super::pg_pool::PgPoolHandle::new(pool, behind_pooler), batch: Default::default() })
    }

    pub fn pool(&self) -> &PgPool {
        self.pool.inner()
    }

    pub async fn migrate(&self) -> StoreResult<Vec<i64>> {
        if self.pool.behind_pooler() {
            // The migrator holds a session-level advisory lock across transactions, which a
            // transaction pooler cannot keep: migrations need a direct connection.
            return Err(StoreError::Other(sqlx::Error::Configuration(
                "migrations need a direct connection to PostgreSQL, not through the pooler: run \
                 `funmagic-server migrate` with DATABASE_URL pointing at PostgreSQL itself and \
                 FUNMAGIC_DATABASE_POOLER unset"
                    .into(),
            )));
        }
        super::migrate::migrator(Engine::Postgres)
            .run(self.pool.inner())
            .await
            .map_err(|e| StoreError::Other(sqlx::Error::Migrate(Box::new(e))))?;
        Ok(super::migrate::versions())
    }

    pub async fn ping(&self) -> StoreResult<String> {
        let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&self.pool).await?;
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

/// Whether a host name or address is this machine (a Unix socket directory counts).
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.starts_with('/') || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

shared_queries!(PgStore);

impl PgStore {
    /// Deletes an account (see `delete_account_writes!`); the super admin rows are locked
    /// first, as for a demotion, so the last one cannot go.
    pub async fn user_delete_account(&self, user_id: uuid::Uuid) -> StoreResult<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        let supers: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM users WHERE role = 'super_admin' ORDER BY id FOR UPDATE")
                .fetch_all(&mut *tx)
                .await?;
        if supers.len() == 1 && supers[0] == user_id {
            return Err(StoreError::Constraint("last_super_admin".into()));
        }
        let hashes = super::auth_queries::delete_account_writes!(tx, user_id, super::now());
        tx.commit().await?;
        Ok(hashes)
    }

    /// Locks every super admin row first, so two concurrent demotions cannot both pass
    /// the "not the last one" check.
    pub async fn user_set_role(&self, user_id: uuid::Uuid, role: super::Role) -> StoreResult<super::UserRow> {
        let mut tx = self.pool.begin().await?;
        let supers: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM users WHERE role = 'super_admin' ORDER BY id FOR UPDATE")
                .fetch_all(&mut *tx)
                .await?;
        let current: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
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
        .await?;
        tx.commit().await?;
        Ok(user)
    }
}

super::auth_queries::auth_queries!(PgStore);

impl PgStore {
    /// A transaction for writes.
    pub(crate) async fn write_tx(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.pool.begin().await.map_err(StoreError::from_sqlx)
    }

    /// Runs `f` in a transaction: committed when this returns `Ok`, rolled back when `f`
    /// fails (the same contract as SQLite's group-committing writer).
    pub(crate) async fn write<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: for<'c> FnOnce(&'c mut sqlx::PgConnection) -> futures::future::BoxFuture<'c, Result<R, E>> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let mut tx = self.pool.begin().await.map_err(|e| E::from(StoreError::from_sqlx(e)))?;
        let result = f(&mut tx).await?;
        tx.commit().await.map_err(|e| E::from(StoreError::from_sqlx(e)))?;
        Ok(result)
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

impl PgStore {
    /// Serializes one user's storage reservations (quota check + insert) until the
    /// transaction ends: READ COMMITTED alone would let concurrent presigns all pass.
    async fn lock_user_storage_on(conn: &mut sqlx::PgConnection, user_id: uuid::Uuid) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 11))")
            .bind(user_id)
            .execute(conn)
            .await
            .map(|_| ())
            .map_err(StoreError::from_sqlx)
    }
}

super::asset_queries::asset_queries!(PgStore, sqlx::Postgres);

super::tool_queries::tool_queries!(PgStore);

super::content_queries::content_queries!(PgStore);
super::webhook_queries::webhook_queries!(PgStore);

impl PgStore {
    /// The next claim candidate: the oldest due, unleased task whose user is under the
    /// limit ($2); rows another worker is claiming right now are skipped, so workers never
    /// wait on each other.
    const CLAIM_NEXT_SQL: &'static str = "SELECT q.task_id, q.user_id, q.available_at, q.lease_until
         FROM task_queue q
         WHERE q.available_at <= $1 AND (q.lease_until IS NULL OR q.lease_until < $1)
           AND ($2 = 0 OR (SELECT COUNT(*) FROM task_queue r WHERE r.user_id = q.user_id AND r.lease_until >= $1) < $2)
         ORDER BY q.available_at LIMIT 1 FOR UPDATE OF q SKIP LOCKED";
    /// The given task's row, unless another worker is claiming it right now.
    const CLAIM_ONE_SQL: &'static str =
        "SELECT task_id, user_id, available_at, lease_until FROM task_queue WHERE task_id = $1 FOR UPDATE SKIP LOCKED";
    /// A new queue row's place in line.
    const QUEUE_NEXT_SEQ: &'static str = "nextval('task_queue_seq')";
    /// A step state with a JSON object merged in.
    const STATE_MERGE: &'static str = "state || $3";
    /// A step's name in its tool's config ($1 tool, $2 step id).
    const STEP_NAME_SQL: &'static str = "SELECT s->>'name' FROM tools t, jsonb_array_elements(t.config->'steps') s
         WHERE t.id = $1 AND s->>'id' = $2";

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

/// The claim and a step's start as PostgreSQL runs them in a transaction of the caller (the
/// next due task for workers without Redis, and tests); the hot path calls `fm_task_claim`
/// and `fm_task_step_begin` instead.
impl PgStore {
    /// Leases a due task for `lease`: the oldest one whose user runs fewer than
    /// `per_user` tasks (0 = no limit), or, with `only`, that one task (the Redis
    /// queue delivers ids). The per-user count is taken again under a per-user lock
    /// (an advisory lock), so the limit is exact; a
    /// given task refused at the limit is parked until one of its user's tasks ends.
    /// Returns, with the lease, everything a run needs (task, input, steps).
    pub async fn queue_claim_tx(
        &self,
        only: Option<uuid::Uuid>,
        lease: std::time::Duration,
        per_user: u32,
        max_attempts: u32,
    ) -> crate::store::StoreResult<crate::store::Claim> {
        self.write(move |c| Box::pin(Self::claim_on(c, only, lease, per_user, max_attempts))).await
    }

    /// What a claim would lease: the given task, or the next due one whose user is
    /// under the limit; `Err` with the answer when there is nothing to lease now
    /// (nothing due, leased to another worker, waiting for a retry). With
    /// `check_limit`, the candidate's user is counted again under the user's queue
    /// lock and, at the limit, the row is parked until one of the user's tasks ends.
    async fn claim_candidate_on(
        c: &mut sqlx::PgConnection,
        only: Option<uuid::Uuid>,
        per_user: u32,
        check_limit: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::StoreResult<Result<uuid::Uuid, crate::store::Claim>> {
        use crate::store::Claim;
        type Candidate =
            (uuid::Uuid, Option<uuid::Uuid>, chrono::DateTime<chrono::Utc>, Option<chrono::DateTime<chrono::Utc>>);
        let row: Option<Candidate> = match only {
            Some(id) => sqlx::query_as(Self::CLAIM_ONE_SQL).bind(id).fetch_optional(&mut *c).await,
            None => {
                sqlx::query_as(Self::CLAIM_NEXT_SQL).bind(now).bind(i64::from(per_user)).fetch_optional(&mut *c).await
            }
        }?;
        let (task_id, user_id) = match row {
            None => return Ok(Err(Claim::Empty)),
            Some((_, _, _, Some(lease_until))) if lease_until >= now => return Ok(Err(Claim::Busy)),
            Some((_, _, available_at, _)) if available_at > now => return Ok(Err(Claim::NotDue(available_at))),
            Some((task_id, user_id, _, _)) => (task_id, user_id),
        };
        if check_limit
            && per_user > 0
            && let Some(user_id) = user_id
        {
            Self::lock_user_queue_on(&mut *c, user_id).await?;
            let running: i64 = sqlx::query_scalar(crate::store::sql::tasks::CLAIM_RUNNING_OF_USER)
                .bind(user_id)
                .bind(now)
                .bind(task_id)
                .fetch_one(&mut *c)
                .await?;
            if running >= i64::from(per_user) {
                sqlx::query(crate::store::sql::tasks::CLAIM_PARK).bind(task_id).execute(&mut *c).await?;
                return Ok(Err(Claim::UserAtLimit));
            }
        }
        Ok(Ok(task_id))
    }

    /// Up to `max` due tasks claimed in one transaction (workers that read the table).
    pub async fn queue_claim_many(
        &self,
        lease: Duration,
        per_user: u32,
        max_attempts: u32,
        max: usize,
    ) -> StoreResult<Vec<Box<super::ClaimedTask>>> {
        self.write(move |c| {
            Box::pin(async move {
                let mut claimed = Vec::new();
                while claimed.len() < max {
                    match Self::claim_on(&mut *c, None, lease, per_user, max_attempts).await? {
                        super::Claim::Claimed(task) => claimed.push(task),
                        _ => break,
                    }
                }
                Ok(claimed)
            })
        })
        .await
    }

    /// One claim in the caller's transaction; when the run may go on (within
    /// `max_attempts`, not ended or to be cancelled) it also starts the first step not
    /// completed yet, so a run costs one transaction fewer.
    async fn claim_on(
        c: &mut sqlx::PgConnection,
        only: Option<uuid::Uuid>,
        lease: std::time::Duration,
        per_user: u32,
        max_attempts: u32,
    ) -> crate::store::StoreResult<crate::store::Claim> {
        use crate::store::Claim;
        let now = crate::store::now();
        let task_id = match Self::claim_candidate_on(&mut *c, only, per_user, true, now).await? {
            Ok(task_id) => task_id,
            Err(answer) => return Ok(answer),
        };
        let attempts: i32 = sqlx::query_scalar(crate::store::sql::tasks::CLAIM_LEASE)
            .bind(task_id)
            .bind(now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60)))
            .fetch_one(&mut *c)
            .await?;
        let task = sqlx::query_as::<_, crate::store::TaskRow>(crate::store::sql::tasks::TASK_GET)
            .bind(task_id)
            .fetch_one(&mut *c)
            .await?;
        let (input, tool_updated_at): (sqlx::types::Json<serde_json::Value>, chrono::DateTime<chrono::Utc>) =
            sqlx::query_as(crate::store::sql::tasks::CLAIM_INPUT_AND_TOOL_VERSION)
                .bind(task_id)
                .bind(task.tool_id)
                .fetch_one(&mut *c)
                .await?;
        let steps = sqlx::query_as::<_, crate::store::TaskStepRow>(crate::store::sql::tasks::TASK_STEPS)
            .bind(task_id)
            .fetch_all(&mut *c)
            .await?;
        let mut started = None;
        let runnable = !task.is_terminal() && !task.cancel_requested;
        if u32::try_from(attempts).is_ok_and(|a| a <= max_attempts)
            && runnable
            && let Some(step) = steps.iter().find(|s| s.status != crate::store::StepStatus::Completed)
        {
            let name: Option<String> = sqlx::query_scalar(Self::STEP_NAME_SQL)
                .bind(task.tool_id)
                .bind(&step.step_id)
                .fetch_optional(&mut *c)
                .await?
                .flatten();
            let data =
                serde_json::json!({ "stepId": step.step_id, "stepName": name.unwrap_or_else(|| step.step_id.clone()) });
            if let Some(event) = Self::step_begin_on(&mut *c, task_id, &step.step_id, true, data, now).await? {
                started = Some((step.step_id.clone(), event));
            }
        }
        Ok(Claim::Claimed(Box::new(crate::store::ClaimedTask {
            task,
            attempts,
            input: input.0,
            steps,
            tool_updated_at,
            started,
        })))
    }

    async fn step_begin_on(
        c: &mut sqlx::PgConnection,
        task_id: uuid::Uuid,
        step_id: &str,
        first_in_run: bool,
        event: serde_json::Value,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::StoreResult<Option<crate::store::Recorded>> {
        let set = if first_in_run {
            "status = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, $3), current_step_id = $4"
        } else {
            "status = 'running', current_step_id = $4"
        };
        let cond = "status IN ('queued', 'running') AND NOT cancel_requested";
        let Some(mut recorded) = Self::events_record_on(
            &mut *c,
            task_id,
            &[(crate::store::EventKind::StepStarted, event)],
            set,
            cond,
            step_id,
            now,
        )
        .await?
        else {
            return Ok(None);
        };
        sqlx::query(crate::store::sql::tasks::STEP_BEGIN_ON)
            .bind(task_id)
            .bind(step_id)
            .bind(now)
            .execute(&mut *c)
            .await?;
        Ok(recorded.pop())
    }
}

/// A task step as `jsonb_build_object` spells it (the claim and the detail read steps
/// together with their task).
#[derive(serde::Deserialize)]
struct StepJson {
    step_id: String,
    position: i32,
    status: super::StepStatus,
    state: serde_json::Value,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    completed_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<StepJson> for super::TaskStepRow {
    fn from(s: StepJson) -> Self {
        super::TaskStepRow {
            step_id: s.step_id,
            position: s.position,
            status: s.status,
            state: sqlx::types::Json(s.state),
            started_at: s.started_at,
            completed_at: s.completed_at,
        }
    }
}

/// Many task reads in one statement (`TaskFullOp`): `fm_task_reads` (migration 0022) reads
/// each task, its payload, its steps and (queued) its place in line by key, with a plan
/// made once per connection. A task that does not exist has no row; `ord` is its index
/// in the array, from 1. A lone read is a batch of one.
const TASK_FULL_BATCH_SQL: &str = "SELECT * FROM fm_task_reads($1)";

/// Many stream starts in one statement (`StreamStartOp`): `fm_task_stream_starts`
/// (migration 0022) reads each task, its place in line while queued and its milestones
/// after the cursor, by key, in one statement and so one snapshot (a terminal status comes
/// with its terminal event). Rows as `TASK_FULL_BATCH_SQL`'s.
const TASK_STREAM_START_BATCH_SQL: &str = "SELECT * FROM fm_task_stream_starts($1, $2)";

/// The task hot path on PostgreSQL: each operation is one call of a function from
/// `migrations/postgres/0008_hot_path.sql` — one round trip instead of a dozen — running
/// the same statements as the multi-statement transactions of `task_queries.rs`. Submits,
/// claims and task ends go through group commit (`pg_batch`): under load, many calls run
/// as one statement in one transaction.
impl PgStore {
    pub async fn task_submit(
        &self,
        new: &super::NewTask,
    ) -> Result<(super::TaskRow, super::Recorded), super::LedgerError> {
        let req = SubmitReq {
            new: new.clone(),
            step_ids: new.steps.iter().map(|_| uuid::Uuid::now_v7()).collect(),
            payload_id: uuid::Uuid::now_v7(),
            reservation_id: uuid::Uuid::now_v7(),
        };
        self.batch.submit.call(&self.pool, req).await?
    }

    pub async fn queue_claim(
        &self,
        only: Option<uuid::Uuid>,
        lease: Duration,
        per_user: u32,
        max_attempts: u32,
    ) -> StoreResult<super::Claim> {
        // The next due task (workers without Redis) is found by a scan: the transaction.
        let Some(task_id) = only else { return self.queue_claim_tx(only, lease, per_user, max_attempts).await };
        let req = ClaimReq { task_id, lease, per_user, max_attempts };
        self.batch.claim.call(&self.pool, req).await?
    }

    /// See `Store::queue_vacuum`. `SKIP_LOCKED`: a vacuum already running (autovacuum,
    /// another worker) is enough. Plain statements outside a transaction, so it also works
    /// through a transaction pooler.
    pub async fn queue_vacuum(&self, min_dead: i64) -> StoreResult<bool> {
        use sqlx::Row;
        let row = sqlx::raw_sql("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relid = 'task_queue'::regclass")
            .fetch_optional(self.pool.inner())
            .await?;
        let dead: i64 = row.map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
        if dead < min_dead {
            return Ok(false);
        }
        sqlx::raw_sql("VACUUM (SKIP_LOCKED) task_queue").execute(self.pool.inner()).await?;
        Ok(true)
    }

    /// Task reads (a task's detail view, what a client checks after a stream ends) arrive one
    /// per request; under load they are read many to a statement (`pg_batch`).
    pub async fn task_full(&self, id: uuid::Uuid) -> StoreResult<Option<super::TaskFull>> {
        Ok(self.batch.task_full.call(&self.pool, id).await??)
    }

    /// The statement that reads many tasks at once (public for tests and `EXPLAIN`).
    pub const TASK_FULL_BATCH_SQL: &str = TASK_FULL_BATCH_SQL;

    /// Many task reads as one statement, answered in order: what [`PgStore::task_full`]
    /// runs under load.
    pub async fn task_full_many(&self, ids: &[uuid::Uuid]) -> StoreResult<Vec<Option<super::TaskFull>>> {
        use super::pg_batch::BatchOp;
        let outs = TaskFullOp::batch((&self.pool).into(), ids).await?;
        Ok(outs.into_iter().collect::<Result<_, _>>()?)
    }

    /// Stream starts arrive one per opened stream; under load they are read many to a
    /// statement (`pg_batch`), like the writes of the hot path.
    pub async fn task_stream_start(&self, id: uuid::Uuid, after: i64) -> StoreResult<Option<super::TaskStreamStart>> {
        Ok(self.batch.stream_start.call(&self.pool, (id, after)).await??)
    }

    /// The statement that reads many stream starts at once (public for tests and `EXPLAIN`).
    pub const STREAM_START_BATCH_SQL: &str = TASK_STREAM_START_BATCH_SQL;

    /// Many stream starts (task, `after`) as one statement, answered in order: what
    /// [`PgStore::task_stream_start`] runs under load.
    pub async fn task_stream_start_many(
        &self,
        reqs: &[(uuid::Uuid, i64)],
    ) -> StoreResult<Vec<Option<super::TaskStreamStart>>> {
        use super::pg_batch::BatchOp;
        let outs = StreamStartOp::batch((&self.pool).into(), reqs).await?;
        Ok(outs.into_iter().collect::<Result<_, _>>()?)
    }

    pub async fn task_step_begin(
        &self,
        task_id: uuid::Uuid,
        step_id: &str,
        first_in_run: bool,
        mut event: serde_json::Value,
    ) -> StoreResult<Option<super::Recorded>> {
        if event.is_null() {
            event = serde_json::json!({});
        }
        event["type"] = super::EventKind::StepStarted.as_str().into();
        let seq: Option<i64> = sqlx::query_scalar("SELECT fm_task_step_begin($1, $2, $3, $4, $5)")
            .bind(task_id)
            .bind(step_id)
            .bind(first_in_run)
            .bind(sqlx::types::Json(&event))
            .bind(super::now())
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.map(|seq| super::Recorded { seq, kind: super::EventKind::StepStarted, data: event }))
    }

    pub async fn task_finish(
        &self,
        id: uuid::Uuid,
        end: &super::TaskEnd<'_>,
        unpark: i64,
    ) -> Result<super::Finished, super::LedgerError> {
        let events = end.events();
        let req = FinishReq {
            id,
            status: end.status.as_str(),
            output: end.output.cloned(),
            error: end.error.map(str::to_owned),
            spend: end.spend,
            events,
            step: end.step.map(|s| (s.step_id.to_owned(), serde_json::json!({ "output": s.output }))),
            dead_letter: end.dead_letter.map(|d| (d.reason, d.error.clone(), d.attempts)),
            unpark,
        };
        self.batch.finish.call(&self.pool, req).await?
    }
}

/// The group-committed calls of the hot path (`pg_batch`), one queue each.
#[derive(Debug, Default)]
pub(crate) struct Batchers {
    submit: super::pg_batch::Batcher<SubmitOp>,
    claim: super::pg_batch::Batcher<ClaimOp>,
    finish: super::pg_batch::Batcher<FinishOp>,
    stream_start: super::pg_batch::Batcher<StreamStartOp>,
    task_full: super::pg_batch::Batcher<TaskFullOp>,
}

/// Decodes one `fm_task_*` answer; a malformed one is that call's error alone.
fn decode<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, sqlx::Error> {
    serde_json::from_value(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Runs a batch statement and hands each request its answer: `parse` gets the request's
/// index (`ord` − 1: `WITH ORDINALITY` counts from 1) and its row; a request the
/// statement did not answer gets an error of its own.
async fn fetch_batch<'a, U, E: From<sqlx::Error>>(
    pool: super::pg_pool::BatchConn<'a>,
    query: sqlx::query::QueryAs<
        'a,
        sqlx::Postgres,
        (i64, sqlx::types::Json<serde_json::Value>),
        sqlx::postgres::PgArguments,
    >,
    n: usize,
    parse: impl Fn(usize, serde_json::Value) -> Result<U, E>,
) -> Result<Vec<Result<U, E>>, sqlx::Error> {
    let rows = query.fetch_all(pool).await?;
    let mut outs: Vec<Option<Result<U, E>>> = (0..n).map(|_| None).collect();
    for (ord, value) in rows {
        let i = usize::try_from(ord - 1).unwrap_or(usize::MAX);
        if let Some(slot) = outs.get_mut(i) {
            *slot = Some(parse(i, value.0));
        }
    }
    Ok(outs.into_iter().map(|o| o.unwrap_or_else(|| Err(unanswered().into()))).collect())
}

fn unanswered() -> sqlx::Error {
    sqlx::Error::Protocol("the batch statement returned no answer for this call".into())
}

type SubmitOut = Result<(super::TaskRow, super::Recorded), super::LedgerError>;

pub(crate) struct SubmitReq {
    new: super::NewTask,
    step_ids: Vec<uuid::Uuid>,
    payload_id: uuid::Uuid,
    reservation_id: uuid::Uuid,
}

struct SubmitOp;

impl SubmitOp {
    fn parse(value: serde_json::Value) -> SubmitOut {
        #[derive(serde::Deserialize)]
        struct Out {
            available: Option<i64>,
            task: Option<super::TaskRow>,
            event: Option<serde_json::Value>,
        }
        match decode::<Out>(value)? {
            Out { task: Some(task), event: Some(data), .. } => {
                Ok((task, super::Recorded { seq: 1, kind: super::EventKind::Queued, data }))
            }
            Out { available, .. } => Err(super::LedgerError::Insufficient { available: available.unwrap_or(0) }),
        }
    }
}

impl super::pg_batch::BatchOp for SubmitOp {
    type Req = SubmitReq;
    type Out = SubmitOut;
    fn failed(out: &SubmitOut) -> bool {
        matches!(out, Err(e) if !matches!(e, super::LedgerError::Insufficient { .. }))
    }
    fn lost(e: sqlx::Error) -> SubmitOut {
        Err(e.into())
    }
    // One statement in flight (two until Dec 2026): with the loop's scheduler turn, one
    // loop makes batches twice as big; a drain ran 8% faster (0.99 -> 0.90 ms of CPU per
    // task) and e2e 7%, while 64 submitters alone got 12% fewer answers a second (a backlog
    // then settles sooner: 11.5 -> 8.9 s after 8 s of them), 3 and 2 interleaved pairs.
    const LOOPS: usize = 1;

    async fn batch<'a>(
        pool: super::pg_pool::BatchConn<'a>,
        reqs: &'a [SubmitReq],
    ) -> Result<Vec<SubmitOut>, sqlx::Error> {
        use sqlx::types::Json;
        let query = sqlx::query_as(SUBMIT_BATCH_SQL)
            .bind(super::now())
            .bind(reqs.iter().map(|r| r.new.id).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.new.user_id).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.new.tool_id).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.new.cost).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.new.parent_task_id).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.new.run_all_steps).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| Json(&r.new.steps)).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| Json(&r.step_ids)).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.payload_id).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| Json(&r.new.input)).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.reservation_id).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.new.trace_parent.as_deref()).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.new.webhook_url.as_deref()).collect::<Vec<_>>());
        fetch_batch(pool, query, reqs.len(), |_, v| Self::parse(v)).await
    }

    async fn one<'a>(pool: super::pg_pool::BatchConn<'a>, r: &'a SubmitReq) -> SubmitOut {
        let out: sqlx::types::Json<serde_json::Value> =
            sqlx::query_scalar("SELECT fm_task_submit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
                .bind(r.new.id)
                .bind(r.new.user_id)
                .bind(r.new.tool_id)
                .bind(r.new.cost)
                .bind(r.new.parent_task_id)
                .bind(r.new.run_all_steps)
                .bind(&r.new.steps)
                .bind(&r.step_ids)
                .bind(r.payload_id)
                .bind(sqlx::types::Json(&r.new.input))
                .bind(r.reservation_id)
                .bind(super::now())
                .bind(&r.new.trace_parent)
                .bind(&r.new.webhook_url)
                .fetch_one(pool)
                .await?;
        Self::parse(out.0)
    }

    /// The task id is new (made by this process for this call), so a task with it is this
    /// submit, committed by the batch: answered as the batch would have answered, with the
    /// task as it is now and its `queued` event.
    async fn rerun<'a>(pool: &'a super::pg_pool::PgPoolHandle, r: &'a SubmitReq) -> SubmitOut {
        let done: Option<sqlx::types::Json<serde_json::Value>> = sqlx::query_scalar(SUBMITTED_SQL)
            .bind(r.new.id)
            .bind(r.new.user_id)
            .fetch_optional(super::pg_pool::BatchConn::from(pool))
            .await?;
        match done {
            Some(out) => Self::parse(out.0),
            None => Self::one(pool.into(), r).await,
        }
    }
}

/// A submit that a failed batch committed after all (`SubmitOp::rerun`): the answer
/// `fm_task_submit` gives, read back.
const SUBMITTED_SQL: &str = "SELECT jsonb_build_object('task', to_jsonb(t), 'event',
                      (SELECT e.data FROM task_events e WHERE e.task_id = t.id AND e.seq = 1 AND e.type = 'queued'))
               FROM tasks t WHERE t.id = $1 AND t.user_id = $2";

/// A task end that a failed batch committed after all (`FinishOp::rerun`): the task has the
/// end's status, and its last events are exactly the end's (kinds and data, in order).
const FINISHED_SQL: &str = "SELECT t.event_seq FROM tasks t
               WHERE t.id = $1 AND t.status = $2 AND t.event_seq >= $3
                 AND (SELECT jsonb_agg(e.type ORDER BY e.seq) = $4 AND jsonb_agg(e.data ORDER BY e.seq) = $5
                        FROM task_events e WHERE e.task_id = t.id AND e.seq > t.event_seq - $3)";

/// The batched claim (see `ClaimOp`): `fm_task_claim_many`, set-based, one answer per call
/// in the arrays' order (migrations/postgres/0017_set_based_batches.sql).
///
/// A claim commits without waiting for its WAL to reach the disk (`synchronous_commit` off
/// for its own transaction only: `set_config(…, true)` is `SET LOCAL`). A claim holds a
/// worker slot from the moment the worker asks until the answer, so its commit's WAL flush
/// was part of every task's turn: in a 20,000-task drain about a third of the samples of the
/// database's active backends waited on `WALSync`/`WALWrite`. What a claim writes (the
/// lease, the attempt, the first step started and its `step_started` event, or a parked
/// row) is safe to lose in a crash of the database server, the only thing that could lose
/// it: the task is then queued and unleased as before the claim, its Redis entry still
/// pending (acknowledged only after the task's end), and it is sent and run again, as after
/// a worker that stopped. A claim pays and answers nothing; the task's end, which settles
/// the credits, commits synchronously, and its flush carries the claim's WAL with it (the
/// log is written in order). What such a crash does lose is that run's attempt count (the
/// crash detector, `tasks.max_attempts`, counts one run fewer); and a `task.started`
/// webhook the dispatcher already sent for the lost claim is sent again by the rerun
/// (webhooks are at least once, as after any retried delivery).
const CLAIM_BATCH_SQL: &str = "SELECT a.ord, a.answer
               FROM set_config('synchronous_commit', 'off', true) AS no_flush,
                    unnest(fm_task_claim_many($1, $2::uuid[], $3::timestamptz[], $4::int8[], $5::int4[]))
                    WITH ORDINALITY AS a(answer, ord)";

/// A claim alone, committed as [`CLAIM_BATCH_SQL`].
const CLAIM_ALONE_SQL: &str =
    "SELECT fm_task_claim($1, $2, $3, $4, $5) FROM set_config('synchronous_commit', 'off', true) AS no_flush";

/// The batched submit (see `SubmitOp`): `fm_task_submit_many`, as `CLAIM_BATCH_SQL`.
const SUBMIT_BATCH_SQL: &str = "SELECT a.ord, a.answer
               FROM unnest(fm_task_submit_many($1, $2::uuid[], $3::uuid[], $4::uuid[], $5::int8[], $6::uuid[],
                    $7::bool[], $8::jsonb[], $9::jsonb[], $10::uuid[], $11::jsonb[], $12::uuid[], $13::text[],
                    $14::text[])) WITH ORDINALITY AS a(answer, ord)";

/// The batched end (see `FinishOp`): `fm_task_finish_many`, as `SUBMIT_BATCH_SQL`.
const FINISH_BATCH_SQL: &str = "SELECT a.ord, a.answer
               FROM unnest(fm_task_finish_many($1, $2::uuid[], $3::text[], $4::jsonb[], $5::text[], $6::int8[],
                    $7::jsonb[], $8::jsonb[], $9::text[], $10::jsonb[], $11::text[], $12::text[], $13::int4[],
                    $14::int8[])) WITH ORDINALITY AS a(answer, ord)";

type ClaimOut = StoreResult<super::Claim>;

pub(crate) struct ClaimReq {
    task_id: uuid::Uuid,
    lease: Duration,
    per_user: u32,
    max_attempts: u32,
}

impl ClaimReq {
    fn until(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(60))
    }
}

struct ClaimOp;

impl ClaimOp {
    fn parse(value: serde_json::Value, now: chrono::DateTime<chrono::Utc>) -> ClaimOut {
        #[derive(serde::Deserialize)]
        struct Started {
            seq: i64,
            step_id: String,
            data: serde_json::Value,
        }
        #[derive(serde::Deserialize)]
        struct Out {
            outcome: String,
            started: Option<Started>,
            due: Option<chrono::DateTime<chrono::Utc>>,
            attempts: Option<i32>,
            task: Option<super::TaskRow>,
            input: Option<serde_json::Value>,
            tool_updated_at: Option<chrono::DateTime<chrono::Utc>>,
            steps: Option<Vec<StepJson>>,
        }
        let out: Out = decode(value)?;
        Ok(match (out.outcome.as_str(), out.task) {
            ("claimed", Some(task)) => super::Claim::Claimed(Box::new(super::ClaimedTask {
                task,
                attempts: out.attempts.unwrap_or(1),
                input: out.input.unwrap_or(serde_json::Value::Null),
                steps: out.steps.unwrap_or_default().into_iter().map(Into::into).collect(),
                tool_updated_at: out.tool_updated_at.unwrap_or_default(),
                started: out.started.map(|s| {
                    (s.step_id, super::Recorded { seq: s.seq, kind: super::EventKind::StepStarted, data: s.data })
                }),
            })),
            ("busy", _) => super::Claim::Busy,
            ("not_due", _) => super::Claim::NotDue(out.due.unwrap_or(now)),
            ("user_at_limit", _) => super::Claim::UserAtLimit,
            _ => super::Claim::Empty,
        })
    }
}

impl super::pg_batch::BatchOp for ClaimOp {
    type Req = ClaimReq;
    type Out = ClaimOut;
    fn failed(out: &ClaimOut) -> bool {
        out.is_err()
    }
    fn lost(e: sqlx::Error) -> ClaimOut {
        Err(e.into())
    }
    const LOOPS: usize = 1;

    async fn batch<'a>(
        pool: super::pg_pool::BatchConn<'a>,
        reqs: &'a [ClaimReq],
    ) -> Result<Vec<ClaimOut>, sqlx::Error> {
        let now = super::now();
        // The function takes the per-user limit's locks in user order.
        let query = sqlx::query_as(CLAIM_BATCH_SQL)
            .bind(now)
            .bind(reqs.iter().map(|r| r.task_id).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.until(now)).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| i64::from(r.per_user)).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| i32::try_from(r.max_attempts).unwrap_or(i32::MAX)).collect::<Vec<_>>());
        fetch_batch(pool, query, reqs.len(), |_, v| Self::parse(v, now)).await
    }

    async fn one<'a>(pool: super::pg_pool::BatchConn<'a>, r: &'a ClaimReq) -> ClaimOut {
        let now = super::now();
        let out: sqlx::types::Json<serde_json::Value> = sqlx::query_scalar(CLAIM_ALONE_SQL)
            .bind(r.task_id)
            .bind(now)
            .bind(r.until(now))
            .bind(i64::from(r.per_user))
            .bind(i32::try_from(r.max_attempts).unwrap_or(i32::MAX))
            .fetch_one(pool)
            .await?;
        Self::parse(out.0, now)
    }
}

type FinishOut = Result<super::Finished, super::LedgerError>;

pub(crate) struct FinishReq {
    id: uuid::Uuid,
    status: &'static str,
    output: Option<serde_json::Value>,
    error: Option<String>,
    spend: Option<i64>,
    /// The events to record: `step_completed` when a step is folded in, then the terminal one.
    events: Vec<(super::EventKind, serde_json::Value)>,
    /// The folded-in step and the patch of its state.
    step: Option<(String, serde_json::Value)>,
    dead_letter: Option<(&'static str, String, i32)>,
    unpark: i64,
}

impl FinishReq {
    fn kinds(&self) -> Vec<&'static str> {
        self.events.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn parse(&self, value: serde_json::Value) -> FinishOut {
        #[derive(serde::Deserialize)]
        struct Out {
            ended: bool,
            seq: Option<i64>,
            unparked: Option<Vec<uuid::Uuid>>,
        }
        let out: Out = decode(value)?;
        let mut finished =
            super::Finished { ended: out.ended, events: vec![], unparked: out.unparked.unwrap_or_default() };
        if let (true, Some(last)) = (out.ended, out.seq) {
            let n = self.events.len() as i64;
            finished.events = self
                .events
                .iter()
                .enumerate()
                .map(|(i, (kind, data))| super::Recorded {
                    seq: last - n + 1 + i as i64,
                    kind: *kind,
                    data: data.clone(),
                })
                .collect();
        }
        Ok(finished)
    }
}

struct FinishOp;

impl super::pg_batch::BatchOp for FinishOp {
    type Req = FinishReq;
    type Out = FinishOut;
    fn failed(out: &FinishOut) -> bool {
        out.is_err()
    }
    fn lost(e: sqlx::Error) -> FinishOut {
        Err(e.into())
    }
    const LOOPS: usize = 1;

    async fn batch<'a>(
        pool: super::pg_pool::BatchConn<'a>,
        reqs: &'a [FinishReq],
    ) -> Result<Vec<FinishOut>, sqlx::Error> {
        use sqlx::types::Json;
        // The function takes the accounts' row locks and the queue locks in user order.
        let query = sqlx::query_as(FINISH_BATCH_SQL)
            .bind(super::now())
            .bind(reqs.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.status).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.output.as_ref().map(Json)).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.error.as_deref()).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.spend).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| Json(r.kinds())).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| Json(r.events.iter().map(|(_, d)| d).collect::<Vec<_>>())).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.step.as_ref().map(|(s, _)| s.as_str())).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.step.as_ref().map(|(_, p)| Json(p))).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.dead_letter.as_ref().map(|d| d.0)).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.dead_letter.as_ref().map(|d| d.1.as_str())).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.dead_letter.as_ref().map(|d| d.2)).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.unpark).collect::<Vec<_>>());
        fetch_batch(pool, query, reqs.len(), |i, v| reqs[i].parse(v)).await
    }

    async fn one<'a>(pool: super::pg_pool::BatchConn<'a>, r: &'a FinishReq) -> FinishOut {
        use sqlx::types::Json;
        let datas: Vec<Json<&serde_json::Value>> = r.events.iter().map(|(_, d)| Json(d)).collect();
        let out: Json<serde_json::Value> =
            sqlx::query_scalar("SELECT fm_task_finish($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
                .bind(r.id)
                .bind(r.status)
                .bind(super::now())
                .bind(r.output.as_ref().map(Json))
                .bind(r.error.as_deref())
                .bind(r.spend)
                .bind(r.kinds())
                .bind(&datas)
                .bind(r.step.as_ref().map(|(s, _)| s.as_str()))
                .bind(r.step.as_ref().map(|(_, p)| Json(p)))
                .bind(r.dead_letter.as_ref().map(|d| d.0))
                .bind(r.dead_letter.as_ref().map(|d| d.1.as_str()))
                .bind(r.dead_letter.as_ref().map(|d| d.2))
                .bind(r.unpark)
                .fetch_one(pool)
                .await?;
        r.parse(out.0)
    }

    /// An end the batch committed is found by its own events at the end of the task's
    /// history (alone it would find the task ended and answer `ended: false`, and its events
    /// would not be published). The tasks it unparked are not known any more: they are
    /// waiting and due, and the reconciler sends them again.
    async fn rerun<'a>(pool: &'a super::pg_pool::PgPoolHandle, r: &'a FinishReq) -> FinishOut {
        use sqlx::types::Json;
        if !r.events.is_empty() {
            let datas: Vec<&serde_json::Value> = r.events.iter().map(|(_, d)| d).collect();
            let seq: Option<i64> = sqlx::query_scalar(FINISHED_SQL)
                .bind(r.id)
                .bind(r.status)
                .bind(r.events.len() as i64)
                .bind(Json(r.kinds()))
                .bind(Json(&datas))
                .fetch_optional(super::pg_pool::BatchConn::from(pool))
                .await?;
            if let Some(seq) = seq {
                return r.parse(serde_json::json!({ "ended": true, "seq": seq, "unparked": [] }));
            }
        }
        Self::one(pool.into(), r).await
    }
}

/// The answers of a batched read, one per request: each row carries its request's `ord`
/// (`WITH ORDINALITY`, from 1); a request without a row reads a task that does not exist
/// (or is not visible to the statement's snapshot).
fn rows_by_ord<T>(
    rows: &[sqlx::postgres::PgRow],
    n: usize,
    parse: impl Fn(&sqlx::postgres::PgRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<Result<Option<T>, sqlx::Error>>, sqlx::Error> {
    use sqlx::Row;
    let mut outs: Vec<Result<Option<T>, sqlx::Error>> = (0..n).map(|_| Ok(None)).collect();
    for row in rows {
        let ord: i64 = row.try_get("ord")?;
        if let Some(slot) = usize::try_from(ord - 1).ok().and_then(|i| outs.get_mut(i)) {
            *slot = parse(row).map(Some);
        }
    }
    Ok(outs)
}

type TaskFullOut = Result<Option<super::TaskFull>, sqlx::Error>;

/// Task reads, many to a statement: like a stream start, a lone read costs a pooled round
/// trip (and sqlx's two pings of the pooled connection) and an executor start of its own.
struct TaskFullOp;

impl TaskFullOp {
    fn parse(row: &sqlx::postgres::PgRow) -> Result<super::TaskFull, sqlx::Error> {
        use sqlx::{FromRow, Row};
        let task = super::TaskRow::from_row(row)?;
        let payload = if row.try_get::<bool, _>("has_payload")? {
            Some(super::TaskPayloadRow {
                input: row.try_get("input")?,
                output: row.try_get("output")?,
                error: row.try_get("error")?,
            })
        } else {
            None
        };
        let steps: sqlx::types::Json<Vec<StepJson>> = row.try_get("steps")?;
        let steps = steps.0.into_iter().map(Into::into).collect();
        Ok(super::TaskFull { task, payload, steps, queue_position: row.try_get("queue_position")? })
    }
}

impl super::pg_batch::BatchOp for TaskFullOp {
    type Req = uuid::Uuid;
    type Out = TaskFullOut;
    fn failed(out: &TaskFullOut) -> bool {
        out.is_err()
    }
    fn lost(e: sqlx::Error) -> TaskFullOut {
        Err(e)
    }
    const LOOPS: usize = 1;

    async fn batch<'a>(
        pool: super::pg_pool::BatchConn<'a>,
        ids: &'a [uuid::Uuid],
    ) -> Result<Vec<TaskFullOut>, sqlx::Error> {
        let rows = sqlx::query(TASK_FULL_BATCH_SQL).bind(ids).fetch_all(pool).await?;
        rows_by_ord(&rows, ids.len(), Self::parse)
    }

    async fn one<'a>(pool: super::pg_pool::BatchConn<'a>, id: &'a uuid::Uuid) -> TaskFullOut {
        let row = sqlx::query(TASK_FULL_BATCH_SQL).bind([*id]).fetch_optional(pool).await?;
        row.as_ref().map(Self::parse).transpose()
    }
}

type StreamStartOut = Result<Option<super::TaskStreamStart>, sqlx::Error>;

/// Stream starts, read many to a statement: a read commits nothing, but each statement
/// alone costs a pooled round trip and an executor start for its three subqueries.
struct StreamStartOp;

impl StreamStartOp {
    fn parse(row: &sqlx::postgres::PgRow) -> Result<super::TaskStreamStart, sqlx::Error> {
        use sqlx::{FromRow, Row};
        // Milestones as `jsonb_build_object` spells them: the row's own field names.
        let events: sqlx::types::Json<Vec<super::TaskEventRow>> = row.try_get("events")?;
        Ok(super::TaskStreamStart {
            task: super::TaskRow::from_row(row)?,
            event_seq: row.try_get("event_seq")?,
            queue_seq: row.try_get("queue_seq")?,
            events: events.0,
        })
    }
}

impl super::pg_batch::BatchOp for StreamStartOp {
    type Req = (uuid::Uuid, i64);
    type Out = StreamStartOut;
    fn failed(out: &StreamStartOut) -> bool {
        out.is_err()
    }
    fn lost(e: sqlx::Error) -> StreamStartOut {
        Err(e)
    }
    const LOOPS: usize = 1;

    async fn batch<'a>(
        pool: super::pg_pool::BatchConn<'a>,
        reqs: &'a [(uuid::Uuid, i64)],
    ) -> Result<Vec<StreamStartOut>, sqlx::Error> {
        let rows = sqlx::query(TASK_STREAM_START_BATCH_SQL)
            .bind(reqs.iter().map(|r| r.0).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.1).collect::<Vec<_>>())
            .fetch_all(pool)
            .await?;
        rows_by_ord(&rows, reqs.len(), Self::parse)
    }

    async fn one<'a>(pool: super::pg_pool::BatchConn<'a>, &(id, after): &'a (uuid::Uuid, i64)) -> StreamStartOut {
        let row = sqlx::query(TASK_STREAM_START_BATCH_SQL).bind([id]).bind([after]).fetch_optional(pool).await?;
        row.as_ref().map(Self::parse).transpose()
    }
}
