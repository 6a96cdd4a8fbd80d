"""pitr without a database: targets, the WAL recovery reads, the settings written."""

import datetime

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal as wn
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import pitr

SEG = 16 * 1024 * 1024


def segs(*keys):
    return {(t, s): {"name": wn.segment_name(t, s, SEG)} for t, s in keys}


def test_exactly_one_target():
    with pytest.raises(pitr.PitrError, match="exactly one"):
        pitr.parse_target(target_xid="10", target_name="x")
    with pytest.raises(pitr.PitrError, match="exactly one"):
        pitr.parse_target()
    with pytest.raises(pitr.PitrError, match="not a transaction id"):
        pitr.parse_target(target_xid="abc")
    with pytest.raises(pitr.PitrError, match="latest or immediate|'latest' or 'immediate'"):
        pitr.parse_target(target="end")


def test_time_without_zone_is_utc_and_lsn_is_normalised():
    target = pitr.parse_target(target_time="2026-01-31 12:00:00")
    assert target["value"] == datetime.datetime(2026, 1, 31, 12, tzinfo=br.UTC)
    assert target["text"] == "2026-01-31T12:00:00+00:00"
    assert pitr.parse_target(target_lsn="0/3000028")["text"] == "0/3000028"
    assert pitr.parse_target(target_lsn="0/03000028")["value"] == 0x3000028


def test_settings_per_target_kind():
    cmd = "cp '/a/%f' '%p'"
    xid = pitr.recovery_settings(pitr.parse_target(target_xid="745"), False, "promote", cmd)
    assert xid == [
        ("restore_command", cmd),
        ("recovery_target_timeline", "latest"),
        ("recovery_target_xid", "745"),
        ("recovery_target_inclusive", "off"),
        ("recovery_target_action", "promote"),
    ]
    latest = pitr.recovery_settings(pitr.parse_target(target="latest"), True, "promote", cmd)
    assert [n for n, _v in latest] == ["restore_command", "recovery_target_timeline"]
    name = pitr.recovery_settings(pitr.parse_target(target_name="rp"), True, "pause", cmd)
    assert ("recovery_target_name", "rp") in name and ("recovery_target_action", "pause") in name
    assert all(n != "recovery_target_inclusive" for n, _v in name)


def test_replay_chain_stops_at_a_gap_and_names_what_follows():
    chain = pitr.replay_chain(3 * SEG + 100, 1, segs((1, 3), (1, 4), (1, 6)), {}, SEG)
    assert chain["names"] == [wn.segment_name(1, 3, SEG), wn.segment_name(1, 4, SEG)]
    assert chain["end_lsn"] == 5 * SEG
    assert chain["missing"] == wn.segment_name(1, 5, SEG)
    assert chain["later"] == [wn.segment_name(1, 6, SEG)]


def test_replay_chain_follows_the_newest_timeline():
    # Timeline 2 forked from 1 inside segment 4: recovery reads 1/3, then 2/4, 2/5.
    histories = {2: [(1, 4 * SEG + 500)]}
    chain = pitr.replay_chain(3 * SEG, 1, segs((1, 3), (1, 4), (2, 4), (2, 5)), histories, SEG)
    assert chain["names"] == [
        wn.segment_name(1, 3, SEG),
        wn.segment_name(2, 4, SEG),
        wn.segment_name(2, 5, SEG),
    ]
    assert chain["later"] == [] and chain["missing"] == wn.segment_name(2, 6, SEG)


class _FakeS3Repo:
    url = "s3://bucket/prod/main"
    endpoint_url = "http://127.0.0.1:9000"
    region = "eu-west-1"

    def __init__(self):
        self.fetched = []

    def wal_path(self, name, scratch):
        self.fetched.append(name)
        path = "%s/%s" % (scratch, name.split(".")[0])
        with open(path, "wb") as out:
            out.write(b"wal")
        return path


def test_s3_restore_command_carries_endpoint_and_region(tmp_path):
    script = tmp_path / "dbarch-wal"
    script.write_text("#!/usr/bin/python3\n")
    repo = _FakeS3Repo()
    archive = pitr.WalArchive(repo)
    command = pitr._restore_command(repo, archive, str(script), "/usr/bin/python3")
    assert command == (
        "/usr/bin/python3 %s --repo s3://bucket/prod/main --endpoint-url http://127.0.0.1:9000 "
        "--region eu-west-1 restore %%f %%p" % script
    )
    repo.region = "eu west"
    with pytest.raises(pitr.PitrError, match="space"):
        pitr._restore_command(repo, archive, str(script), "/usr/bin/python3")
    with pytest.raises(pitr.PitrError, match="not on this host"):
        pitr._restore_command(_FakeS3Repo(), archive, str(tmp_path / "missing"), "/usr/bin/python3")


def test_s3_wal_is_downloaded_once_into_the_cache(tmp_path):
    repo = _FakeS3Repo()
    archive = pitr.WalArchive(repo, cache=str(tmp_path))
    name = wn.segment_name(1, 3, SEG)
    first = archive.local_path(name, "/nonexistent")
    again = archive.local_path(name, "/nonexistent")
    assert first == again == str(tmp_path / name)
    assert repo.fetched == [name] and archive.downloaded == [name]
