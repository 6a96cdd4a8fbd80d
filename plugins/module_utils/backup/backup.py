# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Base backups with pg_basebackup into a repository, verified with pg_verifybackup.

Plain Python, no Ansible imports. The ``basebackup`` module is a thin adapter over
``plan()`` and ``take()``; ``backup_info`` reads the repository through backup_repo.

Order of a backup (what makes a half-finished one impossible to mistake for a good one):

1. read the server's facts (version, system identifier, recovery state, segment size);
2. pg_basebackup (WAL streamed, manifest with SHA-256) into ``backups/<id>/data``
   (local repository) or a staging folder (S3);
3. facts from the backup itself: backup_label (start LSN, start time, timeline,
   from primary or standby), backup_manifest (WAL-Ranges: start/stop LSN and timeline)
   and pg_control (pg_controldata: system identifier, segment size);
4. pg_verifybackup: directly for plain format and for tar on 18+; tar on older
   majors is extracted to a temporary folder and verified there;
5. SHA-256 of every file; upload for S3 (each object checked after upload);
6. backup.json, LAST, atomically; ``status`` is ``valid``, ``unverified`` (verify off)
   or ``invalid`` (verification failed: never usable, and the task fails).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import gzip
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import zlib

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal as wn
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.findings import Finding
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features, version_text

FORMATS = ("tar", "plain")
COMPRESSIONS = ("none", "gzip", "lz4", "zstd")
COMPRESSION_SITES = ("client", "server")
CHECKPOINTS = ("fast", "spread")
FORMAT_VERSION = 1
_TAR_SUFFIX = {"none": ".tar", "gzip": ".tar.gz", "lz4": ".tar.lz4", "zstd": ".tar.zst"}
_DECOMPRESSOR = {".gz": None, ".lz4": ["lz4", "-dc"], ".zst": ["zstd", "-dc"]}


SERVER_FACTS_SQL = (
    "SELECT current_setting('server_version_num')::int AS version_num, "
    "pg_is_in_recovery() AS in_recovery, "
    "(SELECT system_identifier::text FROM pg_control_system()) AS system_identifier, "
    "(SELECT bytes_per_wal_segment FROM pg_control_init()) AS wal_segment_size, "
    "(SELECT timeline_id FROM pg_control_checkpoint()) AS timeline, "
    "now() AS server_time"
)


class BackupError(DbarchError):
    """A failure with a message a DBA can act on."""

    def __init__(self, message, backup_id=None, problems=None):
        super(BackupError, self).__init__(message)
        self.backup_id = backup_id
        self.problems = problems or []


# --------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------


def check_options(features, fmt, compression, site, checkpoint):
    """Raise BackupError when the server version or format cannot do what is asked."""
    if fmt not in FORMATS:
        raise BackupError("format must be tar or plain, not %r" % (fmt,))
    if checkpoint not in CHECKPOINTS:
        raise BackupError("checkpoint must be fast or spread, not %r" % (checkpoint,))
    if compression not in COMPRESSIONS:
        raise BackupError("compression must be one of %s, not %r" % (", ".join(COMPRESSIONS), compression))
    if site not in COMPRESSION_SITES:
        raise BackupError("compression_site must be client or server, not %r" % (site,))
    if compression == "none":
        return
    methods = features.basebackup_compression_methods
    if compression not in methods:
        raise BackupError(
            "pg_basebackup of PostgreSQL %d compresses with %s only; %s needs PostgreSQL 15 or later"
            % (features.major, ", ".join(methods), compression)
        )
    if site == "server" and not features.has_server_side_compression:
        raise BackupError(
            "server-side compression needs PostgreSQL 15 or later (this server runs %d); "
            "use compression_site=client" % features.major
        )
    if fmt == "plain" and site == "client":
        raise BackupError(
            "plain format cannot be compressed on the client (the files are written as they are); "
            "use format=tar, or compression_site=server (PostgreSQL 15+: compressed in transit only)"
        )


def basebackup_argv(bindir, target, features, fmt, compression, site, checkpoint, label, max_rate=None):
    argv = [
        os.path.join(bindir, "pg_basebackup"),
        "--pgdata=%s" % target,
        "--format=%s" % ("t" if fmt == "tar" else "p"),
        "--wal-method=stream",
        "--checkpoint=%s" % checkpoint,
        "--manifest-checksums=SHA256",
        "--label=%s" % label,
        "--no-password",
        "--verbose",
    ]
    if compression != "none":
        if features.has_server_side_compression:
            argv.append("--compress=%s-%s" % (site, compression))
        else:
            argv.append("--gzip")
    if max_rate:
        argv.append("--max-rate=%s" % max_rate)
    return argv


def connection_env(libpq):
    """pg_basebackup's PG* variables from the module's resolved libpq keywords (no database)."""
    return pg.libpq_environment(libpq, exclude=("dbname",))


def run_tool(argv, bindir, env_extra=None, timeout=None, what=None):
    """Run a PostgreSQL client tool of ``bindir`` (check=False: the caller reads returncode).

    PG* variables of this process are not passed on (``env_extra`` gives the ones wanted); the
    password (PGPASSWORD) is masked in what comes back. Raises BackupError on a timeout or a
    tool that cannot start."""
    env = proc.clean_env(lc.library_env(bindir))
    env.update(env_extra or {})
    secrets = [env_extra[k] for k in ("PGPASSWORD",) if (env_extra or {}).get(k)]
    try:
        return proc.run(argv, env=env, timeout=timeout, check=False, secrets=secrets, what=what)
    except proc.ProcError as exc:
        raise BackupError(str(exc)) from None


# --------------------------------------------------------------------------------------
# Facts from the backup
# --------------------------------------------------------------------------------------


def parse_backup_label(text):
    """backup_label -> {start_lsn, checkpoint_lsn, start_time, start_timeline, label, from}."""
    out = {}
    patterns = {
        "start_lsn": r"^START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+)",
        "checkpoint_lsn": r"^CHECKPOINT LOCATION: ([0-9A-F]+/[0-9A-F]+)",
        "backup_from": r"^BACKUP FROM: (\w+)",
        "start_time_text": r"^START TIME: (.+)$",
        "label": r"^LABEL: (.*)$",
        "start_timeline": r"^START TIMELINE: (\d+)",
    }
    for key, pattern in patterns.items():
        match = re.search(pattern, text or "", re.M)
        if match:
            out[key] = match.group(1).strip()
    if "start_timeline" in out:
        out["start_timeline"] = int(out["start_timeline"])
    return out


def parse_controldata(text):
    """pg_controldata output -> {label: value}."""
    out = {}
    for line in (text or "").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            out[key.strip()] = value.strip()
    return out


def _open_tar(path):
    """(tarfile in stream mode, process or None) for a possibly compressed tar."""
    for suffix, command in _DECOMPRESSOR.items():
        if path.endswith(suffix):
            if command is None:
                # gzip.open reads every gzip member (PostgreSQL 14 writes more than one).
                return tarfile.open(fileobj=gzip.open(path, "rb"), mode="r|"), None
            child = subprocess.Popen(command + [path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            return tarfile.open(fileobj=child.stdout, mode="r|"), child
    return tarfile.open(path, mode="r|"), None


def member_mode(member):
    """The permission bits an extracted member gets: those stored in the tar, without
    set-id/sticky bits and group/other write (what tarfile's ``data`` filter allows)."""
    return member.mode & 0o755


def extract_tar(path, dest, members=None):
    """Extract a (compressed) tar into dest; only ``members`` when given. Safe names only.

    Files and folders keep the permission bits stored in the tar (``member_mode``): a
    restored data folder has pg_basebackup's modes (0600/0700, or 0640/0750 with group
    access), not the umask's. Owners are not taken from the tar (the caller sets them)."""
    wanted = set(members or [])
    folders = []
    try:
        archive, child = _open_tar(path)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BackupError("%s cannot be read as a tar archive: %s" % (os.path.basename(path), exc)) from None
    try:
        for member in archive:
            name = os.path.normpath(member.name)
            if name.startswith("..") or os.path.isabs(name):
                raise BackupError("%s holds an unsafe path %r" % (path, member.name))
            if wanted and name not in wanted:
                continue
            if member.issym() or member.islnk():
                # pg_tblspc/<oid> links point outside the backup; tablespaces come from <oid>.tar.
                continue
            try:
                archive.extract(member, dest, set_attrs=False, filter="data")
            except TypeError:  # Python without extraction filters (before 3.11.4)
                archive.extract(member, dest, set_attrs=False)
            target = os.path.join(dest, name)
            if member.isdir():
                folders.append((target, member_mode(member)))
            elif member.isfile():
                os.chmod(target, member_mode(member))
        # Folders last (deepest first), so a read-only folder never blocks what goes inside it.
        for target, mode in sorted(folders, key=lambda item: item[0], reverse=True):
            os.chmod(target, mode | 0o700)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BackupError("%s cannot be read as a tar archive: %s" % (os.path.basename(path), exc)) from None
    finally:
        archive.close()
        if child is not None:
            child.stdout.close()
            err = child.stderr.read().decode("utf-8", "replace")
            child.stderr.close()
            if child.wait() != 0:
                raise BackupError("decompressing %s failed: %s" % (os.path.basename(path), err.strip()))


def tar_name(staged, base):
    """The file of tar member set ``base`` (base, pg_wal, <oid>) in ``staged``."""
    for suffix in _TAR_SUFFIX.values():
        path = os.path.join(staged, base + suffix)
        if os.path.exists(path):
            return path
    return None


def read_facts(staged, fmt, bindir, scratch, extracted=None):
    """backup_label, manifest WAL range and pg_control of the backup in ``staged``.

    ``extracted``: a folder where a tar backup was already extracted (by verify), so the two
    files are read there instead of streaming base.tar once more.
    """
    manifest_path = os.path.join(staged, "backup_manifest")
    try:
        with open(manifest_path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as exc:
        raise BackupError("the backup has no readable backup_manifest: %s" % exc) from None
    ranges = manifest.get("WAL-Ranges") or []
    if not ranges:
        raise BackupError("backup_manifest has no WAL-Ranges")
    if fmt == "plain":
        datadir = staged
    elif extracted and os.path.exists(os.path.join(extracted, "global", "pg_control")):
        datadir = extracted
    else:
        datadir = os.path.join(scratch, "control")
        os.makedirs(datadir)
        base = tar_name(staged, "base")
        if base is None:
            raise BackupError("the tar backup in %s has no base.tar" % staged)
        extract_tar(base, datadir, members=["backup_label", os.path.join("global", "pg_control")])
    with open(os.path.join(datadir, "backup_label")) as handle:
        label = parse_backup_label(handle.read())
    res = run_tool([os.path.join(bindir, "pg_controldata"), "-D", datadir], bindir, what="pg_controldata")
    if res.returncode != 0:
        raise BackupError("pg_controldata on the backup failed: %s" % (res.stderr or res.stdout).strip())
    control = parse_controldata(res.stdout)
    return {
        "label": label,
        "control": control,
        "wal_ranges": ranges,
        "manifest_files": len(manifest.get("Files") or []),
        "manifest_bytes": sum(int(f.get("Size", 0)) for f in manifest.get("Files") or []),
    }


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------


def verify(staged, fmt, bindir, features, scratch, keep=False):
    """pg_verifybackup on the backup. Returns {ok, method, output}.

    With ``keep`` a tar backup's extracted copy stays in ``scratch``/verify (the caller removes
    ``scratch``), so read_facts can use it instead of reading base.tar again.
    """
    tool = os.path.join(bindir, "pg_verifybackup")
    if fmt == "plain":
        res = run_tool([tool, staged], bindir, what="pg_verifybackup", timeout=None)
        method = "pg_verifybackup (plain)"
    else:
        target = os.path.join(scratch, "verify")
        os.makedirs(target)
        method = "pg_verifybackup on an extracted copy (tar)"
        try:
            for name in sorted(os.listdir(staged)):
                path = os.path.join(staged, name)
                base = name.split(".tar")[0]
                if ".tar" not in name:
                    continue
                if base == "base":
                    extract_tar(path, target)
                elif base == "pg_wal":
                    os.makedirs(os.path.join(target, "pg_wal"), exist_ok=True)
                    extract_tar(path, os.path.join(target, "pg_wal"))
                elif base.isdigit():
                    link = os.path.join(target, "pg_tblspc", base)
                    if os.path.islink(link):
                        os.unlink(link)
                    os.makedirs(link, exist_ok=True)
                    extract_tar(path, link)
            shutil.copy(os.path.join(staged, "backup_manifest"), target)
        except BackupError as exc:
            return {"ok": False, "method": method, "output": str(exc)}
        res = run_tool([tool, target], bindir, what="pg_verifybackup")
        if res.returncode == 0 and features.verifybackup_reads_tar:
            # 18 reads tar (and its compression) itself: check the stored files as well.
            native = run_tool([tool, "--no-parse-wal", staged], bindir, what="pg_verifybackup")
            method = "pg_verifybackup on an extracted copy and on the tar files (18+)"
            if native.returncode != 0:
                res = native
        if not keep:
            shutil.rmtree(target, ignore_errors=True)
    output = ((res.stdout or "") + (res.stderr or "")).strip()
    return {"ok": res.returncode == 0, "method": method, "output": output[-3000:]}


# --------------------------------------------------------------------------------------
# Taking a backup
# --------------------------------------------------------------------------------------


def server_facts(session):
    row = session.fetchone(SERVER_FACTS_SQL)
    return {
        "version_num": int(row["version_num"]),
        "in_recovery": bool(row["in_recovery"]),
        "system_identifier": str(row["system_identifier"]),
        "wal_segment_size": int(row["wal_segment_size"]),
        "timeline": int(row["timeline"]),
        "server_time": row["server_time"],
    }


def resolve_bindir(bindir, major):
    if bindir:
        found = lc.binary_major(bindir) if os.path.exists(os.path.join(bindir, "postgres")) else None
        tool = os.path.join(bindir, "pg_basebackup")
        if not os.access(tool, os.X_OK):
            raise BackupError("bindir %s has no pg_basebackup" % bindir)
        if found is not None and found != major:
            raise BackupError("bindir %s holds PostgreSQL %s but the server runs %s" % (bindir, found, major))
        return bindir
    try:
        return lc.find_bindir(major)
    except lc.LocalClusterError as exc:
        raise BackupError(str(exc)) from None


def plan(
    facts,
    repository,
    fmt="tar",
    compression="none",
    site="client",
    checkpoint="fast",
    label=None,
    bindir=None,
):
    """What take() would run, without running it (check mode)."""
    features = Features(facts["version_num"])
    check_options(features, fmt, compression, site, checkpoint)
    backup_id = br.new_backup_id()
    target = "%s/backups/%s/%s" % (repository.url.rstrip("/"), backup_id, br.DATA_FOLDER)
    label = label or "dbarch %s" % backup_id
    argv = basebackup_argv(bindir or "<bindir>", target, features, fmt, compression, site, checkpoint, label)
    actions = [
        "pg_basebackup from %s (PostgreSQL %s) into %s"
        % (
            "a standby" if facts["in_recovery"] else "the primary",
            version_text(facts["version_num"]),
            target,
        ),
    ]
    return {"backup_id": backup_id, "label": label, "argv": argv, "actions": actions}


def _claim_id(repo, staging_root):
    """A new backup id and its staging folder; a taken id (a concurrent run) waits a second."""
    for _attempt in range(30):
        backup_id = br.new_backup_id()
        if repo.id_taken(backup_id):
            time.sleep(0.5)
            continue
        try:
            return backup_id, repo.staging_dir(backup_id, staging_root)
        except FileExistsError:
            time.sleep(0.5)
    raise BackupError("could not claim a new backup id in %s for 15 seconds" % repo.url)


def take(
    session,
    libpq,
    repo,
    fmt="tar",
    compression="none",
    site="client",
    checkpoint="fast",
    label=None,
    bindir=None,
    do_verify=True,
    staging_root=None,
    max_rate=None,
    timeout=None,
):
    """Take, verify and record one base backup. Returns the metadata written to backup.json.

    Raises BackupError (with ``backup_id`` set once a folder exists) on any failure; a
    backup that fails verification is recorded with status ``invalid``.
    """
    facts = server_facts(session)
    features = Features(facts["version_num"])
    check_options(features, fmt, compression, site, checkpoint)
    bindir = resolve_bindir(bindir, features.major)
    repo.ensure()
    backup_id, staged = _claim_id(repo, staging_root)
    label = label or "dbarch %s" % backup_id
    started = session.scalar("SELECT now()")
    argv = basebackup_argv(bindir, staged, features, fmt, compression, site, checkpoint, label, max_rate)
    res = run_tool(argv, bindir, env_extra=connection_env(libpq), timeout=timeout, what="pg_basebackup")
    if res.returncode != 0:
        repo.abandon(backup_id, staged)
        raise BackupError(
            "pg_basebackup failed (exit %d): %s. The unfinished backup %s has no backup.json and is "
            "never listed as complete; its files were removed."
            % (res.returncode, (res.stderr or res.stdout).strip()[-1500:], backup_id),
            backup_id=backup_id,
        )
    stop_time = session.scalar("SELECT now()")
    scratch = tempfile.mkdtemp(prefix=".verify-", dir=os.path.dirname(staged))
    try:
        # Verify first: a tar backup is extracted for it once, and its facts are read from that copy.
        verification = (
            verify(staged, fmt, bindir, features, scratch, keep=True)
            if do_verify
            else {"ok": None, "method": "skipped (verify=false)", "output": ""}
        )
        backup = read_facts(staged, fmt, bindir, scratch, extracted=os.path.join(scratch, "verify"))
        control = backup["control"]
        system_id = control.get("Database system identifier")
        if system_id != facts["system_identifier"]:
            raise BackupError(
                "the backup's pg_control has system identifier %s, the server %s"
                % (system_id, facts["system_identifier"]),
                backup_id=backup_id,
            )
        ranges = backup["wal_ranges"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    files = br.checksum_tree(staged)
    metadata = {
        "format_version": FORMAT_VERSION,
        "id": backup_id,
        "label": label,
        "status": {True: "valid", False: "invalid", None: "unverified"}[verification["ok"]],
        "verification": verification,
        "system_identifier": facts["system_identifier"],
        "timeline": int(ranges[-1]["Timeline"]),
        "start_timeline": backup["label"].get("start_timeline"),
        "start_lsn": ranges[0]["Start-LSN"],
        "stop_lsn": ranges[-1]["End-LSN"],
        "checkpoint_lsn": backup["label"].get("checkpoint_lsn"),
        "label_start_lsn": backup["label"].get("start_lsn"),
        "start_time": br.format_time(started),
        "backup_label_start_time": backup["label"].get("start_time_text"),
        "stop_time": br.format_time(stop_time),
        "taken_from": "standby" if facts["in_recovery"] else "primary",
        "pg_version_num": facts["version_num"],
        "pg_version": version_text(facts["version_num"]),
        "pg_major": features.major,
        "wal_segment_size": int(control.get("Bytes per WAL segment") or facts["wal_segment_size"]),
        "block_size": int(control.get("Database block size") or 8192),
        "data_checksums": control.get("Data page checksum version", "0") != "0",
        "format": fmt,
        "compression": compression,
        "compression_site": site if compression != "none" else None,
        "checkpoint": checkpoint,
        "wal_method": "stream",
        "manifest_checksums": "SHA256",
        "database_bytes": backup["manifest_bytes"],
        "database_files": backup["manifest_files"],
        "stored_bytes": sum(f["size"] for f in files.values()),
        "files": files,
        "repository": repo.url,
        "command": argv,
    }
    if wn.parse_lsn(metadata["stop_lsn"]) < wn.parse_lsn(metadata["start_lsn"]):
        raise BackupError("backup_manifest has a stop LSN before its start LSN", backup_id=backup_id)
    try:
        if verification["ok"] is not False:
            metadata["upload"] = repo.store(backup_id, staged, files) or None
        repo.write_metadata(backup_id, metadata)
    finally:
        repo.discard_staging(staged)
    if verification["ok"] is False:
        raise BackupError(
            "backup %s FAILED verification (%s) and is recorded as invalid (never used for a "
            "restore): %s" % (backup_id, verification["method"], verification["output"]),
            backup_id=backup_id,
        )
    return metadata


# --------------------------------------------------------------------------------------
# Inspecting a repository (backup_info)
# --------------------------------------------------------------------------------------


def summary_of(entry):
    """A backup as listed by backup_info: metadata without the per-file checksums."""
    out = {k: v for k, v in entry.items() if k not in ("files", "upload")}
    out["file_count"] = len(entry.get("files") or {})
    return out


def _latest_commit(repo, newest, cover, bindir):
    """latest_commit_* of the coverage: pg_waldump on the last contiguous segments."""
    size = cover["segment_size"]
    end_segno = wn.segno_of(wn.parse_lsn(cover["latest_lsn"]) - 1, size)
    stop_segno = wn.segno_of(wn.parse_lsn(newest["stop_lsn"]), size)
    present = {}
    for entry in repo.list_wal():
        info = wn.parse_wal_name(entry["name"], size)
        if info and info["kind"] == "segment":
            present[(info["timeline"], info["segno"])] = entry["name"]
    names = []
    for segno in range(end_segno, stop_segno - 1, -1):
        candidates = [present[k] for k in sorted(present, reverse=True) if k[1] == segno]
        if candidates:
            names.append(candidates[0])
    try:
        bindir = bindir or lc.find_bindir(newest["pg_major"])
    except lc.LocalClusterError as exc:
        return {"latest_commit_note": "pg_waldump not available: %s" % exc}
    moment, segment, note = last_commit_time(repo, names, bindir)
    return {"latest_commit_time": moment, "latest_commit_segment": segment, "latest_commit_note": note}


def inspect(
    repo,
    check_files=False,
    include_incomplete=False,
    max_age_hours=None,
    now=None,
    read_commits=True,
    bindir=None,
):
    """Backups, WAL coverage, gaps and findings of a repository. Changes nothing."""
    now = br.parse_time(now) if now else br.utcnow()
    found = []
    backups = br.list_backups(repo, include_incomplete=True)
    verification = {}
    for entry in backups:
        if entry["status"] == "incomplete":
            found.append(
                Finding(
                    "BACKUP-INCOMPLETE",
                    "low",
                    entry["id"],
                    "backup %s has no backup.json: it was interrupted (or is still running) and is "
                    "never used" % entry["id"],
                    why="Only a backup whose metadata was written after every file can be trusted.",
                    fix="Remove %s/backups/%s once no backup is running." % (repo.url, entry["id"]),
                )
            )
            continue
        if entry["status"] == "invalid":
            found.append(
                Finding(
                    "BACKUP-INVALID",
                    "high",
                    entry["id"],
                    "backup %s failed verification when it was taken and is not usable" % entry["id"],
                    evidence={"verification": entry.get("verification")},
                    fix="Find the cause in the verification output, take a new backup, then remove this one.",
                )
            )
        if check_files and entry["status"] != "invalid":
            problems = br.verify_files(repo, entry["id"], entry)
            verification[entry["id"]] = problems
            if problems:
                entry["usable"] = False
                entry["status"] = "corrupt"
                names = ", ".join("%s (%s)" % (p["file"], p["problem"]) for p in problems[:10])
                found.append(
                    Finding(
                        "BACKUP-CORRUPT",
                        "critical",
                        entry["id"],
                        "backup %s does not match its recorded checksums: %s" % (entry["id"], names),
                        why="A restore from this backup would fail or restore damaged data.",
                        fix="Take a new backup now; keep this one aside for investigation.",
                        evidence={"problems": problems},
                    )
                )
    complete = [b for b in backups if b["status"] != "incomplete"]
    usable = [b for b in complete if b.get("usable")]
    wal_entries = repo.list_wal()
    segment_size = usable[-1].get("wal_segment_size") if usable else None
    histories = {}
    for entry in wal_entries:
        info = wn.parse_wal_name(entry["name"])
        if info and info["kind"] == "history":
            histories[info["timeline"]] = repo.read_wal_text(entry["name"])
    cover = br.coverage(complete, wal_entries, histories, segment_size)
    cover.update(latest_commit_time=None, latest_commit_segment=None, latest_commit_note=None)
    if read_commits and usable and cover["latest_lsn"] != usable[-1]["stop_lsn"]:
        cover.update(_latest_commit(repo, usable[-1], cover, bindir))
    found.extend(
        health_findings(
            usable,
            cover["gaps_in_window"],
            repo.url,
            max_age_hours,
            now=now,
            none_message="the repository holds no usable base backup",
            none_fix="Take a base backup (dbarch.postgresql.basebackup).",
        )
    )
    if usable and cover["latest_lsn"] == usable[-1]["stop_lsn"]:
        found.append(
            Finding(
                "WAL-NOT-ARCHIVED",
                "medium",
                repo.url,
                "no archived WAL follows the newest backup %s (first missing: %s): point-in-time "
                "recovery ends at the end of that backup"
                % (usable[-1]["id"], cover["first_missing_segment"]),
                fix="Check archive_mode/archive_command and pg_stat_archiver on the server.",
            )
        )
    for name in cover["other_files"]:
        found.append(
            Finding("WAL-UNKNOWN-FILE", "info", name, "%s in the WAL folder is not a WAL file" % name)
        )
    listed = [summary_of(b) for b in backups if include_incomplete or b["status"] != "incomplete"]
    return {
        "repository": repo.url,
        "backups": listed,
        "wal": cover,
        "gaps": cover["gaps"],
        "file_checks": verification,
        "findings": findings_sorted(found),
    }


def health_findings(usable, gaps_in_window, where, max_age_hours, now=None, none_message=None, none_fix=None):
    """The backup-health findings both engines report (native and pgBackRest call this one):

    - BACKUP-NONE when ``usable`` (usable backups, oldest first) is empty;
    - BACKUP-STALE when the newest usable one finished more than ``max_age_hours`` ago;
    - WAL-GAP for each gap of ``gaps_in_window`` (backup_repo.coverage()'s, inside the
      window a restore can reach).

    ``where``: the object of BACKUP-NONE (repository URL, stanza)."""
    now = now or br.utcnow()
    found = []
    if not usable:
        found.append(
            Finding(
                "BACKUP-NONE",
                "high",
                where,
                none_message or "%s holds no usable backup" % where,
                fix=none_fix or "Take a backup (dbarch.postgresql.basebackup).",
            )
        )
    else:
        newest = usable[-1]
        age_hours = (now - br.parse_time(newest["stop_time"])).total_seconds() / 3600.0
        if max_age_hours is not None and age_hours > float(max_age_hours):
            found.append(
                Finding(
                    "BACKUP-STALE",
                    "medium",
                    newest["id"],
                    "the newest usable backup finished %.1f hours ago (limit %s)"
                    % (age_hours, max_age_hours),
                    fix="Check the backup schedule and its last run.",
                    evidence={"age_hours": round(age_hours, 2)},
                )
            )
    for gap in gaps_in_window or []:
        found.append(
            Finding(
                "WAL-GAP",
                "high",
                "timeline %d after %s" % (gap["timeline"], gap["after"]),
                "%d WAL segment(s) missing between %s and %s: %s"
                % (gap["missing_count"], gap["after"], gap["before"], ", ".join(gap["missing"][:10])),
                why="Recovery cannot replay past a missing segment: every point after the gap is "
                "reachable only from a backup taken after it.",
                fix="Restore the missing segments from another copy if one exists; take a new base backup.",
                evidence=gap,
            )
        )
    return found


_COMMIT = re.compile(r"desc: COMMIT (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ?(\S*)")


def parse_commit_time(text, zone):
    """A pg_waldump COMMIT timestamp -> aware datetime (None for a zone it cannot read)."""
    stamp = datetime.datetime.strptime(text + ("" if "." in text else ".0"), "%Y-%m-%d %H:%M:%S.%f")
    if zone in ("UTC", "GMT", "+00", "Z", ""):
        return stamp.replace(tzinfo=br.UTC)
    match = re.match(r"^([+-])(\d\d)(?::?(\d\d))?$", zone)
    if not match:
        return None
    offset = datetime.timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))
    return stamp.replace(tzinfo=datetime.timezone(-offset if match.group(1) == "-" else offset))


def last_commit_time(repo, names, bindir, limit=8):
    """Time of the last COMMIT in the newest of ``names`` (newest first) that holds one.

    Reads at most ``limit`` segments with pg_waldump --rmgr=Transaction. Returns
    (iso time or None, segment name or None, note or None).
    """
    scratch = tempfile.mkdtemp(prefix="dbarch-waldump-")
    try:
        for name in names[:limit]:
            path = repo.wal_path(name, scratch)
            res = run_tool(
                [os.path.join(bindir, "pg_waldump"), "--rmgr=Transaction", path], bindir, what="pg_waldump"
            )
            found = _COMMIT.findall(res.stdout or "")
            if found:
                moment = parse_commit_time(*found[-1])
                if moment is None:
                    return None, name, "pg_waldump printed a time zone it cannot read: %s" % found[-1][1]
                return br.format_time(moment), name, None
        return None, None, "no COMMIT record in the last %d archived segment(s)" % min(limit, len(names))
    except (BackupError, br.RepositoryError, wn.WalError, OSError) as exc:
        return None, None, "could not read the WAL with pg_waldump: %s" % exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def findings_sorted(found):
    return sorted(found, key=lambda f: f.sort_key())
