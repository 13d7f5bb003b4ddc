-- Two login roles: a read-only reporting role and a writer. Roles belong to
-- the whole PostgreSQL cluster, so they are created only if missing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kgw_reporting') THEN
        CREATE ROLE kgw_reporting LOGIN PASSWORD 'reporting-password';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kgw_writer') THEN
        CREATE ROLE kgw_writer LOGIN PASSWORD 'writer-password';
    END IF;
END
$$;

CREATE TABLE sales (
    id      bigserial PRIMARY KEY,
    region  text NOT NULL,
    amount  numeric(12, 2) NOT NULL,
    sold_at timestamptz NOT NULL
);

CREATE TABLE reports (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    payload    jsonb NOT NULL,
    created_by text NOT NULL DEFAULT current_user,
    created_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT ON sales TO kgw_reporting;
GRANT SELECT, INSERT ON reports TO kgw_writer;
GRANT USAGE ON SEQUENCE reports_id_seq TO kgw_writer;

INSERT INTO sales (region, amount, sold_at) VALUES
    ('eu', 100.00, now() - interval '1 day'),
    ('eu', 250.50, now() - interval '3 days'),
    ('us', 80.25, now() - interval '2 days'),
    ('us', 19.75, now() - interval '10 days'),  -- outside a 7-day period
    ('apac', 42.00, now() - interval '5 days');
