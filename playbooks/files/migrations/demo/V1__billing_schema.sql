-- The sandbox's demo migrations: a billing schema beside the shop, applied by site.yml.
CREATE SCHEMA IF NOT EXISTS ${billing_schema};

CREATE TABLE ${billing_schema}.invoices (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers (id),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    total       numeric(12, 2) NOT NULL CHECK (total >= 0)
);
