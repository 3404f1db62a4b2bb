//! Tool types, tools and providers (read side) on both engines, expanded per engine by
//! [`tool_queries!`].

/// The columns of a [`ProviderRow`](crate::store::ProviderRow), in its order.
macro_rules! provider_columns {
    () => {
        "id, name, type, base_url, is_active, is_healthy, health_checked_at, created_at, updated_at, api_key, api_key_id, api_key_last4, health_message, config"
    };
}
pub(crate) use provider_columns;

macro_rules! tool_queries {
    ($store:ty) => {
        impl $store {
            pub async fn tool_type_list(&self) -> $crate::store::StoreResult<Vec<$crate::store::ToolTypeRow>> {
                sqlx::query_as::<_, $crate::store::ToolTypeRow>($crate::store::sql::tools::TOOL_TYPE_LIST)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_type_upsert(
                &self,
                t: &$crate::store::ToolTypeRow,
            ) -> $crate::store::StoreResult<$crate::store::ToolTypeRow> {
                sqlx::query_as::<_, $crate::store::ToolTypeRow>($crate::store::sql::tools::TOOL_TYPE_UPSERT)
                    .bind(t.id)
                    .bind(&t.name)
                    .bind(&t.display_name)
                    .bind(&t.icon)
                    .bind(&t.color)
                    .bind(&t.description)
                    .bind(t.created_at)
                    .bind(t.updated_at)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_type_delete(&self, id: uuid::Uuid) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::tools::TOOL_TYPE_DELETE)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_list(
                &self,
                active_only: bool,
                featured_only: bool,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ToolRow>> {
                sqlx::query_as::<_, $crate::store::ToolRow>($crate::store::sql::tools::TOOL_LIST)
                    .bind(active_only)
                    .bind(featured_only)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_get(&self, id: uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::ToolRow>> {
                sqlx::query_as::<_, $crate::store::ToolRow>($crate::store::sql::tools::TOOL_GET)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_get_by_slug(
                &self,
                slug: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::ToolRow>> {
                sqlx::query_as::<_, $crate::store::ToolRow>($crate::store::sql::tools::TOOL_GET_BY_SLUG)
                    .bind(slug)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_upsert(
                &self,
                t: &$crate::store::ToolRow,
            ) -> $crate::store::StoreResult<$crate::store::ToolRow> {
                sqlx::query_as::<_, $crate::store::ToolRow>($crate::store::sql::tools::TOOL_UPSERT)
                    .bind(t.id)
                    .bind(&t.slug)
                    .bind(&t.title)
                    .bind(&t.description)
                    .bind(t.tool_type_id)
                    .bind(&t.config)
                    .bind(t.credits_cost)
                    .bind(t.is_active)
                    .bind(t.created_at)
                    .bind(t.updated_at)
                    .bind(t.featured)
                    .bind(t.position)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_delete(&self, id: uuid::Uuid) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::tools::TOOL_DELETE)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn provider_list(&self) -> $crate::store::StoreResult<Vec<$crate::store::ProviderRow>> {
                sqlx::query_as::<_, $crate::store::ProviderRow>($crate::store::sql::tools::PROVIDER_LIST)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn provider_get(
                &self,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<$crate::store::ProviderRow>> {
                sqlx::query_as::<_, $crate::store::ProviderRow>($crate::store::sql::tools::PROVIDER_GET)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Inserts or updates every column but the health ones (kept on update).
            pub async fn provider_upsert(
                &self,
                p: &$crate::store::ProviderRow,
            ) -> $crate::store::StoreResult<$crate::store::ProviderRow> {
                sqlx::query_as::<_, $crate::store::ProviderRow>($crate::store::sql::tools::PROVIDER_UPSERT)
                    .bind(p.id)
                    .bind(&p.name)
                    .bind(&p.kind)
                    .bind(&p.api_key)
                    .bind(&p.api_key_id)
                    .bind(&p.api_key_last4)
                    .bind(&p.base_url)
                    .bind(&p.config)
                    .bind(p.is_active)
                    .bind(p.is_healthy)
                    .bind(p.health_checked_at)
                    .bind(&p.health_message)
                    .bind(p.created_at)
                    .bind(p.updated_at)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn provider_set_health(
                &self,
                id: uuid::Uuid,
                healthy: bool,
                message: Option<&str>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::tools::PROVIDER_SET_HEALTH)
                    .bind(id)
                    .bind(healthy)
                    .bind(message)
                    .bind($crate::store::now())
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Replaces encrypted keys in one transaction: `(id, expected current key id,
            /// new ciphertext, new key id)`; a row whose key id changed meanwhile is an error
            /// (nothing is written). Returns how many rows changed.
            pub async fn provider_keys_replace(
                &self,
                keys: &[(uuid::Uuid, String, String, String)],
            ) -> $crate::store::StoreResult<u64> {
                let mut tx = self.write_tx().await?;
                let mut changed = 0;
                for (id, old_key_id, cipher, new_key_id) in keys {
                    let n = sqlx::query($crate::store::sql::tools::PROVIDER_KEYS_REPLACE)
                        .bind(id)
                        .bind(old_key_id)
                        .bind(cipher)
                        .bind(new_key_id)
                        .bind($crate::store::now())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n != 1 {
                        return Err($crate::store::StoreError::Conflict(format!(
                            "provider {id} changed during the rotation"
                        )));
                    }
                    changed += n;
                }
                tx.commit().await?;
                Ok(changed)
            }

            /// Creates the built-in `local` provider if missing; returns its id.
            pub async fn provider_ensure_local(&self) -> $crate::store::StoreResult<uuid::Uuid> {
                let now = $crate::store::now();
                sqlx::query($crate::store::sql::tools::PROVIDER_ENSURE_LOCAL_INSERT_PROVIDERS)
                    .bind(uuid::Uuid::now_v7())
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                sqlx::query_scalar($crate::store::sql::tools::PROVIDER_ENSURE_LOCAL_SELECT_PROVIDERS)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }
        }
    };
}

pub(crate) use tool_queries;
