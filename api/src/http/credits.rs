//! `/api/credits/*`: balance, history, packages, Stripe Checkout; and the credit routes of
//! `/api/admin/*` (packages, adjustments).

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ApiTags;
use super::error::ErrorResponse;
use super::models::Success;
use super::security::Caller;
use super::text::{Currency, Line, Opt, Token};
use crate::app::AppState;
use crate::auth::Access;
use crate::credits::{self, PackageFields};
use crate::store::{CreditPackageRow, CreditTxRow, CreditsRow, TransactionType};

type Result<T> = std::result::Result<T, ErrorResponse>;

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
#[serde(rename_all = "camelCase")]
pub struct CreditBalance {
    /// Credits owned, including reserved ones.
    pub balance: i64,
    /// Credits held for tasks that have not finished.
    pub reserved: i64,
    /// `balance − reserved`: what new tasks can use.
    pub available: i64,
    pub lifetime_earned: i64,
    pub lifetime_spent: i64,
}

impl From<CreditsRow> for CreditBalance {
    fn from(c: CreditsRow) -> Self {
        Self {
            balance: c.balance,
            reserved: c.reserved_balance,
            available: c.available(),
            lifetime_earned: c.lifetime_earned,
            lifetime_spent: c.lifetime_spent,
        }
    }
}

/// One ledger row. `amount` changes the balance; `reservedDelta` the reserved credits.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CreditTransaction {
    pub id: Uuid,
    #[oai(rename = "type")]
    pub kind: TransactionType,
    pub amount: i64,
    pub balance_after: i64,
    pub reserved_delta: i64,
    pub reserved_after: i64,
    /// The task, checkout session or adjustment this row belongs to.
    pub reference_id: Option<String>,
    pub description: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<CreditTxRow> for CreditTransaction {
    fn from(t: CreditTxRow) -> Self {
        Self {
            id: t.id,
            kind: t.kind,
            amount: t.amount,
            balance_after: t.balance_after,
            reserved_delta: t.reserved_delta,
            reserved_after: t.reserved_after,
            reference_id: t.reference_id,
            description: t.description,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct TransactionList {
    pub transactions: Vec<CreditTransaction>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CreditPackage {
    pub id: Uuid,
    pub name: String,
    pub credits: i64,
    /// In the currency's minor unit (cents).
    pub price: i64,
    pub currency: String,
    pub is_active: bool,
    pub sort_order: i32,
    /// Admins only: the Stripe Price used at checkout.
    pub stripe_price_id: Option<String>,
}

impl CreditPackage {
    fn from_row(p: CreditPackageRow, admin: bool) -> Self {
        Self {
            id: p.id,
            name: p.name,
            credits: p.credits,
            price: p.price,
            currency: p.currency,
            is_active: p.is_active,
            sort_order: p.sort_order,
            stripe_price_id: if admin { p.stripe_price_id } else { None },
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct PackageList {
    pub packages: Vec<CreditPackage>,
}

#[derive(Debug, Object, Serialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CheckoutRequest {
    pub package_id: Uuid,
}

#[derive(Debug, Clone, Object, Serialize, Deserialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
#[serde(rename_all = "camelCase")]
pub struct Checkout {
    /// Stripe's Checkout Session id.
    pub id: String,
    /// Open this to pay.
    pub url: String,
    pub package_id: Uuid,
    pub credits: i64,
    pub amount: i64,
    pub currency: String,
    pub status: super::models::CheckoutStatus,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct PackageInput {
    pub name: Line<100>,
    #[oai(validator(minimum(value = "1"), maximum(value = "100000000")))]
    pub credits: i64,
    /// In the currency's smallest unit (cents).
    #[oai(validator(minimum(value = "0"), maximum(value = "100000000000")))]
    pub price: i64,
    /// ISO 4217, lower case (default `usd`).
    pub currency: Opt<Currency>,
    pub stripe_price_id: Opt<Token<255>>,
    pub is_active: Opt<bool>,
    #[oai(validator(minimum(value = "-1000000"), maximum(value = "1000000")))]
    pub sort_order: Opt<i32>,
}

impl poem_openapi::types::Example for PackageInput {
    fn example() -> Self {
        Self {
            name: Line("Starter".into()),
            credits: 100,
            price: 900,
            currency: Opt(Some(Currency("usd".into()))),
            stripe_price_id: Opt(None),
            is_active: Opt(Some(true)),
            sort_order: Opt(Some(1)),
        }
    }
}

#[derive(Debug, Object, Serialize)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct AdjustCreditsRequest {
    /// Positive adds, negative removes (never below zero available); not 0.
    #[oai(validator(minimum(value = "-1000000000"), maximum(value = "1000000000")))]
    pub amount: i64,
    /// Why; shown in the user's history.
    pub description: Line<500>,
}

impl poem_openapi::types::Example for AdjustCreditsRequest {
    fn example() -> Self {
        Self { amount: 50, description: Line("goodwill after an outage".into()) }
    }
}

pub struct CreditsApi;

#[OpenApi(tag = "ApiTags::Credits")]
impl CreditsApi {
    /// The caller's credits.
    #[oai(path = "/api/credits/balance", method = "get", operation_id = "credits_balance_get")]
    async fn balance(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<CreditBalance>> {
        Ok(Json(credits::balance(&state, &principal, credits::Account::Own).await?.into()))
    }

    /// The caller's credit history, newest first.
    #[oai(path = "/api/credits/transactions", method = "get", operation_id = "credits_transaction_list")]
    async fn transactions(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        #[oai(name = "type")] kind: Query<Option<TransactionType>>,
        cursor: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> Result<Json<TransactionList>> {
        let limit = super::models::page_limit(limit.0);
        let mut rows =
            credits::transactions(&state, &principal, credits::Account::Own, kind.0, cursor.0, limit + 1).await?;
        let next_cursor = super::models::next_page(&mut rows, limit, |r| r.id);
        Ok(Json(TransactionList { transactions: rows.into_iter().map(Into::into).collect(), next_cursor }))
    }

    /// Credit packages on sale (public).
    #[oai(path = "/api/credits/packages", method = "get", operation_id = "credits_package_list")]
    async fn packages(&self, state: Data<&AppState>) -> Result<Json<PackageList>> {
        let rows = credits::packages(&state, None).await?;
        Ok(Json(PackageList { packages: rows.into_iter().map(|p| CreditPackage::from_row(p, false)).collect() }))
    }

    /// Starts a Stripe Checkout for a package; pay at the returned URL.
    #[oai(path = "/api/credits/checkout", method = "post", operation_id = "credits_checkout_create")]
    async fn checkout(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        #[oai(name = "Idempotency-Key", validator(max_length = 255, pattern = r"^[\x21-\x7E]+$"))]
        idempotency_key: Header<Option<String>>,
        body: Json<CheckoutRequest>,
    ) -> Result<Json<Checkout>> {
        let key = idempotency_key.0.as_deref();
        let checkout = credits::idempotent(&state, principal.user_id(), key, "checkout", &body.0, async {
            let row = credits::stripe::checkout_create(&state, &principal, body.package_id, key).await?;
            Ok(Checkout {
                id: row.id,
                url: row.url,
                package_id: row.package_id,
                credits: row.credits,
                amount: row.amount,
                currency: row.currency,
                status: row.status,
            })
        })
        .await?;
        Ok(Json(checkout))
    }
}

/// The credit routes under `/api/admin/*`.
pub struct AdminCreditsApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminCreditsApi {
    /// Every package, active or not (admin).
    #[oai(path = "/api/admin/credit-packages", method = "get", operation_id = "admin_credit_package_list")]
    async fn admin_packages(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<PackageList>> {
        let rows = credits::packages(&state, Some(&principal)).await?;
        Ok(Json(PackageList { packages: rows.into_iter().map(|p| CreditPackage::from_row(p, true)).collect() }))
    }

    /// Creates a package (admin).
    #[oai(path = "/api/admin/credit-packages", method = "post", operation_id = "admin_credit_package_create")]
    async fn admin_package_create(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<PackageInput>,
    ) -> Result<Json<CreditPackage>> {
        let saved = credits::package_save(&state, &principal, None, &PackageFields::from(&*body)).await?;
        Ok(Json(CreditPackage::from_row(saved, true)))
    }

    /// Replaces a package (admin).
    #[oai(path = "/api/admin/credit-packages/:id", method = "put", operation_id = "admin_credit_package_update")]
    async fn admin_package_update(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        body: Json<PackageInput>,
    ) -> Result<Json<CreditPackage>> {
        let saved = credits::package_save(&state, &principal, Some(id.0), &PackageFields::from(&*body)).await?;
        Ok(Json(CreditPackage::from_row(saved, true)))
    }

    /// Deletes a package never bought; deactivate it instead once it was (admin).
    #[oai(path = "/api/admin/credit-packages/:id", method = "delete", operation_id = "admin_credit_package_delete")]
    async fn admin_package_delete(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Success>> {
        credits::package_delete(&state, &principal, id.0).await?;
        Ok(Success::ok())
    }

    /// Any user's credits (admin).
    #[oai(path = "/api/admin/users/:id/credits", method = "get", operation_id = "admin_user_credits_get")]
    async fn admin_user_credits(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<CreditBalance>> {
        Ok(Json(credits::balance(&state, &principal, credits::Account::User(id.0)).await?.into()))
    }

    /// Any user's credit transactions, newest first (admin).
    #[oai(path = "/api/admin/users/:id/transactions", method = "get", operation_id = "admin_user_transaction_list")]
    async fn admin_user_transactions(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        cursor: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> Result<Json<TransactionList>> {
        let limit = super::models::page_limit(limit.0);
        let account = credits::Account::User(id.0);
        let mut rows = credits::transactions(&state, &principal, account, None, cursor.0, limit + 1).await?;
        let next_cursor = super::models::next_page(&mut rows, limit, |r| r.id);
        Ok(Json(TransactionList { transactions: rows.into_iter().map(Into::into).collect(), next_cursor }))
    }

    /// Adds or removes a user's credits with a reason (`admin_adjust`); idempotent with
    /// `Idempotency-Key` (admin).
    #[oai(path = "/api/admin/users/:id/credits", method = "post", operation_id = "admin_user_credits_adjust")]
    async fn admin_user_credits_adjust(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        #[oai(name = "Idempotency-Key", validator(max_length = 255, pattern = r"^[\x21-\x7E]+$"))]
        idempotency_key: Header<Option<String>>,
        body: Json<AdjustCreditsRequest>,
    ) -> Result<Json<CreditBalance>> {
        principal.require(Access::Admin)?;
        let key = idempotency_key.0.as_deref();
        let reference = match key {
            Some(k) => format!("adjust:{}:{k}", principal.user_id()),
            None => format!("adjust:{}", Uuid::now_v7()),
        };
        let request = (id.0, &body.0);
        let balance = credits::idempotent(&state, principal.user_id(), key, "admin_adjust", &request, async {
            let row =
                credits::admin_adjust(&state, &principal, id.0, body.amount, &body.description, &reference).await?;
            Ok(CreditBalance::from(row))
        })
        .await?;
        Ok(Json(balance))
    }
}

impl From<&PackageInput> for PackageFields {
    fn from(i: &PackageInput) -> Self {
        PackageFields {
            name: i.name.to_string(),
            credits: i.credits,
            price: i.price,
            currency: i.currency.to_owned_string(),
            stripe_price_id: i.stripe_price_id.to_owned_string(),
            is_active: i.is_active.get(),
            sort_order: i.sort_order.get(),
        }
    }
}
