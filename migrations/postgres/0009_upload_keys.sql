-- Uploads go to a one-off `upload_key` (an unguessable `incoming/…` object) and are moved to
-- `storage_key` when completed, so a signed upload URL can never overwrite a checked file,
-- and writes only while its pending upload exists. Rows from before this migration have
-- none: their upload key is their storage key. Keep in step with the other engine's copy.
ALTER TABLE pending_uploads ADD COLUMN upload_key TEXT;
CREATE UNIQUE INDEX pending_uploads_upload_key_idx ON pending_uploads (bucket, upload_key);
