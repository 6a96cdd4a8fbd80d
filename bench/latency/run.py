# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How far the collection's p95 estimate (pg_stat_statements' per-statement calls, mean, stddev,
min and max, combined: plugins/module_utils/health/latency.py for health_info and diagnose_info, the
same model in SQL in the monitoring role's exporter query pg_statements) is from the true p95.

One throwaway cluster with pg_stat_statements. For each workload: pg_stat_statements_reset(),
pgbench runs scripts whose latencies follow known distributions (pg_sleep of a random duration
drawn by pgbench: exponential, gaussian, uniform, weighted with script@weight) with ``-l`` (one
line per transaction, its latency in microseconds: the truth) and ``--latency-limit`` (pgbench's
own count of transactions over the limit); then the estimate is read from pg_stat_statements
and compared with the p95 of the log, and the share of transactions over the limit with the
estimate's distribution at the limit. The exporter's SQL (read from roles/monitoring/files/queries.yaml)
runs on the same snapshot (both readers connect with pg_stat_statements.track = none).

    .venv/bin/python bench/latency/run.py [--version 15] [--seconds 20] [--clients 4]

Prints a table; writes bench/out/latency.json. Not run by CI.
"""

import argparse
import glob
import math
import os
import re
import subprocess
import sys
import tempfile

import yaml

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)
import common  # noqa: E402

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg  # noqa: E402
from ansible_collections.dbarch.postgresql.plugins.module_utils.health import latency  # noqa: E402

# name -> [(script text, weight)]; times in ms, slept with pg_sleep. The statements of one workload
# differ in their target list: pg_stat_statements ignores column aliases, so statements that differ
# only in an alias would be one entry (with one mean and stddev for all of them).
WORKLOADS = {
    "one exponential statement": [
        ("\\set d random_exponential(1, 200, 5.0)\nSELECT pg_sleep(:d / 1000.0);\n", 1),
    ],
    "three statements 85/12/3": [
        ("\\set d random(1, 5)\nSELECT pg_sleep(:d / 1000.0);\n", 85),
        ("\\set d random_gaussian(20, 80, 3.0)\nSELECT pg_sleep(:d / 1000.0), 1;\n", 12),
        ("\\set d random(150, 400)\nSELECT pg_sleep(:d / 1000.0), 1, 2;\n", 3),
    ],
    "two statements 90/10": [
        ("\\set d random_exponential(1, 30, 3.0)\nSELECT pg_sleep(:d / 1000.0);\n", 90),
        ("\\set d random_gaussian(50, 150, 2.0)\nSELECT pg_sleep(:d / 1000.0), 1;\n", 10),
    ],
}
LATENCY_LIMIT_MS = 100.0
QUERIES = os.path.join(os.path.dirname(BENCH), "roles", "monitoring", "files", "queries.yaml")
QUIET = {"pg_stat_statements.track": "none"}  # the readers' own statements are not recorded


def login(cluster, **extra):
    """The cluster's superuser as the collection's connection options."""
    return dict(
        login_host="127.0.0.1",
        login_port=cluster.port,
        login_user="postgres",
        login_password=cluster.password,
        login_db="postgres",
        **extra,
    )


def exporter_p95_ms(session):
    """The monitoring role's pg_statements query, as postgres_exporter runs it."""
    with open(QUERIES) as handle:
        query = yaml.safe_load(handle)["pg_statements"]["query"]
    return float(session.fetchone(query)["p95_seconds"]) * 1000.0


def percentile(values, q=0.95):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(math.ceil(q * len(ordered))) - 1)]


def run_workload(cluster, name, scripts, args, folder):
    env = dict(common.clean_env(), PGPASSWORD=cluster.password)
    work = tempfile.mkdtemp(prefix="latency-", dir=folder)
    argv = [
        os.path.join(cluster.bindir, "pgbench"),
        "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres", "-n",
        "-c", str(args.clients), "-j", str(min(2, args.clients)), "-T", str(args.seconds),
        "-l", "--latency-limit", str(LATENCY_LIMIT_MS),
    ]  # fmt: skip
    for i, (text, weight) in enumerate(scripts):
        path = os.path.join(work, "s%d.sql" % i)
        with open(path, "w") as fh:
            fh.write(text)
        argv += ["-f", "%s@%d" % (path, weight)]
    argv.append("postgres")
    session = pg.connect(login(cluster, session_settings=QUIET), "bench.latency")
    try:
        session.execute("SELECT pg_stat_statements_reset()")
        common.log("%s: pgbench %d clients, %d s" % (name, args.clients, args.seconds))
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit("pgbench failed: %s" % common.last_line(proc.stderr or proc.stdout))
        est = latency.from_pg_stat_statements(session)
        exporter = exporter_p95_ms(session)
        rows = [
            r
            for r in latency.query_stats.read(
                session, latency.query_stats.status(session), all_databases=True
            )["statements"]
            if "pg_sleep" in (r["query"] or "")
        ]
        only_workload = latency.estimate_percentile(rows)
        limit_share_est = sum(
            r["calls"]
            * (
                1
                - latency.statement_cdf(
                    LATENCY_LIMIT_MS, r["mean_time"], r["stddev_time"], r["min_time"], r["max_time"]
                )
            )
            for r in rows
        ) / max(1, sum(r["calls"] for r in rows))
    finally:
        session.close()
    truth = []
    for path in glob.glob(os.path.join(work, "pgbench_log.*")):
        with open(path) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    truth.append(int(parts[2]) / 1000.0)
    late = re.search(r"number of transactions above the [\d.]+ ms latency limit: (\d+)/(\d+)", proc.stdout)
    true_p95 = percentile(truth)
    return dict(
        workload=name,
        transactions=len(truth),
        true_p95_ms=round(true_p95, 3),
        estimate_p95_ms=est["value_ms"],
        exporter_p95_ms=round(exporter, 3),
        exporter_vs_estimate_percent=round(100.0 * (exporter - est["value_ms"]) / est["value_ms"], 3),
        exporter_error_percent=round(100.0 * (exporter - true_p95) / true_p95, 1),
        estimate_workload_only_p95_ms=round(only_workload, 3),
        error_percent=round(100.0 * (est["value_ms"] - true_p95) / true_p95, 1),
        true_mean_ms=round(sum(truth) / len(truth), 3),
        late_share_pgbench=round(int(late.group(1)) / int(late.group(2)), 4) if late else None,
        late_share_estimate=round(limit_share_est, 4),
        statements=est["statements"],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--version", type=int, default=15)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    settings = dict(common.FAST_SETTINGS, shared_preload_libraries="pg_stat_statements", max_connections=50)
    cluster = common.ThrowawayCluster(args.version, prefix="dbarch-bench-latency-", settings=settings)
    results = []
    try:
        session = pg.connect(login(cluster), "bench.latency")
        session.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        session.close()
        for name, scripts in WORKLOADS.items():
            results.append(run_workload(cluster, name, scripts, args, cluster.tmpdir))
    finally:
        cluster.close()
    print(
        "%-28s %8s %10s %10s %8s %10s %8s %10s %10s"
        % ("workload", "tx", "true p95", "est. p95", "error", "exporter", "error", "late pg", "late est")
    )
    for r in results:
        print(
            "%-28s %8d %8.1fms %8.1fms %7.1f%% %8.1fms %7.1f%% %10.4f %10.4f"
            % (
                r["workload"],
                r["transactions"],
                r["true_p95_ms"],
                r["estimate_p95_ms"],
                r["error_percent"],
                r["exporter_p95_ms"],
                r["exporter_error_percent"],
                r["late_share_pgbench"] or 0,
                r["late_share_estimate"],
            )
        )
    common.write_json(
        os.path.join(common.OUT_DIR, "latency.json"),
        dict(version=args.version, seconds=args.seconds, clients=args.clients, results=results),
    )


if __name__ == "__main__":
    main()
