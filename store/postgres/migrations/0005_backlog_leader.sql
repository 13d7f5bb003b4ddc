-- Shared backlog and housekeeping election (docs/cluster.md).
-- The backlog is the unfinished executions without an owner; claims take
-- the oldest first, so they read this partial index in order.
CREATE INDEX executions_queued ON executions (create_time, id) WHERE status < 3 AND owner = '';
-- Named leases electing the one replica that runs a periodic job (the
-- lease scan and retention): the holder renews expires_at (the database's
-- clock) and another replica takes the row once it has passed.
CREATE TABLE leader_leases (
    name       text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at timestamptz NOT NULL
);
