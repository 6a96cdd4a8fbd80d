"""dbarch.postgresql.materialized_view against real clusters of every supported major."""

import pytest

import harness

DB = "mvdb"

SCHEMA = """
CREATE SCHEMA reporting;
CREATE TABLE sales (id int PRIMARY KEY, region text NOT NULL, amount numeric(10, 2) NOT NULL);
INSERT INTO sales SELECT g, 'region ' || (g % 5), g % 100 FROM generate_series(1, 2000) g;
"""

QUERY = "SELECT region, sum(amount) AS total, count(*) AS n FROM sales GROUP BY region"
QUERY_SPELLED_OTHERWISE = "select  region,SUM(amount) as total, COUNT(*) as n\nfrom public.sales group by 1;"
QUERY_OTHER = "SELECT region, max(amount) AS top FROM sales GROUP BY region"


@pytest.fixture(scope="module")
def db(pg):
    pg.createdb(DB)
    with pg.connect(DB) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
    return pg


def play(pg, tasks):
    return harness.play(*tasks, pg=pg, db=DB)


def mv_task(task_name, ignore_errors=False, check_mode=None, **options):
    if ignore_errors:
        options["ignore_errors"] = True
    if check_mode is not None:
        options["check_mode"] = check_mode
    return harness.task("materialized_view", task_name, register=task_name, **options)


def matview(pg, name):
    """(populated, definition) or None."""
    rows = pg.query(
        "SELECT relispopulated, pg_get_viewdef(oid, true) FROM pg_class WHERE relkind = 'm' AND relname = %s",
        (name,),
        dbname=DB,
    )
    return rows[0] if rows else None


@pytest.mark.all_versions
def test_create_with_unique_index_refresh_concurrently_and_drop(db, run_playbook):
    name = "reporting.sales_by_region"
    run = run_playbook(
        play(
            db,
            [
                mv_task("check", check_mode=True, name=name, query=QUERY, unique_columns=["region"]),
                mv_task("create", name=name, query=QUERY, unique_columns=["region"]),
                mv_task("same", name=name, query=QUERY_SPELLED_OTHERWISE, unique_columns=["region"]),
                mv_task("refresh", name=name, state="refreshed"),
                mv_task("refresh_check", check_mode=True, name=name, state="refreshed"),
                mv_task("drop_check", check_mode=True, name=name, state="absent"),
            ],
        ),
        diff=True,
    )
    run.assert_ok()
    check = run.task("check")["result"]
    assert check["changed"] is True and check["before"] is None
    assert check["planned"][0].startswith('CREATE MATERIALIZED VIEW "reporting"."sales_by_region" AS SELECT')
    assert check["planned"][1] == (
        'CREATE UNIQUE INDEX "sales_by_region_unique" ON "reporting"."sales_by_region" ("region")'
    )
    assert "CREATE MATERIALIZED VIEW" not in " ".join(check["queries"])
    create = run.task("create")["result"]
    assert create["changed"] is True and "AS total" in create["diff"]["after"]
    assert create["unique_index"] == dict(name="sales_by_region_unique", columns=["region"])
    same = run.task("same")["result"]
    assert same["changed"] is False and same["planned"] == [] and "diff" not in same
    refresh = run.task("refresh")["result"]["refresh"]
    assert refresh["concurrent"] is True and refresh["rows"] == 5 and refresh["rows_exact"] is True
    assert refresh["duration_ms"] >= 0
    assert run.task("refresh")["result"]["planned"] == [
        'REFRESH MATERIALIZED VIEW CONCURRENTLY "reporting"."sales_by_region"'
    ]
    refresh_check = run.task("refresh_check")["result"]
    assert refresh_check["changed"] is True and refresh_check["refresh"]["duration_ms"] is None
    assert not any("REFRESH" in q for q in refresh_check["queries"])
    # the statement a scheduled refresh runs, computed in check mode without refreshing
    assert (
        refresh_check["refresh_sql"] == 'REFRESH MATERIALIZED VIEW CONCURRENTLY "reporting"."sales_by_region"'
    )
    assert run.task("drop_check")["result"]["changed"] is True
    assert matview(db, "sales_by_region")[0] is True

    run = run_playbook(
        play(db, [mv_task("drop", name=name, state="absent"), mv_task("again", name=name, state="absent")]),
        diff=True,
    )
    run.assert_ok()
    assert run.task("drop")["result"]["changed"] is True and run.task("drop")["result"]["diff"]["after"] == ""
    assert run.task("again")["result"]["changed"] is False
    assert matview(db, "sales_by_region") is None


def test_refresh_without_unique_index_or_data_is_plain_with_a_reason(db, run_playbook):
    run = run_playbook(
        play(
            db,
            [
                mv_task("plain", name="sales_plain", query=QUERY),
                mv_task("empty", name="sales_empty", query=QUERY, unique_columns=["region"], with_data=False),
                mv_task("r_plain", name="sales_plain", state="refreshed"),
                mv_task("r_forced", True, name="sales_plain", state="refreshed", concurrently=True),
                mv_task("r_empty", name="sales_empty", state="refreshed"),
                mv_task("r_empty_again", name="sales_empty", state="refreshed"),
                mv_task("r_missing", True, name="nope", state="refreshed"),
            ],
        )
    )
    try:
        plain = run.task("r_plain")["result"]["refresh"]
        assert plain["concurrent"] is False and "no unique index" in plain["reason"] and plain["rows"] == 5
        forced = run.task("r_forced")["result"]
        assert forced["failed"] and "cannot refresh public.sales_plain concurrently" in forced["msg"]
        empty = run.task("r_empty")["result"]["refresh"]
        assert empty["concurrent"] is False and "not populated" in empty["reason"]
        assert run.task("r_empty_again")["result"]["refresh"]["concurrent"] is True
        assert "does not exist" in run.task("r_missing")["result"]["msg"]
    finally:
        db.query("DROP MATERIALIZED VIEW IF EXISTS sales_plain, sales_empty", dbname=DB)


@pytest.mark.all_versions
def test_changed_definition_is_refused_then_replaced(db, run_playbook):
    run = run_playbook(
        play(
            db,
            [
                mv_task("create", name="sales_mv", query=QUERY),
                mv_task("other", True, name="sales_mv", query=QUERY_OTHER),
                mv_task("replace_check", check_mode=True, name="sales_mv", query=QUERY_OTHER, replace=True),
                mv_task(
                    "replace", name="sales_mv", query=QUERY_OTHER, unique_columns=["region"], replace=True
                ),
                mv_task("again", name="sales_mv", query=QUERY_OTHER, unique_columns=["region"], replace=True),
                mv_task("bad", True, name="sales_bad", query="SELECT 1; DROP TABLE sales"),
                mv_task("ddl", True, name="sales_bad", query="DROP TABLE sales"),
            ],
        ),
        diff=True,
    )
    try:
        other = run.task("other")["result"]
        assert (
            other["failed"]
            and "exists with another definition" in other["msg"]
            and "replace=true" in other["msg"]
        )
        check = run.task("replace_check")["result"]
        assert (
            check["changed"] is True and check["planned"][0] == 'DROP MATERIALIZED VIEW "public"."sales_mv"'
        )
        replace = run.task("replace")["result"]
        assert replace["changed"] is True and replace["replaced"] is True
        assert "AS top" in replace["diff"]["after"] and "AS total" in replace["diff"]["before"]
        assert run.task("again")["result"]["changed"] is False
        assert "AS top" in matview(db, "sales_mv")[1]
        assert "2 statements" in run.task("bad")["result"]["msg"]
        assert "one SELECT" in run.task("ddl")["result"]["msg"]
        assert db.query("SELECT count(*) FROM sales", dbname=DB) == [(2000,)]
        assert matview(db, "sales_bad") is None
    finally:
        db.query("DROP MATERIALIZED VIEW IF EXISTS sales_mv", dbname=DB)


def test_unique_index_added_to_an_existing_view_and_duplicates_leave_no_invalid_index(db, run_playbook):
    db.query("CREATE MATERIALIZED VIEW sales_dup AS SELECT region FROM sales", dbname=DB)
    db.query("CREATE MATERIALIZED VIEW sales_ok AS " + QUERY, dbname=DB)
    run = run_playbook(
        play(
            db,
            [
                mv_task(
                    "dup", True, name="sales_dup", query="SELECT region FROM sales", unique_columns=["region"]
                ),
                mv_task("ok", name="sales_ok", query=QUERY, unique_columns=["region"]),
            ],
        )
    )
    try:
        dup = run.task("dup")["result"]
        assert dup["failed"] and "23505" in dup["msg"] and "dropped" in dup["msg"]
        assert db.query("SELECT count(*) FROM pg_class WHERE relname = 'sales_dup_unique'", dbname=DB) == [
            (0,)
        ]
        ok = run.task("ok")["result"]
        assert ok["changed"] is True and ok["planned"] == [
            'CREATE UNIQUE INDEX CONCURRENTLY "sales_ok_unique" ON "public"."sales_ok" ("region")'
        ]
    finally:
        db.query("DROP MATERIALIZED VIEW IF EXISTS sales_dup, sales_ok", dbname=DB)
