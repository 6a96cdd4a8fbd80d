# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WAL name arithmetic: LSNs, segment numbers and names, timelines, history files.

Plain Python (standard library only), no Ansible imports. The one place that knows how
PostgreSQL names WAL files (``TTTTTTTTXXXXXXXXYYYYYYYY``: timeline, then the segment
number split into a "log id" and the segment within it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
COMPRESSED_SUFFIXES = (".gz", ".zst", ".lz4")
_LSN = re.compile(r"^\s*([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\s*$")
_SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?(\.gz|\.zst|\.lz4)?$")
_PLAIN_SEGMENT = re.compile(r"^[0-9A-F]{24}$")
_HISTORY = re.compile(r"^([0-9A-F]{8})\.history(\.gz|\.zst|\.lz4)?$")
_BACKUP_HISTORY = re.compile(
    r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.([0-9A-F]{8})\.backup(\.gz|\.zst|\.lz4)?$"
)


class WalError(DbarchError, ValueError):
    """A text that is not an LSN (or WAL name) where one was expected."""


def parse_lsn(text):
    """'0/3000028' -> 50331688."""
    match = _LSN.match(str(text or ""))
    if not match:
        raise WalError("%r is not an LSN (expected hex/hex such as 0/3000028)" % (text,))
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value):
    value = int(value)
    return "%X/%X" % (value >> 32, value & 0xFFFFFFFF)


def segments_per_id(segment_size):
    return 0x100000000 // int(segment_size)


def segno_of(lsn, segment_size):
    return int(lsn) // int(segment_size)


def segment_name(timeline, segno, segment_size):
    per = segments_per_id(segment_size)
    return "%08X%08X%08X" % (int(timeline), segno // per, segno % per)


def segment_of_lsn(timeline, lsn, segment_size=DEFAULT_SEGMENT_SIZE):
    """Name of the segment holding ``lsn`` (an int or 'X/Y') on ``timeline`` (pg_walfile_name)."""
    if not isinstance(lsn, int):
        lsn = parse_lsn(lsn)
    return segment_name(timeline, segno_of(lsn, segment_size), segment_size)


def newest_timeline_holding(names, lsn, segment_size=DEFAULT_SEGMENT_SIZE):
    """The newest timeline among the segment file ``names`` (a pg_wal listing) whose segment holds the
    last byte before ``lsn``; 0 when none does (or ``lsn`` is 0/None).

    A standby that followed a new timeline received that timeline's segments; until its next
    restartpoint its control file still names the old timeline, so its files tell where it is."""
    if not lsn:
        return 0
    if not isinstance(lsn, int):
        lsn = parse_lsn(lsn)
    per = segments_per_id(segment_size)
    segno = segno_of(lsn - 1, segment_size)
    suffix = "%08X%08X" % (segno // per, segno % per)
    found = [int(n[:8], 16) for n in names if _PLAIN_SEGMENT.match(n or "") and n.endswith(suffix)]
    return max(found or [0])


def timeline_of(name):
    """Timeline of a segment or history file name ('00000002...' -> 2); None for None/''."""
    if not name:
        return None
    return int(name[:8], 16)


def parse_wal_name(name, segment_size=DEFAULT_SEGMENT_SIZE):
    """Classify a file of the WAL archive.

    Returns a dict with ``kind`` (segment, partial, history, backup_history) and, as it
    applies, ``timeline``, ``segno``, ``compression``; None for a name that is not WAL.
    """
    match = _SEGMENT.match(name)
    if match:
        per = segments_per_id(segment_size)
        low = int(match.group(3), 16)
        if low >= per:
            return None
        return {
            "name": name,
            "kind": "partial" if match.group(4) else "segment",
            "timeline": int(match.group(1), 16),
            "segno": int(match.group(2), 16) * per + low,
            "compression": (match.group(5) or "")[1:] or None,
        }
    match = _HISTORY.match(name)
    if match:
        return {
            "name": name,
            "kind": "history",
            "timeline": int(match.group(1), 16),
            "compression": (match.group(2) or "")[1:] or None,
        }
    match = _BACKUP_HISTORY.match(name)
    if match:
        per = segments_per_id(segment_size)
        return {
            "name": name,
            "kind": "backup_history",
            "timeline": int(match.group(1), 16),
            "segno": int(match.group(2), 16) * per + int(match.group(3), 16),
            "compression": (match.group(5) or "")[1:] or None,
        }
    return None


def parse_history(text):
    """Lines of a timeline history file -> [(parent_timeline, switch_lsn)], oldest first."""
    entries = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        entries.append((int(fields[0]), parse_lsn(fields[1])))
    return entries


def timeline_chain(target_tli, histories):
    """[(timeline, begin_lsn, end_lsn or None)] of ``target_tli``'s history, oldest first.

    ``histories``: {timeline: parse_history() entries}."""
    entries = histories.get(target_tli) or []
    chain = []
    begin = 0
    for parent, switch in entries:
        chain.append((parent, begin, switch))
        begin = switch
    chain.append((target_tli, begin, None))
    return chain


def wal_file_end(info, segment_size):
    """First LSN after a WAL archive file (None for history files, which are never removed)."""
    if info["kind"] in ("segment", "partial", "backup_history"):
        return (info["segno"] + 1) * segment_size
    return None
