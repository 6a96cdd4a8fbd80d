# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Query latency p95 for the health dashboard, from what the server keeps.

pg_stat_statements keeps, per statement, the number of calls and the mean, standard deviation,
minimum and maximum execution time: not a distribution. ``estimate_percentile`` combines them into
one: each statement's times are taken as a log-normal distribution with the statement's mean and
standard deviation (latencies are skewed to the right; a normal one would put mass below zero),
cut to the statement's [min, max]; the statements are mixed by their number of calls, and the
percentile of the mixture is found by bisection. The result is an ESTIMATE (labelled so by
health_info), over everything since the statistics were last reset, never an exact p95:
bench/latency/run.py measures its error against pgbench's per-transaction log.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.query import query_stats

METHOD = "log-normal mixture of pg_stat_statements per-statement calls, mean, stddev, min and max"


class LatencyError(DbarchError, ValueError):
    pass


def _normal_cdf(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def statement_cdf(x, mean, stddev, min_time=None, max_time=None):
    """P(time <= x) for one statement: log-normal with this mean and stddev, cut to [min, max]."""
    lo = min_time if min_time is not None else 0.0
    hi = max_time if max_time is not None else float("inf")
    if x < lo:
        return 0.0
    if x >= hi:
        return 1.0
    if mean is None or mean <= 0:
        return 1.0
    if not stddev or stddev <= 0:
        return 1.0 if x >= mean else 0.0
    s2 = math.log(1.0 + (stddev / mean) ** 2)
    s = math.sqrt(s2)
    mu = math.log(mean) - s2 / 2.0

    def raw(v):
        return 0.0 if v <= 0 else _normal_cdf((math.log(v) - mu) / s)

    a = raw(lo) if lo > 0 else 0.0
    b = raw(hi) if hi != float("inf") else 1.0
    if b - a <= 1e-12:
        return 1.0 if x >= mean else 0.0
    return min(1.0, max(0.0, (raw(x) - a) / (b - a)))


def estimate_percentile(statements, quantile=0.95):
    """The ``quantile`` of the call-weighted mixture of ``statements`` (dicts with calls, mean_time,
    stddev_time and optionally min_time, max_time; times in ms). None when no statement has calls."""
    if not 0 < quantile < 1:
        raise LatencyError("quantile=%r must be between 0 and 1." % quantile)
    rows = [r for r in statements if (r.get("calls") or 0) > 0 and r.get("mean_time") is not None]
    total = float(sum(r["calls"] for r in rows))
    if not total:
        return None

    def cdf(x):
        return (
            sum(
                r["calls"]
                * statement_cdf(x, r["mean_time"], r.get("stddev_time"), r.get("min_time"), r.get("max_time"))
                for r in rows
            )
            / total
        )

    hi = max(
        [1e-6]
        + [r.get("max_time") or 0 for r in rows]
        + [r["mean_time"] + 10 * (r.get("stddev_time") or 0) for r in rows]
    )
    while cdf(hi) < quantile:
        hi *= 2
    lo = 0.0
    for _step in range(100):
        mid = (lo + hi) / 2.0
        if cdf(mid) >= quantile:
            hi = mid
        else:
            lo = mid
        if hi - lo <= max(1e-6, hi * 1e-6):
            break
    return hi


def from_pg_stat_statements(session, quantile=0.95, all_databases=True):
    """The p95 estimate from pg_stat_statements (top-level statements of every database where the
    role may read them), with its facts: dict(value_ms, source, method, statements, calls, since),
    or dict(value_ms=None, reason=...) when it cannot be read."""
    st = query_stats.status(session)
    if not st["usable"]:
        return dict(value_ms=None, source="pg_stat_statements", reason=query_stats.message(st))
    data = query_stats.read(session, st, all_databases=all_databases)
    rows = [r for r in data["statements"] if r.get("toplevel") is not False and r.get("calls")]
    value = estimate_percentile(rows, quantile)
    return dict(
        value_ms=None if value is None else round(value, 3),
        source="estimate",
        method=METHOD,
        view="pg_stat_statements",
        statements=len(rows),
        calls=int(sum(r["calls"] for r in rows)),
        since=data["stats_reset"],
        reason=None if value is not None else "pg_stat_statements has recorded no call yet",
    )
