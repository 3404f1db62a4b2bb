//! Row types shared by both engines: `Uuid`, `DateTime<Utc>` and `Json<_>` decode from
//! native PostgreSQL types and from SQLite's BLOB/TEXT alike.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The roles of the seed's RBAC, as stored in `users.role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    User,
    Admin,
    SuperAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::SuperAdmin => "super_admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            "super_admin" => Some(Role::SuperAdmin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub email_verified: bool,
    pub image: Option<String>,
    pub banned: bool,
    pub ban_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set when the account was deleted: the row is an anonymised tombstone kept for the
    /// ledger and the tasks.
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl UserRow {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::User)
    }
}

/// What it takes to insert a user; the email must already be normalized.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: Role,
    pub email_verified: bool,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    /// SHA-256 of the bearer secret.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AccountRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub provider_id: String,
    pub account_id: String,
    pub password: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The scopes an API key may carry; sessions act with `write`, or `admin` for admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyScope {
    Read,
    Write,
    Admin,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Read => "read",
            KeyScope::Write => "write",
            KeyScope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(KeyScope::Read),
            "write" => Some(KeyScope::Write),
            "admin" => Some(KeyScope::Admin),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub scope: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeviceCodeRow {
    pub id: Uuid,
    pub device_code_hash: String,
    pub user_code: String,
    pub client_name: String,
    pub status: DeviceCodeStatus,
    pub user_id: Option<Uuid>,
    pub interval_secs: i32,
    pub expires_at: DateTime<Utc>,
    pub last_polled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A user's credit account (zeros when the user never had credits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct CreditsRow {
    pub balance: i64,
    pub reserved_balance: i64,
    pub lifetime_earned: i64,
    pub lifetime_spent: i64,
}

impl CreditsRow {
    pub fn available(&self) -> i64 {
        self.balance - self.reserved_balance
    }
}

pub use crate::domain::{
    BannerType, CheckoutStatus, DeviceCodeStatus, EventKind, LinkTarget, ProviderKind, StepStatus, TaskStatus,
    TransactionType,
};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CreditTxRow {
    pub id: Uuid,
    pub user_id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: TransactionType,
    pub amount: i64,
    pub balance_after: i64,
    pub reserved_delta: i64,
    pub reserved_after: i64,
    pub reference_id: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The result of a ledger operation that may have happened before (retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Booked<T> {
    /// Done now.
    Applied(T),
    /// Already done earlier with this reference: nothing changed.
    Duplicate,
}

/// Why a ledger operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("insufficient credits: {available} available")]
    Insufficient { available: i64 },
    #[error("no reservation with that reference")]
    UnknownReservation,
    #[error("the reservation belongs to another user or amount")]
    ReservationMismatch,
    #[error("spend exceeds the reserved amount")]
    SpendExceedsReservation,
    #[error(transparent)]
    Store(#[from] super::StoreError),
}

impl From<sqlx::Error> for LedgerError {
    fn from(err: sqlx::Error) -> Self {
        LedgerError::Store(err.into())
    }
}

/// How a reservation was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    pub spent: i64,
    pub released: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CreditPackageRow {
    pub id: Uuid,
    pub name: String,
    pub credits: i64,
    pub price: i64,
    pub currency: String,
    pub stripe_price_id: Option<String>,
    pub is_active: bool,
    pub sort_order: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CheckoutRow {
    pub id: String,
    pub user_id: Uuid,
    pub package_id: Uuid,
    pub credits: i64,
    pub amount: i64,
    pub currency: String,
    pub url: String,
    pub status: CheckoutStatus,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// What the first request with an idempotency key left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyState {
    /// The key is new and now claimed by this request.
    Claimed,
    /// The same request finished before: replay its answer.
    Replay { status: u16, body: String },
    /// The key was used with a different request.
    Mismatch,
    /// The first request is still running.
    InProgress,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AssetRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub bucket: String,
    pub storage_key: String,
    pub visibility: String,
    pub module: String,
    pub filename: Option<String>,
    pub mime_type: String,
    pub size: i64,
    pub task_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Its small preview (images), in the private bucket.
    pub thumbnail_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PendingUploadRow {
    /// Where the completed file lives.
    pub storage_key: String,
    /// Where the signed upload URL writes (`None` for rows older than this column: the
    /// storage key itself).
    pub upload_key: Option<String>,
    pub bucket: String,
    pub user_id: Uuid,
    pub module: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub visibility: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ToolTypeRow {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub icon: Option<String>,
    pub color: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ToolRow {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub description: Option<String>,
    pub tool_type_id: Uuid,
    pub config: sqlx::types::Json<serde_json::Value>,
    pub credits_cost: i64,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Shown on a homepage (`GET /api/tools?featured=true`).
    pub featured: bool,
    /// Place in the catalogue, lower first.
    pub position: i32,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ProviderRow {
    pub id: Uuid,
    pub name: String,
    #[sqlx(rename = "type")]
    pub kind: ProviderKind,
    pub base_url: Option<String>,
    pub is_active: bool,
    pub is_healthy: bool,
    pub health_checked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// base64(nonce ‖ ciphertext); never leaves the server.
    pub api_key: Option<String>,
    pub api_key_id: Option<String>,
    pub api_key_last4: Option<String>,
    pub health_message: Option<String>,
    pub config: sqlx::types::Json<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Deserialize)]
pub struct TaskRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tool_id: Uuid,
    pub status: TaskStatus,
    pub credits_cost: i64,
    pub parent_task_id: Option<Uuid>,
    pub current_step_id: Option<String>,
    pub attempts: i32,
    pub cancel_requested: bool,
    pub run_all_steps: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The submitting request's W3C `traceparent`, kept while traces are exported (read
    /// where the task is claimed; lists leave it out).
    #[sqlx(default)]
    #[serde(default)]
    pub trace_parent: Option<String>,
}

impl TaskRow {
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskStepRow {
    pub step_id: String,
    pub position: i32,
    pub status: StepStatus,
    pub state: sqlx::types::Json<serde_json::Value>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// A task with everything its detail view shows, read together (`tasks::TaskDetail`).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskFull {
    pub task: TaskRow,
    pub payload: Option<TaskPayloadRow>,
    pub steps: Vec<TaskStepRow>,
    /// Its place in line while queued.
    pub queue_position: Option<i64>,
}

/// What a task's event stream starts from, read together (`events::Events::open`): the task,
/// its place in line while queued, and its milestones after the client's last one.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskStreamStart {
    pub task: TaskRow,
    /// The task's event counter as read: the number of its last milestone.
    pub event_seq: i64,
    pub queue_seq: Option<i64>,
    pub events: Vec<TaskEventRow>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskPayloadRow {
    pub input: sqlx::types::Json<serde_json::Value>,
    pub output: Option<sqlx::types::Json<serde_json::Value>>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Deserialize)]
pub struct TaskEventRow {
    pub seq: i64,
    #[sqlx(rename = "type")]
    #[serde(rename = "type")]
    pub kind: EventKind,
    pub data: sqlx::types::Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// A task to insert, with its steps (in order) and the credits to reserve.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: Uuid,
    pub user_id: Uuid,
    pub tool_id: Uuid,
    pub parent_task_id: Option<Uuid>,
    pub steps: Vec<String>,
    pub run_all_steps: bool,
    pub cost: i64,
    pub input: serde_json::Value,
    /// See [`TaskRow::trace_parent`].
    pub trace_parent: Option<String>,
    /// The task's own webhook URL (its events go there instead of the user's endpoints).
    pub webhook_url: Option<String>,
}

/// What a claim on the queue got.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Leased to the caller (this run counted), with what the worker needs to run it.
    Claimed(Box<ClaimedTask>),
    /// Nothing due (or the given task is no longer queued, or being claimed right now).
    Empty,
    /// The given task runs under another worker's live lease.
    Busy,
    /// The given task waits for a retry until then.
    NotDue(DateTime<Utc>),
    /// The given task's user already runs as many tasks as allowed (the row is parked:
    /// sent again when one of the user's tasks ends).
    UserAtLimit,
}

/// A claimed task: its row, its input and steps, and its tool's version — everything a
/// run needs, read in the claim's transaction.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub task: TaskRow,
    /// Runs of this task so far, this one included.
    pub attempts: i32,
    pub input: serde_json::Value,
    pub steps: Vec<TaskStepRow>,
    /// The tool's `updated_at`, so a cached parsed config is known to be current.
    pub tool_updated_at: DateTime<Utc>,
    /// The step the claim already started (PostgreSQL does it in the same call), with its
    /// `step_started` event.
    pub started: Option<(String, Recorded)>,
}

/// Tasks claimed together (boxed: a claimed task is large, and moves from the writer to
/// the task that runs it).
pub type ClaimedTasks = Vec<Box<ClaimedTask>>;

/// A milestone event as recorded (its sequence number and data, `type` included).
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub seq: i64,
    pub kind: EventKind,
    pub data: serde_json::Value,
}

/// A step that completes in the same transaction as the task's end.
#[derive(Debug, Clone, Copy)]
pub struct StepDone<'a> {
    pub step_id: &'a str,
    pub output: &'a serde_json::Value,
}

/// What `Store::task_finish` did.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// False if the task had already ended (nothing changed but its queue row).
    pub ended: bool,
    /// The events recorded (`step_completed` if a step was folded in, then the terminal).
    pub events: Vec<Recorded>,
    /// The user's parked tasks, unparked now that a running slot is free.
    pub unparked: Vec<Uuid>,
}

/// How a task ends (see `Store::task_finish`).
#[derive(Debug, Clone, Copy)]
pub struct TaskEnd<'a> {
    /// `Completed`, `Failed` or `Cancelled`.
    pub status: TaskStatus,
    pub output: Option<&'a serde_json::Value>,
    pub error: Option<&'a str>,
    /// `None` spends the whole reservation; `Some(n)` spends n and releases the rest.
    pub spend: Option<i64>,
    /// The terminal event's data.
    pub event: &'a serde_json::Value,
    /// Also put it on the dead-letter list.
    pub dead_letter: Option<&'a DeadLetter>,
    /// The last step completes in the same transaction (`step_completed` is recorded first).
    pub step: Option<StepDone<'a>>,
}

impl<'a> TaskEnd<'a> {
    /// Completed: the whole reservation is spent.
    pub fn completed(output: &'a serde_json::Value, event: &'a serde_json::Value) -> Self {
        Self {
            status: TaskStatus::Completed,
            output: Some(output),
            error: None,
            spend: None,
            event,
            dead_letter: None,
            step: None,
        }
    }

    /// Failed: nothing is spent.
    pub fn failed(error: &'a str, event: &'a serde_json::Value) -> Self {
        Self {
            status: TaskStatus::Failed,
            output: None,
            error: Some(error),
            spend: Some(0),
            event,
            dead_letter: None,
            step: None,
        }
    }

    /// Cancelled: the finished steps' cost is spent, the rest released.
    pub fn cancelled(spent: i64, event: &'a serde_json::Value) -> Self {
        Self {
            status: TaskStatus::Cancelled,
            output: None,
            error: Some("cancelled by the user"),
            spend: Some(spent),
            event,
            dead_letter: None,
            step: None,
        }
    }

    pub fn dead_letter(self, dead_letter: Option<&'a DeadLetter>) -> Self {
        Self { dead_letter, ..self }
    }

    /// Completes `step` in the same transaction, recording its `step_completed` first.
    pub fn with_step(self, step: StepDone<'a>) -> Self {
        Self { step: Some(step), ..self }
    }

    /// The events this end records, in order, with their data as recorded: `step_completed`
    /// if the last step is folded in, then the terminal one.
    pub(crate) fn events(&self) -> Vec<(EventKind, serde_json::Value)> {
        let mut events = Vec::with_capacity(2);
        if let Some(step) = self.step {
            let data = serde_json::json!({ "stepId": step.step_id, "output": step.output });
            events.push((EventKind::StepCompleted, super::event_data(EventKind::StepCompleted, data)));
        }
        let terminal = EventKind::terminal(self.status).expect("a task ends completed, failed or cancelled");
        events.push((terminal, super::event_data(terminal, self.event.clone())));
        events
    }
}

/// Why a task was given up on, recorded with its end.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// `retries_exhausted` or `worker_crashes`.
    pub reason: &'static str,
    pub error: String,
    pub attempts: i32,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeadLetterRow {
    pub task_id: Uuid,
    pub user_id: Uuid,
    pub tool_id: Uuid,
    pub reason: String,
    pub error: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BannerRow {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    /// An http(s) URL, or a storage key in the admin bucket.
    pub thumbnail: Option<String>,
    pub link: Option<String>,
    pub link_text: Option<String>,
    pub link_target: LinkTarget,
    #[sqlx(rename = "type")]
    pub kind: BannerType,
    pub position: i32,
    pub badge: Option<String>,
    pub badge_color: Option<String>,
    pub is_active: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A customer's webhook endpoint (`webhook_endpoints`); secrets are sealed with the master key.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WebhookEndpointRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// `None`: every event; else `,type,type,`.
    pub events: Option<String>,
    pub secret: String,
    pub secret_key_id: String,
    pub previous_secret: Option<String>,
    pub previous_key_id: Option<String>,
    pub previous_until: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A relay (`funmagic webhooks listen`): the server does not POST to it; its deliveries
    /// are pulled over the API. Its `url` says where the listener forwards them.
    pub relay: bool,
    /// A relay's last pull.
    pub relay_seen_at: Option<DateTime<Utc>>,
}

/// One message for one endpoint (`webhook_deliveries`), retried until it succeeds or fails
/// for good.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WebhookDeliveryRow {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub user_id: Uuid,
    /// The task's own webhook URL; `None`: the endpoint's.
    pub url: Option<String>,
    pub event_type: String,
    pub task_id: Option<Uuid>,
    pub seq: Option<i64>,
    pub data: sqlx::types::Json<serde_json::Value>,
    pub status: crate::domain::WebhookDeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_until: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One attempt of a delivery, for the delivery log.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WebhookAttemptRow {
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub id: Uuid,
    pub user_id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub events: Option<String>,
    pub secret: String,
    pub secret_key_id: String,
    pub relay: bool,
}

/// How an attempt ended, as recorded.
#[derive(Debug, Clone)]
pub struct WebhookOutcome {
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub response_excerpt: Option<String>,
    /// Pending (with `next_attempt_at`), succeeded or failed.
    pub status: crate::domain::WebhookDeliveryStatus,
    pub next_attempt_at: DateTime<Utc>,
}

/// An endpoint's secrets sealed under a new master key.
#[derive(Debug, Clone)]
pub struct SealedSecrets {
    pub id: Uuid,
    pub secret: String,
    pub key_id: String,
    pub previous: Option<String>,
    pub previous_key_id: Option<String>,
}
