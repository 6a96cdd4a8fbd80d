SET lock_timeout = '5s';
SET statement_timeout = '5min';

ALTER TABLE orders ADD COLUMN public_id uuid DEFAULT gen_random_uuid();
ALTER TABLE orders ADD COLUMN noted_at timestamptz DEFAULT now();
ALTER TABLE orders ADD COLUMN priority integer NOT NULL;
ALTER TABLE orders ADD COLUMN weight bigint NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN legacy_seq bigserial;
ALTER TABLE orders ADD COLUMN jitter double precision DEFAULT random();
ALTER TABLE orders
    ADD COLUMN channel text;
