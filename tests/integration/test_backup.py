# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""basebackup, backup_info and dbarch-wal on real PostgreSQL 14-18 clusters."""

import json
import os
import pwd
import shutil
import subprocess
import sys
import time

import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup as bk
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal as wn
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod

WAL_SCRIPT = harness.WAL_SCRIPT


play = harness.play
task = harness.task


take = harness.take_backup


def system_identifier(pg):
    return str(pg.query("SELECT system_identifier FROM pg_control_system()")[0][0])


def compressed_variant(major):
    """The compression exercised through ansible-playbook on each major."""
    if major >= 15:
        return {"compression": "zstd", "compression_site": "server"}
    return {"compression": "gzip", "compression_site": "client"}


@pytest.mark.all_versions
def test_basebackup_module_tar_then_plain_and_metadata(pg, workdir, run_playbook):
    repo_dir = os.path.join(workdir, "repo")
    pg.createdb("bk_demo")
    pg.query("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g", dbname="bk_demo")
    options = dict(pg.conn_params, repository=repo_dir, label="nightly", **compressed_variant(pg.major))

    planned = run_playbook(play(task("basebackup", "Backup", **options)), check=True).task("Backup")
    assert planned["status"] == "changed", planned
    assert "--wal-method=stream" in planned["result"]["command"]
    assert not os.path.exists(repo_dir), "check mode must not create the repository"

    run = run_playbook(play(task("basebackup", "Backup", **options))).assert_ok()
    res = run.task("Backup")["result"]
    meta = res["metadata"]
    backup_dir = os.path.join(repo_dir, "backups", res["backup_id"])
    assert meta["status"] == "valid" and meta["verification"]["ok"] is True
    assert meta["system_identifier"] == system_identifier(pg)
    assert wn.parse_lsn(meta["start_lsn"]) <= wn.parse_lsn(meta["stop_lsn"])
    assert meta["label"] == "nightly" and meta["pg_major"] == pg.major and meta["format"] == "tar"
    assert meta["compression"] == options["compression"]
    assert br.parse_time(meta["start_time"]) <= br.parse_time(meta["stop_time"])
    suffix = {"zstd": ".tar.zst", "gzip": ".tar.gz"}[options["compression"]]
    # Streamed WAL is compressed only by the client (server-side compression covers base.tar).
    wal_suffix = suffix if options["compression_site"] == "client" else ".tar"
    stored = sorted(os.listdir(os.path.join(backup_dir, "data")))
    assert stored == ["backup_manifest", "base" + suffix, "pg_wal" + wal_suffix], stored
    with open(os.path.join(backup_dir, "backup.json")) as handle:
        on_disk = json.load(handle)
    assert on_disk["files"]["backup_manifest"]["sha256"] == br.sha256_file(
        os.path.join(backup_dir, "data", "backup_manifest")
    )
    assert on_disk["wal_segment_size"] == int(
        pg.query("SELECT bytes_per_wal_segment FROM pg_control_init()")[0][0]
    )

    # A second backup (plain, through the engine) gets its own, later id.
    plain = take(pg, repo_dir, fmt="plain")
    assert plain["id"] > res["backup_id"] and plain["status"] == "valid"
    assert os.path.isfile(os.path.join(repo_dir, "backups", plain["id"], "data", "PG_VERSION"))
    assert wn.parse_lsn(plain["start_lsn"]) > wn.parse_lsn(meta["stop_lsn"])

    info = run_playbook(play(task("backup_info", "Info", repository=repo_dir, verify=True))).assert_ok()
    listed = info.task("Info")["result"]
    assert [b["id"] for b in listed["backups"]] == [res["backup_id"], plain["id"]]
    assert all(b["usable"] for b in listed["backups"])
    assert listed["file_checks"] == {res["backup_id"]: [], plain["id"]: []}
    assert listed["wal"]["earliest_backup"] == res["backup_id"]
    assert listed["wal"]["earliest_lsn"] == meta["stop_lsn"]


@pytest.mark.all_versions
@pytest.mark.parametrize("fmt", ["plain", "tar"])
def test_flipped_byte_is_detected_with_the_file_name(pg, workdir, run_playbook, fmt):
    repo_dir = os.path.join(workdir, "repo")
    options = {"fmt": fmt}
    if fmt == "tar" and pg.major >= 15:
        options.update(compression="lz4", site="client")
    meta = take(pg, repo_dir, **options)
    data = os.path.join(repo_dir, "backups", meta["id"], "data")
    if fmt == "plain":
        victim = "global/pg_control"
    else:
        victim = [n for n in os.listdir(data) if n.startswith("base.tar")][0]
    path = os.path.join(data, victim)
    # Three flipped bytes: in a compressed tar one flip can land where the decompressed change falls
    # into tar padding, which pg_verifybackup does not read (seen once on 18).
    with open(path, "r+b") as handle:
        size = os.path.getsize(path)
        for at in (size // 4, size // 2, 3 * size // 4):
            handle.seek(at)
            byte = handle.read(1)
            handle.seek(-1, os.SEEK_CUR)
            handle.write(bytes([byte[0] ^ 0xFF]))

    run = run_playbook(play(task("backup_info", "Info", repository=repo_dir, verify=True, fail_on="high")))
    record = run.task("Info")
    assert record["status"] == "failed"
    result = record["result"]
    assert result["file_checks"][meta["id"]] == [
        {
            "file": victim,
            "problem": "checksum differs",
            "expected": meta["files"][victim]["sha256"],
            "found": br.sha256_file(path),
        }
    ]
    corrupt = [f for f in result["findings"] if f["rule"] == "BACKUP-CORRUPT"]
    assert len(corrupt) == 1 and victim in corrupt[0]["message"]
    assert result["backups"][0]["usable"] is False and result["backups"][0]["status"] == "corrupt"

    # pg_verifybackup (what basebackup runs before recording a backup) rejects it as well.
    scratch = harness.work_folder("dbarch-it-verify-")
    try:
        outcome = bk.verify(data, fmt, pg.bindir, bk.Features(meta["pg_version_num"]), scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert outcome["ok"] is False
    if fmt == "plain":
        assert "pg_control" in outcome["output"], outcome
    else:
        assert outcome["output"], outcome


def _archive_settings(repo_dir):
    return harness.archive_settings(repo_dir, wal_keep_size="512MB")


def _wait_archived(cluster, segment, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        last = cluster.query("SELECT last_archived_wal, failed_count FROM pg_stat_archiver")[0]
        if last[0] is not None and last[0] >= segment:
            return last
        time.sleep(0.2)
    raise AssertionError("segment %s not archived within %ss: %s" % (segment, timeout, last))


def _switch(cluster, times):
    names = []
    for _round in range(times):
        cluster.query("INSERT INTO w SELECT g FROM generate_series(1, 100) g", dbname="postgres")
        names.append(cluster.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0])
    return names


def test_wal_archiving_coverage_and_a_gap(pg, workdir, run_playbook):
    repo_dir = harness.repo_folder(workdir)
    cluster = harness.start_cluster(
        pg.major, workdir=workdir, name="archiving", settings=_archive_settings(repo_dir)
    )
    try:
        cluster.query("CREATE TABLE w (id int)")
        meta = take(cluster, repo_dir)
        switched = _switch(cluster, 4)
        last_insert_done = cluster.query("SELECT now()")[0][0]
        _wait_archived(cluster, switched[-1])
        archived = sorted(os.listdir(os.path.join(repo_dir, "wal")))
        for segment in switched:
            assert segment in archived
            with open(os.path.join(repo_dir, "wal", segment), "rb") as handle:
                stored = handle.read()
            with open(os.path.join(cluster.data_dir, "pg_wal", segment), "rb") as handle:
                assert handle.read() == stored, "archived %s differs from pg_wal" % segment
        assert cluster.query("SELECT failed_count FROM pg_stat_archiver")[0][0] == 0

        info = run_playbook(play(task("backup_info", "Info", repository=repo_dir))).assert_ok()
        wal = info.task("Info")["result"]["wal"]
        assert wal["gaps"] == [] and wal["earliest_lsn"] == meta["stop_lsn"]
        last = wn.parse_wal_name(switched[-1], meta["wal_segment_size"])
        assert wal["latest_lsn"] == wn.format_lsn((last["segno"] + 1) * meta["wal_segment_size"])
        # The last archived commit (pg_waldump) is the last INSERT, before the final switch.
        assert wal["latest_commit_note"] is None, wal
        assert wal["latest_commit_segment"] == switched[-1]
        commit = br.parse_time(wal["latest_commit_time"])
        assert br.parse_time(meta["stop_time"]) < commit <= last_insert_done

        # Remove one segment inside the window: reported as a gap naming it.
        missing = switched[1]
        os.unlink(os.path.join(repo_dir, "wal", missing))
        info = run_playbook(play(task("backup_info", "Info", repository=repo_dir))).assert_ok()
        result = info.task("Info")["result"]
        assert [g["missing"] for g in result["gaps"]] == [[missing]]
        assert result["wal"]["first_missing_segment"] == missing
        gap_findings = [f for f in result["findings"] if f["rule"] == "WAL-GAP"]
        assert len(gap_findings) == 1 and missing in gap_findings[0]["message"]
        assert gap_findings[0]["severity"] == "high"
    finally:
        cluster.stop()


def _wal(*args):
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", "/usr/bin/python3", WAL_SCRIPT, *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_dbarch_wal_never_overwrites_and_restores(workdir):
    repo_dir = os.path.join(workdir, "repo")
    os.makedirs(repo_dir)
    shutil.chown(repo_dir, "postgres", "postgres")
    source = os.path.join(workdir, "000000010000000000000007")
    with open(source, "wb") as out:
        out.write(os.urandom(64 * 1024))
    os.chmod(source, 0o644)
    first = _wal("--repo", repo_dir, "archive", source, "000000010000000000000007")
    assert first.returncode == 0, first.stderr
    again = _wal("--repo", repo_dir, "archive", source, "000000010000000000000007")
    assert again.returncode == 0 and "identical" in again.stderr
    other = os.path.join(workdir, "other")
    with open(other, "wb") as out:
        out.write(os.urandom(64 * 1024))
    os.chmod(other, 0o644)
    clash = _wal("--repo", repo_dir, "archive", other, "000000010000000000000007")
    assert clash.returncode == 3 and "DIFFERENT" in clash.stderr
    stored = os.path.join(repo_dir, "wal", "000000010000000000000007")
    assert br.sha256_file(stored) == br.sha256_file(source), "the archived segment was overwritten"
    zipped = _wal("--repo", repo_dir, "--compress", "gzip", "archive", other, "000000010000000000000008")
    assert zipped.returncode == 0 and os.path.exists(stored.replace("07", "08") + ".gz")

    dest_dir = os.path.join(workdir, "restore")
    os.makedirs(dest_dir)
    shutil.chown(dest_dir, "postgres", "postgres")
    for wal_name, original in (("000000010000000000000007", source), ("000000010000000000000008", other)):
        dest = os.path.join(dest_dir, "RECOVERYXLOG")
        done = _wal("--repo", repo_dir, "restore", wal_name, dest)
        assert done.returncode == 0, done.stderr
        assert br.sha256_file(dest) == br.sha256_file(original)
    absent = _wal("--repo", repo_dir, "restore", "000000010000000000000009", os.path.join(dest_dir, "x"))
    assert absent.returncode == 1 and not os.path.exists(os.path.join(dest_dir, "x"))
    bad = _wal("--repo", repo_dir, "archive", source, "../../etc/passwd")
    assert bad.returncode == 2


def test_retention_through_the_module(pg, workdir, run_playbook):
    repo_dir = os.path.join(workdir, "repo")
    first = take(pg, repo_dir)
    second = take(pg, repo_dir)
    wal_dir = os.path.join(repo_dir, "wal")
    # WAL files as an archive would hold them: one before the second backup's start, one after.
    old = wn.segment_name(
        1,
        wn.segno_of(wn.parse_lsn(second["start_lsn"]), second["wal_segment_size"]) - 1,
        second["wal_segment_size"],
    )
    new = wn.segment_name(
        1,
        wn.segno_of(wn.parse_lsn(second["start_lsn"]), second["wal_segment_size"]),
        second["wal_segment_size"],
    )
    for wal_name in (old, new, "00000001.history"):
        with open(os.path.join(wal_dir, wal_name), "wb") as out:
            out.write(b"x")
    options = dict(pg.conn_params, repository=repo_dir, retain_count=2)

    planned = run_playbook(play(task("basebackup", "Backup", **options)), check=True).task("Backup")["result"]
    assert planned["retention"]["delete_backups"] == [] and planned["retention"]["keep"] == [
        first["id"],
        second["id"],
    ]

    run = run_playbook(play(task("basebackup", "Backup", **options))).assert_ok()
    res = run.task("Backup")["result"]
    assert res["retention"]["delete_backups"] == [first["id"]]
    assert res["retention"]["keep"] == [second["id"], res["backup_id"]]
    assert sorted(os.listdir(os.path.join(repo_dir, "backups"))) == [second["id"], res["backup_id"]]
    assert res["retention"]["delete_wal"] == [old]
    assert sorted(os.listdir(wal_dir)) == sorted([new, "00000001.history"])


@pytest.mark.all_versions
def test_bad_options_fail_clearly(pg, workdir, run_playbook):
    repo_dir = os.path.join(workdir, "repo")
    if pg.major >= 15:
        options = dict(format="plain", compression="gzip", compression_site="client")
        expected = "plain format cannot be compressed on the client"
    else:
        options = dict(compression="zstd")
        expected = "needs PostgreSQL 15 or later"
    run = run_playbook(
        play(task("basebackup", "Backup", repository=repo_dir, **dict(pg.conn_params, **options)))
    )
    record = run.task("Backup")
    assert record["status"] == "failed" and expected in record["result"]["msg"]
    assert not os.path.exists(os.path.join(repo_dir, "backups")) or not os.listdir(
        os.path.join(repo_dir, "backups")
    )


def test_backup_info_names_an_unreadable_repository_without_traceback(workdir, run_playbook):
    # a repository whose "backups" is a file, not a folder: the engine meets an OSError
    repo_dir = os.path.join(workdir, "broken-repo")
    os.makedirs(repo_dir)
    with open(os.path.join(repo_dir, "backups"), "w") as handle:
        handle.write("not a folder\n")
    run = run_playbook(play(task("backup_info", "Info", repository=repo_dir)))
    record = run.task("Info")
    assert record["status"] == "failed"
    assert record["result"]["msg"].startswith("cannot read repository %s: [Errno 20]" % repo_dir)
    assert "Traceback" not in json.dumps(record["result"])


def test_engine_is_importable_without_ansible():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from ansible_collections.dbarch.postgresql.plugins.module_utils "
            "import backup; print('ansible.module_utils' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=str(harness.REPO_ROOT / ".collections")),
    )
    assert out.stdout.strip() == "False"


def test_backup_from_a_standby(pg, workdir):
    from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc  # noqa: PLC0415

    # A standby refuses a backup after replaying WAL written with full_page_writes=off (the
    # shared test cluster's speed setting), so this primary keeps the default.
    source = harness.start_cluster(pg.major, workdir=workdir, name="fpw", settings={"full_page_writes": True})
    replica = lc.LocalCluster(os.path.join(workdir, "replica", "data"), port=lc.free_port(), bindir=pg.bindir)
    primary = {"host": "127.0.0.1", "port": source.port, "user": source.user, "password": source.password}
    try:
        replica.create_replica(primary, None, settings=dict(harness.DEFAULT_SETTINGS, full_page_writes=True))
        replica.start()
        source.query("CHECKPOINT")
        standby = dict(source.conn_params, login_port=replica.port)
        session = pgmod.connect(standby, "basebackup")
        try:
            assert session.scalar("SELECT pg_is_in_recovery()") is True
            meta = bk.take(
                session,
                pgmod.resolve_params(standby),
                br.LocalRepository(os.path.join(workdir, "repo")),
                timeout=600,
            )
        finally:
            session.close()
        assert meta["taken_from"] == "standby" and meta["status"] == "valid"
        assert meta["system_identifier"] == system_identifier(source)
        assert wn.parse_lsn(meta["start_lsn"]) <= wn.parse_lsn(meta["stop_lsn"])
    finally:
        replica.destroy()
        source.stop()


def _wait_for(check, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("%s did not happen within %ss" % (what, timeout))


def test_coverage_follows_a_promotion_to_a_new_timeline(pg, workdir):
    from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc  # noqa: PLC0415

    repo_dir = harness.repo_folder(workdir)
    settings = dict(_archive_settings(repo_dir), full_page_writes=True)
    source = harness.start_cluster(pg.major, workdir=workdir, name="tl1", settings=settings)
    replica = lc.LocalCluster(os.path.join(workdir, "tl2", "data"), port=lc.free_port(), bindir=pg.bindir)
    try:
        source.query("CREATE TABLE w (id int)")
        meta = take(source, repo_dir)
        switched = _switch(source, 2)
        _wait_archived(source, switched[-1])
        primary = {"host": "127.0.0.1", "port": source.port, "user": source.user, "password": source.password}
        replica.create_replica(primary, None, settings=dict(harness.DEFAULT_SETTINGS, **settings))
        replica.start()
        target = source.query("SELECT pg_current_wal_lsn()::text")[0][0]
        _wait_for(
            lambda: replica.psql("SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % target) == ["t"],
            "replay on the standby",
        )
        source.cluster.stop()
        assert replica.psql("SELECT pg_promote(true, 60)") == ["t"]
        replica.psql("INSERT INTO w SELECT g FROM generate_series(1, 100) g")
        after = replica.psql("SELECT pg_walfile_name(pg_switch_wal())")[0]
        assert after.startswith("00000002")
        _wait_for(
            lambda: (
                replica.psql("SELECT coalesce(last_archived_wal, '') >= '%s' FROM pg_stat_archiver" % after)
                == ["t"]
            ),
            "archiving of %s" % after,
        )
        report = bk.inspect(br.LocalRepository(repo_dir), read_commits=False)
        wal = report["wal"]
        assert "00000002.history" in wal["history"] and wal["timelines"][-1] == 2
        assert report["gaps"] == []
        assert wal["latest_timeline"] == 2 and wal["latest_backup"] == meta["id"]
        end = wn.parse_wal_name(after, meta["wal_segment_size"])["segno"] + 1
        assert wal["latest_lsn"] == wn.format_lsn(end * meta["wal_segment_size"])
        assert wal["first_missing_segment"] == wn.segment_name(2, end, meta["wal_segment_size"])
    finally:
        replica.destroy()
        source.stop()


def test_as_the_postgres_user_with_the_system_python(pg, workdir, run_playbook):
    """How the modules run on a real host: become_user postgres, /usr/bin/python3."""
    repo_dir = os.path.join(workdir, "repo")
    os.makedirs(repo_dir)
    shutil.chown(repo_dir, "postgres", "postgres")
    inventory = "localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n"
    become = {"become": True, "become_user": "postgres"}
    run = run_playbook(
        play(
            dict(
                task("basebackup", "Backup", repository=repo_dir, format="plain", **pg.conn_params), **become
            ),
            dict(task("backup_info", "Info", repository=repo_dir, verify=True), **become),
        ),
        inventory=inventory,
    ).assert_ok()
    res = run.task("Backup")["result"]
    assert res["metadata"]["status"] == "valid"
    data = os.path.join(repo_dir, "backups", res["backup_id"], "data")
    assert os.stat(data).st_uid == pwd.getpwnam("postgres").pw_uid, "pg_basebackup ran as another user"
    info = run.task("Info")["result"]
    assert [b["id"] for b in info["backups"]] == [res["backup_id"]]
    assert info["file_checks"] == {res["backup_id"]: []}
