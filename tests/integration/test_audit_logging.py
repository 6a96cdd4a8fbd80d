"""dbarch.postgresql.audit_logging and audit_log_info on a real cluster: pgaudit (Debian's build,
PostgreSQL 15) enabled with one restart, idempotent, DDL logged by pgaudit and read back with a
failed login, a superuser session and a client outside the expected networks."""

import psycopg2
import pytest

import harness

pytestmark = pytest.mark.pg_versions(15)


@pytest.fixture
def audited(pg_major, workdir):
    cluster = harness.start_cluster(
        pg_major, workdir=workdir, name="audit", settings={"logging_collector": True}
    )
    yield cluster
    cluster.stop()


def test_pgaudit_enabled_and_read_back(audited, run_playbook):
    pg = audited
    play = harness.play(
        harness.task("audit_logging", "Check", pgaudit=True, restart=True, check_mode=True, diff=True),
        harness.task("audit_logging", "Enable", pgaudit=True, restart=True),
        harness.task("audit_logging", "Again", pgaudit=True, restart=True),
        pg=pg,
    )
    run = run_playbook(play).assert_ok()
    check = run.task("Check")["result"]
    assert check["changed"] and "shared_preload_libraries" in check["changed_settings"]
    assert check["restarted"] is False and check["pgaudit"]["loaded"] is False and check["pgaudit"]["pending"]
    assert "pgaudit" in check["diff"]["after"]
    enable = run.task("Enable")["result"]
    assert enable["restarted"] is True and enable["pgaudit"]["loaded"] is True
    assert (
        "pgaudit.log" in enable["changed_settings"]
        and "CREATE EXTENSION pgaudit" in enable["changed_settings"]
    )
    again = run.task("Again")["result"]
    assert again["changed"] is False and again["restarted"] is False, again
    assert pg.query("SHOW shared_preload_libraries")[0][0] == "pg_stat_statements, pgaudit"
    assert pg.query("SHOW pgaudit.log")[0][0] == "ddl, role"
    assert pg.query("SHOW log_connections")[0][0] == "on"

    # Events: a failed login, DDL, a superuser session (this one).
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(
            host=pg.host, port=pg.port, user="intruder", password="wrong", dbname="postgres"
        ).close()
    pg.query("CREATE TABLE audited_ddl (id int)")
    pg.query("CREATE ROLE audited_role LOGIN PASSWORD 'Never-In-Output-42'")

    run = run_playbook(
        harness.play(
            harness.task("audit_log_info", "Read", since="1h", expected_networks=["10.0.0.0/8"]), pg=pg
        )
    ).assert_ok()
    res = run.task("Read")["result"]
    assert res["format"] == "stderr" and res["entries"] > 0
    assert any(f["role"] == "intruder" and f["address"] == "127.0.0.1" for f in res["failed_logins"]), res
    pgaudit_ddl = [d for d in res["ddl"] if d["source"] == "pgaudit"]
    assert any(d["command"] == "CREATE TABLE" and "audited_ddl" in d["statement"] for d in pgaudit_ddl), res[
        "ddl"
    ]
    assert any(d["command"] == "CREATE ROLE" for d in pgaudit_ddl)
    assert any(s["role"] == "postgres" and s["address"] == "127.0.0.1" for s in res["superuser_sessions"])
    assert any(u["address"] == "127.0.0.1" for u in res["unexpected_connections"])
    assert "Never-In-Output-42" not in run.stdout + str(res)
