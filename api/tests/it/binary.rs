//! The real `funmagic-server` binary: embedded first start (bootstrap admin printed once),
//! health, graceful SIGTERM, `admin create-super-admin`, `openapi`.

use std::process::Stdio;
use std::time::Duration;

use funmagic_api::testing::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_funmagic-server");

fn server(dir: &TempDir, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["--data-dir", dir.path().to_str().unwrap()])
        .args(args)
        .env("FUNMAGIC_ARGON2_MEMORY_KIB", "1024")
        .env("FUNMAGIC_ARGON2_ITERATIONS", "1");
    for var in ["DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "FUNMAGIC_CONFIG", "FUNMAGIC_LISTEN", "FUNMAGIC_LOG"] {
        cmd.env_remove(var);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_first_start_serves_and_stops_on_sigterm() {
    let dir = TempDir::new("bin");
    let mut child =
        server(&dir, &["serve", "--listen", "127.0.0.1:0"]).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut url, mut email, mut password) = (None, None, None);
    while url.is_none() || password.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("server output");
        if let Some(rest) = line.split("listening on ").nth(1) {
            url = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        if let Some(rest) = line.trim().strip_prefix("email:") {
            email = Some(rest.trim().to_string());
        }
        if let Some(rest) = line.trim().strip_prefix("password:") {
            password = Some(rest.trim().to_string());
        }
    }
    let url = url.unwrap();
    let health = reqwest::get(format!("{url}/health/all")).await.unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let sdk = funmagic_sdk::ClientBuilder::new(&url).build().unwrap();
    let signed = sdk
        .auth_sign_in_email(&funmagic_sdk::types::SignInRequest {
            email: email.unwrap().parse().unwrap(),
            password: password.unwrap().parse().unwrap(),
        })
        .await
        .expect("the printed credentials work")
        .into_inner();
    assert_eq!(signed.user.role, funmagic_sdk::types::UserRole::SuperAdmin);

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("stops within the grace period")
        .unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");

    // Second start on the same data dir: no new admin, no password printed.
    let mut child =
        server(&dir, &["serve", "--listen", "127.0.0.1:0"]).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("server output");
        assert!(!line.contains("password:"), "credentials are printed only on the first start");
        if line.contains("listening on") {
            break;
        }
    }
    child.kill().await.unwrap();
}

#[tokio::test]
async fn create_super_admin_and_openapi_subcommands() {
    let dir = TempDir::new("bin");
    let mut child = server(&dir, &["admin", "create-super-admin", "--email", "Boss@Example.com", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a long enough password\n").await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("super admin boss@example.com"));

    // A too-short password is refused with the reason.
    let mut child = server(&dir, &["admin", "create-super-admin", "--email", "x@example.com", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PASSWORD_TOO_SHORT"));

    // `openapi` needs no services and prints the committed spec.
    let out =
        std::process::Command::new(BIN).arg("openapi").env("DATABASE_URL", "postgres://nowhere:1/x").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), funmagic_api::http::spec_json());

    // A bad setting fails fast with exit code 2 and names it.
    let out =
        std::process::Command::new(BIN).args(["migrate"]).env("FUNMAGIC_LISTEN", "not-an-address").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FUNMAGIC_LISTEN"));
}

/// A `serve` process whose output (debug logs) is kept in memory.
struct Served {
    child: tokio::process::Child,
    url: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
    /// The first start's admin credentials, if it printed them.
    creds: Option<(String, String)>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts `serve` with debug logs kept in memory.
async fn serve_logged(dir: &TempDir) -> Served {
    let mut child = server(dir, &["serve", "--listen", "127.0.0.1:0"])
        .env("FUNMAGIC_LOG", "debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut readers = vec![];
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = log.lock().unwrap().clone();
        if let Some(rest) = text.split("listening on ").nth(1) {
            let url = rest.split_whitespace().next().unwrap().to_string();
            let field =
                |name: &str| text.lines().find_map(|l| l.trim().strip_prefix(name)).map(|v| v.trim().to_string());
            let creds = field("email:").zip(field("password:"));
            return Served { child, url, log, creds, readers };
        }
        assert!(tokio::time::Instant::now() < deadline, "no start: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM, then waits for the exit and for every line of output to be read.
async fn stop(mut served: Served) -> String {
    let pid = served.child.id().unwrap().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    tokio::time::timeout(Duration::from_secs(20), served.child.wait()).await.unwrap().unwrap();
    for reader in served.readers {
        reader.await.unwrap();
    }
    served.log.lock().unwrap().clone()
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(files_under(&path)) } else { out.push(path) }
    }
    out
}

/// A provider key never appears in plaintext in the logs (debug level) or in any file of
/// the data dir, also after a failing call whose answer quotes it; the master key file is
/// 0600; `admin rotate-master-key` re-encrypts and the server still uses the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_keys_stay_secret_and_the_master_key_rotates() {
    use funmagic_sdk::types;
    let fake = crate::fakes::start().await;
    let secret = "sk-live-TopSecretValue-0123456789";
    fake.script("GET /v1/models", vec![crate::fakes::Reply::json(200, serde_json::json!({ "data": [] }))]);
    fake.script(
        "POST /v1/images/generations",
        vec![crate::fakes::Reply::json(
            401,
            serde_json::json!({ "error": { "message": format!("Incorrect API key provided: {secret}") } }),
        )],
    );
    let dir = TempDir::new("bin-keys");
    let served = serve_logged(&dir).await;
    let url = served.url.clone();
    let (email, password) = served.creds.clone().expect("first start prints the admin");
    let anon = funmagic_sdk::ClientBuilder::new(&url).build().unwrap();
    let token = anon
        .auth_sign_in_email(&types::SignInRequest {
            email: email.clone().parse().unwrap(),
            password: password.clone().parse().unwrap(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let root = funmagic_sdk::ClientBuilder::new(&url).token(&token).build().unwrap();
    let provider = root
        .admin_provider_create(&types::ProviderCreate {
            name: "openai".parse().unwrap(),
            type_: types::ExternalProviderType::Openai,
            api_key: Some(secret.parse().unwrap()),
            base_url: Some(format!("{}/v1", fake.base).parse().unwrap()),
            is_active: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(root.admin_provider_test(&provider.id).await.unwrap().into_inner().healthy);
    let type_id = root.admin_tool_type_list().await.unwrap().into_inner().tool_types[0].id;
    root.admin_tool_create(&types::ToolInput {
        slug: "paint".parse().unwrap(),
        title: "Paint".parse().unwrap(),
        description: None,
        tool_type_id: type_id,
        config: serde_json::json!({ "steps": [{ "id": "main", "name": "Main", "type": "image-gen", "providerId": provider.id, "providerModel": "gpt-image-1", "cost": 0 }] }),
        is_active: None,
        featured: None,
        position: None,
    })
    .await
    .unwrap();
    let task = root
        .task_create(
            None,
            &types::TaskCreateRequest {
                tool_slug: "paint".parse().unwrap(),
                step_id: None,
                input: serde_json::json!({ "prompt": "a cat" }),
                parent_task_id: None,
                run_all_steps: None,
                webhook: None,
            },
        )
        .await
        .unwrap()
        .into_inner()
        .task;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let detail = loop {
        let d = root.task_get(&task.id).await.unwrap().into_inner();
        if d.task.status.to_string() == "failed" {
            break d;
        }
        assert!(tokio::time::Instant::now() < deadline, "{d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(detail.error.unwrap().contains("[key]"));
    let logged = stop(served).await;
    assert!(logged.contains(" DEBUG "), "debug logging was on:\n{logged}");
    assert!(!logged.contains("TopSecretValue"), "the key is in the log:\n{logged}");
    for file in files_under(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!bytes.windows(14).any(|w| w == b"TopSecretValue"), "plaintext key in {}", file.display());
    }
    let key_file = dir.path().join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let old_key = std::fs::read_to_string(&key_file).unwrap();

    let out = server(&dir, &["admin", "rotate-master-key"]).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("re-encrypted 1 provider key(s)"), "{said}");
    assert_ne!(std::fs::read_to_string(&key_file).unwrap(), old_key);

    let served = serve_logged(&dir).await;
    let url = served.url.clone();
    let anon = funmagic_sdk::ClientBuilder::new(&url).build().unwrap();
    let token = anon
        .auth_sign_in_email(&types::SignInRequest {
            email: email.parse().unwrap(),
            password: password.parse().unwrap(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let root = funmagic_sdk::ClientBuilder::new(&url).token(&token).build().unwrap();
    let listed = root.admin_provider_list().await.unwrap().into_inner();
    let rotated = listed.providers.iter().find(|p| p.id == provider.id).unwrap();
    assert_ne!(rotated.key_id, provider.key_id, "re-encrypted under the new key id");
    let tested = root.admin_provider_test(&provider.id).await.unwrap().into_inner();
    assert!(tested.healthy, "the new master key decrypts it: {tested:?}");
    let hit = fake.hits("GET /v1/models").pop().unwrap();
    assert_eq!(hit.authorization.unwrap(), format!("Bearer {secret}"));
    stop(served).await;
}

/// The access log (real binary, debug logs) redacts secrets in query strings and logs the
/// TCP peer, not a client-supplied `X-Real-IP` / `X-Forwarded-For`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_redacts_secrets_and_logs_the_real_peer() {
    let dir = TempDir::new("access-log");
    let served = serve_logged(&dir).await;
    let http = reqwest::Client::new();
    for path in [
        "/api/auth/verify-email?token=SECRET-TOKEN-4711&limit=5",
        "/files/private/x/y.png?expires=1&sig=SIGNATURE-4711",
    ] {
        http.get(format!("{}{path}", served.url))
            .header("X-Real-IP", "6.6.6.6")
            .header("X-Forwarded-For", "7.7.7.7")
            .header("X-Request-Id", "trace-4711-abc")
            .send()
            .await
            .unwrap();
    }
    let log = stop(served).await;
    // Every log line of a request carries its id (the `request` span).
    let line = log.lines().find(|l| l.contains("token=***&limit=5")).expect("the access log line");
    assert!(line.contains("request_id=trace-4711-abc"), "the request id is on the line: {line}");
    for secret in ["SECRET-TOKEN-4711", "SIGNATURE-4711", "6.6.6.6", "7.7.7.7"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(log.contains("token=***&limit=5"), "the redacted query is logged:\n{log}");
    assert!(log.contains("remote_addr=socket://127.0.0.1:"), "the peer is logged:\n{log}");
}
