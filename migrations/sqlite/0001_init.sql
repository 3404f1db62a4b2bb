-- FunMagic schema, SQLite flavour: the seed's 15 tables in four domains
-- (auth, tools, tasks, commerce) plus content. Keep in step with ../postgres/0001_init.sql:
-- same tables, columns, keys and checks; only the types differ (UUIDs are 16-byte BLOBs, timestamps RFC 3339 TEXT, JSON TEXT here).

-- ── Auth ───────────────────────────────────────────────────────────────────────────
CREATE TABLE users (
    id              BLOB PRIMARY KEY,
    email           TEXT NOT NULL,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin', 'super_admin')),
    email_verified  INTEGER NOT NULL DEFAULT 0,
    image           TEXT,
    banned          INTEGER NOT NULL DEFAULT 0,
    ban_reason      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lowercase CHECK (email = lower(email))
) STRICT;

CREATE TABLE sessions (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token       TEXT NOT NULL,            -- SHA-256 of the bearer secret, never the secret
    expires_at  TEXT NOT NULL,
    ip_address  TEXT,
    user_agent  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT sessions_token_key UNIQUE (token)
) STRICT;
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE accounts (
    id                        BLOB PRIMARY KEY,
    user_id                   BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id               TEXT NOT NULL,   -- 'credential', 'github', 'google'
    account_id                TEXT NOT NULL,
    access_token              TEXT,
    refresh_token             TEXT,
    access_token_expires_at   TEXT,
    scope                     TEXT,
    password                  TEXT,            -- argon2id PHC string (credential accounts only)
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL,
    CONSTRAINT accounts_provider_account_key UNIQUE (provider_id, account_id)
) STRICT;
CREATE INDEX accounts_user_id_idx ON accounts (user_id);

CREATE TABLE verifications (
    id          BLOB PRIMARY KEY,
    identifier  TEXT NOT NULL,
    value       TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE INDEX verifications_identifier_idx ON verifications (identifier);

-- ── Tools ──────────────────────────────────────────────────────────────────────────
CREATE TABLE tool_types (
    id            BLOB PRIMARY KEY,
    name          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    icon          TEXT,
    color         TEXT,
    description   TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    CONSTRAINT tool_types_name_key UNIQUE (name)
) STRICT;

CREATE TABLE tools (
    id             BLOB PRIMARY KEY,
    slug           TEXT NOT NULL,
    title          TEXT NOT NULL,
    description    TEXT,
    tool_type_id   BLOB NOT NULL REFERENCES tool_types (id) ON DELETE RESTRICT,
    config         TEXT NOT NULL DEFAULT '{}',
    credits_cost   INTEGER NOT NULL DEFAULT 0 CHECK (credits_cost >= 0),
    is_active      INTEGER NOT NULL DEFAULT 1,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CONSTRAINT tools_slug_key UNIQUE (slug)
) STRICT;
CREATE INDEX tools_tool_type_id_idx ON tools (tool_type_id);

CREATE TABLE providers (
    id                 BLOB PRIMARY KEY,
    name               TEXT NOT NULL,
    type               TEXT NOT NULL CHECK (type IN ('openai', 'fal', 'tripo', 'local')),
    api_key            TEXT,               -- AES-256-GCM ciphertext, never plaintext
    base_url           TEXT,
    config             TEXT NOT NULL DEFAULT '{}',
    is_active          INTEGER NOT NULL DEFAULT 1,
    is_healthy         INTEGER NOT NULL DEFAULT 0,
    health_checked_at  TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    CONSTRAINT providers_name_key UNIQUE (name)
) STRICT;

-- ── Tasks ──────────────────────────────────────────────────────────────────────────
CREATE TABLE tasks (
    id               BLOB PRIMARY KEY,
    user_id          BLOB NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    tool_id          BLOB NOT NULL REFERENCES tools (id) ON DELETE RESTRICT,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'queued', 'running', 'completed', 'failed', 'cancelled')),
    credits_cost     INTEGER NOT NULL DEFAULT 0 CHECK (credits_cost >= 0),
    parent_task_id   BLOB REFERENCES tasks (id) ON DELETE SET NULL,
    current_step_id  TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    idempotency_key  TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    started_at       TEXT,
    completed_at     TEXT
) STRICT;
CREATE INDEX tasks_user_created_idx ON tasks (user_id, created_at DESC, id DESC);
CREATE INDEX tasks_status_idx ON tasks (status, created_at);
CREATE INDEX tasks_parent_task_id_idx ON tasks (parent_task_id);
CREATE UNIQUE INDEX tasks_user_idempotency_key ON tasks (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE task_payloads (
    id          BLOB PRIMARY KEY,
    task_id     BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    input       TEXT NOT NULL DEFAULT '{}',
    output      TEXT,
    error       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT task_payloads_task_id_key UNIQUE (task_id)
) STRICT;

CREATE TABLE task_steps (
    id            BLOB PRIMARY KEY,
    task_id       BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    step_id       TEXT NOT NULL,
    position      INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'skipped')),
    state         TEXT NOT NULL DEFAULT '{}',
    started_at    TEXT,
    completed_at  TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    CONSTRAINT task_steps_task_step_key UNIQUE (task_id, step_id)
) STRICT;

CREATE TABLE assets (
    id           BLOB PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bucket       TEXT NOT NULL,
    storage_key  TEXT NOT NULL,
    visibility   TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('public', 'private', 'admin-private')),
    module       TEXT NOT NULL,
    filename     TEXT,
    mime_type    TEXT NOT NULL,
    size         INTEGER NOT NULL CHECK (size >= 0),
    task_id      BLOB REFERENCES tasks (id) ON DELETE SET NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    CONSTRAINT assets_bucket_key_key UNIQUE (bucket, storage_key)
) STRICT;
CREATE INDEX assets_user_created_idx ON assets (user_id, created_at DESC, id DESC);
CREATE INDEX assets_task_id_idx ON assets (task_id);

-- ── Commerce ───────────────────────────────────────────────────────────────────────
CREATE TABLE credits (
    id                BLOB PRIMARY KEY,
    user_id           BLOB NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    balance           INTEGER NOT NULL DEFAULT 0,
    reserved_balance  INTEGER NOT NULL DEFAULT 0,
    lifetime_earned   INTEGER NOT NULL DEFAULT 0,
    lifetime_spent    INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    CONSTRAINT credits_user_id_key UNIQUE (user_id),
    CONSTRAINT credits_balance_nonnegative CHECK (balance >= 0),
    CONSTRAINT credits_reserved_within_balance CHECK (reserved_balance >= 0 AND reserved_balance <= balance),
    CONSTRAINT credits_lifetime_consistent CHECK (lifetime_earned - lifetime_spent = balance)
) STRICT;

CREATE TABLE credit_transactions (
    id             BLOB PRIMARY KEY,
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    type           TEXT NOT NULL
                   CHECK (type IN ('purchase', 'spend', 'refund', 'bonus', 'admin_adjust', 'reserve')),
    amount         INTEGER NOT NULL,
    balance_after  INTEGER NOT NULL CHECK (balance_after >= 0),
    reference_id   TEXT,
    description    TEXT,
    created_at     TEXT NOT NULL
) STRICT;
CREATE INDEX credit_transactions_user_created_idx ON credit_transactions (user_id, created_at DESC, id DESC);
CREATE INDEX credit_transactions_reference_idx ON credit_transactions (reference_id);

CREATE TABLE credit_packages (
    id               BLOB PRIMARY KEY,
    name             TEXT NOT NULL,
    credits          INTEGER NOT NULL CHECK (credits > 0),
    price            INTEGER NOT NULL CHECK (price >= 0),   -- minor units (cents)
    currency         TEXT NOT NULL DEFAULT 'usd',
    stripe_price_id  TEXT,
    is_active        INTEGER NOT NULL DEFAULT 1,
    sort_order       INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;
CREATE INDEX credit_packages_active_sort_idx ON credit_packages (is_active, sort_order);

-- ── Content ────────────────────────────────────────────────────────────────────────
CREATE TABLE banners (
    id           BLOB PRIMARY KEY,
    title        TEXT NOT NULL,
    description  TEXT,
    thumbnail    TEXT,
    link         TEXT,
    link_text    TEXT,
    link_target  TEXT NOT NULL DEFAULT '_self' CHECK (link_target IN ('_self', '_blank')),
    type         TEXT NOT NULL DEFAULT 'main' CHECK (type IN ('main', 'side')),
    position     INTEGER NOT NULL DEFAULT 0,
    badge        TEXT,
    badge_color  TEXT,
    is_active    INTEGER NOT NULL DEFAULT 1,
    starts_at    TEXT,
    ends_at      TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    CONSTRAINT banners_window CHECK (starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at)
) STRICT;
CREATE INDEX banners_type_position_idx ON banners (type, is_active, position);
