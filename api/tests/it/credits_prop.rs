//! Property test of the ledger: random sequences of grant / adjust / reserve / confirm /
//! release / settle — each step possibly repeated, sequentially or concurrently — checked
//! against a model after every step, with every invariant.

use std::collections::HashMap;

use funmagic_api::app::AppState;
use funmagic_api::credits;
use funmagic_api::store::{Role, TransactionType};
use funmagic_api::testing::{TestApp, TestBackend};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[derive(Debug, Clone)]
enum Op {
    Grant(i64),
    Adjust(i64),
    Reserve(u8, i64),
    Confirm(u8),
    Release(u8),
    Settle(u8, i64),
}

/// How a step is run: once, twice in a row, or twice at the same time.
#[derive(Debug, Clone, Copy)]
enum Repeat {
    Once,
    Twice,
    Concurrent,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..200i64).prop_map(Op::Grant),
        (-120..120i64).prop_map(Op::Adjust),
        (0..6u8, 1..90i64).prop_map(|(r, a)| Op::Reserve(r, a)),
        (0..6u8).prop_map(Op::Confirm),
        (0..6u8).prop_map(Op::Release),
        (0..6u8, 0..90i64).prop_map(|(r, s)| Op::Settle(r, s)),
    ]
}

fn steps() -> impl Strategy<Value = Vec<(Op, Repeat)>> {
    prop::collection::vec((op(), prop_oneof![Just(Repeat::Once), Just(Repeat::Twice), Just(Repeat::Concurrent)]), 1..25)
}

#[derive(Debug, Default)]
struct Model {
    balance: i64,
    reserved: i64,
    /// reference → (amount, resolved)
    reservations: HashMap<u8, (i64, bool)>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Grant(a) => self.balance += a,
            Op::Adjust(a) => {
                if a != 0 && self.balance - self.reserved + a >= 0 {
                    self.balance += a;
                }
            }
            Op::Reserve(r, a) => {
                if !self.reservations.contains_key(&r) && self.balance - self.reserved >= a {
                    self.reservations.insert(r, (a, false));
                    self.reserved += a;
                }
            }
            Op::Confirm(r) => self.resolve(r, None),
            Op::Release(r) => self.resolve(r, Some(0)),
            Op::Settle(r, s) => self.resolve(r, Some(s)),
        }
    }

    fn resolve(&mut self, r: u8, spend: Option<i64>) {
        if let Some((amount, resolved)) = self.reservations.get_mut(&r) {
            let spend = spend.unwrap_or(*amount);
            if !*resolved && spend <= *amount {
                *resolved = true;
                self.reserved -= *amount;
                self.balance -= spend;
            }
        }
    }
}

async fn run(state: &AppState, user: uuid::Uuid, case: &str, step: usize, op: &Op) {
    let reference = |r: u8| format!("{case}-task-{r}");
    // Errors (insufficient, unknown reservation, over-spend) are expected outcomes; the
    // model decides what must have happened, and the state is compared after each step.
    let _ = match *op {
        Op::Grant(a) => state
            .store()
            .credits_grant(user, TransactionType::Purchase, a, &format!("{case}-grant-{step}"), None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Op::Adjust(a) => {
            if a == 0 {
                Ok(())
            } else {
                state
                    .store()
                    .credits_grant(user, TransactionType::AdminAdjust, a, &format!("{case}-adjust-{step}"), None)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
        Op::Reserve(r, a) => credits::reserve(state, user, &reference(r), a).await.map_err(|e| e.to_string()),
        Op::Confirm(r) => credits::confirm(state, &reference(r)).await.map(|_| ()).map_err(|e| e.to_string()),
        Op::Release(r) => credits::release(state, &reference(r)).await.map(|_| ()).map_err(|e| e.to_string()),
        Op::Settle(r, s) => credits::settle(state, &reference(r), s).await.map(|_| ()).map_err(|e| e.to_string()),
    };
}

fn check(backend: TestBackend, cases: u32) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(app) = rt.block_on(TestApp::spawn(backend)) else { return };
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&steps(), |steps| {
        rt.block_on(async {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let case = format!("case{n}");
            let user = crate::actor(&app, &format!("{case}@example.com"), Role::User).await.id;
            let state = app.state();
            let mut model = Model::default();
            for (i, (op, repeat)) in steps.iter().enumerate() {
                match repeat {
                    Repeat::Once => run(state, user, &case, i, op).await,
                    Repeat::Twice => {
                        run(state, user, &case, i, op).await;
                        run(state, user, &case, i, op).await;
                    }
                    Repeat::Concurrent => {
                        tokio::join!(run(state, user, &case, i, op), run(state, user, &case, i, op));
                    }
                }
                model.apply(op);
                let c = state.store().credits_get(user).await.unwrap();
                prop_assert_eq!(
                    (c.balance, c.reserved_balance),
                    (model.balance, model.reserved),
                    "after step {} {:?}",
                    i,
                    op
                );
                let violations = state.store().credits_invariant_violations(user).await.unwrap();
                prop_assert!(violations.is_empty(), "after step {} {:?}: {:?}", i, op, violations);
            }
            Ok::<(), TestCaseError>(())
        })
    });
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
}

#[test]
fn ledger_matches_model_embedded() {
    check(TestBackend::Embedded, 48);
}

#[test]
fn ledger_matches_model_scale_out() {
    check(TestBackend::ScaleOut, 24);
}
