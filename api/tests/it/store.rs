//! The store behaves the same on both engines: schema, constraints, round trips.

use funmagic_api::store::{NewUser, Role, StoreError};
use funmagic_api::testing::TestApp;

funmagic_api::test_both_backends!(
    schema_has_the_seed_tables_and_auth_tables,
    users_round_trip_and_conflict,
    constraints_guard_credits,
    every_shared_statement_prepares
);

/// Each SQL constant of `store::sql` parses and names only tables and columns that exist,
/// on this engine, after every migration. PostgreSQL types every parameter when it
/// prepares; a statement like `$1 IS NULL OR user_id = $1` gets its types from the binds at
/// run time, so there "indeterminate" and "inconsistent" parameter types (42P18, 42P08) are
/// not failures (SQLite, which checks the same tables and columns, still prepares those).
async fn every_shared_statement_prepares(app: TestApp) {
    let store = app.state().store();
    let (mut count, mut untyped) = (0, 0);
    let mut failures = Vec::new();
    for (module, name, sql) in funmagic_api::store::sql::all() {
        count += 1;
        match store.prepare(sql).await {
            Ok(()) => {}
            Err(e)
                if store.engine() == funmagic_api::store::Engine::Postgres
                    && e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "42P18" || c == "42P08") =>
            {
                untyped += 1
            }
            Err(e) => failures.push(format!("sql::{module}::{name}: {e}")),
        }
    }
    assert!(count > 100, "the statements are listed ({count})");
    assert!(untyped * 10 < count, "most statements are checked in full ({untyped} of {count} were not)");
    // The check can fail: a misspelt column is refused.
    assert!(store.prepare("SELECT id, no_such_column FROM tasks").await.is_err());
    assert!(failures.is_empty(), "{:?}: {}", app.state().store().engine(), failures.join("\n"));
}

/// The seed's 15 tables plus `api_keys` and `device_codes` (auth), and
/// `checkout_sessions`, `credit_reservations`, `idempotency_keys`, `stripe_events` (credits),
/// `pending_uploads` (storage), `task_events`, `task_queue` (tasks).
const TABLES: [&str; 29] = [
    "accounts",
    "api_keys",
    "assets",
    "banners",
    "checkout_sessions",
    "credit_packages",
    "credit_reservations",
    "credit_transactions",
    "credits",
    "device_codes",
    "idempotency_keys",
    "pending_uploads",
    "providers",
    "sessions",
    "stripe_events",
    "task_dead_letters",
    "task_events",
    "task_payloads",
    "task_queue",
    "task_steps",
    "tasks",
    "tool_types",
    "tools",
    "users",
    "verifications",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_settings",
];

async fn schema_has_the_seed_tables_and_auth_tables(app: TestApp) {
    let tables = app.state().store().table_names().await.unwrap();
    assert_eq!(tables, TABLES);
    // Migrating again is a no-op.
    app.state().store().migrate().await.unwrap();
}

fn new_user(email: &str) -> NewUser {
    NewUser { email: email.into(), name: "Ada".into(), role: Role::User, email_verified: false }
}

async fn users_round_trip_and_conflict(app: TestApp) {
    let store = app.state().store();
    let ada = store.user_create(&new_user("ada@example.com")).await.unwrap();
    assert_eq!(ada.role(), Role::User);
    assert!(!ada.banned);
    let fetched = store.user_get(ada.id).await.unwrap().unwrap();
    assert_eq!(fetched, ada, "timestamps and ids round-trip exactly");
    assert_eq!(store.user_get_by_email("ada@example.com").await.unwrap().unwrap().id, ada.id);
    assert!(store.user_get(uuid::Uuid::now_v7()).await.unwrap().is_none());

    let dup = store.user_create(&new_user("ada@example.com")).await.unwrap_err();
    assert!(matches!(&dup, StoreError::Conflict(c) if c.contains("email")), "{dup:?}");
    let upper = store.user_create(&new_user("Ada@Example.com")).await.unwrap_err();
    assert!(matches!(upper, StoreError::Constraint(_)), "emails are stored lower-case only");

    let bob = store.user_create(&new_user("bob@example.com")).await.unwrap();
    let carol = store.user_create(&new_user("carol@example.com")).await.unwrap();
    let page1 = store.user_list(None, 2).await.unwrap();
    assert_eq!(page1.iter().map(|u| u.id).collect::<Vec<_>>(), [ada.id, bob.id]);
    let page2 = store.user_list(Some(bob.id), 2).await.unwrap();
    assert_eq!(page2.iter().map(|u| u.id).collect::<Vec<_>>(), [carol.id]);
    assert_eq!(store.user_count().await.unwrap(), 3);
}

/// The credits CHECK constraints hold on both engines (raw SQL: the ledger API that keeps
/// them comes with the credits issue).
async fn constraints_guard_credits(app: TestApp) {
    use funmagic_api::store::Store;
    let user = app.state().store().user_create(&new_user("dave@example.com")).await.unwrap();
    // (balance, reserved, earned, spent, should succeed)
    let cases = [
        (10_i64, 0_i64, 10_i64, 0_i64, true),
        (-1, 0, 0, 1, false),
        (5, 6, 5, 0, false),
        (5, -1, 5, 0, false),
        (5, 0, 9, 0, false),
    ];
    for (balance, reserved, earned, spent, ok) in cases {
        macro_rules! insert {
            ($pool:expr) => {
                sqlx::query(
                    "INSERT INTO credits (id, user_id, balance, reserved_balance, lifetime_earned, lifetime_spent, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(user.id)
                .bind(balance)
                .bind(reserved)
                .bind(earned)
                .bind(spent)
                .bind(funmagic_api::store::now())
                .execute($pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            };
        }
        let result = match app.state().store() {
            Store::Postgres(s) => insert!(s.pool()),
            Store::Sqlite(s) => insert!(s.pool()),
        };
        assert_eq!(result.is_ok(), ok, "balance={balance} reserved={reserved}: {result:?}");
        if ok {
            // One credits row per user.
            let again = match app.state().store() {
                Store::Postgres(s) => insert!(s.pool()),
                Store::Sqlite(s) => insert!(s.pool()),
            };
            assert!(again.is_err(), "credits.user_id is unique");
        }
    }
}
