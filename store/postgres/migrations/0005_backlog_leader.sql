-- Housekeeping election (docs/cluster.md#housekeeping-on-one-elected-replica).
-- Named leases electing the one replica that runs a periodic job (the
-- lease scan and retention): the holder renews expires_at (the database's
-- clock) and another replica takes the row once it has passed.
-- (The shared backlog needs no schema: it is the unfinished executions
-- without an owner, found through the partial index executions_unfinished.)
CREATE TABLE leader_leases (
    name       text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL
);
