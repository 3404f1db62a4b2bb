//! Task progress events: recorded milestones, ephemeral progress, and one hub per process
//! that wakes exactly the streams that follow a task.
//!
//! * **Milestones** (`queued`, `step_started`, `step_completed`, a retry notice, and the
//!   terminal `completed`/`failed`/`cancelled`) are written to `task_events` by the store, in
//!   the same transaction as the state change they describe, numbered by `tasks.event_seq`.
//!   They are the replayable history: an SSE `id` and `Last-Event-ID` are their numbers.
//! * **Progress** between milestones is not written to the database: it goes to the
//!   followers live, and the latest one of each task is kept (in memory, or in Redis in
//!   scale-out) for streams that join late. It carries no `id`.
//! * **Fan-out**: embedded, events go straight into this process's [`EventHub`]. In
//!   scale-out, every process `PUBLISH`es to one Redis channel and every API process holds
//!   one subscriber connection that feeds its hub. The hub keeps a broadcast channel per
//!   followed task, so an event wakes only that task's streams, and open streams never poll
//!   one by one: one sweep per process (every few seconds) compares the followed tasks'
//!   event counters with what was delivered, as a safety net for a lost message.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::redis_conn::RedisHandle;
use crate::store::{Engine, EventKind, Recorded, Store, StoreResult, TaskEventRow, TaskRow};

/// One event on its way to followers: `seq` for milestones, `None` for progress.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Live {
    #[serde(rename = "t")]
    pub task_id: Uuid,
    #[serde(rename = "s")]
    pub seq: Option<i64>,
    #[serde(rename = "k")]
    pub kind: EventKind,
    #[serde(rename = "d")]
    pub data: Value,
}

impl Live {
    pub fn is_terminal(&self) -> bool {
        self.kind.is_terminal()
    }
}

/// What a followed task's channel carries.
#[derive(Debug, Clone)]
enum Msg {
    Event(Arc<Live>),
    /// Something may have been missed (a reconnect, the sweep): read the history again.
    Resync,
}

/// Events a followed task's channel holds for its slowest stream: milestones are a
/// handful per task and progress comes in between, so a stream that falls this far behind
/// (`Lagged`) reads its history again instead. Each slot is held by every followed task,
/// so this is also most of a waiting stream's memory in the hub.
const FOLLOWER_BACKLOG: usize = 16;

/// The Redis channel every process publishes to.
fn channel_name(redis: &RedisHandle) -> String {
    redis.key("events")
}

fn progress_key(redis: &RedisHandle, task_id: Uuid) -> String {
    redis.key(&format!("progress:{task_id}"))
}

/// How events travel between processes: decided once, when the state is built.
#[derive(Debug, Clone)]
enum Transport {
    /// Embedded: every event is published in this process.
    InProcess,
    /// Scale-out: one Redis channel for every process; the latest progress in a key.
    Redis(Box<RedisHandle>),
}

/// The event service of a process: publishing, following, and the hub behind both. Cheap
/// to clone.
#[derive(Debug, Clone)]
pub struct Events {
    hub: Arc<EventHub>,
    store: Store,
    transport: Transport,
    /// How long the latest progress of a task is kept in Redis.
    progress_ttl_secs: u64,
}

impl Events {
    pub fn new(store: Store, redis: Option<RedisHandle>, progress_ttl_secs: u64) -> Self {
        let transport = match redis {
            Some(redis) => Transport::Redis(Box::new(redis)),
            None => Transport::InProcess,
        };
        Self { hub: Arc::default(), store, transport, progress_ttl_secs }
    }

    /// Sends recorded milestones to the followers (after their transaction committed).
    pub async fn publish_recorded(&self, task_id: Uuid, events: &[Recorded]) {
        let live: Vec<Live> =
            events.iter().map(|e| Live { task_id, seq: Some(e.seq), kind: e.kind, data: e.data.clone() }).collect();
        self.publish(live).await;
    }

    /// A progress event: to the followers now, kept as the task's latest; not recorded.
    pub async fn progress(&self, task_id: Uuid, mut data: Value) {
        data["type"] = EventKind::Progress.as_str().into();
        self.publish(vec![Live { task_id, seq: None, kind: EventKind::Progress, data }]).await;
    }

    async fn publish(&self, events: Vec<Live>) {
        match &self.transport {
            Transport::Redis(redis) => {
                // Sent in order, batched with every other task's events (no round trip here).
                let channel = channel_name(redis);
                for live in &events {
                    let Ok(payload) = serde_json::to_string(live) else { continue };
                    if live.seq.is_none() {
                        let mut set = redis::cmd("SET");
                        set.arg(progress_key(redis, live.task_id)).arg(&payload).arg("EX").arg(self.progress_ttl_secs);
                        redis.fire(set);
                    } else if live.is_terminal() {
                        let mut del = redis::cmd("DEL");
                        del.arg(progress_key(redis, live.task_id));
                        redis.fire(del);
                    }
                    let mut publish = redis::cmd("PUBLISH");
                    publish.arg(&channel).arg(payload);
                    redis.fire(publish);
                }
            }
            Transport::InProcess => {
                for live in events {
                    self.hub.dispatch(Arc::new(live), true);
                }
            }
        }
    }

    /// The latest progress of a running task, for a stream that joins late.
    async fn latest_progress(&self, task_id: Uuid) -> Option<Live> {
        match &self.transport {
            Transport::Redis(redis) => {
                let mut conn = redis.conn();
                let raw: Option<String> =
                    redis::cmd("GET").arg(progress_key(redis, task_id)).query_async(&mut conn).await.ok().flatten();
                raw.and_then(|r| serde_json::from_str(&r).ok())
            }
            Transport::InProcess => self.hub.latest(task_id),
        }
    }

    /// Every event this process's hub sees from now on (in scale-out, once the Redis
    /// subscription is active, which this waits for up to 5 s).
    pub async fn tap(&self) -> broadcast::Receiver<Arc<Live>> {
        self.start();
        let rx = self.hub.tap.subscribe();
        if let Transport::Redis(_) = self.transport {
            let mut subscribed = self.hub.subscribed.subscribe();
            let _ = tokio::time::timeout(Duration::from_secs(5), subscribed.wait_for(|s| *s)).await;
        }
        rx
    }

    /// Starts this process's background parts once: the Redis subscriber (scale-out), the
    /// queue-head refresher and the safety sweep.
    fn start(&self) {
        self.hub.started.call_once(|| {
            if let Transport::Redis(redis) = &self.transport {
                tokio::spawn(subscribe_loop(Arc::downgrade(&self.hub), (**redis).clone()));
            }
            tokio::spawn(head_loop(Arc::downgrade(&self.hub), self.store.clone()));
            tokio::spawn(sweep_loop(Arc::downgrade(&self.hub), self.clone()));
        });
    }

    /// Opens a stream on `task_id` from after event `after` (the first event is
    /// `connected`), with the task as it was read; `None` when there is no such task. The
    /// task, its place in line and its history are one read (one round trip on
    /// PostgreSQL), made after the stream joined the task's channel, so nothing published
    /// in between is missed. Whoever asks decides from the task whether the caller may see
    /// it; dropping the follower leaves the channel.
    pub async fn open(&self, task_id: Uuid, after: i64) -> StoreResult<Option<(TaskRow, Follower)>> {
        Follower::start(self, task_id, after).await
    }
}

/// The streams of this process, by followed task.
#[derive(Debug)]
pub struct EventHub {
    channels: Mutex<HashMap<Uuid, Channel>>,
    /// Embedded: the latest progress of each running task.
    latest: Mutex<HashMap<Uuid, Live>>,
    /// The place in line of the first waiting task, refreshed while anyone waits for it.
    head: watch::Sender<Option<i64>>,
    waiting_followers: AtomicUsize,
    started: std::sync::Once,
    /// Every event this hub sees (for tests and diagnostics; nothing is sent without a
    /// receiver).
    tap: broadcast::Sender<Arc<Live>>,
    /// Scale-out: whether the Redis subscription is active.
    subscribed: watch::Sender<bool>,
}

#[derive(Debug)]
struct Channel {
    tx: broadcast::Sender<Msg>,
    /// The highest milestone delivered to this channel.
    last_seq: i64,
}

impl Default for EventHub {
    fn default() -> Self {
        Self {
            channels: Mutex::default(),
            latest: Mutex::default(),
            head: watch::channel(None).0,
            waiting_followers: AtomicUsize::new(0),
            started: std::sync::Once::new(),
            tap: broadcast::channel(4096).0,
            subscribed: watch::channel(false).0,
        }
    }
}

impl EventHub {
    /// Wakes the task's streams; `keep_latest` (embedded) also keeps a progress event as
    /// the task's latest (in scale-out Redis keeps it).
    fn dispatch(&self, live: Arc<Live>, keep_latest: bool) {
        if live.seq.is_none() && keep_latest {
            self.latest.lock().unwrap_or_else(|e| e.into_inner()).insert(live.task_id, (*live).clone());
        } else if live.is_terminal() && keep_latest {
            self.latest.lock().unwrap_or_else(|e| e.into_inner()).remove(&live.task_id);
        }
        if self.tap.receiver_count() > 0 {
            let _ = self.tap.send(live.clone());
        }
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ch) = channels.get_mut(&live.task_id) {
            if let Some(seq) = live.seq {
                ch.last_seq = ch.last_seq.max(seq);
            }
            let _ = ch.tx.send(Msg::Event(live));
        }
    }

    fn latest(&self, task_id: Uuid) -> Option<Live> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).get(&task_id).cloned()
    }

    fn resync_all(&self) {
        for ch in self.channels.lock().unwrap_or_else(|e| e.into_inner()).values() {
            let _ = ch.tx.send(Msg::Resync);
        }
    }

    /// Joins the task's channel. A new channel knows of no milestone until [`Self::seen`]
    /// (not the client's `Last-Event-ID`, which anyone may send before being checked).
    fn subscribe(&self, task_id: Uuid) -> broadcast::Receiver<Msg> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let ch = channels
            .entry(task_id)
            .or_insert_with(|| Channel { tx: broadcast::channel(FOLLOWER_BACKLOG).0, last_seq: 0 });
        ch.tx.subscribe()
    }

    /// The task's milestones up to `seq` are in the database as read by a joining stream.
    fn seen(&self, task_id: Uuid, seq: i64) {
        if let Some(ch) = self.channels.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&task_id) {
            ch.last_seq = ch.last_seq.max(seq);
        }
    }

    fn unsubscribe(&self, task_id: Uuid) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if channels.get(&task_id).is_some_and(|ch| ch.tx.receiver_count() == 0) {
            channels.remove(&task_id);
        }
    }
}

/// Feeds the hub from the Redis channel; after any reconnect every stream re-reads its
/// history (what was published meanwhile is in the database).
async fn subscribe_loop(hub: std::sync::Weak<EventHub>, redis: RedisHandle) {
    use futures::StreamExt;
    let channel = channel_name(&redis);
    loop {
        let mut pubsub = match redis.pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "connecting the event subscriber to Redis failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Err(e) = pubsub.subscribe(&channel).await {
            tracing::warn!(error = %e, "subscribing to task events failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let Some(h) = hub.upgrade() else { return };
        h.subscribed.send_replace(true);
        h.resync_all();
        drop(h);
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let Some(h) = hub.upgrade() else { return };
            let payload: Vec<u8> = msg.get_payload_bytes().to_vec();
            match serde_json::from_slice::<Live>(&payload) {
                Ok(live) => h.dispatch(Arc::new(live), false),
                Err(e) => tracing::warn!(error = %e, "an unreadable task event on the channel"),
            }
        }
        if let Some(h) = hub.upgrade() {
            h.subscribed.send_replace(false);
        }
        tracing::warn!("the task event subscription ended; reconnecting");
        crate::meter::redis_reconnect("events");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Refreshes the queue head (one query a second) while any stream waits for its turn.
async fn head_loop(hub: std::sync::Weak<EventHub>, store: Store) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(h) = hub.upgrade() else { return };
        if h.waiting_followers.load(Ordering::Relaxed) == 0 {
            continue;
        }
        match store.queue_head().await {
            Ok(head) => {
                h.head.send_if_modified(|current| {
                    let changed = *current != head;
                    *current = head;
                    changed
                });
            }
            Err(e) => tracing::debug!(error = %e, "reading the queue head failed"),
        }
    }
}

/// The safety net for events from other processes: one query over every followed task's
/// event counter — every 10 s in scale-out (a Pub/Sub message lost without a reconnect),
/// every half second on PostgreSQL without Redis (where other processes' events arrive no
/// other way). Embedded, every event is published in this process: nothing to sweep.
async fn sweep_loop(hub: std::sync::Weak<EventHub>, events: Events) {
    let every = match (&events.transport, events.store.engine()) {
        (Transport::Redis(_), _) => Duration::from_secs(10),
        (Transport::InProcess, Engine::Postgres) => Duration::from_millis(500),
        (Transport::InProcess, Engine::Sqlite) => return,
    };
    let store = events.store.clone();
    drop(events);
    loop {
        tokio::time::sleep(every).await;
        let Some(h) = hub.upgrade() else { return };
        let known: Vec<(Uuid, i64)> = {
            let channels = h.channels.lock().unwrap_or_else(|e| e.into_inner());
            channels.iter().map(|(id, ch)| (*id, ch.last_seq)).collect()
        };
        drop(h);
        for chunk in known.chunks(500) {
            let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
            let Ok(current) = store.task_event_seqs(&ids).await else { continue };
            let Some(h) = hub.upgrade() else { return };
            let behind: HashMap<Uuid, i64> = chunk.iter().copied().collect();
            let channels = h.channels.lock().unwrap_or_else(|e| e.into_inner());
            for (id, seq) in current {
                if behind.get(&id).is_some_and(|known| seq > *known)
                    && let Some(ch) = channels.get(&id)
                {
                    let _ = ch.tx.send(Msg::Resync);
                }
            }
        }
    }
}

/// One stream's view of a task: replays the history after `after` from the database,
/// then delivers what the hub brings (reading the database again only on a gap), and while
/// the task waits its queue position whenever the head of the queue moves.
pub struct Follower {
    events: Events,
    task_id: Uuid,
    after: i64,
    buffer: VecDeque<Live>,
    done: bool,
    rx: broadcast::Receiver<Msg>,
    head: watch::Receiver<Option<i64>>,
    /// Read the history before waiting (at the start, after a gap or a resync).
    read_db: bool,
    /// The history read with the task when the stream opened (taken by the first read).
    preread: Option<Vec<TaskEventRow>>,
    /// Send the latest progress after the first read (a late joiner).
    want_latest: bool,
    /// That latest progress, so the same event arriving live is not sent twice.
    latest_sent: Option<Value>,
    /// While waiting: its place in line and the position last sent.
    queue_seq: Option<i64>,
    position: Option<i64>,
    /// The task had ended when the stream opened: once the history after `after` is sent,
    /// the stream ends (a `Last-Event-ID` past the terminal event gets nothing and ends).
    ended: bool,
}

impl Follower {
    /// Joins `task_id`'s channel, then reads the task, its place in line and its history
    /// after `after` (see [`Events::open`]).
    async fn start(events: &Events, task_id: Uuid, after: i64) -> StoreResult<Option<(TaskRow, Self)>> {
        let hub = &events.hub;
        events.start();
        let connected = Live {
            task_id,
            seq: None,
            kind: EventKind::Connected,
            data: serde_json::json!({ "type": EventKind::Connected }),
        };
        // Built first, so an early return leaves the channel (`Drop`).
        let mut follower = Self {
            events: events.clone(),
            task_id,
            after,
            buffer: VecDeque::from([connected]),
            done: false,
            rx: hub.subscribe(task_id),
            head: hub.head.subscribe(),
            read_db: true,
            preread: None,
            want_latest: true,
            latest_sent: None,
            queue_seq: None,
            position: None,
            ended: false,
        };
        let Some(start) = events.store.task_stream_start(task_id, after).await? else { return Ok(None) };
        hub.seen(task_id, start.event_seq);
        // A `Last-Event-ID` past the task's last milestone (a client of another database, a
        // typo) counts from that milestone: the live task's next ones still arrive, and its
        // stream still ends.
        follower.after = after.min(start.event_seq);
        follower.ended = start.task.status.is_terminal();
        if start.queue_seq.is_some() {
            hub.waiting_followers.fetch_add(1, Ordering::Relaxed);
            follower.queue_seq = start.queue_seq;
        }
        follower.preread = Some(start.events);
        Ok(Some((start.task, follower)))
    }

    /// The next event; `None` after the terminal one.
    pub async fn next(&mut self) -> Option<Live> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            if self.read_db {
                self.read_db = false;
                // Boxed: a waiting stream's `next` then holds a small future, not the
                // database read's (which it needs only now and then).
                Box::pin(self.read_history()).await;
                if !self.buffer.is_empty() || self.done {
                    continue;
                }
            }
            if self.queue_seq.is_some() {
                let head = *self.head.borrow_and_update();
                if let (Some(seq), Some(head)) = (self.queue_seq, head) {
                    let position = seq - head;
                    if position < 0 {
                        self.stop_waiting();
                    } else if self.position != Some(position) {
                        self.position = Some(position);
                        self.buffer.push_back(Live {
                            task_id: self.task_id,
                            seq: None,
                            kind: EventKind::QueuePosition,
                            data: serde_json::json!({ "type": EventKind::QueuePosition, "position": position }),
                        });
                        continue;
                    }
                }
            }
            let waiting = self.queue_seq.is_some();
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Ok(Msg::Event(live)) => self.take(live),
                    Ok(Msg::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => self.read_db = true,
                    Err(broadcast::error::RecvError::Closed) => self.read_db = true,
                },
                changed = self.head.changed(), if waiting => {
                    if changed.is_err() {
                        self.stop_waiting();
                    }
                }
            }
        }
    }

    fn take(&mut self, live: Arc<Live>) {
        match live.seq {
            Some(seq) if seq <= self.after => {}
            Some(seq) if seq == self.after + 1 => {
                self.after = seq;
                self.done = live.is_terminal();
                if live.kind != EventKind::Queued {
                    self.stop_waiting();
                }
                self.buffer.push_back((*live).clone());
            }
            // A milestone is missing in between: it is in the database.
            Some(_) => self.read_db = true,
            None => {
                if live.kind == EventKind::Progress {
                    self.stop_waiting();
                    if self.latest_sent.take().is_some_and(|sent| sent == live.data) {
                        return;
                    }
                }
                self.buffer.push_back((*live).clone());
            }
        }
    }

    async fn read_history(&mut self) {
        let rows = match self.preread.take() {
            Some(rows) => Ok(rows),
            None => self.events.store.task_events_after(self.task_id, self.after).await,
        };
        match rows {
            Ok(rows) => {
                for row in rows {
                    self.after = row.seq;
                    if row.kind != EventKind::Queued {
                        self.stop_waiting();
                    }
                    self.done = row.kind.is_terminal();
                    self.buffer.push_back(Live {
                        task_id: self.task_id,
                        seq: Some(row.seq),
                        kind: row.kind,
                        data: row.data.0,
                    });
                    if self.done {
                        break;
                    }
                }
            }
            Err(e) => tracing::warn!(task_id = %self.task_id, error = %e, "reading task events failed"),
        }
        if self.ended {
            // Its whole history is in the database: nothing more will come.
            self.done = true;
        }
        if std::mem::take(&mut self.want_latest)
            && !self.done
            && let Some(latest) = self.events.latest_progress(self.task_id).await
        {
            self.stop_waiting();
            self.latest_sent = Some(latest.data.clone());
            self.buffer.push_back(latest);
        }
    }

    fn stop_waiting(&mut self) {
        if self.queue_seq.take().is_some() {
            self.events.hub.waiting_followers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop_waiting();
        // The receiver goes first, so the channel can tell whether anyone is left.
        let (_, rx) = broadcast::channel(1);
        drop(std::mem::replace(&mut self.rx, rx));
        self.events.hub.unsubscribe(self.task_id);
    }
}
