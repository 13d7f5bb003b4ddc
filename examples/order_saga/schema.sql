CREATE TABLE inventory (
    sku   text PRIMARY KEY,
    stock integer NOT NULL CHECK (stock >= 0),
    price numeric(10, 2) NOT NULL
);

CREATE TABLE reservations (
    id         text PRIMARY KEY,
    order_ref  text NOT NULL,
    sku        text NOT NULL REFERENCES inventory (sku),
    quantity   integer NOT NULL,
    status     text NOT NULL CHECK (status IN ('reserved', 'committed', 'released')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id             text PRIMARY KEY,
    order_ref      text NOT NULL,
    reservation_id text NOT NULL REFERENCES reservations (id),
    charge_id      text NOT NULL,
    amount         numeric(10, 2) NOT NULL,
    status         text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

INSERT INTO inventory (sku, stock, price) VALUES
    ('WIDGET', 10, 25.00),   -- 2 widgets: 50.00, the payment API accepts it
    ('GADGET', 5, 300.00);   -- 2 gadgets: 600.00, the payment API declines it
