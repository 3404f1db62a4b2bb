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

/// `funmagic webhooks listen --forward-to URL` relays a task's events to a local URL, signed
/// with the secret it prints; a failed answer is retried; Ctrl-C removes the relay.
async fn listen_forwards_events_to_a_local_url(app: TestApp) {
    use poem::listener::{Acceptor, Listener, TcpListener};
    use tokio::io::AsyncBufReadExt;
    let cfg = TempDir::new("cli-listen");
    let user = crate::signed_in(&app, "listen-cli@example.com", Role::User, 10).await;
    // The local app: answers 503 to the first request, then 200; keeps every request.
    type Seen = (String, String, String, Vec<u8>, u16);
    let got: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let sink = got.clone();
    let endpoint = poem::endpoint::make(move |req: poem::Request| {
        let sink = sink.clone();
        async move {
            let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let (id, ts, sig) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
            let body = req.into_body().into_vec().await.unwrap();
            let mut sink = sink.lock().unwrap();
            let status = if sink.is_empty() { 503 } else { 200 };
            sink.push((id, ts, sig, body, status));
            poem::Response::builder().status(poem::http::StatusCode::from_u16(status).unwrap()).body("local")
        }
    });
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    let forward_to = format!("http://{addr}/hook");

    let url = app.base_url();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_funmagic"));
    cmd.args(["--api-url", url.as_str(), "--token", &user, "webhooks", "listen", "--forward-to", &forward_to])
        .args(["--event", "task.queued", "--event", "task.succeeded"])
        .env("FUNMAGIC_CONFIG_DIR", cfg.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let secret =
        tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(secret.starts_with("whsec_"), "the secret comes first: {secret}");
    let printed: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = printed.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            keep.lock().unwrap().push(line);
        }
    });
    let list = run(&app, &cfg, &user, &["--json", "webhooks", "list"]).await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["endpoints"][0]["relay"], true, "{list}");
    assert_eq!(list["endpoints"][0]["url"], format!("relay:{forward_to}"));
    let relay = list["endpoints"][0]["id"].as_str().unwrap().to_string();

    let client = funmagic_sdk::ClientBuilder::new(&url).token(&user).build().unwrap();
    let request: funmagic_sdk::types::TaskCreateRequest =
        serde_json::from_value(serde_json::json!({ "toolSlug": "echo", "input": { "listen": 1 } })).unwrap();
    let (task, _) = funmagic_sdk::events::run_and_wait(&client, &request, |_| {}).await.unwrap();
    // The first forward was answered 503: once recorded, move the server's clock past the
    // 5 s retry wait.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut moved = false;
    loop {
        let seen = got.lock().unwrap().clone();
        let ok: Vec<&Seen> = seen.iter().filter(|s| s.4 == 200).collect();
        if ok.len() == 2 && seen.len() == 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "forwarded so far: {:?}",
            seen.iter().map(|s| (&s.0, s.4)).collect::<Vec<_>>()
        );
        if !moved && !seen.is_empty() {
            let log = client.webhook_delivery_list(&relay.parse().unwrap(), None, None).await.unwrap().into_inner();
            if log.deliveries.iter().any(|d| d.attempt_log.iter().any(|a| a.status_code == Some(503))) {
                app.advance_clock(std::time::Duration::from_secs(10));
                moved = true;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen = got.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|s| s.0 == seen[0].0).count(), 2, "the 503'd event came again, same id");
    let mut types_ok = Vec::new();
    for (id, ts, sig, body, status) in &seen {
        let t: i64 = ts.parse().unwrap();
        funmagic_sdk::webhooks::verify_parts(&secret, id, ts, sig, body, t).expect("signed with the printed secret");
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json["data"]["taskId"], task.id.to_string());
        if *status == 200 {
            types_ok.push(json["type"].as_str().unwrap().to_string());
        }
    }
    types_ok.sort();
    assert_eq!(types_ok, ["task.queued", "task.succeeded"]);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while printed.lock().unwrap().len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "printed: {:?}", printed.lock().unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let out = printed.lock().unwrap().join("\n");
    assert!(out.contains("task.succeeded") && out.contains(" 503 ") && out.contains(" 200 "), "{out}");

    // Ctrl-C: the listener stops and takes its relay with it.
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
    let list = run(&app, &cfg, &user, &["--json", "webhooks", "list"]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&list).unwrap()["endpoints"], serde_json::json!([]));
}

/// Ctrl-C while the local app is still answering a forwarded event ends the listener at once
/// and removes its relay. (It used to stop only that batch and go back to pulling; and a
/// Ctrl-C between two waits was lost, so a CI run saw `listen` ignore it.)
async fn listen_stops_on_ctrl_c_mid_forward(app: TestApp) {
    use poem::listener::{Acceptor, Listener, TcpListener};
    use tokio::io::AsyncBufReadExt;
    let cfg = TempDir::new("cli-listen-stop");
    let user = crate::signed_in(&app, "listen-stop@example.com", Role::User, 10).await;
    // The local app takes the request and never answers.
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = hits.clone();
    let endpoint = poem::endpoint::make(move |_req: poem::Request| {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            poem::Response::builder().body("late")
        }
    });
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    let forward_to = format!("http://{addr}/hook");
    let url = app.base_url();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_funmagic"))
        .args(["--api-url", url.as_str(), "--token", &user, "webhooks", "listen", "--forward-to", &forward_to])
        .args(["--event", "task.queued", "--timeout", "60"])
        .env("FUNMAGIC_CONFIG_DIR", cfg.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let secret =
        tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let client = funmagic_sdk::ClientBuilder::new(&url).token(&user).build().unwrap();
    let request: funmagic_sdk::types::TaskCreateRequest =
        serde_json::from_value(serde_json::json!({ "toolSlug": "echo", "input": { "stop": 1 } })).unwrap();
    client.task_create(None, &request).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while hits.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the event was never forwarded");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("Ctrl-C mid-forward ends the listener")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let list = run(&app, &cfg, &user, &["--json", "webhooks", "list"]).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&list).unwrap()["endpoints"], serde_json::json!([]));
}

funmagic_api::test_both_backends!(
    webhooks_from_the_cli,
    listen_forwards_events_to_a_local_url,
    listen_stops_on_ctrl_c_mid_forward
);
