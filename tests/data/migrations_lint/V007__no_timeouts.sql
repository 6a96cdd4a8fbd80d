ALTER TABLE orders ADD COLUMN discount numeric;
CREATE INDEX orders_discount_idx ON orders (discount);
ALTER TABLE orders ADD CONSTRAINT orders_discount_check CHECK (discount >= 0) NOT VALID;
