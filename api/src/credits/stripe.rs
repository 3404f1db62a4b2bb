//! Stripe Checkout: creating Checkout Sessions through Stripe's API (form-encoded, as
//! documented), and the webhook that grants a package's credits exactly once per session,
//! after verifying the `Stripe-Signature` (HMAC-SHA256 over `"{t}.{payload}"`, with a
//! timestamp tolerance against replays).

use hmac::{Hmac, KeyInit, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::Sha256;
use uuid::Uuid;

use super::ledger_error;
use crate::app::AppState;
use crate::auth::{Access, Principal};
use crate::config::StripeSettings;
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::store::{Booked, CheckoutRow, TransactionType};

fn settings(state: &AppState) -> AppResult<&StripeSettings> {
    state.settings().stripe.as_ref().ok_or_else(|| {
        AppError::new(ErrorKind::Conflict, ErrorCode::PurchasesDisabled, "purchases are not enabled on this server")
    })
}

#[derive(Debug, Deserialize)]
struct StripeSession {
    id: String,
    url: Option<String>,
    /// What Stripe will charge before discounts and taxes (with a `stripe_price_id`, the
    /// Stripe Price's amount, which may differ from the package's own price).
    amount_subtotal: Option<i64>,
    currency: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StripeErrorBody {
    error: StripeErrorDetail,
}

#[derive(Debug, Deserialize)]
struct StripeErrorDetail {
    message: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Creates a Checkout Session for an active package; returns our record of it.
pub async fn checkout_create(
    state: &AppState,
    principal: &Principal,
    package_id: Uuid,
    idempotency_key: Option<&str>,
) -> AppResult<CheckoutRow> {
    principal.require(Access::Write)?;
    let stripe = settings(state)?;
    let package = state
        .store()
        .credit_package_get(package_id)
        .await?
        .filter(|p| p.is_active)
        .ok_or_else(|| AppError::not_found("credit package"))?;
    let base = state.web_url();
    let success = stripe.success_url.clone().unwrap_or_else(|| format!("{base}/credits?checkout=success"));
    let cancel = stripe.cancel_url.clone().unwrap_or_else(|| format!("{base}/credits?checkout=cancelled"));
    let user_id = principal.user_id().to_string();
    let package_str = package.id.to_string();
    let credits_str = package.credits.to_string();
    let price_str = package.price.to_string();
    let name = format!("{} ({} credits)", package.name, package.credits);
    let mut form: Vec<(&str, &str)> = vec![
        ("mode", "payment"),
        ("success_url", &success),
        ("cancel_url", &cancel),
        ("client_reference_id", &user_id),
        ("customer_email", &principal.user.email),
        ("metadata[user_id]", &user_id),
        ("metadata[package_id]", &package_str),
        ("metadata[credits]", &credits_str),
        ("line_items[0][quantity]", "1"),
    ];
    match &package.stripe_price_id {
        Some(price) => form.push(("line_items[0][price]", price)),
        None => {
            form.push(("line_items[0][price_data][currency]", &package.currency));
            form.push(("line_items[0][price_data][unit_amount]", &price_str));
            form.push(("line_items[0][price_data][product_data][name]", &name));
        }
    }
    let mut request = state
        .http()
        .post(format!("{}/v1/checkout/sessions", stripe.api_url))
        .timeout(std::time::Duration::from_secs(30))
        .bearer_auth(stripe.secret_key.expose_secret())
        .form(&form);
    if let Some(key) = idempotency_key {
        // Stripe de-duplicates too, so a retry after a lost answer creates no second session.
        request = request.header("Idempotency-Key", format!("checkout-{}-{key}", principal.user_id()));
    }
    let response = request.send().await.map_err(|e| provider_error(&e.to_string()))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| provider_error(&e.to_string()))?;
    if !status.is_success() {
        let detail = serde_json::from_str::<StripeErrorBody>(&text)
            .map(|b| format!("{}: {}", b.error.kind.unwrap_or_default(), b.error.message.unwrap_or_default()))
            .unwrap_or_else(|_| format!("HTTP {status}"));
        return Err(provider_error(&detail));
    }
    let session: StripeSession =
        serde_json::from_str(&text).map_err(|_| provider_error("malformed Checkout Session"))?;
    let url = session.url.ok_or_else(|| provider_error("the Checkout Session has no URL"))?;
    let row = CheckoutRow {
        id: session.id,
        user_id: principal.user_id(),
        package_id: package.id,
        credits: package.credits,
        amount: session.amount_subtotal.unwrap_or(package.price),
        currency: session.currency.map(|c| c.to_ascii_lowercase()).unwrap_or(package.currency),
        url,
        status: crate::store::CheckoutStatus::Open,
        created_at: crate::store::now(),
        completed_at: None,
    };
    match state.store().checkout_create(&row).await {
        Ok(()) => Ok(row),
        // Stripe replayed the same session for the same idempotency key.
        Err(crate::store::StoreError::Conflict(_)) => {
            state.store().checkout_get(&row.id).await?.ok_or_else(|| AppError::internal("checkout vanished"))
        }
        Err(e) => Err(e.into()),
    }
}

fn provider_error(detail: &str) -> AppError {
    tracing::warn!(detail, "Stripe request failed");
    AppError::new(
        ErrorKind::Unavailable,
        ErrorCode::PaymentProviderError,
        format!("the payment provider failed: {detail}"),
    )
}

/// Checks `Stripe-Signature: t=…,v1=…[,v1=…]` against the raw payload.
pub fn verify_signature(
    secret: &str,
    header: &str,
    payload: &[u8],
    now: i64,
    tolerance: u64,
) -> Result<(), &'static str> {
    let mut timestamp: Option<i64> = None;
    let mut signatures = vec![];
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse().ok(),
            Some(("v1", sig)) => signatures.push(sig),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or("no timestamp in Stripe-Signature")?;
    if signatures.is_empty() {
        return Err("no v1 signature in Stripe-Signature");
    }
    if now.abs_diff(timestamp) > tolerance {
        return Err("the signature timestamp is outside the tolerance");
    }
    for sig in signatures {
        let Ok(expected) = hex::decode(sig) else { continue };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "bad secret")?;
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        if mac.verify_slice(&expected).is_ok() {
            return Ok(());
        }
    }
    Err("no signature matches")
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Debug, Deserialize)]
struct EventData {
    object: serde_json::Value,
}

/// What the webhook did, for the log and the response.
#[derive(Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    Granted {
        session: String,
        credits: i64,
    },
    AlreadyGranted,
    Recorded,
    Ignored,
    Duplicate,
    /// Paid, but not what the session was created for (amount or currency): no credits,
    /// an error in the log for a human to look at. Answered 200 so Stripe does not retry a
    /// delivery that can never succeed.
    AmountMismatch {
        session: String,
    },
}

/// Handles one webhook delivery. A bad signature is an error before anything is touched.
pub async fn webhook(state: &AppState, signature: Option<&str>, payload: &[u8]) -> AppResult<WebhookOutcome> {
    let stripe = settings(state)?;
    let secret = stripe.webhook_secret.as_ref().ok_or_else(|| {
        AppError::new(ErrorKind::Unavailable, ErrorCode::WebhookDisabled, "STRIPE_WEBHOOK_SECRET is not configured")
    })?;
    let signature = signature
        .ok_or_else(|| AppError::new(ErrorKind::BadRequest, ErrorCode::InvalidSignature, "missing Stripe-Signature"))?;
    verify_signature(
        secret.expose_secret(),
        signature,
        payload,
        chrono::Utc::now().timestamp(),
        stripe.webhook_tolerance_secs,
    )
    .map_err(|why| AppError::new(ErrorKind::BadRequest, ErrorCode::InvalidSignature, why))?;
    let event: Event = serde_json::from_slice(payload).map_err(|_| AppError::bad_request("malformed event"))?;
    if !state.store().stripe_event_record(&event.id, &event.kind).await? {
        return Ok(WebhookOutcome::Duplicate);
    }
    let result = handle_event(state, &event).await;
    if result.is_err() {
        // Let Stripe's retry process it again.
        state.store().stripe_event_forget(&event.id).await?;
    }
    result
}

async fn handle_event(state: &AppState, event: &Event) -> AppResult<WebhookOutcome> {
    let session_id = event.data.object["id"].as_str().unwrap_or_default().to_string();
    match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let paid = matches!(event.data.object["payment_status"].as_str(), Some("paid" | "no_payment_required"));
            if !paid {
                return Ok(WebhookOutcome::Recorded); // async payment: wait for async_payment_succeeded
            }
            fulfill(state, &session_id, &event.data.object).await
        }
        "checkout.session.expired" | "checkout.session.async_payment_failed" => {
            state.store().checkout_set_status(&session_id, crate::store::CheckoutStatus::Expired).await?;
            Ok(WebhookOutcome::Recorded)
        }
        _ => Ok(WebhookOutcome::Ignored),
    }
}

/// Grants the session's credits, once per session whatever the deliveries and their order.
async fn fulfill(state: &AppState, session_id: &str, session: &serde_json::Value) -> AppResult<WebhookOutcome> {
    let Some(checkout) = state.store().checkout_get(session_id).await? else {
        tracing::warn!(session_id, "webhook for an unknown Checkout Session ignored");
        return Ok(WebhookOutcome::Ignored);
    };
    // The price before discounts and taxes must be what Stripe said the session would
    // charge when we created it, in its currency.
    let paid_amount = session["amount_subtotal"].as_i64().or_else(|| session["amount_total"].as_i64());
    let paid_currency = session["currency"].as_str().map(str::to_ascii_lowercase);
    if paid_amount != Some(checkout.amount) || paid_currency.as_deref() != Some(&checkout.currency.to_ascii_lowercase())
    {
        tracing::error!(
            session_id,
            user = %checkout.user_id,
            expected_amount = checkout.amount,
            expected_currency = %checkout.currency,
            paid_amount = ?paid_amount,
            paid_currency = ?paid_currency,
            "a Checkout Session was paid with another amount or currency than it was created for; no credits granted"
        );
        return Ok(WebhookOutcome::AmountMismatch { session: checkout.id });
    }
    let description = format!("purchase of {} credits", checkout.credits);
    let booked = state
        .store()
        .credits_grant(checkout.user_id, TransactionType::Purchase, checkout.credits, &checkout.id, Some(&description))
        .await
        .map_err(|e| ledger_error(e, 0))?;
    state.store().checkout_set_status(&checkout.id, crate::store::CheckoutStatus::Completed).await?;
    Ok(match booked {
        Booked::Applied(_) => {
            crate::telemetry::credits("granted", checkout.credits);
            tracing::info!(session_id, user = %checkout.user_id, credits = checkout.credits, "credits purchased");
            WebhookOutcome::Granted { session: checkout.id, credits: checkout.credits }
        }
        Booked::Duplicate => WebhookOutcome::AlreadyGranted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: i64, payload: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(payload);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_with_tolerance() {
        let payload = br#"{"id":"evt_1"}"#;
        let header = sign("whsec_test", 1_000, payload);
        assert_eq!(verify_signature("whsec_test", &header, payload, 1_100, 300), Ok(()));
        assert!(verify_signature("whsec_test", &header, payload, 1_400, 300).is_err(), "stale");
        assert!(verify_signature("whsec_other", &header, payload, 1_100, 300).is_err(), "wrong secret");
        assert!(verify_signature("whsec_test", &header, b"{}", 1_100, 300).is_err(), "tampered payload");
        let rotated = format!("{},v1=deadbeef", header);
        assert_eq!(verify_signature("whsec_test", &rotated, payload, 1_100, 300), Ok(()), "any v1 may match");
        assert!(verify_signature("whsec_test", "v1=abc", payload, 1_100, 300).is_err());
    }
}
