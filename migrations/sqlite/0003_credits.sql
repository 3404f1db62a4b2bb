-- The credits ledger beyond the seed's tables: reservations (pending → confirmed/released,
-- each resolved at most once), the reserved-balance column of every transaction row, one
-- row per (type, reference) so retries cannot book twice, idempotency keys for money-moving
-- requests, and Stripe checkout sessions and events. Keep in step with ../postgres/0003_credits.sql.

ALTER TABLE credit_transactions ADD COLUMN reserved_delta INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credit_transactions ADD COLUMN reserved_after INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX credit_transactions_type_reference_key ON credit_transactions (type, reference_id)
    WHERE reference_id IS NOT NULL;

CREATE TABLE credit_reservations (
    id            BLOB PRIMARY KEY,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    reference_id  TEXT NOT NULL,               -- the task id
    amount        INTEGER NOT NULL CHECK (amount > 0),
    spent         INTEGER NOT NULL DEFAULT 0 CHECK (spent >= 0 AND spent <= amount),
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'resolved')),
    created_at    TEXT NOT NULL,
    resolved_at   TEXT,
    CONSTRAINT credit_reservations_reference_key UNIQUE (reference_id)
) STRICT;
CREATE INDEX credit_reservations_user_status_idx ON credit_reservations (user_id, status);

CREATE TABLE idempotency_keys (
    user_id          BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key              TEXT NOT NULL,
    operation        TEXT NOT NULL,
    request_hash     TEXT NOT NULL,
    response_status  INTEGER,                  -- NULL while the first request is in flight
    response_body    TEXT,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT;

CREATE TABLE checkout_sessions (
    id             TEXT PRIMARY KEY,           -- Stripe's cs_… id
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    package_id     BLOB NOT NULL REFERENCES credit_packages (id) ON DELETE RESTRICT,
    credits        INTEGER NOT NULL CHECK (credits > 0),
    amount         INTEGER NOT NULL CHECK (amount >= 0),
    currency       TEXT NOT NULL,
    url            TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'completed', 'expired')),
    created_at     TEXT NOT NULL,
    completed_at   TEXT
) STRICT;
CREATE INDEX checkout_sessions_user_idx ON checkout_sessions (user_id, created_at);

CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,             -- Stripe's evt_… id
    type         TEXT NOT NULL,
    received_at  TEXT NOT NULL
) STRICT;
