//! Webhooks to customers, in the Standard Webhooks format: endpoints per user (signing
//! secrets sealed with the master key, rotation with a 24 h overlap), and the dispatcher
//! that delivers what the `task_events` trigger queued (see
//! `migrations/*/0014_webhooks.sql`): leased, signed, sent through the SSRF-guarded
//! [`WebhookPoster`](crate::fetch::WebhookPoster) without following redirects, retried on
//! the Svix schedule, every attempt logged.
//!
//! Guarantees: at least once (a delivery is leased while it is tried; a worker that dies
//! mid-attempt leaves it to be tried again after the lease, with the same `webhook-id`);
//! ordered by `data.sequence` per task, but not delivered in order.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Access, Principal};
use crate::domain::{TaskStatus, WebhookDeliveryStatus as DeliveryStatus};
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::store::{NewWebhookEndpoint, WebhookDeliveryRow, WebhookEndpointRow, WebhookOutcome};

/// The event types an endpoint may subscribe to (`ping` is sent by `test` whatever it
/// subscribes to).
pub const EVENTS: &[&str] = &[
    "task.queued",
    "task.started",
    "task.step_completed",
    "task.succeeded",
    "task.failed",
    "task.cancelled",
    "credits.low",
];

/// How many endpoints one user may have.
pub const MAX_ENDPOINTS: usize = 20;

/// After the first attempt, the waits before each retry (the Svix schedule); then the
/// delivery has failed for good.
pub const SCHEDULE: &[Duration] = &[
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// An endpoint failing this long (every delivery since) is disabled and its user told.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// Delivery logs are kept this long.
pub const LOG_DAYS: i64 = 30;

/// What a user sets on an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointFields {
    pub url: Option<String>,
    /// `Some(None)`: every event.
    pub events: Option<Option<Vec<String>>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// A new `whsec_` secret: 24 random bytes.
fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS random number generator is available");
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` one secret gives (see `funmagic_sdk::webhooks`).
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn events_column(events: &Option<Vec<String>>) -> AppResult<Option<String>> {
    let Some(list) = events else { return Ok(None) };
    if list.is_empty() {
        return Err(AppError::validation("events: give at least one event type, or leave it out for all"));
    }
    for e in list {
        if !EVENTS.contains(&e.as_str()) {
            return Err(AppError::new(
                ErrorKind::Validation,
                ErrorCode::ValidationFailed,
                format!("events: unknown event type '{e}' (one of {})", EVENTS.join(", ")),
            ));
        }
    }
    let mut sorted: Vec<&str> = list.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    Ok(Some(format!(",{},", sorted.join(","))))
}

/// The event types an endpoint's column names (`None`: all).
pub fn events_of(row: &WebhookEndpointRow) -> Option<Vec<String>> {
    row.events.as_ref().map(|e| e.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
}

/// Checks an endpoint URL by the SSRF rules (https, public addresses, `webhooks.allow`).
pub async fn check_url(state: &AppState, url: &str) -> AppResult<String> {
    state.webhook_poster().check(url).await.map(|u| u.to_string()).map_err(|e| {
        AppError::new(ErrorKind::Validation, ErrorCode::WebhookUrlRefused, format!("the webhook URL is refused: {e}"))
    })
}

fn unseal(state: &AppState, row: &WebhookEndpointRow) -> AppResult<Vec<String>> {
    let key = state.master_key();
    let current = key.decrypt(row.id, &row.secret_key_id, &row.secret).map_err(AppError::internal)?;
    let mut secrets = vec![current];
    if let (Some(previous), Some(key_id), Some(until)) =
        (&row.previous_secret, &row.previous_key_id, row.previous_until)
        && until > state.clock().now()
    {
        secrets.push(key.decrypt(row.id, key_id, previous).map_err(AppError::internal)?);
    }
    Ok(secrets)
}

/// The caller's endpoint `id`, or 404 (another user's is not found either).
async fn own(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<WebhookEndpointRow> {
    match state.store().webhook_endpoint_get(id).await? {
        Some(row) if row.user_id == principal.user_id() => Ok(row),
        _ => Err(AppError::not_found("webhook endpoint")),
    }
}

/// Creates an endpoint; returns it with its secret (shown this once).
pub async fn create(
    state: &AppState,
    principal: &Principal,
    url: &str,
    events: &Option<Vec<String>>,
    description: Option<String>,
) -> AppResult<(WebhookEndpointRow, String)> {
    principal.require(Access::Write)?;
    let url = check_url(state, url).await?;
    insert(state, principal, url, events, description, false).await
}

/// Creates a relay endpoint for `funmagic webhooks listen`: the server does not POST to it;
/// the listener pulls its deliveries ([`relay_pull`]), forwards them to `forward_to` on its
/// own machine and reports each answer ([`relay_answer`]). It gets every event the user's
/// endpoints would (or `events`), and is deleted an hour after its last pull.
pub async fn create_relay(
    state: &AppState,
    principal: &Principal,
    forward_to: &str,
    events: &Option<Vec<String>>,
    description: Option<String>,
) -> AppResult<(WebhookEndpointRow, String)> {
    principal.require(Access::Write)?;
    let url = reqwest::Url::parse(forward_to)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| AppError::validation("forwardTo: an http(s) URL where the listener forwards the events"))?;
    insert(state, principal, format!("{RELAY_SCHEME}{url}"), events, description, true).await
}

/// A relay endpoint's `url`: this prefix, then where its listener forwards (never fetched
/// by the server).
pub const RELAY_SCHEME: &str = "relay:";

/// A relay not pulled for this long is deleted with its deliveries.
pub const RELAY_IDLE: Duration = Duration::from_secs(3600);

/// The longest a relay pull waits for a delivery.
pub const RELAY_WAIT_MAX: Duration = Duration::from_secs(30);

async fn insert(
    state: &AppState,
    principal: &Principal,
    url: String,
    events: &Option<Vec<String>>,
    description: Option<String>,
    relay: bool,
) -> AppResult<(WebhookEndpointRow, String)> {
    let events = events_column(events)?;
    if state.store().webhook_endpoints_of_user(principal.user_id()).await?.len() >= MAX_ENDPOINTS {
        return Err(AppError::conflict(
            ErrorCode::TooManyEndpoints,
            format!("at most {MAX_ENDPOINTS} webhook endpoints per account"),
        ));
    }
    let id = Uuid::now_v7();
    let secret = new_secret();
    let new = NewWebhookEndpoint {
        id,
        user_id: principal.user_id(),
        url,
        description,
        events,
        secret: state.master_key().encrypt(id, &secret),
        secret_key_id: state.master_key().id().to_string(),
        relay,
    };
    let row = state.store().webhook_endpoint_insert(&new).await?;
    tracing::info!(endpoint = %id, user = %principal.user_id(), relay, "webhook endpoint created");
    Ok((row, secret))
}

pub async fn list(state: &AppState, principal: &Principal) -> AppResult<Vec<WebhookEndpointRow>> {
    principal.require(Access::Read)?;
    Ok(state.store().webhook_endpoints_of_user(principal.user_id()).await?)
}

pub async fn get(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<WebhookEndpointRow> {
    principal.require(Access::Read)?;
    own(state, principal, id).await
}

/// Changes url, events, description or enabled; enabling again clears the failure record.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    fields: EndpointFields,
) -> AppResult<WebhookEndpointRow> {
    principal.require(Access::Write)?;
    let mut row = own(state, principal, id).await?;
    if let Some(url) = &fields.url {
        if row.relay {
            return Err(AppError::validation(
                "url: a relay's URL is where its listener forwards; start `funmagic webhooks listen` again to change it",
            ));
        }
        row.url = check_url(state, url).await?;
    }
    if let Some(events) = &fields.events {
        row.events = events_column(events)?;
    }
    if let Some(description) = fields.description {
        row.description = description;
    }
    if let Some(enabled) = fields.enabled {
        if enabled && !row.enabled {
            row.disabled_reason = None;
            row.failing_since = None;
        }
        if !enabled && row.enabled {
            row.disabled_reason = Some("disabled by its owner".into());
        }
        row.enabled = enabled;
    }
    state.store().webhook_endpoint_update(&row).await?.ok_or_else(|| AppError::not_found("webhook endpoint"))
}

pub async fn delete(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<()> {
    principal.require(Access::Write)?;
    own(state, principal, id).await?;
    state.store().webhook_endpoint_delete(id, principal.user_id()).await?;
    Ok(())
}

/// A new secret; the old one keeps signing alongside for 24 hours.
pub async fn rotate(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<(WebhookEndpointRow, String)> {
    principal.require(Access::Write)?;
    own(state, principal, id).await?;
    let secret = new_secret();
    let until = state.clock().now() + chrono::Duration::from_std(ROTATION_OVERLAP).unwrap_or_default();
    let sealed = state.master_key().encrypt(id, &secret);
    let row = state
        .store()
        .webhook_endpoint_rotate(id, &sealed, state.master_key().id(), until)
        .await?
        .ok_or_else(|| AppError::not_found("webhook endpoint"))?;
    Ok((row, secret))
}

/// Queues a `ping` to the endpoint (whatever it subscribes to, enabled or not).
pub async fn test(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<WebhookDeliveryRow> {
    principal.require(Access::Write)?;
    let row = own(state, principal, id).await?;
    let data = json!({ "endpointId": row.id, "message": "ping from FunMagic" });
    let delivery = state
        .store()
        .webhook_delivery_insert(Uuid::now_v7(), row.id, row.user_id, "ping", &data, state.clock().now())
        .await?;
    state.webhook_wakeup();
    Ok(delivery)
}

/// An endpoint's deliveries, newest first.
pub async fn deliveries(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    before: Option<chrono::DateTime<chrono::Utc>>,
    limit: i64,
) -> AppResult<Vec<WebhookDeliveryRow>> {
    principal.require(Access::Read)?;
    own(state, principal, id).await?;
    Ok(state.store().webhook_deliveries_of_endpoint(id, before, limit).await?)
}

/// The caller's `credits.low` threshold (`None`: not sent).
pub async fn credits_low(state: &AppState, principal: &Principal) -> AppResult<Option<i64>> {
    principal.require(Access::Read)?;
    Ok(state.store().webhook_settings_get(principal.user_id()).await?)
}

/// Sets (or with `None` clears) the `credits.low` threshold: the event is sent when the
/// available balance falls from at or above it to below it.
pub async fn set_credits_low(
    state: &AppState,
    principal: &Principal,
    threshold: Option<i64>,
) -> AppResult<Option<i64>> {
    principal.require(Access::Write)?;
    if threshold.is_some_and(|t| t < 1) {
        return Err(AppError::validation("creditsLowThreshold: at least 1"));
    }
    state.store().webhook_settings_put(principal.user_id(), threshold).await?;
    Ok(threshold)
}

/// The caller's delivery `id`, or 404.
pub async fn delivery(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<WebhookDeliveryRow> {
    principal.require(Access::Read)?;
    match state.store().webhook_delivery_get(id).await? {
        Some(d) if d.user_id == principal.user_id() => Ok(d),
        _ => Err(AppError::not_found("webhook delivery")),
    }
}

/// Sends a delivery again now: the same message (the same `webhook-id`).
pub async fn replay(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<WebhookDeliveryRow> {
    principal.require(Access::Write)?;
    delivery(state, principal, id).await?;
    if !state.store().webhook_delivery_replay(id, state.clock().now()).await? {
        return Err(AppError::conflict(ErrorCode::DeliveryInProgress, "this delivery is being attempted right now"));
    }
    state.webhook_wakeup();
    delivery(state, principal, id).await
}

/// The attempts of a delivery the caller has already been given (through [`delivery`] or a
/// list of their endpoint's), oldest first.
pub async fn attempts_of(state: &AppState, d: &WebhookDeliveryRow) -> AppResult<Vec<crate::store::WebhookAttemptRow>> {
    Ok(state.store().webhook_attempts_of(d.id).await?)
}

/// The message id (`webhook-id`): a task event's is derived from the task and its sequence,
/// so it is the same for every endpoint and every attempt; others use the delivery's id.
pub fn message_id(d: &WebhookDeliveryRow) -> String {
    match (d.task_id, d.seq) {
        (Some(task), Some(seq)) => format!("msg_{}_{seq}", task.simple()),
        _ => format!("msg_{}", d.id.simple()),
    }
}

/// The JSON body of a delivery: `{type, timestamp, data}`.
async fn payload(state: &AppState, d: &WebhookDeliveryRow) -> Value {
    let event = &d.data.0;
    let Some(task_id) = d.task_id else {
        return json!({ "type": d.event_type, "timestamp": d.created_at, "data": event });
    };
    let task = state.store().task_get(task_id).await.ok().flatten();
    let tool = match &task {
        Some(t) => state.store().tool_get(t.tool_id).await.ok().flatten().map(|tool| tool.slug),
        None => None,
    };
    let status = match d.event_type.as_str() {
        "task.queued" => TaskStatus::Queued.as_str(),
        "task.started" | "task.step_completed" => TaskStatus::Running.as_str(),
        "task.succeeded" => TaskStatus::Completed.as_str(),
        "task.failed" => TaskStatus::Failed.as_str(),
        "task.cancelled" => TaskStatus::Cancelled.as_str(),
        _ => "unknown",
    };
    let mut data = json!({
        "taskId": task_id,
        "sequence": d.seq,
        "status": status,
        "tool": tool,
    });
    let obj = data.as_object_mut().expect("an object");
    for (from, to) in [("stepId", "step"), ("creditsSpent", "creditsSpent"), ("error", "error"), ("code", "code")] {
        if let Some(v) = event.get(from) {
            obj.insert(to.into(), v.clone());
        }
    }
    if let Some(output) = event.get("output") {
        obj.insert("outputs".into(), outputs(state, d.user_id, output).await);
    }
    json!({ "type": d.event_type, "timestamp": d.created_at, "data": data })
}

/// The assets a step's output names, as `{id, url}` (the URL expires; the id does not).
async fn outputs(state: &AppState, user_id: Uuid, output: &Value) -> Value {
    let mut found = Vec::new();
    collect_asset_ids(output, &mut found);
    let mut list = Vec::new();
    for id in found {
        if let Ok(Some(asset)) = state.store().asset_get(id).await
            && asset.user_id == user_id
        {
            let (url, expires) = match crate::assets::download_url(state, &asset).await {
                Ok((url, expires)) => (Some(url), expires),
                Err(_) => (None, None),
            };
            list.push(json!({
                "assetId": asset.id,
                "filename": asset.filename,
                "mimeType": asset.mime_type,
                "url": url,
                "urlExpiresAt": expires,
            }));
        }
    }
    Value::Array(list)
}

fn collect_asset_ids(v: &Value, out: &mut Vec<Uuid>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if (k == "assetId" || k.ends_with("AssetId"))
                    && let Some(id) = v.as_str().and_then(|s| s.parse().ok())
                    && !out.contains(&id)
                {
                    out.push(id);
                } else {
                    collect_asset_ids(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_asset_ids(v, out)),
        _ => {}
    }
}

/// How long a claimed delivery stays leased: longer than one attempt can take.
fn lease(state: &AppState) -> Duration {
    Duration::from_secs(state.settings().webhooks.timeout_secs * 2 + 5)
}

/// When the next attempt is due after `attempts` attempts, or `None` when they are used up.
pub fn next_wait(attempts: i32, retry_after: Option<Duration>) -> Option<Duration> {
    let base = *SCHEDULE.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    // Up to a tenth of jitter, so endpoints that failed together are not retried together.
    let mut r = [0u8; 2];
    getrandom::fill(&mut r).expect("the OS random number generator is available");
    let jitter = base.mul_f64(f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX) / 10.0);
    Some((base + jitter).max(retry_after.unwrap_or_default().min(Duration::from_secs(10 * 3600))))
}

/// Delivers due webhooks until `stop` turns true: claims a batch, sends each (at most
/// `CONCURRENCY` at once), records the outcome; sleeps a second (or until woken) when
/// nothing is due.
pub async fn run_dispatcher(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    const CONCURRENCY: usize = 8;
    // Every task's end wakes the dispatcher (its events may have made deliveries). After a
    // claim that found nothing, further wake-ups are taken at most this often, so a busy
    // install without endpoints pays one claim per interval instead of one per task.
    const EMPTY_CLAIM_GAP: Duration = Duration::from_millis(50);
    let mut running = tokio::task::JoinSet::new();
    let mut empty_claim_at: Option<tokio::time::Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        if let Some(at) = empty_claim_at.take() {
            tokio::select! {
                _ = tokio::time::sleep_until(at + EMPTY_CLAIM_GAP) => {}
                changed = stop.changed() => if changed.is_err() { break; },
            }
            if *stop.borrow() {
                break;
            }
        }
        let now = state.clock().now();
        let until = now + chrono::Duration::from_std(lease(&state)).unwrap_or_default();
        let free = CONCURRENCY.saturating_sub(running.len()) as i64;
        let claimed = if free > 0 {
            match state.store().webhook_deliveries_claim(now, until, free).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook deliveries failed");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let idle = claimed.is_empty();
        let claimed_at = tokio::time::Instant::now();
        for d in claimed {
            let state = state.clone();
            running.spawn(async move { attempt(&state, d).await });
        }
        while running.try_join_next().is_some() {}
        if idle {
            tokio::select! {
                _ = state.webhook_woken() => {
                    if free > 0 {
                        empty_claim_at = Some(claimed_at);
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                changed = stop.changed() => if changed.is_err() { break; },
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
    }
    // Attempts under way finish (each within the timeout); unfinished ones are retried
    // after their lease by another dispatcher.
    let _ = tokio::time::timeout(Duration::from_secs(state.settings().webhooks.timeout_secs + 1), async {
        while running.join_next().await.is_some() {}
    })
    .await;
}

/// One attempt of one delivery, recorded.
async fn attempt(state: &AppState, d: WebhookDeliveryRow) {
    let Ok(Some(endpoint)) = state.store().webhook_endpoint_get(d.endpoint_id).await else { return };
    let started = std::time::Instant::now();
    // A disabled endpoint (410, 5 days of failures, its owner) gets nothing more but pings;
    // what was still pending for it ends as failed instead of being retried at it.
    let sent = if endpoint.enabled || d.event_type == "ping" {
        send(state, &endpoint, &d).await
    } else {
        Err(format!(
            "not sent: the endpoint is disabled ({})",
            endpoint.disabled_reason.as_deref().unwrap_or("disabled")
        ))
    };
    let gave_up = !endpoint.enabled && d.event_type != "ping";
    let latency_ms = started.elapsed().as_millis() as i64;
    record(state, &endpoint, &d, sent, latency_ms, gave_up).await;
}

/// Records how an attempt of `d` went (`sent`: the answer, or why it could not be sent) and
/// the delivery's next state; updates the endpoint's health (410 and 5 days of failures
/// disable an endpoint; a relay's answers come from a developer's local server, so for a
/// relay they are ordinary failures). `gave_up`: a failure ends the delivery instead of
/// scheduling a retry.
async fn record(
    state: &AppState,
    endpoint: &WebhookEndpointRow,
    d: &WebhookDeliveryRow,
    sent: Result<crate::fetch::Answer, String>,
    latency_ms: i64,
    gave_up: bool,
) {
    let now = state.clock().now();
    let (status_code, error, excerpt, retry_after, outcome) = match sent {
        Ok(answer) => {
            let outcome = match answer.status {
                200..=299 => Sent::Ok,
                410 if !endpoint.relay => Sent::Gone,
                300..=399 => Sent::Failed("redirects are not followed".to_string()),
                s => Sent::Failed(format!("the endpoint answered {s}")),
            };
            (Some(i32::from(answer.status)), None, Some(answer.excerpt), answer.retry_after, outcome)
        }
        Err(e) => (None, Some(e.clone()), None, None, Sent::Failed(e)),
    };
    let error = error.or(match &outcome {
        Sent::Failed(why) => Some(why.clone()),
        Sent::Gone => Some("the endpoint answered 410 Gone: disabled".into()),
        Sent::Ok => None,
    });
    let (status, next) = match &outcome {
        Sent::Ok => (DeliveryStatus::Succeeded, now),
        Sent::Gone => (DeliveryStatus::Failed, now),
        Sent::Failed(_) if gave_up => (DeliveryStatus::Failed, now),
        Sent::Failed(_) => match next_wait(d.attempts, retry_after) {
            Some(wait) => (DeliveryStatus::Pending, now + chrono::Duration::from_std(wait).unwrap_or_default()),
            None => (DeliveryStatus::Failed, now),
        },
    };
    let record = WebhookOutcome {
        attempt: d.attempts,
        status_code,
        error,
        latency_ms,
        response_excerpt: excerpt,
        status,
        next_attempt_at: next,
    };
    if let Err(e) = state.store().webhook_delivery_record(d.id, &record).await {
        tracing::warn!(delivery = %d.id, error = %e, "recording a webhook attempt failed; it is tried again after its lease");
        return;
    }
    match outcome {
        Sent::Ok => {
            let _ = state.store().webhook_endpoint_health(endpoint.id, true, now).await;
        }
        Sent::Gone => disable(state, endpoint, "the endpoint answered 410 Gone").await,
        Sent::Failed(_) => {
            let _ = state.store().webhook_endpoint_health(endpoint.id, false, now).await;
            let since = endpoint.failing_since.unwrap_or(now);
            if endpoint.enabled
                && !endpoint.relay
                && now - since >= chrono::Duration::from_std(DISABLE_AFTER).unwrap_or_default()
            {
                disable(state, endpoint, "every delivery failed for 5 days").await;
            }
        }
    }
}

enum Sent {
    Ok,
    Gone,
    Failed(String),
}

/// Signs and POSTs one delivery; `Err` is why it could not be sent at all.
async fn send(
    state: &AppState,
    endpoint: &WebhookEndpointRow,
    d: &WebhookDeliveryRow,
) -> Result<crate::fetch::Answer, String> {
    let Signed { id, timestamp, signature, body } = signed(state, endpoint, d).await.map_err(|e| e.message)?;
    let mut headers = reqwest::header::HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = reqwest::header::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    put("webhook-id", &id);
    put("webhook-timestamp", &timestamp.to_string());
    put("webhook-signature", &signature);
    put("content-type", "application/json");
    let url = d.url.as_deref().unwrap_or(&endpoint.url);
    state.webhook_poster().post(url, headers, body).await.map_err(|e| e.to_string())
}

/// A delivery's message as sent now: the Standard Webhooks headers' values and the body.
#[derive(Debug, Clone)]
pub struct Signed {
    /// `webhook-id`
    pub id: String,
    /// `webhook-timestamp` (seconds)
    pub timestamp: i64,
    /// `webhook-signature`: one `v1,…` per secret, space-separated.
    pub signature: String,
    pub body: Vec<u8>,
}

async fn signed(state: &AppState, endpoint: &WebhookEndpointRow, d: &WebhookDeliveryRow) -> AppResult<Signed> {
    let secrets = unseal(state, endpoint)?;
    let body = serde_json::to_vec(&payload(state, d).await).map_err(AppError::internal)?;
    let id = message_id(d);
    let timestamp = state.clock().now().timestamp();
    let signature = secrets.iter().map(|s| sign(s, &id, timestamp, &body)).collect::<Vec<_>>().join(" ");
    Ok(Signed { id, timestamp, signature, body })
}

/// A caller's relay endpoint `id`, or 404 (a plain endpoint is not a relay).
async fn own_relay(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<WebhookEndpointRow> {
    let row = own(state, principal, id).await?;
    if !row.relay {
        return Err(AppError::not_found("webhook relay"));
    }
    Ok(row)
}

/// Leases the relay's due deliveries (at most `limit`), waiting up to `wait` for one; each
/// comes signed as it would be sent. The listener forwards each and reports the answer with
/// [`relay_answer`] before the lease ends, or it is handed out again after the lease. (Like
/// any endpoint, a disabled relay gets no new events, only pings.)
pub async fn relay_pull(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    wait: Duration,
    limit: i64,
) -> AppResult<Vec<(WebhookDeliveryRow, Signed)>> {
    principal.require(Access::Write)?;
    let endpoint = own_relay(state, principal, id).await?;
    state.store().webhook_relay_seen(id, state.clock().now()).await?;
    let deadline = tokio::time::Instant::now() + wait.min(RELAY_WAIT_MAX);
    loop {
        let now = state.clock().now();
        let until = now + chrono::Duration::from_std(lease(state)).unwrap_or_default();
        let claimed = state.store().webhook_relay_claim(id, now, until, limit.clamp(1, 100)).await?;
        if !claimed.is_empty() {
            let mut out = Vec::with_capacity(claimed.len());
            for d in claimed {
                let message = signed(state, &endpoint, &d).await?;
                out.push((d, message));
            }
            return Ok(out);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Vec::new());
        }
        // Woken by this process's commits; deliveries made by other processes are seen
        // within the poll interval.
        tokio::select! {
            _ = state.webhook_woken() => {}
            _ = tokio::time::sleep(Duration::from_millis(500).min(deadline - tokio::time::Instant::now())) => {}
        }
    }
}

/// What the listener's local URL answered to a relayed delivery.
#[derive(Debug, Clone)]
pub struct RelayAnswer {
    /// The HTTP status; `None` when the request could not be made (`error` says why).
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub excerpt: Option<String>,
}

/// Records a relayed attempt like a sent one: 2xx succeeds, anything else is retried on the
/// schedule (a relay is never disabled by its answers).
pub async fn relay_answer(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    delivery_id: Uuid,
    answer: RelayAnswer,
) -> AppResult<WebhookDeliveryRow> {
    principal.require(Access::Write)?;
    let endpoint = own_relay(state, principal, id).await?;
    let d = match state.store().webhook_delivery_get(delivery_id).await? {
        Some(d) if d.endpoint_id == id && d.url.is_none() => d,
        _ => return Err(AppError::not_found("webhook delivery")),
    };
    if d.status != DeliveryStatus::Pending || d.lease_until.is_none_or(|until| until < state.clock().now()) {
        return Err(AppError::conflict(
            ErrorCode::DeliveryInProgress,
            "this delivery is not leased to a listener now (answered already, or its lease ended): pull again",
        ));
    }
    let sent = match answer.status {
        Some(status) => Ok(crate::fetch::Answer {
            status,
            retry_after: None,
            excerpt: answer.excerpt.map(|e| e.chars().take(1024).collect()).unwrap_or_default(),
        }),
        None => Err(answer.error.unwrap_or_else(|| "the listener could not forward it".into())),
    };
    record(state, &endpoint, &d, sent, answer.latency_ms.max(0), false).await;
    Ok(state.store().webhook_delivery_get(delivery_id).await?.unwrap_or(d))
}

/// Disables an endpoint and tells its owner (once: only when it was enabled).
async fn disable(state: &AppState, endpoint: &WebhookEndpointRow, reason: &str) {
    match state.store().webhook_endpoint_disable(endpoint.id, reason).await {
        Ok(true) => {
            tracing::warn!(endpoint = %endpoint.id, reason, "webhook endpoint disabled");
            if let Ok(Some(user)) = state.store().user_get(endpoint.user_id).await {
                let body = format!(
                    "Your FunMagic webhook endpoint {} was disabled: {reason}.\n\nFix it, then enable it again with \
                     `funmagic webhooks enable {}` (or PATCH /api/webhooks/endpoints/{} {{\"enabled\": true}}).",
                    endpoint.url, endpoint.id, endpoint.id
                );
                state.mailer().send(&user.email, "Your webhook endpoint was disabled", &body).await;
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(endpoint = %endpoint.id, error = %e, "disabling a webhook endpoint failed"),
    }
}

/// Deliveries due this long ago and still not attempted count as stuck (no dispatcher is
/// running, or they cannot keep up).
pub const STUCK_AFTER: Duration = Duration::from_secs(10 * 60);

/// For admins: endpoints failing or disabled (the longest failing first, at most 100) and
/// how many deliveries are stuck.
pub async fn overview(state: &AppState, principal: &Principal) -> AppResult<(Vec<WebhookEndpointRow>, i64)> {
    principal.require(Access::Admin)?;
    let failing = state.store().webhook_endpoints_failing(100).await?;
    let before = state.clock().now() - chrono::Duration::from_std(STUCK_AFTER).unwrap_or_default();
    let stuck = state.store().webhook_deliveries_stuck(before).await?;
    Ok((failing, stuck))
}

/// Deletes delivery logs older than 30 days (ended deliveries only); returns how many.
pub async fn sweep(state: &AppState) -> AppResult<u64> {
    let before = state.clock().now() - chrono::Duration::days(LOG_DAYS);
    let idle = state.clock().now() - chrono::Duration::from_std(RELAY_IDLE).unwrap_or_default();
    let relays = state.store().webhook_relays_sweep(idle).await?;
    if relays > 0 {
        tracing::info!(relays, "deleted webhook relays whose listener went away");
    }
    Ok(state.store().webhook_deliveries_sweep(before).await?)
}

/// Re-seals every endpoint's secrets under `new` (a master key rotation).
pub async fn reseal(state: &AppState, new: &crate::providers::crypto::MasterKey) -> Result<u64, String> {
    let key = state.master_key();
    let mut sealed = Vec::new();
    for row in state.store().webhook_endpoints_all().await.map_err(|e| e.to_string())? {
        if row.secret_key_id == new.id() {
            continue;
        }
        let secret = key.decrypt(row.id, &row.secret_key_id, &row.secret).map_err(|e| e.to_string())?;
        let previous = match (&row.previous_secret, &row.previous_key_id) {
            (Some(p), Some(k)) => key.decrypt(row.id, k, p).ok().map(|p| new.encrypt(row.id, &p)),
            _ => None,
        };
        let previous_key_id = previous.as_ref().map(|_| new.id().to_string());
        sealed.push(crate::store::SealedSecrets {
            id: row.id,
            secret: new.encrypt(row.id, &secret),
            key_id: new.id().to_string(),
            previous,
            previous_key_id,
        });
    }
    state.store().webhook_secrets_replace(&sealed).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_reference_vector() {
        assert_eq!(
            sign(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn the_schedule_is_svix_with_jitter_and_honours_retry_after() {
        let first = next_wait(1, None).unwrap();
        assert!(first >= Duration::from_secs(5) && first <= Duration::from_millis(5500), "{first:?}");
        let fourth = next_wait(4, None).unwrap();
        assert!(fourth >= Duration::from_secs(7200) && fourth <= Duration::from_secs(7920));
        assert!(next_wait(7, None).unwrap() >= Duration::from_secs(36000));
        assert_eq!(next_wait(8, None), None, "8 attempts in all");
        assert_eq!(next_wait(0, None), None);
        assert!(next_wait(1, Some(Duration::from_secs(120))).unwrap() >= Duration::from_secs(120), "Retry-After");
    }

    #[test]
    fn events_are_checked_and_kept_sorted() {
        assert_eq!(events_column(&None).unwrap(), None);
        assert_eq!(
            events_column(&Some(vec!["task.succeeded".into(), "task.failed".into(), "task.failed".into()])).unwrap(),
            Some(",task.failed,task.succeeded,".into())
        );
        assert!(events_column(&Some(vec!["task.exploded".into()])).is_err());
        assert!(events_column(&Some(vec![])).is_err());
    }

    #[test]
    fn asset_ids_are_found_anywhere_in_an_output() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let output =
            json!({ "assetId": a, "images": [{ "assetId": b }, { "assetId": a }], "modelAssetId": "not-a-uuid" });
        let mut found = Vec::new();
        collect_asset_ids(&output, &mut found);
        assert_eq!(found, vec![a, b]);
    }
}
