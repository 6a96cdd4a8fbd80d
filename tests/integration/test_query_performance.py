"""query_stats_info, query_stats and explain against real clusters of every supported major.

A small shop workload with planted problems: orders.customer_id is a foreign key without
an index (used in a join), a correlated subquery in a SELECT list, a sort larger than
work_mem. A clean indexed point query must give no finding.
"""

import json

import pytest

import harness

DB = "qperf"

SCHEMA = """
CREATE EXTENSION pg_stat_statements;
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL);
CREATE TABLE orders (
    id int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    total numeric(10, 2) NOT NULL,
    note text NOT NULL
);
INSERT INTO customers SELECT g, 'customer ' || g, 'region ' || (g % 7) FROM generate_series(1, 400) g;
INSERT INTO orders
SELECT g, 1 + g % 400, (g % 1000) / 10.0, md5(g::text) || md5((g * 7)::text)
FROM generate_series(1, 40000) g;
ANALYZE customers;
ANALYZE orders;
CREATE TABLE audit (at timestamptz NOT NULL DEFAULT now(), what text NOT NULL);
CREATE FUNCTION touch(what text) RETURNS int LANGUAGE sql VOLATILE
    AS 'INSERT INTO audit (what) VALUES (what) RETURNING 1';
"""

JOIN_FK = "SELECT c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c.id WHERE c.id = $1"
CORRELATED = (
    "SELECT c.id, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n_orders "
    "FROM customers c WHERE c.id <= 150"
)
BIG_SORT = "SELECT id, note FROM orders ORDER BY note"
POINT = "SELECT id, customer_id, total FROM orders WHERE id = $1"


@pytest.fixture(scope="module")
def shop(pg):
    pg.createdb(DB)
    with pg.connect(DB) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
    return pg


def play(pg, tasks, dbname=DB):
    return harness.play(*tasks, pg=pg, db=dbname)


def explain_task(name, query, **options):
    return harness.task("explain", name, register=name, query=query, **options)


def rules(result):
    return sorted({f["rule"] for f in result["findings"]})


def table_state(pg):
    return pg.query("SELECT count(*), md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o", dbname=DB)


# -- explain -----------------------------------------------------------------------------
@pytest.mark.all_versions
def test_explain_finds_the_planted_problems_and_not_on_a_clean_query(shop, run_playbook):
    res = run_playbook(
        play(
            shop,
            [
                explain_task("join_fk", JOIN_FK, params=[42]),
                explain_task("correlated", CORRELATED),
                explain_task("sort", BIG_SORT, session_settings={"work_mem": "64kB"}),
                explain_task("point", POINT, params=[1234]),
                explain_task("point_planned", POINT, params=[1234], analyze=False),
            ],
        )
    )
    res.assert_ok()
    join = res.task("join_fk")["result"]
    assert join["changed"] is False and join["analyzed"] is True
    scan = [f for f in join["findings"] if f["rule"] == "QP-SCAN-001"]
    assert scan and scan[0]["object"] == "public.orders", join["findings"]
    assert scan[0]["evidence"]["rows_removed_by_filter"] >= 39000
    assert scan[0]["fix"] == "CREATE INDEX CONCURRENTLY ON public.orders (customer_id);"
    assert join["plan"]["Plan"]["Node Type"] and join["total_time_ms"] >= join["planning_time_ms"]
    assert join["buffers"]["shared_hit"] + join["buffers"]["shared_read"] > 0
    assert join["statement"] == dict(
        kind="SELECT",
        writes=False,
        why="reads only",
        transaction="read only",
        rolled_back=True,
        role=None,
        role_wall=None,
    )

    corr = res.task("correlated")["result"]
    sub = [f for f in corr["findings"] if f["rule"] == "QP-SUBPLAN-001"]
    assert sub and sub[0]["evidence"]["loops"] == 150, corr["findings"]
    assert "JOIN" in sub[0]["fix"] and "LATERAL" in sub[0]["fix"]

    sort = res.task("sort")["result"]
    spill = [f for f in sort["findings"] if f["rule"] == "QP-SPILL-001"]
    assert spill and "external" in spill[0]["evidence"]["sort_method"], sort["findings"]
    assert sort["plan"]["Settings"].get("work_mem") == "64kB"
    assert sort["buffers"]["temp_written"] > 0

    point = res.task("point")["result"]
    assert point["findings"] == [] and point["plan"]["Plan"]["Node Type"] == "Index Scan"
    planned = res.task("point_planned")["result"]
    assert planned["analyzed"] is False and planned["total_time_ms"] is None
    assert "QP-SCAN-001" in planned["rules_not_run"]
    assert "Actual Rows" not in planned["plan"]["Plan"]


def test_explain_analyze_of_writes_leaves_every_row_as_it_was(shop, run_playbook):
    before = table_state(shop)
    res = run_playbook(
        play(
            shop,
            [
                explain_task(
                    "update",
                    "UPDATE orders SET total = total * 2, note = 'x' WHERE customer_id = $1",
                    params=[7],
                ),
                explain_task("delete", "DELETE FROM orders WHERE customer_id < $1", params=[200]),
                explain_task(
                    "cte",
                    "WITH gone AS (DELETE FROM orders WHERE id <= 100 RETURNING id) "
                    "SELECT count(*) FROM gone",
                ),
                explain_task(
                    "insert", "INSERT INTO orders SELECT id + 100000, customer_id, total, note FROM orders"
                ),
                explain_task("function", "SELECT touch($1) WHERE $2 LIKE 'a%'", params=["100% sure", "abc"]),
            ],
        )
    )
    res.assert_ok()
    update = res.task("update")["result"]
    assert update["analyzed"] is True and update["changed"] is False
    assert update["statement"]["kind"] == "UPDATE" and update["statement"]["transaction"] == "read write"
    assert update["plan"]["Plan"]["Node Type"] == "ModifyTable"
    assert update["plan"]["Plan"]["Plans"][0]["Actual Rows"] == 100, "the UPDATE did touch 100 rows"
    delete = res.task("delete")["result"]
    assert delete["plan"]["Plan"]["Plans"][0]["Actual Rows"] == 19900
    assert res.task("cte")["result"]["statement"]["why"] == "data-modifying WITH gone"
    function = res.task("function")["result"]
    assert function["statement"]["writes"] is False and function["statement"]["transaction"] == "read write"
    assert function["analyzed"] is True and function["plan"]["Plan"]["Actual Rows"] == 1
    assert table_state(shop) == before, "EXPLAIN ANALYZE must leave every row as it was"
    assert shop.query("SELECT count(*) FROM audit", dbname=DB) == [(0,)]


@pytest.mark.all_versions
def test_explain_check_mode_plans_writes_and_compare_to(shop, run_playbook):
    before = table_state(shop)
    res = run_playbook(
        play(
            shop,
            [
                explain_task("update", "UPDATE orders SET total = 0 WHERE customer_id = 9"),
                explain_task("select", POINT, params=[5]),
            ],
        ),
        check=True,
    )
    res.assert_ok()
    upd = res.task("update")["result"]
    assert upd["analyzed"] is False and "planned without ANALYZE" in upd["msg"]
    assert res.task("select")["result"]["analyzed"] is True
    assert table_state(shop) == before

    # compare_to: the join before and after an index on the foreign key.
    first = run_playbook(play(shop, [explain_task("before", JOIN_FK, params=[42])]))
    first.assert_ok()
    with shop.connect(DB) as conn, conn.cursor() as cur:
        cur.execute("CREATE INDEX orders_customer_id_idx ON orders (customer_id)")
    try:
        second = run_playbook(
            play(
                shop,
                [explain_task("after", JOIN_FK, params=[42], compare_to="{{ before_result }}")],
            ),
            extra_vars=dict(before_result=first.task("before")["result"]),
        )
        second.assert_ok()
        after = second.task("after")["result"]
        cmp = after["comparison"]
        assert cmp["basis"] == "total_time_ms" and cmp["ratio"] is not None
        assert cmp["shape_changed"] is True
        orders = [c for c in cmp["shape_changes"] if c["relation"] == "public.orders"]
        assert orders and "Seq Scan" in orders[0]["before"]
        assert any("orders_customer_id_idx" in kind for kind in orders[0]["after"])
        assert "QP-SCAN-001" not in rules(after)
    finally:
        with shop.connect(DB) as conn, conn.cursor() as cur:
            cur.execute("DROP INDEX orders_customer_id_idx")


def test_explain_rejects_what_it_cannot_run_safely(shop, run_playbook):
    res = run_playbook(
        play(
            shop,
            [
                dict(explain_task("two", "SELECT 1; DELETE FROM orders"), ignore_errors=True),
                dict(explain_task("ddl", "DROP TABLE orders"), ignore_errors=True),
                dict(explain_task("params", POINT), ignore_errors=True),
                dict(
                    explain_task("timeout", "SELECT pg_sleep(5)", statement_timeout="100ms"),
                    ignore_errors=True,
                ),
            ],
        )
    )
    two = res.task("two")["result"]
    assert two["failed"] and "2 statements" in two["msg"]
    ddl = res.task("ddl")["result"]
    assert ddl["failed"] and "DROP statement, which EXPLAIN cannot run" in ddl["msg"]
    params = res.task("params")["result"]
    assert params["failed"] and "1 parameter(s)" in params["msg"]
    timeout = res.task("timeout")["result"]
    assert timeout["failed"] and "57014" in timeout["msg"]
    assert shop.query("SELECT count(*) FROM orders", dbname=DB) == [(40000,)]


# -- query_stats_info ---------------------------------------------------------------------
def run_workload(pg, point_calls=3):
    with pg.connect(DB) as conn, conn.cursor() as cur:
        cur.execute(JOIN_FK.replace("$1", "%s"), (42,))
        cur.execute(CORRELATED)
        cur.execute("SET work_mem = '64kB'")
        cur.execute(BIG_SORT)
        cur.execute("RESET work_mem")
        for i in range(point_calls):
            cur.execute(POINT.replace("$1", "%s"), (i + 1,))


def find(statements, fragment):
    return [s for s in statements if fragment in " ".join(s["query"].split())]


@pytest.mark.all_versions
def test_query_stats_info_top_statements_and_delta(shop, run_playbook):
    reset = run_playbook(
        play(shop, [dict(name="reset", **{"dbarch.postgresql.query_stats": dict(state="reset")})])
    )
    reset.assert_ok()
    assert reset.task("reset")["result"]["changed"] is True
    run_workload(shop)
    res = run_playbook(
        play(
            shop,
            [
                harness.task(
                    "query_stats_info", "stats", register="stats", limit=0, thresholds=dict(temp_blocks=10)
                ),
                dict(
                    name="more", **{"dbarch.postgresql.explain": dict(query=POINT, params=[1], analyze=False)}
                ),
                dict(
                    name="top_temp",
                    **{"dbarch.postgresql.query_stats_info": dict(order_by="temp_blocks", limit=1)},
                ),
                dict(
                    name="delta",
                    **{"dbarch.postgresql.query_stats_info": dict(since="{{ stats.snapshot }}", limit=0)},
                ),
            ],
        )
    )
    res.assert_ok()
    stats = res.task("stats")["result"]
    assert stats["changed"] is False and stats["checks_skipped"] == []
    sts = stats["statements"]
    corr = find(sts, "(SELECT count(*) FROM orders o WHERE o.customer_id = c.id)")
    assert corr and corr[0]["calls"] == 1 and corr[0]["rows"] == 150
    point = find(sts, "FROM orders WHERE id = $1")
    assert point and point[0]["calls"] == 3 and 0 <= point[0]["cache_hit_ratio"] <= 1
    sort = find(sts, "FROM orders ORDER BY note")
    assert sort and sort[0]["temp_blks_written"] > 10
    assert any(
        f["rule"] == "QS-TEMP-001" and f["evidence"]["queryid"] == sort[0]["queryid"]
        for f in stats["findings"]
    )
    assert find(sts, "JOIN orders o ON o.customer_id = c.id")
    # version-correct columns
    columns = stats["extension"]["columns"]
    if shop.major >= 17:
        assert columns["blk_read_time"] == "shared_blk_read_time"
        assert point[0]["stats_since"] is not None
    else:
        assert columns["blk_read_time"] == "blk_read_time" and point[0]["stats_since"] is None
    if shop.major >= 15:
        assert point[0]["temp_blk_read_time_ms"] is not None and point[0]["jit_time_ms"] is not None
    else:
        assert point[0]["temp_blk_read_time_ms"] is None and "temp_blk_read_time" not in columns
    assert point[0]["blk_read_time_ms"] is not None and point[0]["total_time_ms"] > 0
    assert stats["stats_reset"] is not None and stats["snapshot"]["statements"]
    # ordering
    assert res.task("top_temp")["result"]["statements"][0]["queryid"] == sort[0]["queryid"]
    # delta: only what ran between the two reads
    delta = res.task("delta")["result"]
    assert delta["delta"]["stats_reset_between"] is False
    assert not find(delta["statements"], "(SELECT count(*) FROM orders o WHERE o.customer_id = c.id)")
    assert not find(delta["statements"], "FROM orders ORDER BY note")


@pytest.mark.all_versions
def test_query_stats_delta_survives_a_reset(shop, run_playbook):
    run_workload(shop, point_calls=2)
    first = run_playbook(
        play(shop, [dict(name="s", register="s", **{"dbarch.postgresql.query_stats_info": {}})])
    )
    first.assert_ok()
    snap = first.task("s")["result"]["snapshot"]
    run_workload(shop, point_calls=4)
    res = run_playbook(
        play(
            shop,
            [dict(name="d", **{"dbarch.postgresql.query_stats_info": dict(since="{{ snap }}", limit=0)})],
        ),
        extra_vars=dict(snap=snap),
    )
    res.assert_ok()
    point = find(res.task("d")["result"]["statements"], "FROM orders WHERE id = $1")
    assert point and point[0]["calls"] == 4 and point[0]["min_time_ms"] is None
    # A reset between the two runs: the counters since the reset are the delta.
    reset_check = run_playbook(
        play(shop, [dict(name="r", **{"dbarch.postgresql.query_stats": {}})]),
        check=True,
    )
    reset_check.assert_ok()
    assert reset_check.task("r")["result"]["changed"] is True
    assert all("reset()" not in q for q in reset_check.task("r")["result"]["queries"])
    assert reset_check.task("r")["result"]["planned"] == ["SELECT public.pg_stat_statements_reset()"]
    shop.query("SELECT pg_stat_statements_reset()", dbname=DB)
    run_workload(shop, point_calls=1)
    res = run_playbook(
        play(
            shop,
            [dict(name="d", **{"dbarch.postgresql.query_stats_info": dict(since="{{ snap }}", limit=0)})],
        ),
        extra_vars=dict(snap=snap),
    )
    res.assert_ok()
    d = res.task("d")["result"]
    assert d["delta"]["stats_reset_between"] is True
    point = find(d["statements"], "FROM orders WHERE id = $1")
    assert point and point[0]["calls"] == 1


def test_query_stats_info_least_privilege(shop, run_playbook):
    run_workload(shop)
    with shop.connect(DB) as conn, conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS qperf_plain")
        cur.execute("DROP ROLE IF EXISTS qperf_monitor")
        cur.execute("CREATE ROLE qperf_plain LOGIN PASSWORD 'plain-pw-2'")
        cur.execute("CREATE ROLE qperf_monitor LOGIN PASSWORD 'monitor-pw-2' IN ROLE pg_read_all_stats")
    tasks = [
        dict(
            name=user,
            **{"dbarch.postgresql.query_stats_info": dict(login_user=user, login_password=password, limit=0)},
        )
        for user, password in (("qperf_plain", "plain-pw-2"), ("qperf_monitor", "monitor-pw-2"))
    ]
    res = run_playbook(play(shop, tasks))
    res.assert_ok()
    plain = res.task("qperf_plain")["result"]
    assert any(s["query"] == "<insufficient privilege>" for s in plain["statements"])
    assert any(
        c["check"] == "statement text" and "pg_read_all_stats" in c["reason"] for c in plain["checks_skipped"]
    )
    monitor = res.task("qperf_monitor")["result"]
    assert not any(s["query"] == "<insufficient privilege>" for s in monitor["statements"])
    assert find(monitor["statements"], "FROM orders ORDER BY note")
    assert not any(c["check"] == "statement text" for c in monitor["checks_skipped"])


def test_query_stats_info_says_how_to_fix_a_missing_extension(shop, run_playbook):
    shop.createdb("qperf_noext")
    res = run_playbook(
        play(shop, [dict(name="stats", **{"dbarch.postgresql.query_stats_info": {}})], dbname="qperf_noext")
    )
    res.assert_ok()
    r = res.task("stats")["result"]
    assert r["statements"] == [] and r["snapshot"] is None and r["changed"] is False
    assert "CREATE EXTENSION pg_stat_statements" in r["msg"] and "qperf_noext" in r["msg"]
    assert r["findings"][0]["rule"] == "QS-EXT-001"
    assert r["checks_skipped"][0]["check"] == "pg_stat_statements"
    assert r["extension"]["preloaded"] is True

    gated = run_playbook(
        play(
            shop,
            [
                dict(
                    name="stats",
                    ignore_errors=True,
                    **{"dbarch.postgresql.query_stats_info": dict(fail_on="medium")},
                )
            ],
            dbname="qperf_noext",
        )
    )
    assert gated.task("stats")["result"]["failed"] is True
    reset = run_playbook(
        play(
            shop,
            [dict(name="r", ignore_errors=True, **{"dbarch.postgresql.query_stats": {}})],
            dbname="qperf_noext",
        )
    )
    assert "CREATE EXTENSION pg_stat_statements" in reset.task("r")["result"]["msg"]


def test_query_stats_info_not_preloaded(pg, run_playbook):
    cluster = harness.start_cluster(pg.major, name="nopreload", settings={"shared_preload_libraries": ""})
    try:
        with cluster.connect() as conn, conn.cursor() as cur:
            cur.execute("CREATE EXTENSION pg_stat_statements")
        res = run_playbook(
            play(
                cluster, [dict(name="stats", **{"dbarch.postgresql.query_stats_info": {}})], dbname="postgres"
            )
        )
        res.assert_ok()
        r = res.task("stats")["result"]
        assert r["extension"]["installed"] is True and r["extension"]["preloaded"] is False
        assert "shared_preload_libraries" in r["msg"] and "restart" in r["msg"]
        assert r["findings"][0]["rule"] == "QS-EXT-001"
    finally:
        cluster.stop()


# -- regressions ----------------------------------------------------------------------------
def test_explain_check_mode_never_retries_read_write(shop, run_playbook):
    """A reading statement whose function writes (nextval) is refused READ ONLY; in check mode it
    must not run again read-write, which would move the sequence (a rollback does not undo it)."""
    with shop.connect(DB) as conn, conn.cursor() as cur:
        cur.execute("DROP SEQUENCE IF EXISTS qp_check_seq")
        cur.execute("CREATE SEQUENCE qp_check_seq")
    before = shop.query("SELECT last_value, is_called FROM qp_check_seq", dbname=DB)
    res = run_playbook(
        play(shop, [dict(explain_task("nextval", "SELECT nextval('qp_check_seq')"), ignore_errors=True)]),
        check=True,
    )
    r = res.task("nextval")["result"]
    assert r["failed"] and "needs write access" in r["msg"], r
    assert shop.query("SELECT last_value, is_called FROM qp_check_seq", dbname=DB) == before
    # outside check mode it still runs read-write (rolled back) as documented
    done = run_playbook(play(shop, [explain_task("nextval", "SELECT nextval('qp_check_seq')")]))
    done.assert_ok()
    assert done.task("nextval")["result"]["statement"]["transaction"] == "read write"


def test_password_literals_never_leave_the_collection(shop, run_playbook):
    """ALTER ROLE ... PASSWORD and a user mapping's password, really executed, land in
    pg_stat_statements; query_stats_info and explain must not return them."""
    secrets = ("Sup3r-Secret-role", "Mapp1ng-Secret", "C0nn-Secret")
    with shop.connect(DB) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_stat_statements_reset()")
        cur.execute("DROP ROLE IF EXISTS qp_secret")
        cur.execute("CREATE ROLE qp_secret LOGIN")
        cur.execute("ALTER ROLE qp_secret PASSWORD '%s'" % secrets[0])
        cur.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
        cur.execute("DROP SERVER IF EXISTS qp_remote CASCADE")
        cur.execute("CREATE SERVER qp_remote FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'x')")
        cur.execute(
            "CREATE USER MAPPING FOR qp_secret SERVER qp_remote OPTIONS (user 'u', password '%s')"
            % secrets[1]
        )
    raw = " ".join(
        r[0] for r in shop.query("SELECT query FROM pg_stat_statements WHERE query ~* 'password'", dbname=DB)
    )
    if shop.major == 15:
        # 15 keeps utility statements as they were sent: the test is about something real
        assert secrets[0] in raw and secrets[1] in raw, raw
    conn_text = "SELECT id FROM orders WHERE note = 'host=db password=%s dbname=x'" % secrets[2]
    res = run_playbook(
        play(
            shop,
            [
                harness.task("query_stats_info", "stats", register="stats", limit=0, min_calls=1),
                explain_task("conn", conn_text, analyze=False),
                dict(explain_task("bad", conn_text.replace("note", "no_such_column")), ignore_errors=True),
            ],
        )
    )
    stats = res.task("stats")["result"]
    explained = res.task("conn")["result"]
    failed = res.task("bad")["result"]
    # (Ansible echoes the module's own arguments in ``invocation``: the query the caller wrote)
    text = json.dumps([{k: v for k, v in r.items() if k != "invocation"} for r in (stats, explained, failed)])
    for secret in secrets:
        at = text.find(secret)
        assert at < 0, text[max(0, at - 300) : at + 50]
    alter = find(stats["statements"], "ALTER ROLE qp_secret PASSWORD")
    assert alter, [s["query"] for s in stats["statements"]]
    if shop.major == 15:
        assert alter[0]["query"] == "ALTER ROLE qp_secret PASSWORD '********'"
        mapping = find(stats["statements"], "CREATE USER MAPPING FOR qp_secret")
        assert mapping and "password '********'" in mapping[0]["query"]
    assert "password=********" in json.dumps(explained["plan"])
    assert failed["failed"]
    shop.query("DROP SERVER qp_remote CASCADE", dbname=DB)
    shop.query("DROP ROLE qp_secret", dbname=DB)
