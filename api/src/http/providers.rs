//! `/api/admin/providers` (super_admin only) over HTTP: list, create, update (rotate the
//! key, change the base URL, enable/disable) and test. The rules and the key encryption
//! live in `crate::admin::providers`; only a key's last 4 characters ever come back.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::error::ErrorResponse;
use super::models::ExternalProviderType;
use super::security::Caller;
use super::text::{HttpUrl, Opt, ProviderKey, ProviderName};
use crate::admin::providers as admin;
use crate::app::AppState;
use crate::providers::ProviderKind;
use crate::store::ProviderRow;

type Result<T> = std::result::Result<T, ErrorResponse>;

/// A provider as the API shows it: never the key, only its last 4 characters.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct Provider {
    pub id: Uuid,
    pub name: String,
    #[oai(rename = "type")]
    pub kind: ProviderKind,
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
            kind: p.kind,
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

pub struct AdminProvidersApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminProvidersApi {
    /// Every provider with its health (super_admin).
    #[oai(path = "/api/admin/providers", method = "get", operation_id = "admin_provider_list")]
    async fn list(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<ProviderList>> {
        let rows = admin::list(&state, &principal).await?;
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
        let new = admin::NewProvider {
            name: body.name.to_string(),
            kind: body.kind.into(),
            api_key: body.api_key.to_owned_string(),
            base_url: body.base_url.to_owned_string(),
            is_active: body.is_active.get(),
        };
        let saved = admin::create(&state, &principal, &new).await?;
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
        let change = admin::ProviderChange {
            name: body.name.to_owned_string(),
            api_key: body.api_key.to_owned_string(),
            base_url: body.base_url.to_owned_string(),
            clear_base_url: body.clear_base_url.get() == Some(true),
            is_active: body.is_active.get(),
        };
        let saved = admin::change(&state, &principal, id.0, &change).await?;
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
        let (row, healthy, message) = admin::test(&state, &principal, id.0).await?;
        Ok(Json(ProviderTest { provider: row.into(), healthy, message }))
    }
}
