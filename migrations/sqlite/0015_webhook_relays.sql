-- Relay endpoints (`funmagic webhooks listen --forward-to …`): an endpoint the server does
-- not POST to; the CLI pulls its deliveries over the API, forwards them to a local URL and
-- reports each answer, which is recorded like any attempt. Keep in step with
-- ../postgres/0015_webhook_relays.sql.
ALTER TABLE webhook_endpoints ADD COLUMN relay INTEGER NOT NULL DEFAULT 0;
-- The last pull; relays not pulled for an hour are deleted (the CLI went away).
ALTER TABLE webhook_endpoints ADD COLUMN relay_seen_at TEXT;

-- A task's own webhook URL is signed with the user's first endpoint that is not a relay.
DROP TRIGGER task_events_webhooks;
CREATE TRIGGER task_events_webhooks AFTER INSERT ON task_events
WHEN NEW.type IN ('queued', 'step_started', 'step_completed', 'completed', 'failed', 'cancelled')
 AND EXISTS (SELECT 1 FROM webhook_endpoints)
 AND (NEW.type <> 'step_started' OR NOT EXISTS (
      SELECT 1 FROM task_events p WHERE p.task_id = NEW.task_id AND p.type = 'step_started' AND p.seq < NEW.seq))
BEGIN
    INSERT OR IGNORE INTO webhook_deliveries
        (id, endpoint_id, user_id, url, event_type, task_id, seq, data, next_attempt_at, created_at, updated_at)
    SELECT randomblob(16), e.id, t.user_id, t.webhook_url, x.v_type, NEW.task_id, NEW.seq, NEW.data,
           NEW.created_at, NEW.created_at, NEW.created_at
      FROM (SELECT CASE NEW.type
                WHEN 'queued' THEN 'task.queued' WHEN 'step_started' THEN 'task.started'
                WHEN 'step_completed' THEN 'task.step_completed' WHEN 'completed' THEN 'task.succeeded'
                WHEN 'failed' THEN 'task.failed' WHEN 'cancelled' THEN 'task.cancelled' END AS v_type) x,
           tasks t JOIN webhook_endpoints e ON e.user_id = t.user_id
     WHERE t.id = NEW.task_id
       AND ((t.webhook_url IS NULL AND e.enabled AND (e.events IS NULL OR e.events LIKE '%,' || x.v_type || ',%'))
         OR (t.webhook_url IS NOT NULL AND e.id = (
               SELECT d.id FROM webhook_endpoints d WHERE d.user_id = t.user_id AND NOT d.relay
                ORDER BY d.created_at, d.id LIMIT 1)));
END;
