//! Admin user management and its role rules.

use funmagic_api::store::Role;
use funmagic_api::testing::TestApp;
use funmagic_sdk::types;

use crate::{actor, client_as, err_code};

funmagic_api::test_both_backends!(admins_manage_users_super_admins_manage_roles, last_super_admin_stays);

async fn admins_manage_users_super_admins_manage_roles(app: TestApp) {
    let root = actor(&app, "root@example.com", Role::SuperAdmin).await;
    let admin = actor(&app, "admin@example.com", Role::Admin).await;
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let bob = actor(&app, "bob@example.com", Role::User).await;
    let (as_root, as_admin, as_ada) =
        (client_as(&app, &root.token), client_as(&app, &admin.token), client_as(&app, &ada.token));

    // Plain users: 403 on every admin route.
    assert_eq!(err_code(as_ada.admin_user_list(None, None, None).await), (403, "FORBIDDEN".into()));
    assert_eq!(err_code(as_ada.admin_user_get(&bob.id).await), (403, "FORBIDDEN".into()));

    // Admins list, search and page through users.
    let all = as_admin.admin_user_list(None, None, None).await.unwrap().into_inner();
    assert_eq!(all.users.len(), 4);
    assert!(all.next_cursor.is_none());
    let found = as_admin.admin_user_list(None, None, Some(&"ADA@".parse().unwrap())).await.unwrap().into_inner();
    assert_eq!(found.users.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(), ["ada@example.com"]);
    let none = as_admin.admin_user_list(None, None, Some(&"%".parse().unwrap())).await.unwrap().into_inner();
    assert!(none.users.is_empty(), "LIKE wildcards are escaped");
    // Filters are typed like bodies: a NUL byte (which PostgreSQL cannot store or compare)
    // or another control character is a 400, never a 500.
    for path in [
        "/api/admin/users?q=a%00b",
        "/api/tasks?tool=ec%00ho",
        "/api/admin/tasks?tool=%01",
        "/api/assets?module=up%00loads",
        "/api/tools/ec%00ho",
    ] {
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", app.base_url()))
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["code"], "BAD_REQUEST", "{path}");
    }
    let page = as_admin.admin_user_list(None, std::num::NonZeroU32::new(3), None).await.unwrap().into_inner();
    assert_eq!(page.users.len(), 3);
    let rest = as_admin
        .admin_user_list(page.next_cursor.as_ref(), std::num::NonZeroU32::new(3), None)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.users.len(), 1);
    assert_eq!(as_admin.admin_user_get(&ada.id).await.unwrap().into_inner().email, "ada@example.com");
    assert_eq!(err_code(as_admin.admin_user_get(&uuid::Uuid::now_v7()).await), (404, "NOT_FOUND".into()));

    // Only a super admin changes roles.
    let promote = types::SetRoleRequest { role: types::UserRole::Admin };
    assert_eq!(err_code(as_admin.admin_user_role_set(&ada.id, &promote).await), (403, "FORBIDDEN".into()));
    let ada_now = as_root.admin_user_role_set(&ada.id, &promote).await.unwrap().into_inner();
    assert_eq!(ada_now.role, types::UserRole::Admin);
    // The change applies to Ada's existing session at once.
    as_ada.admin_user_list(None, None, None).await.expect("Ada is an admin now");
    as_root.admin_user_role_set(&ada.id, &types::SetRoleRequest { role: types::UserRole::User }).await.unwrap();
    assert_eq!(err_code(as_ada.admin_user_list(None, None, None).await).0, 403);

    // Admins ban users but not admins; nobody bans themselves or a super admin.
    let no_reason = types::BanRequest { reason: None };
    assert_eq!(err_code(as_admin.admin_user_ban(&admin.id, &no_reason).await), (409, "CANNOT_BAN_SELF".into()));
    assert_eq!(err_code(as_admin.admin_user_ban(&root.id, &no_reason).await).0, 403);
    as_admin.admin_user_ban(&bob.id, &no_reason).await.unwrap();
    let other_admin = actor(&app, "admin2@example.com", Role::Admin).await;
    assert_eq!(err_code(as_admin.admin_user_ban(&other_admin.id, &no_reason).await).0, 403);
    as_root.admin_user_ban(&other_admin.id, &no_reason).await.expect("super admins ban admins");

    // Revoke sessions.
    let revoked = as_admin.admin_user_sessions_revoke(&ada.id).await.unwrap().into_inner();
    assert_eq!(revoked.revoked, 1);
    assert_eq!(err_code(as_ada.auth_session_get().await).0, 401);
}

async fn last_super_admin_stays(app: TestApp) {
    let root = actor(&app, "root@example.com", Role::SuperAdmin).await;
    let as_root = client_as(&app, &root.token);
    let demote = types::SetRoleRequest { role: types::UserRole::Admin };
    assert_eq!(err_code(as_root.admin_user_role_set(&root.id, &demote).await), (409, "LAST_SUPER_ADMIN".into()));
    let second = actor(&app, "second@example.com", Role::SuperAdmin).await;
    // Two super admins demoting each other at the same time: exactly one wins.
    let as_second = client_as(&app, &second.token);
    let (a, b) = tokio::join!(
        as_root.admin_user_role_set(&second.id, &demote),
        as_second.admin_user_role_set(&root.id, &demote)
    );
    let wins = [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count();
    assert!(wins <= 1, "never zero super admins");
    let supers = app.state().store().user_count_with_role(Role::SuperAdmin).await.unwrap();
    assert_eq!(supers, 1);
}
