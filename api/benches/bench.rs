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
    local_algorithms();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        queue(TestBackend::Embedded).await;
        queue(TestBackend::ScaleOut).await;
        submit_throughput(TestBackend::Embedded).await;
        submit_throughput(TestBackend::ScaleOut).await;
        task_reads(TestBackend::Embedded).await;
        task_reads(TestBackend::ScaleOut).await;
        fan_out(TestBackend::Embedded, 10_000).await;
        fan_out(TestBackend::ScaleOut, 10_000).await;
    });
}
