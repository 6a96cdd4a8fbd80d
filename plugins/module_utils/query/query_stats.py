# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Top statements from pg_stat_statements, snapshots and the delta between two of them.

- ``status(session)``: is the extension installed in this database, is the library in
  shared_preload_libraries, and the SQL or setting that fixes what is missing;
- ``read(session, ...)``: the statements of the current database (or all), with their
  columns picked by ``versions.Features.pgss_columns`` and checked against the view the
  installed extension version really has;
- ``make_snapshot`` / ``delta``: a compact snapshot a playbook can register and pass back
  (``since``), and the difference between it and now, surviving a stats reset and
  statements that were evicted or re-entered;
- ``top`` and ``findings``: ordering, limit, and findings in the shared Finding format.
Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import math
from decimal import Decimal

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg, redact
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.findings import Finding
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features

EXTENSION = "pg_stat_statements"
SNAPSHOT_FORMAT = 1
INSUFFICIENT = "<insufficient privilege>"

# order_by choice -> metric of a statement (descending; cache_hit_ratio ascending).
ORDER_BY = {
    "total_time": "total_time_ms",
    "mean_time": "mean_time_ms",
    "calls": "calls",
    "rows": "rows",
    "temp_blocks": "temp_blks",
    "io": "shared_blks_read",
    "shared_blks_read": "shared_blks_read",
    "io_time": "io_time_ms",
    "cache_hit_ratio": "cache_hit_ratio",
}

# Counters kept in a snapshot (they only grow between two resets), in this order.
COUNTERS = (
    "calls",
    "total_time",
    "rows",
    "shared_blks_hit",
    "shared_blks_read",
    "temp_blks_read",
    "temp_blks_written",
    "blk_read_time",
    "blk_write_time",
    "total_plan_time",
    "wal_bytes",
    "temp_blk_read_time",
    "temp_blk_write_time",
    "jit_time",
)

DEFAULT_THRESHOLDS = dict(
    # QS-CACHE-001: hit ratio under this ...
    cache_hit_ratio=0.9,
    # ... on at least this many blocks touched.
    cache_min_blocks=1000,
    # QS-TEMP-001: temp blocks written (8 kB each) at least this many.
    temp_blocks=1000,
    # QS-LAT-001 (with compare_to): mean time grown by more than this ratio ...
    latency_ratio=1.5,
    # ... over at least this many calls after ...
    latency_min_calls=1,
    # ... by at least this many milliseconds a call ...
    latency_min_delta_ms=0.1,
    # ... and by more than this many standard errors of the mean, the spread being the statement's
    # stddev before (a slower mean within the statement's usual scatter is noise, not a regression).
    latency_noise_sigmas=3.0,
)

_Q_STATUS = """
SELECT e.extversion AS installed_version, n.nspname AS schema,
       (SELECT default_version FROM pg_available_extensions WHERE name = %(ext)s) AS available_version,
       (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries') AS preload,
       current_database() AS database,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser
FROM (SELECT 1) AS one
LEFT JOIN pg_extension e ON e.extname = %(ext)s
LEFT JOIN pg_namespace n ON n.oid = e.extnamespace
"""

_Q_VIEW_COLUMNS = """
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""


class QueryStatsError(DbarchError):
    pass


def thresholds(overrides=None):
    out = dict(DEFAULT_THRESHOLDS)
    for key, value in (overrides or {}).items():
        if key not in out:
            raise QueryStatsError(
                "thresholds: unknown key %r; valid keys: %s." % (key, ", ".join(sorted(DEFAULT_THRESHOLDS)))
            )
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            raise QueryStatsError("thresholds.%s must be a number, got %r." % (key, value)) from None
    return out


def _json(v):
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    return v


def status(session):
    """Whether pg_stat_statements can be read here, and how to fix it when it cannot.

    Returns {installed, installed_version, schema, available, preloaded (True/False/None when
    the role may not read the setting), usable, problems: [{problem, fix}], read_all_stats}.
    """
    row = session.fetchone(_Q_STATUS, dict(ext=EXTENSION))
    preload = row["preload"]
    preloaded = None
    if preload is not None:
        libs = [p.strip().strip('"') for p in preload.split(",")]
        preloaded = any(lib == EXTENSION or lib.endswith("/" + EXTENSION) for lib in libs)
    out = dict(
        installed=row["installed_version"] is not None,
        installed_version=row["installed_version"],
        available_version=row["available_version"],
        schema=row["schema"],
        database=row["database"],
        preloaded=preloaded,
        read_all_stats=bool(row["superuser"] or row["read_all_stats"]),
        problems=[],
    )
    if row["available_version"] is None:
        out["problems"].append(
            dict(
                problem="pg_stat_statements is not available on this server "
                "(the contrib package is missing).",
                fix="Install the PostgreSQL contrib package of this server's version "
                "(e.g. postgresql-contrib), then follow the steps below.",
            )
        )
    if preloaded is False:
        out["problems"].append(
            dict(
                problem="pg_stat_statements is not in shared_preload_libraries, so no statement is recorded.",
                fix="ALTER SYSTEM SET shared_preload_libraries = '%s' "
                "(keep the libraries already listed: %s), "
                "then restart PostgreSQL."
                % (", ".join(filter(None, [preload, EXTENSION])), preload or "none"),
            )
        )
    if not out["installed"]:
        out["problems"].append(
            dict(
                problem="The extension pg_stat_statements is not installed in database %s." % row["database"],
                fix="CREATE EXTENSION pg_stat_statements; "
                "(in database %s, as a superuser or the database owner)" % row["database"],
            )
        )
    out["usable"] = out["installed"] and preloaded is not False
    return out


def message(st):
    """One paragraph for a failed or skipped read: every problem and its fix."""
    return " ".join("%s Fix: %s" % (p["problem"], p["fix"]) for p in st["problems"])


def _view(st):
    return pg.ident(st["schema"], "pg_stat_statements")


def columns(session, st):
    """{logical: column or None} for this server, checked against the installed view.

    Returns (columns, missing) where missing lists the logical names the version should
    have but the installed extension version lacks (ALTER EXTENSION ... UPDATE adds them).
    """
    feats = Features(session.server_version_num)
    wanted = feats.pgss_columns
    qualified = "%s.pg_stat_statements" % pg.quote_ident_text(st["schema"])
    have = {r["attname"] for r in session.fetchall(_Q_VIEW_COLUMNS, (qualified,))}
    out, missing = {}, []
    for logical, col in wanted.items():
        present = col is not None and col in have
        if col is not None and not present:
            missing.append(logical)
        out[logical] = col if present else None
    jit = [c for c in feats.pgss_jit_time_columns if c in have]
    return out, missing, jit


def _select(st, cols, jit, all_databases):
    S = pg.pgsql.SQL
    items = [
        S("s.userid"),
        S("s.dbid"),
        S("s.queryid"),
        S("s.query"),
        S("r.rolname AS username"),
        S("r.rolsuper AS user_superuser"),
        S("d.datname AS database"),
    ]
    for logical, col in sorted(cols.items()):
        if col is None:
            items.append(S("NULL AS {}").format(pg.ident(logical)))
        else:
            items.append(S("s.{} AS {}").format(pg.ident(col), pg.ident(logical)))
    if jit:
        items.append(S("({}) AS jit_time").format(S(" + ").join(S("s.{}").format(pg.ident(c)) for c in jit)))
    else:
        items.append(S("NULL AS jit_time"))
    query = S(
        "SELECT {} FROM {} s LEFT JOIN pg_roles r ON r.oid = s.userid "
        "LEFT JOIN pg_database d ON d.oid = s.dbid"
    ).format(S(", ").join(items), _view(st))
    if not all_databases:
        query += S(" WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())")
    return query


def stats_reset_of(session, st):
    """pg_stat_statements_info.stats_reset (extension 1.9+), or None."""
    rel = "%s.pg_stat_statements_info" % pg.quote_ident_text(st["schema"])
    if not session.scalar("SELECT to_regclass(%s) IS NOT NULL", (rel,)):
        return None, None
    row = session.fetchone(
        pg.pgsql.SQL("SELECT stats_reset, dealloc FROM {}").format(
            pg.ident(st["schema"], "pg_stat_statements_info")
        )
    )
    return _json(row["stats_reset"]), row["dealloc"]


def read(session, st, all_databases=False):
    """Statements and facts as a dict: statements (raw rows), stats_reset, dealloc, taken_at,
    columns (logical -> column used), missing_columns."""
    cols, missing, jit = columns(session, st)
    taken = session.scalar("SELECT now()")
    reset, dealloc = stats_reset_of(session, st)
    rows = session.fetchall(_select(st, cols, jit, all_databases))
    out = []
    for row in rows:
        r = {k: _json(v) for k, v in row.items()}
        r["key"] = "%s:%s:%s:%s" % (
            r["userid"],
            r["dbid"],
            r["queryid"],
            "t" if r["toplevel"] is not False else "f",
        )
        out.append(r)
    return dict(
        statements=out,
        stats_reset=reset,
        dealloc=dealloc,
        taken_at=_json(taken),
        columns=dict((k, v) for k, v in cols.items() if v is not None),
        missing_columns=missing,
        jit_columns=jit,
    )


def make_snapshot(data, st, version_num):
    """A compact snapshot to register and pass back as ``since``."""
    stmts = {}
    for r in data["statements"]:
        stmts[r["key"]] = [r.get(c) or 0 for c in COUNTERS]
    return dict(
        format=SNAPSHOT_FORMAT,
        taken_at=data["taken_at"],
        stats_reset=data["stats_reset"],
        database=st["database"],
        server_version_num=version_num,
        counters=list(COUNTERS),
        statements=stmts,
    )


def check_snapshot(since):
    if not isinstance(since, dict) or since.get("format") != SNAPSHOT_FORMAT or "statements" not in since:
        raise QueryStatsError(
            "since must be the snapshot returned by an earlier query_stats_info run (register the task "
            "and pass <result>.snapshot), format %d." % SNAPSHOT_FORMAT
        )
    if list(since.get("counters") or []) != list(COUNTERS):
        raise QueryStatsError(
            "since holds counters %s, expected %s." % (since.get("counters"), list(COUNTERS))
        )


def delta(data, since):
    """Subtract the snapshot ``since`` from ``data``; returns (rows, info).

    - stats reset after the snapshot: the current counters are the delta (they restarted);
    - a statement whose counters went down, or (17+) whose stats_since is after the snapshot,
      was evicted and recorded again: its current counters are the delta;
    - statements in the snapshot and gone now are counted as ``disappeared``;
    - statements with no call in between are left out.
    """
    check_snapshot(since)
    reset = bool(
        data["stats_reset"] and since.get("stats_reset") and data["stats_reset"] != since["stats_reset"]
    )
    old = since["statements"]
    out, reentered = [], 0
    for r in data["statements"]:
        before = None if reset else old.get(r["key"])
        if (
            (
                before is not None
                and r.get("stats_since")
                and since.get("taken_at")
                and r["stats_since"] > since["taken_at"]
            )
            or before is not None
            and (r.get("calls") or 0) < before[0]
        ):
            before = None
            reentered += 1
        d = dict(r)
        if before is not None:
            for i, name in enumerate(COUNTERS):
                if d.get(name) is not None:
                    d[name] = d[name] - (before[i] or 0)
            for name in ("mean_time", "min_time", "max_time", "stddev_time"):
                d[name] = None
            if d["calls"]:
                d["mean_time"] = d["total_time"] / d["calls"]
        if d.get("calls"):
            out.append(d)
    current = {r["key"] for r in data["statements"]}
    info = dict(
        since=since.get("taken_at"),
        until=data["taken_at"],
        stats_reset_between=reset,
        reentered=reentered,
        disappeared=0 if reset else len([k for k in old if k not in current]),
        new=len([k for k in current if k not in old]),
    )
    return out, info


def shape(r):
    """One statement as the module returns it; password literals in its text are masked
    (``redact.statement``); the raw text stays in ``r["query"]`` for the engine."""

    def num(name, digits=3):
        v = r.get(name)
        return None if v is None else round(float(v), digits)

    hit, read_ = int(r.get("shared_blks_hit") or 0), int(r.get("shared_blks_read") or 0)
    io = [r.get("blk_read_time"), r.get("blk_write_time")]
    return dict(
        queryid=None if r.get("queryid") is None else str(r["queryid"]),
        query=redact.statement(r.get("query")),
        user=r.get("username"),
        user_superuser=r.get("user_superuser"),
        database=r.get("database"),
        toplevel=r.get("toplevel"),
        calls=int(r.get("calls") or 0),
        total_time_ms=num("total_time"),
        mean_time_ms=num("mean_time"),
        min_time_ms=num("min_time"),
        max_time_ms=num("max_time"),
        stddev_time_ms=num("stddev_time"),
        plan_time_ms=num("total_plan_time"),
        rows=int(r.get("rows") or 0),
        shared_blks_hit=hit,
        shared_blks_read=read_,
        cache_hit_ratio=round(hit / float(hit + read_), 4) if hit + read_ else None,
        temp_blks_read=int(r.get("temp_blks_read") or 0),
        temp_blks_written=int(r.get("temp_blks_written") or 0),
        temp_blks=int(r.get("temp_blks_read") or 0) + int(r.get("temp_blks_written") or 0),
        blk_read_time_ms=num("blk_read_time"),
        blk_write_time_ms=num("blk_write_time"),
        io_time_ms=None if io == [None, None] else round(sum(float(x or 0) for x in io), 3),
        temp_blk_read_time_ms=num("temp_blk_read_time"),
        temp_blk_write_time_ms=num("temp_blk_write_time"),
        wal_bytes=None if r.get("wal_bytes") is None else int(r["wal_bytes"]),
        jit_time_ms=num("jit_time"),
        stats_since=r.get("stats_since"),
    )


def top(statements, order_by="total_time", limit=20):
    key = ORDER_BY[order_by]
    if order_by == "cache_hit_ratio":
        rows = [s for s in statements if s[key] is not None]
        rows.sort(key=lambda s: (s[key], -s["shared_blks_read"]))
    else:
        rows = list(statements)
        rows.sort(key=lambda s: s[key] if s[key] is not None else -1, reverse=True)
    return rows[:limit] if limit else rows


def _short(query, n=120):
    text = " ".join(str(query or "").split())
    return text if len(text) <= n else text[: n - 3] + "..."


def findings(statements, overrides=None):
    t = thresholds(overrides)
    out = []
    for s in statements:
        obj = "queryid %s" % s["queryid"]
        blocks = s["shared_blks_hit"] + s["shared_blks_read"]
        if (
            s["cache_hit_ratio"] is not None
            and blocks >= t["cache_min_blocks"]
            and s["cache_hit_ratio"] < t["cache_hit_ratio"]
        ):
            out.append(
                Finding(
                    rule="QS-CACHE-001",
                    title="Statement with a low cache hit ratio",
                    severity="medium",
                    object=obj,
                    message="%s reads %.0f%% of its %d blocks from outside shared buffers: %s"
                    % (obj, 100 * (1 - s["cache_hit_ratio"]), blocks, _short(s["query"])),
                    why="Blocks not in shared_buffers come from the OS cache or disk; a statement that reads "
                    "most of its data usually scans more than it needs.",
                    fix="EXPLAIN (ANALYZE, BUFFERS) the statement (dbarch.postgresql.explain) and index its "
                    "filters; if the working set is hot and larger than shared_buffers, size shared_buffers "
                    "to it.",
                    evidence=dict(
                        queryid=s["queryid"],
                        calls=s["calls"],
                        shared_blks_hit=s["shared_blks_hit"],
                        shared_blks_read=s["shared_blks_read"],
                        cache_hit_ratio=s["cache_hit_ratio"],
                        query=_short(s["query"], 300),
                    ),
                )
            )
        if s["temp_blks_written"] >= t["temp_blocks"]:
            out.append(
                Finding(
                    rule="QS-TEMP-001",
                    title="Statement writing temporary files",
                    severity="medium",
                    object=obj,
                    message="%s wrote %d temporary blocks (%d kB) in %d calls: "
                    "its sorts or hashes spill to disk: %s"
                    % (
                        obj,
                        s["temp_blks_written"],
                        s["temp_blks_written"] * 8,
                        s["calls"],
                        _short(s["query"]),
                    ),
                    why="Sorts and hashes larger than work_mem go to temporary files, "
                    "many times slower than memory.",
                    fix="EXPLAIN (ANALYZE) it to find the spilling node; raise work_mem for the role or "
                    "session that runs it (ALTER ROLE ... SET work_mem = '64MB'), "
                    "or add an index that avoids the sort.",
                    evidence=dict(
                        queryid=s["queryid"],
                        calls=s["calls"],
                        temp_blks_written=s["temp_blks_written"],
                        temp_blks_read=s["temp_blks_read"],
                        query=_short(s["query"], 300),
                    ),
                )
            )
    out.sort(key=lambda f: f.sort_key())
    return out


def _noise_ms(before, after):
    """Standard error (ms) of the difference of the two means if the calls after were spread as the
    calls before (the stddev of the calls before); None when the stddev before is not known."""
    spread = before.get("stddev_time_ms")
    n_before, n_after = before.get("calls") or 0, after.get("calls") or 0
    if spread is None or n_before <= 0 or n_after <= 0:
        return None
    return float(spread) * math.sqrt(1.0 / n_before + 1.0 / n_after)


def compare(before, after, overrides=None):
    """Mean time per statement before (an earlier run's statements) and after (these statements).

    Returns (comparison, findings): one row per statement present on both sides with a mean
    time before, most grown first, and a QS-LAT-001 finding for each that grew past
    ``latency_ratio`` over at least ``latency_min_calls`` calls, by at least ``latency_min_delta_ms``
    and by more than ``latency_noise_sigmas`` standard errors (when the stddev before is known).
    """
    t = thresholds(overrides)
    earlier = {}
    for s in before or []:
        if isinstance(s, dict) and s.get("queryid") is not None and s.get("mean_time_ms"):
            earlier[str(s["queryid"])] = s
    rows, out = [], []
    for s in after or []:
        b = earlier.get(str(s.get("queryid")))
        if b is None or s.get("mean_time_ms") is None:
            continue
        ratio = s["mean_time_ms"] / b["mean_time_ms"]
        grown = s["mean_time_ms"] - b["mean_time_ms"]
        noise = _noise_ms(b, s)
        rows.append(
            dict(
                queryid=s["queryid"],
                query=_short(s["query"], 300),
                mean_ms_before=b["mean_time_ms"],
                mean_ms_after=s["mean_time_ms"],
                calls_before=b.get("calls"),
                calls_after=s.get("calls"),
                ratio=round(ratio, 3),
                standard_error_ms=None if noise is None else round(noise, 4),
            )
        )
        if (
            ratio > t["latency_ratio"]
            and (s.get("calls") or 0) >= t["latency_min_calls"]
            and grown >= t["latency_min_delta_ms"]
            and (noise is None or grown > t["latency_noise_sigmas"] * noise)
        ):
            obj = "queryid %s" % s["queryid"]
            out.append(
                Finding(
                    rule="QS-LAT-001",
                    title="Statement slower than before",
                    severity="medium",
                    object=obj,
                    message="%s went from %.3f ms to %.3f ms a call (x%.2f, %d calls after): %s"
                    % (
                        obj,
                        b["mean_time_ms"],
                        s["mean_time_ms"],
                        ratio,
                        s.get("calls") or 0,
                        _short(s["query"]),
                    ),
                    why="A change (a migration, a dropped or rebuilt index, a rewritten table without fresh "
                    "statistics) that makes the statements the application runs slower is a regression even "
                    "when it succeeded.",
                    fix="EXPLAIN (ANALYZE, BUFFERS) the statement (dbarch.postgresql.explain) and compare "
                    "its plan with the one before; ANALYZE the tables that were rewritten; restore an index "
                    "that was dropped.",
                    evidence=rows[-1],
                )
            )
    rows.sort(key=lambda r: -r["ratio"])
    out.sort(key=lambda f: f.sort_key())
    return rows, out


def reset(session, st):
    """pg_stat_statements_reset(); returns the new stats_reset (or None before 1.9)."""
    fn = pg.pgsql.SQL("SELECT {}()").format(pg.ident(st["schema"], "pg_stat_statements_reset"))
    try:
        session.execute(fn)
    except pg.PgError as exc:
        if exc.sqlstate == "42501":
            raise pg.PgError(
                "%s Fix: run as a superuser, or GRANT EXECUTE ON FUNCTION %s.pg_stat_statements_reset "
                "TO the login role." % (exc.message, pg.quote_ident_text(st["schema"])),
                sqlstate=exc.sqlstate,
            ) from None
        raise
    return stats_reset_of(session, st)[0]
