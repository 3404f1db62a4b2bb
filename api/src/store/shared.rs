//! Store methods over SQL that PostgreSQL and SQLite both accept (the statements are in
//! `sql/shared.rs`), written once and expanded for each engine's pool type by
//! [`shared_queries!`] (sqlx's pool types differ, so this cannot be a generic
//! function without drowning in where-clauses). Placeholders are `$N`, which both accept.

/// Expands the engine-neutral store methods as inherent methods of `$store`.
macro_rules! shared_queries {
    ($store:ty) => {
        impl $store {
            pub async fn user_create(
                &self,
                new: &$crate::store::NewUser,
            ) -> $crate::store::StoreResult<$crate::store::UserRow> {
                let now = $crate::store::now();
                sqlx::query_as::<_, $crate::store::UserRow>($crate::store::sql::shared::USER_CREATE)
                    .bind(uuid::Uuid::now_v7())
                    .bind(&new.email)
                    .bind(&new.name)
                    .bind(new.role.as_str())
                    .bind(new.email_verified)
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn user_get(&self, id: uuid::Uuid) -> $crate::store::StoreResult<Option<$crate::store::UserRow>> {
                sqlx::query_as::<_, $crate::store::UserRow>($crate::store::sql::shared::USER_GET)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn user_get_by_email(
                &self,
                email: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::UserRow>> {
                sqlx::query_as::<_, $crate::store::UserRow>($crate::store::sql::shared::USER_GET_BY_EMAIL)
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn user_list(
                &self,
                after: Option<uuid::Uuid>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::UserRow>> {
                sqlx::query_as::<_, $crate::store::UserRow>($crate::store::sql::shared::USER_LIST)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn user_count(&self) -> $crate::store::StoreResult<i64> {
                sqlx::query_scalar::<_, i64>($crate::store::sql::shared::USER_COUNT)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn user_count_with_role(&self, role: $crate::store::Role) -> $crate::store::StoreResult<i64> {
                sqlx::query_scalar::<_, i64>($crate::store::sql::shared::USER_COUNT_WITH_ROLE)
                    .bind(role.as_str())
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn close(&self) {
                self.pool.close().await
            }
        }
    };
}

pub(crate) use shared_queries;
