//! Uploads and downloads, streamed: files are never held in memory whole.
//!
//! `upload_file` asks the API for a presigned URL, streams the file to storage (S3 or the
//! server's own file store) reporting progress, and completes the upload; `download_asset`
//! streams an asset to a temporary file next to the destination and renames it when
//! complete, so an interrupted download never leaves a truncated file behind.

use std::path::{Path, PathBuf};

use futures::StreamExt;

use crate::{Client, types};

/// Upload and download failures.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the API refused: {0}")]
    Api(#[from] crate::Error<types::ApiError>),
    #[error("storage answered HTTP {status}: {body}")]
    Storage { status: u16, body: String },
    #[error("transfer failed: {0}")]
    Transfer(#[from] reqwest::Error),
    #[error("cannot tell the file type of {0}; name it .png, .jpg, .webp, .glb, .ply or .obj")]
    UnknownType(PathBuf),
    #[error("{0} is empty: there is nothing to upload")]
    Empty(PathBuf),
    #[error("{0}")]
    Invalid(String),
}

/// The content type we announce for a file name.
pub fn content_type_for(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "glb" => "model/gltf-binary",
        "ply" => "application/ply",
        "obj" => "model/obj",
        _ => return None,
    })
}

/// Storage URLs are not the API: they carry their own signature and must not get the
/// API's `Authorization` header.
fn storage_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .read_timeout(std::time::Duration::from_secs(120))
        .build()
}

/// Uploads `path` into `module`; `progress(sent, total)` is called as bytes go out.
pub async fn upload_file(
    client: &Client,
    path: &Path,
    module: Option<&str>,
    progress: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<types::Asset, FileError> {
    upload(client, path, Target::User(module), progress).await
}

/// Uploads `path` into the admin bucket (banner thumbnails, style previews) under `key`
/// (default: generated); admins only.
pub async fn upload_admin_file(
    client: &Client,
    path: &Path,
    key: Option<&str>,
    progress: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<types::Asset, FileError> {
    upload(client, path, Target::Admin(key), progress).await
}

enum Target<'a> {
    User(Option<&'a str>),
    Admin(Option<&'a str>),
}

async fn upload(
    client: &Client,
    path: &Path,
    target: Target<'_>,
    progress: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<types::Asset, FileError> {
    let content_type = content_type_for(path).ok_or_else(|| FileError::UnknownType(path.to_path_buf()))?;
    let file = tokio::fs::File::open(path).await?;
    let size = std::num::NonZeroU64::new(file.metadata().await?.len()).ok_or_else(|| FileError::Empty(path.into()))?;
    // The server cleans the name further; the spec allows 255 characters, no control ones.
    let filename: String = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file")
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .take(255)
        .collect();
    let filename: types::FileName = filename.parse().map_err(|e| FileError::Invalid(format!("file name: {e}")))?;
    let content_type: types::UploadContentType =
        content_type.parse().map_err(|e| FileError::Invalid(format!("content type: {e}")))?;
    let presigned = match target {
        Target::User(module) => {
            let module = module
                .map(|m| m.parse::<types::Module>())
                .transpose()
                .map_err(|_| FileError::Invalid("module: use 1 to 32 characters of a-z, 0-9 and -".into()))?;
            let request = types::PresignUploadRequest { filename, content_type, size, module };
            client.upload_presign(&request).await?.into_inner()
        }
        Target::Admin(key) => {
            let key = key
                .map(|k| k.parse::<types::StorageKey>())
                .transpose()
                .map_err(|_| FileError::Invalid("key: use a-z, A-Z, 0-9, '.', '_', '-' and '/' segments".into()))?;
            let request = types::AdminPresignUploadRequest { filename, content_type, size, key };
            client.admin_upload_presign(&request).await?.into_inner()
        }
    };
    let admin = matches!(target, Target::Admin(_));
    let mut sent = 0u64;
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024).map(move |chunk| {
        if let Ok(bytes) = &chunk {
            sent += bytes.len() as u64;
            progress(sent, size.get());
        }
        chunk
    });
    let method = reqwest::Method::from_bytes(presigned.method.as_bytes()).unwrap_or(reqwest::Method::PUT);
    let mut put = storage_client()?.request(method, &presigned.upload_url).body(reqwest::Body::wrap_stream(stream));
    for (name, value) in &presigned.headers {
        put = put.header(name, value);
    }
    let response = put.send().await?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default().chars().take(500).collect();
        return Err(FileError::Storage { status, body });
    }
    let storage_key =
        presigned.storage_key.parse().map_err(|e| FileError::Invalid(format!("the server's storage key: {e}")))?;
    let complete = types::CompleteUploadRequest { storage_key };
    let asset = if admin {
        client.admin_upload_complete(&complete).await?.into_inner()
    } else {
        client.upload_complete(&complete).await?.into_inner()
    };
    Ok(asset)
}

/// Downloads an asset to `dest`; `progress(received, total)` as bytes arrive.
pub async fn download_asset(
    client: &Client,
    asset_id: &uuid::Uuid,
    dest: &Path,
    progress: impl Fn(u64, Option<u64>),
) -> Result<types::Asset, FileError> {
    let asset = client.asset_get(asset_id).await?.into_inner();
    let url =
        asset.download_url.clone().ok_or_else(|| FileError::Storage { status: 404, body: "no download URL".into() })?;
    download_url(&url, dest, progress).await?;
    Ok(asset)
}

/// Streams a URL to `dest` through a temporary file renamed into place when complete.
pub async fn download_url(url: &str, dest: &Path, progress: impl Fn(u64, Option<u64>)) -> Result<(), FileError> {
    use tokio::io::AsyncWriteExt;
    let response = storage_client()?.get(url).send().await?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default().chars().take(500).collect();
        return Err(FileError::Storage { status, body });
    }
    let total = response.content_length();
    let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir).await?;
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("download");
    let tmp = dir.join(format!(".{name}.part-{}", uuid::Uuid::new_v4().simple()));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp).await?;
        let mut received = 0u64;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            file.write_all(&chunk).await?;
            received += chunk.len() as u64;
            progress(received, total);
        }
        if total.is_some_and(|t| t != received) {
            return Err(FileError::Storage {
                status: 200,
                body: format!("expected {} bytes, got {received}", total.unwrap_or(0)),
            });
        }
        file.sync_all().await?;
        tokio::fs::rename(&tmp, dest).await?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}
