CREATE TABLE items (
    id     bigint PRIMARY KEY,
    name   text NOT NULL,
    price  numeric(10, 2) NOT NULL,
    views  integer NOT NULL DEFAULT 0,
    locked boolean NOT NULL DEFAULT false
);

-- A locked item makes every write to it fail: the database error the
-- workflow degrades around.
CREATE FUNCTION refuse_locked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.locked THEN
        RAISE EXCEPTION 'item % is locked for maintenance', OLD.id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER items_refuse_locked BEFORE UPDATE ON items
    FOR EACH ROW EXECUTE FUNCTION refuse_locked();

INSERT INTO items (id, name, price, locked) VALUES
    (1, 'Kettle', 29.90, false),
    (2, 'Toaster', 39.00, false),
    (3, 'Blender', 79.50, true),
    (4, 'Mixer', 119.00, true);
