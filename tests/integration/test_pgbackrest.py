# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""engine: pgbackrest (the real pgBackRest of the Debian package) on real PostgreSQL clusters.

basebackup, backup_info and pitr_restore through ansible-playbook (run as root; pgBackRest runs
as the postgres OS user that owns the clusters). S3 is exercised only in check mode (the secret
never reaches the output): pgBackRest needs TLS, which moto's server mode does not offer here.
"""

import json
import os
import re
import shutil
import stat
import time

import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import pgbackrest as pgbr


SECRET = "pgbr-secret-Zq81xw"  # noqa: S105 - a fake key that must never appear in any output

# 14 and 15 (pgBackRest 2.45 of Debian 12 supports them; 15 renamed the backup functions) run the
# whole flow; 18 the refusal of a major that pgBackRest does not support (see _supported).
pytestmark = pytest.mark.pg_versions(14, 15, 18)


play = harness.play
task = harness.task


def _wait_archived(cluster, segment, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        last = cluster.query("SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
        if last is not None and last >= segment:
            return
        time.sleep(0.2)
    raise AssertionError("segment %s not archived within %ss" % (segment, timeout))


@pytest.fixture(scope="module")
def source(pg_major):
    workdir = harness.work_folder("dbarch-it-pgbr-")
    settings = {"archive_mode": "on", "wal_level": "replica", "wal_keep_size": "256MB"}
    try:
        cluster = harness.start_cluster(pg_major, workdir=workdir, name="source", settings=settings)
    except lc.LocalClusterError as exc:
        harness.remove_folder(workdir)
        pytest.fail("Could not bring up PostgreSQL %s: %s" % (pg_major, exc), pytrace=False)
    engine = {
        "engine": "pgbackrest",
        "stanza": "main",
        "repository": os.path.join(workdir, "repo"),
        "pgbackrest_config": os.path.join(workdir, "etc", "dbarch-main.conf"),
        "pgbackrest_work_dir": os.path.join(workdir, "pgbr"),
    }
    yield {"pg": cluster, "workdir": workdir, "engine": engine}
    harness.remove_folder(workdir)


def test_backup_info_restore_with_pgbackrest(source, run_playbook):
    pg, workdir, engine = source["pg"], source["workdir"], source["engine"]
    options = dict(pg.conn_params, compression="zstd", retain_count=2, label="first", **engine)

    # Check mode: the archive_command and the config it would write, nothing on disk.
    planned = run_playbook(play(task("basebackup", "Backup", **options)), check=True).assert_ok()
    res = planned.task("Backup")["result"]
    command = res["archive_command"]
    assert command == "%s --config %s --stanza=main archive-push %%p" % (
        shutil.which("pgbackrest"),
        engine["pgbackrest_config"],
    )
    assert "pg1-path=%s" % pg.data_dir in res["config"]
    assert "compress-type=zst" in res["config"] and "repo1-retention-full=2" in res["config"]
    for path in (engine["pgbackrest_config"], engine["repository"], engine["pgbackrest_work_dir"]):
        assert not os.path.exists(path), "check mode wrote %s" % path

    # Without archiving to pgBackRest the backup is refused, and says how to fix it.
    refused = run_playbook(play(task("basebackup", "Backup", **options))).task("Backup")
    assert refused["status"] == "failed" and "archive_command" in refused["result"]["msg"]

    # configure_only (what the backup role runs first): config, folders and stanza, idempotent.
    configure = dict(options, configure_only=True)
    if not _supported(pg.major):
        failed = run_playbook(play(task("basebackup", "Configure", **configure))).task("Configure")
        assert failed["status"] == "failed", failed
        assert "does not support the PostgreSQL major version" in failed["result"]["msg"]
        assert pgbr.binary_version() in failed["result"]["msg"]
        return
    first = run_playbook(play(task("basebackup", "Configure", **configure))).assert_ok()
    first_res = first.task("Configure")["result"]
    assert first.task("Configure")["status"] == "changed" and "backup_id" not in first_res
    assert "created stanza main" in first_res["actions"]
    assert os.path.isfile(os.path.join(engine["repository"], "archive", "main", "archive.info"))
    second = run_playbook(play(task("basebackup", "Configure", **configure))).assert_ok()
    assert second.task("Configure")["status"] == "ok", second.task("Configure")

    pg.query("ALTER SYSTEM SET archive_command = %s", (command,))
    pg.query("SELECT pg_reload_conf()")
    pg.query("CREATE TABLE t (id int PRIMARY KEY)")
    pg.query("INSERT INTO t SELECT generate_series(1, 3)")

    run = run_playbook(play(task("basebackup", "Backup", **options)), diff=True).assert_ok()
    res = run.task("Backup")["result"]
    backup_id = res["backup_id"]
    assert re.match(r"^\d{8}-\d{6}F$", backup_id), backup_id
    meta = res["metadata"]
    assert meta["id"] == backup_id and meta["usable"] and meta["type"] == "full"
    assert meta["pg_major"] == pg.major and meta["timeline"] == 1
    assert meta["system_identifier"] == str(
        pg.query("SELECT system_identifier FROM pg_control_system()")[0][0]
    )
    assert meta["annotation"] == {"label": "first"}
    assert meta["start_time"] <= meta["stop_time"] and meta["database_bytes"] > 0
    st = os.stat(engine["pgbackrest_config"])
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == lc._user_ids("postgres")[0]
    assert os.path.isdir(os.path.join(engine["repository"], "backup", "main", backup_id))

    # The config is idempotent: a second check-mode run plans no write.
    again = run_playbook(play(task("basebackup", "Backup", **options)), check=True, diff=True).assert_ok()
    again_res = again.task("Backup")["result"]
    assert not [a for a in again_res["actions"] if a.startswith("would write")], again_res["actions"]
    assert "diff" not in again_res

    # Rows after the backup, a restore point, more rows; everything archived.
    pg.query("INSERT INTO t SELECT generate_series(4, 6)")
    moment = pg.query("SELECT clock_timestamp()")[0][0].isoformat()
    pg.query("SELECT pg_create_restore_point('pgbr_rp')")
    pg.query("INSERT INTO t SELECT generate_series(7, 9)")
    end_lsn = pg.query("SELECT pg_current_wal_insert_lsn()")[0][0]
    last = pg.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    _wait_archived(pg, last)

    info = run_playbook(play(task("backup_info", "Info", max_age_hours=1, **engine))).assert_ok()
    listed = info.task("Info")["result"]
    assert [b["id"] for b in listed["backups"]] == [backup_id]
    wal = listed["wal"]
    assert wal["earliest_backup"] == backup_id and wal["earliest_lsn"] == meta["stop_lsn"]
    assert _lsn(wal["latest_lsn"]) >= _lsn(end_lsn), (wal, end_lsn)
    assert wal["latest_timeline"] == 1 and wal["gaps"] == []
    assert wal["per_timeline"][0]["timeline"] == 1 and wal["per_timeline"][0]["max"] >= last
    assert listed["findings"] == [], listed["findings"]
    assert listed["summary"]["usable_backups"] == 1

    # Check mode of the restore writes nothing.
    port = lc.free_port()
    target_dir = os.path.join(workdir, "restored", "data")
    restore = dict(engine, data_dir=target_dir, port=port, target_name="pgbr_rp")
    dry = run_playbook(play(task("pitr_restore", "Restore", **restore)), check=True).assert_ok()
    dry_res = dry.task("Restore")["result"]
    assert "--type=name" in dry_res["command"] and "--target=pgbr_rp" in dry_res["command"]
    assert not os.path.exists(os.path.dirname(target_dir))

    # To the restore point: exactly the rows committed before it.
    done = run_playbook(play(task("pitr_restore", "Restore", **restore))).assert_ok()
    got = done.task("Restore")["result"]
    assert got["backup_id"] == backup_id
    assert got["timeline"] == 2 and got["reached_lsn"]
    assert set(got["phases"]) >= {"fetch_extract", "wal_replay", "first_query"} and got["rto_seconds"] > 0
    assert "archive-get" in got["restore_command"]
    restored = lc.LocalCluster(target_dir, bindir=pg.bindir)
    assert [int(r) for r in restored.psql("SELECT id FROM t ORDER BY id")] == [1, 2, 3, 4, 5, 6]
    assert restored.psql("SHOW archive_mode") == ["off"]
    restored.destroy()

    # To a time: the rows committed before it (the next commit after it is archived).
    time_dir = os.path.join(workdir, "at-time", "data")
    at_time = dict(engine, data_dir=time_dir, port=lc.free_port(), target_time=moment)
    done = run_playbook(play(task("pitr_restore", "Restore", **at_time))).assert_ok()
    got = done.task("Restore")["result"]
    assert got["backup_id"] == backup_id and "--type=time" in got["command"]
    assert not got.get("pgbackrest_warnings"), got["pgbackrest_warnings"]
    restored = lc.LocalCluster(time_dir, bindir=pg.bindir)
    assert [int(r) for r in restored.psql("SELECT id FROM t ORDER BY id")] == [1, 2, 3, 4, 5, 6]
    restored.destroy()

    # To the end of the archive: all rows.
    latest_dir = os.path.join(workdir, "latest", "data")
    latest = dict(engine, data_dir=latest_dir, port=lc.free_port(), target="latest")
    done = run_playbook(play(task("pitr_restore", "Restore", **latest))).assert_ok()
    assert done.task("Restore")["result"]["backup_id"] == backup_id
    restored = lc.LocalCluster(latest_dir, bindir=pg.bindir)
    assert [int(r) for r in restored.psql("SELECT id FROM t ORDER BY id")] == list(range(1, 10))
    restored.destroy()

    # A non-empty data_dir is refused, like the native engine does.
    os.makedirs(latest_dir, exist_ok=True)
    with open(os.path.join(latest_dir, "keep.txt"), "w") as handle:
        handle.write("x")
    refused = run_playbook(play(task("pitr_restore", "Restore", **latest))).task("Restore")
    assert refused["status"] == "failed" and "not empty" in refused["result"]["msg"]


def test_empty_stanza_reports_no_backup(source, run_playbook):
    workdir = source["workdir"]
    engine = dict(
        source["engine"],
        stanza="empty",
        repository=os.path.join(workdir, "empty-repo"),
        pgbackrest_config=os.path.join(workdir, "etc", "absent.conf"),
    )
    run = run_playbook(play(task("backup_info", "Info", **engine)), check=True).assert_ok()
    res = run.task("Info")["result"]
    assert res["backups"] == [] and res["changed"] is False
    rules = sorted(f["rule"] for f in res["findings"])
    assert rules == ["BACKUP-NONE", "PGBACKREST-STATUS"], res["findings"]
    assert not os.path.exists(engine["pgbackrest_config"])


def test_s3_secrets_stay_out_of_output(source, run_playbook):
    pg, engine = source["pg"], source["engine"]
    options = dict(
        pg.conn_params,
        engine="pgbackrest",
        stanza="s3main",
        repository="s3://pgbr-bucket/prod/main",
        endpoint_url="https://127.0.0.1:9000",
        region="eu-west-1",
        aws_access_key_id="AKIDPGBR",
        aws_secret_access_key=SECRET,
        pgbackrest_config=os.path.join(source["workdir"], "etc", "s3.conf"),
        pgbackrest_work_dir=engine["pgbackrest_work_dir"],
    )
    run = run_playbook(play(task("basebackup", "Backup", **options)), check=True, diff=True).assert_ok()
    res = run.task("Backup")["result"]
    assert "repo1-s3-bucket=pgbr-bucket" in res["config"] and "repo1-path=/prod/main" in res["config"]
    assert "repo1-s3-uri-style=path" in res["config"] and "repo1-s3-key-secret=********" in res["config"]
    assert SECRET not in run.stdout and SECRET not in run.stderr
    assert SECRET not in json.dumps(run.results)
    assert not os.path.exists(options["pgbackrest_config"])


def _supported(major):
    """pgBackRest 2.45 (Debian 12's package) reads pg_control of PostgreSQL 15 and older only."""
    version = pgbr.binary_version().split()[-1]
    return not (version == "2.45" and major >= 16)


def _lsn(text):
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)
