//! Credits are money: the app layer over the ledger (`store::ledger_queries`). Grants,
//! reservations and their resolution each happen in one database transaction that books
//! its `credit_transactions` row; a reservation is keyed by its task and resolves at most
//! once. Money-moving requests accept an `Idempotency-Key`.

pub mod stripe;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Access, Principal};
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::store::{Booked, CreditPackageRow, IdempotencyState, LedgerError, Resolution, TransactionType};

/// The 402 a client gets when a task costs more than is available.
pub fn insufficient(cost: i64, available: i64) -> AppError {
    AppError::new(
        ErrorKind::PaymentRequired,
        ErrorCode::InsufficientCredits,
        format!("this needs {cost} credits but only {available} are available"),
    )
    .with_details(serde_json::json!({ "cost": cost, "available": available }))
}

pub fn ledger_error(err: LedgerError, cost: i64) -> AppError {
    match err {
        LedgerError::Insufficient { available } => insufficient(cost, available),
        LedgerError::UnknownReservation => AppError::not_found("reservation"),
        LedgerError::ReservationMismatch => {
            AppError::conflict(ErrorCode::ReservationMismatch, "a different reservation exists for this reference")
        }
        LedgerError::SpendExceedsReservation => AppError::validation("cannot spend more than was reserved"),
        LedgerError::Store(e) => e.into(),
    }
}

/// Grants the configured sign-up bonus once per user.
pub async fn grant_signup_bonus(state: &AppState, user_id: Uuid) -> AppResult<()> {
    let bonus = state.settings().signup_bonus();
    if bonus > 0 {
        state
            .store()
            .credits_grant(user_id, TransactionType::Bonus, bonus, &format!("signup:{user_id}"), Some("sign-up bonus"))
            .await
            .map_err(|e| ledger_error(e, 0))?;
        crate::telemetry::credits("granted", bonus);
    }
    Ok(())
}

/// Reserves `cost` for `reference` (idempotent per reference).
pub async fn reserve(state: &AppState, user_id: Uuid, reference: &str, cost: i64) -> AppResult<()> {
    match state.store().credits_reserve(user_id, reference, cost).await {
        Ok(_) => Ok(()),
        Err(e) => Err(ledger_error(e, cost)),
    }
}

/// Spends the whole reservation (success). Repeats are no-ops.
pub async fn confirm(state: &AppState, reference: &str) -> AppResult<Booked<Resolution>> {
    state.store().credits_resolve(reference, None).await.map_err(|e| ledger_error(e, 0))
}

/// Returns the whole reservation (failure, cancel). Repeats are no-ops.
pub async fn release(state: &AppState, reference: &str) -> AppResult<Booked<Resolution>> {
    state.store().credits_resolve(reference, Some(0)).await.map_err(|e| ledger_error(e, 0))
}

/// Spends part (`spend`) and releases the rest (a cancelled multi-step task).
pub async fn settle(state: &AppState, reference: &str, spend: i64) -> AppResult<Booked<Resolution>> {
    state.store().credits_resolve(reference, Some(spend)).await.map_err(|e| ledger_error(e, 0))
}

/// An admin adds or removes credits; refused if available credits would go negative.
pub async fn admin_adjust(
    state: &AppState,
    principal: &Principal,
    user_id: Uuid,
    amount: i64,
    description: &str,
    reference: &str,
) -> AppResult<crate::store::CreditsRow> {
    principal.require(Access::Admin)?;
    state.store().user_get(user_id).await?.ok_or_else(|| AppError::not_found("user"))?;
    if amount == 0 || amount.unsigned_abs() > 1_000_000_000 {
        return Err(AppError::validation("amount must be a non-zero number of credits up to ±1,000,000,000"));
    }
    let description = description.trim();
    if description.is_empty() || description.chars().count() > 500 {
        return Err(AppError::validation("a description (1–500 characters) is required"));
    }
    let text = format!("{description} (by {})", principal.user.email);
    match state.store().credits_grant(user_id, TransactionType::AdminAdjust, amount, reference, Some(&text)).await {
        Ok(_) => crate::telemetry::credits("granted", amount),
        Err(LedgerError::Insufficient { available }) => {
            return Err(AppError::new(
                ErrorKind::Validation,
                ErrorCode::AdjustmentExceedsAvailable,
                format!("removing {} credits would leave available credits negative ({available} available)", -amount),
            )
            .with_details(serde_json::json!({ "available": available })));
        }
        Err(e) => return Err(ledger_error(e, 0)),
    }
    Ok(state.store().credits_get(user_id).await?)
}

/// A credit package as an admin writes it (create or replace).
#[derive(Debug, Clone)]
pub struct PackageFields {
    pub name: String,
    pub credits: i64,
    /// In the currency's smallest unit.
    pub price: i64,
    /// Lower-case ISO 4217 (default `usd`).
    pub currency: Option<String>,
    pub stripe_price_id: Option<String>,
    pub is_active: Option<bool>,
    pub sort_order: Option<i32>,
}

/// Whose credits a read is about: the caller's own, or (admins) a user's.
#[derive(Debug, Clone, Copy)]
pub enum Account {
    Own,
    User(Uuid),
}

async fn account_id(state: &AppState, principal: &Principal, account: Account) -> AppResult<Uuid> {
    match account {
        Account::Own => Ok(principal.user_id()),
        Account::User(id) => crate::auth::admin_target(state.store(), principal, id).await,
    }
}

/// An account's balance, reserved credits and lifetime totals.
pub async fn balance(state: &AppState, principal: &Principal, account: Account) -> AppResult<crate::store::CreditsRow> {
    let id = account_id(state, principal, account).await?;
    Ok(state.store().credits_get(id).await?)
}

/// A page of an account's credit history, newest first, optionally of one type.
pub async fn transactions(
    state: &AppState,
    principal: &Principal,
    account: Account,
    kind: Option<TransactionType>,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<crate::store::CreditTxRow>> {
    let id = account_id(state, principal, account).await?;
    Ok(state.store().credits_transactions(id, kind, before, limit).await?)
}

/// Packages: on sale only (anyone), or every one (admins).
pub async fn packages(state: &AppState, principal: Option<&Principal>) -> AppResult<Vec<CreditPackageRow>> {
    match principal {
        Some(p) => {
            p.require(Access::Admin)?;
            Ok(state.store().credit_package_list(false).await?)
        }
        None => Ok(state.store().credit_package_list(true).await?),
    }
}

/// Creates (`id` none) or replaces a package.
pub async fn package_save(
    state: &AppState,
    principal: &Principal,
    id: Option<Uuid>,
    f: &PackageFields,
) -> AppResult<CreditPackageRow> {
    principal.require(Access::Admin)?;
    let now = crate::store::now();
    let created = match id {
        Some(id) => {
            state.store().credit_package_get(id).await?.ok_or_else(|| AppError::not_found("credit package"))?.created_at
        }
        None => now,
    };
    let row = CreditPackageRow {
        id: id.unwrap_or_else(Uuid::now_v7),
        name: f.name.trim().to_string(),
        credits: f.credits,
        price: f.price,
        currency: f.currency.clone().unwrap_or_else(|| "usd".into()),
        stripe_price_id: f.stripe_price_id.clone(),
        is_active: f.is_active.unwrap_or(true),
        sort_order: f.sort_order.unwrap_or(0),
        created_at: created,
        updated_at: now,
    };
    validate_package(&row)?;
    Ok(state.store().credit_package_upsert(&row).await?)
}

/// Deletes a package never bought; one with checkouts must be deactivated instead.
pub async fn package_delete(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<()> {
    principal.require(Access::Admin)?;
    match state.store().credit_package_delete(id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(AppError::not_found("credit package")),
        Err(crate::store::StoreError::Constraint(_)) => Err(AppError::conflict(
            ErrorCode::PackageInUse,
            "this package has checkouts; set isActive to false instead of deleting it",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Validates a package before it is stored.
pub fn validate_package(p: &CreditPackageRow) -> AppResult<()> {
    if p.name.trim().is_empty() || p.name.chars().count() > 100 {
        return Err(AppError::validation("name must have 1 to 100 characters"));
    }
    if p.credits <= 0 || p.credits > 100_000_000 {
        return Err(AppError::validation("credits must be between 1 and 100,000,000"));
    }
    if p.price < 0 {
        return Err(AppError::validation("price must not be negative"));
    }
    if p.currency.len() != 3 || !p.currency.chars().all(|c| c.is_ascii_lowercase()) {
        return Err(AppError::validation("currency must be a lower-case ISO 4217 code such as usd"));
    }
    Ok(())
}

/// Runs `op` at most once per `(user, key)`: a repeat with the same request gets the first
/// answer; the same key with a different request is 422; one still running is 409.
pub async fn idempotent<T, R, F>(
    state: &AppState,
    user_id: Uuid,
    key: Option<&str>,
    operation: &str,
    request: &R,
    op: F,
) -> AppResult<T>
where
    T: Serialize + DeserializeOwned,
    R: Serialize,
    F: Future<Output = AppResult<T>>,
{
    let Some(key) = key else { return op.await };
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(AppError::validation("Idempotency-Key must be 1 to 255 visible ASCII characters"));
    }
    let body = serde_json::to_vec(request).map_err(AppError::internal)?;
    let hash = hex::encode(Sha256::digest([operation.as_bytes(), b"\n", &body].concat()));
    match state.store().idempotency_begin(user_id, key, operation, &hash).await? {
        IdempotencyState::Claimed => {}
        IdempotencyState::Replay { body, .. } => return serde_json::from_str(&body).map_err(AppError::internal),
        IdempotencyState::Mismatch => {
            return Err(AppError::new(
                ErrorKind::Validation,
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used with a different request",
            ));
        }
        IdempotencyState::InProgress => {
            return Err(AppError::conflict(
                ErrorCode::IdempotencyInProgress,
                "a request with this Idempotency-Key is still running",
            ));
        }
    }
    match op.await {
        Ok(value) => {
            let json = serde_json::to_string(&value).map_err(AppError::internal)?;
            state.store().idempotency_finish(user_id, key, Some((200, &json))).await?;
            Ok(value)
        }
        Err(e) => {
            // Failed requests may be retried with the same key.
            state.store().idempotency_finish(user_id, key, None).await?;
            Err(e)
        }
    }
}
