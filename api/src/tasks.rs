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
use crate::providers::ProviderKind;
use crate::store::{ClaimedTask, DeadLetter, NewTask, StepDone, TaskEnd, TaskRow};
use crate::tools::{StepConfig, StepKind, ToolConfig};

/// How long a claimed task is leased to its worker (renewed every third of it while the
/// worker runs it) before another worker may take it.
pub fn lease(state: &AppState) -> Duration {
    Duration::from_secs(state.settings().tasks.lease_secs)
}
pub use crate::events::TERMINAL_EVENTS;

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
    let cached = state
        .catalogue()
        .tool(state, &req.tool_slug)
        .await?
        .filter(|t| t.row.is_active)
        .ok_or_else(|| AppError::not_found("tool"))?;
    let (tool, config) = (&cached.row, &cached.config);
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
        let provider = state.catalogue().provider(state, first.provider_id).await?;
        validate_input(first, provider.as_deref().and_then(ProviderKind::of), &input)?;
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
///
/// The `queued` event is not sent live: no stream can follow a task before this answers,
/// and every stream starts by reading the recorded history.
async fn start(state: &AppState, new: &NewTask) -> AppResult<TaskRow> {
    let (task, _queued) =
        state.store().task_submit(new).await.map_err(|e| crate::credits::ledger_error(e, new.cost))?;
    crate::queue::enqueue(state, task.id).await;
    Ok(task)
}

/// Input each step type needs.
fn validate_input(step: &StepConfig, provider_kind: Option<ProviderKind>, input: &Value) -> AppResult<()> {
    // These read the file's bytes themselves (the others are given a URL to fetch).
    if matches!(provider_kind, Some(ProviderKind::Local | ProviderKind::OpenAi))
        && step.kind != StepKind::Echo
        && input.get("imageUrl").is_some()
        && input.get("imageStorageKey").is_none()
    {
        return Err(AppError::new(
            ErrorKind::Validation,
            "INVALID_INPUT",
            format!(
                "the {} provider works on uploaded files: give imageStorageKey (upload the image first)",
                provider_kind.map(ProviderKind::as_str).unwrap_or_default()
            ),
        ));
    }
    match step.kind {
        StepKind::Echo => {
            if let Some(delay) = input.get("delayMs")
                && delay.as_u64().is_none_or(|d| d > 600_000)
            {
                return Err(AppError::validation("delayMs must be a whole number of milliseconds up to 600000"));
            }
            Ok(())
        }
        _ if input.get("imageStorageKey").is_some() || input.get("imageUrl").is_some() => Ok(()),
        StepKind::ImageGen if input.get("prompt").is_some() || input.get("style").is_some() => Ok(()),
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
    state.store().task_get(id).await?.ok_or_else(|| AppError::not_found("task"))
}

pub use crate::queue::run_workers;

/// Runs one claimed task to its end, renewing its lease meanwhile; every outcome is
/// recorded, credits resolve once.
pub async fn execute(state: &AppState, claimed: Box<ClaimedTask>, delivery: Option<&crate::queue::Delivery>) {
    let task_id = claimed.task.id;
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
    let result =
        match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(try_execute(state, *claimed))).await {
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
        // Every earlier run ended without recording anything: its worker died (or was
        // killed) while running it. Running it yet again could take the next one down too.
        let message = format!("given up after {} runs that each stopped their worker", attempt - 1);
        let event = json!({ "error": message, "code": "WORKER_CRASHES" });
        let dead = DeadLetter { reason: "worker_crashes", error: message.clone(), attempts: (attempt - 1) as i32 };
        finish(state, task_id, TaskEnd::failed(&message, &event).dead_letter(Some(&dead))).await?;
        return Ok(());
    }
    let config = state.catalogue().config(state, task.tool_id, tool_updated_at).await?;
    let mut spent = 0i64;
    let mut output = Value::Null;
    let mut first_in_run = true;
    let last = steps.len().saturating_sub(1);
    for (i, step) in steps.into_iter().enumerate() {
        let cfg = config
            .step(&step.step_id)
            .ok_or_else(|| AppError::internal(format!("step {} missing from tool", step.step_id)))?;
        if step.status == "completed" {
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
        crate::events::publish_recorded(state, task_id, &[event]).await;
        let step_input = if output.is_null() { input.clone() } else { merge(&input, &output) };
        let timeout = Duration::from_secs(state.settings().tasks.step_timeout_secs);
        let result = match tokio::time::timeout(
            timeout,
            run_step(state, &task, &config, cfg, &step_input, attempt, step.state.0),
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
                    crate::events::publish_recorded(state, task_id, &[event]).await;
                }
                spent += cfg.cost;
                output = out;
            }
            Err(e) if is_transient(&e) && attempt < max_attempts => {
                let delay = backoff(state, attempt);
                let message = format!(
                    "{} — retrying in {} ms (attempt {} of {max_attempts})",
                    e.message,
                    delay.as_millis(),
                    attempt + 1,
                );
                let notice = json!({ "stepId": cfg.id, "progress": 0, "message": message, "retry": attempt + 1 });
                // Keep what the run saved (a provider job id) so the retry resumes it.
                let patch = json!({ "lastError": e.message });
                if let Some(event) = state.store().task_step_retry(task_id, &cfg.id, patch, delay, notice).await? {
                    let due = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                    crate::queue::enqueue_at(state, task_id, due).await;
                    crate::events::publish_recorded(state, task_id, &[event]).await;
                }
                return Ok(());
            }
            Err(e) => {
                let message =
                    if attempt > 1 { format!("{} (after {attempt} attempts)", e.message) } else { e.message.clone() };
                let e = AppError { message, ..e };
                state.store().task_step_fail(task_id, &cfg.id, &e.message).await?;
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
    // Every step had completed before (a crash right after the last one).
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
/// `Store::task_finish`), then wakes its streams and sends the user's tasks that waited
/// for a running slot; false if it had already ended.
async fn finish(state: &AppState, task_id: Uuid, end: TaskEnd<'_>) -> AppResult<bool> {
    let unpark = if state.redis().is_some() { i64::from(state.settings().tasks.max_running_per_user) } else { 0 };
    let finished =
        state.store().task_finish(task_id, &end, unpark).await.map_err(|e| crate::credits::ledger_error(e, 0))?;
    if finished.ended {
        crate::events::publish_recorded(state, task_id, &finished.events).await;
    }
    crate::queue::slot_freed(state, &finished.unparked).await;
    Ok(finished.ended)
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
