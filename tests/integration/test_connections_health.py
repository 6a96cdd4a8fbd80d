"""connections_info, connections and health_info on a real primary with a streaming standby, on 15
and 18 (16+ adds reserved_connections, read through versions.py; the flows are the same).

The primary has max_connections 23 with 3 slots reserved for superusers (20 usable): the ``crowd``
fixture holds 15 idle psycopg2 sessions, one idle in transaction holding a row lock and one blocked
on that lock; with the module's own session that is 18 of 20 slots, 90 %: critical. The standby's
WAL sender is on the primary too, and must never be counted nor terminated.
"""

import json
import os
import select
import time

import psycopg2
import psycopg2.extensions
import pytest

import harness

USABLE = 20
SETTINGS = {"max_connections": 23, "superuser_reserved_connections": 3}
IDLE = 15


@pytest.fixture(scope="module")
def pair(pg_major):
    primary = harness.start_cluster(pg_major, name="conn-primary", settings=SETTINGS)
    try:
        standby = harness.start_standby(primary, "conn-standby", slot="conn_standby", settings=SETTINGS)
    except BaseException:
        primary.stop()
        raise
    primary.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    primary.query("CREATE TABLE IF NOT EXISTS ticks (id bigserial PRIMARY KEY, pad text)")
    primary.query("INSERT INTO ticks (pad) VALUES ('lock me')")
    yield primary, standby
    standby.stop()
    primary.stop()


def wait_until(check, what, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.2)


def _open(cluster, application, **kwargs):
    return psycopg2.connect(application_name=application, connect_timeout=10, **cluster.dsn(), **kwargs)


def _pid(conn):
    return conn.get_backend_pid()


@pytest.fixture
def crowd(pair):
    """15 idle sessions (application crowd), one idle in transaction holding a row lock (holder),
    one waiting on that lock (waiter): 17 client sessions besides the module's own."""
    primary, _standby = pair
    idle = [_open(primary, "crowd") for _i in range(IDLE)]
    for conn in idle:
        conn.autocommit = True
    holder = _open(primary, "holder")
    with holder.cursor() as cur:
        cur.execute("UPDATE ticks SET pad = 'held' WHERE id = 1")
    waiter = _open(primary, "waiter", async_=1)
    _wait(waiter)
    wcur = waiter.cursor()
    wcur.execute("UPDATE ticks SET pad = 'waiting' WHERE id = 1")
    wait_until(
        lambda: primary.query(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = 'waiter' AND wait_event_type = 'Lock'"
        ),
        "the waiter to wait on the holder's lock",
    )
    # Idle for at least a second by the server's clock (min_idle_seconds: 1 below).
    time.sleep(1.1)
    yield dict(idle=idle, holder=holder, waiter=waiter)
    for conn in idle + [holder]:
        conn.close()
    waiter.close()
    wait_until(
        lambda: (
            primary.query(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name IN ('crowd', 'holder', 'waiter')"
            )[0][0]
            == 0
        ),
        "the crowd to leave",
    )


def _wait(conn):
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        if state == psycopg2.extensions.POLL_READ:
            select.select([conn.fileno()], [], [], 10)
        else:
            select.select([], [conn.fileno()], [], 10)


def run_module(cluster, module, check=False, **options):
    task = harness.task(module, "probe", register="out", **options)
    run = harness.run_playbook(harness.play(task, pg=cluster), check=check).assert_ok()
    return run.task("probe")["result"]


def test_connections_info_reports_90_percent_critical_with_the_blocking_chain(pair, crowd):
    primary, _standby = pair
    info = run_module(primary, "connections_info")
    assert info["changed"] is False
    assert info["max_connections"] == 23 and info["usable"] == USABLE
    assert info["reserved"] == 3
    expected_reserved = {"superuser_reserved_connections": 3}
    if primary.major >= 16:
        expected_reserved["reserved_connections"] = 0
    assert info["reserved_by_setting"] == expected_reserved
    assert info["total"] == IDLE + 3 and info["utilization_percent"] == 90.0
    assert info["by_application"]["crowd"] == IDLE
    assert info["by_state"]["idle"] == IDLE and info["by_state"]["idle in transaction"] == 1
    assert info["other_backends"].get("walsender") == 1
    crowd_pids = {_pid(c) for c in crowd["idle"]}
    idle_rows = [s for s in info["sessions"] if s["pid"] in crowd_pids]
    assert len(idle_rows) == IDLE and all(s["idle_seconds"] >= 1 for s in idle_rows)
    assert info["idle_in_transaction"]["count"] == 1
    assert info["oldest_transaction"]["pid"] == _pid(crowd["holder"])
    (block,) = info["blocking"]
    assert block["pid"] == _pid(crowd["waiter"]) and block["blocked_by"] == [_pid(crowd["holder"])]
    assert [r["pid"] for r in block["root_blockers"]] == [_pid(crowd["holder"])]
    by_rule = {f["rule"]: f for f in info["findings"]}
    assert by_rule["CONN-UTIL-001"]["severity"] == "high"
    assert "pg_terminate_backend" in by_rule["CONN-UTIL-001"]["fix"]
    assert "CONN-BLOCK-001" in by_rule

    health = run_module(primary, "health_info")
    conn = health["panels"]["connections"]
    assert conn["status"] == "critical" and conn["value"] == 90.0 and conn["source"] == "pg_stat_activity"
    assert health["status"] == "critical"
    assert {f["rule"]: f["severity"] for f in health["findings"]}["HEALTH-CONN-001"] == "high"


def test_connections_check_mode_lists_exactly_the_idle_sessions_and_terminates_none(pair, crowd):
    primary, _standby = pair
    crowd_pids = {_pid(c) for c in crowd["idle"]}
    out = run_module(primary, "connections", check=True, states=["idle"], min_idle_seconds=1)
    assert out["changed"] is True and out["terminated"] == []
    assert {s["pid"] for s in out["selected"]} == crowd_pids == {s["pid"] for s in out["matched"]}
    assert all(s["application_name"] == "crowd" and s["idle_seconds"] >= 1 for s in out["selected"])
    # A filter that would match the module's own session and the WAL sender (both run as the
    # superuser): only the client sessions of the crowd match.
    every = run_module(primary, "connections", check=True, users=[primary.user])
    assert {s["pid"] for s in every["matched"]} == crowd_pids | {_pid(crowd["holder"]), _pid(crowd["waiter"])}
    for conn in crowd["idle"]:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")


def test_connections_terminates_exactly_the_idle_sessions_then_nothing(pair, crowd):
    primary, standby = pair
    crowd_pids = {_pid(c) for c in crowd["idle"]}
    out = run_module(primary, "connections", states=["idle"], min_idle_seconds=1, max_terminate=IDLE)
    assert out["changed"] is True and out["capped"] is False
    assert {s["pid"] for s in out["terminated"]} == crowd_pids
    assert all(s["user"] == primary.user and s["application_name"] == "crowd" for s in out["terminated"])
    wait_until(
        lambda: not primary.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'crowd'"),
        "the terminated sessions to end",
    )
    # The transaction, the waiter and the standby's WAL sender are still there.
    left = {r[0] for r in primary.query("SELECT application_name FROM pg_stat_activity")}
    assert {"holder", "waiter"} <= left
    assert primary.query("SELECT count(*) FROM pg_stat_replication")[0][0] == 1
    with crowd["holder"].cursor() as cur:
        cur.execute("SELECT 1")
    again = run_module(primary, "connections", states=["idle"], min_idle_seconds=1)
    assert again["changed"] is False and again["matched"] == [] and again["terminated"] == []


def test_connections_needs_a_filter(pair):
    primary, _standby = pair
    task = harness.task("connections", "probe", ignore_errors=True)
    run = harness.run_playbook(harness.play(task, pg=primary))
    result = run.task("probe")["result"]
    assert result["failed"] and "No filter given" in result["msg"]


def _caught_up(primary, standby):
    (current,) = primary.query("SELECT pg_current_wal_lsn()::text")[0]
    (replayed,) = standby.query("SELECT pg_last_wal_replay_lsn()::text")[0]
    return current == replayed


def test_health_panels_on_an_idle_primary_and_its_standby(pair):
    primary, standby = pair
    primary.query("SELECT count(*) FROM ticks")
    wait_until(lambda: _caught_up(primary, standby), "the standby to catch up")
    health = run_module(primary, "health_info", thresholds={"disk": {"warning": 0, "critical": 100}})
    lag = health["panels"]["replication_lag"]
    assert lag["status"] == "ok" and lag["value"] == 0 and lag["source"] == "pg_stat_replication.replay_lag"
    assert [s["status"] for s in lag["standbys"]] == ["ok"]
    p95 = health["panels"]["query_latency_p95"]
    assert p95["source"] == "estimate" and p95["exact"] is False and p95["value"] > 0
    assert p95["warning"] == 100 and p95["critical"] == 500
    disk = health["panels"]["disk"]
    # The module runs on the cluster's host: both folders are measured (any share is >= 0 %).
    assert disk["source"] == "os.statvfs" and disk["status"] == "warning"
    assert [f["folder"] for f in disk["filesystems"]] == ["data", "wal"]
    assert 0 < disk["value"] < 100
    on_standby = run_module(standby, "health_info", panels=["replication_lag"])
    assert list(on_standby["panels"]) == ["replication_lag"]
    assert on_standby["panels"]["replication_lag"]["status"] == "ok"


def test_health_lag_panel_fires_while_replay_is_paused_under_writes(pair):
    primary, standby = pair
    wait_until(lambda: _caught_up(primary, standby), "the standby to catch up")
    standby.query("SELECT pg_wal_replay_pause()")
    try:
        wait_until(
            lambda: standby.query("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused",
            "replay to pause",
        )

        def lagging():
            primary.query("INSERT INTO ticks (pad) SELECT repeat('x', 1000) FROM generate_series(1, 150)")
            row = primary.query("SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication")
            return row and (row[0][0] or 0) >= 1

        wait_until(lagging, "a second of replay lag")
        limits = {"replication_lag": {"warning": 1, "critical": 3600}}
        on_primary = run_module(primary, "health_info", thresholds=limits, panels=["replication_lag"])
        lag = on_primary["panels"]["replication_lag"]
        assert lag["status"] == "warning" and lag["value"] >= 1
        assert {f["rule"]: f["severity"] for f in on_primary["findings"]} == {"HEALTH-LAG-001": "medium"}
        strict = run_module(
            primary, "health_info", thresholds={"replication_lag": {"warning": 0.5, "critical": 1}}
        )
        assert strict["panels"]["replication_lag"]["status"] == "critical"
        on_standby = run_module(standby, "health_info", thresholds=limits, panels=["replication_lag"])
        assert on_standby["panels"]["replication_lag"]["status"] == "warning"
    finally:
        standby.query("SELECT pg_wal_replay_resume()")
    wait_until(lambda: _caught_up(primary, standby), "the standby to catch up after resuming")


def runbook(cluster, check=False, **extra):
    """playbooks/runbook_connections.yml on localhost against ``cluster`` (as run_site_playbook)."""
    extra = dict(
        extra,
        dbarch_target="localhost",
        dbarch_login_host=cluster.host,
        dbarch_login_port=cluster.port,
        dbarch_login_user=cluster.user,
        dbarch_login_password=cluster.password,
    )
    playbook = harness.REPO_ROOT / "playbooks" / "runbook_connections.yml"
    return harness.run_playbook(playbook, extra_vars=extra, check=check).assert_ok()


def _report(dest):
    with open(os.path.join(dest, "localhost", "connections.json"), encoding="utf-8") as fh:
        return json.load(fh)


def test_runbook_check_mode_lists_the_idle_sessions_then_terminates_exactly_those(pair, crowd, tmp_path):
    primary, _standby = pair
    crowd_pids = sorted(_pid(c) for c in crowd["idle"])
    dest = str(tmp_path / "reports")
    base = dict(connections_report_dest=dest, connections_report_terminate=True)
    options = dict(base, connections_report_idle_seconds=1)
    day = dict(base, connections_report_idle_seconds=86400)
    # Capacity first: nobody idle for a day, so terminating frees nothing and the report says so.
    runbook(primary, **day)
    doc = _report(dest)
    assert doc["summary"]["issue"] == "capacity" and "PgBouncer" in doc["summary"]["advice"]
    assert "max_connections" in doc["summary"]["advice"] and doc["summary"]["pending_restart"] == []
    # With a max_connections to write (check mode: nothing written), the report says it needs a restart.
    runbook(primary, check=True, connections_report_max_connections=40, **day)
    doc = _report(dest)
    assert doc["summary"]["issue"] == "capacity" and doc["summary"]["pending_restart"] == ["max_connections"]
    # Nothing written: the last max_connections of the configuration files is still 23.
    last = "SELECT setting FROM pg_file_settings WHERE name = 'max_connections' ORDER BY seqno DESC LIMIT 1"
    assert primary.query(last)[0][0] == "23"
    # Check mode: the report lists who would be terminated; nobody is.
    runbook(primary, check=True, **options)
    doc = _report(dest)
    assert sorted(doc["summary"]["would_terminate"]) == crowd_pids and doc["summary"]["terminated"] == []
    assert len(doc["summary"]["sessions_selected"]) == IDLE
    assert all("@postgres (crowd), idle " in line for line in doc["summary"]["sessions_selected"])
    assert "\n" not in doc["summary"]["advice"] and "  " not in doc["summary"]["advice"]
    assert doc["summary"]["issue"] == "idle sessions" and doc["summary"]["utilization_percent"] == 90.0
    assert doc["summary"]["panels"]["connections"] == "critical"
    assert {"CONN-UTIL-001", "HEALTH-CONN-001"} <= {f["rule"] for f in doc["findings"]}
    assert len(primary.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'crowd'")) == IDLE
    # For real: exactly the idle ones.
    runbook(primary, **options)
    doc = _report(dest)
    assert sorted(doc["summary"]["terminated"]) == crowd_pids
    wait_until(
        lambda: not primary.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'crowd'"),
        "the terminated sessions to end",
    )
    assert primary.query("SELECT count(*) FROM pg_stat_replication")[0][0] == 1
    with crowd["holder"].cursor() as cur:
        cur.execute("SELECT 1")
