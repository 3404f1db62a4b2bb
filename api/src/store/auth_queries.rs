//! Auth queries both engines accept: sessions, accounts, verifications, API keys, device
//! codes. Expanded per engine by [`auth_queries!`], like `shared.rs`.

macro_rules! auth_queries {
    ($store:ty) => {
        impl $store {
            /// Inserts the user and its credential account in one transaction.
            pub async fn user_create_with_password(
                &self,
                new: &$crate::store::NewUser,
                password_hash: &str,
            ) -> $crate::store::StoreResult<$crate::store::UserRow> {
                let now = $crate::store::now();
                let mut tx = self.pool.begin().await?;
                let user = sqlx::query_as::<_, $crate::store::UserRow>($crate::store::sql::shared::USER_CREATE)
                    .bind(uuid::Uuid::now_v7())
                    .bind(&new.email)
                    .bind(&new.name)
                    .bind(new.role.as_str())
                    .bind(new.email_verified)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query($crate::store::sql::auth::CREDENTIAL_ACCOUNT_INSERT)
                    .bind(uuid::Uuid::now_v7())
                    .bind(user.id)
                    .bind(user.id.to_string())
                    .bind(password_hash)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(user)
            }

            pub async fn password_hash_get(&self, user_id: uuid::Uuid) -> $crate::store::StoreResult<Option<String>> {
                sqlx::query_scalar::<_, Option<String>>($crate::store::sql::auth::PASSWORD_HASH_GET)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map(Option::flatten)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Sets (or creates) the credential account's password hash.
            pub async fn password_hash_set(&self, user_id: uuid::Uuid, hash: &str) -> $crate::store::StoreResult<()> {
                let now = $crate::store::now();
                let updated = sqlx::query($crate::store::sql::auth::PASSWORD_HASH_SET_UPDATE_ACCOUNTS)
                    .bind(user_id)
                    .bind(hash)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                if updated.rows_affected() == 0 {
                    sqlx::query($crate::store::sql::auth::CREDENTIAL_ACCOUNT_INSERT)
                        .bind(uuid::Uuid::now_v7())
                        .bind(user_id)
                        .bind(user_id.to_string())
                        .bind(hash)
                        .bind(now)
                        .execute(&self.pool)
                        .await?;
                }
                Ok(())
            }

            pub async fn account_get(
                &self,
                provider_id: &str,
                account_id: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::AccountRow>> {
                sqlx::query_as::<_, $crate::store::AccountRow>($crate::store::sql::auth::ACCOUNT_GET)
                    .bind(provider_id)
                    .bind(account_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn account_touch(
                &self,
                provider_id: &str,
                account_id: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::auth::ACCOUNT_TOUCH)
                    .bind(provider_id)
                    .bind(account_id)
                    .bind(at)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn last_external_sign_in(
                &self,
                user_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<chrono::DateTime<chrono::Utc>>> {
                sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>($crate::store::sql::auth::LAST_EXTERNAL_SIGN_IN)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn account_link(
                &self,
                user_id: uuid::Uuid,
                provider_id: &str,
                account_id: &str,
                access_token: Option<&str>,
                scope: Option<&str>,
            ) -> $crate::store::StoreResult<()> {
                let now = $crate::store::now();
                sqlx::query($crate::store::sql::auth::ACCOUNT_LINK)
                    .bind(uuid::Uuid::now_v7())
                    .bind(user_id)
                    .bind(provider_id)
                    .bind(account_id)
                    .bind(access_token)
                    .bind(scope)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn user_set_email_verified(&self, user_id: uuid::Uuid) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::auth::USER_SET_EMAIL_VERIFIED)
                    .bind(user_id)
                    .bind(true)
                    .bind($crate::store::now())
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Sets the name (when given) and the picture (when `image` is `Some`; `Some(None)`
            /// clears it); `None` when there is no such user.
            pub async fn user_set_profile(
                &self,
                user_id: uuid::Uuid,
                name: Option<&str>,
                image: Option<Option<&str>>,
            ) -> $crate::store::StoreResult<Option<$crate::store::UserRow>> {
                sqlx::query_as::<_, $crate::store::UserRow>($crate::store::sql::auth::USER_SET_PROFILE)
                    .bind(user_id)
                    .bind(name)
                    .bind(image.is_some())
                    .bind(image.flatten())
                    .bind($crate::store::now())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// A user's sessions that are live at `now`, newest first.
            pub async fn sessions_of_user(
                &self,
                user_id: uuid::Uuid,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Vec<$crate::store::SessionRow>> {
                sqlx::query_as::<_, $crate::store::SessionRow>($crate::store::sql::auth::SESSIONS_OF_USER)
                    .bind(user_id)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Deletes one of a user's sessions; its token hash, or `None` when the user has
            /// no session with that id.
            pub async fn session_delete_of_user(
                &self,
                user_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<String>> {
                sqlx::query_scalar::<_, String>($crate::store::sql::auth::SESSION_DELETE_OF_USER)
                    .bind(id)
                    .bind(user_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn user_set_banned(
                &self,
                user_id: uuid::Uuid,
                banned: bool,
                reason: Option<&str>,
            ) -> $crate::store::StoreResult<Option<$crate::store::UserRow>> {
                sqlx::query_as::<_, $crate::store::UserRow>($crate::store::sql::auth::USER_SET_BANNED)
                    .bind(user_id)
                    .bind(banned)
                    .bind(reason)
                    .bind($crate::store::now())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Users whose email or name contains `query` (case-insensitive), by id.
            pub async fn user_search(
                &self,
                query: Option<&str>,
                after: Option<uuid::Uuid>,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<$crate::store::UserRow>> {
                let pattern = query.map(|q| {
                    let escaped = q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                    format!("%{escaped}%")
                });
                sqlx::query_as::<_, $crate::store::UserRow>($crate::store::sql::auth::USER_SEARCH)
                    .bind(pattern)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn session_create(
                &self,
                user_id: uuid::Uuid,
                token_hash: &str,
                expires_at: chrono::DateTime<chrono::Utc>,
                ip_address: Option<&str>,
                user_agent: Option<&str>,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::SessionRow> {
                sqlx::query_as::<_, $crate::store::SessionRow>($crate::store::sql::auth::SESSION_CREATE)
                    .bind(uuid::Uuid::now_v7())
                    .bind(user_id)
                    .bind(token_hash)
                    .bind(expires_at)
                    .bind(ip_address)
                    .bind(user_agent)
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn session_get_by_token(
                &self,
                token_hash: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::SessionRow>> {
                sqlx::query_as::<_, $crate::store::SessionRow>($crate::store::sql::auth::SESSION_GET_BY_TOKEN)
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Rolling expiry: moves `expires_at` forward.
            pub async fn session_extend(
                &self,
                id: uuid::Uuid,
                expires_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::auth::SESSION_EXTEND)
                    .bind(id)
                    .bind(expires_at)
                    .bind($crate::store::now())
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Deletes one session by token hash; true if it existed.
            pub async fn session_delete_by_token(&self, token_hash: &str) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::auth::SESSION_DELETE_BY_TOKEN)
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() > 0)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Deletes a user's sessions (all, or all but `keep`); returns their token hashes.
            pub async fn sessions_delete_for_user(
                &self,
                user_id: uuid::Uuid,
                keep: Option<uuid::Uuid>,
            ) -> $crate::store::StoreResult<Vec<String>> {
                sqlx::query_scalar::<_, String>($crate::store::sql::auth::SESSIONS_DELETE_FOR_USER)
                    .bind(user_id)
                    .bind(keep)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Removes sessions that expired before `before`; returns how many.
            pub async fn sessions_delete_expired(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<u64> {
                sqlx::query($crate::store::sql::auth::SESSIONS_DELETE_EXPIRED)
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn verification_create(
                &self,
                identifier: &str,
                value_hash: &str,
                expires_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<()> {
                let now = $crate::store::now();
                sqlx::query($crate::store::sql::auth::VERIFICATION_CREATE)
                    .bind(uuid::Uuid::now_v7())
                    .bind(identifier)
                    .bind(value_hash)
                    .bind(expires_at)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Single use: deletes the verification and returns its identifier if it was
            /// unexpired at `now` and its identifier starts with `kind`.
            pub async fn verification_consume(
                &self,
                kind: &str,
                value_hash: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<Option<String>> {
                let identifier: Option<(String, chrono::DateTime<chrono::Utc>)> =
                    sqlx::query_as($crate::store::sql::auth::VERIFICATION_CONSUME)
                        .bind(value_hash)
                        .bind(kind)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(identifier.filter(|(_, exp)| *exp > now).map(|(id, _)| id))
            }

            pub async fn api_key_create(
                &self,
                user_id: uuid::Uuid,
                name: &str,
                prefix: &str,
                key_hash: &str,
                scope: $crate::store::KeyScope,
                expires_at: Option<chrono::DateTime<chrono::Utc>>,
            ) -> $crate::store::StoreResult<$crate::store::ApiKeyRow> {
                sqlx::query_as::<_, $crate::store::ApiKeyRow>($crate::store::sql::auth::API_KEY_CREATE)
                    .bind(uuid::Uuid::now_v7())
                    .bind(user_id)
                    .bind(name)
                    .bind(prefix)
                    .bind(key_hash)
                    .bind(scope.as_str())
                    .bind(expires_at)
                    .bind($crate::store::now())
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn api_key_list(
                &self,
                user_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Vec<$crate::store::ApiKeyRow>> {
                sqlx::query_as::<_, $crate::store::ApiKeyRow>($crate::store::sql::auth::API_KEY_LIST)
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn api_key_get_by_hash(
                &self,
                key_hash: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::ApiKeyRow>> {
                sqlx::query_as::<_, $crate::store::ApiKeyRow>($crate::store::sql::auth::API_KEY_GET_BY_HASH)
                    .bind(key_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Revokes the owner's key; returns its hash if it was live.
            pub async fn api_key_revoke(
                &self,
                user_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Option<String>> {
                sqlx::query_scalar::<_, String>($crate::store::sql::auth::API_KEY_REVOKE)
                    .bind(id)
                    .bind(user_id)
                    .bind($crate::store::now())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn api_key_touch(&self, id: uuid::Uuid) -> $crate::store::StoreResult<()> {
                sqlx::query($crate::store::sql::auth::API_KEY_TOUCH)
                    .bind(id)
                    .bind($crate::store::now())
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Hashes of a user's live keys (to drop them from caches).
            pub async fn api_key_hashes_for_user(
                &self,
                user_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Vec<String>> {
                sqlx::query_scalar::<_, String>($crate::store::sql::auth::API_KEY_HASHES_FOR_USER)
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn api_keys_revoke_for_user(
                &self,
                user_id: uuid::Uuid,
            ) -> $crate::store::StoreResult<Vec<String>> {
                sqlx::query_scalar::<_, String>($crate::store::sql::auth::API_KEYS_REVOKE_FOR_USER)
                    .bind(user_id)
                    .bind($crate::store::now())
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn device_codes_deny_for_user(&self, user_id: uuid::Uuid) -> $crate::store::StoreResult<u64> {
                sqlx::query($crate::store::sql::auth::DEVICE_CODES_DENY_FOR_USER)
                    .bind(user_id)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn device_code_create(
                &self,
                device_code_hash: &str,
                user_code: &str,
                client_name: &str,
                interval_secs: i32,
                expires_at: chrono::DateTime<chrono::Utc>,
            ) -> $crate::store::StoreResult<$crate::store::DeviceCodeRow> {
                sqlx::query_as::<_, $crate::store::DeviceCodeRow>($crate::store::sql::auth::DEVICE_CODE_CREATE)
                    .bind(uuid::Uuid::now_v7())
                    .bind(device_code_hash)
                    .bind(user_code)
                    .bind(client_name)
                    .bind(interval_secs)
                    .bind(expires_at)
                    .bind($crate::store::now())
                    .fetch_one(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn device_code_by_user_code(
                &self,
                user_code: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::DeviceCodeRow>> {
                sqlx::query_as::<_, $crate::store::DeviceCodeRow>($crate::store::sql::auth::DEVICE_CODE_BY_USER_CODE)
                    .bind(user_code)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Approves or denies a pending, unexpired code; false if it was not pending.
            pub async fn device_code_decide(
                &self,
                user_code: &str,
                user_id: uuid::Uuid,
                approve: bool,
            ) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::auth::DEVICE_CODE_DECIDE)
                    .bind(user_code)
                    .bind(user_id)
                    .bind(if approve {
                        $crate::store::DeviceCodeStatus::Approved
                    } else {
                        $crate::store::DeviceCodeStatus::Denied
                    })
                    .bind($crate::store::now())
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() == 1)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Records a poll and returns the row as it was before this poll.
            pub async fn device_code_poll(
                &self,
                device_code_hash: &str,
            ) -> $crate::store::StoreResult<Option<$crate::store::DeviceCodeRow>> {
                let row = sqlx::query_as::<_, $crate::store::DeviceCodeRow>(
                    $crate::store::sql::auth::DEVICE_CODE_POLL_SELECT_DEVICE_CODES,
                )
                .bind(device_code_hash)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = &row {
                    sqlx::query($crate::store::sql::auth::DEVICE_CODE_POLL_UPDATE_DEVICE_CODES)
                        .bind(row.id)
                        .bind($crate::store::now())
                        .execute(&self.pool)
                        .await?;
                }
                Ok(row)
            }

            /// approved → consumed, exactly once; true for the caller that won.
            pub async fn device_code_consume(&self, id: uuid::Uuid) -> $crate::store::StoreResult<bool> {
                sqlx::query($crate::store::sql::auth::DEVICE_CODE_CONSUME)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map(|r| r.rows_affected() == 1)
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            /// Deleted accounts that still own files or unfinished tasks, at most `limit`.
            pub async fn users_deleted_unfinished(&self, limit: i64) -> $crate::store::StoreResult<Vec<uuid::Uuid>> {
                sqlx::query_scalar::<_, uuid::Uuid>($crate::store::sql::auth::USERS_DELETED_UNFINISHED)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn tasks_unfinished_of_user(
                &self,
                user_id: uuid::Uuid,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<uuid::Uuid>> {
                sqlx::query_scalar::<_, uuid::Uuid>($crate::store::sql::auth::TASKS_UNFINISHED_OF_USER)
                    .bind(user_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }

            pub async fn asset_ids_of_user(
                &self,
                user_id: uuid::Uuid,
                limit: i64,
            ) -> $crate::store::StoreResult<Vec<uuid::Uuid>> {
                sqlx::query_scalar::<_, uuid::Uuid>($crate::store::sql::auth::ASSET_IDS_OF_USER)
                    .bind(user_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err($crate::store::StoreError::from_sqlx)
            }
        }
    };
}

pub(crate) use auth_queries;

/// The writes of an account deletion after the engine's own checks, inside its transaction
/// `$tx`: the user row becomes an anonymised tombstone and every credential, link and
/// pending upload of the user goes. Yields the session and API key hashes to forget.
macro_rules! delete_account_writes {
    ($tx:expr, $user_id:expr, $now:expr) => {{
        use $crate::store::sql::auth as q;
        let email = format!("deleted-{}@deleted.invalid", $user_id.simple());
        let updated = sqlx::query(q::USER_ANONYMIZE).bind($user_id).bind(email).bind($now).execute(&mut *$tx).await?;
        if updated.rows_affected() != 1 {
            return Err($crate::store::StoreError::NotFound);
        }
        let mut hashes: Vec<String> = sqlx::query_scalar($crate::store::sql::auth::SESSIONS_DELETE_FOR_USER)
            .bind($user_id)
            .bind(None::<uuid::Uuid>)
            .fetch_all(&mut *$tx)
            .await?;
        hashes.extend(
            sqlx::query_scalar::<_, String>(q::API_KEYS_DELETE_FOR_USER).bind($user_id).fetch_all(&mut *$tx).await?,
        );
        for statement in [
            q::ACCOUNTS_DELETE_FOR_USER,
            q::DEVICE_CODES_DELETE_FOR_USER,
            q::PENDING_UPLOADS_DELETE_FOR_USER,
            q::IDEMPOTENCY_KEYS_DELETE_FOR_USER,
            $crate::store::sql::webhooks::WEBHOOK_ENDPOINTS_DELETE_FOR_USER,
            $crate::store::sql::webhooks::WEBHOOK_SETTINGS_DELETE_FOR_USER,
        ] {
            sqlx::query(statement).bind($user_id).execute(&mut *$tx).await?;
        }
        sqlx::query(q::VERIFICATIONS_DELETE_FOR_USER).bind($user_id.to_string()).execute(&mut *$tx).await?;
        hashes
    }};
}

pub(crate) use delete_account_writes;
