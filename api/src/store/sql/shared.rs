//! The SQL of `store/shared.rs`, one constant per statement (both engines accept it).
//! Every statement here is prepared on PostgreSQL and SQLite by a test (`sql::all`).

statements! {
    /// `user_create`
    USER_CREATE = concat!(
        "INSERT INTO users (id, email, name, role, email_verified, created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $6)
        RETURNING ",
        user_columns!(),
    );
    /// `user_get`
    USER_GET = concat!(
        "SELECT ",
        user_columns!(),
        "
        FROM users WHERE id = $1",
    );
    /// `user_get_by_email`
    USER_GET_BY_EMAIL = concat!(
        "SELECT ",
        user_columns!(),
        "
        FROM users WHERE email = $1",
    );
    /// `user_list`
    USER_LIST = concat!(
        "SELECT ",
        user_columns!(),
        "
        FROM users WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
    );
    /// `user_count`
    USER_COUNT = "SELECT COUNT(*) FROM users";
    /// `user_count_with_role`
    USER_COUNT_WITH_ROLE = "SELECT COUNT(*) FROM users WHERE role = $1";
}
