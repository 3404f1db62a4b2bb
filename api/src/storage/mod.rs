//! Object storage: the seed's three buckets (public, private, admin) behind one interface,
//! on local disk in the embedded default or on any S3-compatible store in scale-out mode.

mod local;
mod s3;

use std::path::PathBuf;

pub use self::local::LocalStore;
pub use self::s3::S3Store;
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

    /// The directory name used by the local store (and the default bucket name suffix).
    pub fn local_dir(self) -> &'static str {
        match self {
            Bucket::Public => "public",
            Bucket::Private => "private",
            Bucket::Admin => "admin",
        }
    }
}

/// Where files live; cheap to clone.
#[derive(Debug, Clone)]
pub enum ObjectStore {
    Local(LocalStore),
    S3(S3Store),
}

impl ObjectStore {
    /// Opens the store the settings select and checks it is usable (fail fast).
    pub async fn open(settings: &Settings) -> Result<Self, ConfigError> {
        let store = match &settings.s3 {
            Some(s3) => ObjectStore::S3(S3Store::new(s3)),
            None => ObjectStore::Local(LocalStore::new(files_dir(settings))),
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

    /// Verifies every bucket is reachable and writable/readable; the error says which is not.
    pub async fn check(&self) -> Result<String, String> {
        match self {
            ObjectStore::Local(l) => l.check().await,
            ObjectStore::S3(s) => s.check().await,
        }
    }
}

fn files_dir(settings: &Settings) -> PathBuf {
    settings.data_dir.join("files")
}
