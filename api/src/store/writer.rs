//! SQLite's one writer, with group commit.
//!
//! SQLite runs one write transaction at a time, and with `synchronous = FULL` each commit
//! waits for the disk. Writes on the task hot path therefore go through one task that owns
//! a connection of its own: it takes every write job waiting in its queue, runs each in a
//! `SAVEPOINT` of one `BEGIN IMMEDIATE` transaction (a job that fails is rolled back alone),
//! commits once, and only then answers each caller. A batch of 50 submissions costs one
//! fsync instead of 50, and writers never meet `SQLITE_BUSY`: they wait in the queue.
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

/// Called after the batch's commit: `None` if it committed, else why not.
type Deliver = Box<dyn FnOnce(Option<String>) + Send>;
type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Deliver)> + Send>;

/// The handle: cheap to clone; the writer stops when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Opens the writer's own connection and starts it.
    pub async fn start(options: SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let conn = options.connect().await?;
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(conn, options, rx));
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
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = f(conn).await;
                let ok = result.is_ok();
                let deliver: Deliver = Box::new(move |failed: Option<String>| {
                    let _ = tx.send(match failed {
                        Some(why) if ok => Err(StoreError::Unavailable(format!("commit failed: {why}")).into()),
                        _ => result,
                    });
                });
                (ok, deliver)
            })
        });
        let not_run = || E::from(StoreError::Unavailable("the database write was not carried out".into()));
        self.jobs.send(job).map_err(|_| not_run())?;
        // A dropped answer: the writer stopped, or its transaction could not start (logged).
        rx.await.map_err(|_| not_run())?
    }
}

async fn run(mut conn: SqliteConnection, options: SqliteConnectOptions, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let broken = run_batch(&mut conn, &mut batch).await;
        if broken {
            // A failed COMMIT or ROLLBACK leaves the connection in doubt: start afresh.
            loop {
                match options.connect().await {
                    Ok(c) => {
                        conn = c;
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "reopening the SQLite writer failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
            }
        }
    }
    let _ = conn.close().await;
}

/// Runs and commits one batch; true if the connection must be replaced.
async fn run_batch(conn: &mut SqliteConnection, batch: &mut Vec<Job>) -> bool {
    if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
        let why = e.to_string();
        tracing::warn!(error = %why, "starting a write transaction failed");
        fail_all(batch, &why);
        return true;
    }
    let mut delivers: Vec<Deliver> = Vec::with_capacity(batch.len());
    for job in batch.drain(..) {
        if let Err(e) = conn.execute("SAVEPOINT job").await {
            let why = e.to_string();
            drop(job);
            for d in delivers {
                d(Some(why.clone()));
            }
            let _ = conn.execute("ROLLBACK").await;
            return true;
        }
        let outcome = AssertUnwindSafe(job(&mut *conn)).catch_unwind().await;
        let (ok, deliver) = match outcome {
            Ok(done) => done,
            Err(_) => {
                tracing::error!("a database write job panicked; its batch is rolled back");
                for d in delivers {
                    d(Some("a write in the same batch panicked".into()));
                }
                let _ = conn.execute("ROLLBACK").await;
                return true;
            }
        };
        let end = if ok { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        if let Err(e) = conn.execute(end).await {
            let why = e.to_string();
            deliver(Some(why.clone()));
            for d in delivers {
                d(Some(why.clone()));
            }
            let _ = conn.execute("ROLLBACK").await;
            return true;
        }
        delivers.push(deliver);
    }
    match conn.execute("COMMIT").await {
        Ok(_) => {
            for d in delivers {
                d(None);
            }
            false
        }
        Err(e) => {
            let why = e.to_string();
            tracing::error!(error = %why, "committing a batch of writes failed");
            for d in delivers {
                d(Some(why.clone()));
            }
            let _ = conn.execute("ROLLBACK").await;
            true
        }
    }
}

fn fail_all(batch: &mut Vec<Job>, why: &str) {
    // The jobs never ran: their callers learn it from the dropped result channels.
    tracing::warn!(jobs = batch.len(), reason = why, "a batch of writes was not run");
    batch.clear();
}
