//! Group commit for the PostgreSQL task hot path (see ARCHITECTURE.md, Performance).
//!
//! Submits (API), claims and task ends (worker) arrive many at a time under load, each one
//! call of an `fm_task_*` function. Alone, each is a transaction of its own: a round trip,
//! a snapshot, a commit record and a WAL flush, which cost PostgreSQL about as much as the
//! rows the call writes. A [`Batcher`] queues the calls of one kind; a loop takes every
//! call waiting (up to [`MAX_BATCH`]) and runs them as ONE statement, so one transaction
//! commits them all; callers get their own answers. The statement calls a set-based
//! function (`fm_task_submit_many`, `fm_task_claim_many`, `fm_task_finish_many`): a handful
//! of statements for the whole batch, so a statement's own cost (executor start and end,
//! constraint checks, trigger setup) is paid once per batch, not per call. The reads that
//! open task streams batch the same way (one `SELECT` for many tasks): a read commits
//! nothing, but alone each costs a pooled round trip and an executor start.
//!
//! - Nothing waits for company on a timer: before a batch (or a call that found the loop
//!   idle) runs, the loop waits one turn of the scheduler (`yield_now`), so requests already
//!   on their way join it; then it runs, alone if none came. Batches form mostly while a
//!   previous batch is running, i.e. under load. For a lone call the turn halved the calls
//!   that ran alone in a 4,000-task e2e run (submits ~830 -> ~350, claims ~400 -> ~225, ends
//!   ~310 -> ~155) and took ~5% off CPU per task; for every batch, ~5% more (e2e 1.47 ->
//!   1.37 ms, drain 0.97 -> 0.94 ms per task, 4 and 3 interleaved pairs).
//! - All or nothing is per call, not per batch: if the batch statement fails (one call
//!   raised, a deadlock, a lost connection), every call of it runs again alone, in its own
//!   transaction, and gets its own result or error. The batch's transaction rolled back,
//!   so nothing is done twice; except when the connection was lost after the commit, on
//!   the answer's way back: then a submit or a task end the batch made is found and
//!   answered from its rows (`BatchOp::rerun`), and a claim is refused as busy (its lease
//!   runs out and the reconciler sends the task again, as after a worker that stopped).
//! - Lock order: a batch locks all of its users' credits rows, then their queue locks, each
//!   sorted by user, so batches cannot deadlock one another over them.
//! - A call whose loop has gone (its runtime stopped) runs directly.
//! - A loop keeps one connection while calls keep coming and gives it back to the pool when
//!   its queue runs empty (and after any failure). A statement on a pooled connection costs
//!   two more round trips, as sqlx pings a connection when it leaves the pool and when it
//!   comes back: holding it took e2e from 1.75/1.70/1.50 to 1.56/1.57/1.35 ms of CPU per
//!   task and 1,070/1,088/1,252 to 1,204/1,189/1,441 tasks/s (3 interleaved pairs; drain
//!   +7%). Not behind a transaction pooler, where every statement needs a transaction.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::pg_pool::{BatchConn, PgPoolHandle};

/// The most calls one statement carries.
pub(crate) const MAX_BATCH: usize = 64;

/// One kind of call that can run many to a statement.
pub(crate) trait BatchOp: Send + Sync + 'static {
    type Req: Send + Sync + 'static;
    type Out: Send + 'static;
    /// How many loops run batches of this kind at once (each on its own connection).
    const LOOPS: usize;
    /// Every request in one statement; exactly one answer per request, in request order.
    /// An `Err` means the statement failed (and so changed nothing).
    fn batch<'a>(
        conn: BatchConn<'a>,
        reqs: &'a [Self::Req],
    ) -> impl Future<Output = Result<Vec<Self::Out>, sqlx::Error>> + Send + 'a;
    /// One request alone, in its own transaction.
    fn one<'a>(conn: BatchConn<'a>, req: &'a Self::Req) -> impl Future<Output = Self::Out> + Send + 'a;
    /// A call again alone, on a connection from the pool, after its batch failed with its
    /// commit in doubt (the connection was lost, maybe while the answer was on its way): an
    /// op whose effects can be recognised answers from them rather than running twice (a
    /// second submit of the same task would be refused as a duplicate, a second end would
    /// find the task ended). By default the call runs alone.
    fn rerun<'a>(pool: &'a PgPoolHandle, req: &'a Self::Req) -> impl Future<Output = Self::Out> + Send + 'a {
        Self::one(pool.into(), req)
    }
    /// Whether an answer is an error that may have come from a broken connection (the loop
    /// then lets its held connection go; an expected refusal keeps it).
    fn failed(out: &Self::Out) -> bool;
    /// The answer of a call that could not get a connection.
    fn lost(e: sqlx::Error) -> Self::Out;
}

type Job<Op> = (<Op as BatchOp>::Req, oneshot::Sender<<Op as BatchOp>::Out>);

/// The queue of one kind of call, and its loops (started on first use).
pub(crate) struct Batcher<Op: BatchOp> {
    tx: OnceLock<mpsc::UnboundedSender<Job<Op>>>,
}

impl<Op: BatchOp> Default for Batcher<Op> {
    fn default() -> Self {
        Self { tx: OnceLock::new() }
    }
}

impl<Op: BatchOp> std::fmt::Debug for Batcher<Op> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").field("started", &self.tx.get().is_some()).finish()
    }
}

impl<Op: BatchOp> Batcher<Op> {
    /// Runs `req`, batched with whatever calls of its kind are waiting.
    pub(crate) async fn call(&self, pool: &PgPoolHandle, req: Op::Req) -> Result<Op::Out, sqlx::Error> {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel::<Job<Op>>();
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..Op::LOOPS.max(1) {
                tokio::spawn(run::<Op>(pool.clone(), rx.clone()));
            }
            tx
        });
        let (reply, answer) = oneshot::channel();
        match tx.send((req, reply)) {
            Ok(()) => answer.await.map_err(|_| {
                sqlx::Error::Io(std::io::Error::other("the batch loop stopped before the call was answered"))
            }),
            // The loops are gone with the runtime that started them.
            Err(mpsc::error::SendError((req, _))) => Ok(Op::one(pool.into(), &req).await),
        }
    }
}

async fn run<Op: BatchOp>(pool: PgPoolHandle, rx: Arc<Mutex<mpsc::UnboundedReceiver<Job<Op>>>>) {
    let mut jobs: Vec<Job<Op>> = Vec::with_capacity(MAX_BATCH);
    // The loop's own connection, kept from one statement to the next: a pooled statement
    // costs two more round trips (sqlx pings a connection as it leaves the pool and as it
    // comes back). Not behind a transaction pooler, where each statement needs a
    // transaction of its own; let go after a failure, and taken again when needed.
    let mut held: Option<PoolConnection<Postgres>> = None;
    loop {
        {
            let mut rx = rx.lock().await;
            if rx.is_empty() {
                // Idle: the connection goes back to the pool until work comes.
                held = None;
            }
            if rx.recv_many(&mut jobs, MAX_BATCH).await == 0 {
                return;
            }
            if jobs.len() < MAX_BATCH {
                // Let the tasks that are ready to run go first (other requests on their way
                // to this queue), then take whoever came. No timer: an idle call waits for
                // nothing but one turn of the scheduler.
                tokio::task::yield_now().await;
                while jobs.len() < MAX_BATCH
                    && let Ok(job) = rx.try_recv()
                {
                    jobs.push(job);
                }
            }
        }
        let (reqs, replies): (Vec<_>, Vec<_>) = jobs.drain(..).unzip();
        if held.is_none() && !pool.behind_pooler() {
            match pool.inner().acquire().await {
                Ok(conn) => held = Some(conn),
                // The pool waited its full timeout: every call gets that answer now, not
                // after a second wait of its own.
                Err(e) => {
                    let message = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Op::lost(sqlx::Error::Io(std::io::Error::other(message.clone()))));
                    }
                    continue;
                }
            }
        }
        if reqs.len() == 1 {
            let out = match held.as_deref_mut() {
                Some(conn) => Op::one(BatchConn::Held(conn), &reqs[0]).await,
                None => Op::one((&pool).into(), &reqs[0]).await,
            };
            if Op::failed(&out) {
                held = None;
            }
            let _ = replies.into_iter().next().map(|r| r.send(out));
            continue;
        }
        let outs = match held.as_deref_mut() {
            Some(conn) => Op::batch(BatchConn::Held(conn), &reqs).await,
            None => Op::batch((&pool).into(), &reqs).await,
        };
        match outs {
            // Exactly one answer per request, by construction of each `batch`.
            Ok(outs) => {
                for (out, reply) in outs.into_iter().zip(replies) {
                    let _ = reply.send(out);
                }
            }
            // The statement failed. An error from the server means its transaction rolled
            // back: each call alone. Any other (the connection lost on the way back) leaves
            // the commit in doubt: each call alone, answered from what the batch did if it
            // did (`rerun`). Both on connections from the pool.
            Err(e) => {
                held = None;
                let in_doubt = !matches!(e, sqlx::Error::Database(_));
                tracing::debug!(error = %e, calls = reqs.len(), in_doubt, "a batch failed; running its calls one by one");
                for (req, reply) in reqs.iter().zip(replies) {
                    let out = if in_doubt { Op::rerun(&pool, req).await } else { Op::one((&pool).into(), req).await };
                    let _ = reply.send(out);
                }
            }
        }
    }
}
