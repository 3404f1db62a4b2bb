//! Assets and pending uploads on both engines, expanded per engine by [`asset_queries!`].

macro_rules! asset_queries {
    ($store:ty, $db:ty) => {
        impl $store {
            pub async fn asset_create(&self, a: &$crate::store::AssetRow) -> $crate::store::StoreResult<$crate::store::AssetRow> {
                sqlx::query_as::<_, $crate::store::AssetRow>(
                    "INSERT INTO assets (id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
                     RETURNING id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at",
                )
                .bind(a.id)
                .bind(a.user_id)
                .bind(&a.bucket)
                .bind(&a.storage_key)
                .bind(&a.visibility)
                .bind(&a.module)
                .bind(&a.filename)
                .bind(&a.mime_type)
                .bind(a.size)
                .bind(a.task_id)
                .bind(a.created_at)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn asset_get(&self, id: uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::AssetRow>> {
                sqlx::query_as::<_, $crate::store::AssetRow>(
                    "SELECT id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at
                     FROM assets WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn asset_get_by_key(&self, bucket: &str, key: &str) -> $crate::store::StoreResult<Option<$crate::store::AssetRow>> {
                sqlx::query_as::<_, $crate::store::AssetRow>(
                    "SELECT id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at
                     FROM assets WHERE bucket = $1 AND storage_key = $2",
                )
                .bind(bucket)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// A user's assets, newest first, optionally of one module.
            pub async fn asset_list(
                &self,
                user_id: uuid::Uuid,
                module: Option<&str>,
                before: Option<uuid::Uuid>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::AssetRow>> {
                sqlx::query_as::<_, $crate::store::AssetRow>(
                    "SELECT id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at
                     FROM assets WHERE user_id = $1 AND ($2 IS NULL OR module = $2) AND ($3 IS NULL OR id < $3)
                     ORDER BY id DESC LIMIT $4",
                )
                .bind(user_id)
                .bind(module)
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn asset_delete(&self, id: uuid::Uuid) -> $crate::store::StoreResult<bool> {
                sqlx::query("DELETE FROM assets WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Points an asset at a new bucket and key (publish/unpublish).
            pub async fn asset_move(
                &self,
                id: uuid::Uuid,
                bucket: &str,
                key: &str,
                visibility: &str,
            ) -> $crate::store::StoreResult<$crate::store::AssetRow> {
                sqlx::query_as::<_, $crate::store::AssetRow>(
                    "UPDATE assets SET bucket = $2, storage_key = $3, visibility = $4, updated_at = $5 WHERE id = $1
                     RETURNING id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at",
                )
                .bind(id)
                .bind(bucket)
                .bind(key)
                .bind(visibility)
                .bind($crate::store::now())
                .fetch_one(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Bytes a user occupies: assets plus uploads in flight.
            pub async fn storage_usage(&self, user_id: uuid::Uuid) -> $crate::store::StoreResult<i64> {
                let (assets, pending): (Option<i64>, Option<i64>) = sqlx::query_as(
                    "SELECT (SELECT CAST(SUM(size) AS BIGINT) FROM assets WHERE user_id = $1),
                            (SELECT CAST(SUM(size) AS BIGINT) FROM pending_uploads WHERE user_id = $1)",
                )
                .bind(user_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(assets.unwrap_or(0) + pending.unwrap_or(0))
            }

            /// Records a pending upload if the user's usage (assets and pending uploads) plus
            /// its size stays within `quota` (`None`: no quota); false when it would not.
            /// Atomic with respect to the user's other reservations: `pending_upload_lock_user`
            /// (PostgreSQL) or SQLite's single writer serialises them.
            async fn pending_upload_insert_within(
                c: &mut <$db as sqlx::Database>::Connection,
                p: &$crate::store::PendingUploadRow,
                quota: Option<i64>,
            ) -> $crate::store::StoreResult<bool> {
                sqlx::query(
                    "INSERT INTO pending_uploads (storage_key, upload_key, bucket, user_id, module, filename, content_type, size, visibility, expires_at, created_at)
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
                     WHERE $12 < 0
                        OR COALESCE((SELECT SUM(size) FROM assets WHERE user_id = $4), 0)
                         + COALESCE((SELECT SUM(size) FROM pending_uploads WHERE user_id = $4), 0)
                         + $8 <= $12",
                )
                .bind(&p.storage_key)
                .bind(&p.upload_key)
                .bind(&p.bucket)
                .bind(p.user_id)
                .bind(&p.module)
                .bind(&p.filename)
                .bind(&p.content_type)
                .bind(p.size)
                .bind(&p.visibility)
                .bind(p.expires_at)
                .bind(p.created_at)
                .bind(quota.unwrap_or(-1))
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected() == 1)
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// See [`Self::pending_upload_insert_within`]; false when over `quota`.
            pub async fn pending_upload_create(
                &self,
                p: &$crate::store::PendingUploadRow,
                quota: Option<i64>,
            ) -> $crate::store::StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                Self::lock_user_storage_on(&mut tx, p.user_id).await?;
                let inserted = Self::pending_upload_insert_within(&mut tx, p, quota).await?;
                tx.commit().await?;
                Ok(inserted)
            }

            pub async fn pending_upload_by_upload_key(
                &self,
                bucket: &str,
                upload_key: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::PendingUploadRow>> {
                sqlx::query_as::<_, $crate::store::PendingUploadRow>(
                    "SELECT storage_key, upload_key, bucket, user_id, module, filename, content_type, size, visibility, expires_at, created_at
                     FROM pending_uploads WHERE bucket = $1 AND upload_key = $2",
                )
                .bind(bucket)
                .bind(upload_key)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn pending_upload_get(&self, bucket: &str, key: &str) -> $crate::store::StoreResult<Option<$crate::store::PendingUploadRow>> {
                sqlx::query_as::<_, $crate::store::PendingUploadRow>(
                    "SELECT storage_key, upload_key, bucket, user_id, module, filename, content_type, size, visibility, expires_at, created_at
                     FROM pending_uploads WHERE bucket = $1 AND storage_key = $2",
                )
                .bind(bucket)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Removes a pending upload; true for the caller that removed it.
            pub async fn pending_upload_delete(&self, bucket: &str, key: &str) -> $crate::store::StoreResult<bool> {
                sqlx::query("DELETE FROM pending_uploads WHERE bucket = $1 AND storage_key = $2")
                    .bind(bucket)
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn pending_uploads_expired(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::PendingUploadRow>> {
                sqlx::query_as::<_, $crate::store::PendingUploadRow>(
                    "SELECT storage_key, upload_key, bucket, user_id, module, filename, content_type, size, visibility, expires_at, created_at
                     FROM pending_uploads WHERE expires_at < $1 ORDER BY expires_at LIMIT $2",
                )
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }
        }
    };
}

pub(crate) use asset_queries;
