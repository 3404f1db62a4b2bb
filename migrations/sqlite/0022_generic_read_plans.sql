-- PostgreSQL's batched task reads become functions with generic plans
-- (../postgres/0022_generic_read_plans.sql). SQLite has no such functions; the file keeps
-- the two engines' migration numbers in step.
SELECT 1;
