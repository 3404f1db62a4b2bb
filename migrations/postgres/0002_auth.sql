-- Auth beyond the seed's four tables: API keys for scripts and the SDK, and RFC 8628
-- device authorization codes for `funmagic auth login`. Secrets are stored only as
-- SHA-256 hashes. Keep in step with ../sqlite/0002_auth.sql.

CREATE TABLE api_keys (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,              -- first characters of the key, for display
    key_hash      TEXT NOT NULL,
    scope         TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    expires_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id, created_at);

CREATE TABLE device_codes (
    id                UUID PRIMARY KEY,
    device_code_hash  TEXT NOT NULL,
    user_code         TEXT NOT NULL,
    client_name       TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    user_id           UUID REFERENCES users (id) ON DELETE CASCADE,
    interval_secs     INTEGER NOT NULL CHECK (interval_secs > 0),
    expires_at        TIMESTAMPTZ NOT NULL,
    last_polled_at    TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    CONSTRAINT device_codes_device_code_hash_key UNIQUE (device_code_hash),
    CONSTRAINT device_codes_user_code_key UNIQUE (user_code)
);

CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX verifications_value_idx ON verifications (value);
CREATE INDEX users_role_idx ON users (role);
