DROP INDEX CONCURRENTLY IF EXISTS ${billing_schema}.invoices_customer_id_idx;
