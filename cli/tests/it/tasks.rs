//! `funmagic run` and `funmagic tasks …` against a running server with in-process workers.

use funmagic_api::store::Role;
use funmagic_api::testing::{TempDir, TestApp, TestBackend};

use crate::{funmagic, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_watch_and_exit_codes() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let token = crate::signed_in(&app, "ada@example.com", Role::User, 20).await;
    let cfg = TempDir::new("cli-run");
    let url = app.base_url();
    let cli = |args: &[&str]| {
        let mut all = vec!["--api-url".to_string(), url.clone(), "--token".to_string(), token.clone()];
        all.extend(args.iter().map(|s| s.to_string()));
        let cfg = &cfg;
        async move { funmagic(cfg, &all.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };

    let out = cli(&["run", "echo", "--param", "hello=world", "--param", "delayMs=300"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let output: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(output["hello"], "world");
    assert!(stderr(&out).contains("submitted") && stderr(&out).contains("completed"), "{}", stderr(&out));

    // --json prints events as NDJSON, ending with the result (progress is live: a task
    // that takes a while shows it).
    let out = cli(&["--json", "run", "echo", "--param", "n=2", "--param", "delayMs=300"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["type"], "submitted");
    assert_eq!(lines.last().unwrap()["type"], "completed");
    assert!(lines.iter().any(|l| l["type"] == "progress"));

    // --no-wait returns the id at once; watch re-attaches and replays.
    let out = cli(&["run", "echo", "--no-wait", "--param", "delayMs=200"]).await;
    let id = stdout(&out).trim().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let out = cli(&["--json", "tasks", "watch", &id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let kinds: Vec<String> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("connected"));
    assert_eq!(kinds.last().map(String::as_str), Some("completed"));
    let out = cli(&["--json", "tasks", "list", "--status", "completed"]).await;
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list["tasks"].as_array().unwrap().len(), 3);

    // A task that fails (its input file does not exist): exit 5 with the code; not enough
    // credits: exit 6.
    let out = cli(&["run", "background-remove", "--param", "imageStorageKey=nobody/uploads/missing.png"]).await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("NOT_FOUND"), "{}", stderr(&out));
    let out = cli(&["run", "crystal-memory", "--param", "imageStorageKey=nobody/uploads/missing.png"]).await;
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("INSUFFICIENT_CREDITS"));
    let out = cli(&["run", "echo", "--param", "oops"]).await;
    assert_eq!(out.status.code(), Some(2));
}

/// The seed's image tools on the offline provider, from the command line: each finishes and
/// its file lands in --output. And `admin providers` for a super admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_tools_and_providers_from_the_cli() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let token = crate::signed_in(&app, "root@example.com", Role::SuperAdmin, 100).await;
    let cfg = TempDir::new("cli-local");
    let photo = cfg.path().join("photo.png");
    std::fs::write(&photo, funmagic_api::testing::sample_png(200, 150)).unwrap();
    let out_dir = cfg.path().join("out");
    let url = app.base_url();
    let base = ["--api-url", url.as_str(), "--token", token.as_str()];
    let cli = |args: &[&str]| {
        let all: Vec<&str> = base.iter().copied().chain(args.iter().copied()).collect::<Vec<_>>();
        let all: Vec<String> = all.into_iter().map(str::to_string).collect();
        let cfg = &cfg;
        async move { funmagic(cfg, &all.iter().map(String::as_str).collect::<Vec<_>>()).await }
    };
    let photo_arg = photo.display().to_string();
    let out_arg = out_dir.display().to_string();
    let out = cli(&["run", "background-remove", &photo_arg, "--output", &out_arg]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cut = image::open(out_dir.join("photo-cutout.png")).unwrap().to_rgba8();
    assert_eq!((cut.get_pixel(0, 0)[3], cut.get_pixel(80, 67)[3]), (0, 255), "transparent background, opaque object");
    let out = cli(&["run", "crystal-memory", &photo_arg, "--output", &out_arg]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ply = std::fs::read(out_dir.join("photo-points.ply")).unwrap();
    assert!(String::from_utf8_lossy(&ply[..200]).contains("element vertex 30000"));
    // A URL is sent for the server to fetch, through its guard: an inside address is refused.
    let out = cli(&["run", "background-remove", "https://169.254.169.254/latest/meta-data/"]).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("IMAGE_URL_REFUSED"), "{}", stderr(&out));

    // Providers: add with the key on stdin, list (last 4 only), disable.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_funmagic"))
        .args(base)
        .args(["admin", "providers", "add", "fal-main", "--type", "fal", "--key-stdin"])
        .env("FUNMAGIC_CONFIG_DIR", cfg.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(child.stdin.as_mut().unwrap(), b"fal-secret-key-WXYZ\n").await.unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("fal-main (fal) …WXYZ active"), "{}", stdout(&out));
    let out = cli(&["admin", "providers", "list"]).await;
    assert!(stdout(&out).contains("…WXYZ") && !stdout(&out).contains("fal-secret"), "{}", stdout(&out));
    let out = cli(&["admin", "providers", "disable", "fal-main"]).await;
    assert!(stdout(&out).contains("disabled"), "{}", stdout(&out));
    let out = cli(&["admin", "providers", "test", "nope"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
