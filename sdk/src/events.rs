//! Following a task's progress: the SSE stream of `GET /api/tasks/{id}/stream`, decoded
//! with `eventsource-stream`, as typed events, reconnecting with `Last-Event-ID` when the
//! connection drops so that no event is missed or seen twice.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::{Client, types};

/// One progress event (`connected`, `queued`, `queue_position`, `step_started`,
/// `progress`, `step_completed`, `completed`, `failed`, `cancelled`). An event of a kind
/// this SDK does not know (from a newer server) is skipped, not an error.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    /// The event's sequence number (the SSE id); `None` for events that are only live
    /// (`connected`, `progress`, `queue_position`).
    pub id: Option<i64>,
    pub kind: types::EventKind,
    pub data: Value,
}

impl TaskEvent {
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind, types::EventKind::Completed | types::EventKind::Failed | types::EventKind::Cancelled)
    }
}

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("the API refused: {0}")]
    Api(#[from] crate::Error<types::ApiError>),
    #[error("the stream kept failing: {0}")]
    Stream(String),
}

type EventStream = BoxStream<'static, Result<eventsource_stream::Event, String>>;

/// Follows one task from `after` (0: from the start) until its terminal event.
pub struct TaskFollower {
    client: Client,
    task: uuid::Uuid,
    last_id: i64,
    stream: Option<EventStream>,
    finished: bool,
    failures: u32,
}

impl TaskFollower {
    pub fn new(client: &Client, task: uuid::Uuid, after: i64) -> Self {
        Self { client: client.clone(), task, last_id: after, stream: None, finished: false, failures: 0 }
    }

    /// The id of the last event received (for resuming elsewhere with `Last-Event-ID`).
    pub fn last_event_id(&self) -> i64 {
        self.last_id
    }

    /// The next event; `None` after the terminal one. Reconnects on its own.
    pub async fn next(&mut self) -> Option<Result<TaskEvent, FollowError>> {
        loop {
            if self.finished {
                return None;
            }
            if self.stream.is_none() {
                let after = (self.last_id > 0).then_some(self.last_id);
                match self.client.task_events_stream(&self.task, after).await {
                    Ok(resp) => {
                        let bytes = resp.into_inner().into_inner();
                        let events = bytes.eventsource().map(|r| r.map_err(|e| e.to_string()));
                        self.stream = Some(Box::pin(events));
                    }
                    // The server answered: no point retrying a 404 or 401.
                    Err(e @ crate::Error::ErrorResponse(_)) => {
                        self.finished = true;
                        return Some(Err(e.into()));
                    }
                    Err(e) => {
                        if let Some(err) = self.backoff(e.to_string()).await {
                            return Some(Err(err));
                        }
                        continue;
                    }
                }
            }
            let stream = self.stream.as_mut().expect("connected above");
            match stream.next().await {
                Some(Ok(event)) => {
                    self.failures = 0;
                    let Ok(kind) = event.event.parse::<types::EventKind>() else {
                        continue; // a kind this SDK does not know yet (newer server)
                    };
                    // SSE keeps the last id for events sent without one, so live progress
                    // arrives with the id of the milestone before it: that is not a repeat.
                    let id = match event.id.parse::<i64>().ok() {
                        Some(id) if id > self.last_id => {
                            self.last_id = id;
                            Some(id)
                        }
                        Some(id)
                            if id == self.last_id
                                && matches!(kind, types::EventKind::Progress | types::EventKind::QueuePosition) =>
                        {
                            None
                        }
                        Some(_) => continue, // already seen before a reconnect
                        None => None,
                    };
                    let data = serde_json::from_str(&event.data).unwrap_or(Value::String(event.data));
                    let event = TaskEvent { id, kind, data };
                    self.finished = event.is_terminal();
                    return Some(Ok(event));
                }
                Some(Err(e)) => {
                    self.stream = None;
                    if let Some(err) = self.backoff(e).await {
                        return Some(Err(err));
                    }
                }
                None => {
                    // The server closed without a terminal event: reconnect and resume.
                    self.stream = None;
                    if let Some(err) = self.backoff("the stream ended early".into()).await {
                        return Some(Err(err));
                    }
                }
            }
        }
    }

    async fn backoff(&mut self, why: String) -> Option<FollowError> {
        self.failures += 1;
        if self.failures > 10 {
            self.finished = true;
            return Some(FollowError::Stream(why));
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(self.failures.min(10)))).await;
        None
    }
}

/// Submits a task and waits for its end; `on_event` sees every event on the way.
pub async fn run_and_wait(
    client: &Client,
    request: &types::TaskCreateRequest,
    mut on_event: impl FnMut(&TaskEvent),
) -> Result<(types::Task, TaskEvent), FollowError> {
    // With an Idempotency-Key, retried on transient failures: submitted once at most.
    let task = crate::retry::submit_task(client, request).await?;
    let mut follower = TaskFollower::new(client, task.id, 0);
    let mut last = None;
    while let Some(event) = follower.next().await {
        let event = event?;
        on_event(&event);
        last = Some(event);
    }
    let last = last.ok_or_else(|| FollowError::Stream("no events".into()))?;
    Ok((task, last))
}
