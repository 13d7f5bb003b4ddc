-- Initial schema. Times are Unix nanoseconds (0 = unset); JSON-like values
-- are json (kept as written; jsonb would reject \u0000 in strings).

CREATE TABLE workflow_names (
    name         text COLLATE "C" PRIMARY KEY,
    last_version integer NOT NULL
);

CREATE TABLE workflows (
    name        text COLLATE "C" NOT NULL,
    version     integer NOT NULL,
    description text COLLATE "C" NOT NULL,
    definition  json NOT NULL,
    create_time bigint NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE executions (
    id              text COLLATE "C" PRIMARY KEY,
    workflow        text COLLATE "C" NOT NULL,
    version         integer NOT NULL,
    status          integer NOT NULL,
    request         json NOT NULL,
    error           json,
    create_time     bigint NOT NULL,
    start_time      bigint NOT NULL,
    end_time        bigint NOT NULL,
    idempotency_key text COLLATE "C" NOT NULL,
    caller          text COLLATE "C" NOT NULL,
    owner           text COLLATE "C" NOT NULL
);
CREATE UNIQUE INDEX executions_idempotency ON executions (caller, idempotency_key) WHERE idempotency_key <> '';
CREATE INDEX executions_newest ON executions (create_time DESC, id DESC);
CREATE INDEX executions_workflow_newest ON executions (workflow, create_time DESC, id DESC);
CREATE INDEX executions_unfinished ON executions (owner) WHERE status < 3;
CREATE INDEX executions_finished ON executions (end_time) WHERE status >= 3;

CREATE TABLE execution_nodes (
    execution_id text COLLATE "C" NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    node_id      text COLLATE "C" NOT NULL,
    position     integer NOT NULL,
    status       integer NOT NULL,
    attempts     integer NOT NULL,
    start_time   bigint NOT NULL,
    end_time     bigint NOT NULL,
    error        json,
    result       json,
    PRIMARY KEY (execution_id, node_id)
);

CREATE TABLE execution_events (
    execution_id text COLLATE "C" NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    seq          bigint NOT NULL,
    time         bigint NOT NULL,
    kind         integer NOT NULL,
    body         json NOT NULL,
    PRIMARY KEY (execution_id, seq)
);

CREATE TABLE owners (
    owner     text COLLATE "C" PRIMARY KEY,
    heartbeat bigint NOT NULL
);

CREATE TABLE secrets (
    name          text COLLATE "C" NOT NULL,
    version       integer NOT NULL,
    keys          json NOT NULL,
    description   text COLLATE "C" NOT NULL,
    create_time   bigint NOT NULL,
    expire_time   bigint NOT NULL,
    allowed_hosts json NOT NULL,
    wrapped_key   bytea NOT NULL,
    ciphertext    bytea NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE key_check (
    id    integer PRIMARY KEY CHECK (id = 1),
    value bytea NOT NULL
);

CREATE TABLE resources (
    name        text COLLATE "C" PRIMARY KEY,
    spec        json NOT NULL,
    create_time bigint NOT NULL,
    update_time bigint NOT NULL
);
