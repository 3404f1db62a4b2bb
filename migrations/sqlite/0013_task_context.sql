-- The W3C `traceparent` of the request that submitted a task, kept only while traces are
-- exported, so the run continues the submitting request's trace. Keep in step with
-- ../postgres/0013_task_context.sql.
ALTER TABLE tasks ADD COLUMN trace_parent TEXT;

-- A task's own webhook URL (POST /api/tasks {"webhook": …}): its events go there, signed
-- with the user's first endpoint's secret, instead of to the user's endpoints.
ALTER TABLE tasks ADD COLUMN webhook_url TEXT;
