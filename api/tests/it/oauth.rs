//! GitHub and Google sign-in against loopback fakes that follow the providers' documented
//! wire formats (GitHub answers token errors with 200 + `error`, Google with 400).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use funmagic_api::config::SettingsLayer;
use funmagic_api::store::Role;
use funmagic_api::testing::{TestApp, TestBackend};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Form, Json};
use poem::{EndpointExt, Route, handler};
use serde_json::{Value, json};
use sha2::Digest;

use crate::{actor, client_as};

#[derive(Clone, Default)]
struct Fake {
    /// code → PKCE challenge it was issued for.
    codes: Arc<Mutex<HashMap<String, String>>>,
    /// What /user/emails (GitHub) or userinfo (Google) reports: email, verified, account id.
    email: Arc<Mutex<(String, bool, String)>>,
}

#[handler]
fn github_token(fake: Data<&Fake>, Form(form): Form<HashMap<String, String>>) -> Json<Value> {
    let challenge = fake.codes.lock().unwrap().remove(form.get("code").map(String::as_str).unwrap_or(""));
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let ok = challenge.as_deref() == Some(computed.as_str())
        && form.get("client_id").map(String::as_str) == Some("gh-client")
        && form.get("client_secret").map(String::as_str) == Some("gh-secret");
    if ok {
        Json(json!({"access_token": "gho_fake", "token_type": "bearer", "scope": "read:user,user:email"}))
    } else {
        Json(json!({"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}))
    }
}

#[handler]
fn github_user(fake: Data<&Fake>, req: &poem::Request) -> poem::Result<Json<Value>> {
    if req.header("authorization") != Some("Bearer gho_fake") {
        return Err(poem::Error::from_status(poem::http::StatusCode::UNAUTHORIZED));
    }
    let id: i64 = fake.email.lock().unwrap().2.parse().unwrap();
    Ok(Json(
        json!({"id": id, "login": "octocat", "name": "The Octocat", "avatar_url": "https://avatars.example/u/583231"}),
    ))
}

#[handler]
fn github_emails(fake: Data<&Fake>) -> Json<Value> {
    let (email, verified, _) = fake.email.lock().unwrap().clone();
    Json(json!([
        {"email": "octocat@users.noreply.github.com", "primary": false, "verified": true, "visibility": null},
        {"email": email, "primary": true, "verified": verified, "visibility": "public"}
    ]))
}

#[handler]
fn google_token(fake: Data<&Fake>, Form(form): Form<HashMap<String, String>>) -> poem::Response {
    let challenge = fake.codes.lock().unwrap().remove(form.get("code").map(String::as_str).unwrap_or(""));
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if challenge.as_deref() == Some(computed.as_str()) {
        poem::Response::builder().content_type("application/json").body(
            json!({"access_token": "ya29.fake", "expires_in": 3599, "token_type": "Bearer", "scope": "openid email profile"}).to_string(),
        )
    } else {
        poem::Response::builder()
            .status(poem::http::StatusCode::BAD_REQUEST)
            .content_type("application/json")
            .body(json!({"error": "invalid_grant", "error_description": "Bad Request"}).to_string())
    }
}

#[handler]
fn google_userinfo(fake: Data<&Fake>) -> Json<Value> {
    let (email, verified, sub) = fake.email.lock().unwrap().clone();
    Json(
        json!({"sub": sub, "email": email, "email_verified": verified, "name": "Gee User", "picture": "https://lh3.example/p"}),
    )
}

async fn start_fake() -> (String, Fake) {
    let fake = Fake::default();
    let app = Route::new()
        .at("/login/oauth/access_token", poem::post(github_token))
        .at("/user", poem::get(github_user))
        .at("/user/emails", poem::get(github_emails))
        .at("/token", poem::post(google_token))
        .at("/v1/userinfo", poem::get(google_userinfo))
        .data(fake.clone());
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    (format!("http://{addr}"), fake)
}

async fn app_with_providers(backend: TestBackend, base: &str) -> Option<TestApp> {
    app_with_providers_and(backend, base, SettingsLayer::default()).await
}

async fn app_with_providers_and(backend: TestBackend, base: &str, mut extra: SettingsLayer) -> Option<TestApp> {
    extra.oauth.github_client_id = Some("gh-client".into());
    extra.oauth.github_client_secret = Some("gh-secret".to_string().into());
    extra.oauth.github_authorize_url = Some(format!("{base}/login/oauth/authorize"));
    extra.oauth.github_token_url = Some(format!("{base}/login/oauth/access_token"));
    extra.oauth.github_api_url = Some(base.to_string());
    extra.oauth.google_client_id = Some("g-client".into());
    extra.oauth.google_client_secret = Some("g-secret".to_string().into());
    extra.oauth.google_authorize_url = Some(format!("{base}/o/oauth2/v2/auth"));
    extra.oauth.google_token_url = Some(format!("{base}/token"));
    extra.oauth.google_userinfo_url = Some(format!("{base}/v1/userinfo"));
    TestApp::spawn_with(backend, extra).await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// One browser round trip; returns (status, location, session token if set, error code).
async fn round_trip(
    app: &TestApp,
    fake: &Fake,
    provider: &str,
    callback: &str,
    tamper: Tamper,
) -> (u16, String, Option<String>, String) {
    let http = no_redirects();
    let start = http
        .get(format!("{}/api/auth/sign-in/social", app.base_url()))
        .query(&[("provider", provider), ("callbackURL", callback)])
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let location = reqwest::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["response_type"], "code");
    assert!(q["redirect_uri"].ends_with(&format!("/api/auth/callback/{provider}")));
    let cookie = start.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    // The provider authenticates the person and issues a code bound to the challenge.
    let code = format!("code-{}", uuid::Uuid::new_v4());
    let challenge =
        if tamper == Tamper::WrongVerifier { "not-the-challenge".to_string() } else { q["code_challenge"].clone() };
    fake.codes.lock().unwrap().insert(code.clone(), challenge);
    let mut req = http.get(&q["redirect_uri"]).query(&[("code", code.as_str()), ("state", q["state"].as_str())]);
    if tamper != Tamper::NoCookie {
        req = req.header("cookie", &cookie);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
    let token = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find_map(|c| c.strip_prefix("funmagic.session_token="))
        .map(|c| c.split(';').next().unwrap().to_string());
    let code = if status >= 400 {
        resp.json::<Value>().await.unwrap()["code"].as_str().unwrap_or("").to_string()
    } else {
        String::new()
    };
    if tamper == Tamper::Replay {
        let again = http
            .get(&q["redirect_uri"])
            .query(&[("code", "x"), ("state", q["state"].as_str())])
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 400, "a state works once");
    }
    (status, location, token, code)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    None,
    NoCookie,
    WrongVerifier,
    Replay,
}

async fn scenario(backend: TestBackend) {
    let (base, fake) = start_fake().await;
    let Some(app) = app_with_providers(backend, &base).await else { return };

    // A new person: account created with the provider's verified email, signed in.
    *fake.email.lock().unwrap() = ("octocat@example.com".into(), true, "101".into());
    let (status, location, token, _) = round_trip(&app, &fake, "github", "/tools/figme", Tamper::Replay).await;
    assert_eq!((status, location.as_str()), (302, "/tools/figme"));
    let me = client_as(&app, &token.unwrap()).auth_session_get().await.unwrap().into_inner();
    assert_eq!(me.user.email, "octocat@example.com");
    assert!(me.user.email_verified);
    assert_eq!(me.user.name, "The Octocat");
    assert_eq!(me.user.image.as_deref(), Some("https://avatars.example/u/583231"), "the provider's picture");
    // The same GitHub account signs in to the same user, whatever its email says now.
    *fake.email.lock().unwrap() = ("changed@example.com".into(), true, "101".into());
    let (_, _, token, _) = round_trip(&app, &fake, "github", "https://evil.example/", Tamper::None).await;
    let again = client_as(&app, &token.unwrap()).auth_session_get().await.unwrap().into_inner();
    assert_eq!(again.user.id, me.user.id);
    // Paths a browser would turn into another host (a tab or a backslash after the first
    // slash) fall back to `/`.
    for evil in ["/\t/evil.example", "/\\evil.example", "/ /evil.example", "//evil.example"] {
        let (status, location, _, _) = round_trip(&app, &fake, "github", evil, Tamper::None).await;
        assert_eq!((status, location.as_str()), (302, "/"), "callbackURL {evil:?}");
    }

    // Links to an existing user only when both sides verified the email.
    let ada = actor(&app, "ada@example.com", Role::User).await; // verified (actor sets it)
    *fake.email.lock().unwrap() = ("ada@example.com".into(), true, "103".into());
    let (status, _, token, _) = round_trip(&app, &fake, "google", "/", Tamper::None).await;
    assert_eq!(status, 302);
    let linked = client_as(&app, &token.unwrap()).auth_session_get().await.unwrap().into_inner().user;
    assert_eq!(
        (linked.id, linked.image.as_deref()),
        (ada.id, Some("https://lh3.example/p")),
        "a picture for one with none"
    );
    // A picture of the user's own is kept on later sign-ins.
    app.state().store().user_set_profile(ada.id, None, Some(Some("https://mine.example/a.png"))).await.unwrap();
    let (_, _, token, _) = round_trip(&app, &fake, "google", "/", Tamper::None).await;
    let again = client_as(&app, &token.unwrap()).auth_session_get().await.unwrap().into_inner().user;
    assert_eq!(again.image.as_deref(), Some("https://mine.example/a.png"));

    let hash = app.state().hasher().hash("correct horse battery").await.unwrap();
    let unverified = funmagic_api::store::NewUser {
        email: "eve@example.com".into(),
        name: "Eve".into(),
        role: Role::User,
        email_verified: false,
    };
    app.state().store().user_create_with_password(&unverified, &hash).await.unwrap();
    *fake.email.lock().unwrap() = ("eve@example.com".into(), true, "104".into());
    let (status, _, token, code) = round_trip(&app, &fake, "github", "/", Tamper::None).await;
    assert_eq!((status, code.as_str()), (409, "ACCOUNT_EXISTS_UNVERIFIED"));
    assert!(token.is_none());

    // Provider-unverified email: no account.
    *fake.email.lock().unwrap() = ("new@example.com".into(), false, "105".into());
    let (status, _, _, code) = round_trip(&app, &fake, "google", "/", Tamper::None).await;
    assert_eq!((status, code.as_str()), (403, "EMAIL_NOT_VERIFIED"));

    // Tampering.
    *fake.email.lock().unwrap() = ("octocat@example.com".into(), true, "106".into());
    let (status, _, _, code) = round_trip(&app, &fake, "github", "/", Tamper::NoCookie).await;
    assert_eq!((status, code.as_str()), (400, "INVALID_STATE"), "state must match the browser's cookie");
    let (status, _, _, code) = round_trip(&app, &fake, "github", "/", Tamper::WrongVerifier).await;
    assert_eq!((status, code.as_str()), (400, "OAUTH_CODE_REJECTED"), "PKCE verifier must match");
    let (status, _, _, code) = round_trip(&app, &fake, "google", "/", Tamper::WrongVerifier).await;
    assert_eq!((status, code.as_str()), (400, "OAUTH_CODE_REJECTED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_embedded() {
    scenario(TestBackend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_scale_out() {
    scenario(TestBackend::ScaleOut).await;
}

/// With the web app on its own host (`web_url`) and an admin app listed in
/// `auth.cors_origins`, the OAuth flow may return to either (exact origins; paths go to the
/// web app), and mailed links point to the web app's pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_app_on_another_origin() {
    let (base, fake) = start_fake().await;
    let mut extra = SettingsLayer { web_url: Some("https://app.example.com/".into()), ..Default::default() };
    extra.auth.cors_origins = Some(vec!["https://admin.example.com".into()]);
    let app = app_with_providers_and(TestBackend::Embedded, &base, extra).await.unwrap();
    for (i, (callback, want)) in [
        ("https://app.example.com/welcome?x=1", "https://app.example.com/welcome?x=1"),
        ("/tools/figme", "https://app.example.com/tools/figme"),
        ("https://admin.example.com/users", "https://admin.example.com/users"),
        ("https://evil.example/", "https://app.example.com/"),
        ("https://app.example.com.evil.example/", "https://app.example.com/"),
        ("http://app.example.com/", "https://app.example.com/"),
    ]
    .into_iter()
    .enumerate()
    {
        *fake.email.lock().unwrap() = (format!("user{i}@example.com"), true, format!("20{i}"));
        let (status, location, _, _) = round_trip(&app, &fake, "github", callback, Tamper::None).await;
        assert_eq!((status, location.as_str()), (302, want), "callbackURL {callback}");
    }

    let sign_up = serde_json::json!({"name": "Ada", "email": "ada@example.com", "password": crate::PASSWORD});
    let resp = reqwest::Client::new()
        .post(format!("{}/api/auth/sign-up/email", app.base_url()))
        .json(&sign_up)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let reset = serde_json::json!({"email": "ada@example.com"});
    let resp = reqwest::Client::new()
        .post(format!("{}/api/auth/request-password-reset", app.base_url()))
        .json(&reset)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mails = app.state().mailer().outbox();
    let to_ada: Vec<&str> = mails.iter().filter(|m| m.to == "ada@example.com").map(|m| m.body.as_str()).collect();
    assert!(to_ada.iter().any(|b| b.contains("https://app.example.com/verify-email?token=")), "{to_ada:?}");
    assert!(to_ada.iter().any(|b| b.contains("https://app.example.com/reset-password?token=")), "{to_ada:?}");
}

#[tokio::test]
async fn unconfigured_provider_is_404() {
    let app = TestApp::spawn(TestBackend::Embedded).await.unwrap();
    let resp =
        no_redirects().get(format!("{}/api/auth/sign-in/social?provider=github", app.base_url())).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "PROVIDER_NOT_CONFIGURED");
}
