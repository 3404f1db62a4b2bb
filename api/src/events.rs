//! Task progress events across processes.
//!
//! Every event is first written to `task_events` (the truth, with its sequence number).
//! In scale-out mode it is also appended to a Redis Stream per task, with the stream id
//! `0-<seq>` (so `Last-Event-ID` maps straight onto it), bounded with `MAXLEN ~`, and set to
//! expire `tasks.event_ttl_secs` after the task ends. Each API process runs one [`EventHub`]:
//! a single blocking `XREAD` over the streams its clients follow, on a connection of its
//! own, which wakes the followers of a task the moment any worker process writes to it.
//! Followers read new events from the stream and fall back to the database when the stream
//! has a gap (trimmed, expired, or a write that did not reach Redis).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::app::AppState;
use crate::redis_conn::RedisHandle;
use crate::store::TaskEventRow;

/// Most events kept per task stream (approximate trim); the database keeps all.
const STREAM_MAXLEN: usize = 1000;

pub fn stream_key(redis: &RedisHandle, task_id: Uuid) -> String {
    redis.key(&format!("events:{task_id}"))
}

/// Appends one event to the task's Redis stream (scale-out only; best effort: followers
/// fill any gap from the database).
pub async fn publish(state: &AppState, task_id: Uuid, seq: i64, kind: &str, data: &Value) {
    let Some(redis) = state.redis() else { return };
    let mut conn = redis.conn();
    let result: redis::RedisResult<String> = redis::cmd("XADD")
        .arg(stream_key(redis, task_id))
        .arg("MAXLEN")
        .arg("~")
        .arg(STREAM_MAXLEN)
        .arg(format!("0-{seq}"))
        .arg("type")
        .arg(kind)
        .arg("data")
        .arg(data.to_string())
        .query_async(&mut conn)
        .await;
    match result {
        Ok(_) => {}
        // Another writer got there first (a replayed publish): already in the stream.
        Err(e) if e.to_string().contains("equal or smaller") => {}
        Err(e) => tracing::warn!(%task_id, seq, error = %e, "publishing a task event to Redis failed"),
    }
}

/// Publishes the events the task's stream lacks (those after its last one): the `queued`
/// event and the terminal event, written in the task's first and last transactions, and
/// any an earlier publish failed to send.
pub async fn publish_missing(state: &AppState, task_id: Uuid) {
    let Some(redis) = state.redis() else { return };
    let mut conn = redis.conn();
    let last: redis::RedisResult<redis::streams::StreamRangeReply> = redis::cmd("XREVRANGE")
        .arg(stream_key(redis, task_id))
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await;
    let after = last.ok().and_then(|r| r.ids.first().and_then(|id| seq_of(&id.id))).unwrap_or(0);
    match state.store().task_events_after(task_id, after).await {
        Ok(rows) => {
            for row in rows {
                publish(state, task_id, row.seq, &row.kind, &row.data.0).await;
            }
        }
        Err(e) => tracing::warn!(%task_id, error = %e, "reading events to publish failed"),
    }
}

/// At a task's end: publishes its last events and lets the stream expire after
/// `tasks.event_ttl_secs`.
pub async fn publish_end(state: &AppState, task_id: Uuid) {
    let Some(redis) = state.redis() else { return };
    publish_missing(state, task_id).await;
    let mut conn = redis.conn();
    let ttl = state.settings().tasks.event_ttl_secs;
    let expired: redis::RedisResult<i64> =
        redis::cmd("EXPIRE").arg(stream_key(redis, task_id)).arg(ttl).query_async(&mut conn).await;
    if let Err(e) = expired {
        tracing::warn!(%task_id, error = %e, "setting the event stream's expiry failed");
    }
}

fn seq_of(stream_id: &str) -> Option<i64> {
    stream_id.strip_prefix("0-").and_then(|s| s.parse().ok())
}

/// Events after `after` from the task's Redis stream, if it has them without a gap.
pub async fn read_stream(redis: &RedisHandle, task_id: Uuid, after: i64) -> Option<Vec<TaskEventRow>> {
    let mut conn = redis.conn();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream_key(redis, task_id))
        .arg(format!("(0-{after}"))
        .arg("+")
        .arg("COUNT")
        .arg(500)
        .query_async(&mut conn)
        .await
        .ok()?;
    let mut rows = Vec::with_capacity(reply.ids.len());
    for (expect, id) in (after + 1..).zip(reply.ids) {
        let seq = seq_of(&id.id)?;
        if seq != expect {
            return None;
        }
        let kind: String = id.get("type")?;
        let data: String = id.get("data")?;
        let data = serde_json::from_str(&data).ok()?;
        rows.push(TaskEventRow { seq, kind, data: sqlx::types::Json(data), created_at: chrono::Utc::now() });
    }
    if rows.is_empty() { None } else { Some(rows) }
}

/// The tasks this process's clients follow, with the last stream id seen of each.
#[derive(Debug, Default)]
pub struct EventHub {
    watched: Mutex<HashMap<Uuid, Watched>>,
    changed: tokio::sync::Notify,
    started: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
struct Watched {
    followers: usize,
    last: i64,
}

/// Stops watching when dropped.
#[derive(Debug)]
pub struct WatchGuard {
    hub: Arc<EventHub>,
    task_id: Uuid,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut watched = self.hub.watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = watched.get_mut(&self.task_id) {
            w.followers -= 1;
            if w.followers == 0 {
                watched.remove(&self.task_id);
            }
        }
    }
}

impl EventHub {
    /// Wakes this process's followers of `task_id` (via `AppState::notify_task`) whenever
    /// an event after `after` reaches its Redis stream, until the guard is dropped.
    pub fn watch(self: &Arc<Self>, state: &AppState, task_id: Uuid, after: i64) -> WatchGuard {
        {
            let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            let w = watched.entry(task_id).or_insert(Watched { followers: 0, last: after });
            w.followers += 1;
            w.last = w.last.min(after);
        }
        self.changed.notify_one();
        if let Some(redis) = state.redis()
            && !self.started.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tokio::spawn(self.clone().run(state.clone(), redis.clone()));
        }
        WatchGuard { hub: self.clone(), task_id }
    }

    async fn run(self: Arc<Self>, state: AppState, redis: RedisHandle) {
        let mut conn: Option<redis::aio::MultiplexedConnection> = None;
        loop {
            let snapshot: Vec<(Uuid, i64)> = {
                let watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
                watched.iter().map(|(id, w)| (*id, w.last)).collect()
            };
            if snapshot.is_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(5), self.changed.notified()).await;
                if self.watched.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
                    // Idle: end (a later `watch` starts it again), unless one raced in.
                    self.started.store(false, std::sync::atomic::Ordering::SeqCst);
                    let idle = self.watched.lock().unwrap_or_else(|e| e.into_inner()).is_empty();
                    if idle || self.started.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                }
                continue;
            }
            let c = match &mut conn {
                Some(c) => c,
                None => {
                    let config = redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(Duration::from_secs(5)))
                        .set_response_timeout(None);
                    match redis.client().get_multiplexed_async_connection_with_config(&config).await {
                        Ok(c) => conn.insert(c),
                        Err(e) => {
                            tracing::warn!(error = %e, "connecting the event hub to Redis failed; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
            };
            // A short block, so tasks followed since are included soon; events of the tasks
            // in this read arrive at once.
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT").arg(100).arg("BLOCK").arg(250).arg("STREAMS");
            for (id, _) in &snapshot {
                cmd.arg(stream_key(&redis, *id));
            }
            for (_, last) in &snapshot {
                cmd.arg(format!("0-{last}"));
            }
            let reply: redis::RedisResult<Option<redis::streams::StreamReadReply>> = cmd.query_async(c).await;
            match reply {
                Ok(Some(reply)) => {
                    for key in reply.keys {
                        let Some(task_id) = key.key.rsplit(':').next().and_then(|s| s.parse::<Uuid>().ok()) else {
                            continue;
                        };
                        if let Some(last) = key.ids.last().and_then(|id| seq_of(&id.id)) {
                            let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
                            if let Some(w) = watched.get_mut(&task_id) {
                                w.last = w.last.max(last);
                            }
                        }
                        state.notify_task(task_id);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading task event streams failed; reconnecting");
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}
