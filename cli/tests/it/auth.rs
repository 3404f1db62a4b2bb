//! `funmagic auth …` end to end against a running server.

use std::process::Stdio;

use funmagic_api::testing::{TempDir, TestApp, TestBackend};
use funmagic_sdk::types;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::{funmagic, stderr, stdout};

const PASSWORD: &str = "correct horse battery";

async fn sign_up(app: &TestApp, email: &str) -> String {
    let anon = funmagic_sdk::ClientBuilder::new(app.base_url()).build().unwrap();
    let body = types::SignUpRequest {
        name: "Ada".parse().unwrap(),
        email: email.parse().unwrap(),
        password: PASSWORD.parse().unwrap(),
    };
    anon.auth_sign_up_email(&body).await.unwrap().into_inner().token
}

/// Runs funmagic with `stdin` fed in.
async fn funmagic_stdin(cfg: &TempDir, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_funmagic"))
        .args(args)
        .env("FUNMAGIC_CONFIG_DIR", cfg.path())
        .env_remove("FUNMAGIC_TOKEN")
        .env_remove("FUNMAGIC_API_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).await.unwrap();
    child.wait_with_output().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_login_stores_a_private_token() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let session = sign_up(&app, "ada@example.com").await;
    let cfg = TempDir::new("cli-auth");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_funmagic"))
        .args(["--api-url", &app.base_url(), "auth", "login"])
        .env("FUNMAGIC_CONFIG_DIR", cfg.path())
        .env_remove("FUNMAGIC_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let code = loop {
        let line = lines.next_line().await.unwrap().expect("the CLI prints the code");
        if let Some(rest) = line.split("confirm the code ").nth(1) {
            assert!(line.contains("/device?user_code="), "{line}");
            break rest.trim().to_string();
        }
    };
    // The person approves in the browser (same API the page uses).
    let as_ada = funmagic_sdk::ClientBuilder::new(app.base_url()).token(&session).build().unwrap();
    as_ada
        .auth_device_approve(&types::DeviceApproveRequest { user_code: code.parse().unwrap(), approve: true })
        .await
        .unwrap();
    let out =
        tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("signed in") && stdout(&out).contains("ada@example.com"), "{}", stdout(&out));

    let file = cfg.path().join("config.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(stored.contains("fms_") && stored.contains(&app.base_url()), "token and URL stored: {stored}");

    // The stored profile is used without flags.
    let out = funmagic(&cfg, &["auth", "status", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let me: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(me["user"]["email"], "ada@example.com");

    // Keys: create prints the secret once, list never does.
    let out = funmagic(&cfg, &["auth", "keys", "create", "--name", "ci", "--scope", "read"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let key = stdout(&out).trim().to_string();
    assert!(key.starts_with("fmk_"));
    let out = funmagic(&cfg, &["auth", "keys", "list"]).await;
    assert!(stdout(&out).contains("ci") && !stdout(&out).contains(&key));
    let out = funmagic(&cfg, &["--token", &key, "auth", "status", "--json"]).await;
    let me: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(me["scope"], "read");
    let out = funmagic(&cfg, &["--token", &key, "auth", "keys", "create", "--name", "x"]).await;
    assert_eq!(out.status.code(), Some(4), "a read key cannot create keys: {}", stderr(&out));
    assert!(stderr(&out).contains("INSUFFICIENT_SCOPE"));

    // Logout ends the session and forgets it.
    let token = stored.lines().find(|l| l.starts_with("token")).unwrap().split('"').nth(1).unwrap().to_string();
    let out = funmagic(&cfg, &["auth", "logout"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = funmagic(&cfg, &["auth", "status"]).await;
    assert_eq!(out.status.code(), Some(4));
    let out = funmagic(&cfg, &["--token", &token, "auth", "status"]).await;
    assert_eq!(out.status.code(), Some(4), "the old session is revoked on the server");
}

#[tokio::test]
async fn email_and_token_logins() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let session = sign_up(&app, "bob@example.com").await;
    let cfg = TempDir::new("cli-auth");
    let url = app.base_url();
    let out = funmagic_stdin(
        &cfg,
        &["--api-url", &url, "auth", "login", "--email", "bob@example.com", "--password-stdin"],
        "wrong password\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("INVALID_CREDENTIALS"));
    let out = funmagic_stdin(
        &cfg,
        &["--api-url", &url, "auth", "login", "--email", "bob@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Without a terminal and without --password-stdin there is no prompt: usage error.
    let out = funmagic(&cfg, &["--api-url", &url, "auth", "login", "--email", "bob@example.com"]).await;
    assert_eq!(out.status.code(), Some(2));
    // --with-token checks the token before storing it.
    let other = TempDir::new("cli-auth");
    let out = funmagic_stdin(
        &other,
        &["--api-url", &url, "--profile", "work", "auth", "login", "--with-token"],
        "fms_bogus\n",
    )
    .await;
    assert_eq!(out.status.code(), Some(4));
    assert!(!other.path().join("config.toml").exists());
    let out = funmagic_stdin(
        &other,
        &["--api-url", &url, "--profile", "work", "auth", "login", "--with-token"],
        &format!("{session}\n"),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = funmagic(&other, &["--profile", "work", "auth", "status"]).await;
    assert!(stdout(&out).contains("bob@example.com"));
    // Sign-up through the CLI.
    let third = TempDir::new("cli-auth");
    let out = funmagic_stdin(
        &third,
        &["--api-url", &url, "auth", "signup", "--email", "cy@example.com", "--name", "Cy", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = funmagic(&third, &["auth", "status", "--json"]).await;
    let me: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(me["user"]["email"], "cy@example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_profile() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let browser = sign_up(&app, "dee@example.com").await;
    let cfg = TempDir::new("cli-auth");
    let url = app.base_url();
    let out = funmagic_stdin(
        &cfg,
        &["--api-url", &url, "auth", "login", "--email", "dee@example.com", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = funmagic(&cfg, &["auth", "sessions", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "the sign-up's and the CLI's");
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_string();
    let table = stdout(&funmagic(&cfg, &["auth", "sessions"]).await);
    assert!(table.contains("current") && table.contains(&other), "{table}");

    let out = funmagic(&cfg, &["auth", "sessions", "rm", &other]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let anon = funmagic_sdk::ClientBuilder::new(app.base_url()).token(&browser).build().unwrap();
    assert!(anon.auth_session_get().await.is_err(), "the browser's session ended");
    let out = funmagic(&cfg, &["auth", "sessions", "rm", &other]).await;
    assert_eq!(out.status.code(), Some(1), "already gone: {}", stderr(&out));
    assert!(stderr(&out).contains("NOT_FOUND"));

    let out = funmagic(&cfg, &["auth", "profile", "--name", "Dee Dee", "--image", "https://img.example/d.png"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Dee Dee") && stdout(&out).contains("https://img.example/d.png"));
    let out = funmagic(&cfg, &["auth", "profile", "--remove-image", "--json"]).await;
    let me: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((me["name"].as_str(), me.get("image")), (Some("Dee Dee"), None));

    // A file becomes the picture: uploaded, published, its public URL kept.
    let photo = cfg.path().join("me.png");
    let png = funmagic_api::testing::sample_png(24, 24);
    std::fs::write(&photo, &png).unwrap();
    let out = funmagic(&cfg, &["auth", "profile", "--image", photo.to_str().unwrap(), "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let me: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let picture = me["image"].as_str().expect("a picture").to_string();
    assert_eq!(reqwest::get(&picture).await.unwrap().bytes().await.unwrap().to_vec(), png);
    let out = funmagic(&cfg, &["auth", "profile", "--image", "/no/such/file.png"]).await;
    assert_eq!(out.status.code(), Some(2), "a usage error: {}", stderr(&out));

    // Deleting the account: asks for --yes, checks the password, forgets the token.
    let out = funmagic(&cfg, &["auth", "delete-account", "--password-stdin"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"));
    let out = funmagic_stdin(&cfg, &["auth", "delete-account", "--yes", "--password-stdin"], "wrong password\n").await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let out =
        funmagic_stdin(&cfg, &["auth", "delete-account", "--yes", "--password-stdin"], &format!("{PASSWORD}\n")).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = funmagic(&cfg, &["auth", "status"]).await;
    assert_ne!(out.status.code(), Some(0), "signed out: {}", stdout(&out));
    let sign_in = funmagic_sdk::types::SignInRequest {
        email: "dee@example.com".parse().unwrap(),
        password: PASSWORD.parse().unwrap(),
    };
    let anon = funmagic_sdk::ClientBuilder::new(app.base_url()).build().unwrap();
    assert!(anon.auth_sign_in_email(&sign_in).await.is_err(), "the account is gone");
}
