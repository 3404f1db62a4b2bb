//! Banners over HTTP: public `GET /api/banners?type=main|side` and admin CRUD + reorder.
//! Each handler parses, calls `crate::banners` (the rules live there) and shapes the
//! answer.

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::error::ErrorResponse;
use super::models::{BannerType, LinkTarget, Success};
use super::security::Caller;
use super::text::{Line, Link, Opt, Prose, Thumbnail};
use crate::app::AppState;
use crate::banners::{self, BannerFields};
use crate::store::BannerRow;

type Result<T> = std::result::Result<T, ErrorResponse>;

#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct Banner {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    /// What was set: a URL or an admin-bucket key.
    pub thumbnail: Option<String>,
    /// Where to load the thumbnail from now.
    pub thumbnail_url: Option<String>,
    pub link: Option<String>,
    pub link_text: Option<String>,
    pub link_target: LinkTarget,
    #[oai(rename = "type")]
    pub kind: BannerType,
    pub position: i32,
    pub badge: Option<String>,
    pub badge_color: Option<String>,
    pub is_active: bool,
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    pub ends_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct BannerList {
    pub banners: Vec<Banner>,
}

/// A banner as written by an admin (create or replace).
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct BannerInput {
    pub title: Line<200>,
    pub description: Opt<Prose<2000>>,
    /// An http(s) URL, or the storage key of an admin-bucket upload.
    pub thumbnail: Opt<Thumbnail>,
    pub link: Opt<Link>,
    pub link_text: Opt<Line<100>>,
    /// Default `_self`.
    pub link_target: Opt<LinkTarget>,
    /// Default `main`.
    #[oai(rename = "type")]
    pub kind: Opt<BannerType>,
    /// Default: after the last banner of its type.
    #[oai(validator(minimum(value = "0"), maximum(value = "100000")))]
    pub position: Opt<i32>,
    pub badge: Opt<Line<50>>,
    pub badge_color: Opt<Line<50>>,
    pub is_active: Opt<bool>,
    pub starts_at: Opt<chrono::DateTime<chrono::Utc>>,
    pub ends_at: Opt<chrono::DateTime<chrono::Utc>>,
}

impl poem_openapi::types::Example for BannerInput {
    fn example() -> Self {
        Self {
            title: Line("Try FigMe".into()),
            description: Opt(Some(Prose("Your photo as a collectible figure".into()))),
            thumbnail: Opt(None),
            link: Opt(Some(Link("/tools/figme".into()))),
            link_text: Opt(Some(Line("Try it".into()))),
            link_target: Opt(Some(LinkTarget::SameTab)),
            kind: Opt(Some(BannerType::Main)),
            position: Opt(None),
            badge: Opt(Some(Line("New".into()))),
            badge_color: Opt(None),
            is_active: Opt(Some(true)),
            starts_at: Opt(None),
            ends_at: Opt(None),
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct BannerReorder {
    #[oai(rename = "type")]
    pub kind: BannerType,
    /// Every banner of that type, in the new order.
    pub ids: Vec<Uuid>,
}

#[derive(ApiResponse)]
pub enum BannerCreated {
    #[oai(status = 201)]
    Created(Json<Banner>),
}

async fn to_api(state: &AppState, b: BannerRow) -> Banner {
    let thumbnail_url = banners::thumbnail_url(state, &b).await;
    Banner {
        id: b.id,
        title: b.title,
        description: b.description,
        thumbnail: b.thumbnail,
        thumbnail_url,
        link: b.link,
        link_text: b.link_text,
        link_target: b.link_target,
        kind: b.kind,
        position: b.position,
        badge: b.badge,
        badge_color: b.badge_color,
        is_active: b.is_active,
        starts_at: b.starts_at,
        ends_at: b.ends_at,
        created_at: b.created_at,
        updated_at: b.updated_at,
    }
}

async fn to_list(state: &AppState, rows: Vec<BannerRow>) -> Json<BannerList> {
    let mut banners = Vec::with_capacity(rows.len());
    for row in rows {
        banners.push(to_api(state, row).await);
    }
    Json(BannerList { banners })
}

impl From<&BannerInput> for BannerFields {
    fn from(i: &BannerInput) -> Self {
        BannerFields {
            title: i.title.to_string(),
            description: i.description.to_owned_string(),
            thumbnail: i.thumbnail.to_owned_string(),
            link: i.link.to_owned_string(),
            link_text: i.link_text.to_owned_string(),
            link_target: i.link_target.get(),
            kind: i.kind.get(),
            position: i.position.get(),
            badge: i.badge.to_owned_string(),
            badge_color: i.badge_color.to_owned_string(),
            is_active: i.is_active.get(),
            starts_at: i.starts_at.get(),
            ends_at: i.ends_at.get(),
        }
    }
}

pub struct BannersApi;

#[OpenApi(tag = "ApiTags::Content")]
impl BannersApi {
    /// The banners to show now: active, inside their window, by position.
    #[oai(path = "/api/banners", method = "get", operation_id = "banner_list")]
    async fn list(
        &self,
        state: Data<&AppState>,
        #[oai(name = "type")] kind: Query<Option<BannerType>>,
    ) -> Result<Json<BannerList>> {
        let kind = kind.0.unwrap_or(BannerType::Main);
        Ok(to_list(&state, banners::list_live(&state, kind).await?).await)
    }
}

pub struct AdminBannersApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminBannersApi {
    /// Every banner, live or not, by type and position.
    #[oai(path = "/api/admin/banners", method = "get", operation_id = "admin_banner_list")]
    async fn list(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<BannerList>> {
        Ok(to_list(&state, banners::list_all(&state, &principal).await?).await)
    }

    #[oai(path = "/api/admin/banners", method = "post", operation_id = "admin_banner_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<BannerInput>,
    ) -> Result<BannerCreated> {
        let saved = banners::create(&state, &principal, &BannerFields::from(&*body)).await?;
        Ok(BannerCreated::Created(Json(to_api(&state, saved).await)))
    }

    /// Replaces a banner.
    #[oai(path = "/api/admin/banners/:id", method = "put", operation_id = "admin_banner_update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        body: Json<BannerInput>,
    ) -> Result<Json<Banner>> {
        let saved = banners::replace(&state, &principal, id.0, &BannerFields::from(&*body)).await?;
        Ok(Json(to_api(&state, saved).await))
    }

    #[oai(path = "/api/admin/banners/:id", method = "delete", operation_id = "admin_banner_delete")]
    async fn delete(&self, state: Data<&AppState>, Caller(principal): Caller, id: Path<Uuid>) -> Result<Json<Success>> {
        banners::delete(&state, &principal, id.0).await?;
        Ok(Success::ok())
    }

    /// Puts one type's banners in the given order (every id of that type, once).
    #[oai(path = "/api/admin/banners/reorder", method = "post", operation_id = "admin_banner_reorder")]
    async fn reorder(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<BannerReorder>,
    ) -> Result<Json<BannerList>> {
        let rows = banners::reorder(&state, &principal, body.kind, &body.ids).await?;
        Ok(to_list(&state, rows).await)
    }
}
