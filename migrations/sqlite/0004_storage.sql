-- Uploads that were presigned but not completed yet: `complete` turns one into an asset;
-- a sweeper deletes the object and the row once it expires. Keep in step with
-- ../postgres/0004_storage.sql.

CREATE TABLE pending_uploads (
    storage_key   TEXT NOT NULL,
    bucket        TEXT NOT NULL,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    module        TEXT NOT NULL,
    filename      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          INTEGER NOT NULL CHECK (size > 0),
    visibility    TEXT NOT NULL CHECK (visibility IN ('private', 'admin-private')),
    expires_at    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (bucket, storage_key)
) STRICT;
CREATE INDEX pending_uploads_expires_idx ON pending_uploads (expires_at);
CREATE INDEX pending_uploads_user_idx ON pending_uploads (user_id);
