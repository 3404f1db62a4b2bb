//! `/api/tools`: the public catalogue; `/api/admin/tools` and `/api/admin/tool-types`:
//! admin CRUD with the config validated on write. A disabled tool is 404 to users.

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::error::ErrorResponse;
use super::models::Success;
use super::security::Caller;
use super::text::{Line, Opt, Prose, Slug};
use crate::admin::tools::{self as admin, ToolFields, ToolTypeFields};
use crate::app::AppState;
use crate::store::{ToolRow, ToolTypeRow};
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
    pub kind: crate::domain::StepKind,
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
    /// Shown on a homepage (`?featured=true` lists only these).
    pub featured: bool,
    /// Place in the catalogue, lower first (the list is ordered by it, then slug).
    pub position: i32,
    pub steps: Vec<ToolStep>,
    pub style_references: Vec<ToolStyle>,
    /// The language of the title, description and names: the one asked for (`?locale=`
    /// or `Accept-Language`) when the tool has it, else `en`.
    pub locale: String,
    /// The raw config (admins only): steps with provider ids, style references, translations.
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
    /// Shown on a homepage (default false).
    pub featured: Opt<bool>,
    /// Place in the catalogue, lower first (default 0; -1000000 to 1000000).
    pub position: Opt<i32>,
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

/// A tool as the API shows it, in the first of the `wanted` languages it has (else English).
async fn to_api(state: &AppState, row: ToolRow, types: &[ToolTypeRow], admin: bool, wanted: &[String]) -> Tool {
    let parsed: Option<tools::ToolConfig> = serde_json::from_value(row.config.0.clone()).ok();
    let mut locale = "en".to_string();
    let (mut title, mut description) = (row.title, row.description);
    let (steps, styles) = match parsed {
        Some(mut c) => {
            let translations = std::mem::take(&mut c.translations);
            let t = tools::pick_locale(&translations, wanted).map(|tag| (tag, &translations[tag]));
            let names = |names: Option<&std::collections::BTreeMap<String, String>>, id: &str, base: String| {
                names.and_then(|n| n.get(id)).cloned().unwrap_or(base)
            };
            if let Some((tag, t)) = t {
                locale = tag.to_string();
                title = t.title.clone().unwrap_or(title);
                description = t.description.clone().or(description);
            }
            let (step_names, style_names) = (t.map(|(_, t)| &t.steps), t.map(|(_, t)| &t.styles));
            (
                c.steps
                    .into_iter()
                    .map(|s| ToolStep {
                        name: names(step_names, &s.id, s.name),
                        id: s.id,
                        kind: s.kind,
                        provider_model: s.provider_model,
                        cost: s.cost,
                    })
                    .collect(),
                c.style_references
                    .into_iter()
                    .map(|s| ToolStyle {
                        name: names(style_names, &s.id, s.name),
                        id: s.id,
                        // An admin-bucket preview is resolved below (it needs the store).
                        image_url: s.image_url.or(s.image_key),
                        prompt: s.prompt,
                    })
                    .collect(),
            )
        }
        None => (vec![], vec![]),
    };
    let mut styles = styles;
    for style in &mut styles {
        if let Some(key) = style.image_url.take() {
            style.image_url = if crate::urls::is_http_url(&key) {
                Some(key)
            } else {
                crate::assets::admin_file_url(state, &key).await
            };
        }
    }
    Tool {
        id: row.id,
        tool_type: types.iter().find(|t| t.id == row.tool_type_id).cloned().map(Into::into),
        slug: row.slug,
        title,
        description,
        locale,
        credits_cost: row.credits_cost,
        is_active: row.is_active,
        featured: row.featured,
        position: row.position,
        steps,
        style_references: styles,
        config: admin.then_some(row.config.0),
    }
}

impl From<&ToolInput> for ToolFields {
    fn from(i: &ToolInput) -> Self {
        ToolFields {
            slug: i.slug.to_string(),
            title: i.title.to_string(),
            description: i.description.to_owned_string(),
            tool_type_id: i.tool_type_id,
            config: i.config.clone(),
            is_active: i.is_active.get(),
            featured: i.featured.get(),
            position: i.position.get(),
        }
    }
}

impl From<&ToolTypeInput> for ToolTypeFields {
    fn from(i: &ToolTypeInput) -> Self {
        ToolTypeFields {
            name: i.name.to_string(),
            display_name: i.display_name.to_string(),
            icon: i.icon.to_owned_string(),
            color: i.color.to_owned_string(),
            description: i.description.to_owned_string(),
        }
    }
}

pub struct ToolsApi;

#[OpenApi(tag = "ApiTags::Tools")]
impl ToolsApi {
    /// Active tools with their type, cost, steps and styles (public), in the language asked
    /// for (`locale`, else `Accept-Language`) where a tool has it, English otherwise.
    /// Answers carry an `ETag` (`If-None-Match` gets 304) and `Cache-Control: no-cache`.
    #[oai(path = "/api/tools", method = "get", operation_id = "tool_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        /// A language tag (`zh`, `pt-BR`); wins over `Accept-Language`.
        locale: Query<Option<Line<35>>>,
        #[oai(name = "Accept-Language")] accept_language: Header<Option<String>>,
        /// `true`: only the featured tools (a homepage).
        featured: Query<Option<bool>>,
    ) -> Result<Json<ToolList>> {
        let wanted = tools::wanted_locales(locale.0.as_deref(), accept_language.0.as_deref());
        let (rows, types) = tools::catalogue(state.store(), featured.0.unwrap_or(false)).await?;
        let mut tools = Vec::with_capacity(rows.len());
        for row in rows {
            tools.push(to_api(&state, row, &types, false, &wanted).await);
        }
        Ok(Json(ToolList { tools }))
    }

    /// One active tool by slug (public); disabled tools are 404. Languages and caching as
    /// for the list.
    #[oai(path = "/api/tools/:slug", method = "get", operation_id = "tool_get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        slug: Path<Slug<60>>,
        /// A language tag (`zh`, `pt-BR`); wins over `Accept-Language`.
        locale: Query<Option<Line<35>>>,
        #[oai(name = "Accept-Language")] accept_language: Header<Option<String>>,
    ) -> Result<Json<Tool>> {
        let wanted = tools::wanted_locales(locale.0.as_deref(), accept_language.0.as_deref());
        let (row, types) = tools::catalogue_tool(state.store(), &slug).await?;
        Ok(Json(to_api(&state, row, &types, false, &wanted).await))
    }
}

pub struct AdminToolsApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminToolsApi {
    /// Every tool, active or not, with its raw config.
    #[oai(path = "/api/admin/tools", method = "get", operation_id = "admin_tool_list")]
    async fn list(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<ToolList>> {
        let rows = admin::admin_list(&state, &principal).await?;
        let types = tools::tool_types(state.store()).await?;
        let mut tools = Vec::with_capacity(rows.len());
        for row in rows {
            tools.push(to_api(&state, row, &types, true, &[]).await);
        }
        Ok(Json(ToolList { tools }))
    }

    /// Creates a tool; the config is validated (step types, providers, models, costs).
    #[oai(path = "/api/admin/tools", method = "post", operation_id = "admin_tool_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<ToolInput>,
    ) -> Result<Json<Tool>> {
        let saved = admin::create(&state, &principal, &ToolFields::from(&*body)).await?;
        Ok(Json(to_api(&state, saved, &tools::tool_types(state.store()).await?, true, &[]).await))
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
        let saved = admin::replace(&state, &principal, id.0, &ToolFields::from(&*body)).await?;
        Ok(Json(to_api(&state, saved, &tools::tool_types(state.store()).await?, true, &[]).await))
    }

    /// Deletes a tool that no task used; otherwise deactivate it.
    #[oai(path = "/api/admin/tools/:id", method = "delete", operation_id = "admin_tool_delete")]
    async fn delete(&self, state: Data<&AppState>, Caller(principal): Caller, id: Path<Uuid>) -> Result<Json<Success>> {
        admin::delete(&state, &principal, id.0).await?;
        Ok(Success::ok())
    }

    /// Tool types.
    #[oai(path = "/api/admin/tool-types", method = "get", operation_id = "admin_tool_type_list")]
    async fn types(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<ToolTypeList>> {
        let rows = admin::type_list(&state, &principal).await?;
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
        Ok(Json(admin::type_create(&state, &principal, &ToolTypeFields::from(&*body)).await?.into()))
    }

    /// Replaces a tool type's name, display name, icon, colour and description.
    #[oai(path = "/api/admin/tool-types/:id", method = "put", operation_id = "admin_tool_type_update")]
    async fn type_update(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        body: Json<ToolTypeInput>,
    ) -> Result<Json<ToolType>> {
        Ok(Json(admin::type_update(&state, &principal, id.0, &ToolTypeFields::from(&*body)).await?.into()))
    }

    /// Deletes a tool type no tool uses.
    #[oai(path = "/api/admin/tool-types/:id", method = "delete", operation_id = "admin_tool_type_delete")]
    async fn type_delete(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Success>> {
        admin::type_delete(&state, &principal, id.0).await?;
        Ok(Success::ok())
    }
}
