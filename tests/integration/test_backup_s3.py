# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""S3 repositories end to end against moto's S3 server: backup, list, verify, retention, WAL."""

import hashlib
import os
import subprocess
import sys

import boto3
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br

NEWEST = harness.versions_under_test()[-1]
WAL_SCRIPT = harness.WAL_SCRIPT
CREDENTIALS = harness.S3_CREDENTIALS


play = harness.play
task = harness.task


def test_upload_checks_every_object_and_multipart_limits(bucket, moto, tmp_path):
    client, name = bucket
    repo = br.S3Repository("s3://%s/unit" % name, endpoint_url=moto, part_size=br.S3_MIN_PART, sse="AES256")
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(12 * 1024 * 1024 + 5))
    done = repo.upload_file(str(path), repo.key("blob"))
    assert done["parts"] == 3 and done["part_size"] == br.S3_MIN_PART
    head = client.head_object(Bucket=name, Key="unit/blob")
    assert head["Metadata"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert head["ServerSideEncryption"] == "AES256"


def test_upload_with_kms_encryption(bucket, moto, tmp_path):
    client, name = bucket
    key_id = boto3.client("kms", endpoint_url=moto).create_key()["KeyMetadata"]["KeyId"]
    repo = br.S3Repository("s3://%s/kms" % name, endpoint_url=moto, sse="aws:kms", sse_kms_key_id=key_id)
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(6 * 1024 * 1024))
    repo.part_size = br.S3_MIN_PART
    assert repo.upload_file(str(path), repo.key("blob"))["parts"] == 2
    head = client.head_object(Bucket=name, Key="kms/blob")
    assert head["ServerSideEncryption"] == "aws:kms" and key_id in head["SSEKMSKeyId"]
    with pytest.raises(br.RepositoryError):
        br.S3Repository("s3://%s/kms" % name, endpoint_url=moto, sse="AES256", sse_kms_key_id=key_id)


@pytest.mark.parametrize("major", [NEWEST], ids=lambda m: "pg%d" % m)
def test_s3_backup_list_verify_retention_and_wal(bucket, moto, run_playbook, workdir, major):
    client, name = bucket
    pg = harness.start_cluster(major, workdir=workdir, name="s3src")
    try:
        repository = "s3://%s/prod/main" % name
        common = dict(repository=repository, endpoint_url=moto, region="us-east-1")
        options = dict(pg.conn_params, storage_class="STANDARD_IA", staging_dir=workdir, **common)
        run = run_playbook(
            play(
                task("basebackup", "First", **options),
                dict(task("basebackup", "Second", retain_count=1, **options), register="second"),
            ),
            env=CREDENTIALS,
        ).assert_ok()
        first = run.task("First")["result"]
        second = run.task("Second")["result"]
        assert first["metadata"]["status"] == "valid" and second["backup_id"] > first["backup_id"]
        assert second["retention"]["delete_backups"] == [first["backup_id"]]
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=name, Prefix="prod/main/")["Contents"]]
        assert not [k for k in keys if first["backup_id"] in k], "retention left objects of the first backup"
        meta_key = "prod/main/backups/%s/backup.json" % second["backup_id"]
        assert meta_key in keys
        base = [k for k in keys if "/data/base.tar" in k][0]
        head = client.head_object(Bucket=name, Key=base)
        assert head["StorageClass"] == "STANDARD_IA"
        body = client.get_object(Bucket=name, Key=base)["Body"].read()
        assert head["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest()
        assert not [n for n in os.listdir(workdir) if n.startswith("dbarch-backup-")], "staging left behind"

        # WAL through dbarch-wal into the same prefix (boto3 of this Python, credentials from env).
        segment = os.path.join(workdir, "000000010000000000000042")
        with open(segment, "wb") as out:
            out.write(os.urandom(256 * 1024))
        env = dict(os.environ, **CREDENTIALS)
        argv = [
            sys.executable,
            WAL_SCRIPT,
            "--repo",
            repository,
            "--endpoint-url",
            moto,
            "--region",
            "us-east-1",
        ]
        done = subprocess.run(
            argv + ["archive", segment, "000000010000000000000042"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        again = subprocess.run(
            argv + ["archive", segment, "000000010000000000000042"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert again.returncode == 0 and "identical" in again.stderr
        back = os.path.join(workdir, "restored")
        restored = subprocess.run(
            argv + ["restore", "000000010000000000000042", back],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert restored.returncode == 0, restored.stderr
        assert br.sha256_file(back) == br.sha256_file(segment)

        info = run_playbook(
            play(task("backup_info", "Info", verify=True, **common)), env=CREDENTIALS
        ).assert_ok()
        result = info.task("Info")["result"]
        assert [b["id"] for b in result["backups"]] == [second["backup_id"]]
        assert result["file_checks"] == {second["backup_id"]: []}
        assert result["wal"]["segments"] == 1

        # An object replaced behind the module's back is caught by verify, with its name.
        client.put_object(Bucket=name, Key=base, Body=b"not a tar file")
        info = run_playbook(play(task("backup_info", "Info", verify=True, **common)), env=CREDENTIALS)
        problems = info.task("Info")["result"]["file_checks"][second["backup_id"]]
        assert [p["file"] for p in problems] == [base.rsplit("/data/", 1)[1]]
    finally:
        pg.stop()
