//! The local-disk store of the embedded default: one directory per bucket under
//! `<data_dir>/files`, URLs signed with HMAC-SHA256 and served by the server itself.
//! Writes are atomic (temporary file, then rename); no key can leave the store's root.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use tokio::io::AsyncReadExt;

use crate::clock::Clock;

use super::{Bucket, ObjectMeta, Presigned, StorageError, StorageResult};

#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
    secret: SecretString,
    /// Signed URLs expire by this clock.
    clock: Arc<Clock>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore").field("root", &self.root).finish()
    }
}

/// What a signed URL allows.
#[derive(Debug, Clone, Copy)]
pub enum SignedOp<'a> {
    Get,
    Put { content_type: &'a str, size: u64 },
}

fn io(e: std::io::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

/// Keys are relative paths of safe characters; `..`, absolute paths and empty segments
/// are refused, so a key can never address anything outside its bucket directory.
pub fn validate_key(key: &str) -> StorageResult<()> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && !key.starts_with('/')
        && key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && Path::new(key).components().all(|c| matches!(c, Component::Normal(_)));
    if ok { Ok(()) } else { Err(StorageError::InvalidKey) }
}

impl LocalStore {
    pub fn new(root: PathBuf, secret: SecretString, clock: Arc<Clock>) -> Self {
        Self { root, secret, clock }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bucket_dir(&self, bucket: Bucket) -> PathBuf {
        self.root.join(bucket.local_dir())
    }

    pub fn path(&self, bucket: Bucket, key: &str) -> StorageResult<PathBuf> {
        validate_key(key)?;
        Ok(self.bucket_dir(bucket).join(key))
    }

    /// Read-only health check: each bucket directory exists and is not read-only.
    pub async fn health(&self) -> Result<String, String> {
        for bucket in Bucket::ALL {
            let dir = self.bucket_dir(bucket);
            let meta = tokio::fs::metadata(&dir).await.map_err(|e| format!("{}: {e}", dir.display()))?;
            if !meta.is_dir() || meta.permissions().readonly() {
                return Err(format!("{} is not a writable directory", dir.display()));
            }
        }
        Ok(format!("local files in {}", self.root.display()))
    }

    /// Creates the bucket directories and proves each is writable with a probe file.
    pub async fn check(&self) -> Result<String, String> {
        for bucket in Bucket::ALL {
            let dir = self.bucket_dir(bucket);
            tokio::fs::create_dir_all(&dir).await.map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let probe = dir.join(format!(".probe-{}", uuid::Uuid::new_v4()));
            tokio::fs::write(&probe, b"ok").await.map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
            let _ = tokio::fs::remove_file(&probe).await;
        }
        Ok(format!("local files in {}", self.root.display()))
    }

    fn mac(&self, message: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(super::secret_bytes(&self.secret)).expect("HMAC takes any key");
        mac.update(message.as_bytes());
        mac
    }

    fn message(op: SignedOp<'_>, bucket: Bucket, key: &str, expires: i64) -> String {
        match op {
            SignedOp::Get => format!("GET\n{}\n{key}\n{expires}", bucket.local_dir()),
            SignedOp::Put { content_type, size } => {
                format!("PUT\n{}\n{key}\n{expires}\n{content_type}\n{size}", bucket.local_dir())
            }
        }
    }

    /// A URL under `{base_url}/files/…` that the server accepts until it expires: `ttl` from
    /// `signed_at` (now when `None`).
    pub fn presign(
        &self,
        base_url: &str,
        op: SignedOp<'_>,
        bucket: Bucket,
        key: &str,
        ttl: Duration,
        signed_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> StorageResult<Presigned> {
        validate_key(key)?;
        let expires_at =
            signed_at.unwrap_or_else(|| self.clock.now()) + chrono::Duration::seconds(ttl.as_secs() as i64);
        let expires = expires_at.timestamp();
        let sig = hex::encode(self.mac(&Self::message(op, bucket, key, expires)).finalize().into_bytes());
        let url = format!("{base_url}/files/{}/{key}?expires={expires}&signature={sig}", bucket.local_dir());
        Ok(match op {
            SignedOp::Get => Presigned { url, method: "GET", headers: vec![], expires_at },
            SignedOp::Put { content_type, size } => Presigned {
                url,
                method: "PUT",
                headers: vec![
                    ("Content-Type".into(), content_type.into()),
                    ("Content-Length".into(), size.to_string()),
                ],
                expires_at,
            },
        })
    }

    /// Checks a signature from a `/files/…` request; `Err` says why it is refused.
    pub fn verify(
        &self,
        op: SignedOp<'_>,
        bucket: Bucket,
        key: &str,
        expires: i64,
        signature: &str,
    ) -> Result<(), &'static str> {
        validate_key(key).map_err(|_| "invalid key")?;
        if expires < self.clock.now().timestamp() {
            return Err("the URL has expired");
        }
        let expected = hex::decode(signature).map_err(|_| "malformed signature")?;
        self.mac(&Self::message(op, bucket, key, expires)).verify_slice(&expected).map_err(|_| "bad signature")
    }

    pub async fn head(&self, bucket: Bucket, key: &str) -> StorageResult<Option<ObjectMeta>> {
        match tokio::fs::metadata(self.path(bucket, key)?).await {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta { size: m.len() })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    pub async fn read_prefix(&self, bucket: Bucket, key: &str, len: usize) -> StorageResult<Bytes> {
        let file = tokio::fs::File::open(self.path(bucket, key)?).await.map_err(io)?;
        let mut buf = Vec::with_capacity(len);
        file.take(len as u64).read_to_end(&mut buf).await.map_err(io)?;
        Ok(buf.into())
    }

    pub async fn get(&self, bucket: Bucket, key: &str) -> StorageResult<Bytes> {
        tokio::fs::read(self.path(bucket, key)?).await.map(Bytes::from).map_err(io)
    }

    /// A temporary path next to the final one (same filesystem, so rename is atomic).
    pub fn temp_path(&self, bucket: Bucket, key: &str) -> StorageResult<(PathBuf, PathBuf)> {
        let path = self.path(bucket, key)?;
        let tmp = path.with_file_name(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        Ok((path, tmp))
    }

    pub async fn put(&self, bucket: Bucket, key: &str, data: Bytes) -> StorageResult<()> {
        let (path, tmp) = self.temp_path(bucket, key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        tokio::fs::write(&tmp, &data).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)
    }

    pub async fn copy(&self, from: Bucket, from_key: &str, to: Bucket, to_key: &str) -> StorageResult<()> {
        let source = self.path(from, from_key)?;
        let (path, tmp) = self.temp_path(to, to_key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        tokio::fs::copy(&source, &tmp).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)
    }

    pub async fn rename(&self, bucket: Bucket, from_key: &str, to_key: &str) -> StorageResult<()> {
        let (from, to) = (self.path(bucket, from_key)?, self.path(bucket, to_key)?);
        if let Some(dir) = to.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        tokio::fs::rename(&from, &to).await.map_err(io)
    }

    /// Files directly under the directory `prefix` (which ends in `/`) modified before `before`.
    pub async fn list_older(
        &self,
        bucket: Bucket,
        prefix: &str,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> StorageResult<Vec<String>> {
        let dir = self.path(bucket, prefix.trim_end_matches('/'))?;
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let cutoff = std::time::SystemTime::from(before);
        let mut keys = Vec::new();
        while keys.len() < limit
            && let Some(entry) = entries.next_entry().await.map_err(io)?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata().await else { continue };
            if meta.is_file() && !name.starts_with(".tmp-") && meta.modified().is_ok_and(|m| m < cutoff) {
                keys.push(format!("{}/{name}", prefix.trim_end_matches('/')));
            }
        }
        Ok(keys)
    }

    pub async fn delete(&self, bucket: Bucket, key: &str) -> StorageResult<()> {
        match tokio::fs::remove_file(self.path(bucket, key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "a//b", "a/./b", "a\\b", "a b", "ü", "a/.."] {
            assert!(validate_key(bad).is_err(), "{bad:?} must be refused");
        }
        validate_key("0190/image-gen/1706745600000_output.png").unwrap();
        validate_key("shared/u/a/file.name.png").unwrap();
    }

    #[test]
    fn signatures_bind_every_field() {
        let store = LocalStore::new("/tmp/x".into(), SecretString::from("k".repeat(32)), Default::default());
        let p = store
            .presign(
                "http://h",
                SignedOp::Put { content_type: "image/png", size: 10 },
                Bucket::Private,
                "u/m/f.png",
                Duration::from_secs(60),
                None,
            )
            .unwrap();
        let query: std::collections::HashMap<_, _> =
            p.url.split('?').nth(1).unwrap().split('&').filter_map(|kv| kv.split_once('=')).collect();
        let (exp, sig) = (query["expires"].parse().unwrap(), query["signature"]);
        let put = |ct, size| SignedOp::Put { content_type: ct, size };
        assert!(store.verify(put("image/png", 10), Bucket::Private, "u/m/f.png", exp, sig).is_ok());
        assert!(store.verify(put("image/png", 11), Bucket::Private, "u/m/f.png", exp, sig).is_err());
        assert!(store.verify(put("image/jpeg", 10), Bucket::Private, "u/m/f.png", exp, sig).is_err());
        assert!(store.verify(put("image/png", 10), Bucket::Admin, "u/m/f.png", exp, sig).is_err());
        assert!(store.verify(put("image/png", 10), Bucket::Private, "u/m/g.png", exp, sig).is_err());
        assert!(store.verify(put("image/png", 10), Bucket::Private, "u/m/f.png", exp + 1, sig).is_err());
        assert!(store.verify(SignedOp::Get, Bucket::Private, "u/m/f.png", exp, sig).is_err());
        assert!(store.verify(put("image/png", 10), Bucket::Private, "u/m/f.png", 1, sig).is_err(), "expired");
    }
}
