CREATE TABLE events (
    id           bigserial PRIMARY KEY,
    aggregate_id text NOT NULL,
    version      integer NOT NULL,
    event_type   text NOT NULL,
    payload      jsonb NOT NULL,
    execution_id text NOT NULL UNIQUE,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (aggregate_id, version)
);

CREATE TABLE aggregates (
    id         text PRIMARY KEY,
    version    integer NOT NULL,
    state      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
