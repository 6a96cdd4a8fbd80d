ALTER TABLE ${billing_schema}.invoices DROP COLUMN status;
