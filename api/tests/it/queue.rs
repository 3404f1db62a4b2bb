//! The queue's safety nets on both backends: the per-user running limit, the dead-letter
//! list (retries exhausted, runs that kept stopping their worker), and — scale-out — the
//! reconciler that re-sends a task whose Redis Stream entry was lost, and the per-task
//! Redis event stream.

use std::time::Duration;

use funmagic_api::config::SettingsLayer;
use funmagic_api::store::{Claim, Role};
use funmagic_api::testing::{TestApp, TestBackend};
use funmagic_sdk::types;

use crate::{actor, client_as, echo, err_code, funded, post_echo};

/// Polls until the task has ended; returns it.
async fn ended(client: &funmagic_sdk::Client, id: uuid::Uuid) -> types::Task {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let task = client.task_get(&id).await.unwrap().into_inner().task;
        if matches!(task.status.to_string().as_str(), "completed" | "failed" | "cancelled") {
            return task;
        }
        assert!(tokio::time::Instant::now() < deadline, "task {id} did not end: {task:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn backends() -> [TestBackend; 2] {
    [TestBackend::Embedded, TestBackend::ScaleOut]
}

/// One user's tasks run one at a time (limit 1) while another user's task runs beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_running_limit() {
    for backend in backends() {
        let mut extra = SettingsLayer::default();
        extra.tasks.max_running_per_user = Some(1);
        let Some(app) = TestApp::spawn_with(backend, extra).await else { continue };
        let ada = funded(&app, "ada@example.com", 10).await;
        let bob = funded(&app, "bob@example.com", 10).await;
        let (as_ada, as_bob) = (client_as(&app, &ada.token), client_as(&app, &bob.token));
        let mut ids = vec![];
        for i in 0..3 {
            let t = as_ada.task_create(None, &echo(serde_json::json!({"delayMs": 400, "i": i}))).await.unwrap();
            ids.push(t.into_inner().task.id);
        }
        let bobs =
            as_bob.task_create(None, &echo(serde_json::json!({"delayMs": 400}))).await.unwrap().into_inner().task;
        let mut adas = vec![];
        for id in ids {
            adas.push(ended(&as_ada, id).await);
        }
        let bobs = ended(&as_bob, bobs.id).await;
        assert!(adas.iter().chain([&bobs]).all(|t| t.status.to_string() == "completed"), "{backend:?}");
        adas.sort_by_key(|t| t.started_at);
        for pair in adas.windows(2) {
            assert!(
                pair[1].started_at.unwrap() >= pair[0].completed_at.unwrap(),
                "{backend:?}: ada's tasks overlapped: {pair:?}"
            );
        }
        assert!(
            bobs.started_at.unwrap() < adas[2].started_at.unwrap(),
            "{backend:?}: bob waited behind all of ada's tasks"
        );
        assert!(app.state().store().credits_invariant_violations(ada.id).await.unwrap().is_empty());
    }
}

/// Exhausted retries and runs that kept stopping their worker end on the dead-letter list
/// (admins only), with the credits released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters() {
    for backend in backends() {
        let mut extra = SettingsLayer::default();
        extra.tasks.max_attempts = Some(2);
        extra.tasks.retry_base_ms = Some(20);
        extra.tasks.lease_secs = Some(3);
        let Some(mut app) = TestApp::spawn_with(backend, extra).await else { continue };
        let ada = funded(&app, "ada@example.com", 10).await;
        let admin = actor(&app, "admin@example.com", Role::Admin).await;
        let (as_ada, as_admin) = (client_as(&app, &ada.token), client_as(&app, &admin.token));

        let failing = as_ada.task_create(None, &echo(serde_json::json!({"failAttempts": 9}))).await.unwrap();
        let failing = ended(&as_ada, failing.into_inner().task.id).await;
        assert_eq!(failing.status.to_string(), "failed");

        // Runs that died without a word: claim twice by hand with the workers stopped.
        app.stop_workers().await;
        let crashing = as_ada.task_create(None, &echo(serde_json::json!({}))).await.unwrap().into_inner().task;
        for attempt in 1..=2 {
            let claim =
                app.state().store().queue_claim(Some(crashing.id), Duration::from_millis(1), 0, 2).await.unwrap();
            assert!(matches!(&claim, Claim::Claimed(c) if c.attempts == attempt), "{claim:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The third run (now, in this call) sees two runs that never ended.
        assert_eq!(app.run_pending_tasks().await, 1);
        let crashing = ended(&as_ada, crashing.id).await;
        assert_eq!(crashing.status.to_string(), "failed", "{backend:?}");

        let list = as_admin.admin_dead_letter_list(None, None).await.unwrap().into_inner();
        let reasons: Vec<(uuid::Uuid, &str, i32)> =
            list.dead_letters.iter().map(|d| (d.task_id, d.reason.as_str(), d.attempts)).collect();
        assert_eq!(
            reasons,
            vec![(crashing.id, "worker_crashes", 2), (failing.id, "retries_exhausted", 2)],
            "{backend:?}"
        );
        assert_eq!(err_code(as_ada.admin_dead_letter_list(None, None).await), (403, "FORBIDDEN".into()));
        let balance = as_ada.credits_balance_get().await.unwrap().into_inner();
        assert_eq!((balance.balance, balance.reserved), (10, 0), "{backend:?}: both released");
        assert!(app.state().store().credits_invariant_violations(ada.id).await.unwrap().is_empty());

        // An admin runs the crashed one again: a new task of ada's, paid by ada.
        let retried = as_admin.admin_task_retry(&crashing.id).await.unwrap().into_inner().task;
        assert_ne!(retried.id, crashing.id);
        assert_eq!(retried.user_id, ada.id);
        assert_eq!(app.run_pending_tasks().await, 1, "the retry waits for a worker");
        let retried = ended(&as_ada, retried.id).await;
        assert_eq!(retried.status.to_string(), "completed", "{backend:?}");
        assert_eq!(err_code(as_admin.admin_task_retry(&retried.id).await), (409, "TASK_NOT_FAILED".into()));
        assert_eq!(err_code(as_ada.admin_task_retry(&crashing.id).await).0, 403);
        let events = as_ada.task_events_list(&retried.id).await.unwrap().into_inner().events;
        assert_eq!(events.first().map(|e| e.type_.to_string()).as_deref(), Some("queued"));
        assert_eq!(events.last().map(|e| e.type_.to_string()).as_deref(), Some("completed"));
        let bob = funded(&app, "bob@example.com", 1).await;
        assert_eq!(err_code(client_as(&app, &bob.token).task_events_list(&retried.id).await).0, 404);
        assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 9);

        let stats = as_admin.admin_queue_get().await.unwrap().into_inner();
        assert_eq!((stats.waiting, stats.running), (0, 0));
        assert_eq!(stats.backend, if backend == TestBackend::ScaleOut { "redis" } else { "database" });
    }
}

/// Scale-out: the row is written, the XADD is lost (a crash between the two writes) —
/// the reconciler sends it again and the task runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciler_resends_lost_entries() {
    let mut extra = SettingsLayer::default();
    extra.tasks.reconcile_secs = Some(2);
    let Some(mut app) = TestApp::spawn_with(TestBackend::ScaleOut, extra).await else { return };
    let ada = funded(&app, "ada@example.com", 10).await;
    let as_ada = client_as(&app, &ada.token);
    app.stop_workers().await;
    let task = as_ada.task_create(None, &echo(serde_json::json!({"lost": true}))).await.unwrap().into_inner().task;
    let redis = app.state().redis().unwrap();
    let mut conn = redis.conn();
    let queue = funmagic_api::queue::RedisQueue::new(redis);
    // The XADD goes out pipelined just after the answer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let len: i64 = redis::cmd("XLEN").arg(queue.stream_key()).query_async(&mut conn).await.unwrap();
        if len > 0 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let trimmed: i64 =
        redis::cmd("XTRIM").arg(queue.stream_key()).arg("MAXLEN").arg(0).query_async(&mut conn).await.unwrap();
    assert_eq!(trimmed, 1, "the submit sent exactly one entry");

    let (_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(funmagic_api::worker::run_workers(app.state().clone(), 2, stop));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        as_ada.task_get(&task.id).await.unwrap().into_inner().task.status.to_string(),
        "queued",
        "nothing delivered it"
    );
    let done = ended(&as_ada, task.id).await;
    assert_eq!(done.status.to_string(), "completed");

    // Its milestones are in the database, numbered without a gap; no progress is left in
    // Redis once it ended.
    let rows = app.state().store().task_events_after(task.id, 0).await.unwrap();
    let kinds: Vec<(i64, &str)> = rows.iter().map(|r| (r.seq, r.kind.as_str())).collect();
    assert_eq!(kinds, [(1, "queued"), (2, "step_started"), (3, "step_completed"), (4, "completed")]);
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}*progress*", redis.key(""))).query_async(&mut conn).await.unwrap();
    assert!(keys.is_empty(), "the latest progress is dropped at the end: {keys:?}");
}

/// Scale-out: Redis restarted empty (found by the chaos suite, seed 1): the stream and its
/// consumer group are gone, and every read answered NOGROUP for ever. The workers make the
/// group again, and tasks submitted afterwards run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_a_redis_that_lost_the_queue() {
    let mut extra = SettingsLayer::default();
    extra.tasks.reconcile_secs = Some(2);
    let Some(app) = TestApp::spawn_with(TestBackend::ScaleOut, extra).await else { return };
    let ada = funded(&app, "ada@example.com", 10).await;
    let as_ada = client_as(&app, &ada.token);
    let first = as_ada.task_create(None, &echo(serde_json::json!({"n": 1}))).await.unwrap().into_inner().task;
    assert_eq!(ended(&as_ada, first.id).await.status.to_string(), "completed");
    // What a restart of a Redis that keeps nothing does to the queue: the stream (with its
    // group) and the delayed set vanish.
    let redis = app.state().redis().unwrap();
    let queue = funmagic_api::queue::RedisQueue::new(redis);
    let mut conn = redis.conn();
    let deleted: i64 = redis::cmd("DEL").arg(queue.stream_key()).query_async(&mut conn).await.unwrap();
    assert_eq!(deleted, 1);
    let second = as_ada.task_create(None, &echo(serde_json::json!({"n": 2}))).await.unwrap().into_inner().task;
    assert_eq!(ended(&as_ada, second.id).await.status.to_string(), "completed");
}

/// `tasks.max_waiting`: once that many tasks wait for a worker, a submission waits for room
/// before anything is reserved; one that finds none in time is refused 503 `QUEUE_FULL`
/// with `Retry-After` and changes nothing. Tasks parked by their user's running limit do
/// not fill the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_line_holds_submissions_until_there_is_room() {
    for backend in backends() {
        let mut extra = SettingsLayer::default();
        extra.tasks.max_waiting = Some(3);
        extra.tasks.admit_wait_secs = Some(5);
        let Some(mut app) = TestApp::spawn_with(backend, extra).await else { continue };
        app.stop_workers().await;
        let ada = funded(&app, "ada@example.com", 20).await;
        let as_ada = client_as(&app, &ada.token);
        let mut waiting = vec![];
        for i in 0..3 {
            waiting
                .push(as_ada.task_create(None, &echo(serde_json::json!({ "i": i }))).await.unwrap().into_inner().task);
        }

        // The fourth is held while three wait, and goes in when one of them leaves the line.
        let held = tokio::spawn({
            let as_ada = as_ada.clone();
            async move { as_ada.task_create(None, &echo(serde_json::json!({ "i": 3 }))).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!held.is_finished(), "{backend:?}: a submission went past a full line");
        let room_made = chrono::Utc::now();
        as_ada.task_cancel(&waiting[0].id).await.unwrap();
        let admitted = tokio::time::timeout(Duration::from_secs(10), held).await.unwrap().unwrap();
        let admitted = admitted.expect("admitted once there was room").into_inner().task;
        assert!(admitted.created_at >= room_made, "{backend:?}: it was made before there was room");
        waiting.push(admitted);

        // Full again: the next one waits its 5 s and is refused, having reserved nothing.
        let before = as_ada.credits_balance_get().await.unwrap().into_inner();
        let resp = post_echo(&app, &ada.token).await;
        assert_eq!(resp.status(), 503, "{backend:?}");
        let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry_after >= 1, "{backend:?}: {retry_after}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "QUEUE_FULL", "{backend:?}: {body}");
        let after = as_ada.credits_balance_get().await.unwrap().into_inner();
        assert_eq!((after.balance, after.reserved), (before.balance, before.reserved), "{backend:?}");
        let tasks = as_ada.task_list(None, std::num::NonZeroU32::new(50), None, None).await.unwrap().into_inner().tasks;
        assert_eq!(tasks.len(), 4, "{backend:?}: the refused submission made no task");

        // Every admitted task runs once workers take the line.
        assert_eq!(app.run_pending_tasks().await, 3, "{backend:?}");
        for t in &waiting[1..] {
            assert_eq!(ended(&as_ada, t.id).await.status.to_string(), "completed", "{backend:?}");
        }
        assert!(app.state().store().credits_invariant_violations(ada.id).await.unwrap().is_empty());
    }
}

/// Tasks held back by their own user's running limit (parked, or skipped by the table's
/// claims) are not counted: no worker could take them now, so one user's backlog does not
/// hold other users' submissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_tasks_do_not_fill_the_line() {
    for backend in backends() {
        let mut extra = SettingsLayer::default();
        extra.tasks.max_waiting = Some(2);
        extra.tasks.admit_wait_secs = Some(2);
        extra.tasks.max_running_per_user = Some(1);
        let Some(app) = TestApp::spawn_with(backend, extra).await else { continue };
        let ada = funded(&app, "ada@example.com", 20).await;
        let bob = funded(&app, "bob@example.com", 20).await;
        let (as_ada, as_bob) = (client_as(&app, &ada.token), client_as(&app, &bob.token));
        // Ada's first task runs for a while; her next ones wait behind it (parked when a
        // worker reaches them in scale-out, skipped by the table's claims when embedded), one
        // at a time so that each is out of the count before the next comes.
        let long = as_ada.task_create(None, &echo(serde_json::json!({ "delayMs": 10_000 }))).await.unwrap();
        let long = long.into_inner().task;
        let mut parked = vec![];
        for i in 0..4 {
            let t = as_ada.task_create(None, &echo(serde_json::json!({ "i": i }))).await.unwrap().into_inner().task;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while app.state().store().queue_runnable(100, 1).await.unwrap() > 0 {
                assert!(tokio::time::Instant::now() < deadline, "{backend:?}: task {i} is counted as runnable");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            parked.push(t);
        }
        // Four of Ada's tasks wait, none runnable: Bob's submission goes straight in.
        let bobs = as_bob.task_create(None, &echo(serde_json::json!({}))).await.expect("bob is not held");
        let still = as_ada.task_get(&long.id).await.unwrap().into_inner().task;
        assert_eq!(still.status.to_string(), "running", "{backend:?}: ada's tasks were not held behind it");
        assert_eq!(ended(&as_bob, bobs.into_inner().task.id).await.status.to_string(), "completed");
        for t in std::iter::once(long).chain(parked) {
            assert_eq!(ended(&as_ada, t.id).await.status.to_string(), "completed", "{backend:?}");
        }
    }
}

/// Scale-out: a worker whose runs are short reads entries ahead of its free slots, so a
/// freed slot starts the next task without a round trip to Redis. When its slots then stay
/// busy (the next tasks are long), what it read ahead goes back to the stream within a
/// second, and an idle worker runs it: it does not wait for a busy slot, nor for a lease to
/// run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_read_ahead_go_back_when_the_slots_stay_busy() {
    use funmagic_api::store::{NewTask, TaskStatus};
    use serde_json::json;

    let Some(mut app) = TestApp::spawn(TestBackend::ScaleOut).await else { return };
    app.stop_workers().await;
    let ada = funded(&app, "ada@example.com", 100).await;
    let as_ada = client_as(&app, &ada.token);
    let state = app.state().clone();
    // Worker A: two slots, so once its runs are short it reads one entry ahead.
    let (_stop_a, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(funmagic_api::worker::run_workers(state.clone(), 2, stop));
    for i in 0..4 {
        let task = as_ada.task_create(None, &echo(json!({ "warm": i }))).await.unwrap().into_inner().task;
        assert_eq!(ended(&as_ada, task.id).await.status.to_string(), "completed");
    }
    // A's read waits at most 2 s, and asks for as many entries as it may take when it is
    // made: past that, both slots are free and the read asks for three.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    // Three tasks written without their stream entries, then the three entries in one
    // MULTI: A's waiting read (one entry for its free slot, one for the next, one ahead)
    // gets all three. The two long ones start; the short one is held ahead.
    let store = state.store();
    let tool = store.tool_get_by_slug("echo").await.unwrap().expect("the seeded echo tool");
    let step = tool.config.0["steps"][0]["id"].as_str().unwrap().to_string();
    let mut ids = vec![];
    for input in [json!({ "delayMs": 6_000 }), json!({ "delayMs": 6_000 }), json!({ "short": true })] {
        let new = NewTask {
            id: uuid::Uuid::now_v7(),
            user_id: ada.id,
            tool_id: tool.id,
            parent_task_id: None,
            steps: vec![step.clone()],
            run_all_steps: false,
            cost: 1,
            input,
            trace_parent: None,
            webhook_url: None,
        };
        ids.push(store.task_submit(&new).await.unwrap().0.id);
    }
    let (long, short) = ([ids[0], ids[1]], ids[2]);
    let redis = state.redis().unwrap();
    let queue = funmagic_api::queue::RedisQueue::new(redis);
    let mut pipe = redis::pipe();
    pipe.atomic();
    for id in &ids {
        pipe.add_command(queue.push_cmd(*id)).ignore();
    }
    let mut conn = redis.conn();
    let () = pipe.query_async(&mut conn).await.unwrap();
    let status = |id: uuid::Uuid| {
        let store = store.clone();
        async move { store.task_get(id).await.unwrap().unwrap().status }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while status(long[0]).await != TaskStatus::Running || status(long[1]).await != TaskStatus::Running {
        assert!(tokio::time::Instant::now() < deadline, "the long tasks did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A took all three entries (pending with it), and runs the two long ones.
    let pending: (i64, Option<String>, Option<String>, redis::Value) =
        redis::cmd("XPENDING").arg(queue.stream_key()).arg("workers").query_async(&mut conn).await.unwrap();
    assert_eq!(pending.0, 3, "the short task's entry was read ahead");
    assert_eq!(status(short).await, TaskStatus::Queued);

    // Worker B, idle, comes: it runs the short task once A gives its entry back.
    let (_stop_b, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(funmagic_api::worker::run_workers(state.clone(), 1, stop));
    assert_eq!(ended(&as_ada, short).await.status.to_string(), "completed");
    for id in long {
        assert_eq!(status(id).await, TaskStatus::Running, "the short task ran before the long ones ended");
    }
    let kinds: Vec<String> =
        store.task_events_after(short, 0).await.unwrap().into_iter().map(|e| e.kind.as_str().to_string()).collect();
    assert_eq!(kinds, ["queued", "step_started", "step_completed", "completed"], "it ran once");
    for id in long {
        assert_eq!(ended(&as_ada, id).await.status.to_string(), "completed");
    }
}
