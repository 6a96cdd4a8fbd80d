"""schema_review with profile (sampled rows) and query_patterns (EXPLAIN, hypopg on 15) on real databases."""

import json

import harness
import pytest

PROFILED = """
CREATE TABLE customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    nickname text,                 -- always filled in practice: SR-CONS-001
    city text NOT NULL,
    zip text NOT NULL,             -- city <-> zip: SR-NORM-004
    tags text                      -- comma-separated lists: SR-NORM-003 (and always filled)
);
INSERT INTO customers (name, nickname, city, zip, tags)
SELECT 'Customer ' || i, 'nick' || i, c.city, c.zip,
       (ARRAY['vip,b2b', 'new,eu,promo', 'b2b,eu'])[1 + i % 3]
FROM generate_series(1, 3000) AS i
JOIN (VALUES (0, 'Paris', '75001'), (1, 'Lyon', '69001'), (2, 'Nantes', '44000'), (3, 'Lille', '59000'),
             (4, 'Nice', '06000'), (5, 'Brest', '29200'), (6, 'Dijon', '21000')) AS c (k, city, zip)
  ON c.k = i % 7;
CREATE TABLE orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    status text NOT NULL CHECK (status IN ('new', 'paid', 'shipped')),
    reference text NOT NULL
);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
INSERT INTO orders (customer_id, status, reference)
SELECT 1 + i % 3000, (ARRAY['new', 'paid', 'shipped'])[1 + i % 3], 'R' || i
FROM generate_series(1, 20000) AS i;
ANALYZE;
"""

EXPECTED_PROFILE = {
    ("SR-CONS-001", "public.customers.nickname"),
    ("SR-CONS-001", "public.customers.tags"),
    ("SR-NORM-003", "public.customers.tags"),
    ("SR-NORM-004", "public.customers.zip"),
}


def _load(pg, name, ddl):
    pg.createdb(name)
    with pg.connect(name) as conn, conn.cursor() as cur:
        cur.execute(ddl)
    return name


def _review(pg, run_playbook, db, check=False, **options):
    task = dict(
        name="review", **{"dbarch.postgresql.schema_review": dict(pg.conn_params, login_db=db, **options)}
    )
    res = run_playbook([dict(hosts="localhost", gather_facts=False, tasks=[task])], check=check)
    assert res.rc == 0, res.stdout
    return res.task("review")["result"]


def _fingerprint(pg, db):
    """Everything a read-only review must leave as it was: rows, statistics of writes, catalog."""
    return pg.query(
        "SELECT (SELECT md5(string_agg(c::text, ',' ORDER BY id)) FROM customers c),"
        " (SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o),"
        " (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_extension)",
        dbname=db,
    )


def test_profile_finds_what_the_data_shows(pg, run_playbook):
    db = _load(pg, "sr_profile", PROFILED)
    before = _fingerprint(pg, db)
    r = _review(pg, run_playbook, db, profile=True, sample_rows=1000)
    profile_pairs = {
        (f["rule"], f["object"])
        for f in r["findings"]
        if f["rule"] in ("SR-CONS-001", "SR-NORM-003", "SR-NORM-004")
    }
    assert profile_pairs == EXPECTED_PROFILE
    by = {(f["rule"], f["object"]): f for f in r["findings"]}
    fd = by[("SR-NORM-004", "public.customers.zip")]["evidence"]
    assert (fd["determinant"], fd["both_ways"], fd["holds"]) == ("city", True, 1.0)
    # sampling is bounded by sample_rows
    assert 0 < fd["sampled_rows"] <= 1000
    assert by[("SR-CONS-001", "public.customers.nickname")]["evidence"]["sampled_rows"] <= 1000
    p = r["summary"]["profile"]
    assert p["enabled"] is True and p["tables_sampled"] == 2 and p["skipped"] == []
    assert p["statement_timeout"] == "30s"
    assert r["changed"] is False
    assert _fingerprint(pg, db) == before
    # Without profile the rules do not run, and the summary says so.
    plain = _review(pg, run_playbook, db)
    assert not {f["rule"] for f in plain["findings"]} & {"SR-CONS-001", "SR-NORM-003", "SR-NORM-004"}
    assert set(plain["summary"]["rules_not_run"]) == {
        "SR-CONS-001",
        "SR-NORM-003",
        "SR-NORM-004",
        "SR-QUERY-001",
    }


def test_query_patterns_get_an_index_where_none_serves(pg, run_playbook):
    db = _load(pg, "sr_queries", PROFILED)
    hypopg = pg.major == 15
    if hypopg:
        with pg.connect(db) as conn, conn.cursor() as cur:
            cur.execute("CREATE EXTENSION hypopg")
    before = _fingerprint(pg, db)
    patterns = [
        dict(name="order by reference", sql="SELECT id, status FROM orders WHERE reference = 'R42'"),
        dict(name="orders of a customer", sql="SELECT * FROM orders WHERE customer_id = 7"),
        "SELECT count(*) FROM customers WHERE id = 3",
        dict(name="broken", sql="SELECT nope FROM orders"),
    ]
    r = _review(pg, run_playbook, db, query_patterns=patterns, check=True)
    hits = [f for f in r["findings"] if f["rule"] == "SR-QUERY-001"]
    assert [(f["object"], f["evidence"]["query"], f["evidence"]["columns"]) for f in hits] == [
        ("public.orders", "order by reference", ["reference"])
    ]
    assert hits[0]["fix"] == "CREATE INDEX CONCURRENTLY orders_reference_idx ON orders (reference);"
    if hypopg:
        assert hits[0]["evidence"]["cost_after"] < hits[0]["evidence"]["cost_before"]
        assert "hypothetical index (hypopg)" in hits[0]["evidence"]["gain"]
    else:
        assert hits[0]["evidence"]["gain"].startswith("not proven")
    qp = r["summary"]["query_patterns"]
    assert qp["checked"] == 4
    assert [e["name"] for e in qp["errors"]] == ["broken"] and "nope" in qp["errors"][0]["error"]
    assert _fingerprint(pg, db) == before
    # The fix works: with the index the pattern is served and the finding is gone.
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute(hits[0]["fix"])
    again = _review(pg, run_playbook, db, query_patterns=patterns)
    assert [f for f in again["findings"] if f["rule"] == "SR-QUERY-001"] == []


@pytest.mark.pg_versions(15)
@pytest.mark.parametrize(
    "pattern, message",
    [
        ("DELETE FROM orders", "is a DeleteStmt statement: query_patterns accepts only SELECT"),
        ("SELECT 1; SELECT 2", "holds 2 statements"),
        ("WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d", "data-modifying WITH"),
        ("SELEC 1", "is not valid SQL"),
    ],
)
def test_query_patterns_accept_only_one_select(pg, run_playbook, pattern, message):
    task = dict(
        name="review",
        ignore_errors=True,
        **{"dbarch.postgresql.schema_review": dict(pg.conn_params, query_patterns=[pattern])},
    )
    res = run_playbook([dict(hosts="localhost", gather_facts=False, tasks=[task])])
    t = res.task("review")
    assert t["status"] == "failed" and message in t["result"]["msg"], t["result"]["msg"]


@pytest.mark.pg_versions(15)
def test_role_reads_the_requirements_file(pg, tmp_path):
    db = _load(pg, "sr_requirements", PROFILED + "CREATE TABLE tiny (id integer PRIMARY KEY);")
    req = tmp_path / "requirements.yml"
    req.write_text(
        "entities:\n"
        "  - {table: tiny, expected_rows: 4000000000, growth: fast}\n"
        "  - {table: customers, pii: [name, nickname]}\n"
        "query_patterns:\n"
        "  - name: order by reference\n"
        "    sql: SELECT id FROM orders WHERE reference = 'R1'\n"
        "    latency_ms: 5\n"
        "latency_targets: {p95_ms: 100}\n"
    )
    extra = dict(
        schema_review_database=db,
        schema_review_dest=str(tmp_path / "reports"),
        schema_review_requirements=str(req),
        schema_review_profile=True,
        schema_review_data_dictionary=False,
    )
    res = harness.run_site_playbook("schema_review", pg, **extra)
    res.assert_ok()
    report = json.loads((tmp_path / "reports" / "localhost" / "schema_review.json").read_text())
    pairs = {(f["rule"], f["object"]) for f in report["findings"]}
    assert ("SR-TYPE-008", "public.tiny.id") in pairs  # expected_rows from the file
    assert ("SR-QUERY-001", "public.orders") in pairs  # query pattern from the file
    assert pairs >= EXPECTED_PROFILE  # profile from the role variable
    summary = report["summary"]["requirements"]
    assert summary["file"] == str(req) and summary["latency_targets"] == {"p95_ms": 100}
    assert summary["entities"][1]["pii"] == ["name", "nickname"]
    # A file with an unknown key stops the play before the review runs.
    req.write_text("entitees: []\n")
    bad = harness.run_site_playbook("schema_review", pg, **extra)
    assert bad.rc != 0
    assert "a requirements file is a YAML mapping with the keys" in bad.failed()[0]["result"]["msg"]
