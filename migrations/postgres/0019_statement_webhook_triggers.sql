-- The webhook triggers fire once per statement, not once per row.
--
-- `task_events_webhooks` and `credits_webhooks` (0014, 0015) ran their function for every
-- event row and every account update: each call runs at least one query (is there any
-- endpoint?), ~6 per echo task, and with the set-based batches (0017) a statement writes
-- the events or accounts of a whole batch. Now each statement's trigger gets its rows as a
-- transition table and handles them in one query. What they write is unchanged: one
-- `webhook_deliveries` row per subscribed endpoint and event (or the task's own URL),
-- `task.started` for a task's first `step_started` only, and `credits.low` when an update
-- takes an account's available balance from at or above its user's threshold to below it.
-- Measured: e2e PostgreSQL CPU per task -7% (3 interleaved pairs, no endpoints).
--
-- Safe during a rolling deploy: old processes' writes fire the new triggers, which write
-- the same rows (no code calls a trigger function). The row-level functions go with their
-- triggers. SQLite's triggers are its own (../sqlite/0019_statement_webhook_triggers.sql).

CREATE FUNCTION fm_webhook_enqueue_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Installs without endpoints pay one probe of an empty index per statement.
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries
        (id, endpoint_id, user_id, url, event_type, task_id, seq, data, next_attempt_at, created_at, updated_at)
    SELECT fm_uuid_v7(), e.id, t.user_id, t.webhook_url, n.v_type, n.task_id, n.seq, n.data,
           n.created_at, n.created_at, n.created_at
      FROM (SELECT r.task_id, r.seq, r.type, r.data, r.created_at,
                   CASE r.type
                       WHEN 'queued' THEN 'task.queued' WHEN 'step_started' THEN 'task.started'
                       WHEN 'step_completed' THEN 'task.step_completed' WHEN 'completed' THEN 'task.succeeded'
                       WHEN 'failed' THEN 'task.failed' WHEN 'cancelled' THEN 'task.cancelled' END AS v_type
              FROM new_events r) n
      JOIN tasks t ON t.id = n.task_id
      JOIN webhook_endpoints e ON e.user_id = t.user_id
     WHERE n.v_type IS NOT NULL
       -- `task.started` is the first step's start only (not later steps, nor retries).
       AND NOT (n.type = 'step_started' AND EXISTS (
                SELECT 1 FROM task_events p WHERE p.task_id = n.task_id AND p.type = 'step_started' AND p.seq < n.seq))
       AND ((t.webhook_url IS NULL AND e.enabled AND (e.events IS NULL OR e.events LIKE '%,' || n.v_type || ',%'))
         OR (t.webhook_url IS NOT NULL AND e.id = (
               SELECT d.id FROM webhook_endpoints d WHERE d.user_id = t.user_id AND NOT d.relay
                ORDER BY d.created_at, d.id LIMIT 1)))
     ORDER BY n.task_id, n.seq
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

DROP TRIGGER task_events_webhooks ON task_events;
DROP FUNCTION fm_webhook_enqueue();
CREATE TRIGGER task_events_webhooks AFTER INSERT ON task_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION fm_webhook_enqueue_rows();

CREATE FUNCTION fm_webhook_credits_low_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints) THEN
        RETURN NULL;
    END IF;
    -- A statement updates an account at most once, so old and new pair up by user.
    INSERT INTO webhook_deliveries
        (id, endpoint_id, user_id, url, event_type, task_id, seq, data, next_attempt_at, created_at, updated_at)
    SELECT fm_uuid_v7(), e.id, n.user_id, NULL, 'credits.low', NULL, NULL,
           jsonb_build_object('available', n.balance - n.reserved_balance, 'threshold', s.credits_low_threshold,
                              'balance', n.balance, 'reserved', n.reserved_balance),
           n.updated_at, n.updated_at, n.updated_at
      FROM new_credits n
      JOIN old_credits o ON o.user_id = n.user_id
      JOIN webhook_settings s ON s.user_id = n.user_id
      JOIN webhook_endpoints e ON e.user_id = n.user_id
     WHERE o.balance - o.reserved_balance >= s.credits_low_threshold
       AND n.balance - n.reserved_balance < s.credits_low_threshold
       AND e.enabled AND (e.events IS NULL OR e.events LIKE '%,credits.low,%');
    RETURN NULL;
END $$;

DROP TRIGGER credits_webhooks ON credits;
DROP FUNCTION fm_webhook_credits_low();
CREATE TRIGGER credits_webhooks AFTER UPDATE ON credits
    REFERENCING OLD TABLE AS old_credits NEW TABLE AS new_credits
    FOR EACH STATEMENT EXECUTE FUNCTION fm_webhook_credits_low_rows();
