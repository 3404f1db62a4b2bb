//! Integration tests of funmagic-api: one binary, the real server on port 0, each scenario
//! on the embedded backend (SQLite) and the scale-out one (PostgreSQL + Redis).

mod accounts;
mod admin;
mod assets;
mod auth;
mod banners;
mod binary;
mod chaos;
mod config;
mod credits;
mod credits_prop;
mod deploy;
mod device;
mod fakes;
mod health;
mod image_url;
mod limits;
mod mail;
mod metrics;
mod netns;
mod oauth;
mod openapi;
mod pooler;
mod providers;
mod queue;
mod rbac;
mod redis_cluster;
mod scale;
mod startup;
mod store;
mod stripe;
mod tasks;
mod tools;
mod traces;
mod web;
mod webhooks;

/// An SDK client for a test app.
pub fn client(app: &funmagic_api::testing::TestApp) -> funmagic_sdk::Client {
    funmagic_sdk::ClientBuilder::new(app.base_url()).build().unwrap()
}

/// An SDK client for a test app, authenticated with `token`.
pub fn client_as(app: &funmagic_api::testing::TestApp, token: &str) -> funmagic_sdk::Client {
    funmagic_sdk::ClientBuilder::new(app.base_url()).token(token).build().unwrap()
}

/// A user created directly in the store, with a session token.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: uuid::Uuid,
    pub email: String,
    pub token: String,
}

pub const PASSWORD: &str = "correct horse battery";

/// Creates a user with `role` and password [`PASSWORD`], and a session for it.
pub async fn actor(app: &funmagic_api::testing::TestApp, email: &str, role: funmagic_api::store::Role) -> Actor {
    use funmagic_api::accounts::flows;
    let state = app.state();
    let hash = state.hasher().hash(PASSWORD).await.unwrap();
    let new = funmagic_api::store::NewUser { email: email.into(), name: "Test".into(), role, email_verified: true };
    let user = state.store().user_create_with_password(&new, &hash).await.unwrap();
    let issued = flows::create_session(state, user.clone(), &flows::Client::default()).await.unwrap();
    Actor { id: user.id, email: email.into(), token: issued.token }
}

/// A user (see [`actor`]) granted `credits` as a bonus.
pub async fn funded(app: &funmagic_api::testing::TestApp, email: &str, credits: i64) -> Actor {
    let a = actor(app, email, funmagic_api::store::Role::User).await;
    app.state()
        .store()
        .credits_grant(a.id, funmagic_api::store::TransactionType::Bonus, credits, &format!("seed-{}", a.id), None)
        .await
        .unwrap();
    a
}

/// `POST /api/tasks` of an `echo` task with reqwest itself, for the answer's headers.
pub async fn post_echo(app: &funmagic_api::testing::TestApp, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/tasks", app.base_url()))
        .bearer_auth(token)
        .json(&serde_json::json!({ "toolSlug": "echo", "input": {} }))
        .send()
        .await
        .unwrap()
}

/// A submission of the `echo` tool's first step with `input`.
pub fn echo(input: serde_json::Value) -> funmagic_sdk::types::TaskCreateRequest {
    funmagic_sdk::types::TaskCreateRequest {
        tool_slug: "echo".parse().unwrap(),
        step_id: None,
        input,
        parent_task_id: None,
        run_all_steps: None,
        webhook: None,
    }
}

/// The status and JSON error `code` of a failed SDK call.
pub fn err_code<T: std::fmt::Debug>(
    result: Result<T, funmagic_sdk::Error<funmagic_sdk::types::ApiError>>,
) -> (u16, String) {
    match result {
        Err(funmagic_sdk::Error::ErrorResponse(resp)) => (resp.status().as_u16(), resp.into_inner().code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Sends `body` as JSON, bypassing the SDK's own checks (for what the spec refuses: the
/// server must refuse it too, with its code); returns the status and the error `code`
/// (empty on success).
pub async fn raw_json(
    app: &funmagic_api::testing::TestApp,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> (u16, String) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", app.base_url())).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let json: serde_json::Value = resp.json().await.unwrap_or_default();
    (status, json["code"].as_str().unwrap_or_default().to_string())
}
