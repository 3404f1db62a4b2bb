//! Providers end to end: the seed's tools on the offline `local` provider (real outputs,
//! checked by decoding them), the super-admin provider API (keys write-only, encrypted at
//! rest), and the OpenAI, fal.ai and Tripo clients against loopback fakes of their wire
//! formats — 401, 429 with Retry-After, 500, timeouts, malformed JSON, and a run that stops
//! between submit and result.

use std::time::Duration;

use base64::Engine;
use funmagic_api::config::SettingsLayer;
use funmagic_api::store::Role;
use funmagic_api::testing::{TestApp, TestBackend};
use funmagic_sdk::types;
use serde_json::json;

use crate::fakes::{self, Reply};
use crate::{actor, client_as, err_code, funded, raw_json};

funmagic_api::test_both_backends!(local_tools_end_to_end, provider_admin_and_key_secrecy);

/// Uploads PNG bytes; returns the storage key.
async fn upload(client: &funmagic_sdk::Client, name: &str, png: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, png).unwrap();
    funmagic_sdk::files::upload_file(client, &path, Some("uploads"), |_, _| {}).await.unwrap().storage_key
}

fn submit(slug: &str, input: serde_json::Value, all: bool) -> types::TaskCreateRequest {
    types::TaskCreateRequest {
        tool_slug: slug.parse().unwrap(),
        step_id: None,
        input,
        parent_task_id: None,
        run_all_steps: all.then_some(true),
        webhook: None,
    }
}

/// Submits and waits for the end; returns the task detail.
async fn run(client: &funmagic_sdk::Client, req: &types::TaskCreateRequest) -> types::TaskDetail {
    let task = client.task_create(None, req).await.unwrap().into_inner().task;
    ended(client, task.id).await
}

/// Waits for a task's end; returns its detail.
async fn ended(client: &funmagic_sdk::Client, id: uuid::Uuid) -> types::TaskDetail {
    let task = client.task_get(&id).await.unwrap().into_inner().task;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let detail = client.task_get(&task.id).await.unwrap().into_inner();
        if matches!(detail.task.status.to_string().as_str(), "completed" | "failed" | "cancelled") {
            return detail;
        }
        assert!(tokio::time::Instant::now() < deadline, "task did not end: {detail:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every event this process's hub delivers (progress is live only: it is not in the
/// database), kept for the test to look through by task.
struct Tap {
    rx: tokio::sync::broadcast::Receiver<std::sync::Arc<funmagic_api::events::Live>>,
    seen: Vec<funmagic_api::events::Live>,
}

impl Tap {
    async fn new(app: &TestApp) -> Self {
        Self { rx: app.state().events().tap().await, seen: Vec::new() }
    }

    /// The events of task `id` seen so far, once one of them satisfies `until` (60 s at most).
    async fn until(
        &mut self,
        id: uuid::Uuid,
        until: impl Fn(&funmagic_api::events::Live) -> bool,
    ) -> Vec<(String, serde_json::Value)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !self.seen.iter().any(|l| l.task_id == id && until(l)) {
            let live = tokio::time::timeout_at(deadline, self.rx.recv()).await.expect("the event never came").unwrap();
            self.seen.push((*live).clone());
        }
        self.seen.iter().filter(|l| l.task_id == id).map(|l| (l.kind.to_string(), l.data.clone())).collect()
    }

    /// Every event of task `id`, up to its terminal one.
    async fn all(&mut self, id: uuid::Uuid) -> Vec<(String, serde_json::Value)> {
        self.until(id, |l| l.is_terminal()).await
    }
}

async fn fetch_asset(client: &funmagic_sdk::Client, id: &str) -> (types::Asset, Vec<u8>) {
    let asset = client.asset_get(&id.parse().unwrap()).await.unwrap().into_inner();
    let bytes = reqwest::get(asset.download_url.clone().unwrap()).await.unwrap().bytes().await.unwrap().to_vec();
    (asset, bytes)
}

async fn local_tools_end_to_end(app: TestApp) {
    let mut tap = Tap::new(&app).await;
    let ada = funded(&app, "ada@example.com", 200).await;
    let as_ada = client_as(&app, &ada.token);
    let (w, h) = (240, 180);
    let key = upload(&as_ada, "photo.png", &funmagic_api::testing::sample_png(w, h)).await;
    let (_, truth) = funmagic_api::testing::sample_scene(w, h);

    // background-remove: an RGBA PNG whose alpha is the object.
    let done = run(&as_ada, &submit("background-remove", json!({ "imageStorageKey": key }), false)).await;
    assert_eq!(done.task.status.to_string(), "completed", "{done:?}");
    let output = done.output.clone().unwrap();
    let (asset, png) = fetch_asset(&as_ada, output["assetId"].as_str().unwrap()).await;
    assert_eq!(asset.mime_type, "image/png");
    assert_eq!(asset.filename.as_deref(), Some("photo-cutout.png"));
    let cut = image::load_from_memory(&png).unwrap().to_rgba8();
    assert_eq!(cut.dimensions(), (w, h));
    let found: Vec<bool> = cut.pixels().map(|p| p[3] > 127).collect();
    let inter = found.iter().zip(&truth).filter(|(a, b)| **a && **b).count() as f64;
    let union = found.iter().zip(&truth).filter(|(a, b)| **a || **b).count() as f64;
    assert!(inter / union >= 0.9, "IoU {}", inter / union);
    let progress: Vec<u64> = tap
        .all(done.task.id)
        .await
        .iter()
        .filter(|(k, _)| k == "progress")
        .filter_map(|(_, d)| d["progress"].as_u64())
        .collect();
    assert!(progress.len() >= 4 && progress.windows(2).all(|p| p[0] <= p[1]), "real progress: {progress:?}");

    // figme, both steps, in a style: a styled PNG, then a GLB made from it.
    let done = run(&as_ada, &submit("figme", json!({ "imageStorageKey": key, "style": "sketch" }), true)).await;
    assert_eq!(done.task.status.to_string(), "completed", "{done:?}");
    assert_eq!(done.steps.iter().map(|s| s.status.to_string()).collect::<Vec<_>>(), ["completed", "completed"]);
    let styled = done.steps[0].state["output"].clone();
    assert_eq!(styled["style"], "sketch");
    let (_, styled_png) = fetch_asset(&as_ada, styled["assetId"].as_str().unwrap()).await;
    assert_eq!(image::load_from_memory(&styled_png).unwrap().width(), w);
    let (asset, glb) = fetch_asset(&as_ada, done.output.as_ref().unwrap()["assetId"].as_str().unwrap()).await;
    assert_eq!(asset.mime_type, "model/gltf-binary");
    let gltf = gltf::Gltf::from_slice(&glb).expect("a valid GLB");
    let positions = gltf.meshes().next().unwrap().primitives().next().unwrap().get(&gltf::Semantic::Positions);
    assert_eq!(positions.unwrap().count() as u64, done.output.as_ref().unwrap()["vertices"].as_u64().unwrap());

    // crystal-memory: a PLY with one point per pixel (an opaque 240×180 photo).
    let done = run(&as_ada, &submit("crystal-memory", json!({ "imageStorageKey": key }), false)).await;
    assert_eq!(done.task.status.to_string(), "completed", "{done:?}");
    let (_, ply) = fetch_asset(&as_ada, done.output.as_ref().unwrap()["assetId"].as_str().unwrap()).await;
    let header_end = ply.windows(11).position(|w| w == b"end_header\n").unwrap() + 11;
    let header = String::from_utf8_lossy(&ply[..header_end]).to_string();
    assert!(header.contains(&format!("element vertex {}\n", w * h)), "{header}");
    assert_eq!(ply.len() - header_end, (w * h) as usize * 15);

    // Costs: 10 + (20 + 30) + 25.
    assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 200 - 85);
    // Bad input is refused at submit.
    assert_eq!(
        err_code(
            as_ada.task_create(None, &submit("figme", json!({ "imageStorageKey": key, "style": "nope" }), true)).await
        ),
        (422, "UNKNOWN_STYLE".into())
    );
    assert_eq!(
        err_code(
            as_ada
                .task_create(None, &submit("background-remove", json!({ "imageUrl": "https://10.0.0.1/a.png" }), false))
                .await
        ),
        (422, "IMAGE_URL_REFUSED".into()),
        "URLs are fetched through the SSRF guard (image_url.rs)"
    );
    // Someone else's upload is not an input.
    let bob = funded(&app, "bob@example.com", 50).await;
    let as_bob = client_as(&app, &bob.token);
    let stolen = run(&as_bob, &submit("background-remove", json!({ "imageStorageKey": key }), false)).await;
    assert_eq!(stolen.task.status.to_string(), "failed");
    assert_eq!(as_bob.credits_balance_get().await.unwrap().into_inner().balance, 50, "released");
    assert!(app.state().store().credits_invariant_violations(ada.id).await.unwrap().is_empty());
}

/// Every text the database holds, table by table (for "no plaintext key anywhere").
async fn database_text(app: &TestApp) -> String {
    let mut all = String::new();
    match &app.database {
        Some(db) => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            for table in app.state().store().table_names().await.unwrap() {
                let rows: Vec<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT CAST(t AS TEXT) FROM {table} t")))
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                all.push_str(&rows.join("\n"));
            }
            pool.close().await;
        }
        None => {
            for entry in std::fs::read_dir(app.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    all.push_str(&String::from_utf8_lossy(&std::fs::read(&path).unwrap()));
                }
            }
        }
    }
    all
}

async fn provider_admin_and_key_secrecy(app: TestApp) {
    let fake = fakes::start().await;
    fake.script("GET /v1/models", vec![Reply::json(200, json!({ "object": "list", "data": [] }))]);
    let root = actor(&app, "root@example.com", Role::SuperAdmin).await;
    let admin = actor(&app, "admin@example.com", Role::Admin).await;
    let user = actor(&app, "user@example.com", Role::User).await;
    let as_root = client_as(&app, &root.token);
    let secret = "sk-proj-VerySecretKey-0123456789-abcd";
    let body = types::ProviderCreate {
        name: "openai-main".parse().unwrap(),
        type_: types::ExternalProviderType::Openai,
        api_key: Some(secret.parse().unwrap()),
        base_url: Some(format!("{}/v1", fake.base).parse().unwrap()),
        is_active: None,
    };
    let created = as_root.admin_provider_create(&body).await.unwrap().into_inner();
    assert_eq!(created.key_last4.as_deref(), Some("abcd"));
    assert!(created.has_key && created.key_id.is_some());
    assert_eq!(err_code(as_root.admin_provider_create(&body).await), (409, "NAME_TAKEN".into()));
    for (who, token) in [("admin", &admin.token), ("user", &user.token)] {
        let c = client_as(&app, token);
        assert_eq!(err_code(c.admin_provider_list().await).0, 403, "{who}");
        assert_eq!(err_code(c.admin_provider_test(&created.id).await).0, 403, "{who}");
    }
    // A type outside the spec's enum (or the built-in `local`) is a validation failure.
    for kind in ["acme", "local"] {
        let resp = reqwest::Client::new()
            .post(format!("{}/api/admin/providers", app.base_url()))
            .bearer_auth(&root.token)
            .json(&serde_json::json!({ "name": "x", "type": kind, "apiKey": "sk-test" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422, "{kind}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "VALIDATION_FAILED", "{kind}: {body}");
    }
    let mut bad = serde_json::to_value(&body).unwrap();
    (bad["baseUrl"], bad["name"]) = ("ftp://x".into(), "y".into());
    let got = raw_json(&app, Some(&root.token), reqwest::Method::POST, "/api/admin/providers", bad).await;
    assert_eq!(got, (422, "VALIDATION_FAILED".into()));
    // A URL the spec allows but the server's policy does not (plain http off this machine).
    let mut bad = serde_json::to_value(&body).unwrap();
    (bad["baseUrl"], bad["name"]) = ("http://example.com/v1".into(), "y".into());
    let got = raw_json(&app, Some(&root.token), reqwest::Method::POST, "/api/admin/providers", bad).await;
    assert_eq!(got.0, 422);

    // The health check uses the decrypted key against the provider's API.
    let tested = as_root.admin_provider_test(&created.id).await.unwrap().into_inner();
    assert!(tested.healthy, "{tested:?}");
    assert!(tested.provider.health_checked_at.is_some());
    let hit = fake.hits("GET /v1/models").pop().unwrap();
    assert_eq!(hit.authorization.as_deref(), Some(format!("Bearer {secret}").as_str()));
    fake.script("GET /v1/models", vec![Reply::json(401, json!({ "error": { "message": "Incorrect API key" } }))]);
    let tested = as_root.admin_provider_test(&created.id).await.unwrap().into_inner();
    assert!(!tested.healthy && tested.message.contains("refused"), "{tested:?}");

    // Rotating the key: new last 4; disabling.
    let update = types::ProviderUpdate {
        api_key: Some("sk-proj-AnotherKey-zzzz-9876".parse().unwrap()),
        name: None,
        base_url: None,
        clear_base_url: None,
        is_active: Some(false),
    };
    let updated = as_root.admin_provider_update(&created.id, &update).await.unwrap().into_inner();
    assert_eq!((updated.key_last4.as_deref(), updated.is_active), (Some("9876"), false));
    let listed = as_root.admin_provider_list().await.unwrap().into_inner();
    let text = serde_json::to_string(&listed).unwrap();
    assert!(!text.contains("VerySecretKey") && !text.contains("AnotherKey"), "no key in any answer");
    assert!(listed.providers.iter().any(|p| p.type_.to_string() == "local" && p.is_healthy));

    let stored = database_text(&app).await;
    assert!(stored.contains("9876"), "the dump holds the rows");
    assert!(!stored.contains("VerySecretKey") && !stored.contains("AnotherKey"), "no plaintext key in the database");
}

/// A tool with one step on `provider` (admin config change, validated on write).
async fn tool_on(
    as_admin: &funmagic_sdk::Client,
    slug: &str,
    kind: &str,
    provider: uuid::Uuid,
    model: &str,
) -> types::Tool {
    let types_ = as_admin.admin_tool_type_list().await.unwrap().into_inner();
    let mut config = json!({ "steps": [{ "id": "main", "name": "Main", "type": kind, "providerId": provider, "providerModel": model, "cost": 5 }] });
    if kind == "image-gen" {
        config["styleReferences"] = json!([{ "id": "ink", "name": "Ink", "prompt": "An ink drawing" }]);
    }
    let input = types::ToolInput {
        slug: slug.parse().unwrap(),
        title: slug.parse().unwrap(),
        description: None,
        tool_type_id: types_.tool_types[0].id,
        config: config.clone(),
        is_active: None,
        featured: None,
        position: None,
    };
    // An unknown model is refused on write.
    let mut wrong = input.clone();
    wrong.config["steps"][0]["providerModel"] = "dall-e-9".into();
    assert_eq!(err_code(as_admin.admin_tool_create(&wrong).await).0, 422);
    as_admin.admin_tool_create(&input).await.unwrap().into_inner()
}

async fn provider(as_root: &funmagic_sdk::Client, kind: &str, base: String) -> uuid::Uuid {
    let body = types::ProviderCreate {
        name: format!("{kind}-fake").parse().unwrap(),
        type_: kind.parse().unwrap(),
        api_key: Some(format!("{kind}-key-0123456789").parse().unwrap()),
        base_url: Some(base.parse().unwrap()),
        is_active: None,
    };
    as_root.admin_provider_create(&body).await.unwrap().into_inner().id
}

fn fast_providers() -> SettingsLayer {
    let mut extra = SettingsLayer::default();
    extra.providers.max_retries = Some(2);
    extra.providers.timeout_secs = Some(1);
    extra.providers.poll_ms = Some(20);
    extra.tasks.max_attempts = Some(2);
    extra.tasks.retry_base_ms = Some(20);
    extra
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_images_over_the_wire() {
    let mut extra = fast_providers();
    // Loose enough that a loaded machine never times out a fake that answers at once.
    extra.providers.timeout_secs = Some(3);
    let app = TestApp::spawn_with(TestBackend::Embedded, extra).await.unwrap();
    let fake = fakes::start().await;
    let root = actor(&app, "root@example.com", Role::SuperAdmin).await;
    let as_root = client_as(&app, &root.token);
    let id = provider(&as_root, "openai", format!("{}/v1", fake.base)).await;
    tool_on(&as_root, "paint", "image-gen", id, "gpt-image-1").await;
    let ada = funded(&app, "ada@example.com", 100).await;
    let as_ada = client_as(&app, &ada.token);
    let b64 = base64::engine::general_purpose::STANDARD.encode(funmagic_api::testing::sample_png(64, 48));
    let ok = Reply::json(200, json!({ "created": 1, "data": [{ "b64_json": b64 }], "usage": { "total_tokens": 100 } }));
    let route = "POST /v1/images/generations";

    // 429 (Retry-After: 3), then 500, then the image: one task, three requests.
    fake.script(
        route,
        vec![
            Reply::json(429, json!({ "error": { "message": "Rate limit reached" } })).header("retry-after", "3"),
            Reply::json(500, json!({ "error": { "message": "The server had an error" } })),
            ok.clone(),
        ],
    );
    let started = std::time::Instant::now();
    let done = run(&as_ada, &submit("paint", json!({ "prompt": "a red fox", "style": "ink" }), false)).await;
    assert_eq!(done.task.status.to_string(), "completed", "{done:?}");
    // Our own backoff for these two would be under 2 s: only the header makes it 3.
    assert!(started.elapsed() >= Duration::from_secs(3), "Retry-After was honoured");
    let hits = fake.hits(route);
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[2].json()["model"], "gpt-image-1");
    assert_eq!(hits[2].json()["prompt"], "An ink drawing. a red fox");
    assert_eq!(hits[2].authorization.as_deref(), Some("Bearer openai-key-0123456789"));
    let (asset, png) = fetch_asset(&as_ada, done.output.as_ref().unwrap()["assetId"].as_str().unwrap()).await;
    assert_eq!((asset.mime_type.as_str(), image::load_from_memory(&png).unwrap().width()), ("image/png", 64));

    // 401: fails at once (no retries), the provider's message passed on with the key masked.
    fake.clear_hits();
    fake.script(
        route,
        vec![Reply::json(
            401,
            json!({ "error": { "message": "Incorrect API key provided: openai-key-0123456789.", "code": "invalid_api_key" } }),
        )],
    );
    let done = run(&as_ada, &submit("paint", json!({ "prompt": "x" }), false)).await;
    assert_eq!(done.task.status.to_string(), "failed");
    let error = done.error.unwrap();
    assert!(error.contains("Incorrect API key provided: [key]"), "{error}");
    assert_eq!(fake.hits(route).len(), 1);

    // Malformed JSON: transient, the task is run again (2 attempts), then fails.
    fake.clear_hits();
    fake.script(route, vec![Reply::text(200, "{\"data\": [")]);
    let done = run(&as_ada, &submit("paint", json!({ "prompt": "x" }), false)).await;
    assert_eq!(done.task.status.to_string(), "failed");
    assert!(done.error.unwrap().contains("not JSON"));
    assert_eq!((fake.hits(route).len(), done.task.attempts), (2, 2));

    // Timeouts: a generation that did not answer in time may be running (and billed), so
    // it is not resent blindly: one request per run (3 s timeout), 2 runs.
    fake.clear_hits();
    fake.script(route, vec![ok.clone().delayed(Duration::from_secs(5))]);
    let done = run(&as_ada, &submit("paint", json!({ "prompt": "x" }), false)).await;
    assert_eq!(done.task.status.to_string(), "failed");
    assert!(done.error.unwrap().contains("did not answer in time"));
    assert_eq!((fake.hits(route).len(), done.task.attempts), (2, 2));

    // With an input image: the edits endpoint, multipart.
    fake.script("POST /v1/images/edits", vec![ok]);
    let key = upload(&as_ada, "cat.png", &funmagic_api::testing::sample_png(32, 32)).await;
    let done = run(&as_ada, &submit("paint", json!({ "prompt": "as a fox", "imageStorageKey": key }), false)).await;
    assert_eq!(done.task.status.to_string(), "completed", "{done:?}");
    let edit = fake.hits("POST /v1/images/edits").pop().unwrap();
    assert!(edit.content_type.unwrap().starts_with("multipart/form-data"));
    assert!(String::from_utf8_lossy(&edit.body).contains("name=\"image\"; filename=\"cat.png\""));
    // Paid: 2 completed × 5; the failures were released.
    assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fal_queue_and_resume_after_a_stop() {
    let mut extra = fast_providers();
    extra.tasks.step_timeout_secs = Some(3);
    extra.tasks.max_attempts = Some(3);
    // Scale-out when available (in CI it is: a missing backend fails there).
    let app = match TestApp::spawn_with(TestBackend::ScaleOut, extra.clone()).await {
        Some(app) => app,
        None => TestApp::spawn_with(TestBackend::Embedded, extra).await.unwrap(),
    };
    let mut tap = Tap::new(&app).await;
    let fake = fakes::start().await;
    let root = actor(&app, "root@example.com", Role::SuperAdmin).await;
    let as_root = client_as(&app, &root.token);
    let id = provider(&as_root, "fal", fake.base.clone()).await;
    tool_on(&as_root, "cutout", "background-remove", id, "fal-ai/birefnet/v2").await;
    let ada = funded(&app, "ada@example.com", 100).await;
    let as_ada = client_as(&app, &ada.token);
    let key = upload(&as_ada, "dog.png", &funmagic_api::testing::sample_png(48, 48)).await;
    let result_png = funmagic_api::testing::sample_png(48, 48);
    fake.script("GET /files/out.png", vec![Reply::bytes("image/png", result_png)]);
    fake.script("POST /fal-ai/birefnet/v2", vec![Reply::json(200, json!({ "request_id": "req-1" }))]);
    let status = "GET /fal-ai/birefnet/requests/req-1/status";
    fake.script(
        status,
        vec![
            Reply::json(202, json!({ "status": "IN_QUEUE", "queue_position": 2 })),
            Reply::json(202, json!({ "status": "IN_QUEUE", "queue_position": 1 })),
            Reply::json(200, json!({ "status": "IN_PROGRESS", "logs": [{ "message": "loading model" }] })),
            Reply::json(200, json!({ "status": "COMPLETED", "logs": [] })),
        ],
    );
    fake.script(
        "GET /fal-ai/birefnet/requests/req-1",
        vec![Reply::json(
            200,
            json!({ "image": { "url": format!("{}/files/out.png", fake.base), "content_type": "image/png" } }),
        )],
    );
    let done = run(&as_ada, &submit("cutout", json!({ "imageStorageKey": key }), false)).await;
    assert_eq!(done.task.status.to_string(), "completed", "{done:?}");
    let submitted = fake.hits("POST /fal-ai/birefnet/v2").pop().unwrap();
    assert_eq!(submitted.authorization.as_deref(), Some("Key fal-key-0123456789"));
    let image_url = submitted.json()["image_url"].as_str().unwrap().to_string();
    assert_eq!(reqwest::get(&image_url).await.unwrap().status(), 200, "fal.ai can fetch the input");
    let positions: Vec<i64> =
        tap.all(done.task.id).await.iter().filter_map(|(_, d)| d["providerQueuePosition"].as_i64()).collect();
    assert_eq!(positions, [2, 1], "queue positions shown as progress");
    assert_eq!(done.steps[0].state["falRequestId"], "req-1");
    let (asset, _) = fetch_asset(&as_ada, done.output.as_ref().unwrap()["assetId"].as_str().unwrap()).await;
    assert_eq!(asset.filename.as_deref(), Some("dog-cutout.png"));

    // The run stops (here: the 3 s step timeout) while fal.ai still works on it; the next
    // run polls the same request — one submit, one payment.
    fake.script("POST /fal-ai/birefnet/v2", vec![Reply::json(200, json!({ "request_id": "req-2" }))]);
    let status = "GET /fal-ai/birefnet/requests/req-2/status";
    fake.script(status, vec![Reply::json(200, json!({ "status": "IN_PROGRESS" }))]);
    fake.script(
        "GET /fal-ai/birefnet/requests/req-2",
        vec![Reply::json(200, json!({ "image": { "url": format!("{}/files/out.png", fake.base) } }))],
    );
    let task = as_ada.task_create(None, &submit("cutout", json!({ "imageStorageKey": key }), false)).await.unwrap();
    let task = task.into_inner().task;
    tap.until(task.id, |l| l.data["message"] == "resuming the fal.ai request").await;
    fake.script(status, vec![Reply::json(200, json!({ "status": "COMPLETED" }))]);
    let done = ended(&as_ada, task.id).await;
    assert_eq!(done.task.status.to_string(), "completed", "{done:?}");
    assert_eq!(done.task.attempts, 2, "the first run was stopped");
    assert_eq!(fake.hits("POST /fal-ai/birefnet/v2").len(), 2, "one submit per task, none for the resumed run");
    assert!(tap.all(done.task.id).await.iter().any(|(_, d)| d["message"] == "resuming the fal.ai request"));

    // A 422 from fal.ai is final, with its message.
    fake.script(
        "POST /fal-ai/birefnet/v2",
        vec![Reply::json(422, json!({ "detail": [{ "msg": "image_url: could not download" }] }))],
    );
    let done = run(&as_ada, &submit("cutout", json!({ "imageStorageKey": key }), false)).await;
    assert_eq!(done.task.status.to_string(), "failed");
    assert!(done.error.unwrap().contains("could not download"));
    assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tripo_image_to_model() {
    let app = TestApp::spawn_with(TestBackend::Embedded, fast_providers()).await.unwrap();
    let mut tap = Tap::new(&app).await;
    let fake = fakes::start().await;
    let root = actor(&app, "root@example.com", Role::SuperAdmin).await;
    let as_root = client_as(&app, &root.token);
    let id = provider(&as_root, "tripo", format!("{}/v2/openapi", fake.base)).await;
    tool_on(&as_root, "sculpt", "3d-gen", id, "v2.5-20250123").await;
    let ada = funded(&app, "ada@example.com", 100).await;
    let as_ada = client_as(&app, &ada.token);
    let key = upload(&as_ada, "toy.png", &funmagic_api::testing::sample_png(40, 30)).await;
    let (scene, _) = funmagic_api::testing::sample_scene(40, 30);
    let (glb, _, _) = funmagic_api::providers::local::relief_glb(&scene, 0.2, &mut |_, _| {}).unwrap();
    fake.script("GET /files/model.glb", vec![Reply::bytes("model/gltf-binary", glb)]);
    fake.script("POST /v2/openapi/task", vec![Reply::json(200, json!({ "code": 0, "data": { "task_id": "t-1" } }))]);
    let model_url = format!("{}/files/model.glb", fake.base);
    fake.script(
        "GET /v2/openapi/task/t-1",
        vec![
            Reply::json(200, json!({ "code": 0, "data": { "task_id": "t-1", "status": "queued", "progress": 0 } })),
            Reply::json(500, json!({ "code": 1000, "message": "server busy" })),
            Reply::json(200, json!({ "code": 0, "data": { "task_id": "t-1", "status": "running", "progress": 40 } })),
            Reply::json(200, json!({ "code": 0, "data": { "task_id": "t-1", "status": "running", "progress": 80 } })),
            Reply::json(
                200,
                json!({ "code": 0, "data": { "task_id": "t-1", "status": "success", "progress": 100, "output": { "pbr_model": model_url } } }),
            ),
        ],
    );
    let done = run(&as_ada, &submit("sculpt", json!({ "imageStorageKey": key }), false)).await;
    assert_eq!(done.task.status.to_string(), "completed", "{done:?}");
    let created = fake.hits("POST /v2/openapi/task").pop().unwrap();
    let body = created.json();
    assert_eq!(
        (body["type"].as_str(), body["model_version"].as_str()),
        (Some("image_to_model"), Some("v2.5-20250123"))
    );
    assert_eq!(body["file"]["type"], "png");
    assert_eq!(created.authorization.as_deref(), Some("Bearer tripo-key-0123456789"));
    assert_eq!(done.steps[0].state["tripoTaskId"], "t-1");
    let (asset, model) = fetch_asset(&as_ada, done.output.as_ref().unwrap()["assetId"].as_str().unwrap()).await;
    assert_eq!(asset.mime_type, "model/gltf-binary");
    gltf::Gltf::from_slice(&model).expect("the stored model is valid glTF");
    let shown: Vec<u64> = tap
        .all(done.task.id)
        .await
        .iter()
        .filter(|(k, _)| k == "progress")
        .filter_map(|(_, d)| d["progress"].as_u64())
        .collect();
    assert!(shown.contains(&38) && shown.contains(&66), "Tripo's progress mapped into the step's: {shown:?}");

    // Tripo's error codes are final and passed on.
    fake.script(
        "POST /v2/openapi/task",
        vec![Reply::json(
            403,
            json!({ "code": 2010, "message": "You don't have enough credit", "suggestion": "Top up" }),
        )],
    );
    let done = run(&as_ada, &submit("sculpt", json!({ "imageStorageKey": key }), false)).await;
    assert_eq!(done.task.status.to_string(), "failed");
    let error = done.error.unwrap();
    assert!(error.contains("enough credit (Top up)"), "{error}");
    // A success without a model URL is a bad answer, not a crash.
    fake.script("POST /v2/openapi/task", vec![Reply::json(200, json!({ "code": 0, "data": { "task_id": "t-2" } }))]);
    fake.script(
        "GET /v2/openapi/task/t-2",
        vec![Reply::json(200, json!({ "code": 0, "data": { "status": "success", "output": {} } }))],
    );
    let done = run(&as_ada, &submit("sculpt", json!({ "imageStorageKey": key }), false)).await;
    assert_eq!(done.task.status.to_string(), "failed");
    assert!(done.error.unwrap().contains("no model URL"));
    assert_eq!(as_ada.credits_balance_get().await.unwrap().into_inner().balance, 95);
}
