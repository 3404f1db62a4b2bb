//! Webhook endpoints and their delivery logs over HTTP. Each handler parses, calls
//! `crate::webhooks` (the rules live there) and shapes the answer.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::error::ErrorResponse;
use super::models::Success;
use super::security::Caller;
use super::text::{HttpUrl, Opt, Prose};
use crate::app::AppState;
use crate::store::{WebhookDeliveryRow, WebhookEndpointRow};
use crate::webhooks::{self, EndpointFields};

type Result<T> = std::result::Result<T, ErrorResponse>;

/// What an endpoint can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum WebhookEventType {
    #[oai(rename = "task.queued")]
    TaskQueued,
    /// The first step started.
    #[oai(rename = "task.started")]
    TaskStarted,
    #[oai(rename = "task.step_completed")]
    TaskStepCompleted,
    #[oai(rename = "task.succeeded")]
    TaskSucceeded,
    #[oai(rename = "task.failed")]
    TaskFailed,
    #[oai(rename = "task.cancelled")]
    TaskCancelled,
    /// The available balance fell below your threshold (see `/api/webhooks/settings`).
    #[oai(rename = "credits.low")]
    CreditsLow,
}

impl WebhookEventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::TaskQueued => "task.queued",
            Self::TaskStarted => "task.started",
            Self::TaskStepCompleted => "task.step_completed",
            Self::TaskSucceeded => "task.succeeded",
            Self::TaskFailed => "task.failed",
            Self::TaskCancelled => "task.cancelled",
            Self::CreditsLow => "credits.low",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::TaskQueued,
            Self::TaskStarted,
            Self::TaskStepCompleted,
            Self::TaskSucceeded,
            Self::TaskFailed,
            Self::TaskCancelled,
            Self::CreditsLow,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// The event types sent here; absent: all of them.
    pub events: Option<Vec<WebhookEventType>>,
    pub enabled: bool,
    /// Why it is disabled (by its owner, a 410 answer, or 5 days of failures).
    pub disabled_reason: Option<String>,
    /// Every delivery has failed since then.
    pub failing_since: Option<chrono::DateTime<chrono::Utc>>,
    /// After a rotation, the previous secret signs too until then.
    pub previous_secret_until: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// A relay (`funmagic webhooks listen`): not sent to by the server; a listener pulls
    /// its deliveries. Its `url` is `relay:` and where the listener forwards them.
    pub relay: bool,
}

impl From<WebhookEndpointRow> for WebhookEndpoint {
    fn from(row: WebhookEndpointRow) -> Self {
        let events =
            webhooks::events_of(&row).map(|list| list.iter().filter_map(|e| WebhookEventType::parse(e)).collect());
        let now = chrono::Utc::now();
        Self {
            id: row.id,
            url: row.url,
            description: row.description,
            events,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            failing_since: row.failing_since,
            previous_secret_until: row.previous_until.filter(|until| *until > now),
            created_at: row.created_at,
            updated_at: row.updated_at,
            relay: row.relay,
        }
    }
}

/// An endpoint with its signing secret: the only answers that carry it.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct WebhookEndpointWithSecret {
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`: verify deliveries with it (shown this once).
    pub secret: String,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct WebhookEndpointList {
    pub endpoints: Vec<WebhookEndpoint>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct WebhookEndpointCreate {
    /// https (http and private addresses only for hosts in `webhooks.allow`).
    pub url: HttpUrl,
    /// The event types to send; absent: all of them.
    #[oai(validator(min_items = 1))]
    pub events: Opt<Vec<WebhookEventType>>,
    pub description: Opt<Prose<500>>,
}

impl poem_openapi::types::Example for WebhookEndpointCreate {
    fn example() -> Self {
        Self {
            url: HttpUrl("https://example.com/hooks/funmagic".into()),
            events: Opt(Some(vec![WebhookEventType::TaskSucceeded, WebhookEventType::TaskFailed])),
            description: Opt(Some(Prose("my backend".into()))),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct WebhookEndpointUpdate {
    pub url: Opt<HttpUrl>,
    /// The event types to send (replaces the list).
    #[oai(validator(min_items = 1))]
    pub events: Opt<Vec<WebhookEventType>>,
    /// `true`: send every event type (clears `events`).
    pub all_events: Opt<bool>,
    pub description: Opt<Prose<500>>,
    /// Enabling again clears the failure record.
    pub enabled: Opt<bool>,
}

/// A relay endpoint for a listener on a developer's machine.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct WebhookRelayCreate {
    /// Where the listener forwards the events (shown on the endpoint; never fetched by the
    /// server).
    pub forward_to: HttpUrl,
    /// The event types to relay; absent: all of them.
    #[oai(validator(min_items = 1))]
    pub events: Opt<Vec<WebhookEventType>>,
    pub description: Opt<Prose<500>>,
}

impl poem_openapi::types::Example for WebhookRelayCreate {
    fn example() -> Self {
        Self {
            forward_to: HttpUrl("http://localhost:3000/hooks/funmagic".into()),
            events: Opt(None),
            description: Opt(Some(Prose("funmagic webhooks listen".into()))),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct WebhookRelayPull {
    /// Wait up to this many seconds for a delivery (default 25).
    #[oai(validator(minimum(value = "0"), maximum(value = "30")))]
    pub wait_secs: Opt<u32>,
    /// At most this many deliveries (default 10).
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub limit: Opt<u32>,
}

/// A delivery handed to a listener, signed as the server would send it: forward `body`
/// with the headers `webhook-id`, `webhook-timestamp` and `webhook-signature`, then report
/// the answer before `leaseUntil`.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct WebhookRelayMessage {
    pub delivery_id: Uuid,
    pub event_type: String,
    /// The `webhook-id` header.
    pub webhook_id: String,
    /// The `webhook-timestamp` header (seconds since the epoch).
    pub webhook_timestamp: i64,
    /// The `webhook-signature` header.
    pub webhook_signature: String,
    /// The JSON body, byte for byte as signed.
    pub body: String,
    pub attempt: i32,
    /// Answer before then, or the delivery is handed out again.
    pub lease_until: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct WebhookRelayBatch {
    /// Empty when nothing came within the wait.
    pub messages: Vec<WebhookRelayMessage>,
}

/// What the listener's local URL answered.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct WebhookRelayAnswer {
    /// The HTTP status it answered; absent when it could not be reached (say why in
    /// `error`). 2xx: delivered; anything else is retried on the schedule.
    #[oai(validator(minimum(value = "100"), maximum(value = "599")))]
    pub status_code: Opt<u16>,
    pub error: Opt<Prose<1000>>,
    #[oai(validator(minimum(value = "0"), maximum(value = "3600000")))]
    pub latency_ms: i64,
    /// The start of the answer's body (at most 1 KiB is kept).
    pub response_excerpt: Opt<Prose<4096>>,
}

pub use crate::domain::WebhookDeliveryStatus;

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct WebhookAttempt {
    pub attempt: i32,
    /// What the endpoint answered; absent when it could not be reached.
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
    /// The start of the answer's body (at most 1 KiB).
    pub response_excerpt: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The `webhook-id` header: the same on every attempt and replay.
    pub webhook_id: String,
    /// A task event type, or `ping`.
    pub event_type: String,
    pub task_id: Option<Uuid>,
    /// The event's place in its task's history.
    pub sequence: Option<i64>,
    pub status: WebhookDeliveryStatus,
    pub attempts: i32,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<WebhookAttempt>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct WebhookDeliveryList {
    pub deliveries: Vec<WebhookDelivery>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<chrono::DateTime<chrono::Utc>>,
}

/// Webhook settings of the account.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct WebhookSettings {
    /// `credits.low` is sent when the available balance falls below this; absent: never.
    pub credits_low_threshold: Option<i64>,
}

/// Webhook settings as written (they replace the current ones).
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct WebhookSettingsInput {
    /// Send `credits.low` when the available balance falls below this; absent: never.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000")))]
    pub credits_low_threshold: Opt<i64>,
}

/// An endpoint as admins see it on the overview.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AdminWebhookEndpoint {
    pub id: Uuid,
    pub user_id: Uuid,
    pub url: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// Webhooks needing attention.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct AdminWebhookOverview {
    /// Endpoints failing or disabled, the longest failing first (at most 100).
    pub failing_endpoints: Vec<AdminWebhookEndpoint>,
    /// Deliveries due more than 10 minutes ago and not attempted yet.
    pub stuck_deliveries: i64,
}

#[derive(ApiResponse)]
pub enum EndpointCreated {
    #[oai(status = 201)]
    Created(Json<WebhookEndpointWithSecret>),
}

#[derive(ApiResponse)]
pub enum DeliveryQueued {
    /// Queued; follow it in the endpoint's deliveries.
    #[oai(status = 202)]
    Accepted(Json<WebhookDelivery>),
}

async fn delivery_to_api(state: &AppState, d: WebhookDeliveryRow) -> Result<WebhookDelivery> {
    let attempts = webhooks::attempts_of(state, &d).await?;
    let status = d.status;
    Ok(WebhookDelivery {
        webhook_id: webhooks::message_id(&d),
        id: d.id,
        endpoint_id: d.endpoint_id,
        event_type: d.event_type,
        task_id: d.task_id,
        sequence: d.seq,
        next_attempt_at: (status == WebhookDeliveryStatus::Pending).then_some(d.next_attempt_at),
        status,
        attempts: d.attempts,
        last_status_code: d.last_status,
        last_error: d.last_error,
        created_at: d.created_at,
        updated_at: d.updated_at,
        attempt_log: attempts
            .into_iter()
            .map(|a| WebhookAttempt {
                attempt: a.attempt,
                status_code: a.status_code,
                error: a.error,
                latency_ms: a.latency_ms,
                response_excerpt: a.response_excerpt,
                at: a.created_at,
            })
            .collect(),
    })
}

fn event_names(events: &Option<Vec<WebhookEventType>>) -> Option<Vec<String>> {
    events.as_ref().map(|list| list.iter().map(|e| e.as_str().to_string()).collect())
}

pub struct WebhooksApi;

#[OpenApi(tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Creates an endpoint; the answer carries its signing secret, shown this once.
    #[oai(path = "/api/webhooks/endpoints", method = "post", operation_id = "webhook_endpoint_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<WebhookEndpointCreate>,
    ) -> Result<EndpointCreated> {
        let (row, secret) = webhooks::create(
            &state,
            &principal,
            &body.url,
            &event_names(&body.events.0),
            body.description.to_owned_string(),
        )
        .await?;
        Ok(EndpointCreated::Created(Json(WebhookEndpointWithSecret { endpoint: row.into(), secret })))
    }

    #[oai(path = "/api/webhooks/endpoints", method = "get", operation_id = "webhook_endpoint_list")]
    async fn list(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<WebhookEndpointList>> {
        let rows = webhooks::list(&state, &principal).await?;
        Ok(Json(WebhookEndpointList { endpoints: rows.into_iter().map(Into::into).collect() }))
    }

    #[oai(path = "/api/webhooks/endpoints/:id", method = "get", operation_id = "webhook_endpoint_get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<WebhookEndpoint>> {
        Ok(Json(webhooks::get(&state, &principal, id.0).await?.into()))
    }

    /// Changes an endpoint's URL, events, description, or enables/disables it.
    #[oai(path = "/api/webhooks/endpoints/:id", method = "patch", operation_id = "webhook_endpoint_update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        body: Json<WebhookEndpointUpdate>,
    ) -> Result<Json<WebhookEndpoint>> {
        let events = match (body.all_events.get(), &body.events.0) {
            (Some(true), Some(_)) => {
                return Err(crate::error::AppError::validation("give either events or allEvents, not both").into());
            }
            (Some(true), None) => Some(None),
            (_, Some(_)) => Some(event_names(&body.events.0)),
            _ => None,
        };
        let fields = EndpointFields {
            url: body.url.0.as_ref().map(|u| u.to_string()),
            events,
            description: body.description.0.as_ref().map(|d| Some(d.to_string()).filter(|d| !d.is_empty())),
            enabled: body.enabled.get(),
        };
        Ok(Json(webhooks::update(&state, &principal, id.0, fields).await?.into()))
    }

    #[oai(path = "/api/webhooks/endpoints/:id", method = "delete", operation_id = "webhook_endpoint_delete")]
    async fn delete(&self, state: Data<&AppState>, Caller(principal): Caller, id: Path<Uuid>) -> Result<Json<Success>> {
        webhooks::delete(&state, &principal, id.0).await?;
        Ok(Success::ok())
    }

    /// A new signing secret (shown this once); the old one keeps signing alongside for 24 h.
    #[oai(
        path = "/api/webhooks/endpoints/:id/rotate-secret",
        method = "post",
        operation_id = "webhook_endpoint_rotate"
    )]
    async fn rotate(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<WebhookEndpointWithSecret>> {
        let (row, secret) = webhooks::rotate(&state, &principal, id.0).await?;
        Ok(Json(WebhookEndpointWithSecret { endpoint: row.into(), secret }))
    }

    /// Sends a `ping` to the endpoint.
    #[oai(path = "/api/webhooks/endpoints/:id/test", method = "post", operation_id = "webhook_endpoint_test")]
    async fn test(&self, state: Data<&AppState>, Caller(principal): Caller, id: Path<Uuid>) -> Result<DeliveryQueued> {
        let d = webhooks::test(&state, &principal, id.0).await?;
        Ok(DeliveryQueued::Accepted(Json(delivery_to_api(&state, d).await?)))
    }

    /// The endpoint's deliveries (30 days), newest first, each with its attempts.
    #[oai(path = "/api/webhooks/endpoints/:id/deliveries", method = "get", operation_id = "webhook_delivery_list")]
    async fn deliveries(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        /// Only deliveries created before this instant (the previous page's `nextBefore`).
        before: Query<Option<chrono::DateTime<chrono::Utc>>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> Result<Json<WebhookDeliveryList>> {
        let limit = super::models::page_limit(limit.0);
        let mut rows = webhooks::deliveries(&state, &principal, id.0, before.0, limit + 1).await?;
        let next_before = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|d| d.created_at)
        } else {
            None
        };
        let mut deliveries = Vec::with_capacity(rows.len());
        for d in rows {
            deliveries.push(delivery_to_api(&state, d).await?);
        }
        Ok(Json(WebhookDeliveryList { deliveries, next_before }))
    }

    #[oai(path = "/api/webhooks/settings", method = "get", operation_id = "webhook_settings_get")]
    async fn settings(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<WebhookSettings>> {
        Ok(Json(WebhookSettings { credits_low_threshold: webhooks::credits_low(&state, &principal).await? }))
    }

    /// Replaces the webhook settings (an absent threshold turns `credits.low` off).
    #[oai(path = "/api/webhooks/settings", method = "put", operation_id = "webhook_settings_put")]
    async fn put_settings(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<WebhookSettingsInput>,
    ) -> Result<Json<WebhookSettings>> {
        let threshold = webhooks::set_credits_low(&state, &principal, body.credits_low_threshold.get()).await?;
        Ok(Json(WebhookSettings { credits_low_threshold: threshold }))
    }

    /// Creates a relay endpoint for a listener (`funmagic webhooks listen --forward-to
    /// URL`): the server does not send to it; the listener pulls its deliveries, forwards
    /// them and reports each answer. The answer carries its signing secret, shown this once.
    /// A relay not pulled for an hour is deleted.
    #[oai(path = "/api/webhooks/relays", method = "post", operation_id = "webhook_relay_create")]
    async fn relay_create(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<WebhookRelayCreate>,
    ) -> Result<EndpointCreated> {
        let (row, secret) = webhooks::create_relay(
            &state,
            &principal,
            &body.forward_to,
            &event_names(&body.events.0),
            body.description.to_owned_string(),
        )
        .await?;
        Ok(EndpointCreated::Created(Json(WebhookEndpointWithSecret { endpoint: row.into(), secret })))
    }

    /// Hands the relay's due deliveries to its listener (leased for 35 s), waiting up to
    /// `waitSecs` for one.
    #[oai(path = "/api/webhooks/relays/:id/pull", method = "post", operation_id = "webhook_relay_pull")]
    async fn relay_pull(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        body: Json<WebhookRelayPull>,
    ) -> Result<Json<WebhookRelayBatch>> {
        let wait = std::time::Duration::from_secs(u64::from(body.wait_secs.get().unwrap_or(25)));
        let limit = i64::from(body.limit.get().unwrap_or(10));
        let pulled = webhooks::relay_pull(&state, &principal, id.0, wait, limit).await?;
        let messages = pulled
            .into_iter()
            .map(|(d, m)| WebhookRelayMessage {
                delivery_id: d.id,
                event_type: d.event_type,
                webhook_id: m.id,
                webhook_timestamp: m.timestamp,
                webhook_signature: m.signature,
                body: String::from_utf8_lossy(&m.body).into_owned(),
                attempt: d.attempts,
                lease_until: d.lease_until.unwrap_or(d.updated_at),
            })
            .collect();
        Ok(Json(WebhookRelayBatch { messages }))
    }

    /// Reports what the listener's URL answered to a relayed delivery; it is recorded as an
    /// attempt (2xx: delivered; otherwise retried on the schedule).
    #[oai(
        path = "/api/webhooks/relays/:id/deliveries/:delivery_id/answer",
        method = "post",
        operation_id = "webhook_relay_answer"
    )]
    async fn relay_answer(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        delivery_id: Path<Uuid>,
        body: Json<WebhookRelayAnswer>,
    ) -> Result<Json<WebhookDelivery>> {
        let answer = webhooks::RelayAnswer {
            status: body.status_code.get(),
            error: body.error.to_owned_string(),
            latency_ms: body.latency_ms,
            excerpt: body.response_excerpt.to_owned_string(),
        };
        if answer.status.is_none() && answer.error.is_none() {
            return Err(crate::error::AppError::validation(
                "give statusCode, or error when the URL could not be reached",
            )
            .into());
        }
        let d = webhooks::relay_answer(&state, &principal, id.0, delivery_id.0, answer).await?;
        Ok(Json(delivery_to_api(&state, d).await?))
    }

    /// Sends a delivery again now, as the same message (the same `webhook-id`).
    #[oai(path = "/api/webhooks/deliveries/:id/replay", method = "post", operation_id = "webhook_delivery_replay")]
    async fn replay(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<DeliveryQueued> {
        let d = webhooks::replay(&state, &principal, id.0).await?;
        Ok(DeliveryQueued::Accepted(Json(delivery_to_api(&state, d).await?)))
    }
}

pub struct AdminWebhooksApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminWebhooksApi {
    /// Webhook endpoints failing or disabled, and deliveries stuck in the queue.
    #[oai(path = "/api/admin/webhooks", method = "get", operation_id = "admin_webhook_overview")]
    async fn overview(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<AdminWebhookOverview>> {
        let (failing, stuck) = webhooks::overview(&state, &principal).await?;
        let failing_endpoints = failing
            .into_iter()
            .map(|e| AdminWebhookEndpoint {
                id: e.id,
                user_id: e.user_id,
                url: e.url,
                enabled: e.enabled,
                disabled_reason: e.disabled_reason,
                failing_since: e.failing_since,
            })
            .collect();
        Ok(Json(AdminWebhookOverview { failing_endpoints, stuck_deliveries: stuck }))
    }
}
