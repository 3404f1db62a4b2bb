//! `funmagic run` and `funmagic tasks …` against a running server with in-process workers.

use funmagic_api::store::{Role, TxKind};
use funmagic_api::testing::{TempDir, TestApp, TestBackend};

use crate::{funmagic, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_watch_and_exit_codes() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let state = app.state();
    let hash = state.hasher().hash("correct horse battery").await.unwrap();
    let new = funmagic_api::store::NewUser {
        email: "ada@example.com".into(),
        name: "Ada".into(),
        role: Role::User,
        email_verified: true,
    };
    let user = state.store().user_create_with_password(&new, &hash).await.unwrap();
    let token =
        funmagic_api::auth::flows::create_session(state, user.clone(), &Default::default()).await.unwrap().token;
    state.store().credits_grant(user.id, TxKind::Bonus, 20, "seed", None).await.unwrap();
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

    // --json prints events as NDJSON, ending with the result.
    let out = cli(&["--json", "run", "echo", "--param", "n=2"]).await;
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
