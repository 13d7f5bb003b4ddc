CREATE TABLE users (
    id   bigint PRIMARY KEY,
    name text NOT NULL,
    tier text NOT NULL CHECK (tier IN ('premium', 'standard', 'free'))
);

INSERT INTO users (id, name, tier) VALUES
    (1, 'Ada', 'premium'),
    (2, 'Grace', 'standard'),
    (3, 'Linus', 'free');
