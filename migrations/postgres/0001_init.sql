-- FunMagic schema, PostgreSQL flavour: the seed's 15 tables in four domains
-- (auth, tools, tasks, commerce) plus content. Keep in step with ../sqlite/0001_init.sql:
-- same tables, columns, keys and checks; only the types differ (UUID/TIMESTAMPTZ/JSONB here).

-- ── Auth ───────────────────────────────────────────────────────────────────────────
CREATE TABLE users (
    id              UUID PRIMARY KEY,
    email           TEXT NOT NULL,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin', 'super_admin')),
    email_verified  BOOLEAN NOT NULL DEFAULT FALSE,
    image           TEXT,
    banned          BOOLEAN NOT NULL DEFAULT FALSE,
    ban_reason      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lowercase CHECK (email = lower(email))
);

CREATE TABLE sessions (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token       TEXT NOT NULL,            -- SHA-256 of the bearer secret, never the secret
    expires_at  TIMESTAMPTZ NOT NULL,
    ip_address  TEXT,
    user_agent  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT sessions_token_key UNIQUE (token)
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

CREATE TABLE accounts (
    id                        UUID PRIMARY KEY,
    user_id                   UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id               TEXT NOT NULL,   -- 'credential', 'github', 'google'
    account_id                TEXT NOT NULL,
    access_token              TEXT,
    refresh_token             TEXT,
    access_token_expires_at   TIMESTAMPTZ,
    scope                     TEXT,
    password                  TEXT,            -- argon2id PHC string (credential accounts only)
    created_at                TIMESTAMPTZ NOT NULL,
    updated_at                TIMESTAMPTZ NOT NULL,
    CONSTRAINT accounts_provider_account_key UNIQUE (provider_id, account_id)
);
CREATE INDEX accounts_user_id_idx ON accounts (user_id);

CREATE TABLE verifications (
    id          UUID PRIMARY KEY,
    identifier  TEXT NOT NULL,
    value       TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX verifications_identifier_idx ON verifications (identifier);

-- ── Tools ──────────────────────────────────────────────────────────────────────────
CREATE TABLE tool_types (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    icon          TEXT,
    color         TEXT,
    description   TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT tool_types_name_key UNIQUE (name)
);

CREATE TABLE tools (
    id             UUID PRIMARY KEY,
    slug           TEXT NOT NULL,
    title          TEXT NOT NULL,
    description    TEXT,
    tool_type_id   UUID NOT NULL REFERENCES tool_types (id) ON DELETE RESTRICT,
    config         JSONB NOT NULL DEFAULT '{}'::jsonb,
    credits_cost   BIGINT NOT NULL DEFAULT 0 CHECK (credits_cost >= 0),
    is_active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT tools_slug_key UNIQUE (slug)
);
CREATE INDEX tools_tool_type_id_idx ON tools (tool_type_id);

CREATE TABLE providers (
    id                 UUID PRIMARY KEY,
    name               TEXT NOT NULL,
    type               TEXT NOT NULL CHECK (type IN ('openai', 'fal', 'tripo', 'local')),
    api_key            TEXT,               -- AES-256-GCM ciphertext, never plaintext
    base_url           TEXT,
    config             JSONB NOT NULL DEFAULT '{}'::jsonb,
    is_active          BOOLEAN NOT NULL DEFAULT TRUE,
    is_healthy         BOOLEAN NOT NULL DEFAULT FALSE,
    health_checked_at  TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    CONSTRAINT providers_name_key UNIQUE (name)
);

-- ── Tasks ──────────────────────────────────────────────────────────────────────────
CREATE TABLE tasks (
    id               UUID PRIMARY KEY,
    user_id          UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    tool_id          UUID NOT NULL REFERENCES tools (id) ON DELETE RESTRICT,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'queued', 'running', 'completed', 'failed', 'cancelled')),
    credits_cost     BIGINT NOT NULL DEFAULT 0 CHECK (credits_cost >= 0),
    parent_task_id   UUID REFERENCES tasks (id) ON DELETE SET NULL,
    current_step_id  TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    idempotency_key  TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    completed_at     TIMESTAMPTZ
);
CREATE INDEX tasks_user_created_idx ON tasks (user_id, created_at DESC, id DESC);
CREATE INDEX tasks_status_idx ON tasks (status, created_at);
CREATE INDEX tasks_parent_task_id_idx ON tasks (parent_task_id);
CREATE UNIQUE INDEX tasks_user_idempotency_key ON tasks (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE task_payloads (
    id          UUID PRIMARY KEY,
    task_id     UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    input       JSONB NOT NULL DEFAULT '{}'::jsonb,
    output      JSONB,
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT task_payloads_task_id_key UNIQUE (task_id)
);

CREATE TABLE task_steps (
    id            UUID PRIMARY KEY,
    task_id       UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    step_id       TEXT NOT NULL,
    position      INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'skipped')),
    state         JSONB NOT NULL DEFAULT '{}'::jsonb,
    started_at    TIMESTAMPTZ,
    completed_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT task_steps_task_step_key UNIQUE (task_id, step_id)
);

CREATE TABLE assets (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bucket       TEXT NOT NULL,
    storage_key  TEXT NOT NULL,
    visibility   TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('public', 'private', 'admin-private')),
    module       TEXT NOT NULL,
    filename     TEXT,
    mime_type    TEXT NOT NULL,
    size         BIGINT NOT NULL CHECK (size >= 0),
    task_id      UUID REFERENCES tasks (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT assets_bucket_key_key UNIQUE (bucket, storage_key)
);
CREATE INDEX assets_user_created_idx ON assets (user_id, created_at DESC, id DESC);
CREATE INDEX assets_task_id_idx ON assets (task_id);

-- ── Commerce ───────────────────────────────────────────────────────────────────────
CREATE TABLE credits (
    id                UUID PRIMARY KEY,
    user_id           UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    balance           BIGINT NOT NULL DEFAULT 0,
    reserved_balance  BIGINT NOT NULL DEFAULT 0,
    lifetime_earned   BIGINT NOT NULL DEFAULT 0,
    lifetime_spent    BIGINT NOT NULL DEFAULT 0,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    CONSTRAINT credits_user_id_key UNIQUE (user_id),
    CONSTRAINT credits_balance_nonnegative CHECK (balance >= 0),
    CONSTRAINT credits_reserved_within_balance CHECK (reserved_balance >= 0 AND reserved_balance <= balance),
    CONSTRAINT credits_lifetime_consistent CHECK (lifetime_earned - lifetime_spent = balance)
);

CREATE TABLE credit_transactions (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    type           TEXT NOT NULL
                   CHECK (type IN ('purchase', 'spend', 'refund', 'bonus', 'admin_adjust', 'reserve')),
    amount         BIGINT NOT NULL,
    balance_after  BIGINT NOT NULL CHECK (balance_after >= 0),
    reference_id   TEXT,
    description    TEXT,
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX credit_transactions_user_created_idx ON credit_transactions (user_id, created_at DESC, id DESC);
CREATE INDEX credit_transactions_reference_idx ON credit_transactions (reference_id);

CREATE TABLE credit_packages (
    id               UUID PRIMARY KEY,
    name             TEXT NOT NULL,
    credits          BIGINT NOT NULL CHECK (credits > 0),
    price            BIGINT NOT NULL CHECK (price >= 0),   -- minor units (cents)
    currency         TEXT NOT NULL DEFAULT 'usd',
    stripe_price_id  TEXT,
    is_active        BOOLEAN NOT NULL DEFAULT TRUE,
    sort_order       INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX credit_packages_active_sort_idx ON credit_packages (is_active, sort_order);

-- ── Content ────────────────────────────────────────────────────────────────────────
CREATE TABLE banners (
    id           UUID PRIMARY KEY,
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
    is_active    BOOLEAN NOT NULL DEFAULT TRUE,
    starts_at    TIMESTAMPTZ,
    ends_at      TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT banners_window CHECK (starts_at IS NULL OR ends_at IS NULL OR starts_at < ends_at)
);
CREATE INDEX banners_type_position_idx ON banners (type, is_active, position);
