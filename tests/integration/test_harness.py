# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The integration harness itself: clusters of every major and playbook runs."""

import psycopg2
import pytest

import harness


@pytest.mark.all_versions
def test_cluster_runs_the_requested_major(pg):
    (version_num,) = pg.query("SHOW server_version_num")[0]
    assert int(version_num) // 10000 == pg.major
    assert pg.query("SHOW shared_preload_libraries") == [("pg_stat_statements",)]


def test_pg_stat_statements_records_queries(pg):
    db = pg.createdb("harness_pgss")
    conn = pg.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION pg_stat_statements")
            cur.execute("SELECT 4242 AS harness_marker")
            cur.execute("SELECT count(*) FROM pg_stat_statements WHERE query LIKE %s", ("%harness_marker%",))
            assert cur.fetchone()[0] >= 1
    finally:
        conn.close()


def test_createdb_gives_a_fresh_empty_database(pg):
    pg.createdb("harness_fresh")
    pg.query("CREATE TABLE leftover (id int)", dbname="harness_fresh")
    assert pg.createdb("harness_fresh") == "harness_fresh"
    assert pg.query("SELECT count(*) FROM pg_class WHERE relname = 'leftover'", dbname="harness_fresh") == [
        (0,)
    ]


def test_tcp_login_needs_the_password(pg):
    dsn = pg.dsn()
    dsn["password"] = "wrong-" + pg.password
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(**dsn)
    assert pg.conn_params == {
        "login_host": "127.0.0.1",
        "login_port": pg.port,
        "login_user": "postgres",
        "login_password": pg.password,
        "login_db": "postgres",
    }


def test_run_playbook_returns_task_results(run_playbook):
    run = run_playbook(
        {
            "name": "Harness check",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "Say hello", "ansible.builtin.debug": {"msg": "hello {{ who }}"}},
                {"name": "Never runs", "ansible.builtin.debug": {"msg": "x"}, "when": False},
            ],
        },
        extra_vars={"who": "dbarch"},
    ).assert_ok()
    hello = run.task("Say hello")
    assert hello["status"] == "ok" and hello["host"] == "localhost" and hello["play"] == "Harness check"
    assert hello["result"]["msg"] == "hello dbarch"
    assert run.task("Never runs")["status"] == "skipped"
    assert run.stats["localhost"]["ok"] == 1 and run.changed_count() == 0


def test_run_playbook_reports_failures_and_missing_tasks(run_playbook):
    run = run_playbook("""
- name: Failing play
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Fail on purpose
      ansible.builtin.fail:
        msg: expected failure
""")
    assert run.rc != 0
    assert run.task("Fail on purpose")["status"] == "failed"
    assert run.failed()[0]["result"]["msg"] == "expected failure"
    with pytest.raises(KeyError, match="Tasks that ran: \\['Fail on purpose'\\]"):
        run.task("No such task")
    with pytest.raises(AssertionError, match="expected failure"):
        run.assert_ok()


def test_run_playbook_hides_no_log_results(run_playbook):
    run = run_playbook(
        [
            {
                "name": "Secret",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": [
                    {
                        "name": "Set a secret",
                        "ansible.builtin.set_fact": {"token": "tok-123-secret"},
                        "no_log": True,
                    }
                ],
            }
        ]
    ).assert_ok()
    assert "tok-123-secret" not in run.stdout
    assert "censored" in run.task("Set a secret")["result"]


def test_versions_under_test_reads_the_environment(monkeypatch):
    monkeypatch.setenv("DBARCH_PG_VERSIONS", "15,17")
    assert harness.versions_under_test() == [15, 17]
    monkeypatch.setenv("DBARCH_PG_VERSIONS", "fifteen")
    with pytest.raises(ValueError, match="give majors"):
        harness.versions_under_test()


def test_connect_context_keeps_autocommit_and_closes(pg):
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute("ALTER SYSTEM SET work_mem = '5MB'")
        cur.execute("ALTER SYSTEM RESET work_mem")
    assert conn.closed


def test_failed_results_say_failed_like_a_registered_variable(run_playbook):
    run = run_playbook(
        {
            "name": "F",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"name": "Boom", "ansible.builtin.command": "false", "ignore_errors": True}],
        }
    )
    assert run.rc == 0
    record = run.task("Boom")
    assert record["status"] == "failed" and record["ignored"] is True
    assert record["result"]["failed"] is True and record["result"]["rc"] == 1
    assert run.failed() == []


def test_version_selection_defaults_to_15_and_18_within_the_environment(monkeypatch):
    monkeypatch.setenv("DBARCH_PG_VERSIONS", "14 15 16 17 18")
    assert harness.default_versions() == [15, 18]
    assert harness.select_versions((14, 15)) == [14, 15]
    monkeypatch.setenv("DBARCH_PG_VERSIONS", "15")
    assert harness.default_versions() == [15] and harness.select_versions((14, 18)) == []
    # Neither 15 nor 18 selected: version-independent tests run on what is selected.
    monkeypatch.setenv("DBARCH_PG_VERSIONS", "16,17")
    assert harness.default_versions() == [16, 17]


def test_play_and_task_builders_put_the_connection_in_module_defaults(pg, run_playbook):
    built = harness.play(
        harness.task("server_info", "facts", register="facts"),
        harness.task(
            "ansible.builtin.debug", "show", msg="{{ facts.version.major }}", when="facts is defined"
        ),
        pg=pg,
        db="postgres",
    )
    assert built[0]["module_defaults"] == {"group/dbarch.postgresql.all": pg.conn_params}
    assert built[0]["tasks"][0] == {"name": "facts", "dbarch.postgresql.server_info": {}, "register": "facts"}
    run = run_playbook(built).assert_ok()
    assert str(run.task("show")["result"]["msg"]) == str(pg.major)
