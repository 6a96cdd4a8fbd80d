"""roles/backup through playbooks/backup.yml on a real cluster of its own (archive_mode needs a restart).

Everything the role installs goes under the test's folder (bin, lib, etc, state, cron.d); the
scheduled command is run by hand, as the cron line says, as the postgres OS user.
"""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import harness
import pytest

PLAYBOOK = Path(harness.REPO_ROOT) / "playbooks" / "backup.yml"

# The role's flow does not depend on the server version; it runs on 15.
pytestmark = pytest.mark.pg_versions(15)


@pytest.fixture
def cluster(pg_major, workdir):
    handle = harness.start_cluster(pg_major, workdir=workdir, name="src")
    yield handle
    handle.stop()


def layout(workdir, tmp_path, **more):
    root = os.path.join(workdir, "host")
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 - the postgres user traverses it
    names = dict(
        backup_repository=os.path.join(root, "repo"),
        backup_bin_dir=os.path.join(root, "bin"),
        backup_lib_dir=os.path.join(root, "lib"),
        backup_config_dir=os.path.join(root, "etc"),
        backup_state_dir=os.path.join(root, "state"),
        backup_cron_dir=os.path.join(root, "cron.d"),
        backup_schedule_method="cron",
        backup_report_dest=str(tmp_path / "reports"),
        backup_restart=True,
        backup_retain_count=5,
    )
    names.update(more)
    return names


def inventory(cluster):
    host = dict(
        ansible_connection="local",
        ansible_python_interpreter=sys.executable,
        dbarch_login_host=cluster.host,
        dbarch_login_port=cluster.port,
        dbarch_login_user=cluster.user,
        dbarch_login_password=cluster.password,
        dbarch_login_db="postgres",
        dbarch_socket_dir=cluster.socket_dir,
    )
    return dict(all=dict(children=dict(primary=dict(hosts={"db1": host}))))


def setting(cluster, name):
    return cluster.query("SELECT current_setting(%s)", (name,))[0][0]


def wait_for(predicate, what, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for %s" % what)


def test_check_mode_then_archiving_schedule_backup_verify_report(cluster, workdir, tmp_path, run_playbook):
    names = layout(workdir, tmp_path)
    inv = inventory(cluster)
    repo = names["backup_repository"]

    check = run_playbook(PLAYBOOK, extra_vars=names, inventory=inv, check=True)
    check.assert_ok()
    assert not os.path.exists(repo) and not os.path.exists(names["backup_cron_dir"])
    assert setting(cluster, "archive_mode") == "off"
    assert cluster.query("SELECT count(*) FROM pg_file_settings WHERE name = 'archive_command'")[0][0] == 0

    run = run_playbook(PLAYBOOK, extra_vars=names, inventory=inv).assert_ok()
    # archive_mode needed the restart the role was allowed to do; archiving works.
    assert setting(cluster, "archive_mode") == "on"
    command = setting(cluster, "archive_command")
    assert command == "/usr/bin/python3 %s/dbarch-wal --repo %s archive %%p %%f" % (
        names["backup_bin_dir"],
        repo,
    )
    switched = run.task("Check the WAL archiver (a WAL switch when archiving was just set up)")["result"]
    # (retention after the backup removes segments older than the oldest kept backup, so the
    # archiver's own record shows it; a segment switched now appears in the repository)
    assert switched["archiver"]["last_archived_wal"] >= switched["switched_segment"]
    assert switched["archiver"]["failing"] is False
    segment = cluster.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_for(lambda: os.path.exists(os.path.join(repo, "wal", segment)), "archiving of %s" % segment)

    first = run.task("Take a base backup now")["result"]
    assert first["metadata"]["status"] == "valid"
    info = run.task("Check the repository (every file against its checksum, WAL coverage and gaps)")["result"]
    assert info["file_checks"] == {first["backup_id"]: []}

    # The cron file holds the job; run its command by hand, as cron would, as postgres.
    cron_file = os.path.join(names["backup_cron_dir"], "dbarch-backup-db1")
    lines = [ln for ln in Path(cron_file).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    job = [ln for ln in lines if "dbarch-backup" in ln and not ln.split("=")[0].isupper()]
    assert len(job) == 1, lines
    fields = job[0].split(None, 6)
    assert fields[:2] == ["30", "1"] and fields[5] == "postgres"
    assert shlex.split(fields[6])[:4] == [
        "/usr/bin/python3",
        names["backup_bin_dir"] + "/dbarch-backup",
        "--config",
        names["backup_config_dir"] + "/backup-db1.json",
    ]
    # cron runs the command with /bin/sh and a bare environment.
    done = subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "env",
            "-i",
            "HOME=/var/lib/postgresql",
            "PATH=/usr/bin:/bin",
            "/bin/sh",
            "-c",
            fields[6].replace("\\%", "%"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    status = json.loads(Path(names["backup_state_dir"], "backup-db1.status.json").read_text())
    assert status["last_success"]["ok"] is True and "last_failure" not in status
    second_id = status["last_success"]["backup_id"]
    assert second_id != first["backup_id"]
    meta = json.loads(Path(repo, "backups", second_id, "backup.json").read_text())
    assert meta["status"] == "valid" and meta["label"] == "dbarch scheduled %s" % second_id

    # A second run: the new backup (expected) and the report it changes; nothing else.
    again = run_playbook(PLAYBOOK, extra_vars=names, inventory=inv).assert_ok()
    changed = sorted({r["task"] for r in again.results if r["status"] == "changed"})
    assert set(changed) <= {"Take a base backup now", "Write the backup report"}, changed
    info = again.task("Check the repository (every file against its checksum, WAL coverage and gaps)")[
        "result"
    ]
    ids = [b["id"] for b in info["backups"]]
    assert first["backup_id"] in ids and second_id in ids and len(ids) == 3
    assert all(problems == [] for problems in info["file_checks"].values())
    assert info["gaps"] == []
    report = json.loads((tmp_path / "reports" / "db1" / "backup.json").read_text())
    assert report["summary"]["backups"] == "3" or report["summary"]["backups"] == 3
    assert report["summary"]["gaps"] in (0, "0")
    # The scheduled job's status file is in the report.
    assert report["summary"]["scheduled_last_success"].startswith(second_id)
    assert report["summary"]["scheduled_last_failure"].strip() == "none"
    for ext in ("md", "xml", "sarif"):
        assert (tmp_path / "reports" / "db1" / ("backup." + ext)).exists()

    # Check mode on a set-up host changes nothing and takes no backup.
    check = run_playbook(PLAYBOOK, extra_vars=names, inventory=inv, check=True).assert_ok()
    assert sorted(os.listdir(os.path.join(repo, "backups"))) == sorted(ids)


def test_the_scheduled_command_fails_clearly_and_records_the_failure(
    cluster, workdir, tmp_path, run_playbook
):
    names = layout(workdir, tmp_path, backup_now=False, backup_wal_archiving=False, backup_fail_on="never")
    run_playbook(PLAYBOOK, extra_vars=names, inventory=inventory(cluster)).assert_ok()
    config_file = os.path.join(names["backup_config_dir"], "backup-db1.json")
    config = json.loads(Path(config_file).read_text())
    config["connection"]["port"] = 1  # nothing listens there
    broken = os.path.join(workdir, "broken.json")
    Path(broken).write_text(json.dumps(config))
    os.chmod(broken, 0o644)
    done = subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "/usr/bin/python3",
            names["backup_bin_dir"] + "/dbarch-backup",
            "--config",
            broken,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    line = json.loads(done.stdout)
    assert line["ok"] is False and "Cannot connect to PostgreSQL" in line["error"]
    assert "FAILED" in done.stderr
    status = json.loads(Path(names["backup_state_dir"], "backup-db1.status.json").read_text())
    assert status["last_failure"]["error"] == line["error"]
    # A config file that is not there: exit 2 with the reason.
    done = subprocess.run(
        ["/usr/bin/python3", names["backup_bin_dir"] + "/dbarch-backup", "--config", "/nonexistent.json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "cannot read the config file /nonexistent.json" in done.stdout


def test_a_repository_the_server_cannot_write_fails_clearly(cluster, workdir, tmp_path, run_playbook):
    locked = os.path.join(workdir, "locked")
    os.makedirs(locked)
    os.chmod(locked, 0o700)  # root only: postgres cannot reach the repository inside
    names = layout(workdir, tmp_path, backup_repository=os.path.join(locked, "repo"))
    res = run_playbook(PLAYBOOK, extra_vars=names, inventory=inventory(cluster))
    assert res.rc != 0
    failed = res.failed()
    assert [r["task"] for r in failed] == ["Stop when the repository is not writable"]
    msg = failed[0]["result"]["msg"]
    assert "OS user postgres" in msg and os.path.join(locked, "repo", "wal") in msg
    assert setting(cluster, "archive_mode") == "off", "the role went on after the failed check"


def test_a_failing_archive_command_fails_the_role_with_the_archivers_error(
    cluster, workdir, tmp_path, run_playbook
):
    names = layout(workdir, tmp_path, backup_now=False, backup_fail_on="never")
    inv = inventory(cluster)
    run_playbook(PLAYBOOK, extra_vars=names, inventory=inv).assert_ok()
    # Another file already holds the name of the segment being written: dbarch-wal refuses to
    # overwrite it, so archiving that segment fails until someone looks.
    cluster.query("CREATE TABLE t AS SELECT 1 AS x")
    # (the insert position: with synchronous_commit off the write position can still sit at the
    # end of the segment archived before)
    segment = cluster.query("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")[0][0]
    assert not os.path.exists(os.path.join(names["backup_repository"], "wal", segment))
    squatter = os.path.join(names["backup_repository"], "wal", segment)
    Path(squatter).write_bytes(b"not this cluster's WAL")
    cluster.query("SELECT pg_switch_wal()")
    wait_for(
        lambda: cluster.query("SELECT coalesce(last_failed_wal, '') FROM pg_stat_archiver")[0][0] == segment,
        "the archiver to fail on %s" % segment,
    )
    res = run_playbook(PLAYBOOK, extra_vars=names, inventory=inv)
    assert res.rc != 0
    failed = res.failed()
    assert [r["task"] for r in failed] == [
        "Check the WAL archiver (a WAL switch when archiving was just set up)"
    ]
    msg = failed[0]["result"]["msg"]
    assert "WAL archiving fails" in msg and "last failed on %s" % segment in msg
    assert "archive command failed" in msg and "log/postgresql.log" in msg
