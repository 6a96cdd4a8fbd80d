# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup benchmark: dbarch.postgresql.basebackup and pitr_restore against pg_basebackup and pgBackRest.

One run, one throwaway cluster (run as the postgres OS user), one pgbench database:

1. initdb, archive_mode on, ``pgbench -i -s <scale>`` (135 is about 2 GB) while the archive
   command is ``true`` (the load's WAL is older than every backup), then the real archive
   command: ``dbarch-wal archive`` into the module's repository AND ``pgbackrest archive-push``
   into pgBackRest's, so both tools see the same WAL; ``pgbackrest stanza-create`` and
   ``check`` (not timed);
2. the disk floor on the filesystem of the backups: a file of the database's size written
   sequentially and fsynced, then read back with the page cache dropped (MB/s);
3. backups, the page cache dropped before each (when /proc/sys/vm/drop_caches is writable),
   best of ``--runs``: the module through ``ansible-playbook`` (become_user postgres) with
   verify on and with verify off; bare ``pg_basebackup`` with the very argv the module
   returned (``command``), only the target folder changed; the module's verification done by
   hand (lz4/gzip/zstd -d | tar -x, then ``pg_verifybackup``), timed separately; pgBackRest
   full backups with the same compression, ``start-fast``, ``process-max`` 1 and 2;
4. a short ``pgbench`` workload after the backups, a WAL switch, and a wait until both
   archives hold it: that is "latest";
5. restore to latest, the page cache dropped before each: the module (``pitr_restore
   target: latest``) into a fresh data folder and port, and ``pgbackrest restore
   --type=default`` into a fresh folder, then ``pg_ctl start`` and polling until
   ``pg_is_in_recovery()`` is false; both spans run from the command's start to the first
   answered query;
6. print the table (seconds, ratio to bare pg_basebackup, ratio to the disk floor; restore
   module/pgBackRest) and write bench/out/backup-<timestamp>.json; remove everything.

Entry: ``.venv/bin/python bench/backup/run.py [--scale 135] [--major 15] [--runs 1]``, as root
(it drops the page cache, runs the server as postgres, and uses sudo for become).
"""

import argparse
import datetime
import functools
import json
import os
import platform
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)

import common  # noqa: E402
from common import COLLECTIONS, OUR_VENV_BIN, OUT_DIR, REPO  # noqa: E402, F401

WAL_SCRIPT = os.path.join(REPO, "roles", "backup", "files", "dbarch-wal")
SYSTEM_PYTHON = "/usr/bin/python3"
STANZA = "bench"

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc  # noqa: E402

MOD_VERIFY = "module basebackup, verify on"
MOD_NOVERIFY = "module basebackup, verify off"
ENGINE = "engine bk.take in-process, verify off"
BARE = "bare pg_basebackup (module's argv)"
BARE_VERIFY = "  + extract and pg_verifybackup"
PGBR1 = "pgBackRest full, process-max=1"
PGBR2 = "pgBackRest full, process-max=2"
BACKUPS = [MOD_VERIFY, MOD_NOVERIFY, ENGINE, BARE, BARE_VERIFY, PGBR1, PGBR2]
RESTORE_MOD = "module pitr_restore, target latest"
RESTORE_PGBR = "pgBackRest restore --type=default"
RESTORES = [RESTORE_MOD, RESTORE_PGBR]
DECOMPRESS = {".lz4": ["lz4", "-dc"], ".gz": ["gzip", "-dc"], ".zst": ["zstd", "-dcq"]}


def log(msg):
    common.log(msg, tag="bench %s" % time.strftime("%H:%M:%S"))


def last_line(text):
    return common.last_line(text, width=400)


def first_line(text):
    return common.first_line(text, width=400).strip("* ")[:200]


class ToolFailed(Exception):
    pass


def run(argv, as_postgres=False, env=None, cwd=None, timeout=3600, stdin=None):
    """Run argv (as postgres through runuser when asked); raise ToolFailed on a non-zero exit."""
    if as_postgres:
        argv = ["runuser", "-u", "postgres", "--"] + argv
    proc = run_group(argv, env=env, cwd=cwd, timeout=timeout, stdin=stdin)
    if proc.returncode != 0:
        raise ToolFailed(
            "%s exited %d: %s"
            % (" ".join(argv[:6]), proc.returncode, last_line(proc.stderr) or last_line(proc.stdout))
        )
    return proc


def run_group(argv, env=None, cwd=None, timeout=None, stdin=None):
    """subprocess.run in a process group of its own; on any exception (timeout, SIGTERM, ^C) the
    whole group is killed, so no grandchild (ansible's workers, runuser's child) outlives the run
    and writes into folders being removed."""
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
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def timed(argv, **kwargs):
    t0 = time.perf_counter()
    proc = run(argv, **kwargs)
    return time.perf_counter() - t0, proc


def drop_caches(enabled):
    """Write back and drop the page cache; False when not allowed (then best of N counts)."""
    if not enabled:
        return False
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def mkdir_postgres(path):
    os.makedirs(path, exist_ok=True)
    shutil.chown(path, "postgres", "postgres")
    return path


def du_bytes(path, skip=()):
    """Bytes of the files under path; ``skip``: top-level names left out (pg_wal: no backup copies it)."""
    total = 0
    for top, dirs, files in os.walk(path):
        if top == path:
            dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "n/a"


# -- the disk floor ------------------------------------------------------------------------------


def disk_floor(folder, size, use_drop):
    """Sequential write (fsync at the end) and read (page cache dropped) of ``size`` bytes."""
    path = os.path.join(folder, "floor.bin")
    block = os.urandom(8 << 20)  # random: no filesystem or device compresses it away
    blocks = max(1, size // len(block))
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _i in range(blocks):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    write_s = time.perf_counter() - t0
    written = blocks * len(block)
    dropped = drop_caches(use_drop)
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as handle:
        while handle.read(8 << 20):
            pass
    read_s = time.perf_counter() - t0
    os.unlink(path)
    return dict(
        bytes=written,
        write_seconds=write_s,
        read_seconds=read_s,
        write_mb_s=written / write_s / 1e6,
        read_mb_s=written / read_s / 1e6,
        read_cache_dropped=dropped,
    )


def floor_seconds(floor, read_bytes, write_bytes):
    """The disk's minimum for a copy: read what is read, write what is written, on one disk."""
    return read_bytes / (floor["read_mb_s"] * 1e6) + write_bytes / (floor["write_mb_s"] * 1e6)


# -- ansible ---------------------------------------------------------------------------------------


class Ansible:
    """One task through ansible-playbook, as a host runs it: become_user postgres, system Python."""

    def __init__(self, folder):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.inventory = os.path.join(folder, "inventory")
        with open(self.inventory, "w") as handle:
            handle.write("localhost ansible_connection=local ansible_python_interpreter=%s\n" % SYSTEM_PYTHON)
        self.count = 0

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PG"))}
        env.update(
            ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
            ANSIBLE_DEPRECATION_WARNINGS="0",
            ANSIBLE_NOCOWS="1",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            ANSIBLE_LOCAL_TEMP=os.path.join(self.folder, "ansible-local"),
        )
        return env

    def ping(self):
        """ansible.builtin.ping through the same play: ansible's own start-up, become and result copy."""
        return self.play("ansible.builtin.ping", {})[0]

    def play(self, module, args):
        """(seconds of the whole ansible-playbook run, the task's registered result)."""
        self.count += 1
        result_file = os.path.join(self.folder, "result-%d.json" % self.count)
        task = {"name": "Task", module: args, "register": "out", "become": True, "become_user": "postgres"}
        keep = {
            "name": "Keep the result",
            "ansible.builtin.copy": {"content": "{{ out | to_json }}", "dest": result_file, "mode": "0600"},
        }
        play = [{"name": "bench", "hosts": "localhost", "gather_facts": False, "tasks": [task, keep]}]
        path = os.path.join(self.folder, "play-%d.json" % self.count)
        with open(path, "w") as handle:
            json.dump(play, handle)  # JSON is YAML
        argv = [os.path.join(OUR_VENV_BIN, "ansible-playbook"), "-i", self.inventory, path]
        t0 = time.perf_counter()
        proc = run_group(argv, env=self.env(), cwd=REPO)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or not os.path.exists(result_file):
            raise ToolFailed("%s failed: %s" % (module, last_line(proc.stdout) or last_line(proc.stderr)))
        with open(result_file) as handle:
            return seconds, json.load(handle)


# -- the bench ---------------------------------------------------------------------------------------


class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.bindir = lc.find_bindir(opts.major)  # before anything is created
        self.top = tempfile.mkdtemp(prefix="dbarch-backupbench-", dir="/var/tmp")  # noqa: S108
        os.chmod(self.top, 0o755)  # noqa: S103 - the postgres OS user must reach its folders
        self.source = None
        self.restored = []  # (kind, data_dir)
        self.repo = mkdir_postgres(os.path.join(self.top, "repo"))
        mkdir_postgres(os.path.join(self.repo, "wal"))
        self.pgbr = mkdir_postgres(os.path.join(self.top, "pgbackrest"))
        for sub in ("repo", "log", "lock", "spool"):
            mkdir_postgres(os.path.join(self.pgbr, sub))
        self.pgbr_conf = os.path.join(self.pgbr, "pgbackrest.conf")
        self.bare = mkdir_postgres(os.path.join(self.top, "bare"))
        self.restore_top = mkdir_postgres(os.path.join(self.top, "restore"))
        self.ansible = Ansible(os.path.join(self.top, "ansible"))
        self.use_drop = not opts.no_drop_caches

    # -- source cluster ---------------------------------------------------------------------
    def bin(self, name):
        return os.path.join(self.bindir, name)

    def start_source(self):
        data = os.path.join(self.top, "source", "data")
        self.source = lc.LocalCluster(data, bindir=self.bindir)
        settings = {
            "archive_mode": "on",
            "archive_command": "/bin/true",
            "wal_level": "replica",
            "max_wal_size": "4GB",
            "shared_buffers": "256MB",
        }
        self.source.initdb(superuser="postgres", password=secrets.token_urlsafe(18), settings=settings)
        self.source.start()
        log("PostgreSQL %d source cluster on port %d (%s)" % (self.opts.major, self.source.port, data))

    def sql(self, text, dbname="postgres"):
        return self.source.psql(text, dbname=dbname)

    def pg_args(self, port=None, socket=None):
        return ["-h", socket or self.source.socket_dir, "-p", str(port or self.source.port)]

    def pgbench_init(self):
        argv = [self.bin("pgbench") if os.path.exists(self.bin("pgbench")) else shutil.which("pgbench")]
        argv += self.pg_args() + ["-i", "-q", "-s", str(self.opts.scale), "-I", "dtGvp", "postgres"]
        seconds, _proc = timed(argv, as_postgres=True, timeout=7200)
        self.sql("CHECKPOINT")
        size = int(self.sql("SELECT pg_database_size('postgres')")[0])
        cluster_bytes = du_bytes(self.source.data_dir, skip=("pg_wal",))
        wal_bytes = du_bytes(os.path.join(self.source.data_dir, "pg_wal"))
        return dict(
            seconds=seconds, database_bytes=size, data_dir_bytes=cluster_bytes, pg_wal_bytes=wal_bytes
        )

    def pgbench_workload(self):
        argv = [self.bin("pgbench") if os.path.exists(self.bin("pgbench")) else shutil.which("pgbench")]
        argv += self.pg_args() + ["-n", "-c", "2", "-j", "2", "-t", str(self.opts.transactions), "postgres"]
        seconds, _proc = timed(argv, as_postgres=True, timeout=3600)
        return seconds

    def archive_everything(self):
        """Switch WAL and wait until the segment is in both archives (the archive command does both)."""
        segment = self.sql("SELECT pg_walfile_name(pg_switch_wal())")[0]
        deadline = time.time() + 600
        while time.time() < deadline:
            row = self.sql("SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver")[0]
            last, failed = row.split("|")
            if last >= segment:
                return segment
            time.sleep(0.3)
        raise ToolFailed("segment %s not archived in 600s (failed_count %s)" % (segment, failed))

    def archive_both(self):
        """archive_command for both tools; ALTER SYSTEM + reload (archive_mode is already on)."""
        dbarch = "%s %s --repo %s archive %%p %%f" % (SYSTEM_PYTHON, WAL_SCRIPT, self.repo)
        pgbr = "pgbackrest --config=%s --stanza=%s archive-push %%p" % (self.pgbr_conf, STANZA)
        command = "%s && %s" % (dbarch, pgbr)
        self.sql("ALTER SYSTEM SET archive_command = %s" % lc.quote_literal(command))
        self.sql("SELECT pg_reload_conf()")
        return command

    # -- pgBackRest --------------------------------------------------------------------------------
    def write_pgbr_conf(self):
        text = "\n".join(
            [
                "[global]",
                "repo1-path=%s" % os.path.join(self.pgbr, "repo"),
                "repo1-retention-full=99",
                "log-path=%s" % os.path.join(self.pgbr, "log"),
                "lock-path=%s" % os.path.join(self.pgbr, "lock"),
                "spool-path=%s" % os.path.join(self.pgbr, "spool"),
                "compress-type=%s" % self.opts.compression,
                "start-fast=y",
                "log-level-console=warn",
                "log-level-file=info",
                "",
                "[%s]" % STANZA,
                "pg1-path=%s" % self.source.data_dir,
                "pg1-socket-path=%s" % self.source.socket_dir,
                "pg1-port=%d" % self.source.port,
                "pg1-user=postgres",
                "",
            ]
        )
        with open(self.pgbr_conf, "w") as handle:
            handle.write(text)
        os.chmod(self.pgbr_conf, 0o644)

    def pgbackrest(self, *args, timeout=7200):
        argv = ["pgbackrest", "--config=%s" % self.pgbr_conf, "--stanza=%s" % STANZA] + list(args)
        return timed(argv, as_postgres=True, timeout=timeout)

    # -- backups -----------------------------------------------------------------------------------
    def module_args(self, verify):
        return dict(
            repository=self.repo,
            format="tar",
            compression=self.opts.compression,
            compression_site="client",
            checkpoint="fast",
            verify=verify,
            login_unix_socket=self.source.socket_dir,
            login_port=self.source.port,
            login_user="postgres",
            bindir=self.bindir,
        )

    def module_backup(self, verify):
        seconds, result = self.ansible.play("dbarch.postgresql.basebackup", self.module_args(verify))
        meta = result.get("metadata") or {}
        span = None
        if meta.get("start_time") and meta.get("stop_time"):
            span = (
                datetime.datetime.fromisoformat(meta["stop_time"])
                - datetime.datetime.fromisoformat(meta["start_time"])
            ).total_seconds()
        return seconds, dict(
            pg_basebackup_span=span,
            backup_id=result.get("backup_id"),
            status=meta.get("status"),
            stored_bytes=meta.get("stored_bytes"),
            database_bytes=meta.get("database_bytes"),
            command=result.get("command"),
            verification_method=(meta.get("verification") or {}).get("method"),
        )

    def engine_backup(self):
        """backup.take as the module calls it, as postgres with the system Python: no ansible."""
        script = "\n".join(
            [
                "import json, sys",
                "sys.path.insert(0, %r)" % COLLECTIONS,
                "from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup as bk,"
                " backup_repo as br",
                "from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg",
                "args = json.loads(sys.argv[1])",
                "params = dict((k, v) for k, v in args.items() if k.startswith('login_'))",
                "session = pg.connect(params, 'basebackup')",
                "try:",
                "    repo = br.LocalRepository(args['repository'])",
                "    meta = bk.take(session, pg.resolve_params(params), repo,",
                "                   fmt=args['format'], compression=args['compression'],",
                "                   site=args['compression_site'], checkpoint=args['checkpoint'],",
                "                   bindir=args['bindir'], do_verify=args['verify'])",
                "finally:",
                "    session.close()",
                "print(json.dumps(dict(id=meta['id'], status=meta['status'])))",
            ]
        )
        args = dict(self.module_args(False), login_db="postgres")
        seconds, proc = timed([SYSTEM_PYTHON, "-c", script, json.dumps(args)], as_postgres=True, timeout=7200)
        return seconds, json.loads(proc.stdout.strip().splitlines()[-1])

    def bare_backup(self, command, run_index):
        """The module's pg_basebackup argv with only --pgdata changed; PG* as the module sets them."""
        target = os.path.join(self.bare, "run-%d" % run_index)
        argv = [("--pgdata=%s" % target) if arg.startswith("--pgdata=") else arg for arg in command]
        argv = [arg for arg in argv if arg != "--verbose"] + ["--verbose"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGHOST=self.source.socket_dir, PGPORT=str(self.source.port), PGUSER="postgres")
        argv = ["env"] + ["%s=%s" % kv for kv in sorted(env.items()) if kv[0].startswith("PG")] + argv
        seconds, _proc = timed(argv, as_postgres=True, timeout=7200)
        return seconds, target

    def bare_verify(self, target):
        """What the module does for tar on 15-17: extract beside, then pg_verifybackup with WAL parsing."""
        scratch = mkdir_postgres(target + "-verify")
        t0 = time.perf_counter()
        for name in sorted(os.listdir(target)):
            if not name.endswith((".tar", ".tar.lz4", ".tar.gz", ".tar.zst")):
                continue
            dest = scratch if name.startswith("base.") else os.path.join(scratch, "pg_wal")
            mkdir_postgres(dest)
            path = os.path.join(target, name)
            suffix = os.path.splitext(name)[1]
            if suffix in DECOMPRESS:
                pipeline = "%s %s | tar -x -C %s" % (" ".join(DECOMPRESS[suffix]), path, dest)
            else:
                pipeline = "tar -x -f %s -C %s" % (path, dest)
            run(["sh", "-c", pipeline], as_postgres=True, timeout=7200)
        shutil.copy2(os.path.join(target, "backup_manifest"), os.path.join(scratch, "backup_manifest"))
        shutil.chown(os.path.join(scratch, "backup_manifest"), "postgres", "postgres")
        run([self.bin("pg_verifybackup"), scratch], as_postgres=True, timeout=7200)
        seconds = time.perf_counter() - t0
        shutil.rmtree(scratch, ignore_errors=True)
        return seconds

    # -- restores ----------------------------------------------------------------------------------
    def module_restore(self, index):
        data = os.path.join(self.restore_top, "module-%d" % index, "data")
        port = lc.free_port()
        self.restored.append(("module", data))
        args = dict(
            repository=self.repo,
            data_dir=data,
            port=port,
            target="latest",
            bindir=self.bindir,
            wal_script=WAL_SCRIPT,
            timeout=7200,
        )
        seconds, result = self.ansible.play("dbarch.postgresql.pitr_restore", args)
        check = self.restored_check(data, port)
        return seconds, dict(
            backup_id=result.get("backup_id"),
            rto_seconds=result.get("rto_seconds"),
            phases=result.get("phases"),
            reached_lsn=result.get("reached_lsn"),
            timeline=result.get("timeline"),
            check=check,
        )

    def pgbr_restore(self, index):
        top = mkdir_postgres(os.path.join(self.restore_top, "pgbackrest-%d" % index))
        data = os.path.join(top, "data")
        run_dir = mkdir_postgres(os.path.join(top, "run"))
        log_file = os.path.join(mkdir_postgres(os.path.join(top, "log")), "postgresql.log")
        port = lc.free_port()
        self.restored.append(("pgbackrest", data))
        extra = "\n".join(
            [
                "",
                "# bench: a restored copy of its own",
                "port = %d" % port,
                "unix_socket_directories = '%s'" % run_dir,
                "listen_addresses = ''",
                "archive_mode = off",
                "hot_standby = on",
                "",
            ]
        )
        mkdir_postgres(data)
        os.chmod(data, 0o700)
        t0 = time.perf_counter()
        self.pgbackrest("--pg1-path=%s" % data, "--type=default", "restore")
        auto = os.path.join(data, "postgresql.auto.conf")
        run(["sh", "-c", "cat >> %s" % auto], as_postgres=True, stdin=extra)
        run(
            [self.bin("pg_ctl"), "start", "-D", data, "-l", log_file, "-w", "-t", "7200"],
            as_postgres=True,
            timeout=7300,
        )
        psql = [self.bin("psql"), "-X", "-A", "-t", "-h", run_dir, "-p", str(port), "-d", "postgres"]
        deadline = time.time() + 7200
        while True:
            proc = subprocess.run(
                ["runuser", "-u", "postgres", "--"] + psql + ["-c", "SELECT pg_is_in_recovery()"],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode == 0 and proc.stdout.strip() == "f":
                break
            if time.time() > deadline:
                raise ToolFailed("pgBackRest restore: still in recovery after 7200s; see %s" % log_file)
            if not os.path.exists(os.path.join(data, "postmaster.pid")) and proc.returncode != 0:
                tail = last_line(_tail(log_file))
                raise ToolFailed("pgBackRest restore: the server stopped; log: %s" % tail)
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
        return seconds, dict(check=self.restored_check(data, port, run_dir))

    def restored_check(self, data, port, socket=None):
        socket = socket or os.path.join(os.path.dirname(data), "run")
        psql = [self.bin("psql"), "-X", "-A", "-t", "-h", socket, "-p", str(port), "-d", "postgres"]
        sql = (
            "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || (SELECT count(*) FROM pgbench_history)"
            " || ' ' || pg_is_in_recovery()"
        )
        out = run(psql + ["-c", sql], as_postgres=True).stdout.strip()
        accounts, history, recovery = out.split()
        return dict(accounts=int(accounts), history=int(history), in_recovery=recovery == "t")

    def remove_restored(self):
        while self.restored:
            _kind, data = self.restored.pop()
            stop_folder(self.bin("pg_ctl"), data)
            shutil.rmtree(os.path.dirname(data), ignore_errors=True)

    def close(self, keep):
        if keep:
            log("keeping %s (clusters still running)" % self.top)
            return
        try:
            self.remove_restored()
        finally:
            self.remove_all()

    def remove_all(self):
        if self.source is not None:
            try:
                self.source.destroy()
            except lc.LocalClusterError as exc:
                log("could not remove the source cluster: %s" % exc)
        shutil.rmtree(self.top, ignore_errors=True)


def _tail(path):
    try:
        with open(path) as handle:
            return handle.read()[-2000:]
    except OSError:
        return ""


def stop_folder(pg_ctl, data):
    if os.path.exists(os.path.join(data, "postmaster.pid")):
        subprocess.run(
            ["runuser", "-u", "postgres", "--", pg_ctl, "stop", "-D", data, "-m", "immediate", "-w"],
            capture_output=True,
            check=False,
        )


def versions(bench):
    def out(argv):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        except OSError as exc:
            return "n/a (%s)" % exc
        return proc.stdout or proc.stderr

    return {
        "pg_basebackup": first_line(out([bench.bin("pg_basebackup"), "--version"])),
        "pgbackrest": first_line(out(["pgbackrest", "version"])),
        "lz4": first_line(out(["lz4", "--version"])),
        "ansible-core": first_line(out([os.path.join(OUR_VENV_BIN, "ansible"), "--version"])),
    }


# -- output ---------------------------------------------------------------------------------------


def fmt_s(value):
    return "%.2f" % value if value is not None else "n/a"


def ratio(value, base):
    return "%.2fx" % (value / base) if value is not None and base else "n/a"


def best(times):
    return min(times) if times else None


def _bare_run(bench, command, index, bare):
    """The bare pg_basebackup step; remembers its folder in ``bare`` for the verify step."""
    seconds, target = bench.bare_backup(command, index)
    bare["target"] = target
    return seconds, dict(target=target, stored_bytes=du_bytes(target))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--scale", type=int, default=135, help="pgbench scale (135 is about 2 GB; default 135)")
    ap.add_argument("--major", type=int, default=15, help="PostgreSQL major (default 15)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each backup and restore; best counts")
    ap.add_argument(
        "--compression",
        default="lz4",
        choices=["none", "gzip", "lz4", "zstd"],
        help="same method for all tools (default lz4; PostgreSQL 14 offers gzip only)",
    )
    ap.add_argument(
        "--transactions", type=int, default=2000, help="pgbench transactions per client after the backups"
    )
    ap.add_argument("--no-drop-caches", action="store_true", help="never drop the page cache")
    ap.add_argument("--keep", action="store_true", help="leave the clusters and folders in place")
    ap.add_argument("--out", help="JSON file (default bench/out/backup-<timestamp>.json)")
    opts = ap.parse_args(argv)
    if opts.runs < 1 or opts.scale < 1:
        ap.error("--runs and --scale must be at least 1")
    if os.geteuid() != 0:
        ap.error("run as root: the server runs as postgres, the page cache is dropped, become uses sudo")
    if opts.compression == "zstd" and opts.major < 15 or opts.compression == "lz4" and opts.major < 15:
        ap.error("PostgreSQL %d's pg_basebackup has gzip only" % opts.major)
    pwd.getpwnam("postgres")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out_path = opts.out or os.path.join(OUT_DIR, "backup-%s.json" % stamp)

    # SIGTERM (and SIGINT) unwind through the finally below: the clusters and folders are removed.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    load = dict(start=uptime())
    times = dict((name, []) for name in BACKUPS + RESTORES)
    details = dict((name, []) for name in BACKUPS + RESTORES)
    errors = {}
    bench = Bench(opts)
    try:
        bench.start_source()
        server_version = bench.sql("SHOW server_version")[0]
        log("pgbench -i -s %d (server-side generation) ..." % opts.scale)
        init = bench.pgbench_init()
        log(
            "database %.2f GB (data folder %.2f GB without pg_wal), loaded in %.0fs"
            % (init["database_bytes"] / 1e9, init["data_dir_bytes"] / 1e9, init["seconds"])
        )
        bench.write_pgbr_conf()
        archive_command = bench.archive_both()
        bench.pgbackrest("stanza-create")
        bench.pgbackrest("check")  # archives a segment through both tools: the archive works
        log("disk floor: %.2f GB written and read in %s" % (init["data_dir_bytes"] / 1e9, bench.top))
        floor = disk_floor(bench.top, init["data_dir_bytes"], bench.use_drop)
        log("  write %.0f MB/s, read %.0f MB/s" % (floor["write_mb_s"], floor["read_mb_s"]))
        drops = []
        log("baseline: ansible.builtin.ping through the same play, x3")
        pings = [bench.ansible.ping() for _i in range(3)]

        def step(name, fn):
            drops.append(drop_caches(bench.use_drop))
            log("%s ..." % name)
            try:
                seconds, detail = fn()
            except ToolFailed as exc:
                errors[name] = str(exc)
                log("  FAILED: %s" % exc)
                return None
            times[name].append(seconds)
            details[name].append(detail)
            log("  %.2fs" % seconds)
            return detail

        for index in range(opts.runs):
            pings.append(bench.ansible.ping())  # next to the module runs: the load drifts
            module = step(MOD_VERIFY, lambda: bench.module_backup(True))
            step(MOD_NOVERIFY, lambda: bench.module_backup(False))
            step(ENGINE, bench.engine_backup)
            if module and module.get("command"):
                bare = {}

                if step(BARE, functools.partial(_bare_run, bench, module["command"], index, bare)):
                    step(BARE_VERIFY, lambda bare=bare: (bench.bare_verify(bare["target"]), {}))
                    shutil.rmtree(bare["target"], ignore_errors=True)
            for name, processes in ((PGBR1, 1), (PGBR2, 2)):

                def pgbr_run(processes=processes):
                    seconds, _proc = bench.pgbackrest("--type=full", "--process-max=%d" % processes, "backup")
                    return seconds, dict(process_max=processes)

                step(name, pgbr_run)
        pgbr_info = json.loads(bench.pgbackrest("--output=json", "info")[1].stdout)
        log("pgbench workload: 2 clients x %d transactions, then a WAL switch" % opts.transactions)
        workload_seconds = bench.pgbench_workload()
        last_segment = bench.archive_everything()
        expected_history = int(bench.sql("SELECT count(*) FROM pgbench_history")[0])
        load["after_backups"] = uptime()

        for index in range(opts.runs):
            pings.append(bench.ansible.ping())
            step(RESTORE_MOD, lambda index=index: bench.module_restore(index))
            step(RESTORE_PGBR, lambda index=index: bench.pgbr_restore(index))
            bench.remove_restored()
        load["end"] = uptime()
        tool_versions = versions(bench)
        repo_bytes = du_bytes(bench.repo)
        pgbr_repo_bytes = du_bytes(os.path.join(bench.pgbr, "repo"))
    finally:
        bench.close(opts.keep)

    best_s = dict((name, best(t)) for name, t in times.items())
    module_stored = next((d["stored_bytes"] for d in details[MOD_VERIFY] if d.get("stored_bytes")), None)
    pgbr_stored = None
    try:
        pgbr_stored = pgbr_info[0]["backup"][-1]["info"]["repository"]["size"]
    except (LookupError, TypeError):
        pass
    db_bytes = init["data_dir_bytes"]
    floors = {}
    for name in BACKUPS:
        if name == BARE_VERIFY:
            floors[name] = None
            continue
        stored = pgbr_stored if name in (PGBR1, PGBR2) else module_stored
        floors[name] = floor_seconds(floor, db_bytes, stored or 0)
    for name in RESTORES:
        stored = pgbr_stored if name == RESTORE_PGBR else module_stored
        floors[name] = floor_seconds(floor, stored or 0, db_bytes)
    bare_best = best_s[BARE]

    cache = "page cache dropped before each" if drops and all(drops) else "page cache NOT dropped"
    print(
        "Backup benchmark: PostgreSQL %s, pgbench scale %d: database %.2f GB, data folder %.2f GB "
        "without pg_wal; "
        "compression %s (client side) for all; best of %d run(s), %s"
        % (
            server_version,
            opts.scale,
            init["database_bytes"] / 1e9,
            db_bytes / 1e9,
            opts.compression,
            opts.runs,
            cache,
        )
    )
    print(
        "Disk floor (%s, %.2f GB): sequential write + fsync %.0f MB/s, sequential read (cache %s) %.0f MB/s"
        % (
            bench.top,
            floor["bytes"] / 1e9,
            floor["write_mb_s"],
            "dropped" if floor["read_cache_dropped"] else "NOT dropped",
            floor["read_mb_s"],
        )
    )
    print(
        "Stored: module backup %s MB, pgBackRest backup %s MB"
        % (
            "%.0f" % (module_stored / 1e6) if module_stored else "n/a",
            "%.0f" % (pgbr_stored / 1e6) if pgbr_stored else "n/a",
        )
    )
    print()
    print("%-40s %9s %12s %9s %9s" % ("backup", "seconds", "/ bare pg_bb", "floor s", "/ floor"))
    print("%-40s %9s %12s %9s %9s" % ("-" * 40, "-" * 9, "-" * 12, "-" * 9, "-" * 9))
    for name in BACKUPS:
        base = bare_best if name != BARE_VERIFY else None
        print(
            "%-40s %9s %12s %9s %9s"
            % (
                name,
                fmt_s(best_s[name]),
                ratio(best_s[name], base) if base else "",
                fmt_s(floors[name]) if floors[name] else "",
                ratio(best_s[name], floors[name]) if floors[name] else "",
            )
        )
    if best_s[BARE] is not None and best_s[BARE_VERIFY] is not None:
        both = best_s[BARE] + best_s[BARE_VERIFY]
        print(
            "%-40s %9s %12s"
            % ("bare pg_basebackup + verification", fmt_s(both), ratio(best_s[MOD_VERIFY], both))
            + "  (module verify on / this)"
        )
    ping_best = best(pings)
    print(
        "%-40s %9s %12s"
        % ("baseline: ansible.builtin.ping play", fmt_s(ping_best), ratio(ping_best, bare_best))
    )
    for name in (MOD_VERIFY, MOD_NOVERIFY):
        spans = [d["pg_basebackup_span"] for d in details[name] if d.get("pg_basebackup_span") is not None]
        if best_s[name] is None or not spans:
            continue
        inside = min(spans)
        print(
            "  %s: ansible (ping) %.2f + pg_basebackup (server now() before/after) %.2f + the rest %.2f"
            % (name.split(", ")[1], ping_best, inside, best_s[name] - ping_best - inside)
        )
    print()
    print("%-40s %9s %12s %9s %9s" % ("restore to latest", "seconds", "/ pgBackRest", "floor s", "/ floor"))
    print("%-40s %9s %12s %9s %9s" % ("-" * 40, "-" * 9, "-" * 12, "-" * 9, "-" * 9))
    for name in RESTORES:
        print(
            "%-40s %9s %12s %9s %9s"
            % (
                name,
                fmt_s(best_s[name]),
                ratio(best_s[name], best_s[RESTORE_PGBR]),
                fmt_s(floors[name]),
                ratio(best_s[name], floors[name]),
            )
        )
    mod_restore = {}
    if details[RESTORE_MOD]:  # the run that counted (best of N)
        mod_restore = details[RESTORE_MOD][times[RESTORE_MOD].index(best_s[RESTORE_MOD])]
    if mod_restore:
        phases = mod_restore.get("phases") or {}
        print(
            "  module's own rto_seconds %s (best run); phases: %s"
            % (
                fmt_s(mod_restore.get("rto_seconds")),
                ", ".join("%s %.2f" % (k, v) for k, v in phases.items() if isinstance(v, (int, float))),
            )
        )
    if mod_restore and best_s[RESTORE_MOD] is not None:
        own = best_s[RESTORE_MOD] - ping_best
        print(
            "  module minus the ping baseline: %.2f s (%s pgBackRest)"
            % (own, ratio(own, best_s[RESTORE_PGBR]))
        )
    print("  restored rows (accounts / history; expected %d / %d):" % (opts.scale * 100000, expected_history))
    for name in RESTORES:
        for detail in details[name]:
            check = detail.get("check") or {}
            good = check.get("accounts") == opts.scale * 100000 and check.get("history") == expected_history
            print(
                "    %-38s %s / %s  %s"
                % (name, check.get("accounts"), check.get("history"), "ok" if good else "MISMATCH")
            )
    for name, message in errors.items():
        print("  FAILED %s: %s" % (name, message))
    print()
    print("Notes: floor = bytes read / read speed + bytes written / write speed on the same disk")
    print("  (backup: read the data folder, write the stored backup; restore: the reverse).")
    print("  Module lines are whole ansible-playbook runs (start-up, become, a copy task for the result);")
    print("  the ping line is that overhead alone. 'the rest' = reading the backup's facts, verifying,")
    print("  checksumming the stored files and writing backup.json.")
    print("  The module's verify (tar on 15-17) = extract beside the backup + pg_verifybackup, done by hand")
    print("  for bare pg_basebackup on the '+ extract' line. pgBackRest checksums files while copying.")
    print("  Each restore replays the WAL archived since its own backup (module: its newest backup;")
    print("  pgBackRest: its newest full) plus the workload of %d transactions." % (2 * opts.transactions))
    print("  load: start: %s" % load.get("start"))
    print("        after backups: %s" % load.get("after_backups"))
    print("        end: %s" % load.get("end"))
    elapsed = time.monotonic() - started
    print("  versions: %s" % "; ".join("%s %s" % kv for kv in sorted(tool_versions.items())))
    print("  elapsed %.0fs" % elapsed)

    doc = dict(
        benchmark="backup",
        generated_at=stamp,
        command=" ".join([os.path.relpath(sys.argv[0], REPO)] + (argv if argv is not None else sys.argv[1:])),
        machine=dict(platform=platform.platform(), python=platform.python_version(), cpus=os.cpu_count()),
        load=load,
        server_version=server_version,
        scale=opts.scale,
        compression=opts.compression,
        runs=opts.runs,
        page_cache_dropped=drops,
        init=init,
        disk_floor=floor,
        floors=floors,
        archive_command=archive_command,
        workload=dict(transactions_per_client=opts.transactions, clients=2, seconds=workload_seconds),
        last_archived_segment=last_segment,
        stored_bytes=dict(module=module_stored, pgbackrest=pgbr_stored),
        repository_bytes=dict(module=repo_bytes, pgbackrest=pgbr_repo_bytes),
        times=times,
        ansible_ping=dict(times=pings, best=ping_best),
        best=best_s,
        ratios_to_bare=dict((n, best_s[n] / bare_best if best_s[n] and bare_best else None) for n in BACKUPS),
        ratios_to_floor=dict((n, best_s[n] / floors[n] if best_s[n] and floors[n] else None) for n in floors),
        restore_ratio_module_to_pgbackrest=(
            best_s[RESTORE_MOD] / best_s[RESTORE_PGBR]
            if best_s[RESTORE_MOD] and best_s[RESTORE_PGBR]
            else None
        ),
        details=details,
        errors=errors,
        versions=tool_versions,
        elapsed_seconds=elapsed,
    )
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as handle:
        json.dump(doc, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    out = os.path.abspath(out_path)
    print("  results: %s" % (os.path.relpath(out, REPO) if out.startswith(REPO + os.sep) else out))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
