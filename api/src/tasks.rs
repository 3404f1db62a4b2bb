//! Tasks: submitting (validate, reserve and enqueue in one transaction), reading,
//! cancelling, the in-process workers that run them, and their replayable progress events.
//!
//! The database is the source of truth: the queue table only carries task ids with a
//! lease, so a worker that dies mid-task leaves a lease that expires and the task is run
//! again; steps already completed are skipped, and credits resolve exactly once through the
//! ledger whatever happens twice.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Access, Principal};
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::store::{NewTask, TaskEnd, TaskRow, TaskStatus};
use crate::tools::{StepConfig, StepKind, ToolConfig};

/// What a client submits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Submit {
    pub tool_slug: String,
    pub step_id: Option<String>,
    pub input: Value,
    pub parent_task_id: Option<Uuid>,
    pub run_all_steps: bool,
    /// This task's own webhook URL (its events go there, signed with the user's first
    /// endpoint's secret). Left out of the idempotency hash when absent, so requests hash
    /// as they did before the field existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

/// A task's own webhook URL, checked like an endpoint's; the user needs an endpoint, whose
/// secret signs it.
async fn own_webhook(state: &AppState, principal: &Principal, url: &str) -> AppResult<String> {
    let url = crate::webhooks::check_url(state, url).await?;
    if state.store().webhook_endpoints_of_user(principal.user_id()).await?.iter().all(|e| e.relay) {
        return Err(AppError::new(
            ErrorKind::Validation,
            ErrorCode::NoWebhookEndpoint,
            "a task's webhook is signed with your first webhook endpoint's secret (not a relay's): create an endpoint first",
        ));
    }
    Ok(url)
}

/// Validates, reserves the cost and enqueues — atomically — then wakes a worker.
pub async fn submit(state: &AppState, principal: &Principal, req: &Submit) -> AppResult<TaskRow> {
    principal.require(Access::Write)?;
    let cached = state
        .catalogue()
        .tool(&req.tool_slug)
        .await?
        .filter(|t| t.row.is_active)
        .ok_or_else(|| AppError::not_found("tool"))?;
    let (tool, config) = (&cached.row, &cached.config);
    let steps: Vec<&StepConfig> = match (&req.step_id, req.run_all_steps) {
        (Some(_), true) => return Err(AppError::validation("give stepId or runAllSteps, not both")),
        (Some(id), false) => vec![config.step(id).ok_or_else(|| {
            AppError::new(
                ErrorKind::Validation,
                ErrorCode::UnknownStep,
                format!("tool '{}' has no step '{id}'", tool.slug),
            )
        })?],
        (None, true) => config.steps.iter().collect(),
        (None, false) => config.steps.iter().take(1).collect(),
    };
    if !req.input.is_object() {
        return Err(AppError::validation("input must be a JSON object"));
    }
    let mut input = req.input.clone();
    if input.get("imageUrl").is_some() && input.get("imageStorageKey").is_some() {
        return Err(AppError::validation("give imageStorageKey or imageUrl, not both"));
    }
    if input.get("imageUrl").is_some_and(|u| !u.is_string()) {
        return Err(AppError::validation("imageUrl must be a URL string"));
    }
    if let Some(parent_id) = req.parent_task_id {
        let parent = state
            .store()
            .task_get(parent_id)
            .await?
            .filter(|p| p.user_id == principal.user_id())
            .ok_or_else(|| AppError::not_found("parent task"))?;
        if parent.status != TaskStatus::Completed {
            return Err(AppError::conflict(ErrorCode::ParentNotCompleted, "the parent task has not completed"));
        }
        let output =
            state.store().task_payload(parent_id).await?.and_then(|p| p.output).map(|o| o.0).unwrap_or(Value::Null);
        if input.get("imageStorageKey").is_none()
            && input.get("imageUrl").is_none()
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
                ErrorCode::UnknownStyle,
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
        validate_input(first, &input)?;
    }
    let webhook_url = match &req.webhook {
        Some(url) => Some(own_webhook(state, principal, url).await?),
        None => None,
    };
    // A URL is fetched now, through the SSRF guard, and kept as the user's upload: every
    // provider then reads the same checked file (and none gets the raw URL).
    let cost: i64 = steps.iter().map(|s| s.cost).sum();
    let url = steps
        .iter()
        .any(|s| s.kind != StepKind::Echo)
        .then(|| input.get("imageUrl").and_then(Value::as_str).map(str::to_string))
        .flatten();
    // A request found good waits here while the line is full, before anything is fetched,
    // reserved or written; its ticket holds its place until its task is written.
    let _ticket = admit(state, principal.user_id(), cost, url.is_some()).await?;
    if let Some(url) = url {
        let asset = crate::assets::import_url(state, principal.user_id(), &url).await?;
        if let Some(obj) = input.as_object_mut() {
            obj.remove("imageUrl");
            obj.insert("imageStorageKey".into(), asset.storage_key.into());
            obj.insert("imageSourceUrl".into(), url.into());
        }
    }
    let new = NewTask {
        id: Uuid::now_v7(),
        user_id: principal.user_id(),
        tool_id: tool.id,
        parent_task_id: req.parent_task_id,
        steps: steps.iter().map(|s| s.id.clone()).collect(),
        run_all_steps: req.run_all_steps,
        cost,
        input,
        trace_parent: crate::traces::current(),
        webhook_url,
    };
    start(state, &new).await
}

/// Lets a submission of `cost` for `user` go on: at once while the line has room, else
/// after waiting for some (see `admission`). A submission that will wait, or that will fetch
/// an `imageUrl` first, is refused 402 now if the user's credits cannot pay for it, rather
/// than after the wait or the download.
async fn admit(state: &AppState, user: Uuid, cost: i64, fetches: bool) -> AppResult<crate::admission::Ticket<'_>> {
    let ticket = state.admission().try_now();
    if ticket.is_none() || fetches {
        let available = state.store().credits_get(user).await?.available();
        if available < cost {
            return Err(crate::credits::insufficient(cost, available));
        }
    }
    match ticket {
        Some(ticket) => Ok(ticket),
        None => state.admission().wait(state.store()).await,
    }
}

/// Inserts a new task (reserving its cost, with its `queued` event, in one transaction),
/// then publishes that event and sends the task to the workers.
///
/// The `queued` event is not sent live: no stream can follow a task before this answers,
/// and every stream starts by reading the recorded history.
async fn start(state: &AppState, new: &NewTask) -> AppResult<TaskRow> {
    let (task, _queued) =
        state.store().task_submit(new).await.map_err(|e| crate::credits::ledger_error(e, new.cost))?;
    state.queue().enqueue(task.id);
    crate::telemetry::task_submitted(&crate::telemetry::tool_label(state, new.tool_id).await);
    crate::telemetry::credits("reserved", new.cost);
    Ok(task)
}

/// Input each step type needs.
fn validate_input(step: &StepConfig, input: &Value) -> AppResult<()> {
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
            ErrorCode::InvalidInput,
            format!("a {kind} step needs imageStorageKey or imageUrl in the input"),
        )),
    }
}

/// An admin runs a failed or cancelled task again: a new task of the same user, tool, steps
/// and input, its cost reserved from that user like any submission.
pub async fn retry(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<TaskRow> {
    principal.require(Access::Admin)?;
    let old = state.store().task_get(id).await?.ok_or_else(|| AppError::not_found("task"))?;
    if !matches!(old.status, TaskStatus::Failed | TaskStatus::Cancelled) {
        return Err(AppError::conflict(
            ErrorCode::TaskNotFailed,
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
            .ok_or_else(|| AppError::conflict(ErrorCode::ToolChanged, format!("the tool no longer has step '{step}'")))?
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
        trace_parent: crate::traces::current(),
        // An admin's retry reports to the user's endpoints, not to a one-off URL.
        webhook_url: None,
    };
    // A retry is a submission like any other: held while the line is full.
    let _ticket = admit(state, old.user_id, cost, false).await?;
    let task = start(state, &new).await?;
    tracing::info!(retried = %id, task_id = %task.id, by = %principal.user_id(), "task retried by an admin");
    Ok(task)
}

/// The caller's task (admins: anyone's); 404 otherwise.
pub async fn task_for(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<TaskRow> {
    let task = state.store().task_get(id).await?.ok_or_else(|| AppError::not_found("task"))?;
    if principal.can_see_user(task.user_id) { Ok(task) } else { Err(AppError::not_found("task")) }
}

/// Whose tasks a list shows: the caller's own, or (admins) anyone's, optionally one user's.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Own,
    Everyone { user_id: Option<Uuid> },
}

/// A page of tasks, newest first, filtered by status and tool slug (an unknown slug: none).
pub async fn list(
    state: &AppState,
    principal: &Principal,
    scope: Scope,
    status: Option<TaskStatus>,
    tool_slug: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<TaskRow>> {
    let user_id = match scope {
        Scope::Own => Some(principal.user_id()),
        Scope::Everyone { user_id } => {
            principal.require(Access::Admin)?;
            user_id
        }
    };
    let tool_id = match tool_slug {
        Some(slug) => match state.store().tool_get_by_slug(slug).await? {
            Some(t) => Some(t.id),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    Ok(state.store().task_list(user_id, status, tool_id, before, limit).await?)
}

/// A task with what its detail view shows (owner or admin): the store reads it whole.
pub use crate::store::TaskFull as TaskDetail;

pub async fn detail(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<TaskDetail> {
    // Read whole (one round trip on PostgreSQL), then checked: someone else's task is a 404.
    let full = state.store().task_full(id).await?.filter(|f| principal.can_see_user(f.task.user_id));
    full.ok_or_else(|| AppError::not_found("task"))
}

/// Every stored event of a task so far, in order (owner or admin).
pub async fn events(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<Vec<crate::store::TaskEventRow>> {
    let task = task_for(state, principal, id).await?;
    Ok(state.store().task_events_after(task.id, 0).await?)
}

/// The queue as admins see it: the table's depth, and the Redis stream's in scale-out.
pub struct QueueView {
    pub backend: &'static str,
    pub waiting: i64,
    pub running: i64,
    pub delayed: i64,
    /// Length, pending and delayed entries of the stream (scale-out only).
    pub stream: Option<(i64, i64, i64)>,
}

pub async fn queue_view(state: &AppState, principal: &Principal) -> AppResult<QueueView> {
    principal.require(Access::Admin)?;
    let (waiting, running, delayed) = state.store().queue_depth().await?;
    let stream = state.queue().stream_depth().await;
    Ok(QueueView { backend: state.queue().backend(), waiting, running, delayed, stream })
}

/// A page of the dead-letter list, newest first (admins).
pub async fn dead_letters(
    state: &AppState,
    principal: &Principal,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<crate::store::DeadLetterRow>> {
    principal.require(Access::Admin)?;
    Ok(state.store().dead_letters(before, limit).await?)
}

/// Queued: cancelled and released at once. Running: flagged; the worker stops before its
/// next step and releases the cost of the steps it did not run.
pub async fn cancel(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<TaskRow> {
    principal.require(Access::Write)?;
    let task = task_for(state, principal, id).await?;
    if task.is_terminal() {
        return Err(AppError::conflict(ErrorCode::TaskFinished, format!("the task already {}", task.status)));
    }
    request_cancel(state, id).await?;
    state.store().task_get(id).await?.ok_or_else(|| AppError::not_found("task"))
}

/// The cancellation itself, with no access check (the caller has done it, or the platform
/// cancels: an account being deleted). Idempotent.
pub(crate) async fn request_cancel(state: &AppState, id: Uuid) -> AppResult<()> {
    let status = state.store().task_request_cancel(id).await?;
    if status == Some(TaskStatus::Queued) {
        let event = json!({ "reason": "cancelled while queued", "creditsSpent": 0 });
        // The metrics' labels (a lookup only when metrics are kept).
        let task = if crate::telemetry::enabled() { state.store().task_get(id).await? } else { None };
        let labels = match task {
            Some(t) => crate::telemetry::TaskLabels {
                tool: crate::telemetry::tool_label(state, t.tool_id).await,
                cost: t.credits_cost,
            },
            None => crate::telemetry::TaskLabels { tool: "unknown".into(), cost: 0 },
        };
        crate::telemetry::with_task(labels, finish(state, id, TaskEnd::cancelled(0, &event))).await?;
    }
    Ok(())
}

/// Ends a task with its settlement and terminal event in one transaction (see
/// `Store::task_finish`), then wakes its streams and sends the user's tasks that waited
/// for a running slot; false if it had already ended.
pub(crate) async fn finish(state: &AppState, task_id: Uuid, end: TaskEnd<'_>) -> AppResult<bool> {
    if crate::traces::enabled() {
        use tracing::Instrument;
        let span = tracing::info_span!("settle", otel.name = "settle task", task.status = end.status.as_str());
        return finish_now(state, task_id, end).instrument(span).await;
    }
    finish_now(state, task_id, end).await
}

async fn finish_now(state: &AppState, task_id: Uuid, end: TaskEnd<'_>) -> AppResult<bool> {
    let unpark = if state.queue().unparks() { i64::from(state.settings().tasks.max_running_per_user) } else { 0 };
    crate::queue::free_slot();
    let finished =
        state.store().task_finish(task_id, &end, unpark).await.map_err(|e| crate::credits::ledger_error(e, 0))?;
    if finished.ended {
        state.events().publish_recorded(task_id, &finished.events).await;
        state.webhook_wakeup();
        crate::telemetry::task_ended(end.status.as_str(), end.spend);
    }
    state.queue().slot_freed(&finished.unparked);
    Ok(finished.ended)
}
