//! The role × route matrix: every operation of the spec, called by every kind of caller,
//! with a well-formed body built from the spec's schema and random ids. The result is
//! committed as `tests/snapshots/rbac_matrix.txt`; set `UPDATE_SNAPSHOTS=1` to rewrite it
//! after an intended change. Both backends must produce the same matrix.

use std::collections::BTreeMap;

use funmagic_api::store::Role;
use funmagic_api::testing::{TestApp, TestBackend};
use serde_json::{Value, json};

use crate::actor;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/rbac_matrix.txt");

/// Routes anyone may call without credentials.
const PUBLIC: &[&str] = &[
    "/health",
    "/health/all",
    "/health/db",
    "/health/redis",
    "/health/storage",
    "/api/auth/sign-up/email",
    "/api/auth/sign-in/email",
    "/api/auth/verify-email",
    "/api/auth/request-password-reset",
    "/api/auth/reset-password",
    "/api/auth/device/code",
    "/api/auth/device/token",
    "/api/credits/packages",
    "/api/banners",
    "/api/tools",
    "/api/tools/{slug}",
];

/// A minimal valid instance of a schema (required properties only).
fn sample(schema: &Value, spec: &Value) -> Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return sample(&spec["components"]["schemas"][name], spec);
    }
    if let Some(all) = schema["allOf"].as_array() {
        return sample(&all[0], spec);
    }
    if let Some(values) = schema["enum"].as_array() {
        return values[0].clone();
    }
    match schema["type"].as_str() {
        Some("object") => {
            let mut obj = serde_json::Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                obj.insert(name.into(), sample(&schema["properties"][name], spec));
            }
            Value::Object(obj)
        }
        Some("string") if schema["format"] == "uuid" => json!(uuid::Uuid::now_v7()),
        Some("string") => json!("sample"),
        Some("integer") | Some("number") => json!(1),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        _ => json!({}),
    }
}

/// Status of every operation for every caller. Each call gets a fresh session (so that
/// sign-out cannot affect later rows) by re-creating tokens per row.
async fn matrix(app: &TestApp) -> String {
    let spec: Value = serde_json::from_str(&funmagic_api::http::spec_json()).unwrap();
    let http = reqwest::Client::new();
    let mut rows = BTreeMap::new();
    let mut unauthenticated_failures = vec![];
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            // Fresh callers per operation: sign-out or a ban must not leak into other rows.
            let callers = callers_fresh(app).await;
            let mut cells = vec![];
            for (name, token) in &callers {
                let concrete = path
                    .split('/')
                    .map(|seg| if seg.starts_with('{') { uuid::Uuid::now_v7().to_string() } else { seg.to_string() })
                    .collect::<Vec<_>>()
                    .join("/");
                let mut url = format!("{}{concrete}", app.base_url());
                let mut query = vec![];
                for param in op["parameters"].as_array().into_iter().flatten() {
                    if param["in"] == "query" && param["required"] == true {
                        query.push(format!("{}=sample", param["name"].as_str().unwrap()));
                    }
                }
                if !query.is_empty() {
                    url = format!("{url}?{}", query.join("&"));
                }
                let mut req = http.request(method.to_uppercase().parse().unwrap(), &url);
                if let Some(token) = token {
                    req = req.bearer_auth(token);
                }
                // poem-openapi declares `application/json; charset=utf-8`.
                let json_body = op["requestBody"]["content"]
                    .as_object()
                    .and_then(|c| c.iter().find(|(mime, _)| mime.starts_with("application/json")))
                    .map(|(_, media)| media["schema"].clone());
                if let Some(schema) = json_body {
                    req = req.json(&sample(&schema, &spec));
                }
                let status = req.send().await.unwrap().status().as_u16();
                if *name == "anon" && !PUBLIC.contains(&path.as_str()) && status != 401 {
                    unauthenticated_failures.push(format!("{method} {path} → {status}"));
                }
                cells.push(format!("{name}={status}"));
            }
            rows.insert(format!("{:<6} {path}", method.to_uppercase()), cells.join(" "));
        }
    }
    assert!(
        unauthenticated_failures.is_empty(),
        "routes that do not answer 401 without credentials: {unauthenticated_failures:?}"
    );
    let mut out = String::from("# role × route: HTTP status per caller (generated by api/tests/it/rbac.rs)\n");
    for (route, cells) in rows {
        out.push_str(&format!("{route:<48} {cells}\n"));
    }
    out
}

/// Callers, in matrix column order, freshly created: anonymous, a user's session, its read
/// and write keys, an admin's and a super admin's session.
async fn callers_fresh(app: &TestApp) -> Vec<(&'static str, Option<String>)> {
    // Distinct emails per call: the store enforces uniqueness.
    let n = uuid::Uuid::new_v4().simple().to_string();
    let user = actor(app, &format!("user-{n}@example.com"), Role::User).await;
    let admin = actor(app, &format!("admin-{n}@example.com"), Role::Admin).await;
    let root = actor(app, &format!("root-{n}@example.com"), Role::SuperAdmin).await;
    let mut keys = vec![];
    for scope in [funmagic_api::store::KeyScope::Read, funmagic_api::store::KeyScope::Write] {
        let secret = funmagic_api::auth::token::generate("fmk_");
        let hash = funmagic_api::auth::token::hash(&secret);
        app.state().store().api_key_create(user.id, "matrix", "fmk_matrix", &hash, scope, None).await.unwrap();
        keys.push(secret);
    }
    vec![
        ("anon", None),
        ("user", Some(user.token)),
        ("user_read_key", Some(keys.remove(0))),
        ("user_write_key", Some(keys.remove(0))),
        ("admin", Some(admin.token)),
        ("super_admin", Some(root.token)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_matrix_matches_snapshot() {
    let mut extra = funmagic_api::config::SettingsLayer::default();
    extra.auth.rate_limit_per_minute = Some(10_000);
    extra.auth.rate_limit_per_email_per_minute = Some(10_000);
    let app = TestApp::spawn_with(TestBackend::Embedded, extra.clone()).await.unwrap();
    let embedded = matrix(&app).await;
    // No caller of any route meets a server error: a 5xx is a bug, never a rule to snapshot.
    let errors: Vec<&str> = embedded.lines().filter(|l| l.split_whitespace().any(|c| c.contains("=5"))).collect();
    assert!(errors.is_empty(), "server errors in the RBAC matrix:\n{}", errors.join("\n"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &embedded).unwrap();
    }
    let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(
        committed == embedded,
        "the RBAC matrix changed; review and run `UPDATE_SNAPSHOTS=1 cargo test -p funmagic-api rbac` to accept:\n{embedded}"
    );
    if let Some(scale_out) = TestApp::spawn_with(TestBackend::ScaleOut, extra).await {
        assert_eq!(matrix(&scale_out).await, embedded, "both backends enforce the same rules");
    }
}
