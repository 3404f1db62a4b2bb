-- Providers in use: `api_key` holds base64(nonce ‖ AES-256-GCM ciphertext) bound to the
-- row's id, `api_key_id` names the master key that encrypted it (so the master key can be
-- rotated), `api_key_last4` is all an API ever shows of it; the health check's last word.
-- Keep in step with ../sqlite/0007_providers.sql.

ALTER TABLE providers ADD COLUMN api_key_id TEXT;
ALTER TABLE providers ADD COLUMN api_key_last4 TEXT;
ALTER TABLE providers ADD COLUMN health_message TEXT;
ALTER TABLE providers ADD CONSTRAINT providers_key_complete
    CHECK ((api_key IS NULL) = (api_key_id IS NULL) AND (api_key IS NULL) = (api_key_last4 IS NULL));
