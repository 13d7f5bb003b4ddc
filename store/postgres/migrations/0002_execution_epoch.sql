-- Per-execution ownership counters (see store.Execution.Epoch and
-- Restarts, and docs/durability.md). ClaimExecutions increments them.
ALTER TABLE executions ADD COLUMN epoch bigint NOT NULL DEFAULT 1;
ALTER TABLE executions ADD COLUMN restarts integer NOT NULL DEFAULT 0;
-- Attempt numbers are built on the epoch (epoch + failed attempts): an
-- unfinished execution journalled before this migration starts above every
-- attempt number it already used.
UPDATE executions e SET epoch = 1 + coalesce(
    (SELECT max(n.attempts) FROM execution_nodes n WHERE n.execution_id = e.id), 0)
    WHERE e.status < 3;
