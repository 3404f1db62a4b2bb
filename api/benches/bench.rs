//! `cargo xtask bench` (release build): speed numbers that tests must not assert.
//!
//! 1. The local provider's algorithms on a 1024×1024 photo (median of 5 runs each).
//! 2. Queue pickup latency — enqueue → `step_started` — on the embedded queue and, when
//!    PostgreSQL and Redis are up, on the Redis Streams queue (in-process workers reading
//!    with XREADGROUP BLOCK), one task at a time on an idle queue.
//! 3. Throughput: 300 `echo` tasks submitted at once, until the last one completes.
//! 4. Submit throughput: 64 concurrent submitters for 3 s through the app layer, the
//!    workers draining meanwhile.
//! 5. Event fan-out: 10,000 followers (the SSE streams' `Follower`s) on waiting tasks;
//!    their memory, the process's CPU while idle, and publish → delivery latency and
//!    events/s for one progress event to each.
//! 6. The same over real HTTP: the `funmagic-server` binary with 10,000 SSE streams open
//!    on waiting tasks, over HTTP/1.1 (a connection each) and HTTP/2 (shared connections);
//!    the server process's memory and idle CPU, and how fast events reach the streams (see
//!    `http_fan_out`).

// The server's route tree nests deep enough (middleware around middleware) that laying out
// its future in a release build passes the default query depth of 128.
#![recursion_limit = "256"]

use funmagic_api::store::EventKind;
use std::time::{Duration, Instant};

use funmagic_api::providers::local;
use funmagic_api::store::{Role, TransactionType};
use funmagic_api::testing::{TestApp, TestBackend};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn local_algorithms() {
    let (img, _) = funmagic_api::testing::sample_scene(1024, 1024);
    println!("local provider, 1024×1024 (median of 5):");
    for style in local::STYLES {
        println!(
            "  image-gen {style:<12} {:>7.1} ms",
            time(5, || local::stylize(&img, style, &mut |_, _| {})).as_secs_f64() * 1e3
        );
    }
    let mut cut = None;
    let t = time(5, || cut = Some(local::remove_background(&img, &mut |_, _| {})));
    println!("  background-remove      {:>7.1} ms", t.as_secs_f64() * 1e3);
    let (cut, _) = cut.unwrap();
    let t = time(5, || local::relief_glb(&cut, 0.25, &mut |_, _| {}).unwrap());
    println!("  3d-gen (relief GLB)    {:>7.1} ms", t.as_secs_f64() * 1e3);
    let t = time(5, || local::point_cloud_ply(&img, 0.25, 500_000, &mut |_, _| {}));
    println!("  point-cloud (PLY)      {:>7.1} ms", t.as_secs_f64() * 1e3);
    let png = funmagic_api::testing::sample_png(1024, 1024);
    let t = time(5, || image::load_from_memory(&png).unwrap().to_rgba8());
    println!("  (PNG decode)           {:>7.1} ms", t.as_secs_f64() * 1e3);
}

async fn queue(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else {
        println!("{backend:?}: PostgreSQL/Redis not available, skipped");
        return;
    };
    let state = app.state().clone();
    let new = funmagic_api::store::NewUser {
        email: "bench@example.com".into(),
        name: "Bench".into(),
        role: Role::User,
        email_verified: true,
    };
    let user = state.store().user_create(&new).await.unwrap();
    state.store().credits_grant(user.id, TransactionType::Bonus, 1_000_000, "bench", None).await.unwrap();
    let principal = funmagic_api::auth::Principal {
        user: user.clone(),
        credential: funmagic_api::auth::Credential::Session {
            id: uuid::Uuid::nil(),
            token_hash: String::new(),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        },
    };
    let submit = funmagic_api::tasks::Submit {
        tool_slug: "echo".into(),
        step_id: None,
        input: serde_json::json!({}),
        parent_task_id: None,
        run_all_steps: false,
        webhook: None,
    };
    // Pickup latency, idle queue.
    let mut pickups = vec![];
    for _ in 0..50 {
        let task = funmagic_api::tasks::submit(&state, &principal, &submit).await.unwrap();
        loop {
            let events = state.store().task_events_after(task.id, 0).await.unwrap();
            if let (Some(q), Some(s)) = (
                events.iter().find(|e| e.kind == EventKind::Queued),
                events.iter().find(|e| e.kind == EventKind::StepStarted),
            ) {
                pickups.push((s.created_at - q.created_at).to_std().unwrap_or_default());
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pickups.sort();
    println!(
        "{backend:?} queue: pickup latency (enqueue → step_started, 50 tasks): median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        pickups[25].as_secs_f64() * 1e3,
        pickups[47].as_secs_f64() * 1e3,
        pickups[49].as_secs_f64() * 1e3
    );
    // Throughput.
    let started = Instant::now();
    let mut ids = vec![];
    for _ in 0..300 {
        ids.push(funmagic_api::tasks::submit(&state, &principal, &submit).await.unwrap().id);
    }
    let submitted = started.elapsed();
    for id in ids {
        while state.store().task_get(id).await.unwrap().unwrap().status != funmagic_api::store::TaskStatus::Completed {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let all = started.elapsed();
    println!(
        "{backend:?} queue: 300 echo tasks: submitted in {:.2} s, all completed in {:.2} s ({:.0} tasks/s, 4 workers)",
        submitted.as_secs_f64(),
        all.as_secs_f64(),
        300.0 / all.as_secs_f64()
    );
}

async fn bench_user(state: &funmagic_api::app::AppState, email: &str) -> funmagic_api::auth::Principal {
    let new = funmagic_api::store::NewUser {
        email: email.into(),
        name: "Bench".into(),
        role: Role::User,
        email_verified: true,
    };
    let user = state.store().user_create(&new).await.unwrap();
    state
        .store()
        .credits_grant(user.id, TransactionType::Bonus, 1_000_000_000, &format!("bench-{}", user.id), None)
        .await
        .unwrap();
    funmagic_api::auth::Principal {
        user,
        credential: funmagic_api::auth::Credential::Session {
            id: uuid::Uuid::nil(),
            token_hash: String::new(),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
        },
    }
}

fn echo_submit() -> funmagic_api::tasks::Submit {
    funmagic_api::tasks::Submit {
        tool_slug: "echo".into(),
        step_id: None,
        input: serde_json::json!({}),
        parent_task_id: None,
        run_all_steps: false,
        webhook: None,
    }
}

async fn submit_throughput(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let state = app.state().clone();
    let mut users = vec![];
    for i in 0..64 {
        users.push(bench_user(&state, &format!("submit{i}@example.com")).await);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut submitters = tokio::task::JoinSet::new();
    for principal in users {
        let state = state.clone();
        submitters.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                funmagic_api::tasks::submit(&state, &principal, &echo_submit()).await.unwrap();
                n += 1;
            }
            n
        });
    }
    let mut total = 0;
    while let Some(n) = submitters.join_next().await {
        total += n.unwrap();
    }
    println!("{backend:?} submit: 64 concurrent submitters, 3 s: {total} tasks ({:.0}/s)", total as f64 / 3.0);
}

/// Task reads (what a client polling its tasks asks): 64 concurrent readers of 256 tasks'
/// detail views for 3 s.
async fn task_reads(backend: TestBackend) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let state = app.state().clone();
    let principal = bench_user(&state, "reads@example.com").await;
    let mut ids = vec![];
    for _ in 0..256 {
        ids.push(funmagic_api::tasks::submit(&state, &principal, &echo_submit()).await.unwrap().id);
    }
    let ids = std::sync::Arc::new(ids);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut readers = tokio::task::JoinSet::new();
    for r in 0..64 {
        let (state, principal, ids) = (state.clone(), principal.clone(), ids.clone());
        readers.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let id = ids[(r * 7 + n as usize) % ids.len()];
                let detail = funmagic_api::tasks::detail(&state, &principal, id).await.unwrap();
                assert_eq!(detail.task.id, id);
                n += 1;
            }
            n
        });
    }
    let mut total = 0;
    while let Some(n) = readers.join_next().await {
        total += n.unwrap();
    }
    println!("{backend:?} task reads: 64 concurrent readers, 3 s: {total} reads ({:.0}/s)", total as f64 / 3.0);
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4
}

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// A `Follower` on each task, past its history (connected, queued); each sends the instant
/// it receives its first event that `mark` accepts. Returns once all are listening.
async fn followers_of(
    state: &funmagic_api::app::AppState,
    ids: &[uuid::Uuid],
    mark: fn(&funmagic_api::events::Live) -> bool,
) -> (Vec<tokio::task::JoinHandle<()>>, tokio::sync::mpsc::UnboundedReceiver<Instant>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(ids.len() + 1));
    let mut handles = Vec::with_capacity(ids.len());
    for id in ids {
        let (state, tx, ready, id) = (state.clone(), tx.clone(), ready.clone(), *id);
        handles.push(tokio::spawn(async move {
            let (_, mut follower) = state.events().open(id, 0).await.unwrap().expect("the task exists");
            follower.next().await;
            follower.next().await;
            ready.wait().await;
            while let Some(live) = follower.next().await {
                if mark(&live) {
                    let _ = tx.send(Instant::now());
                    break;
                }
            }
        }));
    }
    ready.wait().await;
    (handles, rx)
}

async fn fan_out(backend: TestBackend, followers: usize) {
    let Some(app) = TestApp::spawn(backend).await else { return };
    let state = app.state().clone();
    app.workers.send(true).unwrap();
    let principal = bench_user(&state, "fanout@example.com").await;
    let mut ids = Vec::with_capacity(followers);
    for _ in 0..followers {
        ids.push(funmagic_api::tasks::submit(&state, &principal, &echo_submit()).await.unwrap().id);
    }
    let before = rss_kib();
    let (handles, mut rx) = followers_of(&state, &ids, |live| live.kind == EventKind::Progress).await;
    let grown = rss_kib().saturating_sub(before);
    let idle_from = cpu_ticks();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = cpu_ticks() - idle_from;
    let started = Instant::now();
    let mut sent = Vec::with_capacity(followers);
    for id in &ids {
        sent.push(Instant::now());
        state.events().progress(*id, serde_json::json!({ "progress": 50 })).await;
    }
    let mut latencies = Vec::with_capacity(followers);
    let mut received = Vec::with_capacity(followers);
    for _ in 0..followers {
        received.push(tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.unwrap().unwrap());
    }
    let all = started.elapsed();
    // Deliveries are matched to sends in order of arrival: the latency of the k-th delivery
    // is measured from the k-th send (both in publish order on one channel).
    for (s, r) in sent.iter().zip(&received) {
        latencies.push(r.saturating_duration_since(*s));
    }
    latencies.sort();
    for h in handles {
        h.abort();
    }
    println!(
        "{backend:?} fan-out, {followers} followers on waiting tasks: +{:.1} MiB ({:.1} KiB each), idle CPU {:.1}% of a core over 5 s; \
         one progress event to each at once: {:.0} events/s, delivery p50 {:.2} ms, p99 {:.2} ms",
        grown as f64 / 1024.0,
        grown as f64 / followers as f64,
        idle as f64 / 5.0,
        followers as f64 / all.as_secs_f64(),
        latencies[followers / 2].as_secs_f64() * 1e3,
        latencies[followers * 99 / 100].as_secs_f64() * 1e3,
    );
    // Single events, 5 ms apart, to streams among the open ones: the latency a watcher sees.
    let probes = 200.min(followers);
    let (handles, mut rx) = followers_of(&state, &ids[..probes], |live| live.data["probe"] == true).await;
    let mut single = Vec::with_capacity(probes);
    for id in ids.iter().take(probes) {
        let sent = Instant::now();
        state.events().progress(*id, serde_json::json!({ "progress": 60, "probe": true })).await;
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        single.push(got.saturating_duration_since(sent));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    single.sort();
    for h in handles {
        h.abort();
    }
    println!(
        "{backend:?} fan-out: single progress events with {followers} streams open: delivery p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        single[probes / 2].as_secs_f64() * 1e3,
        single[probes * 99 / 100].as_secs_f64() * 1e3,
        single[probes - 1].as_secs_f64() * 1e3,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // `FUNMAGIC_BENCH_ONLY=http-fan-out` runs that figure alone.
    if std::env::var("FUNMAGIC_BENCH_ONLY").is_ok_and(|only| only == "http-fan-out") {
        rt.block_on(async {
            for http2 in [false, true] {
                http_fan_out(TestBackend::Embedded, 10_000, http2).await;
                http_fan_out(TestBackend::ScaleOut, 10_000, http2).await;
            }
        });
        return;
    }
    local_algorithms();
    rt.block_on(async {
        queue(TestBackend::Embedded).await;
        queue(TestBackend::ScaleOut).await;
        submit_throughput(TestBackend::Embedded).await;
        submit_throughput(TestBackend::ScaleOut).await;
        task_reads(TestBackend::Embedded).await;
        task_reads(TestBackend::ScaleOut).await;
        fan_out(TestBackend::Embedded, 10_000).await;
        fan_out(TestBackend::ScaleOut, 10_000).await;
        for http2 in [false, true] {
            http_fan_out(TestBackend::Embedded, 10_000, http2).await;
            http_fan_out(TestBackend::ScaleOut, 10_000, http2).await;
        }
    });
}

/// VmRSS of process `pid`, in KiB.
fn rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// What one open stream reports to the bench.
enum Seen {
    /// Its history (`connected`, `queued`) has arrived: it is waiting like a client would.
    Ready,
    /// An event whose data carries this marker arrived.
    Marked(&'static str, Instant),
}

/// When the next event carrying `marker` arrived (other reports are passed over); panics
/// when none comes within `wait`.
async fn next_marked(seen: &mut tokio::sync::mpsc::UnboundedReceiver<Seen>, marker: &str, wait: Duration) -> Instant {
    loop {
        match tokio::time::timeout(wait, seen.recv()).await {
            Ok(Some(Seen::Marked(m, at))) if m == marker => return at,
            Ok(Some(_)) => {}
            _ => panic!("no {marker} event arrived within {wait:?}"),
        }
    }
}

/// One SSE stream over HTTP, read the way a client reads it: reports `Ready` after the
/// `queued` event, then every event carrying one of the bench's markers, until the
/// stream ends.
async fn sse_reader(
    client: reqwest::Client,
    url: String,
    token: String,
    opening: std::sync::Arc<tokio::sync::Semaphore>,
    seen: tokio::sync::mpsc::UnboundedSender<Seen>,
) {
    let permit = opening.acquire_owned().await.unwrap();
    let mut resp = client.get(&url).bearer_auth(&token).send().await.expect("open the stream");
    assert_eq!(resp.status(), 200, "opening {url}: {}", resp.status());
    let mut permit = Some(permit);
    let mut buf: Vec<u8> = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let at = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            if permit.is_some() && text.contains("event: queued") {
                permit = None;
                let _ = seen.send(Seen::Ready);
            }
            for marker in ["\"probe\"", "\"burst\"", "\"cancelled\""] {
                if text.contains(marker) {
                    let _ = seen.send(Seen::Marked(marker, at));
                }
            }
        }
    }
}

/// The fan-out target over real HTTP: the `funmagic-server` binary (`serve`, no workers),
/// `streams` SSE streams open on waiting tasks (100 users × up to 100 streams, the default
/// per-user cap), driven by a client in this process. Reports the server process's memory
/// and idle CPU with every stream open (20 s: a sweep and a keep-alive round fall inside),
/// and how fast events reach the streams: in scale-out, progress events published on the
/// Redis channel as a worker publishes them (one at a time, and one to every stream at
/// once); in both modes, cancellations over HTTP until the `cancelled` event arrives.
async fn http_fan_out(backend: TestBackend, streams: usize, http2: bool) {
    use funmagic_api::testing::{TempDir, TestDatabase, TestRedisPrefix};
    const PER_USER: usize = 100;
    let dir = TempDir::new("sse-bench");
    let (database, redis) = match backend {
        TestBackend::Embedded => (None, None),
        TestBackend::ScaleOut => {
            let (Some(database), Some(redis)) = (TestDatabase::create().await, TestRedisPrefix::create().await) else {
                return;
            };
            (Some(database), Some(redis))
        }
    };
    let settings = TestApp::settings(backend, &dir, database.as_ref(), redis.as_ref(), Default::default());
    let state = funmagic_api::app::AppState::build(settings, funmagic_api::app::Migrations::Apply).await.unwrap();
    let client_info = funmagic_api::accounts::flows::Client { ip: "127.0.0.1".into(), user_agent: None };
    let mut tokens = Vec::new();
    let mut tasks: Vec<(usize, uuid::Uuid)> = Vec::with_capacity(streams);
    for u in 0..streams.div_ceil(PER_USER) {
        let principal = bench_user(&state, &format!("sse{u}@example.com")).await;
        let issued =
            funmagic_api::accounts::flows::create_session(&state, principal.user.clone(), &client_info).await.unwrap();
        tokens.push(issued.token);
        for _ in 0..PER_USER.min(streams - u * PER_USER) {
            tasks.push((u, funmagic_api::tasks::submit(&state, &principal, &echo_submit()).await.unwrap().id));
        }
    }
    state.store().close().await;
    drop(state);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_funmagic-server"));
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--workers", "0"])
        .env("FUNMAGIC_DATA_DIR", dir.path())
        .env("FUNMAGIC_LOG", "warn")
        .env("FUNMAGIC_BOOTSTRAP_ADMIN", "false")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true);
    if let (Some(database), Some(redis)) = (&database, &redis) {
        cmd.env("DATABASE_URL", &database.url)
            .env("REDIS_URL", funmagic_api::testing::redis_url())
            .env("FUNMAGIC_REDIS_PREFIX", &redis.prefix);
    }
    let mut server = cmd.spawn().expect("start funmagic-server");
    let pid = server.id().unwrap();
    // HTTP/2 (cleartext, prior knowledge): streams share connections, as through a proxy
    // that speaks h2c to the API (deploy/proxy/Caddyfile) or a client that multiplexes.
    let client = match http2 {
        true => reqwest::Client::builder().no_proxy().http2_prior_knowledge().build().unwrap(),
        false => reqwest::Client::builder().no_proxy().build().unwrap(),
    };
    let protocol = if http2 { "HTTP/2" } else { "HTTP/1.1" };
    assert!(
        funmagic_api::testing::until_healthy(&client, &base, Duration::from_secs(30)).await,
        "the server did not come up"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib_of(pid);

    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let opening = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
    let started = Instant::now();
    let readers: Vec<_> = tasks
        .iter()
        .map(|(u, id)| {
            tokio::spawn(sse_reader(
                client.clone(),
                format!("{base}/api/tasks/{id}/stream"),
                tokens[*u].clone(),
                opening.clone(),
                seen_tx.clone(),
            ))
        })
        .collect();
    let mut ready = 0;
    while ready < streams {
        match tokio::time::timeout(Duration::from_secs(60), seen.recv()).await {
            Ok(Some(Seen::Ready)) => ready += 1,
            Ok(Some(_)) => {}
            _ => panic!("only {ready} of {streams} streams opened"),
        }
    }
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open = rss_kib_of(pid);
    let idle_from = cpu_ticks_of(pid);
    let idle_secs = 20;
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let idle = cpu_ticks_of(pid) - idle_from;
    let rss_idle = rss_kib_of(pid);
    println!(
        "{backend:?} {protocol} fan-out, {streams} SSE streams on waiting tasks (server process): opened in {:.1} s; \
         RSS {:.1} MiB idle before, {:.1} MiB with them open ({:.1} KiB a stream), {:.1} MiB after {idle_secs} s; \
         idle CPU {:.1}% of a core over {idle_secs} s",
        opened_in.as_secs_f64(),
        rss_before as f64 / 1024.0,
        rss_open as f64 / 1024.0,
        rss_open.saturating_sub(rss_before) as f64 / streams as f64,
        rss_idle as f64 / 1024.0,
        idle as f64 / idle_secs as f64,
    );

    let percentiles = |mut v: Vec<Duration>| {
        v.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(v[v.len() / 2]),
            ms(v[v.len() * 99 / 100]),
            ms(v[v.len() - 1])
        )
    };
    if let Some(prefix) = redis.as_ref().map(|r| r.prefix.clone()) {
        let redis = redis::Client::open(funmagic_api::testing::redis_url()).unwrap();
        let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
        let channel = format!("{prefix}:events");
        let payload = |id: uuid::Uuid, marker: &str| {
            serde_json::to_string(&funmagic_api::events::Live {
                task_id: id,
                seq: None,
                kind: EventKind::Progress,
                data: serde_json::json!({ "type": "progress", "progress": 60, marker: true }),
            })
            .unwrap()
        };
        // One event at a time, 5 ms apart, to streams among the open ones.
        let mut single = Vec::new();
        for (_, id) in tasks.iter().step_by((streams / 200).max(1)).take(200) {
            let sent = Instant::now();
            let _: i64 =
                redis::cmd("PUBLISH").arg(&channel).arg(payload(*id, "probe")).query_async(&mut conn).await.unwrap();
            let at = next_marked(&mut seen, "\"probe\"", Duration::from_secs(5)).await;
            single.push(at.saturating_duration_since(sent));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // One event to every stream at once (one pipeline of PUBLISHes).
        let mut pipe = redis::pipe();
        for (_, id) in &tasks {
            pipe.cmd("PUBLISH").arg(&channel).arg(payload(*id, "burst")).ignore();
        }
        let sent = Instant::now();
        let _: () = pipe.query_async(&mut conn).await.unwrap();
        let mut burst = Vec::with_capacity(streams);
        while burst.len() < streams {
            let at = next_marked(&mut seen, "\"burst\"", Duration::from_secs(30)).await;
            burst.push(at.saturating_duration_since(sent));
        }
        let all = burst.iter().max().copied().unwrap_or_default();
        println!(
            "{backend:?} {protocol} fan-out: a progress event published on Redis to one of {streams} open streams: {}; \
             one to each at once: all delivered in {:.0} ms ({:.0} events/s), {}",
            percentiles(single),
            all.as_secs_f64() * 1e3,
            streams as f64 / all.as_secs_f64(),
            percentiles(burst),
        );
    }
    // Cancellations over HTTP (a queued task ends at once): request sent → `cancelled`
    // event on the task's open stream, one at a time.
    let mut cancels = Vec::new();
    for (u, id) in tasks.iter().step_by((streams / 100).max(1)).take(100) {
        let sent = Instant::now();
        let resp = client.post(format!("{base}/api/tasks/{id}/cancel")).bearer_auth(&tokens[*u]).send().await.unwrap();
        assert!(resp.status().is_success(), "cancel: {}", resp.status());
        let at = next_marked(&mut seen, "\"cancelled\"", Duration::from_secs(5)).await;
        cancels.push(at.saturating_duration_since(sent));
    }
    println!(
        "{backend:?} {protocol} fan-out: cancel request → `cancelled` on the task's stream, with {streams} open: {}",
        percentiles(cancels)
    );
    for reader in readers {
        reader.abort();
    }
    let _ = server.start_kill();
    let _ = server.wait().await;
}
