CREATE TABLE inventory (
    sku   text PRIMARY KEY,
    name  text NOT NULL,
    stock integer NOT NULL CHECK (stock >= 0),
    price numeric(10, 2) NOT NULL
);

INSERT INTO inventory (sku, name, stock, price) VALUES
    ('KB-01', 'Keyboard', 10, 49.90),
    ('MS-02', 'Mouse', 25, 19.50),
    ('MON-27', 'Monitor 27"', 2, 329.00);
