CREATE TABLE users (
    id         bigint PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL,
    created_at timestamptz NOT NULL,
    last_login timestamptz
);

-- Three users of the last week and one older user, who is not extracted.
INSERT INTO users (id, name, email, created_at, last_login) VALUES
    (1, 'ada lovelace', 'ada@Example.com',  now() - interval '1 day 2 hours',  now() - interval '1 hour'),
    (2, 'grace hopper', 'grace@navy.mil',   now() - interval '3 days 2 hours', NULL),
    (3, 'alan turing',  'alan@example.com', now() - interval '6 days 2 hours', now() - interval '2 days'),
    (4, 'old timer',    'old@example.org',  now() - interval '30 days',        now() - interval '20 days');
