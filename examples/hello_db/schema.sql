CREATE TABLE users (
    id         bigint PRIMARY KEY,
    name       text NOT NULL,
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO users (id, name, email) VALUES
    (1, 'Ada', 'ada@example.com'),
    (2, 'Grace', 'grace@example.org'),
    (3, 'Linus', 'linus@example.net');
