"""promote on a real primary with two streaming standbys, on every major (recovery functions,
pg_promote and timelines per major).

One primary and two standbys per major (module scope). The first tests promote nothing (guards,
check mode); the last one stops the primary and promotes standby A for real.
"""

import time

import pytest

import harness

pytestmark = pytest.mark.all_versions


@pytest.fixture(scope="module")
def trio(pg_major):
    primary = harness.start_cluster(pg_major, name="promote-primary")
    standbys = []
    try:
        for name in ("promote_a", "promote_b"):
            standbys.append(
                harness.start_standby(
                    primary, name.replace("_", "-"), slot=name, settings={"cluster_name": name}
                )
            )
    except BaseException:
        for cluster in standbys + [primary]:
            cluster.stop()
        raise
    primary.query("CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, note text)")
    yield primary, standbys[0], standbys[1]
    for cluster in standbys + [primary]:
        cluster.stop()


def server(cluster, **extra):
    """A candidates/old_primary entry; user and password come from the module's connection."""
    return dict(host=cluster.host, port=cluster.port, **extra)


def wait_until(check, what, seconds=60):
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.2)


def lsn(cluster, expression):
    return cluster.query("SELECT pg_wal_lsn_diff(%s, '0/0')::bigint" % expression)[0][0]


def replayed_everything(primary, *standbys):
    current = lsn(primary, "pg_current_wal_lsn()")
    return all(lsn(s, "pg_last_wal_replay_lsn()") == current for s in standbys)


def in_recovery(cluster):
    return cluster.query("SELECT pg_is_in_recovery()")[0][0]


def promote(target, check=False, **options):
    """Run promote on ``target``; returns (run, the task's record)."""
    task = harness.task("promote", "promote", ignore_errors=True, check_mode=check, **options)
    run = harness.run_playbook(harness.play(task, pg=target))
    return run, run.task("promote")


def test_old_primary_up_refuses_and_force_overrides_only_that_in_check_mode(trio):
    primary, a, b = trio
    primary.query("INSERT INTO orders (note) VALUES ('first')")
    wait_until(lambda: replayed_everything(primary, a, b), "both standbys to replay everything")
    old = server(primary, user=primary.user, password=primary.password)
    # No candidates here: with the primary up, idle-time WAL (a running-transactions record) may reach
    # one standby a moment before the other. The candidates guard is the next test's.
    run, rec = promote(a, old_primary=old)
    assert rec["status"] == "failed"
    result = rec["result"]
    assert "old_primary guard" in result["msg"] and "force: true" in result["msg"]
    assert result["guard"] == "old_primary"
    assert result["guards"]["old_primary"]["verdict"] == "refused"
    assert result["guards"]["old_primary"]["in_recovery"] is False
    assert result["guards"]["candidates"] == []
    assert in_recovery(a)
    # force passes the old-primary guard (and only it: see the next test); check mode promotes nothing.
    run, rec = promote(a, check=True, old_primary=old, force=True)
    assert rec["status"] == "changed", rec["result"]
    result = rec["result"]
    assert result["promoted"] is False and result["msg"].startswith("would promote")
    assert result["guards"]["old_primary"]["verdict"] == "overridden (force)"
    assert result["guards"]["replay"]["verdict"] == "not waited (check mode)"
    assert in_recovery(a) and not in_recovery(primary)
    assert primary.password not in run.stdout + run.stderr


def test_candidate_ahead_refuses_even_with_force(trio):
    primary, a, b = trio
    wait_until(lambda: replayed_everything(primary, a, b), "both standbys to replay everything")
    b.query("SELECT pg_wal_replay_pause()")
    try:
        wait_until(lambda: b.query("SELECT pg_get_wal_replay_pause_state()")[0][0] == "paused", "B to pause")
        primary.query("INSERT INTO orders (note) SELECT 'while B is paused' FROM generate_series(1, 1000)")
        wait_until(lambda: replayed_everything(primary, a), "A to replay the new orders")
        wait_until(
            lambda: lsn(b, "pg_last_wal_receive_lsn()") == lsn(a, "pg_last_wal_receive_lsn()"),
            "B to receive as much as A",
        )
        old = server(primary)
        # B received as much as A but replayed less: A is ahead of it.
        _run, rec = promote(b, check=True, candidates=[server(a)], old_primary=old, force=True)
        assert rec["status"] == "failed"
        result = rec["result"]
        assert result["guard"] == "candidates" and "candidates guard" in result["msg"]
        assert "has replayed WAL up to" in result["msg"] and "allow_behind: true" in result["msg"]
        (seen,) = result["guards"]["candidates"]
        assert seen["verdict"] == "refused" and seen["compared"] == "ahead" and seen["status"] == "reachable"
        assert seen["replay_lsn"] and seen["receive_lsn"]
        assert "old_primary" not in result["guards"], "the old primary is checked after the candidates"
        # A, the most advanced, passes with B behind it. (The primary is up: idle-time WAL may reach B's
        # receiver a moment before A's, putting B ahead for that moment; then ask again.)
        for _attempt in range(5):
            _run, rec = promote(a, check=True, candidates=[server(b)], old_primary=old, force=True)
            if rec["status"] != "failed" or rec["result"].get("guard") != "candidates":
                break
            wait_until(lambda: replayed_everything(primary, a), "A to replay everything")
        assert rec["status"] == "changed", rec["result"]
        assert rec["result"]["guards"]["candidates"][0]["verdict"] == "ok (behind the target)"
        # allow_behind lets B past the candidates, but its paused replay would never finish.
        _run, rec = promote(
            b, check=True, candidates=[server(a)], old_primary=old, force=True, allow_behind=True
        )
        assert rec["status"] == "failed"
        assert rec["result"]["guard"] == "replay" and "pg_wal_replay_resume()" in rec["result"]["msg"]
        assert rec["result"]["guards"]["candidates"][0]["verdict"] == "overridden (allow_behind)"
    finally:
        b.query("SELECT pg_wal_replay_resume()")
    assert in_recovery(a) and in_recovery(b)


def test_promote_with_the_old_primary_down_then_nothing_to_do(trio):
    primary, a, b = trio
    primary.query("INSERT INTO orders (note) VALUES ('last before the failover')")
    wait_until(lambda: replayed_everything(primary, a, b), "both standbys to replay everything")
    replayed = a.query("SELECT pg_last_wal_replay_lsn()::text")[0][0]
    primary.cluster.stop(mode="fast")
    options = dict(candidates=[server(b)], old_primary=server(primary), wait_timeout=60)
    _run, rec = promote(a, **options)
    assert rec["status"] == "changed", rec["result"]
    result = rec["result"]
    assert result["promoted"] is True and result["timeline"] == 2
    assert result["guards"]["old_primary"]["status"].startswith("unreachable: ")
    assert result["guards"]["old_primary"]["verdict"] == "ok (does not accept connections)"
    # After the primary stopped, B may have received its shutdown checkpoint too: equal or behind.
    assert result["guards"]["candidates"][0]["verdict"].startswith("ok (")
    assert result["guards"]["promote"] == dict(
        timeline_before=1, timeline_after=2, waited_replay=result["guards"]["promote"]["waited_replay"]
    )
    assert lsn(a, "'%s'" % result["promoted_lsn"]) >= lsn(a, "'%s'" % replayed)
    assert not in_recovery(a)
    a.query("INSERT INTO orders (note) VALUES ('first on the new primary')")
    assert a.query("SELECT count(*) FROM orders WHERE note = 'last before the failover'") == [(1,)]
    _run, again = promote(a, **options)
    assert again["status"] == "ok", again["result"]
    assert again["result"]["promoted"] is False and again["result"]["timeline"] == 2
    assert again["result"]["promoted_lsn"] == result["promoted_lsn"]
    assert "already a primary" in again["result"]["msg"]
    assert again["result"]["guards"]["candidates"][0]["verdict"] == "ok (a standby)"
