//! The SQL of `store/asset_queries.rs`, one constant per statement (both engines accept it).
//! Every statement here is prepared on PostgreSQL and SQLite by a test (`sql::all`).

statements! {
    /// `asset_create`
    ASSET_CREATE = "INSERT INTO assets (id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
    RETURNING id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at, thumbnail_key";
    /// `asset_get`
    ASSET_GET = "SELECT id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at, thumbnail_key
    FROM assets WHERE id = $1";
    /// `asset_get_by_key`
    ASSET_GET_BY_KEY = "SELECT id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at, thumbnail_key
    FROM assets WHERE bucket = $1 AND storage_key = $2";
    /// `asset_list`
    ASSET_LIST = "SELECT id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at, thumbnail_key
    FROM assets WHERE user_id = $1 AND ($2 IS NULL OR module = $2) AND ($3 IS NULL OR id < $3)
    ORDER BY id DESC LIMIT $4";
    /// `asset_set_thumbnail`
    ASSET_SET_THUMBNAIL = "UPDATE assets SET thumbnail_key = $2 WHERE id = $1";
    /// `asset_delete`
    ASSET_DELETE = "DELETE FROM assets WHERE id = $1";
    /// `asset_move`
    ASSET_MOVE = "UPDATE assets SET bucket = $2, storage_key = $3, visibility = $4, updated_at = $5 WHERE id = $1
    RETURNING id, user_id, bucket, storage_key, visibility, module, filename, mime_type, size, task_id, created_at, updated_at, thumbnail_key";
    /// `storage_usage`
    STORAGE_USAGE = "SELECT (SELECT CAST(SUM(size) AS BIGINT) FROM assets WHERE user_id = $1),
    (SELECT CAST(SUM(size) AS BIGINT) FROM pending_uploads WHERE user_id = $1)";
    /// `pending_upload_insert_within`
    PENDING_UPLOAD_INSERT_WITHIN = "INSERT INTO pending_uploads (storage_key, upload_key, bucket, user_id, module, filename, content_type, size, visibility, expires_at, created_at)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
    WHERE $12 < 0
    OR COALESCE((SELECT SUM(size) FROM assets WHERE user_id = $4), 0)
    + COALESCE((SELECT SUM(size) FROM pending_uploads WHERE user_id = $4), 0)
    + $8 <= $12";
    /// `pending_upload_by_upload_key`
    PENDING_UPLOAD_BY_UPLOAD_KEY = "SELECT storage_key, upload_key, bucket, user_id, module, filename, content_type, size, visibility, expires_at, created_at
    FROM pending_uploads WHERE bucket = $1 AND upload_key = $2";
    /// `pending_upload_get`
    PENDING_UPLOAD_GET = "SELECT storage_key, upload_key, bucket, user_id, module, filename, content_type, size, visibility, expires_at, created_at
    FROM pending_uploads WHERE bucket = $1 AND storage_key = $2";
    /// `pending_upload_delete`
    PENDING_UPLOAD_DELETE = "DELETE FROM pending_uploads WHERE bucket = $1 AND storage_key = $2";
    /// `pending_uploads_expired`
    PENDING_UPLOADS_EXPIRED = "SELECT storage_key, upload_key, bucket, user_id, module, filename, content_type, size, visibility, expires_at, created_at
    FROM pending_uploads WHERE expires_at < $1 ORDER BY expires_at LIMIT $2";
}
