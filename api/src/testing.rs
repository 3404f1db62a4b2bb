//! Test support shared by every crate's integration tests: the real server, in-process, on
//! port 0, with an isolated backend — (a) SQLite in a temporary directory, or (b) a fresh
//! PostgreSQL database plus a per-test Redis key prefix. Both are removed on drop.
//!
//! PostgreSQL and Redis are found through `FUNMAGIC_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `FUNMAGIC_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`). When they are unreachable the scale-out tests are skipped
//! with a message — unless `CI` is set, where that is a failure.

use std::path::{Path, PathBuf};

use crate::app::{AppState, Migrations};
use crate::config::{Settings, SettingsLayer};
use crate::server::RunningServer;

/// Which backends a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    /// SQLite + local files + embedded queue.
    Embedded,
    /// PostgreSQL + Redis (+ local files until a test asks for S3).
    ScaleOut,
}

pub fn postgres_admin_url() -> String {
    std::env::var("FUNMAGIC_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("FUNMAGIC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The S3-compatible server of the tests (`.ci/run` starts Garage and sets these):
/// `FUNMAGIC_TEST_S3_ENDPOINT`, `FUNMAGIC_TEST_S3_ACCESS_KEY`, `FUNMAGIC_TEST_S3_SECRET_KEY`,
/// and optionally `FUNMAGIC_TEST_S3_REGION` (default `garage`) and `FUNMAGIC_TEST_S3_CDN_URL`. Buckets: `funmagic-public`,
/// `funmagic-private`, `funmagic-admin`.
pub fn s3_settings() -> Option<crate::config::S3Layer> {
    let endpoint = std::env::var("FUNMAGIC_TEST_S3_ENDPOINT").ok().filter(|v| !v.is_empty())?;
    Some(crate::config::S3Layer {
        endpoint: Some(endpoint),
        access_key: std::env::var("FUNMAGIC_TEST_S3_ACCESS_KEY").ok(),
        secret_key: std::env::var("FUNMAGIC_TEST_S3_SECRET_KEY").ok().map(Into::into),
        region: Some(std::env::var("FUNMAGIC_TEST_S3_REGION").unwrap_or_else(|_| "garage".into())),
        path_style: Some(true),
        cdn_url: std::env::var("FUNMAGIC_TEST_S3_CDN_URL").ok().filter(|v| !v.is_empty()),
        ..Default::default()
    })
}

/// Fetches a public asset URL. The tests' "CDN" for S3 is Garage's web endpoint, which picks
/// the bucket by `Host` (`FUNMAGIC_TEST_S3_CDN_HOST`); anywhere else this is a plain GET.
pub async fn fetch_public(url: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let (Ok(cdn), Ok(host)) = (std::env::var("FUNMAGIC_TEST_S3_CDN_URL"), std::env::var("FUNMAGIC_TEST_S3_CDN_HOST"))
        && !cdn.is_empty()
        && url.starts_with(&cdn)
    {
        req = req.header("host", host);
    }
    req.send().await.expect("fetch public URL")
}

/// Polls `{base}/health` with `client` every 100 ms until it answers 2xx (true) or `within`
/// has passed (false): a server process or proxy a test or bench started is up.
pub async fn until_healthy(client: &reqwest::Client, base: &str, within: std::time::Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if client.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Whether S3 tests can run; outside CI a missing server is a skip with a message.
pub fn s3_available() -> bool {
    if s3_settings().is_some() {
        return true;
    }
    if in_ci() {
        panic!("FUNMAGIC_TEST_S3_ENDPOINT is not set (CI is set: the S3 tests must run; .ci/run starts Garage)");
    }
    eprintln!("SKIPPED S3 test: FUNMAGIC_TEST_S3_ENDPOINT is not set (see .ci/garage.sh)");
    false
}

pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("funmagic-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh PostgreSQL database, dropped (connections terminated) on drop.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// `Ok(None)` when PostgreSQL is unreachable outside CI.
    pub async fn create() -> Option<Self> {
        use sqlx::Connection;
        let admin = postgres_admin_url();
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => return unavailable("PostgreSQL", &admin, &e),
        };
        let name = format!("fm_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Some(Self { url: format!("{base}/{name}"), name })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside an async test; do the blocking work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&postgres_admin_url()).await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A Redis key prefix whose keys are deleted on drop.
#[derive(Debug)]
pub struct TestRedisPrefix {
    pub prefix: String,
}

impl TestRedisPrefix {
    pub async fn create() -> Option<Self> {
        let url = redis_url();
        let reachable = async {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        match tokio::time::timeout(std::time::Duration::from_secs(3), reachable).await {
            Ok(Ok(_)) => Some(Self { prefix: format!("fmtest:{}", uuid::Uuid::new_v4().simple()) }),
            Ok(Err(e)) => unavailable("Redis", &url, &e),
            Err(_) => unavailable("Redis", &url, &"timed out"),
        }
    }
}

impl Drop for TestRedisPrefix {
    fn drop(&mut self) {
        let pattern = format!("{}:*", self.prefix);
        let Ok(client) = redis::Client::open(redis_url()) else { return };
        let Ok(mut conn) = client.get_connection() else { return };
        let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn).unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
        }
    }
}

fn unavailable<T>(what: &str, url: &str, err: &dyn std::fmt::Display) -> Option<T> {
    let message = format!("{what} at {} is not reachable: {err}", crate::config::redact_url(url));
    if in_ci() {
        panic!("{message} (CI is set: the scale-out tests must run)");
    }
    eprintln!("SKIPPED scale-out test: {message}");
    None
}

/// The real server on port 0 with its own backends; everything is removed on drop.
#[derive(Debug)]
pub struct TestApp {
    pub server: RunningServer,
    /// In-process task workers (stopped on drop; see [`TestApp::stop_workers`]).
    pub workers: tokio::sync::watch::Sender<bool>,
    /// The worker pool, until [`TestApp::stop_workers`] waited for it.
    pool: Option<tokio::task::JoinHandle<()>>,
    pub backend: TestBackend,
    pub dir: TempDir,
    pub database: Option<TestDatabase>,
    pub redis: Option<TestRedisPrefix>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.workers.send(true);
    }
}

impl TestApp {
    /// Starts the app; `None` means the backend is unavailable and we are not in CI.
    pub async fn spawn(backend: TestBackend) -> Option<Self> {
        Self::spawn_with(backend, SettingsLayer::default()).await
    }

    /// Like [`TestApp::spawn`], with extra settings layered on top.
    pub async fn spawn_with(backend: TestBackend, extra: SettingsLayer) -> Option<Self> {
        let dir = TempDir::new("test");
        let (database, redis) = match backend {
            TestBackend::Embedded => (None, None),
            TestBackend::ScaleOut => (Some(TestDatabase::create().await?), Some(TestRedisPrefix::create().await?)),
        };
        let settings = Self::settings(backend, &dir, database.as_ref(), redis.as_ref(), extra);
        let state = AppState::build(settings, Migrations::Apply).await.expect("test app state");
        let (workers, stop) = tokio::sync::watch::channel(false);
        let pool = Some(tokio::spawn(crate::worker::run_workers(state.clone(), 4, stop)));
        let server = crate::server::spawn(state, "127.0.0.1:0".parse().unwrap()).await.expect("bind test server");
        Some(Self { server, workers, pool, backend, dir, database, redis })
    }

    /// Moves the app's clock forward: signed URLs, uploads, sessions, keys and mailed links
    /// expire as if `by` had passed (records are still stamped with the system time).
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.state().clock().advance(by);
    }

    /// Stops the in-process workers and returns once they have stopped (their running
    /// tasks ended): from then on submitted tasks wait until [`TestApp::run_pending_tasks`].
    pub async fn stop_workers(&mut self) {
        let _ = self.workers.send(true);
        if let Some(pool) = self.pool.take() {
            let _ = pool.await;
        }
    }

    /// Runs every due task now, in this call, until none is left to claim (crates.io's
    /// `run_pending_background_jobs`); returns how many ran. Meant for stopped workers.
    pub async fn run_pending_tasks(&self) -> usize {
        crate::worker::run_pending(self.state()).await
    }

    /// The settings a test app of `backend` runs with.
    pub fn settings(
        backend: TestBackend,
        dir: &TempDir,
        database: Option<&TestDatabase>,
        redis: Option<&TestRedisPrefix>,
        extra: SettingsLayer,
    ) -> Settings {
        let mut layer = SettingsLayer { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
        layer.log.level = Some("warn".into());
        // Cheap password hashing keeps the suite fast; production defaults are tested in unit tests.
        layer.auth.argon2_memory_kib = Some(1024);
        layer.auth.argon2_iterations = Some(1);
        // Accounts start at 0 credits in tests (not the embedded welcome grant) unless a
        // test sets otherwise.
        layer.credits.signup_bonus = Some(0);
        // Webhook receivers in tests listen on loopback over http.
        layer.webhooks.allow = Some(vec!["127.0.0.1".into()]);
        if backend == TestBackend::ScaleOut {
            layer.database.url = database.map(|d| d.url.clone().into());
            layer.redis.url = Some(redis_url().into());
            layer.redis.prefix = redis.map(|r| r.prefix.clone());
            if let Some(s3) = s3_settings() {
                layer.s3 = s3;
            }
        }
        layer.merge(extra).resolve().expect("test settings")
    }

    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// A second API process on the same database, Redis prefix and files (scale-out tests).
    pub async fn spawn_peer(&self) -> RunningServer {
        let state = AppState::build(self.state().settings().clone(), Migrations::Skip).await.expect("peer state");
        crate::server::spawn(state, "127.0.0.1:0".parse().unwrap()).await.expect("bind peer")
    }

    pub fn state(&self) -> &AppState {
        &self.server.state
    }
}

/// Generates one `#[tokio::test]` per backend for each listed `async fn(TestApp)`.
#[macro_export]
macro_rules! test_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::testing::TestApp::spawn($crate::testing::TestBackend::Embedded)
                        .await
                        .expect("the embedded backend is always available");
                    super::$name(app).await;
                }
            )*
        }
        mod scale_out {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::testing::TestApp::spawn($crate::testing::TestBackend::ScaleOut).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

/// A test photo: a light, noisy, slightly graded background with a red disc and a blue bar on it;
/// returns the image and the true object mask.
pub fn sample_scene(w: u32, h: u32) -> (image::RgbaImage, Vec<bool>) {
    let mut truth = vec![false; (w * h) as usize];
    let mut noise: u32 = 12345;
    let img = image::RgbaImage::from_fn(w, h, |x, y| {
        noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let n = ((noise >> 16) % 13) as i32 - 6;
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let disc = (fx - 0.4).powi(2) + (fy - 0.45).powi(2) < 0.06;
        let bar = (0.55..0.8).contains(&fx) && (0.3..0.75).contains(&fy);
        if disc || bar {
            truth[(y * w + x) as usize] = true;
            let base = if disc { [200, 40, 40] } else { [30, 60, 190] };
            image::Rgba([(base[0] + n).clamp(0, 255) as u8, (base[1] + n) as u8, (base[2] + n) as u8, 255])
        } else {
            let g = 225 + (fx * 20.0) as i32 + n;
            image::Rgba([g.clamp(0, 255) as u8, g.clamp(0, 255) as u8, (g - 8).clamp(0, 255) as u8, 255])
        }
    });
    (img, truth)
}

/// [`sample_scene`] as PNG bytes.
pub fn sample_png(w: u32, h: u32) -> Vec<u8> {
    let (img, _) = sample_scene(w, h);
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).expect("PNG encodes");
    out
}
