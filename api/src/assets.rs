//! Assets: the app layer of uploads and stored files. Keys follow the seed —
//! `{userId}/{module}/{timestamp}_{filename}` in the private bucket,
//! `shared/{userId}/{assetId}/{filename}` once published — and are always made here, never
//! by the client. An upload becomes an asset only after its bytes are checked: present,
//! the declared size, and really of the declared type (magic bytes).

use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::{Access, Principal};
use crate::error::{AppError, AppResult, ErrorCode, ErrorKind};
use crate::storage::{Bucket, ObjectMeta, Presigned, StorageError};
use crate::store::{AssetRow, PendingUploadRow};

pub use crate::storage::FileType;

/// Keeps `[A-Za-z0-9._-]`, replaces the rest with `_`, at most 100 characters, never hidden.
pub fn sanitize_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut clean: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    while clean.starts_with('.') {
        clean.remove(0);
    }
    if clean.chars().count() > 100 {
        let ext = clean.rsplit_once('.').map(|(_, e)| e.chars().take(10).collect::<String>()).unwrap_or_default();
        clean = clean.chars().take(100 - ext.len().min(10) - 1).collect::<String>() + "." + &ext;
    }
    if clean.is_empty() || clean.chars().all(|c| c == '_' || c == '.') { "file".into() } else { clean }
}

pub fn validate_module(module: &str) -> AppResult<()> {
    let ok = !module.is_empty()
        && module.len() <= 32
        && module.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !module.starts_with('-');
    if ok { Ok(()) } else { Err(AppError::validation("module must be 1 to 32 characters of a-z, 0-9 and -")) }
}

/// `{userId}/{module}/{timestamp}_{filename}`.
pub fn private_key(user: Uuid, module: &str, filename: &str) -> String {
    format!("{user}/{module}/{}_{filename}", chrono::Utc::now().timestamp_millis())
}

/// `shared/{userId}/{assetId}/{filename}`.
pub fn public_key(user: Uuid, asset: Uuid, filename: &str) -> String {
    format!("shared/{user}/{asset}/{filename}")
}

fn storage_error(e: StorageError) -> AppError {
    match e {
        StorageError::InvalidKey => AppError::validation("invalid storage key"),
        StorageError::Io(detail) => {
            tracing::error!(%detail, "storage failed");
            AppError::unavailable("storage is unavailable")
        }
    }
}

/// What a client asks to upload.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub module: String,
    /// Admin uploads only: a key of their choosing in the admin bucket.
    pub key: Option<String>,
}

/// An upload URL and the key to complete it with.
#[derive(Debug, Clone)]
pub struct PresignedUpload {
    pub presigned: Presigned,
    pub storage_key: String,
}

/// Checks type, size and quota, records the pending upload and presigns its URL.
pub async fn presign_upload(
    state: &AppState,
    principal: &Principal,
    req: UploadRequest,
    bucket: Bucket,
) -> AppResult<PresignedUpload> {
    principal.require(if bucket == Bucket::Admin { Access::Admin } else { Access::Write })?;
    state
        .limiter()
        .limit_user(&state.settings().limits, crate::auth::ratelimit::UserAction::Presign, principal.user_id())
        .await?;
    let file_type = FileType::from_mime(&req.content_type).ok_or_else(|| {
        AppError::new(
            ErrorKind::UnsupportedMediaType,
            ErrorCode::UnsupportedMediaType,
            format!("'{}' is not accepted; use PNG, JPEG or WebP images, or GLB, PLY or OBJ models", req.content_type),
        )
    })?;
    validate_module(&req.module)?;
    let limits = &state.settings().storage;
    let max = if file_type.is_image() { limits.max_image_bytes } else { limits.max_model_bytes };
    if req.size == 0 {
        return Err(AppError::validation("size must be at least 1 byte"));
    }
    if req.size > max {
        return Err(AppError::new(
            ErrorKind::PayloadTooLarge,
            ErrorCode::FileTooLarge,
            format!("this file type may be at most {max} bytes"),
        )
        .with_details(serde_json::json!({ "size": req.size, "max": max })));
    }
    let mut filename = sanitize_filename(&req.filename);
    if FileType::from_extension(&filename) != Some(file_type) {
        filename = format!("{}.{}", filename.trim_end_matches('.'), file_type.extension());
    }
    let key = match (&req.key, bucket) {
        (Some(key), Bucket::Admin) => {
            crate::storage::local_key_check(key)
                .map_err(|_| AppError::validation("invalid key: use a-z, 0-9, '.', '_', '-' and '/'"))?;
            key.clone()
        }
        _ => private_key(principal.user_id(), &req.module, &filename),
    };
    // The URL writes to a one-off key; `complete` moves the checked bytes to `key`, so the
    // URL can never overwrite a checked file (see `INCOMING_PREFIX`).
    let upload_key = format!("{INCOMING_PREFIX}{}", Uuid::new_v4().simple());
    let now = state.clock().now();
    let pending = PendingUploadRow {
        storage_key: key.clone(),
        upload_key: Some(upload_key.clone()),
        bucket: state.storage().bucket_name(bucket),
        user_id: principal.user_id(),
        module: req.module,
        filename,
        content_type: file_type.mime().into(),
        size: req.size as i64,
        visibility: bucket.visibility().into(),
        expires_at: now + chrono::Duration::seconds(limits.pending_upload_ttl_secs as i64),
        created_at: now,
    };
    let quota = (bucket == Bucket::Private).then(|| i64::try_from(limits.quota_bytes).unwrap_or(i64::MAX));
    let reserved = state.store().pending_upload_create(&pending, quota).await.map_err(|e| match e {
        crate::store::StoreError::Conflict(_) => {
            AppError::conflict(ErrorCode::KeyInUse, "an upload to this key is already pending")
        }
        other => other.into(),
    })?;
    if !reserved {
        let used = state.store().storage_usage(principal.user_id()).await? as u64;
        return Err(AppError::new(
            ErrorKind::PayloadTooLarge,
            ErrorCode::QuotaExceeded,
            format!("this upload would exceed your storage quota ({used} of {} bytes used)", limits.quota_bytes),
        )
        .with_details(serde_json::json!({ "used": used, "quota": limits.quota_bytes, "size": req.size })));
    }
    let ttl = Duration::from_secs(limits.upload_url_ttl_secs);
    let presigned = match state
        .storage()
        .presign_put(&state.public_url(), bucket, &upload_key, file_type.mime(), req.size, ttl)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            let _ = state.store().pending_upload_delete(&pending.bucket, &key).await;
            return Err(storage_error(e));
        }
    };
    Ok(PresignedUpload { presigned, storage_key: key })
}

/// Where signed upload URLs write: `incoming/<random>`, one key per presign. Only the
/// server moves bytes from there to an asset's key (after checking them), and the sweeper
/// removes whatever is left there once no pending upload refers to it.
pub const INCOMING_PREFIX: &str = "incoming/";

/// How long past its URL's expiry an incoming object is left alone (clock skew between us
/// and the object store).
pub const INCOMING_GRACE_SECS: i64 = 5;

/// Verifies the uploaded bytes and turns the pending upload into an asset.
pub async fn complete_upload(
    state: &AppState,
    principal: &Principal,
    storage_key: &str,
    bucket: Bucket,
) -> AppResult<AssetRow> {
    principal.require(if bucket == Bucket::Admin { Access::Admin } else { Access::Write })?;
    let bucket_name = state.storage().bucket_name(bucket);
    let pending = state
        .store()
        .pending_upload_get(&bucket_name, storage_key)
        .await?
        .filter(|p| p.user_id == principal.user_id())
        .ok_or_else(|| AppError::not_found("pending upload"))?;
    let upload_key = pending.upload_key.clone().unwrap_or_else(|| storage_key.to_string());
    state.storage().head(bucket, &upload_key).await.map_err(storage_error)?.ok_or_else(|| {
        AppError::conflict(
            ErrorCode::UploadMissing,
            "nothing was uploaded to this key yet; PUT the file to the upload URL first",
        )
    })?;
    // Claim the upload: from here on its URL writes nothing (local files refuse it; on S3
    // a late PUT lands in the incoming key, which the sweeper removes), and a concurrent
    // `complete` answers 409.
    if !state.store().pending_upload_delete(&bucket_name, storage_key).await? {
        return Err(AppError::conflict(ErrorCode::AlreadyCompleted, "this upload was already completed"));
    }
    // Move first, check the moved copy: the bytes checked are the bytes kept, whatever the
    // upload URL receives meanwhile.
    if upload_key != storage_key
        && let Err(e) = state.storage().rename(bucket, &upload_key, storage_key, &pending.content_type).await
    {
        // Storage failed, not the upload: put the claim back so `complete` can be retried
        // instead of the uploaded bytes being left for the sweeper.
        if let Err(restore) = state.store().pending_upload_create(&pending, None).await {
            tracing::warn!(error = %restore, key = storage_key, "could not restore a pending upload");
        }
        return Err(storage_error(e));
    }
    let reject = |code: ErrorCode, kind: ErrorKind, message: String| async move {
        // The bytes are not what was announced: remove them (the pending record is gone).
        let _ = state.storage().delete(bucket, storage_key).await;
        Err(AppError::new(kind, code, message))
    };
    let meta =
        state.storage().head(bucket, storage_key).await.map_err(storage_error)?.unwrap_or(ObjectMeta { size: 0 });
    if meta.size != pending.size as u64 {
        return reject(
            ErrorCode::SizeMismatch,
            ErrorKind::Validation,
            format!("announced {} bytes but {} arrived", pending.size, meta.size),
        )
        .await;
    }
    let head = state.storage().read_prefix(bucket, storage_key, 512).await.map_err(storage_error)?;
    let declared = FileType::from_mime(&pending.content_type);
    let actual = FileType::sniff(&head);
    if actual.is_none() || actual != declared {
        let found = actual.map(FileType::mime).unwrap_or("unknown data");
        return reject(
            ErrorCode::ContentMismatch,
            ErrorKind::UnsupportedMediaType,
            format!("the file was declared {} but contains {found}", pending.content_type),
        )
        .await;
    }
    let now = state.clock().now();
    let asset = AssetRow {
        id: Uuid::now_v7(),
        user_id: principal.user_id(),
        bucket: bucket_name,
        storage_key: storage_key.to_string(),
        visibility: bucket.visibility().into(),
        module: pending.module,
        filename: Some(pending.filename),
        mime_type: pending.content_type,
        size: pending.size,
        task_id: None,
        created_at: now,
        updated_at: now,
        thumbnail_key: None,
    };
    let asset = state.store().asset_create(&asset).await?;
    crate::telemetry::upload_completed(asset.size.max(0) as u64);
    if actual.is_some_and(FileType::is_image) {
        match state.storage().get(bucket, storage_key).await {
            Ok(bytes) => return Ok(with_thumbnail(state, asset, bytes).await),
            Err(e) => tracing::warn!(error = %e, key = storage_key, "no thumbnail: the upload could not be read"),
        }
    }
    Ok(asset)
}

/// The caller's asset (admins: anyone's); otherwise 404.
pub async fn asset_for(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<AssetRow> {
    let asset = state.store().asset_get(id).await?.ok_or_else(|| AppError::not_found("asset"))?;
    if principal.can_see_user(asset.user_id) { Ok(asset) } else { Err(AppError::not_found("asset")) }
}

fn bucket_of(state: &AppState, asset: &AssetRow) -> AppResult<Bucket> {
    state
        .storage()
        .bucket_from_name(&asset.bucket)
        .ok_or_else(|| AppError::internal(format!("asset {} in unknown bucket", asset.id)))
}

/// Where to fetch an asset: its public URL, or a presigned one.
pub async fn download_url(
    state: &AppState,
    asset: &AssetRow,
) -> AppResult<(String, Option<chrono::DateTime<chrono::Utc>>)> {
    let bucket = bucket_of(state, asset)?;
    if bucket == Bucket::Public {
        return Ok((state.storage().public_url(&state.public_url(), &asset.storage_key), None));
    }
    let ttl = Duration::from_secs(state.settings().storage.download_url_ttl_secs);
    let p = state
        .storage()
        .presign_get(&state.public_url(), bucket, &asset.storage_key, asset.filename.as_deref(), ttl)
        .await
        .map_err(storage_error)?;
    Ok((p.url, Some(p.expires_at)))
}

pub async fn delete(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<()> {
    principal.require(Access::Write)?;
    let asset = asset_for(state, principal, id).await?;
    remove(state, &asset).await
}

/// Deletes an asset's object, then its row (a row never points at nothing).
async fn remove(state: &AppState, asset: &AssetRow) -> AppResult<()> {
    let bucket = bucket_of(state, asset)?;
    state.storage().delete(bucket, &asset.storage_key).await.map_err(storage_error)?;
    if let Some(thumb) = &asset.thumbnail_key {
        state.storage().delete(Bucket::Private, thumb).await.map_err(storage_error)?;
    }
    state.store().asset_delete(asset.id).await?;
    Ok(())
}

/// Deletes every file of a user (an account being deleted), in batches; returns how many.
pub(crate) async fn remove_all_of_user(state: &AppState, user_id: Uuid) -> AppResult<usize> {
    let mut removed = 0;
    loop {
        let ids = state.store().asset_ids_of_user(user_id, 200).await?;
        if ids.is_empty() {
            return Ok(removed);
        }
        for id in ids {
            if let Some(asset) = state.store().asset_get(id).await? {
                remove(state, &asset).await?;
                removed += 1;
            }
        }
    }
}

/// Moves an asset to the public bucket (copy, repoint, delete the old object).
pub async fn publish(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<AssetRow> {
    principal.require(Access::Write)?;
    let asset = asset_for(state, principal, id).await?;
    let from = bucket_of(state, &asset)?;
    match from {
        Bucket::Public => return Ok(asset),
        Bucket::Admin => {
            return Err(AppError::conflict(ErrorCode::AdminAsset, "admin assets are served by admins, not published"));
        }
        Bucket::Private => {}
    }
    let filename = asset.filename.clone().unwrap_or_else(|| "file".into());
    let key = public_key(asset.user_id, asset.id, &filename);
    move_asset(state, &asset, from, Bucket::Public, &key).await
}

/// A page of assets, newest first, optionally of one module: the caller's own (`owner`
/// `None`), or (admins) a user's.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    owner: Option<Uuid>,
    module: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<AssetRow>> {
    let user_id = match owner {
        None => principal.user_id(),
        Some(id) => crate::auth::admin_target(state.store(), principal, id).await?,
    };
    Ok(state.store().asset_list(user_id, module, before, limit).await?)
}

/// An expiring download URL of an admin-bucket file (banner thumbnails, style previews).
pub async fn admin_file_url(state: &AppState, key: &str) -> Option<String> {
    let ttl = Duration::from_secs(state.settings().storage.download_url_ttl_secs);
    // The same URL for minutes at a time: the catalogue answers that show it are compared by
    // their bytes (ETag), and a URL that changed every second would defeat every 304.
    let now = state.clock().now();
    state.storage().presign_get_stable(&state.public_url(), Bucket::Admin, key, ttl, now).await.ok().map(|p| p.url)
}

/// An uploaded image of the caller's as a profile picture: published (a picture is seen by
/// others), and its public URL returned.
pub async fn avatar_url(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<String> {
    principal.require(Access::Write)?;
    let asset = asset_for(state, principal, id).await?;
    if asset.user_id != principal.user_id() {
        return Err(AppError::not_found("asset"));
    }
    if !FileType::from_mime(&asset.mime_type).is_some_and(FileType::is_image) {
        return Err(AppError::new(
            ErrorKind::Validation,
            ErrorCode::InvalidImage,
            "a profile picture must be a PNG, JPEG or WebP image",
        ));
    }
    let published = publish(state, principal, id).await?;
    Ok(download_url(state, &published).await?.0)
}

/// Moves a published asset back to the private bucket under a fresh private key.
pub async fn unpublish(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<AssetRow> {
    principal.require(Access::Write)?;
    let asset = asset_for(state, principal, id).await?;
    let from = bucket_of(state, &asset)?;
    if from != Bucket::Public {
        return Ok(asset);
    }
    let filename = asset.filename.clone().unwrap_or_else(|| "file".into());
    let key = private_key(asset.user_id, &asset.module, &filename);
    move_asset(state, &asset, from, Bucket::Private, &key).await
}

async fn move_asset(state: &AppState, asset: &AssetRow, from: Bucket, to: Bucket, key: &str) -> AppResult<AssetRow> {
    state.storage().copy(from, &asset.storage_key, to, key, &asset.mime_type).await.map_err(storage_error)?;
    let moved = state.store().asset_move(asset.id, &state.storage().bucket_name(to), key, to.visibility()).await?;
    if let Err(e) = state.storage().delete(from, &asset.storage_key).await {
        tracing::warn!(error = %e, key = %asset.storage_key, "old copy not deleted");
    }
    Ok(moved)
}

/// Deletes uploads that were never completed, and objects left in the incoming area that no
/// pending upload refers to (an upload URL used after its upload was completed or
/// expired); returns how many pending uploads were removed.
pub async fn sweep_pending_uploads(state: &AppState) -> AppResult<usize> {
    let expired = state.store().pending_uploads_expired(state.clock().now(), 500).await?;
    let mut removed = 0;
    for p in expired {
        let Some(bucket) = state.storage().bucket_from_name(&p.bucket) else { continue };
        let upload_key = p.upload_key.as_deref().unwrap_or(&p.storage_key);
        if state.storage().delete(bucket, upload_key).await.is_ok()
            && state.store().pending_upload_delete(&p.bucket, &p.storage_key).await?
        {
            removed += 1;
        }
    }
    sweep_incoming(state, state.clock().now()).await?;
    Ok(removed)
}

/// Removes objects in the incoming area that no pending upload refers to and that were last
/// written before any upload URL still valid at `now` could have written them: they were
/// completed (moved away), abandoned, or written by a URL used after the fact. Returns how
/// many were removed.
pub async fn sweep_incoming(state: &AppState, now: chrono::DateTime<chrono::Utc>) -> AppResult<usize> {
    let url_ttl = state.settings().storage.upload_url_ttl_secs as i64;
    let cutoff = now - chrono::Duration::seconds(url_ttl + INCOMING_GRACE_SECS);
    let mut removed = 0;
    for bucket in [Bucket::Private, Bucket::Admin] {
        let stale = state.storage().list_older(bucket, INCOMING_PREFIX, cutoff, 1000).await.map_err(storage_error)?;
        let name = state.storage().bucket_name(bucket);
        for key in stale {
            if state.store().pending_upload_by_upload_key(&name, &key).await?.is_none()
                && state.storage().delete(bucket, &key).await.is_ok()
            {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// For workers: an input image given as `imageStorageKey` (the user's own object) or
/// `imageUrl`, as a URL a provider can fetch.
pub async fn resolve_image_url(state: &AppState, user_id: Uuid, input: &serde_json::Value) -> AppResult<String> {
    if let Some(url) = input["imageUrl"].as_str() {
        if !crate::urls::is_http_url(url) {
            return Err(AppError::validation("imageUrl must be an http(s) URL"));
        }
        return Ok(url.to_string());
    }
    let key = input["imageStorageKey"]
        .as_str()
        .ok_or_else(|| AppError::validation("imageStorageKey or imageUrl is required"))?;
    let asset = owned_asset_by_key(state, user_id, key).await?;
    Ok(download_url(state, &asset).await?.0)
}

/// An `imageUrl` input fetched through the SSRF guard (`fetch`) and kept as the user's own
/// upload, with an upload's limits: an image (PNG, JPEG, WebP by its bytes) of at most
/// `storage.max_image_bytes` and 8192 px a side, within the storage quota.
pub async fn import_url(state: &AppState, user_id: Uuid, url: &str) -> AppResult<AssetRow> {
    use crate::fetch::FetchError;
    let limits = &state.settings().storage;
    let (data, final_url) = state.fetcher().fetch(url, limits.max_image_bytes).await.map_err(|e| match e {
        FetchError::Refused(why) => {
            AppError::new(ErrorKind::Validation, ErrorCode::ImageUrlRefused, format!("imageUrl is not fetched: {why}"))
        }
        FetchError::Unreachable(why) => AppError::new(
            ErrorKind::Validation,
            ErrorCode::ImageUrlUnreachable,
            format!("imageUrl could not be downloaded: {why}"),
        ),
        FetchError::TooLarge(max) => AppError::new(
            ErrorKind::PayloadTooLarge,
            ErrorCode::FileTooLarge,
            format!("the image at imageUrl is larger than {max} bytes"),
        ),
    })?;
    let not_image = || {
        AppError::new(
            ErrorKind::Validation,
            ErrorCode::InvalidImage,
            "imageUrl does not point to a PNG, JPEG or WebP image we can read",
        )
    };
    let file_type = FileType::sniff(&data).filter(|t| t.is_image()).ok_or_else(not_image)?;
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(&data[..]))
        .with_guessed_format()
        .ok()
        .and_then(|r| r.into_dimensions().ok())
        .ok_or_else(not_image)?;
    if w.max(h) > MAX_IMAGE_SIDE {
        return Err(AppError::validation(format!(
            "the image at imageUrl is {w}×{h} px; at most {MAX_IMAGE_SIDE} px a side"
        )));
    }
    let used = state.store().storage_usage(user_id).await? as u64;
    if used + data.len() as u64 > limits.quota_bytes {
        return Err(AppError::new(
            ErrorKind::PayloadTooLarge,
            ErrorCode::QuotaExceeded,
            format!("this image would exceed your storage quota ({used} of {} bytes used)", limits.quota_bytes),
        ));
    }
    let name = final_url.path_segments().and_then(|mut s| s.next_back()).filter(|n| !n.is_empty()).unwrap_or("image");
    let mut filename = sanitize_filename(name);
    if FileType::from_extension(&filename) != Some(file_type) {
        filename = format!("{}.{}", filename.trim_end_matches('.'), file_type.extension());
    }
    store_output(state, user_id, None, "uploads", &filename, file_type, data).await
}

/// The largest side of an image we take (as the local provider decodes).
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// For workers: the bytes of the user's own asset under `key`.
pub async fn read_owned(state: &AppState, user_id: Uuid, key: &str) -> AppResult<(AssetRow, Bytes)> {
    let asset = owned_asset_by_key(state, user_id, key).await?;
    let bucket = bucket_of(state, &asset)?;
    let bytes = state.storage().get(bucket, &asset.storage_key).await.map_err(storage_error)?;
    Ok((asset, bytes))
}

async fn owned_asset_by_key(state: &AppState, user_id: Uuid, key: &str) -> AppResult<AssetRow> {
    for bucket in [Bucket::Private, Bucket::Public] {
        if let Some(asset) = state.store().asset_get_by_key(&state.storage().bucket_name(bucket), key).await?
            && asset.user_id == user_id
        {
            return Ok(asset);
        }
    }
    Err(AppError::not_found("input file"))
}

/// For workers: stores an output as an asset of the task's owner.
pub async fn store_output(
    state: &AppState,
    user_id: Uuid,
    task_id: Option<Uuid>,
    module: &str,
    filename: &str,
    file_type: FileType,
    data: Bytes,
) -> AppResult<AssetRow> {
    validate_module(module)?;
    let filename = sanitize_filename(filename);
    let key = private_key(user_id, module, &filename);
    let size = data.len() as i64;
    state.storage().put(Bucket::Private, &key, data.clone(), file_type.mime()).await.map_err(storage_error)?;
    let now = state.clock().now();
    let asset = AssetRow {
        id: Uuid::now_v7(),
        user_id,
        bucket: state.storage().bucket_name(Bucket::Private),
        storage_key: key,
        visibility: Bucket::Private.visibility().into(),
        module: module.into(),
        filename: Some(filename),
        mime_type: file_type.mime().into(),
        size,
        task_id,
        created_at: now,
        updated_at: now,
        thumbnail_key: None,
    };
    let asset = state.store().asset_create(&asset).await?;
    Ok(if file_type.is_image() { with_thumbnail(state, asset, data).await } else { asset })
}

/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 256;

/// Makes an image asset's thumbnail (a PNG of at most [`THUMBNAIL_SIDE`] px a side, under
/// `thumbs/` in the private bucket) and records it; on failure the asset simply has none.
async fn with_thumbnail(state: &AppState, mut asset: AssetRow, bytes: Bytes) -> AssetRow {
    let made = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| e.to_string())?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_IMAGE_SIDE);
        limits.max_image_height = Some(MAX_IMAGE_SIDE);
        limits.max_alloc = Some(300 * 1024 * 1024);
        reader.limits(limits);
        let thumb = reader.decode().map_err(|e| e.to_string())?.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE);
        let mut out = Vec::new();
        thumb.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).map_err(|e| e.to_string())?;
        Ok(out)
    })
    .await;
    let png = match made {
        Ok(Ok(png)) => png,
        Ok(Err(e)) => {
            tracing::info!(asset = %asset.id, error = %e, "no thumbnail: the image could not be read");
            return asset;
        }
        Err(e) => {
            tracing::warn!(asset = %asset.id, error = %e, "thumbnail task failed");
            return asset;
        }
    };
    let key = format!("{THUMBS_PREFIX}{}.png", asset.id);
    let stored = state.storage().put(Bucket::Private, &key, png.into(), "image/png").await;
    match stored {
        Ok(()) => match state.store().asset_set_thumbnail(asset.id, &key).await {
            Ok(()) => asset.thumbnail_key = Some(key),
            Err(e) => tracing::warn!(asset = %asset.id, error = %e, "thumbnail not recorded"),
        },
        Err(e) => tracing::warn!(asset = %asset.id, error = %e, "thumbnail not stored"),
    }
    asset
}

/// Where thumbnails live in the private bucket.
pub const THUMBS_PREFIX: &str = "thumbs/";

/// An expiring URL of an asset's thumbnail, if it has one.
pub async fn thumbnail_url(state: &AppState, asset: &AssetRow) -> Option<String> {
    let key = asset.thumbnail_key.as_deref()?;
    let ttl = Duration::from_secs(state.settings().storage.download_url_ttl_secs);
    state.storage().presign_get(&state.public_url(), Bucket::Private, key, None, ttl).await.ok().map(|p| p.url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_sanitized() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("my photo (1).PNG"), "my_photo__1_.PNG");
        assert_eq!(sanitize_filename(".hidden"), "hidden");
        assert_eq!(sanitize_filename("C:\\Users\\x\\pic.jpg"), "pic.jpg");
        assert_eq!(sanitize_filename("日本.png"), "__.png");
        assert_eq!(sanitize_filename("///"), "file");
        let long = format!("{}.png", "a".repeat(300));
        let clean = sanitize_filename(&long);
        assert!(clean.len() <= 100 && clean.ends_with(".png"), "{clean}");
    }

    #[test]
    fn magic_bytes_identify_types() {
        assert_eq!(FileType::sniff(b"\x89PNG\r\n\x1a\n...."), Some(FileType::Png));
        assert_eq!(FileType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(FileType::Jpeg));
        assert_eq!(FileType::sniff(b"RIFF\x10\x00\x00\x00WEBPVP8 "), Some(FileType::Webp));
        assert_eq!(FileType::sniff(b"glTF\x02\x00\x00\x00"), Some(FileType::Glb));
        assert_eq!(FileType::sniff(b"ply\nformat binary_little_endian 1.0\n"), Some(FileType::Ply));
        assert_eq!(FileType::sniff(b"# cube\nv 0 0 0\nv 1 0 0\nf 1 2 3\n"), Some(FileType::Obj));
        assert_eq!(FileType::sniff(b"\x7fELF\x02\x01\x01"), None, "an executable is nothing we accept");
        assert_eq!(FileType::sniff(b"<html><script>"), None);
        assert_eq!(FileType::from_mime("image/png"), Some(FileType::Png));
        assert_eq!(FileType::from_mime("IMAGE/PNG; charset=binary"), None, "exactly the listed values");
        for t in FileType::ALL {
            assert!(
                <crate::http::text::UploadContentType as crate::http::text::Text>::RULE.values.contains(&t.mime()),
                "{t:?} in the spec"
            );
        }
    }
}
