//! Banners (the seed's content domain): public `GET /api/banners?type=main|side` (active,
//! inside their `startsAt`/`endsAt` window, by position) and admin CRUD + reorder.
//! A thumbnail is an http(s) URL or the key of an upload in the admin bucket, which is
//! served through an expiring download URL.

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
use crate::auth::Access;
use crate::error::AppError;
use crate::storage::Bucket;
use crate::store::{BannerRow, StoreError};

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
    let thumbnail_url = match &b.thumbnail {
        Some(t) if t.starts_with("https://") || t.starts_with("http://") => Some(t.clone()),
        Some(key) => {
            let ttl = std::time::Duration::from_secs(state.settings().storage.download_url_ttl_secs);
            state.storage().presign_get(&state.public_url(), Bucket::Admin, key, None, ttl).await.ok().map(|p| p.url)
        }
        None => None,
    };
    Banner {
        id: b.id,
        title: b.title,
        description: b.description,
        thumbnail: b.thumbnail,
        thumbnail_url,
        link: b.link,
        link_text: b.link_text,
        link_target: LinkTarget::from_store(&b.link_target),
        kind: BannerType::from_store(&b.kind),
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

/// Validates an admin's banner and builds its row.
async fn banner_row(
    state: &AppState,
    id: Uuid,
    input: &BannerInput,
    existing: Option<&BannerRow>,
) -> Result<BannerRow> {
    let title = input.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(AppError::validation("title must be 1–200 characters").into());
    }
    let kind = input
        .kind
        .map(|k| k.as_str().to_string())
        .or_else(|| existing.map(|e| e.kind.clone()))
        .unwrap_or_else(|| BannerType::Main.as_str().into());
    let link_target = input.link_target.unwrap_or(LinkTarget::SameTab).as_str().to_string();
    if !matches!(link_target.as_str(), "_self" | "_blank") {
        return Err(AppError::validation("linkTarget must be _self or _blank").into());
    }
    if let Some(link) = input.link.as_str()
        && crate::auth::redirect::safe_link(&state.public_url(), link).is_none()
    {
        // `//host/…`, `/\host` or a path with a tab would leave the site: not a path.
        return Err(AppError::validation(
            "link must be an http(s) URL or a path on this site (one leading /, no spaces, control characters or backslashes)",
        )
        .into());
    }
    if input.position.is_some_and(|p| !(0..=100_000).contains(&p)) {
        return Err(AppError::validation("position must be 0–100000").into());
    }
    if let (Some(s), Some(e)) = (input.starts_at.get(), input.ends_at.get())
        && s >= e
    {
        return Err(AppError::validation("startsAt must be before endsAt").into());
    }
    if let Some(thumb) = input.thumbnail.as_str()
        && !(thumb.starts_with("https://") || thumb.starts_with("http://"))
    {
        let bucket = state.storage().bucket_name(Bucket::Admin);
        if state.store().asset_get_by_key(&bucket, thumb).await?.is_none() {
            return Err(AppError::new(
                crate::error::ErrorKind::Validation,
                "UNKNOWN_THUMBNAIL",
                "thumbnail must be an http(s) URL or the key of an admin-bucket upload",
            )
            .into());
        }
    }
    let position = match (input.position.get(), existing) {
        (Some(p), _) => p,
        (None, Some(e)) if e.kind == kind => e.position,
        (None, _) => {
            state.store().banner_list(Some(&kind), None).await?.iter().map(|b| b.position + 1).max().unwrap_or(0)
        }
    };
    let now = crate::store::now();
    Ok(BannerRow {
        id,
        title: title.to_string(),
        description: input.description.to_owned_string(),
        thumbnail: input.thumbnail.to_owned_string(),
        link: input.link.to_owned_string(),
        link_text: input.link_text.to_owned_string(),
        link_target,
        kind,
        position,
        badge: input.badge.to_owned_string(),
        badge_color: input.badge_color.to_owned_string(),
        is_active: input.is_active.unwrap_or(true),
        starts_at: input.starts_at.get(),
        ends_at: input.ends_at.get(),
        created_at: existing.map(|e| e.created_at).unwrap_or(now),
        updated_at: now,
    })
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
        let rows = state.store().banner_list(Some(kind.as_str()), Some(crate::store::now())).await?;
        let mut banners = Vec::with_capacity(rows.len());
        for row in rows {
            banners.push(to_api(&state, row).await);
        }
        Ok(Json(BannerList { banners }))
    }
}

pub struct AdminBannersApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminBannersApi {
    /// Every banner, live or not, by type and position.
    #[oai(path = "/api/admin/banners", method = "get", operation_id = "admin_banner_list")]
    async fn list(&self, state: Data<&AppState>, Caller(principal): Caller) -> Result<Json<BannerList>> {
        principal.require(Access::Admin)?;
        let rows = state.store().banner_list(None, None).await?;
        let mut banners = Vec::with_capacity(rows.len());
        for row in rows {
            banners.push(to_api(&state, row).await);
        }
        Ok(Json(BannerList { banners }))
    }

    #[oai(path = "/api/admin/banners", method = "post", operation_id = "admin_banner_create")]
    async fn create(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<BannerInput>,
    ) -> Result<BannerCreated> {
        principal.require(Access::Admin)?;
        let row = banner_row(&state, Uuid::now_v7(), &body, None).await?;
        let saved = state.store().banner_upsert(&row).await?;
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
        principal.require(Access::Admin)?;
        let existing = state.store().banner_get(id.0).await?.ok_or_else(|| AppError::not_found("banner"))?;
        let row = banner_row(&state, id.0, &body, Some(&existing)).await?;
        let saved = state.store().banner_upsert(&row).await?;
        Ok(Json(to_api(&state, saved).await))
    }

    #[oai(path = "/api/admin/banners/:id", method = "delete", operation_id = "admin_banner_delete")]
    async fn delete(&self, state: Data<&AppState>, Caller(principal): Caller, id: Path<Uuid>) -> Result<Json<Success>> {
        principal.require(Access::Admin)?;
        match state.store().banner_delete(id.0).await? {
            true => Ok(Success::ok()),
            false => Err(AppError::not_found("banner").into()),
        }
    }

    /// Puts one type's banners in the given order (every id of that type, once).
    #[oai(path = "/api/admin/banners/reorder", method = "post", operation_id = "admin_banner_reorder")]
    async fn reorder(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<BannerReorder>,
    ) -> Result<Json<BannerList>> {
        principal.require(Access::Admin)?;
        let kind = body.kind.as_str();
        let current: Vec<Uuid> = state.store().banner_list(Some(kind), None).await?.iter().map(|b| b.id).collect();
        let mut given = body.ids.clone();
        given.sort();
        given.dedup();
        let mut expected = current.clone();
        expected.sort();
        if given.len() != body.ids.len() || given != expected {
            return Err(AppError::validation(format!(
                "ids must list every {} banner exactly once ({} of them)",
                body.kind,
                current.len()
            ))
            .into());
        }
        state.store().banner_reorder(kind, &body.ids).await.map_err(|e| match e {
            StoreError::NotFound => ErrorResponse::from(AppError::not_found("banner")),
            other => other.into(),
        })?;
        let rows = state.store().banner_list(Some(kind), None).await?;
        let mut banners = Vec::with_capacity(rows.len());
        for row in rows {
            banners.push(to_api(&state, row).await);
        }
        Ok(Json(BannerList { banners }))
    }
}
