# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/switchover.yml, add_replica.yml and rejoin.yml through ansible-playbook on real clusters.

One replication group per major (module-scoped ``group``): primary ``a``, standbys ``b`` and ``c``
(wal_log_hints and full_page_writes on, so that a rewind is possible; autovacuum off so that no background
transaction joins the lost ones of the rejoin test). The tests run in file order and each leaves the group
as the next one expects:

1. switchover a -> b under a writer, then b -> a (there and back), then a again (nothing to do);
2. refusals that change nothing (target with replay paused; target not in the group);
3. a failure after the old primary stopped (the target's login may not promote): the old primary is started
   again and the report says so (15 only: the recovery path does not depend on the major);
4. add_replica: a new node cloned from the primary, verified streaming, a second run changes nothing;
5. last, the failover and rejoin: the standbys miss a's last commits, a stops uncleanly, b is promoted by
   the promote module, c and then a are rejoined with rejoin.yml (check mode first); the report lists the
   lost transactions by xid.
"""

import json
import os
import sys
import threading
import time

import psycopg2
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

PLAYBOOKS = harness.REPO_ROOT / "playbooks"
REWINDABLE = {"wal_log_hints": "on", "full_page_writes": "on", "wal_keep_size": "64MB", "autovacuum": "off"}
LOST_IDS = (9001, 9002, 9003)
REPORT_DEST = {
    "switchover": "switchover_report_dest",
    "add_replica": "replica_report_dest",
    "rejoin": "rejoin_report_dest",
}


class Group:
    """The clusters by inventory name, the inventory, a folder for reports."""

    def __init__(self, workdir, nodes):
        self.workdir = workdir
        self.nodes = nodes
        self.reports = os.path.join(workdir, "reports")

    def host_vars(self, name, **extra):
        node = self.nodes[name]
        out = dict(
            ansible_connection="local",
            ansible_python_interpreter=sys.executable,
            dbarch_login_host=node.host,
            dbarch_login_port=node.port,
            dbarch_login_user=node.user,
            dbarch_login_password=node.password,
            dbarch_login_db="postgres",
            dbarch_data_dir=node.data_dir,
        )
        out.update(extra)
        return out

    def inventory(self, primary="a", replicas=("b", "c"), overrides=None):
        overrides = overrides or {}
        return dict(
            all=dict(
                children=dict(
                    primary=dict(hosts={primary: self.host_vars(primary, **overrides.get(primary, {}))}),
                    replicas=dict(hosts={r: self.host_vars(r, **overrides.get(r, {})) for r in replicas}),
                )
            )
        )

    def play(self, name, inventory=None, check=False, **extra_vars):
        extra_vars.setdefault(REPORT_DEST[name], self.reports)
        return harness.run_playbook(
            PLAYBOOKS / ("%s.yml" % name),
            inventory=inventory or self.inventory(),
            extra_vars=extra_vars,
            check=check,
        )

    def report(self, host, name):
        with open(os.path.join(self.reports, host, "%s.json" % name), encoding="utf-8") as fh:
            return json.load(fh)


def recovery(node):
    return node.query("SELECT pg_is_in_recovery()")[0][0]


def timeline(node):
    return node.query("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]


def upstream_port(node):
    rows = node.query("SELECT status, sender_port FROM pg_stat_wal_receiver")
    return rows[0][1] if rows and rows[0][0] == "streaming" else None


def wait_until(check, what, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.2)


class Writer(threading.Thread):
    """Inserts ids into public.acked on one server, one autocommit transaction each, until it fails (the
    server stops) or is told to stop. ``acked``: the ids whose COMMIT returned."""

    def __init__(self, node, start_id):
        super().__init__(daemon=True)
        self.node = node
        self.next_id = start_id
        self.acked = []
        self.error = None
        self.halt = threading.Event()

    def run(self):
        try:
            conn = self.node.connect()
            with conn.cursor() as cur:
                while not self.halt.is_set():
                    cur.execute("INSERT INTO public.acked (id) VALUES (%s)", (self.next_id,))
                    self.acked.append(self.next_id)
                    self.next_id += 1
                    time.sleep(0.005)
        except psycopg2.Error as exc:
            self.error = str(exc).strip()

    def finish(self):
        self.halt.set()
        self.join(60)
        return self.acked


def all_present(node, ids):
    (count,) = node.query("SELECT count(*) FROM public.acked WHERE id = ANY(%s)", (list(ids),))[0]
    return count == len(ids)


def assert_group(group, primary, standbys, reports_host=None):
    """``primary`` out of recovery, every standby streaming from it, the primary sees them all."""
    p = group.nodes[primary]
    assert recovery(p) is False
    for name in standbys:
        assert wait_until(
            lambda n=name: upstream_port(group.nodes[n]) == p.port, "%s to stream from %s" % (name, primary)
        )
    seen = p.query("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")
    assert sorted(r[0] for r in seen) == sorted(standbys)


@pytest.fixture(scope="module")
def group(pg_major):
    workdir = harness.work_folder("dbarch-it-switchover-")
    nodes = {}
    try:
        nodes["a"] = harness.start_cluster(pg_major, workdir=workdir, name="a", settings=REWINDABLE)
        nodes["a"].query("CREATE TABLE public.acked (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        for name in ("b", "c"):
            nodes[name] = harness.start_standby(
                nodes["a"], name, slot=name, settings=dict(REWINDABLE, cluster_name=name)
            )
        yield Group(workdir, nodes)
    finally:
        for node in reversed(list(nodes.values())):
            try:
                node.stop()
            except lc.LocalClusterError:
                pass
        harness.remove_folder(workdir)


def switch(group, target, writer_on=None, start_id=1, **extra):
    """Run the switchover to ``target`` with a Writer on ``writer_on``; (run, acked ids)."""
    writer = None
    if writer_on:
        writer = Writer(group.nodes[writer_on], start_id)
        writer.start()
        wait_until(lambda: len(writer.acked) >= 20, "the writer's first commits")
    run = group.play("switchover", switchover_target=target, **extra)
    acked = writer.finish() if writer else []
    return run, acked


def test_switchover_there_and_back_under_a_writer(group):
    a, b = group.nodes["a"], group.nodes["b"]
    tli = timeline(a)

    run, acked = switch(group, "b", writer_on="a", start_id=1)
    run.assert_ok()
    assert a.password not in run.stdout + run.stderr
    summary = group.report("b", "switchover")["summary"]
    assert summary["status"] == "switched" and summary["old_primary"] == "a" and summary["new_primary"] == "b"
    assert [p["phase"] for p in summary["phases"]] == [
        "checks",
        "checkpoint",
        "pause",
        "stop",
        "catch_up",
        "promote",
        "resume",
        "old_primary_follows",
        "standbys_follow",
        "cleanup_and_verify",
    ]
    assert summary["timeline"] == tli + 1 and summary["old_primary_action"] == "repointed"
    assert sorted(summary["slots_dropped_on_old_primary"]) == ["b", "c"]
    assert summary["total_seconds"] >= sum(p["seconds"] for p in summary["phases"]) - 0.01
    # The writer's commits were acknowledged by a until its shutdown; every one is on b.
    assert len(acked) >= 20 and all_present(b, acked)
    assert timeline(b) == tli + 1
    assert_group(group, "b", ["a", "c"])
    assert a.query("SELECT slot_name FROM pg_replication_slots") == []
    assert sorted(r[0] for r in b.query("SELECT slot_name FROM pg_replication_slots")) == ["a", "c"]

    # Back to a, with the writer on b.
    run, acked_back = switch(group, "a", writer_on="b", start_id=100000)
    run.assert_ok()
    summary = group.report("a", "switchover")["summary"]
    assert summary["status"] == "switched" and summary["timeline"] == tli + 2
    assert all_present(a, acked + acked_back)
    assert_group(group, "a", ["b", "c"])
    assert b.query("SELECT slot_name FROM pg_replication_slots") == []
    # Writes after the switchover reach every standby.
    a.query("INSERT INTO public.acked (id) VALUES (777777)")
    for name in ("b", "c"):
        wait_until(lambda n=name: all_present(group.nodes[n], [777777]), "the new row on %s" % name)

    # Again to a: it is the primary already. Nothing changes; the report of the switchover back is kept.
    again = group.play("switchover", switchover_target="a")
    again.assert_ok()
    assert again.changed_count("a") == 0
    kept = group.report("a", "switchover")["summary"]
    assert kept["status"] == "switched" and kept["timeline"] == tli + 2


def test_switchover_refusals_change_nothing(group):
    a, c = group.nodes["a"], group.nodes["c"]
    c.query("SELECT pg_wal_replay_pause()")
    try:
        run = group.play("switchover", switchover_target="c")
    finally:
        c.query("SELECT pg_wal_replay_resume()")
    assert run.rc != 0
    assert "Refused, nothing changed: c has its replay paused" in run.stdout
    # Check mode runs the checks and stops there.
    checked = group.play("switchover", check=True, switchover_target="c")
    checked.assert_ok()
    assert "Check mode: every check passed" in checked.stdout and checked.changed_count() == 0
    unknown = group.play("switchover", switchover_target="nobody")
    assert unknown.rc != 0 and "Give the standby to promote" in unknown.stdout
    assert recovery(a) is False
    assert_group(group, "a", ["b", "c"])


@pytest.mark.pg_versions(15)
def test_a_login_that_may_not_promote_is_refused_before_anything_stops(group):
    a, b = group.nodes["a"], group.nodes["b"]
    a.query("DROP ROLE IF EXISTS sw_monitor")
    a.query("CREATE ROLE sw_monitor LOGIN PASSWORD %s IN ROLE pg_monitor", (a.password,))
    wait_until(
        lambda: b.query("SELECT count(*) FROM pg_roles WHERE rolname = 'sw_monitor'")[0][0] == 1, "the role"
    )
    started = a.query("SELECT pg_postmaster_start_time()")[0][0]
    # b's login reads (pg_monitor) but may not run pg_promote: refused at the checks, a never stops.
    inventory = group.inventory(overrides={"b": {"dbarch_login_user": "sw_monitor"}})
    run = group.play("switchover", inventory=inventory, switchover_target="b")
    assert run.rc != 0, run.stdout
    assert "Refused, nothing changed: the login role may not run pg_promote on b" in run.stdout, run.stdout[
        -5000:
    ]
    assert a.query("SELECT pg_postmaster_start_time()")[0][0] == started
    assert recovery(a) is False and recovery(b) is True
    a.query("DROP ROLE sw_monitor")
    assert_group(group, "a", ["b", "c"])


@pytest.mark.pg_versions(15)
def test_a_failed_promotion_starts_the_old_primary_again(group):
    a, b = group.nodes["a"], group.nodes["b"]
    # Every check passes; the promotion itself fails once a is stopped (promote refuses a wait of 0 s).
    run = group.play("switchover", switchover_target="b", switchover_promote_timeout=0)
    assert run.rc != 0, run.stdout
    assert "failed in the promote phase" in run.stdout, run.stdout[-5000:]
    assert "The promotion never happened: a was started again and is the primary" in run.stdout
    summary = group.report("b", "switchover")["summary"]
    assert summary["status"] == "failed" and summary["failed_phase"] == "promote"
    assert summary["new_primary"] == "a" and "started again" in summary["what_to_do"]
    assert recovery(a) is False and recovery(b) is True
    a.query("INSERT INTO public.acked (id) VALUES (888888)")
    assert_group(group, "a", ["b", "c"])


def test_add_replica_clones_a_streaming_standby(group):
    a = group.nodes["a"]
    d_dir = os.path.join(group.workdir, "d", "data")
    d_port = lc.free_port()
    inventory = group.inventory()
    inventory["all"]["children"]["replicas"]["hosts"]["d"] = dict(
        group.host_vars("a"), dbarch_login_port=d_port, dbarch_data_dir=d_dir
    )
    try:
        run = group.play("add_replica", inventory=inventory, replica_host="d")
        run.assert_ok()
        d = harness.PgCluster(
            a.major, lc.LocalCluster(d_dir, port=d_port, bindir=a.bindir), a.password, group.workdir, False
        )
        summary = group.report("d", "add_replica")["summary"]
        assert summary["primary"] == "a" and summary["action"] == "cloned" and summary["slot"] == "d"
        assert summary["seen_by_primary"]["state"] == "streaming"
        assert set(summary["durations_seconds"]) == {"standby", "verify", "total"}
        assert upstream_port(d) == a.port and recovery(d) is True
        assert d.query("SHOW hot_standby_feedback") == [("on",)]
        (active,) = a.query("SELECT active FROM pg_replication_slots WHERE slot_name = 'd'")[0]
        assert active is True
        again = group.play("add_replica", inventory=inventory, replica_host="d")
        again.assert_ok()
        assert group.report("d", "add_replica")["summary"]["action"] == "none"
        assert (
            again.task("Make the host a streaming standby of the primary", host="d")["result"]["changed"]
            is False
        )
    finally:
        lc.LocalCluster(d_dir, port=d_port, bindir=a.bindir).stop(mode="immediate") if os.path.isdir(
            d_dir
        ) else None
        wait_until(
            lambda: (
                a.query("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'd' AND active")[0][0]
                == 0
            ),
            "d's walsender to go",
        )
        a.query("SELECT pg_drop_replication_slot('d') FROM pg_replication_slots WHERE slot_name = 'd'")


def test_rejoin_after_an_unclean_failover_reports_the_lost_transactions(group):
    a, b, c = (group.nodes[n] for n in ("a", "b", "c"))
    # The standbys stop first: a's next commits (asynchronous) reach no standby.
    b.cluster.stop()
    c.cluster.stop()
    xids = []
    conn = a.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            # Flushed on a at COMMIT (the test clusters default to synchronous_commit off), shipped to no one.
            cur.execute("SET synchronous_commit = local")
            conn.commit()
            for row_id in LOST_IDS:
                cur.execute("INSERT INTO public.acked (id) VALUES (%s)", (row_id,))
                cur.execute("SELECT txid_current()")
                xids.append(cur.fetchone()[0])
                conn.commit()
    finally:
        conn.close()
    a.cluster.stop(mode="immediate")
    b.cluster.start()
    c.cluster.start()
    promote = harness.run_playbook(
        harness.play(
            harness.task(
                "promote",
                "promote b",
                old_primary={"host": a.host, "port": a.port, "user": a.user, "password": a.password},
                candidates=[{"host": c.host, "port": c.port}],
            ),
            pg=b,
        )
    )
    promote.assert_ok()
    assert recovery(b) is False

    # c is a running standby of the stopped a: rejoin repoints it. The inventory still calls a the primary.
    follow_c = group.play("rejoin", rejoin_host="c")
    follow_c.assert_ok()
    rep = group.report("c", "rejoin")["summary"]
    assert rep["action"] == "repointed" and rep["primary"] == "b" and rep["inventory_was_stale"] is True
    assert rep["lost_xids"] == []

    # a in check mode: the lost transactions are reported, a is left as it is (stopped, not rewound).
    control_before = a.cluster.run([os.path.join(a.bindir, "pg_controldata"), "-D", a.data_dir]).stdout
    check = group.play("rejoin", check=True, rejoin_host="a")
    check.assert_ok()
    planned = group.report("a", "rejoin")
    assert planned["summary"]["status"] == "check mode" and planned["summary"]["action"] == "rewound"
    assert planned["summary"]["lost_xids"] == xids
    assert not a.cluster.is_running()
    assert (
        a.cluster.run([os.path.join(a.bindir, "pg_controldata"), "-D", a.data_dir]).stdout == control_before
    )

    run = group.play("rejoin", rejoin_host="a")
    run.assert_ok()
    report = group.report("a", "rejoin")
    summary = report["summary"]
    assert summary["status"] == "rejoined" and summary["action"] == "rewound" and summary["primary"] == "b"
    assert summary["lost_xids"] == xids
    assert [t["relations"] for t in summary["lost_transactions"]] == [["public.acked"]] * len(LOST_IDS)
    lost = [f for f in report["findings"] if f["rule"] == "REPL-REJOIN-001"]
    assert sorted(f["evidence"]["xid"] for f in lost) == sorted(xids)
    assert all(f["severity"] == "high" for f in lost)
    assert_group(group, "b", ["a", "c"])
    # The lost rows are on no server: the new primary never had them, the rewind removed them from a.
    for node in (a, b):
        assert node.query("SELECT count(*) FROM public.acked WHERE id = ANY(%s)", (list(LOST_IDS),)) == [(0,)]
    # Again: a streams from b already. Nothing changes, and the report of the rewind (its lost transactions)
    # is kept, not replaced by a report of this run.
    again = group.play("rejoin", rejoin_host="a")
    again.assert_ok()
    assert again.changed_count("a") == 0
    kept = group.report("a", "rejoin")["summary"]
    assert kept["action"] == "rewound" and kept["lost_xids"] == xids
