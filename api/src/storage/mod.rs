//! Object storage: the seed's three buckets (public, private, admin) behind one interface,
//! on local disk in the embedded default or on any S3-compatible store in scale-out mode.
//!
//! Both backends hand out expiring upload and download URLs, so a client runs the same flow
//! against either: the S3 backend presigns with SigV4, the local one with an HMAC over the
//! method, bucket, key, expiry (and, for uploads, content type and length) that the server
//! checks when it serves `/files/…`.

mod file_type;
mod local;
mod s3;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};

pub use self::file_type::FileType;
pub use self::local::{LocalStore, SignedOp};
pub use self::s3::{PUBLIC_CACHE_CONTROL, S3Store};
use crate::config::{ConfigError, Settings};

/// The seed's visibility classes; each maps to one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Public,
    Private,
    Admin,
}

impl Bucket {
    pub const ALL: [Bucket; 3] = [Bucket::Public, Bucket::Private, Bucket::Admin];

    /// The directory name used by the local store and in `/files/{bucket}/…` URLs.
    pub fn local_dir(self) -> &'static str {
        match self {
            Bucket::Public => "public",
            Bucket::Private => "private",
            Bucket::Admin => "admin",
        }
    }

    pub fn from_local_dir(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.local_dir() == s)
    }

    /// `assets.visibility` for objects in this bucket.
    pub fn visibility(self) -> &'static str {
        match self {
            Bucket::Public => "public",
            Bucket::Private => "private",
            Bucket::Admin => "admin-private",
        }
    }

    pub fn from_visibility(v: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.visibility() == v)
    }
}

/// A URL the client uses directly against storage.
#[derive(Debug, Clone)]
pub struct Presigned {
    pub url: String,
    pub method: &'static str,
    /// Headers the request must carry exactly (they are part of the signature).
    pub headers: Vec<(String, String)>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// What storage reports about an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
}

/// Storage failures; the caller decides what the client sees.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid storage key")]
    InvalidKey,
    #[error("storage I/O failed: {0}")]
    Io(String),
}

pub type StorageResult<T> = Result<T, StorageError>;

/// Where files live; cheap to clone.
#[derive(Debug, Clone)]
pub enum ObjectStore {
    Local(LocalStore),
    S3(S3Store),
}

impl ObjectStore {
    /// Opens the store the settings select and checks it is usable (fail fast).
    pub async fn open(settings: &Settings, clock: std::sync::Arc<crate::clock::Clock>) -> Result<Self, ConfigError> {
        let store = match &settings.s3 {
            Some(s3) => ObjectStore::S3(S3Store::new(s3)),
            None => {
                let secret = signing_secret(settings)?;
                ObjectStore::Local(LocalStore::new(files_dir(settings), secret, clock))
            }
        };
        store.check().await.map_err(|problem| match &store {
            ObjectStore::S3(_) => ConfigError::new("S3_ENDPOINT", problem),
            ObjectStore::Local(_) => ConfigError::new("FUNMAGIC_DATA_DIR", problem),
        })?;
        Ok(store)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ObjectStore::Local(_) => "local",
            ObjectStore::S3(_) => "s3",
        }
    }

    /// Human-readable location for logs (never includes credentials).
    pub fn describe(&self) -> String {
        match self {
            ObjectStore::Local(l) => format!("local files in {}", l.root().display()),
            ObjectStore::S3(s) => s.describe(),
        }
    }

    /// The bucket's name as stored in `assets.bucket`.
    pub fn bucket_name(&self, bucket: Bucket) -> String {
        match self {
            ObjectStore::Local(_) => bucket.local_dir().to_string(),
            ObjectStore::S3(s) => s.bucket_name(bucket).to_string(),
        }
    }

    pub fn bucket_from_name(&self, name: &str) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|b| self.bucket_name(*b) == name)
    }

    /// Verifies every bucket is reachable and writable/readable; the error says which is not.
    pub async fn check(&self) -> Result<String, String> {
        match self {
            ObjectStore::Local(l) => l.check().await,
            ObjectStore::S3(s) => s.check().await,
        }
    }

    /// Lets browsers on `origins` upload to and read from the buckets (CORS); the local
    /// store serves the files on the API's own origin and needs nothing.
    pub async fn allow_browser_origins(&self, origins: &[String]) -> StorageResult<()> {
        match self {
            ObjectStore::Local(_) => Ok(()),
            ObjectStore::S3(s) => s.allow_browser_origins(origins).await,
        }
    }

    /// The health check: like [`Self::check`] but read-only (no probe files).
    pub async fn health(&self) -> Result<String, String> {
        match self {
            ObjectStore::Local(l) => l.health().await,
            ObjectStore::S3(s) => s.check().await,
        }
    }

    /// An upload URL for exactly `size` bytes of `content_type`.
    pub async fn presign_put(
        &self,
        base_url: &str,
        bucket: Bucket,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> StorageResult<Presigned> {
        match self {
            ObjectStore::Local(l) => l.presign(base_url, SignedOp::Put { content_type, size }, bucket, key, ttl, None),
            ObjectStore::S3(s) => s.presign_put(bucket, key, content_type, size, ttl).await,
        }
    }

    /// A download URL; `filename` sets the saved name.
    pub async fn presign_get(
        &self,
        base_url: &str,
        bucket: Bucket,
        key: &str,
        filename: Option<&str>,
        ttl: Duration,
    ) -> StorageResult<Presigned> {
        match self {
            ObjectStore::Local(l) => l.presign(base_url, SignedOp::Get, bucket, key, ttl, None),
            ObjectStore::S3(s) => s.presign_get(bucket, key, filename, ttl, None).await,
        }
    }

    /// A download URL that is the same string for a while, for answers that are cached and
    /// compared by their bytes (the catalogue's ETags): signed as of the start of the current
    /// window of a quarter of `ttl` (at most 15 minutes), so it stays valid for at least
    /// three quarters of `ttl` from now.
    pub async fn presign_get_stable(
        &self,
        base_url: &str,
        bucket: Bucket,
        key: &str,
        ttl: Duration,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StorageResult<Presigned> {
        let signed_at = window_start(now, ttl);
        match self {
            ObjectStore::Local(l) => l.presign(base_url, SignedOp::Get, bucket, key, ttl, Some(signed_at)),
            ObjectStore::S3(s) => s.presign_get(bucket, key, None, ttl, Some(signed_at)).await,
        }
    }

    /// The permanent URL of a public object (through `CDN_URL` when set).
    pub fn public_url(&self, base_url: &str, key: &str) -> String {
        match self {
            ObjectStore::Local(_) => format!("{base_url}/files/public/{key}"),
            ObjectStore::S3(s) => s.public_url(key),
        }
    }

    pub async fn head(&self, bucket: Bucket, key: &str) -> StorageResult<Option<ObjectMeta>> {
        match self {
            ObjectStore::Local(l) => l.head(bucket, key).await,
            ObjectStore::S3(s) => s.head(bucket, key).await,
        }
    }

    /// The first `len` bytes (fewer if the object is shorter).
    pub async fn read_prefix(&self, bucket: Bucket, key: &str, len: usize) -> StorageResult<Bytes> {
        match self {
            ObjectStore::Local(l) => l.read_prefix(bucket, key, len).await,
            ObjectStore::S3(s) => s.read_prefix(bucket, key, len).await,
        }
    }

    /// The whole object (workers read inputs this way).
    pub async fn get(&self, bucket: Bucket, key: &str) -> StorageResult<Bytes> {
        match self {
            ObjectStore::Local(l) => l.get(bucket, key).await,
            ObjectStore::S3(s) => s.get(bucket, key).await,
        }
    }

    pub async fn put(&self, bucket: Bucket, key: &str, data: Bytes, content_type: &str) -> StorageResult<()> {
        match self {
            ObjectStore::Local(l) => l.put(bucket, key, data).await,
            ObjectStore::S3(s) => s.put(bucket, key, data, content_type).await,
        }
    }

    /// Copies within or across buckets; public copies get long-lived cache headers.
    pub async fn copy(
        &self,
        from: Bucket,
        from_key: &str,
        to: Bucket,
        to_key: &str,
        content_type: &str,
    ) -> StorageResult<()> {
        match self {
            ObjectStore::Local(l) => l.copy(from, from_key, to, to_key).await,
            ObjectStore::S3(s) => s.copy(from, from_key, to, to_key, content_type).await,
        }
    }

    /// Moves an object within a bucket: a rename on local disk (atomic, no copy), copy +
    /// delete on S3.
    pub async fn rename(&self, bucket: Bucket, from_key: &str, to_key: &str, content_type: &str) -> StorageResult<()> {
        match self {
            ObjectStore::Local(l) => l.rename(bucket, from_key, to_key).await,
            ObjectStore::S3(s) => {
                s.copy(bucket, from_key, bucket, to_key, content_type).await?;
                s.delete(bucket, from_key).await
            }
        }
    }

    /// Keys under `prefix` last written before `before` (at most `limit`).
    pub async fn list_older(
        &self,
        bucket: Bucket,
        prefix: &str,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> StorageResult<Vec<String>> {
        match self {
            ObjectStore::Local(l) => l.list_older(bucket, prefix, before, limit).await,
            ObjectStore::S3(s) => s.list_older(bucket, prefix, before, limit).await,
        }
    }

    /// Deletes; a missing object is not an error.
    pub async fn delete(&self, bucket: Bucket, key: &str) -> StorageResult<()> {
        match self {
            ObjectStore::Local(l) => l.delete(bucket, key).await,
            ObjectStore::S3(s) => s.delete(bucket, key).await,
        }
    }
}

fn files_dir(settings: &Settings) -> PathBuf {
    settings.data_dir.join("files")
}

/// The URL-signing key: configured, or generated once into `<data_dir>/secret.key` (0600).
fn signing_secret(settings: &Settings) -> Result<SecretString, ConfigError> {
    if let Some(key) = &settings.storage.secret_key {
        return Ok(key.clone());
    }
    let path = settings.data_dir.join("secret.key");
    let problem = |e: std::io::Error| ConfigError::new("FUNMAGIC_DATA_DIR", format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => return Ok(SecretString::from(text.trim().to_string())),
        Ok(_) => {
            return Err(ConfigError::new(
                "FUNMAGIC_DATA_DIR",
                format!("{} is too short; delete it to regenerate", path.display()),
            ));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(problem(e)),
        Err(_) => {}
    }
    std::fs::create_dir_all(&settings.data_dir).map_err(problem)?;
    let secret = crate::auth::token::generate("");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            std::io::Write::write_all(&mut file, secret.as_bytes()).map_err(problem)?;
            Ok(SecretString::from(secret))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(&path).map(|t| SecretString::from(t.trim().to_string())).map_err(problem)
        }
        Err(e) => Err(problem(e)),
    }
}

/// The key rules every backend shares (see `local::validate_key`).
pub fn local_key_check(key: &str) -> StorageResult<()> {
    local::validate_key(key)
}

/// `ExposeSecret` for the local store's signer.
pub(crate) fn secret_bytes(secret: &SecretString) -> &[u8] {
    secret.expose_secret().as_bytes()
}

/// The start of the signing window that `now` falls in, for [`ObjectStore::presign_get_stable`]:
/// windows of a quarter of `ttl`, between 1 s and 15 minutes long.
fn window_start(now: chrono::DateTime<chrono::Utc>, ttl: Duration) -> chrono::DateTime<chrono::Utc> {
    let window = (ttl.as_secs() / 4).clamp(1, 15 * 60) as i64;
    let start = now.timestamp().div_euclid(window) * window;
    chrono::DateTime::from_timestamp(start, 0).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_urls_are_signed_as_of_the_window_start() {
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
        let hour = Duration::from_secs(3600);
        // A quarter of an hour, capped at 15 minutes: every instant of a window signs alike.
        assert_eq!(window_start(at(1_800_000_123), hour), at(1_800_000_000)); // 1_800_000_000 is a multiple of 900
        assert_eq!(window_start(at(1_800_000_899), hour), window_start(at(1_800_000_001), hour));
        assert!(window_start(at(1_800_000_000 + 900), hour) > window_start(at(1_800_000_000), hour));
        // A short TTL gets a short window (a quarter of it), never under a second.
        assert_eq!(window_start(at(1_000_000_007), Duration::from_secs(20)), at(1_000_000_005));
        assert_eq!(window_start(at(1_000_000_007), Duration::from_secs(2)), at(1_000_000_007));
        // Never later than now, so a stable URL stays valid for at least 3/4 of its TTL.
        let week = Duration::from_secs(7 * 86_400);
        let now = at(1_800_000_123);
        assert!(window_start(now, week) <= now && now - window_start(now, week) < chrono::Duration::minutes(15));
    }
}
