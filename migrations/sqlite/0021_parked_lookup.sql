-- The same index as ../postgres/0021_parked_lookup.sql: a task's end finds its user's
-- parked tasks (`WHERE user_id = ?1 AND parked ORDER BY seq`) in an index of the parked
-- rows alone, instead of reading every queue row of the user.
CREATE INDEX task_queue_parked_idx ON task_queue (user_id, seq) WHERE parked;
