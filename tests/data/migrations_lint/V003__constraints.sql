SET lock_timeout = '5s';
SET statement_timeout = '5min';

ALTER TABLE orders ADD CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id);

ALTER TABLE orders ADD CONSTRAINT orders_product_id_fkey
    FOREIGN KEY (product_id) REFERENCES products (id) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_product_id_fkey;

ALTER TABLE orders ADD CONSTRAINT orders_qty_check CHECK (qty > 0);
ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total >= 0) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_total_check;

ALTER TABLE orders ALTER COLUMN status SET NOT NULL;

ALTER TABLE orders ADD CONSTRAINT orders_ref_key UNIQUE (ref);
ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE USING INDEX orders_code_idx;
ALTER TABLE shipments ADD PRIMARY KEY (id);
