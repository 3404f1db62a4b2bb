//! The PostgreSQL pool as the store's queries see it: sqlx's pool, or — behind a
//! transaction-pooling connection pooler such as PgBouncer in `pool_mode = transaction`
//! (`database.pooler`) — the same pool with every statement in a transaction of its own.
//!
//! Why: a transaction pooler gives the server connection back after each transaction, and
//! outside an explicit transaction every `Sync` of the extended protocol ends one. sqlx
//! parses a statement (Parse, Describe, Sync) before it binds and runs it (Bind, Execute,
//! Sync), so the two halves could land on different server connections, and a prepared
//! statement kept for later would exist on one server connection only. Behind a pooler,
//! each statement outside an explicit transaction runs between `BEGIN` and `COMMIT`, which
//! pins one server connection for both halves, and no statement is cached for reuse. sqlx
//! still names the statements it prepares, so the pooler must drop them when it hands the
//! server connection on: PgBouncer's `server_reset_query = DEALLOCATE ALL` with
//! `server_reset_query_always = 1` (PgBouncer 1.21+ can track them itself with
//! `max_prepared_statements`). Explicit transactions (`begin`) work as they are. Nothing
//! here relies on session state: the advisory locks are transaction-scoped and nothing
//! LISTENs. Tested through a real PgBouncer in `tests/it/pooler.rs`.

use futures::stream::{BoxStream, StreamExt};
use futures::{TryStreamExt, future::BoxFuture};
use sqlx::postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Either, Execute, Executor, PgPool, Postgres, Transaction};

#[derive(Debug, Clone)]
pub struct PgPoolHandle {
    pool: PgPool,
    /// Behind a transaction pooler: each statement in its own transaction.
    wrap: bool,
}

/// A connection for several statements that need no transaction of their own (reads):
/// a pooled connection, or a transaction behind a pooler (rolled back when dropped).
pub enum PgConn {
    Pooled(sqlx::pool::PoolConnection<Postgres>),
    Tx(Transaction<'static, Postgres>),
}

impl std::ops::Deref for PgConn {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        match self {
            PgConn::Pooled(c) => c,
            PgConn::Tx(t) => t,
        }
    }
}

impl std::ops::DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut Self::Target {
        match self {
            PgConn::Pooled(c) => &mut *c,
            PgConn::Tx(t) => &mut *t,
        }
    }
}

impl PgPoolHandle {
    pub fn new(pool: PgPool, behind_pooler: bool) -> Self {
        Self { pool, wrap: behind_pooler }
    }

    /// Whether statements run behind a transaction pooler.
    pub fn behind_pooler(&self) -> bool {
        self.wrap
    }

    pub fn inner(&self) -> &PgPool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    pub async fn acquire(&self) -> Result<PgConn, sqlx::Error> {
        if self.wrap {
            Ok(PgConn::Tx(self.pool.begin().await?))
        } else {
            Ok(PgConn::Pooled(self.pool.acquire().await?))
        }
    }

    pub fn size(&self) -> u32 {
        self.pool.size()
    }

    pub fn num_idle(&self) -> usize {
        self.pool.num_idle()
    }

    pub async fn close(&self) {
        self.pool.close().await
    }
}

impl<'p> Executor<'p> for &'_ PgPoolHandle {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.wrap {
            return (&self.pool).fetch_many(query);
        }
        let pool = self.pool.clone();
        let all = async move {
            let mut tx = pool.begin().await?;
            let items: Vec<_> = tx.fetch_many(query).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(items)
        };
        futures::stream::once(all)
            .flat_map(|result| match result {
                Ok(items) => futures::stream::iter(items.into_iter().map(Ok)).boxed(),
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.wrap {
            return (&self.pool).fetch_optional(query);
        }
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut tx = pool.begin().await?;
            let row = tx.fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        let pool = self.pool.clone();
        let wrap = self.wrap;
        Box::pin(async move {
            if wrap {
                let mut tx = pool.begin().await?;
                let statement = tx.prepare_with(sql, parameters).await?;
                tx.commit().await?;
                Ok(statement)
            } else {
                (&pool).prepare_with(sql, parameters).await
            }
        })
    }
}

/// Where a group-commit loop (`pg_batch`) runs a statement: the connection it holds while
/// calls keep coming, or the pool (behind a transaction pooler, and for calls run again one
/// by one after a batch failed).
#[derive(Debug)]
pub enum BatchConn<'c> {
    Pool(&'c PgPoolHandle),
    Held(&'c mut sqlx::PgConnection),
}

impl<'c> From<&'c PgPoolHandle> for BatchConn<'c> {
    fn from(pool: &'c PgPoolHandle) -> Self {
        BatchConn::Pool(pool)
    }
}

impl<'c> Executor<'c> for BatchConn<'c> {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        match self {
            BatchConn::Pool(pool) => pool.fetch_many(query),
            BatchConn::Held(conn) => conn.fetch_many(query),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        match self {
            BatchConn::Pool(pool) => pool.fetch_optional(query),
            BatchConn::Held(conn) => conn.fetch_optional(query),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            BatchConn::Pool(pool) => pool.prepare_with(sql, parameters),
            BatchConn::Held(conn) => conn.prepare_with(sql, parameters),
        }
    }
}
