# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers for integration tests: real PostgreSQL clusters and real playbook runs.

- ``PgCluster`` / ``start_cluster(major, ...)``: a throw-away local cluster (initdb +
  pg_ctl through plugins/module_utils/core/localcluster.py) with scram-sha-256 on 127.0.0.1,
  a random superuser password and pg_stat_statements preloaded.
- ``start_standby(primary, name, slot=...)``: a streaming standby of such a cluster
  (pg_basebackup -R), started, as another PgCluster.
- ``run_playbook(...)``: runs the venv's ansible-playbook from the repository root (so
  ansible.cfg applies) and returns every task result, captured as JSON lines by the
  ``dbarch_results`` callback in callback_plugins/.
- ``play(*tasks, pg=..., db=...)`` / ``task(module, task_name, **options)``: the playbook a test
  runs, with the connection in module_defaults instead of repeated in every task.
"""

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg2
import yaml
from psycopg2 import sql

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup as bk
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
WAL_SCRIPT = str(REPO_ROOT / "roles" / "backup" / "files" / "dbarch-wal")
CALLBACK_DIR = Path(__file__).resolve().parent / "callback_plugins"
CALLBACK_NAME = "dbarch_results"
RESULTS_ENV = "DBARCH_TEST_RESULTS"
DEFAULT_VERSIONS = "14 15 16 17 18"
# The majors a test runs on unless it is marked ``all_versions`` (its behaviour depends on the
# major) or ``pg_versions(...)`` (it needs given majors): Debian's 15 and the newest, 18.
CORE_MAJORS = (15, 18)
TEST_TMP_ENV = "DBARCH_TEST_TMP"
DEFAULT_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "fsync": False,
    "synchronous_commit": False,
    "full_page_writes": False,
}


# Credentials moto's S3 server accepts (any non-empty pair); set by the ``bucket`` fixture.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "moto-test-key",
    "AWS_SECRET_ACCESS_KEY": "moto-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def versions_under_test():
    """Majors from $DBARCH_PG_VERSIONS (space or comma separated), default 14..18."""
    raw = os.environ.get("DBARCH_PG_VERSIONS") or DEFAULT_VERSIONS
    try:
        return [int(v) for v in raw.replace(",", " ").split()]
    except ValueError:
        raise ValueError("DBARCH_PG_VERSIONS=%r: give majors such as '14 15 16 17 18'" % raw) from None


def default_versions():
    """Majors for a test that is not version-dependent: CORE_MAJORS among the selected majors,
    or every selected major when $DBARCH_PG_VERSIONS selects none of them."""
    selected = versions_under_test()
    return [m for m in selected if m in CORE_MAJORS] or selected


def select_versions(wanted):
    """The selected majors (from $DBARCH_PG_VERSIONS) that are among ``wanted``."""
    wanted = {int(m) for m in wanted}
    return [m for m in versions_under_test() if m in wanted]


def work_folder(prefix="dbarch-it-"):
    """A fresh folder the postgres OS user can traverse (default under /var/tmp)."""
    parent = os.environ.get(TEST_TMP_ENV) or "/var/tmp"  # noqa: S108 - must be reachable by postgres
    folder = tempfile.mkdtemp(prefix=prefix, dir=parent)
    os.chmod(folder, 0o755)  # noqa: S103 - the postgres user must traverse it
    return folder


def repo_folder(workdir, name="repo"):
    """A local backup repository folder ``name`` (and its wal/) under ``workdir``, owned by the
    postgres OS user; returns its path."""
    repo_dir = os.path.join(workdir, name)
    os.makedirs(os.path.join(repo_dir, "wal"))
    for folder in (repo_dir, os.path.join(repo_dir, "wal")):
        shutil.chown(folder, "postgres", "postgres")
    return repo_dir


def archive_settings(repo_dir, **extra):
    """Settings of a cluster that archives its WAL into ``repo_dir`` with dbarch-wal (plus ``extra``)."""
    settings = {
        "archive_mode": "on",
        "archive_command": "/usr/bin/python3 %s --repo %s archive %%p %%f" % (WAL_SCRIPT, repo_dir),
        "wal_level": "replica",
    }
    settings.update(extra)
    return settings


def take_backup(pg, repo_dir, **options):
    """One base backup of the server ``pg`` into the local repository ``repo_dir``, through the
    engine (as the basebackup module calls it); returns its metadata."""
    session = pgmod.connect(pg.conn_params, "basebackup")
    try:
        return bk.take(session, pgmod.resolve_params(pg.conn_params), br.LocalRepository(repo_dir), **options)
    finally:
        session.close()


def remove_folder(folder):
    """Stop and delete every dbarch cluster under ``folder``, then delete the folder."""
    for root, _dirs, files in os.walk(folder):
        if lc.MARKER_NAME not in files:
            continue
        with open(os.path.join(root, lc.MARKER_NAME)) as handle:
            marker = json.load(handle)
        bindir = None
        if marker.get("major"):
            try:
                bindir = lc.find_bindir(marker["major"])
            except lc.LocalClusterError:
                bindir = None
        lc.LocalCluster(marker["data_dir"], bindir=bindir, run_as=marker.get("run_as")).destroy()
    shutil.rmtree(folder, ignore_errors=True)


class _ClosingConnection(psycopg2.extensions.connection):
    """A psycopg2 connection whose ``with`` block neither opens a transaction nor leaks.

    psycopg2 >= 2.9 opens a transaction in ``with conn:`` even with autocommit on, which
    breaks ALTER SYSTEM, VACUUM, CREATE DATABASE... Here ``with pg.connect() as conn:``
    keeps autocommit and closes the connection at the end of the block.
    """

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False


# -- clusters ----------------------------------------------------------------------------


class PgCluster:
    """A running local cluster plus what tests need to reach it."""

    host = "127.0.0.1"

    def __init__(self, major, cluster, password, workdir, owns_workdir):
        self.major = int(major)
        self.cluster = cluster
        self.port = cluster.port
        self.user = cluster.superuser
        self.password = password
        self.bindir = cluster.bindir
        self.data_dir = cluster.data_dir
        self.socket_dir = cluster.socket_dir
        self.workdir = workdir
        self._owns_workdir = owns_workdir

    def __repr__(self):
        return "PgCluster(major=%d, port=%d, data_dir=%s)" % (self.major, self.port, self.data_dir)

    @property
    def conn_params(self):
        """Connection options under the names the collection's modules take."""
        return {
            "login_host": self.host,
            "login_port": self.port,
            "login_user": self.user,
            "login_password": self.password,
            "login_db": "postgres",
        }

    def dsn(self, dbname="postgres"):
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname,
        }

    def connect(self, dbname="postgres", autocommit=True):
        """psycopg2 connection (autocommit); ``with pg.connect() as conn:`` closes it after."""
        conn = psycopg2.connect(
            application_name="dbarch.tests",
            connect_timeout=10,
            connection_factory=_ClosingConnection,
            **self.dsn(dbname),
        )
        conn.autocommit = autocommit
        return conn

    def query(self, statement, params=None, dbname="postgres"):
        """All rows of one statement, on a short-lived connection."""
        conn = self.connect(dbname)
        try:
            with conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def createdb(self, name):
        """Drop ``name`` if it exists (kicking sessions out), create it empty, return it."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                ident = sql.Identifier(name)
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
                cur.execute(sql.SQL("CREATE DATABASE {}").format(ident))
        finally:
            conn.close()
        return name

    def dropdb(self, name):
        """Drop ``name`` if it exists, kicking its sessions out."""
        self.query(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def stop(self):
        """Stop and delete the cluster, and its work folder when we made it."""
        try:
            self.cluster.destroy()
        finally:
            if self._owns_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)


def start_cluster(major, workdir=None, name=None, settings=None, hba_extra=None, port=None):
    """initdb + start a cluster for ``major``; returns a running PgCluster.

    Raises lc.LocalClusterError (with the fetch instructions) when binaries are missing.
    """
    bindir = lc.find_bindir(major)
    owns = workdir is None
    workdir = workdir or work_folder("dbarch-it-pg%d-" % int(major))
    merged = dict(DEFAULT_SETTINGS)
    merged.update(settings or {})
    password = secrets.token_urlsafe(24)
    data_dir = os.path.join(workdir, name or "pg%d" % int(major), "data")
    cluster = lc.LocalCluster(data_dir, port=lc.free_port(port), bindir=bindir)
    handle = PgCluster(major, cluster, password, workdir, owns)
    try:
        cluster.initdb(superuser="postgres", password=password, settings=merged, hba_extra=hba_extra)
        cluster.start(timeout=120)
    except BaseException:
        handle.stop()
        raise
    return handle


def start_standby(primary, name, slot=None, settings=None, workdir=None, port=None):
    """pg_basebackup -R a streaming standby of the running PgCluster ``primary``, start it,
    and return it as a PgCluster (same superuser and password as the primary).

    ``slot``: a physical replication slot on the primary (created when missing). The standby
    lives in ``workdir`` (default: the primary's work folder) under ``name``; stopping it
    (``.stop()``) deletes only its own data folder. Raises lc.LocalClusterError on failure.
    """
    merged = dict(DEFAULT_SETTINGS)
    merged.update(settings or {})
    workdir = workdir or primary.workdir
    data_dir = os.path.join(workdir, name, "data")
    cluster = lc.LocalCluster(data_dir, port=lc.free_port(port), bindir=primary.bindir)
    handle = PgCluster(primary.major, cluster, primary.password, workdir, False)
    source = {"host": primary.host, "port": primary.port, "user": primary.user, "password": primary.password}
    try:
        cluster.create_replica(source, slot, settings=merged)
        cluster.start(timeout=120)
    except BaseException:
        handle.stop()
        raise
    return handle


# -- playbooks ---------------------------------------------------------------------------

COLLECTION = "dbarch.postgresql"
# Keywords of a task (not options of its module) that ``task`` accepts among its keyword arguments.
TASK_KEYWORDS = frozenset(
    (
        "register",
        "check_mode",
        "diff",
        "ignore_errors",
        "when",
        "become",
        "become_user",
        "no_log",
        "vars",
        "failed_when",
        "changed_when",
    )
)


def task(module, task_name=None, /, **options):
    """One task: ``{"name": task_name, <module>: options}``.

    ``module``: a dbarch.postgresql module's short name ("index") or a full name
    ("ansible.builtin.debug"). Both are positional, so a module option may be called ``name``.
    Task keywords among the options (TASK_KEYWORDS: register, check_mode, ignore_errors, when,
    become, become_user, ...) go to the task, the rest to the module.
    """
    keywords = {key: options.pop(key) for key in list(options) if key in TASK_KEYWORDS}
    full = module if "." in module else "%s.%s" % (COLLECTION, module)
    return dict({"name": task_name or module, full: options}, **keywords)


def play(*tasks, pg=None, db=None, name="test", hosts="localhost", **keywords):
    """A playbook of one play on ``hosts`` (localhost, no facts) running ``tasks`` (task dicts).

    With ``pg`` (a PgCluster) every dbarch.postgresql module gets its connection through
    ``module_defaults`` (group/dbarch.postgresql.all), with login_db ``db`` when given. Other
    keywords are play keywords (vars, check_mode, environment, ...).
    """
    built = {"name": name, "hosts": hosts, "gather_facts": False}
    if pg is not None:
        connection = dict(pg.conn_params)
        if db:
            connection["login_db"] = db
        built["module_defaults"] = {"group/%s.all" % COLLECTION: connection}
    built.update(keywords)
    built["tasks"] = list(tasks)
    return [built]


class PlaybookRun:
    """Outcome of one ansible-playbook run."""

    def __init__(self, argv, rc, stdout, stderr, records):
        self.argv = argv
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.results = [r for r in records if r.get("kind") == "task"]
        stats = [r for r in records if r.get("kind") == "stats"]
        self.stats = stats[-1]["stats"] if stats else {}

    def __repr__(self):
        return "PlaybookRun(rc=%s, tasks=%d)" % (self.rc, len(self.results))

    def task_names(self):
        return [r["task"] for r in self.results]

    def task(self, name, host=None):
        """First record {play, task, full_name, host, status, ignored, result} of a task.

        ``name`` is the task's name as written, or with its role prefix ("role : name").
        """
        for record in self.results:
            if name in (record["task"], record["full_name"]) and (host is None or record["host"] == host):
                return record
        raise KeyError(
            "No result for task %r%s. Tasks that ran: %s\n--- ansible-playbook output (rc=%s) ---\n%s%s"
            % (
                name,
                " on host %r" % host if host else "",
                self.task_names(),
                self.rc,
                self.stdout[-4000:],
                self.stderr[-2000:],
            )
        )

    def changed_count(self, host=None):
        """Changed tasks per the play recap (all hosts summed unless host is given)."""
        hosts = [host] if host else list(self.stats)
        return sum(self.stats.get(h, {}).get("changed", 0) for h in hosts)

    def failed(self):
        return [r for r in self.results if r["status"] in ("failed", "unreachable") and not r["ignored"]]

    def assert_ok(self):
        """Raise AssertionError with the output when the run failed."""
        if self.rc != 0:
            raise AssertionError(
                "ansible-playbook failed (rc=%s): %s\n%s\n%s"
                % (
                    self.rc,
                    [(r["task"], r["result"].get("msg")) for r in self.failed()],
                    self.stdout[-6000:],
                    self.stderr[-3000:],
                )
            )
        return self


def _plays(playbook):
    if isinstance(playbook, dict):
        return [playbook]
    if isinstance(playbook, list):
        return playbook
    raise TypeError("playbook must be YAML text, a play dict, a list of plays or a Path")


def _write_playbook(playbook, folder):
    if isinstance(playbook, Path):
        return str(playbook.resolve())
    path = os.path.join(folder, "playbook.yml")
    text = playbook if isinstance(playbook, str) else yaml.safe_dump(_plays(playbook), sort_keys=False)
    with open(path, "w") as out:
        out.write(text)
    return path


def default_inventory():
    return "localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable


def _write_inventory(inventory, folder):
    if inventory is None:
        inventory = default_inventory()
    if isinstance(inventory, Path):
        return str(inventory.resolve())
    if isinstance(inventory, dict):
        path = os.path.join(folder, "inventory.yml")
        text = yaml.safe_dump(inventory, sort_keys=False)
    elif os.path.exists(inventory):
        return os.path.abspath(inventory)
    else:
        path = os.path.join(folder, "inventory")
        text = inventory
    with open(path, "w") as out:
        out.write(text)
    return path


def _environment(results_file, env):
    merged = dict(os.environ)
    enabled = [c for c in merged.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c.strip()]
    plugin_dirs = [p for p in merged.get("ANSIBLE_CALLBACK_PLUGINS", "").split(os.pathsep) if p]
    merged.update(
        {
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_CALLBACK_PLUGINS": os.pathsep.join([str(CALLBACK_DIR)] + plugin_dirs),
            "ANSIBLE_CALLBACKS_ENABLED": ",".join(enabled + [CALLBACK_NAME]),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PATH": os.pathsep.join([str(VENV_BIN), merged.get("PATH", "")]),
            RESULTS_ENV: results_file,
        }
    )
    merged.update(env or {})
    return merged


def _read_records(path):
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def run_site_playbook(name, pg, **extra_vars):
    """Run playbooks/<name>.yml on localhost against the server ``pg`` (a cluster or the ``pg``
    fixture) as its login: dbarch_login_* in the extra vars, PG* in the environment."""
    env = dict(PGHOST=pg.host, PGPORT=str(pg.port), PGUSER=pg.user, PGPASSWORD=pg.password)
    extra = dict(
        dbarch_target="localhost",
        dbarch_login_host=pg.host,
        dbarch_login_port=pg.port,
        dbarch_login_user=pg.user,
        dbarch_login_password=pg.password,
    )
    extra.update(extra_vars)
    return run_playbook(REPO_ROOT / "playbooks" / ("%s.yml" % name), extra_vars=extra, env=env)


def run_playbook(
    playbook,
    extra_vars=None,
    check=False,
    diff=False,
    inventory=None,
    env=None,
    limit=None,
    verbosity=0,
    timeout=900,
):
    """Run ansible-playbook on ``playbook`` and return a PlaybookRun.

    playbook: YAML text, one play (dict), a list of plays, or a Path to an existing file.
    inventory: None (localhost, local connection, this Python), a path, inventory text,
    or a dict (YAML inventory). extra_vars go through a JSON file (-e @file), so values
    keep their types and never show in the process list.
    """
    folder = tempfile.mkdtemp(prefix="dbarch-play-")
    try:
        results_file = os.path.join(folder, "results.jsonl")
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", _write_inventory(inventory, folder)]
        if extra_vars:
            vars_file = os.path.join(folder, "extra-vars.json")
            with open(vars_file, "w") as out:
                json.dump(extra_vars, out)
            argv += ["-e", "@" + vars_file]
        argv += ["--check"] if check else []
        argv += ["--diff"] if diff else []
        argv += ["--limit", limit] if limit else []
        argv += ["-" + "v" * verbosity] if verbosity else []
        argv.append(_write_playbook(playbook, folder))
        try:
            proc = subprocess.run(
                argv,
                cwd=str(REPO_ROOT),
                env=_environment(results_file, env),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                "ansible-playbook did not finish within %ss; output so far:\n%s" % (timeout, exc.stdout)
            ) from None
        return PlaybookRun(argv, proc.returncode, proc.stdout, proc.stderr, _read_records(results_file))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
