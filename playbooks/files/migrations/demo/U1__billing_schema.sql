DROP TABLE ${billing_schema}.invoices;
DROP SCHEMA ${billing_schema};
