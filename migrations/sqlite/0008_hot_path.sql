-- The task hot path (see ARCHITECTURE.md, Performance). Keep in step with
-- ../postgres/0008_hot_path.sql.
-- * tasks.event_seq: the last event sequence number of the task, bumped in the statement
--   that records a milestone, so no writer has to look for MAX(seq).
-- * task_queue.seq: the place in line (a queue position is `seq - head`, never a count);
--   task_queue.user_id: the owner, for the per-user running limit without a join;
--   task_queue.parked: refused at its user's running limit, sent again when a slot frees.
ALTER TABLE tasks ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET event_seq = COALESCE((SELECT MAX(seq) FROM task_events e WHERE e.task_id = tasks.id), 0);

ALTER TABLE task_queue ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE task_queue SET seq = rowid;
ALTER TABLE task_queue ADD COLUMN user_id BLOB;
UPDATE task_queue SET user_id = (SELECT t.user_id FROM tasks t WHERE t.id = task_queue.task_id);
ALTER TABLE task_queue ADD COLUMN parked INTEGER NOT NULL DEFAULT 0;
CREATE INDEX task_queue_seq_idx ON task_queue (seq);
CREATE INDEX task_queue_user_lease_idx ON task_queue (user_id, lease_until);
-- Every index a hot row's update touches costs each task: these two served no query that
-- needs them (status filters go through the user or id order; the queue's lease scans are
-- of a small table).
DROP INDEX tasks_status_idx;
DROP INDEX task_queue_lease_idx;
