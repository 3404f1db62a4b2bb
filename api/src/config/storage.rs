//! `[storage]` (limits and URL lifetimes, both stores) and `[s3]` (the S3-compatible store).

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use super::section::{at_least, http_url, section};

section! {
    /// Uploads, quotas and signed URLs.
    pub struct StorageLayer => StorageSettings in "storage" {
        secret_key: SecretString {
            env: "FUNMAGIC_SECRET_KEY",
            shown: "(generated in data_dir/secret.key)",
            check: |key: &SecretString| {
                if key.expose_secret().len() >= 32 { Ok(()) } else { Err("must be at least 32 characters".to_string()) }
            },
            help: "key that signs the local file store's upload and download URLs",
        },
        max_image_bytes: u64 {
            env: "FUNMAGIC_MAX_IMAGE_BYTES",
            default: 25u64 * 1024 * 1024,
            check: at_least(1),
            help: "largest image upload (25 MiB)",
        },
        max_model_bytes: u64 {
            env: "FUNMAGIC_MAX_MODEL_BYTES",
            default: 200u64 * 1024 * 1024,
            check: at_least(1),
            help: "largest 3D model upload (200 MiB)",
        },
        quota_bytes: u64 {
            env: "FUNMAGIC_STORAGE_QUOTA_BYTES",
            default: 1024u64 * 1024 * 1024,
            check: at_least(1),
            help: "storage per user (1 GiB)",
        },
        upload_url_ttl_secs: u64 {
            env: "FUNMAGIC_UPLOAD_URL_TTL_SECS",
            default: 900u64,
            check: at_least(1),
            help: "lifetime of presigned upload URLs",
        },
        download_url_ttl_secs: u64 {
            env: "FUNMAGIC_DOWNLOAD_URL_TTL_SECS",
            default: 3600u64,
            check: at_least(1),
            help: "lifetime of presigned download URLs",
        },
        pending_upload_ttl_secs: u64 {
            env: "FUNMAGIC_PENDING_UPLOAD_TTL_SECS",
            default: 86_400u64,
            check: at_least(1),
            help: "uploads not completed within this are deleted",
        },
    }
}

section! {
    /// The S3-compatible store, as given (see [`S3Settings`] for the resolved form).
    pub struct S3Layer => S3Values in "s3" {
        endpoint: String {
            env: "S3_ENDPOINT",
            shown: "(unset: local file store)",
            check: http_url,
            help: "S3-compatible endpoint; enables S3 storage",
        },
        public_endpoint: String {
            env: "S3_PUBLIC_ENDPOINT",
            shown: "(s3.endpoint)",
            check: http_url,
            help: "the S3 endpoint as browsers and CLIs reach it, for presigned upload and download URLs, when it differs from s3.endpoint (containers, private networks)",
        },
        access_key: String { env: "S3_ACCESS_KEY", help: "S3 access key id" },
        secret_key: SecretString { env: "S3_SECRET_KEY", help: "S3 secret key" },
        region: String { env: "S3_REGION", default: "us-east-1", help: "S3 region" },
        bucket_public: String {
            env: "S3_BUCKET_PUBLIC",
            default: "funmagic-public",
            help: "bucket for published assets",
        },
        bucket_private: String {
            env: "S3_BUCKET_PRIVATE",
            default: "funmagic-private",
            help: "bucket for user uploads and outputs",
        },
        bucket_admin: String {
            env: "S3_BUCKET_ADMIN",
            default: "funmagic-admin",
            help: "bucket for admin assets",
        },
        path_style: bool {
            env: "FUNMAGIC_S3_PATH_STYLE",
            default: true,
            help: "path-style bucket addressing (MinIO, Garage)",
        },
        manage_cors: bool {
            env: "FUNMAGIC_S3_MANAGE_CORS",
            default: true,
            help: "set the buckets' CORS rules at start so browsers on this server's origins can upload and load files (false: you manage them)",
        },
        cdn_url: String {
            env: "CDN_URL",
            shown: "(unset)",
            check: http_url,
            help: "base URL of the CDN in front of the public bucket",
        },
    }
}

/// The S3-compatible store, when configured.
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: String,
    /// Presigned URLs use this endpoint (the one clients reach), else `endpoint`.
    pub public_endpoint: Option<String>,
    pub access_key: String,
    pub secret_key: SecretString,
    pub region: String,
    pub bucket_public: String,
    pub bucket_private: String,
    pub bucket_admin: String,
    pub path_style: bool,
    pub manage_cors: bool,
    pub cdn_url: Option<String>,
}

impl S3Values {
    /// `None` without an endpoint (the local file store); the keys come with the endpoint.
    pub(super) fn resolve(self) -> Result<Option<S3Settings>, ConfigError> {
        let Some(endpoint) = self.endpoint else {
            let stray = [("S3_ACCESS_KEY", self.access_key.is_some()), ("S3_SECRET_KEY", self.secret_key.is_some())];
            if let Some((name, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(ConfigError::new(
                    "S3_ENDPOINT",
                    format!(
                        "{name} is set but S3_ENDPOINT is not; set both to use S3, or neither for the local file store"
                    ),
                ));
            }
            return Ok(None);
        };
        let access_key =
            self.access_key.ok_or_else(|| ConfigError::new("S3_ACCESS_KEY", "required when S3_ENDPOINT is set"))?;
        let secret_key =
            self.secret_key.ok_or_else(|| ConfigError::new("S3_SECRET_KEY", "required when S3_ENDPOINT is set"))?;
        Ok(Some(S3Settings {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            public_endpoint: self.public_endpoint.map(|u| u.trim_end_matches('/').to_string()),
            access_key,
            secret_key,
            region: self.region,
            bucket_public: self.bucket_public,
            bucket_private: self.bucket_private,
            bucket_admin: self.bucket_admin,
            path_style: self.path_style,
            manage_cors: self.manage_cors,
            cdn_url: self.cdn_url.map(|u| u.trim_end_matches('/').to_string()),
        }))
    }
}
