//! The store behaves the same on both engines: schema, constraints, round trips.

use funmagic_api::store::{NewUser, Role, StoreError};
use funmagic_api::testing::TestApp;

funmagic_api::test_both_backends!(
    schema_has_the_seed_tables_and_auth_tables,
    users_round_trip_and_conflict,
    constraints_guard_credits,
    every_shared_statement_prepares,
    hot_path_calls_made_at_once_each_get_their_own_answer,
    a_run_through_the_store_records_and_books_the_same_on_both_engines,
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

/// A task's whole run through the store, step by step, with what each call returns and
/// leaves behind. Each engine has its own hot path (PostgreSQL's `fm_*` functions and
/// batches, SQLite's few-call claim and end), so this pins them to the same rows: events
/// numbered in order with their data, runs counted once, steps' states, the settlement's
/// ledger rows, an end that comes twice, a cancelled task, the dead-letter list.
async fn a_run_through_the_store_records_and_books_the_same_on_both_engines(app: TestApp) {
    use funmagic_api::store::{
        Claim, DeadLetter, EventKind, NewTask, StepDone, StepStatus, TaskEnd, TaskStatus, TransactionType,
    };
    use serde_json::json;
    let store = app.state().store().clone();
    let lease = std::time::Duration::from_secs(60);
    let tool = store.tool_get_by_slug("figme").await.unwrap().expect("the seeded figme tool");
    let user = store.user_create(&new_user("run@example.com")).await.unwrap().id;
    store.credits_grant(user, TransactionType::Bonus, 100, "seed-run", None).await.unwrap();
    let submit = |cost: i64, input: serde_json::Value| {
        let store = store.clone();
        let new = NewTask {
            id: uuid::Uuid::now_v7(),
            user_id: user,
            tool_id: tool.id,
            parent_task_id: None,
            steps: vec!["image-gen".into(), "3d-gen".into()],
            run_all_steps: false,
            cost,
            input,
            trace_parent: None,
            webhook_url: None,
        };
        async move { store.task_submit(&new).await.unwrap().0 }
    };
    let task = submit(50, json!({ "prompt": "a cat" })).await;

    // The claim leases the task, counts the run and starts its first step, named as in the tool.
    let Claim::Claimed(claimed) = store.queue_claim(Some(task.id), lease, 3, 3).await.unwrap() else {
        panic!("the queued task is claimed")
    };
    assert_eq!((claimed.task.id, claimed.attempts), (task.id, 1));
    assert_eq!(claimed.input, json!({ "prompt": "a cat" }));
    assert_eq!(claimed.tool_updated_at, tool.updated_at);
    assert_eq!(claimed.steps.iter().map(|s| s.step_id.as_str()).collect::<Vec<_>>(), ["image-gen", "3d-gen"]);
    let (step, started) = claimed.started.clone().expect("the first step started with the claim");
    assert_eq!(step, "image-gen");
    assert_eq!((started.seq, started.kind), (2, EventKind::StepStarted));
    assert_eq!(started.data, json!({ "stepId": "image-gen", "stepName": "Image Generation", "type": "step_started" }));
    let row = store.task_get(task.id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts, row.current_step_id.as_deref()), (TaskStatus::Running, 1, Some("image-gen")));
    assert!(row.started_at.is_some());
    assert!(matches!(store.queue_claim(Some(task.id), lease, 3, 3).await.unwrap(), Claim::Busy), "leased");

    // The first step completes; the second starts within the same run (not counted again).
    let done = store
        .task_step_done(task.id, "image-gen", &json!({ "image": "a.png" }), json!({ "stepId": "image-gen" }))
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!((done.seq, done.kind), (3, EventKind::StepCompleted));
    let begun = store
        .task_step_begin(task.id, "3d-gen", false, json!({ "stepId": "3d-gen", "stepName": "3D Generation" }))
        .await
        .unwrap()
        .expect("the second step starts");
    assert_eq!((begun.seq, begun.kind), (4, EventKind::StepStarted));
    assert_eq!(begun.data["type"], "step_started");
    assert_eq!(store.task_get(task.id).await.unwrap().unwrap().attempts, 1, "one run");

    // The end folds in the last step, spends 30 of the 50 held and releases 20.
    let output = json!({ "model": "m.glb" });
    let event = json!({ "output": output, "creditsSpent": 30 });
    let mut end = TaskEnd::completed(&output, &event).with_step(StepDone { step_id: "3d-gen", output: &output });
    end.spend = Some(30);
    let finished = store.task_finish(task.id, &end, 1).await.unwrap();
    assert!(finished.ended);
    assert!(finished.unparked.is_empty());
    let kinds = |events: &[funmagic_api::store::Recorded]| events.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>();
    assert_eq!(kinds(&finished.events), [(5, EventKind::StepCompleted), (6, EventKind::Completed)]);
    assert_eq!(finished.events[0].data, json!({ "stepId": "3d-gen", "output": output, "type": "step_completed" }));
    assert_eq!(finished.events[1].data, json!({ "output": output, "creditsSpent": 30, "type": "completed" }));
    let recorded = store.task_events_after(task.id, 0).await.unwrap();
    assert_eq!(
        recorded.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>(),
        [
            (1, EventKind::Queued),
            (2, EventKind::StepStarted),
            (3, EventKind::StepCompleted),
            (4, EventKind::StepStarted),
            (5, EventKind::StepCompleted),
            (6, EventKind::Completed)
        ]
    );
    assert_eq!(recorded[5].data.0, finished.events[1].data, "stored as returned");
    let row = store.task_get(task.id).await.unwrap().unwrap();
    assert_eq!(row.status, TaskStatus::Completed);
    assert!(row.completed_at.is_some());
    let steps = store.task_steps(task.id).await.unwrap();
    assert!(steps.iter().all(|s| s.status == StepStatus::Completed && s.completed_at.is_some()));
    assert_eq!(steps[0].state.0["output"], json!({ "image": "a.png" }));
    assert_eq!(steps[1].state.0["output"], output);
    let payload = store.task_payload(task.id).await.unwrap().unwrap();
    assert_eq!((payload.output.map(|o| o.0), payload.error), (Some(output.clone()), None));
    assert_eq!(store.queue_position(task.id).await.unwrap(), None);
    let reference = task.id.to_string();
    let booked = |rows: Vec<funmagic_api::store::CreditTxRow>| {
        let mut rows: Vec<_> = rows
            .into_iter()
            .filter(|t| t.reference_id.as_deref() == Some(reference.as_str()))
            .map(|t| (t.kind, t.amount, t.balance_after, t.reserved_delta, t.reserved_after))
            .collect();
        rows.sort_by_key(|r| r.0.as_str());
        rows
    };
    let ledger = booked(store.credits_transactions(user, None, None, 100).await.unwrap());
    assert_eq!(
        ledger,
        [
            (TransactionType::Refund, 0, 70, -20, 0),
            (TransactionType::Reserve, 0, 100, 50, 50),
            (TransactionType::Spend, -30, 70, -30, 20),
        ]
    );
    let credits = store.credits_get(user).await.unwrap();
    assert_eq!((credits.balance, credits.reserved_balance), (70, 0));

    // An end that comes again changes nothing and books nothing.
    let again = store.task_finish(task.id, &TaskEnd::failed("late", &json!({})), 1).await.unwrap();
    assert!(!again.ended && again.events.is_empty());
    assert_eq!(store.task_get(task.id).await.unwrap().unwrap().status, TaskStatus::Completed);
    assert_eq!(booked(store.credits_transactions(user, None, None, 100).await.unwrap()), ledger);

    // A task to be cancelled is claimed but starts no step; cancelled, its hold goes back.
    let cancelled = submit(50, json!({ "prompt": "a dog" })).await;
    assert_eq!(store.task_request_cancel(cancelled.id).await.unwrap(), Some(TaskStatus::Queued));
    let claimed = store.queue_claim_many(lease, 3, 3, 5).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.task.id).collect::<Vec<_>>(), [cancelled.id]);
    assert!(claimed[0].started.is_none(), "no step starts for a task to be cancelled");
    assert_eq!(store.task_step_begin(cancelled.id, "image-gen", true, json!({})).await.unwrap(), None);
    let event = json!({ "creditsSpent": 0 });
    let finished = store.task_finish(cancelled.id, &TaskEnd::cancelled(0, &event), 1).await.unwrap();
    assert_eq!(kinds(&finished.events), [(2, EventKind::Cancelled)]);
    let credits = store.credits_get(user).await.unwrap();
    assert_eq!((credits.balance, credits.reserved_balance), (70, 0), "the whole hold released");

    // A task given up on goes on the dead-letter list with its end.
    let dead = submit(0, json!({})).await;
    let Claim::Claimed(_) = store.queue_claim(Some(dead.id), lease, 3, 3).await.unwrap() else { panic!("claimed") };
    let letter = DeadLetter { reason: "worker_crashes", error: "gone".into(), attempts: 3 };
    let event = json!({ "error": "gone" });
    let finished =
        store.task_finish(dead.id, &TaskEnd::failed("gone", &event).dead_letter(Some(&letter)), 1).await.unwrap();
    assert_eq!(kinds(&finished.events), [(3, EventKind::Failed)]);
    let letters = store.dead_letters(None, 10).await.unwrap();
    assert_eq!(
        letters.iter().map(|d| (d.task_id, d.reason.as_str(), d.error.as_str(), d.attempts)).collect::<Vec<_>>(),
        [(dead.id, "worker_crashes", "gone", 3)]
    );
    assert_eq!(store.task_payload(dead.id).await.unwrap().unwrap().error.as_deref(), Some("gone"));
    assert!(store.credits_invariant_violations(user).await.unwrap().is_empty());
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

/// A statement cancelled while its `BEGIN` is on the wire (a request whose client went
/// away, a timeout, an aborted heartbeat) must not hand the next borrower of the pooled
/// connection a transaction nobody ends: that one's writes would stay uncommitted and hold
/// their row locks, so tasks and credits of those rows would stall. sqlx 0.9.0 did exactly
/// that (transact-rs/sqlx#4393, fixed in 0.9.1); the chaos suite found it as tasks stuck
/// after a PostgreSQL black hole. Here the `BEGIN` is held up by a slow proxy and given up.
#[tokio::test]
async fn a_cancelled_begin_leaves_no_transaction_open_on_the_pooled_connection() {
    use std::str::FromStr;
    use std::time::Duration;

    use crate::chaos::proxy::{Mode, Proxy};

    let url = funmagic_api::testing::postgres_admin_url();
    let direct = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
    let target = format!("{}:{}", direct.get_host(), direct.get_port());
    let Ok(mut addrs) = tokio::net::lookup_host(&target).await else { panic!("resolving {target}") };
    let proxy = Proxy::start(addrs.next().unwrap()).await;
    let options = direct.clone().host("127.0.0.1").port(proxy.port);
    // One connection, so the next borrower gets the very connection the cancelled BEGIN used;
    // no ping on acquire, so what the slow proxy holds up is the BEGIN itself.
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).test_before_acquire(false);
    let pool = match pool.connect_with(options).await {
        Ok(pool) => pool,
        Err(e) => {
            assert!(!funmagic_api::testing::in_ci(), "PostgreSQL at {target} is not reachable: {e}");
            eprintln!("SKIPPED: PostgreSQL at {target} is not reachable: {e}");
            return;
        }
    };
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
    // Back in the pool (its check on release done) before the proxy slows down.
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.set(Mode::Latency(Duration::from_millis(300)));
    let begun = tokio::time::timeout(Duration::from_millis(100), pool.begin()).await;
    assert!(begun.is_err(), "the BEGIN was not held up long enough to be cancelled");
    proxy.set(Mode::Pass);

    // Outside a transaction every statement gets its own `now()`; inside one they share it.
    let mut conn = tokio::time::timeout(Duration::from_secs(10), pool.acquire()).await.unwrap().unwrap();
    let first: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&mut *conn).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&mut *conn).await.unwrap();
    assert_ne!(first, second, "the pooled connection is still inside the cancelled BEGIN's transaction");
}

/// Group commit on PostgreSQL runs the calls of a failed batch again one by one. When the
/// connection broke after the batch had committed (its answer lost on the way back), a
/// submit run again would be refused as a duplicate of itself, and a task end would find
/// its task ended already (answering "not ended", so its events would never be published).
/// Each is answered from the rows the batch wrote instead, and nothing is booked twice. The
/// answers are lost by a proxy that cuts the connection instead of forwarding them.
#[tokio::test]
async fn a_batch_whose_answer_is_lost_after_its_commit_is_read_back_not_run_twice() {
    use std::str::FromStr;
    use std::time::Duration;

    use funmagic_api::store::{Claim, EventKind, NewTask, TaskEnd, TaskStatus, TransactionType};
    use serde_json::json;

    use crate::chaos::proxy::{Mode, Proxy};

    let Some(mut app) = TestApp::spawn(funmagic_api::testing::TestBackend::ScaleOut).await else { return };
    // Nothing else may claim the tasks (the workers' reconciler would send them again).
    app.stop_workers().await;
    let database = app.database.as_ref().expect("a scale-out app has its database");
    let direct = sqlx::postgres::PgConnectOptions::from_str(&database.url).unwrap();
    let target = format!("{}:{}", direct.get_host(), direct.get_port());
    let proxy = Proxy::start(tokio::net::lookup_host(&target).await.unwrap().next().unwrap()).await;
    let proxied_url = database.url.replacen(&target, &format!("127.0.0.1:{}", proxy.port), 1);
    assert_ne!(proxied_url, database.url, "the database URL names {target}");
    // A second process's state on the same database, its connections through the proxy.
    let mut extra = funmagic_api::config::SettingsLayer::default();
    extra.database.url = Some(proxied_url.into());
    let settings = TestApp::settings(app.backend, &app.dir, app.database.as_ref(), app.redis.as_ref(), extra);
    let proxied = funmagic_api::app::AppState::build(settings, funmagic_api::app::Migrations::Skip).await.unwrap();

    let store = app.state().store().clone();
    let funmagic_api::store::Store::Postgres(pg) = &store else { panic!("scale-out runs on PostgreSQL") };
    let tool = store.tool_get_by_slug("echo").await.unwrap().expect("the seeded echo tool");
    let step = tool.config.0["steps"][0]["id"].as_str().unwrap().to_string();
    let user = store.user_create(&new_user("lost-answer@example.com")).await.unwrap().id;
    store.credits_grant(user, TransactionType::Bonus, 10, "seed-lost-answer", None).await.unwrap();
    let new = |i: i64| NewTask {
        id: uuid::Uuid::now_v7(),
        user_id: user,
        tool_id: tool.id,
        parent_task_id: None,
        steps: vec![step.clone()],
        run_all_steps: false,
        cost: 1 + i,
        input: json!({ "i": i }),
        trace_parent: None,
        webhook_url: None,
    };
    let (a, b) = (new(0), new(1));

    // Two submits at once are one batch (this test's runtime has one thread: both are queued
    // before the batch loop runs); its answer carries their `queued` events and is cut.
    proxy.set(Mode::CutReplyOnce(b"\"queued\""));
    let (sa, sb) = tokio::join!(proxied.store().task_submit(&a), proxied.store().task_submit(&b));
    assert_eq!(proxy.cuts(), 1, "the batch's answer was cut");
    for (new, submitted) in [(&a, sa), (&b, sb)] {
        let (task, queued) =
            submitted.unwrap_or_else(|e| panic!("the committed submit of {} is answered: {e}", new.id));
        assert_eq!((task.id, task.user_id, task.credits_cost), (new.id, user, new.cost));
        assert_eq!((queued.seq, queued.kind), (1, EventKind::Queued));
        assert_eq!(queued.data["type"], "queued");
        assert_eq!(store.task_events_after(new.id, 0).await.unwrap().len(), 1, "one `queued` event");
    }
    let reservations: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM credit_reservations WHERE reference_id IN ($1, $2) AND status = 'pending'",
    )
    .bind(a.id.to_string())
    .bind(b.id.to_string())
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(reservations, 2, "one reservation per task");
    let credits = store.credits_get(user).await.unwrap();
    assert_eq!((credits.balance, credits.reserved_balance), (10, 3), "reserved once");

    // Both run; their two ends at once are one batch, whose answer is cut.
    let lease = Duration::from_secs(60);
    for task in [&a, &b] {
        assert!(matches!(store.queue_claim(Some(task.id), lease, 3, 3).await.unwrap(), Claim::Claimed(_)));
    }
    let output = json!({ "done": true });
    let event = json!({ "output": output });
    let end = TaskEnd::completed(&output, &event);
    proxy.set(Mode::CutReplyOnce(b"\"ended\": true"));
    let (ea, eb) = tokio::join!(proxied.store().task_finish(a.id, &end, 1), proxied.store().task_finish(b.id, &end, 1));
    assert_eq!(proxy.cuts(), 2, "the batch's answer was cut");
    for (task, ended) in [(&a, ea), (&b, eb)] {
        let finished = ended.unwrap_or_else(|e| panic!("the committed end of {} is answered: {e}", task.id));
        assert!(finished.ended, "the end the batch committed is this call's");
        let events = finished.events.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>();
        assert_eq!(events, [(3, EventKind::Completed)], "its events, numbered, to publish");
        assert_eq!(finished.events[0].data, json!({ "output": output, "type": "completed" }));
        assert_eq!(store.task_get(task.id).await.unwrap().unwrap().status, TaskStatus::Completed);
        assert_eq!(store.task_events_after(task.id, 0).await.unwrap().len(), 3, "queued, step_started, completed");
    }
    let credits = store.credits_get(user).await.unwrap();
    assert_eq!((credits.balance, credits.reserved_balance), (7, 0), "spent once");
    let spends: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM credit_transactions WHERE user_id = $1 AND type = 'spend'")
            .bind(user)
            .fetch_one(pg.pool())
            .await
            .unwrap();
    assert_eq!(spends, 2, "one spend per task");

    // The read-back is for batches only: a lone end of a task ended above answers "not
    // ended", as it did before. (A batch the server refused, so nothing of it committed,
    // runs its calls alone: `hot_path_calls_made_at_once_each_get_their_own_answer`.)
    let again = proxied.store().task_finish(a.id, &end, 1).await.unwrap();
    assert!(!again.ended);
}

/// One task end of the set-based batch test: (task index, status, output, error, spend,
/// event kinds, event data, folded-in step with its state patch, dead letter).
type EndSpec = (
    usize,
    &'static str,
    Option<serde_json::Value>,
    Option<&'static str>,
    Option<i64>,
    Vec<&'static str>,
    Vec<serde_json::Value>,
    Option<serde_json::Value>,
    Option<(&'static str, &'static str, i32)>,
);

/// PostgreSQL runs a batch of submits, claims or task ends set-based
/// (`fm_task_submit_many`, `fm_task_claim_many`, `fm_task_finish_many`: a few statements for
/// the whole batch). The same calls made one by one (`fm_task_submit`, `fm_task_claim`,
/// `fm_task_finish`, which single calls and a failed batch's rerun use) must answer the same
/// and leave the same rows: which reservations the balance covers when a user's batch asks
/// for more than it holds, which claims the running limit refuses, the ledger's running
/// balances, events, steps, dead letters, the unparked tasks. And every row is found by its
/// key even with generic plans made on this fresh, never analysed database: once these
/// batches were joins, planned at a connection's first calls as hash joins over scans of
/// whole tables, and kept as the tables grew (a drain on a database holding 30,000 tasks
/// ran ~25% slower than on a fresh one). Nor through the wrong index: a reservation is
/// found by its reference, not by reading the partial index of unresolved ones by user
/// (migration 0020: such a plan read every entry of it for each batch of ends).
#[tokio::test]
async fn set_based_batches_answer_and_book_as_one_by_one_calls() {
    use funmagic_api::store::TransactionType;
    use serde_json::{Value, json};
    use sqlx::types::Json;

    let Some(app) = TestApp::spawn(funmagic_api::testing::TestBackend::ScaleOut).await else { return };
    let store = app.state().store().clone();
    let funmagic_api::store::Store::Postgres(pg) = &store else { panic!("scale-out runs on PostgreSQL") };
    let tool = store.tool_get_by_slug("echo").await.unwrap().expect("the seeded echo tool");
    let step = tool.config.0["steps"][0]["id"].as_str().unwrap().to_string();
    let step_name = tool.config.0["steps"][0]["name"].as_str().unwrap().to_string();
    let hot = [
        "tasks",
        "task_queue",
        "task_steps",
        "task_payloads",
        "task_events",
        "credits",
        "credit_reservations",
        "tools",
    ];
    let seq_scans = "SELECT relname::text, seq_scan FROM pg_stat_xact_user_tables";
    // This transaction's scans of each index of `credit_reservations` and `task_queue`.
    let index_scans = "SELECT c.relname::text, pg_stat_get_xact_numscans(c.oid) FROM pg_index i \
                       JOIN pg_class c ON c.oid = i.indexrelid \
                       WHERE i.indrelid IN ('credit_reservations'::regclass, 'task_queue'::regclass) ORDER BY 1";

    let mut snapshots = vec![];
    for batched in [true, false] {
        let mut users = vec![];
        for (i, grant) in [10, 3, 0].into_iter().enumerate() {
            let user = store.user_create(&new_user(&format!("set{i}-{batched}@example.com"))).await.unwrap().id;
            if grant > 0 {
                store
                    .credits_grant(user, TransactionType::Bonus, grant, &format!("seed-{i}-{batched}"), None)
                    .await
                    .unwrap();
            }
            users.push(user);
        }
        // Seven submits: user 1 (3 credits) asks for 2 + 2 + 1 (the second is refused with 1
        // left, the third fits), user 2 (no account) for 1 (refused) and for a free task.
        let owners = [1usize, 0, 1, 0, 1, 2, 2];
        let costs = [2i64, 2, 2, 2, 1, 1, 0];
        let ids: Vec<uuid::Uuid> = (0..7).map(|_| uuid::Uuid::now_v7()).collect();
        let index = |v: &Value| ids.iter().position(|id| Some(id.to_string().as_str()) == v.as_str());
        let mut conn = pg.pool().acquire().await.unwrap();
        sqlx::raw_sql("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan").execute(&mut *conn).await.unwrap();
        let before: Vec<(String, i64)> = sqlx::query_as(seq_scans).fetch_all(&mut *conn).await.unwrap();
        let index_scans_before: Vec<(String, i64)> = sqlx::query_as(index_scans).fetch_all(&mut *conn).await.unwrap();

        let step_ids: Vec<Vec<uuid::Uuid>> = ids.iter().map(|_| vec![uuid::Uuid::now_v7()]).collect();
        let payload_ids: Vec<uuid::Uuid> = ids.iter().map(|_| uuid::Uuid::now_v7()).collect();
        let reservation_ids: Vec<uuid::Uuid> = ids.iter().map(|_| uuid::Uuid::now_v7()).collect();
        let inputs: Vec<Value> = (0..7).map(|i| json!({ "i": i })).collect();
        let submitted: Vec<Value> = if batched {
            let rows: Vec<(Json<Value>,)> = sqlx::query_as(
                "SELECT a.answer FROM unnest(fm_task_submit_many(now(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 $12, $13)) WITH ORDINALITY AS a(answer, ord) ORDER BY a.ord",
            )
            .bind(&ids)
            .bind(owners.iter().map(|&o| users[o]).collect::<Vec<_>>())
            .bind(vec![tool.id; 7])
            .bind(costs.to_vec())
            .bind(vec![None::<uuid::Uuid>; 7])
            .bind(vec![false; 7])
            .bind(vec![Json(json!([step])); 7])
            .bind(step_ids.iter().map(Json).collect::<Vec<_>>())
            .bind(&payload_ids)
            .bind(inputs.iter().map(Json).collect::<Vec<_>>())
            .bind(&reservation_ids)
            .bind(vec![None::<String>; 7])
            .bind(vec![None::<String>; 7])
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            rows.into_iter().map(|r| r.0.0).collect()
        } else {
            let mut out = vec![];
            for i in 0..7 {
                let answer: Json<Value> = sqlx::query_scalar(
                    "SELECT fm_task_submit($1, $2, $3, $4, NULL, FALSE, $5, $6, $7, $8, $9, now(), NULL, NULL)",
                )
                .bind(ids[i])
                .bind(users[owners[i]])
                .bind(tool.id)
                .bind(costs[i])
                .bind(vec![step.clone()])
                .bind(&step_ids[i])
                .bind(payload_ids[i])
                .bind(Json(&inputs[i]))
                .bind(reservation_ids[i])
                .fetch_one(&mut *conn)
                .await
                .unwrap();
                out.push(answer.0);
            }
            out
        };
        let submitted: Vec<Value> = submitted
            .iter()
            .enumerate()
            .map(|(i, a)| match a.get("available") {
                Some(available) => json!({ "available": available }),
                None => {
                    assert_eq!(index(&a["task"]["id"]), Some(i), "call {i} answered with its own task: {a}");
                    assert!(a["event"]["position"].is_i64(), "a queue position: {a}");
                    json!({ "status": a["task"]["status"], "cost": a["task"]["credits_cost"],
                            "step": a["task"]["current_step_id"], "event": a["event"]["type"] })
                }
            })
            .collect();
        let accepted = |cost: i64| json!({ "status": "queued", "cost": cost, "step": step, "event": "queued" });
        assert_eq!(
            submitted,
            [
                accepted(2),
                accepted(2),
                json!({ "available": 1 }),
                accepted(2),
                accepted(1),
                json!({ "available": 0 }),
                accepted(0)
            ],
            "batched: {batched}"
        );

        // Claims, one running task per user: task 4 waits at its user's limit (parked; task
        // 0's end frees a slot for it), task 3 is not due yet, task 2 was refused (no queue
        // row); then again: task 0 is leased.
        sqlx::query("UPDATE task_queue SET available_at = now() + interval '1 hour' WHERE task_id = $1")
            .bind(ids[3])
            .execute(&mut *conn)
            .await
            .unwrap();
        let mut claimed = vec![];
        for batch in [vec![0usize, 1, 4, 2, 3, 6], vec![0, 5]] {
            let batch_ids: Vec<uuid::Uuid> = batch.iter().map(|&i| ids[i]).collect();
            let answers: Vec<Value> = if batched {
                let rows: Vec<(Json<Value>,)> = sqlx::query_as(
                    "SELECT a.answer FROM unnest(fm_task_claim_many(now(), $1, $2, $3, $4)) WITH ORDINALITY AS a(answer, \
                     ord) ORDER BY a.ord",
                )
                .bind(&batch_ids)
                .bind(vec![chrono::Utc::now() + chrono::Duration::minutes(1); batch.len()])
                .bind(vec![1i64; batch.len()])
                .bind(vec![3i32; batch.len()])
                .fetch_all(&mut *conn)
                .await
                .unwrap();
                rows.into_iter().map(|r| r.0.0).collect()
            } else {
                let mut out = vec![];
                for id in &batch_ids {
                    let answer: Json<Value> = sqlx::query_scalar("SELECT fm_task_claim($1, now(), $2, 1, 3)")
                        .bind(id)
                        .bind(chrono::Utc::now() + chrono::Duration::minutes(1))
                        .fetch_one(&mut *conn)
                        .await
                        .unwrap();
                    out.push(answer.0);
                }
                out
            };
            for (i, a) in batch.iter().zip(answers) {
                let mut seen = json!({ "outcome": a["outcome"] });
                if a["outcome"] == "claimed" {
                    assert_eq!(index(&a["task"]["id"]), Some(*i), "its own task: {a}");
                    let steps: Vec<Value> =
                        a["steps"].as_array().unwrap().iter().map(|s| json!([s["step_id"], s["status"]])).collect();
                    seen = json!({ "outcome": "claimed", "attempts": a["attempts"], "status": a["task"]["status"],
                                   "input": a["input"], "started": a["started"], "steps": steps,
                                   "tool": a["tool_updated_at"].is_string() });
                } else if a["outcome"] == "not_due" {
                    assert!(a["due"].is_string(), "{a}");
                }
                claimed.push(seen);
            }
        }
        let run = |i: i64| {
            json!({ "outcome": "claimed", "attempts": 1, "status": "queued", "input": { "i": i },
                    "started": { "seq": 2, "step_id": step, "data": { "stepId": step, "stepName": step_name,
                                                                       "type": "step_started" } },
                    "steps": [[step, "running"]], "tool": true })
        };
        let outcome = |o: &str| json!({ "outcome": o });
        assert_eq!(
            claimed,
            [
                run(0),
                run(1),
                outcome("user_at_limit"),
                outcome("empty"),
                outcome("not_due"),
                run(6),
                outcome("busy"),
                outcome("empty")
            ],
            "batched: {batched}"
        );
        let patch = json!({ "x": 1 });
        let first: Vec<EndSpec> = vec![
            (
                0,
                "completed",
                Some(json!({ "o": 0 })),
                None,
                None,
                vec!["step_completed", "completed"],
                vec![json!({ "stepId": step }), json!({ "o": 0 })],
                Some(patch.clone()),
                None,
            ),
            (1, "completed", Some(json!({ "o": 1 })), None, Some(1), vec!["completed"], vec![json!({})], None, None),
            (
                3,
                "failed",
                None,
                Some("boom"),
                Some(0),
                vec!["failed"],
                vec![json!({ "error": "boom" })],
                None,
                Some(("retries_exhausted", "boom", 3)),
            ),
            (6, "completed", Some(json!({})), None, None, vec!["completed"], vec![json!({})], None, None),
        ];
        // Again: an end that comes twice, the unparked task's, a refused submit's (no task).
        let second: Vec<EndSpec> = [1, 4, 2]
            .into_iter()
            .map(|i| {
                (
                    i,
                    "completed",
                    Some(json!({ "again": i })),
                    None,
                    None,
                    vec!["completed"],
                    vec![json!({})],
                    None,
                    None,
                )
            })
            .collect();
        let mut ended = vec![];
        for ends in [first, second] {
            let answers: Vec<Value> = if batched {
                let rows: Vec<(Json<Value>,)> = sqlx::query_as(
                    "SELECT a.answer FROM unnest(fm_task_finish_many(now(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                     $11, $12, $13)) WITH ORDINALITY AS a(answer, ord) ORDER BY a.ord",
                )
                .bind(ends.iter().map(|e| ids[e.0]).collect::<Vec<_>>())
                .bind(ends.iter().map(|e| e.1).collect::<Vec<_>>())
                .bind(ends.iter().map(|e| e.2.clone().map(Json)).collect::<Vec<_>>())
                .bind(ends.iter().map(|e| e.3).collect::<Vec<_>>())
                .bind(ends.iter().map(|e| e.4).collect::<Vec<_>>())
                .bind(ends.iter().map(|e| Json(e.5.clone())).collect::<Vec<_>>())
                .bind(ends.iter().map(|e| Json(e.6.clone())).collect::<Vec<_>>())
                .bind(ends.iter().map(|e| e.7.as_ref().map(|_| step.clone())).collect::<Vec<_>>())
                .bind(ends.iter().map(|e| e.7.clone().map(Json)).collect::<Vec<_>>())
                .bind(ends.iter().map(|e| e.8.map(|d| d.0)).collect::<Vec<_>>())
                .bind(ends.iter().map(|e| e.8.map(|d| d.1)).collect::<Vec<_>>())
                .bind(ends.iter().map(|e| e.8.map(|d| d.2)).collect::<Vec<_>>())
                .bind(vec![3i64; ends.len()])
                .fetch_all(&mut *conn)
                .await
                .unwrap();
                rows.into_iter().map(|r| r.0.0).collect()
            } else {
                let mut out = vec![];
                for e in &ends {
                    let answer: Json<Value> = sqlx::query_scalar(
                        "SELECT fm_task_finish($1, $2, now(), $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 3)",
                    )
                    .bind(ids[e.0])
                    .bind(e.1)
                    .bind(e.2.clone().map(Json))
                    .bind(e.3)
                    .bind(e.4)
                    .bind(e.5.clone())
                    .bind(e.6.iter().map(Json).collect::<Vec<_>>())
                    .bind(e.7.as_ref().map(|_| step.clone()))
                    .bind(e.7.clone().map(Json))
                    .bind(e.8.map(|d| d.0))
                    .bind(e.8.map(|d| d.1))
                    .bind(e.8.map(|d| d.2))
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                    out.push(answer.0);
                }
                out
            };
            for mut a in answers {
                if let Some(unparked) = a.get_mut("unparked") {
                    *unparked = unparked.as_array().unwrap().iter().map(|id| json!(index(id))).collect();
                }
                ended.push(a);
            }
        }
        let e = |seq: i64, unparked: Value| json!({ "ended": true, "seq": seq, "unparked": unparked });
        let no = json!({ "ended": false });
        assert_eq!(
            ended,
            [e(4, json!([4])), e(3, json!([])), e(2, json!([])), e(3, json!([])), no.clone(), e(2, json!([])), no],
            "batched: {batched}"
        );

        // Neither the batches nor the one-task functions (which run with generic plans too,
        // migration 0022) scan a whole table.
        let after: Vec<(String, i64)> = sqlx::query_as(seq_scans).fetch_all(&mut *conn).await.unwrap();
        for table in hot {
            let count = |stats: &[(String, i64)]| stats.iter().find(|s| s.0 == table).map_or(0, |s| s.1);
            assert_eq!(count(&after), count(&before), "batched: {batched}: {table} was scanned whole");
        }
        // Reservations are found by their reference alone: not through the index of
        // unresolved ones by user, whose whole (ever growing) contents such a plan once read
        // for each batch of ends, nor by id (the invariant checks below use the user index).
        // A user's parked tasks are found in the index of parked rows (migration 0021).
        let index_scans_after: Vec<(String, i64)> = sqlx::query_as(index_scans).fetch_all(&mut *conn).await.unwrap();
        let scans = |stats: &[(String, i64)], index: &str| stats.iter().find(|s| s.0 == index).map(|s| s.1);
        let used = |index: &str| scans(&index_scans_after, index) > scans(&index_scans_before, index);
        let by_reference = "credit_reservations_reference_key";
        for (index, _) in index_scans_after.iter().filter(|(i, _)| i.starts_with("credit_") && i != by_reference) {
            assert!(!used(index), "batched: {batched}: {index} was scanned to find reservations");
        }
        assert!(used(by_reference), "batched: {batched}: the reservations were looked up by reference");
        assert!(used("task_queue_parked_idx"), "batched: {batched}: the parked task was found in its index");
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await.unwrap();

        // Everything the two runs wrote, with ids replaced by their index.
        let mut snapshot = vec![];
        for (u, user) in users.iter().enumerate() {
            assert!(store.credits_invariant_violations(*user).await.unwrap().is_empty(), "user {u}");
            let credits: Option<(i64, i64, i64)> =
                sqlx::query_as("SELECT balance, reserved_balance, lifetime_spent FROM credits WHERE user_id = $1")
                    .bind(user)
                    .fetch_optional(pg.pool())
                    .await
                    .unwrap();
            let ledger: Vec<(String, i64, i64, i64, i64, Option<String>)> = sqlx::query_as(
                "SELECT type, amount, balance_after, reserved_delta, reserved_after, reference_id
                   FROM credit_transactions WHERE user_id = $1 AND type <> 'bonus' ORDER BY id",
            )
            .bind(user)
            .fetch_all(pg.pool())
            .await
            .unwrap();
            let ledger: Vec<Value> = ledger
                .into_iter()
                .map(|(kind, amount, balance, delta, reserved, reference)| {
                    json!([kind, amount, balance, delta, reserved, index(&json!(reference))])
                })
                .collect();
            snapshot.push(json!({ "user": u, "credits": credits, "ledger": ledger }));
        }
        for (i, id) in ids.iter().enumerate() {
            let task: Option<(String, i64)> = sqlx::query_as("SELECT status, event_seq FROM tasks WHERE id = $1")
                .bind(id)
                .fetch_optional(pg.pool())
                .await
                .unwrap();
            let events: Vec<(i64, String, Json<Value>)> =
                sqlx::query_as("SELECT seq, type, data FROM task_events WHERE task_id = $1 ORDER BY seq")
                    .bind(id)
                    .fetch_all(pg.pool())
                    .await
                    .unwrap();
            let events: Vec<Value> = events
                .into_iter()
                .map(|(seq, kind, mut data)| {
                    if kind == "queued" {
                        data.0["position"] = json!("n");
                    }
                    json!([seq, kind, data.0])
                })
                .collect();
            let steps: Vec<(String, String, Json<Value>)> =
                sqlx::query_as("SELECT step_id, status, state FROM task_steps WHERE task_id = $1 ORDER BY position")
                    .bind(id)
                    .fetch_all(pg.pool())
                    .await
                    .unwrap();
            let steps: Vec<Value> = steps.into_iter().map(|(s, status, state)| json!([s, status, state.0])).collect();
            let payload: Option<(Option<Json<Value>>, Option<String>)> =
                sqlx::query_as("SELECT output, error FROM task_payloads WHERE task_id = $1")
                    .bind(id)
                    .fetch_optional(pg.pool())
                    .await
                    .unwrap();
            let payload = payload.map(|(o, e)| json!([o.map(|o| o.0), e]));
            let dead: Option<(String, String, i32)> =
                sqlx::query_as("SELECT reason, error, attempts FROM task_dead_letters WHERE task_id = $1")
                    .bind(id)
                    .fetch_optional(pg.pool())
                    .await
                    .unwrap();
            let queued: Option<bool> = sqlx::query_scalar("SELECT parked FROM task_queue WHERE task_id = $1")
                .bind(id)
                .fetch_optional(pg.pool())
                .await
                .unwrap();
            snapshot.push(json!({ "task": i, "row": task, "events": events, "steps": steps, "payload": payload,
                                  "dead": dead, "queued": queued }));
        }
        snapshots.push(snapshot);
    }
    assert!(store.credits_ledger_violations().await.unwrap().is_empty());
    // The expected books, checked once (the two runs are then compared whole): user 0 spent
    // 1 of task 1's 2 and none of task 3's; user 1 spent task 0's 2 and task 4's 1.
    assert_eq!(snapshots[0][0]["credits"], json!([9, 0, 1]));
    assert_eq!(
        snapshots[0][0]["ledger"],
        json!([
            ["reserve", 0, 10, 2, 2, 1],
            ["reserve", 0, 10, 2, 4, 3],
            ["spend", -1, 9, -1, 3, 1],
            ["refund", 0, 9, -1, 2, 1],
            ["refund", 0, 9, -2, 0, 3]
        ])
    );
    assert_eq!(snapshots[0][1]["credits"], json!([0, 0, 3]));
    assert_eq!(snapshots[0][3 + 4]["queued"], Value::Null, "the unparked task ended too");
    assert_eq!(snapshots[0][3]["steps"], json!([[step, "completed", { "x": 1 }]]));
    assert_eq!(snapshots[0][3 + 3]["dead"], json!(["retries_exhausted", "boom", 3]));
    for (batched, one_by_one) in snapshots[0].iter().zip(&snapshots[1]) {
        assert_eq!(batched, one_by_one, "set-based and one-by-one calls left different rows");
    }

    // What a batch leaves to one-by-one calls (it raises, and its caller runs each call
    // alone): a reservation that takes its user below the `credits.low` threshold (the
    // webhook must tell the balance right after it), claims under different limits.
    let user = store.user_create(&new_user("low@example.com")).await.unwrap().id;
    store.credits_grant(user, TransactionType::Bonus, 10, "seed-low", None).await.unwrap();
    sqlx::query("INSERT INTO webhook_settings (user_id, credits_low_threshold, updated_at) VALUES ($1, 7, now())")
        .bind(user)
        .execute(pg.pool())
        .await
        .unwrap();
    let submit = |costs: Vec<i64>| {
        let n = costs.len();
        sqlx::query_scalar::<_, Json<Vec<Value>>>(
            "SELECT to_jsonb(fm_task_submit_many(now(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13))",
        )
        .bind((0..n).map(|_| uuid::Uuid::now_v7()).collect::<Vec<_>>())
        .bind(vec![user; n])
        .bind(vec![tool.id; n])
        .bind(costs)
        .bind(vec![None::<uuid::Uuid>; n])
        .bind(vec![false; n])
        .bind(vec![Json(json!([step])); n])
        .bind((0..n).map(|_| Json(json!([uuid::Uuid::now_v7()]))).collect::<Vec<_>>())
        .bind((0..n).map(|_| uuid::Uuid::now_v7()).collect::<Vec<_>>())
        .bind(vec![Json(json!({})); n])
        .bind((0..n).map(|_| uuid::Uuid::now_v7()).collect::<Vec<_>>())
        .bind(vec![None::<String>; n])
        .bind(vec![None::<String>; n])
        .fetch_one(pg.pool())
    };
    let above = submit(vec![1, 2]).await.expect("10 -> 7 stays at the threshold");
    assert_eq!(above.0.len(), 2);
    let crossing = submit(vec![1, 1]).await.expect_err("7 -> 6 crosses it");
    assert!(crossing.to_string().contains("credits.low"), "{crossing}");
    let mixed = sqlx::query("SELECT fm_task_claim_many(now(), $1, $2, $3, $4)")
        .bind(vec![uuid::Uuid::now_v7(), uuid::Uuid::now_v7()])
        .bind(vec![chrono::Utc::now() + chrono::Duration::minutes(1); 2])
        .bind(vec![1i64, 0])
        .bind(vec![3i32; 2])
        .execute(pg.pool())
        .await
        .expect_err("one running limit per batch");
    assert!(mixed.to_string().contains("running limits"), "{mixed}");
}

/// Four two-step `figme` tasks of a new user, in submit order: task 0 runs (claimed, its
/// first step started), task 1 has ended with the output `{"model": "m.glb"}`, tasks 2 and 3
/// wait in line.
/// A new task of `user` on `tool` (its own id, no parent, trace or webhook).
fn new_task(
    user: uuid::Uuid,
    tool: uuid::Uuid,
    steps: &[&str],
    cost: i64,
    input: serde_json::Value,
) -> funmagic_api::store::NewTask {
    funmagic_api::store::NewTask {
        id: uuid::Uuid::now_v7(),
        user_id: user,
        tool_id: tool,
        parent_task_id: None,
        steps: steps.iter().map(|s| s.to_string()).collect(),
        run_all_steps: false,
        cost,
        input,
        trace_parent: None,
        webhook_url: None,
    }
}

async fn four_tasks(store: &funmagic_api::store::Store, email: &str) -> Vec<uuid::Uuid> {
    use funmagic_api::store::{Claim, TaskEnd, TransactionType};
    use serde_json::json;
    let tool = store.tool_get_by_slug("figme").await.unwrap().expect("the seeded figme tool");
    let user = store.user_create(&new_user(email)).await.unwrap().id;
    store.credits_grant(user, TransactionType::Bonus, 100, &format!("seed-{email}"), None).await.unwrap();
    let mut ids = vec![];
    for i in 0..4 {
        let new = new_task(user, tool.id, &["image-gen", "3d-gen"], 5, json!({ "i": i }));
        ids.push(store.task_submit(&new).await.unwrap().0.id);
    }
    let lease = std::time::Duration::from_secs(60);
    for id in &ids[..2] {
        assert!(matches!(store.queue_claim(Some(*id), lease, 3, 3).await.unwrap(), Claim::Claimed(_)));
    }
    let output = json!({ "model": "m.glb" });
    let event = json!({ "output": output });
    assert!(store.task_finish(ids[1], &TaskEnd::completed(&output, &event), 1).await.unwrap().ended);
    ids
}

/// Stream starts read many to a statement (`PgStore::task_stream_start_many`, what a
/// stream's open runs under load) answer each task as its own read does: a queued task
/// with its place in line, a running and a finished one with their milestones after each
/// cursor, and no answer for a task that does not exist, in request order, the same task
/// twice included. Under generic plans (what a connection may cache after its first calls)
/// the statement still finds every row by its key: no scan of a task table.
#[tokio::test]
async fn stream_starts_read_together_answer_as_alone() {
    let Some(app) = TestApp::spawn(funmagic_api::testing::TestBackend::ScaleOut).await else { return };
    let store = app.state().store().clone();
    let funmagic_api::store::Store::Postgres(pg) = &store else { panic!("scale-out runs on PostgreSQL") };
    let ids = four_tasks(&store, "streams@example.com").await;

    let missing = uuid::Uuid::now_v7();
    let reqs = [(ids[0], 0), (missing, 0), (ids[1], 1), (ids[2], 0), (ids[3], 0), (ids[1], 0), (ids[0], 5)];
    let together = pg.task_stream_start_many(&reqs).await.unwrap();
    assert_eq!(together.len(), reqs.len(), "one answer per request");
    for (i, &(id, after)) in reqs.iter().enumerate() {
        // Alone, one after another: each is a batch of one, the single-task statement.
        let alone = store.task_stream_start(id, after).await.unwrap();
        assert_eq!(together[i], alone, "request {i}: ({id}, after {after})");
    }
    assert!(together[1].is_none(), "no such task");
    let queued = together[3].as_ref().unwrap();
    let next = together[4].as_ref().unwrap();
    assert!(queued.queue_seq.unwrap() < next.queue_seq.unwrap(), "queued tasks keep their place in line");
    assert_eq!(queued.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
    let ended = together[5].as_ref().unwrap();
    assert!(ended.task.is_terminal() && ended.queue_seq.is_none());
    assert_eq!(ended.events.len() as i64, ended.event_seq, "every milestone from the start");
    assert_eq!(together[2].as_ref().unwrap().events.len() as i64, ended.event_seq - 1, "after the first");
    let running = together[0].as_ref().unwrap();
    assert!(running.queue_seq.is_none() && running.events.len() >= 2, "{running:?}");
    assert!(together[6].as_ref().unwrap().events.is_empty(), "a cursor past the end: nothing to replay");

    let query = || {
        sqlx::query(funmagic_api::store::PgStore::STREAM_START_BATCH_SQL)
            .bind(reqs.iter().map(|r| r.0).collect::<Vec<_>>())
            .bind(reqs.iter().map(|r| r.1).collect::<Vec<_>>())
    };
    read_by_key_under_generic_plans(pg, &["tasks", "task_queue", "task_events"], reqs.len() - 1, query).await;
}

/// Task reads many to a statement (`PgStore::task_full_many`, what a task's detail view
/// runs under load) answer each task as its own read does: its payload (input, and output
/// once ended), its steps, and while queued its place in line; no answer for a task that
/// does not exist; in request order, the same task twice included. Under generic plans
/// every row is still found by its key.
#[tokio::test]
async fn task_reads_together_answer_as_alone() {
    use serde_json::json;
    let Some(app) = TestApp::spawn(funmagic_api::testing::TestBackend::ScaleOut).await else { return };
    let store = app.state().store().clone();
    let funmagic_api::store::Store::Postgres(pg) = &store else { panic!("scale-out runs on PostgreSQL") };
    let ids = four_tasks(&store, "reads@example.com").await;
    let output = json!({ "model": "m.glb" });

    let missing = uuid::Uuid::now_v7();
    let reqs = [ids[0], missing, ids[1], ids[2], ids[3], ids[1]];
    let together = pg.task_full_many(&reqs).await.unwrap();
    assert_eq!(together.len(), reqs.len(), "one answer per request");
    for (i, id) in reqs.iter().enumerate() {
        // Alone, one after another: each is a batch of one, the single-task statement.
        let alone = store.task_full(*id).await.unwrap();
        assert_eq!(together[i], alone, "request {i}: {id}");
    }
    assert!(together[1].is_none(), "no such task");
    let (first, second) = (together[3].as_ref().unwrap(), together[4].as_ref().unwrap());
    assert_eq!(first.payload.as_ref().unwrap().input.0, json!({ "i": 2 }));
    assert!(first.queue_position.unwrap() < second.queue_position.unwrap(), "queued tasks keep their place in line");
    let ended = together[2].as_ref().unwrap();
    assert!(ended.task.is_terminal() && ended.queue_position.is_none());
    assert_eq!(ended.payload.as_ref().unwrap().output.as_ref().map(|o| &o.0), Some(&output));
    assert_eq!(ended.steps.iter().map(|s| s.step_id.as_str()).collect::<Vec<_>>(), ["image-gen", "3d-gen"]);
    assert_eq!(together[2], together[5], "the same task twice: the same answer");
    assert!(together[0].as_ref().unwrap().queue_position.is_none(), "a running task has no place in line");

    let query = || sqlx::query(funmagic_api::store::PgStore::TASK_FULL_BATCH_SQL).bind(reqs.to_vec());
    let tables = ["tasks", "task_payloads", "task_steps", "task_queue"];
    read_by_key_under_generic_plans(pg, &tables, reqs.len() - 1, query).await;
}

/// Runs a batched read six times under generic plans (what a connection may cache after its
/// first calls), each answering `rows` rows, and checks it scanned none of `tables`.
async fn read_by_key_under_generic_plans<'q>(
    pg: &funmagic_api::store::PgStore,
    tables: &[&str],
    rows: usize,
    query: impl Fn() -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
) {
    let mut conn = pg.pool().acquire().await.unwrap();
    sqlx::raw_sql("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan").execute(&mut *conn).await.unwrap();
    let seq_scans = "SELECT relname::text, seq_scan FROM pg_stat_xact_user_tables \
                     WHERE relname = ANY($1) ORDER BY 1";
    let tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    let before: Vec<(String, i64)> = sqlx::query_as(seq_scans).bind(&tables).fetch_all(&mut *conn).await.unwrap();
    assert_eq!(before.len(), tables.len(), "every table has its statistics row");
    for _ in 0..6 {
        assert_eq!(query().fetch_all(&mut *conn).await.unwrap().len(), rows, "a row per existing task");
    }
    let after: Vec<(String, i64)> = sqlx::query_as(seq_scans).bind(&tables).fetch_all(&mut *conn).await.unwrap();
    assert_eq!(before, after, "the batch read scanned a task table");
    sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.unwrap();
}

/// A claim commits without waiting for the disk (`synchronous_commit` off for the claim's
/// own transaction: see `CLAIM_BATCH_SQL` in `store/pg.rs`), and nothing after it inherits
/// that: a task end, which settles the credits, and a submit must wait for their WAL to be
/// flushed. With one connection in the pool, every claim (alone and batched) runs on the
/// connection the next statements get.
#[tokio::test]
async fn a_claims_unflushed_commit_stays_with_the_claim() {
    use funmagic_api::store::{Claim, TaskEnd, TransactionType};
    use serde_json::json;

    let mut extra = funmagic_api::config::SettingsLayer::default();
    extra.database.max_connections = Some(1);
    let Some(mut app) = TestApp::spawn_with(funmagic_api::testing::TestBackend::ScaleOut, extra).await else {
        return;
    };
    app.stop_workers().await;
    let store = app.state().store().clone();
    let funmagic_api::store::Store::Postgres(pg) = &store else { panic!("scale-out runs on PostgreSQL") };
    let tool = store.tool_get_by_slug("echo").await.unwrap().expect("the seeded echo tool");
    let step = tool.config.0["steps"][0]["id"].as_str().unwrap().to_string();
    let user = store.user_create(&new_user("unflushed@example.com")).await.unwrap().id;
    store.credits_grant(user, TransactionType::Bonus, 10, "seed-unflushed", None).await.unwrap();
    let mut ids = vec![];
    for i in 0..3 {
        let new = new_task(user, tool.id, &[&step], 1, json!({ "i": i }));
        ids.push(store.task_submit(&new).await.unwrap().0.id);
    }
    let setting =
        || async { sqlx::query_scalar::<_, String>("SHOW synchronous_commit").fetch_one(pg.pool()).await.unwrap() };
    assert_eq!(setting().await, "on", "the server's default");
    let lease = std::time::Duration::from_secs(60);
    // Alone, then two at once (one batch: this test's runtime has one thread).
    assert!(matches!(store.queue_claim(Some(ids[0]), lease, 3, 3).await.unwrap(), Claim::Claimed(_)));
    assert_eq!(setting().await, "on", "after a claim alone");
    let (b, c) =
        tokio::join!(store.queue_claim(Some(ids[1]), lease, 3, 3), store.queue_claim(Some(ids[2]), lease, 3, 3));
    assert!(matches!(b.unwrap(), Claim::Claimed(_)) && matches!(c.unwrap(), Claim::Claimed(_)));
    assert_eq!(setting().await, "on", "after a batch of claims");
    // The claims took effect (committed), and their ends settle as always.
    let output = json!({ "echo": true });
    let event = json!({ "output": output, "creditsSpent": 1 });
    for id in &ids {
        assert!(store.task_finish(*id, &TaskEnd::completed(&output, &event), 1).await.unwrap().ended);
    }
    let (balance, reserved): (i64, i64) =
        sqlx::query_as("SELECT balance, reserved_balance FROM credits WHERE user_id = $1")
            .bind(user)
            .fetch_one(pg.pool())
            .await
            .unwrap();
    assert_eq!((balance, reserved), (7, 0), "three tasks paid once each");
}
