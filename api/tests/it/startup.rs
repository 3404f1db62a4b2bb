//! Bad or unreachable configuration fails fast and names the setting; shutdown drains.

use funmagic_api::app::{AppState, Migrations};
use funmagic_api::config::{Settings, SettingsLayer};
use funmagic_api::testing::TempDir;

async fn build(layer: SettingsLayer) -> Result<AppState, funmagic_api::config::ConfigError> {
    let settings = layer.resolve()?;
    AppState::build(settings, Migrations::Apply).await
}

fn layer(dir: &TempDir) -> SettingsLayer {
    SettingsLayer { data_dir: Some(dir.path().to_path_buf()), ..Default::default() }
}

#[tokio::test]
async fn unreachable_postgres_names_database_url() {
    let dir = TempDir::new("startup");
    let mut l = layer(&dir);
    l.database.url = Some("postgres://postgres:secretpw@127.0.0.1:1/nothing".to_string().into());
    l.database.connect_timeout_secs = Some(2);
    let err = build(l).await.unwrap_err();
    assert_eq!(err.setting, "DATABASE_URL");
    assert!(!err.to_string().contains("secretpw"), "the password must not leak: {err}");
}

#[tokio::test]
async fn unreachable_redis_names_redis_url() {
    let dir = TempDir::new("startup");
    let mut l = layer(&dir);
    l.redis.url = Some("redis://127.0.0.1:1".to_string().into());
    l.database.connect_timeout_secs = Some(2);
    let err = build(l).await.unwrap_err();
    assert_eq!(err.setting, "REDIS_URL");
}

#[tokio::test]
async fn unreachable_s3_names_s3_endpoint() {
    let dir = TempDir::new("startup");
    let mut l = layer(&dir);
    l.s3.endpoint = Some("http://127.0.0.1:1".into());
    l.s3.access_key = Some("AK".into());
    l.s3.secret_key = Some("SK".to_string().into());
    let err = build(l).await.unwrap_err();
    assert_eq!(err.setting, "S3_ENDPOINT");
    assert!(err.problem.contains("funmagic-public"), "{err}");
}

#[tokio::test]
async fn unwritable_data_dir_names_the_setting() {
    let dir = TempDir::new("startup");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let l = SettingsLayer { data_dir: Some(file.join("data")), ..Default::default() };
    let err = build(l).await.unwrap_err();
    assert_eq!(err.setting, "FUNMAGIC_DATA_DIR");
}

#[tokio::test]
async fn embedded_default_starts_migrates_and_stops() {
    let dir = TempDir::new("startup");
    let settings = Settings::embedded(dir.path());
    let state = AppState::build(settings.clone(), Migrations::Apply).await.unwrap();
    assert!(dir.path().join("funmagic.db").exists());
    let server = funmagic_api::server::spawn(state, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_ne!(server.addr.port(), 0, "port 0 resolves to the real port");
    let resp = reqwest::get(format!("{}/health", server.base_url())).await.unwrap();
    assert_eq!(resp.status(), 200);
    let addr = server.addr;
    server.stop().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is released after stop");
    // A second start on the same data dir finds the schema already migrated.
    let again = AppState::build(settings, Migrations::Apply).await.unwrap();
    let tables = again.store().table_names().await.unwrap();
    assert!(tables.contains(&"users".to_string()) && tables.contains(&"api_keys".to_string()), "{tables:?}");
}

/// A rolling deploy: the new release has migrated; a process of the previous release that
/// (re)starts finds a migration it does not know, and starts anyway (both engines).
#[tokio::test]
async fn a_previous_release_starts_on_a_schema_one_migration_ahead() {
    let dir = funmagic_api::testing::TempDir::new("ahead");
    let mut layers = vec![SettingsLayer { data_dir: Some(dir.path().to_path_buf()), ..Default::default() }];
    let db = funmagic_api::testing::TestDatabase::create().await;
    if let Some(db) = &db {
        let mut pg = SettingsLayer { data_dir: Some(dir.path().join("pg")), ..Default::default() };
        pg.database.url = Some(db.url.clone().into());
        layers.push(pg);
    }
    for layer in layers {
        let state = build(layer.clone()).await.unwrap();
        // What the next release's migration leaves in the bookkeeping table.
        match state.store() {
            funmagic_api::store::Store::Postgres(s) => sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES (9999, 'from the next release', TRUE, '\\x00', 1)",
            )
            .execute(s.pool())
            .await
            .map(|_| ()),
            funmagic_api::store::Store::Sqlite(s) => sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES (9999, 'from the next release', TRUE, X'00', 1)",
            )
            .execute(s.pool())
            .await
            .map(|_| ()),
        }
        .unwrap();
        state.store().close().await;
        let again = build(layer).await.expect("a process of this release still starts");
        assert!(again.store().table_names().await.unwrap().contains(&"tasks".to_string()));
        again.store().close().await;
    }
}

/// A process started while Redis is not up yet waits for it (`startup_wait_secs`) and
/// starts once it answers, instead of exiting into a supervisor's restart loop (the chaos
/// suite saw APIs restarted during a Redis outage exit); with no wait it fails at once,
/// naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_a_redis_that_is_not_up_yet() {
    use tokio::io::AsyncBufReadExt;
    let (Some(db), Some(prefix)) =
        (funmagic_api::testing::TestDatabase::create().await, funmagic_api::testing::TestRedisPrefix::create().await)
    else {
        return;
    };
    let dir = TempDir::new("startup-wait");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let serve = |wait: &str| {
        let mut cmd =
            crate::scale::command(&dir, &db, &prefix, &["serve", "--listen", "127.0.0.1:0", "--workers", "0"]);
        cmd.env("REDIS_URL", format!("redis://127.0.0.1:{port}"))
            .env("FUNMAGIC_DATABASE_CONNECT_TIMEOUT_SECS", "1")
            .env("FUNMAGIC_STARTUP_WAIT_SECS", wait)
            .env("FUNMAGIC_LOG", "warn,funmagic_server=info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    };

    // No wait: fails at once, naming REDIS_URL.
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), serve("0").output()).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("REDIS_URL"), "{}", String::from_utf8_lossy(&out.stderr));

    // Waiting: it says so, and starts when Redis comes up.
    let mut child = serve("60").spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut redis: Option<std::process::Child> = None;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("never started: {seen:#?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the server exited: {seen:#?}"));
        if line.contains("listening on") {
            assert!(redis.is_some(), "it started before Redis did: {seen:#?}");
            break;
        }
        if line.contains("FUNMAGIC_STARTUP_WAIT_SECS") && redis.is_none() {
            assert!(line.contains("REDIS_URL"), "{line}");
            redis = Some(
                std::process::Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("redis-server"),
            );
        }
        seen.push(line);
    }
    let _ = child.start_kill();
    if let Some(mut redis) = redis {
        let _ = redis.kill();
        let _ = redis.wait();
    }
}
