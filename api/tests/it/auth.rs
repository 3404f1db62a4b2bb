//! Sign-up, sign-in, sessions, tokens, API keys, CSRF, rate limits, mail flows.

use funmagic_api::config::SettingsLayer;
use funmagic_api::store::{KeyScope, Role};
use funmagic_api::testing::{TestApp, TestBackend};
use funmagic_sdk::types;

use crate::{PASSWORD, actor, client, client_as, err_code, raw_json};

funmagic_api::test_both_backends!(
    sign_up_sign_in_and_out,
    bad_input_is_422_with_codes,
    tampered_expired_and_revoked_tokens,
    api_key_scopes,
    csrf_protects_cookie_writes,
    verification_and_password_reset,
    banned_users_are_locked_out_at_once,
    reset_revokes_whatever_the_previous_holder_had,
    keys_cannot_approve_devices,
    sessions_and_mailed_links_expire_by_the_clock,
    own_sessions_listed_and_revoked,
    profile_name_and_picture,
);

fn sign_up_body(email: &str, password: &str) -> types::SignUpRequest {
    types::SignUpRequest {
        name: "Ada Lovelace".parse().unwrap(),
        email: email.parse().unwrap(),
        password: password.parse().unwrap(),
    }
}

async fn sign_up_sign_in_and_out(app: TestApp) {
    let anon = client(&app);
    let signed = anon.auth_sign_up_email(&sign_up_body("  Ada@Example.COM ", PASSWORD)).await.unwrap();
    let cookie = signed.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let signed = signed.into_inner();
    assert_eq!(signed.user.email, "ada@example.com", "emails are normalized");
    assert_eq!(signed.user.role, types::UserRole::User);
    assert!(signed.token.starts_with("fms_"));
    assert!(cookie.contains(&signed.token));

    let me = client_as(&app, &signed.token).auth_session_get().await.unwrap().into_inner();
    assert_eq!(me.user.id, signed.user.id);
    assert_eq!(me.scope, types::ApiKeyScope::Write);

    assert_eq!(
        err_code(anon.auth_sign_up_email(&sign_up_body("ada@example.com", PASSWORD)).await),
        (409, "EMAIL_TAKEN".into())
    );

    // Wrong password and unknown email answer the same.
    let wrong = types::SignInRequest {
        email: "ada@example.com".parse().unwrap(),
        password: "not the password".parse().unwrap(),
    };
    let unknown =
        types::SignInRequest { email: "nobody@example.com".parse().unwrap(), password: PASSWORD.parse().unwrap() };
    assert_eq!(err_code(anon.auth_sign_in_email(&wrong).await), (401, "INVALID_CREDENTIALS".into()));
    assert_eq!(err_code(anon.auth_sign_in_email(&unknown).await), (401, "INVALID_CREDENTIALS".into()));

    let again = anon
        .auth_sign_in_email(&types::SignInRequest {
            email: "ADA@example.com".parse().unwrap(),
            password: PASSWORD.parse().unwrap(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(again.token, signed.token, "each sign-in is a new session");

    client_as(&app, &signed.token).auth_sign_out().await.unwrap();
    assert_eq!(err_code(client_as(&app, &signed.token).auth_session_get().await), (401, "INVALID_TOKEN".into()));
    client_as(&app, &again.token).auth_session_get().await.expect("other sessions survive");
    assert_eq!(err_code(anon.auth_session_get().await), (401, "UNAUTHORIZED".into()));
}

async fn bad_input_is_422_with_codes(app: TestApp) {
    // What the spec refuses (the SDK would not even send it), the server refuses with its code.
    let body = |name: &str, email: &str, password: &str| serde_json::json!({"name": name, "email": email, "password": password});
    let cases = [
        (body("Ada", "ada@example.com", "short"), "PASSWORD_TOO_SHORT"),
        (body("Ada", "ada@example.com", &"x".repeat(129)), "PASSWORD_TOO_LONG"),
        (body("Ada", "not-an-email", PASSWORD), "INVALID_EMAIL"),
        (body("Ada", &format!("{}@example.com", "a".repeat(250)), PASSWORD), "INVALID_EMAIL"),
        (body(" ", "ada@example.com", PASSWORD), "INVALID_NAME"),
        (body(&"n".repeat(101), "ada@example.com", PASSWORD), "INVALID_NAME"),
        (body("A\u{7}da", "ada@example.com", PASSWORD), "INVALID_NAME"),
    ];
    for (body, code) in cases {
        let got = raw_json(&app, None, reqwest::Method::POST, "/api/auth/sign-up/email", body.clone()).await;
        assert_eq!(got, (422, code.to_string()), "{body}");
    }
    // Wrong JSON types and nulls are refused, never coerced.
    for body in [
        serde_json::json!({"name": 5, "email": "ada@example.com", "password": PASSWORD}),
        serde_json::json!({"name": "Ada", "email": true, "password": PASSWORD}),
        serde_json::json!({"name": "Ada", "email": "ada@example.com", "password": null}),
    ] {
        let got = raw_json(&app, None, reqwest::Method::POST, "/api/auth/sign-up/email", body.clone()).await;
        assert_eq!(got, (422, "VALIDATION_FAILED".to_string()), "{body}");
    }
    let got =
        raw_json(&app, None, reqwest::Method::POST, "/api/auth/device/code", serde_json::json!({"client_id": null}))
            .await;
    assert_eq!(got, (422, "VALIDATION_FAILED".to_string()), "an optional field is left out, never null");
    // A body that is not JSON at all is a 400 with a JSON error.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/auth/sign-in/email", app.base_url()))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "BAD_REQUEST");
    // Oversized bodies are refused from the declared length, before anything is read.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.server.addr).await.unwrap();
    let head = "POST /api/auth/sign-in/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\n\r\n";
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = socket.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Over HTTP/2 (h2c) a streamed body has neither Content-Length nor Transfer-Encoding:
    // the body itself is limited, on a route that needs no sign-in.
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let chunks = (0..32).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 * 1024])));
    let resp = h2
        .post(format!("{}/api/auth/sign-in/email", app.base_url()))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 413);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE", "{body}");
    // A small body over h2c still works.
    let resp = h2
        .post(format!("{}/api/auth/sign-in/email", app.base_url()))
        .json(&serde_json::json!({"email": "nobody@example.com", "password": "whatever123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

async fn tampered_expired_and_revoked_tokens(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let mut tampered = ada.token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [tampered.as_str(), "fms_garbage", "garbage", "fmk_", ""] {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/auth/get-session", app.base_url()))
            .header("authorization", format!("Bearer {bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "token {bad:?}");
    }
    // An expired session is refused (and deleted).
    let store = app.state().store();
    let hash = funmagic_api::auth::token::hash(&ada.token);
    let session = store.session_get_by_token(&hash).await.unwrap().unwrap();
    store.session_extend(session.id, funmagic_api::store::now() - chrono::Duration::seconds(1)).await.unwrap();
    assert_eq!(err_code(client_as(&app, &ada.token).auth_session_get().await), (401, "SESSION_EXPIRED".into()));
    assert!(store.session_get_by_token(&hash).await.unwrap().is_none());
}

async fn api_key_scopes(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let create =
        |name: &str, scope| types::CreateApiKeyRequest { name: name.parse().unwrap(), scope, expires_in_days: None };

    let read = as_ada.auth_api_key_create(&create("ci read", types::ApiKeyScope::Read)).await.unwrap().into_inner();
    assert!(read.key.starts_with("fmk_"));
    assert_eq!(read.api_key.prefix, &read.key[..12]);
    let write = as_ada.auth_api_key_create(&create("ci write", types::ApiKeyScope::Write)).await.unwrap().into_inner();
    assert_eq!(
        err_code(as_ada.auth_api_key_create(&create("nope", types::ApiKeyScope::Admin)).await),
        (403, "FORBIDDEN".into()),
        "plain users cannot mint admin keys"
    );

    let with_read = client_as(&app, &read.key);
    let me = with_read.auth_session_get().await.unwrap().into_inner();
    assert_eq!(me.api_key_id, Some(read.api_key.id));
    assert_eq!(me.scope, types::ApiKeyScope::Read);
    assert!(me.session.is_none());
    assert_eq!(
        err_code(with_read.auth_api_key_create(&create("x", types::ApiKeyScope::Read)).await),
        (403, "INSUFFICIENT_SCOPE".into())
    );
    let with_write = client_as(&app, &write.key);
    // A key never mints keys (a leaked key could otherwise outlive its own revocation).
    assert_eq!(
        err_code(with_write.auth_api_key_create(&create("from write", types::ApiKeyScope::Read)).await),
        (403, "SESSION_REQUIRED".into())
    );

    // The list never shows secrets.
    let list = as_ada.auth_api_key_list().await.unwrap().into_inner();
    assert_eq!(list.api_keys.len(), 2);
    let listed = serde_json::to_string(&list).unwrap();
    assert!(!listed.contains(&read.key) && !listed.contains(&write.key));

    // Revocation is immediate; a second revoke is 404.
    as_ada.auth_api_key_revoke(&read.api_key.id).await.unwrap();
    assert_eq!(err_code(with_read.auth_session_get().await), (401, "API_KEY_REVOKED".into()));
    assert_eq!(err_code(as_ada.auth_api_key_revoke(&read.api_key.id).await), (404, "NOT_FOUND".into()));

    // Another user cannot revoke Ada's key: 404, not 403.
    let bob = actor(&app, "bob@example.com", Role::User).await;
    assert_eq!(
        err_code(client_as(&app, &bob.token).auth_api_key_revoke(&write.api_key.id).await),
        (404, "NOT_FOUND".into())
    );
    with_write.auth_session_get().await.expect("still valid");

    // Expired keys stop working.
    let secret = funmagic_api::auth::token::generate("fmk_");
    app.state()
        .store()
        .api_key_create(
            ada.id,
            "old",
            "fmk_old",
            &funmagic_api::auth::token::hash(&secret),
            KeyScope::Write,
            Some(funmagic_api::store::now() - chrono::Duration::seconds(1)),
        )
        .await
        .unwrap();
    assert_eq!(err_code(client_as(&app, &secret).auth_session_get().await), (401, "API_KEY_EXPIRED".into()));
}

async fn csrf_protects_cookie_writes(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", app.base_url());
    let cookie = format!("funmagic.session_token={}", ada.token);
    let body = serde_json::json!({"name": "k", "scope": "read"});
    // Reads with a cookie need no Origin.
    let resp = http.get(url("/api/auth/get-session")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // Writes need a matching Origin.
    for origin in [None, Some("https://evil.example"), Some("null")] {
        let mut req = http.post(url("/api/auth/api-keys")).header("cookie", &cookie).json(&body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403, "origin {origin:?}");
        let err: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(err["code"], "CSRF_REJECTED");
    }
    let resp = http
        .post(url("/api/auth/api-keys"))
        .header("cookie", &cookie)
        .header("origin", app.base_url())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "same-origin writes pass");
    let resp = http
        .post(url("/api/auth/api-keys"))
        .header("cookie", &cookie)
        .header("referer", format!("{}/device", app.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a same-origin Referer passes when Origin is absent");
    // Bearer requests are not subject to the origin check.
    let resp = http
        .post(url("/api/auth/api-keys"))
        .bearer_auth(&ada.token)
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn verification_and_password_reset(app: TestApp) {
    let anon = client(&app);
    let signed = anon.auth_sign_up_email(&sign_up_body("ada@example.com", PASSWORD)).await.unwrap().into_inner();
    assert!(!signed.user.email_verified);
    let mail = app.state().mailer().outbox();
    let link = mail.iter().find(|m| m.to == "ada@example.com").expect("a verification mail").body.clone();
    let token = link.split("token=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let verified = anon.auth_email_verify(&token.parse().unwrap()).await.unwrap().into_inner();
    assert!(verified.email_verified);
    assert_eq!(
        err_code(anon.auth_email_verify(&token.parse().unwrap()).await),
        (400, "INVALID_TOKEN".into()),
        "single use"
    );

    // Reset: the answer does not reveal whether the account exists.
    anon.auth_password_reset_request(&types::PasswordResetRequest { email: "nobody@example.com".parse().unwrap() })
        .await
        .unwrap();
    anon.auth_password_reset_request(&types::PasswordResetRequest { email: "ada@example.com".parse().unwrap() })
        .await
        .unwrap();
    let mail = app.state().mailer().outbox();
    assert!(mail.iter().all(|m| m.to != "nobody@example.com"));
    let body = &mail.iter().rev().find(|m| m.subject.contains("Reset")).unwrap().body;
    let reset_token = body.split("--token ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let reset =
        |t: &str, p: &str| types::ResetPasswordRequest { token: t.parse().unwrap(), new_password: p.parse().unwrap() };
    let short = serde_json::json!({"token": reset_token, "newPassword": "short"});
    assert_eq!(
        raw_json(&app, None, reqwest::Method::POST, "/api/auth/reset-password", short).await,
        (422, "PASSWORD_TOO_SHORT".into())
    );
    // A malformed address is refused; an unknown one is answered like a known one (above).
    let bad = serde_json::json!({"email": format!("{}@example.com", "a".repeat(250))});
    assert_eq!(
        raw_json(&app, None, reqwest::Method::POST, "/api/auth/request-password-reset", bad).await,
        (422, "INVALID_EMAIL".into())
    );
    anon.auth_password_reset(&reset(&reset_token, "a brand new secret")).await.unwrap();
    assert_eq!(
        err_code(anon.auth_password_reset(&reset(&reset_token, "another secret!")).await),
        (400, "INVALID_TOKEN".into())
    );
    assert_eq!(err_code(client_as(&app, &signed.token).auth_session_get().await).0, 401, "reset signs out everywhere");
    let sign_in =
        |p: &str| types::SignInRequest { email: "ada@example.com".parse().unwrap(), password: p.parse().unwrap() };
    assert_eq!(err_code(anon.auth_sign_in_email(&sign_in(PASSWORD)).await).0, 401);
    let session = anon.auth_sign_in_email(&sign_in("a brand new secret")).await.unwrap().into_inner();

    // Change password: other sessions end, this one stays.
    let other = anon.auth_sign_in_email(&sign_in("a brand new secret")).await.unwrap().into_inner();
    let change = |current: &str| types::ChangePasswordRequest {
        current_password: current.parse().unwrap(),
        new_password: "third secret value".parse().unwrap(),
        revoke_other_sessions: None,
        revoke_api_keys: None,
    };
    assert_eq!(
        err_code(client_as(&app, &session.token).auth_password_change(&change("wrong!!!!")).await),
        (401, "INVALID_CREDENTIALS".into())
    );
    client_as(&app, &session.token).auth_password_change(&change("a brand new secret")).await.unwrap();
    client_as(&app, &session.token).auth_session_get().await.expect("the current session survives");
    assert_eq!(err_code(client_as(&app, &other.token).auth_session_get().await).0, 401);
}

async fn banned_users_are_locked_out_at_once(app: TestApp) {
    let admin = actor(&app, "root@example.com", Role::SuperAdmin).await;
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let key = as_ada
        .auth_api_key_create(&types::CreateApiKeyRequest {
            name: "k".parse().unwrap(),
            scope: types::ApiKeyScope::Write,
            expires_in_days: None,
        })
        .await
        .unwrap()
        .into_inner()
        .key;
    client_as(&app, &key).auth_session_get().await.unwrap(); // warm any cache
    let as_admin = client_as(&app, &admin.token);
    let banned = as_admin
        .admin_user_ban(&ada.id, &types::BanRequest { reason: Some("spam".parse().unwrap()) })
        .await
        .unwrap()
        .into_inner();
    assert!(banned.banned);
    assert_eq!(banned.ban_reason.as_deref(), Some("spam"));
    assert_eq!(err_code(as_ada.auth_session_get().await).0, 401, "sessions are gone");
    assert_eq!(err_code(client_as(&app, &key).auth_session_get().await), (403, "USER_BANNED".into()));
    let sign_in =
        types::SignInRequest { email: ada.email.clone().parse().unwrap(), password: PASSWORD.parse().unwrap() };
    assert_eq!(err_code(client(&app).auth_sign_in_email(&sign_in).await), (403, "USER_BANNED".into()));
    as_admin.admin_user_unban(&ada.id).await.unwrap();
    client(&app).auth_sign_in_email(&sign_in).await.expect("unbanned users sign in again");
    client_as(&app, &key).auth_session_get().await.expect("keys work again after unban");
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let mut extra = SettingsLayer::default();
    extra.auth.rate_limit_per_email_per_minute = Some(3);
    extra.auth.rate_limit_per_minute = Some(6);
    // Clients at other addresses (through a trusted proxy).
    extra.auth.trust_forwarded_for = Some(true);
    for backend in [TestBackend::Embedded, TestBackend::ScaleOut] {
        let Some(app) = TestApp::spawn_with(backend, extra.clone()).await else { continue };
        let http = reqwest::Client::new();
        let url = format!("{}/api/auth/sign-in/email", app.base_url());
        let body = serde_json::json!({"email": "ada@example.com", "password": "wrong password"});
        let mut statuses = vec![];
        for _ in 0..4 {
            let resp = http.post(&url).json(&body).send().await.unwrap();
            statuses.push(resp.status().as_u16());
            if resp.status() == 429 {
                let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "{retry}");
                let err: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(err["code"], "RATE_LIMITED");
            }
        }
        assert_eq!(statuses, [401, 401, 401, 429], "{backend:?}: per-email limit");
        // The same email from another address is not locked out by them (it used to be: five
        // wrong passwords from anyone locked the owner out).
        let elsewhere =
            http.post(&url).header("X-Forwarded-For", "203.0.113.9").json(&body).send().await.unwrap().status();
        assert_eq!(elsewhere.as_u16(), 401, "{backend:?}: the limit is per email and address");
        // Per IP: other emails, same client.
        let mut last = 0;
        for i in 0..3 {
            let body = serde_json::json!({"email": format!("u{i}@example.com"), "password": "x"});
            last = http.post(&url).json(&body).send().await.unwrap().status().as_u16();
        }
        assert_eq!(last, 429, "{backend:?}: per-IP limit");
    }
}

/// Scale-out: sign-out and bans on one API process take effect at once on another.
#[tokio::test]
async fn revocation_is_immediate_across_api_processes() {
    let Some(app) = TestApp::spawn(TestBackend::ScaleOut).await else { return };
    let peer = app.spawn_peer().await;
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let on_peer = funmagic_sdk::ClientBuilder::new(peer.base_url()).token(&ada.token).build().unwrap();
    on_peer.auth_session_get().await.unwrap(); // cached on the peer's side (Redis)
    on_peer.auth_session_get().await.unwrap();
    client_as(&app, &ada.token).auth_sign_out().await.unwrap();
    assert_eq!(err_code(on_peer.auth_session_get().await).0, 401);

    let admin = actor(&app, "root@example.com", Role::SuperAdmin).await;
    let bob = actor(&app, "bob@example.com", Role::User).await;
    let key = client_as(&app, &bob.token)
        .auth_api_key_create(&types::CreateApiKeyRequest {
            name: "k".parse().unwrap(),
            scope: types::ApiKeyScope::Read,
            expires_in_days: None,
        })
        .await
        .unwrap()
        .into_inner()
        .key;
    let key_on_peer = funmagic_sdk::ClientBuilder::new(peer.base_url()).token(&key).build().unwrap();
    key_on_peer.auth_session_get().await.unwrap();
    key_on_peer.auth_session_get().await.unwrap(); // now from the peer's own copy
    client_as(&app, &admin.token).admin_user_ban(&bob.id, &types::BanRequest { reason: None }).await.unwrap();
    assert_eq!(err_code(key_on_peer.auth_session_get().await), (403, "USER_BANNED".into()));

    // A role change, and a key revoked, on one process: the other's copies stop at once.
    let as_admin = client_as(&app, &admin.token);
    let carol = actor(&app, "carol@example.com", Role::User).await;
    as_admin.admin_user_role_set(&carol.id, &types::SetRoleRequest { role: types::UserRole::Admin }).await.unwrap();
    let carol_on_peer = funmagic_sdk::ClientBuilder::new(peer.base_url()).token(&carol.token).build().unwrap();
    for _ in 0..3 {
        carol_on_peer.admin_user_get(&admin.id).await.expect("an admin reads a user");
    }
    as_admin.admin_user_role_set(&carol.id, &types::SetRoleRequest { role: types::UserRole::User }).await.unwrap();
    assert_eq!(err_code(carol_on_peer.admin_user_get(&admin.id).await), (403, "FORBIDDEN".into()));

    // A user's generation lost (its key expired, or Redis lost its data) and the entry
    // written again from the database by another process, then a change: a copy made
    // before all that must not match the generation the change sets.
    let redis = app.state().redis().expect("scale-out has Redis");
    let mut conn = redis.conn();
    let erin = actor(&app, "erin@example.com", Role::User).await;
    as_admin.admin_user_role_set(&erin.id, &types::SetRoleRequest { role: types::UserRole::Admin }).await.unwrap();
    let erin_on_peer = funmagic_sdk::ClientBuilder::new(peer.base_url()).token(&erin.token).build().unwrap();
    for _ in 0..3 {
        erin_on_peer.admin_user_get(&admin.id).await.expect("an admin reads a user");
    }
    let _: i64 =
        redis::cmd("DEL").arg(redis.key(&format!("user-gen:{}", erin.id))).query_async(&mut conn).await.unwrap();
    client_as(&app, &erin.token).admin_user_get(&admin.id).await.expect("resolved again on the first process");
    as_admin.admin_user_role_set(&erin.id, &types::SetRoleRequest { role: types::UserRole::User }).await.unwrap();
    assert_eq!(err_code(erin_on_peer.admin_user_get(&admin.id).await), (403, "FORBIDDEN".into()));
    let carols_key = client_as(&app, &carol.token).auth_api_key_create(&write_key("k")).await.unwrap().into_inner();
    let carols_key_on_peer = funmagic_sdk::ClientBuilder::new(peer.base_url()).token(&carols_key.key).build().unwrap();
    for _ in 0..3 {
        carols_key_on_peer.auth_session_get().await.unwrap();
    }
    client_as(&app, &carol.token).auth_api_key_revoke(&carols_key.api_key.id).await.unwrap();
    assert_eq!(err_code(carols_key_on_peer.auth_session_get().await), (401, "API_KEY_REVOKED".into()));

    // A copy held in a process's memory is only served while the shared entry it copies is
    // there: a session that is gone from the database and from Redis (here removed behind
    // the API's back, as a Redis restart loses entries and tombstones) is refused at once.
    let dave = actor(&app, "dave@example.com", Role::User).await;
    let dave_on_peer = funmagic_sdk::ClientBuilder::new(peer.base_url()).token(&dave.token).build().unwrap();
    for _ in 0..3 {
        dave_on_peer.auth_session_get().await.unwrap();
    }
    let hash = funmagic_api::auth::token::hash(&dave.token);
    assert!(app.state().store().session_delete_by_token(&hash).await.unwrap());
    let dropped: i64 =
        redis::cmd("DEL").arg(redis.key(&format!("principal:{hash}"))).query_async(&mut conn).await.unwrap();
    assert_eq!(dropped, 1, "the peer cached the session in Redis");
    assert_eq!(err_code(dave_on_peer.auth_session_get().await).0, 401);
    peer.stop().await.unwrap();
}

/// Behind a proxy, limits key on the address the proxy reports; otherwise the header is
/// ignored (a client cannot dodge limits by sending its own X-Forwarded-For).
#[tokio::test]
async fn forwarded_for_only_when_trusted() {
    for trusted in [false, true] {
        let mut extra = SettingsLayer::default();
        extra.auth.rate_limit_per_minute = Some(2);
        extra.auth.trust_forwarded_for = Some(trusted);
        let app = TestApp::spawn_with(TestBackend::Embedded, extra).await.unwrap();
        let http = reqwest::Client::new();
        let url = format!("{}/api/auth/sign-in/email", app.base_url());
        let mut last = 0;
        for i in 0..3 {
            let body = serde_json::json!({"email": format!("u{i}@example.com"), "password": "x"});
            // Each request claims another client address, after a spoofed one the proxy kept.
            let xff = format!("6.6.6.6, 10.0.0.{i}");
            last = http.post(&url).header("x-forwarded-for", xff).json(&body).send().await.unwrap().status().as_u16();
        }
        assert_eq!(last, if trusted { 401 } else { 429 }, "trusted={trusted}");
    }
}

fn write_key(name: &str) -> types::CreateApiKeyRequest {
    types::CreateApiKeyRequest { name: name.parse().unwrap(), scope: types::ApiKeyScope::Write, expires_in_days: None }
}

/// Someone signs up first with Ada's address, makes an API key and approves a device code;
/// Ada resets the password by mail: all of it stops working, and her address is verified.
async fn reset_revokes_whatever_the_previous_holder_had(app: TestApp) {
    let anon = client(&app);
    let squatter = anon.auth_sign_up_email(&sign_up_body("ada@example.com", PASSWORD)).await.unwrap().into_inner();
    let as_squatter = client_as(&app, &squatter.token);
    let key = as_squatter.auth_api_key_create(&write_key("mine now")).await.unwrap().into_inner().key;
    client_as(&app, &key).auth_session_get().await.unwrap(); // warm any cache
    let device = anon
        .auth_device_code_create(&types::DeviceCodeRequest { client_id: Some("squatter laptop".parse().unwrap()) })
        .await
        .unwrap()
        .into_inner();
    as_squatter
        .auth_device_approve(&types::DeviceApproveRequest {
            user_code: device.user_code.clone().parse().unwrap(),
            approve: true,
        })
        .await
        .unwrap();

    anon.auth_password_reset_request(&types::PasswordResetRequest { email: "ada@example.com".parse().unwrap() })
        .await
        .unwrap();
    let mail = app.state().mailer().outbox();
    let body = &mail.iter().rev().find(|m| m.subject.contains("Reset")).unwrap().body;
    let token = body.split("--token ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    anon.auth_password_reset(&types::ResetPasswordRequest {
        token: token.parse().unwrap(),
        new_password: "adas own secret".parse().unwrap(),
    })
    .await
    .unwrap();

    assert_eq!(err_code(client_as(&app, &key).auth_session_get().await), (401, "API_KEY_REVOKED".into()));
    assert_eq!(err_code(as_squatter.auth_session_get().await).0, 401);
    let poll = types::DeviceTokenRequest {
        grant_type: "urn:ietf:params:oauth:grant-type:device_code".parse().unwrap(),
        device_code: device.device_code.parse().unwrap(),
    };
    assert_eq!(err_code(anon.auth_device_token_create(&poll).await), (400, "ACCESS_DENIED".into()));
    let ada = anon
        .auth_sign_in_email(&types::SignInRequest {
            email: "ada@example.com".parse().unwrap(),
            password: "adas own secret".parse().unwrap(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ada.user.email_verified, "a reset proves the address");
    assert!(client_as(&app, &ada.token).auth_api_key_list().await.unwrap().into_inner().api_keys.is_empty());

    // Changing the password revokes keys too, unless asked to keep them.
    let as_ada = client_as(&app, &ada.token);
    let kept = as_ada.auth_api_key_create(&write_key("ci")).await.unwrap().into_inner().key;
    let change = |current: &str, new: &str, keep: Option<bool>| types::ChangePasswordRequest {
        current_password: current.parse().unwrap(),
        new_password: new.parse().unwrap(),
        revoke_other_sessions: None,
        revoke_api_keys: keep.map(|k| !k),
    };
    as_ada.auth_password_change(&change("adas own secret", "second secret!", Some(true))).await.unwrap();
    client_as(&app, &kept).auth_session_get().await.expect("kept on request");
    as_ada.auth_password_change(&change("second secret!", "third secret!!", None)).await.unwrap();
    assert_eq!(err_code(client_as(&app, &kept).auth_session_get().await), (401, "API_KEY_REVOKED".into()));
}

/// A write key (even an admin's) cannot approve a device sign-in: the device would get a
/// full session that outlives the key.
async fn keys_cannot_approve_devices(app: TestApp) {
    let admin = actor(&app, "root@example.com", Role::SuperAdmin).await;
    let as_admin = client_as(&app, &admin.token);
    let key = as_admin
        .auth_api_key_create(&types::CreateApiKeyRequest {
            name: "ci".parse().unwrap(),
            scope: types::ApiKeyScope::Admin,
            expires_in_days: std::num::NonZeroU32::new(1),
        })
        .await
        .unwrap()
        .into_inner()
        .key;
    let anon = client(&app);
    let device =
        anon.auth_device_code_create(&types::DeviceCodeRequest { client_id: None }).await.unwrap().into_inner();
    let approve = types::DeviceApproveRequest { user_code: device.user_code.clone().parse().unwrap(), approve: true };
    assert_eq!(err_code(client_as(&app, &key).auth_device_approve(&approve).await), (403, "SESSION_REQUIRED".into()));
    assert_eq!(
        err_code(client_as(&app, &key).auth_api_key_create(&write_key("wider")).await),
        (403, "SESSION_REQUIRED".into())
    );
    // The code is still pending: the owner can approve it with a session.
    as_admin.auth_device_approve(&approve).await.unwrap();
}

/// Expiry is decided by the app's clock: moved forward, sessions and reset links lapse
/// exactly as if the time had passed, with no sleeping.
async fn sessions_and_mailed_links_expire_by_the_clock(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let anon = client(&app);
    anon.auth_password_reset_request(&types::PasswordResetRequest { email: "ada@example.com".parse().unwrap() })
        .await
        .unwrap();
    let mail = app.state().mailer().outbox();
    let body = &mail.iter().rev().find(|m| m.subject.contains("Reset")).unwrap().body;
    let reset_token = body.split("--token ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    client_as(&app, &ada.token).auth_session_get().await.expect("a fresh session");
    let key = client_as(&app, &ada.token)
        .auth_api_key_create(&types::CreateApiKeyRequest {
            name: "a day".parse().unwrap(),
            scope: types::ApiKeyScope::Read,
            expires_in_days: std::num::NonZeroU32::new(1),
        })
        .await
        .unwrap()
        .into_inner()
        .key;
    for _ in 0..3 {
        client_as(&app, &key).auth_session_get().await.expect("a key within its day (and now cached)");
    }

    app.advance_clock(std::time::Duration::from_secs(8 * 24 * 3600));
    assert_eq!(
        err_code(client_as(&app, &ada.token).auth_session_get().await),
        (401, "SESSION_EXPIRED".into()),
        "8 days without use, with sessions lasting 7"
    );
    // A key lapses on time even while its principal is cached.
    assert_eq!(err_code(client_as(&app, &key).auth_session_get().await), (401, "API_KEY_EXPIRED".into()));
    let reset = types::ResetPasswordRequest {
        token: reset_token.parse().unwrap(),
        new_password: "a brand new secret".parse().unwrap(),
    };
    assert_eq!(err_code(anon.auth_password_reset(&reset).await), (400, "INVALID_TOKEN".into()), "the link lapsed");
}

/// A user sees their live sessions (the current one marked) and ends one, or all others;
/// another user's session id is a 404, and a read-only key may look but not end.
async fn own_sessions_listed_and_revoked(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let bob = actor(&app, "bob@example.com", Role::User).await;
    let sign_in =
        types::SignInRequest { email: "ada@example.com".parse().unwrap(), password: PASSWORD.parse().unwrap() };
    let laptop = reqwest::Client::builder().user_agent("laptop-browser/1.0").build().unwrap();
    let phone = funmagic_sdk::Client::new_with_client(&app.base_url(), laptop);
    let second = phone.auth_sign_in_email(&sign_in).await.unwrap().into_inner();
    let third = client(&app).auth_sign_in_email(&sign_in).await.unwrap().into_inner();

    let as_ada = client_as(&app, &ada.token);
    let list = as_ada.auth_session_list().await.unwrap().into_inner().sessions;
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(list.iter().filter(|s| s.current).count(), 1);
    let me = as_ada.auth_session_get().await.unwrap().into_inner().session.unwrap();
    assert!(list.iter().any(|s| s.current && s.id == me.id));
    let of_second = list.iter().find(|s| s.id == second.session.id).expect("listed");
    assert_eq!(of_second.user_agent.as_deref(), Some("laptop-browser/1.0"));
    assert!(of_second.expires_at > of_second.created_at);
    let bobs = client_as(&app, &bob.token).auth_session_list().await.unwrap().into_inner().sessions;
    assert_eq!(bobs.len(), 1, "only one's own sessions");

    // Someone else's session, or none at all: 404, and it keeps working.
    assert_eq!(err_code(as_ada.auth_session_revoke(&bobs[0].id).await), (404, "NOT_FOUND".into()));
    client_as(&app, &bob.token).auth_session_get().await.expect("bob's session survives");
    assert_eq!(err_code(as_ada.auth_session_revoke(&uuid::Uuid::now_v7()).await).0, 404);

    // A read-only key may list but not end sessions.
    let key = as_ada
        .auth_api_key_create(&types::CreateApiKeyRequest {
            name: "read".parse().unwrap(),
            scope: types::ApiKeyScope::Read,
            expires_in_days: None,
        })
        .await
        .unwrap()
        .into_inner();
    let with_key = client_as(&app, &key.key);
    assert_eq!(
        with_key.auth_session_list().await.unwrap().into_inner().sessions.iter().filter(|s| s.current).count(),
        0
    );
    assert_eq!(err_code(with_key.auth_session_revoke(&second.session.id).await), (403, "INSUFFICIENT_SCOPE".into()));

    as_ada.auth_session_revoke(&second.session.id).await.unwrap();
    assert_eq!(err_code(client_as(&app, &second.token).auth_session_get().await).0, 401, "ended at once");
    client_as(&app, &third.token).auth_session_get().await.expect("the others survive");

    assert_eq!(as_ada.auth_sessions_revoke_others().await.unwrap().into_inner().revoked, 1);
    assert_eq!(err_code(client_as(&app, &third.token).auth_session_get().await).0, 401);
    let left = as_ada.auth_session_list().await.unwrap().into_inner().sessions;
    assert_eq!((left.len(), left[0].current), (1, true));
}

/// The name and picture change through `PATCH /api/auth/user`; bad values are 422.
async fn profile_name_and_picture(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let update = |name: Option<&str>, image: Option<&str>, remove: Option<bool>| types::UpdateProfileRequest {
        name: name.map(|n| n.parse().unwrap()),
        image: image.map(|i| i.parse().unwrap()),
        image_asset_id: None,
        remove_image: remove,
    };
    let user = as_ada
        .auth_user_update(&update(Some("  Ada King "), Some("https://img.example/ada.png"), None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((user.name.as_str(), user.image.as_deref()), ("Ada King", Some("https://img.example/ada.png")));
    // Seen at once through the same session (the cached principal was dropped).
    let me = as_ada.auth_session_get().await.unwrap().into_inner().user;
    assert_eq!(me.name.as_str(), "Ada King");

    let only_name = as_ada.auth_user_update(&update(Some("Ada"), None, None)).await.unwrap().into_inner();
    assert_eq!(only_name.image.as_deref(), Some("https://img.example/ada.png"), "absent fields stay");
    let removed = as_ada.auth_user_update(&update(None, None, Some(true))).await.unwrap().into_inner();
    assert_eq!((removed.name.as_str(), removed.image), ("Ada", None));

    let bad =
        |body: serde_json::Value| raw_json(&app, Some(&ada.token), reqwest::Method::PATCH, "/api/auth/user", body);
    assert_eq!(bad(serde_json::json!({"name": "   "})).await, (422, "INVALID_NAME".into()));
    assert_eq!(bad(serde_json::json!({"image": "javascript:alert(1)"})).await.0, 422);
    assert_eq!(bad(serde_json::json!({"name": null})).await.0, 422, "null is not a value");
    assert_eq!(bad(serde_json::json!({"removeImage": null})).await.0, 422);
    as_ada.auth_user_update(&update(None, Some("https://img.example/b.png"), None)).await.unwrap();
    let both = as_ada
        .auth_user_update(&update(None, Some("https://img.example/c.png"), Some(true)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(both.image, None, "removeImage wins over image");
    assert_eq!(raw_json(&app, None, reqwest::Method::PATCH, "/api/auth/user", serde_json::json!({})).await.0, 401);

    // An uploaded image becomes the picture: published, its public URL kept.
    let state = app.state();
    let store = |user: uuid::Uuid, name: &'static str, kind: funmagic_api::assets::FileType, data: Vec<u8>| async move {
        funmagic_api::assets::store_output(state, user, None, "avatars", name, kind, data.into()).await.unwrap()
    };
    let png = funmagic_api::testing::sample_png(16, 16);
    let photo = store(ada.id, "me.png", funmagic_api::assets::FileType::Png, png.clone()).await;
    let from_file =
        |id: uuid::Uuid| types::UpdateProfileRequest { image_asset_id: Some(id), ..update(None, None, None) };
    let user = as_ada.auth_user_update(&from_file(photo.id)).await.unwrap().into_inner();
    let url = user.image.expect("a picture");
    let served = funmagic_api::testing::fetch_public(&url).await.bytes().await.unwrap().to_vec();
    assert_eq!(served, png, "{url}");
    assert_eq!(as_ada.asset_get(&photo.id).await.unwrap().into_inner().visibility, types::Visibility::Public);
    let model = store(ada.id, "m.glb", funmagic_api::assets::FileType::Glb, b"glTF\x02\0\0\0".to_vec()).await;
    assert_eq!(err_code(as_ada.auth_user_update(&from_file(model.id)).await), (422, "INVALID_IMAGE".into()));
    let bob = actor(&app, "bob@example.com", Role::User).await;
    let bobs = store(bob.id, "b.png", funmagic_api::assets::FileType::Png, png.clone()).await;
    assert_eq!(err_code(as_ada.auth_user_update(&from_file(bobs.id)).await).0, 404, "not someone else's file");
    let both = types::UpdateProfileRequest {
        image_asset_id: Some(photo.id),
        ..update(None, Some("https://img.example/d.png"), None)
    };
    assert_eq!(err_code(as_ada.auth_user_update(&both).await).0, 422);
}

/// A web app on a listed origin may call the API from a browser with credentials (its
/// preflight answered, its errors readable, its cookie writes past the CSRF check); any
/// other origin gets no CORS headers and its cookie writes are refused. The session cookie
/// carries the configured domain.
#[tokio::test]
async fn cors_for_listed_origins_only() {
    let mut extra = SettingsLayer::default();
    extra.auth.cors_origins = Some(vec!["https://app.example.com/".into()]);
    extra.auth.cookie_domain = Some(".Example.com".into());
    for backend in [TestBackend::Embedded, TestBackend::ScaleOut] {
        let Some(app) = TestApp::spawn_with(backend, extra.clone()).await else { continue };
        let http = reqwest::Client::new();
        let url = |path: &str| format!("{}{path}", app.base_url());
        let (app_origin, evil) = ("https://app.example.com", "https://evil.example");
        let acao = |r: &reqwest::Response| {
            r.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string())
        };

        let preflight = |origin: &'static str| {
            http.request(reqwest::Method::OPTIONS, url("/api/auth/get-session"))
                .header("origin", origin)
                .header("access-control-request-method", "GET")
                .header("access-control-request-headers", "authorization")
                .send()
        };
        let ok = preflight(app_origin).await.unwrap();
        assert_eq!(ok.status(), 204);
        assert_eq!(acao(&ok).as_deref(), Some(app_origin));
        assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
        assert_eq!(ok.headers()["access-control-max-age"], "7200");
        assert!(ok.headers()["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
        assert_eq!(acao(&preflight(evil).await.unwrap()), None, "no CORS for other origins");

        let signed = http
            .post(url("/api/auth/sign-up/email"))
            .header("origin", app_origin)
            .json(&serde_json::json!({"name": "Ada", "email": "ada@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), 200);
        assert_eq!(acao(&signed).as_deref(), Some(app_origin));
        let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(cookie.contains("; Domain=example.com"), "{cookie}");
        let session = cookie.split(';').next().unwrap().to_string();

        // An error is readable by the page too; other origins get no headers.
        let denied = http.get(url("/api/auth/get-session")).header("origin", app_origin).send().await.unwrap();
        assert_eq!((denied.status().as_u16(), acao(&denied).as_deref()), (401, Some(app_origin)));
        let other = http.get(url("/api/auth/get-session")).header("origin", evil).send().await.unwrap();
        assert_eq!(acao(&other), None);
        assert!(other.headers().get_all("vary").iter().any(|v| v.to_str().unwrap().contains("Origin")));

        // Cookie-authenticated writes: the listed origin passes the CSRF check, others do not.
        let sign_out = |origin: &'static str| {
            http.post(url("/api/auth/sign-out")).header("origin", origin).header("cookie", session.clone()).send()
        };
        assert_eq!(sign_out(evil).await.unwrap().status(), 403);
        let out = sign_out(app_origin).await.unwrap();
        assert_eq!((out.status().as_u16(), acao(&out).as_deref()), (200, Some(app_origin)));
    }
}
