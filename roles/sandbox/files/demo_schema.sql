-- The sandbox's demo schema: a small shop, loaded once into the `demo` database so the
-- workflows in playbooks/site.yml have something real to look at. It carries a few
-- design choices a review should question (on purpose: the demo shows findings).
CREATE SCHEMA shop;

CREATE TABLE shop.customers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    phone1      text,
    phone2      text,
    phone3      text,
    created_at  timestamp NOT NULL DEFAULT now()
);

CREATE TABLE shop.products (
    id          serial PRIMARY KEY,
    sku         varchar(40) NOT NULL UNIQUE,
    name        text NOT NULL,
    price       double precision NOT NULL CHECK (price >= 0),
    attributes  json
);

CREATE TABLE shop.orders (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES shop.customers (id),
    status       text NOT NULL DEFAULT 'new'
                 CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_status_idx ON shop.orders (status);
CREATE INDEX orders_status_created_idx ON shop.orders (status, created_at);

CREATE TABLE shop.order_items (
    order_id    bigint NOT NULL REFERENCES shop.orders (id) ON DELETE CASCADE,
    product_id  integer NOT NULL REFERENCES shop.products (id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    unit_price  numeric(12, 2) NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE shop.events (
    occurred_at timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL,
    payload     jsonb
);

INSERT INTO shop.customers (email, full_name, phone1)
SELECT 'customer' || g || '@example.com', 'Customer ' || g, '+1-555-' || lpad(g::text, 4, '0')
FROM generate_series(1, 200) g;
INSERT INTO shop.products (sku, name, price)
SELECT 'SKU-' || g, 'Product ' || g, (g % 50) + 0.99 FROM generate_series(1, 100) g;
INSERT INTO shop.orders (customer_id, status, created_at)
SELECT (g % 200) + 1, (ARRAY['new', 'paid', 'shipped', 'cancelled'])[(g % 4) + 1], now() - g * interval '1 hour'
FROM generate_series(1, 2000) g;
INSERT INTO shop.order_items (order_id, product_id, quantity, unit_price)
SELECT o.id, ((o.id * 7 + k) % 100) + 1, 1 + (k % 3), 9.99
FROM shop.orders o, generate_series(0, 2) k;
ANALYZE;
