# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Failover benchmark: switchover and unclean failover times of dbarch.postgresql, Patroni and repmgr.

One run, one machine, PostgreSQL 15 from Debian; each side in turn gets three local clusters (one
primary, two streaming standbys) of its own, built the way that side builds them, then:

1. a **switchover** from node1 to node2 with the side's command, timed from the command's start
   until node2 accepts writes AND node1 streams from it (the sibling, node3, is reported too);
2. an **unclean failover** of the new primary: ``pgbench`` writes to it, then its postmaster is
   killed (SIGKILL; with Patroni and repmgr their daemon on that node too: the node is lost), timed
   from the kill until a surviving node accepts writes (the sibling following it is reported too).

Everything is seen from outside, the same way for every side: each node is polled every 50 ms
(``pg_is_in_recovery()``, the upstream of ``pg_stat_wal_receiver``, an INSERT when out of
recovery), and the server logs give when the old primary was asked to stop and was down and when
the new one was asked to promote. The phases are the spans between those milestones.

Sides: Patroni with its default ttl/loop_wait and with tuned ones, repmgr with repmgrd's default
reconnect settings and with tuned ones, dbarch's playbooks (``playbooks/switchover.yml``,
``playbooks/failover.yml``) and, with ``--dbarch-modules``, the same switchover done with the
collection's modules. What a checkout lacks is skipped and said so; the peers are measured anyway.

Entry: ``sudo .venv/bin/python bench/failover/run.py [--sides patroni,repmgr,dbarch] [--runs 1]``,
as root (servers, Patroni, repmgr and sshd run as the postgres OS user).
"""

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.path.insert(0, BENCH)
sys.path.insert(0, HERE)

import common  # noqa: E402
import dbarch_side  # noqa: E402
import observe  # noqa: E402
import patroni_side  # noqa: E402
import psycopg2  # noqa: E402
import repmgr_side  # noqa: E402
import report  # noqa: E402
from common import OUT_DIR, REPO  # noqa: E402

lc = common.lc

MAJOR = 15  # postgresql-15-repmgr is Debian's; every side runs the same binaries
# The same server settings on every side. fsync off as in every bench here (nothing measures
# durability; a SIGKILL keeps the page cache); full_page_writes and wal_log_hints on, which
# pg_rewind needs; the log prefix and time zone the milestones are read with.
PG_SETTINGS = {
    "fsync": False,
    "full_page_writes": True,
    "wal_log_hints": True,
    "wal_level": "replica",
    "hot_standby": True,
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "wal_keep_size": "256MB",
    "max_connections": 50,
    "shared_buffers": "64MB",
    "log_line_prefix": "%m [%p] ",
    "log_timezone": "UTC",
}


def log(msg):
    common.log(msg, tag="failbench %s" % time.strftime("%H:%M:%S"))


# -- one side ---------------------------------------------------------------------------------------


def primary_sql(node, password, sql):
    conn = psycopg2.connect(
        host="127.0.0.1",
        port=node.port,
        user="postgres",
        password=password,
        dbname="postgres",
        connect_timeout=5,
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def pgbench(bindir, node, password, *args, timeout=600):
    env = common.clean_env()
    env["PGPASSWORD"] = password
    argv = [os.path.join(bindir, "pgbench"), "-h", "127.0.0.1", "-p", str(node.port), "-U", "postgres"]
    return argv + list(args) + ["postgres"], env


def pgbench_summary(text):
    keep = ("number of transactions actually processed", "number of failed", "aborted", "tps =")
    return [line.strip() for line in (text or "").splitlines() if any(k in line for k in keep)][:6]


def keep_logs(top, dest):
    """Copy the logs of a side (server logs, daemons' logs and output; never a data folder) to dest."""
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in ("data", "ssh", "etcd")]
        for name in files:
            if name.endswith((".log", ".out")):
                target = os.path.join(dest, os.path.relpath(root, top))
                os.makedirs(target, exist_ok=True)
                shutil.copy2(os.path.join(root, name), target)
    return dest


class Run:
    """One side through set-up, switchover, failover and removal; returns the result dict."""

    def __init__(self, side, opts, bindir, round_index=1):
        self.round = round_index
        self.load = None
        self.side = side
        self.opts = opts
        self.bindir = bindir

    def measure(self):
        side = self.side
        result = dict(label=side.label, key=side.key, kind=side.kind, settings=side.settings)
        obs = None
        try:
            t_setup = time.time()
            primary = side.setup()
            primary_sql(primary, side.password, observe.PROBE_DDL)
            obs = observe.Observer(side.nodes, side.password).start()
            others = [n for n in side.nodes if n.name != primary.name]
            if not obs.wait_healthy(primary, others, 180):
                raise common.ToolFailed("the three nodes were not healthy within 180 s after set-up")
            why = side.wait_ready(primary, 120)
            if why:
                raise common.ToolFailed(why)
            argv, env = pgbench(self.bindir, primary, side.password, "-i", "-q", "-s", str(self.opts.scale))
            proc = common.run_group(argv, env=env, timeout=600)
            if proc.returncode != 0:
                raise common.ToolFailed("pgbench -i: %s" % common.last_line(proc.stderr))
            result["setup_seconds"] = round(time.time() - t_setup, 1)
            log(
                "%s: set up in %.1fs (ports %s)"
                % (side.key, result["setup_seconds"], [n.port for n in side.nodes])
            )

            old, new, sibling = side.nodes[0], side.nodes[1], side.nodes[2]
            result["switchover"] = self.switchover(obs, old, new, sibling)
            if not side.can_failover:
                return result
            # The failover starts from a settled cluster: servers streaming from the new primary AND
            # the tool's own daemons watching it (a repmgrd still in a reconnect sleep from the
            # switchover would otherwise miss the kill).
            if not obs.wait_healthy(new, [old, sibling], 180):
                result["failover"] = dict(
                    error="after the switchover the nodes were not healthy within 180 s"
                )
                return result
            why = side.wait_ready(new, 180)
            if why:
                result["failover"] = dict(error="after the switchover: %s" % why)
                return result
            result["settle_seconds"] = round(time.time() - result["switchover"]["t0"], 1)
            time.sleep(1.0)
            result["failover"] = self.failover(obs, new, [old, sibling])
        except (
            common.ToolFailed,
            lc.LocalClusterError,
            psycopg2.Error,
            subprocess.SubprocessError,
            OSError,
        ) as exc:
            result["error"] = str(exc)
            log("%s: FAILED: %s" % (side.key, exc))
        finally:
            if self.load is not None:
                self.load.stop(grace=2)
            if obs is not None:
                obs.stop()
            if self.opts.keep_logs:
                result["logs"] = keep_logs(
                    side.top, os.path.join(self.opts.keep_logs, "%s-%d" % (side.key, self.round))
                )
            side.teardown()
        return result

    def switchover(self, obs, old, new, sibling):
        log("%s: switchover %s -> %s ..." % (self.side.key, old.name, new.name))
        t0 = time.time()
        tool = self.side.switchover(old, new)
        done = time.time()
        obs.wait_for(new.name, t0, lambda s: s.writable, 120)
        obs.wait_for(old.name, t0, lambda s: s.recovery and s.upstream == new.port, self.opts.timeout)
        obs.wait_for(sibling.name, t0, lambda s: s.recovery and s.upstream == new.port, 60)
        marks = observe.switchover_milestones(obs, t0, old, new, sibling, tool_done=done)
        out = dict(
            t0=t0,
            old=old.name,
            new=new.name,
            sibling=sibling.name,
            tool=tool,
            milestones=marks,
            phases=observe.phases(marks, observe.SWITCHOVER_PHASES),
            total=observe.switchover_total(marks),
            states=dict((n.name, obs.summary(n.name, t0)) for n in (old, new, sibling)),
        )
        if tool.get("returncode"):
            out["error"] = "the switchover command exited %s: %s" % (tool["returncode"], tool.get("output"))
        elif out["total"] is None:
            out["error"] = "not complete within the wait (see milestones)"
        log("  total %s s, phases %s, tool %s" % (out["total"], out["phases"], tool.get("returncode")))
        return out

    def failover(self, obs, primary, survivors):
        log("%s: failover of %s under pgbench ..." % (self.side.key, primary.name))
        self.side.prepare_failover(primary)
        argv, env = pgbench(
            self.bindir,
            primary,
            self.side.password,
            "-n",
            "-c",
            str(self.opts.clients),
            "-j",
            "2",
            "-T",
            "600",
        )
        load_log = os.path.join(self.opts.top, "%s-pgbench.log" % self.side.key)
        self.load = load = common.Background(argv, load_log, env=env, name="pgbench")
        time.sleep(self.opts.warmup)
        if not load.alive():
            raise common.ToolFailed("pgbench stopped before the kill: %s" % load.tail())
        t0 = self.side.kill_primary(primary)
        tool = self.side.after_kill(primary, survivors)
        done = time.time() if tool is not None else None
        deadline = t0 + self.opts.timeout
        new = None
        while new is None and time.time() < deadline:
            seen = [(obs.first(n.name, t0, lambda s: s.writable), n) for n in survivors]
            seen = [(t, n) for t, n in seen if t is not None]
            if seen:
                new = min(seen, key=lambda item: item[0])[1]
            else:
                time.sleep(observe.POLL_SECONDS)
        out = dict(killed=primary.name, tool=tool)
        if new is None:
            out.update(error="no surviving node accepted writes within %d s of the kill" % self.opts.timeout)
            log("  %s" % out["error"])
            return out
        sibling = next(n for n in survivors if n.name != new.name)
        obs.wait_for(sibling.name, t0, lambda s: s.recovery and s.upstream == new.port, 120)
        load.stop(grace=2)
        marks = observe.failover_milestones(obs, t0, new, sibling, tool_done=done)
        out.update(
            new=new.name,
            sibling=sibling.name,
            milestones=marks,
            phases=observe.phases(marks, observe.FAILOVER_PHASES),
            total=observe.failover_total(marks),
            states=dict((n.name, obs.summary(n.name, t0)) for n in [primary] + survivors),
            pgbench=pgbench_summary(load.tail(lines=40)),
        )
        log("  total %s s, phases %s" % (out["total"], out["phases"]))
        return out


# -- the sides ----------------------------------------------------------------------------------------


def build_sides(opts, bindir, top):
    """[(side or None, key, label, skip reason)] in the order they run."""
    sides = []
    wanted = opts.sides
    configs = opts.configs
    if "patroni" in wanted:
        why = patroni_side.missing()
        for config in configs:
            side = None if why else patroni_side.PatroniSide(top, bindir, config, PG_SETTINGS, log)
            label = "Patroni (%s)" % config
            sides.append((side, "patroni-%s" % config, side.label if side else label, why))
    if "repmgr" in wanted:
        why = repmgr_side.missing(bindir)
        for config in configs:
            side = None if why else repmgr_side.RepmgrSide(top, bindir, config, PG_SETTINGS, log)
            label = "repmgr (%s)" % config
            sides.append((side, "repmgr-%s" % config, side.label if side else label, why))
    if "dbarch" in wanted:
        lines = ["playbooks"] + (["modules"] if opts.dbarch_modules else [])
        for line in lines:
            why = dbarch_side.missing(line)
            side = (
                None
                if why
                else dbarch_side.DbarchSide(top, bindir, line, PG_SETTINGS, log, opts.dbarch_extra_vars)
            )
            sides.append((side, "dbarch-%s" % line, "dbarch %s" % line, why))
    return sides


def _first_line_of(argv):
    try:
        return common.first_line(common.run_group(argv, timeout=120).stdout)
    except OSError as exc:
        return "n/a (%s)" % exc


def versions(bindir):
    return {
        "postgresql": _first_line_of([os.path.join(bindir, "postgres"), "--version"]),
        "patroni": patroni_side.version() if not patroni_side.missing() else "not installed",
        "repmgr": repmgr_side.version(bindir) if not repmgr_side.missing(bindir) else "not installed",
        "ansible-core": _first_line_of([os.path.join(common.OUR_VENV_BIN, "ansible"), "--version"]),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    ap.add_argument(
        "--sides", default="patroni,repmgr,dbarch", help="comma-separated: patroni, repmgr, dbarch"
    )
    ap.add_argument(
        "--configs", default="default,tuned", help="Patroni and repmgr configurations: default, tuned (both)"
    )
    ap.add_argument("--dbarch-modules", action="store_true", help="also the switchover with the modules")
    ap.add_argument(
        "--dbarch-extra-vars",
        action="append",
        default=[],
        metavar="K=V",
        help="extra -e for the dbarch playbooks",
    )
    ap.add_argument("--runs", type=int, default=1, help="rounds over all sides; best counts (default 1)")
    ap.add_argument("--scale", type=int, default=5, help="pgbench scale of the load (default 5)")
    ap.add_argument("--clients", type=int, default=4, help="pgbench clients during the failover (default 4)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds of load before the kill (default 3)")
    ap.add_argument("--timeout", type=int, default=180, help="seconds to wait for a milestone (default 180)")
    ap.add_argument("--out", help="JSON file (default bench/out/failover-<timestamp>.json)")
    ap.add_argument("--keep-logs", metavar="DIR", help="copy every side's logs into DIR/<side>-<round>/")
    opts = ap.parse_args(argv)
    opts.sides = [s.strip() for s in opts.sides.split(",") if s.strip()]
    opts.configs = [c.strip() for c in opts.configs.split(",") if c.strip()]
    if set(opts.sides) - {"patroni", "repmgr", "dbarch"} or set(opts.configs) - {"default", "tuned"}:
        ap.error("--sides takes patroni, repmgr, dbarch; --configs takes default, tuned")
    if opts.runs < 1:
        ap.error("--runs must be at least 1")
    if os.geteuid() != 0:
        ap.error("run as root: the servers, Patroni, repmgr and sshd run as the postgres OS user")
    bindir = common.lc.find_bindir(MAJOR)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out_path = opts.out or os.path.join(OUT_DIR, "failover-%s.json" % stamp)
    # SIGTERM (and SIGINT) unwind through the finally blocks: every process and folder is removed.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)

    started = time.monotonic()
    top = tempfile.mkdtemp(prefix="dbarch-failbench-", dir="/var/tmp")  # noqa: S108
    os.chmod(top, 0o755)  # noqa: S103 - the postgres OS user must reach its folders
    opts.top = top
    results = {}
    skipped = {}
    load = dict(start=report.uptime())
    try:
        tool_versions = versions(bindir)
        for round_index in range(opts.runs):
            for side, key, label, why in build_sides(opts, bindir, top):
                if why:
                    skipped[key] = why
                    if round_index == 0:
                        print("%s: skipped (%s)" % (key.split("-")[0], why))
                        log("%s: skipped (%s)" % (label, why))
                    continue
                res = Run(side, opts, bindir, round_index + 1).measure()
                res["round"] = round_index + 1
                results.setdefault(key, []).append(res)
        load["end"] = report.uptime()
    finally:
        shutil.rmtree(top, ignore_errors=True)

    doc = dict(
        benchmark="failover",
        generated_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        command=" ".join([os.path.relpath(sys.argv[0], REPO) if sys.argv[0] else "run.py"] + sys.argv[1:]),
        machine=dict(platform=platform.platform(), python=platform.python_version(), cpus=os.cpu_count()),
        load=load,
        versions=tool_versions,
        postgresql_settings=dict((k, v) for k, v in PG_SETTINGS.items()),
        poll_seconds=observe.POLL_SECONDS,
        options=dict(runs=opts.runs, scale=opts.scale, clients=opts.clients, warmup=opts.warmup),
        skipped=skipped,
        sides=results,
        elapsed_seconds=round(time.monotonic() - started, 1),
    )
    doc["best"] = report.best(results)
    report.print_tables(doc)
    common.write_json(out_path, doc)
    out = os.path.abspath(out_path)
    print("results: %s" % (os.path.relpath(out, REPO) if out.startswith(REPO + os.sep) else out))
    failed = [
        key
        for key, runs in results.items()
        for r in runs
        if r.get("error") or any((r.get(what) or {}).get("error") for what in ("switchover", "failover"))
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
