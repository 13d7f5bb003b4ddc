-- The recovery tick reads only unfinished executions: this index holds
-- those alone (a row leaves it when its execution finishes), so a claim
-- costs what is running, not what the store retains. Queries must spell
-- the predicate with the literal 3 (store.ExecutionCompleted) for SQLite
-- to use the index. The retention tick needs no index of its own: it
-- walks executions_newest up to its cutoff (an execution ends after it
-- was created), which reaches only rows created before the cutoff.
CREATE INDEX executions_unfinished ON executions (owner) WHERE status < 3;
