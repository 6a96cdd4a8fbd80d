"""Schema review on shapes found in public schemas it was never tuned to, on a real server.

Each test builds its own small schema and checks a rule against what PostgreSQL itself
does: the foreign key check's plan (partial indexes), the rows a profile samples (NULLs
at the end of a table), partitions, ordinal ``*_id`` columns and enum-like text.
"""

import os
import sys
import uuid

import pytest

_COLLECTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".collections")
if os.path.abspath(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, os.path.abspath(_COLLECTIONS))

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import catalog  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import profiling  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import schema_rules as sr  # noqa: E402


@pytest.fixture
def db(pg):
    name = "srreg_%s" % uuid.uuid4().hex[:10]
    pg.createdb(name)
    yield name
    pg.dropdb(name)


def _run(pg, name, sql):
    conn = pg.connect(name)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in [s for s in sql.split(";\n") if s.strip()]:
                cur.execute(statement)
    finally:
        conn.close()


def _review(pg, name, profile=False, sample_rows=profiling.DEFAULT_SAMPLE_ROWS, **kwargs):
    session = pgmod.connect(dict(pg.conn_params, login_db=name), "test_schema_review_regressions")
    try:
        cat = catalog.snapshot(session)
        assert cat.query_count == catalog.SNAPSHOT_QUERIES
        prof = profiling.sample(session, cat, sample_rows=sample_rows) if profile else None
        findings, summary = sr.review(cat, profile=prof, **kwargs)
    finally:
        session.close()
    return cat, findings, summary


def _hits(findings, rule):
    return dict((f.object, f) for f in findings if f.rule == rule)


# -- 3. partial indexes and the foreign key check ------------------------------------------
FK_CASES = """
CREATE TABLE parent (id bigint PRIMARY KEY);
INSERT INTO parent SELECT g FROM generate_series(1, 2000) g;
CREATE TABLE c_full (id bigint PRIMARY KEY, parent_id bigint REFERENCES parent, status text);
CREATE INDEX c_full_idx ON c_full (parent_id);
CREATE TABLE c_notnull (id bigint PRIMARY KEY, parent_id bigint REFERENCES parent, status text);
CREATE INDEX c_notnull_idx ON c_notnull (parent_id) WHERE parent_id IS NOT NULL;
CREATE TABLE c_status (id bigint PRIMARY KEY, parent_id bigint REFERENCES parent, status text);
CREATE INDEX c_status_idx ON c_status (parent_id) WHERE status = 'open';
CREATE TABLE c_both (id bigint PRIMARY KEY, parent_id bigint REFERENCES parent, status text);
CREATE INDEX c_both_idx ON c_both (parent_id) WHERE parent_id IS NOT NULL AND status <> 'gone';
CREATE TABLE c_hash (id bigint PRIMARY KEY, parent_id bigint REFERENCES parent, status text);
CREATE INDEX c_hash_idx ON c_hash USING hash (parent_id);
CREATE TABLE c_pair (id bigint PRIMARY KEY, a bigint, b bigint, status text);
CREATE TABLE pair_parent (a bigint, b bigint, PRIMARY KEY (a, b));
INSERT INTO pair_parent SELECT g, g FROM generate_series(1, 2000) g;
ALTER TABLE c_pair ADD FOREIGN KEY (a, b) REFERENCES pair_parent;
CREATE INDEX c_pair_idx ON c_pair (b, a) WHERE a IS NOT NULL AND b IS NOT NULL
"""

FK_TABLES = ("c_full", "c_notnull", "c_status", "c_both", "c_hash", "c_pair")


def _ri_check_uses_index(pg, name, table, index, columns):
    """Does the plan of PostgreSQL's own FK check query (ri_triggers.c) use ``index``?

    The check is a prepared statement with parameters, run as a generic plan: the shape
    is ``SELECT 1 FROM ONLY child x WHERE col = $1 [AND ...] FOR KEY SHARE OF x``.
    """
    conn = pg.connect(name)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET plan_cache_mode = force_generic_plan")
            where = " AND ".join('x."%s" = $%d' % (c, n) for n, c in enumerate(columns, 1))
            cur.execute(
                'PREPARE ri_check AS SELECT 1 FROM ONLY "%s" x WHERE %s FOR KEY SHARE OF x' % (table, where)
            )
            cur.execute("EXPLAIN EXECUTE ri_check(%s)" % ", ".join("1" for _c in columns))
            plan = "\n".join(r[0] for r in cur.fetchall())
    finally:
        conn.close()
    return index in plan, plan


def test_partial_index_counts_for_fk_only_when_the_fk_check_can_use_it(pg, db):
    _run(pg, db, FK_CASES)
    # enough rows that an index is worth it, then statistics
    for t in FK_TABLES:
        cols = "a, b" if t == "c_pair" else "parent_id"
        vals = "1 + g % 2000, 1 + g % 2000" if t == "c_pair" else "1 + g % 2000"
        _run(
            pg,
            db,
            "INSERT INTO %s (id, %s, status) SELECT g, %s, CASE WHEN g %% 3 = 0 THEN 'open' ELSE 'gone' END "
            "FROM generate_series(1, 20000) g;\nANALYZE %s" % (t, cols, vals, t),
        )
    _cat, findings, _summary = _review(pg, db)
    flagged = {obj.split(".")[1] for obj in _hits(findings, "SR-KEY-002")}
    for t in FK_TABLES:
        cols = ["a", "b"] if t == "c_pair" else ["parent_id"]
        used, plan = _ri_check_uses_index(pg, db, t, "%s_idx" % t, cols)
        # the rule agrees with the planner, table by table
        assert (t in flagged) == (not used), (t, plan)
    # WHERE status = 'open' cannot serve the check, nor can an IS NOT NULL ANDed with it
    assert flagged == {"c_status", "c_both"}


# -- 2. NULLs at the end of a table the sample does not read whole ----------------------------
LATE_NULLS = """
CREATE TABLE visits (id bigint PRIMARY KEY, page text, referrer text, filled text);
INSERT INTO visits SELECT g, 'p' || g, CASE WHEN g > 1490 THEN NULL ELSE 'r' || g END, 'f' || g
FROM generate_series(1, 1500) g;
CREATE TABLE tail2 (id bigint PRIMARY KEY, referrer text);
INSERT INTO tail2 SELECT g, CASE WHEN g > 1498 THEN NULL ELSE 'r' || g END FROM generate_series(1, 1500) g;
ANALYZE
"""


def test_nulls_at_the_end_never_get_a_certain_set_not_null(pg, db):
    """1.5 x sample_rows rows, NULLs only in the last ones (a LIMIT read the start: SET NOT NULL)."""
    _run(pg, db, LATE_NULLS)
    _cat, findings, summary = _review(pg, db, profile=True, sample_rows=1000)
    hits = _hits(findings, "SR-CONS-001")
    # small table: its NULLs are counted on the whole table, so referrer gets no proposal at all
    assert "public.visits.referrer" not in hits and "public.tail2.referrer" not in hits
    filled = hits["public.visits.filled"]  # the column that really has no NULL: exact
    assert filled.evidence["exact"] is True and "counted on the whole table" in filled.message
    assert summary["profile"]["rows_sampled"] <= 2000

    # the same tables taken as big ones (no exact count): whatever the sample shows is worded as
    # sampled, and the offered fix fails harmlessly on the real table instead of being certain
    session = pgmod.connect(dict(pg.conn_params, login_db=db), "test_schema_review_regressions")
    try:
        cat = catalog.snapshot(session)
        prof = profiling.sample(session, cat, sample_rows=1000, exact_max_rows=0)
        assert prof["tables"]["public.tail2"]["method"] == "bernoulli"
        assert prof["tables"]["public.tail2"]["sampled"] == 1000
        findings, _summary = sr.review(cat, profile=prof)
    finally:
        session.close()
    sampled = _hits(findings, "SR-CONS-001")
    for obj, f in sampled.items():
        assert f.evidence["exact"] is False, obj
        assert "sample of 1,000 of ~1,500 rows" in f.message
        assert f.fix.startswith("-- Sampled, not proven")
    # the offered fix is safe when the sample was wrong: with one NULL in the table the
    # precheck shows it and VALIDATE refuses, so SET NOT NULL is never reached
    fix = sampled["public.visits.filled"].fix
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE visits SET filled = NULL WHERE id = 1500")
            cur.execute(fix.splitlines()[1])
            assert cur.fetchone()[0] == 1
            statements = [line for line in fix.splitlines()[2:] if line.strip()]
            cur.execute(statements[0])
            with pytest.raises(Exception, match="violated by some row"):
                cur.execute(statements[1])
    finally:
        conn.rollback()
        conn.close()


def test_sample_is_random_not_the_first_rows(pg, db):
    _run(pg, db, LATE_NULLS)
    session = pgmod.connect(dict(pg.conn_params, login_db=db), "test_schema_review_regressions")
    try:
        cat = catalog.snapshot(session)
        prof = profiling.sample(session, cat, sample_rows=1000)
    finally:
        session.close()
    ids = [int(r[0]) for r in prof["tables"]["public.visits"]["rows"]]
    assert len(ids) == 1000 and max(ids) > 1000  # a LIMIT alone would return ids 1..1000
    assert any("ORDER BY random()" in q for q in session.queries)


# -- 1. partitions -------------------------------------------------------------------------
PARTITIONED = """
CREATE TABLE accounts (id bigint PRIMARY KEY);
CREATE TABLE devices (id bigint PRIMARY KEY);
CREATE TABLE readings (
    id bigint NOT NULL,
    account_id bigint NOT NULL REFERENCES accounts,
    device_id bigint,
    taken date NOT NULL,
    PRIMARY KEY (id, taken)
) PARTITION BY RANGE (taken);
CREATE TABLE readings_2023 PARTITION OF readings FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE readings_2024 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
ALTER TABLE readings_2023 ADD FOREIGN KEY (device_id) REFERENCES devices;
ALTER TABLE readings_2024 ADD FOREIGN KEY (device_id) REFERENCES devices;
CREATE INDEX readings_2023_device_idx ON readings_2023 (device_id);
CREATE INDEX readings_taken_a ON readings (taken, id);
CREATE INDEX readings_taken_b ON readings (taken, id);
CREATE INDEX r24_dev_a ON readings_2024 (id, device_id);
CREATE INDEX r24_dev_b ON readings_2024 (id, device_id)
"""


def test_partitions_are_reviewed_and_grouped_on_the_parent(pg, db):
    _run(pg, db, PARTITIONED)
    cat, findings, summary = _review(pg, db)
    assert summary["partitions_reviewed"] == 3
    fk = _hits(findings, "SR-KEY-002")
    # account_id: FK on the parent, no index on any partition -> ONE finding on the parent
    parent = fk["public.readings.account_id"]
    assert parent.evidence["partitions"] == 3 and "all 3 of its partitions" in parent.message
    assert "CREATE INDEX readings_account_id_idx ON ONLY readings (account_id);" in parent.fix
    assert parent.fix.count("ATTACH PARTITION") == 3
    assert not [o for o in fk if o.startswith("public.readings_") and o.endswith(".account_id")]
    # device_id: FK on 2023 (indexed) and 2024 (not), none on 2025: only 2024 is reported
    assert sorted(o for o in fk if o.endswith(".device_id")) == ["public.readings_2024.device_id"]
    assert fk["public.readings_2024.device_id"].fix == (
        "CREATE INDEX CONCURRENTLY readings_2024_device_id_idx ON readings_2024 (device_id);"
    )
    # a partition missing the FK its siblings have
    part = _hits(findings, "SR-PART-001")
    assert list(part) == ["public.readings_2025"]
    assert "2 of its 2 sibling partitions" in part["public.readings_2025"].message
    # duplicates: the parent's pair is one finding naming the partitions; 2024's own pair stays there
    dup = [f for f in findings if f.rule == "SR-IDX-001"]
    by_table = sorted((f.evidence["table"], f.evidence.get("partitions")) for f in dup)
    assert by_table == [("public.readings", 3), ("public.readings_2024", None)]
    local = next(f for f in dup if f.evidence["table"] == "public.readings_2024")
    assert local.fix == "DROP INDEX CONCURRENTLY r24_dev_b;"
    on_parent = next(f for f in dup if f.evidence["table"] == "public.readings")
    assert (
        on_parent.fix.startswith("DROP INDEX readings_taken_b;") and "all 3 partitions" in on_parent.message
    )

    # the fix offered on the parent runs as written, and then the finding is gone
    conn = pg.connect(db)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in parent.fix.splitlines():
                cur.execute(statement)
    finally:
        conn.close()
    _cat, again, _summary = _review(pg, db)
    assert "public.readings.account_id" not in _hits(again, "SR-KEY-002")
    assert cat.query_count == catalog.SNAPSHOT_QUERIES


# -- 4 and 5. ordinal *_id columns; free text that is not an enum ----------------------------
UPLOADS = """
CREATE TABLE owners (id bigint PRIMARY KEY);
CREATE TABLE uploads (
    id bigint PRIMARY KEY,
    owner_id bigint,
    sequence_id integer NOT NULL,
    position_id integer,
    state text,
    mime_type text,
    status text
);
INSERT INTO uploads
SELECT g, g % 50, g % 7, g % 11,
       (ARRAY['Ontario', 'Quebec', 'British Columbia', 'Alberta', 'Manitoba', 'Saskatchewan', 'Nova Scotia',
              'New Brunswick', 'Newfoundland and Labrador', 'Prince Edward Island'])
           [1 + (hashtext(g::text) & 1023) % 10],
       (ARRAY['application/pdf', 'image/png', 'image/jpeg', 'text/plain', 'text/csv'])
           [1 + (hashtext('m' || g) & 1023) % 5],
       (ARRAY['queued', 'stored', 'failed'])[1 + (hashtext('s' || g) & 1023) % 3]
FROM generate_series(1, 3000) g;
ANALYZE
"""


def test_ordinals_are_not_fks_and_free_text_is_not_an_enum(pg, db):
    _run(pg, db, UPLOADS)
    _cat, findings, _summary = _review(pg, db, profile=True, sample_rows=1000)
    fk = _hits(findings, "SR-KEY-004")
    assert sorted(fk) == ["public.uploads.owner_id"]  # the real one stays; sequence_id, position_id go
    assert fk["public.uploads.owner_id"].evidence["confidence"] == "high"
    enum = _hits(findings, "SR-TYPE-009")
    assert sorted(enum) == ["public.uploads.status"]  # not the provinces (state) nor mime_type
    assert "3 distinct short codes (failed, queued, stored)" in enum["public.uploads.status"].message


def test_profile_samples_a_partitioned_table_through_its_parent(pg, db):
    _run(pg, db, PARTITIONED)
    _run(
        pg,
        db,
        "INSERT INTO accounts SELECT g FROM generate_series(1, 10) g;\n"
        "INSERT INTO devices SELECT g FROM generate_series(1, 5) g;\n"
        "INSERT INTO readings (id, account_id, device_id, taken) "
        "SELECT g, 1 + g % 10, 1 + g % 5, DATE '2023-01-01' + g % 900 FROM generate_series(1, 3000) g;\n"
        "ANALYZE",
    )
    session = pgmod.connect(dict(pg.conn_params, login_db=db), "test_schema_review_regressions")
    try:
        cat = catalog.snapshot(session)
        assert cat.size_of(cat.get("public", "readings"))[0] > 0
        prof = profiling.sample(session, cat, sample_rows=1000)
    finally:
        session.close()
    data = prof["tables"]["public.readings"]
    assert data["method"] == "bernoulli" and data["sampled"] == 1000
    # device_id is nullable and filled: its NULLs are counted through the parent, on every partition
    assert data["exact_nulls"] == dict(total=3000, nulls=dict(device_id=0))
    assert not [s for s in prof["skipped"] if s["table"].startswith("public.readings")]
    assert not [t for t in prof["tables"] if t.startswith("public.readings_")]
