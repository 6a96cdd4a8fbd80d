# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which resource limits a PostgreSQL server now: cpu, memory, io, connections, locks.

Plain Python, no Ansible imports. ``diagnose()`` reads the server's cumulative counters twice,
``interval`` seconds apart, and samples ``pg_stat_activity`` several times in between (what each
backend waits on); on the database host it reads /proc (CPU, iowait, memory, swap) the same way.
``classify()`` is pure: it turns the two samples into classes, each with its evidence, the remedies
and the collection's playbook that carries each remedy out, and findings.

Counters come from pg_stat_database (blocks read and hit, read time with track_io_timing, temp
files and bytes), the checkpoint counters (pg_stat_bgwriter, pg_stat_checkpointer on 17+:
versions.Features), pg_stat_io on 16+. Backends report those counters when a transaction ends
(at most once a second from 15), so a single query running for the whole interval shows in the
activity samples, not in the counters.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features
from ansible_collections.dbarch.postgresql.plugins.module_utils.health import latency

CLASSES = ("cpu", "memory", "io", "connections", "locks")

# Thresholds (documented in docs/scaling.md).
CPU_BACKENDS_PER_CORE = 1.0  # backends on CPU (active, no wait event) per core, on average
HOST_CPU_BUSY = 0.9  # /proc busy share that, with backends on CPU, makes cpu a class on its own
HIT_RATIO_LOW = 0.90  # shared buffer hit ratio in the interval
READS_PER_SECOND = 500  # blocks read (outside shared_buffers) per second
IO_WAIT_SHARE = 0.3  # share of active backend samples waiting on IO
TEMP_BYTES_PER_SECOND = 1024 * 1024  # sorts and hashes spilling to disk
MEM_AVAILABLE_LOW = 0.05
SWAP_PAGES_PER_SECOND = 100
CONNECTIONS_USED = 0.8  # of max_connections minus reserved slots
LOCK_WAIT_SHARE = 0.5  # share of samples with a backend waiting on a lock

ACTIVITY_SQL = (
    "SELECT pid, state, wait_event_type, wait_event, backend_type, "
    "extract(epoch FROM clock_timestamp() - xact_start) AS xact_seconds, "
    "extract(epoch FROM clock_timestamp() - state_change) AS state_seconds, "
    "pg_blocking_pids(pid) AS blocked_by, left(query, 200) AS query "
    "FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
)
DATABASE_SQL = (
    "SELECT sum(blks_read)::bigint AS blks_read, sum(blks_hit)::bigint AS blks_hit, "
    "sum(blk_read_time)::float AS blk_read_time, sum(temp_files)::bigint AS temp_files, "
    "sum(temp_bytes)::bigint AS temp_bytes, sum(xact_commit + xact_rollback)::bigint AS xacts, "
    "sum(deadlocks)::bigint AS deadlocks, extract(epoch FROM clock_timestamp()) AS at FROM pg_stat_database"
)
IO_SQL = (
    "SELECT coalesce(sum(reads), 0)::bigint AS reads, coalesce(sum(read_time), 0)::float AS read_time, "
    "coalesce(sum(evictions), 0)::bigint AS evictions FROM pg_stat_io WHERE object = 'relation'"
)
SETTINGS_SQL = "SELECT name, setting FROM pg_settings WHERE name = ANY (%s)"
SETTING_NAMES = ["max_connections", "track_io_timing", "shared_buffers", "work_mem", "block_size"]

# What carries each remedy out in this collection.
REMEDIES = {
    "cpu": [
        dict(
            remedy="read replicas for read traffic",
            playbook="playbooks/scale.yml -e scale_remedy=add_replica",
        ),
        dict(remedy="slow-query work (plans, indexes)", playbook="playbooks/query_tuning.yml"),
        dict(remedy="caching (materialized views, application cache)", playbook="playbooks/query_tuning.yml"),
        dict(remedy="more cores (scale up)", playbook="playbooks/scale.yml -e scale_remedy=rds_resize"),
    ],
    "memory": [
        dict(
            remedy="shared_buffers and work_mem sized to the machine",
            playbook="playbooks/scale.yml -e scale_remedy=tune",
        ),
        dict(remedy="more RAM (scale up)", playbook="playbooks/scale.yml -e scale_remedy=rds_resize"),
    ],
    "io": [
        dict(remedy="indexes for the scans that read", playbook="playbooks/query_tuning.yml"),
        dict(
            remedy="faster storage (storage type, IOPS)",
            playbook="playbooks/scale.yml -e scale_remedy=rds_resize",
        ),
        dict(
            remedy="partitioning / sharding of the large tables",
            playbook="playbooks/scale.yml -e scale_remedy=shard",
        ),
        dict(
            remedy="shared_buffers, effective_io_concurrency, max_wal_size",
            playbook="playbooks/scale.yml -e scale_remedy=tune",
        ),
    ],
    "connections": [
        dict(
            remedy="PgBouncer (transaction pooling)", playbook="playbooks/scale.yml -e scale_remedy=pooling"
        ),
        dict(remedy="max_connections with more RAM", playbook="playbooks/scale.yml -e scale_remedy=tune"),
        dict(
            remedy="shorter connection lifetime (idle_session_timeout, idle_in_transaction_session_timeout)",
            playbook="dbarch.postgresql.setting",
        ),
    ],
    "locks": [
        dict(
            remedy="end or shorten the blocking transactions (blocking chains in evidence)",
            playbook="dbarch.postgresql.setting (idle_in_transaction_session_timeout)",
        ),
        dict(remedy="lock_timeout and lock-safe migrations", playbook="playbooks/migrate.yml"),
    ],
}

WHY = {
    "cpu": "queries wait for a core: latency grows with every extra concurrent query",
    "memory": "sorts and hashes spill to disk, or the host swaps: queries run at disk speed",
    "io": "data is read from storage instead of shared_buffers: queries wait on reads",
    "connections": "new connections are refused once the slots run out (FATAL: too many clients)",
    "locks": "sessions wait on other sessions' locks: throughput drops and requests time out",
}
REFERENCES = {
    "cpu": ["https://www.postgresql.org/docs/current/monitoring-stats.html#WAIT-EVENT-TABLE"],
    "memory": ["https://www.postgresql.org/docs/current/runtime-config-resource.html#GUC-WORK-MEM"],
    "io": ["https://www.postgresql.org/docs/current/monitoring-stats.html#MONITORING-PG-STAT-IO-VIEW"],
    "connections": [
        "https://www.postgresql.org/docs/current/runtime-config-connection.html#GUC-MAX-CONNECTIONS"
    ],
    "locks": ["https://www.postgresql.org/docs/current/explicit-locking.html"],
}


class DiagnoseError(DbarchError, ValueError):
    pass


# --------------------------------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------------------------------


def read_proc(root="/proc"):
    """CPU jiffies, memory and swap counters of this host, or None where /proc cannot be read."""
    try:
        with open(os.path.join(root, "stat")) as handle:
            fields = handle.readline().split()
        with open(os.path.join(root, "meminfo")) as handle:
            mem = dict((ln.split(":")[0], int(ln.split()[1])) for ln in handle if len(ln.split()) >= 2)
        vm = {}
        try:
            with open(os.path.join(root, "vmstat")) as handle:
                vm = dict((ln.split()[0], int(ln.split()[1])) for ln in handle if len(ln.split()) == 2)
        except OSError:
            pass
    except (OSError, ValueError, IndexError):
        return None
    jiffies = [int(x) for x in fields[1:9]]
    return dict(
        cpu_total=sum(jiffies),
        cpu_idle=jiffies[3],
        cpu_iowait=jiffies[4],
        mem_total_kb=mem.get("MemTotal"),
        mem_available_kb=mem.get("MemAvailable"),
        swap_total_kb=mem.get("SwapTotal"),
        swap_free_kb=mem.get("SwapFree"),
        pswpin=vm.get("pswpin", 0),
        pswpout=vm.get("pswpout", 0),
        cpus=os.cpu_count(),
    )


def is_local(host):
    """Whether the connection reaches this host (socket folder, loopback)."""
    return not host or str(host).startswith("/") or str(host) in ("localhost", "127.0.0.1", "::1")


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


def counters(session, features):
    out = dict(session.fetchone(DATABASE_SQL, record=False))
    out["checkpoints"] = dict(session.fetchone(features.checkpoint_counters_sql, record=False))
    if features.has_pg_stat_io:
        out["io"] = dict(session.fetchone(IO_SQL, record=False))
    return out


def is_storage_wait(row, features):
    """An active backend waiting on storage I/O for data, not on its own temporary files (a sort or
    hash spilling past work_mem is memory)."""
    return row["wait_event_type"] == "IO" and row["wait_event"] not in features.temp_file_wait_events


def activity(session, features):
    rows = session.fetchall(ACTIVITY_SQL, record=False)
    clients = [r for r in rows if r["backend_type"] == "client backend"]
    active = [r for r in clients if r["state"] == "active"]
    return dict(
        clients=len(clients),
        active=len(active),
        on_cpu=sum(1 for r in active if r["wait_event_type"] in (None, "CPU")),
        io_wait=sum(1 for r in active if is_storage_wait(r, features)),
        lock_wait=sum(1 for r in active if r["wait_event_type"] == "Lock"),
        idle_in_transaction=sum(1 for r in clients if (r["state"] or "").startswith("idle in transaction")),
        waits=["%s:%s" % (r["wait_event_type"], r["wait_event"]) for r in active if r["wait_event_type"]],
        blocked=[
            dict(
                pid=r["pid"],
                blocked_by=list(r["blocked_by"] or []),
                waiting_seconds=round(float(r["state_seconds"] or 0), 1),
                query=r["query"],
            )
            for r in active
            if r["blocked_by"]
        ],
    )


def diagnose(session, interval=10.0, cpus=None, local=True, samples=None, proc_root="/proc"):
    """Two counter snapshots ``interval`` seconds apart, activity sampled in between; returns
    ``classify()``'s result."""
    interval = float(interval)
    if interval <= 0 or interval > 3600:
        raise DiagnoseError("interval=%r: give seconds between 0 and 3600 (10 is the default)" % interval)
    features = Features(session.server_version_num)
    names = SETTING_NAMES + list(features.reserved_connection_settings)
    settings = dict((r["name"], r["setting"]) for r in session.fetchall(SETTINGS_SQL, (names,)))
    session.queries.append(DATABASE_SQL)
    session.queries.append(ACTIVITY_SQL)
    proc_first = read_proc(proc_root) if local else None
    first = counters(session, features)
    count = int(samples or max(4, min(20, int(interval * 2))))
    seen = []
    step = interval / count
    start = time.time()
    for i in range(count):
        seen.append(activity(session, features))
        pause = start + (i + 1) * step - time.time()
        if pause > 0:
            time.sleep(pause)
    second = counters(session, features)
    proc_second = read_proc(proc_root) if local else None
    if cpus is None and proc_first:
        cpus = proc_first["cpus"]
    return classify(
        first, second, seen, settings, features=features, cpus=cpus, proc=(proc_first, proc_second)
    )


# --------------------------------------------------------------------------------------------------
# Classification (pure)
# --------------------------------------------------------------------------------------------------


def _delta(a, b, key):
    return max(0, (b.get(key) or 0) - (a.get(key) or 0))


def _avg(values):
    return round(sum(values) / float(len(values)), 2) if values else 0.0


def classify(first, second, seen, settings, features, cpus=None, proc=(None, None)):
    seconds = max(0.001, float(second["at"]) - float(first["at"]))
    evidence = dict(interval_seconds=round(seconds, 2), samples=len(seen), server_major=features.major)
    classes = []

    # -- cpu
    on_cpu = _avg([s["on_cpu"] for s in seen])
    evidence["cpu"] = dict(
        active_backends_avg=_avg([s["active"] for s in seen]),
        on_cpu_backends_avg=on_cpu,
        cpu_count=cpus,
    )
    host = _host(proc, seconds)
    if host:
        evidence["host"] = host
    busy_host = host and cpus and (host.get("cpu_busy") or 0) >= HOST_CPU_BUSY and on_cpu >= 0.75 * cpus
    if (cpus and on_cpu >= CPU_BACKENDS_PER_CORE * cpus) or busy_host:
        classes.append("cpu")

    # -- waits
    waits = {}
    for s in seen:
        for w in s["waits"]:
            waits[w] = waits.get(w, 0) + 1
    evidence["wait_events"] = dict(sorted(waits.items(), key=lambda kv: -kv[1])[:10])

    # -- memory
    temp_bytes = _delta(first, second, "temp_bytes")
    temp_files = _delta(first, second, "temp_files")
    evidence["memory"] = dict(
        temp_files=temp_files,
        temp_bytes=temp_bytes,
        temp_bytes_per_second=int(temp_bytes / seconds),
        work_mem=_size(settings.get("work_mem"), 1024),
        shared_buffers=_size(settings.get("shared_buffers"), int(settings.get("block_size") or 8192)),
    )
    memory = temp_bytes / seconds >= TEMP_BYTES_PER_SECOND
    if host and host.get("mem_available_share") is not None:
        memory = memory or host["mem_available_share"] < MEM_AVAILABLE_LOW
        memory = memory or host.get("swap_pages_per_second", 0) >= SWAP_PAGES_PER_SECOND
    if memory:
        classes.append("memory")

    # -- io
    reads = _delta(first, second, "blks_read")
    hits = _delta(first, second, "blks_hit")
    ratio = round(hits / float(hits + reads), 4) if hits + reads else None
    io_samples = sum(s["io_wait"] for s in seen)
    active_samples = sum(s["active"] for s in seen)
    io_share = round(io_samples / float(active_samples), 2) if active_samples else 0.0
    cp_timed = _delta(first["checkpoints"], second["checkpoints"], "timed")
    cp_req = _delta(first["checkpoints"], second["checkpoints"], "requested")
    evidence["io"] = dict(
        blks_read=reads,
        blks_read_per_second=int(reads / seconds),
        blks_hit=hits,
        cache_hit_ratio=ratio,
        read_time_ms=round(_delta(first, second, "blk_read_time"), 1),
        track_io_timing=settings.get("track_io_timing"),
        io_wait_share=io_share,
        checkpoints_timed=cp_timed,
        checkpoints_requested=cp_req,
        checkpoints_timed_total=second["checkpoints"].get("timed"),
        checkpoints_requested_total=second["checkpoints"].get("requested"),
    )
    if "io" in second and "io" in first:
        evidence["io"]["pg_stat_io"] = dict(
            reads=_delta(first["io"], second["io"], "reads"),
            read_time_ms=round(_delta(first["io"], second["io"], "read_time"), 1),
            evictions=_delta(first["io"], second["io"], "evictions"),
        )
    low_hits = ratio is not None and ratio < HIT_RATIO_LOW and reads / seconds >= READS_PER_SECOND
    waiting_io = io_share >= IO_WAIT_SHARE and _avg([s["active"] for s in seen]) >= 1
    if low_hits or waiting_io:
        classes.append("io")

    # -- connections
    max_conn = int(settings.get("max_connections") or 100)
    reserved = sum(int(settings.get(n) or 0) for n in features.reserved_connection_settings)
    usable = max(1, max_conn - reserved)
    peak = max([s["clients"] for s in seen] or [0]) + 1  # this session holds one slot too
    evidence["connections"] = dict(
        max_connections=max_conn,
        reserved=reserved,
        usable=usable,
        clients_peak=peak,
        use=round(peak / float(usable), 3),
        idle_in_transaction_peak=max([s["idle_in_transaction"] for s in seen] or [0]),
    )
    if peak / float(usable) >= CONNECTIONS_USED:
        classes.append("connections")

    # -- locks
    with_waiters = sum(1 for s in seen if s["lock_wait"])
    chains = {}
    for s in seen:
        for b in s["blocked"]:
            chains[b["pid"]] = b
    evidence["locks"] = dict(
        lock_waiters_avg=_avg([s["lock_wait"] for s in seen]),
        samples_with_lock_waits=with_waiters,
        blocking_chains=sorted(chains.values(), key=lambda b: -b["waiting_seconds"])[:20],
        deadlocks=_delta(first, second, "deadlocks"),
    )
    if seen and with_waiters / float(len(seen)) >= LOCK_WAIT_SHARE:
        classes.append("locks")

    return dict(
        classes=classes,
        evidence=evidence,
        remedies=dict((c, REMEDIES[c]) for c in classes),
        findings=findings_for(classes, evidence),
    )


def _size(setting, unit):
    try:
        return int(setting) * unit
    except (TypeError, ValueError):
        return None


def _host(proc, seconds):
    a, b = proc
    if not a or not b:
        return None
    total = b["cpu_total"] - a["cpu_total"]
    out = dict(cpus=b["cpus"])
    if total > 0:
        out["cpu_busy"] = round(
            1 - (b["cpu_idle"] - a["cpu_idle"] + b["cpu_iowait"] - a["cpu_iowait"]) / float(total), 3
        )
        out["cpu_iowait"] = round((b["cpu_iowait"] - a["cpu_iowait"]) / float(total), 3)
    if b.get("mem_total_kb"):
        out["mem_total_kb"] = b["mem_total_kb"]
        out["mem_available_kb"] = b["mem_available_kb"]
        out["mem_available_share"] = round((b["mem_available_kb"] or 0) / float(b["mem_total_kb"]), 3)
        out["swap_used_kb"] = (b.get("swap_total_kb") or 0) - (b.get("swap_free_kb") or 0)
    out["swap_pages_per_second"] = round(
        (b["pswpin"] + b["pswpout"] - a["pswpin"] - a["pswpout"]) / seconds, 1
    )
    return out


def findings_for(classes, evidence):
    out = []
    summary = {
        "cpu": lambda e: (
            "%.1f backends on CPU on average for %s cores"
            % (e["cpu"]["on_cpu_backends_avg"], e["cpu"]["cpu_count"] or "?")
        ),
        "memory": lambda e: (
            "%d temporary file(s), %d bytes written in %.0f s"
            % (e["memory"]["temp_files"], e["memory"]["temp_bytes"], e["interval_seconds"])
        ),
        "io": lambda e: (
            "cache hit ratio %s, %d blocks read a second, %.0f %% of active samples waiting on IO"
            % (e["io"]["cache_hit_ratio"], e["io"]["blks_read_per_second"], 100 * e["io"]["io_wait_share"])
        ),
        "connections": lambda e: (
            "%d of %d usable connection slots in use"
            % (e["connections"]["clients_peak"], e["connections"]["usable"])
        ),
        "locks": lambda e: (
            "%.1f backends waiting on locks on average; %d blocked backend(s) seen"
            % (e["locks"]["lock_waiters_avg"], len(e["locks"]["blocking_chains"]))
        ),
    }
    fixes = {
        "cpu": "-- top statements by CPU time: dbarch.postgresql.query_stats_info; read traffic to replicas",
        "memory": "ALTER SYSTEM SET work_mem = '...';  -- dbarch.postgresql.tune gives the value",
        "io": "-- index advice: dbarch.postgresql.index_advice_info; shared_buffers: dbarch.postgresql.tune",
        "connections": "-- put PgBouncer in front: playbooks/scale.yml -e scale_remedy=pooling",
        "locks": "SELECT pg_terminate_backend(pid) FROM unnest(ARRAY[...]) AS pid;  -- blockers in evidence",
    }
    for name in classes:
        out.append(
            fnd.Finding(
                rule="scaling.%s_bound" % name,
                severity="high" if name in ("connections", "locks") else "medium",
                object="server",
                message="%s bottleneck: %s" % (name, summary[name](evidence)),
                why=WHY[name],
                fix=fixes[name],
                evidence=evidence.get(name, {}),
                references=REFERENCES[name] + ["remedies: " + "; ".join(r["remedy"] for r in REMEDIES[name])],
                title="%s bottleneck" % name,
            )
        )
    io = evidence["io"]
    if (io.get("checkpoints_requested_total") or 0) > (io.get("checkpoints_timed_total") or 0):
        out.append(
            fnd.Finding(
                rule="scaling.checkpoints_requested",
                severity="low",
                object="server",
                message="more checkpoints requested (%s) than timed (%s) since the statistics reset"
                % (io["checkpoints_requested_total"], io["checkpoints_timed_total"]),
                why="WAL fills max_wal_size before checkpoint_timeout: checkpoints come often and write "
                "full-page images",
                fix="ALTER SYSTEM SET max_wal_size = '4GB';  -- dbarch.postgresql.tune gives the value",
                evidence=dict(
                    timed=io["checkpoints_timed_total"], requested=io["checkpoints_requested_total"]
                ),
                references=["https://www.postgresql.org/docs/current/wal-configuration.html"],
                title="checkpoints requested",
            )
        )
    if io.get("track_io_timing") == "off":
        out.append(
            fnd.Finding(
                rule="scaling.track_io_timing_off",
                severity="info",
                object="server",
                message="track_io_timing is off: read times are not measured",
                why="without it blk_read_time and pg_stat_io read_time stay 0",
                fix="ALTER SYSTEM SET track_io_timing = on; SELECT pg_reload_conf();",
                references=["https://www.postgresql.org/docs/current/runtime-config-statistics.html"],
                title="track_io_timing off",
            )
        )
    if (evidence["connections"].get("idle_in_transaction_peak") or 0) >= 5:
        out.append(
            fnd.Finding(
                rule="scaling.idle_in_transaction",
                severity="medium",
                object="server",
                message="%d sessions idle in transaction"
                % evidence["connections"]["idle_in_transaction_peak"],
                why="they hold locks and snapshots (vacuum cannot clean) and a connection slot each",
                fix="ALTER SYSTEM SET idle_in_transaction_session_timeout = '5min'; SELECT pg_reload_conf();",
                references=["https://www.postgresql.org/docs/current/runtime-config-client.html"],
                title="idle in transaction",
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# Post-scaling metrics and the workflow's success criteria
# --------------------------------------------------------------------------------------------------

# The scaling workflow's success criteria.
CRITERIA = dict(cpu_max=0.70, p95_ms_max=100.0, pool_use_max=0.60, lag_seconds_max=1.0)

LAG_SQL = (
    "SELECT pg_is_in_recovery() AS in_recovery, "
    "CASE WHEN pg_is_in_recovery() THEN "
    "CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END "
    "ELSE (SELECT coalesce(max(extract(epoch FROM replay_lag)), 0) FROM pg_stat_replication) "
    "END AS lag_seconds"
)


def p95_estimate(rows):
    """An ESTIMATE of the 95th percentile latency (ms) from pg_stat_statements rows (calls, mean_time,
    stddev_time, min_time, max_time: query_stats' logical names), by the collection's one latency model,
    health/latency.py's log-normal mixture (the same as health_info and the exporter's
    pg_statements_p95_seconds). None without calls."""
    value = latency.estimate_percentile(rows)
    return None if value is None else round(value, 3)


def p95_metric(session):
    """(p95_ms_estimate, p95_source) of the server now, from health/latency.py."""
    est = latency.from_pg_stat_statements(session)
    if est["value_ms"] is None:
        return None, "no estimate from pg_stat_statements here: %s" % (est["reason"] or "")[:300]
    return est["value_ms"], "ESTIMATE from pg_stat_statements (%s; %d statements, %d calls)" % (
        latency.METHOD,
        est["statements"],
        est["calls"],
    )


def metrics(session, result):
    """CPU, p95 latency estimate, connection use, replication lag of the server now, with the
    diagnosis ``result`` (its evidence) for CPU and connections."""
    evidence = result["evidence"]
    host = evidence.get("host") or {}
    cpu = evidence["cpu"]
    if host.get("cpu_busy") is not None:
        cpu_use, cpu_source = host["cpu_busy"], "/proc (host)"
    elif cpu.get("cpu_count"):
        cpu_use, cpu_source = (
            round(min(1.0, cpu["on_cpu_backends_avg"] / float(cpu["cpu_count"])), 3),
            "backends on CPU",
        )
    else:
        cpu_use, cpu_source = None, "unknown (give cpus, or run on the database host)"
    out = dict(cpu=cpu_use, cpu_source=cpu_source, connection_use=evidence["connections"]["use"])
    try:
        out["p95_ms_estimate"], out["p95_source"] = p95_metric(session)
    except DbarchError as exc:
        out["p95_ms_estimate"] = None
        out["p95_source"] = "pg_stat_statements not readable here: %s" % str(exc).split(": ", 1)[-1][:160]
    row = session.fetchone(LAG_SQL)
    out["replication_lag_seconds"] = (
        None if row["lag_seconds"] is None else round(float(row["lag_seconds"]), 3)
    )
    out["in_recovery"] = row["in_recovery"]
    return out


def criteria(measured, limits=None):
    """Each success criterion: its limit, the value and whether it is met (None: not measured)."""
    limits = dict(CRITERIA, **(limits or {}))
    checks = [
        ("cpu", "cpu", limits["cpu_max"]),
        ("p95_latency", "p95_ms_estimate", limits["p95_ms_max"]),
        ("pool_use", "connection_use", limits["pool_use_max"]),
        ("replication_lag", "replication_lag_seconds", limits["lag_seconds_max"]),
    ]
    out = {}
    for name, key, limit in checks:
        value = measured.get(key)
        out[name] = dict(value=value, below=limit, met=None if value is None else value < limit)
    out["all_met"] = all(c["met"] is not False for c in out.values() if isinstance(c, dict))
    return out
