//! `cargo xtask bench` (release build): speed numbers that tests must not assert.
//!
//! 1. The local provider's algorithms on a 1024×1024 photo (median of 5 runs each).
//! 2. Queue pickup latency — enqueue → `step_started` — on the embedded queue and, when
//!    PostgreSQL and Redis are up, on the Redis Streams queue (in-process workers reading
//!    with XREADGROUP BLOCK), one task at a time on an idle queue.
//! 3. Throughput: 300 `echo` tasks submitted at once, until the last one completes.

use std::time::{Duration, Instant};

use funmagic_api::providers::local;
use funmagic_api::store::{Role, TxKind};
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
    state.store().credits_grant(user.id, TxKind::Bonus, 1_000_000, "bench", None).await.unwrap();
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
    };
    // Pickup latency, idle queue.
    let mut pickups = vec![];
    for _ in 0..50 {
        let task = funmagic_api::tasks::submit(&state, &principal, &submit).await.unwrap();
        loop {
            let events = state.store().task_events_after(task.id, 0).await.unwrap();
            if let (Some(q), Some(s)) =
                (events.iter().find(|e| e.kind == "queued"), events.iter().find(|e| e.kind == "step_started"))
            {
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
        while state.store().task_get(id).await.unwrap().unwrap().status != "completed" {
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

fn main() {
    local_algorithms();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        queue(TestBackend::Embedded).await;
        queue(TestBackend::ScaleOut).await;
    });
}
