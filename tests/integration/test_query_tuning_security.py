"""The query tuning workflow against a hostile pg_stat_statements (real PostgreSQL 15).

Any role that can connect writes pg_stat_statements. Here the unprivileged role ``mallory``
owns a table and an IMMUTABLE function that, once armed, runs ``COPY ... TO PROGRAM`` (a
marker file, through a VOLATILE function it calls) whenever a superuser evaluates it. The
planner folds immutable functions, so EXPLAIN alone evaluates it. mallory's statement and
the same kind of statement run by the superuser (while disarmed) are in pg_stat_statements;
then the query tuning playbook runs as the superuser. The marker must not appear: mallory's
statement is explained and planned as mallory, the superuser's is skipped with the reason.
"""

import json
import os

import psycopg2
import pytest

import harness

# The attack does not depend on the version; 15 has hypopg.
pytestmark = pytest.mark.pg_versions(15)

DB = "qt_attack"
MALLORY_SQL = "SELECT id FROM bait WHERE n = pick()"
SUPERUSER_SQL = "SELECT id, n FROM bait WHERE n = pick()"


@pytest.fixture
def attack(pg, workdir):
    folder = os.path.join(workdir, "markers")
    os.mkdir(folder)
    os.chmod(folder, 0o1777)  # noqa: S103 - the server (postgres OS user) writes the marker here
    marker = os.path.join(folder, "pwned")
    pg.createdb(DB)
    password = "mallory-pw-1"
    with pg.connect(DB) as conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION pg_stat_statements")
        cur.execute("CREATE EXTENSION hypopg")
        cur.execute("DROP ROLE IF EXISTS mallory")
        cur.execute("CREATE ROLE mallory LOGIN PASSWORD %s", (password,))
        cur.execute("GRANT CREATE ON SCHEMA public TO mallory")
    conn = psycopg2.connect(host=pg.host, port=pg.port, user="mallory", password=password, dbname=DB)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE armed (on_ boolean NOT NULL)")
            cur.execute("INSERT INTO armed VALUES (false)")
            cur.execute("CREATE TABLE bait (id int PRIMARY KEY, n int NOT NULL)")
            cur.execute("INSERT INTO bait SELECT g, g % 500 FROM generate_series(1, 20000) g")
            cur.execute("ANALYZE bait")
            # COPY is refused in a non-volatile function, not in a volatile one it calls; and it
            # tries RESET ROLE first, which escapes a plain SET ROLE when the login is a superuser
            cur.execute(
                "CREATE FUNCTION sneak() RETURNS void LANGUAGE plpgsql VOLATILE AS $f$ BEGIN "
                "BEGIN EXECUTE 'RESET ROLE'; EXCEPTION WHEN OTHERS THEN NULL; END; "
                "IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) "
                "AND (SELECT bool_or(on_) FROM public.armed) THEN "
                "EXECUTE format('COPY (SELECT 1) TO PROGRAM %%L', 'touch ' || %s); "
                "END IF; END $f$",
                (marker,),
            )
            cur.execute(
                "CREATE FUNCTION pick() RETURNS int LANGUAGE plpgsql IMMUTABLE "
                "AS $f$ BEGIN PERFORM public.sneak(); RETURN 7; END $f$"
            )
            for i in range(20):
                cur.execute(MALLORY_SQL)
                cur.execute("SELECT id, n FROM bait WHERE n = %s", (i,))
    finally:
        conn.close()
    with pg.connect(DB) as su, su.cursor() as cur:
        for _attempt in range(5):
            cur.execute(SUPERUSER_SQL)  # disarmed: nothing happens
    # armed from now on: any evaluation of pick() by a superuser writes the marker
    pg.query("UPDATE armed SET on_ = true", dbname=DB)
    assert not os.path.exists(marker)
    yield pg, marker
    pg.query("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB)
    pg.query("DROP ROLE IF EXISTS mallory")


def test_query_tuning_never_plans_workload_statements_as_a_superuser(attack, tmp_path):
    pg, marker = attack
    extra = dict(
        query_tuning_database=DB,
        query_tuning_dest=str(tmp_path),
        query_tuning_schemas=["public"],
        query_tuning_min_cost_saving=0.1,
    )
    res = harness.run_site_playbook("query_tuning", pg, **extra)
    res.assert_ok()
    assert not os.path.exists(marker), "a workload statement was planned or run as the superuser"
    advice = res.task("Propose indexes for the workload")["result"]
    summary = advice["summary"]
    # the superuser's statements (the bait and the UPDATE that armed it) are skipped
    assert summary["superuser_statements_skipped"] == 2
    skipped = [s for s in advice["not_planned"] if s["sql"] == SUPERUSER_SQL]
    assert len(skipped) == 1 and skipped[0]["user"] == pg.user
    assert "superuser" in skipped[0]["reason"] and "allow_superuser_statements" in skipped[0]["reason"]
    # mallory's statement was planned, as mallory (its candidate on bait (n) is proposed or rejected:
    # hypopg stops offering hypothetical indexes once a function runs a query during planning)
    served = [q for p in advice["proposals"] + advice["rejected"] for q in p["queries"]]
    assert [q["planned_as"] for q in served if q["sql"] == MALLORY_SQL] == ["mallory"], json.dumps(
        {k: advice[k] for k in ("proposals", "rejected", "not_planned", "summary")}
    )
    # mallory's statement with $1 placeholders: a generic plan, taken behind the same wall
    param = [q for q in served if q["sql"] == "SELECT id, n FROM bait WHERE n = $1"]
    assert [q["planned_as"] for q in param] == ["mallory"], advice["not_planned"]
    # behind a SECURITY DEFINER function owned by mallory, where RESET ROLE is refused
    assert summary["role_wall"] == dict(security_definer=["mallory"], set_role_only={})
    explained = res.task("EXPLAIN ANALYZE the worst statements (always rolled back)")["result"]["results"]
    ran = [r for r in explained if r["item"].get("query") == MALLORY_SQL]
    assert len(ran) == 1 and ran[0]["statement"]["role"] == "mallory", ran
    assert ran[0]["statement"]["role_wall"] == "security definer"
    assert not [r for r in explained if r["item"].get("query") == SUPERUSER_SQL]
    report = json.loads((tmp_path / "localhost" / "query_tuning.json").read_text())
    assert report["summary"]["not_planned_superuser_roles"] == [pg.user]
    assert pg.user in report["summary"]["explain_skipped_superuser_roles"]
    assert not os.path.exists(marker)


def test_index_advice_refuses_a_superuser_explain_role(attack, run_playbook):
    pg, marker = attack
    tasks = [
        dict(
            name="advice",
            register="advice",
            ignore_errors=True,
            **{"dbarch.postgresql.index_advice_info": dict(explain_role=pg.user)},
        ),
        dict(
            name="as mallory",
            register="as_mallory",
            **{"dbarch.postgresql.index_advice_info": dict(explain_role="mallory")},
        ),
    ]
    play = [
        dict(
            hosts="localhost",
            gather_facts=False,
            module_defaults={"group/dbarch.postgresql.all": dict(pg.conn_params, login_db=DB)},
            tasks=tasks,
        )
    ]
    res = run_playbook(play)
    refused = res.task("advice")["result"]
    assert refused["failed"] and "is a superuser" in refused["msg"]
    mine = res.task("as mallory")["result"]
    assert mine["summary"]["planned_as"] == "mallory"
    # with explain_role the superuser's statement is planned too, but as mallory
    assert mine["summary"]["superuser_statements_skipped"] == 0
    assert not os.path.exists(marker)


def test_query_tuning_apply_never_explains_workload_statements_as_a_superuser(attack, tmp_path):
    """The apply step explains the statements again (compare_to): never a pg_stat_statements
    statement with the login's rights. (Its verify_query takes only statements planned as the
    login; here hypopg proves nothing on bait, so no index is built.)"""
    pg, marker = attack
    extra = dict(
        query_tuning_database=DB,
        query_tuning_dest=str(tmp_path),
        query_tuning_schemas=["public"],
        query_tuning_apply=True,
        query_tuning_apply_indexes=["bait_n_idx"],
    )
    res = harness.run_site_playbook("query_tuning", pg, **extra)
    res.assert_ok()
    assert not os.path.exists(marker), "a workload statement was explained as the superuser"
    again = res.task("EXPLAIN ANALYZE again and compare with before")["result"]["results"]
    assert again and all(r["statement"]["role"] == "mallory" for r in again), again
