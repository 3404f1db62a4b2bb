-- PostgreSQL's webhook triggers now fire once per statement (../postgres/0019_statement_webhook_triggers.sql).
-- SQLite has no statement-level triggers; its row triggers (0014, 0015) stay as they are.
-- The file keeps the two engines' migration numbers in step.
SELECT 1;
