//! The content domain (banners) on both engines, expanded per engine by
//! [`content_queries!`].

macro_rules! banner_columns {
    () => {
        "id, title, description, thumbnail, link, link_text, link_target, type, position, badge, badge_color, is_active, starts_at, ends_at, created_at, updated_at"
    };
}
pub(crate) use banner_columns;

macro_rules! content_queries {
    ($store:ty) => {
        impl $store {
            /// Banners of `kind` (all kinds if `None`), by position; with `live_at`, only the
            /// active ones whose window contains that instant.
            pub async fn banner_list(
                &self,
                kind: Option<$crate::store::BannerType>,
                live_at: Option<chrono::DateTime<chrono::Utc>>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::BannerRow>> {
                sqlx::query_as::<_, $crate::store::BannerRow>($crate::store::sql::content::BANNER_LIST)
                    .bind(kind)
                    .bind(live_at)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn banner_get(
                &self,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::BannerRow>> {
                sqlx::query_as::<_, $crate::store::BannerRow>($crate::store::sql::content::BANNER_GET)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn banner_upsert(
                &self,
                b: &$crate::store::BannerRow,
            ) -> $crate::store::StoreResult<$crate::store::BannerRow> {
                sqlx::query_as::<_, $crate::store::BannerRow>($crate::store::sql::content::BANNER_UPSERT)
                    .bind(b.id)
                    .bind(&b.title)
                    .bind(&b.description)
                    .bind(&b.thumbnail)
                    .bind(&b.link)
                    .bind(&b.link_text)
                    .bind(&b.link_target)
                    .bind(&b.kind)
                    .bind(b.position)
                    .bind(&b.badge)
                    .bind(&b.badge_color)
                    .bind(b.is_active)
                    .bind(b.starts_at)
                    .bind(b.ends_at)
                    .bind(b.created_at)
                    .bind(b.updated_at)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn banner_delete(&self, id: uuid::Uuid) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::content::BANNER_DELETE)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Sets the positions of `kind`'s banners to the order of `ids` (0, 1, …), in one
            /// transaction; every id must be a banner of that kind.
            pub async fn banner_reorder(
                &self,
                kind: $crate::store::BannerType,
                ids: &[uuid::Uuid],
            ) -> $crate::store::StoreResult<()> {
                let mut tx = self.write_tx().await?;
                let now = $crate::store::now();
                for (i, id) in ids.iter().enumerate() {
                    let n = sqlx::query($crate::store::sql::content::BANNER_REORDER)
                        .bind(id)
                        .bind(kind)
                        .bind(i as i32)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n != 1 {
                        return Err($crate::store::StoreError::NotFound);
                    }
                }
                tx.commit().await.map_err($crate::store::StoreError::from_sqlx)
            }
        }
    };
}

pub(crate) use content_queries;
