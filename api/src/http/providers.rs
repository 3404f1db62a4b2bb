//! `/api/admin/providers` (super_admin only): list, create, update (rotate the key,
//! change the base URL, enable/disable) and test the AI providers. Keys are write-only:
//! they are encrypted on arrival and only their last 4 characters ever come back.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::error::ErrorResponse;
use super::models::{ExternalProviderType, ProviderType};
use super::security::Caller;
use super::text::{HttpUrl, Opt, ProviderKey, ProviderName};
use crate::app::AppState;
use crate::auth::Access;
use crate::error::{AppError, ErrorKind};
use crate::providers::crypto;
use crate::store::{ProviderRow, StoreError};

type Result<T> = std::result::Result<T, ErrorResponse>;

/// A provider as the API shows it: never the key, only its last 4 characters.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct Provider {
    pub id: Uuid,
    pub name: String,
    #[oai(rename = "type")]
    pub kind: ProviderType,
    pub has_key: bool,
    /// The key's last 4 characters.
    pub key_last4: Option<String>,
    /// The id of the master key that encrypts it.
    pub key_id: Option<String>,
    /// Set: requests go here instead of the provider's public API.
    pub base_url: Option<String>,
    pub is_active: bool,
    pub is_healthy: bool,
    pub health_checked_at: Option<chrono::DateTime<chrono::Utc>>,
    pub health_message: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<ProviderRow> for Provider {
    fn from(p: ProviderRow) -> Self {
        Self {
            id: p.id,
            name: p.name,
            kind: ProviderType::from_store(&p.kind),
            has_key: p.api_key.is_some(),
            key_last4: p.api_key_last4,
            key_id: p.api_key_id,
            base_url: p.base_url,
            is_active: p.is_active,
            is_healthy: p.is_healthy,
            health_checked_at: p.health_checked_at,
            health_message: p.health_message,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ProviderList {
    pub providers: Vec<Provider>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct ProviderCreate {
    /// Unique; 1–64 characters of a-z, 0-9, - and _.
    pub name: ProviderName,
    /// `local` is built in and cannot be added.
    #[oai(rename = "type")]
    pub kind: ExternalProviderType,
    pub api_key: Opt<ProviderKey>,
    pub base_url: Opt<HttpUrl>,
    pub is_active: Opt<bool>,
}

impl poem_openapi::types::Example for ProviderCreate {
    fn example() -> Self {
        Self {
            name: ProviderName("openai-main".into()),
            kind: ExternalProviderType::Openai,
            api_key: Opt(Some(ProviderKey("sk-example-key-0000".into()))),
            base_url: Opt(None),
            is_active: Opt(Some(false)),
        }
    }
}

/// Only the fields given change. `apiKey` replaces the key (rotation); `clearBaseUrl`
/// returns to the provider's public API.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ProviderUpdate {
    pub name: Opt<ProviderName>,
    pub api_key: Opt<ProviderKey>,
    pub base_url: Opt<HttpUrl>,
    pub clear_base_url: Opt<bool>,
    pub is_active: Opt<bool>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ProviderTest {
    pub provider: Provider,
    pub healthy: bool,
    pub message: String,
}

#[derive(ApiResponse)]
pub enum ProviderCreated {
    #[oai(status = 201)]
    Created(Json<Provider>),
}

fn validate_name(name: &str) -> std::result::Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok { Ok(()) } else { Err(AppError::validation("name must be 1–64 characters of a-z, 0-9, - and _")) }
}

fn validate_key(key: &str) -> std::result::Result<(), AppError> {
    if key.trim() != key || key.len() < 8 || key.len() > 512 || key.chars().any(char::is_control) {
        return Err(AppError::validation("apiKey must be 8–512 characters without spaces around it"));
    }
    Ok(())
}

fn validate_base_url(url: &str) -> std::result::Result<(), AppError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| AppError::validation("baseUrl must be an absolute URL"))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(AppError::validation("baseUrl must be an http(s) URL"));
    }
    if parsed.query().is_some()
        || parsed.fragment().is_some()
        || !parsed.username().is_empty()
        || parsed.password().is_some()
    {
        return Err(AppError::validation("baseUrl must not carry a query, fragment or credentials"));
    }
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if parsed.scheme() == "http" && !loopback {
        return Err(AppError::validation("baseUrl must be https (plain http only on this machine: localhost)"));
    }
    Ok(())
}

fn conflict(e: StoreError) -> ErrorResponse {
    match e {
        StoreError::Conflict(_) => AppError::conflict("NAME_TAKEN", "a provider with this name exists").into(),
        other => other.into(),
    }
}

pub struct AdminProvidersApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminProvidersApi {
    /// Every provider with its health (super_admin).
    #[oai(path = "/api/admin/providers", method = "get", operation_id = "admin_provider_list")]
    async fn list(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<ProviderList>> {
        principal.require(Access::SuperAdmin)?;
        let rows = state.store().provider_list().await?;
        Ok(Json(ProviderList { providers: rows.into_iter().map(Into::into).collect() }))
    }

    /// Adds a provider; its key is encrypted at once (super_admin).
    #[oai(path = "/api/admin/providers", method = "post", operation_id = "admin_provider_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<ProviderCreate>,
    ) -> Result<ProviderCreated> {
        principal.require(Access::SuperAdmin)?;
        validate_name(&body.name)?;
        if let Some(url) = body.base_url.as_str() {
            validate_base_url(url)?;
        }
        let now = crate::store::now();
        let id = Uuid::now_v7();
        let mut row = ProviderRow {
            id,
            name: body.name.to_string(),
            kind: body.kind.as_str().to_string(),
            base_url: body.base_url.to_owned_string(),
            is_active: body.is_active.unwrap_or(true),
            is_healthy: false,
            health_checked_at: None,
            created_at: now,
            updated_at: now,
            api_key: None,
            api_key_id: None,
            api_key_last4: None,
            health_message: None,
            config: sqlx::types::Json(serde_json::json!({})),
        };
        if let Some(key) = body.api_key.as_str() {
            validate_key(key)?;
            set_key(state.master_key(), &mut row, key);
        }
        let saved = state.store().provider_upsert(&row).await.map_err(conflict)?;
        state.catalogue().invalidate();
        tracing::info!(provider = %saved.name, kind = %saved.kind, "provider created");
        Ok(ProviderCreated::Created(Json(saved.into())))
    }

    /// Changes a provider: name, key (rotation), base URL, active (super_admin).
    #[oai(path = "/api/admin/providers/:id", method = "patch", operation_id = "admin_provider_update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        body: Json<ProviderUpdate>,
    ) -> Result<Json<Provider>> {
        principal.require(Access::SuperAdmin)?;
        let mut row = state.store().provider_get(id.0).await?.ok_or_else(|| AppError::not_found("provider"))?;
        if row.kind == "local" && (body.api_key.is_some() || body.base_url.is_some() || body.name.is_some()) {
            return Err(AppError::validation("the local provider has no key, URL or other name").into());
        }
        if let Some(name) = body.name.as_str() {
            validate_name(name)?;
            row.name = name.to_string();
        }
        if let Some(key) = body.api_key.as_str() {
            validate_key(key)?;
            set_key(state.master_key(), &mut row, key);
        }
        if body.clear_base_url.get() == Some(true) {
            row.base_url = None;
        } else if let Some(url) = body.base_url.as_str() {
            validate_base_url(url)?;
            // The stored key only ever goes where it was given for: moving the provider
            // elsewhere takes its key anew.
            if row.api_key.is_some() && body.api_key.is_none() && row.base_url.as_deref() != Some(url) {
                return Err(AppError::new(
                    ErrorKind::Validation,
                    "KEY_REQUIRED",
                    "changing baseUrl needs the API key again (apiKey) in the same request",
                )
                .into());
            }
            row.base_url = Some(url.to_string());
        }
        if let Some(active) = body.is_active.get() {
            row.is_active = active;
        }
        row.updated_at = crate::store::now();
        let saved = state.store().provider_upsert(&row).await.map_err(conflict)?;
        state.catalogue().invalidate();
        Ok(Json(saved.into()))
    }

    /// Checks the provider now (an authenticated request to its API) and records the
    /// result (super_admin).
    #[oai(path = "/api/admin/providers/:id/test", method = "post", operation_id = "admin_provider_test")]
    async fn test(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<ProviderTest>> {
        principal.require(Access::SuperAdmin)?;
        let row = state.store().provider_get(id.0).await?.ok_or_else(|| AppError::not_found("provider"))?;
        let (healthy, message) = crate::providers::health::check_and_record(&state, &row).await;
        let row = state.store().provider_get(id.0).await?.ok_or_else(|| AppError::not_found("provider"))?;
        Ok(Json(ProviderTest { provider: row.into(), healthy, message }))
    }
}

fn set_key(master: &crypto::MasterKey, row: &mut ProviderRow, key: &str) {
    row.api_key = Some(master.encrypt(row.id, key));
    row.api_key_id = Some(master.id().to_string());
    row.api_key_last4 = Some(crypto::last4(key));
}
