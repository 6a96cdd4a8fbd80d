-- Runs outside a transaction: CREATE INDEX CONCURRENTLY cannot run inside one.
CREATE INDEX CONCURRENTLY orders_customer_id_idx ON orders (customer_id);
