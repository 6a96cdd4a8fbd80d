SET lock_timeout = '5s';
SET statement_timeout = '5min';

ALTER TABLE orders RENAME COLUMN qty TO quantity;
ALTER TABLE customers RENAME TO clients;
ALTER TABLE orders DROP COLUMN legacy_flag;
DROP TABLE old_orders;
ALTER TABLE orders ALTER COLUMN total TYPE numeric(14, 2);
ALTER TABLE orders ALTER COLUMN note DROP NOT NULL;
TRUNCATE audit_log CASCADE;
