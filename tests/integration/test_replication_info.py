"""replication_info on a real primary and its streaming standby, on every major (the slot and
conflict columns differ between majors).

One primary and one standby per major serve the whole file (module scope): the tests leave replay
resumed and the roles they create in place.
"""

import time

import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import status

pytestmark = pytest.mark.all_versions

STANDBY_NAME = "repl_standby"


@pytest.fixture(scope="module")
def pair(pg_major):
    primary = harness.start_cluster(pg_major, name="repl-primary")
    try:
        standby = harness.start_standby(
            primary, "repl-standby", slot="repl_standby", settings={"cluster_name": STANDBY_NAME}
        )
    except BaseException:
        primary.stop()
        raise
    primary.query("CREATE TABLE IF NOT EXISTS ticks (id bigserial PRIMARY KEY, pad text)")
    yield primary, standby
    standby.stop()
    primary.stop()


def read(cluster, **params):
    """status.read through the engine (cheap, for polling); params override the connection."""
    session = pgmod.connect(dict(cluster.conn_params, **params), "tests")
    try:
        return status.read(session)
    finally:
        session.close()


def wait_until(check, what, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.2)


def caught_up(primary, standby):
    """The standby has replayed everything the primary wrote (both sides agree)."""
    (current,) = primary.query("SELECT pg_current_wal_lsn()::text")[0]
    (replayed,) = standby.query("SELECT pg_last_wal_replay_lsn()::text")[0]
    return current == replayed


def info_tasks(primary, standby, login=None, **options):
    """One playbook, replication_info on the primary ("primary") then on the standby ("standby")."""
    plays = []
    for name, cluster in (("primary", primary), ("standby", standby)):
        task = harness.task("replication_info", name, **options)
        if login:
            task["dbarch.postgresql.replication_info"].update(login)
        plays += harness.play(task, pg=cluster, name=name)
    return plays


def run_info(primary, standby, login=None, **options):
    run = harness.run_playbook(info_tasks(primary, standby, login, **options)).assert_ok()
    return run, run.task("primary")["result"], run.task("standby")["result"]


def rules(result, obj=None):
    return sorted({f["rule"] for f in result["findings"] if obj is None or f["object"] == obj})


def test_idle_primary_shows_no_lag_and_missing_expected_standby(pair):
    primary, standby = pair
    primary.query("INSERT INTO ticks (pad) VALUES ('idle')")
    wait_until(lambda: caught_up(primary, standby), "the standby to replay everything")
    # An idle primary may still write a little WAL (a running-transactions record, a checkpoint) that the
    # standby replays within milliseconds: read again, a few times at most, until both sides are idle.
    for _attempt in range(5):
        run, prim, stby = run_info(primary, standby, expected_standbys=[STANDBY_NAME, "ghost_standby"])
        if prim["standbys"][0]["replay_lag_bytes"] == 0 and stby["receiver"]["replay_pending_bytes"] == 0:
            break
        wait_until(lambda: caught_up(primary, standby), "the standby to replay everything")
    assert prim["changed"] is False and stby["changed"] is False
    assert prim["role"] == "primary" and stby["role"] == "standby"
    (row,) = prim["standbys"]
    assert row["application_name"] == STANDBY_NAME and row["client_addr"] == "127.0.0.1"
    assert row["state"] == "streaming" and row["sync_state"] == "async"
    assert row["slot_name"] == "repl_standby"
    for key in ("sent_lsn", "write_lsn", "flush_lsn", "replay_lsn"):
        assert row[key], key
    # Idle: nothing to replay, so no lag in bytes or seconds (however long ago the last commit was).
    assert row["replay_lag_bytes"] == 0 and row["replay_lag_seconds"] == 0
    (slot,) = prim["slots"]
    assert slot["slot_name"] == "repl_standby" and slot["active"] is True and slot["wal_status"] == "reserved"
    assert ("invalidation_reason" in slot) is (primary.major >= 17)
    assert ("conflicting" in slot) is (primary.major >= 16)
    # The one expected standby that is missing, and nothing else.
    assert [(f["rule"], f["object"]) for f in prim["findings"]] == [
        ("REPL-STANDBY-001", "standby ghost_standby")
    ]
    missing = prim["findings"][0]
    assert (
        missing["severity"] == "high"
        and missing["why"]
        and "application_name=ghost_standby" in missing["fix"]
    )
    assert missing["evidence"]["connected"] == [STANDBY_NAME]
    rec = stby["receiver"]
    assert rec["status"] == "streaming" and rec["sender_port"] == primary.port
    assert rec["application_name"] == STANDBY_NAME and rec["slot_name"] == "repl_standby"
    assert rec["replay_delay_seconds"] == 0 and rec["replay_pending_bytes"] == 0
    assert rec["replay_pause_state"] == "not paused" and rec["replay_paused"] is False
    assert "password=********" in rec["upstream"] or "password" not in rec["upstream"]
    assert stby["findings"] == [] and stby["standbys"] == [] and stby["conflicts"] == []
    assert stby["timeline"] == prim["timeline"] == 1
    assert primary.password not in run.stdout + run.stderr


def test_paused_replay_under_writes_is_lag_in_bytes_then_seconds(pair):
    primary, standby = pair
    primary.query("INSERT INTO ticks (pad) VALUES ('before pause')")
    wait_until(lambda: caught_up(primary, standby), "the standby to replay a transaction")
    standby.query("SELECT pg_wal_replay_pause()")
    try:
        wait_until(
            lambda: standby.query("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused",
            "replay to pause",
        )
        limits = dict(lag_warning_bytes=65536, lag_warning_seconds=1, lag_critical_seconds=3600)

        def lagging():
            # Writes go on while replay is paused: about 200 kB of WAL each time.
            primary.query("INSERT INTO ticks (pad) SELECT repeat('x', 1000) FROM generate_series(1, 150)")
            prim = read(primary)["standbys"]
            rec = read(standby)["receiver"]
            return (
                prim
                and (prim[0]["replay_lag_seconds"] or 0) >= 1
                and (rec["replay_delay_seconds"] or 0) >= 1
                and rec["replay_pending_bytes"] >= 65536
            )

        wait_until(lagging, "a second of replay lag on both sides")
        _run, prim, stby = run_info(primary, standby, **limits)
        obj = "standby %s (127.0.0.1)" % STANDBY_NAME
        assert rules(prim, obj) == ["REPL-LAG-001", "REPL-LAG-002"]
        by_rule = {f["rule"]: f for f in prim["findings"]}
        assert by_rule["REPL-LAG-002"]["severity"] == "medium"
        assert by_rule["REPL-LAG-002"]["evidence"]["lag_bytes"] >= 65536
        assert by_rule["REPL-LAG-001"]["evidence"]["lag_seconds"] >= 1
        (row,) = prim["standbys"]
        # Received and flushed, not replayed: the gap is between flush and replay.
        assert row["unreplayed_bytes"] >= 65536 and row["replay_lag_bytes"] >= row["unreplayed_bytes"]
        assert rules(stby) == ["REPL-LAG-001", "REPL-LAG-002", "REPL-REPLAY-001"]
        paused = [f for f in stby["findings"] if f["rule"] == "REPL-REPLAY-001"][0]
        assert "pg_wal_replay_resume()" in paused["fix"]
        assert stby["receiver"]["replay_paused"] is True and stby["receiver"]["replay_delay_seconds"] >= 1
    finally:
        standby.query("SELECT pg_wal_replay_resume()")
    wait_until(lambda: caught_up(primary, standby), "the standby to catch up after resuming")


def test_pg_monitor_role_reads_everything_and_a_plain_role_is_told_what_it_misses(pair):
    primary, standby = pair
    primary.query(
        "DO $$ BEGIN CREATE ROLE repl_monitor LOGIN PASSWORD 'mon-secret-1' IN ROLE pg_monitor; "
        "CREATE ROLE repl_plain LOGIN PASSWORD 'plain-secret-1'; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    wait_until(lambda: caught_up(primary, standby), "the roles to reach the standby")
    monitor = dict(login_user="repl_monitor", login_password="mon-secret-1")
    run, prim, stby = run_info(primary, standby, login=monitor)
    expected = dict(superuser=False, read_all_stats=True, read_all_settings=True, promote=False)
    assert prim["privileges"] == expected
    assert prim["checks_skipped"] == [] and stby["checks_skipped"] == []
    (row,) = prim["standbys"]
    assert row["replay_lsn"] and row["client_addr"] == "127.0.0.1" and row["replay_lag_bytes"] is not None
    assert stby["receiver"]["sender_host"] == "127.0.0.1" and stby["receiver"]["upstream"]
    assert stby["receiver"]["settings"]["max_standby_streaming_delay"]
    assert "mon-secret-1" not in run.stdout + run.stderr
    plain = dict(login_user="repl_plain", login_password="plain-secret-1")
    _run, prim, stby = run_info(primary, standby, login=plain)
    assert [c["check"] for c in prim["checks_skipped"]] == ["replication details"]
    assert "pg_monitor" in prim["checks_skipped"][0]["reason"]
    assert prim["standbys"][0]["replay_lsn"] is None
    assert "replication details" in [c["check"] for c in stby["checks_skipped"]]
