//! The SQL of `store/ledger_queries.rs`, one constant per statement (both engines accept it).
//! Every statement here is prepared on PostgreSQL and SQLite by a test (`sql::all`).

statements! {
    /// `credits_ensure_on`
    CREDITS_ENSURE_ON = "INSERT INTO credits (id, user_id, created_at, updated_at) VALUES ($1, $2, $3, $3)
    ON CONFLICT (user_id) DO NOTHING";
    /// `credits_row_on`
    CREDITS_ROW_ON = "SELECT balance, reserved_balance, lifetime_earned, lifetime_spent FROM credits WHERE user_id = $1";
    /// `credits_book_on`
    CREDITS_BOOK_ON = "INSERT INTO credit_transactions
    (id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    RETURNING id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at";
    /// `credits_grant`
    CREDITS_GRANT = "UPDATE credits SET balance = balance + $2, lifetime_earned = lifetime_earned + $3,
    lifetime_spent = lifetime_spent + $4, updated_at = $5
    WHERE user_id = $1 AND balance - reserved_balance + $2 >= 0
    RETURNING balance, reserved_balance, lifetime_earned, lifetime_spent";
    /// `credits_reserve_on`
    CREDITS_RESERVE_ON = "SELECT user_id, amount FROM credit_reservations WHERE reference_id = $1";
    /// `credits_reserve_new_on`
    CREDITS_RESERVE_NEW_ON_UPDATE_CREDITS = "UPDATE credits SET reserved_balance = reserved_balance + $2, updated_at = $3
    WHERE user_id = $1 AND balance - reserved_balance >= $2
    RETURNING balance, reserved_balance, lifetime_earned, lifetime_spent";
    /// `credits_reserve_new_on`
    CREDITS_RESERVE_NEW_ON_INSERT_CREDIT_RESERVATIONS = "INSERT INTO credit_reservations (id, user_id, reference_id, amount, created_at) VALUES ($1, $2, $3, $4, $5)";
    /// `credits_resolve_on`
    CREDITS_RESOLVE_ON_SELECT_CREDIT_RESERVATIONS = "SELECT user_id, amount, status, spent FROM credit_reservations WHERE reference_id = $1";
    /// `credits_resolve_on`
    CREDITS_RESOLVE_ON_UPDATE_CREDIT_RESERVATIONS = "UPDATE credit_reservations SET status = 'resolved', spent = $2, resolved_at = $3
    WHERE reference_id = $1 AND status = 'pending'";
    /// `credits_resolve_on`
    CREDITS_RESOLVE_ON_UPDATE_CREDITS = "UPDATE credits SET balance = balance - $2, reserved_balance = reserved_balance - $3,
    lifetime_spent = lifetime_spent + $2, updated_at = $4
    WHERE user_id = $1
    RETURNING balance, reserved_balance, lifetime_earned, lifetime_spent";
    /// `credits_reservation`
    CREDITS_RESERVATION = "SELECT amount, status, spent FROM credit_reservations WHERE reference_id = $1";
    /// `credits_transactions`
    CREDITS_TRANSACTIONS = "SELECT id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at
    FROM credit_transactions
    WHERE user_id = $1 AND ($2 IS NULL OR type = $2) AND ($3 IS NULL OR id < $3)
    ORDER BY id DESC LIMIT $4";
    /// `credits_invariant_violations`: everything it compares, read by one statement so
    /// that it is one snapshot (separate reads under live traffic disagree with each other).
    CREDITS_INVARIANT_SNAPSHOT = "SELECT c.balance, c.reserved_balance, c.lifetime_earned, c.lifetime_spent,
    (SELECT CAST(SUM(amount) AS BIGINT) FROM credit_transactions WHERE user_id = $1),
    (SELECT CAST(SUM(reserved_delta) AS BIGINT) FROM credit_transactions WHERE user_id = $1),
    (SELECT CAST(SUM(amount) AS BIGINT) FROM credit_reservations WHERE user_id = $1 AND status = 'pending' AND resolved_at IS NULL),
    (SELECT balance_after FROM credit_transactions WHERE user_id = $1 ORDER BY id DESC LIMIT 1),
    (SELECT reserved_after FROM credit_transactions WHERE user_id = $1 ORDER BY id DESC LIMIT 1)
    FROM (SELECT 1 AS one) o LEFT JOIN credits c ON c.user_id = $1";
    /// `credits_ledger_violations`: one statement, so one snapshot (separate reads under live
    /// traffic disagree with each other, and the alert on this check would fire for nothing).
    CREDITS_LEDGER_SNAPSHOT = "SELECT a.balance, a.reserved, a.bad, t.amounts, t.reserved_deltas, p.pending FROM
    (SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) AS balance, CAST(COALESCE(SUM(reserved_balance), 0) AS BIGINT) AS reserved,
            CAST(COUNT(CASE WHEN balance < 0 OR reserved_balance < 0 OR reserved_balance > balance OR lifetime_earned - lifetime_spent <> balance THEN 1 END) AS BIGINT) AS bad
       FROM credits) a,
    (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amounts, CAST(COALESCE(SUM(reserved_delta), 0) AS BIGINT) AS reserved_deltas
       FROM credit_transactions) t,
    (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS pending FROM credit_reservations WHERE status = 'pending' AND resolved_at IS NULL) p";
    /// `credit_package_list`
    CREDIT_PACKAGE_LIST = "SELECT id, name, credits, price, currency, stripe_price_id, is_active, sort_order, created_at, updated_at
    FROM credit_packages WHERE ($1 = FALSE OR is_active = TRUE) ORDER BY sort_order, price, id";
    /// `credit_package_get`
    CREDIT_PACKAGE_GET = "SELECT id, name, credits, price, currency, stripe_price_id, is_active, sort_order, created_at, updated_at
    FROM credit_packages WHERE id = $1";
    /// `credit_package_upsert`
    CREDIT_PACKAGE_UPSERT = "INSERT INTO credit_packages (id, name, credits, price, currency, stripe_price_id, is_active, sort_order, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (id) DO UPDATE SET name = $2, credits = $3, price = $4, currency = $5, stripe_price_id = $6,
    is_active = $7, sort_order = $8, updated_at = $10
    RETURNING id, name, credits, price, currency, stripe_price_id, is_active, sort_order, created_at, updated_at";
    /// `credit_package_delete`
    CREDIT_PACKAGE_DELETE = "DELETE FROM credit_packages WHERE id = $1";
    /// `checkout_create`
    CHECKOUT_CREATE = "INSERT INTO checkout_sessions (id, user_id, package_id, credits, amount, currency, url, status, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    /// `checkout_get`
    CHECKOUT_GET = "SELECT id, user_id, package_id, credits, amount, currency, url, status, created_at, completed_at
    FROM checkout_sessions WHERE id = $1";
    /// `checkout_set_status`
    CHECKOUT_SET_STATUS = "UPDATE checkout_sessions SET status = $2, completed_at = CASE WHEN $2 = 'completed' THEN $3 ELSE completed_at END
    WHERE id = $1 AND (status = 'open' OR ($2 = 'completed' AND status = 'expired'))";
    /// `stripe_event_record`
    STRIPE_EVENT_RECORD = "INSERT INTO stripe_events (id, type, received_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING";
    /// `stripe_event_forget`
    STRIPE_EVENT_FORGET = "DELETE FROM stripe_events WHERE id = $1";
    /// `idempotency_begin`
    IDEMPOTENCY_BEGIN_INSERT_IDEMPOTENCY_KEYS = "INSERT INTO idempotency_keys (user_id, key, operation, request_hash, created_at) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (user_id, key) DO NOTHING";
    /// `idempotency_begin`
    IDEMPOTENCY_BEGIN_UPDATE_IDEMPOTENCY_KEYS = "UPDATE idempotency_keys SET created_at = $5
    WHERE user_id = $1 AND key = $2 AND operation = $3 AND request_hash = $4
    AND response_status IS NULL AND created_at < $6";
    /// `idempotency_begin`
    IDEMPOTENCY_BEGIN_SELECT_IDEMPOTENCY_KEYS = "SELECT operation, request_hash, response_status, response_body FROM idempotency_keys WHERE user_id = $1 AND key = $2";
    /// `idempotency_finish`
    IDEMPOTENCY_FINISH_UPDATE_IDEMPOTENCY_KEYS = "UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE user_id = $1 AND key = $2";
    /// `idempotency_finish`
    IDEMPOTENCY_FINISH_DELETE_IDEMPOTENCY_KEYS = "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2";
}
