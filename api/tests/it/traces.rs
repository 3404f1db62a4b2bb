//! Traces across processes: an API process and a separate worker process export spans over
//! OTLP/HTTP to a collector written here (it decodes the exporter's protobuf). One task,
//! submitted with a caller's `traceparent`, must show as one trace: the API's server span
//! under the caller's span, and the worker's claim, run, step, provider request and
//! settlement spans under it; the provider receives the request span's `traceparent`.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use funmagic_api::app::{AppState, Migrations};
use funmagic_api::config::SettingsLayer;
use funmagic_api::store::{NewUser, Role, TransactionType};
use funmagic_api::testing::{TempDir, TestDatabase, TestRedisPrefix};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

use crate::fakes::{self, Reply};
use crate::scale::{command, seed_fal_tool, start_api_with};

/// One received span, flattened.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    /// OTLP's `SpanKind`: 2 server, 3 client, 5 consumer.
    kind: i32,
    attributes: HashMap<String, String>,
    error: bool,
}

fn text(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => s.clone(),
                AnyValue::IntValue(i) => i.to_string(),
                AnyValue::BoolValue(b) => b.to_string(),
                AnyValue::DoubleValue(d) => d.to_string(),
                other => format!("{other:?}"),
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

/// An OTLP/HTTP collector on loopback (`POST /v1/traces`, protobuf); returns its base URL
/// and what it received.
async fn collector() -> (String, Arc<Mutex<Vec<Received>>>) {
    use poem::listener::{Acceptor, Listener, TcpListener};
    let spans: Arc<Mutex<Vec<Received>>> = Arc::default();
    let sink = spans.clone();
    let endpoint = poem::endpoint::make(move |req: poem::Request| {
        let sink = sink.clone();
        async move {
            assert_eq!(req.uri().path(), "/v1/traces");
            let body = req.into_body().into_bytes().await.unwrap();
            let export = ExportTraceServiceRequest::decode(body).expect("the exporter sends OTLP protobuf");
            let mut sink = sink.lock().unwrap();
            for resource in export.resource_spans {
                let attributes = text(&resource.resource.map(|r| r.attributes).unwrap_or_default());
                let service = attributes.get("service.name").cloned().unwrap_or_default();
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        sink.push(Received {
                            service: service.clone(),
                            trace_id: hex::encode(&span.trace_id),
                            span_id: hex::encode(&span.span_id),
                            parent: hex::encode(&span.parent_span_id),
                            name: span.name.clone(),
                            kind: span.kind,
                            attributes: text(&span.attributes),
                            error: span.status.is_some_and(|s| s.code == 2),
                        });
                    }
                }
            }
            poem::Response::builder()
                .content_type("application/x-protobuf")
                .body(ExportTraceServiceResponse::default().encode_to_vec())
        }
    });
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    (format!("http://{addr}"), spans)
}

/// The environment that makes a process export its spans to the collector at `url`.
fn otel_env(cmd: &mut tokio::process::Command, url: &str) {
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("FUNMAGIC_PROVIDER_POLL_MS", "50")
        // Logs at info: the access log's span (not exported) then sits between the
        // server span and the handler, as in a default deployment.
        .env("FUNMAGIC_LOG", "info")
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env_remove("OTEL_SDK_DISABLED");
}

/// An API process and a separate worker process, both exporting to the collector at
/// `collector_url`; returns them (killed on drop) and the API's base URL.
async fn start_traced(
    dir: &TempDir,
    db: &TestDatabase,
    redis: &TestRedisPrefix,
    collector_url: &str,
) -> ([tokio::process::Child; 2], String) {
    let otel = |cmd: &mut tokio::process::Command| otel_env(cmd, collector_url);
    let (api, url) = start_api_with(dir, db, redis, otel).await;
    let mut worker = command(dir, db, redis, &["worker", "--concurrency", "2"]);
    otel(&mut worker);
    let worker = worker.stderr(Stdio::null()).spawn().unwrap();
    ([api, worker], url)
}

/// Submits `body` with a caller's `traceparent` and waits until the task completes;
/// returns the trace id, the caller's span id and the task id.
async fn submit_traced(url: &str, token: &str, body: serde_json::Value) -> (String, String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    let resp = reqwest::Client::new()
        .post(format!("{url}/api/tasks"))
        .bearer_auth(token)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    let task_id: serde_json::Value = resp.json().await.unwrap();
    let task_id = task_id["task"]["id"].as_str().unwrap().to_string();
    let client = funmagic_sdk::ClientBuilder::new(url).token(token).build().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = client.task_get(&task_id.parse().unwrap()).await.unwrap().into_inner();
        if d.task.status.to_string() == "completed" {
            break;
        }
        assert!(d.task.status.to_string() != "failed", "{d:?}");
        assert!(tokio::time::Instant::now() < deadline, "the task did not complete: {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (trace_id, caller_span, task_id)
}

/// The spans of `trace_id` once every name in `wanted` and at least `clients` client spans
/// have arrived (batches leave every 100 ms).
async fn trace_spans(
    received: &Mutex<Vec<Received>>,
    trace_id: &str,
    wanted: &[&str],
    clients: usize,
) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let spans: Vec<Received> =
            received.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect();
        let complete = wanted.iter().all(|w| spans.iter().any(|s| s.name == *w))
            && spans.iter().filter(|s| s.kind == 3).count() >= clients;
        if complete {
            return spans;
        }
        assert!(tokio::time::Instant::now() < deadline, "spans of the trace so far: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The span tree under `root`, one line per span, indented by depth.
fn tree(spans: &[Received], root: &str) -> Vec<String> {
    fn walk(spans: &[Received], parent: &str, depth: usize, lines: &mut Vec<String>) {
        for s in spans.iter().filter(|s| s.parent == parent) {
            lines.push(format!("{}{} [{}]", "  ".repeat(depth), s.name, s.service));
            walk(spans, &s.span_id, depth + 1, lines);
        }
    }
    let mut lines = Vec::new();
    walk(spans, root, 0, &mut lines);
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_is_one_trace_across_the_api_and_worker_processes() {
    let (Some(db), Some(redis)) = (TestDatabase::create().await, TestRedisPrefix::create().await) else { return };
    let dir = TempDir::new("traces");
    let mut layer = SettingsLayer { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    layer.database.url = Some(db.url.clone().into());
    layer.redis.url = Some(funmagic_api::testing::redis_url().into());
    layer.redis.prefix = Some(redis.prefix.clone());
    let state = AppState::build(layer.resolve().unwrap(), Migrations::Apply).await.unwrap();
    let fake = fakes::start().await;
    seed_fal_tool(&state, &fake, "cutout").await;
    let user = state
        .store()
        .user_create(&NewUser {
            email: "trace@example.com".into(),
            name: "T".into(),
            role: Role::User,
            email_verified: true,
        })
        .await
        .unwrap();
    state.store().credits_grant(user.id, TransactionType::Purchase, 20, "cs_t", None).await.unwrap();
    let token =
        funmagic_api::accounts::flows::create_session(&state, user.clone(), &Default::default()).await.unwrap().token;
    let png = funmagic_api::testing::sample_png(24, 24);
    fake.script("GET /files/in.png", vec![Reply::bytes("image/png", png.clone())]);
    fake.script("GET /files/out.png", vec![Reply::bytes("image/png", png)]);
    fake.script("POST /fal-ai/birefnet", vec![Reply::json(200, serde_json::json!({ "request_id": "req-t" }))]);
    fake.script(
        "GET /fal-ai/birefnet/requests/req-t/status",
        vec![Reply::json(200, serde_json::json!({ "status": "COMPLETED" }))],
    );
    fake.script(
        "GET /fal-ai/birefnet/requests/req-t",
        vec![Reply::json(200, serde_json::json!({ "image": { "url": format!("{}/files/out.png", fake.base) } }))],
    );

    let (collector_url, received) = collector().await;
    let (_processes, url) = start_traced(&dir, &db, &redis, &collector_url).await;

    // The caller's own span: the API's server span must be its child.
    let body =
        serde_json::json!({ "toolSlug": "cutout", "input": { "imageUrl": format!("{}/files/in.png", fake.base) } });
    let (trace_id, caller_span, task_id) = submit_traced(&url, &token, body).await;
    let caller_span = caller_span.as_str();

    // Every span of the run reaches the collector.
    let wanted = ["POST /api/tasks", "claim task", "run task", "step cut", "settle task"];
    let spans = trace_spans(&received, &trace_id, &wanted, 3).await;
    let one = |name: &str| -> &Received {
        let found: Vec<&Received> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one '{name}' span: {spans:#?}");
        found[0]
    };
    let server = one("POST /api/tasks");
    assert_eq!(server.service, "funmagic-api");
    assert_eq!(server.kind, 2, "a server span");
    assert_eq!(server.parent, caller_span, "the incoming traceparent is honoured");
    assert_eq!(server.attributes.get("http.route").map(String::as_str), Some("/api/tasks"));
    assert_eq!(server.attributes.get("http.request.method").map(String::as_str), Some("POST"));
    assert_eq!(server.attributes.get("http.response.status_code").map(String::as_str), Some("201"));
    assert_eq!(server.attributes.get("url.path").map(String::as_str), Some("/api/tasks"));

    let run = one("run task");
    assert_eq!(run.service, "funmagic-worker", "the run is traced by the other process");
    assert_eq!(run.kind, 5, "a consumer span");
    assert_eq!(run.parent, server.span_id, "the run continues the submitting request's trace: {spans:#?}");
    assert_eq!(run.attributes.get("task_id"), Some(&task_id));
    let claim = one("claim task");
    assert_eq!((claim.service.as_str(), claim.parent.as_str()), ("funmagic-worker", server.span_id.as_str()));
    let step = one("step cut");
    assert_eq!(step.parent, run.span_id);
    let settle = one("settle task");
    assert_eq!(settle.parent, run.span_id);
    assert_eq!(settle.attributes.get("task.status").map(String::as_str), Some("completed"));
    assert!(spans.iter().all(|s| !s.error), "nothing failed: {spans:#?}");

    // Provider requests: client spans under the step, each announced to the provider.
    let requests: Vec<&Received> = spans.iter().filter(|s| s.kind == 3).collect();
    assert!(requests.iter().all(|s| s.parent == step.span_id && s.service == "funmagic-worker"), "{requests:#?}");
    assert!(requests.iter().all(|s| s.attributes.get("provider").is_some_and(|p| !p.is_empty())));
    let submit = requests
        .iter()
        .find(|s| s.name == "POST" && s.attributes.get("url.path").map(String::as_str) == Some("/fal-ai/birefnet"))
        .unwrap_or_else(|| panic!("the submit to fal.ai is a client span: {requests:#?}"));
    assert_eq!(submit.attributes.get("http.response.status_code").map(String::as_str), Some("200"));
    let hits = fake.hits("POST /fal-ai/birefnet");
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].traceparent.as_deref(),
        Some(format!("00-{trace_id}-{}-01", submit.span_id).as_str()),
        "the provider gets the request span's traceparent"
    );
    // The image given by URL is fetched by the API, not a provider request of the worker.
    assert!(fake.hits("GET /files/in.png").iter().all(|h| h.traceparent.is_none()));

    // The tree, for the record (shown with --nocapture).
    let lines = tree(&spans, caller_span);
    println!("trace {trace_id}:\n{}", lines.join("\n"));
    assert!(lines.len() >= wanted.len() + 3);
}

/// FigMe (the default catalogue's two-step tool on the offline `local` provider), both steps
/// in one run: one trace from the submitting request through the worker's claim, run, each
/// step in order and the settlement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_figme_run_is_one_trace_with_a_span_per_step() {
    let (Some(db), Some(redis)) = (TestDatabase::create().await, TestRedisPrefix::create().await) else { return };
    let dir = TempDir::new("traces-figme");
    let (_state, _user, token) =
        crate::scale::seeded_user(&dir, &db.url, Migrations::Apply, "figme@example.com", 100).await;
    let fake = fakes::start().await;
    fake.script("GET /files/photo.png", vec![Reply::bytes("image/png", funmagic_api::testing::sample_png(64, 48))]);
    let (collector_url, received) = collector().await;
    let (_processes, url) = start_traced(&dir, &db, &redis, &collector_url).await;

    let body = serde_json::json!({
        "toolSlug": "figme",
        "runAllSteps": true,
        "input": { "imageUrl": format!("{}/files/photo.png", fake.base), "style": "sketch" },
    });
    let (trace_id, caller_span, task_id) = submit_traced(&url, &token, body).await;
    let wanted = ["POST /api/tasks", "claim task", "run task", "step image-gen", "step 3d-gen", "settle task"];
    let spans = trace_spans(&received, &trace_id, &wanted, 0).await;
    let one = |name: &str| -> &Received {
        let found: Vec<&Received> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one '{name}' span: {spans:#?}");
        found[0]
    };
    let server = one("POST /api/tasks");
    assert_eq!((server.service.as_str(), server.parent.as_str()), ("funmagic-api", caller_span.as_str()));
    let run = one("run task");
    assert_eq!((run.service.as_str(), run.parent.as_str()), ("funmagic-worker", server.span_id.as_str()));
    assert_eq!(run.attributes.get("task_id"), Some(&task_id));
    let steps: Vec<&Received> = spans.iter().filter(|s| s.name.starts_with("step ")).collect();
    assert_eq!(steps.len(), 2, "{spans:#?}");
    assert!(steps.iter().all(|s| s.parent == run.span_id && s.service == "funmagic-worker"), "{steps:#?}");
    let settle = one("settle task");
    assert_eq!(settle.parent, run.span_id);
    assert_eq!(settle.attributes.get("task.status").map(String::as_str), Some("completed"));
    assert!(spans.iter().all(|s| !s.error), "nothing failed: {spans:#?}");

    let lines = tree(&spans, &caller_span);
    println!("trace {trace_id} (figme):\n{}", lines.join("\n"));
    let order: Vec<&str> = lines.iter().map(|l| l.trim_start()).filter(|l| l.starts_with("step ")).collect();
    assert_eq!(
        order,
        ["step image-gen [funmagic-worker]", "step 3d-gen [funmagic-worker]"],
        "the steps in order, each once"
    );
}
