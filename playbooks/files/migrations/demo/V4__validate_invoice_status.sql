-- VALIDATE takes only a SHARE UPDATE EXCLUSIVE lock: reads and writes go on while it scans.
SET lock_timeout = '5s';
ALTER TABLE ${billing_schema}.invoices VALIDATE CONSTRAINT invoices_status_check;
