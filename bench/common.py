# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the benchmarks share: paths, logging, a throwaway cluster, timing a tool, ansible ad hoc.

A benchmark (bench/<name>/run.py) puts bench/ on sys.path and imports this file:

    BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, BENCH)
    import common  # noqa: E402

Importing it puts the checkout's .collections on sys.path, so the engine imports as
``ansible_collections.dbarch.postgresql.plugins.module_utils``.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
COLLECTIONS = os.path.join(REPO, ".collections")
OUT_DIR = os.path.join(BENCH, "out")
OUR_VENV_BIN = os.path.join(REPO, ".venv", "bin")

if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

import psycopg2  # noqa: E402

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc  # noqa: E402

# A throwaway cluster's settings: nothing here measures durability.
FAST_SETTINGS = dict(fsync=False, synchronous_commit=False, full_page_writes=False)


def log(msg, tag="bench"):
    """One progress line on stderr (stdout is the benchmark's table)."""
    sys.stderr.write("[%s] %s\n" % (tag, msg))
    sys.stderr.flush()


def _lines(text):
    return [line for line in (text or "").strip().splitlines() if line.strip()]


def last_line(text, width=300):
    """The last non-blank line of a tool's output: where its error message usually is."""
    lines = _lines(text)
    return lines[-1][:width] if lines else ""


def tail_lines(text, count=15, width=300):
    """The last ``count`` non-blank lines of a tool's output (for a result file)."""
    return [line[:width] for line in _lines(text)[-count:]]


def first_line(text, width=200):
    lines = _lines(text)
    return lines[0][:width] if lines else ""


class ToolFailed(Exception):
    pass


def timed(argv, env=None, cwd=None, ok=None):
    """(seconds, CompletedProcess) of one run; ToolFailed on a non-zero exit unless ``ok(proc)``."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 and not (ok and ok(proc)):
        raise ToolFailed(
            "%s exited %d: %s"
            % (os.path.basename(argv[0]), proc.returncode, last_line(proc.stderr or proc.stdout))
        )
    return seconds, proc


def clean_env(drop=("ANSIBLE_", "PG")):
    """This process's environment without variables that would steer the tools under test."""
    return {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop))}


def ansible_env(password, collections_path=None, drop=("ANSIBLE_", "PG"), **extra):
    """Environment for ansible / ansible-playbook: the password in PGPASSWORD, no stray ANSIBLE_*."""
    env = clean_env(drop)
    env.update(
        ANSIBLE_HOST_KEY_CHECKING="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_NOCOWS="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        PGPASSWORD=password or "",
    )
    if collections_path:
        env["ANSIBLE_COLLECTIONS_PATH"] = collections_path
    env.update(extra)
    return env


def adhoc_argv(module, args=None, venv_bin=OUR_VENV_BIN):
    """``ansible localhost -m module -a <json>`` on the local connection, with that venv's Python."""
    argv = [
        os.path.join(venv_bin, "ansible"),
        "localhost",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter=%s" % os.path.join(venv_bin, "python"),
        "-m",
        module,
    ]
    if args:
        argv += ["-a", json.dumps(args)]
    return argv


def adhoc_result(module, proc):
    """The module's result from ad hoc output ("localhost | SUCCESS => {json}"); ToolFailed otherwise."""
    try:
        result = json.loads(proc.stdout[proc.stdout.index(" => ") + 4 :])
    except ValueError:
        raise ToolFailed(
            "%s did not return JSON (exit %d): %s"
            % (module, proc.returncode, last_line(proc.stdout + proc.stderr))
        ) from None
    if proc.returncode != 0 or result.get("failed"):
        raise ToolFailed("%s failed (exit %d): %s" % (module, proc.returncode, result.get("msg")))
    return result


class ThrowawayCluster:
    """initdb + start of one major in a fresh folder under /var/tmp (the postgres OS user must
    reach it when run as root), with a random superuser password; ``close()`` removes it all."""

    def __init__(self, major, prefix="dbarch-bench-", settings=None):
        self.major = int(major)
        self.bindir = lc.find_bindir(self.major)
        self.tmpdir = tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")  # noqa: S108
        os.chmod(self.tmpdir, 0o755)  # noqa: S103 - the postgres OS user must reach its data folder
        self.cluster = lc.LocalCluster(os.path.join(self.tmpdir, "pg", "data"), bindir=self.bindir)
        self.password = secrets.token_urlsafe(18)  # URL-safe: some tools take it inside a URL
        t0 = time.monotonic()
        try:
            self.cluster.initdb(
                superuser="postgres",
                password=self.password,
                settings=FAST_SETTINGS if settings is None else settings,
            )
            self.cluster.start()
        except BaseException:
            self.close()
            raise
        self.port = self.cluster.port
        self.data_dir = self.cluster.data_dir
        log(
            "PostgreSQL %d on 127.0.0.1:%d ready in %.1fs (%s)"
            % (self.major, self.port, time.monotonic() - t0, self.bindir)
        )

    def kw(self, dbname="postgres"):
        """libpq keywords of the superuser."""
        return dict(
            host="127.0.0.1", port=self.cluster.port, user="postgres", password=self.password, dbname=dbname
        )

    def connect(self, dbname="postgres"):
        conn = psycopg2.connect(**self.kw(dbname))
        conn.autocommit = True
        return conn

    def close(self, keep=False):
        if keep:
            log("keeping the cluster in %s (port %s)" % (self.tmpdir, self.cluster.port))
            return
        try:
            self.cluster.destroy()
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def write_json(path, data):
    """Write a result file (folders made as needed)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(data, fh, indent=2)


def as_user(argv, user):
    """argv run as ``user`` through runuser when this process is root and ``user`` is another."""
    if user and os.geteuid() == 0 and user != "root":
        return ["runuser", "-u", user, "--"] + list(argv)
    return list(argv)


def run_group(argv, env=None, cwd=None, timeout=None, stdin=None):
    """subprocess.run in a process group of its own; on any exception (timeout, SIGTERM, ^C) the
    whole group is killed, so no grandchild outlives the run. Returns the CompletedProcess."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input=stdin, timeout=timeout)
    except BaseException:
        kill_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def kill_group(pgid, sig=signal.SIGTERM):
    """Send ``sig`` to a process group; False when it is gone already."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class Background:
    """A long-running program (a daemon kept in the foreground) in a session of its own, its output
    appended to ``log_path``. ``stop()`` sends SIGTERM to the whole group, then SIGKILL after
    ``grace`` seconds; it is safe to call twice, and leaves a group whose leader was already reaped
    alone (its id may have been reused)."""

    def __init__(self, argv, log_path, env=None, cwd=None, name=None):
        self.argv = list(argv)
        self.name = name or os.path.basename(self.argv[0])
        self.log_path = log_path
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL the whole group at once (a node lost); returns the time it was sent."""
        if self.proc.poll() is None:
            kill_group(self.pid, signal.SIGKILL)
        sent = time.time()
        self.proc.wait()
        return sent

    def stop(self, grace=10.0):
        if self.proc.poll() is not None:
            return  # reaped: its process group id may belong to someone else by now
        kill_group(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            kill_group(self.pid, signal.SIGKILL)
            self.proc.wait()

    def tail(self, lines=5):
        try:
            with open(self.log_path, errors="replace") as handle:
                return "\n".join(handle.read().splitlines()[-lines:])
        except OSError:
            return ""
