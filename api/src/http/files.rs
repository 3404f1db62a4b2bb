//! `/files/{bucket}/{key}`: the local file store's URLs (embedded default). Uploads and
//! private downloads need a valid, unexpired signature from `storage::local`; public files
//! are open and cacheable. With S3 storage these routes answer 404.

use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{Body, Request, Response, handler};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::app::AppState;
use crate::assets::FileType;
use crate::error::{ErrorCode, ErrorKind};
use crate::storage::{Bucket, ObjectStore, SignedOp};

#[derive(Debug, Deserialize)]
pub struct Signature {
    expires: Option<i64>,
    signature: Option<String>,
}

fn refuse(kind: ErrorKind, code: ErrorCode, message: &str) -> Response {
    super::error::error_response(kind, code, message)
}

fn local(state: &AppState) -> Option<&crate::storage::LocalStore> {
    match state.storage() {
        ObjectStore::Local(l) => Some(l),
        ObjectStore::S3(_) => None,
    }
}

/// `PUT /files/{bucket}/{key}?expires=…&signature=…`: streams the body to a temporary file
/// (never more than the signed length) and links it into place — once, and only while the
/// key's upload is pending.
#[handler]
pub async fn put(
    state: Data<&AppState>,
    req: &Request,
    Path((bucket, key)): Path<(String, String)>,
    Query(sig): Query<Signature>,
    body: Body,
) -> Response {
    let (Some(store), Some(bucket)) = (local(&state), Bucket::from_local_dir(&bucket)) else {
        return refuse(ErrorKind::NotFound, ErrorCode::NotFound, "no such file route");
    };
    let content_type = req.content_type().unwrap_or("").to_string();
    let Some(size) = req.header("content-length").and_then(|v| v.parse::<u64>().ok()) else {
        return refuse(ErrorKind::LengthRequired, ErrorCode::LengthRequired, "Content-Length is required");
    };
    let op = SignedOp::Put { content_type: &content_type, size };
    if let Err(why) = store.verify(op, bucket, &key, sig.expires.unwrap_or(0), sig.signature.as_deref().unwrap_or("")) {
        return refuse(ErrorKind::Forbidden, ErrorCode::InvalidSignature, why);
    }
    // A URL writes only while its upload is pending (not completed, expired or swept), and
    // only once: a checked file can never be replaced through it.
    match state.store().pending_upload_by_upload_key(&state.storage().bucket_name(bucket), &key).await {
        Ok(Some(p)) if p.expires_at > state.clock().now() => {}
        Ok(_) => {
            return refuse(
                ErrorKind::Forbidden,
                ErrorCode::UploadClosed,
                "this upload URL is no longer accepting data: its upload was completed, cancelled or expired",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "looking up a pending upload failed");
            return refuse(ErrorKind::Unavailable, ErrorCode::Unavailable, "try again shortly");
        }
    }
    let Ok((path, tmp)) = store.temp_path(bucket, &key) else {
        return refuse(ErrorKind::BadRequest, ErrorCode::InvalidKey, "invalid key");
    };
    match write_limited(body, &path, &tmp, size).await {
        Ok(()) => Response::builder().status(StatusCode::OK).finish(),
        Err(WriteError::Exists) => refuse(
            ErrorKind::Conflict,
            ErrorCode::AlreadyUploaded,
            "this upload URL was already used; request a new one",
        ),
        Err(WriteError::TooLong) => {
            refuse(ErrorKind::PayloadTooLarge, ErrorCode::SizeMismatch, "more bytes than signed for")
        }
        Err(WriteError::TooShort) => {
            refuse(ErrorKind::BadRequest, ErrorCode::SizeMismatch, "fewer bytes than signed for")
        }
        Err(WriteError::Io(e)) => {
            tracing::error!(error = %e, "writing an upload failed");
            refuse(ErrorKind::Internal, ErrorCode::Internal, "could not store the file")
        }
    }
}

enum WriteError {
    Exists,
    TooLong,
    TooShort,
    Io(std::io::Error),
}

async fn write_limited(body: Body, path: &std::path::Path, tmp: &std::path::Path, size: u64) -> Result<(), WriteError> {
    use futures::StreamExt;
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(WriteError::Io)?;
    }
    let mut file = tokio::fs::File::create(tmp).await.map_err(WriteError::Io)?;
    let mut stream = body.into_bytes_stream();
    let mut written = 0u64;
    let result = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(WriteError::Io)?;
            written += chunk.len() as u64;
            if written > size {
                return Err(WriteError::TooLong);
            }
            file.write_all(&chunk).await.map_err(WriteError::Io)?;
        }
        if written != size {
            return Err(WriteError::TooShort);
        }
        file.sync_all().await.map_err(WriteError::Io)?;
        // A hard link is created only if nothing is there yet: the first complete upload
        // wins, a replay is refused.
        match tokio::fs::hard_link(tmp, path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(WriteError::Exists),
            Err(e) => Err(WriteError::Io(e)),
        }
    }
    .await;
    let _ = tokio::fs::remove_file(tmp).await;
    result
}

/// `GET /files/{bucket}/{key}`: streams the file; signature required except for `public`.
#[handler]
pub async fn get(
    state: Data<&AppState>,
    Path((bucket, key)): Path<(String, String)>,
    Query(sig): Query<Signature>,
) -> Response {
    let (Some(store), Some(bucket)) = (local(&state), Bucket::from_local_dir(&bucket)) else {
        return refuse(ErrorKind::NotFound, ErrorCode::NotFound, "no such file route");
    };
    if bucket != Bucket::Public
        && let Err(why) =
            store.verify(SignedOp::Get, bucket, &key, sig.expires.unwrap_or(0), sig.signature.as_deref().unwrap_or(""))
    {
        return refuse(ErrorKind::Forbidden, ErrorCode::InvalidSignature, why);
    }
    let Ok(path) = store.path(bucket, &key) else {
        return refuse(ErrorKind::BadRequest, ErrorCode::InvalidKey, "invalid key");
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(_) => return refuse(ErrorKind::NotFound, ErrorCode::NotFound, "no such file"),
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let name = key.rsplit('/').next().unwrap_or("file");
    let mime = FileType::from_extension(name).map(FileType::mime).unwrap_or("application/octet-stream");
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .content_type(mime)
        .header("content-length", len.to_string())
        .header("x-content-type-options", "nosniff");
    resp = if bucket == Bucket::Public {
        resp.header("cache-control", crate::storage::PUBLIC_CACHE_CONTROL)
    } else {
        resp.header("cache-control", "private, no-store")
            .header("content-disposition", format!("attachment; filename=\"{name}\""))
    };
    resp.body(Body::from_async_read(file))
}
