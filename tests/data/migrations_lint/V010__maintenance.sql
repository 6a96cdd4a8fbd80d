SET lock_timeout = '5s';
SET statement_timeout = '5min';
ALTER TABLE staging_orders SET LOGGED;
CLUSTER orders USING orders_pkey;
ALTER TYPE order_status ADD VALUE 'refunded';
