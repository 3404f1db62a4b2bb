//! The local-disk store of the embedded default: one directory per bucket under
//! `<data_dir>/files`.

use std::path::{Path, PathBuf};

use super::Bucket;

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bucket_dir(&self, bucket: Bucket) -> PathBuf {
        self.root.join(bucket.local_dir())
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
}
