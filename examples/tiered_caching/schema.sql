CREATE TABLE products (
    id    bigint PRIMARY KEY,
    name  text NOT NULL,
    price numeric(10, 2) NOT NULL
);

INSERT INTO products (id, name, price) VALUES
    (1, 'Espresso machine', 499.00),
    (2, 'Grinder', 189.00);
