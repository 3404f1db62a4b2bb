//! The served spec, the committed spec and the code agree; errors are JSON everywhere.

use funmagic_api::testing::{TestApp, TestBackend};

fn committed_spec() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/funmagic.json")).unwrap()
}

#[test]
fn committed_spec_matches_the_code() {
    assert!(
        committed_spec() == funmagic_api::http::spec_json(),
        "openapi/funmagic.json is stale: run `cargo xtask codegen` and commit the result"
    );
}

#[tokio::test]
async fn spec_and_docs_are_served() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let http = reqwest::Client::new();
    let served: serde_json::Value =
        http.get(format!("{}/openapi.json", app.base_url())).send().await.unwrap().json().await.unwrap();
    let committed: serde_json::Value = serde_json::from_str(&committed_spec()).unwrap();
    assert_eq!(served, committed);
    let docs = http.get(format!("{}/docs", app.base_url())).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"), "the explorer page is served");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let http = reqwest::Client::new();
    let resp = http.get(format!("{}/api/nope", app.base_url())).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "NOT_FOUND");
    assert!(body["error"].is_string());
    let resp = http.delete(format!("{}/health", app.base_url())).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD", "a 405 says what is allowed (RFC 9110)");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
    // Path parameters, several methods, and routes outside the spec.
    let id = uuid::Uuid::now_v7();
    for (method, path, allowed) in [
        ("TRACE", "/api/tasks".to_string(), ["GET", "POST"].as_slice()),
        ("POST", format!("/api/admin/banners/{id}"), ["PUT", "DELETE"].as_slice()),
        ("POST", "/device".to_string(), ["GET"].as_slice()),
        ("DELETE", "/files/private/x.png".to_string(), ["GET", "PUT"].as_slice()),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = http.request(method.clone(), format!("{}{path}", app.base_url())).send().await.unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        let allow = resp.headers()["allow"].to_str().unwrap().to_string();
        for m in allowed {
            assert!(allow.split(", ").any(|a| a == *m), "{method} {path}: Allow {allow:?} lacks {m}");
        }
    }
}
