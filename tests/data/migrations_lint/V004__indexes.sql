SET lock_timeout = '5s';
SET statement_timeout = '5min';

CREATE INDEX orders_created_at_idx ON orders (created_at);
CREATE UNIQUE INDEX orders_ref_idx ON orders (ref);
DROP INDEX orders_old_idx;
REINDEX INDEX orders_status_idx;
ALTER TABLE orders ADD COLUMN region text;
CREATE INDEX CONCURRENTLY orders_region_idx ON orders (region);
