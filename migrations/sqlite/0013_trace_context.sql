-- The W3C `traceparent` of the request that submitted a task, kept only while traces are
-- exported, so the run continues the submitting request's trace. Keep in step with
-- ../postgres/0013_trace_context.sql.
ALTER TABLE tasks ADD COLUMN trace_parent TEXT;
