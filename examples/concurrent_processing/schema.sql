CREATE TABLE tasks (
    id           bigint PRIMARY KEY,
    input        integer NOT NULL,
    output       integer CHECK (output >= 0),
    status       text NOT NULL DEFAULT 'pending',
    error        text,
    processed_at timestamptz,
    processed_by integer
);

-- 200 tasks; every 20th has a negative input, so its output violates the
-- CHECK constraint and the task fails.
INSERT INTO tasks (id, input)
SELECT i, CASE WHEN i % 20 = 0 THEN -i ELSE i END FROM generate_series(1, 200) AS i;
