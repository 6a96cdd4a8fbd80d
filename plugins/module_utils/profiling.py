# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only sampling of live tables for the data-driven schema review rules.

Two halves:
- ``sample(session, catalog, ...)`` reads at most ``sample_rows`` rows of each table in
  one READ ONLY transaction with a statement_timeout, one SELECT per table (plus a
  savepoint so one slow table does not end the whole profile). Tables over a size bound
  are skipped and named in the result.
- pure functions on the sampled rows (``null_free``, ``list_share``,
  ``dependency``), which the rules in ``schema_rules`` call and unit tests exercise.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import Counter, defaultdict

from ansible_collections.dbarch.postgresql.plugins.module_utils.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils import pg

DEFAULT_SAMPLE_ROWS = 10000
DEFAULT_STATEMENT_TIMEOUT = "30s"
# Tables above this size (heap + toast + indexes, from pg_class) are not sampled.
MAX_TABLE_BYTES = 10 * 1024 * 1024 * 1024
# Fewer sampled rows than this and the profile rules say nothing about the table.
MIN_ROWS = 50
# A -> B is reported when it holds on at least this share of the sampled rows ...
FD_MIN_RATIO = 0.99
# ... with at least this many distinct A values, each seen twice on average.
FD_MIN_DISTINCT = 5
# A text column is a comma-separated list when this share of its non-empty values is one.
LIST_MIN_SHARE = 0.5

# Types whose values are compared for dependencies and read as text; the rest is not sampled.
_SKIP_TYPES = re.compile(r"^(bytea|json|jsonb|xml|tsvector|tsquery|geometry|geography|oid)\b")

_LIST_RE = re.compile(
    r"^\s*[\w.@#+/:-]+(?: [\w.@#+/:-]+)?(?:\s*,\s*[\w.@#+/:-]+(?: [\w.@#+/:-]+)?)+\s*,?\s*$"
)


class ProfileError(DbarchError, ValueError):
    pass


def sampled_columns(table):
    """Columns worth sampling: scalar, not binary or document types, not arrays."""
    out = []
    for c in table.columns:
        t = str(c.type).lower()
        if t.endswith("[]") or _SKIP_TYPES.match(t):
            continue
        out.append(c.name)
    return out


def _sample_query(table, columns, sample_rows):
    cols = pg.pgsql.SQL(", ").join(pg.pgsql.SQL("{}::text").format(pg.ident(c)) for c in columns)
    rel = pg.ident(table.schema, table.name)
    rows = table.row_estimate or 0
    if rows > sample_rows * 2:
        # Block sampling: reads about twice the wanted share of pages, then cuts at the limit.
        pct = min(100.0, round(200.0 * sample_rows / rows, 4))
        return pg.pgsql.SQL("SELECT {} FROM {} TABLESAMPLE SYSTEM ({}) LIMIT {}").format(
            cols, rel, pg.pgsql.Literal(pct), pg.pgsql.Literal(int(sample_rows))
        )
    return pg.pgsql.SQL("SELECT {} FROM {} LIMIT {}").format(cols, rel, pg.pgsql.Literal(int(sample_rows)))


def sample(
    session, catalog, sample_rows=DEFAULT_SAMPLE_ROWS, statement_timeout=None, max_table_bytes=MAX_TABLE_BYTES
):
    """Sample every ordinary or partitioned table of ``catalog``.

    Returns {"schema.table": {"columns": [...], "rows": [tuple, ...], "sampled": n}} for the
    tables read, and ``skipped``: [{"table", "reason"}] for the others, as a dict
    ``{"tables": ..., "skipped": ..., "sample_rows": n, "statement_timeout": ...}``.
    """
    try:
        sample_rows = int(sample_rows)
    except (TypeError, ValueError):
        raise ProfileError("sample_rows=%r must be a whole number of rows." % (sample_rows,)) from None
    if sample_rows < 1:
        raise ProfileError("sample_rows must be at least 1 (got %d)." % sample_rows)
    timeout = pg.validate_timeout("statement_timeout", statement_timeout or DEFAULT_STATEMENT_TIMEOUT)
    result = dict(tables={}, skipped=[], sample_rows=sample_rows, statement_timeout=timeout)
    targets = [t for t in catalog.relations(("r", "p")) if not t.partition_of]
    conn = session.conn
    was_autocommit = conn.autocommit
    conn.autocommit = False
    try:
        conn.set_session(readonly=True)
        session.execute("SELECT set_config('statement_timeout', %s, true)", (timeout,))
        for t in targets:
            size = t.total_bytes
            if size is not None and size > max_table_bytes:
                result["skipped"].append(
                    dict(
                        table=t.qualified, reason="%d bytes, over the %d-byte bound" % (size, max_table_bytes)
                    )
                )
                continue
            columns = sampled_columns(t)
            if not columns:
                result["skipped"].append(dict(table=t.qualified, reason="no column of a sampled type"))
                continue
            session.execute("SAVEPOINT dbarch_profile", record=False)
            try:
                cur = session.execute(_sample_query(t, columns, sample_rows))
                rows = cur.fetchall()
                cur.close()
                session.execute("RELEASE SAVEPOINT dbarch_profile", record=False)
            except pg.PgError as exc:
                session.execute("ROLLBACK TO SAVEPOINT dbarch_profile", record=False)
                result["skipped"].append(dict(table=t.qualified, reason=str(exc)))
                continue
            result["tables"][t.qualified] = dict(columns=columns, rows=rows, sampled=len(rows))
    finally:
        conn.rollback()
        conn.set_session(readonly="DEFAULT")
        conn.autocommit = was_autocommit
    return result


# -- pure analysis on sampled rows ---------------------------------------------------------
def column_values(data, column):
    i = data["columns"].index(column)
    return [r[i] for r in data["rows"]]


def null_free(values):
    """True when there are values and none is NULL."""
    return bool(values) and all(v is not None for v in values)


def looks_like_list(value):
    """'red,green, blue' yes; 'Paris' or a sentence ('Hello, how are you today?') no."""
    return value is not None and bool(_LIST_RE.match(str(value)))


def list_share(values):
    """(share of non-empty values that are comma-separated lists, lists, non-empty)."""
    present = [v for v in values if v is not None and str(v).strip() != ""]
    if not present:
        return 0.0, 0, 0
    lists = sum(1 for v in present if looks_like_list(v))
    return lists / float(len(present)), lists, len(present)


def dependency(rows, a, b):
    """How well column index ``a`` determines column index ``b`` in ``rows``.

    Returns (ratio, distinct_a, counted): ``ratio`` is the share of rows (with a non-NULL
    A) whose B is the most common B of their A value -- 1.0 when A -> B holds exactly.
    """
    groups = defaultdict(Counter)
    counted = 0
    for r in rows:
        if r[a] is None:
            continue
        groups[r[a]][r[b]] += 1
        counted += 1
    if not counted:
        return 0.0, 0, 0
    agree = sum(c.most_common(1)[0][1] for c in groups.values())
    return agree / float(counted), len(groups), counted


def dependency_holds(rows, a, b, min_ratio=FD_MIN_RATIO, min_distinct=FD_MIN_DISTINCT):
    """(holds, ratio, distinct_a, counted). A must repeat (at most half as many distinct
    values as rows) and B must vary, otherwise the dependency says nothing."""
    ratio, distinct_a, counted = dependency(rows, a, b)
    if counted < MIN_ROWS or distinct_a < min_distinct or distinct_a * 2 > counted:
        return False, ratio, distinct_a, counted
    distinct_b = len({r[b] for r in rows if r[a] is not None})
    if distinct_b < 2:
        return False, ratio, distinct_a, counted
    return ratio >= min_ratio, ratio, distinct_a, counted


def dependencies(data, candidates, min_ratio=FD_MIN_RATIO, min_distinct=FD_MIN_DISTINCT):
    """Functional dependencies among ``candidates`` (column names) of one sampled table.

    Returns [(a, b, ratio, counted, both_ways)], each pair once: when A -> B and B -> A both
    hold the pair is reported once (A first in column order) with both_ways True.
    """
    cols = [c for c in candidates if c in data["columns"]]
    idx = dict((c, data["columns"].index(c)) for c in cols)
    rows = data["rows"]
    holds = {}
    for a in cols:
        for b in cols:
            if a == b:
                continue
            ok, ratio, _d, counted = dependency_holds(rows, idx[a], idx[b], min_ratio, min_distinct)
            if ok:
                holds[(a, b)] = (ratio, counted)
    out = []
    for (a, b), (ratio, counted) in holds.items():
        both = (b, a) in holds
        if both and cols.index(b) < cols.index(a):
            continue
        out.append((a, b, ratio, counted, both))
    return out


def percent(ratio):
    """99.5 -> '99.5%', 1.0 -> '100%' (never rounds a partial hold up to 100%)."""
    value = ratio * 100.0
    if value >= 100.0:
        return "100%"
    text = ("%.1f" % (int(value * 10) / 10.0)).rstrip("0").rstrip(".")
    return text + "%"
