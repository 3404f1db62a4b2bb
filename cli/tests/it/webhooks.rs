//! `funmagic webhooks …` and `funmagic admin webhooks` against a real server and a
//! receiver on loopback, on both backends.

use std::sync::{Arc, Mutex};

use funmagic_api::store::Role;
use funmagic_api::testing::{TempDir, TestApp};

use crate::{funmagic, stderr, stdout};

async fn run(app: &TestApp, cfg: &TempDir, token: &str, args: &[&str]) -> String {
    let url = app.base_url();
    let mut all = vec!["--api-url", url.as_str(), "--token", token];
    all.extend_from_slice(args);
    let out = funmagic(cfg, &all).await;
    assert!(
        out.status.success(),
        "{args:?}: exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// A receiver that answers 200 and keeps (webhook-id, body).
async fn receiver() -> (String, Arc<Mutex<Vec<(String, serde_json::Value)>>>) {
    use poem::listener::{Acceptor, Listener, TcpListener};
    let got: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let sink = got.clone();
    let endpoint = poem::endpoint::make(move |req: poem::Request| {
        let sink = sink.clone();
        async move {
            let id = req.headers().get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let body = req.into_body().into_vec().await.unwrap();
            sink.lock().unwrap().push((id, serde_json::from_slice(&body).unwrap()));
            "ok"
        }
    });
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    (format!("http://{addr}/hook"), got)
}

async fn webhooks_from_the_cli(app: TestApp) {
    let cfg = TempDir::new("cli-webhooks");
    let user = crate::signed_in(&app, "hooks-cli@example.com", Role::User, 10).await;
    let (url, got) = receiver().await;
    let secret =
        run(&app, &cfg, &user, &["webhooks", "add", &url, "--event", "task.succeeded", "--description", "ci"]).await;
    assert!(secret.trim().starts_with("whsec_"), "the secret is printed: {secret}");
    let list = run(&app, &cfg, &user, &["--json", "webhooks", "list"]).await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let id = list["endpoints"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(list["endpoints"][0]["events"], serde_json::json!(["task.succeeded"]));
    let table = run(&app, &cfg, &user, &["webhooks", "list"]).await;
    assert!(table.contains(&url) && table.contains("task.succeeded"), "{table}");

    run(&app, &cfg, &user, &["webhooks", "test", &id]).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while got.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no ping arrived");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (ping_id, ping) = got.lock().unwrap()[0].clone();
    assert_eq!(ping["type"], "ping");
    let deliveries = run(&app, &cfg, &user, &["--json", "webhooks", "deliveries", &id]).await;
    let deliveries: serde_json::Value = serde_json::from_str(&deliveries).unwrap();
    let delivery = deliveries["deliveries"][0].clone();
    assert_eq!(delivery["webhookId"], ping_id.as_str());
    run(&app, &cfg, &user, &["webhooks", "replay", delivery["id"].as_str().unwrap()]).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while got.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the replay did not arrive");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(got.lock().unwrap()[1].0, ping_id, "a replay is the same message");

    let rotated = run(&app, &cfg, &user, &["webhooks", "rotate", &id]).await;
    assert!(rotated.trim().starts_with("whsec_") && rotated.trim() != secret.trim());
    let low = run(&app, &cfg, &user, &["webhooks", "credits-low", "3"]).await;
    assert!(low.contains("below 3"), "{low}");
    let disabled = run(&app, &cfg, &user, &["webhooks", "disable", &id]).await;
    assert!(disabled.contains("disabled"), "{disabled}");

    let admin = crate::signed_in(&app, "hooks-admin@example.com", Role::Admin, 0).await;
    let overview = run(&app, &cfg, &admin, &["--json", "admin", "webhooks"]).await;
    let overview: serde_json::Value = serde_json::from_str(&overview).unwrap();
    assert!(
        overview["failingEndpoints"].as_array().unwrap().iter().any(|e| e["id"] == id.as_str()),
        "a disabled endpoint is listed: {overview}"
    );
    run(&app, &cfg, &user, &["webhooks", "rm", &id]).await;
    let list = run(&app, &cfg, &user, &["--json", "webhooks", "list"]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&list).unwrap()["endpoints"], serde_json::json!([]));
}

funmagic_api::test_both_backends!(webhooks_from_the_cli);
