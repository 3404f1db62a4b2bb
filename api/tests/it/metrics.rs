//! `/metrics` on its own listener after real requests and a real task run: it parses as
//! Prometheus text, the counters and histograms move with the right labels, and no label
//! takes an id. Request ids: on every response, honoured when sane, in JSON error bodies.

use funmagic_api::testing::TestApp;
use serde_json::json;

use crate::{client_as, echo, funded};

/// One sample: its family's name, its labels and its value (a histogram's count).
struct Sample {
    family: String,
    labels: Vec<(String, String)>,
    value: f64,
}

async fn scrape(addr: std::net::SocketAddr) -> Vec<Sample> {
    use openmetrics_parser::PrometheusValue;
    let body = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    let exposition = openmetrics_parser::prometheus::parse_prometheus(&body)
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e:?}\n{body}"));
    let mut samples = Vec::new();
    for (name, family) in &exposition.families {
        for sample in family.iter_samples() {
            let labels = sample
                .get_labelset()
                .map(|set| set.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default();
            let value = match &sample.value {
                PrometheusValue::Unknown(n) | PrometheusValue::Gauge(n) => n.as_f64(),
                PrometheusValue::Counter(c) => c.value.as_f64(),
                PrometheusValue::Histogram(h) => h.count.unwrap_or(0) as f64,
                PrometheusValue::Summary(_) => 0.0,
            };
            samples.push(Sample { family: name.clone(), labels, value });
        }
    }
    samples
}

/// The sum of a family's samples whose labels include `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.family == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v)))
        .map(|s| s.value)
        .sum()
}

fn has(samples: &[Sample], name: &str, label: (&str, &str)) -> bool {
    samples.iter().any(|s| s.family == name && s.labels.iter().any(|(k, v)| k == label.0 && v == label.1))
}

async fn metrics_move_with_a_real_task_and_never_label_ids(app: TestApp) {
    let addr = funmagic_api::telemetry::serve(app.state().clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let before = scrape(addr).await;
    let user = funded(&app, "metrics@example.com", 10).await;
    let client = client_as(&app, &user.token);
    let (task, last) = funmagic_sdk::events::run_and_wait(&client, &echo(json!({ "hi": 1 })), |_| {}).await.unwrap();
    assert_eq!(last.kind, funmagic_sdk::types::EventKind::Completed);
    client.task_get(&task.id).await.unwrap();
    let after = scrape(addr).await;

    let moved = |name: &str, labels: &[(&str, &str)]| total(&after, name, labels) - total(&before, name, labels);
    assert!(moved("funmagic_tasks_submitted_total", &[("tool", "echo")]) >= 1.0);
    assert!(moved("funmagic_tasks_finished_total", &[("tool", "echo"), ("status", "completed")]) >= 1.0);
    assert!(moved("funmagic_task_run_seconds", &[("tool", "echo"), ("provider", "local"), ("outcome", "ok")]) >= 1.0);
    assert!(moved("funmagic_provider_requests_total", &[("provider", "local"), ("outcome", "ok")]) >= 1.0);
    assert!(moved("funmagic_task_queue_wait_seconds", &[]) >= 1.0);
    assert!(moved("funmagic_credits_total", &[("type", "reserved")]) >= 1.0);
    assert!(moved("funmagic_credits_total", &[("type", "spent")]) >= 1.0);
    assert!(
        moved(
            "http_server_request_duration_seconds",
            &[("http_request_method", "GET"), ("http_route", "/api/tasks/{id}"), ("http_response_status_code", "200")]
        ) >= 1.0,
        "a route template, never the raw path"
    );
    assert!(
        moved("http_server_request_duration_seconds", &[("http_route", "/api/tasks"), ("http_request_method", "POST")])
            >= 1.0
    );
    for state in ["waiting", "running", "delayed", "dead"] {
        assert!(has(&after, "funmagic_task_queue_depth", ("state", state)), "{state}");
    }
    assert!(has(&after, "funmagic_db_pool_connections", ("state", "idle")));
    assert!(moved("funmagic_provider_request_seconds", &[("provider", "local")]) >= 1.0);
    assert!(after.iter().any(|s| s.family == "funmagic_sse_streams_open"), "the followed stream was counted");
    assert!(after.iter().any(|s| s.family == "http_server_active_requests"));
    // /metrics is on its own listener only, never on the public one.
    let public = reqwest::get(format!("{}/metrics", app.base_url())).await.unwrap();
    assert_eq!(public.status(), 404);

    // Scale-out: a worker's blocking queue reader that Redis drops is opened again, counted,
    // and the next task runs.
    if let Some(redis) = app.state().redis() {
        for connection in funmagic_api::telemetry::REDIS_CONNECTIONS {
            assert!(has(&after, "funmagic_redis_reconnects_total", ("connection", connection)), "{connection}");
        }
        let name = funmagic_api::redis_conn::blocking_name(redis);
        let admin = redis::Client::open(funmagic_api::testing::redis_url()).unwrap();
        let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
        let clients: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut admin).await.unwrap();
        let ids: Vec<&str> = clients
            .lines()
            .filter(|l| l.split(' ').any(|kv| kv == format!("name={name}")))
            .filter_map(|l| l.split(' ').find_map(|kv| kv.strip_prefix("id=")))
            .collect();
        assert!(!ids.is_empty(), "the workers' blocking readers are named {name}: {clients}");
        for id in ids {
            let _: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query_async(&mut admin).await.unwrap();
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let now = scrape(addr).await;
            if total(&now, "funmagic_redis_reconnects_total", &[("connection", "queue")])
                > total(&after, "funmagic_redis_reconnects_total", &[("connection", "queue")])
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no reconnect counted");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (_, last) = funmagic_sdk::events::run_and_wait(&client, &echo(json!({ "hi": 2 })), |_| {}).await.unwrap();
        assert_eq!(last.kind, funmagic_sdk::types::EventKind::Completed);
    }
    assert!(
        after.iter().any(|s| s.family == "funmagic_credits_invariant_violations"),
        "the ledger check ran with the first scrape"
    );
    // No label value is an id (a UUID, with or without dashes).
    let id_like = regex::Regex::new(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}").unwrap();
    assert!(after.len() > 10, "the scrape has samples: {}", after.len());
    for s in &after {
        for (k, v) in &s.labels {
            assert!(!id_like.is_match(v), "{} has an id in its label {k}={v}", s.family);
        }
    }
}

async fn every_response_carries_a_request_id(app: TestApp) {
    let http = reqwest::Client::new();
    let resp = http.get(format!("{}/api/tools", app.base_url())).send().await.unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "a fresh id: {id}");
    // A sane incoming id is kept; it is also in a JSON error body.
    let resp = http
        .get(format!("{}/api/tasks/not-a-uuid", app.base_url()))
        .header("x-request-id", "client-trace.42:abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-trace.42:abc");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["requestId"], "client-trace.42:abc", "{body}");
    // Anything else is replaced (a log line cannot be forged through it).
    let resp = http
        .get(format!("{}/api/nope", app.base_url()))
        .header("x-request-id", "evil\" injected=1")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id, "evil\" injected=1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["requestId"], id.as_str());
    assert_eq!(body["code"], "NOT_FOUND");
}

/// The ledger check behind `funmagic_credits_invariant_violations`: 0 on a ledger that holds
/// (after grants, a task's reservation and its settlement), more once a balance changes
/// behind the ledger's back.
async fn the_ledger_check_finds_a_balance_no_transaction_explains(app: TestApp) {
    let user = funded(&app, "ledger@example.com", 10).await;
    let client = client_as(&app, &user.token);
    let (_, last) = funmagic_sdk::events::run_and_wait(&client, &echo(json!({ "n": 1 })), |_| {}).await.unwrap();
    assert_eq!(last.kind, funmagic_sdk::types::EventKind::Completed);
    assert_eq!(funmagic_api::telemetry::check_ledger(app.state()).await, Some(0));
    let sql = "UPDATE credits SET balance = balance + 5, lifetime_earned = lifetime_earned + 5 WHERE user_id = $1";
    match app.state().store() {
        funmagic_api::store::Store::Postgres(s) => sqlx::query(sql).bind(user.id).execute(s.pool()).await.map(|_| ()),
        funmagic_api::store::Store::Sqlite(s) => sqlx::query(sql).bind(user.id).execute(s.pool()).await.map(|_| ()),
    }
    .unwrap();
    assert_eq!(
        funmagic_api::telemetry::check_ledger(app.state()).await,
        Some(1),
        "transaction amounts no longer add up to the balances"
    );
    let per_account = app.state().store().credits_invariant_violations(user.id).await.unwrap();
    assert!(!per_account.is_empty(), "the per-account check agrees");
}

funmagic_api::test_both_backends!(
    metrics_move_with_a_real_task_and_never_label_ids,
    every_response_carries_a_request_id,
    the_ledger_check_finds_a_balance_no_transaction_explains
);

/// The alert rules and the Grafana dashboard in `deploy/` name only metrics the code emits
/// (those `meter.rs` describes, with a histogram's `_bucket`/`_count`/`_sum` series).
#[test]
fn alert_rules_and_dashboard_use_emitted_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let telemetry = std::fs::read_to_string(root.join("api/src/meter.rs")).unwrap();
    let described = regex::Regex::new(r#"describe_(counter|gauge|histogram)!\(\s*"([a-z_]+)""#).unwrap();
    let mut emitted = std::collections::HashSet::new();
    for c in described.captures_iter(&telemetry) {
        let name = c[2].to_string();
        if &c[1] == "histogram" {
            for suffix in ["_bucket", "_count", "_sum"] {
                emitted.insert(format!("{name}{suffix}"));
            }
        }
        emitted.insert(name);
    }
    assert!(emitted.len() > 15, "the described metrics were read: {emitted:?}");
    let used = regex::Regex::new(r"\b((?:funmagic|http_server)_[a-z_]+)\b").unwrap();
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("deploy/grafana/funmagic-dashboard.json")).unwrap())
            .unwrap();
    let mut exprs: Vec<String> = alerts
        .split("expr:")
        .skip(1)
        .map(|rest| rest.split("\n        for:").next().unwrap().split("\n        labels:").next().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 6, "the alert rules were read");
    let panels = dashboard["panels"].as_array().unwrap();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    assert!(panels.len() >= 8, "the dashboard's panels were read");
    let mut names_used = std::collections::HashSet::new();
    for expr in &exprs {
        let mut found = false;
        for c in used.captures_iter(expr) {
            found = true;
            assert!(emitted.contains(&c[1]), "`{}` is not a metric the code emits (in: {expr})", &c[1]);
            names_used.insert(c[1].to_string());
        }
        assert!(found, "an expression without a FunMagic metric: {expr}");
        assert_eq!(expr.matches('(').count(), expr.matches(')').count(), "unbalanced parentheses: {expr}");
    }
    // Every metric family shows up somewhere for an operator.
    for name in emitted.iter().filter(|n| !n.ends_with("_bucket") && !n.ends_with("_sum") && !n.ends_with("_count")) {
        let shown = names_used.iter().any(|u| u.starts_with(name.as_str()));
        assert!(shown, "{name} is on no dashboard panel and in no alert");
    }
}
