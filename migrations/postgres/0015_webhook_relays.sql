-- Relay endpoints (`funmagic webhooks listen --forward-to …`): an endpoint the server does
-- not POST to; the CLI pulls its deliveries over the API, forwards them to a local URL and
-- reports each answer, which is recorded like any attempt. Keep in step with
-- ../sqlite/0015_webhook_relays.sql.
--
-- Safe during a rolling deploy: columns are added with defaults; a dispatcher of the
-- previous release would try a relay's `relay:` URL, be refused by the URL guard and retry
-- later, so nothing is lost.
ALTER TABLE webhook_endpoints ADD COLUMN relay BOOLEAN NOT NULL DEFAULT FALSE;
-- The last pull; relays not pulled for an hour are deleted (the CLI went away).
ALTER TABLE webhook_endpoints ADD COLUMN relay_seen_at TIMESTAMPTZ;

-- A task's own webhook URL is signed with the user's first endpoint that is not a relay.
CREATE OR REPLACE FUNCTION fm_webhook_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_type text;
BEGIN
    -- Installs without endpoints pay one probe of an empty index.
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints) THEN
        RETURN NULL;
    END IF;
    v_type := CASE NEW.type
        WHEN 'queued' THEN 'task.queued' WHEN 'step_started' THEN 'task.started'
        WHEN 'step_completed' THEN 'task.step_completed' WHEN 'completed' THEN 'task.succeeded'
        WHEN 'failed' THEN 'task.failed' WHEN 'cancelled' THEN 'task.cancelled' END;
    IF v_type IS NULL THEN
        RETURN NULL;
    END IF;
    -- `task.started` is the first step's start only (not later steps, nor retries).
    IF NEW.type = 'step_started' AND EXISTS (
        SELECT 1 FROM task_events p WHERE p.task_id = NEW.task_id AND p.type = 'step_started' AND p.seq < NEW.seq) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries
        (id, endpoint_id, user_id, url, event_type, task_id, seq, data, next_attempt_at, created_at, updated_at)
    SELECT fm_uuid_v7(), e.id, t.user_id, t.webhook_url, v_type, NEW.task_id, NEW.seq, NEW.data,
           NEW.created_at, NEW.created_at, NEW.created_at
      FROM tasks t JOIN webhook_endpoints e ON e.user_id = t.user_id
     WHERE t.id = NEW.task_id
       AND ((t.webhook_url IS NULL AND e.enabled AND (e.events IS NULL OR e.events LIKE '%,' || v_type || ',%'))
         OR (t.webhook_url IS NOT NULL AND e.id = (
               SELECT d.id FROM webhook_endpoints d WHERE d.user_id = t.user_id AND NOT d.relay
                ORDER BY d.created_at, d.id LIMIT 1)))
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
