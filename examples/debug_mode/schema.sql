CREATE TABLE orders (
    id       bigserial PRIMARY KEY,
    customer text NOT NULL,
    total    numeric(10, 2) NOT NULL,
    status   text NOT NULL
);

INSERT INTO orders (customer, total, status) VALUES
    ('acme', 120.00, 'paid'),
    ('acme', 35.50, 'shipped'),
    ('globex', 99.99, 'paid');
