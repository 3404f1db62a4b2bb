//! `funmagic status`, global flags, profiles, exit codes, completions.

use funmagic_api::testing::{TempDir, TestApp, TestBackend};

use crate::{funmagic, stderr, stdout};

funmagic_api::test_both_backends!(status_shows_every_dependency);

async fn status_shows_every_dependency(app: TestApp) {
    let cfg = TempDir::new("cli");
    // Anonymous: each check's status, no backends or details.
    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "status", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["status"], "ok");
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() == 3 && checks.iter().all(|c| c["status"] == "ok" && c.get("backend").is_none()), "{report}");
    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "status"]).await;
    assert!(stdout(&out).contains("admins only"), "{}", stdout(&out));

    // An admin sees what serves each concern.
    let token = crate::signed_in(&app, "root@example.com", funmagic_api::store::Role::Admin, 0).await;
    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "--token", &token, "status", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["status"], "ok");
    assert_eq!(report["apiUrl"], app.base_url());
    let backends: Vec<&str> =
        report["checks"].as_array().unwrap().iter().map(|c| c["backend"].as_str().unwrap()).collect();
    let expected = match app.backend {
        TestBackend::Embedded => ["sqlite", "embedded", "local"],
        TestBackend::ScaleOut => ["postgres", "redis", app.state().storage().kind()],
    };
    assert_eq!(backends, expected);

    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "--token", &token, "status"]).await;
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("DEPENDENCY") && text.contains("database") && text.contains(expected[0]), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour codes when stdout is not a terminal: {text:?}");
}

#[tokio::test]
async fn unhealthy_server_exits_1_with_the_report() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    app.state().store().close().await;
    let cfg = TempDir::new("cli");
    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "--json", "status"]).await;
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["status"], "error");
}

#[tokio::test]
async fn unreachable_server_is_one_clear_line() {
    let cfg = TempDir::new("cli");
    // A port that was just free: bind, read, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let out = funmagic(&cfg, &["--api-url", &url, "status"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "one line, not a stack of errors: {err}");
    assert!(err.contains("cannot reach the FunMagic server") && err.contains(&url), "{err}");

    let out = funmagic(&cfg, &["--api-url", &url, "--json", "status"]).await;
    assert!(stdout(&out).is_empty(), "errors never go to stdout");
    let body: serde_json::Value = serde_json::from_str(&stderr(&out)).unwrap();
    assert_eq!(body["code"], "UNREACHABLE");
    assert_eq!(body["exitCode"], 1);
}

#[tokio::test]
async fn profile_from_config_file_and_precedence() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let cfg = TempDir::new("cli");
    std::fs::write(
        cfg.path().join("config.toml"),
        format!(
            "[profiles.staging]\napi_url = \"{}\"\n\n[profiles.default]\napi_url = \"http://127.0.0.1:9\"\n",
            app.base_url()
        ),
    )
    .unwrap();
    let out = funmagic(&cfg, &["--profile", "staging", "--json", "status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The flag beats the profile.
    let out = funmagic(&cfg, &["--json", "status"]).await;
    assert_eq!(out.status.code(), Some(1), "default profile points nowhere");
    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "--json", "status"]).await;
    assert_eq!(out.status.code(), Some(0));
    // A broken config file is a usage error naming the file.
    std::fs::write(cfg.path().join("config.toml"), "[profiles.staging\n").unwrap();
    let out = funmagic(&cfg, &["status"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("config.toml"), "{}", stderr(&out));
}

#[tokio::test]
async fn usage_errors_exit_2_and_completions_print() {
    let cfg = TempDir::new("cli");
    let out = funmagic(&cfg, &["no-such-command"]).await;
    assert_eq!(out.status.code(), Some(2));
    for shell in ["bash", "zsh", "fish"] {
        let out = funmagic(&cfg, &["completions", shell]).await;
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).contains("funmagic"), "{shell} completion script");
    }
    let out = funmagic(&cfg, &["--help"]).await;
    assert!(stdout(&out).contains("6  insufficient credits"), "exit codes are documented in --help");
}

#[tokio::test]
async fn tools_list_and_show() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let cfg = TempDir::new("cli");
    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "tools", "list"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("figme") && text.contains("image-gen → 3d-gen") && text.contains("50"), "{text}");
    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "tools", "show", "figme"]).await;
    assert!(stdout(&out).contains("styles (--style): sketch, posterize, pixel-art, duotone"), "{}", stdout(&out));
    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "--json", "tools", "show", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty(), "errors never go to stdout");
    let err: serde_json::Value = serde_json::from_str(&stderr(&out)).unwrap();
    assert_eq!(err["code"], "NOT_FOUND");
    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "tools", "show", "figme", "--locale", "zh"]).await;
    assert!(stdout(&out).contains("FigMe 手办") && stdout(&out).contains("图像生成"), "{}", stdout(&out));
    let out = funmagic(&cfg, &["--api-url", &app.base_url(), "--json", "tools", "list", "--featured"]).await;
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let slugs: Vec<&str> = list["tools"].as_array().unwrap().iter().map(|t| t["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["figme", "background-remove"]);
}
