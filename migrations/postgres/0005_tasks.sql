-- Tasks at run time: the embedded queue (task ids with a lease, so a crashed worker's task
-- is picked up again), the replayable progress events of every task, and cooperative
-- cancellation. Keep in step with ../sqlite/0005_tasks.sql.

CREATE TABLE task_queue (
    task_id       UUID PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
    available_at  TIMESTAMPTZ NOT NULL,
    lease_until   TIMESTAMPTZ,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX task_queue_available_idx ON task_queue (available_at);

CREATE TABLE task_events (
    task_id     UUID NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL CHECK (seq > 0),
    type        TEXT NOT NULL,
    data        JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, seq)
);

ALTER TABLE tasks ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE tasks ADD COLUMN run_all_steps BOOLEAN NOT NULL DEFAULT FALSE;
