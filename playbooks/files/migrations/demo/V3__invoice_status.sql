-- A status with its allowed values, added the way that keeps locks short on a big table: a
-- constant default is not a rewrite (PostgreSQL 11+), and the CHECK is added NOT VALID, then
-- validated (which takes only a SHARE UPDATE EXCLUSIVE lock).
SET lock_timeout = '5s';
ALTER TABLE ${billing_schema}.invoices ADD COLUMN status text NOT NULL DEFAULT 'open';
ALTER TABLE ${billing_schema}.invoices
    ADD CONSTRAINT invoices_status_check CHECK (status IN ('open', 'paid', 'void')) NOT VALID;
ALTER TABLE ${billing_schema}.invoices VALIDATE CONSTRAINT invoices_status_check;
