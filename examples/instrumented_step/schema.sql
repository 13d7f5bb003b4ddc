CREATE TABLE orders (
    id     bigserial PRIMARY KEY,
    status text NOT NULL
);

INSERT INTO orders (status) VALUES ('paid'), ('paid'), ('paid'), ('refunded');
