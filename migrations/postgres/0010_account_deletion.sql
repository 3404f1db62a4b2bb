-- Deleted accounts: the user row stays as an anonymised tombstone (no email, name, picture,
-- credentials) so the credits ledger and the tasks that reference it stay consistent for
-- accounting; `deleted_at` marks it, and a sweep finishes what a deletion left (files, tasks).
-- Keep in step with ../sqlite/0010_account_deletion.sql.
ALTER TABLE users ADD COLUMN deleted_at TIMESTAMPTZ;
CREATE INDEX users_deleted_at_idx ON users (deleted_at) WHERE deleted_at IS NOT NULL;
