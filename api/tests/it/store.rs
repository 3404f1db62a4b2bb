//! The store behaves the same on both engines: schema, constraints, round trips.

use funmagic_api::store::{NewUser, Role, StoreError};
use funmagic_api::testing::TestApp;

funmagic_api::test_both_backends!(
    schema_has_the_seed_tables_and_auth_tables,
    users_round_trip_and_conflict,
    constraints_guard_credits,
    every_shared_statement_prepares,
    hot_path_calls_made_at_once_each_get_their_own_answer,
    the_queue_table_is_vacuumed_when_dead_rows_pile_up
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

/// Submits and task ends made at once each get their own answer, and one that fails fails
/// alone. On PostgreSQL, calls that overlap run as one statement in one transaction
/// (`store::pg_batch`): a failing call must not take the others down with it, nor hand
/// anyone another call's answer.
async fn hot_path_calls_made_at_once_each_get_their_own_answer(app: TestApp) {
    use funmagic_api::store::{LedgerError, NewTask, TaskEnd, TransactionType};
    let store = app.state().store().clone();
    let tool = store.tool_get_by_slug("echo").await.unwrap().expect("the seeded echo tool");
    let step = tool.config.0["steps"][0]["id"].as_str().unwrap().to_string();
    let mut users = vec![];
    for i in 0..4 {
        let user = store.user_create(&new_user(&format!("u{i}@example.com"))).await.unwrap();
        store.credits_grant(user.id, TransactionType::Bonus, 10, &format!("seed-{i}"), None).await.unwrap();
        users.push(user.id);
    }
    // 60 submits at once, 15 per user, each costing 1 of the user's 10 credits.
    let submits = (0..60).map(|i| {
        let (store, step) = (store.clone(), step.clone());
        let new = NewTask {
            id: uuid::Uuid::now_v7(),
            user_id: users[i % 4],
            tool_id: tool.id,
            parent_task_id: None,
            steps: vec![step],
            run_all_steps: false,
            cost: 1,
            input: serde_json::json!({ "i": i }),
            trace_parent: None,
            webhook_url: None,
        };
        async move { (new.clone(), store.task_submit(&new).await) }
    });
    let mut accepted = vec![];
    for (new, result) in futures::future::join_all(submits).await {
        match result {
            Ok((task, queued)) => {
                assert_eq!((task.id, task.user_id, task.credits_cost), (new.id, new.user_id, 1), "its own task row");
                assert_eq!(queued.seq, 1);
                assert_eq!(store.task_payload(task.id).await.unwrap().unwrap().input.0, new.input, "its own input");
                accepted.push(task);
            }
            Err(LedgerError::Insufficient { available }) => assert_eq!(available, 0, "{new:?}"),
            Err(e) => panic!("submit {new:?}: {e}"),
        }
    }
    for user in &users {
        assert_eq!(accepted.iter().filter(|t| t.user_id == *user).count(), 10, "exactly the credits' worth accepted");
    }
    // All 40 end at once; the first asks to spend more than its reservation and must fail alone.
    let ends = accepted.iter().enumerate().map(|(i, task)| {
        let store = store.clone();
        async move {
            let output = serde_json::json!({ "i": i });
            let event = serde_json::json!({});
            let mut end = TaskEnd::completed(&output, &event);
            if i == 0 {
                end.spend = Some(5);
            }
            store.task_finish(task.id, &end, 1).await
        }
    });
    let ended = futures::future::join_all(ends).await;
    assert!(ended[0].is_err(), "spending more than the reservation is refused: {:?}", ended[0]);
    for (task, result) in accepted.iter().zip(&ended).skip(1) {
        let finished = result.as_ref().unwrap_or_else(|e| panic!("{}: {e}", task.id));
        assert!(finished.ended);
        assert_eq!(finished.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2], "numbered after its own `queued`");
        let row = store.task_get(task.id).await.unwrap().unwrap();
        assert_eq!(row.status, funmagic_api::store::TaskStatus::Completed);
        let payload = store.task_payload(task.id).await.unwrap().unwrap();
        let i = accepted.iter().position(|t| t.id == task.id).unwrap();
        assert_eq!(payload.output.map(|o| o.0), Some(serde_json::json!({ "i": i })), "its own output");
    }
    let refused = &accepted[0];
    assert_ne!(store.task_get(refused.id).await.unwrap().unwrap().status, funmagic_api::store::TaskStatus::Completed);
    for user in &users {
        let credits = store.credits_get(*user).await.unwrap();
        let held = i64::from(*user == refused.user_id);
        assert_eq!((credits.balance, credits.reserved_balance), (held, held), "spent all but the refused task's hold");
        assert!(store.credits_invariant_violations(*user).await.unwrap().is_empty());
    }
    assert!(store.credits_ledger_violations().await.unwrap().is_empty());
}

/// Every task leaves dead row versions in `task_queue` on PostgreSQL; workers vacuum the
/// table once enough pile up (`Store::queue_vacuum`), whether or not autovacuum runs (it
/// is off on this machine's server). SQLite frees deleted rows itself: nothing to do.
async fn the_queue_table_is_vacuumed_when_dead_rows_pile_up(app: TestApp) {
    let store = app.state().store().clone();
    let funmagic_api::store::Store::Postgres(pg) = &store else {
        assert!(!store.queue_vacuum(1).await.unwrap(), "SQLite has nothing to vacuum");
        return;
    };
    assert!(!store.queue_vacuum(5_000).await.unwrap(), "a fresh queue table has no dead rows to speak of");
    let vacuums_before: i64 =
        sqlx::query_scalar("SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'task_queue'::regclass")
            .fetch_one(pg.pool())
            .await
            .unwrap();
    let mut conn = pg.pool().acquire().await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO task_queue (task_id, available_at, created_at)
             SELECT gen_random_uuid(), now(), now() FROM generate_series(1, 6000);
         DELETE FROM task_queue WHERE user_id IS NULL;
         SELECT pg_stat_force_next_flush();",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    // Statistics reach the shared view a moment after the transaction. The worker of this
    // app checks too, every 2 s: whichever vacuums first, the table gets vacuumed.
    let stats = "SELECT vacuum_count, n_dead_tup FROM pg_stat_user_tables WHERE relid = 'task_queue'::regclass";
    let mut vacuumed = false;
    for _ in 0..100 {
        vacuumed = store.queue_vacuum(5_000).await.unwrap();
        let (count, _): (i64, i64) = sqlx::query_as(stats).fetch_one(pg.pool()).await.unwrap();
        if vacuumed || count > vacuums_before {
            vacuumed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(vacuumed, "6,000 dead rows were not vacuumed");
    let (_, left): (i64, i64) = sqlx::query_as(stats).fetch_one(pg.pool()).await.unwrap();
    assert!(left < 5_000, "{left} dead rows left after the vacuum");
    assert!(!store.queue_vacuum(5_000).await.unwrap(), "nothing left to vacuum");
}
