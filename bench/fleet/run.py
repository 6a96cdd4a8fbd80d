# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleets: the read-only workflows over N local clusters (default 20) at forks 1, 5 and 20, in one run.

Each cluster is a throwaway PostgreSQL with the sandbox's demo shop (roles/sandbox/files/demo_schema.sql)
and its workload run once (pg_stat_statements preloaded), as host fleet-NN of group primary in a
generated inventory. For each read-only workflow playbook (server_report, schema_review, query_tuning,
security_audit, runbook_replication_lag: the primaries have no standbys, so the runbook says so) and each
forks value, ansible-playbook runs over all hosts; measured: wall time, and the controller's CPU time
(user + system of ansible-playbook and every process it started: with connection local the modules run
on the controller too) per host. The PostgreSQL servers' own CPU is not counted.

    .venv/bin/python bench/fleet/run.py [--hosts 20] [--forks 1,5,20] [--version 15] [--keep]

Results: bench/out/fleet.json and a table on stdout.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)
import common  # noqa: E402

# workflow: (playbook, its report folder variable, the fleet summary's name)
PLAYBOOKS = {
    "server_report": ("server_report", "server_report_dest", "server"),
    "schema_review": ("schema_review", "schema_review_dest", "schema_review"),
    "query_tuning": ("query_tuning", "query_tuning_dest", "query_tuning"),
    "security_audit": ("security_audit", "security_audit_dest", "security_audit"),
    "replication_lag": ("runbook_replication_lag", "replication_report_dest", "replication_lag"),
}
WORKFLOWS = tuple(PLAYBOOKS)
SETTINGS = dict(
    common.FAST_SETTINGS,
    shared_buffers="16MB",
    max_connections=30,
    shared_preload_libraries="pg_stat_statements",
)


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _start(major, index):
    cluster = common.ThrowawayCluster(major, prefix="dbarch-bench-fleet-%02d-" % index, settings=SETTINGS)
    try:
        conn = cluster.connect()
        conn.cursor().execute("CREATE DATABASE demo")
        conn.close()
        demo = cluster.connect("demo")
        cur = demo.cursor()
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for name in ("demo_schema.sql", "demo_workload.sql"):
            with open(os.path.join(common.REPO, "roles", "sandbox", "files", name), encoding="utf-8") as fh:
                cur.execute(fh.read())
        demo.close()
    except BaseException:
        cluster.close()
        raise
    return cluster


def _inventory(clusters, folder):
    hosts = {}
    for i, cluster in enumerate(clusters):
        hosts["fleet-%02d" % i] = dict(
            ansible_connection="local",
            ansible_python_interpreter=sys.executable,
            dbarch_login_host="127.0.0.1",
            dbarch_login_port=cluster.port,
            dbarch_login_user="postgres",
            dbarch_login_password=cluster.password,
            dbarch_login_db="postgres",
            server_report_database="demo",
            schema_review_database="demo",
            query_tuning_database="demo",
        )
    path = os.path.join(folder, "hosts.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"all": {"children": {"primary": {"hosts": hosts}}}}, fh)
    return path


def _run(workflow, forks, inventory, folder):
    playbook, dest_var, summary_name = PLAYBOOKS[workflow]
    dest = os.path.join(folder, "reports-%s-%d" % (workflow, forks))
    argv = [
        os.path.join(common.OUR_VENV_BIN, "ansible-playbook"),
        "-i",
        inventory,
        "-f",
        str(forks),
        os.path.join(common.REPO, "playbooks", "%s.yml" % playbook),
        "-e",
        json.dumps({dest_var: dest}),
    ]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(common.REPO, "ansible.cfg"))
    cpu0, t0 = _children_cpu(), time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=common.REPO, capture_output=True, text=True, check=False)
    wall, cpu = time.monotonic() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise common.ToolFailed(
            "%s at forks %d: %s" % (workflow, forks, common.tail_lines(proc.stdout + proc.stderr))
        )
    with open(os.path.join(dest, "fleet", "%s_fleet.json" % summary_name), encoding="utf-8") as fh:
        fleet = json.load(fh)["summary"]
    return dict(
        wall_s=round(wall, 2), cpu_s=round(cpu, 2), answered=len(fleet["answered"]), failed=fleet["failed"]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--forks", default="1,5,20")
    parser.add_argument("--version", type=int, default=15)
    parser.add_argument("--workflows", default=",".join(WORKFLOWS))
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    forks_list = [int(f) for f in args.forks.split(",")]
    folder = tempfile.mkdtemp(prefix="dbarch-bench-fleet-")
    clusters = []
    t0 = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            clusters = list(pool.map(lambda i: _start(args.version, i), range(args.hosts)))
        common.log("%d clusters ready in %.1fs" % (len(clusters), time.monotonic() - t0), "fleet")
        inventory = _inventory(clusters, folder)
        results = []
        for workflow in args.workflows.split(","):
            for forks in forks_list:
                row = dict(
                    workflow=workflow,
                    forks=forks,
                    hosts=args.hosts,
                    **_run(workflow, forks, inventory, folder),
                )
                row["cpu_per_host_s"] = round(row["cpu_s"] / args.hosts, 3)
                row["wall_per_host_s"] = round(row["wall_s"] / args.hosts, 3)
                common.log(json.dumps(row), "fleet")
                results.append(row)
        out = dict(
            hosts=args.hosts,
            postgresql=args.version,
            cpus=os.cpu_count(),
            load_before=os.getloadavg(),
            results=results,
        )
        common.write_json(os.path.join(common.OUT_DIR, "fleet.json"), out)
        print("| workflow | forks | wall s | wall s/host | controller CPU s | CPU s/host | answered |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in results:
            print(
                "| %s | %d | %.1f | %.2f | %.1f | %.2f | %d/%d |"
                % (
                    r["workflow"],
                    r["forks"],
                    r["wall_s"],
                    r["wall_per_host_s"],
                    r["cpu_s"],
                    r["cpu_per_host_s"],
                    r["answered"],
                    r["hosts"],
                )
            )
    finally:
        for cluster in clusters:
            cluster.close(keep=args.keep)
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
