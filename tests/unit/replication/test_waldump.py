# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pg_waldump parser on real output of PostgreSQL 14 to 18 (data/capture.py wrote it: a
workload of known transactions, their xids and relfilenodes in data/waldump_pg<major>.json)."""

import json
import os

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import waldump as wd

DATA = os.path.join(os.path.dirname(__file__), "data")
MAJORS = (14, 15, 16, 17, 18)


def sample(major):
    base = os.path.join(DATA, "waldump_pg%d" % major)
    with open(base + ".txt") as handle:
        lines = handle.read().splitlines()
    with open(base + ".stderr") as handle:
        rc_line, stderr = handle.read().split("\n", 1)
    with open(base + ".json") as handle:
        meta = json.load(handle)
    return lines, int(rc_line.split("=")[1]), stderr, meta


def scanned(major):
    lines, _rc, _stderr, meta = sample(major)
    scan = wd.WalScan()
    for line in lines:
        scan.feed(line)
    return scan, scan.transactions(), meta


def rel(meta, name):
    return (1663, meta["dboid"], meta["relfilenodes"][name])


@pytest.mark.parametrize("major", MAJORS)
def test_every_line_is_a_record(major):
    lines, _rc, _stderr, _meta = sample(major)
    scan, _tx, _meta = scanned(major)
    assert scan.records == len(lines) > 100
    assert all(wd.parse_record(line) for line in lines)


@pytest.mark.parametrize("major", MAJORS)
def test_committed_transactions_and_their_relations(major):
    _scan, tx, meta = scanned(major)
    xids = meta["xids"]
    committed = {t["xid"]: t for t in tx["committed"]}
    for name in ("committed", "with_subxact", "delete", "many_subxacts", "bulk", "toast", "prepared", "last"):
        assert xids[name] in committed, name
    lost_rows, lost_rows_pkey = rel(meta, "public.lost_rows"), rel(meta, "public.lost_rows_pkey")
    mixed, mixed_pkey = rel(meta, 'app."Mixed Case"'), rel(meta, 'app."Mixed Case_pkey"')
    assert committed[xids["committed"]]["relations"] == {lost_rows, lost_rows_pkey}
    # A released savepoint's rows belong to the top-level transaction; the UPDATE under the
    # rolled-back savepoint touched lost_rows, which the INSERT touched anyway.
    assert committed[xids["with_subxact"]]["relations"] >= {lost_rows, mixed, mixed_pkey}
    # 70 subtransactions: an ASSIGNMENT record and the COMMIT's subxacts list fold them in.
    assert committed[xids["many_subxacts"]]["relations"] >= {lost_rows, mixed, mixed_pkey}
    assert lost_rows in committed[xids["bulk"]]["relations"]
    toast = rel(meta, "toast_of_lost_rows")
    assert {lost_rows, toast} <= committed[xids["toast"]]["relations"]
    assert committed[xids["prepared"]]["gid"] == "p1"
    assert committed[xids["delete"]]["relations"] == {lost_rows}


@pytest.mark.parametrize("major", MAJORS)
def test_aborted_and_rolled_back_are_not_lost(major):
    _scan, tx, meta = scanned(major)
    committed = {t["xid"] for t in tx["committed"]}
    assert meta["xids"]["aborted"] in tx["aborted"]
    assert meta["xids"]["aborted"] not in committed
    assert tx["prepared"] == []  # p1 was committed in the range
    assert tx["in_progress"] == []


@pytest.mark.parametrize("major", MAJORS)
def test_commit_times_are_iso_utc_and_in_wal_order(major):
    _scan, tx, _meta = scanned(major)
    times = [t["commit_time"] for t in tx["committed"]]
    assert all(t and t.endswith("+00:00") and "T" in t for t in times)
    assert times == sorted(times)
    lsns = [t["lsn"] for t in tx["committed"]]
    assert lsns == sorted(lsns, key=lambda text: (int(text.split("/")[0], 16), int(text.split("/")[1], 16)))


@pytest.mark.parametrize("major", MAJORS)
def test_end_of_wal_is_recognised(major):
    _lines, rc, stderr, _meta = sample(major)
    stop = wd.end_of_wal(stderr)
    assert rc == 1
    assert stop["kind"] == "end"
    assert "invalid record length" in stop["detail"]


def test_a_transaction_without_end_record_is_in_progress_and_prepared_stays_prepared():
    lines = [
        "rmgr: Heap        len (rec/tot):     63/    63, tx:        900, lsn: 0/03000028, prev 0/03000000, "
        "desc: INSERT off: 1, flags: 0x00, blkref #0: rel 1663/5/16384 blk 0",
        "rmgr: Heap        len (rec/tot):     63/    63, tx:        901, lsn: 0/03000068, prev 0/03000028, "
        "desc: INSERT off: 2, flags: 0x00, blkref #0: rel 1663/5/16384 blk 0",
        "rmgr: Transaction len (rec/tot):    242/   242, tx:        901, lsn: 0/030000A8, prev 0/03000068, "
        "desc: PREPARE gid tx-a: 2026-12-05 12:31:57.027387 UTC",
        "rmgr: Transaction len (rec/tot):     42/    42, tx:          0, lsn: 0/030001A0, prev 0/030000A8, "
        "desc: ABORT_PREPARED 777: 2026-12-05 12:31:58.000000 UTC",
    ]
    scan = wd.WalScan()
    for line in lines:
        scan.feed(line)
    tx = scan.transactions()
    assert tx["committed"] == []
    assert tx["in_progress"] == [900]
    assert [p["xid"] for p in tx["prepared"]] == [901]
    assert tx["prepared"][0]["gid"] == "tx-a"
    assert tx["aborted"] == [777]


def test_commit_time_other_zone_kept():
    assert wd.commit_time("2026-12-05 13:27:30.5 CET; rels: x") == "2026-12-05T13:27:30.5 CET"
    assert wd.commit_time("2026-12-05 12:27:30 UTC") == "2026-12-05T12:27:30+00:00"
    assert wd.commit_time("no time") is None


def test_stderr_kinds():
    assert (
        wd.end_of_wal("pg_waldump: error: could not find a valid record after 0/3000108")["kind"]
        == "no_record"
    )
    missing = wd.end_of_wal('pg_waldump: fatal: could not find file "000000010000000000000004": No such file')
    assert missing["kind"] == "missing_file"
    assert missing["file"] == "000000010000000000000004"
    assert wd.end_of_wal("pg_waldump: error: out of memory")["kind"] == "error"


def test_rel_paths():
    assert wd.rel_path((1663, 5, 16384)) == "base/5/16384"
    assert wd.rel_path((1664, 0, 1262)) == "global/1262"
    assert wd.rel_path((16500, 5, 16384)) == "pg_tblspc/16500/5/16384"


def test_lines_that_are_not_records_are_ignored():
    scan = wd.WalScan()
    scan.feed("\tblkref #0: rel 1663/5/16384 fork main blk 0 (FPW); hole: offset: 44, length: 4052")
    scan.feed("")
    assert scan.records == 0
