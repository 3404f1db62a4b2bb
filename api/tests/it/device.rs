//! RFC 8628 device authorization grant, as `funmagic auth login` uses it.

use funmagic_api::store::Role;
use funmagic_api::testing::TestApp;
use funmagic_sdk::types;

use crate::{actor, client, client_as, err_code};

funmagic_api::test_both_backends!(device_flow_grants_once, device_flow_denied_and_wrong_codes);

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn poll(code: &str) -> types::DeviceTokenRequest {
    types::DeviceTokenRequest { grant_type: GRANT.into(), device_code: code.into() }
}

async fn device_flow_grants_once(app: TestApp) {
    let anon = client(&app);
    let code = anon
        .auth_device_code_create(&types::DeviceCodeRequest { client_id: Some("funmagic-cli test".into()) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code.interval, 5);
    assert!(code.verification_uri.ends_with("/device"));
    assert!(code.verification_uri_complete.contains(&code.user_code));
    // The approval page is served.
    let page = reqwest::get(&code.verification_uri).await.unwrap().text().await.unwrap();
    assert!(page.contains("/api/auth/device/approve"));

    assert_eq!(
        err_code(anon.auth_device_token_create(&poll(&code.device_code)).await),
        (400, "AUTHORIZATION_PENDING".into())
    );
    assert_eq!(err_code(anon.auth_device_token_create(&poll(&code.device_code)).await), (400, "SLOW_DOWN".into()));

    let ada = actor(&app, "ada@example.com", Role::User).await;
    let typed = code.user_code.to_lowercase().replace('-', "");
    let approved = client_as(&app, &ada.token)
        .auth_device_approve(&types::DeviceApproveRequest { user_code: typed, approve: true })
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
        .auth_device_approve(&types::DeviceApproveRequest { user_code: code.user_code.clone(), approve: true })
        .await;
    assert_eq!(err_code(again), (404, "INVALID_USER_CODE".into()));
}

async fn device_flow_denied_and_wrong_codes(app: TestApp) {
    let anon = client(&app);
    let code = anon.auth_device_code_create(&types::DeviceCodeRequest { client_id: None }).await.unwrap().into_inner();
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let as_ada = client_as(&app, &ada.token);
    let wrong =
        as_ada.auth_device_approve(&types::DeviceApproveRequest { user_code: "ZZZZ-ZZZZ".into(), approve: true }).await;
    assert_eq!(err_code(wrong), (404, "INVALID_USER_CODE".into()));
    as_ada
        .auth_device_approve(&types::DeviceApproveRequest { user_code: code.user_code.clone(), approve: false })
        .await
        .unwrap();
    assert_eq!(err_code(anon.auth_device_token_create(&poll(&code.device_code)).await), (400, "ACCESS_DENIED".into()));
    assert_eq!(err_code(anon.auth_device_token_create(&poll("fmd_unknown")).await), (400, "INVALID_GRANT".into()));
    let bad = types::DeviceTokenRequest { grant_type: "password".into(), device_code: code.device_code };
    assert_eq!(err_code(anon.auth_device_token_create(&bad).await), (400, "UNSUPPORTED_GRANT_TYPE".into()));
}
