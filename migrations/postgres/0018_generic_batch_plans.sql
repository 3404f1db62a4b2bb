-- The set-based batch functions (0017) plan their statements once per connection.
--
-- PL/pgSQL keeps each statement's plan in the plan cache; for a statement with parameters
-- the cache plans it afresh for every call (a "custom" plan for the call's values) until
-- it decides a generic plan is cheaper, which it did not for these statements (their
-- parameters are arrays whose lengths change from batch to batch). That planning was ~7%
-- of PostgreSQL's CPU in an e2e run. A generic plan is safe here: the functions already
-- run with sequential scans, hash joins and merge joins off, so every plan finds its rows
-- by key whatever the batch's size (`store::set_based_batches_answer_and_book_as_one_by_one_calls`
-- checks that with generic plans on a fresh database).
ALTER FUNCTION fm_task_submit_many SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION fm_task_claim_many SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION fm_task_finish_many SET plan_cache_mode = force_generic_plan;
