//! Managing the AI providers (super_admin only), the app layer: list, create, change (name,
//! key rotation, base URL, active) and test. Keys are write-only: encrypted on arrival
//! under the master key, and only their last 4 characters ever come back.

use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Access, Principal};
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::providers::{ProviderKind, crypto};
use crate::store::{ProviderRow, StoreError};

/// A new provider (`kind`: openai, fal or tripo).
#[derive(Debug, Clone)]
pub struct NewProvider {
    pub name: String,
    pub kind: ProviderKind,
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub is_active: Option<bool>,
}

/// A change: only the fields given change. `api_key` replaces the key (rotation);
/// `clear_base_url` returns to the provider's public API.
#[derive(Debug, Clone, Default)]
pub struct ProviderChange {
    pub name: Option<String>,
    pub api_key: Option<String>,
    pub base_url: Option<String>,
    pub clear_base_url: bool,
    pub is_active: Option<bool>,
}

pub async fn list(state: &AppState, principal: &Principal) -> AppResult<Vec<ProviderRow>> {
    principal.require(Access::SuperAdmin)?;
    Ok(state.store().provider_list().await?)
}

/// Adds a provider; its key is encrypted at once.
pub async fn create(state: &AppState, principal: &Principal, new: &NewProvider) -> AppResult<ProviderRow> {
    principal.require(Access::SuperAdmin)?;
    validate_name(&new.name)?;
    match new.kind {
        ProviderKind::OpenAi | ProviderKind::Fal | ProviderKind::Tripo => {}
        ProviderKind::Local => {
            return Err(AppError::validation("type must be openai, fal or tripo (local is built in)"));
        }
    }
    if let Some(url) = &new.base_url {
        validate_base_url(url)?;
    }
    let now = crate::store::now();
    let mut row = ProviderRow {
        id: Uuid::now_v7(),
        name: new.name.clone(),
        kind: new.kind,
        base_url: new.base_url.clone(),
        is_active: new.is_active.unwrap_or(true),
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
    if let Some(key) = &new.api_key {
        validate_key(key)?;
        set_key(state.master_key(), &mut row, key);
    }
    let saved = state.store().provider_upsert(&row).await.map_err(conflict)?;
    state.catalogue().invalidate();
    tracing::info!(provider = %saved.name, kind = %saved.kind, "provider created");
    Ok(saved)
}

/// Changes provider `id`.
pub async fn change(state: &AppState, principal: &Principal, id: Uuid, c: &ProviderChange) -> AppResult<ProviderRow> {
    principal.require(Access::SuperAdmin)?;
    let mut row = state.store().provider_get(id).await?.ok_or_else(|| AppError::not_found("provider"))?;
    if row.kind == ProviderKind::Local && (c.api_key.is_some() || c.base_url.is_some() || c.name.is_some()) {
        return Err(AppError::validation("the local provider has no key, URL or other name"));
    }
    if let Some(name) = &c.name {
        validate_name(name)?;
        row.name = name.clone();
    }
    if let Some(key) = &c.api_key {
        validate_key(key)?;
        set_key(state.master_key(), &mut row, key);
    }
    if c.clear_base_url {
        row.base_url = None;
    } else if let Some(url) = &c.base_url {
        validate_base_url(url)?;
        // The stored key only ever goes where it was given for: moving the provider
        // elsewhere takes its key anew.
        if row.api_key.is_some() && c.api_key.is_none() && row.base_url.as_deref() != Some(url.as_str()) {
            return Err(AppError::new(
                ErrorKind::Validation,
                ErrorCode::KeyRequired,
                "changing baseUrl needs the API key again (apiKey) in the same request",
            ));
        }
        row.base_url = Some(url.clone());
    }
    if let Some(active) = c.is_active {
        row.is_active = active;
    }
    row.updated_at = crate::store::now();
    let saved = state.store().provider_upsert(&row).await.map_err(conflict)?;
    state.catalogue().invalidate();
    Ok(saved)
}

/// Checks the provider now (an authenticated request to its API) and records the result;
/// returns the provider as recorded, whether it is healthy, and the check's message.
pub async fn test(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<(ProviderRow, bool, String)> {
    principal.require(Access::SuperAdmin)?;
    let row = state.store().provider_get(id).await?.ok_or_else(|| AppError::not_found("provider"))?;
    let (healthy, message) = super::provider_health::check_and_record(state, &row).await;
    let row = state.store().provider_get(id).await?.ok_or_else(|| AppError::not_found("provider"))?;
    Ok((row, healthy, message))
}

fn validate_name(name: &str) -> AppResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok { Ok(()) } else { Err(AppError::validation("name must be 1–64 characters of a-z, 0-9, - and _")) }
}

fn validate_key(key: &str) -> AppResult<()> {
    if key.trim() != key || key.len() < 8 || key.len() > 512 || key.chars().any(char::is_control) {
        return Err(AppError::validation("apiKey must be 8–512 characters without spaces around it"));
    }
    Ok(())
}

fn validate_base_url(url: &str) -> AppResult<()> {
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

fn conflict(e: StoreError) -> AppError {
    match e {
        StoreError::Conflict(_) => AppError::conflict(ErrorCode::NameTaken, "a provider with this name exists"),
        other => other.into(),
    }
}

fn set_key(master: &crypto::MasterKey, row: &mut ProviderRow, key: &str) {
    row.api_key = Some(master.encrypt(row.id, key));
    row.api_key_id = Some(master.id().to_string());
    row.api_key_last4 = Some(crypto::last4(key));
}

/// What a master key rotation did.
#[derive(Debug)]
pub struct Rotation {
    pub keys: u64,
    /// The key file that now holds the new key (embedded default); `None` when the key
    /// comes from `FUNMAGIC_MASTER_KEY`.
    pub file: Option<std::path::PathBuf>,
}

/// Re-encrypts every provider key under `new`, all in one transaction. With the key in
/// `<data_dir>/master.key`, the new key is written beside it first and moved over it
/// after the commit (the old one kept as `master.key.<old id>.old`), so no step leaves
/// keys that no file can decrypt.
pub async fn rotate_master_key(state: &AppState, new: &crypto::MasterKey) -> Result<Rotation, String> {
    let current = state.master_key();
    let mut replaced = Vec::new();
    for p in state.store().provider_list().await.map_err(|e| e.to_string())? {
        let (Some(sealed), Some(key_id)) = (&p.api_key, &p.api_key_id) else { continue };
        if key_id == new.id() {
            continue;
        }
        let plain = current.decrypt(p.id, key_id, sealed).map_err(|e| format!("provider '{}': {e}", p.name))?;
        replaced.push((p.id, key_id.clone(), new.encrypt(p.id, &plain), new.id().to_string()));
    }
    let file = state.settings().providers.master_key.is_none().then(|| crypto::key_path(state.settings()));
    let staged = file.as_ref().map(|f| f.with_extension("key.new"));
    if let Some(staged) = &staged {
        let _ = std::fs::remove_file(staged);
        crypto::write_new(staged, &new.encoded()).map_err(|e| format!("{}: {e}", staged.display()))?;
    }
    if let Some(file) = &file {
        // The old key is kept before anything changes, so no failure below loses it.
        let backup = file.with_extension(format!("key.{}.old", current.id()));
        std::fs::copy(file, &backup).map_err(|e| format!("{}: {e}", backup.display()))?;
    }
    let keys = state.store().provider_keys_replace(&replaced).await.map_err(|e| e.to_string())?;
    let keys = keys + crate::webhooks::reseal(state, new).await?;
    state.catalogue().invalidate();
    if let (Some(file), Some(staged)) = (&file, &staged) {
        std::fs::rename(staged, file).map_err(|e| {
            format!("the keys are re-encrypted but {} could not replace {}: {e}", staged.display(), file.display())
        })?;
    }
    Ok(Rotation { keys, file })
}
