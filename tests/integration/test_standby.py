# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbarch.postgresql.standby through real ansible-playbook runs on real clusters, PostgreSQL 14-18.

One topology per major (module-scoped fixture ``flow``), driven through a failover:

1. primary P (wal_log_hints and full_page_writes on, autovacuum off so that no background
   transaction joins the lost ones), the harness standby S2 of P;
2. playbook "clone": the module clones S1 from P (check mode first: nothing may appear), then
   again (nothing to do);
3. S1 and S2 stopped cleanly (their WAL receivers paused), rows with known ids written on P with
   their txid_current(), P stopped, S2 started and promoted, S1 started again (a running standby
   still configured for the stopped P);
4. playbook "failover": P with rewind false (fails, changes nothing), P in check mode (reports the
   lost transactions, changes nothing), P for real (rewound), P again (nothing to do); S1 in check
   mode, for real (repointed by a reload) and again.

The tests then assert on what each task returned and on the servers themselves.
"""

import os

import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import node as nd
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import standby as sb

pytestmark = pytest.mark.all_versions

# What a node needs to be rewound (the test default turns full_page_writes off), WAL kept for
# pg_rewind's read back to the last common checkpoint, and no autovacuum transactions.
REWINDABLE = {"wal_log_hints": "on", "full_page_writes": "on", "wal_keep_size": "64MB", "autovacuum": "off"}
LOST_IDS = (101, 102, 103)


def standby_task(name, target, port, primary, **options):
    """A standby task for the node on ``port`` (its own connection) following ``primary``."""
    source = {"host": primary.host, "port": primary.port, "user": primary.user, "password": primary.password}
    return harness.task("standby", name, primary=source, login_port=port, data_dir=target, **options)


def stat_task(name, path):
    return harness.task("ansible.builtin.stat", name, path=path, get_checksum=True)


def start_pg_ctl(cluster):
    """Start a data folder that has no dbarch marker (S1, made by the module) with pg_ctl."""
    log = os.path.join(os.path.dirname(cluster.data_dir), "%s.log" % os.path.basename(cluster.data_dir))
    cluster.run(["pg_ctl", "start", "-D", cluster.data_dir, "-l", log, "-w", "-t", "120"], new_session=True)


def engine_refusal(node, primary):
    """The standby engine's refusal to make ``node`` follow ``primary`` (called directly, as the
    module would: no playbook run for a step that must fail before changing anything)."""
    request = sb.Request(
        primary={
            "host": primary.host,
            "port": primary.port,
            "user": primary.user,
            "password": primary.password,
        },
        data_dir=node.data_dir,
        local=node.conn_params,
    )
    with pytest.raises(nd.StandbyError) as info:
        sb.converge(request)
    return str(info.value)


def results(run, *names):
    return {name: run.task(name)["result"] for name in names}


@pytest.fixture(scope="module")
def flow(pg_major):
    workdir = harness.work_folder("dbarch-it-standby-")
    s1 = None
    try:
        p = harness.start_cluster(pg_major, workdir=workdir, name="p", settings=REWINDABLE)
        p.query("CREATE TABLE public.lost_rows (id int PRIMARY KEY, note text)")
        s2 = harness.start_standby(p, "s2", slot="s2", settings=REWINDABLE)
        s1_dir = os.path.join(workdir, "s1", "data")
        s1_port = lc.free_port()
        s1 = lc.LocalCluster(s1_dir, port=s1_port, bindir=p.bindir)
        clone = harness.run_playbook(
            harness.play(
                standby_task("clone check", s1_dir, s1_port, p, slot_name="s1", check_mode=True),
                stat_task("after check", s1_dir),
                standby_task("clone", s1_dir, s1_port, p, slot_name="s1"),
                standby_task("clone again", s1_dir, s1_port, p, slot_name="s1"),
                standby_task(
                    "slot taken",
                    os.path.join(workdir, "s3", "data"),
                    lc.free_port(),
                    p,
                    slot_name="s2",
                    check_mode=True,
                    ignore_errors=True,
                ),
                pg=p,
            )
        )
        clone.assert_ok()
        s1_streamed_from_p = harness.PgCluster(pg_major, s1, p.password, workdir, False).query(
            "SELECT status, sender_port FROM pg_stat_wal_receiver"
        )

        # The failover: S1 and S2 miss P's last writes, P stops, S2 is promoted.
        s1.stop()
        s2.cluster.stop()
        xids = []
        conn = p.connect(autocommit=False)
        try:
            with conn.cursor() as cur:
                for row_id in LOST_IDS:
                    cur.execute(
                        "INSERT INTO public.lost_rows VALUES (%s, 'acknowledged on P only')", (row_id,)
                    )
                    cur.execute("SELECT txid_current()")
                    xids.append(cur.fetchone()[0])
                    conn.commit()
                cur.execute("INSERT INTO public.lost_rows VALUES (999, 'rolled back')")
                conn.rollback()
        finally:
            conn.close()
        p.cluster.stop()
        s2.cluster.start()
        # Before the promotion S2 is a standby on P's timeline: P following it would leave no primary.
        not_promoted = engine_refusal(p, s2)
        s2.query("SELECT pg_promote(true, 60)")
        start_pg_ctl(s1)
        s1_pg = harness.PgCluster(pg_major, s1, p.password, workdir, False)
        s1_started = s1_pg.query("SELECT pg_postmaster_start_time()")[0][0]
        failover = harness.run_playbook(
            harness.play(
                stat_task("auto.conf before", os.path.join(p.data_dir, "postgresql.auto.conf")),
                standby_task(
                    "rejoin refused", p.data_dir, p.port, s2, slot_name="p", rewind=False, ignore_errors=True
                ),
                standby_task("rejoin check", p.data_dir, p.port, s2, slot_name="p", check_mode=True),
                stat_task("auto.conf after", os.path.join(p.data_dir, "postgresql.auto.conf")),
                stat_task("signal after", os.path.join(p.data_dir, "standby.signal")),
                stat_task("pid after", os.path.join(p.data_dir, "postmaster.pid")),
                standby_task("rejoin", p.data_dir, p.port, s2, slot_name="p"),
                standby_task("rejoin again", p.data_dir, p.port, s2, slot_name="p"),
                standby_task("repoint check", s1_dir, s1_port, s2, slot_name="s1", check_mode=True),
                standby_task("repoint", s1_dir, s1_port, s2, slot_name="s1"),
                standby_task("repoint again", s1_dir, s1_port, s2, slot_name="s1"),
                pg=p,
            ),
            diff=True,
        )
        yield {
            "p": p,
            "s1": s1_pg,
            "s2": s2,
            "clone": clone,
            "failover": failover,
            "xids": xids,
            "s1_started": s1_started,
            "s1_streamed_from_p": s1_streamed_from_p,
            "not_promoted": not_promoted,
        }
    finally:
        if s1 is not None and s1.is_running():
            s1.stop(mode="immediate")
        harness.remove_folder(workdir)


def test_clone_streams_and_second_run_changes_nothing(flow):
    p = flow["p"]
    got = results(flow["clone"], "clone check", "after check", "clone", "clone again")
    assert got["clone check"]["action"] == "cloned" and got["clone check"]["changed"]
    assert all(step.startswith("would ") for step in got["clone check"]["steps"])
    assert not got["after check"]["stat"]["exists"], "check mode created the data folder"
    clone = got["clone"]
    assert clone["action"] == "cloned" and clone["changed"]
    assert clone["upstream"] == {"host": "127.0.0.1", "port": p.port, "status": "streaming"}
    assert clone["timeline"] == 1
    assert "password" not in clone["primary_conninfo"] and "passfile=" in clone["primary_conninfo"]
    assert flow["s1_streamed_from_p"] == [("streaming", p.port)]
    again = got["clone again"]
    assert again["action"] == "none" and not again["changed"]
    assert again["upstream"]["port"] == p.port
    passfile = os.path.join(os.path.dirname(clone["data_dir"]), ".dbarch-data.pgpass")
    assert oct(os.stat(passfile).st_mode & 0o777) == "0o600"


def test_a_slot_another_standby_streams_from_is_refused(flow):
    taken = results(flow["clone"], "slot taken")["slot taken"]
    assert taken["failed"] and "in use by another standby" in taken["msg"]


def test_a_stopped_primary_does_not_follow_a_standby_that_was_not_promoted(flow):
    assert "would leave no primary" in flow["not_promoted"]


def test_rewind_false_and_check_mode_change_nothing(flow):
    got = results(
        flow["failover"],
        "rejoin refused",
        "rejoin check",
        "auto.conf before",
        "auto.conf after",
        "signal after",
        "pid after",
    )
    refused = got["rejoin refused"]
    assert refused["failed"]
    assert "rewind is false, so nothing was changed" in refused["msg"]
    assert sorted(t["xid"] for t in refused["lost_transactions"]) == sorted(flow["xids"])
    check = got["rejoin check"]
    assert check["action"] == "rewound" and check["changed"]
    assert all(step.startswith("would ") for step in check["steps"])
    assert sorted(t["xid"] for t in check["lost_transactions"]) == sorted(flow["xids"])
    assert got["auto.conf before"]["stat"]["checksum"] == got["auto.conf after"]["stat"]["checksum"]
    assert not got["signal after"]["stat"]["exists"]
    assert not got["pid after"]["stat"]["exists"], "the old primary was started"
    assert results(flow["failover"], "repoint check")["repoint check"]["action"] == "repointed"


def test_rejoin_rewinds_and_reports_the_lost_transactions(flow):
    p, s2 = flow["p"], flow["s2"]
    got = results(flow["failover"], "rejoin", "rejoin again")
    rejoin = got["rejoin"]
    assert rejoin["action"] == "rewound" and rejoin["changed"], rejoin.get("msg")
    lost = rejoin["lost_transactions"]
    assert [t["xid"] for t in lost] == flow["xids"]
    assert all(t["relations"] == ["public.lost_rows"] for t in lost)
    assert all(t["commit_time"].endswith("+00:00") for t in lost)
    summary = rejoin["lost_summary"]
    assert summary["committed"] == len(flow["xids"]) and summary["complete"]
    assert summary["aborted"] >= 1  # the rolled-back insert: noise, not lost data
    assert rejoin["pg_rewind"]["rewound"]
    assert rejoin["upstream"] == {"host": "127.0.0.1", "port": s2.port, "status": "streaming"}
    assert rejoin["timeline"] == 2
    assert got["rejoin again"]["action"] == "none" and not got["rejoin again"]["changed"]
    # P streams from S2 (its own port and configuration kept), the lost rows are nowhere.
    assert p.query("SELECT pg_is_in_recovery(), (SELECT status FROM pg_stat_wal_receiver)") == [
        (True, "streaming")
    ]
    s2.query("CREATE TABLE after_rejoin AS SELECT 1 AS one")
    for server in (p, s2):
        assert server.query(
            "SELECT count(*) FROM public.lost_rows WHERE id = ANY(%s)", (list(LOST_IDS),)
        ) == [(0,)]
    assert s2.query("SELECT active FROM pg_replication_slots WHERE slot_name = 'p'") == [(True,)]
    # The slots P held as a primary (for S1 and S2) did not survive the rewind: none keeps WAL on it.
    assert p.query("SELECT slot_name FROM pg_replication_slots") == []


def test_repoint_reloads_without_restart(flow):
    s1, s2 = flow["s1"], flow["s2"]
    got = results(flow["failover"], "repoint", "repoint again")
    repoint = got["repoint"]
    assert repoint["action"] == "repointed" and repoint["changed"], repoint.get("msg")
    assert repoint["upstream"] == {"host": "127.0.0.1", "port": s2.port, "status": "streaming"}
    assert repoint["timeline"] == 2
    assert str(flow["p"].port) in repoint["previous_conninfo"]
    assert "primary_conninfo" in repoint["diff"]["after"]
    assert s1.query("SELECT pg_postmaster_start_time()")[0][0] == flow["s1_started"]
    again = got["repoint again"]
    assert again["action"] == "none" and not again["changed"]
    assert s1.query("SELECT status, sender_port FROM pg_stat_wal_receiver") == [("streaming", s2.port)]


def test_no_password_in_any_output(flow):
    for run in (flow["clone"], flow["failover"]):
        assert flow["p"].password not in run.stdout + run.stderr
        assert flow["p"].password not in str(run.results)
