//! The S3-compatible store of scale-out mode (AWS S3, MinIO, Garage, R2), via `aws-sdk-s3`.
//! Upload and download URLs are SigV4-presigned; the upload signature covers the content
//! type and length, so a client cannot send something else under it.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use secrecy::ExposeSecret;

use super::{Bucket, ObjectMeta, Presigned, StorageError, StorageResult};
use crate::config::S3Settings;

/// Public objects never change under a key, so caches may keep them forever.
pub const PUBLIC_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    /// Signs the URLs clients use: the same client, or one on `s3.public_endpoint`
    /// (presigning never contacts the server).
    presigner: Client,
    endpoint: String,
    /// Where clients reach the store (`s3.public_endpoint`, else `endpoint`).
    public_endpoint: String,
    buckets: [String; 3],
    cdn_url: Option<String>,
    path_style: bool,
}

fn s3_error<E: std::error::Error>(e: E) -> StorageError {
    StorageError::Io(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
}

impl S3Store {
    pub fn new(settings: &S3Settings) -> Self {
        let credentials = Credentials::new(
            settings.access_key.clone(),
            settings.secret_key.expose_secret().to_string(),
            None,
            None,
            "funmagic-config",
        );
        let config = |endpoint: &str| {
            aws_sdk_s3::config::Builder::new()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(settings.region.clone()))
                .endpoint_url(endpoint)
                .credentials_provider(credentials.clone())
                .force_path_style(settings.path_style)
                .build()
        };
        let client = Client::from_conf(config(&settings.endpoint));
        let presigner = match &settings.public_endpoint {
            Some(public) => Client::from_conf(config(public)),
            None => client.clone(),
        };
        Self {
            presigner,
            client,
            endpoint: settings.endpoint.clone(),
            public_endpoint: settings.public_endpoint.clone().unwrap_or_else(|| settings.endpoint.clone()),
            buckets: [settings.bucket_public.clone(), settings.bucket_private.clone(), settings.bucket_admin.clone()],
            cdn_url: settings.cdn_url.clone(),
            path_style: settings.path_style,
        }
    }

    pub fn bucket_name(&self, bucket: Bucket) -> &str {
        match bucket {
            Bucket::Public => &self.buckets[0],
            Bucket::Private => &self.buckets[1],
            Bucket::Admin => &self.buckets[2],
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn describe(&self) -> String {
        format!("s3 at {} (buckets {})", self.endpoint, self.buckets.join(", "))
    }

    /// Replaces each bucket's CORS rules with one that lets browsers on `origins` upload
    /// (presigned PUT) and read (GET, HEAD) objects: the web UI on this server's origin
    /// uploads straight to the bucket and its 3D viewer fetches models from it.
    pub async fn allow_browser_origins(&self, origins: &[String]) -> StorageResult<()> {
        use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
        let rule = CorsRule::builder()
            .set_allowed_origins(Some(origins.to_vec()))
            .allowed_methods("GET")
            .allowed_methods("HEAD")
            .allowed_methods("PUT")
            .allowed_headers("*")
            .expose_headers("ETag")
            .max_age_seconds(3600)
            .build()
            .map_err(|e| StorageError::Io(e.to_string()))?;
        let config =
            CorsConfiguration::builder().cors_rules(rule).build().map_err(|e| StorageError::Io(e.to_string()))?;
        for name in &self.buckets {
            self.client
                .put_bucket_cors()
                .bucket(name)
                .cors_configuration(config.clone())
                .send()
                .await
                .map_err(s3_error)?;
        }
        Ok(())
    }

    /// `HeadBucket` on each of the three buckets.
    pub async fn check(&self) -> Result<String, String> {
        for bucket in Bucket::ALL {
            let name = self.bucket_name(bucket);
            self.client.head_bucket().bucket(name).send().await.map_err(|e| {
                let detail = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                format!("bucket '{name}' at {} is not reachable: {detail}", self.endpoint)
            })?;
        }
        Ok(self.describe())
    }

    fn presigning(ttl: Duration) -> StorageResult<PresigningConfig> {
        PresigningConfig::expires_in(ttl).map_err(|e| StorageError::Io(e.to_string()))
    }

    pub async fn presign_put(
        &self,
        bucket: Bucket,
        key: &str,
        content_type: &str,
        size: u64,
        ttl: Duration,
    ) -> StorageResult<Presigned> {
        let request = self
            .presigner
            .put_object()
            .bucket(self.bucket_name(bucket))
            .key(key)
            .content_type(content_type)
            .content_length(size as i64)
            .presigned(Self::presigning(ttl)?)
            .await
            .map_err(s3_error)?;
        let headers = request.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Ok(Presigned {
            url: request.uri().to_string(),
            method: "PUT",
            headers,
            expires_at: crate::store::now() + chrono::Duration::seconds(ttl.as_secs() as i64),
        })
    }

    /// A download URL valid for `ttl` from `signed_at` (now when `None`): a URL signed as of
    /// a fixed instant is the same string each time it is made.
    pub async fn presign_get(
        &self,
        bucket: Bucket,
        key: &str,
        filename: Option<&str>,
        ttl: Duration,
        signed_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> StorageResult<Presigned> {
        let mut op = self.presigner.get_object().bucket(self.bucket_name(bucket)).key(key);
        if let Some(name) = filename {
            op = op.response_content_disposition(format!("attachment; filename=\"{name}\""));
        }
        let config = match signed_at {
            None => Self::presigning(ttl)?,
            Some(at) => PresigningConfig::builder()
                .start_time(at.into())
                .expires_in(ttl)
                .build()
                .map_err(|e| StorageError::Io(e.to_string()))?,
        };
        let request = op.presigned(config).await.map_err(s3_error)?;
        Ok(Presigned {
            url: request.uri().to_string(),
            method: "GET",
            headers: vec![],
            expires_at: signed_at.unwrap_or_else(crate::store::now) + chrono::Duration::seconds(ttl.as_secs() as i64),
        })
    }

    pub fn public_url(&self, key: &str) -> String {
        match &self.cdn_url {
            Some(cdn) => format!("{cdn}/{key}"),
            None if self.path_style => format!("{}/{}/{key}", self.public_endpoint, self.bucket_name(Bucket::Public)),
            None => {
                let (scheme, host) = self.public_endpoint.split_once("://").unwrap_or(("https", &self.public_endpoint));
                format!("{scheme}://{}.{host}/{key}", self.bucket_name(Bucket::Public))
            }
        }
    }

    pub async fn head(&self, bucket: Bucket, key: &str) -> StorageResult<Option<ObjectMeta>> {
        match self.client.head_object().bucket(self.bucket_name(bucket)).key(key).send().await {
            Ok(out) => Ok(Some(ObjectMeta { size: out.content_length().unwrap_or(0).max(0) as u64 })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(s3_error(e)),
        }
    }

    pub async fn read_prefix(&self, bucket: Bucket, key: &str, len: usize) -> StorageResult<Bytes> {
        let out = self
            .client
            .get_object()
            .bucket(self.bucket_name(bucket))
            .key(key)
            .range(format!("bytes=0-{}", len.saturating_sub(1)))
            .send()
            .await
            .map_err(s3_error)?;
        out.body.collect().await.map(|b| b.into_bytes()).map_err(|e| StorageError::Io(e.to_string()))
    }

    pub async fn get(&self, bucket: Bucket, key: &str) -> StorageResult<Bytes> {
        let out = self.client.get_object().bucket(self.bucket_name(bucket)).key(key).send().await.map_err(s3_error)?;
        out.body.collect().await.map(|b| b.into_bytes()).map_err(|e| StorageError::Io(e.to_string()))
    }

    pub async fn put(&self, bucket: Bucket, key: &str, data: Bytes, content_type: &str) -> StorageResult<()> {
        let mut op = self
            .client
            .put_object()
            .bucket(self.bucket_name(bucket))
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(data));
        if bucket == Bucket::Public {
            op = op.cache_control(PUBLIC_CACHE_CONTROL);
        }
        op.send().await.map(|_| ()).map_err(s3_error)
    }

    pub async fn copy(
        &self,
        from: Bucket,
        from_key: &str,
        to: Bucket,
        to_key: &str,
        content_type: &str,
    ) -> StorageResult<()> {
        let mut op = self
            .client
            .copy_object()
            .copy_source(format!("{}/{from_key}", self.bucket_name(from)))
            .bucket(self.bucket_name(to))
            .key(to_key);
        if to == Bucket::Public {
            op = op
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .content_type(content_type)
                .cache_control(PUBLIC_CACHE_CONTROL);
        }
        op.send().await.map(|_| ()).map_err(s3_error)
    }

    pub async fn list_older(
        &self,
        bucket: Bucket,
        prefix: &str,
        before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> StorageResult<Vec<String>> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(self.bucket_name(bucket))
            .prefix(prefix)
            .max_keys(limit.min(1000) as i32)
            .send()
            .await
            .map_err(s3_error)?;
        let cutoff = before.timestamp();
        Ok(out
            .contents()
            .iter()
            .filter(|o| o.last_modified().is_some_and(|m| m.secs() < cutoff))
            .filter_map(|o| o.key().map(str::to_string))
            .collect())
    }

    pub async fn delete(&self, bucket: Bucket, key: &str) -> StorageResult<()> {
        self.client.delete_object().bucket(self.bucket_name(bucket)).key(key).send().await.map(|_| ()).map_err(s3_error)
    }
}
