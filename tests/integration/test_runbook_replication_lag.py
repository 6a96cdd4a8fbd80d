"""playbooks/runbook_replication_lag.yml through ansible-playbook over an inventory of a primary, a
standby whose replay is paused under writes, and a replica that is down. The diagnosis itself is
unit-tested and replication_info runs on every major in test_replication_info.py: this flow runs on 15.
"""

import json
import os
import sys
import time

import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

PLAYBOOK = harness.REPO_ROOT / "playbooks" / "runbook_replication_lag.yml"

pytestmark = pytest.mark.pg_versions(15)


@pytest.fixture
def pair(pg_major, workdir):
    primary = harness.start_cluster(pg_major, workdir=workdir, name="lag-primary")
    standby = harness.start_standby(
        primary, "lag-standby", slot="lag_standby", settings={"cluster_name": "lag_standby"}
    )
    yield primary, standby
    standby.stop()
    primary.stop()


def host(cluster, port=None):
    return dict(
        ansible_connection="local",
        ansible_python_interpreter=sys.executable,
        dbarch_login_host=cluster.host,
        dbarch_login_port=port or cluster.port,
        dbarch_login_user=cluster.user,
        dbarch_login_password=cluster.password,
        dbarch_login_db="postgres",
    )


def wait_until(check, what, seconds=60):
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.2)


def report(dest, host_name):
    with open(os.path.join(dest, host_name, "replication_lag.json"), encoding="utf-8") as fh:
        return json.load(fh)


def test_runbook_reports_paused_replay_with_evidence_and_remedies(pair, tmp_path):
    primary, standby = pair
    primary.query("CREATE TABLE ticks (id bigserial PRIMARY KEY, pad text)")
    wait_until(
        lambda: standby.query("SELECT count(*) FROM pg_class WHERE relname = 'ticks'") == [(1,)],
        "the table to replay",
    )
    standby.query("SELECT pg_wal_replay_pause()")

    def lagging():
        primary.query("INSERT INTO ticks (pad) SELECT repeat('x', 1000) FROM generate_series(1, 150)")
        (seconds,) = primary.query(
            "SELECT coalesce(extract(epoch FROM replay_lag), 0) FROM pg_stat_replication"
        )[0]
        return seconds >= 1

    wait_until(lagging, "a second of replay lag")
    inventory = dict(
        all=dict(
            children=dict(
                primary=dict(hosts={"pg-primary": host(primary)}),
                # pg-gone: an inventory replica whose server is down (nothing listens on its port).
                replicas=dict(
                    hosts={"pg-standby": host(standby), "pg-gone": host(standby, port=lc.free_port())}
                ),
            )
        )
    )
    dest = str(tmp_path / "reports")
    run = harness.run_playbook(
        PLAYBOOK,
        inventory=inventory,
        extra_vars=dict(
            replication_report_dest=dest,
            replication_report_lag_warning_bytes=65536,
            replication_report_lag_warning_seconds=1,
            replication_report_expected_standbys=["lag_standby"],
        ),
    )
    run.assert_ok()
    assert primary.password not in run.stdout + run.stderr

    stby = report(dest, "pg-standby")
    summary = stby["summary"]
    assert summary["role"] == "standby" and summary["primary"] == "pg-primary"
    assert summary["matched_by"] == "slot lag_standby" and summary["replay_pause_state"] == "paused"
    assert summary["level"] == "warning" and summary["lag_bytes"] >= 65536 and summary["lag_seconds"] >= 1
    assert summary["apply_bytes"] >= 65536 and summary["transit_bytes"] == 0
    assert summary["causes"] == ["Replay paused"]
    found = {f["rule"]: f for f in stby["findings"]}
    assert {"REPL-CAUSE-002", "REPL-REPLAY-001", "REPL-LAG-002"} <= set(found)
    cause = found["REPL-CAUSE-002"]
    assert (
        cause["evidence"]["replay_pause_state"] == "paused"
        and cause["evidence"]["replay_pending_bytes"] >= 65536
    )
    assert "\nSELECT pg_wal_replay_resume();\n-- Long term:" in cause["fix"]
    with open(os.path.join(dest, "pg-standby", "replication_lag.md"), encoding="utf-8") as fh:
        markdown = fh.read()
    assert "# Replication lag: pg-standby (standby)" in markdown
    assert "### REPL-CAUSE-002: standby pg-standby" in markdown and "pg_wal_replay_resume()" in markdown

    prim = report(dest, "pg-primary")
    assert prim["summary"]["role"] == "primary" and prim["summary"]["standbys_connected"] == ["lag_standby"]
    assert prim["summary"]["lag_by_standby"]["pg-standby"].endswith("warning")
    assert "lag_standby" in prim["summary"]["slots"]
    assert {f["rule"] for f in prim["findings"]} >= {"REPL-LAG-001", "REPL-LAG-002"}
    assert "REPL-STANDBY-001" not in {f["rule"] for f in prim["findings"]}

    gone = report(dest, "pg-gone")
    assert gone["summary"]["role"] == "unknown" and "Cannot connect" in gone["summary"]["error"]
    assert [f["rule"] for f in gone["findings"]] == ["REPL-CAUSE-008"]
    standby.query("SELECT pg_wal_replay_resume()")
