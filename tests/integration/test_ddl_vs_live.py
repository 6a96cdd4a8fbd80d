# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DDL model (ddl.py) equals the live model (catalog.snapshot) of the same schema.

1. A hand-written e-commerce schema is parsed and also loaded into a fresh database:
   tables, columns (names, types, nullability, defaults), constraints (kind, columns,
   references, actions) and indexes (names, columns, unique, predicate) agree.
2. A real ``pg_dump --schema-only`` of a database with partitions, views, a
   materialized view, functions, a trigger and an extension parses, and its tables
   agree with the live model of the dumped database.

Expressions are compared with ddl.canonical_expr (PostgreSQL's own text adds casts and
parentheses that the DDL does not have).
"""

import os
import subprocess
import uuid

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import catalog
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import ddl
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgu

pytestmark = pytest.mark.all_versions

SHOP_SQL = """
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA billing;
CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'cancelled');
CREATE TYPE billing.currency AS ENUM ('EUR', 'USD');

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email varchar(255) NOT NULL UNIQUE,
    full_name text,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE users IS 'People who buy';
COMMENT ON COLUMN users.email IS 'Login and contact address';

CREATE TABLE products (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sku text NOT NULL,
    name text NOT NULL,
    price numeric(10,2) NOT NULL CHECK (price >= 0),
    active boolean NOT NULL DEFAULT true,
    tags text[] NOT NULL DEFAULT '{}',
    weight double precision,
    CONSTRAINT products_sku_key UNIQUE (sku)
);

CREATE TABLE orders (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT ON UPDATE CASCADE,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled')),
    state order_status NOT NULL DEFAULT 'pending',
    total numeric(12,2) NOT NULL DEFAULT 0,
    created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
    note varchar
);
CREATE INDEX orders_user_id_idx ON orders (user_id);
CREATE INDEX ON orders (status);
CREATE INDEX orders_created_at_idx ON orders (created_at) WHERE status <> 'cancelled';
CREATE INDEX orders_user_incl_idx ON orders (user_id) INCLUDE (total, status);

CREATE TABLE order_items (
    order_id uuid NOT NULL REFERENCES orders ON DELETE CASCADE,
    product_id uuid NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(10,2) NOT NULL,
    subtotal numeric(12,2) GENERATED ALWAYS AS (quantity * unit_price) STORED,
    PRIMARY KEY (order_id, product_id),
    FOREIGN KEY (product_id) REFERENCES products (id)
);

CREATE TABLE billing.invoice (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id uuid NOT NULL,
    currency billing.currency NOT NULL DEFAULT 'EUR',
    amount numeric(12,2) NOT NULL,
    issued_on date NOT NULL DEFAULT CURRENT_DATE
);
ALTER TABLE billing.invoice ADD CONSTRAINT invoice_order_fk
    FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE billing.invoice ADD CONSTRAINT invoice_amount_check CHECK (amount >= 0) NOT VALID;
CREATE UNIQUE INDEX invoice_order_currency_idx ON billing.invoice (order_id, currency);
COMMENT ON TABLE billing.invoice IS 'One per paid order';

CREATE TABLE legacy (
    id serial PRIMARY KEY,
    big bigserial,
    code char(3),
    at time,
    n smallint
);
ALTER TABLE legacy ADD COLUMN extra text;
ALTER TABLE legacy ALTER COLUMN code SET NOT NULL;
ALTER TABLE legacy OWNER TO CURRENT_USER;
CREATE INDEX ON legacy (lower(extra));

CREATE TABLE events (
    id bigint NOT NULL,
    at timestamptz NOT NULL,
    kind text CHECK (kind <> ''),
    user_id uuid REFERENCES users (id),
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE INDEX ON events (kind);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');

CREATE VIEW paid_orders AS SELECT id, user_id, total FROM orders WHERE status = 'paid';
CREATE MATERIALIZED VIEW user_totals AS SELECT user_id, sum(total) AS total FROM orders GROUP BY user_id;
"""

DUMP_EXTRA_SQL = """
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.created_at := now(); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();
CREATE SEQUENCE ticket_seq START 100;
CREATE TABLE tickets (no integer NOT NULL DEFAULT nextval('ticket_seq'), title text);
CREATE TABLE measures (id bigint, region text NOT NULL, v real) PARTITION BY LIST (region);
CREATE TABLE measures_eu PARTITION OF measures FOR VALUES IN ('eu');
CREATE TABLE measures_other PARTITION OF measures DEFAULT;
CREATE INDEX measures_v_idx ON measures (v);
GRANT SELECT ON users TO PUBLIC;
"""


def _load(pg, dbname, sql_text):
    conn = pg.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(sql_text)
    finally:
        conn.close()


def _live(pg, dbname):
    session = pgu.connect(dict(pg.conn_params, login_db=dbname), "test")
    try:
        return catalog.snapshot(session)
    finally:
        session.close()


@pytest.fixture(scope="module")
def shopdb(pg):
    name = pg.createdb("ddl_%s" % uuid.uuid4().hex[:10])
    _load(pg, name, SHOP_SQL)
    yield name
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def _columns(table):
    return [
        (c.name, c.position, c.type, c.not_null, ddl.canonical_expr(c.default), c.identity, c.generated)
        for c in table.columns
    ]


def _constraints(table):
    return sorted(
        (
            c.name,
            c.type,
            tuple(c.columns),
            c.ref_schema,
            c.ref_table,
            tuple(c.ref_columns),
            c.on_delete,
            c.on_update,
            c.validated,
            c.index,
            c.inherited,
        )
        for c in table.constraints
    )


def _indexes(table):
    return sorted(
        (
            i.name,
            tuple(i.columns),
            tuple(i.include),
            i.unique,
            i.primary,
            i.method,
            ddl.canonical_expr(i.predicate),
            i.constraint,
            i.parent_index,
        )
        for i in table.indexes
    )


def assert_same_tables(parsed, live, relkinds=("r", "p")):
    names = sorted(t.qualified for t in live.relations(relkinds))
    assert sorted(t.qualified for t in parsed.relations(relkinds)) == names
    for qualified in names:
        schema, name = qualified.split(".", 1)
        mine, theirs = parsed.get(schema, name), live.get(schema, name)
        assert mine.kind == theirs.kind, qualified
        assert _columns(mine) == _columns(theirs), qualified
        assert _constraints(mine) == _constraints(theirs), qualified
        assert _indexes(mine) == _indexes(theirs), qualified
        assert mine.partition_of == theirs.partition_of, qualified
        assert mine.comment == theirs.comment, qualified
        for col in mine.columns:
            assert col.comment == theirs.column(col.name).comment, (qualified, col.name)


def test_ddl_model_equals_live_model(pg, shopdb):
    parsed = ddl.catalog_from_sql(SHOP_SQL, "shop.sql")
    live = _live(pg, shopdb)
    assert parsed.source == "ddl"
    assert_same_tables(parsed, live)
    # exact text where PostgreSQL's rendering is simple enough to reproduce
    for table in parsed.relations(("r", "p")):
        for col in table.columns:
            if col.default and not col.generated and "::" not in col.default:
                assert col.default == live.get(table.schema, table.name).column(col.name).default
    assert parsed.get("public", "legacy").column("id").default == "nextval('legacy_id_seq'::regclass)"
    assert parsed.get("public", "orders").column("state").default == "'pending'::order_status"
    assert parsed.get("billing", "invoice").column("currency").default == "'EUR'::billing.currency"
    assert parsed.enums == live.enums
    assert sorted(t.qualified for t in parsed.relations(("v", "m"))) == sorted(
        t.qualified for t in live.relations(("v", "m"))
    )
    view = parsed.get("public", "paid_orders")
    assert [(c.name, c.type) for c in view.columns] == [
        (c.name, c.type) for c in live.get("public", "paid_orders").columns
    ]
    assert [e["name"] for e in parsed.extensions] == [
        e["name"] for e in live.extensions if e["name"] != "plpgsql"
    ]
    assert set(parsed.schemas) <= set(live.schemas)
    assert parsed.summary()["foreign_keys"] == live.summary()["foreign_keys"]


@pytest.fixture(scope="module")
def dumped(pg, tmp_path_factory):
    name = pg.createdb("dump_%s" % uuid.uuid4().hex[:10])
    _load(pg, name, SHOP_SQL + DUMP_EXTRA_SQL)
    out = tmp_path_factory.mktemp("dump") / "schema.sql"
    env = dict(os.environ, PGPASSWORD=pg.password)
    proc = subprocess.run(
        [
            os.path.join(pg.bindir, "pg_dump"),
            "--schema-only",
            "-h",
            pg.host,
            "-p",
            str(pg.port),
            "-U",
            pg.user,
            "-d",
            name,
            "-f",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    yield name, out
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


def test_pg_dump_schema_only_parses_to_the_live_model(pg, dumped):
    name, path = dumped
    text = path.read_text()
    assert "CREATE FUNCTION" in text and "ATTACH PARTITION" in text and "MATERIALIZED VIEW" in text
    parsed = ddl.catalog_from_paths([str(path)])
    live = _live(pg, name)
    assert_same_tables(parsed, live)
    assert sorted(t.qualified for t in parsed.relations(("v", "m"))) == sorted(
        t.qualified for t in live.relations(("v", "m"))
    )
    assert parsed.get("public", "measures_other").partition_bound == "DEFAULT"
    assert parsed.get("public", "events_2024").partition_of == "public.events"
    assert {e["name"] for e in parsed.extensions} == {"pgcrypto"}
    assert parsed.enums == live.enums
