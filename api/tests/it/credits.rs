//! The credits ledger: concurrency, a property test against a model, the HTTP API,
//! idempotency, admin adjustments.

use std::collections::HashMap;
use std::sync::Arc;

use funmagic_api::credits;
use funmagic_api::http::error::status_of;
use funmagic_api::store::{Booked, Role, TransactionType};
use funmagic_api::testing::{TestApp, TestBackend};
use funmagic_sdk::types;

use crate::{actor, client, client_as, err_code, raw_json};

funmagic_api::test_both_backends!(
    concurrent_reservations_never_overspend,
    credits_api_and_admin_adjust,
    ledger_operations_resolve_once,
    the_ledger_check_reads_one_snapshot_under_traffic
);

/// Found by the chaos suite (seed 3): the per-account check read the account, the sums and
/// the last row with separate statements, so under live traffic it reported violations
/// that were only writes landing between its reads; the all-accounts check (the ledger
/// metric and its alert) did the same. Each reads one snapshot now.
async fn the_ledger_check_reads_one_snapshot_under_traffic(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let state = Arc::new(app.state().clone());
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let state = state.clone();
            tokio::spawn(async move {
                for i in 0..150 {
                    let reference = format!("grant-{w}-{i}");
                    state.store().credits_grant(ada.id, TransactionType::Bonus, 1, &reference, None).await.unwrap();
                    credits::reserve(&state, ada.id, &format!("task-{w}-{i}"), 1).await.unwrap();
                }
            })
        })
        .collect();
    let mut checks = 0;
    while writers.iter().any(|w| !w.is_finished()) {
        assert_invariants(&app, ada.id).await;
        // The all-accounts check behind the ledger metric and its alert, too.
        let all = app.state().store().credits_ledger_violations().await.unwrap();
        assert!(all.is_empty(), "{all:?}");
        checks += 1;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_invariants(&app, ada.id).await;
    assert!(checks > 10, "the checks ran while the ledger moved ({checks})");
}

async fn assert_invariants(app: &TestApp, user: uuid::Uuid) {
    let violations = app.state().store().credits_invariant_violations(user).await.unwrap();
    assert!(violations.is_empty(), "ledger invariants broken: {violations:?}");
}

async fn concurrent_reservations_never_overspend(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let store = app.state().store();
    store.credits_grant(ada.id, TransactionType::Purchase, 500, "cs_seed", None).await.unwrap();
    let state = Arc::new(app.state().clone());
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            match credits::reserve(&state, ada.id, &format!("task-{i}"), 1).await {
                Ok(()) => 200,
                Err(e) => {
                    assert_eq!(e.code.as_str(), "INSUFFICIENT_CREDITS", "{e:?}");
                    status_of(e.kind).as_u16()
                }
            }
        }));
    }
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_default() += 1;
    }
    assert_eq!(statuses.get(&200), Some(&500), "{statuses:?}");
    assert_eq!(statuses.get(&402), Some(&500), "{statuses:?}");
    let c = store.credits_get(ada.id).await.unwrap();
    assert_eq!((c.balance, c.reserved_balance, c.available()), (500, 500, 0));
    assert_invariants(&app, ada.id).await;
}

async fn ledger_operations_resolve_once(app: TestApp) {
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let store = app.state().store();
    let state = app.state();
    assert!(matches!(
        store.credits_grant(ada.id, TransactionType::Purchase, 100, "cs_1", None).await.unwrap(),
        Booked::Applied(_)
    ));
    assert!(matches!(
        store.credits_grant(ada.id, TransactionType::Purchase, 100, "cs_1", None).await.unwrap(),
        Booked::Duplicate
    ));
    credits::reserve(state, ada.id, "t1", 30).await.unwrap();
    credits::reserve(state, ada.id, "t1", 30).await.expect("a repeated reservation is idempotent");
    let err = credits::reserve(state, ada.id, "t1", 31).await.unwrap_err();
    assert_eq!(err.code.as_str(), "RESERVATION_MISMATCH");
    let err = credits::reserve(state, ada.id, "t2", 71).await.unwrap_err();
    assert_eq!((status_of(err.kind).as_u16(), err.code.as_str()), (402, "INSUFFICIENT_CREDITS"));
    assert_eq!(err.details.unwrap(), serde_json::json!({"cost": 71, "available": 70}));

    // Two workers confirm the same task at once: one spend.
    let (a, b) = tokio::join!(credits::confirm(state, "t1"), credits::confirm(state, "t1"));
    let applied = [a.unwrap(), b.unwrap()].iter().filter(|r| matches!(r, Booked::Applied(_))).count();
    assert_eq!(applied, 1);
    assert!(matches!(credits::release(state, "t1").await.unwrap(), Booked::Duplicate), "resolved stays resolved");
    credits::reserve(state, ada.id, "t3", 50).await.unwrap();
    let settled = credits::settle(state, "t3", 20).await.unwrap();
    assert_eq!(settled, Booked::Applied(funmagic_api::store::Resolution { spent: 20, released: 30 }));
    assert!(credits::settle(state, "missing", 1).await.is_err());
    let c = store.credits_get(ada.id).await.unwrap();
    assert_eq!((c.balance, c.reserved_balance, c.lifetime_spent), (50, 0, 50));
    assert_invariants(&app, ada.id).await;
}

async fn credits_api_and_admin_adjust(app: TestApp) {
    let admin = actor(&app, "admin@example.com", Role::Admin).await;
    let ada = actor(&app, "ada@example.com", Role::User).await;
    let (as_admin, as_ada) = (client_as(&app, &admin.token), client_as(&app, &ada.token));
    let zero = as_ada.credits_balance_get().await.unwrap().into_inner();
    assert_eq!((zero.balance, zero.available), (0, 0));

    // Packages: admin CRUD; the public list shows active ones, sorted.
    let input = |name: &str, credits: i64, price: i64, sort: i32, active: bool| types::PackageInput {
        name: name.parse().unwrap(),
        credits: std::num::NonZeroU64::new(credits as u64).unwrap(),
        price,
        currency: None,
        stripe_price_id: Some("price_123".parse().unwrap()),
        is_active: Some(active),
        sort_order: Some(sort),
    };
    let big = as_admin.admin_credit_package_create(&input("Big", 1000, 4900, 2, true)).await.unwrap().into_inner();
    let small = as_admin.admin_credit_package_create(&input("Small", 100, 900, 1, true)).await.unwrap().into_inner();
    let hidden = as_admin.admin_credit_package_create(&input("Old", 10, 100, 0, false)).await.unwrap().into_inner();
    let mut bad = serde_json::to_value(input("Bad", 1, 100, 0, true)).unwrap();
    bad["credits"] = 0.into();
    let got = raw_json(&app, Some(&admin.token), reqwest::Method::POST, "/api/admin/credit-packages", bad).await;
    assert_eq!(got, (422, "VALIDATION_FAILED".into()));
    let public = client(&app).credits_package_list().await.unwrap().into_inner();
    assert_eq!(public.packages.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Small", "Big"]);
    assert!(public.packages.iter().all(|p| p.stripe_price_id.is_none()), "price ids are for admins");
    let all = as_admin.admin_credit_package_list().await.unwrap().into_inner();
    assert_eq!(all.packages.len(), 3);
    let renamed =
        as_admin.admin_credit_package_update(&big.id, &input("Huge", 1000, 4900, 2, true)).await.unwrap().into_inner();
    assert_eq!(renamed.name, "Huge");
    as_admin.admin_credit_package_delete(&hidden.id).await.unwrap();
    assert_eq!(err_code(as_admin.admin_credit_package_delete(&hidden.id).await).0, 404);
    assert_eq!(err_code(as_ada.admin_credit_package_create(&input("x", 1, 1, 0, true)).await).0, 403);
    let _ = small;

    // Admin adjustments, idempotent by key.
    let adjust = |amount: i64, description: &str| types::AdjustCreditsRequest {
        amount,
        description: description.parse().unwrap(),
    };
    let after = as_admin
        .admin_user_credits_adjust(&ada.id, Some(&"key-1".parse().unwrap()), &adjust(250, "welcome"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.balance, 250);
    let replay = as_admin
        .admin_user_credits_adjust(&ada.id, Some(&"key-1".parse().unwrap()), &adjust(250, "welcome"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.balance, 250, "same key, same body: first answer, no second grant");
    assert_eq!(
        err_code(
            as_admin.admin_user_credits_adjust(&ada.id, Some(&"key-1".parse().unwrap()), &adjust(999, "welcome")).await
        ),
        (422, "IDEMPOTENCY_KEY_REUSED".into())
    );
    credits::reserve(app.state(), ada.id, "task-x", 200).await.unwrap();
    assert_eq!(
        err_code(as_admin.admin_user_credits_adjust(&ada.id, None, &adjust(-51, "too much")).await),
        (422, "ADJUSTMENT_EXCEEDS_AVAILABLE".into()),
        "reserved credits cannot be taken away"
    );
    let after =
        as_admin.admin_user_credits_adjust(&ada.id, None, &adjust(-50, "correction")).await.unwrap().into_inner();
    assert_eq!((after.balance, after.reserved, after.available), (200, 200, 0));
    assert_eq!(err_code(as_admin.admin_user_credits_adjust(&ada.id, None, &adjust(0, "nothing")).await).0, 422);
    let blank = serde_json::json!({ "amount": 5, "description": " " });
    let got = raw_json(
        &app,
        Some(&admin.token),
        reqwest::Method::POST,
        &format!("/api/admin/users/{}/credits", ada.id),
        blank,
    )
    .await;
    assert_eq!(got, (422, "VALIDATION_FAILED".into()));
    assert_eq!(err_code(as_ada.admin_user_credits_adjust(&ada.id, None, &adjust(5, "self")).await).0, 403);
    assert_eq!(as_admin.admin_user_credits_get(&ada.id).await.unwrap().into_inner().balance, 200);

    // History: newest first, filter by type, cursor pagination.
    let history = as_ada.credits_transaction_list(None, None, None).await.unwrap().into_inner();
    let kinds: Vec<_> = history.transactions.iter().map(|t| t.type_).collect();
    assert_eq!(
        kinds,
        [types::TransactionType::AdminAdjust, types::TransactionType::Reserve, types::TransactionType::AdminAdjust]
    );
    assert!(history.transactions[0].description.as_deref().unwrap().contains("correction"));
    let only =
        as_ada.credits_transaction_list(None, None, Some(types::TransactionType::Reserve)).await.unwrap().into_inner();
    assert_eq!(only.transactions.len(), 1);
    assert_eq!(only.transactions[0].reserved_delta, 200);
    let page = as_ada.credits_transaction_list(None, std::num::NonZeroU32::new(2), None).await.unwrap().into_inner();
    assert_eq!(page.transactions.len(), 2);
    let rest = as_ada
        .credits_transaction_list(page.next_cursor.as_ref(), std::num::NonZeroU32::new(2), None)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.transactions.len(), 1);
    assert!(rest.next_cursor.is_none());
    // Another user sees none of it.
    let bob = actor(&app, "bob@example.com", Role::User).await;
    let theirs = client_as(&app, &bob.token).credits_transaction_list(None, None, None).await.unwrap().into_inner();
    assert!(theirs.transactions.is_empty());
    assert_invariants(&app, ada.id).await;
}

#[tokio::test]
async fn signup_bonus_is_granted_once() {
    let mut extra = funmagic_api::config::SettingsLayer::default();
    extra.credits.signup_bonus = Some(25);
    let app = TestApp::spawn_with(TestBackend::Embedded, extra).await.unwrap();
    let body = types::SignUpRequest {
        name: "Ada".parse().unwrap(),
        email: "ada@example.com".parse().unwrap(),
        password: crate::PASSWORD.parse().unwrap(),
    };
    let signed = client(&app).auth_sign_up_email(&body).await.unwrap().into_inner();
    let balance = client_as(&app, &signed.token).credits_balance_get().await.unwrap().into_inner();
    assert_eq!(balance.balance, 25);
    credits::grant_signup_bonus(app.state(), signed.user.id).await.unwrap();
    assert_eq!(app.state().store().credits_get(signed.user.id).await.unwrap().balance, 25, "once per user");
}
