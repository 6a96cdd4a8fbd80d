"""index_advice_info against real clusters of every supported major (hypopg on 15).

A shop with planted problems: shop.orders.customer_id is a foreign key without an index,
used in a join; orders in the rare status 'new' are read newest first (a partial index);
orders_note_idx is never used; payments has a duplicate index and an invalid one left by a
CREATE UNIQUE INDEX CONCURRENTLY that failed. A clean database whose statements are all
served by indexes gives no proposal and no finding.
"""

import json
import time

import psycopg2
import pytest

import harness

DB = "ia_shop"
CLEAN = "ia_clean"

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL);
CREATE TABLE shop.orders (
    id int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES shop.customers (id),
    status text NOT NULL,
    total numeric(10, 2) NOT NULL,
    note text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE shop.payments (id int PRIMARY KEY, order_id int NOT NULL, reference text NOT NULL);
INSERT INTO shop.customers SELECT g, 'customer ' || g, 'region ' || (g % 7) FROM generate_series(1, 2000) g;
INSERT INTO shop.orders
SELECT g, 1 + g % 2000, CASE WHEN g % 100 = 0 THEN 'new' WHEN g % 3 = 0 THEN 'paid' ELSE 'shipped' END,
       (g % 1000) / 10.0, md5(g::text), timestamptz '2024-01-01' + g * interval '1 minute'
FROM generate_series(1, 50000) g;
INSERT INTO shop.payments SELECT g, g, 'P' || (g % 19000) FROM generate_series(1, 20000) g;
CREATE INDEX orders_note_idx ON shop.orders (note);
CREATE INDEX payments_order_id_idx ON shop.payments (order_id);
CREATE INDEX payments_order_id_copy_idx ON shop.payments (order_id);
ANALYZE;
"""

CLEAN_SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (
    id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers (id), total numeric NOT NULL
);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 2000) g;
INSERT INTO orders SELECT g, 1 + g % 2000, g % 100 FROM generate_series(1, 50000) g;
ANALYZE;
"""

JOIN_FK = (
    "SELECT c.name, o.total FROM shop.customers c JOIN shop.orders o ON o.customer_id = c.id WHERE c.id = $1"
)
NEW_ORDERS = "SELECT id, total FROM shop.orders WHERE status = 'new' ORDER BY created_at DESC LIMIT 20"
SET_STATUS = "UPDATE shop.orders SET status = $1 WHERE id = $2"
POINT = "SELECT id, total FROM shop.orders WHERE id = $1"


def _load(pg, db, sql, hypopg):
    pg.createdb(db)
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute(sql)
        if hypopg:
            cur.execute("CREATE EXTENSION hypopg")


@pytest.fixture(scope="module")
def shop(pg):
    hypopg = pg.major == 15
    _load(pg, DB, SCHEMA, hypopg)
    conn = pg.connect(DB)
    try:
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.errors.UniqueViolation):
                cur.execute(
                    "CREATE UNIQUE INDEX CONCURRENTLY payments_reference_key ON shop.payments (reference)"
                )
            # Updates of orders: the table is updated heavily (its HOT share is in the evidence).
            cur.execute("UPDATE shop.orders SET status = status WHERE id % 10 = 0")
    finally:
        conn.close()
    for _attempt in range(100):  # the statistics reach the views shortly after the backend ends
        if pg.query(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relid = 'shop.orders'::regclass", dbname=DB
        )[0][0]:
            break
        time.sleep(0.2)
    _load(pg, CLEAN, CLEAN_SCHEMA, hypopg)
    return pg


def play(pg, tasks, dbname):
    return harness.play(*tasks, pg=pg, db=dbname)


def advice_task(name, **options):
    return harness.task("index_advice_info", name, register=name, **options)


def by_rule(result, rule):
    return [f for f in result["findings"] if f["rule"] == rule]


@pytest.mark.all_versions
def test_planted_problems_are_found_and_proposals_proven_or_flagged(shop, run_playbook):
    hypopg = shop.major == 15
    workload = [
        dict(name="orders of a customer", sql=JOIN_FK, weight=10),
        dict(name="newest new orders", sql=NEW_ORDERS, weight=5),
        dict(name="set status", sql=SET_STATUS),
        POINT,
    ]
    res = run_playbook(play(shop, [advice_task("advice", queries=workload)], DB))
    res.assert_ok()
    r = res.task("advice")["result"]
    assert r["changed"] is False
    assert r["summary"]["hypopg"] is hypopg and r["summary"]["statements_planned"] == 4
    assert r["not_planned"] == []
    proposals = dict(((p["table"], tuple(p["columns"]), p["where"]), p) for p in r["proposals"])
    fk = proposals[("shop.orders", ("customer_id",), None)]
    assert [q["name"] for q in fk["queries"]] == ["orders of a customer"]
    assert (
        fk["create_sql"] == "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON shop.orders (customer_id);"
    )
    partial = proposals[("shop.orders", ("created_at DESC",), "status = 'new'")]
    assert partial["create_sql"].endswith("ON shop.orders (created_at DESC) WHERE status = 'new';")
    # status is SET by the workload's UPDATE: the partial index would cost those updates HOT.
    assert "status" in partial["write_cost_note"] and "HOT" in partial["write_cost_note"]
    assert partial["evidence"]["write"]["updated_columns"] == ["status"]
    assert partial["evidence"]["write"]["n_tup_upd"] >= 5000
    assert fk["write_cost_note"] is None or "status" not in fk["write_cost_note"]
    for p in (fk, partial):
        assert p["hypopg"] is hypopg and p["evidence"]["hypopg"] is hypopg
        if hypopg:
            assert p["proven"] and p["method"] == "hypopg"
            assert p["cost_after"] < p["cost_before"] * 0.7 and p["saving"] >= 0.3
            assert all(q["uses_index"] for q in p["queries"])
        else:
            assert not p["proven"] and p["method"] == "heuristic"
            assert p["cost_after"] is None and p["saving"] is None
            assert p["evidence"]["note"].startswith("not proven")
    assert partial["score"] < fk["score"]
    assert len(proposals) == 2
    index = by_rule(r, "IA-INDEX-001")
    assert sorted(f["fix"] for f in index) == sorted([fk["create_sql"], partial["create_sql"]])
    assert {f["severity"] for f in index} == ({"medium"} if hypopg else {"low"})
    fks = by_rule(r, "IA-FK-001")
    assert [(f["object"], f["evidence"]["constraint"]) for f in fks] == [
        ("shop.orders.customer_id", "orders_customer_id_fkey")
    ]
    dup = by_rule(r, "IA-DUP-001")
    assert [(f["evidence"]["kept"], f["evidence"]["duplicate"]) for f in dup] == [
        ("payments_order_id_copy_idx", "payments_order_id_idx")
    ]
    invalid = by_rule(r, "IA-INVALID-001")
    assert [f["evidence"]["index"] for f in invalid] == ["payments_reference_key"]
    unused = {f["evidence"]["index"]: f for f in by_rule(r, "IA-UNUSED-001")}
    assert "orders_note_idx" in unused
    assert unused["orders_note_idx"]["fix"] == "DROP INDEX CONCURRENTLY shop.orders_note_idx;"
    assert "stats_reset" in unused["orders_note_idx"]["evidence"]
    # never the primary keys, the duplicate already reported, nor the invalid index
    assert not set(unused) & {
        "orders_pkey",
        "customers_pkey",
        "payments_pkey",
        "payments_order_id_idx",
        "payments_reference_key",
    }
    assert not by_rule(r, "IA-REDUNDANT-001")


@pytest.mark.all_versions
def test_workload_from_pg_stat_statements(shop, run_playbook):
    conn = shop.connect(DB)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_statements_reset()")
            for i in range(1, 60):
                cur.execute(JOIN_FK.replace("$1", "%s"), (i,))
                cur.execute(POINT.replace("$1", "%s"), (i,))
    finally:
        conn.close()
    # the superuser ran this workload: planning it needs allow_superuser_statements (see
    # test_query_tuning_security.py for why it is off by default)
    res = run_playbook(
        play(shop, [advice_task("advice", limit=10, schemas=["shop"], allow_superuser_statements=True)], DB)
    )
    res.assert_ok()
    r = res.task("advice")["result"]
    assert r["summary"]["workload"] == "pg_stat_statements"
    assert r["summary"]["generic_plan"] == (
        "EXPLAIN (GENERIC_PLAN)" if shop.major >= 16 else "PREPARE + EXPLAIN EXECUTE (force_generic_plan)"
    )
    assert r["not_planned"] == []
    fk = [p for p in r["proposals"] if p["columns"] == ["customer_id"]]
    assert len(fk) == 1 and fk[0]["table"] == "shop.orders"
    assert "JOIN shop.orders o ON o.customer_id = c.id WHERE c.id = $1" in fk[0]["queries"][0]["sql"]
    assert fk[0]["proven"] is (shop.major == 15)
    assert all(q["name"].startswith("queryid ") for q in fk[0]["queries"])
    # the point query by primary key gets nothing
    assert not [p for p in r["proposals"] if p["columns"] == ["id"]]


@pytest.mark.all_versions
def test_clean_workload_gives_no_proposal_and_no_finding(shop, run_playbook):
    workload = [
        "SELECT c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = $1",
        "SELECT total FROM orders WHERE id = 42",
        "SELECT count(*) FROM orders WHERE customer_id = 7",
    ]
    res = run_playbook(play(shop, [advice_task("advice", queries=workload)], CLEAN))
    res.assert_ok()
    r = res.task("advice")["result"]
    assert r["summary"]["statements_planned"] == 3
    assert r["proposals"] == [] and r["findings"] == []
    assert r["changed"] is False


def test_bad_input_fails_with_a_message(shop, run_playbook):
    res = run_playbook(
        play(
            shop,
            [
                dict(
                    name="ddl",
                    ignore_errors=True,
                    register="ddl",
                    **{"dbarch.postgresql.index_advice_info": dict(queries=["DROP TABLE shop.orders"])},
                ),
                dict(
                    name="saving",
                    ignore_errors=True,
                    register="saving",
                    **{"dbarch.postgresql.index_advice_info": dict(queries=[POINT], min_cost_saving=1.5)},
                ),
            ],
            DB,
        )
    )
    assert res.task("ddl")["result"]["failed"] and "DROP" in res.task("ddl")["result"]["msg"]
    assert res.task("saving")["result"]["failed"] and "min_cost_saving" in res.task("saving")["result"]["msg"]
    assert shop.query("SELECT count(*) FROM shop.orders", dbname=DB)[0][0] == 50000


@pytest.mark.pg_versions(18)  # the playbook's report and idempotence; the engine runs on every major above
def test_query_tuning_playbook_writes_the_report_and_a_second_run_changes_nothing(shop, tmp_path):
    conn = shop.connect(DB)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_statements_reset()")
            for i in range(1, 40):
                cur.execute(JOIN_FK.replace("$1", "%s"), (i,))
    finally:
        conn.close()
    extra = dict(
        query_tuning_database=DB,
        query_tuning_dest=str(tmp_path),
        query_tuning_schemas=["shop"],
        query_tuning_explain=[dict(name="orders of a customer", query=JOIN_FK, params=[7])],
        # the superuser ran the workload above
        query_tuning_allow_superuser_statements=True,
    )
    before = shop.query("SELECT count(*), sum(hashtext(o::text)) FROM shop.orders o", dbname=DB)
    res = harness.run_site_playbook("query_tuning", shop, **extra)
    res.assert_ok()
    folder = tmp_path / "localhost"
    assert sorted(p.name for p in folder.iterdir()) == [
        "query_tuning.json",
        "query_tuning.md",
        "query_tuning.sarif",
        "query_tuning.xml",
    ]
    report = json.loads((folder / "query_tuning.json").read_text())
    found = {(f["rule"], f["object"]) for f in report["findings"]}
    # the plan of the join (explain), the proposal (index advice) and the review of the indexes there are
    assert ("QP-SCAN-001", "shop.orders") in found
    assert ("IA-INDEX-001", "shop.orders") in found
    assert ("IA-FK-001", "shop.orders.customer_id") in found
    summary = report["summary"]
    assert summary["workload"] == "pg_stat_statements"
    assert summary["explained"] == ["orders of a customer"] and summary["explain_errors"] == []
    assert (
        "CREATE INDEX CONCURRENTLY orders_customer_id_idx ON shop.orders (customer_id);"
        in summary["proposals"]
    )
    assert summary["apply"] is False
    assert shop.query("SELECT count(*), sum(hashtext(o::text)) FROM shop.orders o", dbname=DB) == before
    assert not shop.query("SELECT 1 FROM pg_indexes WHERE indexname = 'orders_customer_id_idx'", dbname=DB)
    again = harness.run_site_playbook("query_tuning", shop, **extra)
    again.assert_ok()
    second = json.loads((folder / "query_tuning.json").read_text())
    assert again.changed_count() == 0, _differences(report, second)


def _differences(first, second):
    """What differs between two reports, for the message of a failed idempotence check."""
    a = {json.dumps(f, sort_keys=True) for f in first["findings"]}
    b = {json.dumps(f, sort_keys=True) for f in second["findings"]}
    return dict(
        only_first=sorted(a - b), only_second=sorted(b - a), summary=(first["summary"], second["summary"])
    )


def test_query_tuning_apply_builds_verifies_and_compares(shop, tmp_path):
    """query_tuning_apply: the chosen proposal is built concurrently and the join plan uses it."""
    extra = dict(
        query_tuning_database=DB,
        query_tuning_dest=str(tmp_path),
        query_tuning_schemas=["shop"],
        query_tuning_queries=[dict(name="orders of a customer", sql=JOIN_FK.replace("$1", "7"))],
        query_tuning_explain=[dict(name="orders of a customer", query=JOIN_FK, params=[7])],
        query_tuning_apply=True,
        query_tuning_apply_indexes=["orders_customer_id_idx"],
    )
    try:
        res = harness.run_site_playbook("query_tuning", shop, **extra)
        res.assert_ok()
        built = res.task("Build the index (CREATE INDEX CONCURRENTLY, verified with EXPLAIN)")["result"]
        assert built["changed"] is True, built
        valid = shop.query(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = 'orders_customer_id_idx'",
            dbname=DB,
        )
        assert valid == [(True,)]
        after = res.task("EXPLAIN ANALYZE again and compare with before")["result"]
        assert "orders_customer_id_idx" in json.dumps(after["results"][0]["plan"])
        dropped = res.task("Drop an index no compared statement uses and improved with")["result"]
        assert all(r.get("skipped") for r in dropped["results"]), dropped
    finally:
        conn = shop.connect(DB)
        try:
            with conn.cursor() as cur:
                cur.execute("DROP INDEX IF EXISTS shop.orders_customer_id_idx")
        finally:
            conn.close()


TICKETS = """
CREATE TABLE shop.tickets (
    id int PRIMARY KEY, state text NOT NULL, customer_id int NOT NULL, opened_at timestamptz NOT NULL,
    total numeric NOT NULL, a1 int, a2 int, a3 int, a4 int, a5 int
);
INSERT INTO shop.tickets
SELECT g, CASE WHEN g % 10 = 0 THEN 'hold' WHEN g % 100 = 1 THEN 'new' WHEN g % 100 = 2 THEN 'late'
               ELSE 'done' END,
       g % 3000, timestamptz '2024-01-01' + g * interval '1 minute', g % 500, g, g, g, g, g
FROM generate_series(1, 300000) g;
ANALYZE shop.tickets;
"""


@pytest.fixture(scope="module")
def tickets(shop):
    with shop.connect(DB) as conn, conn.cursor() as cur:
        cur.execute(TICKETS)
    return shop


def test_partial_covering_prefix_and_threshold_regressions(tickets, run_playbook):
    """Regressions: a 10% value made a partial index; each literal got its own partial index;
    covering never added INCLUDE columns; a prefix of another proposal stayed apart;
    min_cost_saving 1.0 was refused and 99.5% printed as 100%."""
    hypopg = tickets.major == 15
    ordinary = [
        "SELECT id FROM shop.tickets WHERE state = 'hold' AND customer_id = $1",
        "SELECT id FROM shop.tickets WHERE state = $1 AND customer_id = $2",
    ]
    literals = [
        "SELECT id FROM shop.tickets WHERE state = 'new' ORDER BY opened_at DESC LIMIT 20",
        "SELECT id FROM shop.tickets WHERE state = 'late' ORDER BY opened_at DESC LIMIT 20",
    ]
    covering = ["SELECT id, total FROM shop.tickets WHERE customer_id = $1"]
    prefix = [
        "SELECT total FROM shop.tickets WHERE customer_id = $1",
        "SELECT id FROM shop.tickets WHERE customer_id = $1 ORDER BY opened_at DESC LIMIT 5",
    ]
    point = ["SELECT total FROM shop.tickets WHERE opened_at = '2024-02-01 10:00+00'"]
    res = run_playbook(
        play(
            tickets,
            [
                advice_task("ordinary", queries=ordinary, schemas=["shop"]),
                advice_task("literals", queries=literals, schemas=["shop"]),
                advice_task("covering", queries=covering, schemas=["shop"], covering=True),
                advice_task("prefix", queries=prefix, schemas=["shop"]),
                advice_task("all", queries=point, schemas=["shop"], min_cost_saving=1.0),
            ],
            DB,
        )
    )
    res.assert_ok()

    def tickets_items(name, key="proposals"):
        r = res.task(name)["result"]
        return [p for p in r[key] if p["table"] == "shop.tickets"]

    # 10% of the rows is no rare value: no partial index on it
    assert all(p["where"] is None for p in tickets_items("ordinary") + tickets_items("ordinary", "rejected"))
    # two rare literals: one index with state as a key, not one partial index per literal
    lit = tickets_items("literals")
    assert [(p["columns"], p["where"]) for p in lit] == [(["state", "opened_at DESC"], None)], lit
    assert len(lit[0]["queries"]) == 2
    # covering: the select-list columns outside the key are INCLUDEd
    cov = tickets_items("covering")
    assert [(p["columns"], p["include"]) for p in cov] == [(["customer_id"], ["id", "total"])], cov
    assert cov[0]["create_sql"].endswith("(customer_id) INCLUDE (id, total);")
    # (customer_id) is a prefix of (customer_id, opened_at DESC): one proposal serves both
    pre = tickets_items("prefix")
    assert [p["columns"] for p in pre] == [["customer_id", "opened_at DESC"]], pre
    assert len(pre[0]["queries"]) == 2 and pre[0]["merged"] == ["tickets_customer_id_idx"]
    # 1.0 is accepted; a saving just under 100% never reads as 100%
    everything = res.task("all")["result"]
    assert everything["summary"]["min_cost_saving"] == 1.0
    if hypopg:
        rej = tickets_items("all", "rejected")
        assert len(rej) == 1 and rej[0]["saving"] > 0.995, rej
        assert "less than min_cost_saving 100%" in rej[0]["rejected_because"]
        assert "falls by 100" not in rej[0]["rejected_because"], rej[0]["rejected_because"]


PARTS = """
CREATE SCHEMA parts;
CREATE TABLE parts.events (id bigint NOT NULL, tenant int NOT NULL, at date NOT NULL, body text NOT NULL)
    PARTITION BY RANGE (at);
CREATE TABLE parts.events_2023 PARTITION OF parts.events FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE parts.events_2024 PARTITION OF parts.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE parts.events_2025 PARTITION OF parts.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO parts.events
SELECT g, g % 5000, date '2023-01-01' + (g % 1095), md5(g::text) FROM generate_series(1, 150000) g;
ANALYZE parts.events;
"""


@pytest.fixture(scope="module")
def parts(shop):
    with shop.connect(DB) as conn, conn.cursor() as cur:
        cur.execute(PARTS)
    return shop


@pytest.mark.all_versions  # generic plans prune partitions differently before 16
def test_partitioned_table_gets_one_proposal_on_the_parent(parts, run_playbook):
    """Regression: per-partition candidates each fell under min_cost_saving, and before 16 the
    NULLs of the generic plan pruned every partition, so a partitioned table got no advice."""
    hypopg = parts.major == 15
    workload = [
        dict(name="events of a tenant", sql="SELECT id, at FROM parts.events WHERE tenant = $1", weight=5),
        dict(
            name="recent events of a tenant",
            sql="SELECT id FROM parts.events WHERE tenant = $1 AND at >= $2",
            weight=1,
        ),
    ]
    res = run_playbook(play(parts, [advice_task("advice", queries=workload, schemas=["parts"])], DB))
    res.assert_ok()
    r = res.task("advice")["result"]
    assert r["not_planned"] == []
    mine = [p for p in r["proposals"] if p["table"].startswith("parts.")]
    assert [p["table"] for p in mine] == ["parts.events"], (mine, r["rejected"])
    p = mine[0]
    assert p["columns"][0] == "tenant" and p["evidence"]["partitioned"] is True
    # CREATE INDEX CONCURRENTLY cannot build on a partitioned table
    assert (
        p["create_sql"].startswith("CREATE INDEX events_tenant") and " ON parts.events (" in p["create_sql"]
    )
    assert {q["name"] for q in p["queries"]} == {"events of a tenant", "recent events of a tenant"}
    if hypopg:
        # proven over the partitions together: the hypothetical index on the parent serves all three
        assert p["proven"] and p["saving"] >= 0.3 and all(q["uses_index"] for q in p["queries"])
    assert not [x for x in r["rejected"] if x["table"].startswith("parts.events_")]
