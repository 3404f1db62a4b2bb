//! Scale-out with real processes: two API servers and two workers on one PostgreSQL and
//! Redis; 200 tasks submitted across both APIs; one worker SIGKILLed mid-run. Every task
//! must end completed exactly once, every credit be spent exactly once, the ledger hold.

use std::process::Stdio;
use std::time::Duration;

use funmagic_api::app::{AppState, Migrations};
use funmagic_api::config::SettingsLayer;
use funmagic_api::store::{NewUser, Role, TxKind};
use funmagic_api::testing::{TempDir, TestApp, TestBackend, TestDatabase, TestRedisPrefix};
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_funmagic-server");

fn command(dir: &TempDir, db: &TestDatabase, redis: &TestRedisPrefix, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["--data-dir", dir.path().to_str().unwrap()])
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", funmagic_api::testing::redis_url())
        .env("FUNMAGIC_REDIS_PREFIX", &redis.prefix)
        .env("FUNMAGIC_TASK_LEASE_SECS", "3")
        .env("FUNMAGIC_LOG", "warn,funmagic_server=info")
        .env_remove("S3_ENDPOINT")
        .kill_on_drop(true);
    cmd
}

async fn start_api(dir: &TempDir, db: &TestDatabase, redis: &TestRedisPrefix) -> (tokio::process::Child, String) {
    let mut child = command(dir, db, redis, &["serve", "--listen", "127.0.0.1:0", "--workers", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("API output");
        if let Some(rest) = line.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap().to_string();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, url);
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
    state.store().credits_grant(user.id, TxKind::Purchase, 1000, "cs_load", None).await.unwrap();
    let token =
        funmagic_api::auth::flows::create_session(&state, user.clone(), &Default::default()).await.unwrap().token;

    let (_api1, url1) = start_api(&dir, &db, &redis).await;
    let (_api2, url2) = start_api(&dir, &db, &redis).await;
    let mut worker1 =
        command(&dir, &db, &redis, &["worker", "--concurrency", "4"]).stderr(Stdio::null()).spawn().unwrap();
    let _worker2 = command(&dir, &db, &redis, &["worker", "--concurrency", "4"]).stderr(Stdio::null()).spawn().unwrap();

    let clients = [url1, url2].map(|u| funmagic_sdk::ClientBuilder::new(u).token(&token).build().unwrap());
    let mut ids = Vec::new();
    for i in 0..200 {
        let body = funmagic_sdk::types::TaskCreateRequest {
            tool_slug: "echo".into(),
            step_id: None,
            input: serde_json::json!({ "i": i, "delayMs": 150 }),
            parent_task_id: None,
            run_all_steps: None,
        };
        ids.push(clients[i % 2].task_create(None, &body).await.unwrap().into_inner().task.id);
    }
    // Kill one worker while tasks are in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = state.store().task_list(Some(user.id), Some("completed"), None, None, 500).await.unwrap().len();
        if done >= 30 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker1.start_kill().unwrap(); // SIGKILL
    worker1.wait().await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let done = state.store().task_list(Some(user.id), Some("completed"), None, None, 500).await.unwrap().len();
        if done == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {done} of 200 tasks completed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in &ids {
        let events = state.store().task_events_after(*id, 0).await.unwrap();
        let completed = events.iter().filter(|e| e.kind == "completed").count();
        assert_eq!(completed, 1, "task {id} completed exactly once");
    }
    let credits = state.store().credits_get(user.id).await.unwrap();
    assert_eq!((credits.balance, credits.reserved_balance, credits.lifetime_spent), (800, 0, 200));
    let violations = state.store().credits_invariant_violations(user.id).await.unwrap();
    assert!(violations.is_empty(), "{violations:?}");
    let _ = (TestApp::spawn, TestBackend::ScaleOut); // same backends as the in-process suite
}
