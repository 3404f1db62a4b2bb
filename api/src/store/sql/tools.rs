//! The SQL of `store/tool_queries.rs`, one constant per statement (both engines accept it).
//! Every statement here is prepared on PostgreSQL and SQLite by a test (`sql::all`).

statements! {
    /// `tool_type_list`
    TOOL_TYPE_LIST = "SELECT id, name, display_name, icon, color, description, created_at, updated_at FROM tool_types ORDER BY name";
    /// `tool_type_upsert`
    TOOL_TYPE_UPSERT = "INSERT INTO tool_types (id, name, display_name, icon, color, description, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (id) DO UPDATE SET name = $2, display_name = $3, icon = $4, color = $5, description = $6, updated_at = $8
    RETURNING id, name, display_name, icon, color, description, created_at, updated_at";
    /// `tool_type_delete`
    TOOL_TYPE_DELETE = "DELETE FROM tool_types WHERE id = $1";
    /// `tool_list`
    TOOL_LIST = "SELECT id, slug, title, description, tool_type_id, config, credits_cost, is_active, created_at, updated_at, featured, position
    FROM tools WHERE ($1 = FALSE OR is_active = TRUE) AND ($2 = FALSE OR featured = TRUE) ORDER BY position, slug";
    /// `tool_get`
    TOOL_GET = "SELECT id, slug, title, description, tool_type_id, config, credits_cost, is_active, created_at, updated_at, featured, position
    FROM tools WHERE id = $1";
    /// `tool_get_by_slug`
    TOOL_GET_BY_SLUG = "SELECT id, slug, title, description, tool_type_id, config, credits_cost, is_active, created_at, updated_at, featured, position
    FROM tools WHERE slug = $1";
    /// `tool_upsert`
    TOOL_UPSERT = "INSERT INTO tools (id, slug, title, description, tool_type_id, config, credits_cost, is_active, created_at, updated_at, featured, position)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (id) DO UPDATE SET slug = $2, title = $3, description = $4, tool_type_id = $5, config = $6,
    credits_cost = $7, is_active = $8, updated_at = $10, featured = $11, position = $12
    RETURNING id, slug, title, description, tool_type_id, config, credits_cost, is_active, created_at, updated_at, featured, position";
    /// `tool_delete`
    TOOL_DELETE = "DELETE FROM tools WHERE id = $1";
    /// `provider_list`
    PROVIDER_LIST = concat!(
        "SELECT ",
        crate::store::tool_queries::provider_columns!(),
        " FROM providers ORDER BY name",
    );
    /// `provider_get`
    PROVIDER_GET = concat!(
        "SELECT ",
        crate::store::tool_queries::provider_columns!(),
        " FROM providers WHERE id = $1",
    );
    /// `provider_upsert`
    PROVIDER_UPSERT = concat!(
        "INSERT INTO providers (id, name, type, api_key, api_key_id, api_key_last4, base_url, config, is_active,
        is_healthy, health_checked_at, health_message, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        ON CONFLICT (id) DO UPDATE SET name = $2, api_key = $4, api_key_id = $5, api_key_last4 = $6, base_url = $7,
        config = $8, is_active = $9, updated_at = $14
        RETURNING ",
        crate::store::tool_queries::provider_columns!(),
    );
    /// `provider_set_health`
    PROVIDER_SET_HEALTH = "UPDATE providers SET is_healthy = $2, health_message = $3, health_checked_at = $4 WHERE id = $1";
    /// `provider_keys_replace`
    PROVIDER_KEYS_REPLACE = "UPDATE providers SET api_key = $3, api_key_id = $4, updated_at = $5 WHERE id = $1 AND api_key_id = $2";
    /// `provider_ensure_local`
    PROVIDER_ENSURE_LOCAL_INSERT_PROVIDERS = "INSERT INTO providers (id, name, type, is_active, is_healthy, health_checked_at, created_at, updated_at)
    VALUES ($1, 'local', 'local', TRUE, TRUE, $2, $2, $2) ON CONFLICT (name) DO NOTHING";
    /// `provider_ensure_local`
    PROVIDER_ENSURE_LOCAL_SELECT_PROVIDERS = "SELECT id FROM providers WHERE name = 'local'";
}
