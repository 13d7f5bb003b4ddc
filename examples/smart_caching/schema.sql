CREATE TABLE sales (
    id     bigserial PRIMARY KEY,
    region text NOT NULL,
    amount numeric(12, 2) NOT NULL
);

INSERT INTO sales (region, amount) VALUES
    ('eu', 100.00), ('eu', 250.50), ('us', 80.25);
