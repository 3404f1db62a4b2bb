//! The workers: claiming due tasks (from the table, or the Redis Stream in scale-out) and
//! running each to its end — its steps on their providers, retries with backoff, the
//! settlement of its credits and its events. Providers see a step only through
//! [`StepContext`](crate::providers::StepContext), implemented here.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::queue::{Delivery, Lease, RedisQueue, autoclaim, promote_loop, read_batch, reconcile_loop};
use crate::store::{Claim, ClaimedTask, DeadLetter, StepDone, StepStatus, TaskEnd, TaskRow};
use crate::tasks::finish;
use crate::tools::{StepConfig, ToolConfig};
use crate::traces;

/// How long a claimed task is leased to its worker (renewed every third of it while the
/// worker runs it) before another worker may take it.
pub fn lease(state: &AppState) -> Duration {
    Duration::from_secs(state.settings().tasks.lease_secs)
}

/// Runs tasks with `concurrency` at a time until `stop` turns true, then lets the running
/// ones finish (the caller bounds that with its grace period).
pub async fn run_workers(state: AppState, concurrency: usize, stop: watch::Receiver<bool>) {
    // Webhook deliveries go out from every process that runs tasks.
    let webhooks = tokio::spawn(crate::webhooks::run_dispatcher(state.clone(), stop.clone()));
    let vacuum = tokio::spawn(vacuum_loop(state.store().clone(), stop.clone()));
    match state.queue().delivery().clone() {
        Delivery::Stream(queue) => run_redis_workers(state, *queue, concurrency, stop).await,
        Delivery::Table => run_db_workers(state, concurrency, stop).await,
    }
    vacuum.abort();
    let _ = webhooks.await;
}

async fn run_db_workers(state: AppState, concurrency: usize, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut running = tokio::task::JoinSet::new();
    let lease = lease(&state);
    let max_attempts = state.settings().tasks.max_attempts;
    let per_user = state.settings().tasks.max_running_per_user;
    loop {
        if *stop.borrow() {
            break;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else { break };
        // As many as there are free permits, claimed in one transaction.
        let mut slots = vec![permit];
        while let Ok(more) = permits.clone().try_acquire_owned() {
            slots.push(more);
        }
        match state.store().queue_claim_many(lease, per_user, max_attempts, slots.len()).await {
            Ok(claimed) if !claimed.is_empty() => {
                for claimed in claimed {
                    let permit = slots.pop();
                    let state = state.clone();
                    running.spawn(crate::queue::in_slot(permit, async move {
                        Box::pin(execute(&state, claimed, None)).await
                    }));
                }
                drop(slots);
            }
            Ok(_) => {
                drop(slots);
                tokio::select! {
                    _ = state.queue().wakeup() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    // A dropped sender means stop too (else `changed` returns at once, forever).
                    changed = stop.changed() => if changed.is_err() { break; }
                }
            }
            Err(e) => {
                drop(slots);
                tracing::warn!(error = %e, "claiming a task failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

/// Claims and runs due tasks one after another in this call until none is left; returns
/// how many ran. For tests and one-shot tools (the table is the queue's truth on both
/// engines, so this works whatever delivers tasks normally).
pub async fn run_pending(state: &AppState) -> usize {
    let lease = lease(state);
    let max_attempts = state.settings().tasks.max_attempts;
    let per_user = state.settings().tasks.max_running_per_user;
    let mut ran = 0;
    loop {
        match state.store().queue_claim_many(lease, per_user, max_attempts, 1).await {
            Ok(claimed) if !claimed.is_empty() => {
                for claimed in claimed {
                    execute(state, claimed, None).await;
                    ran += 1;
                }
            }
            Ok(_) => return ran,
            Err(e) => {
                tracing::warn!(error = %e, "claiming a task failed");
                return ran;
            }
        }
    }
}

fn consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let host = if host.is_empty() { "worker".to_string() } else { host };
    format!("{host}-{}-{}", std::process::id(), &Uuid::new_v4().simple().to_string()[..8])
}

/// Runs at most this long on average (see [`RecentRuns`]) make a worker read ahead.
const SHORT_RUN: Duration = Duration::from_millis(100);

/// Entries read ahead go back to the stream when no slot has freed for this long.
const HOLD_MAX: Duration = Duration::from_secs(1);

/// How many entries beyond its free slots a worker reads from the stream.
///
/// A slot's turn is the stream read, then the claim: with short runs (echo tasks, ~5 ms a
/// turn under load) the read was ~a fifth of it, so a worker whose recent runs were short
/// reads up to half its slots ahead, and a freed slot starts the next entry at once. With
/// long runs (or none measured yet) it reads none ahead: entries it held would wait behind
/// its busy slots while other workers may be idle. Entries read ahead go back to the stream
/// when no slot frees for [`HOLD_MAX`] ([`RedisQueue::give_back`]), and when it stops.
fn read_ahead(concurrency: usize, recent: Option<Duration>) -> usize {
    match recent {
        Some(run) if run <= SHORT_RUN => concurrency / 2,
        _ => 0,
    }
}

/// The recent length of a run, from claim to end (a moving average), shared by a
/// worker's reader and its runs.
#[derive(Debug)]
struct RecentRuns(std::sync::atomic::AtomicU64);

impl RecentRuns {
    const NONE: u64 = u64::MAX;

    fn new() -> Self {
        Self(std::sync::atomic::AtomicU64::new(Self::NONE))
    }

    /// The average, `None` before the first run.
    fn get(&self) -> Option<Duration> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            Self::NONE => None,
            micros => Some(Duration::from_micros(micros)),
        }
    }

    /// One run more: an eighth of the average. A long run lifts it at once past
    /// [`SHORT_RUN`]; after long ones, it takes a few dozen short ones to fall back.
    fn add(&self, run: Duration) {
        let run = u64::try_from(run.as_micros()).unwrap_or(Self::NONE - 1).min(Self::NONE - 1);
        let _ =
            self.0.fetch_update(std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed, |old| {
                Some(if old == Self::NONE { run } else { old - old / 8 + run / 8 })
            });
    }
}

async fn run_redis_workers(state: AppState, queue: RedisQueue, concurrency: usize, mut stop: watch::Receiver<bool>) {
    let consumer: Arc<str> = consumer_name().into();
    while let Err(e) = queue.ensure_group().await {
        tracing::warn!(error = %e, "creating the Redis consumer group failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
    let helpers = [
        tokio::spawn(promote_loop(queue.clone(), stop.clone())),
        tokio::spawn(reconcile_loop(
            state.store().clone(),
            queue.clone(),
            Duration::from_secs(state.settings().tasks.reconcile_secs),
            stop.clone(),
        )),
    ];
    tracing::info!(%consumer, stream = queue.stream_key(), "worker reading the Redis queue");
    let lease = lease(&state);
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut running = tokio::task::JoinSet::new();
    let mut reader: Option<crate::redis_conn::RedisConn> = None;
    // Delivered entries not started yet: a stopped worker's (XAUTOCLAIM), or the rest of a
    // read that took as many entries as there were free permits.
    let mut backlog: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    // Looked for often enough that a dead worker's task runs again soon after its lease
    // (45 s by default): within lease + lease/6.
    let orphan_every = (lease / 6).max(Duration::from_millis(500));
    let mut orphans_checked =
        tokio::time::Instant::now().checked_sub(orphan_every).unwrap_or_else(tokio::time::Instant::now);
    let recent = Arc::new(RecentRuns::new());
    loop {
        while running.try_join_next().is_some() {}
        if *stop.borrow() {
            break;
        }
        let permit = if backlog.is_empty() {
            permits.clone().acquire_owned().await
        } else {
            tokio::select! {
                permit = permits.clone().acquire_owned() => permit,
                () = tokio::time::sleep(HOLD_MAX) => {
                    // Every slot stayed busy: what was read ahead goes back to the stream,
                    // where an idle worker takes it now.
                    give_back(&queue, &mut backlog).await;
                    continue;
                }
            }
        };
        let Ok(permit) = permit else { break };
        let conn = match &mut reader {
            Some(conn) => conn,
            None => match queue.redis().blocking_conn().await {
                Ok(conn) => reader.insert(conn),
                Err(e) => {
                    drop(permit);
                    tracing::warn!(error = %e, "connecting the queue reader failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        // Entries of workers that died: pending and idle for a whole lease.
        if backlog.is_empty() && orphans_checked.elapsed() >= orphan_every {
            orphans_checked = tokio::time::Instant::now();
            match autoclaim(conn, &queue, &consumer, lease).await {
                Ok(found) => {
                    if !found.is_empty() {
                        tracing::info!(count = found.len(), "took over queue entries of a stopped worker");
                    }
                    backlog.extend(found);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "XAUTOCLAIM failed");
                    recreate_lost_group(&queue, &e).await;
                }
            }
        }
        let delivered = match backlog.pop_front() {
            Some(entry) => Ok(Some(entry)),
            None => {
                let count = 1 + permits.available_permits() + read_ahead(concurrency, recent.get());
                tokio::select! {
                    read = read_batch(conn, &queue, &consumer, count) => read.map(|entries| {
                        backlog.extend(entries);
                        backlog.pop_front()
                    }),
                    _ = stop.changed() => {
                        drop(permit);
                        break;
                    }
                }
            }
        };
        let (entry, task_id) = match delivered {
            Ok(Some(entry)) => match entry.split_once('|') {
                Some((entry, task)) => (entry.to_string(), task.parse::<Uuid>().ok()),
                None => (entry, None),
            },
            Ok(None) => {
                drop(permit);
                continue;
            }
            Err(e) => {
                drop(permit);
                reader = None;
                tracing::warn!(error = %e, "reading the Redis queue failed; reconnecting");
                crate::telemetry::redis_reconnect("queue");
                recreate_lost_group(&queue, &e).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let Some(task_id) = task_id else {
            tracing::warn!(%entry, "a queue entry without a task id; dropping it");
            queue.done(&entry);
            drop(permit);
            continue;
        };
        let lease = Lease { queue: queue.clone(), consumer: consumer.clone(), entry };
        // Claimed in a task of its own: claims that overlap go to the database together
        // (group commit), and reading goes on meanwhile.
        let (state, recent) = (state.clone(), recent.clone());
        running.spawn(async move { start_delivered(&state, lease, task_id, permit, &recent).await });
    }
    // Entries read ahead (or taken over) and not started: for the other workers, now rather
    // than after a lease.
    give_back(&queue, &mut backlog).await;
    while running.join_next().await.is_some() {}
    for helper in helpers {
        helper.abort();
    }
}

/// Sends the entries of `backlog` back to the stream (see [`read_ahead`]).
async fn give_back(queue: &RedisQueue, backlog: &mut std::collections::VecDeque<String>) {
    if backlog.is_empty() {
        return;
    }
    let entries: Vec<String> = backlog.drain(..).collect();
    match queue.give_back(&entries).await {
        Ok(()) => tracing::debug!(count = entries.len(), "gave entries read ahead back to the stream"),
        // Left pending: taken over after a lease, as a stopped worker's.
        Err(e) => tracing::warn!(error = %e, count = entries.len(), "giving queue entries back failed"),
    }
}

/// Keeps the queue table small on PostgreSQL: every task leaves two or three dead row
/// versions in `task_queue` (claimed, ended), and until they are vacuumed every look at
/// the queue head (each submit's position, each queued task's view) steps over them, so
/// without it a backlog of tens of thousands makes every such look cost a millisecond and
/// more. Autovacuum does this where it runs with its defaults; it may be off or slow (this
/// does not rely on it). The check is one read of the table's statistics.
async fn vacuum_loop(store: crate::store::Store, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = store.queue_vacuum(5_000).await {
            tracing::debug!(error = %e, "vacuuming the queue table failed");
        }
    }
}

/// A Redis that restarted empty (it keeps nothing on disk) has lost the stream and its
/// consumer group: every read answers NOGROUP until the group exists again. It is made
/// again from the start of the stream, so the reconciler's re-sent entries are read.
async fn recreate_lost_group(queue: &RedisQueue, err: &redis::RedisError) {
    if err.code() != Some("NOGROUP") {
        return;
    }
    match queue.ensure_group().await {
        Ok(()) => tracing::warn!("the Redis queue's consumer group was gone (Redis restarted empty?); made it again"),
        Err(e) => tracing::warn!(error = %e, "making the Redis queue's consumer group again failed"),
    }
}

/// Claims a delivered task and, if it is ours now, runs it under `permit`; otherwise
/// settles the entry (ended, running elsewhere, not due yet, or parked at its user's limit).
async fn start_delivered(
    state: &AppState,
    entry: Lease,
    task_id: Uuid,
    permit: tokio::sync::OwnedSemaphorePermit,
    recent: &RecentRuns,
) {
    let tasks = &state.settings().tasks;
    let began = tokio::time::Instant::now();
    // The claim's span joins the task's trace once the claim has read where it belongs.
    let span = traces::enabled().then(|| tracing::info_span!("claim", otel.name = "claim task", %task_id));
    let claim = Box::pin(state.store().queue_claim(
        Some(task_id),
        lease(state),
        tasks.max_running_per_user,
        tasks.max_attempts,
    ))
    .await;
    if let (Some(span), Ok(Claim::Claimed(claimed))) = (&span, &claim)
        && let Some(parent) = &claimed.task.trace_parent
    {
        traces::set_parent(span, parent);
    }
    drop(span);
    match claim {
        Ok(Claim::Claimed(claimed)) => {
            crate::queue::in_slot(Some(permit), Box::pin(execute(state, claimed, Some(&entry)))).await;
            recent.add(began.elapsed());
            entry.queue.done(&entry.entry);
        }
        Ok(claim) => {
            drop(permit);
            // Ended, running elsewhere, or waiting: this entry is not needed any more.
            if let Claim::NotDue(due) = claim {
                let _ = entry.queue.push_at(task_id, due).await;
            }
            // UserAtLimit: parked, sent again when one of the user's tasks ends (and by the
            // reconciler, should that be lost).
            entry.queue.done(&entry.entry);
        }
        Err(e) => {
            // Leave it pending: XAUTOCLAIM hands it out again after a lease. The permit is
            // held through the pause, so a failing database slows the reader down.
            tracing::warn!(%task_id, error = %e, "claiming a delivered task failed");
            tokio::time::sleep(Duration::from_millis(500)).await;
            drop(permit);
        }
    }
}

/// Runs one claimed task to its end, renewing its lease meanwhile; every outcome is
/// recorded, credits resolve once.
pub async fn execute(state: &AppState, claimed: Box<ClaimedTask>, delivery: Option<&Lease>) {
    let labels = crate::telemetry::TaskLabels {
        tool: crate::telemetry::tool_label(state, claimed.task.tool_id).await,
        cost: claimed.task.credits_cost,
    };
    if claimed.attempts <= 1 {
        let waited = chrono::Utc::now() - claimed.task.created_at;
        crate::telemetry::queue_wait(waited.to_std().unwrap_or_default());
    }
    if !traces::enabled() {
        return crate::telemetry::with_task(labels, Box::pin(execute_labelled(state, claimed, delivery))).await;
    }
    // The run's span continues the trace of the request that submitted the task, in
    // whichever process runs it; steps, provider requests and the settlement are its children.
    let span = tracing::info_span!(
        "task",
        otel.name = "run task",
        otel.kind = "consumer",
        task_id = %claimed.task.id,
        attempt = claimed.attempts,
    );
    if let Some(parent) = &claimed.task.trace_parent {
        traces::set_parent(&span, parent);
    }
    traces::set_attribute(&span, "funmagic.tool.id", claimed.task.tool_id.to_string());
    crate::telemetry::with_task(labels, Box::pin(execute_labelled(state, claimed, delivery))).instrument(span).await;
}

async fn execute_labelled(state: &AppState, claimed: Box<ClaimedTask>, delivery: Option<&Lease>) {
    let task_id = claimed.task.id;
    let heartbeat = {
        let state = state.clone();
        let delivery = delivery.cloned();
        tokio::spawn(async move {
            let lease = lease(&state);
            loop {
                tokio::time::sleep(lease / 3).await;
                // Boxed: this future is spawned once per task, and moved whole each time.
                if let Err(e) = Box::pin(state.store().queue_renew(task_id, lease)).await {
                    tracing::warn!(%task_id, error = %e, "renewing the task lease failed");
                }
                if let Some(delivery) = &delivery {
                    delivery.touch().await;
                }
            }
        })
    };
    // A panic in a step must not leave the task running under a lease renewed forever.
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let heartbeat = AbortOnDrop(heartbeat);
    // Boxed, like the other futures of a run (the claim, `execute`, `execute_labelled`):
    // each layer around a future holds it inline and moves it whole, and unboxed the future
    // a worker spawned per task was 186 KB (now ~1.2 KB; the largest box, this one, ~15 KB).
    let run = Box::pin(try_execute(state, *claimed));
    let result = match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run)).await {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(%task_id, panic = %what, "a step panicked");
            Err(AppError::new(ErrorKind::Internal, ErrorCode::StepPanicked, "the step stopped on an internal error"))
        }
    };
    drop(heartbeat);
    if let Err(e) = result {
        traces::set_error(&tracing::Span::current(), e.message.clone());
        tracing::error!(%task_id, error = %e, "task failed unexpectedly");
        let event = json!({ "error": e.message, "code": e.code });
        if let Err(e) = finish(state, task_id, TaskEnd::failed(&e.message, &event)).await {
            tracing::error!(%task_id, error = %e, "recording the failure failed; the lease will expire and the task run again");
        }
    }
}

/// Transient failures (timeouts, unavailable providers) are retried; the rest are final.
fn is_transient(e: &AppError) -> bool {
    matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Internal) && e.code != ErrorCode::StepNotAvailable
}

/// `base × 2^(attempt−1)`, at most 5 minutes, plus up to a quarter of jitter.
fn backoff(state: &AppState, attempt: u32) -> Duration {
    crate::backoff::delay(state.settings().tasks.retry_base_ms, 300_000, attempt)
}

async fn try_execute(state: &AppState, claimed: ClaimedTask) -> AppResult<()> {
    let ClaimedTask { task, attempts, input, steps, tool_updated_at, mut started } = claimed;
    let task_id = task.id;
    let attempt = attempts.max(1) as u32;
    if task.is_terminal() {
        // Already ended (a duplicate delivery, or a crash after the end): only its queue row
        // is left to clear.
        state.store().queue_remove(task_id).await?;
        return Ok(());
    }
    let max_attempts = state.settings().tasks.max_attempts;
    if attempt > max_attempts {
        return give_up_crashed(state, task_id, attempt).await;
    }
    let config = state.catalogue().config(task.tool_id, tool_updated_at).await?;
    let mut spent = 0i64;
    let mut output = Value::Null;
    let mut first_in_run = true;
    let last = steps.len().saturating_sub(1);
    for (i, step) in steps.into_iter().enumerate() {
        let cfg = config
            .step(&step.step_id)
            .ok_or_else(|| AppError::internal(format!("step {} missing from tool", step.step_id)))?;
        if step.status == StepStatus::Completed {
            // Done before a crash or restart: keep its result, do not run (or pay) twice.
            spent += cfg.cost;
            output = step.state.0.get("output").cloned().unwrap_or(Value::Null);
            continue;
        }
        let begun = match started.take() {
            // The claim started it already.
            Some((step_id, event)) if step_id == cfg.id => Some(event),
            _ => {
                let data = json!({ "stepId": cfg.id, "stepName": cfg.name });
                state.store().task_step_begin(task_id, &cfg.id, first_in_run, data).await?
            }
        };
        let Some(event) = begun else {
            // Ended meanwhile, or to be cancelled before this step.
            if state.store().task_get(task_id).await?.is_some_and(|t| t.cancel_requested && !t.is_terminal()) {
                return finish_cancelled(state, task_id, spent).await;
            }
            state.store().queue_remove(task_id).await?;
            return Ok(());
        };
        first_in_run = false;
        state.events().publish_recorded(task_id, &[event]).await;
        let step_input = if output.is_null() { input.clone() } else { merge(&input, &output) };
        let step_span = if traces::enabled() {
            tracing::info_span!("step", otel.name = %format_args!("step {}", cfg.id), step_id = %cfg.id, attempt)
        } else {
            tracing::Span::none()
        };
        let ran = run_step(state, &task, &config, cfg, &step_input, attempt, step.state.0)
            .instrument(step_span.clone())
            .await;
        if let Err(e) = &ran {
            traces::set_error(&step_span, format!("{}: {}", e.code, e.message));
        }
        drop(step_span);
        match ran {
            Ok(out) if i == last => {
                // The last step's completion, the task's end and its settlement: one transaction.
                spent += cfg.cost;
                let event = json!({ "output": out, "creditsSpent": spent });
                let done = StepDone { step_id: &cfg.id, output: &out };
                finish(state, task_id, TaskEnd::completed(&out, &event).with_step(done)).await?;
                return Ok(());
            }
            Ok(out) => {
                let event = json!({ "stepId": cfg.id, "output": out });
                if let Some(event) = state.store().task_step_done(task_id, &cfg.id, &out, event).await? {
                    state.events().publish_recorded(task_id, &[event]).await;
                }
                spent += cfg.cost;
                output = out;
            }
            Err(e) if is_transient(&e) && attempt < max_attempts => {
                return retry_later(state, task_id, cfg, &e, attempt).await;
            }
            Err(e) => return fail(state, task_id, cfg, e, attempt).await,
        }
    }
    // Every step had completed before (a crash right after the last one).
    let event = json!({ "output": output, "creditsSpent": spent });
    finish(state, task_id, TaskEnd::completed(&output, &event)).await?;
    Ok(())
}

/// Every earlier run ended without recording anything: its worker died (or was killed)
/// while running it. Running it yet again could take the next one down too.
async fn give_up_crashed(state: &AppState, task_id: Uuid, attempt: u32) -> AppResult<()> {
    let message = format!("given up after {} runs that each stopped their worker", attempt - 1);
    let event = json!({ "error": message, "code": ErrorCode::WorkerCrashes });
    let dead = DeadLetter { reason: "worker_crashes", error: message.clone(), attempts: (attempt - 1) as i32 };
    finish(state, task_id, TaskEnd::failed(&message, &event).dead_letter(Some(&dead))).await?;
    Ok(())
}

/// A transient failure with attempts left: the step keeps what it saved (a provider job
/// id, so the retry resumes it), the task is due again after the backoff.
async fn retry_later(state: &AppState, task_id: Uuid, cfg: &StepConfig, e: &AppError, attempt: u32) -> AppResult<()> {
    let max_attempts = state.settings().tasks.max_attempts;
    let delay = backoff(state, attempt);
    let message =
        format!("{} — retrying in {} ms (attempt {} of {max_attempts})", e.message, delay.as_millis(), attempt + 1);
    let notice = json!({ "stepId": cfg.id, "progress": 0, "message": message, "retry": attempt + 1 });
    let patch = json!({ "lastError": e.message });
    crate::telemetry::task_retry();
    if let Some(event) = state.store().task_step_retry(task_id, &cfg.id, patch, delay, notice).await? {
        let due = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        state.queue().enqueue_at(task_id, due).await;
        state.events().publish_recorded(task_id, &[event]).await;
    }
    Ok(())
}

/// A failure for good: the step and the task fail (nothing is spent); retries that ran
/// out put it on the dead-letter list.
async fn fail(state: &AppState, task_id: Uuid, cfg: &StepConfig, e: AppError, attempt: u32) -> AppResult<()> {
    let message = if attempt > 1 { format!("{} (after {attempt} attempts)", e.message) } else { e.message.clone() };
    let e = AppError { message, ..e };
    traces::set_error(&tracing::Span::current(), e.message.clone());
    state.store().task_step_fail(task_id, &cfg.id, &e.message).await?;
    let event = json!({ "error": e.message, "code": e.code });
    let dead = is_transient(&e).then(|| DeadLetter {
        reason: "retries_exhausted",
        error: e.message.clone(),
        attempts: attempt as i32,
    });
    finish(state, task_id, TaskEnd::failed(&e.message, &event).dead_letter(dead.as_ref())).await?;
    Ok(())
}

async fn finish_cancelled(state: &AppState, task_id: Uuid, spent: i64) -> AppResult<()> {
    let event = json!({ "reason": "cancelled while running", "creditsSpent": spent });
    finish(state, task_id, TaskEnd::cancelled(spent, &event)).await?;
    Ok(())
}

fn merge(input: &Value, previous: &Value) -> Value {
    let mut merged = input.clone();
    crate::providers::merge_into(&mut merged, previous);
    merged
}

/// Copies the fields of the object `extra` into the object `target` (overwriting).
/// What a step may use while it runs ([`crate::providers::StepContext`]): this process's
/// events, the task's step state in the store, and the user's assets.
struct StepHost<'a>(&'a AppState);

#[async_trait::async_trait]
impl crate::providers::StepContext for StepHost<'_> {
    fn settings(&self) -> &crate::config::Settings {
        self.0.settings()
    }

    fn http(&self) -> &reqwest::Client {
        self.0.http()
    }

    fn master_key(&self) -> &crate::providers::crypto::MasterKey {
        self.0.master_key()
    }

    fn catalogue(&self) -> &crate::tools::Catalogue {
        self.0.catalogue()
    }

    async fn progress(&self, task_id: Uuid, data: Value) {
        self.0.events().progress(task_id, data).await;
    }

    async fn save_state(&self, task_id: Uuid, step_id: &str, state: &Value) -> AppResult<()> {
        Ok(self.0.store().task_step_save(task_id, step_id, state).await?)
    }

    async fn read_input(&self, user_id: Uuid, key: &str) -> AppResult<(crate::store::AssetRow, bytes::Bytes)> {
        crate::assets::read_owned(self.0, user_id, key).await
    }

    async fn input_url(&self, user_id: Uuid, input: &Value) -> AppResult<String> {
        crate::assets::resolve_image_url(self.0, user_id, input).await
    }

    async fn store_output(
        &self,
        user_id: Uuid,
        task_id: Uuid,
        module: &str,
        filename: &str,
        file_type: crate::storage::FileType,
        data: bytes::Bytes,
    ) -> AppResult<crate::store::AssetRow> {
        crate::assets::store_output(self.0, user_id, Some(task_id), module, filename, file_type, data).await
    }
}

/// Runs a step on its provider (see [`crate::providers`]), with what an earlier run of the
/// step saved, within `tasks.step_timeout_secs`.
async fn run_step(
    state: &AppState,
    task: &TaskRow,
    tool: &ToolConfig,
    step: &StepConfig,
    input: &Value,
    attempt: u32,
    saved: Value,
) -> AppResult<Value> {
    let host = StepHost(state);
    let run = crate::providers::run(crate::providers::StepRun {
        ctx: &host,
        task_id: task.id,
        user_id: task.user_id,
        step,
        tool,
        input,
        attempt,
        saved,
    });
    let timeout = Duration::from_secs(state.settings().tasks.step_timeout_secs);
    let started = std::time::Instant::now();
    let result = match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(AppError::new(
            ErrorKind::Unavailable,
            ErrorCode::StepTimeout,
            format!("step '{}' ran longer than {} s", step.id, timeout.as_secs()),
        )),
    };
    if crate::telemetry::enabled() {
        let provider = match state.catalogue().provider(step.provider_id).await {
            Ok(Some(p)) => p.kind.as_str(),
            _ => "unknown",
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) if e.code == ErrorCode::StepTimeout => "timeout",
            Err(_) => "error",
        };
        let tool = crate::telemetry::current_task().map(|l| l.tool).unwrap_or_else(|| "unknown".into());
        crate::telemetry::step_run(&tool, provider, outcome, started.elapsed());
    }
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{RecentRuns, SHORT_RUN, read_ahead};

    #[test]
    fn a_worker_reads_ahead_only_while_its_runs_are_short() {
        assert_eq!(read_ahead(10, None), 0, "nothing measured yet");
        assert_eq!(read_ahead(10, Some(Duration::from_millis(5))), 5);
        assert_eq!(read_ahead(10, Some(SHORT_RUN)), 5);
        assert_eq!(read_ahead(10, Some(SHORT_RUN + Duration::from_millis(1))), 0);
        assert_eq!(read_ahead(1, Some(Duration::from_millis(5))), 0, "one slot: nothing ahead");
    }

    #[test]
    fn one_long_run_stops_the_reading_ahead_and_short_ones_bring_it_back() {
        let recent = RecentRuns::new();
        assert_eq!(recent.get(), None);
        for _ in 0..10 {
            recent.add(Duration::from_millis(4));
        }
        assert_eq!(recent.get(), Some(Duration::from_millis(4)));
        recent.add(Duration::from_secs(60));
        assert!(recent.get().unwrap() > SHORT_RUN, "{:?}", recent.get());
        let mut short_runs = 0;
        while recent.get().unwrap() > SHORT_RUN {
            recent.add(Duration::from_millis(4));
            short_runs += 1;
            assert!(short_runs < 100, "{:?}", recent.get());
        }
        assert!(short_runs > 10, "{short_runs}");
        recent.add(Duration::from_secs(u64::MAX / 2));
        assert!(recent.get().is_some(), "a huge run is a long run, not no run");
    }
}
