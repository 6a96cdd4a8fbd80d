# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgBackRest as a backup engine (``engine: pgbackrest`` of basebackup, backup_info, pitr_restore).

Plain Python, no Ansible imports. The collection writes one pgbackrest.conf per stanza
(``render_config``) and always runs ``pgbackrest --config <file> --stanza <stanza> ...``,
so the host's /etc/pgbackrest.conf is never read or changed.

- Secrets (S3 keys) go only into that file, written 0600 for the OS user that runs
  pgBackRest, or come from the environment (PGBACKREST_REPO1_S3_KEY,
  PGBACKREST_REPO1_S3_KEY_SECRET): never on a command line, never in results
  (``masked`` replaces them).
- pgBackRest runs as the cluster's OS user (``postgres`` when the module runs as root),
  with its log and lock folders under a work folder that user owns.
- ``info --output=json`` and ``repo-ls`` are turned into the same shapes as the native
  repository: backups (id = pgBackRest label), WAL coverage (backup_repo.coverage),
  gaps and findings.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import json
import os
import pwd
import re
import shutil
import tempfile
import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup as bk
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal as wn
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import pitr
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.fsutil import atomic_write

ENGINES = ("native", "pgbackrest")
DEFAULT_BINARY = "/usr/bin/pgbackrest"
DEFAULT_CONFIG = "/etc/pgbackrest/dbarch-%s.conf"
DEFAULT_WORK_DIR = "/var/spool/pgbackrest/dbarch-%s"
COMPRESS_TYPES = {"none": "none", "gzip": "gz", "lz4": "lz4", "zstd": "zst"}
SECRET_OPTIONS = ("repo1-s3-key", "repo1-s3-key-secret", "repo1-s3-token", "repo1-cipher-pass")
SECRET_ENV = (
    "PGBACKREST_REPO1_S3_KEY",
    "PGBACKREST_REPO1_S3_KEY_SECRET",
    "PGBACKREST_REPO1_S3_TOKEN",
    "PGBACKREST_REPO1_CIPHER_PASS",
)
MASK = proc.MASK
TARGET_TIMELINES = ("current", "latest")
_STANZA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SEGMENT_FILE = re.compile(r"^([0-9A-F]{24})-[0-9a-f]{40}(\.[a-z0-9]+)?$")
_HISTORY_FILE = re.compile(r"^([0-9A-F]{8})\.history$")
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./@:+-]+$")
_OPTION_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")

ARGSPEC = dict(
    engine=dict(type="str", default="native", choices=list(ENGINES)),
    stanza=dict(type="str", default="main"),
    pgbackrest_config=dict(type="path"),
    pgbackrest_work_dir=dict(type="path"),
    pgbackrest_user=dict(type="str"),
    pgbackrest_options=dict(type="dict", default={}),
)


class PgBackRestError(DbarchError):
    """A pgBackRest failure with a message a DBA can act on (never a secret)."""

    def __init__(self, message, log_tail=None):
        super(PgBackRestError, self).__init__(message)
        self.log_tail = log_tail


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


def validate_stanza(stanza):
    if not stanza or not _STANZA.match(stanza):
        raise PgBackRestError(
            "stanza %r is not a valid pgBackRest stanza name; use letters, digits, '_', '.' and '-'"
            % (stanza,)
        )
    return stanza


def _safe_path(path, what):
    if not path or not _SAFE_PATH.match(path):
        raise PgBackRestError(
            "%s %r holds characters that cannot go into archive_command or pgbackrest.conf unquoted; "
            "use a path of letters, digits and ./_-@:+" % (what, path)
        )
    return path


def config_path(params):
    stanza = validate_stanza(params.get("stanza") or "main")
    return os.path.abspath(params.get("pgbackrest_config") or DEFAULT_CONFIG % stanza)


def work_dir(params):
    stanza = validate_stanza(params.get("stanza") or "main")
    return os.path.abspath(params.get("pgbackrest_work_dir") or DEFAULT_WORK_DIR % stanza)


def run_user(params):
    """OS user that runs pgBackRest: the option, postgres when root, else the current user."""
    if params.get("pgbackrest_user"):
        return params["pgbackrest_user"]
    if os.geteuid() == 0:
        return "postgres"
    return pwd.getpwuid(os.geteuid()).pw_name


def find_binary():
    found = shutil.which("pgbackrest") or (DEFAULT_BINARY if os.access(DEFAULT_BINARY, os.X_OK) else None)
    if not found:
        raise PgBackRestError(
            "pgbackrest is not installed on this host; install the Debian package (apt-get install "
            "pgbackrest) or use engine: native"
        )
    return found


def binary_version(binary=None):
    """'pgBackRest 2.45' (the output of `pgbackrest version`)."""
    try:
        out = proc.run([binary or find_binary(), "version"], timeout=30, check=False)
    except proc.ProcError as exc:
        return "pgBackRest (version unknown: %s)" % exc
    return (out.stdout or "").strip() or "pgBackRest (version unknown)"


def archive_command(config, stanza, binary=DEFAULT_BINARY):
    """archive_command for this engine (visible to database users: it holds no secret)."""
    _safe_path(config, "pgbackrest_config")
    _safe_path(binary, "pgbackrest binary")
    return "%s --config %s --stanza=%s archive-push %%p" % (binary, config, validate_stanza(stanza))


def _s3_parts(url):
    rest = url[len("s3://") :]
    bucket, _sep, prefix = rest.partition("/")
    if not bucket:
        raise PgBackRestError("repository %s names no bucket (s3://bucket/prefix)" % url)
    return bucket, "/" + prefix.strip("/")


def repo_options(repository, s3=None):
    """[(name, value)] of the [global] repository options (secrets included: file only)."""
    s3 = dict(s3 or {})
    if not br.is_s3(repository):
        if s3:
            raise PgBackRestError(
                "%s apply to S3 repositories only; repository %s is a folder"
                % (", ".join(sorted(s3)), repository)
            )
        if not os.path.isabs(repository):
            raise PgBackRestError("repository %s must be an absolute folder path" % repository)
        return [("repo1-path", _safe_path(os.path.normpath(repository), "repository"))]
    bucket, prefix = _s3_parts(repository)
    region = s3.get("region") or "us-east-1"
    out = [("repo1-type", "s3"), ("repo1-path", prefix), ("repo1-s3-bucket", bucket)]
    endpoint = s3.get("endpoint_url")
    if endpoint:
        scheme, _sep, host = endpoint.partition("://")
        if not host:
            scheme, host = "https", endpoint
        if scheme != "https":
            raise PgBackRestError(
                "pgBackRest talks to S3 over TLS only; endpoint_url %s is not https" % endpoint
            )
        host = host.rstrip("/")
        out.append(("repo1-s3-endpoint", host.split(":")[0]))
        if ":" in host:
            out.append(("repo1-storage-port", host.split(":")[1]))
        out.append(("repo1-s3-uri-style", "path"))
    else:
        out.append(("repo1-s3-endpoint", "s3.%s.amazonaws.com" % region))
    out.append(("repo1-s3-region", region))
    if s3.get("verify_tls") is False:
        out.append(("repo1-storage-verify-tls", "n"))
    key, secret = s3.get("aws_access_key_id"), s3.get("aws_secret_access_key")
    if bool(key) != bool(secret):
        raise PgBackRestError("give both aws_access_key_id and aws_secret_access_key, or neither")
    if key:
        out += [("repo1-s3-key", key), ("repo1-s3-key-secret", secret)]
    elif not all(os.environ.get(name) for name in SECRET_ENV[:2]):
        # No key given: instance profile / task role (pgBackRest fetches temporary credentials).
        out.append(("repo1-s3-key-type", "auto"))
    if s3.get("sse") == "aws:kms" and s3.get("sse_kms_key_id"):
        out.append(("repo1-s3-kms-key-id", s3["sse_kms_key_id"]))
    elif s3.get("sse"):
        raise PgBackRestError("with engine pgbackrest, sse needs aws:kms and sse_kms_key_id")
    return out


def render_config(
    stanza,
    repository,
    work,
    s3=None,
    pg=None,
    compression="none",
    retain_count=None,
    retain_days=None,
    checkpoint="fast",
    extra=None,
):
    """pgbackrest.conf text for one stanza (deterministic: the same input, the same bytes)."""
    validate_stanza(stanza)
    _safe_path(work, "pgbackrest_work_dir")
    if compression not in COMPRESS_TYPES:
        raise PgBackRestError("compression %r: use one of %s" % (compression, ", ".join(COMPRESS_TYPES)))
    glob = repo_options(repository, s3)
    if retain_count is not None and retain_days is not None:
        raise PgBackRestError(
            "pgBackRest keeps full backups by count or by time, not both: give retain_count or retain_days"
        )
    if retain_count is not None:
        if int(retain_count) < 1:
            raise PgBackRestError("retain_count must be at least 1")
        glob.append(("repo1-retention-full", str(int(retain_count))))
    elif retain_days is not None:
        days = max(1, int(-(-float(retain_days) // 1)))
        glob += [("repo1-retention-full-type", "time"), ("repo1-retention-full", str(days))]
    glob += [
        ("compress-type", COMPRESS_TYPES[compression]),
        ("start-fast", "y" if checkpoint == "fast" else "n"),
        ("log-path", os.path.join(work, "log")),
        ("lock-path", os.path.join(work, "lock")),
        ("spool-path", os.path.join(work, "spool")),
        ("log-level-file", "info"),
        ("log-level-console", "warn"),
    ]
    for key, value in sorted((extra or {}).items()):
        if not _OPTION_NAME.match(str(key)) or key.startswith("pg1-") or "\n" in str(value):
            raise PgBackRestError(
                "pgbackrest_options: %r is not a [global] pgBackRest option name (lower case, digits, '-'; "
                "pg1-* options come from the server)" % (key,)
            )
        text = ("y" if value else "n") if isinstance(value, bool) else str(value)
        glob = [(k, v) for k, v in glob if k != key] + [(str(key), text)]
    lines = ["# Managed by dbarch.postgresql (engine: pgbackrest). Changes are overwritten.", "[global]"]
    lines += ["%s=%s" % (k, v) for k, v in glob]
    lines += ["", "[%s]" % stanza]
    for key in ("path", "port", "socket-path", "user"):
        value = (pg or {}).get(key)
        if value not in (None, ""):
            lines.append("pg1-%s=%s" % (key, value))
    return "\n".join(lines) + "\n"


def masked(text):
    """Config text with every secret value replaced (for diff and results)."""
    out = []
    for line in (text or "").splitlines():
        key = line.split("=", 1)[0].strip()
        out.append("%s=%s" % (key, MASK) if key in SECRET_OPTIONS and "=" in line else line)
    return "\n".join(out) + ("\n" if text and text.endswith("\n") else "")


def secrets_of(text):
    """Secret values of a pgbackrest.conf text and of the PGBACKREST_* secret variables."""
    values = []
    for line in (text or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in SECRET_OPTIONS and value.strip():
            values.append(value.strip())
    values += [os.environ[n] for n in SECRET_ENV if os.environ.get(n)]
    return values


def _user_ids(user):
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PgBackRestError("OS user %r (pgbackrest_user) does not exist" % user) from None
    return entry.pw_uid, entry.pw_gid


def read_config(path):
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_config(path, text, user):
    """Write the config 0600 for ``user`` (atomically); True when the content changed."""
    current = read_config(path)
    uid, gid = _user_ids(user)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o755)
    if current == text:
        st = os.stat(path)
        if (st.st_uid, st.st_mode & 0o777) == (uid, 0o600):
            return False
    atomic_write(path, text, 0o600, (uid, gid) if os.geteuid() == 0 else None)
    return True


def ensure_work_dirs(work, user):
    """log/, lock/ and spool/ under ``work``, owned by ``user``; True when one was created."""
    uid, gid = _user_ids(user)
    created = False
    for folder in (work, os.path.join(work, "log"), os.path.join(work, "lock"), os.path.join(work, "spool")):
        if not os.path.isdir(folder):
            os.makedirs(folder, mode=0o750)
            created = True
            if os.geteuid() == 0:
                os.chown(folder, uid, gid)
    return created


# --------------------------------------------------------------------------------------
# Running pgBackRest
# --------------------------------------------------------------------------------------


class Runner:
    """``pgbackrest --config <file> --stanza <stanza> <command> ...`` as the right OS user."""

    def __init__(self, config, stanza, user, binary=None):
        self.config = config
        self.stanza = validate_stanza(stanza)
        self.user = user
        self.binary = binary or find_binary()
        self.commands = []
        self.temporary = False

    def argv(self, command, *args):
        return [self.binary, "--config", self.config, "--stanza", self.stanza, command] + list(args)

    def run(self, command, *args, **kw):
        check = kw.pop("check", True)
        timeout = kw.pop("timeout", None)
        argv = self.argv(command, *args)
        self.commands.append(argv)
        env = proc.clean_env(keep=SECRET_ENV)
        secrets = secrets_of(read_config(self.config) if os.access(self.config, os.R_OK) else "")
        try:
            res = proc.run(
                argv,
                env=env,
                run_as=self.user,
                timeout=timeout,
                check=False,
                secrets=secrets,
                cwd="/",
                what="pgbackrest %s" % command,
            )
        except proc.ProcError as exc:
            if exc.timed_out:
                raise PgBackRestError(
                    "pgbackrest %s did not finish within %ss" % (command, timeout)
                ) from None
            raise PgBackRestError(str(exc)) from None
        if check and res.returncode != 0:
            said = (res.stderr or res.stdout).strip()
            if "VersionNotSupportedError" in said or "unexpected control version" in said:
                raise PgBackRestError(
                    "%s does not support the PostgreSQL major version of this cluster; install a pgBackRest "
                    "release that supports it, or use engine: native. pgbackrest %s said: %s"
                    % (binary_version(self.binary), command, said[-600:])
                )
            raise PgBackRestError(
                "pgbackrest %s (stanza %s, config %s) failed with exit %d: %s"
                % (
                    command,
                    self.stanza,
                    self.config,
                    res.returncode,
                    (res.stderr or res.stdout).strip()[-1500:],
                )
            )
        return res

    def info(self):
        out = self.run("info", "--output=json").stdout
        try:
            data = json.loads(out)
        except ValueError:
            raise PgBackRestError("pgbackrest info did not return JSON: %s" % out[:300]) from None
        for entry in data:
            if entry.get("name") == self.stanza:
                return entry
        return {"name": self.stanza, "backup": [], "archive": [], "db": [], "status": {"code": 1}}

    def repo_ls(self, path):
        out = self.run("repo-ls", "--recurse", "--output=json", path).stdout
        try:
            return json.loads(out)
        except ValueError:
            raise PgBackRestError("pgbackrest repo-ls did not return JSON: %s" % out[:300]) from None

    def repo_get(self, path):
        return self.run("repo-get", path).stdout


@contextlib.contextmanager
def runner_for(params, check_mode=False):
    """A Runner on the stanza's config; without one, on a temporary repository-only config.

    The temporary config (0600, in a private folder) serves read-only work (info, check mode)
    on a host where the config was never written; it is removed afterwards.
    """
    path = config_path(params)
    user = run_user(params)
    if os.path.exists(path):
        yield Runner(path, params.get("stanza") or "main", user)
        return
    parent = tempfile.gettempdir()
    if lc.blocking_ancestor(parent, user) is not None:
        parent = "/tmp"  # noqa: S108 - the temporary folder must be reachable by the pgBackRest user
    scratch = tempfile.mkdtemp(prefix="dbarch-pgbackrest-", dir=parent)
    try:
        temp = os.path.join(scratch, "pgbackrest.conf")
        text = render_config(
            params.get("stanza") or "main",
            params["repository"],
            scratch,
            s3=s3_params(params),
            extra=params.get("pgbackrest_options"),
        )
        if os.geteuid() == 0:
            os.chown(scratch, *_user_ids(user))
        ensure_work_dirs(scratch, user)
        write_config(temp, text, user)
        runner = Runner(temp, params.get("stanza") or "main", user)
        runner.temporary = True
        yield runner
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def s3_params(params):
    return {name: params.get(name) for name in br.S3_OPTION_NAMES if params.get(name) is not None}


# --------------------------------------------------------------------------------------
# info -> the native shapes
# --------------------------------------------------------------------------------------


def _epoch(value):
    if value is None:
        return None
    return br.format_time(datetime.datetime.fromtimestamp(int(value), br.UTC))


def backups_from_info(stanza):
    """pgBackRest backups as the native backup list (id = pgBackRest label), oldest first."""
    dbs = {d.get("id"): d for d in stanza.get("db") or []}
    out = []
    for b in stanza.get("backup") or []:
        db = dbs.get((b.get("database") or {}).get("id"), {})
        archive = b.get("archive") or {}
        lsn = b.get("lsn") or {}
        info = b.get("info") or {}
        version = str(db.get("version") or "")
        error = bool(b.get("error"))
        out.append(
            {
                "id": b.get("label"),
                "label": b.get("label"),
                "engine": "pgbackrest",
                "type": b.get("type"),
                "status": "invalid" if error else "valid",
                "usable": not error,
                "prior": b.get("prior"),
                "annotation": b.get("annotation"),
                "start_time": _epoch((b.get("timestamp") or {}).get("start")),
                "stop_time": _epoch((b.get("timestamp") or {}).get("stop")),
                "start_lsn": lsn.get("start"),
                "stop_lsn": lsn.get("stop"),
                "start_wal": archive.get("start"),
                "stop_wal": archive.get("stop"),
                "start_timeline": wn.timeline_of(archive.get("start")),
                "timeline": wn.timeline_of(archive.get("stop")),
                "system_identifier": str(db["system-id"]) if db.get("system-id") is not None else None,
                "pg_version": version,
                "pg_major": int(version.split(".", maxsplit=1)[0]) if version[:1].isdigit() else None,
                "database_bytes": info.get("size"),
                "stored_bytes": (info.get("repository") or {}).get("size"),
                "backrest_version": (b.get("backrest") or {}).get("version"),
            }
        )
    return sorted(out, key=lambda x: (x["start_time"] or "", x["id"] or ""))


def archive_listing(runner, stanza_info):
    """WAL entries [{name, size, mtime}] and history texts {tli: text} of the current archive id."""
    ids = [a.get("id") for a in stanza_info.get("archive") or [] if a.get("id")]
    entries, histories = [], {}
    for archive_id in ids:
        listing = runner.repo_ls("archive/%s/%s" % (runner.stanza, archive_id))
        for path, meta in sorted(listing.items()):
            if meta.get("type") != "file":
                continue
            name = path.rsplit("/", 1)[-1]
            match = _SEGMENT_FILE.match(name)
            if match:
                entries.append({"name": match.group(1), "size": meta.get("size"), "mtime": meta.get("time")})
                continue
            match = _HISTORY_FILE.match(name)
            if match:
                entries.append({"name": name, "size": meta.get("size"), "mtime": meta.get("time")})
                text = runner.repo_get("archive/%s/%s/%s" % (runner.stanza, archive_id, path))
                histories[int(match.group(1), 16)] = text
    return entries, histories


def _status_finding(stanza_info, where):
    status = stanza_info.get("status") or {}
    code = status.get("code", 0)
    if code in (0, 2):  # ok; "no valid backups" is BACKUP-NONE
        return None
    return fnd.Finding(
        "PGBACKREST-STATUS",
        "high",
        where,
        "pgBackRest reports status %s for stanza %s: %s"
        % (code, stanza_info.get("name"), status.get("message") or "unknown"),
        fix="Run `pgbackrest --config <file> --stanza <stanza> check` as the cluster's OS user "
        "and fix what it names.",
        evidence={"status": status},
    )


def findings_for(backups, wal, stanza_info, where, max_age_hours, now=None):
    """Findings of the pgBackRest repository (same rule ids as the native engine)."""
    now = now or br.utcnow()
    found = []
    status = _status_finding(stanza_info, where)
    if status is not None:
        found.append(status)
    for b in backups:
        if not b["usable"]:
            found.append(
                fnd.Finding(
                    "BACKUP-INVALID",
                    "high",
                    b["id"],
                    "pgBackRest recorded errors (page checksum failures) in backup %s" % b["id"],
                    fix="Check the cluster for corruption and take a new backup.",
                )
            )
    usable = [b for b in backups if b["usable"]]
    found.extend(
        bk.health_findings(
            usable,
            wal.get("gaps_in_window"),
            where,
            max_age_hours,
            now=now,
            none_message="the pgBackRest stanza %s holds no usable backup" % stanza_info.get("name"),
            none_fix="Take a backup (dbarch.postgresql.basebackup with engine: pgbackrest).",
        )
    )
    return found


def inspect(runner, max_age_hours=26, where=None):
    """{backups, wal, gaps, findings, status} of the stanza (read-only)."""
    stanza_info = runner.info()
    backups = backups_from_info(stanza_info)
    entries, histories = archive_listing(runner, stanza_info) if stanza_info.get("archive") else ([], {})
    wal = br.coverage(backups, entries, histories)
    wal["archive"] = [
        {"id": a.get("id"), "min": a.get("min"), "max": a.get("max")}
        for a in stanza_info.get("archive") or []
    ]
    per_tli = {}
    for entry in entries:
        if len(entry["name"]) == 24:
            tli = wn.timeline_of(entry["name"])
            low, high = per_tli.get(tli, (entry["name"], entry["name"]))
            per_tli[tli] = (min(low, entry["name"]), max(high, entry["name"]))
    wal["per_timeline"] = [
        {"timeline": t, "min": per_tli[t][0], "max": per_tli[t][1]} for t in sorted(per_tli)
    ]
    where = where or "stanza %s" % runner.stanza
    return {
        "backups": backups,
        "wal": wal,
        "gaps": wal["gaps"],
        "status": stanza_info.get("status"),
        "file_checks": {},
        "findings": findings_for(backups, wal, stanza_info, where, max_age_hours),
    }


# --------------------------------------------------------------------------------------
# Backup
# --------------------------------------------------------------------------------------

SERVER_SQL = (
    "SELECT current_setting('data_directory') AS data_directory, current_setting('port') AS port, "
    "current_setting('unix_socket_directories') AS sockets, current_setting('archive_mode') AS archive_mode, "
    "current_setting('archive_command') AS archive_command, pg_is_in_recovery() AS in_recovery"
)


def server_pg_options(session, socket_dir=None, user=None):
    """pg1-* options from the running server (data directory, port, socket folder)."""
    try:
        row = session.fetchone(SERVER_SQL)
    except Exception as exc:  # noqa: BLE001 - pg.PgError and driver errors alike
        raise PgBackRestError(
            "cannot read data_directory from the server (needs superuser or pg_read_all_settings): %s" % exc
        ) from None
    sockets = [s.strip() for s in (row["sockets"] or "").split(",") if s.strip()]
    return {
        "path": row["data_directory"],
        "port": int(row["port"]),
        "socket-path": socket_dir or (sockets[0] if sockets else None),
        "user": user or "postgres",
        "archive_mode": row["archive_mode"],
        "archive_command": row["archive_command"],
        "in_recovery": bool(row["in_recovery"]),
    }


def config_from_params(params, pg):
    return render_config(
        params.get("stanza") or "main",
        params["repository"],
        work_dir(params),
        s3=s3_params(params),
        pg=pg,
        compression=params.get("compression") or "none",
        retain_count=params.get("retain_count"),
        retain_days=params.get("retain_days"),
        checkpoint=params.get("checkpoint") or "fast",
        extra=params.get("pgbackrest_options"),
    )


def basebackup(params, session, check_mode=False, socket_dir=None):
    """Write the config, create the stanza if missing, take a full backup.

    With ``params['configure_only']`` it stops after the stanza (no backup, and archiving need
    not work yet): what a role runs before it sets archive_command. Returns the module result
    (changed, backup_id, metadata, archive_command, config, diff, actions, commands). Nothing is
    written in check mode.
    """
    stanza = validate_stanza(params.get("stanza") or "main")
    configure_only = bool(params.get("configure_only"))
    path = config_path(params)
    work = work_dir(params)
    user = run_user(params)
    binary = find_binary()
    server = server_pg_options(session, socket_dir=socket_dir or params.get("login_unix_socket"))
    if server["in_recovery"]:
        raise PgBackRestError(
            "the server is a standby; engine pgbackrest backs up from the primary here (pgBackRest's "
            "backup-standby needs both hosts in one stanza)"
        )
    pg_options = {k: server[k] for k in ("path", "port", "socket-path", "user")}
    text = config_from_params(params, pg_options)
    before = read_config(path)
    command = archive_command(path, stanza, binary)
    result = {
        "changed": not configure_only,
        "engine": "pgbackrest",
        "stanza": stanza,
        "pgbackrest_config": path,
        "archive_command": command,
        "archive_command_set": server["archive_mode"] != "off" and server["archive_command"] == command,
        "config": masked(text),
        "diff": {
            "before": masked(before or ""),
            "after": masked(text),
            "before_header": path,
            "after_header": path,
        },
        "actions": [],
    }
    result["command"] = [binary, "--config", path, "--stanza", stanza, "backup", "--type=full"]
    local_repo = not br.is_s3(params["repository"])
    verb = "would " if check_mode else ""
    if before != text:
        result["actions"].append("%swrite %s" % (verb, path))
    if not result["archive_command_set"] and not configure_only:
        note = (
            "archive_mode is %s and archive_command is %r; set archive_mode=on and archive_command=%r "
            "(dbarch.postgresql.setting or the backup role), restart if archive_mode changed, then back up"
            % (server["archive_mode"], server["archive_command"], command)
        )
        if not check_mode:
            raise PgBackRestError("WAL is not archived to pgBackRest: " + note)
        result["actions"].append("WARNING " + note)
    if check_mode:
        missing = [
            f for f in (work, params["repository"] if local_repo else None) if f and not os.path.isdir(f)
        ]
        for folder in missing:
            result["actions"].append("would create folder %s" % folder)
        result["actions"].append("would create stanza %s if missing" % stanza)
        if configure_only:
            result["changed"] = before != text or bool(missing)
        else:
            result["actions"].append("would take a full backup: %s" % " ".join(result["command"]))
        return result
    changed = write_config(path, text, user)
    changed = ensure_work_dirs(work, user) or changed
    if local_repo and not os.path.isdir(params["repository"]):
        os.makedirs(params["repository"], mode=0o750)
        if os.geteuid() == 0:
            os.chown(params["repository"], *_user_ids(user))
        result["actions"].append("created repository folder %s" % params["repository"])
        changed = True
    runner = Runner(path, stanza, user, binary)
    info = runner.info()
    if (info.get("status") or {}).get("code") == 1 or not info.get("db"):
        runner.run("stanza-create")
        result["actions"].append("created stanza %s" % stanza)
        changed = True
    if configure_only:
        result.update(changed=changed, commands=runner.commands)
        return result
    seen = {b.get("label") for b in info.get("backup") or []}
    args = ["--type=full"]
    if params.get("label"):
        args.append("--annotation=label=%s" % params["label"])
    runner.run("backup", *args, timeout=params.get("timeout"))
    backups = backups_from_info(runner.info())
    new = [b for b in backups if b["id"] not in seen]
    if not new:
        raise PgBackRestError("pgbackrest backup returned success but info lists no new backup")
    meta = new[-1]
    result.update(backup_id=meta["id"], metadata=meta, commands=runner.commands)
    result["actions"].append(
        "took full backup %s with pgBackRest into %s" % (meta["id"], params["repository"])
    )
    return result


# --------------------------------------------------------------------------------------
# Restore
# --------------------------------------------------------------------------------------


def restore_args(target, inclusive=True, target_action="promote", target_timeline="latest", delta=False):
    """pgbackrest restore options for a pitr.parse_target() target."""
    kind = target["kind"]
    if target_timeline not in TARGET_TIMELINES and not str(target_timeline).isdigit():
        raise PgBackRestError("target_timeline must be current, latest or a number")
    args = []
    if kind == "latest":
        args.append("--type=default")
    elif kind == "immediate":
        args += ["--type=immediate", "--target-action=%s" % target_action]
    else:
        text = target["text"]
        if kind == "time":
            # pgBackRest selects the backup set from the time only in its own format.
            text = target["value"].astimezone(br.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        args += ["--type=%s" % kind, "--target=%s" % text, "--target-action=%s" % target_action]
        if kind in ("time", "xid", "lsn") and not inclusive:
            args.append("--target-exclusive")
    args.append("--target-timeline=%s" % target_timeline)
    if delta:
        args.append("--delta")
    return args


def expected_backup(backups, target):
    """Label of the backup pgBackRest will restore, when the target tells (None: xid, name)."""
    kind = target["kind"]
    if kind in ("latest", "immediate"):
        return backups[-1]["id"]
    if kind == "time":
        fits = [b for b in backups if br.parse_time(b["stop_time"]) <= target["value"]]
        what, limit = "target_time", "stop_time"
    elif kind == "lsn":
        fits = [b for b in backups if b["stop_lsn"] and wn.parse_lsn(b["stop_lsn"]) <= target["value"]]
        what, limit = "target_lsn", "stop_lsn"
    else:
        return None
    if not fits:
        raise pitr.PitrError(
            "%s %s is before the end of the oldest usable backup %s (%s %s): no backup can restore to it"
            % (what, target["text"], backups[0]["id"], limit, backups[0][limit])
        )
    return fits[-1]["id"]


def restore(params, target, check_mode=False):
    """pgbackrest restore into data_dir, dbarch cluster layout, start, wait at the target.

    pitr's data folder check, server settings and start-and-wait are reused as they are.
    """
    clock = time.monotonic()
    stanza = validate_stanza(params.get("stanza") or "main")
    data_dir = os.path.abspath(params["data_dir"])
    port = params["port"]
    action = params.get("target_action") or "promote"
    result = {"changed": False, "engine": "pgbackrest", "stanza": stanza, "actions": []}
    with runner_for(params, check_mode) as runner:
        stanza_info = runner.info()
        backups = [b for b in backups_from_info(stanza_info) if b["usable"]]
        if not backups:
            raise pitr.PitrError(
                "pgBackRest stanza %s (config %s) holds no usable backup" % (stanza, runner.config)
            )
        newest = backups[-1]
        major = newest["pg_major"]
        bindir = params.get("bindir") or lc.find_bindir(major)
        cluster = lc.LocalCluster(
            data_dir, port=port, bindir=bindir, superuser=params.get("superuser") or "postgres"
        )
        wipe = pitr.check_data_dir(cluster, params.get("force"))
        args = restore_args(
            target,
            inclusive=params.get("inclusive", True),
            target_action=action,
            target_timeline=params.get("target_timeline") or "latest",
            delta=bool(wipe),
        )
        args = ["--pg1-path=%s" % data_dir] + args
        plan = {"port": port, "keep_archiving": params.get("keep_archiving"), "recovery_settings": []}
        settings = pitr.server_settings(plan, cluster.socket_dir)
        result.update(
            backup_id=expected_backup(backups, target),
            command=runner.argv("restore", *args),
            recovery_settings=dict(settings),
            pgbackrest_config=runner.config,
        )
        verb = "would " if check_mode else ""
        if wipe:
            result["actions"].append(
                "%srestore with --delta over the stopped cluster in %s (force)" % (verb, data_dir)
            )
        result["actions"].append("%srun pgbackrest restore (%s) into %s" % (verb, " ".join(args), data_dir))
        result["actions"].append("%sstart the server on port %s (%s at the target)" % (verb, port, action))
        if check_mode:
            result["changed"] = True
            return result
        if runner.temporary:
            raise pitr.PitrError(
                "pgbackrest_config %s does not exist; the restored server's restore_command needs it. "
                "Write it first (dbarch.postgresql.basebackup engine: pgbackrest, or the backup role)"
                % config_path(params)
            )
        if lc.port_in_use(port):
            raise pitr.PitrError("port %s is in use; choose another port" % port)
        result["changed"] = True
        phases = {}
        started = time.monotonic()
        cluster.begin_restore(int(major), "pgbackrest")
        ensure_work_dirs(work_dir(params), runner.user)
        out = runner.run("restore", "--log-level-console=info", *args, timeout=params.get("timeout"))
        chosen = re.search(r"restore backup set (\S+)", out.stdout or "")
        warnings = [
            line.split("WARN:", 1)[1].strip()
            for line in ((out.stdout or "") + (out.stderr or "")).splitlines()
            if "WARN:" in line
        ]
        if warnings:
            result["pgbackrest_warnings"] = warnings
        # pgBackRest wrote recovery.signal and its restore_command / recovery_target_* lines.
        recovery = cluster.configure_recovery(settings, recovery_signal=False)
        phases["fetch_extract"] = round(time.monotonic() - started, 3)
        result["recovery_settings"].update(recovery)
        result["restore_command"] = recovery.get("restore_command")
        reached = pitr.start_and_wait(cluster, action, params.get("timeout") or 3600, phases)
        cluster.finish_restore(int(major), "pgbackrest")
        result.update(reached)
        result.update(
            backup_id=chosen.group(1).rstrip(",") if chosen else result.get("backup_id"),
            data_dir=data_dir,
            port=port,
            socket_dir=cluster.socket_dir,
            log_file=cluster.log_file,
            phases=phases,
            rto_seconds=round(time.monotonic() - clock, 3),
            commands=runner.commands,
        )
    return result
