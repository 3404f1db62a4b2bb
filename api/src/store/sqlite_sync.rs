//! The task hot path's writes on SQLite, run whole on the writer's own connection (see
//! `writer::Writer::write_sync`): a submit, the claims of the table-reading workers, and a
//! task's end. Through sqlx each statement is a hand-off to its SQLite thread and back (a
//! thread wake-up each way, and rows one by one), and the one writer every write waits on
//! spent most of its time on those hand-offs; here a whole job is plain function calls.
//!
//! These write exactly the rows, in the same encodings, as sqlx would (the same statements
//! as `SqliteStore::task_submit`, `claim_on` and `finish_on`): ids as 16-byte blobs,
//! timestamps as RFC 3339 text with `+00:00`, JSON as text, booleans as 0/1, enums by name.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::{
    Claim, ClaimedTask, EventKind, Finished, LedgerError, NewTask, Recorded, StepStatus, StoreError, StoreResult,
    TaskRow, TaskStatus, TaskStepRow, TransactionType,
};

/// A timestamp as sqlx writes it for SQLite.
fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A timestamp as sqlx reads it (RFC 3339, or SQLite's own `YYYY-MM-DD HH:MM:SS[.f]`, UTC).
fn parse_ts(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    ["%F %T%.f", "%FT%T%.f"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
        .map(|at| at.and_utc())
}

fn bad(i: &str, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("column {i}: not a valid {what}").into(),
    )
}

fn uuid_at(row: &Row<'_>, i: &str) -> rusqlite::Result<Uuid> {
    uuid_opt(row, i)?.ok_or_else(|| bad(i, "id (null)"))
}

fn uuid_opt(row: &Row<'_>, i: &str) -> rusqlite::Result<Option<Uuid>> {
    use rusqlite::types::ValueRef;
    match row.get_ref(i)? {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(b) => Uuid::from_slice(b).map(Some).map_err(|_| bad(i, "id")),
        ValueRef::Text(t) => {
            std::str::from_utf8(t).ok().and_then(|t| Uuid::parse_str(t).ok()).map(Some).ok_or_else(|| bad(i, "id"))
        }
        _ => Err(bad(i, "id")),
    }
}

fn ts_opt(row: &Row<'_>, i: &str) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<String>>(i)? {
        None => Ok(None),
        Some(text) => parse_ts(&text).map(Some).ok_or_else(|| bad(i, "timestamp")),
    }
}

fn ts_at(row: &Row<'_>, i: &str) -> rusqlite::Result<DateTime<Utc>> {
    ts_opt(row, i)?.ok_or_else(|| bad(i, "timestamp (null)"))
}

fn json_at(row: &Row<'_>, i: &str) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(i)?;
    serde_json::from_str(&text).map_err(|_| bad(i, "JSON text"))
}

fn task_row(row: &Row<'_>) -> rusqlite::Result<TaskRow> {
    let status: String = row.get("status")?;
    Ok(TaskRow {
        id: uuid_at(row, "id")?,
        user_id: uuid_at(row, "user_id")?,
        tool_id: uuid_at(row, "tool_id")?,
        status: TaskStatus::parse(&status).ok_or_else(|| bad("status", "task status"))?,
        credits_cost: row.get("credits_cost")?,
        parent_task_id: uuid_opt(row, "parent_task_id")?,
        current_step_id: row.get("current_step_id")?,
        attempts: row.get("attempts")?,
        cancel_requested: row.get("cancel_requested")?,
        run_all_steps: row.get("run_all_steps")?,
        created_at: ts_at(row, "created_at")?,
        updated_at: ts_at(row, "updated_at")?,
        started_at: ts_opt(row, "started_at")?,
        completed_at: ts_opt(row, "completed_at")?,
        trace_parent: row.get("trace_parent")?,
    })
}

fn step_row(row: &Row<'_>) -> rusqlite::Result<TaskStepRow> {
    let status: String = row.get("status")?;
    Ok(TaskStepRow {
        step_id: row.get("step_id")?,
        position: row.get("position")?,
        status: StepStatus::parse(&status).ok_or_else(|| bad("status", "step status"))?,
        state: sqlx::types::Json(json_at(row, "state")?),
        started_at: ts_opt(row, "started_at")?,
        completed_at: ts_opt(row, "completed_at")?,
    })
}

/// A rusqlite error classified as `StoreError::from_sqlx` classifies sqlx's.
pub(crate) fn store_error(err: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    match &err {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(e, message) => {
            let name = message.clone().unwrap_or_else(|| e.to_string());
            match (e.code, e.extended_code) {
                (ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked, _) => StoreError::Unavailable(err.to_string()),
                (ErrorCode::ConstraintViolation, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
                | (ErrorCode::ConstraintViolation, rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                    StoreError::Conflict(name)
                }
                (ErrorCode::ConstraintViolation, _) => StoreError::Constraint(name),
                _ => StoreError::Other(sqlx::Error::Protocol(err.to_string())),
            }
        }
        _ => StoreError::Other(sqlx::Error::Protocol(err.to_string())),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        store_error(err)
    }
}

impl From<rusqlite::Error> for LedgerError {
    fn from(err: rusqlite::Error) -> Self {
        LedgerError::from(store_error(err))
    }
}

const TASK_COLUMNS: &str = "id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, attempts, \
     cancel_requested, run_all_steps, created_at, updated_at, started_at, completed_at, trace_parent";

/// Reserves the cost, inserts the task with its payload, steps and queue row, and records
/// `queued` with the task's place in line.
pub(crate) fn submit(c: &Connection, new: &NewTask) -> Result<(TaskRow, Recorded), LedgerError> {
    let at = ts(super::now());
    let (user, task_id) = (new.user_id.as_bytes(), new.id.as_bytes());
    let reference = new.id.to_string();
    if new.cost > 0 {
        let after: Option<(i64, i64)> = c
            .prepare_cached(
                "UPDATE credits SET reserved_balance = reserved_balance + ?2, updated_at = ?3
                  WHERE user_id = ?1 AND balance - reserved_balance >= ?2
                 RETURNING balance, reserved_balance",
            )?
            .query_row(params![user, new.cost, at], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((balance, reserved)) = after else {
            let available: Option<i64> = c
                .prepare_cached("SELECT balance - reserved_balance FROM credits WHERE user_id = ?1")?
                .query_row(params![user], |r| r.get(0))
                .optional()?;
            return Err(LedgerError::Insufficient { available: available.unwrap_or(0) });
        };
        c.prepare_cached(
            "INSERT INTO credit_reservations (id, user_id, reference_id, amount, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![Uuid::now_v7().as_bytes(), user, reference, new.cost, at])?;
        c.prepare_cached(
            "INSERT INTO credit_transactions
                 (id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at)
             VALUES (?1, ?2, 'reserve', 0, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            Uuid::now_v7().as_bytes(),
            user,
            balance,
            new.cost,
            reserved,
            reference,
            format!("reserved for {reference}"),
            at
        ])?;
    }
    let task = c
        .prepare_cached(&format!(
            "INSERT INTO tasks (id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, run_all_steps,
                                event_seq, created_at, updated_at, trace_parent, webhook_url)
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, 1, ?8, ?8, ?9, ?10)
             RETURNING {TASK_COLUMNS}"
        ))?
        .query_row(
            params![
                task_id,
                user,
                new.tool_id.as_bytes(),
                new.cost,
                new.parent_task_id.as_ref().map(|p| p.as_bytes().to_vec()),
                new.steps.first(),
                new.run_all_steps,
                at,
                new.trace_parent,
                new.webhook_url
            ],
            task_row,
        )?;
    c.prepare_cached(
        "INSERT INTO task_payloads (id, task_id, input, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![Uuid::now_v7().as_bytes(), task_id, new.input.to_string(), at])?;
    let mut insert_step = c.prepare_cached(
        "INSERT INTO task_steps (id, task_id, step_id, position, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?;
    for (position, step) in new.steps.iter().enumerate() {
        insert_step.execute(params![Uuid::now_v7().as_bytes(), task_id, step, position as i64, at])?;
    }
    c.prepare_cached(
        "INSERT INTO task_queue (task_id, user_id, available_at, created_at, seq)
         VALUES (?1, ?2, ?3, ?3, (SELECT COALESCE(MAX(seq), 0) + 1 FROM task_queue))",
    )?
    .execute(params![task_id, user, at])?;
    let data: String = c
        .prepare_cached(
            "INSERT INTO task_events (task_id, seq, type, data, created_at)
             SELECT ?1, 1, 'queued',
                    json_object('position', MAX(q.seq - COALESCE((SELECT MIN(w.seq) FROM task_queue w WHERE w.lease_until IS NULL), q.seq), 0),
                                'type', 'queued'),
                    ?2
               FROM task_queue q WHERE q.task_id = ?1
             RETURNING data",
        )?
        .query_row(params![task_id, at], |r| r.get(0))?;
    let data = serde_json::from_str(&data).map_err(|e| StoreError::Other(sqlx::Error::Decode(e.into())))?;
    Ok((task, Recorded { seq: 1, kind: EventKind::Queued, data }))
}

/// Claims up to `max` due tasks, oldest first, within the per-user limit (see `claim`).
pub(crate) fn claim_many(
    c: &Connection,
    lease: std::time::Duration,
    per_user: u32,
    max_attempts: u32,
    max: usize,
) -> StoreResult<super::ClaimedTasks> {
    let mut claimed = Vec::new();
    while claimed.len() < max {
        match claim(c, None, lease, per_user, max_attempts)? {
            Claim::Claimed(task) => claimed.push(task),
            _ => break,
        }
    }
    Ok(claimed)
}

/// Leases a due task for `lease`: the oldest one whose user runs fewer than `per_user`
/// tasks (0 = no limit), or, with `only`, that one task (the Redis queue delivers ids; at
/// the limit its row is parked until one of its user's tasks ends). The run is counted and
/// (when it may go on: within `max_attempts`, not ended or to be cancelled) its first step
/// not completed yet started. One writer: no count taken here can change before the lease.
pub(crate) fn claim(
    c: &Connection,
    only: Option<Uuid>,
    lease: std::time::Duration,
    per_user: u32,
    max_attempts: u32,
) -> StoreResult<Claim> {
    let now = super::now();
    let at = ts(now);
    let task_id = match only {
        None => {
            let next: Option<Uuid> = c
                .prepare_cached(
                    "SELECT q.task_id FROM task_queue q
                      WHERE q.available_at <= ?1 AND (q.lease_until IS NULL OR q.lease_until < ?1)
                        AND (?2 = 0 OR (SELECT COUNT(*) FROM task_queue r WHERE r.user_id = q.user_id AND r.lease_until >= ?1) < ?2)
                      ORDER BY q.available_at LIMIT 1",
                )?
                .query_row(params![at, i64::from(per_user)], |r| uuid_at(r, "task_id"))
                .optional()?;
            let Some(task_id) = next else { return Ok(Claim::Empty) };
            task_id
        }
        Some(task_id) => match given(c, task_id, per_user, now)? {
            Some(answer) => return Ok(answer),
            None => task_id,
        },
    };
    let id = task_id.as_bytes();
    let until = ts(now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(60)));
    let attempts: i32 = c
        .prepare_cached(
            "UPDATE task_queue SET lease_until = ?2, attempts = attempts + 1, parked = FALSE WHERE task_id = ?1 RETURNING attempts",
        )?
        .query_row(params![id, until], |r| r.get(0))?;
    let task = c
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))?
        .query_row(params![id], task_row)?;
    let (input, tool_updated_at) = c
        .prepare_cached(
            "SELECT p.input, t.updated_at FROM task_payloads p JOIN tools t ON t.id = ?2 WHERE p.task_id = ?1",
        )?
        .query_row(params![id, task.tool_id.as_bytes()], |r| Ok((json_at(r, "input")?, ts_at(r, "updated_at")?)))?;
    let mut steps = Vec::new();
    let mut names = Vec::new();
    {
        let mut read = c.prepare_cached(
            "SELECT s.step_id, s.position, s.status, s.state, s.started_at, s.completed_at,
                    (SELECT json_extract(j.value, '$.name') FROM tools t, json_each(t.config, '$.steps') j
                      WHERE t.id = ?2 AND json_extract(j.value, '$.id') = s.step_id) AS name
               FROM task_steps s WHERE s.task_id = ?1 ORDER BY s.position",
        )?;
        let mut rows = read.query(params![id, task.tool_id.as_bytes()])?;
        while let Some(row) = rows.next()? {
            names.push(row.get::<_, Option<String>>("name")?);
            steps.push(step_row(row)?);
        }
    }
    let mut started = None;
    let runnable = !task.is_terminal() && !task.cancel_requested;
    if u32::try_from(attempts).is_ok_and(|a| a <= max_attempts)
        && runnable
        && let Some(i) = steps.iter().position(|s| s.status != StepStatus::Completed)
    {
        let step_id = steps[i].step_id.clone();
        let name = names[i].clone().unwrap_or_else(|| step_id.clone());
        let data = serde_json::json!({ "stepId": step_id, "stepName": name });
        if let Some(event) = step_begin(c, task_id, &step_id, true, data)? {
            started = Some((step_id, event));
        }
    }
    Ok(Claim::Claimed(Box::new(ClaimedTask { task, attempts, input, steps, tool_updated_at, started })))
}

/// Why the given task cannot be leased now, if it cannot: gone from the queue (`Empty`),
/// leased to another worker (`Busy`), waiting for a retry (`NotDue`), or its user at the
/// limit (`UserAtLimit`, and the row parked).
fn given(c: &Connection, task_id: Uuid, per_user: u32, now: DateTime<Utc>) -> StoreResult<Option<Claim>> {
    let id = task_id.as_bytes();
    let row = c
        .prepare_cached("SELECT user_id, available_at, lease_until FROM task_queue WHERE task_id = ?1")?
        .query_row(params![id], |r| Ok((uuid_opt(r, "user_id")?, ts_at(r, "available_at")?, ts_opt(r, "lease_until")?)))
        .optional()?;
    let Some((user_id, available_at, lease_until)) = row else { return Ok(Some(Claim::Empty)) };
    if lease_until.is_some_and(|l| l >= now) {
        return Ok(Some(Claim::Busy));
    }
    if available_at > now {
        return Ok(Some(Claim::NotDue(available_at)));
    }
    if per_user > 0
        && let Some(user_id) = user_id
    {
        let running: i64 = c
            .prepare_cached(
                "SELECT COUNT(*) FROM task_queue WHERE user_id = ?1 AND lease_until >= ?2 AND task_id <> ?3",
            )?
            .query_row(params![user_id.as_bytes(), ts(now), id], |r| r.get(0))?;
        if running >= i64::from(per_user) {
            c.prepare_cached("UPDATE task_queue SET parked = TRUE WHERE task_id = ?1")?.execute(params![id])?;
            return Ok(Some(Claim::UserAtLimit));
        }
    }
    Ok(None)
}

/// A step starts: the task is running (its runs counted once per run, with
/// `first_in_run`), the step is running, and `step_started` is recorded with `event` as
/// its data. `None` if the task has ended or is to be cancelled.
pub(crate) fn step_begin(
    c: &Connection,
    task_id: Uuid,
    step_id: &str,
    first_in_run: bool,
    event: serde_json::Value,
) -> StoreResult<Option<Recorded>> {
    let at = ts(super::now());
    let id = task_id.as_bytes();
    let kind = EventKind::StepStarted;
    let data = super::event_data(kind, event);
    let seq: Option<i64> = c
        .prepare_cached(if first_in_run {
            "UPDATE tasks SET event_seq = event_seq + 1, updated_at = ?2, status = 'running', current_step_id = ?3,
                    attempts = attempts + 1, started_at = COALESCE(started_at, ?2)
              WHERE id = ?1 AND status IN ('queued', 'running') AND NOT cancel_requested RETURNING event_seq"
        } else {
            "UPDATE tasks SET event_seq = event_seq + 1, updated_at = ?2, status = 'running', current_step_id = ?3
              WHERE id = ?1 AND status IN ('queued', 'running') AND NOT cancel_requested RETURNING event_seq"
        })?
        .query_row(params![id, at, step_id], |r| r.get(0))
        .optional()?;
    let Some(seq) = seq else { return Ok(None) };
    c.prepare_cached("INSERT INTO task_events (task_id, seq, type, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![id, seq, kind.as_str(), data.to_string(), at])?;
    c.prepare_cached(
        "UPDATE task_steps SET status = 'running', started_at = COALESCE(started_at, ?3), updated_at = ?3
          WHERE task_id = ?1 AND step_id = ?2",
    )?
    .execute(params![id, step_id, at])?;
    Ok(Some(Recorded { seq, kind, data }))
}

/// What a task's end writes (see `SqliteStore::task_finish`).
pub(crate) struct FinishRest {
    pub status: TaskStatus,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub spend: Option<i64>,
    pub dead: Option<super::DeadLetter>,
    /// The last step folded in: its id and the patch of its state.
    pub step: Option<(String, serde_json::Value)>,
    /// The events to record, in order, with their data as recorded.
    pub events: Vec<(EventKind, serde_json::Value)>,
    pub unpark: i64,
}

/// Ends a task once (nothing but its queue row changes if it had ended), atomically with
/// its events, the last step's completion, its settlement and the unparking of its user's
/// tasks waiting for a running slot.
pub(crate) fn finish(c: &Connection, task: Uuid, rest: FinishRest) -> Result<Finished, LedgerError> {
    let at = ts(super::now());
    let id = task.as_bytes();
    let mut finished = Finished::default();
    let last: Option<i64> = c
        .prepare_cached(
            "UPDATE tasks SET event_seq = event_seq + ?2, updated_at = ?3, status = ?4, completed_at = ?3
              WHERE id = ?1 AND status NOT IN ('completed', 'failed', 'cancelled') RETURNING event_seq",
        )?
        .query_row(params![id, rest.events.len() as i64, at, rest.status.as_str()], |r| r.get(0))
        .optional()?;
    let queue_user: Option<Uuid> = c
        .prepare_cached("DELETE FROM task_queue WHERE task_id = ?1 RETURNING user_id")?
        .query_row(params![id], |r| uuid_opt(r, "user_id"))
        .optional()?
        .flatten();
    let Some(last) = last else { return Ok(finished) };
    finished.ended = true;
    let first = last - rest.events.len() as i64 + 1;
    {
        let mut insert = c.prepare_cached(
            "INSERT INTO task_events (task_id, seq, type, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (i, (kind, data)) in rest.events.into_iter().enumerate() {
            let seq = first + i as i64;
            insert.execute(params![id, seq, kind.as_str(), data.to_string(), at])?;
            finished.events.push(Recorded { seq, kind, data });
        }
    }
    if let Some((step_id, patch)) = &rest.step {
        c.prepare_cached(
            "UPDATE task_steps SET status = 'completed', state = json_patch(state, ?3), completed_at = ?4, updated_at = ?4
              WHERE task_id = ?1 AND step_id = ?2",
        )?
        .execute(params![id, step_id, patch.to_string(), at])?;
    }
    c.prepare_cached("UPDATE task_payloads SET output = ?2, error = ?3, updated_at = ?4 WHERE task_id = ?1")?
        .execute(params![id, rest.output.as_ref().map(|o| o.to_string()), rest.error, at])?;
    settle(c, &task.to_string(), rest.spend, &at)?;
    if let Some(dead) = &rest.dead {
        c.prepare_cached(
            "INSERT INTO task_dead_letters (task_id, user_id, reason, error, attempts, created_at)
             SELECT id, user_id, ?2, ?3, ?4, ?5 FROM tasks WHERE id = ?1",
        )?
        .execute(params![id, dead.reason, dead.error, dead.attempts, at])?;
    }
    if let Some(user) = queue_user.filter(|_| rest.unpark > 0) {
        // One writer: a claim refused at the limit has parked before this runs.
        let mut unpark = c.prepare_cached(
            "UPDATE task_queue SET parked = FALSE
              WHERE task_id IN (SELECT task_id FROM task_queue WHERE user_id = ?1 AND parked ORDER BY seq LIMIT ?2)
             RETURNING task_id",
        )?;
        let mut rows = unpark.query(params![user.as_bytes(), rest.unpark])?;
        while let Some(row) = rows.next()? {
            finished.unparked.push(uuid_at(row, "task_id")?);
        }
    }
    Ok(finished)
}

/// Resolves the task's reservation, if it has a pending one (free tools reserve nothing):
/// `spend` (all of it if `None`) is spent, the rest released, each booked.
fn settle(c: &Connection, reference: &str, spend: Option<i64>, at: &str) -> Result<(), LedgerError> {
    let reservation: Option<(Uuid, i64, String)> = c
        .prepare_cached("SELECT user_id, amount, status FROM credit_reservations WHERE reference_id = ?1")?
        .query_row(params![reference], |r| Ok((uuid_at(r, "user_id")?, r.get("amount")?, r.get("status")?)))
        .optional()?;
    let Some((user_id, amount, status)) = reservation else { return Ok(()) };
    let spend = spend.unwrap_or(amount);
    if spend < 0 || spend > amount {
        return Err(LedgerError::SpendExceedsReservation);
    }
    if status != "pending" {
        return Ok(());
    }
    let user = user_id.as_bytes();
    let release = amount - spend;
    c.prepare_cached(
        "UPDATE credit_reservations SET status = 'resolved', spent = ?2, resolved_at = ?3 WHERE reference_id = ?1 AND status = 'pending'",
    )?
    .execute(params![reference, spend, at])?;
    let (balance, reserved): (i64, i64) = c
        .prepare_cached(
            "UPDATE credits SET balance = balance - ?2, reserved_balance = reserved_balance - ?3,
                    lifetime_spent = lifetime_spent + ?2, updated_at = ?4
              WHERE user_id = ?1 RETURNING balance, reserved_balance",
        )?
        .query_row(params![user, spend, amount, at], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let mut book = c.prepare_cached(
        "INSERT INTO credit_transactions
             (id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    if spend > 0 {
        let description = format!("spent on {reference}");
        let kind = TransactionType::Spend.as_str();
        book.execute(params![
            Uuid::now_v7().as_bytes(),
            user,
            kind,
            -spend,
            balance,
            -spend,
            reserved + release,
            reference,
            description,
            at
        ])?;
    }
    if release > 0 {
        let description = format!("released from {reference}");
        let kind = TransactionType::Refund.as_str();
        book.execute(params![
            Uuid::now_v7().as_bytes(),
            user,
            kind,
            0,
            balance,
            -release,
            reserved,
            reference,
            description,
            at
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamps round-trip through the text sqlx writes and reads, to the microsecond.
    #[test]
    fn timestamps_are_written_as_sqlx_writes_them() {
        let at = super::super::now();
        let text = ts(at);
        assert!(text.ends_with("+00:00"), "{text}");
        assert_eq!(parse_ts(&text), Some(at));
        assert_eq!(
            parse_ts("2026-12-05 21:12:55"),
            Some(chrono::NaiveDate::from_ymd_opt(2026, 12, 5).unwrap().and_hms_opt(21, 12, 55).unwrap().and_utc())
        );
        assert_eq!(parse_ts("not a time"), None);
    }
}
