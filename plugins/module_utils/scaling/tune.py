# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recommended server settings from the machine and the workload, and a safe restart order.

Plain Python, no Ansible imports. ``recommend()`` is a pure function: it follows the formulas
pgtune (le0pard/pgtune, https://pgtune.leopard.in.ua) publishes, so that a user can check every
value there, each with the reason it has. Where this collection deliberately differs from pgtune
it says so in ``DIFFERENCES`` (and docs/scaling.md):

- ``max_connections`` not given: pgtune assumes a number per workload (web 200, oltp 300, dw 40,
  desktop 20, mixed 100); the ``tune`` module passes the server's own ``max_connections`` instead,
  so that tuning never changes the connection limit silently (``recommend()`` itself follows pgtune
  when ``max_connections`` is None and ``keep_connections`` is not given);
- desktop: pgtune sets ``wal_level = minimal`` and ``max_wal_senders = 0``; both are left out here:
  they end streaming replication, WAL archiving and the collection's backups;
- ``wal_compression``: pgtune writes ``lz4`` on 15+; a server built without lz4 refuses it, so
  ``pglz`` is written there (``lz4=False``).

``rolling_plan()`` (pure) orders an apply-and-restart over a primary and its standbys.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

KB = 1
MB = 1024
GB = 1024 * 1024
TB = 1024 * 1024 * 1024
_UNITS = {"B": 1.0 / 1024, "kB": KB, "KB": KB, "MB": MB, "GB": GB, "TB": TB}

STORAGES = ("hdd", "ssd", "san", "nvme")
WORKLOADS = ("web", "oltp", "dw", "desktop", "mixed")

DEFAULT_CONNECTIONS = {"web": 200, "oltp": 300, "dw": 40, "desktop": 20, "mixed": 100}
WAL_SIZES = {  # (min_wal_size, max_wal_size) in kB
    "web": (1 * GB, 4 * GB),
    "oltp": (2 * GB, 8 * GB),
    "dw": (4 * GB, 16 * GB),
    "desktop": (100 * MB, 2 * GB),
    "mixed": (1 * GB, 4 * GB),
}
IO_CONCURRENCY = {"hdd": 2, "ssd": 200, "san": 300, "nvme": 1000}

# Settings a hot standby must hold at least as high as its primary (else it refuses to start or
# pauses recovery): raised on the standbys first, lowered on the primary first.
STANDBY_GUARDED = (
    "max_connections",
    "max_locks_per_transaction",
    "max_prepared_transactions",
    "max_wal_senders",
    "max_worker_processes",
)

DIFFERENCES = {
    "max_connections": "without max_connections the tune module keeps the server's own value "
    "(pgtune assumes one per workload): tuning does not change the connection limit silently",
    "wal_level": "pgtune writes wal_level = minimal and max_wal_senders = 0 for desktop; left out: "
    "they end replication, WAL archiving and backups",
    "wal_compression": "lz4 (as pgtune) only when the server was built with lz4, else pglz",
}


class TuneError(DbarchError, ValueError):
    pass


def parse_memory(text):
    """'8GB', '512MB', '16 GB', 8589934592 (bytes as a number) -> kB (int)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(text // 1024)
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|MB|GB|TB)?\s*$", str(text or ""))
    if not match:
        raise TuneError("memory=%r is not a size: write it as PostgreSQL does, e.g. 8GB or 512MB" % (text,))
    kb = int(float(match.group(1)) * _UNITS[match.group(2) or "B"])
    if kb < 256 * MB:
        raise TuneError(
            "memory=%r is below 256MB: pgtune's formulas are not meant for so little memory" % (text,)
        )
    return kb


def format_kb(kb):
    """kB -> the text PostgreSQL writes for it (largest unit that divides it): 2GB, 1536MB, 20971kB."""
    kb = int(kb)
    if kb and kb % GB == 0:
        return "%dGB" % (kb // GB)
    if kb and kb % MB == 0:
        return "%dMB" % (kb // MB)
    return "%dkB" % kb


def _num(value):
    if isinstance(value, float):
        return ("%.3f" % value).rstrip("0").rstrip(".")
    return str(value)


def recommend(memory, workload="web", storage="ssd", cpus=None, max_connections=None, major=18, lz4=True):
    """pgtune's settings for a Linux server. Returns an ordered list of dicts:
    ``name``, ``value`` (text as PostgreSQL writes it), ``why``.

    ``memory`` is a size text or kB number (``parse_memory``); ``cpus`` may be None (no
    parallel settings, as pgtune); ``max_connections`` None is pgtune's default per workload.
    """
    if workload not in WORKLOADS:
        raise TuneError("workload=%r: use one of %s" % (workload, ", ".join(WORKLOADS)))
    if storage not in STORAGES:
        raise TuneError("storage=%r: use one of %s" % (storage, ", ".join(STORAGES)))
    if cpus is not None and int(cpus) < 1:
        raise TuneError("cpus=%r: give the number of CPU cores (1 or more)" % (cpus,))
    if max_connections is not None and int(max_connections) < 1:
        raise TuneError("max_connections=%r must be 1 or more" % (max_connections,))
    total = parse_memory(memory) if not isinstance(memory, int) else memory
    cpus = int(cpus) if cpus else None
    out = []

    def add(name, value, why):
        out.append(dict(name=name, value=value if isinstance(value, str) else _num(value), why=why))

    conns = int(max_connections) if max_connections else DEFAULT_CONNECTIONS[workload]
    add(
        "max_connections",
        conns,
        "given"
        if max_connections
        else "pgtune's default for a %s workload (use a pooler beyond it)" % workload,
    )

    shared = total // 16 if workload == "desktop" else total // 4
    add(
        "shared_buffers",
        format_kb(shared),
        "%s of memory (%s)" % ("1/16" if workload == "desktop" else "1/4", format_kb(total)),
    )
    add(
        "effective_cache_size",
        format_kb(total // 4 if workload == "desktop" else total * 3 // 4),
        "what the OS page cache plus shared_buffers can hold: %s of memory (planner estimate only)"
        % ("1/4" if workload == "desktop" else "3/4"),
    )

    maint = total // 8 if workload == "dw" else total // 16
    maint = min(maint, 8 * GB)
    add(
        "maintenance_work_mem",
        format_kb(maint),
        "%s of memory, at most 8GB (VACUUM, CREATE INDEX)" % ("1/8" if workload == "dw" else "1/16"),
    )
    add("checkpoint_completion_target", 0.9, "spread checkpoint writes over 90 % of the interval")

    wal_buffers = shared * 3 // 100
    wal_buffers = min(wal_buffers, 16 * MB)
    if 14 * MB < wal_buffers < 16 * MB:
        wal_buffers = 16 * MB
    wal_buffers = max(wal_buffers, 32)
    add(
        "wal_buffers",
        format_kb(wal_buffers),
        "3 % of shared_buffers, at most 16MB (PostgreSQL's own auto-tuning rule)",
    )

    add(
        "default_statistics_target",
        500 if workload == "dw" else 100,
        "larger samples for the planner on analytic queries" if workload == "dw" else "PostgreSQL's default",
    )
    add(
        "random_page_cost",
        4 if storage == "hdd" else 1.1,
        "a random read costs %s a sequential one on %s"
        % ("4 times" if storage == "hdd" else "about as much as", storage),
    )
    add(
        "effective_io_concurrency",
        IO_CONCURRENCY[storage],
        "concurrent I/O requests %s storage can serve" % storage,
    )

    parallel = []
    if cpus and cpus >= 4:
        per_gather = int(math.ceil(cpus / 2.0))
        if workload != "dw":
            per_gather = min(per_gather, 4)
        parallel = [
            ("max_worker_processes", cpus, "one background worker per core"),
            (
                "max_parallel_workers_per_gather",
                per_gather,
                "half the cores%s" % ("" if workload == "dw" else ", at most 4 (little gain beyond)"),
            ),
            ("max_parallel_workers", cpus, "one parallel worker per core"),
            (
                "max_parallel_maintenance_workers",
                min(int(math.ceil(cpus / 2.0)), 4),
                "half the cores, at most 4",
            ),
        ]
    workers_for_mem = cpus if parallel else 8
    base = (total - shared) / float((conns + workers_for_mem) * 3)
    divisor = {"web": 1, "oltp": 1, "dw": 2, "desktop": 6, "mixed": 2}[workload]
    work_mem = max(int(math.floor(base / divisor)), 4 * MB)
    add(
        "work_mem",
        format_kb(work_mem),
        "(memory - shared_buffers) / ((max_connections %d + workers %d) * 3)%s, at least 4MB"
        % (conns, workers_for_mem, "" if divisor == 1 else " / %d" % divisor),
    )
    add(
        "huge_pages",
        "try" if shared >= 2 * GB else "off",
        "huge pages pay off from 2GB of shared_buffers" if shared >= 2 * GB else "shared_buffers under 2GB",
    )
    low, high = WAL_SIZES[workload]
    add("min_wal_size", format_kb(low), "WAL kept for reuse for a %s workload" % workload)
    add(
        "max_wal_size",
        format_kb(high),
        "WAL between checkpoints for a %s workload (fewer forced checkpoints)" % workload,
    )
    for name, value, why in parallel:
        add(name, value, why)
    if workload in ("web", "oltp", "mixed"):
        add("jit", "off", "JIT costs more than it saves on short queries")
    if major >= 15:
        add(
            "wal_compression",
            "lz4" if lz4 else "pglz",
            "compress full-page images in WAL%s" % ("" if lz4 else " (server built without lz4)"),
        )
    else:
        add("wal_compression", "on", "compress full-page images in WAL (pglz)")
    if cpus and cpus >= 16:
        add("autovacuum_max_workers", 5 if cpus >= 32 else 4, "more autovacuum workers on a large server")
    if maint >= 2 * GB:
        add(
            "autovacuum_work_mem",
            format_kb(2 * GB),
            "each autovacuum worker at most 2GB (maintenance_work_mem is larger)",
        )
    return out


def as_dict(recommended):
    return dict((r["name"], r["value"]) for r in recommended)


# --------------------------------------------------------------------------------------------------
# Rolling apply and restart
# --------------------------------------------------------------------------------------------------


def _compare(a, b):
    """-1, 0, 1 for two numeric setting values (text with units allowed); None when not numbers."""
    try:
        fa, fb = _to_number(a), _to_number(b)
    except (TypeError, ValueError):
        return None
    return (fa > fb) - (fa < fb)


def _to_number(value):
    match = re.match(r"^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$", str(value))
    if not match:
        raise ValueError(value)
    unit = match.group(2)
    return float(match.group(1)) * (_UNITS[unit] if unit else 1)


def rolling_plan(primary, standbys, current, wanted):
    """The safe order to apply ``wanted`` settings ({name: value}) and restart a primary and its
    standbys. ``current`` is {name: value} as the nodes hold them now (the same on each, as
    streaming replication requires of the guarded settings).

    Returns a list of steps ``{node, settings, restart, why}``:
    1. when a guarded setting (STANDBY_GUARDED) is lowered: the primary first, with the lowered
       guarded settings only (a standby may hold more than its primary);
    2. each standby, one after the other, with every change;
    3. the primary with the rest (raised guarded settings last: the standbys already hold them).
    A node with nothing left to change gets no step.
    """
    standbys = list(standbys)
    changes = dict((n, v) for n, v in wanted.items() if str(current.get(n)) != str(v))
    lowered = dict(
        (n, v) for n, v in changes.items() if n in STANDBY_GUARDED and _compare(v, current.get(n)) == -1
    )
    steps = []
    if lowered and standbys:
        steps.append(
            dict(
                node=primary,
                settings=lowered,
                restart=True,
                why="lower %s on the primary first: a standby may hold more than its primary, not less"
                % ", ".join(sorted(lowered)),
            )
        )
    for standby in standbys:
        if changes:
            steps.append(
                dict(
                    node=standby,
                    settings=dict(changes),
                    restart=True,
                    why="standbys before the primary: raised guarded settings reach them first",
                )
            )
    rest = dict((n, v) for n, v in changes.items() if not (standbys and n in lowered))
    if rest:
        steps.append(
            dict(
                node=primary,
                settings=rest,
                restart=True,
                why="the primary last" if standbys else "no standby: the primary alone",
            )
        )
    return steps


# --------------------------------------------------------------------------------------------------
# Against a server
# --------------------------------------------------------------------------------------------------

SERVER_SQL = (
    "SELECT current_setting('max_connections')::int AS max_connections, pg_is_in_recovery() AS in_recovery, "
    "(SELECT enumvals FROM pg_settings WHERE name = 'wal_compression') AS wal_compression_values, "
    "current_setting('data_directory', true) AS data_directory"
)
GUARDED_SQL = "SELECT name, setting FROM pg_settings WHERE name = ANY (%s)"
STANDBYS_SQL = (
    "SELECT coalesce(nullif(application_name, ''), client_addr::text, 'standby') AS name "
    "FROM pg_stat_replication ORDER BY 1"
)


def host_memory(proc_root="/proc"):
    """MemTotal of this host in kB, or None."""
    try:
        with open(proc_root + "/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def for_server(session, memory, workload, storage, cpus=None, max_connections=None):
    """recommend() for the connected server: its major, its lz4 build, its max_connections when none
    is given. Returns (recommended list, server facts)."""
    facts = dict(session.fetchone(SERVER_SQL))
    lz4 = "lz4" in (facts.get("wal_compression_values") or [])
    conns = max_connections or facts["max_connections"]
    recommended = recommend(
        memory,
        workload=workload,
        storage=storage,
        cpus=cpus,
        max_connections=conns,
        major=session.major,
        lz4=lz4,
    )
    if not max_connections:
        for r in recommended:
            if r["name"] == "max_connections":
                r["why"] = (
                    "the server's own (give max_connections to change it: pgtune assumes %d for %s)"
                    % (
                        DEFAULT_CONNECTIONS[workload],
                        workload,
                    )
                )
    return recommended, facts


def server_plan(session, wanted, current, facts):
    """rolling_plan() for this server and the standbys streaming from it (pg_stat_replication);
    ``current`` is {name: value now} (the setting engine's plan). Empty on a standby: the plan is
    the primary's to make."""
    if facts.get("in_recovery"):
        return []
    standbys = [r["name"] for r in session.fetchall(STANDBYS_SQL)]
    return rolling_plan("primary", standbys, current, wanted)


def lowered_guarded(session, wanted):
    """The guarded settings ``wanted`` lowers on the connected server (for a primary's first step)."""
    current = dict((r["name"], r["setting"]) for r in session.fetchall(GUARDED_SQL, (list(STANDBY_GUARDED),)))
    return sorted(n for n, v in wanted.items() if n in STANDBY_GUARDED and _compare(v, current.get(n)) == -1)
