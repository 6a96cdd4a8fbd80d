# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Catalog benchmark: dbarch's catalog snapshot against community.postgresql.postgresql_info.

One run, one database, one machine:

1. start a throwaway local cluster of ``--version`` (or use ``--dsn``), create a
   database and load the synthetic schema of ``--tables`` tables (bench/catalog/schema.py);
2. time ``catalog.snapshot()`` in this process (best of ``--runs``);
3. time ``ansible localhost -m community.postgresql.postgresql_info`` from the ``ansible``
   package installed in its own venv (bench/.venv-peer), best of ``--runs``;
4. time ``ansible localhost -m dbarch.postgresql.catalog_info`` through the repo's
   .venv the same way, so the module-to-module ratio includes Ansible's process start on
   both sides; plus ``ansible.builtin.ping`` in each venv as the fixed-cost baseline;
5. count the SQL statements each tool sent, as pg_stat_statements sees them (same
   method for every tool), and record what each tool gathers;
6. print a table with the ratios and write bench/out/catalog.json.

Entry: ``.venv/bin/python bench/catalog/run.py [--tables 5000] [--version 15]``.
Timings are printed and written here only; no test ever asserts one.
"""

import argparse
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.path.insert(0, BENCH)
sys.path.insert(0, HERE)

import common  # noqa: E402
import psycopg2  # noqa: E402
from common import COLLECTIONS, OUR_VENV_BIN, OUT_DIR, REPO, ansible_env, log  # noqa: E402, F401
from psycopg2.extensions import parse_dsn  # noqa: E402

import schema as gen  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import catalog, pg  # noqa: E402

PEER_VENV = os.path.join(BENCH, ".venv-peer")

BENCH_DB = "catbench"
TOOL_ROLE = "catbench_tool"
PEER_MODULE = "community.postgresql.postgresql_info"
OUR_MODULE = "dbarch.postgresql.catalog_info"

# What each tool reads, from reading its source (bench/.venv-peer/.../postgresql_info.py and
# plugins/module_utils/core/catalog.py). The run checks the peer's claim against its real output.
GATHERS = {
    PEER_MODULE: dict(
        scope="server-wide: every database it can connect to, reconnecting once per database",
        reads=[
            "server version, in_recovery",
            "databases: owner, encoding, collation, ctype, ACL, size (pg_database_size)",
            "per database: namespaces (name, owner, ACL), extensions, languages, publications",
            "subscriptions, tablespaces, roles (+ memberships, valid_until), replication, slots",
            "settings: pg_settings, then one SHOW per setting (~350 statements)",
        ],
        does_not_read=[
            "tables",
            "columns",
            "constraints",
            "indexes",
            "foreign keys",
            "relation sizes or row estimates",
            "table or index usage statistics",
        ],
    ),
    "dbarch catalog.snapshot / catalog_info": dict(
        scope="one database (the one connected to), user schemas or the chosen ones",
        reads=[
            "relations (tables, partitions, views, materialized views, foreign tables):"
            " owner, comment, sizes from relpages, row estimates, pg_stat_all_tables counters",
            "columns: type, NOT NULL, default, identity, generated, collation, comment",
            "constraints: PK, unique, FK (columns, referenced table/columns, actions), check,"
            " exclusion, validated, deferrable",
            "indexes: columns/expressions, INCLUDE, predicate, method, opclasses, validity,"
            " size, pg_stat_all_indexes counters",
            "pg_stats column statistics, enum types, extensions",
        ],
        does_not_read=["roles", "server settings", "other databases", "replication"],
    ),
}


# -- the database ------------------------------------------------------------------------------


class Target:
    """Where the benchmark runs: admin connection parameters and the tool's login."""

    def __init__(self, admin, tool, cluster=None):
        self.admin = admin  # libpq keywords for the admin (superuser) connection, dbname = bench db
        self.tool = tool  # libpq keywords the tools log in with
        self.cluster = cluster  # a common.ThrowawayCluster, or None for --dsn

    def connect_admin(self, dbname=None):
        kw = dict(self.admin)
        if dbname:
            kw["dbname"] = dbname
        conn = psycopg2.connect(**kw)
        conn.autocommit = True
        return conn

    def module_args(self):
        """Connection options for the Ansible modules (password travels in PGPASSWORD)."""
        return dict(
            login_host=self.tool["host"],
            login_port=int(self.tool["port"]),
            login_user=self.tool["user"],
            login_db=self.tool["dbname"],
        )

    def close(self, keep):
        if self.cluster is not None:
            if not keep:
                log("removing the throwaway cluster %s" % self.cluster.data_dir)
            self.cluster.close(keep)


def start_cluster(major):
    settings = dict(common.FAST_SETTINGS, shared_preload_libraries="pg_stat_statements")
    cluster = common.ThrowawayCluster(major, prefix="dbarch-catbench-", settings=settings)
    admin = cluster.kw()
    conn = cluster.connect()
    with conn.cursor() as cur:
        cur.execute('CREATE DATABASE "%s"' % BENCH_DB)
        tool_pw = secrets.token_urlsafe(18)
        # A role of its own, so pg_stat_statements can tell the tools' statements apart.
        cur.execute("CREATE ROLE %s LOGIN SUPERUSER PASSWORD %%s" % TOOL_ROLE, (tool_pw,))
    conn.close()
    admin["dbname"] = BENCH_DB
    tool = dict(host="127.0.0.1", port=cluster.port, user=TOOL_ROLE, password=tool_pw, dbname=BENCH_DB)
    return Target(admin, tool, cluster=cluster)


def dsn_target(dsn):
    kw = parse_dsn(dsn)
    kw.setdefault("host", os.environ.get("PGHOST", "127.0.0.1"))
    kw.setdefault("port", os.environ.get("PGPORT", "5432"))
    kw.setdefault("user", os.environ.get("PGUSER", "postgres"))
    if "password" not in kw and os.environ.get("PGPASSWORD"):
        kw["password"] = os.environ["PGPASSWORD"]
    kw.setdefault("dbname", os.environ.get("PGDATABASE", kw["user"]))
    return Target(dict(kw), dict(kw))


def existing_tables(conn, shape):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = ANY (%s)",
            (shape.schemas,),
        )
        return cur.fetchone()[0]


def prepare_schema(target, shape):
    conn = target.connect_admin()
    try:
        have = existing_tables(conn, shape)
        if have == shape.table_count:
            log(
                "reusing the %d tables already in %s (schemas %s)"
                % (have, target.admin["dbname"], ", ".join(shape.schemas))
            )
            return None
        if have:
            raise SystemExit(
                "%s already holds %d tables in schemas %s, not %d; drop those schemas or pick another "
                "--prefix" % (target.admin["dbname"], have, ", ".join(shape.schemas), shape.table_count)
            )
        with conn.cursor() as cur:
            # Loading is not what is measured: keep its DDL, and the foreign-key checks that
            # ALTER TABLE runs inside it, out of pg_stat_statements (they would fill it).
            try:
                cur.execute("SET pg_stat_statements.track = 'none'")
            except psycopg2.Error:
                pass
        seconds = gen.load(conn, shape)
        with conn.cursor() as cur:
            cur.execute("ANALYZE")  # row estimates and pg_stats as on a live database
        log(
            "loaded %d tables, %d columns, %d indexes, %d foreign keys in %.1fs"
            % (shape.table_count, shape.columns, shape.indexes, shape.foreign_keys, seconds)
        )
        return seconds
    finally:
        conn.close()


# -- counting statements -------------------------------------------------------------------------


class StatementCounter:
    """Statements a role sent, from pg_stat_statements (all databases), as a before/after delta.

    Transaction control (BEGIN/COMMIT/ROLLBACK) and the counter's own reads are left out.
    When pg_stat_statements evicts entries between the two reads (a full hash table on a
    busy server; pg_stat_statements_info.dealloc moves), the delta is not trustworthy and
    the count is reported as n/a.
    """

    _SQL = (
        "SELECT coalesce(sum(s.calls), 0)::bigint, (SELECT dealloc FROM pg_stat_statements_info) "
        "FROM pg_stat_statements s "
        "JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = %s "
        "AND s.query !~* '^\\s*(begin|commit|rollback|start transaction|end)\\M' "
        "AND s.query NOT LIKE '%%pg_stat_statements%%'"
    )

    def __init__(self, target):
        self.target = target
        self.role = target.tool["user"]
        self.conn = None
        self.reason = None
        self.evicted = False
        try:
            self.conn = target.connect_admin()
            with self.conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'")
                if not cur.fetchone()[0]:
                    cur.execute("CREATE EXTENSION pg_stat_statements")
                cur.execute("SELECT 1 FROM pg_stat_statements LIMIT 1")
        except psycopg2.Error as exc:
            self.reason = "pg_stat_statements unavailable: %s" % str(exc).strip().splitlines()[0]
            log("statement counts will be n/a (%s)" % self.reason)
            self.conn = None

    def mark(self):
        if self.conn is None:
            return None
        with self.conn.cursor() as cur:
            cur.execute(self._SQL, (self.role,))
            calls, dealloc = cur.fetchone()
            return int(calls), dealloc

    def since(self, mark):
        """Statements sent since ``mark``, or None when that cannot be told."""
        if mark is None:
            return None
        calls, dealloc = self.mark()
        if dealloc != mark[1]:
            self.evicted = True
            log("pg_stat_statements evicted entries during a run; its statement count is n/a")
            return None
        return calls - mark[0]

    def close(self):
        if self.conn is not None:
            self.conn.close()


# -- the timed runs --------------------------------------------------------------------------------


def time_engine(target, counter, runs):
    params = dict(
        login_host=target.tool["host"],
        login_port=int(target.tool["port"]),
        login_user=target.tool["user"],
        login_password=target.tool.get("password"),
        login_db=target.tool["dbname"],
    )
    session = pg.connect(params, "catalog_bench")
    times = []
    cat = None
    counted = None
    try:
        for _run in range(runs):
            mark = counter.mark()
            t0 = time.perf_counter()
            cat = catalog.snapshot(session)
            times.append(time.perf_counter() - t0)
            counted = counter.since(mark)
    finally:
        session.close()
    return dict(
        times=times,
        best=min(times),
        reported_queries=cat.query_count,
        counted_statements=counted,
        summary=cat.summary(),
    )


def run_adhoc(venv_bin, module, args, env, workdir):
    # Ad-hoc output (the 'minimal' callback, the same in both venvs): "localhost | SUCCESS => {json}"
    seconds, proc = common.timed(
        common.adhoc_argv(module, args, venv_bin), env=env, cwd=workdir, ok=lambda p: True
    )
    try:
        return seconds, common.adhoc_result(module, proc)
    except common.ToolFailed as exc:
        raise SystemExit(str(exc)) from None


def time_module(venv_bin, module, args, env, counter, runs, workdir):
    times = []
    result = None
    counted = None
    for _run in range(runs):
        mark = counter.mark() if counter else None
        seconds, result = run_adhoc(venv_bin, module, args, env, workdir)
        times.append(seconds)
        counted = counter.since(mark) if counter else None
    return dict(times=times, best=min(times), counted_statements=counted), result


def ensure_peer_venv():
    ansible = os.path.join(PEER_VENV, "bin", "ansible")
    if os.path.exists(ansible):
        return
    log("creating %s (python3 -m venv; pip install ansible psycopg2-binary)" % PEER_VENV)
    subprocess.run(["python3", "-m", "venv", PEER_VENV], check=True)
    pip = os.path.join(PEER_VENV, "bin", "pip")
    subprocess.run(
        [pip, "install", "--quiet", "--disable-pip-version-check", "ansible", "psycopg2-binary"], check=True
    )


def peer_versions():
    code = (
        "import json, importlib.metadata as m, ansible_collections.community.postgresql as c, os\n"
        "man = json.load(open(os.path.join(list(c.__path__)[0], 'MANIFEST.json')))\n"
        "print(json.dumps(dict(ansible=m.version('ansible'), ansible_core=m.version('ansible-core'),\n"
        "  community_postgresql=man['collection_info']['version'],\n"
        "  module=os.path.join(list(c.__path__)[0], 'plugins/modules/postgresql_info.py'))))"
    )
    python = os.path.join(PEER_VENV, "bin", "python")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def describe_peer_output(result, shape, dbname):
    """What the peer really returned: its keys, and whether any table of ours appears in it."""
    dbs = result.get("databases") or {}
    per_db = sorted((dbs.get(dbname) or {}).keys())
    text = json.dumps(result)
    skip = ("changed", "invocation")
    probes = [shape.table_name(0), shape.table_name(shape.table_count - 1), "parent_id", "_parent_fk"]
    return dict(
        top_level_keys=sorted(k for k in result if k not in skip and not k.startswith("_")),
        databases_visited=sorted(dbs),
        keys_per_database=per_db,
        settings_returned=len(result.get("settings") or {}),
        mentions_of_the_schema={p: (p in text) for p in probes},
    )


# -- output --------------------------------------------------------------------------------------------


def fmt_count(value):
    return "n/a" if value is None else str(value)


def print_table(rows, ratios):
    print()
    print("%-58s %9s %9s" % ("tool", "seconds", "queries"))
    print("%-58s %9s %9s" % ("-" * 58, "-" * 9, "-" * 9))
    for name, seconds, queries in rows:
        print("%-58s %9.3f %9s" % (name, seconds, queries))
    print()
    for name, value in ratios:
        print("%-58s %9s" % (name, "%.2fx" % value if value is not None else "n/a"))
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--tables", type=int, default=gen.DEFAULT_TABLES)
    ap.add_argument("--schemas", type=int, default=gen.DEFAULT_SCHEMAS)
    ap.add_argument("--prefix", default="cat", help="schema name prefix (default cat -> cat_s0, cat_s1, ...)")
    ap.add_argument("--version", type=int, default=15, help="PostgreSQL major of the throwaway cluster")
    ap.add_argument("--dsn", help="use this database, not a throwaway cluster (libpq DSN; PGPASSWORD works)")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool; the best one counts")
    ap.add_argument("--keep", action="store_true", help="leave the throwaway cluster in place")
    ap.add_argument("--out", default=os.path.join(OUT_DIR, "catalog.json"))
    opts = ap.parse_args(argv)

    started = time.monotonic()
    shape = gen.generate(opts.tables, opts.schemas, opts.prefix)
    ensure_peer_venv()
    versions = peer_versions()
    target = dsn_target(opts.dsn) if opts.dsn else start_cluster(opts.version)
    workdir = tempfile.mkdtemp(prefix="catbench-ansible-")  # no ansible.cfg from the repo applies
    counter = None
    try:
        load_seconds = prepare_schema(target, shape)
        counter = StatementCounter(target)
        conn = target.connect_admin()
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('server_version')")
            server_version = cur.fetchone()[0]
        conn.close()

        log("engine: catalog.snapshot() x%d" % opts.runs)
        engine = time_engine(target, counter, opts.runs)

        args = target.module_args()
        password = target.tool.get("password")
        peer_bin = os.path.join(PEER_VENV, "bin")
        peer_env = ansible_env(password)
        our_env = ansible_env(password, COLLECTIONS)

        log("peer: %s x%d" % (PEER_MODULE, opts.runs))
        peer, peer_result = time_module(peer_bin, PEER_MODULE, args, peer_env, counter, opts.runs, workdir)
        log("ours: %s x%d" % (OUR_MODULE, opts.runs))
        ours, our_result = time_module(OUR_VENV_BIN, OUR_MODULE, args, our_env, counter, opts.runs, workdir)
        log("baseline: ansible.builtin.ping in each venv x%d" % opts.runs)
        ping = "ansible.builtin.ping"
        peer_ping, _peer_q = time_module(peer_bin, ping, None, peer_env, None, opts.runs, workdir)
        our_ping, _our_q = time_module(OUR_VENV_BIN, ping, None, our_env, None, opts.runs, workdir)
    finally:
        if counter is not None:
            counter.close()
        shutil.rmtree(workdir, ignore_errors=True)
        target.close(opts.keep)

    summary = engine["summary"]
    expected = shape.counts()
    got = dict(
        tables=summary["tables"],
        columns=summary["columns"],
        indexes=summary["indexes"],
        foreign_keys=summary["foreign_keys"],
    )
    mismatch = dict((k, (expected[k], v)) for k, v in got.items() if expected[k] != v)
    peer_seen = describe_peer_output(peer_result, shape, target.tool["dbname"])

    rows = [
        (
            "dbarch catalog.snapshot() (engine, in-process)",
            engine["best"],
            "%d (%s seen)" % (engine["reported_queries"], fmt_count(engine["counted_statements"])),
        ),
        ("%s (ansible ad-hoc)" % OUR_MODULE, ours["best"], fmt_count(ours["counted_statements"])),
        (
            "%s %s (ansible ad-hoc)" % (PEER_MODULE, versions["community_postgresql"]),
            peer["best"],
            fmt_count(peer["counted_statements"]),
        ),
        ("baseline: ansible.builtin.ping, repo .venv", our_ping["best"], "0"),
        ("baseline: ansible.builtin.ping, .venv-peer", peer_ping["best"], "0"),
    ]
    ratios = [
        ("ratio peer module / our engine (seconds)", peer["best"] / engine["best"]),
        ("ratio peer module / our module (seconds, apples to apples)", peer["best"] / ours["best"]),
        (
            "ratio peer module / our module (statements)",
            (peer["counted_statements"] / float(ours["counted_statements"]))
            if peer["counted_statements"] and ours["counted_statements"]
            else None,
        ),
    ]
    print(
        "Catalog benchmark: PostgreSQL %s, %d tables / %d columns / %d indexes / %d FKs in %d schemas%s"
        % (
            server_version,
            shape.table_count,
            shape.columns,
            shape.indexes,
            shape.foreign_keys,
            len(shape.schemas),
            "" if load_seconds is None else ", loaded in %.1fs" % load_seconds,
        )
    )
    print(
        "best of %d runs each; 'queries' = SQL statements the tool sent, counted by pg_stat_statements "
        "(transaction control excluded); the engine also reports its own count" % opts.runs
    )
    print_table(rows, ratios)
    print("What they gather (not the same work; read before quoting the ratio):")
    print("  %s: %s" % (PEER_MODULE, GATHERS[PEER_MODULE]["scope"]))
    print("    reads: %s" % "; ".join(GATHERS[PEER_MODULE]["reads"]))
    print("    does not read: %s" % ", ".join(GATHERS[PEER_MODULE]["does_not_read"]))
    print(
        "    its output here: databases %s, per database %s, %d settings; mentions %s"
        % (
            peer_seen["databases_visited"],
            peer_seen["keys_per_database"],
            peer_seen["settings_returned"],
            ", ".join("%s=%s" % kv for kv in peer_seen["mentions_of_the_schema"].items()),
        )
    )
    print("  dbarch catalog: %s" % GATHERS["dbarch catalog.snapshot / catalog_info"]["scope"])
    print(
        "    snapshot: %d tables, %d columns, %d indexes, %d foreign keys (generated: %d/%d/%d/%d)%s"
        % (
            got["tables"],
            got["columns"],
            got["indexes"],
            got["foreign_keys"],
            expected["tables"],
            expected["columns"],
            expected["indexes"],
            expected["foreign_keys"],
            "" if not mismatch else "  MISMATCH %r" % mismatch,
        )
    )
    print("  elapsed %.0fs" % (time.monotonic() - started))

    counting = "SQL statements per role from pg_stat_statements (all databases), transaction control excluded"
    if counter is None or counter.reason:
        counting = counter.reason if counter else "not counted"
    elif counter.evicted:
        counting += "; n/a where pg_stat_statements evicted entries during the run"
    doc = dict(
        benchmark="catalog",
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        machine=dict(platform=platform.platform(), python=platform.python_version(), cpus=os.cpu_count()),
        server_version=server_version,
        target="throwaway cluster" if not opts.dsn else "--dsn",
        shape=expected,
        load_seconds=load_seconds,
        runs=opts.runs,
        counting=counting,
        engine=dict((k, v) for k, v in engine.items() if k != "summary"),
        engine_summary=summary,
        snapshot_matches_generated=not mismatch,
        our_module=dict(ours, module=OUR_MODULE, reported_query_count=our_result.get("query_count")),
        peer_module=dict(peer, module=PEER_MODULE, versions=versions, output=peer_seen),
        baseline_ping=dict(ours_venv=our_ping, peer_venv=peer_ping),
        ratios=dict((name, value) for name, value in ratios),
        gathers=GATHERS,
        elapsed_seconds=time.monotonic() - started,
    )
    os.makedirs(os.path.dirname(os.path.abspath(opts.out)), exist_ok=True)
    with open(opts.out, "w") as handle:
        json.dump(doc, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    out = os.path.abspath(opts.out)
    print("  results: %s" % (os.path.relpath(out, REPO) if out.startswith(REPO + os.sep) else out))
    return 1 if mismatch else 0


if __name__ == "__main__":
    sys.exit(main())
