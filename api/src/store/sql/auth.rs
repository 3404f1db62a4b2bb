//! The SQL of `store/auth_queries.rs`, one constant per statement (both engines accept it).
//! Every statement here is prepared on PostgreSQL and SQLite by a test (`sql::all`).

statements! {
    /// `user_create_with_password`, `password_hash_set`: the credential account
    CREDENTIAL_ACCOUNT_INSERT = "INSERT INTO accounts (id, user_id, provider_id, account_id, password, created_at, updated_at)
    VALUES ($1, $2, 'credential', $3, $4, $5, $5)";
    /// `password_hash_get`
    PASSWORD_HASH_GET = "SELECT password FROM accounts WHERE user_id = $1 AND provider_id = 'credential'";
    /// `password_hash_set`
    PASSWORD_HASH_SET_UPDATE_ACCOUNTS = "UPDATE accounts SET password = $2, updated_at = $3 WHERE user_id = $1 AND provider_id = 'credential'";
    /// `account_get`
    ACCOUNT_GET = "SELECT id, user_id, provider_id, account_id, password, created_at, updated_at
    FROM accounts WHERE provider_id = $1 AND account_id = $2";
    /// `account_link`
    ACCOUNT_LINK = "INSERT INTO accounts (id, user_id, provider_id, account_id, access_token, scope, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7)";
    /// `account_touch`: an external sign-in just happened through this account
    ACCOUNT_TOUCH = "UPDATE accounts SET updated_at = $3 WHERE provider_id = $1 AND account_id = $2";
    /// `last_external_sign_in`
    LAST_EXTERNAL_SIGN_IN = "SELECT updated_at FROM accounts WHERE user_id = $1 AND provider_id <> 'credential'
    ORDER BY updated_at DESC LIMIT 1";
    /// `user_set_email_verified`
    USER_SET_EMAIL_VERIFIED = "UPDATE users SET email_verified = $2, updated_at = $3 WHERE id = $1";
    /// `user_set_profile`: the name, and the picture when `$3` (NULL clears it)
    USER_SET_PROFILE = concat!(
        "UPDATE users SET name = COALESCE($2, name), image = CASE WHEN $3 THEN $4 ELSE image END, updated_at = $5
        WHERE id = $1 RETURNING ",
        user_columns!(),
    );
    /// `sessions_of_user`: the live ones, newest first
    SESSIONS_OF_USER = "SELECT id, user_id, token, expires_at, ip_address, user_agent, created_at, updated_at
    FROM sessions WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC, id DESC";
    /// `session_delete_of_user`
    SESSION_DELETE_OF_USER = "DELETE FROM sessions WHERE id = $1 AND user_id = $2 RETURNING token";
    /// `user_set_banned`
    USER_SET_BANNED = concat!(
        "UPDATE users SET banned = $2, ban_reason = $3, updated_at = $4 WHERE id = $1
        RETURNING ",
        user_columns!(),
    );
    /// `user_search`
    USER_SEARCH = concat!(
        "SELECT ",
        user_columns!(),
        "
        FROM users
        WHERE ($1 IS NULL OR lower(email) LIKE $1 ESCAPE '\\' OR lower(name) LIKE $1 ESCAPE '\\')
        AND ($2 IS NULL OR id > $2)
        ORDER BY id LIMIT $3",
    );
    /// `session_create`
    SESSION_CREATE = "INSERT INTO sessions (id, user_id, token, expires_at, ip_address, user_agent, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
    RETURNING id, user_id, token, expires_at, ip_address, user_agent, created_at, updated_at";
    /// `session_get_by_token`
    SESSION_GET_BY_TOKEN = "SELECT id, user_id, token, expires_at, ip_address, user_agent, created_at, updated_at
    FROM sessions WHERE token = $1";
    /// `session_extend`
    SESSION_EXTEND = "UPDATE sessions SET expires_at = $2, updated_at = $3 WHERE id = $1";
    /// `session_delete_by_token`
    SESSION_DELETE_BY_TOKEN = "DELETE FROM sessions WHERE token = $1";
    /// `sessions_delete_for_user`
    SESSIONS_DELETE_FOR_USER = "DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2) RETURNING token";
    /// `sessions_delete_expired`
    SESSIONS_DELETE_EXPIRED = "DELETE FROM sessions WHERE expires_at < $1";
    /// `verification_create`
    VERIFICATION_CREATE = "INSERT INTO verifications (id, identifier, value, expires_at, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $5)";
    /// `verification_consume`
    VERIFICATION_CONSUME = "DELETE FROM verifications WHERE value = $1 AND substr(identifier, 1, length($2)) = $2
    RETURNING identifier, expires_at";
    /// `api_key_create`
    API_KEY_CREATE = "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scope, expires_at, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    RETURNING id, user_id, name, prefix, key_hash, scope, expires_at, last_used_at, revoked_at, created_at";
    /// `api_key_list`
    API_KEY_LIST = "SELECT id, user_id, name, prefix, key_hash, scope, expires_at, last_used_at, revoked_at, created_at
    FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id";
    /// `api_key_get_by_hash`
    API_KEY_GET_BY_HASH = "SELECT id, user_id, name, prefix, key_hash, scope, expires_at, last_used_at, revoked_at, created_at
    FROM api_keys WHERE key_hash = $1";
    /// `api_key_revoke`
    API_KEY_REVOKE = "UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
    RETURNING key_hash";
    /// `api_key_touch`
    API_KEY_TOUCH = "UPDATE api_keys SET last_used_at = $2 WHERE id = $1";
    /// `api_key_hashes_for_user`
    API_KEY_HASHES_FOR_USER = "SELECT key_hash FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL";
    /// `api_keys_revoke_for_user`
    API_KEYS_REVOKE_FOR_USER = "UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL RETURNING key_hash";
    /// `device_codes_deny_for_user`
    DEVICE_CODES_DENY_FOR_USER = "UPDATE device_codes SET status = 'denied' WHERE user_id = $1 AND status = 'approved'";
    /// `device_code_create`
    DEVICE_CODE_CREATE = "INSERT INTO device_codes (id, device_code_hash, user_code, client_name, interval_secs, expires_at, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    RETURNING id, device_code_hash, user_code, client_name, status, user_id, interval_secs, expires_at,
    last_polled_at, created_at";
    /// `device_code_by_user_code`
    DEVICE_CODE_BY_USER_CODE = "SELECT id, device_code_hash, user_code, client_name, status, user_id, interval_secs, expires_at,
    last_polled_at, created_at
    FROM device_codes WHERE user_code = $1";
    /// `device_code_decide`
    DEVICE_CODE_DECIDE = "UPDATE device_codes SET status = $3, user_id = $2
    WHERE user_code = $1 AND status = 'pending' AND expires_at > $4";
    /// `device_code_poll`
    DEVICE_CODE_POLL_SELECT_DEVICE_CODES = "SELECT id, device_code_hash, user_code, client_name, status, user_id, interval_secs, expires_at,
    last_polled_at, created_at
    FROM device_codes WHERE device_code_hash = $1";
    /// `device_code_poll`
    DEVICE_CODE_POLL_UPDATE_DEVICE_CODES = "UPDATE device_codes SET last_polled_at = $2 WHERE id = $1";
    /// `device_code_consume`
    DEVICE_CODE_CONSUME = "UPDATE device_codes SET status = 'consumed' WHERE id = $1 AND status = 'approved'";
    /// `user_delete_account`: the tombstone (anonymised, banned, marked deleted)
    USER_ANONYMIZE = "UPDATE users SET email = $2, name = 'Deleted user', image = NULL, role = 'user',
    email_verified = FALSE, banned = TRUE, ban_reason = 'account deleted', deleted_at = $3, updated_at = $3
    WHERE id = $1 AND deleted_at IS NULL";
    /// `user_delete_account`
    API_KEYS_DELETE_FOR_USER = "DELETE FROM api_keys WHERE user_id = $1 RETURNING key_hash";
    /// `user_delete_account`: password and OAuth links
    ACCOUNTS_DELETE_FOR_USER = "DELETE FROM accounts WHERE user_id = $1";
    /// `user_delete_account`
    DEVICE_CODES_DELETE_FOR_USER = "DELETE FROM device_codes WHERE user_id = $1";
    /// `user_delete_account`: mailed links (their identifier ends with the user id)
    VERIFICATIONS_DELETE_FOR_USER = "DELETE FROM verifications WHERE substr(identifier, length(identifier) - 35) = $1";
    /// `user_delete_account`: uploads not completed (the incoming sweep removes their objects)
    PENDING_UPLOADS_DELETE_FOR_USER = "DELETE FROM pending_uploads WHERE user_id = $1";
    /// `user_delete_account`: stored answers of money-moving requests
    IDEMPOTENCY_KEYS_DELETE_FOR_USER = "DELETE FROM idempotency_keys WHERE user_id = $1";
    /// `users_deleted_unfinished`: deleted accounts that still own files or unfinished tasks
    USERS_DELETED_UNFINISHED = "SELECT u.id FROM users u WHERE u.deleted_at IS NOT NULL
    AND (EXISTS (SELECT 1 FROM assets a WHERE a.user_id = u.id AND a.visibility <> 'admin-private')
         OR EXISTS (SELECT 1 FROM tasks t WHERE t.user_id = u.id AND t.status IN ('pending', 'queued', 'running')))
    ORDER BY u.id LIMIT $1";
    /// `tasks_unfinished_of_user`
    TASKS_UNFINISHED_OF_USER = "SELECT id FROM tasks WHERE user_id = $1 AND status IN ('pending', 'queued', 'running')
    ORDER BY id LIMIT $2";
    /// `asset_ids_of_user`
    /// (admin-bucket files are the site's — banner thumbnails, style previews —, not the uploader's)
    ASSET_IDS_OF_USER = "SELECT id FROM assets WHERE user_id = $1 AND visibility <> 'admin-private' ORDER BY id LIMIT $2";
}
