SET lock_timeout = '5s';
SET statement_timeout = 0;
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_channel_idx ON orders (channel);
DROP INDEX CONCURRENTLY IF EXISTS orders_created_at_idx;
REINDEX INDEX CONCURRENTLY orders_status_idx;
