SET lock_timeout = '5s';
SET statement_timeout = '5min';
ALTER TABLE orders ALTER COLUMN status SET NOT NULL;
ALTER TABLE orders ALTER COLUMN total TYPE numeric(16, 2) USING total::numeric(16, 2);
