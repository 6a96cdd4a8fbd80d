"""The catalog snapshot reads a fixed number of queries whatever the size of the schema.

The synthetic schema of bench/catalog/schema.py is loaded twice on each major: 10 tables
in one fresh database, the full benchmark shape (5,000 tables, 50,000 columns, 10,000
indexes, 5,000 foreign keys) in another. Both snapshots must run exactly
catalog.SNAPSHOT_QUERIES queries and reproduce the generated counts object for object.

Nothing is timed here (timings live in bench/catalog/run.py). Loading 5,000 tables was
measured once, outside any test, at 6-12 s per major (14-18) on the 2-core reference
machine even with fsync on (the harness clusters run with fsync off), under the ~20 s
budget, so every major gets the full 5,000. Were it slower, the rule is 5,000 on the
first major of harness.versions_under_test() only and 1,000 on the others.
"""

import importlib.util
import os
import sys
import uuid

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.abspath(os.path.join(_HERE, "..", ".."))
if os.path.join(_REPO, ".collections") not in sys.path:
    sys.path.insert(0, os.path.join(_REPO, ".collections"))


def _load_generator():
    """bench/catalog/schema.py, under a name of its own (bench/ is not a package)."""
    path = os.path.join(_REPO, "bench", "catalog", "schema.py")
    spec = importlib.util.spec_from_file_location("dbarch_bench_catalog_schema", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import catalog  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod  # noqa: E402

SMALL = 10
LARGE = generator.DEFAULT_TABLES


def _load(pg, shape):
    name = "catscale_%d_%s" % (shape.table_count, uuid.uuid4().hex[:8])
    pg.createdb(name)
    conn = pg.connect(name)
    try:
        generator.load(conn, shape)
    finally:
        conn.close()
    return name


def _snapshot(pg, dbname, shape):
    session = pgmod.connect(dict(pg.conn_params, login_db=dbname), "test_catalog_scaling")
    try:
        return catalog.snapshot(session, schemas=shape.schemas)
    finally:
        session.close()


@pytest.fixture(scope="module")
def snapshots(pg):
    """{table count: (shape, catalog)} for a small and a large database on this major."""
    out = {}
    for n in (SMALL, LARGE):
        shape = generator.generate(n)
        name = _load(pg, shape)
        try:
            out[n] = (shape, _snapshot(pg, name, shape))
        finally:
            pg.dropdb(name)
    return out


def test_query_count_does_not_grow_with_the_schema(snapshots):
    small = snapshots[SMALL][1]
    large = snapshots[LARGE][1]
    assert small.query_count == large.query_count == catalog.SNAPSHOT_QUERIES


@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_snapshot_reproduces_the_generated_schema(snapshots, n):
    shape, cat = snapshots[n]
    summary = cat.summary()
    assert summary["tables"] == shape.table_count
    assert summary["columns"] == shape.columns == shape.table_count * generator.COLUMNS_PER_TABLE
    assert summary["indexes"] == shape.indexes == shape.table_count * generator.INDEXES_PER_TABLE
    assert summary["foreign_keys"] == shape.foreign_keys == shape.table_count
    assert summary["tables_without_primary_key"] == 0
    assert summary["views"] == summary["partitions"] == 0
    assert cat.schemas == shape.schemas

    tables = cat.relations()
    assert sorted(t.qualified for t in tables) == sorted(
        "%s.%s" % (shape.schema_of(i), shape.table_name(i)) for i in range(shape.table_count)
    )
    assert sum(1 for t in tables if t.comment) == shape.table_comments
    assert sum(1 for t in tables for c in t.columns if c.comment) == shape.column_comments
    assert sum(1 for t in tables if t.column("id").identity) == shape.identity_columns
    assert sum(1 for t in tables if t.column("id").is_serial) == shape.serial_columns
    assert sum(1 for t in tables for fk in t.foreign_keys if fk.on_delete == "CASCADE") == shape.cascade_fks
    assert sum(1 for t in tables if t.primary_key is not None) == shape.primary_keys


@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_every_foreign_key_points_where_it_was_generated(snapshots, n):
    shape, cat = snapshots[n]
    for i in range(shape.table_count):
        table = cat.get(shape.schema_of(i), shape.table_name(i))
        (fk,) = table.foreign_keys
        target = shape.fk_target(i)
        assert (fk.ref_schema, fk.ref_table) == (shape.schema_of(target), shape.table_name(target))
        assert fk.columns == ["parent_id"] and fk.ref_columns == ["id"]
        names = sorted(ix.name for ix in table.indexes)
        assert names == sorted(["%s_pkey" % table.name, "%s_parent_idx" % table.name])
