//! The S3-compatible store of scale-out mode (AWS S3, MinIO, Garage, R2), via `aws-sdk-s3`.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use secrecy::ExposeSecret;

use super::Bucket;
use crate::config::S3Settings;

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    endpoint: String,
    buckets: [String; 3],
    cdn_url: Option<String>,
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
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .endpoint_url(settings.endpoint.clone())
            .credentials_provider(credentials)
            .force_path_style(settings.path_style)
            .build();
        Self {
            client: Client::from_conf(config),
            endpoint: settings.endpoint.clone(),
            buckets: [settings.bucket_public.clone(), settings.bucket_private.clone(), settings.bucket_admin.clone()],
            cdn_url: settings.cdn_url.clone(),
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

    pub fn cdn_url(&self) -> Option<&str> {
        self.cdn_url.as_deref()
    }

    pub fn describe(&self) -> String {
        format!("s3 at {} (buckets {})", self.endpoint, self.buckets.join(", "))
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
}
