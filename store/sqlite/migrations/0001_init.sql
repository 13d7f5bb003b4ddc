-- Initial schema. Times are Unix nanoseconds (0 = unset); JSON-like values
-- are JSON text.

CREATE TABLE workflow_names (
    name         TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE workflows (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    description TEXT NOT NULL,
    definition  TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;

CREATE TABLE executions (
    id              TEXT PRIMARY KEY,
    workflow        TEXT NOT NULL,
    version         INTEGER NOT NULL,
    status          INTEGER NOT NULL,
    request         TEXT NOT NULL,
    error           TEXT,
    create_time     INTEGER NOT NULL,
    start_time      INTEGER NOT NULL,
    end_time        INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    caller          TEXT NOT NULL,
    owner           TEXT NOT NULL
);
CREATE UNIQUE INDEX executions_idempotency ON executions (caller, idempotency_key) WHERE idempotency_key <> '';
CREATE INDEX executions_newest ON executions (create_time DESC, id DESC);
CREATE INDEX executions_workflow_newest ON executions (workflow, create_time DESC, id DESC);
-- No index on status: every status change would rewrite it, and the
-- journal's write cost matters more than the scans of ClaimExecutions (at
-- start-up) and DeleteExecutionsBefore (bounded by create_time).

CREATE TABLE execution_nodes (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    node_id      TEXT NOT NULL,
    position     INTEGER NOT NULL,
    status       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    start_time   INTEGER NOT NULL,
    end_time     INTEGER NOT NULL,
    error        TEXT,
    result       TEXT,
    PRIMARY KEY (execution_id, node_id)
) WITHOUT ROWID;

CREATE TABLE execution_events (
    execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    time         INTEGER NOT NULL,
    kind         INTEGER NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;

CREATE TABLE owners (
    owner     TEXT PRIMARY KEY,
    heartbeat INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE secrets (
    name          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    keys          TEXT NOT NULL,
    description   TEXT NOT NULL,
    create_time   INTEGER NOT NULL,
    expire_time   INTEGER NOT NULL,
    allowed_hosts TEXT NOT NULL,
    wrapped_key   BLOB NOT NULL,
    ciphertext    BLOB NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;

CREATE TABLE key_check (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BLOB NOT NULL
);

CREATE TABLE resources (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
) WITHOUT ROWID;
