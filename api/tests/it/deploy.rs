//! The compose file's contents, proven without a Docker engine: `migrate`, two `api` and
//! two `worker` processes are started with the commands and the environment that
//! `deploy/docker-compose.yml` gives those services, with only the engines' addresses (and
//! the listen ports, data directory) swapped for this machine's; a user then uploads a file
//! through the presigned URL (on the public S3 endpoint), runs a task on one API while
//! following it on the other, and downloads the file again.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use funmagic_api::app::Migrations;
use funmagic_api::config::SettingsLayer;
use funmagic_api::testing::{TempDir, TestDatabase, TestRedisPrefix};
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_funmagic-server");
const COMPOSE: &str = include_str!("../../../deploy/docker-compose.yml");
const DOCKERFILE: &str = include_str!("../../../Dockerfile");
const DOCKERIGNORE: &str = include_str!("../../../.dockerignore");

/// One compose service as the test needs it: its command and its environment, `${VAR:-x}`
/// interpolated with the defaults (as `docker compose` does with no `.env`).
#[derive(Debug)]
struct Service {
    command: Vec<String>,
    env: BTreeMap<String, String>,
}

/// What an operator's `deploy/.env` gives the variables the compose file requires
/// (`${NAME:?…}`: compose refuses to start without them). Test values, well-formed.
const DOT_ENV: &[(&str, &str)] = &[
    ("POSTGRES_PASSWORD", "compose-test-password"),
    ("S3_ACCESS_KEY", "GK0123456789abcdef01234567"),
    ("S3_SECRET_KEY", "0000000000000000000000000000000000000000000000000000000000c0ffee"),
    ("FUNMAGIC_MASTER_KEY", "ZnVubWFnaWMtY29tcG9zZS1tYXN0ZXIta2V5LTMyYgo="),
    ("FUNMAGIC_SECRET_KEY", "ZnVubWFnaWMtY29tcG9zZS1zZWNyZXQta2V5LTMyYgo="),
    ("GARAGE_RPC_SECRET", "4f0c1e2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100"),
    ("GARAGE_ADMIN_TOKEN", "compose-test-admin-token"),
    ("GRAFANA_ADMIN_PASSWORD", "compose-test-grafana"),
];

/// Compose's interpolation: `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}` (from
/// [`DOT_ENV`], which must then have it) and `${NAME}`, with nothing else set.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("a closed ${…}") + start;
        let inner = &rest[start + 2..end];
        if let Some((name, _)) = inner.split_once(":?") {
            let set = DOT_ENV.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
            out.push_str(set.unwrap_or_else(|| panic!("the compose file requires {name}; DOT_ENV lacks it")));
        } else {
            let default = inner.split_once(":-").or_else(|| inner.split_once('-')).map(|(_, d)| d).unwrap_or("");
            out.push_str(default);
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn services() -> BTreeMap<String, Service> {
    let doc: serde_yaml::Value = serde_yaml::from_str(COMPOSE).expect("the compose file is YAML");
    let mut out = BTreeMap::new();
    for (name, service) in doc["services"].as_mapping().expect("services") {
        let name = name.as_str().unwrap().to_string();
        let command = match &service["command"] {
            serde_yaml::Value::Sequence(items) => items.iter().map(|i| interpolate(i.as_str().unwrap())).collect(),
            serde_yaml::Value::Null => Vec::new(),
            other => panic!("{name}: command as a list, not {other:?}"),
        };
        let mut env = BTreeMap::new();
        if let Some(map) = service["environment"].as_mapping() {
            for (k, v) in map {
                let v = match v {
                    serde_yaml::Value::String(s) => interpolate(s),
                    serde_yaml::Value::Null => String::new(),
                    other => serde_yaml::to_string(other).unwrap().trim().to_string(),
                };
                env.insert(k.as_str().unwrap().to_string(), v);
            }
        }
        out.insert(name, Service { command, env });
    }
    out
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_compose_file_runs_migrate_first_and_configures_only_through_the_environment() {
    let all = services();
    for name in ["postgres", "redis", "garage", "garage-init", "migrate", "api", "worker"] {
        assert!(all.contains_key(name), "the compose file has a {name} service");
    }
    assert_eq!(all["migrate"].command, ["migrate"]);
    assert_eq!(all["api"].command, ["serve"]);
    assert_eq!(all["worker"].command[0], "worker");
    // The FunMagic services share one environment, which names every engine.
    for name in ["migrate", "api", "worker"] {
        let env = &all[name].env;
        for var in ["DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "FUNMAGIC_MASTER_KEY"]
        {
            assert!(env.get(var).is_some_and(|v| !v.is_empty()), "{name}: {var}");
        }
        assert_eq!(env, &all["api"].env, "{name} has the api's environment");
    }
    let doc: serde_yaml::Value = serde_yaml::from_str(COMPOSE).unwrap();
    for name in ["api", "worker"] {
        let deps = doc["services"][name]["depends_on"].as_mapping().unwrap();
        let migrate = deps.get("migrate").expect("depends on migrate");
        assert_eq!(migrate["condition"], "service_completed_successfully", "{name} starts after migrate");
    }
    assert!(
        doc["services"]["api"]["healthcheck"]["test"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.ends_with("/health/all")))
    );
    // Secrets have no defaults in the file: compose refuses to start until .env sets them.
    for var in ["FUNMAGIC_MASTER_KEY", "FUNMAGIC_SECRET_KEY", "S3_SECRET_KEY", "POSTGRES_PASSWORD"] {
        assert!(COMPOSE.contains(&format!("${{{var}:?")), "{var} is required, not defaulted");
    }
    // The example .env names every variable the file requires.
    let example = include_str!("../../../deploy/compose/.env.example");
    for (var, _) in DOT_ENV {
        assert!(example.lines().any(|l| l.starts_with(&format!("{var}="))), "{var} is in .env.example");
    }
    // The optional services are behind profiles.
    for (name, profile) in [("prometheus", "observability"), ("grafana", "observability"), ("jaeger", "traces")] {
        assert_eq!(doc["services"][name]["profiles"][0], profile, "{name}");
    }
}

/// The Dockerfile, read statically (no engine here): cached dependency layers, every binary
/// of the workspace in a slim runtime stage, a non-root user, a health check, the ports,
/// labels, and no configuration but the environment.
#[test]
fn the_dockerfile_builds_every_binary_into_a_small_non_root_image() {
    // Instructions with their continuation lines joined.
    let mut instructions: Vec<(String, String)> = Vec::new();
    let mut pending = String::new();
    for line in DOCKERFILE.lines() {
        let t = line.trim();
        if pending.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        pending.push_str(t.trim_end_matches('\\'));
        pending.push(' ');
        if !t.ends_with('\\') {
            let (op, rest) = pending.trim().split_once(' ').unwrap_or((pending.trim(), ""));
            instructions.push((op.to_uppercase(), rest.trim().to_string()));
            pending.clear();
        }
    }
    let of = |op: &str| instructions.iter().filter(|(o, _)| o == op).map(|(_, r)| r.as_str()).collect::<Vec<_>>();
    let stages = of("FROM");
    assert!(stages.len() >= 3, "multi-stage: {stages:?}");
    assert!(of("RUN").iter().any(|r| r.contains("cargo chef cook")), "dependencies in their own cached layer");
    let runtime_from = stages.last().unwrap();
    assert!(runtime_from.contains("-slim") || runtime_from.contains("distroless"), "small runtime: {runtime_from}");
    // The runtime stage: everything after the last FROM.
    let last = instructions.iter().rposition(|(o, _)| o == "FROM").unwrap();
    let runtime = &instructions[last..];
    let user = runtime.iter().rev().find(|(o, _)| o == "USER").map(|(_, r)| r.as_str()).expect("a USER");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "non-root: {user}");
    let health = runtime.iter().find(|(o, _)| o == "HEALTHCHECK").map(|(_, r)| r.as_str()).expect("a HEALTHCHECK");
    assert!(health.contains("/health"), "{health}");
    assert!(runtime.iter().any(|(o, r)| o == "EXPOSE" && r.split_whitespace().any(|p| p == "8000")));
    let entry = runtime.iter().find(|(o, _)| o == "ENTRYPOINT").map(|(_, r)| r.as_str()).unwrap();
    assert!(entry.contains("funmagic-server"), "{entry}");
    let labels = of("LABEL").join(" ");
    for l in ["org.opencontainers.image.version", "org.opencontainers.image.source"] {
        assert!(labels.contains(l), "label {l}");
    }
    // Every binary of the workspace is built into the image.
    let build = of("RUN").into_iter().find(|r| r.contains("cargo build --release")).expect("a release build");
    for bin in ["funmagic-server", "funmagic", "funmagic-admin"] {
        assert!(build.contains(&format!("target/release/{bin} ")), "{bin} is installed: {build}");
    }
    // Configured through the environment only: no config file is copied in or named.
    assert!(!DOCKERFILE.contains("FUNMAGIC_CONFIG=") && !DOCKERFILE.contains("funmagic.toml"));
    assert!(DOCKERIGNORE.lines().any(|l| l.trim() == "target/"), "the build context leaves target/ out");
}

/// The compose file's Garage setup, run for real: Garage started on `deploy/compose/
/// garage.toml` with the secrets from the compose environment (addresses and directories
/// swapped), then the `garage-init` job's script with its compose environment; afterwards
/// the key FunMagic's services are given reaches all three buckets. Run again, the script
/// changes nothing and still succeeds.
#[tokio::test]
async fn the_compose_garage_init_job_prepares_a_fresh_garage() {
    let garage = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo/bin")))
        .map(|d| d.join("garage"))
        .find(|p| p.is_file());
    let Some(garage) = garage else {
        assert!(!funmagic_api::testing::in_ci(), "garage is not installed (.ci/garage.sh installs it)");
        eprintln!("SKIPPED: garage is not installed");
        return;
    };
    let all = services();
    let dir = TempDir::new("garage-init");
    let (s3, rpc, admin) = (free_port(), free_port(), free_port());
    let conf = include_str!("../../../deploy/compose/garage.toml")
        .replace("/var/lib/garage", dir.path().to_str().unwrap())
        .replace("[::]:3900", &format!("127.0.0.1:{s3}"))
        .replace("[::]:3901", &format!("127.0.0.1:{rpc}"))
        .replace("127.0.0.1:3901", &format!("127.0.0.1:{rpc}"))
        .replace("[::]:3903", &format!("127.0.0.1:{admin}"));
    let conf_path = dir.path().join("garage.toml");
    std::fs::write(&conf_path, conf).unwrap();
    let server_env = &all["garage"].env;
    let mut server = tokio::process::Command::new(&garage)
        .arg("-c")
        .arg(&conf_path)
        .arg("server")
        .envs(server_env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut init_env = all["garage-init"].env.clone();
    init_env.insert("GARAGE_ADMIN_URL".into(), format!("http://127.0.0.1:{admin}"));
    for round in 0..2 {
        let out = tokio::process::Command::new("sh")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/compose/garage-init.sh"))
            .envs(&init_env)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "garage-init (run {round}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The key of the FunMagic services' environment reaches every bucket they name.
    let env = &all["api"].env;
    let mut layer = SettingsLayer { data_dir: Some(dir.path().join("fm")), ..Default::default() };
    layer.s3 = funmagic_api::config::S3Layer {
        endpoint: Some(format!("http://127.0.0.1:{s3}")),
        access_key: Some(env["S3_ACCESS_KEY"].clone()),
        secret_key: Some(env["S3_SECRET_KEY"].clone().into()),
        region: Some(env["S3_REGION"].clone()),
        ..Default::default()
    };
    let settings = layer.resolve().unwrap();
    let clock = std::sync::Arc::new(funmagic_api::clock::Clock::default());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match funmagic_api::storage::ObjectStore::open(&settings, clock.clone()).await {
            Ok(store) => {
                assert_eq!(store.kind(), "s3");
                break;
            }
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "the buckets are not usable: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = server.kill().await;
}

/// What the test machine swaps in the compose environment: the engines' addresses and
/// credentials, the listen addresses and the data directory. Everything else is the file's.
struct Swap {
    db: String,
    redis_prefix: String,
    s3: Option<funmagic_api::config::S3Layer>,
    data_dir: String,
}

impl Swap {
    fn apply(&self, env: &BTreeMap<String, String>, listen: u16, metrics: u16) -> BTreeMap<String, String> {
        let mut env = env.clone();
        let mut set = |k: &str, v: String| {
            assert!(env.contains_key(k), "the compose environment sets {k}");
            env.insert(k.to_string(), v);
        };
        set("DATABASE_URL", self.db.clone());
        set("REDIS_URL", funmagic_api::testing::redis_url());
        set("FUNMAGIC_LISTEN", format!("127.0.0.1:{listen}"));
        set("FUNMAGIC_METRICS_LISTEN", format!("127.0.0.1:{metrics}"));
        set("FUNMAGIC_DATA_DIR", self.data_dir.clone());
        set("FUNMAGIC_PUBLIC_URL", format!("http://127.0.0.1:{listen}"));
        match &self.s3 {
            Some(s3) => {
                let endpoint = s3.endpoint.clone().unwrap();
                // Clients reach the store by another name than the servers, as in compose.
                set("S3_PUBLIC_ENDPOINT", endpoint.replace("127.0.0.1", "localhost"));
                set("S3_ENDPOINT", endpoint);
                set("S3_ACCESS_KEY", s3.access_key.clone().unwrap());
                set("S3_SECRET_KEY", secrecy::ExposeSecret::expose_secret(s3.secret_key.as_ref().unwrap()).to_string());
                set("S3_REGION", s3.region.clone().unwrap());
            }
            None => {
                for k in ["S3_ENDPOINT", "S3_PUBLIC_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_REGION"] {
                    env.remove(k);
                }
            }
        }
        // Not a setting: a test's own Redis namespace, so tests running at once do not meet.
        env.insert("FUNMAGIC_REDIS_PREFIX".into(), self.redis_prefix.clone());
        env
    }
}

fn spawn(service: &Service, env: &BTreeMap<String, String>) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(&service.command).env_clear().envs(env).env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().expect("start funmagic-server");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("\"level\":\"ERROR\"") {
                eprintln!("{line}");
            }
        }
    });
    child
}

async fn healthy(url: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(resp) = reqwest::get(format!("{url}/health/all")).await
            && resp.status() == 200
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{url}/health/all never answered 200");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_services_run_a_task_end_to_end() {
    let (Some(db), Some(redis)) = (TestDatabase::create().await, TestRedisPrefix::create().await) else { return };
    let s3 = funmagic_api::testing::s3_available().then(|| funmagic_api::testing::s3_settings().unwrap());
    let all = services();
    let dir = TempDir::new("compose");
    let swap = Swap {
        db: db.url.clone(),
        redis_prefix: redis.prefix.clone(),
        s3: s3.clone(),
        data_dir: dir.path().to_str().unwrap().to_string(),
    };

    // migrate: a one-shot that must succeed before the rest start.
    let status = spawn(&all["migrate"], &swap.apply(&all["migrate"].env, free_port(), free_port())).wait().await;
    assert!(status.unwrap().success(), "migrate exits 0");

    let mut processes = Vec::new();
    let mut urls = Vec::new();
    let mut metrics = Vec::new();
    for service in ["api", "api", "worker", "worker"] {
        let (port, metrics_port) = (free_port(), free_port());
        processes.push(spawn(&all[service], &swap.apply(&all[service].env, port, metrics_port)));
        if service == "api" {
            urls.push(format!("http://127.0.0.1:{port}"));
        }
        metrics.push(format!("http://127.0.0.1:{metrics_port}/metrics"));
    }
    for url in &urls {
        healthy(url).await;
    }

    // A user, made in the same database (with the compose file's master key).
    let (state, _user, token) =
        crate::scale::seeded_user(&dir, &db.url, Migrations::Skip, "compose@example.com", 10).await;
    let clients: Vec<_> =
        urls.iter().map(|u| funmagic_sdk::ClientBuilder::new(u).token(&token).build().unwrap()).collect();

    // An upload through the presigned URL, and the same bytes back.
    let png = dir.path().join("in.png");
    image::RgbImage::from_pixel(4, 4, image::Rgb([200, 10, 10])).save(&png).unwrap();
    let asset = funmagic_sdk::files::upload_file(&clients[0], &png, None, |_, _| {}).await.unwrap();
    if s3.is_some() {
        let got = clients[1].asset_get(&asset.id).await.unwrap().into_inner();
        let url = got.download_url.unwrap_or_default();
        assert!(url.starts_with("http://localhost:"), "a presigned URL on the public endpoint: {url}");
    }
    let back = dir.path().join("back.png");
    funmagic_sdk::files::download_asset(&clients[1], &asset.id, &back, |_, _| {}).await.unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&png).unwrap());

    // A task submitted on one API, followed on the other, run by a worker.
    let request: funmagic_sdk::types::TaskCreateRequest =
        serde_json::from_value(serde_json::json!({ "toolSlug": "echo", "input": { "compose": true } })).unwrap();
    let task = clients[0].task_create(None, &request).await.unwrap().into_inner().task;
    let mut follower = funmagic_sdk::events::TaskFollower::new(&clients[1], task.id, 0);
    let last = tokio::time::timeout(Duration::from_secs(60), async {
        let mut last = None;
        while let Some(event) = follower.next().await {
            last = Some(event.unwrap());
        }
        last
    })
    .await
    .unwrap()
    .expect("events");
    assert_eq!(last.kind, funmagic_sdk::types::EventKind::Completed);
    let balance = clients[1].credits_balance_get().await.unwrap().into_inner();
    assert_eq!((balance.balance, balance.reserved), (9, 0));

    // Every process is still up, and its metrics listener answers.
    for p in &mut processes {
        assert!(p.try_wait().unwrap().is_none(), "a compose service stopped");
    }
    for url in &metrics {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if reqwest::get(url).await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{url} never answered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    drop(processes);
    state.store().close().await;
}

const CADDYFILE: &str = include_str!("../../../deploy/proxy/Caddyfile");

/// Established TCP connections whose local end is `port` (the server's side of each).
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "01"
        })
        .count()
}

/// The shipped Caddyfile, run by Caddy in front of the API with only its site address,
/// upstream address and log file swapped for this machine's (and its admin endpoint off):
/// task event streams read through it arrive whole, and Caddy reaches the API over HTTP/2
/// without TLS, so streams open at the same time share its connections (over HTTP/1.1
/// each would hold one of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caddyfile_proxies_event_streams_over_shared_connections() {
    let caddy = ["/usr/bin/caddy", "/usr/local/bin/caddy"].into_iter().find(|p| std::path::Path::new(p).exists());
    let Some(caddy) = caddy else {
        assert!(!funmagic_api::testing::in_ci(), "caddy is not installed (.ci/run installs it)");
        eprintln!("SKIPPED: caddy is not installed (apt-get install caddy)");
        return;
    };
    let app = funmagic_api::testing::TestApp::spawn(funmagic_api::testing::TestBackend::Embedded).await.unwrap();
    let api_port = app.server.addr.port();
    let proxy_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = TempDir::new("caddy");
    let mut config = CADDYFILE.to_string();
    for (from, to) in [
        ("{\n", "{\n\tadmin off\n".to_string()),
        ("funmagic.example.com {", format!("http://127.0.0.1:{proxy_port} {{")),
        ("reverse_proxy 127.0.0.1:8000 {", format!("reverse_proxy 127.0.0.1:{api_port} {{")),
        ("/var/log/caddy/funmagic.access.log", dir.path().join("access.log").display().to_string()),
    ] {
        assert!(config.contains(from), "the Caddyfile no longer has {from:?}");
        config = config.replacen(from, &to, 1);
    }
    assert!(config.contains("versions h2c"), "the Caddyfile speaks HTTP/2 to the API");
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, config).unwrap();
    let mut proxy = tokio::process::Command::new(caddy)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start caddy");
    let base = format!("http://127.0.0.1:{proxy_port}");
    let http = reqwest::Client::new();
    let up = funmagic_api::testing::until_healthy(&http, &base, Duration::from_secs(10)).await;
    assert!(up, "no answer through caddy");

    let user = crate::funded(&app, "proxied@example.com", 1_000).await;
    let sdk = crate::client_as(&app, &user.token);
    const STREAMS: usize = 8;
    let (opened, mut open) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut readers = Vec::new();
    for _ in 0..STREAMS {
        let task =
            sdk.task_create(None, &crate::echo(serde_json::json!({ "delayMs": 2500 }))).await.unwrap().into_inner();
        let (base, token, opened) = (base.clone(), user.token.clone(), opened.clone());
        readers.push(tokio::spawn(async move {
            crate::tasks::read_events(&base, &token, task.task.id, None, |e| {
                if e.1 == "connected" {
                    let _ = opened.send(());
                }
                e.1 == "completed"
            })
            .await
        }));
    }
    // Every stream is open through the proxy (its first event came; the tasks take 2.5 s
    // each, four at a time): count the API's connections now. Over HTTP/1.1 there would be
    // one per stream, plus the SDK's own.
    for _ in 0..STREAMS {
        tokio::time::timeout(Duration::from_secs(10), open.recv()).await.expect("a stream opened").unwrap();
    }
    let shared = connections_to(api_port);
    assert!(shared < STREAMS, "{STREAMS} open streams took {shared} connections to the API: not multiplexed");
    for reader in readers {
        let events = reader.await.unwrap();
        let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(kinds.first(), Some(&"connected"), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"completed"), "{kinds:?}");
        for milestone in ["queued", "step_started", "step_completed"] {
            assert!(kinds.contains(&milestone), "{milestone} missing through the proxy: {kinds:?}");
        }
        let ids: Vec<i64> = events.iter().filter_map(|e| e.0).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of order: {ids:?}");
    }
    let _ = proxy.start_kill();
    let _ = proxy.wait().await;
}
