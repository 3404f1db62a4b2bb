-- Tasks at run time: the embedded queue (task ids with a lease, so a crashed worker's task
-- is picked up again), the replayable progress events of every task, and cooperative
-- cancellation. Keep in step with ../postgres/0005_tasks.sql.

CREATE TABLE task_queue (
    task_id       BLOB PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    available_at  TEXT NOT NULL,
    lease_until   TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
) STRICT;
CREATE INDEX task_queue_available_idx ON task_queue (available_at);

CREATE TABLE task_events (
    task_id     BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL CHECK (seq > 0),
    type        TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
) STRICT;

ALTER TABLE tasks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN run_all_steps INTEGER NOT NULL DEFAULT 0;
