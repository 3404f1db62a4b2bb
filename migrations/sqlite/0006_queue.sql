-- The queue in scale-out mode and its safety nets: when a queue entry (a Redis Stream
-- message) was last sent for a row, so the reconciler can send it again if it was lost;
-- and the dead-letter list of tasks that were given up on, for admins to look at.
-- Keep in step with ../postgres/0006_queue.sql.

ALTER TABLE task_queue ADD COLUMN enqueued_at TEXT;
CREATE INDEX task_queue_lease_idx ON task_queue (lease_until);

CREATE TABLE task_dead_letters (
    task_id     BLOB PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason      TEXT NOT NULL CHECK (reason IN ('retries_exhausted', 'worker_crashes')),
    error       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX task_dead_letters_created_idx ON task_dead_letters (created_at DESC);
