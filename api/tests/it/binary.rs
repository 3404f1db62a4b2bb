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
        .auth_sign_in_email(&funmagic_sdk::types::SignInRequest { email: email.unwrap(), password: password.unwrap() })
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
