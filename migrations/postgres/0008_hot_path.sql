-- The task hot path (see ARCHITECTURE.md, Performance). Keep in step with
-- ../sqlite/0008_hot_path.sql.
-- * tasks.event_seq: the last event sequence number of the task, bumped in the statement
--   that records a milestone, so no writer has to look for MAX(seq).
-- * task_queue.seq: the place in line (a queue position is `seq - head`, never a count);
--   task_queue.user_id: the owner, for the per-user running limit without a join;
--   task_queue.parked: refused at its user's running limit, sent again when a slot frees.
ALTER TABLE tasks ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;
UPDATE tasks SET event_seq = COALESCE((SELECT MAX(seq) FROM task_events e WHERE e.task_id = tasks.id), 0);

CREATE SEQUENCE task_queue_seq;
ALTER TABLE task_queue ADD COLUMN seq BIGINT NOT NULL DEFAULT nextval('task_queue_seq');
ALTER TABLE task_queue ADD COLUMN user_id UUID;
UPDATE task_queue q SET user_id = t.user_id FROM tasks t WHERE t.id = q.task_id;
ALTER TABLE task_queue ADD COLUMN parked BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX task_queue_waiting_seq_idx ON task_queue (seq) WHERE lease_until IS NULL;
CREATE INDEX task_queue_user_lease_idx ON task_queue (user_id, lease_until);
-- Every index a hot row's update touches costs each task: these two served no query that
-- needs them (status filters go through the user or id order; the queue's lease scans are
-- of a small table), and room on the page lets updates stay on it (HOT).
DROP INDEX tasks_status_idx;
DROP INDEX task_queue_lease_idx;
ALTER TABLE tasks SET (fillfactor = 85);
ALTER TABLE task_queue SET (fillfactor = 70);
ALTER TABLE task_steps SET (fillfactor = 85);
ALTER TABLE task_payloads SET (fillfactor = 85);

-- A time-ordered UUID (version 7) made at the moment of the call, with the sub-millisecond
-- fraction in rand_a (RFC 9562, method 3). Ledger rows get their ids here, after the
-- account row is locked, so a user's rows are ordered as they were booked (as
-- `Uuid::now_v7()` in the same place does for the SQLite engine).
CREATE FUNCTION fm_uuid_v7() RETURNS uuid LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_us bigint := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
    v_frac int := ((v_us % 1000) * 4096 / 1000)::int;
    v_bytes bytea := uuid_send(gen_random_uuid());
BEGIN
    v_bytes := overlay(v_bytes PLACING substring(int8send(v_us / 1000) FROM 3) FROM 1 FOR 6);
    v_bytes := set_byte(v_bytes, 6, 112 + (v_frac >> 8));
    v_bytes := set_byte(v_bytes, 7, v_frac & 255);
    RETURN encode(v_bytes, 'hex')::uuid;
END $$;

-- The task hot path in one round trip each. These run exactly the statements of the
-- multi-statement transactions in api/src/store/task_queries.rs (which SQLite runs through
-- its group-committing writer), and must stay in step with them; the tests run both.

-- Submit: reserve the cost, insert task + payload + steps, enqueue, record `queued` (its
-- position from the place in line). Returns {"available": n} when the credits do not
-- cover the cost, else {"task": <row>, "event": <queued data>}.
CREATE FUNCTION fm_task_submit(
    p_id uuid, p_user uuid, p_tool uuid, p_cost bigint, p_parent uuid, p_run_all boolean,
    p_steps text[], p_step_ids uuid[], p_payload_id uuid, p_input jsonb,
    p_reservation_id uuid, p_now timestamptz)
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
                           event_seq, created_at, updated_at)
        VALUES (p_id, p_user, p_tool, 'queued', p_cost, p_parent, p_steps[1], p_run_all, 1, p_now, p_now)
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

-- Claim one given task (the Redis queue delivered its id) for a lease, within its user's
-- running limit (exact: counted under the user's advisory lock; refused rows are parked).
-- Returns {"outcome": "empty" | "busy" | "not_due" (+ "due") | "user_at_limit"}, or
-- "claimed" with the attempts, the task row, its input, its steps and the tool's version.
-- When the run may go on (within p_max_attempts, not ended or to be cancelled), the first
-- step not completed yet is started in the same call ("started": its step_started event).
CREATE FUNCTION fm_task_claim(
    p_task uuid, p_now timestamptz, p_lease_until timestamptz, p_per_user bigint, p_max_attempts int)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    q record;
    v_running bigint;
    v_attempts int;
    v_task tasks;
    v_step text;
    v_data jsonb;
    v_seq bigint;
    v_started jsonb;
BEGIN
    SELECT task_id, user_id, available_at, lease_until INTO q FROM task_queue WHERE task_id = p_task FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('outcome', 'empty');
    END IF;
    IF q.lease_until IS NOT NULL AND q.lease_until >= p_now THEN
        RETURN jsonb_build_object('outcome', 'busy');
    END IF;
    IF q.available_at > p_now THEN
        RETURN jsonb_build_object('outcome', 'not_due', 'due', q.available_at);
    END IF;
    IF p_per_user > 0 AND q.user_id IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(q.user_id::text, 7));
        SELECT COUNT(*) INTO v_running FROM task_queue
         WHERE user_id = q.user_id AND lease_until >= p_now AND task_id <> p_task;
        IF v_running >= p_per_user THEN
            UPDATE task_queue SET parked = TRUE WHERE task_id = p_task;
            RETURN jsonb_build_object('outcome', 'user_at_limit');
        END IF;
    END IF;
    UPDATE task_queue SET lease_until = p_lease_until, attempts = attempts + 1, parked = FALSE
     WHERE task_id = p_task RETURNING attempts INTO v_attempts;
    SELECT * INTO v_task FROM tasks WHERE id = p_task;
    IF v_attempts <= p_max_attempts AND v_task.status IN ('queued', 'running') AND NOT v_task.cancel_requested THEN
        SELECT step_id INTO v_step FROM task_steps WHERE task_id = p_task AND status <> 'completed' ORDER BY position LIMIT 1;
        IF FOUND THEN
            SELECT jsonb_build_object('stepId', v_step, 'stepName', COALESCE(x->>'name', v_step), 'type', 'step_started')
              INTO v_data
              FROM tools t, jsonb_array_elements(t.config->'steps') x
             WHERE t.id = v_task.tool_id AND x->>'id' = v_step;
            v_data := COALESCE(v_data, jsonb_build_object('stepId', v_step, 'stepName', v_step, 'type', 'step_started'));
            v_seq := fm_task_step_begin(p_task, v_step, true, v_data, p_now);
            IF v_seq IS NOT NULL THEN
                v_started := jsonb_build_object('seq', v_seq, 'step_id', v_step, 'data', v_data);
            END IF;
        END IF;
    END IF;
    RETURN jsonb_build_object(
        'outcome', 'claimed',
        'started', v_started,
        'attempts', v_attempts,
        'task', to_jsonb(v_task),
        'input', (SELECT input FROM task_payloads WHERE task_id = p_task),
        'tool_updated_at', (SELECT updated_at FROM tools WHERE id = v_task.tool_id),
        'steps', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                    'step_id', step_id, 'position', position, 'status', status, 'state', state,
                    'started_at', started_at, 'completed_at', completed_at) ORDER BY position)
                  FROM task_steps WHERE task_id = p_task), '[]'::jsonb));
END $$;

-- A step starts: the task runs (a run counted once, with p_first), the step runs, and
-- `step_started` (p_data) is recorded. NULL when the task ended or is to be cancelled.
CREATE FUNCTION fm_task_step_begin(p_task uuid, p_step text, p_first boolean, p_data jsonb, p_now timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    UPDATE tasks SET event_seq = event_seq + 1, updated_at = p_now, status = 'running', current_step_id = p_step,
                     attempts = attempts + CASE WHEN p_first THEN 1 ELSE 0 END,
                     started_at = CASE WHEN p_first THEN COALESCE(started_at, p_now) ELSE started_at END
     WHERE id = p_task AND status IN ('queued', 'running') AND NOT cancel_requested
    RETURNING event_seq INTO v_seq;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO task_events (task_id, seq, type, data, created_at) VALUES (p_task, v_seq, 'step_started', p_data, p_now);
    UPDATE task_steps SET status = 'running', started_at = COALESCE(started_at, p_now), updated_at = p_now
     WHERE task_id = p_task AND step_id = p_step;
    RETURN v_seq;
END $$;

-- A task's end, once: status, events (p_kinds/p_datas, numbered after the task's last),
-- the folded-in last step, output or error, the settlement of its reservation (p_spend NULL:
-- all of it; else spent, the rest released), the dead letter, the queue row, and the
-- unparking of the user's tasks refused at the running limit. Returns {"ended": false} if
-- it had already ended (only its queue row goes), else the last event number and the
-- unparked task ids.
CREATE FUNCTION fm_task_finish(
    p_task uuid, p_status text, p_now timestamptz, p_output jsonb, p_error text, p_spend bigint,
    p_kinds text[], p_datas jsonb[], p_step text, p_step_patch jsonb,
    p_dead_reason text, p_dead_error text, p_dead_attempts int, p_unpark bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_n int := cardinality(p_kinds);
    v_ref text := p_task::text;
    v_seq bigint;
    v_user uuid;
    r record;
    v_spend bigint;
    v_bal bigint;
    v_res bigint;
    v_unparked jsonb := '[]'::jsonb;
BEGIN
    WITH t AS (
        UPDATE tasks SET event_seq = event_seq + v_n, updated_at = p_now, status = p_status, completed_at = p_now
         WHERE id = p_task AND status NOT IN ('completed', 'failed', 'cancelled')
        RETURNING event_seq),
    d AS (DELETE FROM task_queue WHERE task_id = p_task RETURNING user_id)
    SELECT (SELECT event_seq FROM t), (SELECT user_id FROM d) INTO v_seq, v_user;
    IF v_seq IS NULL THEN
        RETURN jsonb_build_object('ended', false);
    END IF;
    WITH e AS (
        INSERT INTO task_events (task_id, seq, type, data, created_at)
        SELECT p_task, v_seq - v_n + u.ord, u.kind, u.data, p_now
          FROM unnest(p_kinds, p_datas) WITH ORDINALITY AS u(kind, data, ord)),
    s AS (
        UPDATE task_steps SET status = 'completed', state = state || p_step_patch, completed_at = p_now, updated_at = p_now
         WHERE p_step IS NOT NULL AND task_id = p_task AND step_id = p_step),
    l AS (
        INSERT INTO task_dead_letters (task_id, user_id, reason, error, attempts, created_at)
        SELECT id, user_id, p_dead_reason, p_dead_error, p_dead_attempts, p_now
          FROM tasks WHERE p_dead_reason IS NOT NULL AND id = p_task)
    UPDATE task_payloads SET output = p_output, error = p_error, updated_at = p_now WHERE task_id = p_task;
    -- The account is locked before the reservation is resolved (the order of every ledger
    -- operation), in the statement that finds the reservation.
    SELECT cr.user_id, cr.amount INTO r
      FROM credit_reservations cr JOIN credits c ON c.user_id = cr.user_id
     WHERE cr.reference_id = v_ref
       FOR UPDATE OF c;
    IF FOUND THEN
        v_spend := COALESCE(p_spend, r.amount);
        IF v_spend < 0 OR v_spend > r.amount THEN
            RAISE EXCEPTION 'spend % exceeds the reservation of %', v_spend, r.amount;
        END IF;
        UPDATE credit_reservations SET status = 'resolved', spent = v_spend, resolved_at = p_now
         WHERE reference_id = v_ref AND status = 'pending';
        IF FOUND THEN
            UPDATE credits SET balance = balance - v_spend, reserved_balance = reserved_balance - r.amount,
                               lifetime_spent = lifetime_spent + v_spend, updated_at = p_now
             WHERE user_id = r.user_id
            RETURNING balance, reserved_balance INTO v_bal, v_res;
            IF v_spend > 0 THEN
                INSERT INTO credit_transactions
                    (id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at)
                VALUES (fm_uuid_v7(), r.user_id, 'spend', -v_spend, v_bal, -v_spend, v_res + (r.amount - v_spend), v_ref,
                        'spent on ' || v_ref, p_now);
            END IF;
            IF r.amount - v_spend > 0 THEN
                INSERT INTO credit_transactions
                    (id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at)
                VALUES (fm_uuid_v7(), r.user_id, 'refund', 0, v_bal, -(r.amount - v_spend), v_res, v_ref,
                        'released from ' || v_ref, p_now);
            END IF;
        END IF;
    END IF;
    IF v_user IS NOT NULL AND p_unpark > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(v_user::text, 7));
        WITH u AS (
            UPDATE task_queue SET parked = FALSE
             WHERE task_id IN (SELECT task_id FROM task_queue WHERE user_id = v_user AND parked ORDER BY seq LIMIT p_unpark)
            RETURNING task_id)
        SELECT COALESCE(jsonb_agg(task_id), '[]'::jsonb) INTO v_unparked FROM u;
    END IF;
    RETURN jsonb_build_object('ended', true, 'seq', v_seq, 'unparked', v_unparked);
END $$;
