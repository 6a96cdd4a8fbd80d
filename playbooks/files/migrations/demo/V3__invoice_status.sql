-- A status with its allowed values, added the way that keeps locks short on a big table: a
-- constant default is not a rewrite (PostgreSQL 11+), and the CHECK is added NOT VALID here and
-- validated in the next migration, in a transaction of its own: validated in this one, the ACCESS
-- EXCLUSIVE lock of the ADD would be held through the whole validation scan.
SET lock_timeout = '5s';
ALTER TABLE ${billing_schema}.invoices ADD COLUMN status text NOT NULL DEFAULT 'open';
ALTER TABLE ${billing_schema}.invoices
    ADD CONSTRAINT invoices_status_check CHECK (status IN ('open', 'paid', 'void')) NOT VALID;
