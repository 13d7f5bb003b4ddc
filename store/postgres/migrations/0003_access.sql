-- Access control (issue 14): API keys (a keyed hash only), role bindings,
-- and grants (creator and allowed callers) of secrets, named resources and
-- workflows. Lists are JSON arrays of strings; times are Unix nanoseconds.
CREATE TABLE api_keys (
    id             text COLLATE "C" PRIMARY KEY,
    name           text NOT NULL,
    roles          text NOT NULL,
    hash           bytea NOT NULL,
    create_time    bigint NOT NULL,
    expire_time    bigint NOT NULL,
    last_used_time bigint NOT NULL,
    creator        text NOT NULL
);

CREATE TABLE role_bindings (
    id          text COLLATE "C" PRIMARY KEY,
    principal   text NOT NULL,
    roles       text NOT NULL,
    create_time bigint NOT NULL,
    creator     text NOT NULL
);

CREATE TABLE grants (
    kind            text NOT NULL,
    name            text COLLATE "C" NOT NULL,
    creator         text NOT NULL,
    allowed_callers text NOT NULL,
    PRIMARY KEY (kind, name)
);
