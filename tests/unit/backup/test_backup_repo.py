"""backup_repo without a database: WAL names, gaps, replay across timelines, retention, S3 part sizes."""

import datetime
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal as wn

SEG = 16 * 1024 * 1024
UTC = datetime.timezone.utc  # noqa: UP017 - keep the module's own spelling


def name(tli, segno, seg=SEG):
    return wn.segment_name(tli, segno, seg)


def test_lsn_round_trip_and_segment_names():
    assert wn.parse_lsn("0/3000028") == 0x3000028
    assert wn.format_lsn(0x1_0000_0028) == "1/28"
    assert wn.segment_name(1, 3, SEG) == "000000010000000000000003"
    # 256 segments of 16 MiB per xlogid: segno 256 is the first of the next id.
    assert wn.segment_name(2, 256, SEG) == "000000020000000100000000"
    assert wn.segment_name(1, 3, 64 * 1024 * 1024) == "000000010000000000000003"
    info = wn.parse_wal_name("000000020000000100000000.gz", SEG)
    assert (info["kind"], info["timeline"], info["segno"], info["compression"]) == ("segment", 2, 256, "gz")
    assert wn.parse_wal_name("00000002.history", SEG)["kind"] == "history"
    assert wn.parse_wal_name("000000010000000000000004.partial", SEG)["kind"] == "partial"
    assert wn.parse_wal_name("000000010000000000000002.00000028.backup", SEG)["kind"] == "backup_history"
    assert wn.parse_wal_name("notes.txt", SEG) is None
    # With 1 GiB segments only 4 per xlogid exist: a low part of 4 or more is no segment.
    assert wn.parse_wal_name("000000010000000000000004", 1024 * 1024 * 1024) is None
    with pytest.raises(wn.WalError):
        wn.parse_lsn("3000028")


def test_gaps_name_every_missing_segment_per_timeline():
    segments = {(1, s) for s in (1, 2, 3, 6, 7)} | {(2, 7), (2, 9)}
    gaps = br.find_gaps(segments, SEG)
    assert [(g["timeline"], g["missing"]) for g in gaps] == [
        (1, [name(1, 4), name(1, 5)]),
        (2, [name(2, 8)]),
    ]
    assert gaps[0]["after"] == name(1, 3) and gaps[0]["before"] == name(1, 6)


def test_replay_follows_the_newest_timeline_of_the_history():
    # Timeline 2 branched from 1 at 0/7000100 (inside segment 7).
    histories = {2: wn.parse_history("1\t0/7000100\tno recovery target specified\n")}
    segments = {(1, s): {} for s in range(3, 9)} | {(2, s): {} for s in (7, 8, 9)}
    end, tli, missing = br.replay_end(0x3000028, 1, segments, histories, SEG)
    assert (end, tli, missing) == (10 * SEG, 2, name(2, 10))
    # Without timeline 2's copy of segment 8, replay stops after segment 7.
    del segments[(2, 8)]
    end, tli, missing = br.replay_end(0x3000028, 1, segments, histories, SEG)
    assert (end, tli, missing) == (8 * SEG, 2, name(2, 8))


def test_coverage_reports_window_and_gap_inside_it():
    t0 = datetime.datetime(2026, 11, 1, tzinfo=UTC)
    backups = [
        {
            "id": "20261101T000000Z",
            "usable": True,
            "status": "valid",
            "start_lsn": "0/2000028",
            "stop_lsn": "0/2000100",
            "stop_time": t0.isoformat(),
            "timeline": 1,
            "wal_segment_size": SEG,
        }
    ]
    wal = [{"name": name(1, s), "size": SEG, "mtime": t0.timestamp() + s} for s in (2, 3, 5)]
    cover = br.coverage(backups, wal, {})
    assert cover["earliest_lsn"] == "0/2000100"
    assert cover["latest_lsn"] == "0/4000000"
    assert cover["first_missing_segment"] == name(1, 4)
    assert [g["missing"] for g in cover["gaps_in_window"]] == [[name(1, 4)]]


def test_part_size_stays_within_s3_limits():
    assert br.choose_part_size(1) == br.S3_DEFAULT_PART
    for size in (5 * 1024**3, 200 * 1024**3, br.S3_MAX_OBJECT):
        part = br.choose_part_size(size)
        assert br.S3_MIN_PART <= part <= br.S3_MAX_PART
        assert -(-size // part) <= br.S3_MAX_PARTS
    with pytest.raises(br.RepositoryError):
        br.choose_part_size(br.S3_MAX_OBJECT + 1)


def test_local_metadata_is_atomic_and_incomplete_backups_are_not_listed(tmp_path):
    repo = br.LocalRepository(str(tmp_path / "repo"))
    repo.ensure()
    os.makedirs(repo.backup_dir("20261101T000000Z"))
    os.makedirs(repo.backup_dir("20261102T000000Z"))
    repo.write_metadata("20261102T000000Z", {"status": "valid", "stop_time": "2026-11-02T00:00:00+00:00"})
    assert [b["id"] for b in br.list_backups(repo)] == ["20261102T000000Z"]
    listed = br.list_backups(repo, include_incomplete=True)
    assert [(b["id"], b["status"]) for b in listed] == [
        ("20261101T000000Z", "incomplete"),
        ("20261102T000000Z", "valid"),
    ]
    assert not [n for n in os.listdir(repo.backup_dir("20261102T000000Z")) if n.startswith(".tmp")]
    with open(os.path.join(repo.backup_dir("20261102T000000Z"), br.METADATA_NAME)) as handle:
        assert json.load(handle)["status"] == "valid"


# -- retention: a property over random histories ----------------------------------------------


@st.composite
def histories(draw):
    """Random backup histories: backups with increasing LSNs/times, some unusable, WAL files."""
    count = draw(st.integers(min_value=0, max_value=8))
    base = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    backups, segno, hours = [], 2, 0
    for i in range(count):
        segno += draw(st.integers(min_value=0, max_value=5))
        hours += draw(st.integers(min_value=1, max_value=72))
        start = segno * SEG + 0x28
        stop = start + draw(st.integers(min_value=0, max_value=3)) * SEG + 0x100
        status = draw(st.sampled_from(["valid", "valid", "valid", "unverified", "invalid"]))
        backups.append(
            {
                "id": "2026%04dT000000Z" % i,
                "status": status,
                "usable": status in br.USABLE_STATUSES,
                "start_lsn": wn.format_lsn(start),
                "stop_lsn": wn.format_lsn(stop),
                "stop_time": (base + datetime.timedelta(hours=hours)).isoformat(),
                "timeline": 1,
                "wal_segment_size": SEG,
            }
        )
        segno = wn.segno_of(stop, SEG) + 1
    last = segno + draw(st.integers(min_value=0, max_value=5))
    present = draw(st.sets(st.integers(min_value=0, max_value=last), max_size=last + 1))
    wal = [{"name": name(1, s), "size": SEG, "mtime": 0} for s in sorted(present)]
    wal.append({"name": "00000001.history", "size": 40, "mtime": 0})
    now = base + datetime.timedelta(hours=hours + draw(st.integers(min_value=0, max_value=200)))
    retain_count = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=5)))
    retain_days = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=10)))
    return backups, wal, now, retain_count, retain_days


def restorable(backups, wal_names, t):
    """Can some usable backup with its WAL restore to time t?"""
    for b in backups:
        if not b["usable"] or br.parse_time(b["stop_time"]) > t:
            continue
        start_seg = wn.segno_of(wn.parse_lsn(b["start_lsn"]), SEG)
        needed = {name(1, s) for s in range(start_seg, start_seg + 40)}
        original_after = {n for n in wal_names["all"] if n in needed}
        if original_after <= wal_names["kept"]:
            return True
    return False


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(histories())
def test_retention_never_deletes_what_the_window_needs(history):
    backups, wal, now, retain_count, retain_days = history
    plan = br.plan_retention(backups, wal, now=now, retain_count=retain_count, retain_days=retain_days)
    usable = [b for b in backups if b["usable"]]
    kept = set(plan["keep"])
    deleted = set(plan["delete_backups"])
    # Only usable backups are touched; nothing is both kept and deleted; the newest survives.
    assert deleted <= {b["id"] for b in usable} and not kept & deleted
    if usable:
        newest = max(usable, key=lambda b: b["stop_time"])
        assert newest["id"] in kept
    else:
        assert not plan["delete_wal"]
    if retain_count is not None:
        newest_n = sorted(usable, key=lambda b: b["stop_time"])[-retain_count:]
        assert {b["id"] for b in newest_n} <= kept
    # History files are never removed; no WAL at or after the oldest kept start is removed.
    assert "00000001.history" not in plan["delete_wal"]
    if kept:
        oldest_start = min(wn.parse_lsn(b["start_lsn"]) for b in usable if b["id"] in kept)
        for wal_name in plan["delete_wal"]:
            assert (wn.parse_wal_name(wal_name, SEG)["segno"] + 1) * SEG <= oldest_start
    # Every point of the window that was restorable before retention still is.
    if retain_days is not None and usable:
        after = [b for b in backups if b["id"] not in deleted]
        names = {"all": {w["name"] for w in wal}, "kept": {w["name"] for w in wal} - set(plan["delete_wal"])}
        start = now - datetime.timedelta(days=retain_days)
        points = [start, now] + [br.parse_time(b["stop_time"]) for b in usable]
        for t in points:
            if start <= t <= now and restorable(backups, {"all": names["all"], "kept": names["all"]}, t):
                assert restorable(after, names, t), "retention broke the restore to %s" % t


def test_retention_keeps_the_backup_before_the_window():
    base = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    backups = [
        {
            "id": "2026000%dT000000Z" % i,
            "usable": True,
            "status": "valid",
            "start_lsn": wn.format_lsn((2 + 2 * i) * SEG + 0x28),
            "stop_lsn": wn.format_lsn((2 + 2 * i) * SEG + 0x100),
            "stop_time": (base + datetime.timedelta(days=i)).isoformat(),
            "wal_segment_size": SEG,
        }
        for i in range(5)
    ]
    wal = [{"name": name(1, s), "size": SEG, "mtime": 0} for s in range(2, 12)]
    plan = br.plan_retention(backups, wal, now=base + datetime.timedelta(days=4, hours=12), retain_days=2)
    # Window starts at day 2.5: backups of days 3 and 4 are inside, day 2 restores to the start.
    assert plan["keep"] == [b["id"] for b in backups[2:]]
    assert plan["delete_backups"] == [b["id"] for b in backups[:2]]
    assert plan["delete_wal"] == [name(1, s) for s in range(2, 6)]
    with pytest.raises(br.RepositoryError):
        br.plan_retention(backups, wal, retain_count=0)


def test_pg_waldump_commit_times_are_read_with_their_zone():
    from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup as bk  # noqa: PLC0415

    line = (
        "rmgr: Transaction len (rec/tot): 34/34, tx: 741, lsn: 0/0301E0A8, "
        "desc: COMMIT 2026-11-25 23:12:01.123456 UTC"
    )
    (stamp, zone) = bk._COMMIT.findall(line)[0]
    assert bk.parse_commit_time(stamp, zone) == datetime.datetime(2026, 11, 25, 23, 12, 1, 123456, tzinfo=UTC)
    later = bk.parse_commit_time("2026-11-25 23:12:01", "+02")
    assert later == datetime.datetime(2026, 11, 25, 21, 12, 1, tzinfo=UTC)
    assert bk.parse_commit_time("2026-11-25 23:12:01", "CET") is None
