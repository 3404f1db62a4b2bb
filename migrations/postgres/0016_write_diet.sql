-- Less written per task (see ARCHITECTURE.md, Performance). Keep in step with
-- ../sqlite/0016_write_diet.sql, which makes the same index changes only (below).
--
-- Indexes: each index on a hot table is one more B-tree insertion, with its WAL, for every
-- row a task writes. These three served no query, or served it from a narrower index:
-- * credit_transactions_reference_idx: no query looks ledger rows up by reference alone;
--   exactly-once booking is the unique (type, reference_id) index, which stays.
-- * credit_reservations (user_id, status): only pending reservations are ever looked up by
--   user (the available balance, the invariants); resolved ones, nearly all rows, no
--   longer get an entry.
-- * tasks (parent_task_id): only the children of a chain have a parent; the index holds
--   those alone (the ON DELETE SET NULL of the reference still finds them).
--
-- Foreign keys from a task's own rows to `tasks`: its payload, steps, queue row and events
-- are written only by the fm_task_* functions, in the transaction that writes the task
-- row itself, and tasks are never deleted (an account's deletion keeps them, attached to
-- the tombstone), so these four references could not fail and cascaded nothing. Each
-- still cost a check per inserted row (a query and a row lock on the task): 8 per echo
-- task. The references to `users` and `tools` stay: they guard money and stop a tool with
-- tasks from being deleted. SQLite keeps all of them: there a check is an index probe.
--
-- Safe during a rolling deploy: the previous release runs the same queries, served by the
-- new indexes, and writes the same rows. Building the indexes holds writes to the two
-- tables for as long as the build takes (docs/deploy.md).
DROP INDEX credit_transactions_reference_idx;
CREATE INDEX credit_reservations_pending_user_idx ON credit_reservations (user_id) WHERE status = 'pending';
DROP INDEX credit_reservations_user_status_idx;
CREATE INDEX tasks_parent_idx ON tasks (parent_task_id) WHERE parent_task_id IS NOT NULL;
DROP INDEX tasks_parent_task_id_idx;
ALTER TABLE task_payloads DROP CONSTRAINT task_payloads_task_id_fkey;
ALTER TABLE task_steps DROP CONSTRAINT task_steps_task_id_fkey;
ALTER TABLE task_queue DROP CONSTRAINT task_queue_task_id_fkey;
ALTER TABLE task_events DROP CONSTRAINT task_events_task_id_fkey;
