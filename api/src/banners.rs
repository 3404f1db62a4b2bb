//! Banners (the seed's content domain), the app layer: the live list anyone sees (active,
//! inside their `startsAt`/`endsAt` window, by position) and the admin's create, replace,
//! delete and reorder, with their checks. A thumbnail is an http(s) URL or the key of an
//! upload in the admin bucket, served through an expiring download URL.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Access, Principal};
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::storage::Bucket;
use crate::store::{BannerRow, BannerType, LinkTarget, StoreError};

/// A banner as an admin writes it (create or replace); `None` takes the default or, on a
/// replace, what the banner had where that makes sense (type, position).
#[derive(Debug, Clone, Default)]
pub struct BannerFields {
    pub title: String,
    pub description: Option<String>,
    pub thumbnail: Option<String>,
    pub link: Option<String>,
    pub link_text: Option<String>,
    /// `_self` (default) or `_blank`.
    pub link_target: Option<LinkTarget>,
    /// `main` (default) or `side`.
    pub kind: Option<BannerType>,
    /// Default: after the last banner of its type.
    pub position: Option<i32>,
    pub badge: Option<String>,
    pub badge_color: Option<String>,
    pub is_active: Option<bool>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
}

/// What anyone sees now: active banners of `kind` inside their window, by position.
pub async fn list_live(state: &AppState, kind: BannerType) -> AppResult<Vec<BannerRow>> {
    Ok(state.store().banner_list(Some(kind), Some(crate::store::now())).await?)
}

/// Every banner, live or not (admins).
pub async fn list_all(state: &AppState, principal: &Principal) -> AppResult<Vec<BannerRow>> {
    principal.require(Access::Admin)?;
    Ok(state.store().banner_list(None, None).await?)
}

pub async fn create(state: &AppState, principal: &Principal, fields: &BannerFields) -> AppResult<BannerRow> {
    principal.require(Access::Admin)?;
    let row = build_row(state, Uuid::now_v7(), fields, None).await?;
    Ok(state.store().banner_upsert(&row).await?)
}

/// Replaces banner `id`.
pub async fn replace(state: &AppState, principal: &Principal, id: Uuid, fields: &BannerFields) -> AppResult<BannerRow> {
    principal.require(Access::Admin)?;
    let existing = state.store().banner_get(id).await?.ok_or_else(|| AppError::not_found("banner"))?;
    let row = build_row(state, id, fields, Some(&existing)).await?;
    Ok(state.store().banner_upsert(&row).await?)
}

pub async fn delete(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<()> {
    principal.require(Access::Admin)?;
    if state.store().banner_delete(id).await? { Ok(()) } else { Err(AppError::not_found("banner")) }
}

/// Puts one type's banners in the order of `ids` (every id of that type, once); returns
/// them in their new order.
pub async fn reorder(
    state: &AppState,
    principal: &Principal,
    kind: BannerType,
    ids: &[Uuid],
) -> AppResult<Vec<BannerRow>> {
    principal.require(Access::Admin)?;
    let current: Vec<Uuid> = state.store().banner_list(Some(kind), None).await?.iter().map(|b| b.id).collect();
    let mut given = ids.to_vec();
    given.sort();
    given.dedup();
    let mut expected = current.clone();
    expected.sort();
    if given.len() != ids.len() || given != expected {
        return Err(AppError::validation(format!(
            "ids must list every {kind} banner exactly once ({} of them)",
            current.len()
        )));
    }
    state.store().banner_reorder(kind, ids).await.map_err(|e| match e {
        StoreError::NotFound => AppError::not_found("banner"),
        other => other.into(),
    })?;
    Ok(state.store().banner_list(Some(kind), None).await?)
}

/// Where to load a banner's thumbnail from now: the URL itself, or an expiring download
/// URL for an admin-bucket key.
pub async fn thumbnail_url(state: &AppState, row: &BannerRow) -> Option<String> {
    match &row.thumbnail {
        Some(t) if crate::urls::is_http_url(t) => Some(t.clone()),
        Some(key) => crate::assets::admin_file_url(state, key).await,
        None => None,
    }
}

/// Checks an admin's banner and builds its row.
async fn build_row(state: &AppState, id: Uuid, f: &BannerFields, existing: Option<&BannerRow>) -> AppResult<BannerRow> {
    let title = f.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(AppError::validation("title must be 1–200 characters"));
    }
    let kind = f.kind.or_else(|| existing.map(|e| e.kind)).unwrap_or(BannerType::Main);
    let link_target = f.link_target.unwrap_or(LinkTarget::SameTab);
    if let Some(link) = &f.link
        && crate::auth::redirect::safe_link(&state.public_url(), link).is_none()
    {
        // `//host/…`, `/\host` or a path with a tab would leave the site: not a path.
        return Err(AppError::validation(
            "link must be an http(s) URL or a path on this site (one leading /, no spaces, control characters or backslashes)",
        ));
    }
    if f.position.is_some_and(|p| !(0..=100_000).contains(&p)) {
        return Err(AppError::validation("position must be 0–100000"));
    }
    if let (Some(s), Some(e)) = (f.starts_at, f.ends_at)
        && s >= e
    {
        return Err(AppError::validation("startsAt must be before endsAt"));
    }
    if let Some(thumb) = &f.thumbnail
        && !crate::urls::is_http_url(thumb)
    {
        let bucket = state.storage().bucket_name(Bucket::Admin);
        if state.store().asset_get_by_key(&bucket, thumb).await?.is_none() {
            return Err(AppError::new(
                ErrorKind::Validation,
                ErrorCode::UnknownThumbnail,
                "thumbnail must be an http(s) URL or the key of an admin-bucket upload",
            ));
        }
    }
    let position = match (f.position, existing) {
        (Some(p), _) => p,
        (None, Some(e)) if e.kind == kind => e.position,
        (None, _) => {
            state.store().banner_list(Some(kind), None).await?.iter().map(|b| b.position + 1).max().unwrap_or(0)
        }
    };
    let now = crate::store::now();
    Ok(BannerRow {
        id,
        title: title.to_string(),
        description: f.description.clone(),
        thumbnail: f.thumbnail.clone(),
        link: f.link.clone(),
        link_text: f.link_text.clone(),
        link_target,
        kind,
        position,
        badge: f.badge.clone(),
        badge_color: f.badge_color.clone(),
        is_active: f.is_active.unwrap_or(true),
        starts_at: f.starts_at,
        ends_at: f.ends_at,
        created_at: existing.map(|e| e.created_at).unwrap_or(now),
        updated_at: now,
    })
}
