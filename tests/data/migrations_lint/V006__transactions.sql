BEGIN;
SET LOCAL lock_timeout = '5s';
ALTER TABLE orders ADD COLUMN shipped boolean;
CREATE INDEX CONCURRENTLY orders_shipped_idx ON orders (shipped);
BEGIN;
ALTER TABLE orders ADD COLUMN packed boolean;
COMMIT;
