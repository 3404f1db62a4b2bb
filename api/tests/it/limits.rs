//! Per-user limits (`limits.*`): task submissions, upload URLs and stream opens per minute,
//! and open streams at once — 429 with `Retry-After`, per user, on both backends.

use funmagic_api::config::SettingsLayer;
use funmagic_api::store::{Role, TransactionType};
use funmagic_api::testing::{TestApp, TestBackend};
use funmagic_sdk::types;

use crate::{actor, client_as, err_code, post_echo};

async fn funded(app: &TestApp, email: &str) -> crate::Actor {
    let a = actor(app, email, Role::User).await;
    app.state()
        .store()
        .credits_grant(a.id, TransactionType::Bonus, 1000, &format!("seed-{}", a.id), None)
        .await
        .unwrap();
    a
}

fn echo(delay_ms: u64) -> types::TaskCreateRequest {
    types::TaskCreateRequest {
        tool_slug: "echo".parse().unwrap(),
        step_id: None,
        input: serde_json::json!({ "delayMs": delay_ms }),
        parent_task_id: None,
        run_all_steps: None,
        webhook: None,
    }
}

async fn app_with_limits(backend: TestBackend) -> Option<TestApp> {
    let mut extra = SettingsLayer::default();
    extra.limits.task_submits_per_minute = Some(3);
    extra.limits.presigns_per_minute = Some(2);
    extra.limits.stream_opens_per_minute = Some(1000);
    extra.limits.max_streams_per_user = Some(2);
    TestApp::spawn_with(backend, extra).await
}

async fn per_minute_limits(backend: TestBackend) {
    let Some(app) = app_with_limits(backend).await else { return };
    let (ada, bob) = (funded(&app, "ada@example.com").await, funded(&app, "bob@example.com").await);
    let as_ada = client_as(&app, &ada.token);
    for _ in 0..3 {
        as_ada.task_create(None, &echo(0)).await.unwrap();
    }
    // The fourth is refused with a Retry-After, and makes no task.
    let resp = post_echo(&app, &ada.token).await;
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED");
    let tasks = as_ada.task_list(None, std::num::NonZeroU32::new(50), None, None).await.unwrap().into_inner().tasks;
    assert_eq!(tasks.len(), 3, "the refused submission made no task");
    // Another user is not affected.
    client_as(&app, &bob.token).task_create(None, &echo(0)).await.expect("bob has his own limit");

    let presign = |n: u32| types::PresignUploadRequest {
        filename: format!("f{n}.png").parse().unwrap(),
        content_type: "image/png".parse().unwrap(),
        size: std::num::NonZeroU64::new(100).unwrap(),
        module: None,
    };
    as_ada.upload_presign(&presign(1)).await.unwrap();
    as_ada.upload_presign(&presign(2)).await.unwrap();
    assert_eq!(err_code(as_ada.upload_presign(&presign(3)).await), (429, "RATE_LIMITED".into()));
}

/// A user holds at most `max_streams_per_user` streams at once; closing one frees a slot.
async fn open_streams_are_capped(backend: TestBackend) {
    let Some(app) = app_with_limits(backend).await else { return };
    let ada = funded(&app, "ada@example.com").await;
    let task = client_as(&app, &ada.token).task_create(None, &echo(20_000)).await.unwrap().into_inner().task;
    let open = || {
        reqwest::Client::new()
            .get(format!("{}/api/tasks/{}/stream", app.base_url(), task.id))
            .bearer_auth(&ada.token)
            .send()
    };
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let third = open().await.unwrap();
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    let body: serde_json::Value = third.json().await.unwrap();
    assert_eq!(body["code"], "TOO_MANY_STREAMS");
    drop(first);
    // The server notices the closed stream at its next write (the 15 s heartbeat at the
    // latest); wait for the slot to come back.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let again = open().await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert_eq!(again.status(), 429);
        assert!(tokio::time::Instant::now() < deadline, "the closed stream's slot never came back");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    client_as(&app, &ada.token).task_cancel(&task.id).await.unwrap();
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_minute_limits_embedded() {
    per_minute_limits(TestBackend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_minute_limits_scale_out() {
    per_minute_limits(TestBackend::ScaleOut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_are_capped_embedded() {
    open_streams_are_capped(TestBackend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_are_capped_scale_out() {
    open_streams_are_capped(TestBackend::ScaleOut).await;
}

/// In scale-out mode a limited request's count is bumped by the same Redis round trip that
/// looks its credential up. Every request counts exactly once, whichever path it takes: the
/// first (nothing cached: the limiter counts it), the cached ones (the lookup counts them),
/// and one whose cached entry is there but stale (the lookup counted it, the database
/// resolved it: not counted again). Stream opens are counted the same way.
async fn a_limit_counts_each_request_once(backend: TestBackend) {
    let mut extra = SettingsLayer::default();
    extra.limits.task_submits_per_minute = Some(5);
    extra.limits.stream_opens_per_minute = Some(3);
    extra.limits.max_streams_per_user = Some(10);
    let Some(app) = TestApp::spawn_with(backend, extra).await else { return };
    let ada = funded(&app, "ada@example.com").await;
    let as_ada = client_as(&app, &ada.token);
    let mut tasks = Vec::new();
    for _ in 0..2 {
        tasks.push(as_ada.task_create(None, &echo(0)).await.unwrap().into_inner().task.id);
    }
    // A user-level change (as a role change makes) leaves the cached entry stale.
    app.state().authenticator().forget_user(ada.id).await;
    for _ in 0..3 {
        tasks.push(as_ada.task_create(None, &echo(0)).await.unwrap().into_inner().task.id);
    }
    assert_eq!(err_code(as_ada.task_create(None, &echo(0)).await), (429, "RATE_LIMITED".into()));
    let listed = as_ada.task_list(None, std::num::NonZeroU32::new(50), None, None).await.unwrap().into_inner().tasks;
    assert_eq!(listed.len(), 5, "five submissions a minute, and the sixth made no task");

    let open = |id: uuid::Uuid| {
        reqwest::Client::new().get(format!("{}/api/tasks/{id}/stream", app.base_url())).bearer_auth(&ada.token).send()
    };
    let mut streams = Vec::new();
    for id in &tasks[..3] {
        let resp = open(*id).await.unwrap();
        assert_eq!(resp.status(), 200);
        streams.push(resp);
    }
    let refused = open(tasks[3]).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_counts_each_request_once_embedded() {
    a_limit_counts_each_request_once(TestBackend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_counts_each_request_once_scale_out() {
    a_limit_counts_each_request_once(TestBackend::ScaleOut).await;
}
