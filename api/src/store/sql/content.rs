//! The SQL of `store/content_queries.rs`, one constant per statement (both engines accept it).
//! Every statement here is prepared on PostgreSQL and SQLite by a test (`sql::all`).

statements! {
    /// `banner_list`
    BANNER_LIST = concat!(
        "SELECT ",
        crate::store::content_queries::banner_columns!(),
        " FROM banners
        WHERE ($1 IS NULL OR type = $1)
        AND ($2 IS NULL OR (is_active AND (starts_at IS NULL OR starts_at <= $2) AND (ends_at IS NULL OR ends_at > $2)))
        ORDER BY type, position, created_at",
    );
    /// `banner_get`
    BANNER_GET = concat!(
        "SELECT ",
        crate::store::content_queries::banner_columns!(),
        " FROM banners WHERE id = $1",
    );
    /// `banner_upsert`
    BANNER_UPSERT = concat!(
        "INSERT INTO banners (id, title, description, thumbnail, link, link_text, link_target, type, position, badge,
        badge_color, is_active, starts_at, ends_at, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
        ON CONFLICT (id) DO UPDATE SET title = $2, description = $3, thumbnail = $4, link = $5, link_text = $6,
        link_target = $7, type = $8, position = $9, badge = $10, badge_color = $11, is_active = $12,
        starts_at = $13, ends_at = $14, updated_at = $16
        RETURNING ",
        crate::store::content_queries::banner_columns!(),
    );
    /// `banner_delete`
    BANNER_DELETE = "DELETE FROM banners WHERE id = $1";
    /// `banner_reorder`
    BANNER_REORDER = "UPDATE banners SET position = $3, updated_at = $4 WHERE id = $1 AND type = $2";
}
