//! The datastore: one interface ([`Store`]), two engines (PostgreSQL and SQLite).
//!
//! Row types are shared (`rows`); SQL that both engines accept is written once, as
//! constants in [`sql`], and the methods that bind and fetch it are written once in the
//! `*_queries` files and expanded for each pool type by a macro; the dialect-specific parts
//! live in `pg` and `sqlite`. Callers only see [`Store`], an enum that dispatches to the engine.
//! Timestamps are produced in Rust ([`now`]) rather than by SQL `now()`, so both engines store
//! the same instants with the same (microsecond) precision.

/// The columns of `users` in [`UserRow`] order, for `concat!` into queries.
macro_rules! user_columns {
    () => {
        "id, email, name, role, email_verified, image, banned, ban_reason, created_at, updated_at, deleted_at"
    };
}

mod asset_queries;
mod auth_queries;
mod content_queries;
mod ledger_queries;
mod migrate;
mod pg;
mod pg_batch;
mod pg_pool;
pub mod rows;
mod shared;
pub mod sql;
mod sqlite;
mod sqlite_sync;
mod task_queries;
mod tool_queries;
mod webhook_queries;
mod writer;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

pub use self::pg::PgStore;
pub use self::rows::*;
pub use self::sqlite::SqliteStore;
use crate::config::{ConfigError, DatabaseTarget, Settings, redact_url};

/// Errors of the datastore, free of SQL details the client must not see.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("row not found")]
    NotFound,
    /// A unique constraint (named) was violated.
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    /// A check or foreign-key constraint (named) was violated.
    #[error("constraint violated: {0}")]
    Constraint(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(sqlx::Error),
}

/// `?` on a sqlx error classifies it (see [`StoreError::from_sqlx`]).
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::from_sqlx(err)
    }
}

impl StoreError {
    pub(crate) fn from_sqlx(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) => {
                let name = db.constraint().map(str::to_string).unwrap_or_else(|| db.message().to_string());
                // PostgreSQL's own "not now": a connection problem (class 08), a server
                // shutting down or starting up (57P01–57P03), too many connections (53300).
                let code = db.code().unwrap_or_default();
                if code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300") {
                    return StoreError::Unavailable(err.to_string());
                }
                if db.is_unique_violation() {
                    StoreError::Conflict(name)
                } else if db.is_check_violation()
                    || db.is_foreign_key_violation()
                    // SQLite's RESTRICT reports only "FOREIGN KEY constraint failed".
                    || db.message().contains("FOREIGN KEY constraint failed")
                {
                    StoreError::Constraint(name)
                } else {
                    StoreError::Other(err)
                }
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Other(err),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How long a request holding an `Idempotency-Key` may run before a retry with the same key
/// and body takes the key over (the first one is taken to have died on the way: without it,
/// such a key would answer 409 forever).
pub const IDEMPOTENCY_IN_FLIGHT: Duration = Duration::from_secs(60);

/// The current time at the precision both engines keep (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// An event's data as recorded: an object (null becomes `{}`) carrying its `type`.
pub(crate) fn event_data(kind: EventKind, mut data: serde_json::Value) -> serde_json::Value {
    if data.is_null() {
        data = serde_json::json!({});
    }
    data["type"] = kind.as_str().into();
    data
}

/// Which engine serves the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Sqlite,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Sqlite => "sqlite",
        }
    }
}

/// The datastore handle; cheap to clone (it wraps a connection pool).
#[derive(Debug, Clone)]
pub enum Store {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

/// Forwards a method call to whichever engine backs the store.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Postgres(s) => s.$method($($arg),*).await,
            Store::Sqlite(s) => s.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// Vacuums the queue table when it holds at least `min_dead` dead row versions
    /// (PostgreSQL; SQLite frees deleted rows itself). True when it vacuumed.
    pub async fn queue_vacuum(&self, min_dead: i64) -> StoreResult<bool> {
        match self {
            Store::Postgres(s) => s.queue_vacuum(min_dead).await,
            Store::Sqlite(_) => Ok(false),
        }
    }

    /// Connects to the database the settings select; fails fast, naming the setting.
    pub async fn connect(settings: &Settings) -> Result<Self, ConfigError> {
        let timeout = Duration::from_secs(settings.database.connect_timeout_secs);
        match settings.database_target()? {
            DatabaseTarget::Postgres(url) => {
                PgStore::connect(&url, settings.database.max_connections, timeout, settings.database.pooler)
                    .await
                    .map(Store::Postgres)
                    .map_err(|e| {
                        let problem = format!("cannot connect to {}: {e}", redact_url(&url));
                        match StoreError::from_sqlx(e) {
                            // Not up (yet), or starting: worth waiting for.
                            StoreError::Unavailable(_) => ConfigError::unreachable("DATABASE_URL", problem),
                            _ => ConfigError::new("DATABASE_URL", problem),
                        }
                    })
            }
            DatabaseTarget::Sqlite(path) => {
                let setting = if settings.database.url.is_some() { "DATABASE_URL" } else { "FUNMAGIC_DATA_DIR" };
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        ConfigError::new(setting, format!("cannot create directory {}: {e}", dir.display()))
                    })?;
                }
                SqliteStore::connect(&path, settings.database.max_connections, timeout)
                    .await
                    .map(Store::Sqlite)
                    .map_err(|e| ConfigError::new(setting, format!("cannot open {}: {e}", path.display())))
            }
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Store::Postgres(_) => Engine::Postgres,
            Store::Sqlite(_) => Engine::Sqlite,
        }
    }

    /// Applies every pending migration (idempotent; safe with several processes).
    pub async fn migrate(&self) -> StoreResult<Vec<i64>> {
        dispatch!(self.migrate())
    }

    /// Behind a transaction-pooling pooler (`database.pooler`).
    pub fn behind_pooler(&self) -> bool {
        match self {
            Store::Postgres(s) => s.pool.behind_pooler(),
            Store::Sqlite(_) => false,
        }
    }

    /// (the newest migration applied, the newest this build has).
    pub async fn schema_versions(&self) -> StoreResult<(i64, i64)> {
        let needed = migrate::versions().into_iter().max().unwrap_or(0);
        const APPLIED: &str = "SELECT MAX(version) FROM _sqlx_migrations WHERE success";
        let applied: Option<i64> = match self {
            Store::Postgres(s) => {
                let exists: bool =
                    sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(&s.pool).await?;
                if exists { sqlx::query_scalar(APPLIED).fetch_one(&s.pool).await? } else { None }
            }
            Store::Sqlite(s) => {
                let exists: bool =
                    sqlx::query_scalar("SELECT COUNT(*) > 0 FROM sqlite_master WHERE name = '_sqlx_migrations'")
                        .fetch_one(&s.pool)
                        .await?;
                if exists { sqlx::query_scalar(APPLIED).fetch_one(&s.pool).await? } else { None }
            }
        };
        Ok((applied.unwrap_or(0), needed))
    }

    /// A round trip to the database; returns the engine's version string.
    pub async fn ping(&self) -> StoreResult<String> {
        dispatch!(self.ping())
    }

    /// Names of the application tables (migration bookkeeping excluded), sorted.
    pub async fn table_names(&self) -> StoreResult<Vec<String>> {
        dispatch!(self.table_names())
    }

    pub async fn close(&self) {
        dispatch!(self.close())
    }

    /// The connection pool's (size, idle connections), for the metrics.
    pub fn pool_stats(&self) -> (u32, usize) {
        match self {
            Store::Postgres(s) => (s.pool.size(), s.pool.num_idle()),
            Store::Sqlite(s) => (s.pool.size(), s.pool.num_idle()),
        }
    }

    /// Prepares `sql` without running it: the engine parses it and resolves every table,
    /// column and function it names (see [`sql::all`]). The engine's own error is returned
    /// (its SQLSTATE tells a wrong statement from one whose types only the binds give).
    pub async fn prepare(&self, sql: &'static str) -> Result<(), sqlx::Error> {
        use sqlx::Executor;
        match self {
            Store::Postgres(s) => s.pool.prepare(sqlx::SqlSafeStr::into_sql_str(sql)).await.map(|_| ()),
            Store::Sqlite(s) => s.pool.prepare(sqlx::SqlSafeStr::into_sql_str(sql)).await.map(|_| ()),
        }
    }
}

/// Generates `Store` methods that forward to the engine's inherent method of the same name.
macro_rules! forward {
    ($( $(#[$meta:meta])* fn $name:ident($($arg:ident : $ty:ty),*) -> $ret:ty; )*) => {
        impl Store {
            $( $(#[$meta])* pub async fn $name(&self, $($arg: $ty),*) -> $ret { dispatch!(self.$name($($arg),*)) } )*
        }
    };
}

forward! {
    fn user_create(new: &NewUser) -> StoreResult<UserRow>;
    /// Inserts the user and its credential account in one transaction.
    fn user_create_with_password(new: &NewUser, password_hash: &str) -> StoreResult<UserRow>;
    fn user_get(id: Uuid) -> StoreResult<Option<UserRow>>;
    fn user_get_by_email(email: &str) -> StoreResult<Option<UserRow>>;
    /// Users ordered by id (time-ordered UUIDv7), after `after`, at most `limit`.
    fn user_list(after: Option<Uuid>, limit: i64) -> StoreResult<Vec<UserRow>>;
    /// Like `user_list`, filtered by a case-insensitive substring of email or name.
    fn user_search(query: Option<&str>, after: Option<Uuid>, limit: i64) -> StoreResult<Vec<UserRow>>;
    fn user_count() -> StoreResult<i64>;
    fn user_count_with_role(role: Role) -> StoreResult<i64>;
    fn user_set_email_verified(user_id: Uuid) -> StoreResult<()>;
    /// Name (when given) and picture (`Some(None)` clears it); `None`: no such user.
    fn user_set_profile(user_id: Uuid, name: Option<&str>, image: Option<Option<&str>>) -> StoreResult<Option<UserRow>>;
    /// A user's sessions live at `now`, newest first.
    fn sessions_of_user(user_id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<SessionRow>>;
    /// Deletes one of a user's sessions; its token hash, `None` if the user has no such one.
    fn session_delete_of_user(user_id: Uuid, id: Uuid) -> StoreResult<Option<String>>;
    fn user_set_banned(user_id: Uuid, banned: bool, reason: Option<&str>) -> StoreResult<Option<UserRow>>;
    /// Changes a role; refuses (`StoreError::Constraint("last_super_admin")`) to demote the
    /// last super admin, atomically with respect to concurrent changes.
    fn user_set_role(user_id: Uuid, role: Role) -> StoreResult<UserRow>;
    /// Deletes an account: the user row becomes an anonymised tombstone (`deleted_at` set,
    /// kept for the ledger and tasks), its sessions, keys, sign-in links, device codes,
    /// mailed links and pending uploads go; returns the session and key hashes to forget.
    /// `NotFound` for a missing or already deleted user; refuses the last super admin.
    fn user_delete_account(user_id: Uuid) -> StoreResult<Vec<String>>;
    /// Deleted accounts that still own files or unfinished tasks.
    fn users_deleted_unfinished(limit: i64) -> StoreResult<Vec<Uuid>>;
    fn tasks_unfinished_of_user(user_id: Uuid, limit: i64) -> StoreResult<Vec<Uuid>>;
    fn asset_ids_of_user(user_id: Uuid, limit: i64) -> StoreResult<Vec<Uuid>>;
    fn password_hash_get(user_id: Uuid) -> StoreResult<Option<String>>;
    fn password_hash_set(user_id: Uuid, hash: &str) -> StoreResult<()>;
    fn account_get(provider_id: &str, account_id: &str) -> StoreResult<Option<AccountRow>>;
    /// Records an external (OAuth) sign-in through this account at `at`.
    fn account_touch(provider_id: &str, account_id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// When the user last signed in through an external account (OAuth), if ever.
    fn last_external_sign_in(user_id: Uuid) -> StoreResult<Option<DateTime<Utc>>>;
    fn account_link(user_id: Uuid, provider_id: &str, account_id: &str, access_token: Option<&str>, scope: Option<&str>) -> StoreResult<()>;
    /// A session issued at `now` (the app's clock, which its freshness is judged by).
    fn session_create(user_id: Uuid, token_hash: &str, expires_at: DateTime<Utc>, ip_address: Option<&str>, user_agent: Option<&str>, now: DateTime<Utc>) -> StoreResult<SessionRow>;
    fn session_get_by_token(token_hash: &str) -> StoreResult<Option<SessionRow>>;
    fn session_extend(id: Uuid, expires_at: DateTime<Utc>) -> StoreResult<()>;
    fn session_delete_by_token(token_hash: &str) -> StoreResult<bool>;
    /// Deletes a user's sessions (all, or all but `keep`); returns their token hashes.
    fn sessions_delete_for_user(user_id: Uuid, keep: Option<Uuid>) -> StoreResult<Vec<String>>;
    fn sessions_delete_expired(before: DateTime<Utc>) -> StoreResult<u64>;
    fn verification_create(identifier: &str, value_hash: &str, expires_at: DateTime<Utc>) -> StoreResult<()>;
    /// Single use: deletes and returns the identifier when unexpired and of this kind.
    fn verification_consume(kind: &str, value_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<String>>;
    fn api_key_create(user_id: Uuid, name: &str, prefix: &str, key_hash: &str, scope: KeyScope, expires_at: Option<DateTime<Utc>>) -> StoreResult<ApiKeyRow>;
    fn api_key_list(user_id: Uuid) -> StoreResult<Vec<ApiKeyRow>>;
    fn api_key_get_by_hash(key_hash: &str) -> StoreResult<Option<ApiKeyRow>>;
    fn api_key_revoke(user_id: Uuid, id: Uuid) -> StoreResult<Option<String>>;
    fn api_key_touch(id: Uuid) -> StoreResult<()>;
    fn api_key_hashes_for_user(user_id: Uuid) -> StoreResult<Vec<String>>;
    /// Revokes all of a user's live keys; returns their hashes.
    fn api_keys_revoke_for_user(user_id: Uuid) -> StoreResult<Vec<String>>;
    /// Denies the device codes a user approved that were not collected yet.
    fn device_codes_deny_for_user(user_id: Uuid) -> StoreResult<u64>;
    fn device_code_create(device_code_hash: &str, user_code: &str, client_name: &str, interval_secs: i32, expires_at: DateTime<Utc>) -> StoreResult<DeviceCodeRow>;
    fn device_code_by_user_code(user_code: &str) -> StoreResult<Option<DeviceCodeRow>>;
    fn device_code_decide(user_code: &str, user_id: Uuid, approve: bool) -> StoreResult<bool>;
    fn device_code_poll(device_code_hash: &str) -> StoreResult<Option<DeviceCodeRow>>;
    fn device_code_consume(id: Uuid) -> StoreResult<bool>;
    fn credits_get(user_id: Uuid) -> StoreResult<CreditsRow>;
    /// Adds (or for `admin_adjust` removes) credits, once per `(kind, reference)`.
    fn credits_grant(user_id: Uuid, kind: TransactionType, amount: i64, reference: &str, description: Option<&str>) -> Result<Booked<CreditTxRow>, LedgerError>;
    /// Reserves `amount` for `reference` (a task), once.
    fn credits_reserve(user_id: Uuid, reference: &str, amount: i64) -> Result<Booked<CreditsRow>, LedgerError>;
    /// Resolves a reservation once: spends `spend` (default: all), releases the rest.
    fn credits_resolve(reference: &str, spend: Option<i64>) -> Result<Booked<Resolution>, LedgerError>;
    fn credits_reservation(reference: &str) -> StoreResult<Option<(i64, Option<i64>)>>;
    fn credits_transactions(user_id: Uuid, kind: Option<TransactionType>, before: Option<Uuid>, limit: i64) -> StoreResult<Vec<CreditTxRow>>;
    fn credits_invariant_violations(user_id: Uuid) -> StoreResult<Vec<String>>;
    /// The ledger's invariants checked over all accounts at once (aggregates only).
    fn credits_ledger_violations() -> StoreResult<Vec<String>>;
    fn credit_package_list(active_only: bool) -> StoreResult<Vec<CreditPackageRow>>;
    fn credit_package_get(id: Uuid) -> StoreResult<Option<CreditPackageRow>>;
    fn credit_package_upsert(package: &CreditPackageRow) -> StoreResult<CreditPackageRow>;
    fn credit_package_delete(id: Uuid) -> StoreResult<bool>;
    fn checkout_create(checkout: &CheckoutRow) -> StoreResult<()>;
    fn checkout_get(id: &str) -> StoreResult<Option<CheckoutRow>>;
    fn checkout_set_status(id: &str, status: CheckoutStatus) -> StoreResult<bool>;
    fn stripe_event_record(id: &str, kind: &str) -> StoreResult<bool>;
    fn stripe_event_forget(id: &str) -> StoreResult<()>;
    fn idempotency_begin(user_id: Uuid, key: &str, operation: &str, request_hash: &str) -> StoreResult<IdempotencyState>;
    fn idempotency_finish(user_id: Uuid, key: &str, response: Option<(u16, &str)>) -> StoreResult<()>;
    fn asset_create(asset: &AssetRow) -> StoreResult<AssetRow>;
    fn asset_get(id: Uuid) -> StoreResult<Option<AssetRow>>;
    fn asset_get_by_key(bucket: &str, key: &str) -> StoreResult<Option<AssetRow>>;
    /// A user's assets, newest first, optionally of one module.
    fn asset_list(user_id: Uuid, module: Option<&str>, before: Option<Uuid>, limit: i64) -> StoreResult<Vec<AssetRow>>;
    fn asset_delete(id: Uuid) -> StoreResult<bool>;
    fn asset_set_thumbnail(id: Uuid, key: &str) -> StoreResult<()>;
    fn asset_move(id: Uuid, bucket: &str, key: &str, visibility: &str) -> StoreResult<AssetRow>;
    /// Bytes a user occupies: assets plus uploads in flight.
    fn storage_usage(user_id: Uuid) -> StoreResult<i64>;
    /// Records a pending upload when usage + its size stays within `quota` (atomically per
    /// user); false when it would exceed it.
    fn pending_upload_create(upload: &PendingUploadRow, quota: Option<i64>) -> StoreResult<bool>;
    fn pending_upload_by_upload_key(bucket: &str, upload_key: &str) -> StoreResult<Option<PendingUploadRow>>;
    fn pending_upload_get(bucket: &str, key: &str) -> StoreResult<Option<PendingUploadRow>>;
    fn pending_upload_delete(bucket: &str, key: &str) -> StoreResult<bool>;
    fn pending_uploads_expired(now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<PendingUploadRow>>;
    fn tool_type_list() -> StoreResult<Vec<ToolTypeRow>>;
    fn tool_type_upsert(tool_type: &ToolTypeRow) -> StoreResult<ToolTypeRow>;
    fn tool_type_delete(id: Uuid) -> StoreResult<bool>;
    /// Tools by position, then slug.
    fn tool_list(active_only: bool, featured_only: bool) -> StoreResult<Vec<ToolRow>>;
    fn tool_get(id: Uuid) -> StoreResult<Option<ToolRow>>;
    fn tool_get_by_slug(slug: &str) -> StoreResult<Option<ToolRow>>;
    fn tool_upsert(tool: &ToolRow) -> StoreResult<ToolRow>;
    fn tool_delete(id: Uuid) -> StoreResult<bool>;
    fn banner_list(kind: Option<BannerType>, live_at: Option<DateTime<Utc>>) -> StoreResult<Vec<BannerRow>>;
    fn banner_get(id: Uuid) -> StoreResult<Option<BannerRow>>;
    fn banner_upsert(banner: &BannerRow) -> StoreResult<BannerRow>;
    fn banner_delete(id: Uuid) -> StoreResult<bool>;
    /// Positions of one type's banners in the given order, all or none.
    fn banner_reorder(kind: BannerType, ids: &[Uuid]) -> StoreResult<()>;
    fn provider_list() -> StoreResult<Vec<ProviderRow>>;
    fn provider_get(id: Uuid) -> StoreResult<Option<ProviderRow>>;
    fn provider_upsert(provider: &ProviderRow) -> StoreResult<ProviderRow>;
    fn provider_set_health(id: Uuid, healthy: bool, message: Option<&str>) -> StoreResult<()>;
    /// Re-encrypted keys, all or none: (id, current key id, ciphertext, new key id).
    fn provider_keys_replace(keys: &[(Uuid, String, String, String)]) -> StoreResult<u64>;
    /// Creates the built-in `local` provider if missing; returns its id.
    fn provider_ensure_local() -> StoreResult<Uuid>;
    /// Reserves, inserts task + payload + steps, enqueues and records `queued`, in one transaction.
    fn task_submit(new: &NewTask) -> Result<(TaskRow, Recorded), LedgerError>;
    fn task_get(id: Uuid) -> StoreResult<Option<TaskRow>>;
    fn task_list(user_id: Option<Uuid>, status: Option<TaskStatus>, tool_id: Option<Uuid>, before: Option<Uuid>, limit: i64) -> StoreResult<Vec<TaskRow>>;
    fn task_steps(task_id: Uuid) -> StoreResult<Vec<TaskStepRow>>;
    fn task_payload(task_id: Uuid) -> StoreResult<Option<TaskPayloadRow>>;
    /// A task with its payload, steps and (while queued) place in line: one round trip on
    /// PostgreSQL, for `GET /api/tasks/{id}` (what clients poll).
    fn task_full(id: Uuid) -> StoreResult<Option<TaskFull>>;
    /// A task with (while queued) its place in line and its milestones after `after`: one
    /// round trip on PostgreSQL, for opening a task's event stream.
    fn task_stream_start(id: Uuid, after: i64) -> StoreResult<Option<TaskStreamStart>>;
    /// A step starts (and the task runs), with its `step_started` event; `None` if the task
    /// ended or is to be cancelled.
    fn task_step_begin(task_id: Uuid, step_id: &str, first_in_run: bool, event: serde_json::Value) -> StoreResult<Option<Recorded>>;
    /// A step completes, with its `step_completed` event.
    fn task_step_done(task_id: Uuid, step_id: &str, output: &serde_json::Value, event: serde_json::Value) -> StoreResult<Option<Recorded>>;
    /// A step goes back to pending and its task waits `delay` for a retry, with a notice.
    fn task_step_retry(task_id: Uuid, step_id: &str, patch: serde_json::Value, delay: std::time::Duration, event: serde_json::Value) -> StoreResult<Option<Recorded>>;
    /// Saves a running step's state (a provider job id) before the step waits on it.
    fn task_step_save(task_id: Uuid, step_id: &str, state: &serde_json::Value) -> StoreResult<()>;
    fn task_step_fail(task_id: Uuid, step_id: &str, error: &str) -> StoreResult<()>;
    /// Ends a task once, atomically with its settlement, events and queue row; unparks up
    /// to `unpark` of the user's tasks waiting for a running slot.
    fn task_finish(id: Uuid, end: &TaskEnd<'_>, unpark: i64) -> Result<Finished, LedgerError>;
    fn task_request_cancel(id: Uuid) -> StoreResult<Option<TaskStatus>>;
    fn task_events_after(task_id: Uuid, after: i64) -> StoreResult<Vec<TaskEventRow>>;
    /// The event counters of these tasks.
    fn task_event_seqs(ids: &[Uuid]) -> StoreResult<Vec<(Uuid, i64)>>;
    fn queue_position(task_id: Uuid) -> StoreResult<Option<i64>>;
    /// A waiting task's place in line (position = this − `queue_head`).
    fn queue_seq(task_id: Uuid) -> StoreResult<Option<i64>>;
    /// The place in line of the first waiting task.
    fn queue_head() -> StoreResult<Option<i64>>;
    /// Drops a task's queue row (the task has already ended).
    fn queue_remove(task_id: Uuid) -> StoreResult<()>;
    /// Extends a running task's lease (the worker's heartbeat).
    fn queue_renew(task_id: Uuid, lease: std::time::Duration) -> StoreResult<()>;
    /// Leases the next due task (or the one given) for `lease`, within the per-user limit
    /// (and may start its first step when the run is within `max_attempts`).
    fn queue_claim(only: Option<Uuid>, lease: std::time::Duration, per_user: u32, max_attempts: u32) -> StoreResult<Claim>;
    /// Up to `max` due tasks, claimed in one transaction.
    fn queue_claim_many(lease: std::time::Duration, per_user: u32, max_attempts: u32, max: usize) -> StoreResult<Vec<Box<ClaimedTask>>>;
    /// Due tasks nobody took for `older_than`, marked as re-sent (the reconciler's input).
    fn queue_stale(older_than: std::time::Duration, limit: i64) -> StoreResult<Vec<Uuid>>;
    /// (due and waiting, running, waiting for a retry).
    fn queue_depth() -> StoreResult<(i64, i64, i64)>;
    /// Tasks waiting that a worker could take now (not leased, not held by their user's
    /// running limit `per_user`), counted up to `upto`.
    fn queue_runnable(upto: i64, per_user: i64) -> StoreResult<i64>;
    /// The dead-letter list, newest first.
    fn dead_letters(before: Option<Uuid>, limit: i64) -> StoreResult<Vec<DeadLetterRow>>;
    /// How many tasks failed for good.
    fn dead_letter_count() -> StoreResult<i64>;
    fn webhook_endpoint_insert(new: &NewWebhookEndpoint) -> StoreResult<WebhookEndpointRow>;
    /// A user's endpoints, oldest first (the first signs tasks' own webhook URLs).
    fn webhook_endpoints_of_user(user_id: Uuid) -> StoreResult<Vec<WebhookEndpointRow>>;
    fn webhook_endpoints_all() -> StoreResult<Vec<WebhookEndpointRow>>;
    fn webhook_endpoint_get(id: Uuid) -> StoreResult<Option<WebhookEndpointRow>>;
    fn webhook_endpoint_update(row: &WebhookEndpointRow) -> StoreResult<Option<WebhookEndpointRow>>;
    fn webhook_endpoint_rotate(id: Uuid, secret: &str, key_id: &str, until: DateTime<Utc>) -> StoreResult<Option<WebhookEndpointRow>>;
    fn webhook_secrets_replace(sealed: &[SealedSecrets]) -> StoreResult<u64>;
    fn webhook_endpoint_delete(id: Uuid, user_id: Uuid) -> StoreResult<bool>;
    fn webhook_endpoint_health(id: Uuid, ok: bool, at: DateTime<Utc>) -> StoreResult<()>;
    fn webhook_endpoint_disable(id: Uuid, reason: &str) -> StoreResult<bool>;
    fn webhook_endpoints_failing(limit: i64) -> StoreResult<Vec<WebhookEndpointRow>>;
    fn webhook_delivery_insert(id: Uuid, endpoint_id: Uuid, user_id: Uuid, event_type: &str, data: &serde_json::Value, at: DateTime<Utc>) -> StoreResult<WebhookDeliveryRow>;
    fn webhook_deliveries_of_endpoint(endpoint_id: Uuid, before: Option<DateTime<Utc>>, limit: i64) -> StoreResult<Vec<WebhookDeliveryRow>>;
    fn webhook_delivery_get(id: Uuid) -> StoreResult<Option<WebhookDeliveryRow>>;
    fn webhook_delivery_replay(id: Uuid, at: DateTime<Utc>) -> StoreResult<bool>;
    fn webhook_deliveries_claim(now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: i64) -> StoreResult<Vec<WebhookDeliveryRow>>;
    fn webhook_relay_seen(endpoint_id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;
    fn webhook_relay_claim(endpoint_id: Uuid, now: DateTime<Utc>, lease_until: DateTime<Utc>, limit: i64) -> StoreResult<Vec<WebhookDeliveryRow>>;
    fn webhook_relays_sweep(before: DateTime<Utc>) -> StoreResult<u64>;
    fn webhook_delivery_record(id: Uuid, outcome: &WebhookOutcome) -> StoreResult<()>;
    fn webhook_attempts_of(delivery_id: Uuid) -> StoreResult<Vec<WebhookAttemptRow>>;
    fn webhook_deliveries_sweep(before: DateTime<Utc>) -> StoreResult<u64>;
    fn webhook_deliveries_stuck(before: DateTime<Utc>) -> StoreResult<i64>;
    fn webhook_settings_get(user_id: Uuid) -> StoreResult<Option<i64>>;
    fn webhook_settings_put(user_id: Uuid, threshold: Option<i64>) -> StoreResult<()>;
}
