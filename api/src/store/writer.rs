//! SQLite's one writer, with group commit.
//!
//! SQLite runs one write transaction at a time, and with `synchronous = FULL` each commit
//! waits for the disk. Writes on the task hot path therefore go through one writer, a
//! thread with a connection of its own: it takes every write job waiting in its queue,
//! runs each in a `SAVEPOINT` of one `BEGIN IMMEDIATE` transaction (a job that fails is
//! rolled back alone), commits once, and only then answers each caller. A batch of 50
//! submissions costs one fsync instead of 50, and writers never meet `SQLITE_BUSY`: they
//! wait in the queue.
//! A caller sees its write exactly as if it had run alone: committed before it returns,
//! or not at all.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Most jobs committed together.
const MAX_BATCH: usize = 128;

/// WAL pages after which the writer's own commit copies them into the database file (a
/// safety net: `checkpoints` normally does it long before; SQLite's default is 1,000).
const WAL_PAGES_LIMIT: u32 = 20_000;

/// Most checkpoints a second.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Called after the batch's commit: `None` if it committed, else why not.
type Deliver = Box<dyn FnOnce(Option<String>) + Send>;
type AsyncJob = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Deliver)> + Send>;
type SyncJob = Box<dyn FnOnce(&rusqlite::Connection) -> (bool, Deliver) + Send>;

/// A write: through sqlx (each statement a hand-off to its SQLite thread), or whole on the
/// connection itself while sqlx lends it (`write_sync`).
enum Job {
    Async(AsyncJob),
    Sync(SyncJob),
}

/// The handle: cheap to clone; the writer stops when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Opens the writer's own connection (and the checkpoints' one) and starts it.
    pub async fn start(options: SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        // Checkpoints run on a connection of their own (`checkpoints`), off the writer's
        // path; its own commits start one only if that falls far behind.
        let options_w = options.clone().pragma("wal_autocheckpoint", WAL_PAGES_LIMIT.to_string());
        let conn = options_w.connect().await?;
        let checkpointer = options.connect().await?;
        let committed = std::sync::Arc::new(tokio::sync::Notify::new());
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(checkpoints(checkpointer, committed.clone(), jobs.downgrade()));
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                // Jobs may use the runtime (spawn, timers) as they would on it.
                let _entered = runtime.enter();
                run(conn, options_w, rx, committed)
            })
            .map_err(sqlx::Error::Io)?;
        Ok(Self { jobs })
    }

    /// Runs `f` in the next group-committed transaction; its result once committed.
    pub async fn write<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<R, E>> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R, E>>();
        let job = Job::Async(Box::new(move |conn| {
            Box::pin(async move {
                let result = f(conn).await;
                deliver_later(result, tx)
            })
        }));
        self.send(job, rx).await
    }

    /// Runs `f` in the next group-committed transaction, whole on the writer's connection
    /// (no hand-off per statement: see `sqlite_sync.rs`); its result once committed. `f`
    /// runs on a runtime thread and must be quick: plain statements, no waiting.
    pub async fn write_sync<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&rusqlite::Connection) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R, E>>();
        let job = Job::Sync(Box::new(move |conn| deliver_later(f(conn), tx)));
        self.send(job, rx).await
    }

    async fn send<R, E: From<StoreError>>(&self, job: Job, rx: oneshot::Receiver<Result<R, E>>) -> Result<R, E> {
        let not_run = || E::from(StoreError::Unavailable("the database write was not carried out".into()));
        self.jobs.send(job).map_err(|_| not_run())?;
        // A dropped answer: the writer stopped, or its transaction could not start (logged).
        rx.await.map_err(|_| not_run())?
    }
}

/// A job's outcome and how to hand it over once its batch has committed (or not).
fn deliver_later<R, E>(result: Result<R, E>, tx: oneshot::Sender<Result<R, E>>) -> (bool, Deliver)
where
    R: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let ok = result.is_ok();
    let deliver: Deliver = Box::new(move |failed: Option<String>| {
        let _ = tx.send(match failed {
            Some(why) if ok => Err(StoreError::Unavailable(format!("commit failed: {why}")).into()),
            _ => result,
        });
    });
    (ok, deliver)
}

/// Copies committed WAL pages into the database file after the writer's commits, at most
/// every `CHECKPOINT_EVERY`, on a connection of its own. SQLite would otherwise do it inside
/// the commit that passes 1,000 pages: a stall of milliseconds (two more fsyncs) on the
/// writer, which every write waits for. `PASSIVE` waits for no one: pages a reader still
/// needs are left for the next round. Stops with the writer.
async fn checkpoints(
    mut conn: SqliteConnection,
    committed: std::sync::Arc<tokio::sync::Notify>,
    writer: mpsc::WeakUnboundedSender<Job>,
) {
    loop {
        committed.notified().await;
        if writer.upgrade().is_none() {
            break;
        }
        if let Err(e) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
            tracing::debug!(error = %e, "a WAL checkpoint failed");
        }
        tokio::time::sleep(CHECKPOINT_EVERY).await;
    }
    let _ = conn.close().await;
}

/// The writer's thread: its own, not the runtime's, so that a batch's statements and its
/// commit's wait for the disk never hold up other tasks, and a job's hand-offs to sqlx's
/// SQLite thread wake this thread directly rather than queue behind the runtime's tasks.
fn run(
    mut conn: SqliteConnection,
    options: SqliteConnectOptions,
    mut rx: mpsc::UnboundedReceiver<Job>,
    committed: std::sync::Arc<tokio::sync::Notify>,
) {
    use futures::executor::block_on;
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut lent: Option<Lent> = None;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let broken = block_on(run_batch(&mut conn, &mut lent, &mut batch));
        committed.notify_one();
        if broken {
            // A failed COMMIT or ROLLBACK leaves the connection in doubt: start afresh.
            block_on(Lent::release(lent.take(), &mut conn));
            loop {
                match block_on(options.connect()) {
                    Ok(c) => {
                        conn = c;
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reopening the SQLite writer failed; retrying");
                        std::thread::sleep(std::time::Duration::from_millis(500));
                    }
                }
            }
        }
    }
    block_on(Lent::release(lent.take(), &mut conn));
    let _ = block_on(conn.close());
    committed.notify_one();
}

/// Runs and commits one batch; true if the connection must be replaced.
///
/// The statements between two jobs go to SQLite in one call (`RELEASE job; SAVEPOINT job`,
/// and the first job's `BEGIN IMMEDIATE` and the last one's `COMMIT` likewise): each call
/// is a hand-off to sqlx's SQLite thread and back, and the writer, which every hot-path
/// write waits for, would otherwise spend two of them per job on bookkeeping. A run of
/// sync jobs borrows the connection from sqlx once (`lock_handle`) and runs them, with
/// their bookkeeping, as plain calls, and so is the `COMMIT` (the disk flush) when the
/// batch ends with them; after a sqlx job it goes through sqlx's thread. A call that fails
/// is handled as each of its statements failing would have been: the batch is rolled back,
/// and every job in it learns why (or, not run yet, that it was not carried out).
async fn run_batch(conn: &mut SqliteConnection, lent: &mut Option<Lent>, batch: &mut Vec<Job>) -> bool {
    if batch.is_empty() {
        return false;
    }
    let last = batch.len().saturating_sub(1);
    let mut delivers: Vec<Deliver> = Vec::with_capacity(batch.len());
    let mut between: &str = "BEGIN IMMEDIATE; SAVEPOINT job";
    let mut jobs = batch.drain(..).enumerate().peekable();
    while let Some((i, job)) = jobs.next() {
        let job = match job {
            Job::Async(job) => job,
            Job::Sync(job) => {
                let Ok(mut locked) = conn.lock_handle().await else {
                    fail(delivers, "the database connection could not be borrowed".into());
                    let _ = conn.execute("ROLLBACK").await;
                    return true;
                };
                if lent.is_none() {
                    match Lent::new(&mut locked) {
                        Ok(made) => *lent = Some(made),
                        Err(e) => {
                            fail(delivers, e.to_string());
                            drop(locked);
                            let _ = conn.execute("ROLLBACK").await;
                            return true;
                        }
                    }
                }
                let Some(lent) = lent.as_ref().map(|l| l.get(&locked)) else { unreachable!("made above") };
                let mut next = Some((i, job));
                while let Some((i, job)) = next.take() {
                    if let Err(e) = lent.execute_batch(between) {
                        // This job and the rest never ran.
                        if delivers.is_empty() {
                            tracing::warn!(error = %e, "starting a write transaction failed");
                        }
                        fail(delivers, e.to_string());
                        let _ = lent.execute_batch("ROLLBACK");
                        return true;
                    }
                    let Ok((ok, deliver)) = std::panic::catch_unwind(AssertUnwindSafe(|| job(lent))) else {
                        tracing::error!("a database write job panicked; its batch is rolled back");
                        fail(delivers, "a write in the same batch panicked".into());
                        let _ = lent.execute_batch("ROLLBACK");
                        return true;
                    };
                    delivers.push(deliver);
                    between = next_between(ok, i == last);
                    if i == last {
                        // The commit, here too: this thread waits for the disk, no hand-off.
                        let committed = lent.execute_batch(between).map_err(|e| e.to_string());
                        if committed.is_err() {
                            let _ = lent.execute_batch("ROLLBACK");
                        }
                        drop(locked);
                        return conclude(committed, delivers);
                    }
                    if matches!(jobs.peek(), Some((_, Job::Sync(_)))) {
                        next = jobs.next().map(|(i, job)| match job {
                            Job::Sync(job) => (i, job),
                            Job::Async(_) => unreachable!("peeked"),
                        });
                    }
                }
                drop(locked);
                continue;
            }
        };
        if let Err(e) = conn.execute(between).await {
            let why = e.to_string();
            if delivers.is_empty() {
                tracing::warn!(error = %why, "starting a write transaction failed");
            }
            // This job and the rest never ran: their callers learn it from the dropped
            // result channels.
            drop(job);
            fail(delivers, why);
            let _ = conn.execute("ROLLBACK").await;
            return true;
        }
        let outcome = AssertUnwindSafe(job(&mut *conn)).catch_unwind().await;
        let (ok, deliver) = match outcome {
            Ok(done) => done,
            Err(_) => {
                tracing::error!("a database write job panicked; its batch is rolled back");
                fail(delivers, "a write in the same batch panicked".into());
                let _ = conn.execute("ROLLBACK").await;
                return true;
            }
        };
        delivers.push(deliver);
        between = next_between(ok, i == last);
    }
    let committed = conn.execute(between).await.map(drop).map_err(|e| e.to_string());
    if committed.is_err() {
        let _ = conn.execute("ROLLBACK").await;
    }
    conclude(committed, delivers)
}

/// Answers a batch's jobs once its commit is over (rolled back first if it failed); true if
/// the connection must be replaced.
fn conclude(committed: Result<(), String>, delivers: Vec<Deliver>) -> bool {
    match committed {
        Ok(()) => {
            for d in delivers {
                d(None);
            }
            false
        }
        Err(why) => {
            tracing::error!(error = %why, "committing a batch of writes failed");
            fail(delivers, why);
            true
        }
    }
}

/// Statements the writer's jobs prepare and keep (see `sqlite_sync.rs`; rusqlite's default
/// is 16, fewer than the hot path's, which would prepare some again on every use).
const KEPT_STATEMENTS: usize = 64;

/// The writer's connection as rusqlite sees it: made once per connection, so that the
/// statements its jobs prepare are kept from batch to batch (preparing them again on every
/// batch was most of a job's cost), and used only while sqlx lends the handle (`get`).
struct Lent(rusqlite::Connection);

impl Lent {
    /// A rusqlite connection on the handle sqlx has lent, that does not own it (dropping it
    /// finalizes its own statements and leaves the connection open).
    #[allow(unsafe_code)]
    fn new(locked: &mut sqlx::sqlite::LockedSqliteHandle<'_>) -> rusqlite::Result<Self> {
        let handle = locked.as_raw_handle().as_ptr();
        // SAFETY: `handle` is a live connection, and it stays open while this `Lent` lives:
        // the writer drops (`release`) its `Lent` before it closes or replaces the sqlx
        // connection. The rusqlite connection calls into SQLite only while sqlx has lent
        // the handle (`get` wants the lock, and sqlx's SQLite thread waits for it to be
        // dropped) or, in `release`, under that lock too: no two threads ever use the
        // handle at once. Its statements, between uses, are reset (rusqlite's cache resets
        // a statement when it is returned), so they hold no transaction open. `from_handle`
        // never closes the handle. sqlx and rusqlite link the same libsqlite3-sys, so the
        // handle's type is the one rusqlite expects.
        let conn = unsafe { rusqlite::Connection::from_handle(handle) }?;
        conn.set_prepared_statement_cache_capacity(KEPT_STATEMENTS);
        Ok(Self(conn))
    }

    /// The connection, for as long as sqlx lends the handle.
    fn get<'a>(&'a self, _locked: &'a sqlx::sqlite::LockedSqliteHandle<'_>) -> &'a rusqlite::Connection {
        &self.0
    }

    /// Finalizes the kept statements, under the lock, before the sqlx connection is closed
    /// or replaced. If the handle cannot be borrowed (sqlx's thread is gone, and the handle
    /// may be closed with it), the statements are leaked rather than touched.
    async fn release(lent: Option<Self>, conn: &mut SqliteConnection) {
        let Some(lent) = lent else { return };
        match conn.lock_handle().await {
            Ok(locked) => {
                drop(lent);
                drop(locked);
            }
            Err(_) => std::mem::forget(lent),
        }
    }
}

/// What runs after a job: the end of its savepoint (kept, or undone if it failed), then the
/// next job's savepoint or, after the last, the commit.
fn next_between(ok: bool, last: bool) -> &'static str {
    match (ok, last) {
        (true, false) => "RELEASE job; SAVEPOINT job",
        (false, false) => "ROLLBACK TO job; RELEASE job; SAVEPOINT job",
        (true, true) => "RELEASE job; COMMIT",
        (false, true) => "ROLLBACK TO job; RELEASE job; COMMIT",
    }
}

/// Tells every job run so far that its batch did not commit, and why.
fn fail(delivers: Vec<Deliver>, why: String) {
    for d in delivers {
        d(Some(why.clone()));
    }
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqliteConnectOptions;

    use super::*;

    async fn writer(dir: &tempfile::TempDir) -> (Writer, sqlx::SqlitePool) {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("w.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = sqlx::SqlitePool::connect_with(options.clone()).await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)").execute(&pool).await.unwrap();
        (Writer::start(options).await.unwrap(), pool)
    }

    fn insert(w: &Writer, id: i64, fail_after: bool) -> impl Future<Output = Result<i64, StoreError>> + use<> {
        let w = w.clone();
        async move {
            w.write(move |c| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (id) VALUES (?)").bind(id).execute(&mut *c).await?;
                    if fail_after { Err(StoreError::Unavailable(format!("job {id} gave up"))) } else { Ok(id) }
                })
            })
            .await
        }
    }

    /// Jobs committed together keep their own outcomes: a job that fails (after writing, or
    /// on a statement the database refuses) is undone alone, the others in its batch commit.
    #[tokio::test]
    async fn a_failing_job_is_undone_alone_and_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (w, pool) = writer(&dir).await;
        for round in 0..20i64 {
            let base = round * 10;
            // Sent together, so most rounds share one batch (some split; both must hold).
            let (a, b, c, d) = tokio::join!(
                insert(&w, base + 1, false),
                insert(&w, base + 2, true),
                insert(&w, base + 1, false), // the same key again: refused by SQLite
                insert(&w, base + 3, false),
            );
            assert_eq!(a.unwrap(), base + 1);
            assert!(b.unwrap_err().to_string().contains("gave up"));
            assert!(c.is_err(), "a duplicate key must fail");
            assert_eq!(d.unwrap(), base + 3);
        }
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM t ORDER BY id").fetch_all(&pool).await.unwrap();
        let expected: Vec<i64> = (0..20i64).flat_map(|r| [r * 10 + 1, r * 10 + 3]).collect();
        assert_eq!(ids, expected);
        // The writer is still usable after all of that.
        assert_eq!(insert(&w, 1000, false).await.unwrap(), 1000);
    }

    /// Committed pages reach the database file without a commit of the writer's crossing
    /// SQLite's threshold: its own is set far above what this writes, so the file grows only
    /// if the checkpoints that follow commits run.
    #[tokio::test]
    async fn commits_are_checkpointed_off_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (w, pool) = writer(&dir).await;
        sqlx::query("CREATE TABLE pad (x BLOB)").execute(&pool).await.unwrap();
        let file = dir.path().join("w.db");
        let before = std::fs::metadata(&file).unwrap().len();
        for round in 0..20i64 {
            let jobs = (0..10i64).map(|i| {
                let w = w.clone();
                async move {
                    w.write_sync(move |c| {
                        c.execute("INSERT INTO t (id) VALUES (?1)", [round * 10 + i])
                            .map_err(crate::store::sqlite_sync::store_error)?;
                        // A page of its own for every row: ~200 pages, far below 20,000.
                        c.execute("INSERT INTO pad (x) VALUES (zeroblob(3000))", [])
                            .map_err(crate::store::sqlite_sync::store_error)?;
                        Ok::<_, StoreError>(())
                    })
                    .await
                }
            });
            for done in futures::future::join_all(jobs).await {
                done.unwrap();
            }
        }
        let mut grown = 0;
        for _ in 0..100 {
            grown = std::fs::metadata(&file).unwrap().len();
            if grown > before + 200 * 3000 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(grown > before + 200 * 3000, "the database file stayed at {grown} bytes (from {before})");
    }

    fn insert_sync(w: &Writer, id: i64, fail_after: bool) -> impl Future<Output = Result<i64, StoreError>> + use<> {
        let w = w.clone();
        async move {
            w.write_sync(move |c| {
                c.execute("INSERT INTO t (id) VALUES (?1)", [id]).map_err(crate::store::sqlite_sync::store_error)?;
                if fail_after { Err(StoreError::Unavailable(format!("job {id} gave up"))) } else { Ok(id) }
            })
            .await
        }
    }

    /// Jobs run whole on the lent connection mix with jobs through sqlx in one batch, in
    /// order, each with its own outcome; a panic in one rolls its batch back and the writer
    /// goes on.
    #[tokio::test]
    async fn sync_and_async_jobs_share_batches_and_keep_their_own_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let (w, pool) = writer(&dir).await;
        for round in 0..20i64 {
            let base = round * 10;
            let (a, b, c, d, e, f) = tokio::join!(
                insert(&w, base + 1, false),
                insert_sync(&w, base + 2, false),
                insert_sync(&w, base + 2, false), // the same key again: refused
                insert(&w, base + 3, true),
                insert_sync(&w, base + 4, true),
                insert_sync(&w, base + 5, false),
            );
            assert_eq!(a.unwrap(), base + 1);
            assert_eq!(b.unwrap(), base + 2);
            assert!(matches!(c, Err(StoreError::Conflict(_))), "a duplicate key is a conflict: {c:?}");
            assert!(d.unwrap_err().to_string().contains("gave up"));
            assert!(e.unwrap_err().to_string().contains("gave up"));
            assert_eq!(f.unwrap(), base + 5);
        }
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM t ORDER BY id").fetch_all(&pool).await.unwrap();
        let expected: Vec<i64> = (0..20i64).flat_map(|r| [r * 10 + 1, r * 10 + 2, r * 10 + 5]).collect();
        assert_eq!(ids, expected);
        let w2 = w.clone();
        let panicked = w2.write_sync::<(), StoreError, _>(|_| panic!("a bug in a job")).await;
        assert!(panicked.is_err());
        assert_eq!(insert_sync(&w, 1000, false).await.unwrap(), 1000);
        assert_eq!(insert(&w, 1001, false).await.unwrap(), 1001);
    }
}
