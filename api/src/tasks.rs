//! Tasks: submitting (validate, reserve and enqueue in one transaction), reading,
//! cancelling, the in-process workers that run them, and their replayable progress events.
//!
//! The database is the source of truth: the queue table only carries task ids with a
//! lease, so a worker that dies mid-task leaves a lease that expires and the task is run
//! again; steps already completed are skipped, and credits resolve exactly once through the
//! ledger whatever happens twice.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Access, Principal};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::{DeadLetter, NewTask, TaskEnd, TaskRow};
use crate::tools::{StepConfig, ToolConfig};

/// How long a claimed task is leased to its worker (renewed every third of it while the
/// worker runs it) before another worker may take it.
pub fn lease(state: &AppState) -> Duration {
    Duration::from_secs(state.settings().tasks.lease_secs)
}
/// Event types that end a stream.
pub const TERMINAL_EVENTS: [&str; 3] = ["completed", "failed", "cancelled"];

/// What a client submits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Submit {
    pub tool_slug: String,
    pub step_id: Option<String>,
    pub input: Value,
    pub parent_task_id: Option<Uuid>,
    pub run_all_steps: bool,
}

/// Validates, reserves the cost and enqueues — atomically — then wakes a worker.
pub async fn submit(state: &AppState, principal: &Principal, req: &Submit) -> AppResult<TaskRow> {
    principal.require(Access::Write)?;
    let tool = state
        .store()
        .tool_get_by_slug(&req.tool_slug)
        .await?
        .filter(|t| t.is_active)
        .ok_or_else(|| AppError::not_found("tool"))?;
    let config: ToolConfig = serde_json::from_value(tool.config.0.clone()).map_err(AppError::internal)?;
    let steps: Vec<&StepConfig> = match (&req.step_id, req.run_all_steps) {
        (Some(_), true) => return Err(AppError::validation("give stepId or runAllSteps, not both")),
        (Some(id), false) => vec![config.step(id).ok_or_else(|| {
            AppError::new(ErrorKind::Validation, "UNKNOWN_STEP", format!("tool '{}' has no step '{id}'", tool.slug))
        })?],
        (None, true) => config.steps.iter().collect(),
        (None, false) => config.steps.iter().take(1).collect(),
    };
    if !req.input.is_object() {
        return Err(AppError::validation("input must be a JSON object"));
    }
    let mut input = req.input.clone();
    if let Some(parent_id) = req.parent_task_id {
        let parent = state
            .store()
            .task_get(parent_id)
            .await?
            .filter(|p| p.user_id == principal.user_id())
            .ok_or_else(|| AppError::not_found("parent task"))?;
        if parent.status != "completed" {
            return Err(AppError::conflict("PARENT_NOT_COMPLETED", "the parent task has not completed"));
        }
        let output =
            state.store().task_payload(parent_id).await?.and_then(|p| p.output).map(|o| o.0).unwrap_or(Value::Null);
        if input.get("imageStorageKey").is_none()
            && let Some(key) = output.get("imageStorageKey")
        {
            input["imageStorageKey"] = key.clone();
        }
        input["parentOutput"] = output;
    }
    if let Some(style) = input.get("style") {
        let known = style.as_str().is_some_and(|id| config.style_references.iter().any(|s| s.id == id));
        if !known {
            let ids: Vec<&str> = config.style_references.iter().map(|s| s.id.as_str()).collect();
            return Err(AppError::new(
                ErrorKind::Validation,
                "UNKNOWN_STYLE",
                format!(
                    "tool '{}' has no style {style} (styles: {})",
                    tool.slug,
                    if ids.is_empty() { "none".to_string() } else { ids.join(", ") }
                ),
            ));
        }
    }
    // The first step takes the user's input; later steps of a chain take their image from
    // the step before.
    if let Some(first) = steps.first() {
        let provider = state.store().provider_get(first.provider_id).await?;
        validate_input(first, provider.as_ref().map(|p| p.kind.as_str()).unwrap_or(""), &input)?;
    }
    let cost: i64 = steps.iter().map(|s| s.cost).sum();
    let new = NewTask {
        id: Uuid::now_v7(),
        user_id: principal.user_id(),
        tool_id: tool.id,
        parent_task_id: req.parent_task_id,
        steps: steps.iter().map(|s| s.id.clone()).collect(),
        run_all_steps: req.run_all_steps,
        cost,
        input,
    };
    start(state, &new).await
}

/// Inserts a new task (reserving its cost, with its `queued` event, in one transaction),
/// then publishes that event and sends the task to the workers.
async fn start(state: &AppState, new: &NewTask) -> AppResult<TaskRow> {
    let task = state.store().task_submit(new).await.map_err(|e| crate::credits::ledger_error(e, new.cost))?;
    crate::events::publish_missing(state, task.id).await;
    crate::queue::enqueue(state, task.id).await;
    state.notify_task(task.id);
    Ok(task)
}

/// Input each step type needs.
fn validate_input(step: &StepConfig, provider_kind: &str, input: &Value) -> AppResult<()> {
    // These read the file's bytes themselves (the others are given a URL to fetch).
    if matches!(provider_kind, "local" | "openai")
        && step.kind != "echo"
        && input.get("imageUrl").is_some()
        && input.get("imageStorageKey").is_none()
    {
        return Err(AppError::new(
            ErrorKind::Validation,
            "INVALID_INPUT",
            format!(
                "the {provider_kind} provider works on uploaded files: give imageStorageKey (upload the image first)"
            ),
        ));
    }
    match step.kind.as_str() {
        "echo" => {
            if let Some(delay) = input.get("delayMs")
                && delay.as_u64().is_none_or(|d| d > 600_000)
            {
                return Err(AppError::validation("delayMs must be a whole number of milliseconds up to 600000"));
            }
            Ok(())
        }
        _ if input.get("imageStorageKey").is_some() || input.get("imageUrl").is_some() => Ok(()),
        "image-gen" if input.get("prompt").is_some() || input.get("style").is_some() => Ok(()),
        kind => Err(AppError::new(
            ErrorKind::Validation,
            "INVALID_INPUT",
            format!("a {kind} step needs imageStorageKey or imageUrl in the input"),
        )),
    }
}

/// An admin runs a failed or cancelled task again: a new task of the same user, tool, steps
/// and input, its cost reserved from that user like any submission.
pub async fn retry(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<TaskRow> {
    principal.require(Access::Admin)?;
    let old = state.store().task_get(id).await?.ok_or_else(|| AppError::not_found("task"))?;
    if !matches!(old.status.as_str(), "failed" | "cancelled") {
        return Err(AppError::conflict(
            "TASK_NOT_FAILED",
            format!("only failed or cancelled tasks are retried; this one is {}", old.status),
        ));
    }
    let tool = state.store().tool_get(old.tool_id).await?.ok_or_else(|| AppError::not_found("tool"))?;
    let config: ToolConfig = serde_json::from_value(tool.config.0).map_err(AppError::internal)?;
    let steps: Vec<String> = state.store().task_steps(id).await?.into_iter().map(|s| s.step_id).collect();
    let mut cost = 0;
    for step in &steps {
        cost += config
            .step(step)
            .ok_or_else(|| AppError::conflict("TOOL_CHANGED", format!("the tool no longer has step '{step}'")))?
            .cost;
    }
    let input = state.store().task_payload(id).await?.map(|p| p.input.0).unwrap_or_else(|| json!({}));
    let new = NewTask {
        id: Uuid::now_v7(),
        user_id: old.user_id,
        tool_id: old.tool_id,
        parent_task_id: old.parent_task_id,
        steps,
        run_all_steps: old.run_all_steps,
        cost,
        input,
    };
    let task = start(state, &new).await?;
    tracing::info!(retried = %id, task_id = %task.id, by = %principal.user_id(), "task retried by an admin");
    Ok(task)
}

/// The caller's task (admins: anyone's); 404 otherwise.
pub async fn task_for(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<TaskRow> {
    let task = state.store().task_get(id).await?.ok_or_else(|| AppError::not_found("task"))?;
    if principal.can_see_user(task.user_id) { Ok(task) } else { Err(AppError::not_found("task")) }
}

/// Queued: cancelled and released at once. Running: flagged; the worker stops before its
/// next step and releases the cost of the steps it did not run.
pub async fn cancel(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<TaskRow> {
    principal.require(Access::Write)?;
    let task = task_for(state, principal, id).await?;
    if task.is_terminal() {
        return Err(AppError::conflict("TASK_FINISHED", format!("the task already {}", task.status)));
    }
    let status = state.store().task_request_cancel(id).await?.unwrap_or_default();
    if status == "queued" {
        let event = json!({ "reason": "cancelled while queued", "creditsSpent": 0 });
        finish(state, id, TaskEnd::cancelled(0, &event)).await?;
    }
    state.notify_task(id);
    state.store().task_get(id).await?.ok_or_else(|| AppError::not_found("task"))
}

/// Records an event and wakes the streams following this task.
pub async fn emit(state: &AppState, task_id: Uuid, kind: &str, mut data: Value) -> AppResult<i64> {
    data["type"] = kind.into();
    let seq = state.store().task_event_append(task_id, kind, &data).await?;
    crate::events::publish(state, task_id, seq, kind, &data).await;
    state.notify_task(task_id);
    Ok(seq)
}

pub use crate::queue::run_workers;

/// Runs one claimed task to its end, renewing its lease meanwhile; every outcome is
/// recorded, credits resolve once.
pub async fn execute(state: &AppState, task_id: Uuid, attempt: u32, delivery: Option<&crate::queue::Delivery>) {
    let heartbeat = {
        let state = state.clone();
        let delivery = delivery.cloned();
        tokio::spawn(async move {
            let lease = lease(&state);
            loop {
                tokio::time::sleep(lease / 3).await;
                if let Err(e) = state.store().queue_renew(task_id, lease).await {
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
    let result = match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(try_execute(
        state, task_id, attempt,
    )))
    .await
    {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(%task_id, panic = %what, "a step panicked");
            Err(AppError::new(ErrorKind::Internal, "STEP_PANICKED", "the step stopped on an internal error"))
        }
    };
    drop(heartbeat);
    if let Err(e) = result {
        tracing::error!(%task_id, error = %e, "task failed unexpectedly");
        let event = json!({ "error": e.message, "code": e.code });
        if let Err(e) = finish(state, task_id, TaskEnd::failed(&e.message, &event)).await {
            tracing::error!(%task_id, error = %e, "recording the failure failed; the lease will expire and the task run again");
        }
    }
}

/// Transient failures (timeouts, unavailable providers) are retried; the rest are final.
fn is_transient(e: &AppError) -> bool {
    matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Internal) && e.code != "STEP_NOT_AVAILABLE"
}

/// `base × 2^(attempt−1)`, at most 5 minutes, plus up to a quarter of jitter.
fn backoff(state: &AppState, attempt: u32) -> Duration {
    let base = state.settings().tasks.retry_base_ms;
    let delay = base.saturating_mul(1u64 << attempt.saturating_sub(1).min(20)).min(300_000);
    let mut jitter = [0u8; 2];
    let _ = getrandom::fill(&mut jitter);
    let jitter = u64::from(u16::from_le_bytes(jitter)) * (delay / 4 + 1) / u64::from(u16::MAX);
    Duration::from_millis(delay + jitter)
}

async fn try_execute(state: &AppState, task_id: Uuid, attempt: u32) -> AppResult<()> {
    let Some(task) = state.store().task_get(task_id).await? else { return Ok(()) };
    if task.is_terminal() {
        // Already ended (a duplicate delivery, or a crash after the end): only its queue row
        // is left to clear.
        state.store().queue_remove(task_id).await?;
        return Ok(());
    }
    let max_attempts = state.settings().tasks.max_attempts;
    if attempt > max_attempts {
        // Every earlier run ended without recording anything: its worker died (or was
        // killed) while running it. Running it yet again could take the next one down too.
        let message = format!("given up after {} runs that each stopped their worker", attempt - 1);
        let event = json!({ "error": message, "code": "WORKER_CRASHES" });
        let dead = DeadLetter { reason: "worker_crashes", error: message.clone(), attempts: (attempt - 1) as i32 };
        finish(state, task_id, TaskEnd::failed(&message, &event).dead_letter(Some(&dead))).await?;
        return Ok(());
    }
    let tool = state.store().tool_get(task.tool_id).await?.ok_or_else(|| AppError::internal("tool vanished"))?;
    let config: ToolConfig = serde_json::from_value(tool.config.0).map_err(AppError::internal)?;
    let input = state.store().task_payload(task_id).await?.map(|p| p.input.0).unwrap_or(Value::Null);
    state.store().task_start(task_id).await?;
    let mut spent = 0i64;
    let mut output = Value::Null;
    for step in state.store().task_steps(task_id).await? {
        let cfg = config
            .step(&step.step_id)
            .ok_or_else(|| AppError::internal(format!("step {} missing from tool", step.step_id)))?;
        if step.status == "completed" {
            // Done before a crash or restart: keep its result, do not run (or pay) twice.
            spent += cfg.cost;
            output = step.state.0.get("output").cloned().unwrap_or(Value::Null);
            continue;
        }
        if state.store().task_get(task_id).await?.is_some_and(|t| t.cancel_requested) {
            return finish_cancelled(state, task_id, spent).await;
        }
        emit(state, task_id, "step_started", json!({ "stepId": cfg.id, "stepName": cfg.name })).await?;
        state.store().task_step_set(task_id, &cfg.id, "running", None).await?;
        let step_input = if output.is_null() { input.clone() } else { merge(&input, &output) };
        let timeout = Duration::from_secs(state.settings().tasks.step_timeout_secs);
        let result = match tokio::time::timeout(
            timeout,
            run_step(state, &task, &config, cfg, &step_input, attempt, step.state.0.clone()),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(AppError::new(
                ErrorKind::Unavailable,
                "STEP_TIMEOUT",
                format!("step '{}' ran longer than {} s", cfg.id, timeout.as_secs()),
            )),
        };
        match result {
            Ok(out) => {
                let kept = merged_step_state(state, task_id, &cfg.id, json!({ "output": out })).await?;
                state.store().task_step_set(task_id, &cfg.id, "completed", Some(&kept)).await?;
                emit(state, task_id, "step_completed", json!({ "stepId": cfg.id, "output": out })).await?;
                spent += cfg.cost;
                output = out;
            }
            Err(e) if is_transient(&e) && attempt < state.settings().tasks.max_attempts => {
                let delay = backoff(state, attempt);
                // Keep what the run saved (a provider job id) so the retry resumes it.
                let kept = merged_step_state(state, task_id, &cfg.id, json!({ "lastError": e.message })).await?;
                state.store().task_step_set(task_id, &cfg.id, "pending", Some(&kept)).await?;
                state.store().queue_retry(task_id, delay).await?;
                let due = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                crate::queue::enqueue_at(state, task_id, due).await;
                let message = format!(
                    "{} — retrying in {} ms (attempt {} of {})",
                    e.message,
                    delay.as_millis(),
                    attempt + 1,
                    state.settings().tasks.max_attempts
                );
                emit(
                    state,
                    task_id,
                    "progress",
                    json!({ "stepId": cfg.id, "progress": 0, "message": message, "retry": attempt + 1 }),
                )
                .await?;
                return Ok(());
            }
            Err(e) => {
                let message =
                    if attempt > 1 { format!("{} (after {attempt} attempts)", e.message) } else { e.message.clone() };
                let e = AppError { message, ..e };
                state.store().task_step_set(task_id, &cfg.id, "failed", Some(&json!({ "error": e.message }))).await?;
                let event = json!({ "error": e.message, "code": e.code });
                let dead = is_transient(&e).then(|| DeadLetter {
                    reason: "retries_exhausted",
                    error: e.message.clone(),
                    attempts: attempt as i32,
                });
                finish(state, task_id, TaskEnd::failed(&e.message, &event).dead_letter(dead.as_ref())).await?;
                return Ok(());
            }
        }
    }
    let event = json!({ "output": output, "creditsSpent": spent });
    finish(state, task_id, TaskEnd::completed(&output, &event)).await?;
    Ok(())
}

async fn finish_cancelled(state: &AppState, task_id: Uuid, spent: i64) -> AppResult<()> {
    let event = json!({ "reason": "cancelled while running", "creditsSpent": spent });
    finish(state, task_id, TaskEnd::cancelled(spent, &event)).await?;
    Ok(())
}

/// Ends a task with its settlement and terminal event in one transaction (see
/// `Store::task_finish`), then wakes its streams and the user's waiting tasks; false if it
/// had already ended.
async fn finish(state: &AppState, task_id: Uuid, end: TaskEnd<'_>) -> AppResult<bool> {
    let ended = state.store().task_finish(task_id, &end).await.map_err(|e| crate::credits::ledger_error(e, 0))?;
    if ended {
        crate::events::publish_end(state, task_id).await;
        crate::queue::user_slot_freed(state, task_id).await;
    }
    state.notify_task(task_id);
    Ok(ended)
}

fn merge(input: &Value, previous: &Value) -> Value {
    let mut merged = input.clone();
    merge_into(&mut merged, previous);
    merged
}

/// Copies the fields of the object `extra` into the object `target` (overwriting).
pub(crate) fn merge_into(target: &mut Value, extra: &Value) {
    if let (Some(t), Some(e)) = (target.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            t.insert(k.clone(), v.clone());
        }
    }
}

/// The step's saved state with `patch` merged in.
async fn merged_step_state(state: &AppState, task_id: Uuid, step_id: &str, patch: Value) -> AppResult<Value> {
    let current =
        state.store().task_steps(task_id).await?.into_iter().find(|s| s.step_id == step_id).map(|s| s.state.0);
    Ok(match current {
        Some(Value::Object(_)) => merge(&current.unwrap_or_default(), &patch),
        _ => patch,
    })
}

/// Runs a step on its provider (see [`crate::providers`]), with what an earlier run of the
/// step saved.
async fn run_step(
    state: &AppState,
    task: &TaskRow,
    tool: &ToolConfig,
    step: &StepConfig,
    input: &Value,
    attempt: u32,
    saved: Value,
) -> AppResult<Value> {
    crate::providers::run(crate::providers::StepRun {
        state,
        task_id: task.id,
        user_id: task.user_id,
        step,
        tool,
        input,
        attempt,
        saved,
    })
    .await
}
