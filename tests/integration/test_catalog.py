"""catalog.snapshot() against a hand-written schema, on every supported major.

Each fact of the schema below is asserted on the model: columns, identity and serial
columns, constraint kinds, FK actions, index columns / predicate / INCLUDE list,
partitions, views, enums, comments. Then: extension objects are left out unless asked
for, ``schemas=[...]`` filters, and a role with only pg_monitor and CONNECT can take
the same snapshot.
"""

import os
import re
import sys
import uuid

import pytest

_COLLECTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".collections")
if os.path.abspath(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, os.path.abspath(_COLLECTIONS))

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import catalog  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod  # noqa: E402

pytestmark = pytest.mark.all_versions

SCHEMA_SQL = """
CREATE SCHEMA shop;
CREATE SCHEMA other;

CREATE TYPE shop.order_status AS ENUM ('new', 'paid', 'shipped');

CREATE TABLE shop.customer (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    name text,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE shop.customer IS 'People who buy';
COMMENT ON COLUMN shop.customer.email IS 'Login and contact address';
CREATE UNIQUE INDEX customer_email_lower_idx ON shop.customer (lower(email));

CREATE TABLE shop.orders (
    id serial PRIMARY KEY,
    customer_id bigint NOT NULL,
    status shop.order_status NOT NULL DEFAULT 'new',
    total numeric(12,2) NOT NULL,
    note text,
    CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id)
        REFERENCES shop.customer (id) ON DELETE CASCADE
);
ALTER TABLE shop.orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0) NOT VALID;
CREATE INDEX orders_open_idx ON shop.orders (customer_id) WHERE status <> 'shipped';
CREATE INDEX orders_customer_incl_idx ON shop.orders (customer_id) INCLUDE (total, status);

CREATE TABLE shop.order_line (
    order_id integer NOT NULL REFERENCES shop.orders (id) ON DELETE CASCADE ON UPDATE RESTRICT,
    line_no smallint NOT NULL,
    product text NOT NULL,
    qty integer NOT NULL DEFAULT 1,
    CONSTRAINT order_line_pkey PRIMARY KEY (order_id, line_no)
);

CREATE TABLE shop.events (
    id bigint NOT NULL,
    happened_at timestamptz NOT NULL,
    payload jsonb,
    PRIMARY KEY (id, happened_at)
) PARTITION BY RANGE (happened_at);
CREATE TABLE shop.events_2024 PARTITION OF shop.events
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE shop.events_2025 PARTITION OF shop.events
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');

CREATE VIEW shop.paid_orders AS
    SELECT id, customer_id, total FROM shop.orders WHERE status = 'paid';
CREATE MATERIALIZED VIEW shop.customer_totals AS
    SELECT customer_id, sum(total) AS total FROM shop.orders GROUP BY customer_id;
COMMENT ON VIEW shop.paid_orders IS 'Orders that are paid';

CREATE TABLE other.audit (id bigserial PRIMARY KEY, msg text);

CREATE EXTENSION pg_stat_statements;
"""

SHOP_TABLES = {"customer", "orders", "order_line", "events", "events_2024", "events_2025"}


def _params(pg, dbname, **over):
    params = dict(pg.conn_params, login_db=dbname)
    params.update(over)
    return params


def _snapshot(params, **kwargs):
    session = pgmod.connect(params, "test_catalog")
    try:
        cat = catalog.snapshot(session, **kwargs)
    finally:
        session.close()
    assert cat.query_count == catalog.SNAPSHOT_QUERIES
    return cat


def _admin(pg, dbname="postgres"):
    conn = pg.connect(dbname)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="module")
def shopdb(pg):
    name = "catalog_%s" % uuid.uuid4().hex[:10]
    pg.createdb(name)
    conn = _admin(pg, name)
    try:
        with conn.cursor() as cur:
            cur.execute(SCHEMA_SQL)
    finally:
        conn.close()
    yield name
    conn = _admin(pg)
    try:
        with conn.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def cat(pg, shopdb):
    return _snapshot(_params(pg, shopdb))


def _by_name(items):
    return dict((i.name, i) for i in items)


def test_relations_and_summary(cat):
    names = {name for (schema, name) in cat.tables if schema == "shop"}
    assert names == SHOP_TABLES | {"paid_orders", "customer_totals"}
    s = cat.summary()
    assert s["tables"] == 7  # six in shop (partitioned parent and partitions included) + other.audit
    assert s["partitioned_tables"] == 1
    assert s["partitions"] == 2
    assert s["views"] == 1
    assert s["materialized_views"] == 1
    assert s["foreign_keys"] == 2
    assert s["tables_without_primary_key"] == 0
    assert cat.schemas == ["other", "public", "shop"]
    assert "pg_stat_statements" in s["extensions"]


def test_columns_identity_serial_defaults_comments(cat):
    customer = cat.get("shop", "customer")
    assert customer.comment == "People who buy"
    assert [c.name for c in customer.columns] == ["id", "email", "name", "created_at"]
    cid = customer.column("id")
    assert cid.identity == "a" and cid.is_serial is False and cid.not_null
    assert cid.type == "bigint"
    email = customer.column("email")
    assert email.comment == "Login and contact address" and email.not_null and email.type == "text"
    assert customer.column("name").not_null is False
    assert customer.column("created_at").default == "now()"
    assert customer.column("created_at").type == "timestamp with time zone"

    orders = cat.get("shop", "orders")
    oid = orders.column("id")
    assert oid.is_serial is True and oid.identity == "" and oid.type == "integer"
    assert oid.default.startswith("nextval(")
    status = orders.column("status")
    assert status.type == "shop.order_status"
    assert status.default == "'new'::shop.order_status"
    assert orders.column("total").type == "numeric(12,2)"
    assert cat.get("other", "audit").column("id").is_serial is True


def test_constraints_and_foreign_keys(cat):
    orders = cat.get("shop", "orders")
    cons = _by_name(orders.constraints)
    assert {c.kind for c in orders.constraints} == {"primary key", "foreign key", "check"}
    fk = cons["orders_customer_fk"]
    assert fk.type == "f" and fk.columns == ["customer_id"]
    assert (fk.ref_schema, fk.ref_table, fk.ref_columns) == ("shop", "customer", ["id"])
    assert fk.on_delete == "CASCADE" and fk.on_update == "NO ACTION"
    check = cons["orders_total_positive"]
    assert check.type == "c" and check.validated is False
    assert "NOT VALID" in check.definition and "total >=" in check.definition
    assert orders.primary_key.columns == ["id"] and orders.primary_key.index == "orders_pkey"

    line = cat.get("shop", "order_line")
    assert line.primary_key.name == "order_line_pkey"
    assert line.primary_key.columns == ["order_id", "line_no"]  # composite, in key order
    (line_fk,) = line.foreign_keys
    assert (line_fk.ref_table, line_fk.on_delete, line_fk.on_update) == ("orders", "CASCADE", "RESTRICT")
    assert [t.qualified for t, _fk in cat.referenced_by(orders)] == ["shop.order_line"]


def test_indexes(cat):
    customer = _by_name(cat.get("shop", "customer").indexes)
    expr = customer["customer_email_lower_idx"]
    assert expr.unique and not expr.primary and expr.columns == ["lower(email)"]
    assert expr.predicate is None and expr.include == [] and expr.method == "btree"

    orders = _by_name(cat.get("shop", "orders").indexes)
    assert set(orders) == {"orders_pkey", "orders_open_idx", "orders_customer_incl_idx"}
    assert orders["orders_pkey"].primary and orders["orders_pkey"].constraint == "orders_pkey"
    partial = orders["orders_open_idx"]
    assert partial.columns == ["customer_id"]
    assert "status <> 'shipped'" in partial.predicate
    assert partial.constraint is None and partial.include == []
    incl = orders["orders_customer_incl_idx"]
    assert incl.columns == ["customer_id"] and incl.include == ["total", "status"]
    assert "INCLUDE (total, status)" in incl.definition
    assert all(i.valid for i in orders.values())

    line = _by_name(cat.get("shop", "order_line").indexes)
    assert line["order_line_pkey"].columns == ["order_id", "line_no"]


def test_partitions(cat):
    parent = cat.get("shop", "events")
    assert parent.kind == "p" and parent.kind_name == "partitioned table"
    assert parent.partition_key == "RANGE (happened_at)"
    assert parent.partition_of is None
    for year in ("2024", "2025"):
        part = cat.get("shop", "events_" + year)
        assert part.kind == "r"
        assert part.partition_of == "shop.events"
        assert part.partition_bound.startswith("FOR VALUES FROM ('%s-01-01" % year)
        assert [c.name for c in part.columns] == ["id", "happened_at", "payload"]
        assert part.primary_key.columns == ["id", "happened_at"]


def test_views_and_enums(cat):
    view = cat.get("shop", "paid_orders")
    assert view.kind == "v" and view.comment == "Orders that are paid"
    assert "'paid'::shop.order_status" in view.view_definition
    assert [c.name for c in view.columns] == ["id", "customer_id", "total"]
    assert view.indexes == [] and view.constraints == []
    mat = cat.get("shop", "customer_totals")
    assert mat.kind == "m"
    # pg_get_viewdef qualifies column names before PostgreSQL 16 ("sum(orders.total)").
    assert re.search(r"sum\((orders\.)?total\)", mat.view_definition)
    assert re.search(r"GROUP BY (orders\.)?customer_id", mat.view_definition)
    assert cat.enums == {"shop.order_status": ["new", "paid", "shipped"]}


def test_extension_objects_excluded_by_default(pg, shopdb, cat):
    assert [k for k in cat.tables if k[1].startswith("pg_stat_statements")] == []
    with_ext = _snapshot(_params(pg, shopdb), include_extension_objects=True)
    view = with_ext.get("public", "pg_stat_statements")
    assert view is not None and view.kind == "v"
    assert any(c.name == "queryid" for c in view.columns)
    # Everything else is the same.
    extra = set(with_ext.tables) - set(cat.tables)
    assert extra and all(name.startswith("pg_stat_statements") for _schema, name in extra)


def test_schemas_filter(pg, shopdb):
    only_other = _snapshot(_params(pg, shopdb), schemas=["other"])
    assert list(only_other.tables) == [("other", "audit")]
    assert only_other.schemas == ["other"]
    assert only_other.enums == {}
    assert only_other.summary()["tables"] == 1

    only_shop = _snapshot(_params(pg, shopdb), schemas=["shop"])
    assert {name for _schema, name in only_shop.tables} == SHOP_TABLES | {"paid_orders", "customer_totals"}
    assert {schema for schema, _name in only_shop.tables} == {"shop"}

    nothing = _snapshot(_params(pg, shopdb), schemas=["no_such_schema"])
    assert nothing.tables == {} and nothing.schemas == []


@pytest.fixture
def monitor_role(pg, shopdb):
    role = "catmon_%s" % uuid.uuid4().hex[:8]
    password = "mon-%s" % uuid.uuid4().hex
    conn = _admin(pg)
    try:
        with conn.cursor() as cur:
            cur.execute('CREATE ROLE "%s" LOGIN PASSWORD %%s' % role, (password,))
            cur.execute('GRANT pg_monitor TO "%s"' % role)
            # CONNECT is granted to PUBLIC by default: take it away so the grant is what counts.
            cur.execute('REVOKE CONNECT ON DATABASE "%s" FROM PUBLIC' % shopdb)
            cur.execute('GRANT CONNECT ON DATABASE "%s" TO "%s"' % (shopdb, role))
        yield role, password
    finally:
        with conn.cursor() as cur:
            cur.execute('REVOKE CONNECT ON DATABASE "%s" FROM "%s"' % (shopdb, role))
            cur.execute('GRANT CONNECT ON DATABASE "%s" TO PUBLIC' % shopdb)
            cur.execute('DROP ROLE IF EXISTS "%s"' % role)
        conn.close()


def test_least_privilege_role_gets_the_same_model(pg, shopdb, cat, monitor_role):
    role, password = monitor_role
    mon = _snapshot(_params(pg, shopdb, login_user=role, login_password=password))
    assert mon.meta["current_user"] == role and mon.meta["is_superuser"] is False
    # The role has no USAGE on schema shop and no SELECT on any table: the catalog is
    # still readable, so the structure is identical to the superuser's snapshot.
    assert sorted(mon.tables) == sorted(cat.tables)
    for key, table in cat.tables.items():
        other = mon.tables[key]
        assert [c.to_dict() for c in other.columns] == [c.to_dict() for c in table.columns], key
        assert [c.to_dict() for c in other.constraints] == [c.to_dict() for c in table.constraints], key
        assert [(i.name, i.columns, i.include, i.predicate) for i in other.indexes] == [
            (i.name, i.columns, i.include, i.predicate) for i in table.indexes
        ], key
        assert (other.partition_of, other.view_definition, other.comment) == (
            table.partition_of,
            table.view_definition,
            table.comment,
        ), key
    assert mon.enums == cat.enums
    assert mon.meta["database_bytes"] > 0
