//! `cargo xtask chaos [--seed N] [--minutes M]`: a real deployment on loopback (two API
//! processes and two worker processes over a PostgreSQL cluster and a Redis server of the
//! run's own, behind fault-injecting TCP proxies, and the S3 server), loopback fakes of the
//! paid providers (OpenAI images, Stripe) and of webhook receivers, simulated users, and a
//! fault schedule drawn from the seed. The invariants — ledger, one terminal state per
//! accepted task, spent = cost of completed work, nothing reserved, no 5xx outside the
//! windows where a dependency is down (and then only 503 with its code), resumed SSE
//! clients saw every milestone once and in order, the queue back to zero — are checked
//! during the run and at its end. A violation prints the seed, the schedule and the first
//! broken invariant, and fails.
//!
//! Ignored by `cargo test` (it runs for minutes and owns its engines); `cargo xtask chaos`
//! runs it with `CHAOS_SEED` and `CHAOS_MINUTES`.

mod infra;
mod load;
pub(crate) mod proxy;
mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use funmagic_api::app::{AppState, Migrations};
use funmagic_api::config::SettingsLayer;
use funmagic_api::store::{NewUser, Role, TransactionType};
use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

use self::infra::{Postgres, Proc, Redis};
use self::proxy::{Mode, Proxy};
use self::schedule::{Engine, Fault, Planned, ProviderFault};
use crate::fakes::{self, Reply};

const LEASE: Duration = Duration::from_secs(3);
const STEP_TIMEOUT_SECS: u64 = 3;
/// After the faults stop, every task must have ended within this bound (leases, the
/// reconciler, the retries' backoff and the work still queued).
const SETTLE: Duration = Duration::from_secs(60);
/// A 503 is allowed this long after a dependency came back (pools reconnecting).
const GRACE: Duration = Duration::from_secs(5);
const USERS: usize = 6;
const OPENAI_ROUTE: &str = "POST /v1/images/generations";

/// A fault applied: what, and when it really started and ended.
#[derive(Debug, Clone)]
struct Applied {
    fault: Fault,
    from: Instant,
    to: Instant,
}

/// Webhook receiver behaviour: 0 answers 200, 1 answers 500, 2 never answers.
#[derive(Clone, Default)]
struct Hooks {
    mode: Arc<AtomicU8>,
    received: Arc<std::sync::atomic::AtomicUsize>,
    url: String,
}

impl Hooks {
    async fn start() -> Hooks {
        use poem::listener::{Acceptor, Listener, TcpListener};
        let mut hooks = Hooks::default();
        let me = hooks.clone();
        let endpoint = poem::endpoint::make(move |_req: poem::Request| {
            let me = me.clone();
            async move {
                me.received.fetch_add(1, Ordering::Relaxed);
                match me.mode.load(Ordering::Relaxed) {
                    1 => poem::Response::builder().status(poem::http::StatusCode::INTERNAL_SERVER_ERROR).body("down"),
                    2 => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        poem::Response::builder().body("late")
                    }
                    _ => poem::Response::builder().body("ok"),
                }
            }
        });
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
        hooks.url = format!("http://{addr}/hook");
        hooks
    }
}

/// What the faults act on.
struct Deployment {
    /// API 0, API 1, worker 0, worker 1.
    procs: Vec<Mutex<Proc>>,
    redis: Mutex<Redis>,
    pg: Postgres,
    pg_proxy: Proxy,
    redis_proxy: Proxy,
    provider: fakes::Fake,
    hooks: Hooks,
    applied: std::sync::Mutex<Vec<Applied>>,
    /// One lock per fault target: faults on the same thing take turns.
    targets: HashMap<&'static str, Mutex<()>>,
    /// Exits the supervisor saw that no fault caused: (process, when, log tail); each is a
    /// violation.
    exits: std::sync::Mutex<Vec<(String, Instant, String)>>,
}

fn openai_ok() -> Reply {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(funmagic_api::testing::sample_png(16, 16));
    Reply::json(200, json!({ "created": 1, "data": [{ "b64_json": b64 }] }))
}

impl Deployment {
    fn proxy(&self, engine: Engine) -> &Proxy {
        match engine {
            Engine::Postgres => &self.pg_proxy,
            Engine::Redis => &self.redis_proxy,
        }
    }

    fn target(fault: &Fault) -> &'static str {
        match fault {
            Fault::KillApi(0) => "api0",
            Fault::KillApi(_) => "api1",
            Fault::KillWorker(0) | Fault::StopWorker(0) => "worker0",
            Fault::KillWorker(_) | Fault::StopWorker(_) => "worker1",
            Fault::RedisRestartEmpty | Fault::Latency(Engine::Redis, _) | Fault::Reset(Engine::Redis) => "redis",
            Fault::Blackhole(Engine::Redis, _) => "redis",
            Fault::PostgresRestart | Fault::Latency(Engine::Postgres, _) | Fault::Reset(Engine::Postgres) => "pg",
            Fault::Blackhole(Engine::Postgres, _) => "pg",
            Fault::Provider(_) => "provider",
            Fault::WebhookReceiver(_) => "hooks",
        }
    }

    /// Applies `fault` for `lasts`, then undoes it.
    async fn apply(&self, fault: Fault, lasts: Duration) {
        let _turn = self.targets[Self::target(&fault)].lock().await;
        let from = Instant::now();
        match fault {
            Fault::KillApi(i) | Fault::KillWorker(i) => {
                let index = if matches!(fault, Fault::KillApi(_)) { i } else { 2 + i };
                let mut proc = self.procs[index].lock().await;
                proc.kill().await;
                tokio::time::sleep(lasts).await;
                proc.start();
            }
            Fault::StopWorker(i) => {
                let mut proc = self.procs[2 + i].lock().await;
                proc.pause();
                tokio::time::sleep(lasts).await;
                proc.resume();
            }
            Fault::RedisRestartEmpty => {
                self.redis.lock().await.kill();
                tokio::time::sleep(lasts).await;
                self.redis.lock().await.up();
            }
            Fault::PostgresRestart => {
                self.pg.crash();
                tokio::time::sleep(lasts).await;
                self.pg.up();
            }
            Fault::Latency(engine, ms) => {
                self.proxy(engine).set(Mode::Latency(Duration::from_millis(ms)));
                tokio::time::sleep(lasts).await;
                self.proxy(engine).set(Mode::Pass);
            }
            Fault::Reset(engine) => {
                self.proxy(engine).set(Mode::Refuse);
                self.proxy(engine).reset_all();
                tokio::time::sleep(lasts).await;
                self.proxy(engine).set(Mode::Pass);
            }
            Fault::Blackhole(engine, cut) => {
                self.proxy(engine).set(Mode::Blackhole);
                tokio::time::sleep(lasts).await;
                if cut {
                    self.proxy(engine).reset_all();
                }
                self.proxy(engine).set(Mode::Pass);
            }
            Fault::Provider(kind) => {
                let reply = match kind {
                    ProviderFault::ServerError => {
                        Reply::json(500, json!({ "error": { "message": "The server had an error" } }))
                    }
                    ProviderFault::RateLimited => {
                        Reply::json(429, json!({ "error": { "message": "Rate limit reached" } }))
                            .header("retry-after", "1")
                    }
                    ProviderFault::Hang => openai_ok().delayed(Duration::from_secs(3600)),
                    ProviderFault::Late => openai_ok().delayed(Duration::from_secs(STEP_TIMEOUT_SECS + 1)),
                };
                self.provider.script(OPENAI_ROUTE, vec![reply]);
                tokio::time::sleep(lasts).await;
                self.provider.script(OPENAI_ROUTE, vec![openai_ok()]);
            }
            Fault::WebhookReceiver(hang) => {
                self.hooks.mode.store(if hang { 2 } else { 1 }, Ordering::Relaxed);
                tokio::time::sleep(lasts).await;
                self.hooks.mode.store(0, Ordering::Relaxed);
            }
        }
        self.applied.lock().unwrap().push(Applied { fault, from, to: Instant::now() });
    }

    /// Restarts any process that exited on its own (a supervisor's job), and records it.
    async fn supervise(&self, started: Instant) {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for proc in &self.procs {
                let Ok(mut proc) = proc.try_lock() else { continue };
                if let Some(status) = proc.exited() {
                    let tail = proc.log_tail(15);
                    eprintln!(
                        "chaos: {} exited on its own ({status}) at {:.1}s; restarting. Log tail:\n{tail}",
                        proc.name,
                        started.elapsed().as_secs_f64()
                    );
                    self.exits.lock().unwrap().push((proc.name.clone(), Instant::now(), tail));
                    proc.start();
                }
            }
        }
    }

    /// The windows in which a dependency was down (with the grace after each).
    fn down_windows(&self) -> Vec<(Instant, Instant)> {
        self.applied
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.fault.takes_a_dependency_down())
            .map(|a| (a.from, a.to + GRACE))
            .collect()
    }
}

fn params() -> (u64, f64) {
    let seed = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let minutes = std::env::var("CHAOS_MINUTES").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    (seed, minutes)
}

fn print_schedule(seed: u64, plan: &[Planned]) {
    eprintln!("chaos: seed {seed}, {} faults planned:", plan.len());
    for p in plan {
        eprintln!("  at {:>6.1}s for {:>4.1}s: {:?}", p.at.as_secs_f64(), p.lasts.as_secs_f64(), p.fault);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "minutes long and owns its engines: run by `cargo xtask chaos`"]
async fn chaos() {
    let (seed, minutes) = params();
    let length = Duration::from_secs_f64(minutes * 60.0);
    let plan = schedule::draw(seed, length, LEASE);
    print_schedule(seed, &plan);
    let violations = run(seed, length, &plan).await;
    if !violations.is_empty() {
        print_schedule(seed, &plan);
        for v in violations.iter().skip(1).take(20) {
            eprintln!("also: {v}");
        }
        panic!(
            "chaos: seed {seed}: {} invariant(s) broken; the first: {}\n(rerun: cargo xtask chaos --seed {seed} --minutes {minutes})",
            violations.len(),
            violations[0]
        );
    }
}

/// Runs the deployment, the load and the faults; returns the broken invariants.
async fn run(seed: u64, length: Duration, plan: &[Planned]) -> Vec<String> {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chaos-{seed}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("chaos: logs and data in {}", dir.display());
    let s3 = funmagic_api::testing::s3_settings();
    if s3.is_none() {
        assert!(!funmagic_api::testing::in_ci(), "FUNMAGIC_TEST_S3_ENDPOINT is not set (.ci/run starts Garage)");
        eprintln!("chaos: no S3 server (FUNMAGIC_TEST_S3_ENDPOINT): files go to the local disk");
    }

    // Engines, the proxies in front of them, the fakes.
    let pg = Postgres::start(&dir);
    let redis = Redis::start();
    let pg_proxy = Proxy::start(([127, 0, 0, 1], pg.port).into()).await;
    let redis_proxy = Proxy::start(([127, 0, 0, 1], redis.port).into()).await;
    let provider = fakes::start().await;
    provider.script(OPENAI_ROUTE, vec![openai_ok()]);
    let (stripe_base, _stripe) = crate::stripe::start_fake().await;
    let hooks = Hooks::start().await;

    // Schema and seed data, straight to the engines (as `funmagic-server migrate` and an
    // admin would).
    let direct_redis = format!("redis://127.0.0.1:{}", redis.port);
    let mut layer = SettingsLayer { data_dir: Some(dir.join("data")), ..Default::default() };
    layer.database.url = Some(pg.url(pg.port).into());
    layer.redis.url = Some(direct_redis.clone().into());
    layer.redis.prefix = Some("chaos".into());
    let state = AppState::build(layer.resolve().unwrap(), Migrations::Apply).await.unwrap();
    let store = state.store();
    let new_user = |email: String, role| NewUser { email, name: "Chaos".into(), role, email_verified: true };
    let admin = store.user_create(&new_user("admin@chaos.test".into(), Role::Admin)).await.unwrap();
    let admin_token =
        funmagic_api::accounts::flows::create_session(&state, admin, &Default::default()).await.unwrap().token;
    let mut users = Vec::new();
    for i in 0..USERS {
        let user = store.user_create(&new_user(format!("user{i}@chaos.test"), Role::User)).await.unwrap();
        store.credits_grant(user.id, TransactionType::Bonus, 1000, &format!("seed-{i}"), None).await.unwrap();
        let token = funmagic_api::accounts::flows::create_session(&state, user.clone(), &Default::default())
            .await
            .unwrap()
            .token;
        users.push(load::User { id: user.id, token });
    }
    seed_paint_tool(&state, &provider).await;

    // The deployment.
    let api_ports = [infra::free_port(), infra::free_port()];
    let mut env: Vec<(String, String)> = [
        ("DATABASE_URL", pg.url(pg_proxy.port)),
        ("REDIS_URL", format!("redis://127.0.0.1:{}", redis_proxy.port)),
        ("FUNMAGIC_REDIS_PREFIX", "chaos".into()),
        ("FUNMAGIC_DATABASE_CONNECT_TIMEOUT_SECS", "3".into()),
        ("FUNMAGIC_TASK_LEASE_SECS", LEASE.as_secs().to_string()),
        ("FUNMAGIC_QUEUE_RECONCILE_SECS", "2".into()),
        ("FUNMAGIC_STEP_TIMEOUT_SECS", STEP_TIMEOUT_SECS.to_string()),
        ("FUNMAGIC_PROVIDER_TIMEOUT_SECS", "6".into()),
        ("FUNMAGIC_PROVIDER_MAX_RETRIES", "2".into()),
        ("FUNMAGIC_TASK_MAX_ATTEMPTS", "4".into()),
        ("FUNMAGIC_TASK_RETRY_BASE_MS", "100".into()),
        ("FUNMAGIC_WEBHOOKS_ALLOW", "127.0.0.1".into()),
        ("FUNMAGIC_WEBHOOKS_TIMEOUT_SECS", "2".into()),
        ("FUNMAGIC_IMAGE_URL_ALLOW", "127.0.0.1".into()),
        ("FUNMAGIC_LIMIT_TASK_SUBMITS_PER_MINUTE", "100000".into()),
        ("FUNMAGIC_LIMIT_PRESIGNS_PER_MINUTE", "100000".into()),
        ("FUNMAGIC_LIMIT_STREAM_OPENS_PER_MINUTE", "100000".into()),
        ("FUNMAGIC_MAX_STREAMS_PER_USER", "100".into()),
        ("STRIPE_SECRET_KEY", "sk_test_123".into()),
        ("STRIPE_WEBHOOK_SECRET", crate::stripe::WEBHOOK_SECRET.into()),
        ("FUNMAGIC_STRIPE_API_URL", stripe_base),
        ("FUNMAGIC_LOG", "warn,funmagic_server=info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(s3) = &s3 {
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                env.push((k.into(), v));
            }
        };
        put("S3_ENDPOINT", s3.endpoint.clone());
        put("S3_ACCESS_KEY", s3.access_key.clone());
        put("S3_SECRET_KEY", s3.secret_key.as_ref().map(|s| secrecy::ExposeSecret::expose_secret(s).to_string()));
        put("S3_REGION", s3.region.clone());
        put("FUNMAGIC_S3_PATH_STYLE", Some("true".into()));
        put("CDN_URL", s3.cdn_url.clone());
    }
    let data = dir.join("data");
    let base = |extra: &[&str]| {
        let mut args = vec!["--data-dir".to_string(), data.display().to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let mut procs = Vec::new();
    for (i, port) in api_ports.iter().enumerate() {
        let listen = format!("127.0.0.1:{port}");
        procs.push(Proc::new(
            &format!("api{i}"),
            base(&["serve", "--listen", &listen, "--workers", "0"]),
            env.clone(),
            &dir,
        ));
    }
    for i in 0..2 {
        procs.push(Proc::new(&format!("worker{i}"), base(&["worker", "--concurrency", "4"]), env.clone(), &dir));
    }
    for proc in &mut procs {
        proc.start();
    }
    let apis: Vec<String> = api_ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    let http = reqwest::Client::builder().pool_max_idle_per_host(8).build().unwrap();
    for api in &apis {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(format!("{api}/health")).send().await.is_err() {
            assert!(Instant::now() < deadline, "{api} did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let targets = ["api0", "api1", "worker0", "worker1", "redis", "pg", "provider", "hooks"]
        .into_iter()
        .map(|t| (t, Mutex::new(())))
        .collect();
    let deployment = Arc::new(Deployment {
        procs: procs.into_iter().map(Mutex::new).collect(),
        redis: Mutex::new(redis),
        pg,
        pg_proxy,
        redis_proxy,
        provider,
        hooks: hooks.clone(),
        applied: Default::default(),
        targets,
        exits: Default::default(),
    });

    // Set-up through the API: a credit package, webhook endpoints for half the users.
    let admin_http = |path: &str, body: serde_json::Value, token: &str| {
        http.post(format!("{}{path}", apis[0])).bearer_auth(token).json(&body).send()
    };
    let package: serde_json::Value = admin_http(
        "/api/admin/credit-packages",
        json!({ "name": "Chaos", "credits": 100, "price": 900, "currency": "usd", "stripePriceId": "price_chaos", "isActive": true }),
        &admin_token,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let package_id: Uuid = package["id"].as_str().unwrap_or_else(|| panic!("{package}")).parse().unwrap();
    for user in users.iter().take(USERS / 2) {
        let resp = admin_http(
            "/api/webhooks/endpoints",
            json!({ "url": hooks.url, "events": ["task.succeeded", "task.failed", "task.cancelled"] }),
            &user.token,
        )
        .await
        .unwrap();
        assert!(resp.status().is_success(), "{:?}", resp.text().await);
    }

    let world = Arc::new(load::World {
        apis,
        users,
        admin_token,
        package_id,
        stripe_webhook_secret: crate::stripe::WEBHOOK_SECRET.into(),
        http: http.clone(),
        rec: Default::default(),
        stop: Default::default(),
        followers_deadline: Default::default(),
        followers_running: Default::default(),
    });

    // Go: the load, the supervisor, the faults, the ledger watcher.
    let started = Instant::now();
    let mut violations: Vec<String> = Vec::new();
    let supervisor = tokio::spawn({
        let d = deployment.clone();
        async move { d.supervise(started).await }
    });
    let load: Vec<_> = (0..USERS).map(|i| tokio::spawn(world.clone().user_loop(i, seed))).collect();
    let faults: Vec<_> = plan
        .iter()
        .map(|p| {
            let (d, p) = (deployment.clone(), *p);
            tokio::spawn(async move {
                tokio::time::sleep_until((started + p.at).into()).await;
                eprintln!(
                    "chaos: {:>6.1}s {:?} for {:.1}s",
                    started.elapsed().as_secs_f64(),
                    p.fault,
                    p.lasts.as_secs_f64()
                );
                d.apply(p.fault, p.lasts).await;
            })
        })
        .collect();
    let user_ids: Vec<Uuid> = world.users.iter().map(|u| u.id).collect();
    let mut ledger_checks = 0;
    while started.elapsed() < length {
        tokio::time::sleep(Duration::from_secs(10)).await;
        // The ledger holds at every moment it can be read.
        for id in &user_ids {
            if let Ok(found) = store.credits_invariant_violations(*id).await {
                ledger_checks += 1;
                for v in found {
                    violations.push(format!("ledger of user {id} at {:.0}s: {v:?}", started.elapsed().as_secs_f64()));
                }
            }
        }
    }
    world.stop.store(true, Ordering::Relaxed);
    for f in faults {
        f.await.unwrap();
    }
    for l in load {
        l.await.unwrap();
    }
    let faults_over = Instant::now();
    eprintln!("chaos: faults over at {:.1}s; waiting for every task to end", started.elapsed().as_secs_f64());
    *world.followers_deadline.lock().unwrap() = Some(faults_over + SETTLE + Duration::from_secs(10));

    // Every task ends within the bound.
    let pool = sqlx::PgPool::connect(&deployment.pg.url(deployment.pg.port)).await.unwrap();
    let open = loop {
        let open: Vec<(Uuid, String)> =
            sqlx::query_as("SELECT id, status FROM tasks WHERE status NOT IN ('completed', 'failed', 'cancelled')")
                .fetch_all(&pool)
                .await
                .unwrap();
        if open.is_empty() || faults_over.elapsed() > SETTLE {
            break open;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let settled_in = faults_over.elapsed();
    let last_fault_ended = deployment.applied.lock().unwrap().iter().map(|a| a.to).max().unwrap_or(started);
    for (id, status) in open.iter().take(10) {
        violations.push(format!("task {id} is still {status} {:.0}s after the faults stopped", SETTLE.as_secs_f64()));
    }
    while world.followers_running.load(Ordering::Relaxed) > 0
        && faults_over.elapsed() < SETTLE + Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    supervisor.abort();

    check_end(&pool, &world, &deployment, &user_ids, &mut violations).await;
    // The ledger, one last time.
    for id in &user_ids {
        for v in store.credits_invariant_violations(*id).await.unwrap() {
            violations.push(format!("ledger of user {id} at the end: {v:?}"));
        }
    }

    // The report.
    let tasks: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM tasks GROUP BY status ORDER BY status")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for a in deployment.applied.lock().unwrap().iter() {
        *kinds.entry(a.fault.kind()).or_default() += 1;
    }
    eprintln!("\n== chaos report: seed {seed}, {:.1} min of faults ==", length.as_secs_f64() / 60.0);
    eprintln!("faults injected ({} in all):", kinds.values().sum::<usize>());
    for (kind, n) in &kinds {
        eprintln!("  {n:>4}  {kind}");
    }
    eprintln!(
        "tasks by status: {tasks:?}; the last task ended {:.1}s after the load stopped ({:.1}s after the last fault)",
        settled_in.as_secs_f64(),
        (faults_over + settled_in).saturating_duration_since(last_fault_ended).as_secs_f64()
    );
    eprintln!("answers by status: {:?}", world.rec.statuses.lock().unwrap());
    eprintln!("transport errors (a process down): {}", world.rec.transport_errors.load(Ordering::Relaxed));
    for (what, n) in world.rec.counts.lock().unwrap().iter() {
        eprintln!("  {n:>5}  {what}");
    }
    let followed = world.rec.followed.lock().unwrap();
    eprintln!(
        "SSE followers: {} ({} resumptions, {} milestones)",
        followed.len(),
        followed.iter().map(|f| f.resumes).sum::<usize>(),
        followed.iter().map(|f| f.milestones.len()).sum::<usize>()
    );
    eprintln!("webhook requests received: {}", hooks.received.load(Ordering::Relaxed));
    eprintln!("ledger checks during the run: {ledger_checks}");
    eprintln!("processes that exited on their own (restarted): {}", deployment.exits.lock().unwrap().len());
    eprintln!("violations: {}", violations.len());
    violations
}

/// The end-of-run invariants.
async fn check_end(
    pool: &sqlx::PgPool,
    world: &load::World,
    deployment: &Deployment,
    users: &[Uuid],
    violations: &mut Vec<String>,
) {
    // Exactly one terminal event per task.
    let terminal: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT t.id, t.status, (SELECT COUNT(*) FROM task_events e WHERE e.task_id = t.id
                                 AND e.type IN ('completed', 'failed', 'cancelled'))
           FROM tasks t",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (id, status, n) in &terminal {
        if *n != 1 && ["completed", "failed", "cancelled"].contains(&status.as_str()) {
            violations.push(format!("task {id} ({status}) has {n} terminal events"));
        }
    }
    // Every accepted task exists.
    let known: std::collections::HashSet<Uuid> = terminal.iter().map(|t| t.0).collect();
    for id in world.rec.accepted.lock().unwrap().iter() {
        if !known.contains(id) {
            violations.push(format!("accepted task {id} is lost"));
        }
    }
    // Spent = the cost of completed work (every tool here has one step), nothing reserved.
    // (task, status, cost, its reservation's status, what the reservation spent)
    type Money = (Uuid, String, i64, Option<String>, Option<i64>);
    let money: Vec<Money> = sqlx::query_as(
        "SELECT t.id, t.status, t.credits_cost, r.status, r.spent
           FROM tasks t LEFT JOIN credit_reservations r ON r.reference_id = t.id::text",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (id, status, cost, reservation, spent) in &money {
        let expected = if status == "completed" { *cost } else { 0 };
        match (reservation.as_deref(), spent) {
            (Some("resolved"), Some(spent)) if *spent == expected => {}
            _ if *cost == 0 => {}
            other => violations.push(format!(
                "task {id} ({status}, cost {cost}): reservation {other:?}, expected resolved with {expected} spent"
            )),
        }
    }
    let reserved: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT user_id, reserved_balance FROM credits").fetch_all(pool).await.unwrap();
    for (user, held) in &reserved {
        if !users.contains(user) {
            continue;
        }
        if *held != 0 {
            violations.push(format!("user {user} still has {held} credits reserved"));
        }
        // Spent on tasks (negative admin adjustments count as spent in the ledger too, so
        // the spend entries are what is compared).
        let (spent, cost): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COALESCE(SUM(-amount), 0)::BIGINT FROM credit_transactions
                      WHERE user_id = $1 AND type = 'spend'),
                    (SELECT COALESCE(SUM(credits_cost), 0)::BIGINT FROM tasks
                      WHERE user_id = $1 AND status = 'completed')",
        )
        .bind(user)
        .fetch_one(pool)
        .await
        .unwrap();
        if spent != cost {
            violations.push(format!("user {user} spent {spent} on tasks, the completed work cost {cost}"));
        }
    }
    // Webhooks: every terminal event of a subscriber's task has its delivery (written with
    // the event), and none is overdue (a dispatcher that lost it, or a lease never freed).
    let subscribers: Vec<Uuid> = world.users.iter().take(USERS / 2).map(|u| u.id).collect();
    let missing: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT e.task_id, e.seq FROM task_events e JOIN tasks t ON t.id = e.task_id
          WHERE t.user_id = ANY($1) AND e.type IN ('completed', 'failed', 'cancelled')
            AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.task_id = e.task_id AND d.seq = e.seq)",
    )
    .bind(&subscribers)
    .fetch_all(pool)
    .await
    .unwrap();
    for (task, seq) in missing.iter().take(5) {
        violations.push(format!("the terminal event {seq} of task {task} has no webhook delivery"));
    }
    let overdue: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM webhook_deliveries
          WHERE status = 'pending' AND next_attempt_at < $1 AND (lease_until IS NULL OR lease_until < $1)",
    )
    .bind(chrono::Utc::now() - chrono::Duration::seconds(30))
    .fetch_one(pool)
    .await
    .unwrap();
    if overdue.0 != 0 {
        violations.push(format!("{} webhook deliveries are more than 30 s overdue", overdue.0));
    }
    // The queue is empty.
    let queued: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM task_queue").fetch_one(pool).await.unwrap();
    if queued.0 != 0 {
        violations.push(format!("{} rows left in task_queue", queued.0));
    }
    match world.call(0, reqwest::Method::GET, "/api/admin/queue", &world.admin_token, None, None).await {
        Ok((200, q)) => {
            for field in ["waiting", "running", "delayed", "streamPending", "streamDelayed"] {
                if q[field].as_i64().unwrap_or(0) != 0 {
                    violations.push(format!("queue depth not back to zero: {q}"));
                    break;
                }
            }
        }
        other => violations.push(format!("GET /api/admin/queue: {other:?}")),
    }
    // Resumed SSE clients: every milestone once, in order, the same as stored.
    let followed = world.rec.followed.lock().unwrap().clone();
    for f in &followed {
        let stored: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, type FROM task_events WHERE task_id = $1 ORDER BY seq")
                .bind(f.task)
                .fetch_all(pool)
                .await
                .unwrap();
        if !f.ended {
            violations.push(format!("an SSE client of task {} never got its end; it saw {:?}", f.task, f.milestones));
        } else if f.milestones != stored {
            violations.push(format!(
                "an SSE client of task {} ({} resumptions) saw {:?}; stored: {:?}",
                f.task, f.resumes, f.milestones, stored
            ));
        }
    }
    // No 5xx outside a dependency's down window; inside, only 503 with its code.
    let windows = deployment.down_windows();
    for bad in world.rec.bad.lock().unwrap().iter() {
        let excused = windows.iter().any(|(from, to)| bad.sent <= *to && bad.answered >= *from);
        if !excused {
            violations
                .push(format!("{} answered {} {} outside any dependency outage", bad.route, bad.status, bad.code));
        } else if bad.status != 503 || !bad.code.ends_with("UNAVAILABLE") {
            violations.push(format!(
                "{} answered {} {:?} during an outage (only 503 with its code)",
                bad.route, bad.status, bad.code
            ));
        }
    }
    // No process exits on its own: not a crash, and not a restart during an outage either
    // (a starting process waits for PostgreSQL and Redis, `startup_wait_secs`).
    for (name, at, tail) in deployment.exits.lock().unwrap().iter() {
        let during = if windows.iter().any(|(from, to)| at >= from && at <= to) { " (during an outage)" } else { "" };
        violations.push(format!("{name} exited on its own{during}; log tail:\n{tail}"));
    }
}

/// An OpenAI provider on the loopback fake and a one-step image tool `paint` (cost 3).
async fn seed_paint_tool(state: &AppState, fake: &fakes::Fake) {
    let step = crate::scale::ProviderStep { id: "main", kind: "image-gen", model: "gpt-image-1", cost: 3 };
    let kind = funmagic_api::store::ProviderKind::OpenAi;
    crate::scale::seed_provider_tool(state, kind, format!("{}/v1", fake.base), "paint", step).await;
}
