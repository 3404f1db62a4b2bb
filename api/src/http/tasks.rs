//! `/api/tasks`: submit, list, read, cancel, and the live progress stream (SSE with `id:`
//! on every event, heartbeats, and replay after `Last-Event-ID`).

use std::time::Duration;

use futures::stream::BoxStream;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::error::ErrorResponse;
use super::models::{StepStatus, TaskStatus};
use super::security::{Caller, Counted, OpensStreams, Submits};
use super::sse::{EventStream, SseEvent};
use super::text::{HttpUrl, Opt, Slug, Token};
use crate::app::AppState;
use crate::credits;
use crate::error::AppError;
use crate::store::EventKind;
use crate::store::TaskRow;
use crate::tasks::{self, Submit};

type Result<T> = std::result::Result<T, ErrorResponse>;

#[derive(Debug, Object, serde::Serialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct TaskCreateRequest {
    pub tool_slug: Slug<60>,
    /// One step of the tool (default: the first).
    pub step_id: Opt<Token<64>>,
    /// Step input, e.g. `{"imageStorageKey": "…", "style": "sketch"}`. The image is either
    /// `imageStorageKey` (a file you uploaded) or `imageUrl` (an `https` URL the server
    /// fetches once through its SSRF guard — no loopback, private, link-local or metadata
    /// addresses, redirects checked the same way, the upload size and pixel limits — and
    /// keeps as your upload; refused: 422 `IMAGE_URL_REFUSED`, unreachable or too slow:
    /// 422 `IMAGE_URL_UNREACHABLE`), never both.
    pub input: serde_json::Value,
    /// Chain after this completed task: its output feeds this one.
    pub parent_task_id: Opt<Uuid>,
    /// Run every step of the tool in order (costs all of them).
    pub run_all_steps: Opt<bool>,
    /// Send this task's events to this URL instead of your webhook endpoints (signed with
    /// your first endpoint's secret; you need one).
    pub webhook: Opt<HttpUrl>,
}

impl poem_openapi::types::Example for TaskCreateRequest {
    fn example() -> Self {
        Self {
            tool_slug: Slug("echo".into()),
            step_id: Opt(None),
            input: serde_json::json!({ "message": "hello" }),
            parent_task_id: Opt(None),
            run_all_steps: Opt(None),
            webhook: Opt(None),
        }
    }
}

#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tool_id: Uuid,
    pub status: TaskStatus,
    pub credits_cost: i64,
    pub parent_task_id: Option<Uuid>,
    pub current_step_id: Option<String>,
    pub attempts: i32,
    pub cancel_requested: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<TaskRow> for Task {
    fn from(t: TaskRow) -> Self {
        Self {
            id: t.id,
            user_id: t.user_id,
            tool_id: t.tool_id,
            status: t.status,
            credits_cost: t.credits_cost,
            parent_task_id: t.parent_task_id,
            current_step_id: t.current_step_id,
            attempts: t.attempts,
            cancel_requested: t.cancel_requested,
            created_at: t.created_at,
            started_at: t.started_at,
            completed_at: t.completed_at,
        }
    }
}

#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
#[serde(rename_all = "camelCase")]
pub struct TaskEnvelope {
    pub task: Task,
}

#[derive(Debug, ApiResponse)]
pub enum TaskCreated {
    /// Accepted and queued; the cost is reserved.
    #[oai(status = 201)]
    Created(Json<TaskEnvelope>),
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TaskStep {
    pub step_id: String,
    pub status: StepStatus,
    pub state: serde_json::Value,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub completed_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TaskDetail {
    pub task: Task,
    pub input: serde_json::Value,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub steps: Vec<TaskStep>,
    /// Tasks ahead of this one while it waits.
    pub queue_position: Option<i64>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    pub next_cursor: Option<Uuid>,
}

#[derive(Debug, Object)]
pub struct TaskEventList {
    pub events: Vec<TaskEvent>,
}

/// Queue depth now (the database's view, which is the truth in both modes).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct QueueStats {
    /// `redis` (scale-out: Redis Streams) or `database` (embedded).
    pub backend: String,
    /// Due and waiting for a worker.
    pub waiting: i64,
    /// Held by a worker under a live lease.
    pub running: i64,
    /// Waiting for a retry's backoff.
    pub delayed: i64,
    /// Scale-out: entries in the Redis stream, of them delivered and not yet acknowledged,
    /// and ids in the delayed set.
    pub stream_length: Option<i64>,
    pub stream_pending: Option<i64>,
    pub stream_delayed: Option<i64>,
}

/// A task given up on: its retries ran out, or its runs kept stopping their workers.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DeadLetter {
    pub task_id: Uuid,
    pub user_id: Uuid,
    pub tool_id: Uuid,
    /// `retries_exhausted` or `worker_crashes`.
    pub reason: String,
    pub error: String,
    pub attempts: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetter>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

/// One progress event: `seq` is the SSE `id` (absent on `connected`).
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TaskEvent {
    pub seq: Option<i64>,
    #[oai(rename = "type")]
    pub kind: EventKind,
    pub data: serde_json::Value,
}

pub struct TasksApi;

#[OpenApi(tag = "ApiTags::Tasks")]
impl TasksApi {
    /// Submits a task: validates the input, reserves the cost and enqueues, atomically.
    #[oai(path = "/api/tasks", method = "post", operation_id = "task_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        caller: Counted<Submits>,
        #[oai(name = "Idempotency-Key", validator(max_length = 255, pattern = r"^[\x21-\x7E]+$"))]
        idempotency_key: Header<Option<String>>,
        body: Json<TaskCreateRequest>,
    ) -> Result<TaskCreated> {
        let principal = caller.0;
        let submit = Submit {
            tool_slug: body.tool_slug.to_string(),
            step_id: body.step_id.to_owned_string(),
            input: body.input.clone(),
            parent_task_id: body.parent_task_id.get(),
            run_all_steps: body.run_all_steps.unwrap_or(false),
            webhook: body.webhook.to_owned_string(),
        };
        let envelope = credits::idempotent(
            &state,
            principal.user_id(),
            idempotency_key.0.as_deref(),
            "task_create",
            &submit,
            // Boxed: the submit's future is large (~13 KB), and every layer of middleware
            // above this handler would otherwise move it whole.
            async { Ok(TaskEnvelope { task: Box::pin(tasks::submit(&state, &principal, &submit)).await?.into() }) },
        )
        .await?;
        Ok(TaskCreated::Created(Json(envelope)))
    }

    /// The caller's tasks, newest first.
    #[allow(clippy::too_many_arguments, reason = "one parameter per query argument of the operation")]
    #[oai(path = "/api/tasks", method = "get", operation_id = "task_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        status: Query<Option<TaskStatus>>,
        tool: Query<Option<Slug<60>>>,
        cursor: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> Result<Json<TaskList>> {
        let limit = super::models::page_limit(limit.0);
        let tool = tool.0.as_deref();
        let mut rows = tasks::list(&state, &principal, tasks::Scope::Own, status.0, tool, cursor.0, limit + 1).await?;
        let next_cursor = super::models::next_page(&mut rows, limit, |r| r.id);
        Ok(Json(TaskList { tasks: rows.into_iter().map(Into::into).collect(), next_cursor }))
    }

    /// Every event of a task so far, in order (owner or admin) — the stream's history as
    /// one JSON answer.
    #[oai(path = "/api/tasks/:id/events", method = "get", operation_id = "task_events_list")]
    async fn events(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<TaskEventList>> {
        let rows = tasks::events(&state, &principal, id.0).await?;
        Ok(Json(TaskEventList {
            events: rows.into_iter().map(|r| TaskEvent { seq: Some(r.seq), kind: r.kind, data: r.data.0 }).collect(),
        }))
    }

    /// A task with its input, output, error and steps (owner or admin).
    #[oai(path = "/api/tasks/:id", method = "get", operation_id = "task_get")]
    async fn get(&self, state: Data<&AppState>, Caller(principal): Caller, id: Path<Uuid>) -> Result<Json<TaskDetail>> {
        let tasks::TaskDetail { task, payload, steps, queue_position } =
            tasks::detail(&state, &principal, id.0).await?;
        Ok(Json(TaskDetail {
            task: task.into(),
            input: payload.as_ref().map(|p| p.input.0.clone()).unwrap_or_default(),
            output: payload.as_ref().and_then(|p| p.output.as_ref().map(|o| o.0.clone())),
            error: payload.and_then(|p| p.error),
            steps: steps
                .into_iter()
                .map(|s| TaskStep {
                    step_id: s.step_id,
                    status: s.status,
                    state: s.state.0,
                    started_at: s.started_at,
                    completed_at: s.completed_at,
                })
                .collect(),
            queue_position,
        }))
    }

    /// Cancels: at once while queued (credits released), before the next step while running.
    #[oai(path = "/api/tasks/:id/cancel", method = "post", operation_id = "task_cancel")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<TaskEnvelope>> {
        Ok(Json(TaskEnvelope { task: tasks::cancel(&state, &principal, id.0).await?.into() }))
    }

    /// Live progress as Server-Sent Events. Every event has an `id`; reconnect with
    /// `Last-Event-ID` to get what you missed, then the live ones. Ends after
    /// `completed`, `failed` or `cancelled`. 429 `TOO_MANY_STREAMS` when the caller already
    /// has `limits.max_streams_per_user` streams open.
    #[oai(path = "/api/tasks/:id/stream", method = "get", operation_id = "task_events_stream")]
    async fn stream(
        &self,
        state: Data<&AppState>,
        caller: Counted<OpensStreams>,
        id: Path<Uuid>,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<i64>>,
    ) -> Result<EventStream<TaskEvent>> {
        let principal = caller.0;
        // The caller's own limits first (its rate, counted with its credential's lookup, then
        // its cap): a client at either, reconnecting in a loop, costs no read of the
        // database (nor does it for someone else's task).
        let slot = state.stream_slots().acquire(principal.user_id(), state.settings().limits.max_streams_per_user)?;
        let after = last_event_id.0.unwrap_or(0).max(0);
        let (_, follower) = state
            .events()
            .open(id.0, after)
            .await?
            .filter(|(task, _)| principal.can_see_user(task.user_id))
            .ok_or_else(|| AppError::not_found("task"))?;
        // The slot (and the open-streams gauge) live as long as the stream: dropped when it
        // ends or the client leaves.
        let open = (slot, crate::telemetry::OpenStream::start());
        let stream = futures::stream::unfold((follower, open), |(mut f, open)| async move {
            let live = f.next().await?;
            Some((TaskEvent { seq: live.seq, kind: live.kind, data: live.data }, (f, open)))
        });
        let to_event = |e: TaskEvent| SseEvent { id: e.seq, event: e.kind.as_str(), data: e.data.to_string() };
        Ok(EventStream::new(Box::pin(stream) as BoxStream<'static, TaskEvent>, to_event, Duration::from_secs(15)))
    }
}

pub struct AdminTasksApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminTasksApi {
    /// Every user's tasks, newest first, filtered by status, tool slug and user.
    #[allow(clippy::too_many_arguments, reason = "one parameter per query argument of the operation")]
    #[oai(path = "/api/admin/tasks", method = "get", operation_id = "admin_task_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        status: Query<Option<TaskStatus>>,
        tool: Query<Option<Slug<60>>>,
        #[oai(name = "userId")] user_id: Query<Option<Uuid>>,
        cursor: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> Result<Json<TaskList>> {
        let limit = super::models::page_limit(limit.0);
        let scope = tasks::Scope::Everyone { user_id: user_id.0 };
        let tool = tool.0.as_deref();
        let mut rows = tasks::list(&state, &principal, scope, status.0, tool, cursor.0, limit + 1).await?;
        let next_cursor = super::models::next_page(&mut rows, limit, |r| r.id);
        Ok(Json(TaskList { tasks: rows.into_iter().map(Into::into).collect(), next_cursor }))
    }

    /// Runs a failed or cancelled task again as a new task of the same user (its cost is
    /// reserved from that user).
    #[oai(path = "/api/admin/tasks/:id/retry", method = "post", operation_id = "admin_task_retry")]
    async fn retry(&self, state: Data<&AppState>, Caller(principal): Caller, id: Path<Uuid>) -> Result<TaskCreated> {
        let task = tasks::retry(&state, &principal, id.0).await?;
        Ok(TaskCreated::Created(Json(TaskEnvelope { task: task.into() })))
    }

    /// Queue depth: waiting, running and delayed tasks (and the Redis stream in scale-out).
    #[oai(path = "/api/admin/queue", method = "get", operation_id = "admin_queue_get")]
    async fn queue(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<QueueStats>> {
        let tasks::QueueView { backend, waiting, running, delayed, stream } =
            tasks::queue_view(&state, &principal).await?;
        Ok(Json(QueueStats {
            backend: backend.into(),
            waiting,
            running,
            delayed,
            stream_length: stream.map(|s| s.0),
            stream_pending: stream.map(|s| s.1),
            stream_delayed: stream.map(|s| s.2),
        }))
    }

    /// The dead-letter list, newest first: tasks given up on after their retries ran out
    /// or after their runs kept stopping their workers (credits were released).
    #[oai(path = "/api/admin/dead-letters", method = "get", operation_id = "admin_dead_letter_list")]
    async fn dead_letters(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        cursor: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> Result<Json<DeadLetterList>> {
        let limit = super::models::page_limit(limit.0);
        let mut rows = tasks::dead_letters(&state, &principal, cursor.0, limit + 1).await?;
        let next_cursor = super::models::next_page(&mut rows, limit, |r| r.task_id);
        let dead_letters = rows
            .into_iter()
            .map(|r| DeadLetter {
                task_id: r.task_id,
                user_id: r.user_id,
                tool_id: r.tool_id,
                reason: r.reason,
                error: r.error,
                attempts: r.attempts,
                created_at: r.created_at,
            })
            .collect();
        Ok(Json(DeadLetterList { dead_letters, next_cursor }))
    }
}
