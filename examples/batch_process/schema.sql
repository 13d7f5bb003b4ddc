CREATE TABLE records (
    id         bigint PRIMARY KEY,
    name       text NOT NULL,
    value      double precision NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
