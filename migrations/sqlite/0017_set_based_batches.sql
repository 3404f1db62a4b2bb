-- PostgreSQL's set-based batch functions (../postgres/0017_set_based_batches.sql). SQLite
-- runs no batch statements (its writer group-commits the one-task transactions), so there
-- is nothing to change here; the file keeps the two engines' migration numbers in step.
SELECT 1;
