//! SQL that PostgreSQL and SQLite both accept, written once and expanded for each engine's
//! pool type by [`shared_queries!`] (sqlx's pool types differ, so this cannot be a generic
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
                sqlx::query_as::<_, $crate::store::UserRow>(concat!(
                    "INSERT INTO users (id, email, name, role, email_verified, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $6)
                     RETURNING ",
                    user_columns!()
                ))
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
                sqlx::query_as::<_, $crate::store::UserRow>(concat!(
                    "SELECT ",
                    user_columns!(),
                    "
                     FROM users WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn user_get_by_email(
                &self,
                email: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::UserRow>> {
                sqlx::query_as::<_, $crate::store::UserRow>(concat!(
                    "SELECT ",
                    user_columns!(),
                    "
                     FROM users WHERE email = $1"
                ))
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
                sqlx::query_as::<_, $crate::store::UserRow>(concat!(
                    "SELECT ",
                    user_columns!(),
                    "
                     FROM users WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
                ))
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn user_count(&self) -> $crate::store::StoreResult<i64> {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn user_count_with_role(&self, role: $crate::store::Role) -> $crate::store::StoreResult<i64> {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE role = $1")
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
