"""module_utils/pgbackrest.py without a database: config text, secrets, restore options, info parsing.

The real pgBackRest runs in tests/integration/test_pgbackrest.py; the info document below is the
shape pgBackRest 2.45 printed there (`info --output=json`).
"""

import datetime
import os
import pwd
import stat

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal as wn
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import pgbackrest as pgbr
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import pitr
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc

INFO = {
    "archive": [
        {
            "database": {"id": 1, "repo-key": 1},
            "id": "15-1",
            "max": "000000010000000000000005",
            "min": "000000010000000000000001",
        }
    ],
    "backup": [
        {
            "archive": {"start": "000000010000000000000003", "stop": "000000010000000000000004"},
            "backrest": {"format": 5, "version": "2.45"},
            "database": {"id": 1, "repo-key": 1},
            "error": False,
            "info": {"delta": 22987179, "repository": {"delta": 2821399, "size": 2821399}, "size": 22987179},
            "label": "20261126-020753F",
            "lsn": {"start": "0/3000028", "stop": "0/4000050"},
            "prior": None,
            "reference": None,
            "timestamp": {"start": 1795658873, "stop": 1795658876},
            "type": "full",
        }
    ],
    "cipher": "none",
    "db": [{"id": 1, "repo-key": 1, "system-id": 7712296122416293616, "version": "15"}],
    "name": "main",
    "repo": [{"cipher": "none", "key": 1, "status": {"code": 0, "message": "ok"}}],
    "status": {"code": 0, "lock": {"backup": {"held": False}}, "message": "ok"},
}
PG = {"path": "/srv/pg/data", "port": 5433, "socket-path": "/srv/pg/run", "user": "postgres"}


def test_folder_config_with_count_retention_and_compression():
    text = pgbr.render_config(
        "main",
        "/var/backups/pgbr",
        "/var/spool/pgbackrest/dbarch-main",
        pg=PG,
        compression="zstd",
        retain_count=3,
    )
    lines = text.splitlines()
    assert lines[1] == "[global]"
    assert "repo1-path=/var/backups/pgbr" in lines
    assert "repo1-retention-full=3" in lines and "compress-type=zst" in lines and "start-fast=y" in lines
    assert "log-path=/var/spool/pgbackrest/dbarch-main/log" in lines
    assert "lock-path=/var/spool/pgbackrest/dbarch-main/lock" in lines
    assert lines[lines.index("[main]") + 1 :] == [
        "pg1-path=/srv/pg/data",
        "pg1-port=5433",
        "pg1-socket-path=/srv/pg/run",
        "pg1-user=postgres",
    ]
    # Deterministic: the same input renders the same bytes (the module's idempotence rests on it).
    assert text == pgbr.render_config(
        "main",
        "/var/backups/pgbr",
        "/var/spool/pgbackrest/dbarch-main",
        pg=PG,
        compression="zstd",
        retain_count=3,
    )


@pytest.mark.parametrize(
    ("ours", "theirs"), [("gzip", "gz"), ("lz4", "lz4"), ("zstd", "zst"), ("none", "none")]
)
def test_compression_names(ours, theirs):
    assert "compress-type=%s\n" % theirs in pgbr.render_config("s", "/r", "/w", compression=ours)


def test_time_retention_rounds_days_up_and_refuses_both_rules():
    text = pgbr.render_config("s", "/r", "/w", retain_days=6.5, checkpoint="spread")
    assert "repo1-retention-full-type=time\n" in text and "repo1-retention-full=7\n" in text
    assert "start-fast=n\n" in text
    with pytest.raises(pgbr.PgBackRestError, match="by count or by time"):
        pgbr.render_config("s", "/r", "/w", retain_count=2, retain_days=7)


def test_s3_config_keys_only_in_file_and_masked():
    s3 = {
        "endpoint_url": "https://minio.example.com:9000",
        "region": "eu-west-1",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "very-secret",
    }
    text = pgbr.render_config("main", "s3://bucket/prod/main", "/w", s3=s3)
    assert (
        "repo1-type=s3\n" in text and "repo1-s3-bucket=bucket\n" in text and "repo1-path=/prod/main\n" in text
    )
    assert "repo1-s3-endpoint=minio.example.com\n" in text and "repo1-storage-port=9000\n" in text
    assert "repo1-s3-uri-style=path\n" in text and "repo1-s3-region=eu-west-1\n" in text
    assert "repo1-s3-key-secret=very-secret\n" in text
    shown = pgbr.masked(text)
    assert "very-secret" not in shown and "AKIDEXAMPLE" not in shown
    assert "repo1-s3-key-secret=********\n" in shown
    assert proc.mask("error near very-secret", pgbr.secrets_of(text)) == "error near ********"


def test_s3_without_keys_uses_instance_credentials_and_refuses_plain_http(monkeypatch):
    for name in pgbr.SECRET_ENV:
        monkeypatch.delenv(name, raising=False)
    text = pgbr.render_config("main", "s3://bucket", "/w", s3={"region": "us-west-2"})
    assert "repo1-s3-key-type=auto\n" in text and "repo1-s3-endpoint=s3.us-west-2.amazonaws.com\n" in text
    assert "repo1-path=/\n" in text
    with pytest.raises(pgbr.PgBackRestError, match="TLS"):
        pgbr.render_config("main", "s3://bucket", "/w", s3={"endpoint_url": "http://localhost:9000"})
    with pytest.raises(pgbr.PgBackRestError, match="both"):
        pgbr.render_config("main", "s3://bucket", "/w", s3={"aws_access_key_id": "x"})


def test_bad_names_and_paths_are_refused():
    with pytest.raises(pgbr.PgBackRestError, match="stanza"):
        pgbr.render_config("bad stanza", "/r", "/w")
    with pytest.raises(pgbr.PgBackRestError, match="unquoted"):
        pgbr.archive_command("/etc/pg backrest/x.conf", "main")
    with pytest.raises(pgbr.PgBackRestError, match="absolute"):
        pgbr.render_config("main", "relative/repo", "/w")


def test_archive_command():
    assert (
        pgbr.archive_command("/etc/pgbackrest/dbarch-main.conf", "main")
        == "/usr/bin/pgbackrest --config /etc/pgbackrest/dbarch-main.conf --stanza=main archive-push %p"
    )


@pytest.mark.parametrize(
    ("given", "inclusive", "expected"),
    [
        ({"target": "latest"}, True, ["--type=default", "--target-timeline=latest"]),
        (
            {"target": "immediate"},
            True,
            ["--type=immediate", "--target-action=promote", "--target-timeline=latest"],
        ),
        (
            {"target_name": "before_42"},
            True,
            ["--type=name", "--target=before_42", "--target-action=promote", "--target-timeline=latest"],
        ),
        (
            {"target_xid": "1234"},
            False,
            [
                "--type=xid",
                "--target=1234",
                "--target-action=promote",
                "--target-exclusive",
                "--target-timeline=latest",
            ],
        ),
        (
            {"target_lsn": "0/3000028"},
            True,
            ["--type=lsn", "--target=0/3000028", "--target-action=promote", "--target-timeline=latest"],
        ),
    ],
)
def test_restore_args(given, inclusive, expected):
    assert pgbr.restore_args(pitr.parse_target(**given), inclusive=inclusive) == expected


def test_restore_args_time_pause_current_timeline_delta():
    target = pitr.parse_target(target_time="2026-11-26 02:00:00+00")
    args = pgbr.restore_args(target, target_action="pause", target_timeline="current", delta=True)
    assert args == [
        "--type=time",
        "--target=2026-11-26 02:00:00.000000+00",
        "--target-action=pause",
        "--target-timeline=current",
        "--delta",
    ]
    with pytest.raises(pgbr.PgBackRestError):
        pgbr.restore_args(target, target_timeline="newest")


def test_info_becomes_the_native_backup_list():
    (backup,) = pgbr.backups_from_info(INFO)
    assert backup["id"] == backup["label"] == "20261126-020753F"
    assert backup["start_lsn"] == "0/3000028" and backup["stop_lsn"] == "0/4000050"
    assert backup["start_wal"] == "000000010000000000000003" and backup["timeline"] == 1
    assert backup["start_time"] == "2026-11-26T02:07:53+00:00"
    assert backup["stop_time"] == "2026-11-26T02:07:56+00:00"
    assert backup["system_identifier"] == "7712296122416293616" and backup["pg_major"] == 15
    assert backup["database_bytes"] == 22987179 and backup["stored_bytes"] == 2821399
    assert backup["usable"] and backup["status"] == "valid"


def test_coverage_and_findings_from_a_listing():
    backups = pgbr.backups_from_info(INFO)
    entries = [
        {"name": wn.segment_name(1, n, br.DEFAULT_SEGMENT_SIZE), "size": 1, "mtime": 1795658880 + n}
        for n in (1, 2, 3, 4, 5, 7)
    ]
    wal = br.coverage(backups, entries, {})
    assert wal["latest_lsn"] == "0/6000000" and wal["first_missing_segment"] == "000000010000000000000006"
    assert [g["missing"] for g in wal["gaps_in_window"]] == [["000000010000000000000006"]]
    now = datetime.datetime(2026, 11, 26, 5, 0, tzinfo=br.UTC)
    found = pgbr.findings_for(backups, wal, INFO, "stanza main", 26, now=now)
    assert [f.rule for f in found] == ["WAL-GAP"]
    stale = pgbr.findings_for(backups, wal, INFO, "stanza main", 1, now=now)
    assert sorted(f.rule for f in stale) == ["BACKUP-STALE", "WAL-GAP"]
    broken = dict(INFO, backup=[dict(INFO["backup"][0], error=True)], status={"code": 3, "message": "boom"})
    rules = sorted(f.rule for f in pgbr.findings_for(pgbr.backups_from_info(broken), {}, broken, "s", 26))
    assert rules == ["BACKUP-INVALID", "BACKUP-NONE", "PGBACKREST-STATUS"]


def test_write_config_is_private_and_idempotent(tmp_path):
    me = pwd.getpwuid(os.geteuid()).pw_name
    path = str(tmp_path / "etc" / "main.conf")
    assert pgbr.write_config(path, "[global]\n", me) is True
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert pgbr.write_config(path, "[global]\n", me) is False
    assert pgbr.write_config(path, "[global]\nx=1\n", me) is True


def test_expected_backup_follows_the_target():
    backups = pgbr.backups_from_info(INFO)
    assert pgbr.expected_backup(backups, pitr.parse_target(target="latest")) == "20261126-020753F"
    later = pitr.parse_target(target_time="2026-11-26 02:10:00+00")
    assert pgbr.expected_backup(backups, later) == "20261126-020753F"
    assert pgbr.expected_backup(backups, pitr.parse_target(target_name="x")) is None
    with pytest.raises(pitr.PitrError, match="before the end of the oldest usable backup"):
        pgbr.expected_backup(backups, pitr.parse_target(target_time="2026-11-26 02:07:54+00"))
    with pytest.raises(pitr.PitrError, match="stop_lsn 0/4000050"):
        pgbr.expected_backup(backups, pitr.parse_target(target_lsn="0/3000000"))


def test_extra_options_replace_derived_ones_and_secrets_are_masked():
    text = pgbr.render_config(
        "main",
        "/r",
        "/w",
        compression="gzip",
        extra={
            "compress-type": "lz4",
            "process-max": 4,
            "repo1-storage-verify-tls": False,
            "repo1-cipher-pass": "pw1",
        },
    )
    assert "compress-type=lz4\n" in text and "compress-type=gz" not in text
    assert "process-max=4\n" in text and "repo1-storage-verify-tls=n\n" in text
    assert "pw1" not in pgbr.masked(text) and "repo1-cipher-pass=********" in pgbr.masked(text)
    with pytest.raises(pgbr.PgBackRestError, match="pg1-"):
        pgbr.render_config("main", "/r", "/w", extra={"pg1-path": "/x"})
    with pytest.raises(pgbr.PgBackRestError):
        pgbr.render_config("main", "/r", "/w", extra={"bad name": "x"})
