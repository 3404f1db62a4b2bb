//! A real 3-master Redis Cluster on loopback (`redis-server --cluster-enabled yes`, joined
//! by `redis-cli --cluster create`), with two API processes and a worker whose `REDIS_URL`
//! lists the three nodes: the scale-out core runs on it — the queue (stream, consumer
//! group, delayed set promoted by a script), events across processes (Pub/Sub) with
//! replay, the session cache and its revocation script, rate limits — and every key is in
//! the prefix's hash slot.

use std::process::Stdio;
use std::time::Duration;

use funmagic_api::app::Migrations;
use funmagic_api::testing::{TempDir, TestDatabase, TestRedisPrefix};

use crate::scale::{command, echo_task, follow_kinds, start_api_with, submit_across, wait_completed};

/// Three cluster-enabled redis-servers and their cluster, stopped on drop.
struct Cluster {
    nodes: Vec<std::process::Child>,
    ports: Vec<u16>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

impl Cluster {
    fn urls(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-c", "-p", &self.ports[0].to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

async fn start_cluster(dir: &TempDir) -> Option<Cluster> {
    if std::process::Command::new("redis-server").arg("--version").output().is_err() {
        assert!(!funmagic_api::testing::in_ci(), "redis-server is not installed");
        eprintln!("SKIPPED Redis Cluster test: redis-server is not installed");
        return None;
    }
    let ports: Vec<u16> = (0..3).map(|_| crate::deploy::free_port()).collect();
    let mut nodes = Vec::new();
    for port in &ports {
        let node_dir = dir.path().join(format!("node-{port}"));
        std::fs::create_dir_all(&node_dir).unwrap();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--cluster-enabled", "yes"])
            .args(["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"])
            .args(["--save", "", "--appendonly", "no", "--dir", node_dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        nodes.push(child);
    }
    let cluster = Cluster { nodes, ports };
    for port in &cluster.ports {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", *port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "redis-server on {port} did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let addresses: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let created = std::process::Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(created.status.success(), "cluster create: {}", String::from_utf8_lossy(&created.stdout));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cluster.cli(&["cluster", "info"]).contains("cluster_state:ok") {
        assert!(tokio::time::Instant::now() < deadline, "the cluster never reached cluster_state:ok");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scale_out_core_runs_on_a_redis_cluster() {
    let (Some(db), Some(redis)) = (TestDatabase::create().await, TestRedisPrefix::create().await) else { return };
    let dir = TempDir::new("cluster");
    let Some(cluster) = start_cluster(&dir).await else { return };
    let urls = cluster.urls();

    // The database as `migrate` leaves it, a user, and a second session of theirs.
    let (state, user, token) =
        crate::scale::seeded_user(&dir, &db.url, Migrations::Apply, "cluster@example.com", 100).await;
    let other_token =
        funmagic_api::accounts::flows::create_session(&state, user.clone(), &Default::default()).await.unwrap().token;

    let on_cluster = |cmd: &mut tokio::process::Command| {
        cmd.env("REDIS_URL", &urls);
    };
    let (_api1, url1) = start_api_with(&dir, &db, &redis, on_cluster).await;
    let (_api2, url2) = start_api_with(&dir, &db, &redis, on_cluster).await;
    // A third API with a tight submit limit: the limit's window lives on the cluster.
    let limited = |cmd: &mut tokio::process::Command| {
        cmd.env("REDIS_URL", &urls).env("FUNMAGIC_LIMIT_TASK_SUBMITS_PER_MINUTE", "2");
    };
    let (_api3, url3) = start_api_with(&dir, &db, &redis, limited).await;
    let mut worker = command(&dir, &db, &redis, &["worker", "--concurrency", "6"]);
    on_cluster(&mut worker);
    let _worker = worker.stderr(Stdio::null()).spawn().unwrap();
    let client = |url: &str, token: &str| funmagic_sdk::ClientBuilder::new(url).token(token).build().unwrap();
    let clients = [client(&url1, &token), client(&url2, &token)];

    // Idempotency, then many submits across both APIs while the worker drains.
    let mut ids = submit_across(&clients, "cluster-key-0001").await;
    // Events of a task run by the worker reach the other API through Pub/Sub, with replay.
    let followed = clients[0].task_create(None, &echo_task(41, 20)).await.unwrap().into_inner().task;
    ids.push(followed.id);
    let kinds = follow_kinds(&clients[1], followed.id).await;
    assert!(kinds.contains(&funmagic_sdk::types::EventKind::Queued), "{kinds:?}");
    assert!(kinds.contains(&funmagic_sdk::types::EventKind::Progress), "live progress came through: {kinds:?}");
    assert_eq!(kinds.last(), Some(&funmagic_sdk::types::EventKind::Completed), "{kinds:?}");

    // Every task completes exactly once, each paid once.
    wait_completed(&clients[0], &ids).await;
    let balance = clients[1].credits_balance_get().await.unwrap().into_inner();
    assert_eq!((balance.balance, balance.reserved), (100 - ids.len() as i64, 0));
    assert!(state.store().credits_invariant_violations(user.id).await.unwrap().is_empty());

    // Rate limits: the third API allows two submits a minute, counted in the one window
    // every API shares on the cluster, where this minute's 43 already are.
    let limited = client(&url3, &token);
    let (status, code) = crate::err_code(limited.task_create(None, &echo_task(100, 0)).await);
    assert_eq!((status, code.as_str()), (429, "RATE_LIMITED"));

    // The session cache: a session revoked on one API is refused on the other at once.
    let other = client(&url2, &other_token);
    let mine = other.auth_session_list().await.unwrap().into_inner();
    let other_id = mine.sessions.iter().find(|s| s.current).unwrap().id;
    clients[0].auth_session_revoke(&other_id).await.unwrap();
    assert_eq!(other.auth_session_get().await.unwrap_err().status().map(|s| s.as_u16()), Some(401));

    // Every key carries the prefix as a hash tag: one slot, so scripts and transactions work.
    let stream = format!("{{{}}}:queue:tasks", redis.prefix);
    assert_eq!(cluster.cli(&["exists", &stream]).trim(), "1", "the queue stream is {stream}");
    let slot = cluster.cli(&["cluster", "keyslot", &stream]);
    assert_eq!(cluster.cli(&["cluster", "keyslot", &format!("{{{}}}:events", redis.prefix)]), slot);
    state.store().close().await;
}
