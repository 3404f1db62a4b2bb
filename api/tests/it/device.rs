//! RFC 8628 device authorization grant, as `funmagic auth login` uses it.

use funmagic_api::store::Role;
use funmagic_api::testing::TestApp;
use funmagic_sdk::types;

use crate::{actor, client, client_as, err_code, raw_json};

funmagic_api::test_both_backends!(device_flow_grants_once, device_flow_denied_and_wrong_codes);

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn poll(code: &str) -> types::DeviceTokenRequest {
    types::DeviceTokenRequest { grant_type: GRANT.parse().unwrap(), device_code: code.parse().unwrap() }
}

async fn device_flow_grants_once(app: TestApp) {
    let anon = client(&app);
    let code = anon
        .auth_device_code_create(&types::DeviceCodeRequest { client_id: Some("funmagic-cli test".parse().unwrap()) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code.interval, 5);
    assert!(code.verification_uri.ends_with("/device"));
    assert!(code.verification_uri_complete.contains(&code.user_code));
    // The approval page sends a signed-out visitor to sign in first, then back with the code.
    let page = reqwest::get(&code.verification_uri_complete).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.url().path(), "/sign-in");
    assert!(page.url().query().unwrap_or_default().contains("next=/device%3Fuser_code%3D"), "{}", page.url());

    assert_eq!(
        err_code(anon.auth_device_token_create(&poll(&code.device_code)).await),
        (400, "AUTHORIZATION_PENDING".into())
    );
    assert_eq!(err_code(anon.auth_device_token_create(&poll(&code.device_code)).await), (400, "SLOW_DOWN".into()));

    let ada = actor(&app, "ada@example.com", Role::User).await;
    // Signed in, the page asks for the code, filled in from the link, with its script.
    let page = reqwest::Client::new()
        .get(&code.verification_uri_complete)
        .header("cookie", format!("funmagic.session_token={}", ada.token))
        .send()
        .await
        .unwrap();
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let page = page.text().await.unwrap();
    assert!(page.contains("/device.js") && page.contains(&format!("value=\"{}\"", code.user_code)), "{page}");
    // Typed as a person would: lower case, a space instead of the dash.
    let typed = code.user_code.to_lowercase().replace('-', " ");
    // Before approving, the page shows who asked and when.
    assert_eq!(err_code(anon.auth_device_pending_get(&code.user_code.parse().unwrap()).await).0, 401);
    let pending =
        client_as(&app, &ada.token).auth_device_pending_get(&typed.parse().unwrap()).await.unwrap().into_inner();
    assert_eq!(
        (pending.client_name.as_str(), pending.user_code.as_str()),
        ("funmagic-cli test", code.user_code.as_str())
    );
    assert!((0..60).contains(&pending.age_secs), "{}", pending.age_secs);
    let approved = client_as(&app, &ada.token)
        .auth_device_approve(&types::DeviceApproveRequest { user_code: typed.parse().unwrap(), approve: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.client_name, "funmagic-cli test");
    let token = anon.auth_device_token_create(&poll(&code.device_code)).await.unwrap().into_inner();
    assert_eq!(token.token_type, "Bearer");
    assert!(token.expires_in > 0);
    let me = client_as(&app, &token.access_token).auth_session_get().await.unwrap().into_inner();
    assert_eq!(me.user.id, ada.id);
    assert_eq!(err_code(anon.auth_device_token_create(&poll(&code.device_code)).await), (400, "INVALID_GRANT".into()));
    // Approving the same code again fails.
    let again = client_as(&app, &ada.token)
        .auth_device_approve(&types::DeviceApproveRequest {
            user_code: code.user_code.clone().parse().unwrap(),
            approve: true,
        })
        .await;
    assert_eq!(err_code(again), (404, "INVALID_USER_CODE".into()));
    assert_eq!(
        err_code(client_as(&app, &ada.token).auth_device_pending_get(&code.user_code.parse().unwrap()).await),
        (404, "INVALID_USER_CODE".into()),
        "a decided code is no longer pending"
    );
}

async fn device_flow_denied_and_wrong_codes(app: TestApp) {
    let anon = client(&app);
    let code = anon.auth_device_code_create(&types::DeviceCodeRequest { client_id: None }).await.unwrap().into_inner();
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let wrong = as_ada
        .auth_device_approve(&types::DeviceApproveRequest { user_code: "ZZZZ-ZZZZ".parse().unwrap(), approve: true })
        .await;
    assert_eq!(err_code(wrong), (404, "INVALID_USER_CODE".into()));
    as_ada
        .auth_device_approve(&types::DeviceApproveRequest {
            user_code: code.user_code.clone().parse().unwrap(),
            approve: false,
        })
        .await
        .unwrap();
    assert_eq!(err_code(anon.auth_device_token_create(&poll(&code.device_code)).await), (400, "ACCESS_DENIED".into()));
    assert_eq!(err_code(anon.auth_device_token_create(&poll("fmd_unknown")).await), (400, "INVALID_GRANT".into()));
    // RFC 8628's error for another grant type (outside the spec's enum; the SDK cannot send it).
    let bad = serde_json::json!({ "grant_type": "password", "device_code": code.device_code });
    let got = raw_json(&app, None, reqwest::Method::POST, "/api/auth/device/token", bad).await;
    assert_eq!(got, (400, "UNSUPPORTED_GRANT_TYPE".into()));
}
