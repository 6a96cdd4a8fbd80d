-- Built without blocking writes: a migration that holds only this statement runs outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_customer_id_idx ON ${billing_schema}.invoices (customer_id);
