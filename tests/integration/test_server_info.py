"""server_info against real clusters of every supported major version."""

import os
import time

import psycopg2
import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc


@pytest.mark.all_versions
def test_facts_on_a_primary(pg, run_playbook):
    res = run_playbook(
        [
            dict(
                hosts="localhost",
                gather_facts=False,
                tasks=[
                    dict(
                        name="facts",
                        **{"dbarch.postgresql.server_info": dict(pg.conn_params, settings=["jit"])},
                    ),
                ],
            )
        ]
    )
    assert res.rc == 0, res.stdout
    r = res.task("facts")
    assert r["status"] == "ok" and r["result"]["changed"] is False
    facts = r["result"]
    assert facts["version"]["major"] == pg.major
    assert facts["role"] == "primary" and facts["in_recovery"] is False
    assert "pg_stat_statements" in facts["extensions"]["preloaded"]
    assert "pg_stat_statements" in facts["extensions"]["available"]
    assert "jit" in facts["settings"] and "shared_buffers" in facts["settings"]
    assert facts["privileges"]["superuser"] is True
    assert any(d["name"] == "postgres" and d["size_bytes"] > 0 for d in facts["databases"])
    assert facts["queries"], "the module returns the SQL it ran"
    assert pg.password not in res.stdout


def test_pending_restart_is_reported(pg, run_playbook):
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute("ALTER SYSTEM SET max_connections = 123")
        cur.execute("SELECT pg_reload_conf()")
    try:
        res = run_playbook(
            [
                dict(
                    hosts="localhost",
                    gather_facts=False,
                    tasks=[
                        dict(name="facts", **{"dbarch.postgresql.server_info": pg.conn_params}),
                    ],
                )
            ]
        )
        assert "max_connections" in res.task("facts")["result"]["pending_restart"]
    finally:
        with pg.connect() as conn, conn.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET max_connections")
            cur.execute("SELECT pg_reload_conf()")


def test_least_privilege_role_reports_skipped_checks(pg, run_playbook):
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS dbarch_plain")
        cur.execute("CREATE ROLE dbarch_plain LOGIN PASSWORD 'plain-pw-1'")
    params = dict(pg.conn_params, login_user="dbarch_plain", login_password="plain-pw-1")
    res = run_playbook(
        [
            dict(
                hosts="localhost",
                gather_facts=False,
                tasks=[
                    dict(name="facts", **{"dbarch.postgresql.server_info": params}),
                ],
            )
        ]
    )
    facts = res.task("facts")["result"]
    assert res.rc == 0, res.stdout
    assert facts["privileges"] == dict(superuser=False, read_all_settings=False, read_all_stats=False)
    assert any(s["check"] == "replication details" for s in facts["checks_skipped"])


def test_module_defaults_group_sets_connection_for_every_module(pg, run_playbook, tmp_path):
    play = dict(
        hosts="localhost",
        gather_facts=False,
        module_defaults={"group/dbarch.postgresql.all": pg.conn_params},
        tasks=[
            dict(name="facts", **{"dbarch.postgresql.server_info": {}}),
            dict(name="catalog", **{"dbarch.postgresql.catalog_info": {}}),
            dict(
                name="report",
                **{"dbarch.postgresql.report": dict(name="s", dest=str(tmp_path), summary={"k": "v"})},
            ),
        ],
    )
    res = run_playbook([play])
    assert res.rc == 0, res.stdout
    assert res.task("facts")["result"]["version"]["major"] == pg.major
    assert res.task("catalog")["result"]["query_count"] > 0
    assert (tmp_path / "localhost" / "s.md").exists()


def test_facts_on_a_streaming_standby(pg, run_playbook, tmp_path):
    """A physical standby of the fixture's primary: role, WAL receiver, replay delay."""
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS standby_probe (id int)")
        cur.execute("INSERT INTO standby_probe VALUES (1)")
    folder = os.path.join(os.path.dirname(os.path.dirname(pg.data_dir)), "standby-for-facts")
    standby = lc.LocalCluster(os.path.join(folder, "data"), port=lc.free_port(), bindir=pg.bindir)
    try:
        standby.create_replica(
            dict(host="127.0.0.1", port=pg.port, user=pg.user, password=pg.password), "facts_standby"
        )
        standby.start(timeout=120)
        # Replay one commit after the standby started, so it has a last replayed timestamp.
        with pg.connect() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO standby_probe VALUES (2)")
            cur.execute("SELECT pg_current_wal_lsn()::text")
            target = cur.fetchone()[0]
        _wait_for_replay(pg, standby.port, target)
        res = run_playbook(
            [
                dict(
                    hosts="localhost",
                    gather_facts=False,
                    tasks=[
                        dict(
                            name="facts",
                            **{
                                "dbarch.postgresql.server_info": dict(pg.conn_params, login_port=standby.port)
                            },
                        ),
                        dict(name="primary", **{"dbarch.postgresql.server_info": pg.conn_params}),
                    ],
                )
            ]
        )
        assert res.rc == 0, res.stdout
        facts = res.task("facts")["result"]
        assert facts["role"] == "standby" and facts["in_recovery"] is True
        assert facts["replication"]["wal_receiver"]["slot_name"] == "facts_standby"
        assert isinstance(facts["replay_delay_seconds"], (int, float))
        primary = res.task("primary")["result"]
        assert facts["system_identifier"] == primary["system_identifier"]
        assert any(s["slot_name"] == "facts_standby" for s in primary["replication"]["slots"])
    finally:
        standby.destroy()
        with pg.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = 'facts_standby' AND NOT active"
            )


def _wait_for_replay(pg, port, lsn, seconds=60):
    deadline = time.monotonic() + seconds
    conn = psycopg2.connect(
        host="127.0.0.1", port=port, user=pg.user, password=pg.password, dbname="postgres"
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            while True:
                cur.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))
                if cur.fetchone()[0]:
                    return
                assert time.monotonic() < deadline, "standby did not replay %s within %ss" % (lsn, seconds)
                time.sleep(0.2)
    finally:
        conn.close()
