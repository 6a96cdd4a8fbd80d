# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a node's history left its new primary's, what the node wrote after that point, and
pg_rewind to take it back.

Plain Python, no Ansible imports.

- ``fork_point``: the last timeline both histories share and the LSN where they part, the way
  pg_rewind finds it (its findCommonAncestorTimeline): walk both timeline chains from the first
  timeline while timeline and start agree; the fork is the earlier end of the last shared one
  (None when neither ends: the same timeline).
- ``wal_ranges``: the stretches of the node's own WAL after the fork (on the shared timeline,
  then on any later timeline of the node's own).
- ``stopped_divergence``: whether a stopped node wrote anything after the fork: a record in its
  WAL there (pg_waldump found one), its last checkpoint at or past the fork, or a minimum
  recovery point past it.
- ``rewind_blockers``: what keeps pg_rewind from running on the node (neither wal_log_hints nor
  data checksums), checked before anything is touched.
- ``lost_report``: the committed transactions after the fork, with relation names.
- ``run_pg_rewind``: ``pg_rewind --target-pgdata --source-server`` as the node's OS user.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import upstream as upm
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import waldump as wd
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication.node import StandbyError

_DIVERGED = re.compile(r"servers diverged at WAL location ([0-9A-F]+/[0-9A-F]+) on timeline (\d+)")


def chain(timeline, history_text):
    """[(timeline, begin, end or None)] of ``timeline``, oldest first, from its history file text."""
    timeline = int(timeline)
    return wal.timeline_chain(timeline, {timeline: wal.parse_history(history_text)})


def fork_point(source, target):
    """{index, timeline, lsn} where the ``target`` chain (the node) leaves the ``source`` chain
    (the new primary); ``lsn`` None when both are on the same timeline with the same history.
    Raises StandbyError when they share no timeline at all."""
    shared = 0
    for src, tgt in zip(source, target):  # noqa: B905 - the shorter chain bounds the walk
        if src[0] != tgt[0] or src[1] != tgt[1]:
            break
        shared += 1
    if shared == 0:
        raise StandbyError(
            "the node's timeline history (%s) and the primary's (%s) share no timeline: they are not "
            "copies of one cluster's history, so the node cannot follow it; rebuild the node (remove "
            "its data folder and run the module again to clone it)" % (describe(target), describe(source))
        )
    index = shared - 1
    ends = [end for end in (source[index][2], target[index][2]) if end is not None]
    return {"index": index, "timeline": source[index][0], "lsn": min(ends) if ends else None}


def describe(chain_):
    """'1 until 0/3000108, then 2' for messages."""
    parts = []
    for tli, _begin, end in chain_:
        parts.append("%d until %s" % (tli, wal.format_lsn(end)) if end is not None else str(tli))
    return ", then ".join(parts)


def wal_ranges(target, fork):
    """[(timeline, start, end or None)]: the node's WAL after the fork point, per timeline."""
    ranges = []
    for tli, begin, end in target[fork["index"] :]:
        start = max(begin, fork["lsn"])
        if end is not None and end <= start:
            continue
        ranges.append((tli, start, end))
    return ranges


def stopped_divergence(control, fork_lsn, records_after):
    """Why a stopped node's data is past the fork point (a list; empty: it is not)."""
    reasons = []
    if records_after:
        reasons.append("its WAL holds %d record(s) after the fork point" % records_after)
    if control["checkpoint_lsn"] >= fork_lsn:
        reasons.append(
            "its last checkpoint (%s) is at or after the fork point"
            % wal.format_lsn(control["checkpoint_lsn"])
        )
    if control["min_recovery_lsn"] > fork_lsn:
        reasons.append(
            "it replayed WAL up to %s, after the fork point" % wal.format_lsn(control["min_recovery_lsn"])
        )
    return reasons


def rewind_blockers(control):
    """What keeps pg_rewind from rewinding this data folder ([] when nothing)."""
    if control.get("wal_log_hints") == "on" or int(control.get("checksums") or 0) > 0:
        return []
    return [
        "the node has neither wal_log_hints = on nor data checksums (pg_controldata), which pg_rewind "
        "needs to know which pages changed. Rebuild it instead (remove its data folder and run the module "
        "again to clone it), and set wal_log_hints = on on every server so a future rejoin can rewind"
    ]


def scan_after_fork(node, target, fork, timeout=None):
    """pg_waldump over the node's WAL after the fork point. Returns (WalScan, notes) where notes
    say what could not be read (a WAL file gone)."""
    scan = wd.WalScan()
    notes = []
    segment_size = node.controldata()["segment_size"]
    for tli, start, end in wal_ranges(target, fork):
        _scan, stop = wd.read(
            node.bindir,
            node.path("pg_wal"),
            tli,
            wal.format_lsn(start),
            wal.format_lsn(end) if end is not None else None,
            scan=scan,
            run_as=node.run_as if node.run_as != proc.current_user() else None,
            env=node.env,
            timeout=timeout,
            segment_size=segment_size,
        )
        if stop["kind"] == "missing_file" and scan.records == 0:
            notes.append(
                "the node's WAL from %s on timeline %d is not in pg_wal (%s): what it wrote there cannot be "
                "listed" % (wal.format_lsn(start), tli, stop["detail"])
            )
        elif stop["kind"] == "missing_file":
            notes.append(
                "pg_waldump stopped at a missing WAL file (%s): the list may be incomplete" % stop["detail"]
            )
        if end is None:
            break
    return scan, notes


def lost_report(scan, names, limit):
    """(lost_transactions, summary) from a WalScan and relation names {ref: name}."""
    found = scan.transactions()
    listed = []
    for item in found["committed"][: max(int(limit), 0)]:
        entry = {
            "xid": item["xid"],
            "commit_time": item["commit_time"],
            "lsn": item["lsn"],
            "relations": upm.describe_relations(item["relations"], names),
        }
        if item["gid"]:
            entry["prepared_gid"] = item["gid"]
        listed.append(entry)
    summary = {
        "committed": len(found["committed"]),
        "listed": len(listed),
        "aborted": len(found["aborted"]) + len(found["rolled_back"]),
        "in_progress": len(found["in_progress"]),
        "prepared": [{"xid": p["xid"], "gid": p["gid"]} for p in found["prepared"]],
        "records": scan.records,
        "first_lsn": scan.first_lsn,
        "last_lsn": scan.last_lsn,
    }
    return listed, summary


def refs_of(scan, limit):
    """The relation files of the listed committed transactions (what needs a name)."""
    refs = set()
    for item in scan.transactions()["committed"][: max(int(limit), 0)]:
        refs |= item["relations"]
    return refs


def run_pg_rewind(node, source_conninfo, env_extra=None, timeout=None, restore_target_wal=False):
    """pg_rewind from the source server onto the stopped node. Returns {rewound (False when
    pg_rewind found nothing to do), diverged_at, timeline, output}. On failure raises
    StandbyError whose ``touched`` says whether pg_rewind had begun to change the data folder
    (it prints "rewinding from last common checkpoint" first)."""
    args = ["--target-pgdata=%s" % node.data_dir, "--source-server=%s" % source_conninfo]
    if restore_target_wal:
        args.append("--restore-target-wal")
    res = node.run("pg_rewind", args, check=False, timeout=timeout, what="pg_rewind", env_extra=env_extra)
    text = "%s\n%s" % (res.stdout or "", res.stderr or "")
    tail = "\n".join(line for line in text.strip().splitlines()[-12:])
    if res.returncode != 0:
        touched = "rewinding from last common checkpoint" in text
        hint = ""
        if not touched and ("could not find previous WAL record" in text or "could not open file" in text):
            hint = (
                " pg_rewind reads the node's own WAL back from its last checkpoint before the fork point, "
                "and that WAL is no longer in its pg_wal. Give the node a restore_command that fetches it "
                "from the "
                "WAL archive (the module then runs pg_rewind --restore-target-wal), or rebuild the node."
            )
        error = StandbyError("pg_rewind failed (exit %d): %s.%s" % (res.returncode, tail, hint))
        error.touched = touched
        raise error
    match = _DIVERGED.search(text)
    return {
        "rewound": "no rewind required" not in text,
        "diverged_at": match.group(1) if match else None,
        "timeline": int(match.group(2)) if match else None,
        "output": tail,
    }
