-- Webhooks to customers (Standard Webhooks). Keep in step with ../sqlite/0014_webhooks.sql.
--
-- The outbox is task_events itself: a trigger turns each milestone event, in the transaction
-- that records it, into delivery rows for the user's matching endpoints (or for the task's
-- own webhook URL), so no event is lost or invented across crashes. Deliveries are leased by
-- the dispatchers in worker processes and retried on the Svix schedule.
CREATE TABLE webhook_endpoints (
    id               UUID PRIMARY KEY,
    user_id          UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url              TEXT NOT NULL,
    description      TEXT,
    -- NULL: every event; else the event types as ',task.failed,task.succeeded,'.
    events           TEXT,
    -- Signing secrets, encrypted with the master key; the previous one keeps signing
    -- alongside until previous_until (24 h after a rotation).
    secret           TEXT NOT NULL,
    secret_key_id    TEXT NOT NULL,
    previous_key_id  TEXT,
    previous_secret  TEXT,
    previous_until   TIMESTAMPTZ,
    enabled          BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason  TEXT,
    failing_since    TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id, created_at);


CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY,
    endpoint_id      UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    user_id          UUID NOT NULL,
    -- The task's own URL; NULL: the endpoint's.
    url              TEXT,
    event_type       TEXT NOT NULL,
    task_id          UUID,
    seq              BIGINT,
    data             JSONB NOT NULL DEFAULT '{}'::jsonb,
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         INT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    lease_until      TIMESTAMPTZ,
    last_status      INT,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC);
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (endpoint_id, task_id, seq) WHERE task_id IS NOT NULL;

-- Each attempt, for the delivery log (kept 30 days with its delivery).
CREATE TABLE webhook_attempts (
    id               UUID PRIMARY KEY,
    delivery_id      UUID NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt          INT NOT NULL,
    status_code      INT,
    error            TEXT,
    latency_ms       BIGINT NOT NULL,
    response_excerpt TEXT,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, created_at);

CREATE FUNCTION fm_webhook_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
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
               SELECT d.id FROM webhook_endpoints d WHERE d.user_id = t.user_id ORDER BY d.created_at, d.id LIMIT 1)))
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER task_events_webhooks AFTER INSERT ON task_events
    FOR EACH ROW EXECUTE FUNCTION fm_webhook_enqueue();

-- credits.low: a user's threshold; when an update takes the available balance (balance
-- minus reserved) from at or above it to below it, the subscribed endpoints are told, in
-- the transaction that moved the credits.
CREATE TABLE webhook_settings (
    user_id                UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    credits_low_threshold  BIGINT CHECK (credits_low_threshold > 0),
    updated_at             TIMESTAMPTZ NOT NULL
);

CREATE FUNCTION fm_webhook_credits_low() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_threshold bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints) THEN
        RETURN NULL;
    END IF;
    SELECT credits_low_threshold INTO v_threshold FROM webhook_settings WHERE user_id = NEW.user_id;
    IF v_threshold IS NULL
       OR NOT (OLD.balance - OLD.reserved_balance >= v_threshold AND NEW.balance - NEW.reserved_balance < v_threshold) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries
        (id, endpoint_id, user_id, url, event_type, task_id, seq, data, next_attempt_at, created_at, updated_at)
    SELECT fm_uuid_v7(), e.id, NEW.user_id, NULL, 'credits.low', NULL, NULL,
           jsonb_build_object('available', NEW.balance - NEW.reserved_balance, 'threshold', v_threshold,
                              'balance', NEW.balance, 'reserved', NEW.reserved_balance),
           NEW.updated_at, NEW.updated_at, NEW.updated_at
      FROM webhook_endpoints e
     WHERE e.user_id = NEW.user_id AND e.enabled AND (e.events IS NULL OR e.events LIKE '%,credits.low,%');
    RETURN NULL;
END $$;

CREATE TRIGGER credits_webhooks AFTER UPDATE ON credits
    FOR EACH ROW EXECUTE FUNCTION fm_webhook_credits_low();
