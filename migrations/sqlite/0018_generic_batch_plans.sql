-- PostgreSQL's batch functions plan once per connection (../postgres/0018_generic_batch_plans.sql).
-- SQLite has no such functions; the file keeps the two engines' migration numbers in step.
SELECT 1;
