//! Assets and pending uploads on both engines, expanded per engine by [`asset_queries!`].

macro_rules! asset_queries {
    ($store:ty, $db:ty) => {
        impl $store {
            pub async fn asset_create(
                &self,
                a: &$crate::store::AssetRow,
            ) -> $crate::store::StoreResult<$crate::store::AssetRow> {
                sqlx::query_as::<_, $crate::store::AssetRow>($crate::store::sql::assets::ASSET_CREATE)
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

            pub async fn asset_get(
                &self,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::AssetRow>> {
                sqlx::query_as::<_, $crate::store::AssetRow>($crate::store::sql::assets::ASSET_GET)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn asset_get_by_key(
                &self,
                bucket: &str,
                key: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::AssetRow>> {
                sqlx::query_as::<_, $crate::store::AssetRow>($crate::store::sql::assets::ASSET_GET_BY_KEY)
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
                sqlx::query_as::<_, $crate::store::AssetRow>($crate::store::sql::assets::ASSET_LIST)
                    .bind(user_id)
                    .bind(module)
                    .bind(before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn asset_set_thumbnail(&self, id: uuid::Uuid, key: &str) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::assets::ASSET_SET_THUMBNAIL)
                    .bind(id)
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn asset_delete(&self, id: uuid::Uuid) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::assets::ASSET_DELETE)
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
                sqlx::query_as::<_, $crate::store::AssetRow>($crate::store::sql::assets::ASSET_MOVE)
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
                let (assets, pending): (Option<i64>, Option<i64>) =
                    sqlx::query_as($crate::store::sql::assets::STORAGE_USAGE)
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
                sqlx::query($crate::store::sql::assets::PENDING_UPLOAD_INSERT_WITHIN)
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
                    $crate::store::sql::assets::PENDING_UPLOAD_BY_UPLOAD_KEY,
                )
                .bind(bucket)
                .bind(upload_key)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn pending_upload_get(
                &self,
                bucket: &str,
                key: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::PendingUploadRow>> {
                sqlx::query_as::<_, $crate::store::PendingUploadRow>($crate::store::sql::assets::PENDING_UPLOAD_GET)
                    .bind(bucket)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Removes a pending upload; true for the caller that removed it.
            pub async fn pending_upload_delete(&self, bucket: &str, key: &str) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::assets::PENDING_UPLOAD_DELETE)
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
                    $crate::store::sql::assets::PENDING_UPLOADS_EXPIRED,
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
