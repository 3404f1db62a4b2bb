//! `/api/tools`: the public catalogue; `/api/admin/tools` and `/api/admin/tool-types`:
//! admin CRUD with the config validated on write. A disabled tool is 404 to users.

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::error::ErrorResponse;
use super::models::Success;
use super::security::Caller;
use super::text::{Line, Opt, Prose, Slug};
use crate::app::AppState;
use crate::auth::Access;
use crate::error::AppError;
use crate::store::{StoreError, ToolRow, ToolTypeRow};
use crate::tools;

type Result<T> = std::result::Result<T, ErrorResponse>;

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ToolType {
    pub id: Uuid,
    pub name: String,
    pub display_name: String,
    pub icon: Option<String>,
    pub color: Option<String>,
    pub description: Option<String>,
}

impl From<ToolTypeRow> for ToolType {
    fn from(t: ToolTypeRow) -> Self {
        Self {
            id: t.id,
            name: t.name,
            display_name: t.display_name,
            icon: t.icon,
            color: t.color,
            description: t.description,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ToolStep {
    pub id: String,
    pub name: String,
    #[oai(rename = "type")]
    pub kind: String,
    pub provider_model: String,
    /// Credits this step costs.
    pub cost: i64,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ToolStyle {
    pub id: String,
    pub name: String,
    pub image_url: Option<String>,
    pub prompt: String,
}

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct Tool {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub description: Option<String>,
    pub tool_type: Option<ToolType>,
    /// Credits for running every step.
    pub credits_cost: i64,
    pub is_active: bool,
    pub steps: Vec<ToolStep>,
    pub style_references: Vec<ToolStyle>,
    /// The raw config (admins only): steps with provider ids, style references.
    pub config: Option<serde_json::Value>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ToolList {
    pub tools: Vec<Tool>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ToolTypeList {
    pub tool_types: Vec<ToolType>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ToolInput {
    pub slug: Slug<60>,
    pub title: Line<200>,
    pub description: Opt<Prose<2000>>,
    pub tool_type_id: Uuid,
    /// The seed's tool config: `{"steps": [...], "styleReferences": [...]}`.
    pub config: serde_json::Value,
    pub is_active: Opt<bool>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct ToolTypeInput {
    pub name: Slug<60>,
    pub display_name: Line<100>,
    pub icon: Opt<Line<64>>,
    pub color: Opt<Line<32>>,
    pub description: Opt<Prose<2000>>,
}

impl poem_openapi::types::Example for ToolTypeInput {
    fn example() -> Self {
        Self {
            name: Slug("video".into()),
            display_name: Line("Video".into()),
            icon: Opt(Some(Line("film".into()))),
            color: Opt(Some(Line("#10b981".into()))),
            description: Opt(Some(Prose("Make and edit short clips".into()))),
        }
    }
}

fn to_api(row: ToolRow, types: &[ToolTypeRow], admin: bool) -> Tool {
    let parsed: Option<tools::ToolConfig> = serde_json::from_value(row.config.0.clone()).ok();
    let (steps, styles) = match parsed {
        Some(c) => (
            c.steps
                .into_iter()
                .map(|s| ToolStep {
                    id: s.id,
                    name: s.name,
                    kind: s.kind,
                    provider_model: s.provider_model,
                    cost: s.cost,
                })
                .collect(),
            c.style_references
                .into_iter()
                .map(|s| ToolStyle { id: s.id, name: s.name, image_url: s.image_url, prompt: s.prompt })
                .collect(),
        ),
        None => (vec![], vec![]),
    };
    Tool {
        id: row.id,
        tool_type: types.iter().find(|t| t.id == row.tool_type_id).cloned().map(Into::into),
        slug: row.slug,
        title: row.title,
        description: row.description,
        credits_cost: row.credits_cost,
        is_active: row.is_active,
        steps,
        style_references: styles,
        config: admin.then_some(row.config.0),
    }
}

async fn tool_row(
    state: &AppState,
    id: Uuid,
    input: &ToolInput,
    created: chrono::DateTime<chrono::Utc>,
) -> Result<ToolRow> {
    tools::validate_slug(&input.slug)?;
    if input.title.trim().is_empty() || input.title.chars().count() > 200 {
        return Err(AppError::validation("title must have 1–200 characters").into());
    }
    if !state.store().tool_type_list().await?.iter().any(|t| t.id == input.tool_type_id) {
        return Err(AppError::validation("unknown toolTypeId").into());
    }
    let config = tools::validate_config(&input.config, &state.store().provider_list().await?)?;
    Ok(ToolRow {
        id,
        slug: input.slug.to_string(),
        title: input.title.trim().to_string(),
        description: input.description.to_owned_string(),
        tool_type_id: input.tool_type_id,
        config: sqlx::types::Json(serde_json::to_value(&config).map_err(AppError::internal)?),
        credits_cost: config.total_cost(),
        is_active: input.is_active.unwrap_or(true),
        created_at: created,
        updated_at: crate::store::now(),
    })
}

fn conflict(e: StoreError) -> ErrorResponse {
    match e {
        StoreError::Conflict(_) => {
            AppError::conflict("SLUG_TAKEN", "a tool or type with this name already exists").into()
        }
        StoreError::Constraint(_) => {
            AppError::conflict("IN_USE", "still referenced (tasks or tools); deactivate it instead").into()
        }
        other => other.into(),
    }
}

pub struct ToolsApi;

#[OpenApi(tag = "ApiTags::Tools")]
impl ToolsApi {
    /// Active tools with their type, cost, steps and styles (public).
    #[oai(path = "/api/tools", method = "get", operation_id = "tool_list")]
    async fn list(&self, state: Data<&AppState>) -> Result<Json<ToolList>> {
        let types = state.store().tool_type_list().await?;
        let rows = state.store().tool_list(true).await?;
        Ok(Json(ToolList { tools: rows.into_iter().map(|r| to_api(r, &types, false)).collect() }))
    }

    /// One active tool by slug (public); disabled tools are 404.
    #[oai(path = "/api/tools/:slug", method = "get", operation_id = "tool_get")]
    async fn get(&self, state: Data<&AppState>, slug: Path<Slug<60>>) -> Result<Json<Tool>> {
        let row = state
            .store()
            .tool_get_by_slug(&slug)
            .await?
            .filter(|t| t.is_active)
            .ok_or_else(|| AppError::not_found("tool"))?;
        let types = state.store().tool_type_list().await?;
        Ok(Json(to_api(row, &types, false)))
    }
}

pub struct AdminToolsApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminToolsApi {
    /// Every tool, active or not, with its raw config.
    #[oai(path = "/api/admin/tools", method = "get", operation_id = "admin_tool_list")]
    async fn list(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<ToolList>> {
        principal.require(Access::Admin)?;
        let types = state.store().tool_type_list().await?;
        let rows = state.store().tool_list(false).await?;
        Ok(Json(ToolList { tools: rows.into_iter().map(|r| to_api(r, &types, true)).collect() }))
    }

    /// Creates a tool; the config is validated (step types, providers, models, costs).
    #[oai(path = "/api/admin/tools", method = "post", operation_id = "admin_tool_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<ToolInput>,
    ) -> Result<Json<Tool>> {
        principal.require(Access::Admin)?;
        let row = tool_row(&state, Uuid::now_v7(), &body, crate::store::now()).await?;
        let saved = state.store().tool_upsert(&row).await.map_err(conflict)?;
        state.catalogue().invalidate();
        Ok(Json(to_api(saved, &state.store().tool_type_list().await?, true)))
    }

    /// Replaces a tool (also how it is enabled or disabled).
    #[oai(path = "/api/admin/tools/:id", method = "put", operation_id = "admin_tool_update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        body: Json<ToolInput>,
    ) -> Result<Json<Tool>> {
        principal.require(Access::Admin)?;
        let existing = state.store().tool_get(id.0).await?.ok_or_else(|| AppError::not_found("tool"))?;
        let row = tool_row(&state, id.0, &body, existing.created_at).await?;
        let saved = state.store().tool_upsert(&row).await.map_err(conflict)?;
        state.catalogue().invalidate();
        Ok(Json(to_api(saved, &state.store().tool_type_list().await?, true)))
    }

    /// Deletes a tool that no task used; otherwise deactivate it.
    #[oai(path = "/api/admin/tools/:id", method = "delete", operation_id = "admin_tool_delete")]
    async fn delete(&self, state: Data<&AppState>, Caller(principal): Caller, id: Path<Uuid>) -> Result<Json<Success>> {
        principal.require(Access::Admin)?;
        let deleted = state.store().tool_delete(id.0).await.map_err(conflict)?;
        state.catalogue().invalidate();
        match deleted {
            true => Ok(Success::ok()),
            false => Err(AppError::not_found("tool").into()),
        }
    }

    /// Tool types.
    #[oai(path = "/api/admin/tool-types", method = "get", operation_id = "admin_tool_type_list")]
    async fn types(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<ToolTypeList>> {
        principal.require(Access::Admin)?;
        let rows = state.store().tool_type_list().await?;
        Ok(Json(ToolTypeList { tool_types: rows.into_iter().map(Into::into).collect() }))
    }

    /// Creates a tool type.
    #[oai(path = "/api/admin/tool-types", method = "post", operation_id = "admin_tool_type_create")]
    async fn type_create(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<ToolTypeInput>,
    ) -> Result<Json<ToolType>> {
        principal.require(Access::Admin)?;
        tools::validate_slug(&body.name)?;
        if body.display_name.trim().is_empty() {
            return Err(AppError::validation("displayName is required").into());
        }
        let now = crate::store::now();
        let row = ToolTypeRow {
            id: Uuid::now_v7(),
            name: body.name.to_string(),
            display_name: body.display_name.trim().into(),
            icon: body.icon.to_owned_string(),
            color: body.color.to_owned_string(),
            description: body.description.to_owned_string(),
            created_at: now,
            updated_at: now,
        };
        Ok(Json(state.store().tool_type_upsert(&row).await.map_err(conflict)?.into()))
    }

    /// Deletes a tool type no tool uses.
    #[oai(path = "/api/admin/tool-types/:id", method = "delete", operation_id = "admin_tool_type_delete")]
    async fn type_delete(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Success>> {
        principal.require(Access::Admin)?;
        match state.store().tool_type_delete(id.0).await.map_err(conflict)? {
            true => Ok(Success::ok()),
            false => Err(AppError::not_found("tool type").into()),
        }
    }
}
