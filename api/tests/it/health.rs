//! `/health*` on both backends, through the SDK.

use funmagic_api::testing::{TestApp, TestBackend};
use funmagic_sdk::types::HealthStatus;

funmagic_api::test_both_backends!(
    all_dependencies_healthy,
    liveness_has_no_checks,
    unhealthy_database_gives_503,
    details_are_for_admins_only
);

async fn admin_client(app: &TestApp) -> funmagic_sdk::Client {
    let admin = crate::actor(app, "root@example.com", funmagic_api::store::Role::Admin).await;
    crate::client_as(app, &admin.token)
}

async fn all_dependencies_healthy(app: TestApp) {
    let as_admin = admin_client(&app).await;
    let report = as_admin.health_all_get().await.unwrap().into_inner();
    assert_eq!(report.status, HealthStatus::Ok);
    let backends: Vec<(&str, &str)> =
        report.checks.iter().map(|c| (c.name.as_str(), c.backend.as_deref().unwrap())).collect();
    let detail = |i: usize| report.checks[i].detail.clone().unwrap();
    match app.backend {
        TestBackend::Embedded => {
            assert_eq!(backends, [("database", "sqlite"), ("redis", "embedded"), ("storage", "local")]);
            assert!(detail(1).contains("embedded queue"), "{:?}", report.checks[1]);
        }
        TestBackend::ScaleOut => {
            let storage = if funmagic_api::testing::s3_settings().is_some() { "s3" } else { "local" };
            assert_eq!(backends, [("database", "postgres"), ("redis", "redis"), ("storage", storage)]);
            assert!(detail(0).starts_with("PostgreSQL"), "{:?}", report.checks[0]);
            assert!(detail(1).starts_with("Redis"), "{:?}", report.checks[1]);
        }
    }
    let db = crate::client(&app).health_db_get().await.unwrap().into_inner();
    assert_eq!(db.checks.len(), 1);
    assert_eq!(db.checks[0].name, "database");
    let redis = crate::client(&app).health_redis_get().await.unwrap().into_inner();
    assert_eq!(redis.checks[0].name, "redis");
    assert_eq!(redis.checks[0].status, HealthStatus::Ok);
    let storage = as_admin.health_storage_get().await.unwrap().into_inner();
    assert_eq!(storage.checks[0].backend.as_deref(), Some(app.state().storage().kind()));
}

/// Anonymous callers and plain users learn the status of each check, nothing else (no file
/// paths, versions or errors); checking writes nothing.
async fn details_are_for_admins_only(app: TestApp) {
    let user = crate::actor(&app, "ada@example.com", funmagic_api::store::Role::User).await;
    for c in [crate::client(&app), crate::client_as(&app, &user.token)] {
        let report = c.health_all_get().await.unwrap().into_inner();
        assert_eq!(report.status, HealthStatus::Ok);
        assert_eq!((report.version.as_deref(), report.uptime_seconds), (None, None));
        assert_eq!(report.checks.len(), 3);
        for check in &report.checks {
            assert_eq!((&check.backend, &check.detail, check.latency_ms), (&None, &None, None), "{check:?}");
        }
        let raw = reqwest::get(format!("{}/health/storage", app.base_url())).await.unwrap().text().await.unwrap();
        let dir = app.dir.path().to_string_lossy().to_string();
        assert!(!raw.contains(&dir) && !raw.contains("local files"), "{raw}");
    }
    // No probe files are left or made by health checks.
    if app.state().storage().kind() == "local" {
        let private = app.dir.path().join("files").join("private");
        let before = std::fs::read_dir(&private).unwrap().count();
        for _ in 0..5 {
            crate::client(&app).health_storage_get().await.unwrap();
        }
        let probes = std::fs::read_dir(&private)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".probe"))
            .count();
        assert_eq!((probes, std::fs::read_dir(&private).unwrap().count()), (0, before));
    }
}

async fn liveness_has_no_checks(app: TestApp) {
    let report = crate::client(&app).health_get().await.unwrap().into_inner();
    assert_eq!(report.status, HealthStatus::Ok);
    assert!(report.checks.is_empty());
    assert_eq!(report.version, None, "anonymous callers get the status only");
    let report = admin_client(&app).await.health_get().await.unwrap().into_inner();
    assert_eq!(report.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
}

async fn unhealthy_database_gives_503(app: TestApp) {
    // An admin's API key (its principal stays cached while the database is down).
    let as_admin = admin_client(&app).await;
    as_admin.health_get().await.unwrap();
    app.state().store().close().await;
    let err = as_admin.health_all_get().await.unwrap_err();
    let funmagic_sdk::Error::ErrorResponse(resp) = err else { panic!("expected a 503 report, got {err:?}") };
    assert_eq!(resp.status().as_u16(), 503);
    let report = resp.into_inner();
    assert_eq!(report.status, HealthStatus::Error);
    let db = report.checks.iter().find(|c| c.name == "database").unwrap();
    assert_eq!(db.status, HealthStatus::Error);
    assert!(!db.detail.as_deref().unwrap_or_default().is_empty());
    let redis = report.checks.iter().find(|c| c.name == "redis").unwrap();
    assert_eq!(redis.status, HealthStatus::Ok, "only the database is down");
    // Liveness does not depend on the database.
    crate::client(&app).health_get().await.unwrap();
}

/// A client that sends half a request and then nothing is cut off after
/// `idle_timeout_secs` (it used to hold its connection forever); a complete request on
/// another connection is answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let extra = funmagic_api::config::SettingsLayer { idle_timeout_secs: Some(1), ..Default::default() };
    let app = TestApp::spawn_with(TestBackend::Embedded, extra).await.unwrap();
    let addr = app.base_url().trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    assert_eq!(crate::client(&app).health_get().await.unwrap().into_inner().status, HealthStatus::Ok);
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read(&mut buf)).await;
    let closed = matches!(read, Ok(Ok(0)) | Ok(Err(_)));
    assert!(closed, "the half-sent request's connection is still open: {read:?}");
}

/// A request head trickled in a byte at a time is cut off `header_timeout_secs` after its
/// first byte, even though traffic never stops; a slow body, and a keep-alive connection
/// that waits between requests, are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_request_heads_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let extra = funmagic_api::config::SettingsLayer {
        idle_timeout_secs: Some(60),
        header_timeout_secs: Some(1),
        ..Default::default()
    };
    let app = TestApp::spawn_with(TestBackend::Embedded, extra).await.unwrap();
    let addr = app.base_url().trim_start_matches("http://").to_string();

    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut cut_off = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
            cut_off = true;
            break;
        }
        let mut probe = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(std::time::Duration::from_millis(1), slow.read(&mut probe)).await
        {
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "a head trickling in for {:?} is still being read", started.elapsed());
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());

    // Keep-alive: answer, wait longer than the header timeout, ask again on the same
    // connection; a body may arrive slowly.
    let mut ok = tokio::net::TcpStream::connect(&addr).await.unwrap();
    ok.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert!(read_answer(&mut ok).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let body = br#"{"email":"a@example.com","password":"not the password"}"#;
    let head = format!(
        "POST /api/auth/sign-in/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    ok.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(10) {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        ok.write_all(chunk).await.unwrap();
    }
    let answer = read_answer(&mut ok).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

async fn read_answer(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
    String::from_utf8_lossy(&buf[..n]).to_string()
}
