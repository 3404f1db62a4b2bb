//! Several hosts, without loopback shortcuts: an API process and a worker process each run
//! in a network namespace of their own (`ip netns`), reaching PostgreSQL and Redis only
//! over a veth link to this host (where a forwarder hands the connections to the engines on
//! loopback), and the client reaches the API over its veth address. Inside a namespace,
//! 127.0.0.1 has no engine: nothing works unless the processes use the addresses they are
//! given. Needs root and `ip netns` (skipped, with a message, where the machine forbids it).

use std::process::Stdio;
use std::time::Duration;

use funmagic_api::app::Migrations;
use funmagic_api::testing::{TempDir, TestDatabase, TestRedisPrefix};

const BIN: &str = env!("CARGO_BIN_EXE_funmagic-server");

/// A network namespace joined to this host by a veth pair: `host` is this side's address,
/// `inside` the namespace's. Deleted on drop (its veth pair goes with it).
struct Netns {
    name: String,
    host: String,
    inside: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip").args(args).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// `fm{tag}{n}` with 10.{net}.{n}.0/30 between this host (.1) and the namespace (.2).
fn netns(tag: &str, net: u8, n: u8) -> Result<Netns, String> {
    let name = format!("fm{tag}{n}");
    let (outer, inner) = (format!("fm{tag}{n}h"), format!("fm{tag}{n}n"));
    let ns = Netns { name: name.clone(), host: format!("10.{net}.{n}.1"), inside: format!("10.{net}.{n}.2") };
    ip(&["netns", "add", &name])?;
    ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner])?;
    ip(&["link", "set", &inner, "netns", &name])?;
    ip(&["addr", "add", &format!("{}/30", ns.host), "dev", &outer])?;
    ip(&["link", "set", &outer, "up"])?;
    ip(&["-n", &name, "addr", "add", &format!("{}/30", ns.inside), "dev", &inner])?;
    ip(&["-n", &name, "link", "set", &inner, "up"])?;
    ip(&["-n", &name, "link", "set", "lo", "up"])?;
    Ok(ns)
}

/// Forwards connections to `listen` (this host's side of a veth) to `target` on loopback.
async fn forward(listen: String, target: &'static str) {
    let listener = tokio::net::TcpListener::bind(&listen).await.unwrap_or_else(|e| panic!("bind {listen}: {e}"));
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

fn in_ns(
    ns: &Netns,
    dir: &TempDir,
    args: &[&str],
    db: &TestDatabase,
    redis: &TestRedisPrefix,
) -> tokio::process::Command {
    let url = db.url.replace("127.0.0.1", &ns.host).replace("localhost", &ns.host);
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", &ns.name, BIN])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(args)
        .env("DATABASE_URL", url)
        .env("REDIS_URL", format!("redis://{}:6379", ns.host))
        .env("FUNMAGIC_REDIS_PREFIX", &redis.prefix)
        .env("FUNMAGIC_LOG", "warn")
        .env_remove("S3_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_worker_on_other_hosts_over_veth() {
    let (Some(db), Some(redis)) = (TestDatabase::create().await, TestRedisPrefix::create().await) else { return };
    if !db.url.contains("127.0.0.1") && !db.url.contains("localhost") {
        eprintln!("SKIPPED netns test: the test database is not on this machine's loopback");
        return;
    }
    // One subnet per run, so runs on one machine do not meet.
    let net = 200 + (std::process::id() % 50) as u8;
    let tag = format!("{:x}", std::process::id() % 4096);
    let (api_ns, worker_ns) = match (netns(&tag, net, 1), netns(&tag, net, 2)) {
        (Ok(a), Ok(w)) => (a, w),
        (a, w) => {
            let why = [a.err(), w.err()].into_iter().flatten().collect::<Vec<_>>().join("; ");
            eprintln!("SKIPPED netns test: this machine does not allow network namespaces ({why})");
            return;
        }
    };
    for ns in [&api_ns, &worker_ns] {
        forward(format!("{}:5432", ns.host), "127.0.0.1:5432").await;
        forward(format!("{}:6379", ns.host), "127.0.0.1:6379").await;
    }
    let dir = TempDir::new("netns");

    // Inside a namespace, loopback has no engine.
    let probe = std::process::Command::new("ip")
        .args(["netns", "exec", &api_ns.name, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5432"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!probe.success(), "127.0.0.1:5432 must not be reachable inside the namespace");

    let (state, _user, token) =
        crate::scale::seeded_user(&dir, &db.url, Migrations::Apply, "netns@example.com", 10).await;

    let listen = format!("{}:8000", api_ns.inside);
    let _api = in_ns(&api_ns, &dir, &["serve", "--listen", &listen, "--workers", "0"], &db, &redis).spawn().unwrap();
    let _worker = in_ns(&worker_ns, &dir, &["worker", "--concurrency", "2"], &db, &redis).spawn().unwrap();
    let url = format!("http://{listen}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if reqwest::get(format!("{url}/health/all")).await.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the API in its namespace never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = funmagic_sdk::ClientBuilder::new(&url).token(&token).build().unwrap();
    let request: funmagic_sdk::types::TaskCreateRequest =
        serde_json::from_value(serde_json::json!({ "toolSlug": "echo", "input": { "netns": true } })).unwrap();
    let (task, last) =
        tokio::time::timeout(Duration::from_secs(60), funmagic_sdk::events::run_and_wait(&client, &request, |_| {}))
            .await
            .expect("the task ran within a minute")
            .unwrap();
    assert_eq!(last.kind, funmagic_sdk::types::EventKind::Completed);
    let detail = state.store().task_get(task.id).await.unwrap().unwrap();
    assert_eq!(detail.status, funmagic_api::store::TaskStatus::Completed);
    state.store().close().await;
}
