-- Task reads and stream starts as functions that plan their statement once per connection.
-- SQLite has no such functions: ../sqlite/0022_generic_read_plans.sql changes nothing.
--
-- The API reads tasks and stream starts many to a statement (api/src/store/pg_batch.rs):
-- the ids and cursors are arrays. A prepared statement's plan is cached per connection,
-- but for a statement with parameters the cache plans afresh for every call (a "custom"
-- plan for the call's values) until it decides a generic plan is cheaper, and for these it
-- often did not: a custom plan knows the array's length (one or two ids), a generic one
-- guesses ten, so the generic plan always looks dearer. pg_stat_statements (track_planning,
-- a 6,000-task e2e run) counted the batched stream start planned on 435 of its 836 calls at
-- ~258 µs a plan (more than the 174 µs it took to run), the lone one on 209 of 575.
--
-- These functions run the same statement with a generic plan, and, as the batch functions
-- of 0017/0018, with sequential scans, hash and merge joins off, so a plan made while the
-- tables are small still finds every row by key as they grow (tested with generic plans on
-- a fresh database: `store::stream_starts_read_together_answer_as_alone`,
-- `store::task_reads_together_answer_as_alone`). One statement, so one snapshot: a
-- terminal status still comes with its terminal event. A task that does not exist has no
-- row; rows come in no set order (callers match them by `ord`, the array index from 1).
--
-- Measured with the one-task functions' setting below (xtask/scripts/cpu-per-task.sh, e2e,
-- 6,000 tasks, 2 interleaved pairs, pg_stat_statements): planning in PostgreSQL 569 / 539 ms
-- -> 224 / 223 ms a run (~55 µs less a task), PostgreSQL 1.083 / 1.113 -> 0.988 / 1.083 ms
-- of CPU a task. What planning remains is mostly plans made again after an invalidation.
--
-- Safe during a rolling deploy: new functions only; old processes keep their statements.

-- Many stream starts: the task, its queue row's seq while waiting, and its events after
-- each cursor, oldest first (`Store::task_stream_start`).
CREATE FUNCTION fm_task_stream_starts(p_ids uuid[], p_after bigint[])
RETURNS TABLE (
    ord bigint, id uuid, user_id uuid, tool_id uuid, status text, credits_cost bigint, parent_task_id uuid,
    current_step_id text, attempts integer, cancel_requested boolean, run_all_steps boolean,
    created_at timestamptz, updated_at timestamptz, started_at timestamptz, completed_at timestamptz,
    trace_parent text, event_seq bigint, queue_seq bigint, events jsonb)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT r.ord, s.* FROM unnest(p_ids, p_after) WITH ORDINALITY AS r(task_id, after_seq, ord)
     CROSS JOIN LATERAL (
        SELECT t.id, t.user_id, t.tool_id, t.status, t.credits_cost, t.parent_task_id, t.current_step_id,
               t.attempts, t.cancel_requested, t.run_all_steps, t.created_at, t.updated_at, t.started_at,
               t.completed_at, t.trace_parent, t.event_seq,
               CASE WHEN t.status = 'queued' THEN
                   (SELECT q.seq FROM task_queue q WHERE q.task_id = t.id AND q.lease_until IS NULL)
               END,
               COALESCE((SELECT jsonb_agg(jsonb_build_object(
                           'seq', e.seq, 'type', e.type, 'data', e.data, 'created_at', e.created_at)
                           ORDER BY e.seq)
                         FROM task_events e WHERE e.task_id = t.id AND e.seq > r.after_seq), '[]'::jsonb)
          FROM tasks t
         WHERE t.id = r.task_id
        OFFSET 0) s;
END
$$;

-- Many task reads: the task, its payload, its steps in order and, while it waits, its
-- place in line (`Store::task_full`).
CREATE FUNCTION fm_task_reads(p_ids uuid[])
RETURNS TABLE (
    ord bigint, id uuid, user_id uuid, tool_id uuid, status text, credits_cost bigint, parent_task_id uuid,
    current_step_id text, attempts integer, cancel_requested boolean, run_all_steps boolean,
    created_at timestamptz, updated_at timestamptz, started_at timestamptz, completed_at timestamptz,
    trace_parent text, has_payload boolean, input jsonb, output jsonb, error text, steps jsonb,
    queue_position bigint)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT r.ord, s.* FROM unnest(p_ids) WITH ORDINALITY AS r(task_id, ord)
     CROSS JOIN LATERAL (
        SELECT t.id, t.user_id, t.tool_id, t.status, t.credits_cost, t.parent_task_id, t.current_step_id,
               t.attempts, t.cancel_requested, t.run_all_steps, t.created_at, t.updated_at, t.started_at,
               t.completed_at, t.trace_parent, p.task_id IS NOT NULL, p.input, p.output, p.error,
               COALESCE((SELECT jsonb_agg(jsonb_build_object(
                           'step_id', st.step_id, 'position', st.position, 'status', st.status,
                           'state', st.state, 'started_at', st.started_at, 'completed_at', st.completed_at)
                           ORDER BY st.position)
                         FROM task_steps st WHERE st.task_id = t.id), '[]'::jsonb),
               CASE WHEN t.status = 'queued' THEN
                   (SELECT q.seq - COALESCE((SELECT MIN(w.seq) FROM task_queue w WHERE w.lease_until IS NULL), q.seq)
                      FROM task_queue q WHERE q.task_id = t.id AND q.lease_until IS NULL)
               END
          FROM tasks t LEFT JOIN task_payloads p ON p.task_id = t.id
         WHERE t.id = r.task_id
        OFFSET 0) s;
END
$$;

-- The one-task functions (single calls, and every call of a batch that failed) plan their
-- statements the same way: their parameters are scalars, but a connection makes five custom
-- plans of each statement before it tries a generic one, and a connection makes few single
-- calls, so a third of them re-planned (~20 µs of planning a task in that e2e run). Their
-- statements find rows by key under generic plans too, on a fresh database (tested by
-- `store::set_based_batches_answer_and_book_as_one_by_one_calls`). A setting of existing
-- functions: old processes calling them get the same answers.
ALTER FUNCTION fm_task_submit(uuid, uuid, uuid, bigint, uuid, boolean, text[], uuid[], uuid, jsonb, uuid,
                              timestamptz, text, text)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION fm_task_claim(uuid, timestamptz, timestamptz, bigint, integer)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION fm_task_step_begin(uuid, text, boolean, jsonb, timestamptz)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION fm_task_finish(uuid, text, timestamptz, jsonb, text, bigint, text[], jsonb[], text, jsonb, text, text,
                              integer, bigint)
    SET plan_cache_mode = force_generic_plan;
