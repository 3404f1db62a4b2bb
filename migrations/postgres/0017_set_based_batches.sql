-- Set-based batches of the task hot path (see ARCHITECTURE.md, Performance). SQLite has no
-- batches (its writer group-commits instead): ../sqlite/0017_set_based_batches.sql is empty.
--
-- Under load, the API and the workers run many submits or ends as ONE statement
-- (api/src/store/pg_batch.rs). Until now that statement called fm_task_submit or
-- fm_task_finish once per task, and each call ran its own dozen statements: a statement's
-- start and end (opening relations and indexes, parsing the tables' CHECK expressions,
-- firing its triggers) cost PostgreSQL as much as the rows it wrote. These functions do the
-- same work for the whole batch in a handful of statements, so that cost is paid once per
-- batch. They answer exactly what the one-task functions answer, one jsonb per call, in the
-- order of the arrays; the one-task functions stay for single calls and for the fallback:
-- when a batch fails (a spend over its reservation, a task twice in one batch, a deadlock,
-- or one of the rare cases these functions leave to one-by-one calls: a reservation that
-- crosses its user's credits.low threshold, a parked task cancelled after another end of
-- its user, claims under different running limits) its transaction rolls back and each
-- call runs again alone.
--
-- Plans: the batches are small (at most 64 calls) and join them to big tables by key. A
-- function's plans are cached per connection from its first calls, when the tables may be
-- near empty and never analysed; a plan made then (a hash join over a scan of the whole
-- table) would stay as the table grows. So these functions run with sequential scans, hash
-- and merge joins off: every row is found through its index (tested).
--
-- Safe during a rolling deploy: new functions only; old processes keep calling the
-- one-task functions, which are unchanged.

-- The k-th id of a run of ids that sort after p_base and in k's order: p_base (a version 7
-- id made after the accounts were locked) with k (below 16,384) in the top bits of its
-- random part. A batch books its ledger rows with these ids, so a user's rows sort in the
-- order they were booked, as fm_uuid_v7() per row does for the one-task functions.
CREATE FUNCTION fm_uuid_v7_nth(p_base uuid, p_k int) RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(set_byte(set_byte(uuid_send(p_base), 8, 128 | ((p_k >> 8) & 63)), 9, p_k & 255), 'hex')::uuid
$$;

-- Many submits (fm_task_submit, 14 arguments, per element of the arrays; p_steps and
-- p_step_ids hold a JSON array per task). Each reservation sees the balance the ones before
-- it in the batch left (per user, in array order), so a batch accepts exactly the tasks that
-- one-by-one calls in that order would. Answers in array order.
CREATE FUNCTION fm_task_submit_many(
    p_now timestamptz, p_ids uuid[], p_users uuid[], p_tools uuid[], p_costs bigint[], p_parents uuid[],
    p_run_alls boolean[], p_steps jsonb[], p_step_ids jsonb[], p_payload_ids uuid[], p_inputs jsonb[],
    p_reservation_ids uuid[], p_trace_parents text[], p_webhook_urls text[])
RETURNS jsonb[] LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
    v_n int := cardinality(p_ids);
    v_ok boolean[] := array_fill(FALSE, ARRAY[cardinality(p_ids)]);
    v_available bigint[] := array_fill(0::bigint, ARRAY[cardinality(p_ids)]);
    v_user uuid;
    v_left bigint;
    v_base uuid;
    v_answers jsonb[];
    r record;
BEGIN
    IF (SELECT count(DISTINCT x) FROM unnest(p_ids) x) <> v_n THEN
        RAISE EXCEPTION 'a task appears twice in one batch';
    END IF;
    -- The accounts that pay, locked in one order (as every batch and ledger operation does).
    PERFORM 1 FROM credits c
     WHERE c.user_id IN (SELECT x.u FROM unnest(p_users, p_costs) AS x(u, cost) WHERE x.cost > 0)
     ORDER BY c.user_id
       FOR UPDATE;
    -- Which reservations the balance covers, in order: no statement per call, a loop over
    -- the batch's rows in memory. A reservation that takes its user's available balance
    -- below their `credits.low` threshold sends the batch one by one: the webhook
    -- (fm_webhook_credits_low, on each update of the account) must tell the balance right
    -- after that reservation, not after the whole batch's.
    FOR r IN
        SELECT x.ord, x.u, x.cost, COALESCE(c.balance - c.reserved_balance, 0) AS available,
               ws.credits_low_threshold AS threshold
          FROM unnest(p_users, p_costs) WITH ORDINALITY AS x(u, cost, ord)
          LEFT JOIN credits c ON c.user_id = x.u
          LEFT JOIN webhook_settings ws ON ws.user_id = x.u
         ORDER BY x.u, x.ord
    LOOP
        IF v_user IS DISTINCT FROM r.u THEN
            v_user := r.u;
            v_left := r.available;
        END IF;
        IF r.cost <= 0 THEN
            v_ok[r.ord] := TRUE;
        ELSIF v_left >= r.cost THEN
            IF v_left >= r.threshold AND v_left - r.cost < r.threshold THEN
                RAISE EXCEPTION 'a reservation crosses its user''s credits.low threshold';
            END IF;
            v_ok[r.ord] := TRUE;
            v_left := v_left - r.cost;
        ELSE
            v_available[r.ord] := v_left;
        END IF;
    END LOOP;
    v_base := fm_uuid_v7();
    WITH b AS (
        SELECT x.*
          FROM unnest(p_ids, p_users, p_tools, p_costs, p_parents, p_run_alls, p_steps, p_step_ids, p_payload_ids,
                      p_inputs, p_reservation_ids, p_trace_parents, p_webhook_urls)
               WITH ORDINALITY AS x(id, user_id, tool_id, cost, parent, run_all, steps, step_ids, payload_id, input,
                                    reservation_id, trace_parent, webhook_url, ord)
         WHERE v_ok[x.ord]),
    k AS (
        SELECT b.id, b.user_id, b.cost, b.reservation_id, b.ord, c.balance,
               c.reserved_balance + SUM(b.cost) OVER (PARTITION BY b.user_id ORDER BY b.ord) AS reserved_after
          FROM b JOIN credits c ON c.user_id = b.user_id
         WHERE b.cost > 0),
    cu AS (
        UPDATE credits c SET reserved_balance = c.reserved_balance + a.cost, updated_at = p_now
          FROM (SELECT k.user_id, SUM(k.cost) AS cost FROM k GROUP BY k.user_id) a
         WHERE c.user_id = a.user_id),
    cr AS (
        INSERT INTO credit_reservations (id, user_id, reference_id, amount, created_at)
        SELECT k.reservation_id, k.user_id, k.id::text, k.cost, p_now FROM k),
    ct AS (
        INSERT INTO credit_transactions
            (id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at)
        SELECT fm_uuid_v7_nth(v_base, (row_number() OVER (ORDER BY k.ord))::int), k.user_id, 'reserve', 0, k.balance,
               k.cost, k.reserved_after, k.id::text, 'reserved for ' || k.id::text, p_now
          FROM k),
    t AS (
        INSERT INTO tasks (id, user_id, tool_id, status, credits_cost, parent_task_id, current_step_id, run_all_steps,
                           event_seq, created_at, updated_at, trace_parent, webhook_url)
        SELECT b.id, b.user_id, b.tool_id, 'queued', b.cost, b.parent, b.steps->>0, b.run_all, 1, p_now, p_now,
               b.trace_parent, b.webhook_url
          FROM b ORDER BY b.ord
        RETURNING *),
    p AS (
        INSERT INTO task_payloads (id, task_id, input, created_at, updated_at)
        SELECT b.payload_id, b.id, b.input, p_now, p_now FROM b),
    s AS (
        INSERT INTO task_steps (id, task_id, step_id, position, created_at, updated_at)
        SELECT u.id::uuid, b.id, u.step_id, (u.n - 1)::int, p_now, p_now
          FROM b, ROWS FROM (jsonb_array_elements_text(b.step_ids), jsonb_array_elements_text(b.steps))
                  WITH ORDINALITY AS u(id, step_id, n)),
    q AS (
        INSERT INTO task_queue (task_id, user_id, available_at, created_at)
        SELECT b.id, b.user_id, p_now, p_now FROM b ORDER BY b.ord
        RETURNING task_id, seq),
    -- The head of the line as the first call of the batch saw it.
    h AS (
        SELECT COALESCE((SELECT MIN(w.seq) FROM task_queue w WHERE w.lease_until IS NULL), (SELECT MIN(q.seq) FROM q))
               AS head),
    e AS (
        INSERT INTO task_events (task_id, seq, type, data, created_at)
        SELECT q.task_id, 1, 'queued', jsonb_build_object('type', 'queued', 'position', GREATEST(q.seq - h.head, 0)),
               p_now
          FROM q, h ORDER BY q.seq
        RETURNING task_id, data)
    SELECT array_agg(CASE WHEN v_ok[x.ord]
                          THEN jsonb_build_object('task', (SELECT to_jsonb(t) FROM t WHERE t.id = x.id),
                                                  'event', (SELECT e.data FROM e WHERE e.task_id = x.id))
                          ELSE jsonb_build_object('available', v_available[x.ord]) END
                     ORDER BY x.ord)
      INTO v_answers
      FROM unnest(p_ids) WITH ORDINALITY AS x(id, ord);
    RETURN v_answers;
END $$;

-- Many ends (fm_task_finish per element of the arrays; p_kinds and p_datas hold a JSON
-- array per task). Accounts are locked in one order before any reservation is resolved;
-- each user's ledger rows carry the balances running through the batch in array order.
-- The parked tasks a user's ends free are all answered on the first of those ends.
CREATE FUNCTION fm_task_finish_many(
    p_now timestamptz, p_ids uuid[], p_statuses text[], p_outputs jsonb[], p_errors text[], p_spends bigint[],
    p_kinds jsonb[], p_datas jsonb[], p_steps text[], p_patches jsonb[],
    p_dead_reasons text[], p_dead_errors text[], p_dead_attempts int[], p_unparks bigint[])
RETURNS jsonb[] LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
    v_n int := cardinality(p_ids);
    v_seqs bigint[];
    v_queue_users uuid[];
    v_parked_ended boolean[];
    v_base uuid;
    v_unparked jsonb := '{}'::jsonb;
    v_answers jsonb[];
BEGIN
    IF (SELECT count(DISTINCT x) FROM unnest(p_ids) x) <> v_n THEN
        RAISE EXCEPTION 'a task appears twice in one batch';
    END IF;
    -- The ends themselves: a task not ended yet ends (its events numbered after its last),
    -- with its last step, output, dead letter; every queue row goes.
    WITH b AS (
        SELECT x.*
          FROM unnest(p_ids, p_statuses, p_outputs, p_errors, p_kinds, p_datas, p_steps, p_patches, p_dead_reasons,
                      p_dead_errors, p_dead_attempts)
               WITH ORDINALITY AS x(id, status, output, error, kinds, datas, step, patch, dead_reason, dead_error,
                                    dead_attempts, ord)
         -- Task rows are locked in this order: by id, as any other batch locks them.
         ORDER BY x.id),
    t AS (
        UPDATE tasks SET event_seq = tasks.event_seq + jsonb_array_length(b.kinds), updated_at = p_now,
                         status = b.status, completed_at = p_now
          FROM b
         WHERE tasks.id = b.id AND tasks.status NOT IN ('completed', 'failed', 'cancelled')
        RETURNING tasks.id, tasks.user_id, tasks.event_seq),
    d AS (
        DELETE FROM task_queue q USING b WHERE q.task_id = b.id RETURNING q.task_id, q.user_id, q.parked),
    e AS (
        INSERT INTO task_events (task_id, seq, type, data, created_at)
        SELECT t.id, t.event_seq - jsonb_array_length(b.kinds) + k.n, k.kind, k.data, p_now
          FROM b JOIN t ON t.id = b.id,
               ROWS FROM (jsonb_array_elements_text(b.kinds), jsonb_array_elements(b.datas))
                  WITH ORDINALITY AS k(kind, data, n)
         ORDER BY b.ord, k.n),
    s AS (
        UPDATE task_steps ts SET status = 'completed', state = ts.state || b.patch, completed_at = p_now,
                                 updated_at = p_now
          FROM b JOIN t ON t.id = b.id
         WHERE b.step IS NOT NULL AND ts.task_id = b.id AND ts.step_id = b.step),
    l AS (
        INSERT INTO task_dead_letters (task_id, user_id, reason, error, attempts, created_at)
        SELECT t.id, t.user_id, b.dead_reason, b.dead_error, b.dead_attempts, p_now
          FROM b JOIN t ON t.id = b.id
         WHERE b.dead_reason IS NOT NULL),
    p AS (
        UPDATE task_payloads tp SET output = b.output, error = b.error, updated_at = p_now
          FROM b JOIN t ON t.id = b.id
         WHERE tp.task_id = b.id)
    SELECT array_agg(t.event_seq ORDER BY b.ord), array_agg(d.user_id ORDER BY b.ord),
           array_agg(t.id IS NOT NULL AND COALESCE(d.parked, FALSE) ORDER BY b.ord)
      INTO v_seqs, v_queue_users, v_parked_ended
      FROM b LEFT JOIN t ON t.id = b.id LEFT JOIN d ON d.task_id = b.id;
    -- A parked task that ends (is cancelled) in the same batch after an earlier end of its
    -- user that frees a slot: one by one, that end could have unparked it first. Rare; such
    -- a batch runs one by one.
    IF EXISTS (SELECT 1
                 FROM unnest(v_queue_users, v_parked_ended) WITH ORDINALITY AS g(u, parked, ord)
                 JOIN unnest(v_seqs, v_queue_users, p_unparks) WITH ORDINALITY AS x(seq, u, n, ord)
                   ON x.u = g.u AND x.ord < g.ord
                WHERE g.parked AND x.seq IS NOT NULL AND x.n > 0) THEN
        RAISE EXCEPTION 'a parked task ends in the batch that frees its user''s slot';
    END IF;

    -- The settlement of the ended tasks' reservations. Their accounts are locked first, in
    -- one order; then every spend is checked (one over its reservation fails the batch, so
    -- its call fails alone in the one-by-one rerun).
    PERFORM 1 FROM credits c
     WHERE c.user_id IN (SELECT cr.user_id
                           FROM unnest(p_ids, v_seqs) AS x(id, seq)
                           JOIN credit_reservations cr ON cr.reference_id = x.id::text
                          WHERE x.seq IS NOT NULL)
     ORDER BY c.user_id
       FOR UPDATE;
    IF EXISTS (SELECT 1
                 FROM unnest(p_ids, v_seqs, p_spends) AS x(id, seq, spend)
                 JOIN credit_reservations cr ON cr.reference_id = x.id::text
                 JOIN credits c ON c.user_id = cr.user_id
                WHERE x.seq IS NOT NULL AND (x.spend < 0 OR x.spend > cr.amount)) THEN
        RAISE EXCEPTION 'a spend exceeds its reservation';
    END IF;
    v_base := fm_uuid_v7();
    WITH x AS (
        SELECT y.id::text AS ref, y.spend, y.ord
          FROM unnest(p_ids, v_seqs, p_spends) WITH ORDINALITY AS y(id, seq, spend, ord)
         WHERE y.seq IS NOT NULL),
    r AS (
        UPDATE credit_reservations cr SET status = 'resolved', spent = COALESCE(x.spend, cr.amount), resolved_at = p_now
          FROM x
         WHERE cr.reference_id = x.ref AND cr.status = 'pending'
           AND EXISTS (SELECT 1 FROM credits c WHERE c.user_id = cr.user_id)
        RETURNING cr.user_id, cr.amount, cr.spent, cr.reference_id, x.ord),
    k AS (
        SELECT r.*,
               c.balance - SUM(r.spent) OVER w AS balance_after,
               c.reserved_balance - SUM(r.amount) OVER w AS reserved_after
          FROM r JOIN credits c ON c.user_id = r.user_id
        WINDOW w AS (PARTITION BY r.user_id ORDER BY r.ord)),
    u AS (
        UPDATE credits c SET balance = c.balance - a.spent, reserved_balance = c.reserved_balance - a.amount,
                             lifetime_spent = c.lifetime_spent + a.spent, updated_at = p_now
          FROM (SELECT r.user_id, SUM(r.spent) AS spent, SUM(r.amount) AS amount FROM r GROUP BY r.user_id) a
         WHERE c.user_id = a.user_id),
    g AS (
        SELECT k.ord, 1 AS part, k.user_id, 'spend' AS type, -k.spent AS amount, k.balance_after, -k.spent AS delta,
               k.reserved_after + (k.amount - k.spent) AS reserved_after, k.reference_id,
               'spent on ' || k.reference_id AS description
          FROM k WHERE k.spent > 0
        UNION ALL
        SELECT k.ord, 2, k.user_id, 'refund', 0, k.balance_after, -(k.amount - k.spent), k.reserved_after,
               k.reference_id, 'released from ' || k.reference_id
          FROM k WHERE k.amount - k.spent > 0)
    INSERT INTO credit_transactions
        (id, user_id, type, amount, balance_after, reserved_delta, reserved_after, reference_id, description, created_at)
    SELECT fm_uuid_v7_nth(v_base, (row_number() OVER (ORDER BY g.ord, g.part))::int), g.user_id, g.type, g.amount,
           g.balance_after, g.delta, g.reserved_after, g.reference_id, g.description, p_now
      FROM g;

    -- A slot frees for each ended task that had a queue row: its user's parked tasks, up to
    -- p_unparks per end, are let go (under the user's queue lock, taken in user order as the
    -- claims take it).
    IF EXISTS (SELECT 1 FROM unnest(v_seqs, v_queue_users, p_unparks) AS x(seq, u, n)
                WHERE x.seq IS NOT NULL AND x.u IS NOT NULL AND x.n > 0) THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(l.u::text, 7))
           FROM (SELECT DISTINCT x.u
                   FROM unnest(v_seqs, v_queue_users, p_unparks) AS x(seq, u, n)
                  WHERE x.seq IS NOT NULL AND x.u IS NOT NULL AND x.n > 0
                  ORDER BY x.u) l;
        WITH f AS (
            SELECT x.u, SUM(x.n) AS n
              FROM unnest(v_seqs, v_queue_users, p_unparks) AS x(seq, u, n)
             WHERE x.seq IS NOT NULL AND x.u IS NOT NULL AND x.n > 0
             GROUP BY x.u),
        w AS (
            UPDATE task_queue tq SET parked = FALSE
              FROM f CROSS JOIN LATERAL (
                       SELECT pq.task_id FROM task_queue pq
                        WHERE pq.user_id = f.u AND pq.parked
                        ORDER BY pq.seq LIMIT f.n) z
             WHERE tq.task_id = z.task_id
            RETURNING tq.task_id, tq.user_id)
        SELECT COALESCE(jsonb_object_agg(a.user_id::text, a.ids), '{}'::jsonb) INTO v_unparked
          FROM (SELECT w.user_id, jsonb_agg(w.task_id) AS ids FROM w GROUP BY w.user_id) a;
    END IF;

    SELECT array_agg(a.answer ORDER BY a.ord) INTO v_answers
      FROM (SELECT y.ord,
                   CASE WHEN y.seq IS NULL THEN jsonb_build_object('ended', false)
                        ELSE jsonb_build_object('ended', true, 'seq', y.seq, 'unparked',
                                 CASE WHEN y.ord = y.first THEN COALESCE(v_unparked -> y.u::text, '[]'::jsonb)
                                      ELSE '[]'::jsonb END) END AS answer
              FROM (SELECT x.*, MIN(x.ord) FILTER (WHERE x.seq IS NOT NULL AND x.n > 0)
                                    OVER (PARTITION BY x.u) AS first
                      FROM unnest(v_seqs, v_queue_users, p_unparks) WITH ORDINALITY AS x(seq, u, n, ord)) y) a;
    RETURN v_answers;
END $$;

-- Many claims (fm_task_claim per element of the arrays; each is one given task, as the
-- Redis queue delivers them). Queue rows locked by another transaction are skipped
-- ("empty"), as one by one. The running limit is counted per user under the user's queue
-- lock (taken in user order) and applied in array order: each claim sees the leases that
-- the ones before it in the batch took. Each answer carries the task row as it was
-- before its first step started, and its steps after.
CREATE FUNCTION fm_task_claim_many(
    p_now timestamptz, p_ids uuid[], p_untils timestamptz[], p_per_users bigint[], p_max_attempts int[])
RETURNS jsonb[] LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
    v_n int := cardinality(p_ids);
    -- Per call: 'empty', 'busy', 'not_due', 'user_at_limit' or 'claimed'; the due time.
    v_outcome text[] := array_fill('empty'::text, ARRAY[cardinality(p_ids)]);
    v_due timestamptz[] := array_fill(NULL::timestamptz, ARRAY[cardinality(p_ids)]);
    v_users uuid[] := array_fill(NULL::uuid, ARRAY[cardinality(p_ids)]);
    v_user uuid;
    v_running bigint;
    v_answers jsonb[];
    r record;
BEGIN
    IF (SELECT count(DISTINCT x) FROM unnest(p_ids) x) <> v_n THEN
        RAISE EXCEPTION 'a task appears twice in one batch';
    END IF;
    -- The limit below is counted for the batch as a whole: one limit, leases in the future.
    IF (SELECT count(DISTINCT l) FROM unnest(p_per_users) l) > 1
       OR EXISTS (SELECT 1 FROM unnest(p_untils) u WHERE u IS NULL OR u < p_now) THEN
        RAISE EXCEPTION 'claims with different running limits or past leases in one batch';
    END IF;
    FOR r IN
        SELECT x.ord, q.user_id, q.available_at, q.lease_until
          FROM unnest(p_ids) WITH ORDINALITY AS x(id, ord)
          JOIN LATERAL (SELECT w.user_id, w.available_at, w.lease_until
                          FROM task_queue w WHERE w.task_id = x.id
                           FOR UPDATE SKIP LOCKED) q ON TRUE
    LOOP
        v_users[r.ord] := r.user_id;
        IF r.lease_until IS NOT NULL AND r.lease_until >= p_now THEN
            v_outcome[r.ord] := 'busy';
        ELSIF r.available_at > p_now THEN
            v_outcome[r.ord] := 'not_due';
            v_due[r.ord] := r.available_at;
        ELSE
            v_outcome[r.ord] := 'claimed';
        END IF;
    END LOOP;

    -- The running limit: users' queue locks in user order, their leases counted once,
    -- then each claim in array order takes a slot or is parked.
    IF EXISTS (SELECT 1 FROM unnest(v_outcome, v_users, p_per_users) AS x(o, u, l)
                WHERE x.o = 'claimed' AND x.u IS NOT NULL AND x.l > 0) THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(l.u::text, 7))
           FROM (SELECT DISTINCT x.u FROM unnest(v_outcome, v_users, p_per_users) AS x(o, u, l)
                  WHERE x.o = 'claimed' AND x.u IS NOT NULL AND x.l > 0
                  ORDER BY x.u) l;
        FOR r IN
            SELECT x.ord, x.u, x.l,
                   (SELECT COUNT(*) FROM task_queue w
                     WHERE w.user_id = x.u AND w.lease_until >= p_now AND w.task_id <> x.id) AS running
              FROM unnest(p_ids, v_outcome, v_users, p_per_users) WITH ORDINALITY AS x(id, o, u, l, ord)
             WHERE x.o = 'claimed' AND x.u IS NOT NULL AND x.l > 0
             ORDER BY x.u, x.ord
        LOOP
            IF v_user IS DISTINCT FROM r.u THEN
                v_user := r.u;
                v_running := r.running;
            END IF;
            IF v_running >= r.l THEN
                v_outcome[r.ord] := 'user_at_limit';
            ELSE
                v_running := v_running + 1;
            END IF;
        END LOOP;
        UPDATE task_queue SET parked = TRUE
         WHERE task_id IN (SELECT x.id FROM unnest(p_ids, v_outcome) AS x(id, o) WHERE x.o = 'user_at_limit');
    END IF;

    -- The leases, then the first step not completed yet started for each run that may go
    -- on (within its attempts, not ended or to be cancelled), with its step_started event.
    WITH c AS (
        SELECT x.id, x.until, x.max_attempts, x.ord
          FROM unnest(p_ids, p_untils, p_max_attempts, v_outcome) WITH ORDINALITY AS x(id, until, max_attempts, o, ord)
         WHERE x.o = 'claimed'),
    l AS (
        UPDATE task_queue q SET lease_until = c.until, attempts = q.attempts + 1, parked = FALSE
          FROM c WHERE q.task_id = c.id
        RETURNING q.task_id, q.attempts),
    t0 AS (
        SELECT t.*, l.attempts AS claim_attempts, c.ord,
               (l.attempts <= c.max_attempts AND t.status IN ('queued', 'running') AND NOT t.cancel_requested) AS go
          FROM c JOIN l ON l.task_id = c.id JOIN tasks t ON t.id = c.id),
    st AS (
        SELECT t0.id, t0.ord, f.step_id,
               jsonb_build_object('stepId', f.step_id, 'stepName', COALESCE(
                   (SELECT x->>'name' FROM tools tl, jsonb_array_elements(tl.config->'steps') x
                     WHERE tl.id = t0.tool_id AND x->>'id' = f.step_id LIMIT 1), f.step_id),
                   'type', 'step_started') AS data
          FROM t0
          JOIN LATERAL (SELECT s.step_id FROM task_steps s
                         WHERE s.task_id = t0.id AND s.status <> 'completed'
                         ORDER BY s.position LIMIT 1) f ON TRUE
         WHERE t0.go),
    u AS (
        UPDATE tasks SET event_seq = tasks.event_seq + 1, updated_at = p_now, status = 'running',
                         current_step_id = st.step_id, attempts = tasks.attempts + 1,
                         started_at = COALESCE(tasks.started_at, p_now)
          FROM st
         WHERE tasks.id = st.id AND tasks.status IN ('queued', 'running') AND NOT tasks.cancel_requested
        RETURNING tasks.id, tasks.event_seq),
    e AS (
        INSERT INTO task_events (task_id, seq, type, data, created_at)
        SELECT u.id, u.event_seq, 'step_started', st.data, p_now
          FROM st JOIN u ON u.id = st.id
         ORDER BY st.ord),
    s AS (
        UPDATE task_steps ts SET status = 'running', started_at = COALESCE(ts.started_at, p_now), updated_at = p_now
          FROM st JOIN u ON u.id = st.id
         WHERE ts.task_id = st.id AND ts.step_id = st.step_id)
    SELECT array_agg(CASE WHEN t0.id IS NULL THEN NULL ELSE jsonb_build_object(
                          'attempts', t0.claim_attempts,
                          'task', to_jsonb(t0) - 'claim_attempts' - 'ord' - 'go',
                          'started', CASE WHEN u.id IS NULL THEN NULL ELSE
                              jsonb_build_object('seq', u.event_seq, 'step_id', st.step_id, 'data', st.data) END)
                      END ORDER BY x.ord)
      INTO v_answers
      FROM unnest(p_ids) WITH ORDINALITY AS x(id, ord)
      LEFT JOIN t0 ON t0.ord = x.ord
      LEFT JOIN st ON st.ord = x.ord
      LEFT JOIN u ON u.id = st.id;

    -- The answers; a claimed one with its input, tool version and steps as they are now.
    SELECT array_agg(CASE x.o
               WHEN 'claimed' THEN COALESCE(x.a, '{}'::jsonb) || jsonb_build_object(
                   'outcome', 'claimed',
                   'input', (SELECT p.input FROM task_payloads p WHERE p.task_id = x.id),
                   'tool_updated_at', (SELECT tl.updated_at FROM tools tl
                                        WHERE tl.id = (x.a->'task'->>'tool_id')::uuid),
                   'steps', COALESCE((SELECT jsonb_agg(jsonb_build_object(
                               'step_id', s.step_id, 'position', s.position, 'status', s.status, 'state', s.state,
                               'started_at', s.started_at, 'completed_at', s.completed_at) ORDER BY s.position)
                             FROM task_steps s WHERE s.task_id = x.id), '[]'::jsonb))
               WHEN 'not_due' THEN jsonb_build_object('outcome', 'not_due', 'due', x.due)
               ELSE jsonb_build_object('outcome', x.o) END
             ORDER BY x.ord)
      INTO v_answers
      FROM unnest(p_ids, v_outcome, v_due, v_answers) WITH ORDINALITY AS x(id, o, due, a, ord);
    RETURN v_answers;
END $$;
