# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The local node of the standby module: its data folder, binaries, server process and files.

Plain Python (standard library only), no Ansible imports.

- which binaries (``bindir``): given, else Debian's ``pg_lsclusters`` for the data folder, else
  the major of the data folder's PG_VERSION (or of the primary, for a node not cloned yet)
  through core/localcluster.py's ``find_bindir``;
- who runs them: the data folder's owner (``postgres`` for a folder not made yet when the
  module runs as root), through core/proc.py (``runuser``), with the library path the PyPI
  builds need (``localcluster.library_env``);
- how the server is started and stopped (``service``): ``pg_ctl`` on the data folder (server log
  in ``<parent>/log/postgresql.log`` when that folder exists, else ``<parent>/<name>.log``), or a
  systemd unit (``systemctl start|stop <unit>``);
- what ``pg_controldata`` says, the timeline history files in ``pg_wal``, the standby settings
  written into ``postgresql.auto.conf`` while the server is down, the password file, and the
  node's own configuration files kept aside while pg_rewind runs (it copies the source's).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import pwd
import re
import shutil
import stat

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.fsutil import atomic_write, read_bytes
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup.backup import parse_controldata
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal

PG_CTL = "pg_ctl"
AUTO_CONF = "postgresql.auto.conf"
HEADER = "# dbarch.postgresql standby: the upstream this node follows"
# Files at the top of a data folder that are the server's state, not the node's configuration:
# everything else there (postgresql.conf, pg_hba.conf, included files, certificates) is kept
# aside while pg_rewind runs and put back afterwards.
STATE_FILES = frozenset(
    (
        "PG_VERSION",
        "postmaster.pid",
        "postmaster.opts",
        "backup_label",
        "backup_label.old",
        "tablespace_map",
        "tablespace_map.old",
        "current_logfiles",
        "standby.signal",
        "recovery.signal",
        "recovery.done",
        "postgresql.auto.conf.tmp",
    )
)
_UNIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._:\\-]*$")


class StandbyError(DbarchError):
    """A failure of the standby module: what failed, where, how to fix it. ``result`` carries
    what was done (or found) before it, for the module's failure output."""

    def __init__(self, message, result=None, log_tail=None):
        super(StandbyError, self).__init__(message)
        self.result = result or {}
        self.log_tail = log_tail


# -- binaries --------------------------------------------------------------------------------


def lsclusters(runner=None):
    """Debian's pg_lsclusters entries, each {version, cluster, configdir, pgdata, port}; [] when
    the tool is missing or fails (not Debian)."""
    tool = shutil.which("pg_lsclusters")
    if not tool:
        return []
    run = runner or proc.run
    try:
        res = run([tool, "--json"], check=False, timeout=60, what="pg_lsclusters")
    except proc.ProcError:
        return []
    if res.returncode != 0:
        return []
    try:
        entries = json.loads(res.stdout or "[]")
    except ValueError:
        return []
    found = []
    for entry in entries:
        pgdata = entry.get("pgdata") or (entry.get("config") or {}).get("data_directory")
        if not pgdata:
            continue
        found.append(
            {
                "version": int(entry.get("version")),
                "cluster": entry.get("cluster"),
                "configdir": entry.get("configdir"),
                "pgdata": pgdata,
                "port": int(entry["port"]) if str(entry.get("port") or "").isdigit() else None,
            }
        )
    return found


def lsclusters_entry(data_dir, runner=None):
    """Debian's pg_lsclusters entry {version, cluster, configdir, pgdata, port} for
    ``data_dir``, or None (not Debian, or not a registered cluster)."""
    wanted = os.path.realpath(data_dir)
    for entry in lsclusters(runner):
        if os.path.realpath(entry["pgdata"]) == wanted:
            return entry
    return None


def data_major(data_dir):
    text = lc.read_text(os.path.join(data_dir, "PG_VERSION"))
    return int(text.strip()) if text and text.strip().isdigit() else None


def resolve_bindir(data_dir, bindir=None, major=None, debian=None):
    """(bindir, how it was found). ``major``: the primary's, for a node without data yet.
    ``debian``: the pg_lsclusters entry (looked up when None)."""
    if bindir:
        return bindir, "the bindir option"
    entry = debian if debian is not None else lsclusters_entry(data_dir)
    if entry:
        path = "/usr/lib/postgresql/%d/bin" % entry["version"]
        if os.path.isfile(os.path.join(path, "pg_ctl")):
            return path, "pg_lsclusters (cluster %s/%s)" % (entry["version"], entry["cluster"])
    wanted = data_major(data_dir) or major
    if not wanted:
        raise StandbyError(
            "cannot tell which PostgreSQL binaries to use for %s: give the bindir option" % data_dir
        )
    try:
        return lc.find_bindir(wanted), "PostgreSQL %d binaries" % wanted
    except lc.LocalClusterError as exc:
        raise StandbyError("%s; or give the bindir option" % exc) from None


def owner_of(data_dir):
    """The OS user the server binaries run as: the data folder's owner, else (a folder not made
    yet, or an empty one root made: the server never runs as root) postgres when this runs as
    root, else the current user."""
    try:
        uid = os.stat(data_dir).st_uid
        if uid != 0:
            return pwd.getpwuid(uid).pw_name
    except (FileNotFoundError, KeyError):
        pass
    return lc.default_run_as()


def check_service(service):
    if service == PG_CTL:
        return service
    if not service or not _UNIT.match(service):
        raise StandbyError(
            "service=%r: give pg_ctl or a systemd unit name such as postgresql@15-main" % (service,)
        )
    return service


# -- the node --------------------------------------------------------------------------------


class Node:
    """One data folder and the server that runs on it."""

    def __init__(self, data_dir, bindir, service=PG_CTL, run_as=None):
        self.data_dir = os.path.abspath(data_dir)
        self.parent = os.path.dirname(self.data_dir)
        self.name = os.path.basename(self.data_dir)
        self.bindir = bindir
        self.service = check_service(service)
        self.run_as = run_as or owner_of(self.data_dir)
        self.env = lc.library_env(bindir)

    # -- state ----------------------------------------------------------------------------
    def contents(self):
        """'missing', 'empty', 'cluster' (holds PG_VERSION) or 'foreign' (anything else)."""
        if not os.path.exists(self.data_dir):
            return "missing"
        if not os.path.isdir(self.data_dir):
            return "foreign"
        names = os.listdir(self.data_dir)
        if not names:
            return "empty"
        return "cluster" if "PG_VERSION" in names else "foreign"

    def major(self):
        return data_major(self.data_dir)

    def owner_ids(self):
        entry = pwd.getpwnam(self.run_as)
        return entry.pw_uid, entry.pw_gid

    def path(self, *parts):
        return os.path.join(self.data_dir, *parts)

    # -- running binaries ---------------------------------------------------------------------
    def run(
        self, tool, args, check=True, timeout=None, what=None, env_extra=None, new_session=False, secrets=()
    ):
        """Run a binary of bindir as the node's OS user; raises StandbyError on failure with check."""
        env = proc.clean_env(dict(self.env, **(env_extra or {})))
        run_as = self.run_as if self.run_as != proc.current_user() else None
        try:
            res = proc.run(
                [os.path.join(self.bindir, tool)] + list(args),
                env=env,
                run_as=run_as,
                timeout=timeout,
                check=False,
                secrets=secrets,
                cwd="/",
                new_session=new_session,
                what=what or tool,
            )
        except proc.ProcError as exc:
            raise StandbyError("%s (data folder %s)" % (exc, self.data_dir)) from None
        if check and res.returncode != 0:
            raise StandbyError(
                "%s failed for %s (exit %d): %s"
                % (what or tool, self.data_dir, res.returncode, (res.stderr or res.stdout).strip()[-1500:])
            )
        return res

    def controldata(self):
        """pg_controldata of the data folder, with the fields the module reads as typed values."""
        res = self.run("pg_controldata", ["-D", self.data_dir], what="pg_controldata")
        raw = parse_controldata(res.stdout)

        def lsn(label):
            value = raw.get(label)
            return wal.parse_lsn(value) if value else 0

        def number(label):
            value = raw.get(label)
            return int(value) if value and value.lstrip("-").isdigit() else 0

        return {
            "system_identifier": raw.get("Database system identifier"),
            "state": raw.get("Database cluster state"),
            "checkpoint_lsn": lsn("Latest checkpoint location"),
            "checkpoint_timeline": number("Latest checkpoint's TimeLineID"),
            "min_recovery_lsn": lsn("Minimum recovery ending location"),
            "min_recovery_timeline": number("Min recovery ending loc's timeline"),
            "wal_log_hints": raw.get("wal_log_hints setting"),
            "checksums": number("Data page checksum version"),
            "segment_size": number("Bytes per WAL segment") or wal.DEFAULT_SEGMENT_SIZE,
            "raw": raw,
        }

    def running(self):
        """True when a server runs on the data folder (pg_ctl status, whatever started it)."""
        if not os.path.isfile(self.path("postmaster.pid")):
            return False
        res = self.run(PG_CTL, ["status", "-D", self.data_dir], check=False, timeout=60, what="pg_ctl status")
        return res.returncode == 0

    # -- the server ---------------------------------------------------------------------------
    @property
    def log_file(self):
        folder = os.path.join(self.parent, "log")
        if os.path.isdir(folder):
            return os.path.join(folder, "postgresql.log")
        return os.path.join(self.parent, "%s.log" % self.name)

    def log_tail(self, lines=20):
        if self.service != PG_CTL:
            return None
        return lc.file_tail(self.log_file, lines) or None

    def check_startable(self, debian=None):
        """Fail before anything changes when pg_ctl cannot start this data folder."""
        if self.service != PG_CTL:
            return
        where = debian.get("configdir") if debian else None
        if where and not os.path.exists(self.path("postgresql.conf")):
            raise StandbyError(
                "%s is the Debian cluster %s/%s, whose configuration lives in %s: pg_ctl on the data "
                "folder cannot start it. Set service: postgresql@%s-%s (its systemd unit)"
                % (
                    self.data_dir,
                    debian["version"],
                    debian["cluster"],
                    where,
                    debian["version"],
                    debian["cluster"],
                )
            )

    def start(self, timeout):
        if self.service == PG_CTL:
            if not os.path.exists(self.path("postgresql.conf")):
                raise StandbyError(
                    "%s has no postgresql.conf, so pg_ctl cannot start it (its configuration lives "
                    "elsewhere): set the service option to the server's systemd unit" % self.data_dir
                )
            self._own_log_file()
            res = self.run(
                PG_CTL,
                ["start", "-D", self.data_dir, "-l", self.log_file, "-w", "-t", str(int(timeout))],
                check=False,
                timeout=timeout + 30,
                new_session=True,
                what="pg_ctl start",
            )
            if res.returncode != 0:
                raise StandbyError(
                    "the server on %s did not start (pg_ctl start, exit %d): %s. Its log is %s"
                    % (
                        self.data_dir,
                        res.returncode,
                        (res.stderr or res.stdout).strip()[-600:],
                        self.log_file,
                    ),
                    log_tail=self.log_tail(),
                )
            return
        self._systemctl("start", timeout)

    def stop(self, timeout):
        """A clean (fast) shutdown: sessions are ended, a shutdown checkpoint is written."""
        if self.service == PG_CTL:
            self.run(
                PG_CTL,
                ["stop", "-D", self.data_dir, "-m", "fast", "-w", "-t", str(int(timeout))],
                timeout=timeout + 30,
                what="pg_ctl stop",
            )
        else:
            self._systemctl("stop", timeout)
        if self.running():
            raise StandbyError("the server on %s still runs after the stop; stop it yourself" % self.data_dir)

    def _systemctl(self, verb, timeout):
        try:
            res = proc.run(
                ["systemctl", verb, self.service], check=False, timeout=timeout + 30, what="systemctl"
            )
        except proc.ProcError as exc:
            raise StandbyError("systemctl %s %s: %s" % (verb, self.service, exc)) from None
        if res.returncode != 0:
            raise StandbyError(
                "systemctl %s %s failed (exit %d): %s. See journalctl -u %s"
                % (
                    verb,
                    self.service,
                    res.returncode,
                    (res.stderr or res.stdout).strip()[-600:],
                    self.service,
                )
            )

    def _own_log_file(self):
        if os.geteuid() != 0 or os.path.exists(self.log_file):
            return
        with open(self.log_file, "a"):
            pass
        os.chmod(self.log_file, 0o640)
        uid, gid = self.owner_ids()
        os.chown(self.log_file, uid, gid)

    def config_value(self, name):
        """A setting as the server reads it from the data folder's files (``postgres -C``)."""
        res = self.run(
            "postgres", ["-D", self.data_dir, "-C", name], check=False, timeout=60, what="postgres -C"
        )
        value = (res.stdout or "").strip()
        return value if res.returncode == 0 and value else None

    # -- files ------------------------------------------------------------------------------
    def history_text(self, timeline):
        """The node's own history file of ``timeline`` ('' for 1); StandbyError when missing."""
        if int(timeline) <= 1:
            return ""
        path = self.path("pg_wal", "%08X.history" % int(timeline))
        text = lc.read_text(path)
        if text is None:
            raise StandbyError(
                "%s is on timeline %d but its history file %s is missing, so where it forked cannot "
                "be judged; copy that file from the WAL archive into pg_wal" % (self.data_dir, timeline, path)
            )
        return text

    def replay_timeline(self, lsn, segment_size):
        """The newest timeline of the node's pg_wal segments holding ``lsn`` (wal.newest_timeline_holding);
        0 when there is none."""
        try:
            names = os.listdir(self.path("pg_wal"))
        except OSError:
            return 0
        return wal.newest_timeline_holding(names, lsn, segment_size)

    def write_file(self, path, text, mode=0o600):
        atomic_write(path, text, mode, self.owner_ids() if os.geteuid() == 0 else None)

    def standby_settings_text(self, settings, existing):
        """postgresql.auto.conf: ``existing`` without the lines of ``settings`` (and without this
        module's header), then the header and ``settings`` [(name, value)] (a None value: left out)."""
        names = {name for name, _value in settings}
        keep = []
        for line in (existing or "").splitlines():
            if line.strip() == HEADER or line.split("=", 1)[0].strip() in names:
                continue
            keep.append(line)
        chosen = [(name, value) for name, value in settings if value is not None]
        if chosen:
            keep.append(HEADER)
            keep.extend(lc.format_setting(name, value) for name, value in chosen)
        return "\n".join(keep) + "\n"

    def configure_standby(self, settings):
        """Make the stopped data folder start as a standby: ``settings`` [(name, value)] written
        into postgresql.auto.conf, standby.signal present, recovery.signal gone."""
        auto = self.path(AUTO_CONF)
        self.write_file(auto, self.standby_settings_text(settings, lc.read_text(auto, "")))
        recovery = self.path("recovery.signal")
        if os.path.lexists(recovery):
            os.unlink(recovery)
        self.write_file(self.path("standby.signal"), "")

    def write_passfile(self, path, text):
        """Write the password file (0600, the node's OS user); True when its content changed."""
        if read_bytes(path) == text.encode("utf-8"):
            st = os.stat(path)
            if stat.S_IMODE(st.st_mode) == 0o600:
                return False
        if not os.path.isdir(os.path.dirname(path)):
            raise StandbyError("cannot write the password file %s: its folder does not exist" % path)
        self.write_file(path, text, mode=0o600)
        return True

    # -- the node's configuration around pg_rewind ----------------------------------------------
    @property
    def saved_dir(self):
        return os.path.join(self.parent, ".%s.dbarch-own-config" % self.name)

    def save_config(self):
        """Copy the top-level files of the data folder that are the node's configuration (all but
        STATE_FILES) aside, modes and owners kept; returns their names."""
        target = self.saved_dir
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.mkdir(target, 0o700)
        saved = []
        for name in sorted(os.listdir(self.data_dir)):
            path = self.path(name)
            if name in STATE_FILES or os.path.islink(path) or not os.path.isfile(path):
                continue
            shutil.copy2(path, os.path.join(target, name))
            st = os.stat(path)
            if os.geteuid() == 0:
                os.chown(os.path.join(target, name), st.st_uid, st.st_gid)
            saved.append(name)
        return saved

    def restore_config(self, names):
        """Put the saved files back (atomically, mode and owner kept) and drop the copy."""
        for name in names:
            source = os.path.join(self.saved_dir, name)
            st = os.stat(source)
            atomic_write(
                self.path(name), read_bytes(source), stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
            )
        shutil.rmtree(self.saved_dir, ignore_errors=True)
