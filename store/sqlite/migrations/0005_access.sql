-- Access control (issue 14): API keys (a keyed hash only), role bindings,
-- and grants (creator and allowed callers) of secrets, named resources and
-- workflows. Lists are JSON arrays of strings; times are Unix nanoseconds.
CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    roles          TEXT NOT NULL,
    hash           BLOB NOT NULL,
    create_time    INTEGER NOT NULL,
    expire_time    INTEGER NOT NULL,
    last_used_time INTEGER NOT NULL,
    creator        TEXT NOT NULL
);

CREATE TABLE role_bindings (
    id          TEXT PRIMARY KEY,
    principal   TEXT NOT NULL,
    roles       TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    creator     TEXT NOT NULL
);

CREATE TABLE grants (
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    creator         TEXT NOT NULL,
    allowed_callers TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
