# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only sampling of live tables for the data-driven schema review rules.

Two halves:
- ``sample(session, catalog, ...)`` reads a random sample of at most ``sample_rows`` rows
  of each table (TABLESAMPLE or ORDER BY random(), never the first rows) in one READ ONLY
  transaction with a statement_timeout, one SELECT per table (plus a savepoint so one
  slow table does not end the whole profile), and on small tables counts the NULLs of the
  columns that had none in the sample, so a NOT NULL proposal is exact there. Tables over
  a size bound are skipped and named in the result.
- pure functions on the sampled rows (``null_free``, ``list_share``,
  ``dependency``), which the rules in ``schema_rules`` call and unit tests exercise.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from collections import Counter, defaultdict

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg

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
# Tables of at most this many estimated rows get their NULLs counted exactly (one scan) before
# SET NOT NULL is proposed as certain; bigger ones get the proposal as sampled, with a precheck.
EXACT_MAX_ROWS = 200000
# TABLESAMPLE BERNOULLI (row by row, reads every page) up to this size, SYSTEM (by block) above.
BERNOULLI_MAX_BYTES = 256 * 1024 * 1024
# A text column is taken for a code from a fixed set (enum-like) only with strong evidence: at
# least this many non-empty sampled values, at most this many distinct ones, and no more
# distinct values than this share of the values; every value a short code (see _CODE_RE).
ENUM_MIN_VALUES = 100
ENUM_MAX_DISTINCT = 20
ENUM_MAX_DISTINCT_SHARE = 0.05
ENUM_MAX_LENGTH = 24
# A code: one token of letters, digits, '_', '-' or '.', all in one case (paid, IN_TRANSIT,
# EUR, 2fa). Not 'British Columbia', not 'application/pdf', not 'Ontario' (a name).
_CODE_RE = re.compile(r"^(?:[a-z0-9][a-z0-9_.-]*|[A-Z0-9][A-Z0-9_.-]*)$")
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


def _sample_query(table, columns, sample_rows, bernoulli_max_bytes=None):
    """(SQL, method) reading a RANDOM sample of at most ``sample_rows`` rows of ``table``.

    Never the first rows in physical order (a LIMIT alone reads the start of the heap, so
    what sits at its end, recent rows and their NULLs, is never seen):
    - tables estimated over ``sample_rows`` rows: TABLESAMPLE with a percentage computed to
      return about twice the wanted rows (BERNOULLI, row by row, up to
      ``bernoulli_max_bytes``; SYSTEM, block by block, above it so a big table is not read
      whole), then ``ORDER BY random() LIMIT`` picks the rows among them;
    - smaller (or never analyzed) tables: every row is read and ``ORDER BY random() LIMIT``
      keeps a random subset when there are more rows than the estimate said.
    """
    if bernoulli_max_bytes is None:
        bernoulli_max_bytes = BERNOULLI_MAX_BYTES
    cols = pg.pgsql.SQL(", ").join(pg.pgsql.SQL("{}::text").format(pg.ident(c)) for c in columns)
    rel = pg.ident(table.schema, table.name)
    limit = pg.pgsql.Literal(int(sample_rows))
    rows = table.row_estimate or 0
    if rows > sample_rows:
        pct = min(100.0, round(200.0 * sample_rows / rows, 4))
        size = table.total_bytes or 0
        method = "BERNOULLI" if size <= bernoulli_max_bytes else "SYSTEM"
        query = pg.pgsql.SQL("SELECT {} FROM {} TABLESAMPLE {} ({}) ORDER BY random() LIMIT {}").format(
            cols, rel, pg.pgsql.SQL(method), pg.pgsql.Literal(pct), limit
        )
        return query, method.lower()
    query = pg.pgsql.SQL("SELECT {} FROM {} ORDER BY random() LIMIT {}").format(cols, rel, limit)
    return query, "full"


def _null_count_query(table, columns):
    """One scan counting the rows and the NULLs of each of ``columns`` (exact, whole table)."""
    parts = [pg.pgsql.SQL("count(*)")] + [
        pg.pgsql.SQL("count(*) FILTER (WHERE {} IS NULL)").format(pg.ident(c)) for c in columns
    ]
    return pg.pgsql.SQL("SELECT {} FROM {}").format(
        pg.pgsql.SQL(", ").join(parts), pg.ident(table.schema, table.name)
    )


def null_candidates(table, data):
    """Nullable columns with no NULL in the sampled rows (what SR-CONS-001 would propose)."""
    out = []
    for c in table.columns:
        if c.not_null or c.name not in data["columns"]:
            continue
        if null_free(column_values(data, c.name)):
            out.append(c.name)
    return out


def _small(table, exact_max_rows):
    rows = table.row_estimate
    return rows is not None and table.analyzed and rows <= exact_max_rows


def sample(
    session,
    catalog,
    sample_rows=DEFAULT_SAMPLE_ROWS,
    statement_timeout=None,
    max_table_bytes=MAX_TABLE_BYTES,
    exact_max_rows=EXACT_MAX_ROWS,
    bernoulli_max_bytes=BERNOULLI_MAX_BYTES,
):
    """Sample every ordinary or partitioned table of ``catalog`` (partitions through their parent).

    Returns ``{"tables": ..., "skipped": ..., "sample_rows": n, "statement_timeout": ...}``
    where ``tables`` is {"schema.table": {"columns", "rows", "sampled", "method",
    "row_estimate", "complete", "exact_nulls"}}: ``complete`` when every row of the
    table was read; ``exact_nulls`` ({"total": rows, "nulls": {column: count}} or None)
    when the table is small (at most ``exact_max_rows`` estimated rows) and some nullable
    column had no NULL in the sample, so its NULLs were counted on the whole table.
    ``skipped``: [{"table", "reason"}].
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
            size = _size(catalog, t)
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
            query, method = _sample_query(t, columns, sample_rows, bernoulli_max_bytes)
            rows = _guarded(session, result, t, query)
            if rows is None:
                continue
            data = dict(
                columns=columns,
                rows=rows,
                sampled=len(rows),
                method=method,
                row_estimate=t.row_estimate,
                complete=method == "full" and len(rows) < sample_rows,
                exact_nulls=None,
            )
            if data["complete"]:
                data["row_estimate"] = len(rows)
            result["tables"][t.qualified] = data
            candidates = null_candidates(t, data) if len(rows) >= MIN_ROWS else []
            if candidates and not data["complete"] and _small(t, exact_max_rows):
                counted = _guarded(session, result, t, _null_count_query(t, candidates), skip=False)
                if counted:
                    nulls = dict((c, int(counted[0][1 + n])) for n, c in enumerate(candidates))
                    data["exact_nulls"] = dict(total=int(counted[0][0]), nulls=nulls)
    finally:
        conn.rollback()
        conn.set_session(readonly="DEFAULT")
        conn.autocommit = was_autocommit
    return result


def _size(catalog, table):
    size_of = getattr(catalog, "size_of", None)
    return size_of(table)[0] if size_of is not None else table.total_bytes


def _guarded(session, result, table, query, skip=True):
    """Rows of ``query`` inside a savepoint, so one slow or refused table does not end the profile."""
    session.execute("SAVEPOINT dbarch_profile", record=False)
    try:
        cur = session.execute(query)
        rows = cur.fetchall()
        cur.close()
        session.execute("RELEASE SAVEPOINT dbarch_profile", record=False)
        return rows
    except pg.PgError as exc:
        session.execute("ROLLBACK TO SAVEPOINT dbarch_profile", record=False)
        if skip:
            result["skipped"].append(dict(table=table.qualified, reason=str(exc)))
        return None


def null_evidence(data, column):
    """How sure the profile is that ``column`` holds no NULL.

    Returns (state, text): state "exact" (the whole table was read or its NULLs counted:
    none), "has_nulls" (the whole table has some, so no proposal at all), or "sampled"
    (none in a random sample of part of the table: likely, not proven).
    """
    exact = data.get("exact_nulls")
    if data.get("complete"):
        return "exact", "no NULL in any of the %s rows (the whole table was read)" % _n(data["sampled"])
    if exact and column in exact["nulls"]:
        if exact["nulls"][column]:
            return "has_nulls", "%s NULL(s) in %s rows (counted on the whole table)" % (
                _n(exact["nulls"][column]),
                _n(exact["total"]),
            )
        return "exact", "no NULL in any of the %s rows (counted on the whole table)" % _n(exact["total"])
    estimate = data.get("row_estimate")
    of = " of ~%s" % _n(estimate) if estimate else ""
    return "sampled", "no NULL in a random sample of %s%s rows (%s)" % (
        _n(data["sampled"]),
        of,
        data.get("method") or "sampled",
    )


def _n(value):
    return "{:,}".format(int(value))


# -- pure analysis on sampled rows ---------------------------------------------------------
def column_values(data, column):
    i = data["columns"].index(column)
    return [r[i] for r in data["rows"]]


def null_free(values):
    """True when there are values and none is NULL."""
    return bool(values) and all(v is not None for v in values)


def enum_evidence(values):
    """(is_enum, facts) for the sampled values of one text column.

    Enum-like only when every sign agrees: enough values, few distinct ones compared with
    the sample, every value a short code (no space, slash or Title Case name), each seen
    more than once, and the distinct count stable as the sample grows (the first half of
    the random sample already holds every value). ``facts`` says which sign failed.
    """
    present = [str(v) for v in values if v is not None and str(v).strip() != ""]
    counts = Counter(present)
    facts = dict(values=len(present), distinct=len(counts), codes=sorted(counts)[:ENUM_MAX_DISTINCT])
    half = present[: len(present) // 2]
    checks = (
        ("enough_values", len(present) >= ENUM_MIN_VALUES),
        ("few_distinct", 2 <= len(counts) <= ENUM_MAX_DISTINCT),
        ("low_cardinality", len(counts) <= ENUM_MAX_DISTINCT_SHARE * max(len(present), 1)),
        ("code_like", all(len(v) <= ENUM_MAX_LENGTH and _CODE_RE.match(v) for v in counts)),
        ("each_repeats", bool(counts) and min(counts.values()) >= 2),
        ("stable", len(set(half)) == len(counts)),
    )
    failed = [name for name, ok in checks if not ok]
    facts["failed"] = failed
    return not failed, facts


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
