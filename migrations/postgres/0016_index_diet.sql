-- Fewer index entries written per task (see ARCHITECTURE.md, Performance). Every index on a
-- hot table is one more B-tree insertion (and its WAL) for each row a task writes; these
-- three served no query, or served it from a narrower index. Keep in step with
-- ../sqlite/0016_index_diet.sql.
--
-- * credit_transactions_reference_idx: no query looks ledger rows up by reference alone;
--   exactly-once booking is the unique (type, reference_id) index, which stays.
-- * credit_reservations (user_id, status): only pending reservations are ever looked up by
--   user (the available balance, the invariants); resolved ones, nearly all rows, no
--   longer get an entry.
-- * tasks (parent_task_id): only the children of a chain have a parent; the index holds
--   those alone (the ON DELETE SET NULL of the reference still finds them).
--
-- Safe during a rolling deploy: the previous release runs the same queries, served by the
-- new indexes. Building them locks writes to the two tables for as long as the build takes
-- (docs/deploy.md).
DROP INDEX credit_transactions_reference_idx;
CREATE INDEX credit_reservations_pending_user_idx ON credit_reservations (user_id) WHERE status = 'pending';
DROP INDEX credit_reservations_user_status_idx;
CREATE INDEX tasks_parent_idx ON tasks (parent_task_id) WHERE parent_task_id IS NOT NULL;
DROP INDEX tasks_parent_task_id_idx;
