//! Tasks end to end on both backends: submit (reserve + enqueue atomically), in-process
//! workers, SSE progress with replay, cancel while queued and while running, idempotency,
//! credits settled exactly once.

use std::time::Duration;

use funmagic_api::store::{Role, TransactionType};
use funmagic_api::testing::TestApp;
use funmagic_sdk::types;
use futures::StreamExt;

use crate::{actor, client_as, echo, err_code, funded};

funmagic_api::test_both_backends!(
    echo_task_runs_and_streams,
    submit_rules_and_idempotency,
    cancel_queued_and_running,
    stream_replays_after_last_event_id
);

/// Reads SSE events `(id, event, data)` from a stream until `stop` returns true or it ends.
pub(crate) async fn read_events(
    app_url: &str,
    token: &str,
    task: uuid::Uuid,
    last_event_id: Option<i64>,
    stop: impl Fn(&(Option<i64>, String, serde_json::Value)) -> bool,
) -> Vec<(Option<i64>, String, serde_json::Value)> {
    let mut req = reqwest::Client::new().get(format!("{app_url}/api/tasks/{task}/stream")).bearer_auth(token);
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut events = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if kind.is_empty() {
                continue; // heartbeat comment
            }
            let event = (id, kind, serde_json::from_str(&data).unwrap_or(serde_json::Value::Null));
            let done = stop(&event);
            events.push(event);
            if done {
                return events;
            }
        }
        match tokio::time::timeout_at(deadline, body.next()).await.expect("the stream went quiet") {
            Some(chunk) => buf.push_str(&String::from_utf8_lossy(&chunk.unwrap())),
            None => return events,
        }
    }
}

async fn echo_task_runs_and_streams(app: TestApp) {
    let ada = funded(&app, "ada@example.com", 10).await;
    let as_ada = client_as(&app, &ada.token);
    let created =
        as_ada.task_create(None, &echo(serde_json::json!({"hello": "world", "delayMs": 1000}))).await.unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let task = created.into_inner().task;
    assert_eq!((task.credits_cost, task.status.to_string().as_str()), (1, "queued"));
    let events = read_events(&app.base_url(), &ada.token, task.id, None, |_| false).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(kinds[..3], ["connected", "queued", "step_started"]);
    assert_eq!(kinds[kinds.len() - 2..], ["step_completed", "completed"]);
    // Progress is live (no id, not replayed): a stream that joined late starts from the
    // latest; every 10 % step after that arrives, in order.
    let progress: Vec<u64> =
        events.iter().filter(|e| e.1 == "progress").map(|e| e.2["progress"].as_u64().unwrap()).collect();
    assert!(progress.len() >= 5 && progress.windows(2).all(|p| p[1] == p[0] + 10), "{progress:?}");
    assert_eq!(progress.last(), Some(&100));
    assert!(events.iter().filter(|e| e.1 == "progress").all(|e| e.0.is_none()), "progress carries no id");
    let ids: Vec<i64> = events.iter().filter_map(|e| e.0).collect();
    assert_eq!(ids, [1, 2, 3, 4], "every milestone has the next id");
    let history = as_ada.task_events_list(&task.id).await.unwrap().into_inner().events;
    let recorded: Vec<String> = history.iter().map(|e| e.type_.to_string()).collect();
    assert_eq!(recorded, ["queued", "step_started", "step_completed", "completed"], "only milestones are recorded");
    assert_eq!(events.last().unwrap().2["output"]["hello"], "world");

    let detail = as_ada.task_get(&task.id).await.unwrap().into_inner();
    assert_eq!(detail.task.status.to_string(), "completed");
    assert_eq!(detail.output.unwrap()["hello"], "world");
    assert_eq!(detail.steps[0].status.to_string(), "completed");
    let balance = as_ada.credits_balance_get().await.unwrap().into_inner();
    assert_eq!((balance.balance, balance.reserved), (9, 0), "spent exactly once");
    assert!(app.state().store().credits_invariant_violations(ada.id).await.unwrap().is_empty());

    // Other users see nothing; the list shows it.
    let bob = actor(&app, "bob@example.com", Role::User).await;
    assert_eq!(err_code(client_as(&app, &bob.token).task_get(&task.id).await).0, 404);
    let list = as_ada.task_list(None, None, Some(types::TaskStatus::Completed), None).await.unwrap().into_inner();
    assert_eq!(list.tasks.len(), 1);

    // A step whose input file does not exist fails cleanly and releases the credits.
    let bg = types::TaskCreateRequest {
        tool_slug: "background-remove".parse().unwrap(),
        step_id: None,
        input: serde_json::json!({"imageStorageKey": "nobody/uploads/missing.png"}),
        parent_task_id: None,
        run_all_steps: None,
        webhook: None,
    };
    let failed = as_ada.task_create(None, &bg).await;
    assert_eq!(err_code(failed), (402, "INSUFFICIENT_CREDITS".into()), "9 available, 10 needed");
    app.state().store().credits_grant(ada.id, TransactionType::Bonus, 10, "more", None).await.unwrap();
    let t = as_ada.task_create(None, &bg).await.unwrap().into_inner().task;
    let events = read_events(&app.base_url(), &ada.token, t.id, None, |_| false).await;
    assert_eq!(events.last().unwrap().1, "failed");
    let balance = as_ada.credits_balance_get().await.unwrap().into_inner();
    assert_eq!((balance.balance, balance.reserved), (19, 0), "released on failure");
}

async fn submit_rules_and_idempotency(app: TestApp) {
    let ada = funded(&app, "ada@example.com", 5).await;
    let as_ada = client_as(&app, &ada.token);
    let bad = |slug: &str, step: Option<&str>, input: serde_json::Value| types::TaskCreateRequest {
        tool_slug: slug.parse().unwrap(),
        step_id: step.map(str::to_string).map(|s| s.parse().unwrap()),
        input,
        parent_task_id: None,
        run_all_steps: None,
        webhook: None,
    };
    assert_eq!(err_code(as_ada.task_create(None, &bad("nope", None, serde_json::json!({}))).await).0, 404);
    assert_eq!(
        err_code(as_ada.task_create(None, &bad("echo", Some("zzz"), serde_json::json!({}))).await),
        (422, "UNKNOWN_STEP".into())
    );
    assert_eq!(err_code(as_ada.task_create(None, &bad("echo", None, serde_json::json!([1]))).await).0, 422);
    assert_eq!(err_code(as_ada.task_create(None, &bad("echo", None, serde_json::json!({"delayMs": -1}))).await).0, 422);
    assert_eq!(
        err_code(as_ada.task_create(None, &bad("crystal-memory", None, serde_json::json!({}))).await),
        (422, "INVALID_INPUT".into())
    );

    // The same Idempotency-Key twice: one task, one reservation.
    let body = echo(serde_json::json!({"n": 1}));
    let a = as_ada.task_create(Some(&"submit-1".parse().unwrap()), &body).await.unwrap().into_inner().task;
    let b = as_ada.task_create(Some(&"submit-1".parse().unwrap()), &body).await.unwrap().into_inner().task;
    assert_eq!(a.id, b.id);
    let all = as_ada.task_list(None, None, None, None).await.unwrap().into_inner();
    assert_eq!(all.tasks.len(), 1);
    let reserves =
        as_ada.credits_transaction_list(None, None, Some(types::TransactionType::Reserve)).await.unwrap().into_inner();
    assert_eq!(reserves.transactions.len(), 1);
    assert_eq!(
        err_code(as_ada.task_create(Some(&"submit-1".parse().unwrap()), &echo(serde_json::json!({"n": 2}))).await).0,
        422
    );

    // A request that died between taking its key and answering: 409 while it may still be
    // running, then (older than IDEMPOTENCY_IN_FLIGHT) the retry takes the key over.
    let body = echo(serde_json::json!({"n": 3}));
    let submit = funmagic_api::tasks::Submit {
        tool_slug: "echo".into(),
        step_id: None,
        input: serde_json::json!({"n": 3}),
        parent_task_id: None,
        run_all_steps: false,
        webhook: None,
    };
    let hash = {
        use sha2::Digest;
        let json = serde_json::to_vec(&submit).unwrap();
        hex::encode(sha2::Sha256::digest([b"task_create".as_slice(), b"\n", &json].concat()))
    };
    let state = app.state().store().idempotency_begin(ada.id, "submit-2", "task_create", &hash).await.unwrap();
    assert!(matches!(state, funmagic_api::store::IdempotencyState::Claimed));
    assert_eq!(
        err_code(as_ada.task_create(Some(&"submit-2".parse().unwrap()), &body).await),
        (409, "IDEMPOTENCY_IN_PROGRESS".into())
    );
    let long_ago = funmagic_api::store::now() - chrono::Duration::minutes(2);
    let sql = "UPDATE idempotency_keys SET created_at = $1 WHERE key = 'submit-2'";
    match app.state().store() {
        funmagic_api::store::Store::Postgres(s) => {
            sqlx::query(sql).bind(long_ago).execute(s.pool()).await.map(|_| ()).unwrap()
        }
        funmagic_api::store::Store::Sqlite(s) => {
            sqlx::query(sql).bind(long_ago).execute(s.pool()).await.map(|_| ()).unwrap()
        }
    };
    let retried = as_ada.task_create(Some(&"submit-2".parse().unwrap()), &body).await.unwrap().into_inner().task;
    let replayed = as_ada.task_create(Some(&"submit-2".parse().unwrap()), &body).await.unwrap().into_inner().task;
    assert_eq!(retried.id, replayed.id, "the retry's answer is stored for replays");
}

async fn cancel_queued_and_running(mut app: TestApp) {
    let ada = funded(&app, "ada@example.com", 20).await;
    let admin = actor(&app, "admin@example.com", Role::Admin).await;
    let as_ada = client_as(&app, &ada.token);
    // A two-step tool: 1 + 4 credits.
    let as_admin = client_as(&app, &admin.token);
    let echo_tool =
        as_admin.admin_tool_list().await.unwrap().into_inner().tools.into_iter().find(|t| t.slug == "echo").unwrap();
    let mut config = echo_tool.config.unwrap();
    let mut second = config["steps"][0].clone();
    second["id"] = "echo-2".into();
    second["cost"] = 4.into();
    config["steps"].as_array_mut().unwrap().push(second);
    let utility = echo_tool.tool_type.unwrap().id;
    as_admin
        .admin_tool_create(&types::ToolInput {
            slug: "echo-twice".parse().unwrap(),
            title: "Echo twice".parse().unwrap(),
            description: None,
            tool_type_id: utility,
            config,
            is_active: Some(true),
            featured: None,
            position: None,
        })
        .await
        .unwrap();

    // Running: cancel during the first step; it finishes, the second never starts.
    let body = types::TaskCreateRequest {
        tool_slug: "echo-twice".parse().unwrap(),
        step_id: None,
        input: serde_json::json!({"delayMs": 1500}),
        parent_task_id: None,
        run_all_steps: Some(true),
        webhook: None,
    };
    let task = as_ada.task_create(None, &body).await.unwrap().into_inner().task;
    assert_eq!(task.credits_cost, 5);
    read_events(&app.base_url(), &ada.token, task.id, None, |e| e.1 == "step_started").await;
    let cancelled = as_ada.task_cancel(&task.id).await.unwrap().into_inner().task;
    assert!(cancelled.cancel_requested);
    let events = read_events(&app.base_url(), &ada.token, task.id, None, |_| false).await;
    assert_eq!(events.last().unwrap().1, "cancelled");
    assert_eq!(events.iter().filter(|e| e.1 == "step_started").count(), 1, "the second step never started");
    let balance = as_ada.credits_balance_get().await.unwrap().into_inner();
    assert_eq!((balance.balance, balance.reserved), (19, 0), "the finished step is paid, the other released");
    assert_eq!(err_code(as_ada.task_cancel(&task.id).await), (409, "TASK_FINISHED".into()));

    // Queued: with the workers stopped the task waits; cancel releases at once.
    app.stop_workers().await;
    let waiting = as_ada.task_create(None, &echo(serde_json::json!({}))).await.unwrap().into_inner().task;
    let detail = as_ada.task_get(&waiting.id).await.unwrap().into_inner();
    assert_eq!((detail.task.status.to_string().as_str(), detail.queue_position), ("queued", Some(0)));
    assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().reserved, 1);
    let cancelled = as_ada.task_cancel(&waiting.id).await.unwrap().into_inner().task;
    assert_eq!(cancelled.status.to_string(), "cancelled");
    let balance = as_ada.credits_balance_get().await.unwrap().into_inner();
    assert_eq!((balance.balance, balance.reserved), (19, 0));
    assert!(app.state().store().credits_invariant_violations(ada.id).await.unwrap().is_empty());
}

async fn stream_replays_after_last_event_id(app: TestApp) {
    let ada = funded(&app, "ada@example.com", 5).await;
    let as_ada = client_as(&app, &ada.token);
    let task = as_ada.task_create(None, &echo(serde_json::json!({"delayMs": 1000}))).await.unwrap().into_inner().task;
    // Disconnect after the third progress event…
    let first =
        read_events(&app.base_url(), &ada.token, task.id, None, |e| e.1 == "progress" && e.2["progress"] == 30).await;
    let last_id = first.iter().filter_map(|e| e.0).next_back().unwrap();
    // …and reconnect (in scale-out: to another API process) with Last-Event-ID.
    let (url, _peer) = match app.backend {
        funmagic_api::testing::TestBackend::ScaleOut => {
            let peer = app.spawn_peer().await;
            (peer.base_url(), Some(peer))
        }
        funmagic_api::testing::TestBackend::Embedded => (app.base_url(), None),
    };
    // Someone else's task: 404 as for a task that does not exist, before anything streams.
    let bob = funded(&app, "bob@example.com", 1).await;
    for (id, who) in [(task.id, "ada's task"), (uuid::Uuid::now_v7(), "no task")] {
        let resp = reqwest::Client::new()
            .get(format!("{url}/api/tasks/{id}/stream"))
            .bearer_auth(&bob.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{who}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "NOT_FOUND", "{who}");
    }
    let rest = read_events(&url, &ada.token, task.id, Some(last_id), |_| false).await;
    assert_eq!(rest[0].1, "connected");
    let ids: Vec<i64> = first.iter().chain(rest.iter()).filter_map(|e| e.0).collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>(), "every event exactly once, in order");
    assert_eq!(rest.last().unwrap().1, "completed");
    // At or past the end of an ended task: `connected` only, and the stream ends at once
    // (it used to stay open forever).
    let last = *ids.last().unwrap();
    for past in [last, last + 50] {
        let tail = read_events(&url, &ada.token, task.id, Some(past), |_| false).await;
        let kinds: Vec<&str> = tail.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(kinds, ["connected"], "Last-Event-ID {past}");
    }
    // Past the end of a task that is still live: it counts from the task's last milestone,
    // so the milestones to come arrive and the stream ends with the task.
    let live = as_ada.task_create(None, &echo(serde_json::json!({"delayMs": 1000}))).await.unwrap().into_inner().task;
    let events = read_events(&url, &ada.token, live.id, Some(1_000), |_| false).await;
    let kinds: Vec<&str> = events.iter().filter(|e| e.0.is_some()).map(|e| e.1.as_str()).collect();
    assert_eq!(kinds.last(), Some(&"completed"), "{events:?}");
    let ids: Vec<i64> = events.iter().filter_map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "in order, none twice: {ids:?}");
}

/// Transient failures are retried with backoff up to the limit; timeouts stop a step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_and_step_timeouts() {
    for backend in [funmagic_api::testing::TestBackend::Embedded, funmagic_api::testing::TestBackend::ScaleOut] {
        let mut extra = funmagic_api::config::SettingsLayer::default();
        extra.tasks.max_attempts = Some(3);
        extra.tasks.retry_base_ms = Some(50);
        extra.tasks.step_timeout_secs = Some(1);
        let Some(app) = TestApp::spawn_with(backend, extra).await else { continue };
        let ada = funded(&app, "ada@example.com", 10).await;
        let as_ada = client_as(&app, &ada.token);

        // Fails twice, succeeds on the third run: paid once.
        let task = as_ada
            .task_create(None, &echo(serde_json::json!({"failAttempts": 2, "x": 1})))
            .await
            .unwrap()
            .into_inner()
            .task;
        let events = read_events(&app.base_url(), &ada.token, task.id, None, |_| false).await;
        assert_eq!(events.last().unwrap().1, "completed", "{backend:?}: {events:?}");
        assert_eq!(events.iter().filter(|e| e.2.get("retry").is_some()).count(), 2);
        assert_eq!(as_ada.task_get(&task.id).await.unwrap().into_inner().task.attempts, 3);
        assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 9);

        // Always failing: gives up after 3 runs and releases the credits.
        let task =
            as_ada.task_create(None, &echo(serde_json::json!({"failAttempts": 9}))).await.unwrap().into_inner().task;
        let events = read_events(&app.base_url(), &ada.token, task.id, None, |_| false).await;
        let last = events.last().unwrap();
        assert_eq!(last.1, "failed");
        assert!(last.2["error"].as_str().unwrap().contains("after 3 attempts"), "{last:?}");

        // A step longer than the timeout is stopped (and retried, then given up): it would
        // complete after 5 s otherwise.
        let task =
            as_ada.task_create(None, &echo(serde_json::json!({"delayMs": 5000}))).await.unwrap().into_inner().task;
        let events = read_events(&app.base_url(), &ada.token, task.id, None, |_| false).await;
        assert_eq!(events.last().unwrap().1, "failed");
        assert_eq!(events.last().unwrap().2["code"], "STEP_TIMEOUT");
        let balance = as_ada.credits_balance_get().await.unwrap().into_inner();
        assert_eq!((balance.balance, balance.reserved), (9, 0));
        assert!(app.state().store().credits_invariant_violations(ada.id).await.unwrap().is_empty());
    }
}
