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
                sqlx::query_as::<_, $crate::store::ToolTypeRow>(
                    "SELECT id, name, display_name, icon, color, description, created_at, updated_at FROM tool_types ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_type_upsert(&self, t: &$crate::store::ToolTypeRow) -> $crate::store::StoreResult<$crate::store::ToolTypeRow> {
                sqlx::query_as::<_, $crate::store::ToolTypeRow>(
                    "INSERT INTO tool_types (id, name, display_name, icon, color, description, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (id) DO UPDATE SET name = $2, display_name = $3, icon = $4, color = $5, description = $6, updated_at = $8
                     RETURNING id, name, display_name, icon, color, description, created_at, updated_at",
                )
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
                sqlx::query("DELETE FROM tool_types WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_list(&self, active_only: bool) -> $crate::store::StoreResult<Vec<$crate::store::ToolRow>> {
                sqlx::query_as::<_, $crate::store::ToolRow>(
                    "SELECT id, slug, title, description, tool_type_id, config, credits_cost, is_active, created_at, updated_at
                     FROM tools WHERE ($1 = FALSE OR is_active = TRUE) ORDER BY slug",
                )
                .bind(active_only)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_get(&self, id: uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::ToolRow>> {
                sqlx::query_as::<_, $crate::store::ToolRow>(
                    "SELECT id, slug, title, description, tool_type_id, config, credits_cost, is_active, created_at, updated_at
                     FROM tools WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_get_by_slug(&self, slug: &str) -> $crate::store::StoreResult<Option<$crate::store::ToolRow>> {
                sqlx::query_as::<_, $crate::store::ToolRow>(
                    "SELECT id, slug, title, description, tool_type_id, config, credits_cost, is_active, created_at, updated_at
                     FROM tools WHERE slug = $1",
                )
                .bind(slug)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_upsert(&self, t: &$crate::store::ToolRow) -> $crate::store::StoreResult<$crate::store::ToolRow> {
                sqlx::query_as::<_, $crate::store::ToolRow>(
                    "INSERT INTO tools (id, slug, title, description, tool_type_id, config, credits_cost, is_active, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (id) DO UPDATE SET slug = $2, title = $3, description = $4, tool_type_id = $5, config = $6,
                         credits_cost = $7, is_active = $8, updated_at = $10
                     RETURNING id, slug, title, description, tool_type_id, config, credits_cost, is_active, created_at, updated_at",
                )
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
                .fetch_one(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tool_delete(&self, id: uuid::Uuid) -> $crate::store::StoreResult<bool> {
                sqlx::query("DELETE FROM tools WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn provider_list(&self) -> $crate::store::StoreResult<Vec<$crate::store::ProviderRow>> {
                sqlx::query_as::<_, $crate::store::ProviderRow>(concat!("SELECT ", $crate::store::tool_queries::provider_columns!(), " FROM providers ORDER BY name"))
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn provider_get(&self, id: uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::ProviderRow>> {
                sqlx::query_as::<_, $crate::store::ProviderRow>(concat!("SELECT ", $crate::store::tool_queries::provider_columns!(), " FROM providers WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Inserts or updates every column but the health ones (kept on update).
            pub async fn provider_upsert(&self, p: &$crate::store::ProviderRow) -> $crate::store::StoreResult<$crate::store::ProviderRow> {
                sqlx::query_as::<_, $crate::store::ProviderRow>(concat!(
                    "INSERT INTO providers (id, name, type, api_key, api_key_id, api_key_last4, base_url, config, is_active,
                                            is_healthy, health_checked_at, health_message, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                     ON CONFLICT (id) DO UPDATE SET name = $2, api_key = $4, api_key_id = $5, api_key_last4 = $6, base_url = $7,
                                                    config = $8, is_active = $9, updated_at = $14
                     RETURNING ", $crate::store::tool_queries::provider_columns!()))
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

            pub async fn provider_set_health(&self, id: uuid::Uuid, healthy: bool, message: Option<&str>) -> $crate::store::StoreResult<()> {
                sqlx::query("UPDATE providers SET is_healthy = $2, health_message = $3, health_checked_at = $4 WHERE id = $1")
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
            pub async fn provider_keys_replace(&self, keys: &[(uuid::Uuid, String, String, String)]) -> $crate::store::StoreResult<u64> {
                let mut tx = self.write_tx().await?;
                let mut changed = 0;
                for (id, old_key_id, cipher, new_key_id) in keys {
                    let n = sqlx::query("UPDATE providers SET api_key = $3, api_key_id = $4, updated_at = $5 WHERE id = $1 AND api_key_id = $2")
                        .bind(id)
                        .bind(old_key_id)
                        .bind(cipher)
                        .bind(new_key_id)
                        .bind($crate::store::now())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if n != 1 {
                        return Err($crate::store::StoreError::Conflict(format!("provider {id} changed during the rotation")));
                    }
                    changed += n;
                }
                tx.commit().await?;
                Ok(changed)
            }

            /// Creates the built-in `local` provider if missing; returns its id.
            pub async fn provider_ensure_local(&self) -> $crate::store::StoreResult<uuid::Uuid> {
                let now = $crate::store::now();
                sqlx::query(
                    "INSERT INTO providers (id, name, type, is_active, is_healthy, health_checked_at, created_at, updated_at)
                     VALUES ($1, 'local', 'local', TRUE, TRUE, $2, $2, $2) ON CONFLICT (name) DO NOTHING",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(now)
                .execute(&self.pool)
                .await?;
                sqlx::query_scalar("SELECT id FROM providers WHERE name = 'local'")
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }
        }
    };
}

pub(crate) use tool_queries;
