//! All I/O of the console: requests go to a background task over a channel, which calls the
//! SDK and sends back a [`Response`]; the draw code never awaits. [`execute`] is the whole
//! mapping, so tests drive it directly against a real server.

use funmagic_sdk::{Client, types};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Something the console asks of the server.
#[derive(Debug, Clone)]
pub enum Request {
    /// With provider health (super admins only).
    Dashboard {
        providers: bool,
    },
    Users {
        query: Option<String>,
    },
    UserDetail(Uuid),
    AdjustCredits {
        user: Uuid,
        amount: i64,
        reason: String,
        key: String,
    },
    SetRole {
        user: Uuid,
        role: types::UserRole,
    },
    Ban {
        user: Uuid,
        reason: Option<String>,
    },
    Unban(Uuid),
    RevokeSessions(Uuid),
    /// Deletes the account (an anonymised record stays for the ledger).
    DeleteUser(Uuid),
    Tasks {
        status: Option<types::TaskStatus>,
        filter: Option<String>,
    },
    TaskDetail(Uuid),
    CancelTask(Uuid),
    RetryTask(Uuid),
    Tools,
    SaveTool {
        id: Uuid,
        input: Box<types::ToolInput>,
    },
    /// A new tool (the whole definition, written in `$EDITOR`).
    CreateTool(Box<types::ToolInput>),
    CreateToolType {
        name: String,
        display_name: String,
        color: Option<String>,
    },
    DeadLetters,
    Providers,
    AddProvider {
        name: String,
        kind: types::ExternalProviderType,
        key: String,
        base_url: Option<String>,
    },
    RotateProviderKey {
        id: Uuid,
        key: String,
    },
    TestProvider(Uuid),
    SetProviderActive {
        id: Uuid,
        active: bool,
    },
    Content,
    SavePackage {
        id: Option<Uuid>,
        input: types::PackageInput,
    },
    SaveBanner {
        id: Option<Uuid>,
        input: Box<types::BannerInput>,
    },
    ReorderBanners {
        kind: types::BannerType,
        ids: Vec<Uuid>,
    },
}

#[derive(Debug, Clone)]
pub struct Dashboard {
    pub queue: types::QueueStats,
    /// The newest tasks (up to 200), for rates by status.
    pub recent: Vec<types::Task>,
    /// `None` when the caller may not see providers (admin, not super_admin).
    pub providers: Option<Vec<types::Provider>>,
    pub dead_letters: usize,
    /// Webhook endpoints failing or disabled, and stuck deliveries.
    pub webhooks: types::AdminWebhookOverview,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
pub struct UserDetail {
    pub user: types::User,
    pub credits: types::CreditBalance,
    pub tasks: Vec<types::Task>,
    pub transactions: Vec<types::CreditTransaction>,
}

#[derive(Debug, Clone)]
pub struct TaskDetail {
    pub detail: types::TaskDetail,
    pub events: Vec<types::TaskEvent>,
}

/// What came back.
#[derive(Debug, Clone)]
pub enum Response {
    Dashboard(Box<Dashboard>),
    Users(Vec<types::User>),
    UserDetail(Box<UserDetail>),
    Tasks(Vec<types::Task>),
    TaskDetail(Box<TaskDetail>),
    Tools {
        tools: Vec<types::Tool>,
        types: Vec<types::ToolType>,
    },
    DeadLetters(Vec<types::DeadLetter>),
    /// A tool config the server refused (shown inline, to edit again).
    ToolInvalid {
        id: Uuid,
        message: String,
        config: serde_json::Value,
    },
    Providers(Vec<types::Provider>),
    Content {
        packages: Vec<types::CreditPackage>,
        banners: Vec<types::Banner>,
    },
    /// An action succeeded: a message for the status line, and what to reload.
    Done {
        message: String,
        reload: Option<Request>,
    },
    /// The API said no: its error code and message for the status line.
    Failed {
        code: String,
        message: String,
    },
}

fn failed(e: funmagic_sdk::Error<types::ApiError>) -> Response {
    match e {
        funmagic_sdk::Error::ErrorResponse(resp) => {
            let status = resp.status().as_u16();
            let body = resp.into_inner();
            Response::Failed { code: body.code, message: format!("{} ({status})", body.error) }
        }
        funmagic_sdk::Error::CommunicationError(e) => {
            Response::Failed { code: "UNREACHABLE".into(), message: format!("cannot reach the server: {e}") }
        }
        other => Response::Failed { code: "ERROR".into(), message: other.to_string() },
    }
}

/// The page size of the console's lists.
/// Items per list request.
pub const PAGE_SIZE: usize = 200;
const PAGE: Option<std::num::NonZeroU32> = std::num::NonZeroU32::new(PAGE_SIZE as u32);

macro_rules! call {
    ($e:expr) => {
        match $e.await {
            Ok(v) => v.into_inner(),
            Err(e) => return failed(e),
        }
    };
}

/// A value the spec constrains, checked here as the server would: an invalid one is shown
/// like a refused request.
macro_rules! text {
    ($field:literal, $e:expr) => {
        match $e.parse() {
            Ok(v) => v,
            Err(e) => {
                return Response::Failed { code: "VALIDATION_FAILED".into(), message: format!("{}: {e}", $field) };
            }
        }
    };
}

/// [`text!`] for an optional value.
macro_rules! opt_text {
    ($field:literal, $e:expr) => {
        match $e {
            Some(v) => Some(text!($field, v)),
            None => None,
        }
    };
}

fn done(message: impl Into<String>, reload: Option<Request>) -> Response {
    Response::Done { message: message.into(), reload }
}

/// Runs one request against the API.
pub async fn execute(client: &Client, request: Request) -> Response {
    match request {
        Request::Dashboard { providers } => {
            let queue = call!(client.admin_queue_get());
            let recent = call!(client.admin_task_list(None, PAGE, None, None, None)).tasks;
            let providers = if providers { Some(call!(client.admin_provider_list()).providers) } else { None };
            let dead_letters = call!(client.admin_dead_letter_list(None, PAGE)).dead_letters.len();
            let webhooks = call!(client.admin_webhook_overview());
            Response::Dashboard(Box::new(Dashboard {
                queue,
                recent,
                providers,
                dead_letters,
                webhooks,
                at: chrono::Utc::now(),
            }))
        }
        Request::Users { query } => {
            let query: Option<types::Prose200> = opt_text!("search", query);
            Response::Users(call!(client.admin_user_list(None, PAGE, query.as_ref())).users)
        }
        Request::UserDetail(id) => {
            let user = call!(client.admin_user_get(&id));
            let credits = call!(client.admin_user_credits_get(&id));
            let tasks = call!(client.admin_task_list(None, std::num::NonZeroU32::new(10), None, None, Some(&id))).tasks;
            let transactions =
                call!(client.admin_user_transaction_list(&id, None, std::num::NonZeroU32::new(10))).transactions;
            Response::UserDetail(Box::new(UserDetail { user, credits, tasks, transactions }))
        }
        Request::AdjustCredits { user, amount, reason, key } => {
            let body = types::AdjustCreditsRequest { amount, description: text!("reason", reason) };
            let key = text!("idempotency key", key);
            let after = call!(client.admin_user_credits_adjust(&user, Some(&key), &body));
            done(
                format!("credits adjusted by {amount:+}: balance now {}", after.balance),
                Some(Request::UserDetail(user)),
            )
        }
        Request::SetRole { user, role } => {
            let u = call!(client.admin_user_role_set(&user, &types::SetRoleRequest { role }));
            done(format!("{} is now {}", u.email, u.role), Some(Request::UserDetail(user)))
        }
        Request::Ban { user, reason } => {
            let u = call!(client.admin_user_ban(&user, &types::BanRequest { reason: opt_text!("reason", reason) }));
            done(format!("{} banned", u.email), Some(Request::UserDetail(user)))
        }
        Request::Unban(user) => {
            let u = call!(client.admin_user_unban(&user));
            done(format!("{} unbanned", u.email), Some(Request::UserDetail(user)))
        }
        Request::DeleteUser(user) => {
            call!(client.admin_user_delete(&user));
            done(
                "account deleted; its files are gone and its running tasks cancelled",
                Some(Request::Users { query: None }),
            )
        }
        Request::RevokeSessions(user) => {
            let r = call!(client.admin_user_sessions_revoke(&user));
            done(format!("{} session(s) revoked", r.revoked), Some(Request::UserDetail(user)))
        }
        Request::Tasks { status, filter } => {
            let (user, tool) = match filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
                Some(f) => match f.parse::<Uuid>() {
                    Ok(id) => (Some(id), None),
                    Err(_) => (None, Some(f.to_string())),
                },
                None => (None, None),
            };
            let tool: Option<types::Slug60> = opt_text!("tool", tool);
            let list = call!(client.admin_task_list(None, PAGE, status, tool.as_ref(), user.as_ref())).tasks;
            Response::Tasks(list)
        }
        Request::TaskDetail(id) => {
            let detail = call!(client.task_get(&id));
            let events = call!(client.task_events_list(&id)).events;
            Response::TaskDetail(Box::new(TaskDetail { detail, events }))
        }
        Request::CancelTask(id) => {
            let t = call!(client.task_cancel(&id)).task;
            done(format!("task {} is {}", short(&t.id), t.status), Some(Request::TaskDetail(id)))
        }
        Request::RetryTask(id) => {
            let t = call!(client.admin_task_retry(&id)).task;
            done(format!("retried as task {}", short(&t.id)), Some(Request::TaskDetail(t.id)))
        }
        Request::Tools => Response::Tools {
            tools: call!(client.admin_tool_list()).tools,
            types: call!(client.admin_tool_type_list()).tool_types,
        },
        Request::CreateTool(input) => {
            let t = call!(client.admin_tool_create(&input));
            done(format!("tool {} created (off until you enable it: space)", t.slug), Some(Request::Tools))
        }
        Request::CreateToolType { name, display_name, color } => {
            let body = types::ToolTypeInput {
                name: text!("name", name),
                display_name: text!("display name", display_name),
                color: opt_text!("color", color),
                icon: None,
                description: None,
            };
            let t = call!(client.admin_tool_type_create(&body));
            done(format!("tool type {} created", t.name), Some(Request::Tools))
        }
        Request::DeadLetters => Response::DeadLetters(call!(client.admin_dead_letter_list(None, PAGE)).dead_letters),
        Request::SaveTool { id, input } => match client.admin_tool_update(&id, &input).await {
            Ok(t) => done(format!("tool {} saved", t.into_inner().slug), Some(Request::Tools)),
            Err(funmagic_sdk::Error::ErrorResponse(resp)) if resp.status().as_u16() == 422 => {
                Response::ToolInvalid { id, message: resp.into_inner().error, config: input.config.clone() }
            }
            Err(e) => failed(e),
        },
        Request::Providers => Response::Providers(call!(client.admin_provider_list()).providers),
        Request::AddProvider { name, kind, key, base_url } => {
            let body = types::ProviderCreate {
                name: text!("name", name),
                type_: kind,
                api_key: Some(text!("API key", key)),
                base_url: opt_text!("base URL", base_url),
                is_active: None,
            };
            let p = call!(client.admin_provider_create(&body));
            done(
                format!("provider {} added (key …{})", p.name, p.key_last4.unwrap_or_default()),
                Some(Request::Providers),
            )
        }
        Request::RotateProviderKey { id, key } => {
            let body = types::ProviderUpdate {
                api_key: Some(text!("API key", key)),
                base_url: None,
                clear_base_url: None,
                is_active: None,
                name: None,
            };
            let p = call!(client.admin_provider_update(&id, &body));
            done(format!("{}: key rotated (…{})", p.name, p.key_last4.unwrap_or_default()), Some(Request::Providers))
        }
        Request::TestProvider(id) => {
            let t = call!(client.admin_provider_test(&id));
            let word = if t.healthy { "healthy" } else { "unhealthy" };
            done(format!("{}: {word} — {}", t.provider.name, t.message), Some(Request::Providers))
        }
        Request::SetProviderActive { id, active } => {
            let body = types::ProviderUpdate {
                api_key: None,
                base_url: None,
                clear_base_url: None,
                is_active: Some(active),
                name: None,
            };
            let p = call!(client.admin_provider_update(&id, &body));
            done(format!("{} {}", p.name, if p.is_active { "enabled" } else { "disabled" }), Some(Request::Providers))
        }
        Request::Content => {
            let packages = call!(client.admin_credit_package_list()).packages;
            let banners = call!(client.admin_banner_list()).banners;
            Response::Content { packages, banners }
        }
        Request::SavePackage { id, input } => {
            let p = match id {
                Some(id) => call!(client.admin_credit_package_update(&id, &input)),
                None => call!(client.admin_credit_package_create(&input)),
            };
            done(format!("package {} saved", p.name), Some(Request::Content))
        }
        Request::SaveBanner { id, input } => {
            let b = match id {
                Some(id) => call!(client.admin_banner_update(&id, &input)),
                None => call!(client.admin_banner_create(&input)),
            };
            done(format!("banner {} saved", b.title), Some(Request::Content))
        }
        Request::ReorderBanners { kind, ids } => {
            call!(client.admin_banner_reorder(&types::BannerReorder { type_: kind, ids }));
            done("banners reordered", Some(Request::Content))
        }
    }
}

/// The part of an id that tells ids apart: UUIDv7 ids begin with their creation time, so
/// ids made together share their first digits; the last 8 hex digits are random (the CLI's
/// admin commands accept them in place of the whole id).
pub fn short(id: &Uuid) -> String {
    let simple = id.simple().to_string();
    format!("…{}", &simple[simple.len() - 8..])
}

/// Starts the I/O task: requests in, responses out.
pub fn spawn(client: Client) -> (mpsc::UnboundedSender<Request>, mpsc::UnboundedReceiver<Response>) {
    let (req_tx, mut req_rx) = mpsc::unbounded_channel::<Request>();
    let (resp_tx, resp_rx) = mpsc::unbounded_channel::<Response>();
    tokio::spawn(async move {
        while let Some(request) = req_rx.recv().await {
            let client = client.clone();
            let resp_tx = resp_tx.clone();
            // Each request on its own task: a slow one never holds up the others.
            tokio::spawn(async move {
                let response = execute(&client, request).await;
                let _ = resp_tx.send(response);
            });
        }
    });
    (req_tx, resp_rx)
}
