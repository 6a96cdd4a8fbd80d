# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pitr_restore from an S3 repository against moto's S3 server, end to end.

The backup is taken by the basebackup module into S3, the WAL archived into S3 by dbarch-wal
(archive_command with --endpoint-url; the credentials in the source server's environment),
then pitr_restore restores from S3 to a restore point and to latest with the credentials
given as module options only (the test process has none in its environment by then).
"""

import os
import subprocess
import time

import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal as wn
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

WAL_SCRIPT = harness.WAL_SCRIPT
SERVER_PYTHON = "/usr/bin/python3"
SECRET = "moto-secret-that-must-stay-out-of-files"

# The S3 transport does not depend on the major (test_pitr.py restores on every major): one runs it.
pytestmark = pytest.mark.pg_versions(15)


_play = harness.play
_task = harness.task


def _wait_archived(cluster, segment, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        last = cluster.query("SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
        if last is not None and last >= segment:
            return
        time.sleep(0.2)
    failed = cluster.query("SELECT last_failed_wal, failed_count FROM pg_stat_archiver")[0]
    running = subprocess.run(
        ["ps", "-eo", "pid,etime,args"], capture_output=True, text=True, check=False
    ).stdout
    raise AssertionError(
        "segment %s not archived within %ss (archiver: %s)\n%s\n%s"
        % (
            segment,
            timeout,
            failed,
            "\n".join(line for line in running.splitlines() if "dbarch-wal" in line or "archiver" in line),
            lc.file_tail(cluster.cluster.log_file, 40),
        )
    )


def _rows(data_dir, major):
    cluster = lc.LocalCluster(data_dir, bindir=lc.find_bindir(major))
    rows = [int(r) for r in cluster.psql("SELECT id FROM t ORDER BY id")]
    cluster.destroy()
    return rows


def _files_holding(top, needle):
    found = []
    for root, _dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                if needle in handle.read():
                    found.append(path)
    return found


def test_restore_from_s3_to_a_restore_point_and_latest(pg, bucket, moto, run_playbook, workdir, monkeypatch):
    check = subprocess.run(
        ["runuser", "-u", "postgres", "--", SERVER_PYTHON, "-c", "import boto3"],
        capture_output=True,
        check=False,
    )
    if check.returncode != 0:
        pytest.fail(
            "the server's restore_command needs boto3 for %s: apt-get install python3-boto3" % SERVER_PYTHON
        )
    client, name = bucket
    repository = "s3://%s/pitr/main" % name
    s3 = dict(repository=repository, endpoint_url=moto, region="us-east-1")
    settings = {
        "archive_mode": "on",
        "archive_command": "%s %s --repo %s --endpoint-url %s --region us-east-1 archive %%p %%f"
        % (SERVER_PYTHON, WAL_SCRIPT, repository, moto),
        "wal_level": "replica",
    }
    # The source server gets the credentials through its environment (set by the fixture).
    source = harness.start_cluster(pg.major, workdir=workdir, name="s3source", settings=settings)
    try:
        source.query("CREATE TABLE t (id int PRIMARY KEY)")
        backup = (
            run_playbook(
                _play(_task("basebackup", "Backup", staging_dir=workdir, **dict(source.conn_params, **s3))),
                env=harness.S3_CREDENTIALS,
            )
            .assert_ok()
            .task("Backup")["result"]
        )
        meta = backup["metadata"]
        manifest = "pitr/main/backups/%s/data/backup_manifest" % meta["id"]
        assert client.head_object(Bucket=name, Key=manifest)["ContentLength"] > 0, "verify checks against it"
        for i in (1, 2, 3):
            source.query("INSERT INTO t VALUES (%s)", (i,))
        source.query("SELECT pg_switch_wal()")
        source.query("SELECT pg_create_restore_point('rp_s3')")
        for i in (4, 5, 6):
            source.query("INSERT INTO t VALUES (%s)", (i,))
            if i < 6:
                source.query("SELECT pg_switch_wal()")
        # Switch right after a write: a switch of an empty segment is a no-op.
        last = source.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        _wait_archived(source, last)
    finally:
        source.stop()

    # From here on the only credentials are the module options (and the server's environment).
    for key in harness.S3_CREDENTIALS:
        monkeypatch.delenv(key, raising=False)
    creds = dict(aws_access_key_id=harness.S3_CREDENTIALS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=SECRET)
    options = dict(s3, wal_script=WAL_SCRIPT, python=SERVER_PYTHON, **creds)

    # Check mode: the choice and the WAL checks, downloading only WAL; nothing written.
    data_dir = os.path.join(workdir, "rp", "data")
    staging = os.path.join(workdir, "staging")
    os.makedirs(staging)
    checked = (
        run_playbook(
            _play(
                _task(
                    "pitr_restore",
                    "Restore",
                    data_dir=data_dir,
                    port=lc.free_port(),
                    target_name="rp_s3",
                    **options,
                )
            ),
            check=True,
        )
        .assert_ok()
        .task("Restore")["result"]
    )
    assert checked["backup_id"] == meta["id"] and "RESTORE_POINT" in checked["coverage"]["stops_at"]
    assert checked["wal_downloaded"] and all(len(n) == 24 for n in checked["wal_downloaded"])
    command = checked["restore_command"]
    assert command == "%s %s --repo %s --endpoint-url %s --region us-east-1 restore %%f %%p" % (
        SERVER_PYTHON,
        WAL_SCRIPT,
        repository,
        moto,
    )
    assert SECRET not in str(checked)
    assert not os.path.exists(os.path.dirname(data_dir)), "check mode must not create anything"

    # To the restore point, staging under staging_dir.
    done = (
        run_playbook(
            _play(
                _task(
                    "pitr_restore",
                    "Restore",
                    data_dir=data_dir,
                    port=lc.free_port(),
                    target_name="rp_s3",
                    staging_dir=staging,
                    **options,
                )
            )
        )
        .assert_ok()
        .task("Restore")["result"]
    )
    assert done["backup_id"] == meta["id"] and done["timeline"] == 2
    assert list(done["phases"]) == ["fetch", "extract", "verify", "wal_replay", "promotion", "first_query"]
    assert done["rto_seconds"] >= sum(done["phases"].values()) - 0.01
    assert os.listdir(staging) == [], "the staging folder was not removed"
    auto = lc.read_text(os.path.join(data_dir, "postgresql.auto.conf"))
    assert "restore_command = '%s'" % command in auto
    assert _files_holding(os.path.dirname(data_dir), SECRET.encode()) == []
    assert _rows(data_dir, pg.major) == [1, 2, 3]

    # To latest, staging beside data_dir (default).
    latest_dir = os.path.join(workdir, "latest", "data")
    done = (
        run_playbook(
            _play(
                _task(
                    "pitr_restore",
                    "Restore",
                    data_dir=latest_dir,
                    port=lc.free_port(),
                    target="latest",
                    **options,
                )
            )
        )
        .assert_ok()
        .task("Restore")["result"]
    )
    assert done["timeline"] == 2
    assert not [n for n in os.listdir(os.path.dirname(latest_dir)) if n.startswith("dbarch-pitr-fetch-")]
    assert _rows(latest_dir, pg.major) == [1, 2, 3, 4, 5, 6]

    # A WAL object missing inside the window: refused before anything is written, segment named.
    size = int(meta["wal_segment_size"])
    segno = wn.segno_of(wn.parse_lsn(meta["stop_lsn"]), size) + 1
    segment = wn.segment_name(int(meta["timeline"]), segno, size)
    key = "pitr/main/wal/%s" % segment
    saved = client.get_object(Bucket=name, Key=key)
    body, metadata = saved["Body"].read(), saved["Metadata"]
    client.delete_object(Bucket=name, Key=key)
    gap_dir = os.path.join(workdir, "gap", "data")
    failed = run_playbook(
        _play(
            _task(
                "pitr_restore", "Restore", data_dir=gap_dir, port=lc.free_port(), target="latest", **options
            )
        )
    ).task("Restore")
    assert failed["status"] == "failed"
    assert "WAL segment %s is missing from %s/wal" % (segment, repository) in failed["result"]["msg"]
    assert not os.path.exists(os.path.dirname(gap_dir))
    client.put_object(Bucket=name, Key=key, Body=body, Metadata=metadata)

    # A flipped byte in a backup object (same size, same sha256 metadata): the file is named.
    base_key = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=name, Prefix="pitr/main/backups/%s/data/" % meta["id"])[
            "Contents"
        ]
        if o["Key"].split("/data/", 1)[1].startswith("base.tar")
    ][0]
    saved = client.get_object(Bucket=name, Key=base_key)
    data = bytearray(saved["Body"].read())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=name, Key=base_key, Body=bytes(data), Metadata=saved["Metadata"])
    bad_dir = os.path.join(workdir, "bad", "data")
    failed = run_playbook(
        _play(
            _task(
                "pitr_restore", "Restore", data_dir=bad_dir, port=lc.free_port(), target="latest", **options
            )
        )
    ).task("Restore")
    assert failed["status"] == "failed"
    rel = base_key.split("/data/", 1)[1]
    assert "%s (checksum differs)" % rel in failed["result"]["msg"]
    assert not [n for n in os.listdir(os.path.dirname(bad_dir)) if n.startswith("dbarch-pitr-fetch-")]
    assert os.listdir(bad_dir) == []
