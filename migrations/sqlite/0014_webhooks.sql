-- Webhooks to customers (Standard Webhooks). Keep in step with ../postgres/0014_webhooks.sql,
-- which explains the design (task_events is the outbox; a trigger makes the deliveries).
CREATE TABLE webhook_endpoints (
    id               BLOB PRIMARY KEY,
    user_id          BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url              TEXT NOT NULL,
    description      TEXT,
    events           TEXT,
    secret           TEXT NOT NULL,
    secret_key_id    TEXT NOT NULL,
    previous_key_id  TEXT,
    previous_secret  TEXT,
    previous_until   TEXT,
    enabled          BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason  TEXT,
    failing_since    TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id, created_at);


CREATE TABLE webhook_deliveries (
    id               BLOB PRIMARY KEY,
    endpoint_id      BLOB NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    user_id          BLOB NOT NULL,
    url              TEXT,
    event_type       TEXT NOT NULL,
    task_id          BLOB,
    seq              INTEGER,
    data             TEXT NOT NULL DEFAULT '{}',
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    lease_until      TEXT,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC);
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (endpoint_id, task_id, seq) WHERE task_id IS NOT NULL;

CREATE TABLE webhook_attempts (
    id               BLOB PRIMARY KEY,
    delivery_id      BLOB NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt          INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    latency_ms       INTEGER NOT NULL,
    response_excerpt TEXT,
    created_at       TEXT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, created_at);

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
               SELECT d.id FROM webhook_endpoints d WHERE d.user_id = t.user_id ORDER BY d.created_at, d.id LIMIT 1)));
END;

CREATE TABLE webhook_settings (
    user_id                BLOB PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    credits_low_threshold  INTEGER CHECK (credits_low_threshold > 0),
    updated_at             TEXT NOT NULL
);

CREATE TRIGGER credits_webhooks AFTER UPDATE ON credits
WHEN EXISTS (SELECT 1 FROM webhook_endpoints)
 AND EXISTS (SELECT 1 FROM webhook_settings s WHERE s.user_id = NEW.user_id
             AND OLD.balance - OLD.reserved_balance >= s.credits_low_threshold
             AND NEW.balance - NEW.reserved_balance < s.credits_low_threshold)
BEGIN
    INSERT INTO webhook_deliveries
        (id, endpoint_id, user_id, url, event_type, task_id, seq, data, next_attempt_at, created_at, updated_at)
    SELECT randomblob(16), e.id, NEW.user_id, NULL, 'credits.low', NULL, NULL,
           json_object('available', NEW.balance - NEW.reserved_balance, 'threshold', s.credits_low_threshold,
                       'balance', NEW.balance, 'reserved', NEW.reserved_balance),
           NEW.updated_at, NEW.updated_at, NEW.updated_at
      FROM webhook_endpoints e JOIN webhook_settings s ON s.user_id = NEW.user_id
     WHERE e.user_id = NEW.user_id AND e.enabled AND (e.events IS NULL OR e.events LIKE '%,credits.low,%');
END;
