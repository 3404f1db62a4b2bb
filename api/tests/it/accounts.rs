//! Deleting an account, one's own or by an admin: credentials and files go at once,
//! unfinished tasks are cancelled with their credits released, the ledger and the tasks stay
//! on an anonymised tombstone, and the last super admin cannot go.

use std::time::Duration;

use funmagic_api::assets::FileType;
use funmagic_api::storage::Bucket;
use funmagic_api::store::{NewUser, Role, TransactionType};
use funmagic_api::testing::TestApp;
use funmagic_sdk::types;

use crate::{PASSWORD, actor, client, client_as, echo, err_code, funded, raw_json};

funmagic_api::test_both_backends!(
    own_account_deleted_ledger_and_tasks_kept,
    accounts_without_a_password_need_a_fresh_sign_in,
    admins_delete_accounts_by_role,
);

/// Waits until the task's status (read from the store: its owner may be gone) is `want`.
async fn wait_status(app: &TestApp, task: uuid::Uuid, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = app.state().store().task_get(task).await.unwrap().expect("the task stays");
        if row.status.to_string() == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "task {task} is {}, not {want}", row.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn delete_own(app: &TestApp, token: &str, password: Option<&str>) -> (u16, String) {
    let body = match password {
        Some(p) => serde_json::json!({ "password": p }),
        None => serde_json::json!({}),
    };
    raw_json(app, Some(token), reqwest::Method::DELETE, "/api/auth/user", body).await
}

async fn own_account_deleted_ledger_and_tasks_kept(app: TestApp) {
    let ada = funded(&app, "ada@example.com", 20).await;
    let admin = actor(&app, "admin@example.com", Role::Admin).await;
    let as_ada = client_as(&app, &ada.token);
    let key = as_ada
        .auth_api_key_create(&types::CreateApiKeyRequest {
            name: "script".parse().unwrap(),
            scope: types::ApiKeyScope::Write,
            expires_in_days: None,
        })
        .await
        .unwrap()
        .into_inner();
    let state = app.state();
    let png = funmagic_api::testing::sample_png(32, 32);
    let file = funmagic_api::assets::store_output(state, ada.id, None, "uploads", "me.png", FileType::Png, png.into())
        .await
        .unwrap();
    let finished = as_ada.task_create(None, &echo(serde_json::json!({}))).await.unwrap().into_inner().task;
    wait_status(&app, finished.id, "completed").await;
    // A two-step chain (1 + 4 credits), caught in its first step: the cancel stops it
    // before the second.
    let as_admin = client_as(&app, &admin.token);
    let echo_tool =
        as_admin.admin_tool_list().await.unwrap().into_inner().tools.into_iter().find(|t| t.slug == "echo").unwrap();
    let mut config = echo_tool.config.unwrap();
    let mut second = config["steps"][0].clone();
    (second["id"], second["cost"]) = ("echo-2".into(), 4.into());
    config["steps"].as_array_mut().unwrap().push(second);
    let tool = types::ToolInput {
        slug: "echo-twice".parse().unwrap(),
        title: "Echo twice".parse().unwrap(),
        description: None,
        tool_type_id: echo_tool.tool_type.unwrap().id,
        config,
        is_active: Some(true),
        featured: None,
        position: None,
    };
    as_admin.admin_tool_create(&tool).await.unwrap();
    let chain = types::TaskCreateRequest {
        tool_slug: "echo-twice".parse().unwrap(),
        run_all_steps: Some(true),
        ..echo(serde_json::json!({"delayMs": 1500}))
    };
    let running = as_ada.task_create(None, &chain).await.unwrap().into_inner().task;
    wait_status(&app, running.id, "running").await;

    // The proof: a missing password is 422, a wrong one 401, and nothing happens.
    assert_eq!(delete_own(&app, &ada.token, None).await.0, 422);
    assert_eq!(delete_own(&app, &ada.token, Some("not the password")).await, (401, "INVALID_CREDENTIALS".into()));
    as_ada.auth_session_get().await.expect("still signed in");
    assert_eq!(
        err_code(client_as(&app, &key.key).auth_user_delete(&types::DeleteAccountRequest { password: None }).await),
        (422, "VALIDATION_FAILED".into()),
        "a key needs the password too"
    );

    let resp = reqwest::Client::new()
        .delete(format!("{}/api/auth/user", app.base_url()))
        .bearer_auth(&ada.token)
        .json(&serde_json::json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Max-Age=0"), "the session cookie is cleared: {cookie}");

    // Every credential is gone at once, the files too.
    assert_eq!(err_code(as_ada.auth_session_get().await).0, 401);
    assert_eq!(err_code(client_as(&app, &key.key).auth_session_get().await).0, 401);
    assert!(state.store().asset_get(file.id).await.unwrap().is_none());
    assert!(state.storage().get(Bucket::Private, &file.storage_key).await.is_err(), "the object is deleted");
    let sign_in = types::SignInRequest { email: ada.email.parse().unwrap(), password: PASSWORD.parse().unwrap() };
    assert_eq!(err_code(client(&app).auth_sign_in_email(&sign_in).await).0, 401);

    // The running task is cancelled; its unspent credits come back; the ledger holds.
    wait_status(&app, running.id, "cancelled").await;
    wait_status(&app, finished.id, "completed").await;
    let credits = state.store().credits_get(ada.id).await.unwrap();
    assert_eq!(credits.reserved_balance, 0, "{credits:?}");
    assert_eq!(credits.balance, 18, "1 for the finished task, 1 for the chain's first step; its second released");
    assert!(state.store().credits_invariant_violations(ada.id).await.unwrap().is_empty());
    let ledger = state.store().credits_transactions(ada.id, None, None, 100).await.unwrap();
    assert!(ledger.iter().any(|t| t.kind == TransactionType::Spend), "{ledger:?}");

    // The tombstone: an admin sees it anonymised; the address is free again.
    let tomb = as_admin.admin_user_get(&ada.id).await.unwrap().into_inner();
    assert!(tomb.deleted_at.is_some());
    assert!(tomb.email.starts_with("deleted-") && tomb.email.ends_with("@deleted.invalid"), "{}", tomb.email);
    assert_eq!((tomb.name.as_str(), tomb.image, tomb.banned), ("Deleted user", None, true));
    assert_eq!(as_admin.task_get(&running.id).await.unwrap().into_inner().task.user_id, ada.id);
    assert_eq!(err_code(as_admin.admin_user_delete(&ada.id).await).0, 404, "already deleted");
    let again = types::SignUpRequest {
        name: "Ada".parse().unwrap(),
        email: ada.email.parse().unwrap(),
        password: PASSWORD.parse().unwrap(),
    };
    let fresh = client(&app).auth_sign_up_email(&again).await.unwrap().into_inner();
    assert_ne!(fresh.user.id, ada.id);

    // A file stored for the account afterwards (a step that ended after the cancel) is swept.
    let late = funmagic_api::assets::store_output(
        state,
        ada.id,
        Some(running.id),
        "image-gen",
        "late.png",
        FileType::Png,
        funmagic_api::testing::sample_png(8, 8).into(),
    )
    .await
    .unwrap();
    assert_eq!(funmagic_api::accounts::flows::sweep_deleted_accounts(state).await.unwrap(), 1);
    assert!(state.store().asset_get(late.id).await.unwrap().is_none());
    assert_eq!(funmagic_api::accounts::flows::sweep_deleted_accounts(state).await.unwrap(), 0);
}

/// An account with no password (OAuth sign-in only) proves itself with a session signed in
/// within the last ten minutes, and never with an API key.
async fn accounts_without_a_password_need_a_fresh_sign_in(app: TestApp) {
    use funmagic_api::accounts::flows;
    let state = app.state();
    let oauth_user =
        |email: &str| NewUser { email: email.into(), name: "Octo".into(), role: Role::User, email_verified: true };
    let octo = state.store().user_create(&oauth_user("octo@example.com")).await.unwrap();
    state.store().account_link(octo.id, "github", "583231", None, Some("read:user")).await.unwrap();
    state.store().account_touch("github", "583231", state.clock().now()).await.unwrap();
    let old = flows::create_session(state, octo.clone(), &flows::Client::default()).await.unwrap();
    let key = client_as(&app, &old.token)
        .auth_api_key_create(&types::CreateApiKeyRequest {
            name: "k".parse().unwrap(),
            scope: types::ApiKeyScope::Write,
            expires_in_days: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(delete_own(&app, &key.key, None).await, (403, "REAUTHENTICATION_REQUIRED".into()));
    app.advance_clock(Duration::from_secs(11 * 60));
    assert_eq!(delete_own(&app, &old.token, None).await, (403, "REAUTHENTICATION_REQUIRED".into()));
    // A new session without a new OAuth sign-in (as a device approval would mint) is not enough.
    let minted = flows::create_session(state, octo.clone(), &flows::Client::default()).await.unwrap();
    assert_eq!(delete_own(&app, &minted.token, None).await, (403, "REAUTHENTICATION_REQUIRED".into()));
    state.store().account_touch("github", "583231", state.clock().now()).await.unwrap();
    let fresh = flows::create_session(state, octo.clone(), &flows::Client::default()).await.unwrap();
    assert_eq!(delete_own(&app, &fresh.token, None).await, (200, String::new()));
    assert_eq!(err_code(client_as(&app, &old.token).auth_session_get().await).0, 401);
    assert!(state.store().user_get(octo.id).await.unwrap().unwrap().deleted_at.is_some());
}

/// Admins delete users; only a super admin deletes an admin; the last super admin stays.
async fn admins_delete_accounts_by_role(app: TestApp) {
    let root = actor(&app, "root@example.com", Role::SuperAdmin).await;
    let admin = actor(&app, "admin@example.com", Role::Admin).await;
    let other_admin = actor(&app, "admin2@example.com", Role::Admin).await;
    let bob = actor(&app, "bob@example.com", Role::User).await;
    let carol = actor(&app, "carol@example.com", Role::User).await;
    let (as_root, as_admin) = (client_as(&app, &root.token), client_as(&app, &admin.token));

    assert_eq!(err_code(client_as(&app, &carol.token).admin_user_delete(&bob.id).await), (403, "FORBIDDEN".into()));
    assert_eq!(err_code(as_admin.admin_user_delete(&other_admin.id).await).0, 403, "admins are a super admin's");
    assert_eq!(err_code(as_admin.admin_user_delete(&uuid::Uuid::now_v7()).await).0, 404);

    as_admin.admin_user_delete(&bob.id).await.unwrap();
    assert_eq!(err_code(client_as(&app, &bob.token).auth_session_get().await).0, 401);
    let role = types::SetRoleRequest { role: types::UserRole::Admin };
    assert_eq!(err_code(as_root.admin_user_role_set(&bob.id, &role).await).0, 404, "a tombstone is not promoted");
    // An admin's uploads to the admin bucket are the site's (banner thumbnails, style
    // previews): they stay when the admin's account goes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("banner.png");
    std::fs::write(&path, funmagic_api::testing::sample_png(16, 16)).unwrap();
    let site_file =
        funmagic_sdk::files::upload_admin_file(&client_as(&app, &other_admin.token), &path, None, |_, _| {})
            .await
            .unwrap();
    as_root.admin_user_delete(&other_admin.id).await.unwrap();
    assert!(app.state().store().asset_get(site_file.id).await.unwrap().is_some(), "site files stay");
    assert_eq!(funmagic_api::accounts::flows::sweep_deleted_accounts(app.state()).await.unwrap(), 0);

    // The only super admin cannot go, by either route; with a second one, it can.
    assert_eq!(err_code(as_root.admin_user_delete(&root.id).await), (409, "LAST_SUPER_ADMIN".into()));
    assert_eq!(delete_own(&app, &root.token, Some(PASSWORD)).await, (409, "LAST_SUPER_ADMIN".into()));
    let promote = types::SetRoleRequest { role: types::UserRole::SuperAdmin };
    as_root.admin_user_role_set(&admin.id, &promote).await.unwrap();
    assert_eq!(delete_own(&app, &root.token, Some(PASSWORD)).await, (200, String::new()));
    assert_eq!(err_code(as_admin.admin_user_delete(&admin.id).await), (409, "LAST_SUPER_ADMIN".into()));
}
