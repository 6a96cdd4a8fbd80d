# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schema review benchmark: dbarch's schema review against schemalint (npm), in one run.

1. start a throwaway cluster and load the bench/catalog schema (its own code, imported),
   then plant a known number of defects (bench/schema_review/defects.py);
2. time, best of ``--runs``: the engine (``catalog.snapshot`` + ``schema_rules.review``
   in this process), the module (``ansible localhost -m dbarch.postgresql.schema_review``
   from the repo root) and ``schemalint`` (node, from bench/.npm) with a generated config
   that enables its rules that overlap ours;
3. compare the findings of the shared rules one by one, print the table, the ratios and
   the comparison, and write bench/out/schema_review.json.

Entry: ``.venv/bin/python bench/schema_review/run.py [--tables 5000] [--version 15]``.
"""

import argparse
import collections
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
REPO = os.path.dirname(BENCH)
NPM_PREFIX = os.path.join(BENCH, ".npm")
SCHEMALINT_DIR = os.path.join(NPM_PREFIX, "node_modules", "schemalint")
OUT_DIR = os.path.join(BENCH, "out")


def _load_catalog_bench():
    """bench/catalog/run.py as a module (its generator, cluster setup and ansible helpers)."""
    spec = importlib.util.spec_from_file_location(
        "catalog_bench_run", os.path.join(BENCH, "catalog", "run.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cb = _load_catalog_bench()  # puts bench/ (common), .collections and bench/catalog on sys.path
sys.path.insert(0, HERE)

import common  # noqa: E402
import defects  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import catalog, pg  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import schema_rules  # noqa: E402

OUR_MODULE = "dbarch.postgresql.schema_review"

# schemalint rule -> our rule id (read in bench/.npm/node_modules/schemalint/build/rules/*.js and
# plugins/module_utils/schema/schema_rules.py). schemalint's reference-actions, name-inflection,
# mandatory-columns, row-level-security and prefer-text-with-check-to-enum have no counterpart.
SHARED = collections.OrderedDict(
    [
        ("prefer-jsonb-to-json", "SR-TYPE-005"),
        ("prefer-text-to-varchar", "SR-TYPE-006"),
        ("prefer-timestamptz-to-timestamp", "SR-TYPE-001"),
        ("prefer-identity-to-serial", "SR-TYPE-004"),
        ("require-primary-key", "SR-KEY-001"),
        ("index-referencing-column", "SR-KEY-002"),
        ("name-casing", "SR-NAME-001"),
    ]
)
SCHEMALINT_RULES = {rule: ["error"] for rule in SHARED}
SCHEMALINT_RULES["name-casing"] = ["error", "snake"]

# Why the two sides differ, per rule and side, from reading both sources; the run prints
# the line next to the differences it actually found (with the column type / object kind).
EXPLAIN = {
    ("SR-TYPE-006", "theirs"): "schemalint flags every varchar (also without a length); "
    "ours flags only varchar(n) outside arrays. Arrays: see the detail",
    (
        "SR-TYPE-006",
        "ours",
    ): "ours reads the type text, schemalint compares type.fullName to pg_catalog.varchar",
    ("SR-TYPE-001", "ours"): "ours strips [] and flags timestamp[] too; schemalint sees an array type "
    "(not pg_catalog.timestamp)",
    ("SR-TYPE-001", "theirs"): "schemalint matched a type ours did not",
    ("SR-TYPE-005", "ours"): "ours strips [] (json[]); schemalint compares the exact type",
    ("SR-TYPE-005", "theirs"): "schemalint matched a type ours did not",
    ("SR-TYPE-004", "ours"): "ours uses the nextval() default or the declared serial type",
    ("SR-TYPE-004", "theirs"): "schemalint flags any non-identity column whose default contains nextval",
    ("SR-KEY-001", "ours"): "ours reviews every table kind (partitioned too)",
    ("SR-KEY-001", "theirs"): "schemalint matched a table ours did not",
    ("SR-KEY-002", "ours"): "ours needs a valid, non-partial btree index whose leading columns are exactly "
    "the FK columns; schemalint accepts any index led by any one FK column (partial too)",
    ("SR-KEY-002", "theirs"): "schemalint found no index led by an FK column where ours found one",
    ("SR-NAME-001", "ours"): "ours also checks index and constraint names (and any name outside "
    "[a-z][a-z0-9_]*); schemalint checks table, view and column names only",
    ("SR-NAME-001", "theirs"): "schemalint's detectCasing flagged a name our pattern accepts",
}


log = common.log


# -- the three tools -------------------------------------------------------------------------------


def time_engine(target, schemas, runs):
    params = dict(
        login_host=target.tool["host"],
        login_port=int(target.tool["port"]),
        login_user=target.tool["user"],
        login_password=target.tool.get("password"),
        login_db=target.tool["dbname"],
    )
    session = pg.connect(params, "schema_review_bench")
    times, snap_times, cat, found = [], [], None, None
    try:
        for _run in range(runs):
            t0 = time.perf_counter()
            # column_stats=False, as the module does for a live review
            cat = catalog.snapshot(session, schemas=schemas, column_stats=False)
            t1 = time.perf_counter()
            found, summary = schema_rules.review(cat)
            t2 = time.perf_counter()
            times.append(t2 - t0)
            snap_times.append(t1 - t0)
    finally:
        session.close()
    return (
        dict(
            times=times,
            best=min(times),
            snapshot_times=snap_times,
            review_times=[a - b for a, b in zip(times, snap_times)],  # noqa: B905
            findings=len(found),
            counts=summary["counts"],
        ),
        cat,
        [f.to_dict() for f in found],
    )


def time_module(target, schemas, runs):
    args = dict(target.module_args(), schemas=schemas)
    env = cb.ansible_env(target.tool.get("password"))  # from the repo root: ansible.cfg applies
    # ...except its callback_result_format = yaml: the result is parsed as JSON, as in bench/catalog
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    timing, result = cb.time_module(cb.OUR_VENV_BIN, OUR_MODULE, args, env, None, runs, REPO)
    ping, _r = cb.time_module(cb.OUR_VENV_BIN, "ansible.builtin.ping", None, env, None, runs, REPO)
    timing["findings"] = len(result["findings"])
    return timing, result["findings"], ping


def ensure_schemalint():
    cli = os.path.join(SCHEMALINT_DIR, "bin", "schemalint")
    if not os.path.exists(cli):
        log("installing schemalint: npm install --prefix bench/.npm schemalint")
        subprocess.run(["npm", "install", "--prefix", NPM_PREFIX, "schemalint"], check=True)
    with open(os.path.join(SCHEMALINT_DIR, "package.json")) as handle:
        version = json.load(handle)["version"]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return cli, version, node


def schemalint_config(target, schemas):
    tool = target.tool
    config = dict(
        connection=dict(
            host=tool["host"],
            port=int(tool["port"]),
            user=tool["user"],
            password=tool.get("password") or "",
            database=tool["dbname"],
        ),
        schemas=[dict(name=s) for s in schemas],
        rules=SCHEMALINT_RULES,
    )
    return "// generated by bench/schema_review/run.py\nmodule.exports = %s;\n" % json.dumps(config, indent=2)


_LINE = re.compile(r"^(?P<identifier>\S+): error (?P<rule>\S+) : (?P<message>.*)$")


def time_schemalint(cli, target, schemas, runs):
    workdir = tempfile.mkdtemp(prefix="schemalint-bench-")
    try:
        path = os.path.join(workdir, ".schemalintrc.js")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as handle:
            handle.write(schemalint_config(target, schemas))
        env = dict(os.environ, FORCE_COLOR="0", NO_COLOR="1")
        times, found = [], None
        for _run in range(runs):
            t0 = time.perf_counter()
            proc = subprocess.run(
                ["node", cli, "-c", ".schemalintrc.js"],
                check=False,
                capture_output=True,
                text=True,
                cwd=workdir,
                env=env,
            )
            times.append(time.perf_counter() - t0)
            found = [m.groupdict() for m in map(_LINE.match, proc.stderr.splitlines()) if m]
            if proc.returncode not in (0, 1) or (proc.returncode == 1 and not found):
                # A failure is a result too: say what it was and how long it took to come.
                lines = [x for x in proc.stderr.splitlines() if x.strip()]
                error = next((x for x in lines if "Error" in x), lines[0] if lines else "no output")
                log("schemalint failed after %.1fs (exit %d): %s" % (times[-1], proc.returncode, error))
                return dict(
                    times=times, best=None, failed=error.strip(), exit=proc.returncode, findings=0
                ), []
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return dict(times=times, best=min(times), findings=len(found)), found


# -- comparing findings ----------------------------------------------------------------------------


def our_key(f):
    if f["rule"] == "SR-KEY-002":  # schemalint names the FK constraint: schema.table.constraint
        schema, table = f["object"].split(".")[:2]
        return "%s.%s.%s" % (schema, table, f["evidence"]["constraint"])
    return f["object"]


def detail(cat, rule_id, key, ours):
    """What the object is, from the snapshot, to show next to a difference."""
    parts = key.split(".", 2)
    table = cat.get(parts[0], parts[1]) if len(parts) >= 2 else None
    if rule_id == "SR-NAME-001":
        return "kind %s" % ours.get(key, {}).get("evidence", {}).get("kind", "table/column")
    if table is None:
        return "not a table in the snapshot"
    if len(parts) == 2:
        return "table (kind %s)" % table.kind
    if rule_id == "SR-KEY-002":
        fk = [c for c in table.foreign_keys if c.name == parts[2]]
        idx = ["(%s)%s" % (", ".join(i.columns), " WHERE ..." if i.predicate else "") for i in table.indexes]
        return "FK (%s); indexes %s" % (", ".join(fk[0].columns) if fk else "?", ", ".join(idx) or "none")
    col = table.column(parts[2])
    return "type %s" % (col.type if col is not None else "?")


def compare(cat, ours_all, theirs_all, examples=3):
    out = collections.OrderedDict()
    for their_rule, our_rule in SHARED.items():
        ours = dict((our_key(f), f) for f in ours_all if f["rule"] == our_rule)
        theirs = {f["identifier"] for f in theirs_all if f["rule"] == their_rule}
        both = set(ours) & theirs
        entry = dict(ours_rule=our_rule, ours=len(ours), theirs=len(theirs), both=len(both))
        for side, keys in (("ours", set(ours) - theirs), ("theirs", theirs - set(ours))):
            groups = collections.OrderedDict()
            for key in sorted(keys):
                groups.setdefault(detail(cat, our_rule, key, ours), []).append(key)
            entry["%s_only" % side] = len(keys)
            entry["%s_only_by_detail" % side] = dict(
                (d, dict(count=len(k), examples=k[:examples])) for d, k in groups.items()
            )
            if keys:
                entry["%s_only_why" % side] = EXPLAIN.get((our_rule, side), "")
        out[their_rule] = entry
    return out


# -- output -------------------------------------------------------------------------------------------


def print_report(rows, ratios, comparison, planted):
    print()
    print("%-52s %9s %9s" % ("tool", "seconds", "findings"))
    print("%-52s %9s %9s" % ("-" * 52, "-" * 9, "-" * 9))
    for name, seconds, count in rows:
        print("%-52s %9.3f %9s" % (name, seconds, count))
    print()
    for name, value in ratios:
        print("%-52s %9s" % (name, "%.2fx" % value))
    print()
    print("Planted defects (tables): %s" % ", ".join("%s=%d" % (k, len(v)) for k, v in planted.items()))
    if comparison is None:
        return
    print()
    print("Shared rules, finding by finding (key: schema.table[.column|.fk_constraint])")
    print(
        "%-33s %-12s %7s %7s %7s %10s %12s"
        % ("schemalint rule", "ours", "ours#", "theirs#", "both", "ours only", "theirs only")
    )
    for rule, e in comparison.items():
        print(
            "%-33s %-12s %7d %7d %7d %10d %12d"
            % (rule, e["ours_rule"], e["ours"], e["theirs"], e["both"], e["ours_only"], e["theirs_only"])
        )
    for rule, e in comparison.items():
        for side in ("ours", "theirs"):
            if not e["%s_only" % side]:
                continue
            print()
            print(
                "%s / %s: %d in %s only; %s"
                % (rule, e["ours_rule"], e["%s_only" % side], side, e["%s_only_why" % side])
            )
            for d, g in e["%s_only_by_detail" % side].items():
                print("    %5d  %-44s e.g. %s" % (g["count"], d, ", ".join(g["examples"])))
    print()


def measure(target, shape, opts, cli, schemalint_version):
    """Load ``shape`` (once), plant the defects, run the three tools on it. One dict back."""
    load_seconds = cb.prepare_schema(target, shape)
    conn = target.connect_admin()
    try:
        plant_seconds, planted = defects.plant(conn, shape)
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('server_version')")
            server_version = cur.fetchone()[0]
    finally:
        conn.close()
    log("defects %s" % ("already planted" if plant_seconds is None else "planted in %.1fs" % plant_seconds))
    log("%d tables: engine: catalog.snapshot() + schema_rules.review() x%d" % (shape.table_count, opts.runs))
    engine, cat, ours = time_engine(target, shape.schemas, opts.runs)
    log("%d tables: module: %s x%d (+ ping baseline)" % (shape.table_count, OUR_MODULE, opts.runs))
    module, module_findings, ping = time_module(target, shape.schemas, opts.runs)
    log("%d tables: schemalint %s x%d" % (shape.table_count, schemalint_version, opts.runs))
    lint, theirs = time_schemalint(cli, target, shape.schemas, opts.runs)
    same = sorted((f["rule"], f["object"]) for f in ours) == sorted(
        (f["rule"], f["object"]) for f in module_findings
    )
    return dict(
        shape=shape,
        server_version=server_version,
        load_seconds=load_seconds,
        plant_seconds=plant_seconds,
        planted=planted,
        engine=engine,
        cat=cat,
        ours=ours,
        module=module,
        same=same,
        ping=ping,
        lint=lint,
        theirs=theirs,
    )


def report(m, opts, schemalint_version, node_version):
    """Print one size's table, ratios and comparison; return its JSON document."""
    shape, engine, module, ping, lint, ours = (
        m["shape"],
        m["engine"],
        m["module"],
        m["ping"],
        m["lint"],
        m["ours"],
    )
    shared_ours = sum(1 for f in ours if f["rule"] in SHARED.values())
    failed = lint.get("failed")
    lint_name = "schemalint %s (node %s, 7 shared rules)" % (schemalint_version, node_version)
    rows = [
        ("dbarch snapshot + schema_rules.review (engine)", engine["best"], engine["findings"]),
        ("  of which catalog.snapshot()", min(engine["snapshot_times"]), ""),
        ("  of which schema_rules.review()", min(engine["review_times"]), ""),
        ("%s (ansible ad-hoc)" % OUR_MODULE, module["best"], module["findings"]),
        ("baseline: ansible.builtin.ping, repo .venv", ping["best"], ""),
        (lint_name, min(lint["times"]), "FAILED" if failed else lint["findings"]),
        ("dbarch, the same 7 rules only (from the engine's run)", engine["best"], shared_ours),
    ]
    ratios = []
    if not failed:
        ratios = [
            ("ratio schemalint / our engine (seconds)", lint["best"] / engine["best"]),
            ("ratio schemalint / our module (seconds)", lint["best"] / module["best"]),
            (
                "ratio schemalint / our module - ping (seconds)",
                lint["best"] / max(module["best"] - ping["best"], 1e-9),
            ),
        ]
    print()
    print(
        "== %d tables in %d schemas%s; best of %d runs; ours runs all %d rules, schemalint the 7 it "
        "shares with ours"
        % (
            shape.table_count,
            len(shape.schemas),
            "" if m["load_seconds"] is None else ", loaded in %.1fs" % m["load_seconds"],
            opts.runs,
            len(schema_rules.RULES),
        )
    )
    comparison = None if failed else compare(m["cat"], ours, m["theirs"])
    print_report(rows, ratios, comparison, m["planted"])
    if failed:
        print(
            "  schemalint did not finish: %s (after %.1fs; it extracts every table at once through a "
            "pool of 10 connections and gives up on the queued ones)" % (failed, min(lint["times"]))
        )
    print("  engine and module findings identical (rule, object): %s" % m["same"])
    print("  our findings by rule: %s" % dict(collections.Counter(f["rule"] for f in ours)))
    return dict(
        shape=shape.counts(),
        load_seconds=m["load_seconds"],
        plant_seconds=m["plant_seconds"],
        planted=dict((k, len(v)) for k, v in m["planted"].items()),
        engine=engine,
        our_module=dict(module, module=OUR_MODULE, same_findings_as_engine=m["same"]),
        baseline_ping=ping,
        schemalint=dict(lint, version=schemalint_version, node=node_version, rules=SCHEMALINT_RULES),
        our_findings_by_rule=dict(collections.Counter(f["rule"] for f in ours)),
        schemalint_findings_by_rule=dict(collections.Counter(f["rule"] for f in m["theirs"])),
        ratios=dict(ratios),
        comparison=comparison,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument("--tables", type=int, default=cb.gen.DEFAULT_TABLES)
    ap.add_argument("--schemas", type=int, default=cb.gen.DEFAULT_SCHEMAS)
    ap.add_argument("--prefix", default="cat", help="schema name prefix (default cat -> cat_s0, ...)")
    ap.add_argument(
        "--peer-tables",
        default="500,250",
        help="when schemalint fails at --tables, measure again at these sizes in turn (comma-separated, "
        "largest first) until it finishes, in the same run and cluster (schemas sub<N>_s0, ...)",
    )
    ap.add_argument("--version", type=int, default=15, help="PostgreSQL major of the throwaway cluster")
    ap.add_argument("--dsn", help="use this database, not a throwaway cluster (defects get planted in it)")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool; the best one counts")
    ap.add_argument("--keep", action="store_true", help="leave the throwaway cluster in place")
    ap.add_argument("--out", default=os.path.join(OUT_DIR, "schema_review.json"))
    opts = ap.parse_args(argv)

    started = time.monotonic()
    shape = cb.gen.generate(opts.tables, opts.schemas, opts.prefix)
    cli, schemalint_version, node_version = ensure_schemalint()
    target = cb.dsn_target(opts.dsn) if opts.dsn else cb.start_cluster(opts.version)
    measured = []
    try:
        measured.append(measure(target, shape, opts, cli, schemalint_version))
        for size in [int(x) for x in str(opts.peer_tables).split(",") if x.strip()]:
            if not measured[-1]["lint"].get("failed") or not 0 < size < measured[-1]["shape"].table_count:
                break
            small = cb.gen.generate(size, opts.schemas, "sub%d" % size)
            log(
                "schemalint failed at %d tables: measuring both again at %d"
                % (measured[-1]["shape"].table_count, size)
            )
            measured.append(measure(target, small, opts, cli, schemalint_version))
    finally:
        target.close(opts.keep)

    print(
        "Schema review benchmark: PostgreSQL %s, %s"
        % (measured[0]["server_version"], "target: throwaway cluster" if not opts.dsn else "target: --dsn")
    )
    sizes = [report(m, opts, schemalint_version, node_version) for m in measured]
    print()
    print("  elapsed %.0fs" % (time.monotonic() - started))
    doc = dict(
        benchmark="schema_review",
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        machine=dict(platform=platform.platform(), python=platform.python_version(), cpus=os.cpu_count()),
        server_version=measured[0]["server_version"],
        target="throwaway cluster" if not opts.dsn else "--dsn",
        runs=opts.runs,
        shared_rules=dict(SHARED),
        sizes=sizes,
        elapsed_seconds=time.monotonic() - started,
    )
    os.makedirs(os.path.dirname(os.path.abspath(opts.out)), exist_ok=True)
    with open(opts.out, "w") as handle:
        json.dump(doc, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
    print("  results: %s" % os.path.relpath(os.path.abspath(opts.out), REPO))
    return 0 if all(m["same"] for m in measured) else 1


if __name__ == "__main__":
    sys.exit(main())
