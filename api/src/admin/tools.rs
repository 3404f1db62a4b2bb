//! Tools and tool types as admins manage them: checked rows in, stored rows out; the
//! process's [`Catalogue`](crate::tools::Catalogue) is dropped after every change.

use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Access, Principal};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::{ToolRow, ToolTypeRow};
use crate::tools::{validate_config, validate_slug};

/// A tool as an admin writes it (create or replace).
#[derive(Debug, Clone)]
pub struct ToolFields {
    pub slug: String,
    pub title: String,
    pub description: Option<String>,
    pub tool_type_id: Uuid,
    pub config: serde_json::Value,
    pub is_active: Option<bool>,
    pub featured: Option<bool>,
    pub position: Option<i32>,
}

/// A tool type as an admin writes it.
#[derive(Debug, Clone)]
pub struct ToolTypeFields {
    pub name: String,
    pub display_name: String,
    pub icon: Option<String>,
    pub color: Option<String>,
    pub description: Option<String>,
}

fn store_conflict(e: crate::store::StoreError) -> AppError {
    match e {
        crate::store::StoreError::Conflict(_) => {
            AppError::conflict(ErrorCode::SlugTaken, "a tool or type with this name already exists")
        }
        crate::store::StoreError::Constraint(_) => {
            AppError::conflict(ErrorCode::InUse, "still referenced (tasks or tools); deactivate it instead")
        }
        other => other.into(),
    }
}

/// Every tool, active or not (admins).
pub async fn admin_list(state: &AppState, principal: &Principal) -> AppResult<Vec<ToolRow>> {
    principal.require(Access::Admin)?;
    Ok(state.store().tool_list(false, false).await?)
}

/// Creates a tool; the config is validated (step types, providers, models, costs).
pub async fn create(state: &AppState, principal: &Principal, fields: &ToolFields) -> AppResult<ToolRow> {
    principal.require(Access::Admin)?;
    let row = build_row(state, Uuid::now_v7(), fields, crate::store::now()).await?;
    let saved = state.store().tool_upsert(&row).await.map_err(store_conflict)?;
    state.catalogue().invalidate();
    Ok(saved)
}

/// Replaces tool `id` (also how it is enabled or disabled).
pub async fn replace(state: &AppState, principal: &Principal, id: Uuid, fields: &ToolFields) -> AppResult<ToolRow> {
    principal.require(Access::Admin)?;
    let existing = state.store().tool_get(id).await?.ok_or_else(|| AppError::not_found("tool"))?;
    let row = build_row(state, id, fields, existing.created_at).await?;
    let saved = state.store().tool_upsert(&row).await.map_err(store_conflict)?;
    state.catalogue().invalidate();
    Ok(saved)
}

/// Deletes a tool no task used; otherwise it must be deactivated (409 IN_USE).
pub async fn delete(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<()> {
    principal.require(Access::Admin)?;
    let deleted = state.store().tool_delete(id).await.map_err(store_conflict)?;
    state.catalogue().invalidate();
    if deleted { Ok(()) } else { Err(AppError::not_found("tool")) }
}

pub async fn type_list(state: &AppState, principal: &Principal) -> AppResult<Vec<ToolTypeRow>> {
    principal.require(Access::Admin)?;
    Ok(state.store().tool_type_list().await?)
}

pub async fn type_create(state: &AppState, principal: &Principal, fields: &ToolTypeFields) -> AppResult<ToolTypeRow> {
    principal.require(Access::Admin)?;
    let now = crate::store::now();
    let row = type_row(Uuid::now_v7(), fields, now)?;
    state.store().tool_type_upsert(&row).await.map_err(store_conflict)
}

/// Replaces a tool type's fields (404 for an unknown id; 409 for a name another type has).
pub async fn type_update(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    fields: &ToolTypeFields,
) -> AppResult<ToolTypeRow> {
    principal.require(Access::Admin)?;
    let existing = state
        .store()
        .tool_type_list()
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(|| AppError::not_found("tool type"))?;
    let mut row = type_row(id, fields, existing.created_at)?;
    row.updated_at = crate::store::now();
    state.store().tool_type_upsert(&row).await.map_err(store_conflict)
}

fn type_row(id: Uuid, fields: &ToolTypeFields, now: chrono::DateTime<chrono::Utc>) -> AppResult<ToolTypeRow> {
    validate_slug(&fields.name)?;
    if fields.display_name.trim().is_empty() {
        return Err(AppError::validation("displayName is required"));
    }
    Ok(ToolTypeRow {
        id,
        name: fields.name.clone(),
        display_name: fields.display_name.trim().into(),
        icon: fields.icon.clone(),
        color: fields.color.clone(),
        description: fields.description.clone(),
        created_at: now,
        updated_at: now,
    })
}

/// Deletes a tool type no tool uses.
pub async fn type_delete(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<()> {
    principal.require(Access::Admin)?;
    if state.store().tool_type_delete(id).await.map_err(store_conflict)? {
        Ok(())
    } else {
        Err(AppError::not_found("tool type"))
    }
}

/// Checks an admin's tool and builds its row (the cost is the sum of its steps).
async fn build_row(
    state: &AppState,
    id: Uuid,
    f: &ToolFields,
    created: chrono::DateTime<chrono::Utc>,
) -> AppResult<ToolRow> {
    validate_slug(&f.slug)?;
    if f.title.trim().is_empty() || f.title.chars().count() > 200 {
        return Err(AppError::validation("title must have 1–200 characters"));
    }
    if !state.store().tool_type_list().await?.iter().any(|t| t.id == f.tool_type_id) {
        return Err(AppError::validation("unknown toolTypeId"));
    }
    if f.position.is_some_and(|p| !(-1_000_000..=1_000_000).contains(&p)) {
        return Err(AppError::validation("position must be between -1000000 and 1000000"));
    }
    let config = validate_config(&f.config, &state.store().provider_list().await?)?;
    let admin_bucket = state.storage().bucket_name(crate::storage::Bucket::Admin);
    for style in &config.style_references {
        if let Some(key) = &style.image_key
            && state.store().asset_get_by_key(&admin_bucket, key).await?.is_none()
        {
            return Err(AppError::new(
                crate::error::ErrorKind::Validation,
                ErrorCode::InvalidToolConfig,
                format!("style {}: imageKey '{key}' is not an admin-bucket upload", style.id),
            ));
        }
    }
    Ok(ToolRow {
        id,
        slug: f.slug.clone(),
        title: f.title.trim().to_string(),
        description: f.description.clone(),
        tool_type_id: f.tool_type_id,
        config: sqlx::types::Json(serde_json::to_value(&config).map_err(AppError::internal)?),
        credits_cost: config.total_cost(),
        is_active: f.is_active.unwrap_or(true),
        featured: f.featured.unwrap_or(false),
        position: f.position.unwrap_or(0),
        created_at: created,
        updated_at: crate::store::now(),
    })
}
