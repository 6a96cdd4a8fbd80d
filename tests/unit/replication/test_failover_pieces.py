"""The failover's pieces without a database: the checks of the old primary, the choice of the
standby (replication/failover.py), the primary check's judgement (primary_check.py), the report's
findings (failover_report.py) and a standby's timeline from its pg_wal (backup/wal.py)."""

import itertools
import os
import re

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import PgError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import failover as fo
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import failover_report as fr
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import primary_check as pc

_STARTS = itertools.count()
REFUSED = "Cannot connect to PostgreSQL (host=db1 port=5432 user=postgres db=postgres): Connection refused"
AUTH = 'Cannot connect to PostgreSQL (host=db1 port=5432): password authentication failed for user "postgres"'


def state(receive, replay=None, timeline=1, in_recovery=True):
    return dict(
        in_recovery=in_recovery,
        system_identifier="7000000000000000001",
        postmaster_start_time="2026-01-01 10:%02d:00+00" % (next(_STARTS) % 60),
        receive_lsn=receive,
        replay_lsn=replay or receive,
        timeline=timeline,
        current_lsn=None if in_recovery else receive,
        replay_pause_state="not paused" if in_recovery else None,
    )


def server(name, st):
    return dict(
        name=name, address="%s:5432" % name, reachable=True, answered=True, status="reachable", state=st
    )


def down(name):
    return dict(name=name, address="%s:5432" % name, reachable=False, answered=False, status="unreachable: x")


class Clock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Connect:
    """connect(params) that fails with the scripted errors in turn (None: answers with a session)."""

    def __init__(self, outcomes, st=None):
        self.outcomes = list(outcomes)
        self.calls = 0
        self.st = st

    def __call__(self, params):
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if outcome:
            raise PgError(outcome)
        return FakeSession(self.st)


class FakeSession:
    def __init__(self, st):
        self.st = st

    def fetchone(self, query, params=None, record=True):
        row = dict(self.st)
        row.setdefault("current_walfile", None if self.st["in_recovery"] else "000000010000000000000005")
        row.setdefault("received_tli", self.st["timeline"])
        row.setdefault("checkpoint_timeline", self.st["timeline"])
        row.setdefault("recovery_min_apply_delay", "0")
        return row

    def scalar(self, query, params=None, record=True):
        return {"primary_slot_name": "n2", "data_directory": "/srv/n2"}.get(params[0] if params else None)

    def close(self):
        pass


# -- 1. the old primary ----------------------------------------------------------------------------
def test_down_after_every_check_failed_with_the_interval_between():
    clock = Clock()
    connect = Connect([REFUSED])
    out = fo.confirm_down(
        dict(login_host="db1"), connect, checks=3, interval=2, clock=clock, sleep=clock.sleep
    )
    assert out["down"] is True and connect.calls == 3 and clock.sleeps == [2, 2]
    assert [c["attempt"] for c in out["checks"]] == [1, 2, 3]
    assert all(not c["answered"] and c["status"].startswith("unreachable") for c in out["checks"])


def test_a_server_that_answers_even_refusing_the_login_is_alive_and_stops_the_checks():
    clock = Clock()
    connect = Connect([REFUSED, AUTH])
    out = fo.confirm_down(
        dict(login_host="db1"), connect, checks=3, interval=2, clock=clock, sleep=clock.sleep
    )
    assert out["down"] is False and connect.calls == 2 and len(out["checks"]) == 2
    assert out["checks"][1]["answered"] and "password authentication failed" in out["checks"][1]["status"]
    reason = fo.refusal(dict(out, name="db1"), [], None)
    assert "a server answers at the old primary db1 on check 2" in reason


def test_an_old_primary_that_answers_out_of_recovery_or_in_recovery():
    up = dict(name="db1", down=False, checks=[dict(attempt=1, status="reachable", answered=True)])
    writable = dict(up, state=dict(in_recovery=False, timeline=1, current_lsn="0/5000000"))
    assert "accepts connections and is out of recovery" in fo.refusal(writable, [], None)
    assert "switchover.yml" in fo.refusal(writable, [], None)
    standby = dict(up, state=dict(in_recovery=True, timeline=2))
    assert "failover_old_primary" in fo.refusal(standby, [], None)


def test_checks_must_be_at_least_one():
    with pytest.raises(fo.FailoverError, match="checks=0"):
        fo.check_options(0, 1)
    with pytest.raises(fo.FailoverError, match="check_interval"):
        fo.check_options(1, -1)


# -- 2. the choice ---------------------------------------------------------------------------------
def test_the_most_advanced_standby_is_chosen_newest_timeline_first():
    servers = [
        server("n2", state("0/5000000")),
        server("n3", state("0/6000000")),
        server("n4", state("0/1000000", timeline=2)),
        down("n5"),
    ]
    candidate, ranked = fo.choose(servers)
    assert candidate == "n4"
    assert [s["name"] for s in ranked] == ["n4", "n3", "n2"]
    assert servers[3]["verdict"].startswith("left out (unreachable")


def test_ties_go_to_inventory_order_then_more_replayed():
    servers = [server("n2", state("0/5000000", replay="0/4000000")), server("n3", state("0/5000000"))]
    assert fo.choose(servers)[0] == "n3"
    servers = [server("n2", state("0/5000000")), server("n3", state("0/5000000"))]
    assert fo.choose(servers)[0] == "n2"


def test_excluded_standbys_are_ranked_but_not_chosen():
    servers = [server("n2", state("0/6000000")), server("n3", state("0/5000000"))]
    candidate, ranked = fo.choose(servers, exclude=["n2"])
    assert candidate == "n3" and ranked[0]["verdict"] == "excluded (failover_exclude)"
    assert ranked[1]["verdict"] == "chosen (the most advanced ones are excluded)"
    old = dict(name="n1", down=True, checks=[])
    assert fo.refusal(old, servers, None, exclude=["n2", "n3"]).startswith(
        "every reachable standby is excluded"
    )


def test_a_server_already_out_of_recovery_or_no_standby_refuses():
    old = dict(name="n1", down=True, checks=[])
    servers = [server("n2", state("0/5000000", in_recovery=False)), server("n3", state("0/5000000"))]
    assert "n2 is out of recovery: a primary exists already" in fo.refusal(old, servers, "n3")
    assert fo.refusal(old, [down("n2")], None).startswith("no standby could be read: n2: unreachable")


def test_run_reads_the_standbys_only_once_the_old_primary_is_down():
    clock = Clock()

    def connect(params):
        if params["login_host"] == "n1":
            raise PgError(REFUSED)
        return FakeSession(state("0/5000000" if params["login_host"] == "n2" else "0/4000000"))

    out = fo.run(
        dict(name="n1", login_host="n1"),
        [dict(name="n2", login_host="n2"), dict(name="n3", login_host="n3")],
        connect=connect,
        checks=2,
        interval=1,
        clock=clock,
        sleep=clock.sleep,
    )
    assert out["ready"] and out["candidate"] == "n2" and out["refusal"] is None
    assert out["old_primary"]["down"] and len(out["old_primary"]["checks"]) == 2
    first = out["standbys"][0]
    assert first["slot_name"] == "n2" and first["data_directory"] == "/srv/n2" and first["rank"] == 1
    assert "n1 is down (2 failed checks" in out["msg"] and "the standby to promote is n2" in out["msg"]


def test_upstream_of_a_conninfo():
    assert fo.upstream_of("user=postgres host=db1 port=5433 passfile=/x") == ("db1", 5433)
    assert fo.upstream_of("host=db1") == ("db1", 5432)
    assert fo.upstream_of("") == (None, None)


# -- the primary check -----------------------------------------------------------------------------
def test_standbys_must_stream_and_replay_past_the_marker():
    rows = {
        "n2": dict(application_name="n2", state="streaming", sync_state="async", replay_lsn="0/5000100"),
        "n3": dict(application_name="n3", state="streaming", sync_state="async", replay_lsn="0/5000000"),
        "n4": dict(application_name="n4", state="catchup", sync_state="async", replay_lsn="0/6000000"),
    }
    entries, waiting = pc.judge_standbys(rows, ["n2", "n3", "n4", "n5"], "0/5000100")
    assert entries["n2"]["caught_up"] and waiting == ["n3", "n4", "n5"]
    assert entries["n5"] == dict(state="not connected", caught_up=False)


def test_the_primary_check_refuses_a_standby_and_a_read_only_default():
    class Session:
        target = "db2"

        def __init__(self, row):
            self.row = row

        def fetchone(self, query, params=None, record=True):
            return self.row

    base = dict(synchronous_commit="on", synchronous_standby_names="")
    with pytest.raises(pc.PrimaryCheckError, match="in recovery"):
        pc.run(Session(dict(base, in_recovery=True, default_transaction_read_only="off")))
    with pytest.raises(pc.PrimaryCheckError, match="default_transaction_read_only is on"):
        pc.run(Session(dict(base, in_recovery=False, default_transaction_read_only="on")))
    out = pc.run(Session(dict(base, in_recovery=False, default_transaction_read_only="off")), check_mode=True)
    assert out["write"] is None and "would commit" in out["msg"]


# -- the report's findings ---------------------------------------------------------------------------
def test_findings_of_the_report():
    follow = [dict(host="n3", ok=True), dict(host="n4", ok=False, error="slot in use")]
    found = fr.findings(
        follow,
        routes=["DNS: Route 53 change_resource_record_sets failed"],
        check=dict(failed_check=True, msg="primary check failed on n2: the commit ..."),
        rpo=dict(lost_bytes=4096, old_primary_last_lsn="0/5001000", promoted_lsn="0/5000000"),
        old_primary="n1",
        new_primary="n2",
    )
    assert [f["rule"] for f in found] == [
        "FAILOVER-FOLLOW-001",
        "FAILOVER-ROUTE-001",
        "FAILOVER-CHECK-001",
        "FAILOVER-RPO-001",
    ]
    assert "n4 does not follow the new primary n2: slot in use" in found[0]["message"]
    assert "rejoin_host=n4" in found[0]["fix"]
    assert "4096 bytes of WAL past the promoted LSN 0/5000000" in found[3]["message"]
    for item in found:
        fnd.Finding.from_dict(item)
    unknown = fr.findings([], rpo=dict(lost_bytes="unknown"), old_primary="n1", new_primary="n2")
    assert [f["rule"] for f in unknown] == ["FAILOVER-RPO-002"] and unknown[0]["severity"] == "info"
    assert fr.findings([], rpo=dict(lost_bytes=0), old_primary="n1", new_primary="n2") == []


# -- a standby's timeline from its pg_wal ------------------------------------------------------------
def test_newest_timeline_holding_an_lsn():
    names = [
        "000000010000000000000004",
        "000000020000000000000004",
        "000000020000000000000005",
        "00000002.history",
        "000000030000000000000003.partial",
        "archive_status",
    ]
    assert wal.newest_timeline_holding(names, "0/4031928") == 2
    # The end of segment 4 exactly: the last byte before it is in segment 4.
    assert wal.newest_timeline_holding(names, "0/5000000") == 2
    assert wal.newest_timeline_holding(names, "0/3000100") == 0
    assert wal.newest_timeline_holding(names, None) == 0
    assert wal.newest_timeline_holding(["000000010000000000000001"], 0x1000100, segment_size=1024 * 1024) == 0


def test_docs_list_every_failover_rule():
    docs = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "replication.md")
    with open(docs, encoding="utf-8") as page:
        lines = page.read().splitlines()
    matches = (re.match(r"^\| (FAILOVER-[A-Z]+-\d{3}) \| (.+?) \| (\w+) \|$", line) for line in lines)
    rows = {m.group(1): (m.group(2), m.group(3)) for m in matches if m}
    registered = {r.id: (r.title, r.severity) for r in fnd.registered_rules(fr.ANALYSIS)}
    assert len(registered) == 5 and rows == registered
