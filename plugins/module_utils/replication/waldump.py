# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a node's WAL holds after a point, read with ``pg_waldump``: the transactions a rewind
will discard.

Plain Python (standard library only), no Ansible imports.

``WalScan`` is the parser: it takes ``pg_waldump`` output one line at a time (so WAL of any
size is read without holding it) and keeps, per transaction id, the relations its records
touched and how it ended. Only a transaction whose COMMIT (or COMMIT_PREPARED) record lies in
the range read is lost data: an ABORT is noise, and a transaction without an end record in the
range was never acknowledged to its client (it was still running when the server stopped).
Subtransactions fold into their top-level transaction (the ``subxacts:`` list of the end record,
and ASSIGNMENT records written past 64 open subtransactions).

The format, as PostgreSQL 14 to 18 print it (one line per record without ``-b``)::

    rmgr: Heap        len (rec/tot):     63/    63, tx:        736, lsn: 0/0190BB00, prev 0/0190BAC0,
          desc: INSERT+INIT off 1 flags 0x00, blkref #0: rel 1663/12972/16384 blk 0
    rmgr: Transaction len (rec/tot):     46/    46, tx:        738, lsn: 0/0190FDD8, prev 0/0190FD90,
          desc: COMMIT 2026-12-05 12:27:30.970240 UTC; subxacts: 739
    rmgr: Transaction ..., tx:          0, ..., desc: COMMIT_PREPARED 742: 2026-12-05 12:27:30.972769 UTC

16 changed the wording of most record descriptions (``off: 1, flags: 0x00``) but neither the
record header, the block references nor the Transaction records, which is all this reads.
The end of the WAL shows as an error on stderr (``error in WAL record at X: invalid record
length at Y``, ``wanted 24`` up to 15, ``expected at least 24`` from 16).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

_RECORD = re.compile(
    r"^rmgr: (?P<rmgr>\S+)\s+len \(rec/tot\):\s*(?P<rec>\d+)/\s*(?P<tot>\d+), "
    r"tx:\s*(?P<xid>\d+), lsn: (?P<lsn>[0-9A-Fa-f]+/[0-9A-Fa-f]+), "
    r"prev (?P<prev>[0-9A-Fa-f]+/[0-9A-Fa-f]+), desc: (?P<desc>.*)$"
)
_BLOCK_REF = re.compile(r"blkref #\d+: rel (\d+)/(\d+)/(\d+)(?: fork (\w+))? blk (\d+)")
_TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)(?: (\S+))?")
_XID_LIST = re.compile(r"(?:^|; )subxacts: ([\d ]+)")
_PREPARED_END = re.compile(r"^(COMMIT|ABORT)_PREPARED (\d+): (.*)$")
_ASSIGNMENT = re.compile(r"^ASSIGNMENT xtop (\d+): subxacts: ([\d ]+)")
_PREPARE = re.compile(r"^PREPARE gid (.*?): (\d{4}-\d{2}-\d{2} .*)$")
_END_OF_WAL = re.compile(r"error in WAL record at ([0-9A-Fa-f]+/[0-9A-Fa-f]+): (.*)")
_NO_RECORD = re.compile(r"could not find a valid record after ([0-9A-Fa-f]+/[0-9A-Fa-f]+)")
_NO_FILE = re.compile(r"could not (?:find|open) file \"?([^\":]+)\"?")
UTC_NAMES = ("UTC", "GMT", "Etc/UTC", "+00", "+0000", "+00:00", "Z")

DEFAULTTABLESPACE_OID = 1663
GLOBALTABLESPACE_OID = 1664


class WaldumpError(DbarchError):
    """pg_waldump failed for another reason than reaching the end of the WAL."""


def parse_record(line):
    """One pg_waldump line -> dict (rmgr, xid, lsn, prev, total_len, kind, desc, blocks) or None
    for a line that is not a record (``-b`` details, a summary)."""
    match = _RECORD.match(line)
    if not match:
        return None
    desc = match.group("desc")
    blocks = [(int(spc), int(db), int(node)) for spc, db, node, _fork, _blk in _BLOCK_REF.findall(desc)]
    kind = desc.split(None, 1)[0].rstrip(",") if desc.strip() else ""
    return {
        "rmgr": match.group("rmgr"),
        "xid": int(match.group("xid")),
        "lsn": match.group("lsn").upper(),
        "prev": match.group("prev").upper(),
        "total_len": int(match.group("tot")),
        "kind": kind,
        "desc": desc,
        "blocks": blocks,
    }


def commit_time(text):
    """``2026-12-05 12:27:30.970240 UTC`` -> ``2026-12-05T12:27:30.970240+00:00`` (ISO 8601); a
    time in another zone keeps its zone name (``... CET``); None when there is no time."""
    match = _TIMESTAMP.match(text.strip())
    if not match:
        return None
    day, clock, zone = match.groups()
    if zone is None or zone.rstrip(";,") in UTC_NAMES:
        return "%sT%s+00:00" % (day, clock)
    return "%sT%s %s" % (day, clock, zone.rstrip(";,"))


def _xids(text):
    return [int(x) for x in text.split()]


def rel_path(ref):
    """(tablespace, database, relfilenode) -> the file's path under the data folder
    (``base/5/16384``, ``global/1262``; ``pg_tblspc/<spc>/<db>/<node>`` leaves out the version
    folder of a tablespace)."""
    spc, db, node = ref
    if spc == DEFAULTTABLESPACE_OID:
        return "base/%d/%d" % (db, node)
    if spc == GLOBALTABLESPACE_OID:
        return "global/%d" % node
    return "pg_tblspc/%d/%d/%d" % (spc, db, node)


class WalScan:
    """Transactions in a stretch of pg_waldump output (feed it line by line)."""

    def __init__(self):
        self.records = 0
        self.first_lsn = None
        self.last_lsn = None
        self.touched = {}  # xid -> set of (spc, db, node)
        self.parent = {}  # subxact -> top-level xid
        self.ends = {}  # top-level xid -> {"status", "time", "lsn", "gid"}
        self.order = []  # top-level xids in the order their end records came
        self.rolled_back = set()  # subtransactions rolled back on their own (ROLLBACK TO SAVEPOINT)
        self.prepared = {}  # xid -> {"gid", "time", "lsn"}

    def feed(self, line):
        rec = parse_record(line)
        if rec is None:
            return
        self.records += 1
        if self.first_lsn is None:
            self.first_lsn = rec["lsn"]
        self.last_lsn = rec["lsn"]
        xid = rec["xid"]
        if xid and rec["blocks"]:
            self.touched.setdefault(xid, set()).update(rec["blocks"])
        if rec["rmgr"] == "Transaction":
            self._transaction(rec)

    def _transaction(self, rec):
        desc, xid, kind = rec["desc"], rec["xid"], rec["kind"]
        if kind == "ASSIGNMENT":
            match = _ASSIGNMENT.match(desc)
            if match:
                top = int(match.group(1))
                for sub in _xids(match.group(2)):
                    self.parent[sub] = top
            return
        if kind == "PREPARE":
            match = _PREPARE.match(desc)
            self.prepared[xid] = {
                "gid": match.group(1) if match else None,
                "time": commit_time(match.group(2)) if match else None,
                "lsn": rec["lsn"],
            }
            return
        if kind in ("COMMIT_PREPARED", "ABORT_PREPARED"):
            match = _PREPARED_END.match(desc)
            if not match:
                return
            xid = int(match.group(2))
            rest = match.group(3)
            status = "committed" if match.group(1) == "COMMIT" else "aborted"
            gid = (self.prepared.pop(xid, None) or {}).get("gid")
        elif kind in ("COMMIT", "ABORT"):
            rest = desc[len(kind) :].strip()
            status = "committed" if kind == "COMMIT" else "aborted"
            gid = None
        else:
            return
        subs = _XID_LIST.search(rest)
        for sub in _xids(subs.group(1)) if subs else ():
            self.parent[sub] = xid
        if status == "aborted" and xid in self.parent:
            # ROLLBACK TO SAVEPOINT of a known subtransaction: its top-level transaction goes on.
            self.rolled_back.add(xid)
            return
        if xid not in self.ends:
            self.order.append(xid)
        self.ends[xid] = {"status": status, "time": commit_time(rest), "lsn": rec["lsn"], "gid": gid}

    def _top(self, xid):
        seen = set()
        while xid in self.parent and xid not in seen:
            seen.add(xid)
            xid = self.parent[xid]
        return xid

    def transactions(self):
        """{"committed": [{xid, commit_time, lsn, relations (set of refs), gid}],
        "aborted": [xid] (a rolled-back savepoint whose parent was not known yet is one too),
        "rolled_back": [xid] (savepoints of known parents), "prepared": [{xid, gid, time, lsn}],
        "in_progress": [xid]} in WAL order."""
        refs = {}
        for xid, touched in self.touched.items():
            if xid in self.rolled_back:
                continue
            refs.setdefault(self._top(xid), set()).update(touched)
        committed, aborted = [], []
        for xid in self.order:
            end = self.ends[xid]
            if end["status"] == "committed":
                committed.append(
                    {
                        "xid": xid,
                        "commit_time": end["time"],
                        "lsn": end["lsn"],
                        "gid": end["gid"],
                        "relations": refs.get(xid, set()),
                    }
                )
            else:
                aborted.append(xid)
        prepared = [dict(xid=xid, **info) for xid, info in sorted(self.prepared.items())]
        finished = set(self.ends) | set(self.prepared)
        in_progress = sorted(x for x in refs if x not in finished)
        return {
            "committed": committed,
            "aborted": aborted,
            "rolled_back": sorted(self.rolled_back),
            "prepared": prepared,
            "in_progress": in_progress,
        }


def end_of_wal(stderr):
    """How pg_waldump stopped, from its stderr: {"kind": "end" (the end of valid WAL),
    "no_record" (nothing valid at or after the start), "missing_file" (a WAL file is not there),
    "error" (anything else), "last_lsn", "detail"}."""
    text = (stderr or "").strip()
    match = _END_OF_WAL.search(text)
    if match:
        return {"kind": "end", "last_lsn": match.group(1).upper(), "detail": match.group(2).strip()}
    match = _NO_RECORD.search(text)
    if match:
        return {"kind": "no_record", "last_lsn": None, "detail": text.splitlines()[-1]}
    match = _NO_FILE.search(text)
    if match:
        return {
            "kind": "missing_file",
            "last_lsn": None,
            "detail": text.splitlines()[-1],
            "file": match.group(1),
        }
    return {"kind": "error", "last_lsn": None, "detail": text[-800:]}


def read(
    bindir,
    wal_dir,
    timeline,
    start_lsn,
    end_lsn=None,
    scan=None,
    run_as=None,
    env=None,
    timeout=None,
    segment_size=None,
):
    """Run pg_waldump over ``wal_dir`` on ``timeline`` from ``start_lsn`` (up to ``end_lsn``, or
    to the end of the WAL there) into ``scan`` (a WalScan, made when None). Returns
    (scan, stop) where ``stop`` is end_of_wal()'s dict, ``kind`` ``complete`` when pg_waldump
    reached ``end_lsn``. Raises WaldumpError for a failure that is not the end of the WAL.

    With ``segment_size``, the segment holding ``start_lsn`` is named to pg_waldump when it is in
    ``wal_dir``: without a file name pg_waldump reads the segment size from whichever file of the
    folder it lists first, and a preallocated segment never written (a zero header) fails it."""
    scan = scan if scan is not None else WalScan()
    argv = [os.path.join(bindir, "pg_waldump"), "-p", wal_dir, "-t", str(int(timeline)), "-s", start_lsn]
    if end_lsn:
        argv += ["-e", end_lsn]
    if segment_size:
        first = wal.segment_of_lsn(int(timeline), start_lsn, int(segment_size))
        if os.path.isfile(os.path.join(wal_dir, first)):
            argv.append(first)
    run_env = proc.clean_env(dict(env or {}, TZ="UTC"))
    try:
        res = proc.stream(
            argv, scan.feed, env=run_env, run_as=run_as, timeout=timeout, cwd="/", what="pg_waldump"
        )
    except proc.ProcError as exc:
        raise WaldumpError("reading the WAL in %s failed: %s" % (wal_dir, exc)) from None
    if res.returncode == 0:
        return scan, {"kind": "complete", "last_lsn": scan.last_lsn, "detail": None}
    stop = end_of_wal(res.stderr)
    if stop["kind"] == "error":
        raise WaldumpError(
            "pg_waldump could not read the WAL in %s from %s on timeline %s (exit %d): %s"
            % (wal_dir, start_lsn, timeline, res.returncode, stop["detail"])
        )
    return scan, stop
