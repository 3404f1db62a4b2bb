-- Less written per task (see ARCHITECTURE.md, Performance). Keep in step with
-- ../postgres/0016_write_diet.sql: the same index changes; PostgreSQL also drops the
-- foreign keys from a task's own rows to `tasks`, which SQLite keeps (a check here is an
-- index probe, not a query and a row lock, and dropping one means rebuilding the table).
--
-- * credit_transactions_reference_idx: no query looks ledger rows up by reference alone;
--   exactly-once booking is the unique (type, reference_id) index, which stays.
-- * credit_reservations (user_id, status): only pending reservations are ever looked up by
--   user; resolved ones, nearly all rows, no longer get an entry.
-- * tasks (parent_task_id): only the children of a chain have a parent.
DROP INDEX credit_transactions_reference_idx;
CREATE INDEX credit_reservations_pending_user_idx ON credit_reservations (user_id) WHERE status = 'pending';
DROP INDEX credit_reservations_user_status_idx;
CREATE INDEX tasks_parent_idx ON tasks (parent_task_id) WHERE parent_task_id IS NOT NULL;
DROP INDEX tasks_parent_task_id_idx;
