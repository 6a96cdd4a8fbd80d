# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Point-in-time restore from a backup repository (the ``pitr_restore`` module's engine).

Plain Python, no Ansible imports. Order of a restore:

1. ``plan()``: pick the backup (newest usable one that ends at or before the target),
   check that the archived WAL reaches the target without a gap (pg_waldump finds the
   commit after a time target, the commit of an xid, the restore point of a name), and
   compute the settings to write. Read-only: check mode stops here.
2. ``restore()``: check the backup's files against backup.json, extract or copy them into
   ``data_dir``, write recovery.signal and the recovery settings into
   ``postgresql.auto.conf``, start the server with pg_ctl (as the postgres OS user when
   root) and wait until recovery ended (promote), paused or shut down at the target.
   Recovery that ends before the target is a failure, never a silent earlier promote.

The restored cluster gets the dbarch cluster layout (``data_dir``'s parent folder holds
``run/``, ``log/`` and the marker), so ``local_cluster`` can stop or remove it later.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import re
import shutil
import tempfile
import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup as bk
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal as wn
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

TARGET_ACTIONS = ("promote", "pause", "shutdown")
DEFAULT_WAL_SCRIPT = "/usr/local/bin/dbarch-wal"
RECOVERY_FAILED = lc.RECOVERY_FAILED
_RECORD = re.compile(
    r"tx:\s*(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), prev [0-9A-F]+/[0-9A-F]+, desc: (\S+)\s*(.*)$"
)
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ?([^;\s]*)")


class PitrError(DbarchError):
    """A restore failure with a message a DBA can act on."""

    def __init__(self, message, log_tail=None, plan=None):
        super(PitrError, self).__init__(message)
        self.log_tail = log_tail
        self.plan = plan


# --------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------


def parse_target(target_time=None, target_xid=None, target_lsn=None, target_name=None, target=None):
    """Exactly one target -> {kind, value, text}. ``target`` is 'latest' or 'immediate'."""
    given = [
        (k, v)
        for k, v in (
            ("time", target_time),
            ("xid", target_xid),
            ("lsn", target_lsn),
            ("name", target_name),
            ("target", target),
        )
        if v not in (None, "")
    ]
    if len(given) != 1:
        raise PitrError(
            "give exactly one of target_time, target_xid, target_lsn, target_name or target "
            "(latest or immediate); got %s" % (", ".join(k for k, _v in given) or "none")
        )
    kind, value = given[0]
    if kind == "time":
        try:
            moment = br.parse_time(str(value).strip())
        except ValueError:
            raise PitrError(
                "target_time %r is not a time; use ISO 8601 such as 2026-01-31 12:00:00+00" % (value,)
            ) from None
        return {"kind": "time", "value": moment, "text": br.format_time(moment)}
    if kind == "xid":
        text = str(value).strip()
        if not text.isdigit() or int(text) < 3:
            raise PitrError("target_xid %r is not a transaction id (a number of 3 or more)" % (value,))
        return {"kind": "xid", "value": int(text), "text": text}
    if kind == "lsn":
        try:
            lsn = wn.parse_lsn(value)
        except wn.WalError as exc:
            raise PitrError("target_lsn: %s" % exc) from None
        return {"kind": "lsn", "value": lsn, "text": wn.format_lsn(lsn)}
    if kind == "name":
        return {"kind": "name", "value": str(value), "text": str(value)}
    if value not in ("latest", "immediate"):
        raise PitrError("target must be 'latest' or 'immediate', not %r" % (value,))
    return {"kind": value, "value": None, "text": value}


# --------------------------------------------------------------------------------------
# WAL in replay order
# --------------------------------------------------------------------------------------


class WalArchive:
    """The archived WAL recovery reads: the repository's ``wal/`` or a plain folder.

    With an S3 repository, ``cache`` is a local folder: each segment the checks read is
    downloaded there once (checked against its sha256 metadata) and pg_waldump reads the
    local copy; ``downloaded`` lists what was fetched.
    """

    def __init__(self, repo, folder=None, cache=None):
        self.repo = repo
        self.folder = folder
        self.cache = cache
        self.downloaded = []
        if folder is not None and not os.path.isdir(folder):
            raise PitrError("wal_archive %s is not a folder" % folder)

    @property
    def where(self):
        return self.folder or "%s/wal" % self.repo.url

    def list(self):
        if self.folder is None:
            return self.repo.list_wal()
        out = []
        for entry in os.scandir(self.folder):
            if entry.is_file() and not entry.name.startswith("."):
                st = entry.stat()
                out.append({"name": entry.name, "size": st.st_size, "mtime": st.st_mtime})
        return sorted(out, key=lambda e: e["name"])

    def read_text(self, name):
        if self.folder is None:
            return self.repo.read_wal_text(name)
        with open(os.path.join(self.folder, name), "rb") as handle:
            return br.decompress_wal(name, handle.read()).decode("utf-8", "replace")

    def local_path(self, name, scratch):
        if self.folder is None:
            if self.cache is not None:
                cached = os.path.join(self.cache, name.split(".")[0])
                if not os.path.exists(cached):
                    self.repo.wal_path(name, self.cache)
                    self.downloaded.append(name)
                return cached
            return self.repo.wal_path(name, scratch)
        path = os.path.join(self.folder, name)
        if not name.endswith(wn.COMPRESSED_SUFFIXES):
            return path
        with open(path, "rb") as handle:
            return br.write_plain_wal(scratch, name, handle.read())


def wal_state(archive, segment_size):
    """(segments {(tli, segno): entry}, histories {tli: [(parent, switch)]}) of the archive."""
    entries = archive.list()
    inv = br.wal_inventory(entries, segment_size)
    histories = {tli: wn.parse_history(archive.read_text(name)) for tli, name in inv["history"].items()}
    return inv["segments"], histories


def replay_chain(start_lsn, start_tli, segments, histories, segment_size):
    """What recovery from ``start_lsn`` reads, as recovery_target_timeline=latest does.

    Returns {names: [segment names in replay order], end_lsn, missing (first segment it
    would miss), later: [archived segments after the missing one on that timeline chain]}.
    """
    end, _tli, missing = br.replay_end(start_lsn, start_tli, segments, histories, segment_size)
    targets = [
        t
        for t in sorted({start_tli} | set(histories))
        if t == start_tli or any(p == start_tli for p, _s in histories.get(t, []))
    ]
    chain = wn.timeline_chain(max(targets), histories)
    names = []
    for segno in range(wn.segno_of(start_lsn, segment_size), wn.segno_of(end, segment_size)):
        for tli, begin, stop in reversed(chain):
            if wn.segno_of(begin, segment_size) > segno:
                continue
            if stop is not None and wn.segno_of(stop, segment_size) < segno:
                continue
            if (tli, segno) in segments:
                names.append(segments[(tli, segno)]["name"])
                break
    chain_tlis = {t for t, _b, _s in chain}
    end_segno = wn.segno_of(end, segment_size)
    later = sorted(segments[key]["name"] for key in segments if key[0] in chain_tlis and key[1] > end_segno)
    return {"names": names, "end_lsn": end, "missing": missing, "later": later}


def _waldump_records(archive, name, bindir, rmgr, scratch):
    """[(xid, lsn, desc kind, rest)] of one segment's records of ``rmgr``."""
    path = archive.local_path(name, scratch)
    res = bk.run_tool(
        [os.path.join(bindir, "pg_waldump"), "--rmgr=%s" % rmgr, path],
        bindir,
        env_extra={"TZ": "UTC"},
        what="pg_waldump",
    )
    out = []
    for line in (res.stdout or "").splitlines():
        match = _RECORD.search(line)
        if match:
            out.append((int(match.group(1)), wn.parse_lsn(match.group(2)), match.group(3), match.group(4)))
    # pg_waldump ends every segment it reads alone with "error in WAL record" (the next
    # segment is not beside it, or the WAL written ends there); anything else is a failure.
    err = res.stderr or ""
    if (
        res.returncode != 0
        and "error in WAL record" not in err
        and "could not find a valid record" not in err
    ):
        raise PitrError("pg_waldump could not read %s: %s" % (name, (res.stderr or "").strip()[-500:]))
    return out


def _commit_time(rest):
    match = _STAMP.match(rest)
    if not match:
        return None
    return bk.parse_commit_time(match.group(1), match.group(2))


def scan(archive, names, bindir, rmgr, wanted):
    """First record of ``names`` (replay order) for which ``wanted(xid, lsn, kind, rest)``.

    Returns (record or None, last commit seen as (lsn, time) or None).
    """
    scratch = tempfile.mkdtemp(prefix="dbarch-pitr-waldump-", dir=archive.cache)
    last_commit = None
    try:
        for index, name in enumerate(names):
            if archive.cache is not None and index + 1 < len(names):
                # pg_waldump reads a record that continues into the next segment from beside
                # the file it was given: download that one first, as a folder would have it.
                archive.local_path(names[index + 1], scratch)
            for record in _waldump_records(archive, name, bindir, rmgr, scratch):
                if record[2] == "COMMIT":
                    last_commit = (record[1], _commit_time(record[3]))
                if wanted(*record):
                    return record, last_commit
        return None, last_commit
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------


def _usable_backups(repo):
    backups = [b for b in br.list_backups(repo) if b.get("usable")]
    if not backups:
        raise PitrError("repository %s holds no usable backup (valid or unverified)" % repo.url)
    return backups


def _gap_text(chain, archive):
    return "WAL segment %s is missing from %s, but the archive continues at %s: recovery would stop at %s" % (
        chain["missing"],
        archive.where,
        chain["later"][0],
        wn.format_lsn(chain["end_lsn"]),
    )


def _chain_from(backup, segments, histories):
    size = int(backup.get("wal_segment_size") or wn.DEFAULT_SEGMENT_SIZE)
    return replay_chain(wn.parse_lsn(backup["stop_lsn"]), int(backup["timeline"]), segments, histories, size)


def _locate(backups, archive, segments, histories, bindir, target, inclusive):
    """LSN of the record an xid or name target stops at, searched from the oldest backup."""
    oldest = backups[0]
    chain = _chain_from(oldest, segments, histories)
    if target["kind"] == "xid":
        xid = target["value"]

        def wanted(rec_xid, _lsn, kind, _rest):
            # pg_waldump prints 32-bit xids; target_xid may carry the epoch (txid_current()).
            return rec_xid == xid & 0xFFFFFFFF and kind in ("COMMIT", "ABORT")

        what = "no COMMIT or ABORT record of transaction %d" % xid
        rmgr = "Transaction"
    else:
        name = target["value"]

        def wanted(_xid, _lsn, kind, rest):
            return kind == "RESTORE_POINT" and rest.strip() == name

        what = "no restore point named %r" % name
        rmgr = "XLOG"
    record, _last = scan(archive, chain["names"], bindir, rmgr, wanted)
    if record is None:
        where = "in the WAL archived after backup %s (%s, up to %s)" % (
            oldest["id"],
            archive.where,
            wn.format_lsn(chain["end_lsn"]),
        )
        if chain["later"]:
            raise PitrError("%s %s; %s" % (what, where, _gap_text(chain, archive)))
        raise PitrError(
            "%s %s: the target is not in the archive (first missing segment %s)"
            % (what, where, chain["missing"])
        )
    return record


def plan(
    repo,
    target,
    data_dir,
    port,
    wal_archive=None,
    inclusive=True,
    target_action="promote",
    bindir=None,
    wal_script=DEFAULT_WAL_SCRIPT,
    python="/usr/bin/python3",
    restore_command=None,
    keep_archiving=False,
    staging_dir=None,
):
    """Choose the backup, check the WAL reaches the target, compute the settings. Read-only.

    With an S3 repository (and no ``wal_archive`` folder) the WAL segments the checks read
    are downloaded into a temporary folder (under ``staging_dir`` when it exists), removed
    before returning; nothing else is downloaded.
    """
    if target_action not in TARGET_ACTIONS:
        raise PitrError("target_action must be one of %s" % ", ".join(TARGET_ACTIONS))
    cache = None
    if br.is_s3(repo.url) and wal_archive is None:
        root = staging_dir if staging_dir and os.path.isdir(staging_dir) else None
        cache = tempfile.mkdtemp(prefix="dbarch-pitr-wal-", dir=root)
    try:
        archive = WalArchive(repo, wal_archive, cache=cache)
        out = _plan(
            repo,
            archive,
            target,
            data_dir,
            port,
            inclusive,
            target_action,
            bindir,
            wal_script,
            python,
            restore_command,
            keep_archiving,
        )
    finally:
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
    out["staging_dir"] = os.path.abspath(staging_dir) if staging_dir else None
    out["wal_downloaded"] = list(archive.downloaded)
    return out


def _plan(
    repo,
    archive,
    target,
    data_dir,
    port,
    inclusive,
    target_action,
    bindir,
    wal_script,
    python,
    restore_command,
    keep_archiving,
):
    backups = _usable_backups(repo)
    newest = backups[-1]
    size = int(newest.get("wal_segment_size") or wn.DEFAULT_SEGMENT_SIZE)
    segments, histories = wal_state(archive, size)
    major = int(newest["pg_major"])
    bindir = _bindir(bindir, major)
    kind = target["kind"]
    located = None
    if kind in ("latest", "immediate"):
        chosen = newest
    elif kind == "time":
        fits = [b for b in backups if br.parse_time(b["stop_time"]) <= target["value"]]
        if not fits:
            raise PitrError(
                "target_time %s is before the end of the oldest usable backup %s (stop_time %s): "
                "no backup can restore to it" % (target["text"], backups[0]["id"], backups[0]["stop_time"])
            )
        chosen = fits[-1]
    elif kind == "lsn":
        fits = [b for b in backups if wn.parse_lsn(b["stop_lsn"]) <= target["value"]]
        if not fits:
            raise PitrError(
                "target_lsn %s is before the end of the oldest usable backup %s (stop_lsn %s): "
                "no backup can restore to it" % (target["text"], backups[0]["id"], backups[0]["stop_lsn"])
            )
        chosen = fits[-1]
    else:
        located = _locate(backups, archive, segments, histories, bindir, target, inclusive)
        fits = [b for b in backups if wn.parse_lsn(b["stop_lsn"]) <= located[1]]
        if not fits:
            raise PitrError(
                "the %s target %s is at %s, inside the oldest usable backup %s (stop_lsn %s): "
                "no backup can restore to it"
                % (kind, target["text"], wn.format_lsn(located[1]), backups[0]["id"], backups[0]["stop_lsn"])
            )
        chosen = fits[-1]
    if int(chosen["pg_major"]) != major:
        bindir = _bindir(None, int(chosen["pg_major"]))
    chain = _chain_from(chosen, segments, histories)
    check = _check_coverage(chosen, chain, archive, bindir, target, inclusive, located)
    command = restore_command or _restore_command(repo, archive, wal_script, python)
    settings = recovery_settings(target, inclusive, target_action, command)
    return {
        "backup": chosen,
        "backup_id": chosen["id"],
        "bindir": bindir,
        "target": target,
        "archive": archive.where,
        "replay_end_lsn": wn.format_lsn(chain["end_lsn"]),
        "first_missing_segment": chain["missing"],
        "coverage": check,
        "restore_command": command,
        "recovery_settings": settings,
        "data_dir": os.path.abspath(data_dir),
        "port": port,
        "keep_archiving": keep_archiving,
        "target_action": target_action,
    }


def _bindir(bindir, major):
    if bindir:
        if not os.access(os.path.join(bindir, "pg_ctl"), os.X_OK):
            raise PitrError("bindir %s has no pg_ctl" % bindir)
        found = lc.binary_major(bindir)
        if found != major:
            raise PitrError("bindir %s holds PostgreSQL %s but the backup is of %s" % (bindir, found, major))
        return bindir
    try:
        return lc.find_bindir(major)
    except lc.LocalClusterError as exc:
        raise PitrError(str(exc)) from None


def _check_coverage(chosen, chain, archive, bindir, target, inclusive, located):
    """Fail unless the archive reaches the target from ``chosen`` without a gap."""
    kind = target["kind"]
    end = chain["end_lsn"]
    if kind == "immediate":
        return {"stops_at": "end of backup %s (%s)" % (chosen["id"], chosen["stop_lsn"])}
    if kind == "latest":
        if chain["later"]:
            raise PitrError(_gap_text(chain, archive))
        return {
            "stops_at": "end of the archived WAL (%s, first missing %s)"
            % (wn.format_lsn(end), chain["missing"])
        }
    if kind == "lsn":
        if target["value"] >= end:
            if chain["later"]:
                raise PitrError(
                    "target_lsn %s is not reachable: %s" % (target["text"], _gap_text(chain, archive))
                )
            raise PitrError(
                "target_lsn %s is after the end of the WAL archived in %s after backup %s: replay ends at "
                "%s (segment %s is not archived yet)"
                % (target["text"], archive.where, chosen["id"], wn.format_lsn(end), chain["missing"])
            )
        return {"stops_at": target["text"]}
    if kind in ("xid", "name"):
        return {"stops_at": "%s record at %s" % (located[2], wn.format_lsn(located[1]))}
    moment = target["value"]

    def wanted(_xid, _lsn, rec_kind, rest):
        # PostgreSQL stops at the first COMMIT or ABORT record after (inclusive) or at the time.
        if rec_kind not in ("COMMIT", "ABORT"):
            return False
        stamp = _commit_time(rest)
        if stamp is None:
            return False
        return stamp > moment if inclusive else stamp >= moment

    record, last = scan(archive, chain["names"], bindir, "Transaction", wanted)
    if record is None:
        seen = (
            "the last archived commit is at %s (%s)" % (br.format_time(last[1]), wn.format_lsn(last[0]))
            if last
            else "no commit was archived after backup %s" % chosen["id"]
        )
        if chain["later"]:
            raise PitrError(
                "target_time %s is not reachable: %s; %s" % (target["text"], seen, _gap_text(chain, archive))
            )
        raise PitrError(
            "target_time %s needs a commit after it in the archived WAL (PostgreSQL stops with FATAL "
            "otherwise) but %s; replay ends at %s (segment %s is not archived yet). Wait for more WAL to "
            "be archived or choose an earlier target"
            % (target["text"], seen, wn.format_lsn(end), chain["missing"])
        )
    return {
        "stops_at": "before the commit of transaction %d at %s (%s)"
        % (record[0], br.format_time(_commit_time(record[3])), wn.format_lsn(record[1])),
    }


def _restore_command(repo, archive, wal_script, python):
    s3 = []
    if br.is_s3(repo.url):
        for flag, value in (("--endpoint-url", repo.endpoint_url), ("--region", repo.region)):
            if value:
                s3 += [flag, value]
    for part in [archive.where, wal_script or "", python or ""] + s3:
        if "'" in part or "%" in part:
            raise PitrError("%r holds a quote or %% sign; give restore_command yourself" % part)
    for part in s3:
        if not part or any(c.isspace() for c in part):
            raise PitrError("%r holds a space; give restore_command yourself" % part)
    if archive.folder is not None:
        return "cp '%s/%%f' '%%p'" % archive.folder.rstrip("/")
    if wal_script and os.path.isfile(wal_script):
        return " ".join([python, wal_script, "--repo", repo.url] + s3 + ["restore", "%f", "%p"])
    if br.is_s3(repo.url):
        raise PitrError("dbarch-wal (%s) is not on this host; it restores WAL from S3" % wal_script)
    return "cp '%s/%%f' '%%p'" % archive.where


def recovery_settings(target, inclusive, target_action, restore_command):
    """[(name, value)] written into postgresql.auto.conf (PostgreSQL 12+: no recovery.conf)."""
    out = [("restore_command", restore_command), ("recovery_target_timeline", "latest")]
    kind = target["kind"]
    if kind == "immediate":
        out.append(("recovery_target", "immediate"))
    elif kind != "latest":
        out.append(("recovery_target_%s" % kind, target["text"]))
        if kind in ("time", "xid", "lsn"):
            out.append(("recovery_target_inclusive", "on" if inclusive else "off"))
    if kind != "latest":
        out.append(("recovery_target_action", target_action))
    return out


# --------------------------------------------------------------------------------------
# Data folder
# --------------------------------------------------------------------------------------


def check_data_dir(cluster, force):
    """Refuse a non-empty data_dir (or a running cluster); with force, wipe a stopped one."""
    if cluster.pid() and lc.pid_alive(cluster.pid()):
        raise PitrError(
            "a PostgreSQL server is running in %s (pid %s); stop it first: pitr_restore never "
            "deletes a running cluster's data" % (cluster.data_dir, cluster.pid())
        )
    try:
        content = os.listdir(cluster.data_dir)
    except FileNotFoundError:
        return None
    if not content:
        return None
    if not force:
        raise PitrError(
            "data_dir %s is not empty (%d entries); choose an empty folder, or set force: true to "
            "replace a stopped cluster's data" % (cluster.data_dir, len(content))
        )
    return "remove the content of %s (force)" % cluster.data_dir


def _wipe(folder):
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def fetch(repo, backup, staging_root):
    """Local folder holding the backup's data files: the repository's own folder, or (S3) a
    new folder under ``staging_root`` the objects were downloaded into, each checked against
    backup.json's SHA-256 and size while it was written. Returns (source, staging or None)."""
    if not br.is_s3(repo.url):
        return repo.fetch_backup(backup["id"]), None
    files = backup.get("files") or {}
    if not files:
        raise PitrError("backup %s: backup.json lists no files" % backup["id"])
    os.makedirs(staging_root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="dbarch-pitr-fetch-%s-" % backup["id"], dir=staging_root)
    try:
        problems = repo.download_backup(backup["id"], files, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if problems:
        shutil.rmtree(staging, ignore_errors=True)
        raise PitrError(
            "backup %s in %s does not match backup.json: %s; nothing was restored"
            % (backup["id"], repo.url, _problem_text(problems))
        )
    return staging, staging


def _problem_text(problems):
    return ", ".join("%s (%s)" % (p["file"], p["problem"]) for p in problems[:10])


def verify_extracted(source, data_dir, bindir):
    """pg_verifybackup of the extracted data folder against the backup's backup_manifest.

    Returns None when there is no manifest (a backup taken without one), else the tool's
    output on failure ('' when it passed)."""
    manifest = os.path.join(source, "backup_manifest")
    if not os.path.isfile(manifest):
        return None
    argv = [os.path.join(bindir, "pg_verifybackup"), "-m", manifest]
    if os.path.exists(os.path.join(data_dir, "tablespace_map")):
        # Tar-format tablespaces sit at their own locations, linked from pg_tblspc only when
        # the server starts; their tar files were checked against backup.json already.
        argv += ["--ignore", "pg_tblspc"]
    wal = os.path.join(data_dir, "pg_wal")
    if not any(len(n) == 24 for n in (os.listdir(wal) if os.path.isdir(wal) else [])):
        argv.append("--no-parse-wal")
    res = bk.run_tool(argv + [data_dir], bindir, what="pg_verifybackup")
    if res.returncode == 0:
        return ""
    return ((res.stdout or "") + (res.stderr or "")).strip()[-2000:] or "exit %d" % res.returncode


def _extract(source, backup, data_dir):
    if backup["format"] == "plain":
        for name in sorted(os.listdir(source)):
            src = os.path.join(source, name)
            dst = os.path.join(data_dir, name)
            if os.path.isdir(src) and not os.path.islink(src):
                shutil.copytree(src, dst, symlinks=True)
            else:
                shutil.copy2(src, dst, follow_symlinks=False)
        return
    base = bk.tar_name(source, "base")
    if base is None:
        raise PitrError("backup %s has no base.tar" % backup["id"])
    bk.extract_tar(base, data_dir)
    wal = bk.tar_name(source, "pg_wal")
    if wal is not None:
        os.makedirs(os.path.join(data_dir, "pg_wal"), exist_ok=True)
        bk.extract_tar(wal, os.path.join(data_dir, "pg_wal"))
    spaces = {}
    text = lc.read_text(os.path.join(data_dir, "tablespace_map"), "") or ""
    for line in text.splitlines():
        if " " in line:
            oid, location = line.split(" ", 1)
            spaces[oid] = location
    for name in sorted(os.listdir(source)):
        oid = name.split(".tar")[0]
        if ".tar" in name and oid.isdigit():
            location = spaces.get(oid)
            if not location:
                raise PitrError(
                    "tablespace %s of backup %s has no entry in tablespace_map" % (oid, backup["id"])
                )
            if os.path.isdir(location) and os.listdir(location):
                raise PitrError("tablespace location %s (oid %s) is not empty" % (location, oid))
            os.makedirs(location, exist_ok=True)
            bk.extract_tar(os.path.join(source, name), location)


def server_settings(restore_plan, socket_dir):
    out = [
        ("port", str(restore_plan["port"])),
        ("unix_socket_directories", socket_dir),
        ("hot_standby", "on"),
    ]
    if not restore_plan["keep_archiving"]:
        out.append(("archive_mode", "off"))
    return out + restore_plan["recovery_settings"]


# --------------------------------------------------------------------------------------
# Running the restore
# --------------------------------------------------------------------------------------


def restore(repo, restore_plan, force=False, timeout=3600, superuser="postgres", run_as=None):
    """Carry out a plan(): returns the result dict; raises PitrError."""
    clock = time.monotonic()
    phases = {}
    backup = restore_plan["backup"]
    cluster = lc.LocalCluster(
        restore_plan["data_dir"],
        port=restore_plan["port"],
        bindir=restore_plan["bindir"],
        run_as=run_as,
        superuser=superuser,
    )
    marker = cluster.read_marker()
    if marker and marker.get("data_dir") != cluster.data_dir:
        raise PitrError(cluster.foreign_reason())
    if check_data_dir(cluster, force):
        _wipe(cluster.data_dir)
    if lc.port_in_use(cluster.port):
        raise PitrError("port %s is in use; choose another port" % cluster.port)

    started = time.monotonic()
    cluster.begin_restore(int(backup["pg_major"]), backup["id"])
    staging_root = restore_plan.get("staging_dir") or cluster.base_dir
    source, staging = fetch(repo, backup, staging_root)
    phases["fetch"] = round(time.monotonic() - started, 3)
    try:
        _extract_and_verify(repo, backup, source, cluster, restore_plan["bindir"], phases)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)

    started = time.monotonic()
    cluster.configure_recovery(server_settings(restore_plan, cluster.socket_dir), recovery_signal=True)
    phases["extract"] = round(phases["extract"] + time.monotonic() - started, 3)

    # The server's restore_command reads S3 with the credentials given to the module, through
    # the server's environment only (never a file); without them, the OS user's AWS chain.
    env = dict(getattr(repo, "credentials_env", None) or {}) if br.is_s3(repo.url) else {}
    reached = start_and_wait(cluster, restore_plan["target_action"], timeout, phases, env_extra=env)
    cluster.finish_restore(int(backup["pg_major"]), backup["id"])
    reached.update(
        backup_id=backup["id"],
        data_dir=cluster.data_dir,
        port=cluster.port,
        socket_dir=cluster.socket_dir,
        log_file=cluster.log_file,
        phases=phases,
        rto_seconds=round(time.monotonic() - clock, 3),
    )
    return reached


def start_and_wait(cluster, action, timeout, phases, env_extra=None):
    """LocalCluster.start_recovery with the result in pitr's shape (reached_time as ISO text);
    a failure becomes PitrError with the log's tail."""
    try:
        reached = cluster.start_recovery(action=action, timeout=timeout, env_extra=env_extra, phases=phases)
    except lc.RecoveryError as exc:
        raise PitrError(str(exc), log_tail=exc.log_tail) from None
    if reached.get("reached_time") is not None:
        moment = datetime.datetime.fromtimestamp(float(reached["reached_time"]), br.UTC)
        reached["reached_time"] = br.format_time(moment)
    return reached


def _extract_and_verify(repo, backup, source, cluster, bindir, phases):
    """Extract ``source`` into the data folder, then verify: the repository's files against
    backup.json (a folder; S3 objects were checked while downloading) and the extracted data
    against backup_manifest with pg_verifybackup. A failure empties the data folder."""
    started = time.monotonic()
    try:
        _extract(source, backup, cluster.data_dir)
    except (bk.BackupError, OSError, EOFError) as exc:
        _wipe(cluster.data_dir)
        problems = [] if br.is_s3(repo.url) else br.verify_files(repo, backup["id"], backup)
        if problems:
            raise PitrError(
                "backup %s does not match backup.json: %s" % (backup["id"], _problem_text(problems))
            ) from None
        raise PitrError(
            "extracting backup %s into %s failed: %s" % (backup["id"], cluster.data_dir, exc)
        ) from None
    phases["extract"] = round(time.monotonic() - started, 3)
    started = time.monotonic()
    problems = [] if br.is_s3(repo.url) else br.verify_files(repo, backup["id"], backup)
    if problems:
        _wipe(cluster.data_dir)
        raise PitrError("backup %s does not match backup.json: %s" % (backup["id"], _problem_text(problems)))
    failed = verify_extracted(source, cluster.data_dir, bindir)
    if failed:
        _wipe(cluster.data_dir)
        raise PitrError(
            "pg_verifybackup found the restored data of backup %s different from its backup_manifest: %s"
            % (backup["id"], failed)
        )
    phases["verify"] = round(time.monotonic() - started, 3)
