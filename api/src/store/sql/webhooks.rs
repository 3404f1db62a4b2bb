//! The SQL of `store/webhook_queries.rs`, one constant per statement (both engines accept it).
//! Every statement here is prepared on PostgreSQL and SQLite by a test (`sql::all`).

statements! {
    /// `webhook_endpoint_insert`
    WEBHOOK_ENDPOINT_INSERT = concat!(
        "INSERT INTO webhook_endpoints (id, user_id, url, description, events, secret, secret_key_id, enabled, created_at, updated_at,
        relay, relay_seen_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $8, $9, CASE WHEN $9 THEN $8 END) RETURNING ",
        crate::store::webhook_queries::endpoint_columns!(),
    );
    /// `webhook_endpoints_of_user`
    WEBHOOK_ENDPOINTS_OF_USER = concat!(
        "SELECT ",
        crate::store::webhook_queries::endpoint_columns!(),
        " FROM webhook_endpoints WHERE user_id = $1 ORDER BY created_at, id",
    );
    /// `webhook_endpoint_get`
    WEBHOOK_ENDPOINT_GET = concat!(
        "SELECT ",
        crate::store::webhook_queries::endpoint_columns!(),
        " FROM webhook_endpoints WHERE id = $1",
    );
    /// `webhook_endpoint_update`
    WEBHOOK_ENDPOINT_UPDATE = concat!(
        "UPDATE webhook_endpoints SET url = $2, description = $3, events = $4, enabled = $5, disabled_reason = $6,
        failing_since = $7, updated_at = $8
        WHERE id = $1 RETURNING ",
        crate::store::webhook_queries::endpoint_columns!(),
    );
    /// `webhook_endpoint_rotate`
    WEBHOOK_ENDPOINT_ROTATE = concat!(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_key_id = secret_key_id, previous_until = $4,
        secret = $2, secret_key_id = $3, updated_at = $5
        WHERE id = $1 RETURNING ",
        crate::store::webhook_queries::endpoint_columns!(),
    );
    /// `webhook_endpoint_delete`
    WEBHOOK_ENDPOINT_DELETE = "DELETE FROM webhook_endpoints WHERE id = $1 AND user_id = $2";
    /// `webhook_endpoint_failed`
    WEBHOOK_ENDPOINT_FAILED = "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) WHERE id = $1";
    /// `webhook_endpoint_succeeded`
    WEBHOOK_ENDPOINT_SUCCEEDED = "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL";
    /// `webhook_endpoint_disable`
    WEBHOOK_ENDPOINT_DISABLE = "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $2, updated_at = $3 WHERE id = $1 AND enabled";
    /// `webhook_endpoints_failing`
    WEBHOOK_ENDPOINTS_FAILING = concat!(
        "SELECT ",
        crate::store::webhook_queries::endpoint_columns!(),
        " FROM webhook_endpoints WHERE failing_since IS NOT NULL OR NOT enabled ORDER BY failing_since, id LIMIT $1",
    );
    /// `webhook_delivery_insert`
    WEBHOOK_DELIVERY_INSERT = concat!(
        "INSERT INTO webhook_deliveries (id, endpoint_id, user_id, url, event_type, task_id, seq, data, next_attempt_at, created_at, updated_at)
        VALUES ($1, $2, $3, NULL, $4, NULL, NULL, $5, $6, $6, $6) RETURNING ",
        crate::store::webhook_queries::delivery_columns!(),
    );
    /// `webhook_deliveries_of_endpoint`
    WEBHOOK_DELIVERIES_OF_ENDPOINT = concat!(
        "SELECT ",
        crate::store::webhook_queries::delivery_columns!(),
        " FROM webhook_deliveries WHERE endpoint_id = $1 AND ($2 IS NULL OR created_at < $2)
        ORDER BY created_at DESC LIMIT $3",
    );
    /// `webhook_delivery_get`
    WEBHOOK_DELIVERY_GET = concat!(
        "SELECT ",
        crate::store::webhook_queries::delivery_columns!(),
        " FROM webhook_deliveries WHERE id = $1",
    );
    /// `webhook_delivery_replay`
    WEBHOOK_DELIVERY_REPLAY = "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, lease_until = NULL, updated_at = $2
    WHERE id = $1 AND (status <> 'pending' OR lease_until IS NULL)";
    /// `webhook_deliveries_claim`
    WEBHOOK_DELIVERIES_CLAIM = concat!(
        "UPDATE webhook_deliveries SET lease_until = $2, attempts = attempts + 1, updated_at = $1
        WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1
                     AND (lease_until IS NULL OR lease_until < $1)
                     AND (url IS NOT NULL OR NOT EXISTS (
                          SELECT 1 FROM webhook_endpoints e WHERE e.id = endpoint_id AND e.relay))
                     ORDER BY next_attempt_at LIMIT $3)
        AND status = 'pending' AND (lease_until IS NULL OR lease_until < $1)
        RETURNING ",
        crate::store::webhook_queries::delivery_columns!(),
    );
    /// `webhook_relay_seen`
    WEBHOOK_RELAY_SEEN = "UPDATE webhook_endpoints SET relay_seen_at = $2 WHERE id = $1 AND relay";
    /// `webhook_relay_claim`
    WEBHOOK_RELAY_CLAIM = concat!(
        "UPDATE webhook_deliveries SET lease_until = $2, attempts = attempts + 1, updated_at = $1
        WHERE id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = $4 AND url IS NULL AND status = 'pending'
                     AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
                     ORDER BY next_attempt_at, seq LIMIT $3)
        AND status = 'pending' AND (lease_until IS NULL OR lease_until < $1)
        RETURNING ",
        crate::store::webhook_queries::delivery_columns!(),
    );
    /// `webhook_relays_sweep`
    WEBHOOK_RELAYS_SWEEP = "DELETE FROM webhook_endpoints WHERE relay AND relay_seen_at < $1";
    /// `webhook_delivery_record`
    WEBHOOK_ATTEMPT_INSERT = "INSERT INTO webhook_attempts (id, delivery_id, attempt, status_code, error, latency_ms, response_excerpt, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    /// `webhook_delivery_record`
    WEBHOOK_DELIVERY_RECORD = "UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, lease_until = NULL, last_status = $4,
    last_error = $5, updated_at = $6 WHERE id = $1";
    /// `webhook_attempts_of`
    WEBHOOK_ATTEMPTS_OF = "SELECT id, delivery_id, attempt, status_code, error, latency_ms, response_excerpt, created_at
    FROM webhook_attempts WHERE delivery_id = $1 ORDER BY created_at, attempt";
    /// `webhook_deliveries_sweep`
    WEBHOOK_DELIVERIES_SWEEP = "DELETE FROM webhook_deliveries WHERE created_at < $1 AND status <> 'pending'";
    /// `webhook_endpoints_all`
    WEBHOOK_ENDPOINTS_ALL = concat!(
        "SELECT ",
        crate::store::webhook_queries::endpoint_columns!(),
        " FROM webhook_endpoints ORDER BY id",
    );
    /// `webhook_secrets_replace`
    WEBHOOK_SECRETS_REPLACE = "UPDATE webhook_endpoints SET secret = $2, secret_key_id = $3, previous_secret = $4, previous_key_id = $5
    WHERE id = $1";
    /// `webhook_settings_get`
    WEBHOOK_SETTINGS_GET = "SELECT credits_low_threshold FROM webhook_settings WHERE user_id = $1";
    /// `webhook_settings_put`
    WEBHOOK_SETTINGS_PUT = "INSERT INTO webhook_settings (user_id, credits_low_threshold, updated_at) VALUES ($1, $2, $3)
    ON CONFLICT (user_id) DO UPDATE SET credits_low_threshold = $2, updated_at = $3";
    /// `delete_account_writes!`: a deleted account's endpoints (their deliveries and attempts
    /// go with them) and settings.
    WEBHOOK_ENDPOINTS_DELETE_FOR_USER = "DELETE FROM webhook_endpoints WHERE user_id = $1";
    /// `delete_account_writes!`
    WEBHOOK_SETTINGS_DELETE_FOR_USER = "DELETE FROM webhook_settings WHERE user_id = $1";
    /// `webhook_deliveries_stuck`
    WEBHOOK_DELIVERIES_STUCK = "SELECT CAST(COUNT(*) AS BIGINT) FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at < $1";
}
