-- New tables: design rules (types, keys) apply; locks do not (nobody uses them yet).
CREATE TABLE accounts (
    id serial PRIMARY KEY,
    email varchar(255) NOT NULL,
    country char(2),
    created_at timestamp NOT NULL DEFAULT now()
);

CREATE TABLE invoices (
    id integer PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id),
    amount numeric(12, 2) NOT NULL,
    issued_at timestamptz NOT NULL
);

CREATE INDEX invoices_account_id_idx ON invoices (account_id);

CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payload text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
