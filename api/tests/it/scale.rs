//! Scale-out with real processes: two API servers and two workers on one PostgreSQL and
//! Redis; 200 tasks submitted across both APIs; one worker SIGKILLed mid-run. Every task
//! must end completed exactly once, every credit be spent exactly once, the ledger hold.

use std::process::Stdio;
use std::time::Duration;

use funmagic_api::app::{AppState, Migrations};
use funmagic_api::config::SettingsLayer;
use funmagic_api::store::{NewUser, Role, TransactionType};
use funmagic_api::testing::{TempDir, TestApp, TestBackend, TestDatabase, TestRedisPrefix};
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_funmagic-server");

pub(crate) fn command(
    dir: &TempDir,
    db: &TestDatabase,
    redis: &TestRedisPrefix,
    args: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["--data-dir", dir.path().to_str().unwrap()])
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", funmagic_api::testing::redis_url())
        .env("FUNMAGIC_REDIS_PREFIX", &redis.prefix)
        .env("FUNMAGIC_TASK_LEASE_SECS", "3")
        // The loopback fakes serve the input images that imageUrl points at.
        .env("FUNMAGIC_IMAGE_URL_ALLOW", "127.0.0.1")
        .env("FUNMAGIC_LOG", "warn,funmagic_server=info")
        .env_remove("S3_ENDPOINT")
        .kill_on_drop(true);
    cmd
}

pub(crate) async fn start_api(
    dir: &TempDir,
    db: &TestDatabase,
    redis: &TestRedisPrefix,
) -> (tokio::process::Child, String) {
    start_api_with(dir, db, redis, |_| {}).await
}

/// [`start_api`], with the command adjusted by `adjust` first (more environment).
pub(crate) async fn start_api_with(
    dir: &TempDir,
    db: &TestDatabase,
    redis: &TestRedisPrefix,
    adjust: impl FnOnce(&mut tokio::process::Command),
) -> (tokio::process::Child, String) {
    let mut cmd = command(dir, db, redis, &["serve", "--listen", "127.0.0.1:0", "--workers", "0"]);
    adjust(&mut cmd);
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap_or_else(|| panic!("the API stopped: {seen:#?}"));
        seen.push(line.clone());
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap().to_string();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, url);
        }
    }
}

/// The database as `funmagic-server migrate` leaves it (`migrations`: `Apply`, or `Skip`
/// when a process has migrated already), with a verified user holding `credits` and a
/// session token of theirs: what the multi-process tests start from.
pub(crate) async fn seeded_user(
    dir: &TempDir,
    db_url: &str,
    migrations: Migrations,
    email: &str,
    credits: i64,
) -> (AppState, funmagic_api::store::UserRow, String) {
    let mut layer = SettingsLayer { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    layer.database.url = Some(db_url.to_string().into());
    let state = AppState::build(layer.resolve().unwrap(), migrations).await.unwrap();
    let name = email.split('@').next().unwrap_or("user").to_string();
    let user = state
        .store()
        .user_create(&NewUser { email: email.into(), name, role: Role::User, email_verified: true })
        .await
        .unwrap();
    state
        .store()
        .credits_grant(user.id, TransactionType::Purchase, credits, &format!("cs_{email}"), None)
        .await
        .unwrap();
    let token =
        funmagic_api::accounts::flows::create_session(&state, user.clone(), &Default::default()).await.unwrap().token;
    (state, user, token)
}

/// `echo` with input `{i, delayMs}`.
pub(crate) fn echo_task(i: usize, delay_ms: u64) -> funmagic_sdk::types::TaskCreateRequest {
    serde_json::from_value(serde_json::json!({ "toolSlug": "echo", "input": { "i": i, "delayMs": delay_ms } })).unwrap()
}

/// The core load over two API processes: one submit sent twice with the same
/// Idempotency-Key `key` (one task), then 40 submits at once alternating between the APIs.
/// Returns the 41 task ids.
pub(crate) async fn submit_across(clients: &[funmagic_sdk::Client; 2], key: &str) -> Vec<uuid::Uuid> {
    let key: funmagic_sdk::types::TaskCreateIdempotencyKey = key.parse().unwrap();
    let first = clients[0].task_create(Some(&key), &echo_task(0, 0)).await.unwrap().into_inner().task;
    let again = clients[1].task_create(Some(&key), &echo_task(0, 0)).await.unwrap().into_inner().task;
    assert_eq!(first.id, again.id, "one task per Idempotency-Key");
    let submits = (1..=40).map(|i| {
        let client = clients[i % 2].clone();
        let body = echo_task(i, 20);
        async move { client.task_create(None, &body).await.map(|r| r.into_inner().task.id) }
    });
    let mut ids: Vec<uuid::Uuid> =
        futures::future::join_all(submits).await.into_iter().collect::<Result<_, _>>().expect("every submit accepted");
    ids.push(first.id);
    ids
}

/// The kinds of a task's events, followed from the start until its stream ends.
pub(crate) async fn follow_kinds(
    client: &funmagic_sdk::Client,
    task: uuid::Uuid,
) -> Vec<funmagic_sdk::types::EventKind> {
    let mut follower = funmagic_sdk::events::TaskFollower::new(client, task, 0);
    let mut kinds = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = follower.next().await {
            kinds.push(event.unwrap().kind);
        }
    })
    .await
    .expect("the task's stream ends");
    kinds
}

/// Waits (90 s at most) until every task of `ids` has completed.
pub(crate) async fn wait_completed(client: &funmagic_sdk::Client, ids: &[uuid::Uuid]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    for id in ids {
        loop {
            let status = client.task_get(id).await.unwrap().into_inner().task.status;
            if status == funmagic_sdk::types::TaskStatus::Completed {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "task {id} is {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apis_two_workers_one_killed() {
    let (Some(db), Some(redis)) = (TestDatabase::create().await, TestRedisPrefix::create().await) else { return };
    let dir = TempDir::new("scale");
    // Migrate and seed from the test, as `funmagic-server migrate` would.
    let mut layer = SettingsLayer { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    layer.database.url = Some(db.url.clone().into());
    layer.redis.url = Some(funmagic_api::testing::redis_url().into());
    layer.redis.prefix = Some(redis.prefix.clone());
    layer.auth.argon2_memory_kib = Some(1024);
    layer.auth.argon2_iterations = Some(1);
    let state = AppState::build(layer.resolve().unwrap(), Migrations::Apply).await.unwrap();
    let user = state
        .store()
        .user_create(&NewUser {
            email: "load@example.com".into(),
            name: "Load".into(),
            role: Role::User,
            email_verified: true,
        })
        .await
        .unwrap();
    state.store().credits_grant(user.id, TransactionType::Purchase, 1000, "cs_load", None).await.unwrap();
    let token =
        funmagic_api::accounts::flows::create_session(&state, user.clone(), &Default::default()).await.unwrap().token;

    let (_api1, url1) = start_api(&dir, &db, &redis).await;
    let (_api2, url2) = start_api(&dir, &db, &redis).await;
    let mut worker1 =
        command(&dir, &db, &redis, &["worker", "--concurrency", "4"]).stderr(Stdio::null()).spawn().unwrap();
    let _worker2 = command(&dir, &db, &redis, &["worker", "--concurrency", "4"]).stderr(Stdio::null()).spawn().unwrap();

    let clients = [url1, url2].map(|u| funmagic_sdk::ClientBuilder::new(u).token(&token).build().unwrap());
    let mut ids = Vec::new();
    for i in 0..200 {
        let body = funmagic_sdk::types::TaskCreateRequest {
            tool_slug: "echo".parse().unwrap(),
            step_id: None,
            input: serde_json::json!({ "i": i, "delayMs": 150 }),
            parent_task_id: None,
            run_all_steps: None,
            webhook: None,
        };
        ids.push(clients[i % 2].task_create(None, &body).await.unwrap().into_inner().task.id);
    }
    // Kill one worker while tasks are in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = state
            .store()
            .task_list(Some(user.id), Some(funmagic_api::store::TaskStatus::Completed), None, None, 500)
            .await
            .unwrap()
            .len();
        if done >= 30 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker1.start_kill().unwrap(); // SIGKILL
    worker1.wait().await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let done = state
            .store()
            .task_list(Some(user.id), Some(funmagic_api::store::TaskStatus::Completed), None, None, 500)
            .await
            .unwrap()
            .len();
        if done == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {done} of 200 tasks completed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &ids {
        let events = state.store().task_events_after(*id, 0).await.unwrap();
        let completed = events.iter().filter(|e| e.kind == funmagic_api::store::EventKind::Completed).count();
        assert_eq!(completed, 1, "task {id} completed exactly once");
    }
    let credits = state.store().credits_get(user.id).await.unwrap();
    assert_eq!((credits.balance, credits.reserved_balance, credits.lifetime_spent), (800, 0, 200));
    let violations = state.store().credits_invariant_violations(user.id).await.unwrap();
    assert!(violations.is_empty(), "{violations:?}");
    let _ = (TestApp::spawn, TestBackend::ScaleOut); // same backends as the in-process suite
}

/// A worker process SIGKILLed while it waits on fal.ai: another worker process takes the
/// task over after the lease and resumes polling the same fal.ai request (its id was saved
/// before waiting) — one submit, one payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_resumes_the_provider_job_elsewhere() {
    use crate::fakes::{self, Reply};
    let (Some(db), Some(redis)) = (TestDatabase::create().await, TestRedisPrefix::create().await) else { return };
    let dir = TempDir::new("scale-fal");
    let mut layer = SettingsLayer { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    layer.database.url = Some(db.url.clone().into());
    layer.redis.url = Some(funmagic_api::testing::redis_url().into());
    layer.redis.prefix = Some(redis.prefix.clone());
    // The data dir's master key is shared with the processes below.
    let state = AppState::build(layer.resolve().unwrap(), Migrations::Apply).await.unwrap();
    let fake = fakes::start().await;
    seed_fal_tool(&state, &fake, "cut").await;
    let user = state
        .store()
        .user_create(&NewUser {
            email: "k@example.com".into(),
            name: "K".into(),
            role: Role::User,
            email_verified: true,
        })
        .await
        .unwrap();
    state.store().credits_grant(user.id, TransactionType::Purchase, 20, "cs_k", None).await.unwrap();
    let token =
        funmagic_api::accounts::flows::create_session(&state, user.clone(), &Default::default()).await.unwrap().token;

    let png = funmagic_api::testing::sample_png(24, 24);
    fake.script("GET /files/in.png", vec![Reply::bytes("image/png", png.clone())]);
    fake.script("GET /files/out.png", vec![Reply::bytes("image/png", png)]);
    fake.script("POST /fal-ai/birefnet", vec![Reply::json(200, serde_json::json!({ "request_id": "req-k" }))]);
    let status = "GET /fal-ai/birefnet/requests/req-k/status";
    fake.script(status, vec![Reply::json(200, serde_json::json!({ "status": "IN_PROGRESS" }))]);
    fake.script(
        "GET /fal-ai/birefnet/requests/req-k",
        vec![Reply::json(200, serde_json::json!({ "image": { "url": format!("{}/files/out.png", fake.base) } }))],
    );

    let (_api, url) = start_api(&dir, &db, &redis).await;
    let fast = |cmd: &mut tokio::process::Command| {
        cmd.env("FUNMAGIC_PROVIDER_POLL_MS", "50");
    };
    let mut first = command(&dir, &db, &redis, &["worker", "--concurrency", "2"]);
    fast(&mut first);
    let mut first = first.stderr(Stdio::null()).spawn().unwrap();
    let client = funmagic_sdk::ClientBuilder::new(&url).token(&token).build().unwrap();
    let req = funmagic_sdk::types::TaskCreateRequest {
        tool_slug: "cut".parse().unwrap(),
        step_id: None,
        input: serde_json::json!({ "imageUrl": format!("{}/files/in.png", fake.base) }),
        parent_task_id: None,
        run_all_steps: None,
        webhook: None,
    };
    let task = client.task_create(None, &req).await.unwrap().into_inner().task;
    // Killed while polling fal.ai.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while fake.hits(status).len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the first worker never polled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    // Follow it live from here (progress is not recorded): the resume shows as progress.
    let follower = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut follower = funmagic_sdk::events::TaskFollower::new(&client, task.id, 0);
            let mut seen = Vec::new();
            while let Some(event) = follower.next().await {
                seen.push(event.unwrap());
            }
            seen
        })
    };
    fake.script(status, vec![Reply::json(200, serde_json::json!({ "status": "COMPLETED" }))]);
    let mut second = command(&dir, &db, &redis, &["worker", "--concurrency", "2"]);
    fast(&mut second);
    let _second = second.stderr(Stdio::null()).spawn().unwrap();
    let started = std::time::Instant::now();
    let detail = loop {
        let d = client.task_get(&task.id).await.unwrap().into_inner();
        if d.task.status.to_string() == "completed" {
            break d;
        }
        assert!(d.task.status.to_string() != "failed", "{d:?}");
        assert!(started.elapsed() < Duration::from_secs(30), "not taken over: {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(fake.hits("POST /fal-ai/birefnet").len(), 1, "one submit: the second worker resumed req-k");
    assert_eq!(detail.task.attempts, 2);
    assert_eq!(detail.steps[0].state["falRequestId"], "req-k");
    let events = tokio::time::timeout(Duration::from_secs(30), follower).await.unwrap().unwrap();
    assert!(events.iter().any(|e| e.data["message"] == "resuming the fal.ai request"), "{events:?}");
    assert_eq!(events.last().map(|e| e.kind), Some(funmagic_sdk::types::EventKind::Completed));
    let balance = client.credits_balance_get().await.unwrap().into_inner();
    assert_eq!((balance.balance, balance.reserved), (13, 0), "paid once");
    assert!(state.store().credits_invariant_violations(user.id).await.unwrap().is_empty());
}

/// A fal.ai provider on the loopback fake and a one-step background-removal tool `slug`
/// (cost 7) on it, as an admin would set them up.
pub(crate) async fn seed_fal_tool(state: &AppState, fake: &crate::fakes::Fake, slug: &str) {
    let step = ProviderStep { id: "cut", kind: "background-remove", model: "fal-ai/birefnet", cost: 7 };
    seed_provider_tool(state, funmagic_api::store::ProviderKind::Fal, fake.base.clone(), slug, step).await;
}

/// The one step of a tool [`seed_provider_tool`] makes.
pub(crate) struct ProviderStep {
    pub(crate) id: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) model: &'static str,
    pub(crate) cost: i64,
}

/// A provider of `kind` at `base_url` (with a sealed API key) and a one-step tool `slug` on
/// it, written straight to the store as an admin's set-up would leave them.
pub(crate) async fn seed_provider_tool(
    state: &AppState,
    kind: funmagic_api::store::ProviderKind,
    base_url: String,
    slug: &str,
    step: ProviderStep,
) {
    let now = funmagic_api::store::now();
    let provider_id = uuid::Uuid::now_v7();
    let provider = funmagic_api::store::ProviderRow {
        id: provider_id,
        name: kind.as_str().into(),
        kind,
        base_url: Some(base_url),
        is_active: true,
        is_healthy: true,
        health_checked_at: None,
        created_at: now,
        updated_at: now,
        api_key: Some(state.master_key().encrypt(provider_id, "provider-key-test-0001")),
        api_key_id: Some(state.master_key().id().to_string()),
        api_key_last4: Some("0001".into()),
        health_message: None,
        config: sqlx::types::Json(serde_json::json!({})),
    };
    state.store().provider_upsert(&provider).await.unwrap();
    let type_id = state.store().tool_type_list().await.unwrap()[0].id;
    let config = serde_json::json!({ "steps": [{ "id": step.id, "name": step.id, "type": step.kind,
        "providerId": provider_id, "providerModel": step.model, "cost": step.cost }] });
    funmagic_api::tools::validate_config(&config, &state.store().provider_list().await.unwrap()).unwrap();
    state
        .store()
        .tool_upsert(&funmagic_api::store::ToolRow {
            id: uuid::Uuid::now_v7(),
            slug: slug.into(),
            title: slug.into(),
            description: None,
            tool_type_id: type_id,
            config: sqlx::types::Json(config),
            credits_cost: step.cost,
            is_active: true,
            created_at: now,
            updated_at: now,
            featured: false,
            position: 0,
        })
        .await
        .unwrap();
}

/// A worker process SIGKILLed while a webhook delivery is in flight: after the lease
/// another worker process delivers it, with the same `webhook-id`; every event of the task
/// arrives, each answered 200 once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_leaves_its_webhook_delivery_to_another() {
    let (Some(db), Some(redis)) = (TestDatabase::create().await, TestRedisPrefix::create().await) else { return };
    let dir = TempDir::new("scale-hooks");
    let mut layer = SettingsLayer { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    layer.database.url = Some(db.url.clone().into());
    layer.redis.url = Some(funmagic_api::testing::redis_url().into());
    layer.redis.prefix = Some(redis.prefix.clone());
    let state = AppState::build(layer.resolve().unwrap(), Migrations::Apply).await.unwrap();
    let user = state
        .store()
        .user_create(&NewUser {
            email: "hooks@example.com".into(),
            name: "H".into(),
            role: Role::User,
            email_verified: true,
        })
        .await
        .unwrap();
    state.store().credits_grant(user.id, TransactionType::Purchase, 10, "cs_h", None).await.unwrap();
    let token =
        funmagic_api::accounts::flows::create_session(&state, user.clone(), &Default::default()).await.unwrap().token;
    let receiver = crate::webhooks::WebhookReceiver::start().await;
    receiver.answer_next(vec![(0, None)]); // the first request is never answered
    let hooks = |cmd: &mut tokio::process::Command| {
        cmd.env("FUNMAGIC_WEBHOOKS_ALLOW", "127.0.0.1").env("FUNMAGIC_WEBHOOKS_TIMEOUT_SECS", "2");
    };
    let (_api, url) = start_api_with(&dir, &db, &redis, hooks).await;
    let client = funmagic_sdk::ClientBuilder::new(&url).token(&token).build().unwrap();
    let body: funmagic_sdk::types::WebhookEndpointCreate =
        serde_json::from_value(serde_json::json!({ "url": receiver.url })).unwrap();
    let endpoint = client.webhook_endpoint_create(&body).await.unwrap().into_inner();
    let mut first = command(&dir, &db, &redis, &["worker", "--concurrency", "2"]);
    hooks(&mut first);
    let mut first = first.stderr(Stdio::null()).spawn().unwrap();
    let task = client.task_create(None, &crate::echo(serde_json::json!({ "k": 1 }))).await.unwrap().into_inner().task;
    let hung = receiver.wait("the first delivery", |got| !got.is_empty()).await[0].id.clone();
    first.start_kill().unwrap(); // SIGKILL while the receiver holds the request
    first.wait().await.unwrap();
    // Other messages the killed worker had in flight may have been answered 200 without
    // the worker living to record it: those are sent again (at least once, same id).
    let before_kill = receiver.got().len();
    let mut second = command(&dir, &db, &redis, &["worker", "--concurrency", "2"]);
    hooks(&mut second);
    let _second = second.stderr(Stdio::null()).spawn().unwrap();
    let got = receiver
        .wait("every event, the hung one again", |got| {
            got.iter().any(|g| g.id == hung && g.status == 200)
                && got.iter().any(|g| g.json()["type"] == "task.succeeded" && g.status == 200)
        })
        .await;
    // Each message is answered 200 once, but for those the killed worker had in flight.
    let in_flight_at_kill: std::collections::HashSet<&str> =
        got[..before_kill].iter().filter(|g| g.status == 200).map(|g| g.id.as_str()).collect();
    let mut answered: Vec<&str> = got[before_kill..]
        .iter()
        .filter(|g| g.status == 200 && !in_flight_at_kill.contains(g.id.as_str()))
        .map(|g| g.id.as_str())
        .collect();
    answered.sort_unstable();
    let before = answered.len();
    answered.dedup();
    let ids = |gs: &[crate::webhooks::Got]| gs.iter().map(|g| (g.id.clone(), g.status)).collect::<Vec<_>>();
    assert_eq!(before, answered.len(), "each message answered 200 once: {:?}", ids(&got));
    for id in &in_flight_at_kill {
        assert!(got.iter().filter(|g| g.id == *id && g.status == 200).count() <= 2, "{:?}", ids(&got));
    }
    assert_eq!(got.iter().filter(|g| g.id == hung).count(), 2, "the hung message was sent again");
    for g in &got {
        let ts: i64 = g.timestamp.parse().unwrap();
        funmagic_sdk::webhooks::verify_parts(&endpoint.secret, &g.id, &g.timestamp, &g.signature, &g.body, ts).unwrap();
        assert_eq!(g.json()["data"]["taskId"], task.id.to_string());
    }
}
