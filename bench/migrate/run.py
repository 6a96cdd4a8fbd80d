# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration benchmark: dbarch.postgresql.migrate against psql, dbmate, sqitch and yoyo-migrations.

One run, one throwaway cluster, one fresh database per tool and per run:

1. generate ``--migrations`` small migrations (a table, then a column, an index and a row
   for it, in turn) as plain SQL, and write each tool's copy of the same SQL in the layout
   it wants (Flyway names, a psql script, dbmate ``-- migrate:up`` files, a sqitch plan
   with deploy scripts, yoyo ``.sql`` files);
2. apply them with each tool to a fresh database, best of ``--runs``: psql (the floor:
   one session, one transaction per file, no history), ``dbarch.postgresql.migrate``
   through ``ansible localhost -m`` with ``lint: false`` (no lint) and again with the default
   lint, the engine in-process (``migrations.run(session, "migrate", files)``), dbmate,
   sqitch and yoyo;
3. run each tool again with nothing pending on the applied database (the no-op run);
4. time ``ansible.builtin.ping`` the same way, before each module run and at the end, so
   the module's own time (module minus the best ping) can be told;
5. count what is in each database afterwards (tables, columns, indexes, rows, history
   rows) and compare it with what was generated;
6. print the table with the ratios to psql and write bench/out/migrate.json.

Entry: ``.venv/bin/python bench/migrate/run.py [--migrations 1000] [--runs 1]``.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.path.insert(0, BENCH)

import common  # noqa: E402
import psycopg2  # noqa: E402
from common import COLLECTIONS, OUR_VENV_BIN, OUT_DIR, REPO, ToolFailed, log  # noqa: E402

from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import migrations as mg  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg  # noqa: E402

NPM_PREFIX = os.path.join(BENCH, ".npm")
YOYO_VENV = os.path.join(BENCH, ".venv-yoyo")

MODULE = "dbarch.postgresql.migrate"
PSQL = "psql (floor)"
MOD_NOLINT = "migrate module, lint: false"
MOD_LINT = "migrate module, default lint (high)"
ENGINE = "migrate engine, in-process"
DBMATE = "dbmate"
SQITCH = "sqitch"
YOYO = "yoyo-migrations"
TOOLS = [PSQL, MOD_NOLINT, MOD_LINT, ENGINE, DBMATE, SQITCH, YOYO]

# Where each tool keeps its history (table, WHERE clause), to count what it recorded.
HISTORY = {
    MOD_NOLINT: ("public.flyway_schema_history", "success AND type = 'SQL'"),
    MOD_LINT: ("public.flyway_schema_history", "success AND type = 'SQL'"),
    ENGINE: ("public.flyway_schema_history", "success AND type = 'SQL'"),
    DBMATE: ("public.schema_migrations", "true"),
    SQITCH: ("sqitch.changes", "true"),
    YOYO: ("public._yoyo_migration", "true"),
}


# -- the migrations ------------------------------------------------------------------------------


def generate(count):
    """[(number, slug, sql)]: groups of four per table (create, add column, index, row)."""
    items = []
    for number in range(1, count + 1):
        table = "m%05d" % ((number - 1) // 4 + 1)
        kind = (number - 1) % 4
        if kind == 0:
            slug, sql = (
                "create_" + table,
                "CREATE TABLE %s (id integer PRIMARY KEY, label text NOT NULL);" % table,
            )
        elif kind == 1:
            slug, sql = "add_note_" + table, "ALTER TABLE %s ADD COLUMN note text;" % table
        elif kind == 2:
            slug, sql = "index_" + table, "CREATE INDEX %s_label_idx ON %s (label);" % (table, table)
        else:
            slug = "row_" + table
            sql = "INSERT INTO %s (id, label) VALUES (%d, 'migration %d');" % (table, number, number)
        items.append((number, slug, sql))
    return items


def expected_counts(items):
    kinds = [(number - 1) % 4 for number, _slug, _sql in items]
    return dict(
        tables=kinds.count(0),
        note_columns=kinds.count(1),
        label_indexes=kinds.count(2),
        rows=kinds.count(3),
        history=len(items),
    )


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def write_layouts(items, top):
    """Each tool's copy of the same SQL; returns the paths."""
    paths = dict(
        flyway=os.path.join(top, "flyway"),
        psql=os.path.join(top, "psql", "all.sql"),
        dbmate=os.path.join(top, "dbmate"),
        sqitch=os.path.join(top, "sqitch"),
        yoyo=os.path.join(top, "yoyo"),
    )
    script = []
    plan = ["%syntax-version=1.0.0", "%project=migbench", ""]
    for number, slug, sql in items:
        write(os.path.join(paths["flyway"], "V%d__%s.sql" % (number, slug)), sql + "\n")
        script.append("BEGIN;\n%s\nCOMMIT;\n" % sql)
        write(
            os.path.join(paths["dbmate"], "%06d_%s.sql" % (number, slug)),
            "-- migrate:up\n%s\n\n-- migrate:down\n" % sql,
        )
        change = "c%06d_%s" % (number, slug)
        # Sqitch leaves the transaction to the deploy script (its documented convention).
        write(os.path.join(paths["sqitch"], "deploy", change + ".sql"), "BEGIN;\n%s\nCOMMIT;\n" % sql)
        plan.append("%s 2026-01-01T00:00:00Z Bench <bench@example.invalid> # migration %d" % (change, number))
        write(os.path.join(paths["yoyo"], "%06d_%s.sql" % (number, slug)), sql + "\n")
    write(paths["psql"], "".join(script))
    write(os.path.join(paths["sqitch"], "sqitch.plan"), "\n".join(plan) + "\n")
    return paths


# -- the cluster --------------------------------------------------------------------------------------


class Cluster(common.ThrowawayCluster):
    """The benchmark's cluster; the password goes into dbmate's and yoyo's URLs."""

    def __init__(self, major):
        super().__init__(major, prefix="dbarch-migbench-")

    def url(self, dbname, scheme="postgres"):
        return "%s://postgres:%s@127.0.0.1:%d/%s" % (scheme, self.password, self.port, dbname)

    def create_db(self, dbname):
        conn = self.connect()
        with conn.cursor() as cur:
            cur.execute('CREATE DATABASE "%s"' % dbname)
        conn.close()

    def server_version(self):
        conn = psycopg2.connect(**self.kw())
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        conn.close()
        return version

    def psql(self):
        own = os.path.join(self.bindir, "psql")
        return own if os.path.exists(own) else shutil.which("psql")


def count_objects(cluster, dbname, tool):
    """What the database holds after a tool ran: our tables, columns, indexes, rows, history rows."""
    conn = psycopg2.connect(**cluster.kw(dbname))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname ~ '^m[0-9]{5}$'"
            )
            tables = [row[0] for row in cur.fetchall()]
            cur.execute(
                "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE c.relname ~ '^m[0-9]{5}$' AND a.attname = 'note' AND NOT a.attisdropped"
            )
            notes = cur.fetchone()[0]
            cur.execute(
                "SELECT count(*) FROM pg_class WHERE relkind = 'i' AND relname ~ '^m[0-9]{5}_label_idx$'"
            )
            indexes = cur.fetchone()[0]
            rows = 0
            for start in range(0, len(tables), 200):
                part = tables[start : start + 200]
                cur.execute(" + ".join("(SELECT count(*) FROM %s)" % t for t in part).join(["SELECT ", ""]))
                rows += cur.fetchone()[0]
            history = None
            if tool in HISTORY:
                table, where = HISTORY[tool]
                cur.execute("SELECT count(*) FROM %s WHERE %s" % (table, where))
                history = cur.fetchone()[0]
        return dict(tables=len(tables), note_columns=notes, label_indexes=indexes, rows=rows, history=history)
    finally:
        conn.close()


# -- running the tools ------------------------------------------------------------------------------


# Client CPU seconds (user + sys) of the last timed run: children for a command, this process for
# the in-process engine. Unlike wall time it hardly moves with the load of a shared machine; it
# leaves out the server's work, which is the same for every tool.
LAST_CPU = [None]


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv, env=None, cwd=None, ok=None):
    """common.timed that also leaves the run's client CPU seconds in LAST_CPU."""
    cpu0 = children_cpu()
    try:
        return common.timed(argv, env=env, cwd=cwd, ok=ok)
    finally:
        LAST_CPU[0] = children_cpu() - cpu0


# Environment of the tools under test: no stray ANSIBLE_*, PG* or SQITCH_* settings.
DROP_ENV = ("ANSIBLE_", "PG", "SQITCH_")


def base_env():
    return common.clean_env(DROP_ENV)


def ansible_env(password):
    return common.ansible_env(
        password,
        collections_path=COLLECTIONS,
        drop=DROP_ENV,
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",  # the repo's ansible.cfg asks for yaml
    )


def run_adhoc(module, args, password):
    # From the repository root, as a playbook project would run it: the action plugin reads
    # the files on this side and ships them with the task.
    seconds, proc = timed(
        common.adhoc_argv(module, args), env=ansible_env(password), cwd=REPO, ok=lambda p: True
    )
    return seconds, common.adhoc_result(module, proc)


class Runner:
    def __init__(self, cluster, paths):
        self.cluster = cluster
        self.paths = paths
        self.psql_bin = cluster.psql()
        self.dbmate_bin = self.find_dbmate()
        self.sqitch_bin = shutil.which("sqitch")
        self.yoyo_bin = os.path.join(YOYO_VENV, "bin", "yoyo")
        write(
            os.path.join(paths["sqitch"], "sqitch.conf"),
            '[core]\n\tengine = pg\n\tplan_file = sqitch.plan\n\ttop_dir = .\n[engine "pg"]\n\tclient = %s\n'
            % self.psql_bin,
        )
        self.files = []
        for name in sorted(os.listdir(paths["flyway"])):
            with open(os.path.join(paths["flyway"], name)) as handle:
                self.files.append((name, handle.read()))

    @staticmethod
    def find_dbmate():
        # The npm package ships the Go binary as an optional dependency (@dbmate/<os>-<arch>);
        # its bin/ wrapper is a node script that starts it. The binary is timed, not node.
        native = os.path.join(NPM_PREFIX, "node_modules", "@dbmate", "linux-x64", "bin", "dbmate")
        if os.path.exists(native):
            return native
        wrapper = os.path.join(NPM_PREFIX, "node_modules", ".bin", "dbmate")
        return wrapper if os.path.exists(wrapper) else None

    def module_args(self, dbname, lint):
        args = dict(
            path=self.paths["flyway"],
            login_host="127.0.0.1",
            login_port=self.cluster.port,
            login_user="postgres",
            login_db=dbname,
        )
        if not lint:
            # lint_fail_on=never still lints (it only never stops); lint: false does not lint at all.
            args["lint"] = False
        return args

    def run(self, tool, dbname):
        """Seconds one apply (or no-op run) took; raises ToolFailed."""
        c = self.cluster
        env = base_env()
        if tool == PSQL:
            env["PGPASSWORD"] = c.password
            argv = [self.psql_bin, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(c.port)]
            return timed(argv + ["-U", "postgres", "-d", dbname, "-f", self.paths["psql"]], env=env)[0]
        if tool in (MOD_NOLINT, MOD_LINT):
            seconds, result = run_adhoc(MODULE, self.module_args(dbname, tool == MOD_LINT), c.password)
            log(
                "  %s: %d applied, current version %s"
                % (tool, len(result["applied"]), result["current_version"])
            )
            return seconds
        if tool == ENGINE:
            params = dict(
                login_host="127.0.0.1",
                login_port=c.port,
                login_user="postgres",
                login_password=c.password,
                login_db=dbname,
                lock_timeout="5s",
            )
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            session = pg.connect(params, "migrate_bench")
            try:
                mg.run(session, "migrate", self.files)
            except (mg.MigrationError, pg.PgError) as exc:
                raise ToolFailed("engine: %s" % exc) from None
            finally:
                session.close()
            seconds = time.perf_counter() - t0
            LAST_CPU[0] = time.process_time() - cpu0
            return seconds
        if tool == DBMATE:
            if not self.dbmate_bin:
                raise ToolFailed("dbmate is not installed: npm install --prefix bench/.npm dbmate")
            url = c.url(dbname) + "?sslmode=disable"
            argv = [
                self.dbmate_bin,
                "--url",
                url,
                "--migrations-dir",
                self.paths["dbmate"],
                "--no-dump-schema",
            ]
            return timed(argv + ["migrate"], env=env)[0]
        if tool == SQITCH:
            if not self.sqitch_bin:
                raise ToolFailed("sqitch is not installed: apt-get install -y sqitch libdbd-pg-perl")
            env.update(
                SQITCH_FULLNAME="Bench",
                SQITCH_EMAIL="bench@example.invalid",
                SQITCH_USER_CONFIG=os.devnull,
                SQITCH_SYSTEM_CONFIG=os.devnull,
                SQITCH_PASSWORD=c.password,
            )
            target = "db:pg://postgres@127.0.0.1:%d/%s" % (c.port, dbname)
            argv = [self.sqitch_bin, "--quiet", "deploy", "--target", target]
            return timed(argv, env=env, cwd=self.paths["sqitch"])[0]
        if tool == YOYO:
            if not os.path.exists(self.yoyo_bin):
                raise ToolFailed("yoyo is not installed in %s" % os.path.relpath(YOYO_VENV, REPO))
            url = c.url(dbname, scheme="postgresql")
            argv = [
                self.yoyo_bin,
                "apply",
                "--batch",
                "--no-config-file",
                "--database",
                url,
                self.paths["yoyo"],
            ]
            return timed(argv, env=env)[0]
        raise ValueError(tool)


def tool_versions(runner):
    def out(argv):
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        except OSError as exc:
            return "n/a (%s)" % exc
        return common.first_line(proc.stdout or proc.stderr)

    versions = dict(psql=out([runner.psql_bin, "--version"]))
    versions["dbmate"] = out([runner.dbmate_bin, "--version"]) if runner.dbmate_bin else "not installed"
    versions["sqitch"] = out([runner.sqitch_bin, "--version"]) if runner.sqitch_bin else "not installed"
    if os.path.exists(runner.yoyo_bin):
        python = os.path.join(YOYO_VENV, "bin", "python")
        versions["yoyo-migrations"] = out(
            [python, "-c", "import importlib.metadata as m; print(m.version('yoyo-migrations'))"]
        )
    else:
        versions["yoyo-migrations"] = "not installed"
    versions["ansible-core"] = out([os.path.join(OUR_VENV_BIN, "ansible"), "--version"]).split("\n")[0]
    return versions


# -- output --------------------------------------------------------------------------------------


def ratio(value, floor):
    return "%.2fx" % (value / floor) if value is not None and floor else "n/a"


def seconds_text(value):
    return "%.3f" % value if value is not None else "n/a"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--migrations", type=int, default=1000, help="how many migrations (default 1000)")
    ap.add_argument(
        "--runs", type=int, default=1, help="applies per tool, each on a fresh database; best counts"
    )
    ap.add_argument(
        "--noop-runs", type=int, default=3, help="no-op runs per tool and ansible ping runs; best counts"
    )
    ap.add_argument("--version", type=int, default=15, help="PostgreSQL major of the throwaway cluster")
    ap.add_argument("--keep", action="store_true", help="leave the throwaway cluster and files in place")
    ap.add_argument("--out", default=os.path.join(OUT_DIR, "migrate.json"))
    ap.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help="comma-separated subset of the tools to run (psql, the floor, always runs); "
        "e.g. 'module,engine' for the migrate lines only",
    )
    opts = ap.parse_args(argv)
    wanted = [w.strip().lower() for w in opts.tools.split(",") if w.strip()]
    opts.tools = set([PSQL] + [t for t in TOOLS if any(w in t.lower() for w in wanted)])
    if min(opts.migrations, opts.runs, opts.noop_runs) < 1:
        ap.error("--migrations, --runs and --noop-runs must be at least 1")

    started = time.monotonic()
    items = generate(opts.migrations)
    expected = expected_counts(items)
    top = tempfile.mkdtemp(prefix="migbench-files-")
    paths = write_layouts(items, top)
    cluster = Cluster(opts.version)
    results = dict(
        (tool, dict(apply=[], noop=[], apply_cpu=[], noop_cpu=[], error=None, check=None, database=None))
        for tool in TOOLS
    )
    for tool in TOOLS:
        if tool not in opts.tools:
            results[tool]["error"] = "not selected (--tools)"
    try:
        server_version = cluster.server_version()
        runner = Runner(cluster, paths)
        versions = tool_versions(runner)
        ping = []

        ping_cpu = []

        def ping_once():
            ping.append(run_adhoc("ansible.builtin.ping", None, cluster.password)[0])
            ping_cpu.append(LAST_CPU[0])

        # Round-robin: every tool once per round, so that each round sees the same load on a shared
        # machine (one tool's runs all in a row can land in a busy minute another tool missed).
        selected = [t for t in TOOLS if t in opts.tools]
        for run in range(opts.runs):
            for tool in selected:
                res = results[tool]
                if res["error"]:
                    continue
                dbname = "mb_%s_%d" % (TOOLS.index(tool), run + 1)
                cluster.create_db(dbname)
                if tool in (MOD_NOLINT, MOD_LINT):
                    ping_once()  # next to each module run: the machine's load drifts
                log(
                    "%s: apply %d migrations to %s (run %d/%d)"
                    % (tool, opts.migrations, dbname, run + 1, opts.runs)
                )
                try:
                    res["apply"].append(runner.run(tool, dbname))
                    res["apply_cpu"].append(LAST_CPU[0])
                except ToolFailed as exc:
                    res["error"] = str(exc)
                    res["database"] = None
                    log("  FAILED: %s" % exc)
                    continue
                res["database"] = dbname
        for tool in selected:
            res = results[tool]
            if res["database"] is not None:
                res["check"] = count_objects(cluster, res["database"], tool)
        # psql keeps no history: a second run would apply everything again.
        noop_tools = [t for t in selected if t != PSQL and results[t]["database"] is not None]
        for _run in range(opts.noop_runs):
            for tool in noop_tools:
                res = results[tool]
                if res.get("noop_error"):
                    continue
                log("%s: no-op run on %s" % (tool, res["database"]))
                try:
                    if tool in (MOD_NOLINT, MOD_LINT):
                        ping_once()
                    res["noop"].append(runner.run(tool, res["database"]))
                    res["noop_cpu"].append(LAST_CPU[0])
                except ToolFailed as exc:
                    res["noop_error"] = str(exc)
                    log("  no-op FAILED: %s" % exc)
        log("baseline: ansible.builtin.ping x%d (plus one before each module run)" % opts.noop_runs)
        for _run in range(opts.noop_runs):
            ping_once()
        # A psql session that only connects and reads one row: the fixed cost of a client.
        psql_select = []
        for _run in range(opts.noop_runs):
            env = base_env()
            env["PGPASSWORD"] = cluster.password
            psql_select.append(
                timed(
                    [
                        runner.psql_bin,
                        "-X",
                        "-q",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(cluster.port),
                        "-U",
                        "postgres",
                    ]
                    + ["-d", results[PSQL]["database"] or "postgres", "-c", "SELECT 1"],
                    env=env,
                )[0]
            )
    finally:
        cluster.close(opts.keep)
        if not opts.keep:
            shutil.rmtree(top, ignore_errors=True)

    best = dict((t, min(r["apply"]) if r["apply"] and not r["error"] else None) for t, r in results.items())
    noop = dict((t, min(r["noop"]) if r["noop"] else None) for t, r in results.items())
    floor = best[PSQL]
    ping_best = min(ping)

    print(
        "Migration benchmark: PostgreSQL %s, %d migrations (%d tables, %d columns, %d indexes, %d rows), "
        "best of %d apply run(s) (a fresh database each) and %d no-op run(s)"
        % (
            server_version,
            opts.migrations,
            expected["tables"],
            expected["note_columns"],
            expected["label_indexes"],
            expected["rows"],
            opts.runs,
            opts.noop_runs,
        )
    )
    print()
    print("%-38s %9s %9s %11s %9s" % ("tool", "apply s", "/ psql", "no-op s", "/ psql"))
    print("%-38s %9s %9s %11s %9s" % ("-" * 38, "-" * 9, "-" * 9, "-" * 11, "-" * 9))
    for tool in TOOLS:
        label = tool if tool != PSQL else "psql (floor, no history)"
        noop_text = "n/a" if tool == PSQL else seconds_text(noop[tool])
        print(
            "%-38s %9s %9s %11s %9s"
            % (label, seconds_text(best[tool]), ratio(best[tool], floor), noop_text, ratio(noop[tool], floor))
        )
    print(
        "%-38s %9s %9s" % ("baseline: ansible.builtin.ping", seconds_text(ping_best), ratio(ping_best, floor))
    )
    print("%-38s %9s %9s" % ("baseline: psql -c 'SELECT 1'", seconds_text(min(psql_select)), ""))
    print()
    own = {}
    for tool in (MOD_NOLINT, MOD_LINT):
        own[tool] = dict(
            apply=best[tool] - ping_best if best[tool] is not None else None,
            noop=noop[tool] - ping_best if noop[tool] is not None else None,
        )
        print(
            "module's own time (%s; ping subtracted): apply %s s (%s psql), no-op %s s"
            % (
                tool.split(", ")[1],
                seconds_text(own[tool]["apply"]),
                ratio(own[tool]["apply"], floor),
                seconds_text(own[tool]["noop"]),
            )
        )
    if best[MOD_LINT] is not None and best[MOD_NOLINT] is not None:
        print("cost of the default lint on apply: %+.3f s" % (best[MOD_LINT] - best[MOD_NOLINT]))
    if best[ENGINE] is not None:
        for tool in (MOD_NOLINT, MOD_LINT):
            if best[tool] is not None:
                print(
                    "module / engine (%s): apply %.2fx, own time (ping subtracted) %.2fx"
                    % (tool.split(", ")[1], best[tool] / best[ENGINE], own[tool]["apply"] / best[ENGINE])
                )
    cpu_best = dict(
        (
            t,
            dict(
                apply=min(r["apply_cpu"]) if r["apply_cpu"] else None,
                noop=min(r["noop_cpu"]) if r["noop_cpu"] else None,
            ),
        )
        for t, r in results.items()
    )
    print()
    print("Client CPU seconds (user + sys, best; the server's work is left out, the same for every tool):")
    print("  ansible.builtin.ping: %s" % seconds_text(min(ping_cpu) if ping_cpu else None))
    for tool in (PSQL, MOD_NOLINT, MOD_LINT, ENGINE):
        if cpu_best[tool]["apply"] is not None:
            print(
                "  %-36s apply %s, no-op %s"
                % (tool, seconds_text(cpu_best[tool]["apply"]), seconds_text(cpu_best[tool]["noop"]))
            )
    print()
    print(
        "Check (tables / note columns / indexes / rows / history rows; expected %s):"
        % ("%(tables)d / %(note_columns)d / %(label_indexes)d / %(rows)d / %(history)d" % expected)
    )
    failed_checks = 0
    for tool in TOOLS:
        res = results[tool]
        if res["check"] is None:
            print("  %-36s NOT RUN: %s" % (tool, res["error"]))
            continue
        got = res["check"]
        keys = ["tables", "note_columns", "label_indexes", "rows"] + (["history"] if tool in HISTORY else [])
        good = all(got[k] == expected[k] for k in keys)
        failed_checks += 0 if good else 1
        print(
            "  %-36s %s / %s / %s / %s / %s  %s%s"
            % (
                tool,
                got["tables"],
                got["note_columns"],
                got["label_indexes"],
                got["rows"],
                "-" if got["history"] is None else got["history"],
                "ok" if good else "MISMATCH",
                "" if not res.get("noop_error") else "  (no-op run failed: %s)" % res["noop_error"],
            )
        )
    print()
    print("Notes: psql is the floor: one session, BEGIN/COMMIT around each file, no history table, so it")
    print("  cannot tell what is applied and has no no-op run. Every no-op ratio is to psql's apply time.")
    print("  The module lines include ansible's start (see the ping baseline). dbmate is its Go binary")
    print("  from the npm package @dbmate/linux-x64; sqitch runs one psql process per change.")
    elapsed = time.monotonic() - started
    print("  versions: %s" % "; ".join("%s %s" % kv for kv in sorted(versions.items())))
    print("  elapsed %.0fs" % elapsed)

    doc = dict(
        benchmark="migrate",
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        machine=dict(platform=platform.platform(), python=platform.python_version(), cpus=os.cpu_count()),
        server_version=server_version,
        migrations=opts.migrations,
        runs=opts.runs,
        noop_runs=opts.noop_runs,
        expected=expected,
        versions=versions,
        tools=results,
        best_apply=best,
        best_noop=noop,
        floor_psql_apply=floor,
        ratios_apply=dict((t, best[t] / floor if best[t] and floor else None) for t in TOOLS),
        ratios_noop=dict((t, noop[t] / floor if noop[t] and floor else None) for t in TOOLS),
        baseline_ping=dict(times=ping, best=ping_best, cpu=ping_cpu),
        client_cpu_best=cpu_best,
        baseline_psql_select1=dict(times=psql_select, best=min(psql_select)),
        module_own_time=own,
        elapsed_seconds=elapsed,
    )
    os.makedirs(os.path.dirname(os.path.abspath(opts.out)), exist_ok=True)
    with open(opts.out, "w") as handle:
        json.dump(doc, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    out = os.path.abspath(opts.out)
    print("  results: %s" % (os.path.relpath(out, REPO) if out.startswith(REPO + os.sep) else out))
    return 1 if failed_checks else 0


if __name__ == "__main__":
    sys.exit(main())
