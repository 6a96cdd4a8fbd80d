# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a node's history leaves its primary's, and whether a stopped node went past it (rewind.py)."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import rewind as rw
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication.node import StandbyError

L = wal.parse_lsn


def control(checkpoint="0/3000060", min_recovery="0/0", hints="off", checksums=0):
    return {
        "checkpoint_lsn": L(checkpoint),
        "min_recovery_lsn": L(min_recovery),
        "wal_log_hints": hints,
        "checksums": checksums,
    }


def test_old_primary_on_timeline_1_forks_at_the_switch_point():
    source = rw.chain(2, "1\t0/40000A0\tno recovery target specified\n")
    target = rw.chain(1, "")
    point = rw.fork_point(source, target)
    assert point == {"index": 0, "timeline": 1, "lsn": L("0/40000A0")}
    assert rw.wal_ranges(target, point) == [(1, L("0/40000A0"), None)]
    assert rw.describe(source) == "1 until 0/40000A0, then 2"


def test_same_timeline_and_history_has_no_fork():
    history = "1\t0/40000A0\tno recovery target specified\n"
    point = rw.fork_point(rw.chain(2, history), rw.chain(2, history))
    assert point["lsn"] is None and point["timeline"] == 2


def test_node_promoted_on_its_own_rewinds_back_over_its_timeline():
    # The node was promoted at 0/5000000 (timeline 2); the primary stayed on 1 (its current one).
    source = rw.chain(1, "")
    target = rw.chain(2, "1\t0/5000000\tno recovery target specified\n")
    point = rw.fork_point(source, target)
    assert point == {"index": 0, "timeline": 1, "lsn": L("0/5000000")}
    assert rw.wal_ranges(target, point) == [(2, L("0/5000000"), None)]


def test_two_promotions_from_one_timeline_fork_at_the_earlier_switch():
    # Both were promoted from timeline 1, at different points, each to a timeline 2 of its own.
    source = rw.chain(3, "1\t0/3000000\tx\n2\t0/6000000\tx\n")
    target = rw.chain(2, "1\t0/3800000\tx\n")
    point = rw.fork_point(source, target)
    assert point["timeline"] == 1 and point["lsn"] == L("0/3000000")
    # the node's WAL after the fork: the rest of timeline 1, then all of its own timeline 2
    assert rw.wal_ranges(target, point) == [(1, L("0/3000000"), L("0/3800000")), (2, L("0/3800000"), None)]


def test_a_standby_behind_on_an_older_timeline_shares_the_primary_history():
    source = rw.chain(3, "1\t0/3000000\tx\n2\t0/6000000\tx\n")
    target = rw.chain(2, "1\t0/3000000\tx\n")
    point = rw.fork_point(source, target)
    assert point == {"index": 1, "timeline": 2, "lsn": L("0/6000000")}


def test_histories_without_a_common_timeline_are_refused():
    source = rw.chain(2, "")  # an unrelated cluster whose first timeline is 2 (none before it)
    with pytest.raises(StandbyError, match="share no timeline"):
        rw.fork_point(source, rw.chain(1, ""))


def test_stopped_node_diverged_or_not():
    fork = L("0/40000A0")
    # the clean shutdown checkpoint that reached the standby ends at the fork point: not past it
    assert rw.stopped_divergence(control(checkpoint="0/4000028"), fork, 0) == []
    reasons = rw.stopped_divergence(control(checkpoint="0/40000A0"), fork, 0)
    assert len(reasons) == 1 and "checkpoint" in reasons[0]
    assert "3 record(s)" in rw.stopped_divergence(control(checkpoint="0/3000060"), fork, 3)[0]
    assert (
        "replayed WAL up to 0/5000000"
        in rw.stopped_divergence(control(checkpoint="0/3000060", min_recovery="0/5000000"), fork, 0)[0]
    )


def test_rewind_needs_hints_or_checksums():
    assert rw.rewind_blockers(control(hints="on")) == []
    assert rw.rewind_blockers(control(checksums=1)) == []
    blockers = rw.rewind_blockers(control())
    assert len(blockers) == 1 and "wal_log_hints" in blockers[0] and "clone" in blockers[0]


class FakeScan:
    """A WalScan's transactions(), as read from WAL after a fork."""

    records = 9
    first_lsn = "0/04000028"
    last_lsn = "0/04000200"

    def transactions(self):
        return {
            "committed": [
                {
                    "xid": 10,
                    "commit_time": "t1",
                    "lsn": "0/04000100",
                    "gid": None,
                    "relations": {(1663, 5, 16384)},
                },
                {
                    "xid": 11,
                    "commit_time": "t2",
                    "lsn": "0/04000180",
                    "gid": "g",
                    "relations": {(1663, 5, 99999)},
                },
            ],
            "aborted": [12],
            "rolled_back": [13],
            "prepared": [{"xid": 14, "gid": "p", "time": "t", "lsn": "0/04000190"}],
            "in_progress": [15],
        }


def test_lost_report_names_relations_and_counts_the_rest():
    scan = FakeScan()
    assert rw.refs_of(scan, 1) == {(1663, 5, 16384)}
    listed, summary = rw.lost_report(scan, {(1663, 5, 16384): "public.orders"}, 1000)
    assert listed[0] == {"xid": 10, "commit_time": "t1", "lsn": "0/04000100", "relations": ["public.orders"]}
    # a relation the primary cannot name is given as its file path
    assert listed[1]["relations"] == ["base/5/99999"] and listed[1]["prepared_gid"] == "g"
    assert summary["committed"] == 2 and summary["aborted"] == 2 and summary["in_progress"] == 1
    assert summary["prepared"] == [{"xid": 14, "gid": "p"}]
    listed, summary = rw.lost_report(scan, {}, 1)
    assert [t["xid"] for t in listed] == [10] and summary["listed"] == 1 and summary["committed"] == 2
