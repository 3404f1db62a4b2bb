-- The same index change as ../postgres/0020_reservation_lookup.sql: the partial index of
-- unresolved reservations by user has the predicate `resolved_at IS NULL`, which the
-- readers of pending sums state and the lookups by reference do not. SQLite plans each
-- statement with the table's size at hand, so its lookups were not affected; the two
-- engines keep the same indexes for the same statements.
CREATE INDEX credit_reservations_unresolved_user_idx ON credit_reservations (user_id) WHERE resolved_at IS NULL;
DROP INDEX credit_reservations_pending_user_idx;
