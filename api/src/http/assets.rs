//! `/api/uploads/*` and `/api/assets/*`: presigned uploads, their completion, the caller's
//! assets; and the admin variants (admin bucket, any user's assets).

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use super::error::ErrorResponse;
use super::models::Success;
use super::security::Caller;
use super::text::{FileName, Module, Opt, StorageKey, UploadContentType};
use crate::app::AppState;
use crate::assets::{self, UploadRequest};
use crate::auth::Principal;
use crate::storage::Bucket;
use crate::store::AssetRow;

type Result<T> = std::result::Result<T, ErrorResponse>;

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, example)]
pub struct PresignUploadRequest {
    /// The original file name (sanitized by the server).
    pub filename: FileName,
    /// The file's media type; others are refused with 415.
    pub content_type: UploadContentType,
    /// Exact size in bytes (at most 10^15; the per-type limits and the quota are settings: 413
    /// above them).
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000000")))]
    pub size: u64,
    /// Namespace, e.g. `uploads`, `image-gen` (a-z, 0-9, -).
    pub module: Opt<Module>,
}

impl poem_openapi::types::Example for PresignUploadRequest {
    fn example() -> Self {
        Self {
            filename: FileName("photo.png".into()),
            content_type: UploadContentType("image/png".into()),
            size: 48_213,
            module: Opt(Some(Module("uploads".into()))),
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AdminPresignUploadRequest {
    pub filename: FileName,
    pub content_type: UploadContentType,
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000000000000")))]
    pub size: u64,
    /// A key of your choosing in the admin bucket (default: generated).
    pub key: Opt<StorageKey>,
}

/// Send the file with `method` to `uploadUrl`, with exactly these `headers`, then call
/// complete with `storageKey`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct PresignedUpload {
    pub upload_url: String,
    pub method: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub storage_key: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct CompleteUploadRequest {
    pub storage_key: StorageKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "kebab-case")]
pub enum Visibility {
    Public,
    Private,
    AdminPrivate,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct Asset {
    pub id: Uuid,
    pub user_id: Uuid,
    pub module: String,
    pub filename: Option<String>,
    pub mime_type: String,
    pub size: i64,
    pub visibility: Visibility,
    pub storage_key: String,
    /// The task that produced it, for outputs.
    pub task_id: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Where to download it: permanent for public assets, presigned otherwise.
    pub download_url: Option<String>,
    /// When `downloadUrl` stops working (absent for public assets).
    pub download_url_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Images: a small preview (PNG, at most 256 px a side), an expiring URL like
    /// `downloadUrl`'s.
    pub thumbnail_url: Option<String>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct AssetList {
    pub assets: Vec<Asset>,
    pub next_cursor: Option<Uuid>,
}

/// An asset with its download URL (and thumbnail URL, for images).
async fn to_api(state: &AppState, row: AssetRow) -> Result<Asset> {
    let (url, download_url_expires_at) = assets::download_url(state, &row).await?;
    let download_url = Some(url);
    let thumbnail_url = assets::thumbnail_url(state, &row).await;
    let visibility = match Bucket::from_visibility(&row.visibility) {
        Some(Bucket::Public) => Visibility::Public,
        Some(Bucket::Admin) => Visibility::AdminPrivate,
        _ => Visibility::Private,
    };
    Ok(Asset {
        id: row.id,
        user_id: row.user_id,
        module: row.module,
        filename: row.filename,
        mime_type: row.mime_type,
        size: row.size,
        visibility,
        storage_key: row.storage_key,
        task_id: row.task_id,
        created_at: row.created_at,
        download_url,
        download_url_expires_at,
        thumbnail_url,
    })
}

fn presigned(p: assets::PresignedUpload) -> PresignedUpload {
    PresignedUpload {
        upload_url: p.presigned.url,
        method: p.presigned.method.into(),
        headers: p.presigned.headers.into_iter().collect(),
        storage_key: p.storage_key,
        expires_at: p.presigned.expires_at,
    }
}

async fn list(
    state: &AppState,
    principal: &Principal,
    owner: Option<Uuid>,
    module: Option<&str>,
    cursor: Option<Uuid>,
    limit: Option<u32>,
) -> Result<Json<AssetList>> {
    let limit = super::models::page_limit(limit);
    let mut rows = assets::list(state, principal, owner, module, cursor, limit + 1).await?;
    let next_cursor = super::models::next_page(&mut rows, limit, |r| r.id);
    let mut out = Vec::with_capacity(rows.len());
    // Each item with its URLs: a gallery needs this one call.
    for row in rows {
        out.push(to_api(state, row).await?);
    }
    Ok(Json(AssetList { assets: out, next_cursor }))
}

pub struct AssetsApi;

#[OpenApi(tag = "ApiTags::Assets")]
impl AssetsApi {
    /// Reserves a storage key and returns a URL to upload the file to directly.
    #[oai(path = "/api/uploads/presign", method = "post", operation_id = "upload_presign")]
    async fn presign(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<PresignUploadRequest>,
    ) -> Result<Json<PresignedUpload>> {
        let body = body.0;
        let request = UploadRequest {
            filename: body.filename.into_string(),
            content_type: body.content_type.into_string(),
            size: body.size,
            module: body.module.to_owned_string().unwrap_or_else(|| "uploads".into()),
            key: None,
        };
        Ok(Json(presigned(assets::presign_upload(&state, &principal, request, Bucket::Private).await?)))
    }

    /// Checks the uploaded file (present, announced size, real type) and records the asset.
    #[oai(path = "/api/uploads/complete", method = "post", operation_id = "upload_complete")]
    async fn complete(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<CompleteUploadRequest>,
    ) -> Result<Json<Asset>> {
        let row = assets::complete_upload(&state, &principal, &body.storage_key, Bucket::Private).await?;
        to_api(&state, row).await.map(Json)
    }

    /// The caller's assets, newest first, each with its download URL and (images) a
    /// thumbnail URL.
    #[oai(path = "/api/assets", method = "get", operation_id = "asset_list")]
    async fn asset_list(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        module: Query<Option<Module>>,
        cursor: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> Result<Json<AssetList>> {
        list(&state, &principal, None, module.0.as_deref(), cursor.0, limit.0).await
    }

    /// One asset, with a download URL.
    #[oai(path = "/api/assets/:id", method = "get", operation_id = "asset_get")]
    async fn asset_get(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Asset>> {
        let row = assets::asset_for(&state, &principal, id.0).await?;
        to_api(&state, row).await.map(Json)
    }

    /// Deletes an asset and its file.
    #[oai(path = "/api/assets/:id", method = "delete", operation_id = "asset_delete")]
    async fn asset_delete(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Success>> {
        assets::delete(&state, &principal, id.0).await?;
        Ok(Success::ok())
    }

    /// Moves an asset to the public bucket; its `downloadUrl` becomes permanent (CDN).
    #[oai(path = "/api/assets/:id/publish", method = "post", operation_id = "asset_publish")]
    async fn asset_publish(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Asset>> {
        let row = assets::publish(&state, &principal, id.0).await?;
        to_api(&state, row).await.map(Json)
    }

    /// Moves a published asset back to private storage.
    #[oai(path = "/api/assets/:id/unpublish", method = "post", operation_id = "asset_unpublish")]
    async fn asset_unpublish(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
    ) -> Result<Json<Asset>> {
        let row = assets::unpublish(&state, &principal, id.0).await?;
        to_api(&state, row).await.map(Json)
    }
}

/// Admin storage routes.
pub struct AdminAssetsApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminAssetsApi {
    /// Presigns an upload to the admin bucket (banners, style previews).
    #[oai(path = "/api/admin/uploads/presign", method = "post", operation_id = "admin_upload_presign")]
    async fn presign(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<AdminPresignUploadRequest>,
    ) -> Result<Json<PresignedUpload>> {
        let body = body.0;
        let request = UploadRequest {
            filename: body.filename.into_string(),
            content_type: body.content_type.into_string(),
            size: body.size,
            module: "admin".into(),
            key: body.key.to_owned_string(),
        };
        Ok(Json(presigned(assets::presign_upload(&state, &principal, request, Bucket::Admin).await?)))
    }

    /// Completes an admin-bucket upload.
    #[oai(path = "/api/admin/uploads/complete", method = "post", operation_id = "admin_upload_complete")]
    async fn complete(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        body: Json<CompleteUploadRequest>,
    ) -> Result<Json<Asset>> {
        let row = assets::complete_upload(&state, &principal, &body.storage_key, Bucket::Admin).await?;
        to_api(&state, row).await.map(Json)
    }

    /// Any user's assets.
    #[allow(clippy::too_many_arguments, reason = "one parameter per query argument of the operation")]
    #[oai(path = "/api/admin/users/:id/assets", method = "get", operation_id = "admin_user_asset_list")]
    async fn user_assets(
        &self,
        state: Data<&AppState>,
        Caller(principal): Caller,
        id: Path<Uuid>,
        module: Query<Option<Module>>,
        cursor: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<u32>>,
    ) -> Result<Json<AssetList>> {
        list(&state, &principal, Some(id.0), module.0.as_deref(), cursor.0, limit.0).await
    }
}
