-- The W3C `traceparent` of the request that submitted a task, kept only while traces are
-- exported (OTEL_EXPORTER_OTLP_ENDPOINT), so the worker process that runs the task continues
-- the submitting request's trace. Keep in step with ../sqlite/0013_task_context.sql.
--
-- Rolling deploys: old processes keep calling the 12-argument fm_task_submit, which now
-- hands over to the 14-argument one (no trace parent, no webhook URL); tasks rows gain a nullable column
-- that old processes neither write nor read (fm_task_claim's to_jsonb(task) carries it, and
-- their decoders ignore unknown keys).
ALTER TABLE tasks ADD COLUMN trace_parent TEXT;

-- A task's own webhook URL (POST /api/tasks {"webhook": …}): its events go there, signed
-- with the user's first endpoint's secret, instead of to the user's endpoints.
ALTER TABLE tasks ADD COLUMN webhook_url TEXT;

-- Submit, as in 0008_hot_path.sql, with the trace parent and webhook URL stored on the task.
CREATE FUNCTION fm_task_submit(
    p_id uuid, p_user uuid, p_tool uuid, p_cost bigint, p_parent uuid, p_run_all boolean,
    p_steps text[], p_step_ids uuid[], p_payload_id uuid, p_input jsonb,
    p_reservation_id uuid, p_now timestamptz, p_trace_parent text, p_webhook_url text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_bal bigint;
    v_res bigint;
    v_seq bigint;
    v_head bigint;
    v_data jsonb;
    v_task jsonb;
BEGIN
    IF p_cost > 0 THEN
        WITH c AS (
            UPDATE credits SET reserved_balance = reserved_balance + p_cost, updated_at = p_now
             WHERE user_id = p_user AND balance - reserved_balance >= p_cost
            RETURNING balance, reserved_balance),
        r AS (
            INSERT INTO credit_reservations (id, user_id, reference_id, amount, created_at)
            SELECT p_reservation_id, p_user, p_id::text, p_cost, p_now FROM c),
        b AS (
            INSERT INTO credit_transactions
                (id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at)
            SELECT fm_uuid_v7(), p_user, 'reserve', 0, c.balance, p_cost, c.reserved_balance, p_id::text,
                   'reserved for ' || p_id::text, p_now
              FROM c)
        SELECT balance, reserved_balance INTO v_bal, v_res FROM c;
        IF v_bal IS NULL THEN
            RETURN jsonb_build_object('available',
                COALESCE((SELECT balance - reserved_balance FROM credits WHERE user_id = p_user), 0));
        END IF;
    END IF;
    WITH t AS (
        INSERT INTO tasks (id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, run_all_steps,
                           event_seq, created_at, updated_at, trace_parent, webhook_url)
        VALUES (p_id, p_user, p_tool, 'queued', p_cost, p_parent, p_steps[1], p_run_all, 1, p_now, p_now, p_trace_parent, p_webhook_url)
        RETURNING *),
    p AS (
        INSERT INTO task_payloads (id, task_id, input, created_at, updated_at)
        SELECT p_payload_id, t.id, p_input, p_now, p_now FROM t),
    s AS (
        INSERT INTO task_steps (id, task_id, step_id, position, created_at, updated_at)
        SELECT u.id, p_id, u.step_id, (u.ord - 1)::int, p_now, p_now
          FROM t, unnest(p_step_ids, p_steps) WITH ORDINALITY AS u(id, step_id, ord)),
    q AS (
        INSERT INTO task_queue (task_id, user_id, available_at, created_at)
        SELECT t.id, p_user, p_now, p_now FROM t
        RETURNING seq),
    e AS (
        INSERT INTO task_events (task_id, seq, type, data, created_at)
        SELECT p_id, 1, 'queued',
               jsonb_build_object('type', 'queued', 'position',
                   GREATEST(q.seq - COALESCE((SELECT MIN(w.seq) FROM task_queue w WHERE w.lease_until IS NULL), q.seq), 0)),
               p_now
          FROM q
        RETURNING data)
    SELECT to_jsonb(t), e.data INTO v_task, v_data FROM t, e;
    RETURN jsonb_build_object('task', v_task, 'event', v_data);
END $$;

CREATE OR REPLACE FUNCTION fm_task_submit(
    p_id uuid, p_user uuid, p_tool uuid, p_cost bigint, p_parent uuid, p_run_all boolean,
    p_steps text[], p_step_ids uuid[], p_payload_id uuid, p_input jsonb,
    p_reservation_id uuid, p_now timestamptz)
RETURNS jsonb LANGUAGE sql AS $$
    SELECT fm_task_submit(p_id, p_user, p_tool, p_cost, p_parent, p_run_all, p_steps, p_step_ids, p_payload_id,
                          p_input, p_reservation_id, p_now, NULL::text, NULL::text)
$$;
