//! The task queue: one interface over two deliveries.
//!
//! The database row in `task_queue` is always the truth — it says which task is due, who
//! holds its lease and how often it ran. What differs is how workers learn of due tasks:
//!
//! * **Embedded** (no `REDIS_URL`): workers claim straight from the table (`FOR UPDATE SKIP
//!   LOCKED` on PostgreSQL, the single writer on SQLite), woken in-process the moment a task
//!   is enqueued.
//! * **Scale-out**: a Redis Stream carries task ids to a consumer group. Each worker process
//!   reads with `XREADGROUP … BLOCK` on a connection of its own (no response timeout, so the
//!   blocking read neither times out nor stalls other commands), claims the row by id, runs
//!   the task and `XACK`s + `XDEL`s the entry. While its runs are short, a worker reads up
//!   to half its slots ahead (`worker::read_ahead`), and gives what it read ahead back to
//!   the stream when no slot frees for a second (`RedisQueue::give_back`) or it stops.
//!   The entry of a worker that died stays pending and is taken over with `XAUTOCLAIM`
//!   once idle for a lease; a running task's heartbeat `XCLAIM`s its entry so a live one
//!   is never taken. Delayed retries wait in a sorted set moved into the stream when due
//!   (one Lua script, atomic). Because submit
//!   writes the row and then `XADD`s — two writes — a reconciler re-sends rows that are due
//!   and untouched for `tasks.reconcile_secs`, so a crash between them (or a lost Redis)
//!   loses nothing; a duplicate delivery is harmless because only one claim can win.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::watch;
use uuid::Uuid;

use crate::redis_conn::RedisHandle;
use crate::store::Store;

pub(crate) const GROUP: &str = "workers";

/// Moves due members of the delayed set (KEYS[1]) into the stream (KEYS[2]).
const PROMOTE_LUA: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 200)
for _, id in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'task', id)
  redis.call('ZREM', KEYS[1], id)
end
return #due
";

/// Redis keys of the queue.
#[derive(Debug, Clone)]
pub struct RedisQueue {
    redis: RedisHandle,
    stream: String,
    delayed: String,
}

impl RedisQueue {
    pub fn new(redis: &RedisHandle) -> Self {
        Self { redis: redis.clone(), stream: redis.key("queue:tasks"), delayed: redis.key("queue:delayed") }
    }

    pub fn stream_key(&self) -> &str {
        &self.stream
    }

    /// The connection the queue's commands go over.
    pub fn redis(&self) -> &RedisHandle {
        &self.redis
    }

    /// Sends a task id to the workers.
    pub async fn push(&self, task_id: Uuid) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        let _: String = self.push_cmd(task_id).query_async(&mut conn).await?;
        Ok(())
    }

    /// The `XADD` that sends a task id.
    pub fn push_cmd(&self, task_id: Uuid) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.stream).arg("*").arg("task").arg(task_id.to_string());
        cmd
    }

    /// Hands delivered entries (`"<entry id>|<task id>"`, as [`read_batch`] gives them) that
    /// this worker will not start soon back to the stream, for any worker: each task id is
    /// sent again (a new entry at the stream's end), then the old entry is acknowledged and
    /// deleted. In that order, a crash in between leaves a duplicate (harmless: only one
    /// claim wins), never a loss; if the sending fails, the old entries stay pending here
    /// and are taken over after a lease, as a stopped worker's.
    pub(crate) async fn give_back(&self, entries: &[String]) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for entry in entries {
            if let Some(task_id) = entry.split_once('|').and_then(|(_, task)| task.parse::<Uuid>().ok()) {
                pipe.add_command(self.push_cmd(task_id)).ignore();
            }
        }
        let mut conn = self.redis.conn();
        let () = pipe.query_async(&mut conn).await?;
        for entry in entries {
            self.done(entry.split_once('|').map_or(entry.as_str(), |(id, _)| id));
        }
        Ok(())
    }

    /// Sends a task id when `due` (a retry's backoff, a task not due yet).
    pub async fn push_at(&self, task_id: Uuid, due: chrono::DateTime<chrono::Utc>) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        let _: i64 = conn.zadd(&self.delayed, task_id.to_string(), due.timestamp_millis()).await?;
        Ok(())
    }

    pub(crate) async fn ensure_group(&self) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        let created: redis::RedisResult<String> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Moves due delayed ids into the stream; returns how many.
    async fn promote(&self) -> redis::RedisResult<i64> {
        let mut conn = self.redis.conn();
        redis::cmd("EVAL")
            .arg(PROMOTE_LUA)
            .arg(2)
            .arg(&self.delayed)
            .arg(&self.stream)
            .arg(chrono::Utc::now().timestamp_millis())
            .query_async(&mut conn)
            .await
    }

    /// Acknowledges and deletes a delivered entry (the stream only holds work not done),
    /// batched with other commands nobody waits for: a lost one leaves the entry pending,
    /// and its next delivery finds the task ended.
    pub(crate) fn done(&self, entry: &str) {
        let mut ack = redis::cmd("XACK");
        ack.arg(&self.stream).arg(GROUP).arg(entry);
        self.redis.fire(ack);
        let mut del = redis::cmd("XDEL");
        del.arg(&self.stream).arg(entry);
        self.redis.fire(del);
    }

    /// Resets the idle time of an entry this consumer works on, so `XAUTOCLAIM` leaves it.
    async fn touch(&self, consumer: &str, entry: &str) -> redis::RedisResult<()> {
        let mut conn = self.redis.conn();
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(consumer)
            .arg(0)
            .arg(entry)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// (entries in the stream, entries delivered but not acknowledged, delayed ids).
    pub async fn depth(&self) -> redis::RedisResult<(i64, i64, i64)> {
        let mut conn = self.redis.conn();
        let len: i64 = conn.xlen(&self.stream).await?;
        let pending: redis::Value = redis::cmd("XPENDING")
            .arg(&self.stream)
            .arg(GROUP)
            .query_async(&mut conn)
            .await
            .unwrap_or(redis::Value::Nil);
        let pending = match pending {
            redis::Value::Array(items) => match items.first() {
                Some(redis::Value::Int(n)) => *n,
                _ => 0,
            },
            _ => 0,
        };
        let delayed: i64 = conn.zcard(&self.delayed).await?;
        Ok((len, pending, delayed))
    }
}

/// One stream entry being worked on: the heartbeat keeps it from being taken over.
#[derive(Debug, Clone)]
pub struct Lease {
    pub(crate) queue: RedisQueue,
    pub(crate) consumer: Arc<str>,
    pub(crate) entry: String,
}

impl Lease {
    pub async fn touch(&self) {
        if let Err(e) = self.queue.touch(&self.consumer, &self.entry).await {
            tracing::warn!(entry = %self.entry, error = %e, "renewing the queue entry failed");
        }
    }
}

/// How due tasks reach the workers, decided once when the state is built: the table alone
/// (embedded, and PostgreSQL without Redis), or the table plus a Redis Stream (scale-out).
#[derive(Debug, Clone)]
pub enum Delivery {
    Table,
    Stream(Box<RedisQueue>),
}

/// The queue as the rest of the platform uses it: send due tasks, schedule retries, wake
/// this process's idle workers.
#[derive(Debug)]
pub struct TaskQueue {
    delivery: Delivery,
    /// Wakes idle workers when a task is enqueued in this process.
    work: tokio::sync::Notify,
}

impl TaskQueue {
    pub fn new(redis: Option<&RedisHandle>) -> Self {
        let delivery = match redis {
            Some(redis) => Delivery::Stream(Box::new(RedisQueue::new(redis))),
            None => Delivery::Table,
        };
        Self { delivery, work: tokio::sync::Notify::new() }
    }

    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// `redis` or `database`, for the queue view.
    pub fn backend(&self) -> &'static str {
        match self.delivery {
            Delivery::Stream(_) => "redis",
            Delivery::Table => "database",
        }
    }

    /// Whether a task refused at its user's running limit is parked and sent again when a
    /// slot frees (stream delivery); table workers simply claim it again later.
    pub fn unparks(&self) -> bool {
        matches!(self.delivery, Delivery::Stream(_))
    }

    /// Tells the workers about a task that is due now: the Redis Stream in scale-out (a
    /// failed send is only logged: the reconciler sends it again), and this process's idle
    /// workers.
    pub fn enqueue(&self, task_id: Uuid) {
        if let Delivery::Stream(queue) = &self.delivery {
            // Pipelined with whatever else this process sends (no round trip in the
            // request); a send that fails is logged, and the reconciler sends it again.
            queue.redis.fire(queue.push_cmd(task_id));
        }
        self.wake();
    }

    /// Tells the workers about a task that becomes due at `due` (a retry).
    pub async fn enqueue_at(&self, task_id: Uuid, due: chrono::DateTime<chrono::Utc>) {
        if let Delivery::Stream(queue) = &self.delivery
            && let Err(e) = queue.push_at(task_id, due).await
        {
            tracing::warn!(%task_id, error = %e, "scheduling the retry in Redis failed; the reconciler will resend it");
        }
    }

    /// After a task ended: a running slot is free. Stream delivery: its user's tasks that
    /// were refused at the limit (`unparked` by the end's transaction) are sent again.
    pub fn slot_freed(&self, unparked: &[Uuid]) {
        if let Delivery::Stream(queue) = &self.delivery {
            for id in unparked {
                // A lost send is repaired by the reconciler.
                queue.redis.fire(queue.push_cmd(*id));
            }
        }
        self.wake();
    }

    /// The stream's (entries, delivered but unacknowledged, delayed); `None` for the table.
    pub async fn stream_depth(&self) -> Option<(i64, i64, i64)> {
        match &self.delivery {
            Delivery::Stream(queue) => queue.depth().await.ok(),
            Delivery::Table => None,
        }
    }

    /// Wakes one idle worker of this process.
    pub fn wake(&self) {
        self.work.notify_one();
    }

    /// Resolves when a task was enqueued in this process.
    pub async fn wakeup(&self) {
        self.work.notified().await
    }
}

/// Up to `count` new entries for this consumer, as `entry-id|task-id`; none after the
/// block timeout.
pub(crate) async fn read_batch(
    conn: &mut crate::redis_conn::RedisConn,
    queue: &RedisQueue,
    consumer: &str,
    count: usize,
) -> redis::RedisResult<Vec<String>> {
    let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(2000)
        .arg("STREAMS")
        .arg(&queue.stream)
        .arg(">")
        .query_async(conn)
        .await?;
    Ok(reply
        .map(|r| {
            r.keys
                .into_iter()
                .flat_map(|k| k.ids)
                .map(|id| {
                    let task: String = id.get("task").unwrap_or_default();
                    format!("{}|{task}", id.id)
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Takes over entries idle for a whole lease (their worker stopped renewing them).
pub(crate) async fn autoclaim(
    conn: &mut crate::redis_conn::RedisConn,
    queue: &RedisQueue,
    consumer: &str,
    lease: Duration,
) -> redis::RedisResult<Vec<String>> {
    let reply: redis::streams::StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
        .arg(&queue.stream)
        .arg(GROUP)
        .arg(consumer)
        .arg(lease.as_millis() as u64)
        .arg("0-0")
        .arg("COUNT")
        .arg(20)
        .query_async(conn)
        .await?;
    Ok(reply
        .claimed
        .into_iter()
        .map(|id| {
            let task: String = id.get("task").unwrap_or_default();
            format!("{}|{task}", id.id)
        })
        .collect())
}

pub(crate) async fn promote_loop(queue: RedisQueue, mut stop: watch::Receiver<bool>) {
    loop {
        match queue.promote().await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "moving due retries into the queue failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Re-sends rows that are due but untouched for `tasks.reconcile_secs`.
pub(crate) async fn reconcile_loop(store: Store, queue: RedisQueue, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every / 2) => {}
            _ = stop.changed() => return,
        }
        match reconcile_once(&store, &queue, every).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "re-sent due tasks that no worker had picked up"),
            Err(e) => tracing::warn!(error = %e, "reconciling the queue failed"),
        }
    }
}

/// One reconciler pass; returns how many ids were sent again.
pub async fn reconcile_once(store: &Store, queue: &RedisQueue, older_than: Duration) -> Result<usize, String> {
    let ids = store.queue_stale(older_than, 500).await.map_err(|e| e.to_string())?;
    for id in &ids {
        queue.push(*id).await.map_err(|e| e.to_string())?;
    }
    Ok(ids.len())
}

tokio::task_local! {
    /// The worker slot (a permit of the workers' semaphore) the running task holds.
    static SLOT: std::cell::RefCell<Option<tokio::sync::OwnedSemaphorePermit>>;
}

/// Runs `run` in a worker slot: the slot is given back when the task starts its final
/// write (`free_slot`), or when `run` ends.
pub(crate) async fn in_slot<F: Future>(permit: Option<tokio::sync::OwnedSemaphorePermit>, run: F) -> F::Output {
    SLOT.scope(std::cell::RefCell::new(permit), run).await
}

/// Gives the running task's worker slot back as it starts its final write (its end and
/// settlement): its provider work is done, so the next task's claim can go to the database
/// together with this end (one group commit) rather than wait for it to commit, which
/// would add a commit's round to every task. Outside a worker slot, nothing happens.
pub(crate) fn free_slot() {
    let _ = SLOT.try_with(|slot| slot.borrow_mut().take());
}
