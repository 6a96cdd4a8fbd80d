# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Index advice: propose indexes from a workload and prove them; review the indexes there are.

The workload is the top statements of pg_stat_statements (``query_stats``) or a list of
queries. Each statement is planned -- ``EXPLAIN (VERBOSE, FORMAT JSON)``, never executed --
in one READ ONLY transaction that is rolled back. Statements with ``$1`` placeholders (as
pg_stat_statements records them) get a generic plan: ``EXPLAIN (GENERIC_PLAN)`` on 16+,
PREPARE + EXPLAIN EXECUTE with NULLs under ``plan_cache_mode = force_generic_plan`` before
(``versions.Features.has_explain_generic_plan``).

Candidates come from the plans: Seq Scans with a filter, the scanned side of a join whose
other side is small, and Seq Scans feeding a Sort under a Limit. Key order: equality
columns first (most distinct values first), then one range column, else the sort keys.
A constant predicate on a rare value (pg_stats) becomes the WHERE of a partial index.

With hypopg installed in the database each candidate is created hypothetically, the
statements it serves planned again, and it is proposed only when the planner uses it and
the weighted planned cost falls by ``min_cost_saving``. Without hypopg the proposals come
from the predicate heuristics alone and say so (``hypopg: false``).

Findings on the existing indexes reuse the schema review rules (duplicate, redundant,
invalid, foreign key without an index) under IA-* ids, plus unused indexes.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re
from collections import OrderedDict

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import catalog as cat
from ansible_collections.dbarch.postgresql.plugins.module_utils.query import explain as ex
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.query import query_stats as qs
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import redact
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import schema_rules as sr
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features

DEFAULT_MIN_COST_SAVING = 0.3
DEFAULT_LIMIT = 20
# Tables estimated smaller than this are left alone: a sequential scan of them is cheap.
MIN_ROWS = 1000
# Without hypopg: a filter must keep at most this share of the table to be worth an index.
HEURISTIC_MAX_SELECTIVITY = 0.1
# A join side is worth an index when the other side is this many times smaller.
JOIN_RATIO = 50
# A constant predicate becomes the WHERE of a partial index when its value is this rare (share
# of the rows, pg_stats), or when it is the one value the workload ever compares the column with.
PARTIAL_MAX_FREQUENCY = 0.02
PARTIAL_MAX_DISTINCT = 50
# Heavy updates: at least this many, and at least this share of the live rows.
HEAVY_UPDATES = 1000
HEAVY_UPDATE_SHARE = 0.1
MAX_INCLUDE = 4
# INDEX_MAX_KEYS of a standard build: key plus INCLUDE columns of one index.
INDEX_MAX_KEYS = 32
PREPARED_NAME = "dbarch_index_advice"
# What a column is compared with when it is not a literal (``$1``, an expression).
PARAM_VALUE = "$"

RULES = OrderedDict(
    [
        ("IA-INDEX-001", ("Missing index (proposal)", "medium")),
        ("IA-UNUSED-001", ("Unused index", "low")),
        ("IA-DUP-001", ("Duplicate index", "medium")),
        ("IA-REDUNDANT-001", ("Redundant index (prefix of another)", "low")),
        ("IA-INVALID-001", ("Invalid index", "high")),
        ("IA-FK-001", ("Foreign key without a supporting index", "medium")),
    ]
)
# Index review rules shared with schema_review: its rule function -> our id.
_SHARED = (
    (sr.duplicate_indexes, "IA-DUP-001", "SR-IDX-001"),
    (sr.redundant_indexes, "IA-REDUNDANT-001", "SR-IDX-002"),
    (sr.invalid_indexes, "IA-INVALID-001", "SR-IDX-003"),
    (sr.fk_without_index, "IA-FK-001", "SR-KEY-002"),
)
_SYSTEM_PREFIXES = ("pg_", "information_schema")


class IndexAdviceError(DbarchError, ValueError):
    pass


def check_min_cost_saving(value):
    """min_cost_saving is a share in (0, 1]: 1.0 asks for the whole cost to go."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = None
    if share is None or not 0 < share <= 1:
        raise IndexAdviceError(
            "min_cost_saving is a share above 0 and at most 1 (0.3 means 30%%), got %s." % value
        )
    return share


# -- the workload ---------------------------------------------------------------------------
def normalize_queries(queries):
    """[{name, sql, weight, params}] from a list of SQL strings or {name, sql, weight} dicts."""
    out = []
    for i, q in enumerate(queries or []):
        if isinstance(q, dict):
            unknown = set(q) - {"name", "sql", "weight"}
            if unknown:
                raise IndexAdviceError(
                    "queries[%d] has unknown key(s) %s: give name, sql and weight."
                    % (i, ", ".join(sorted(unknown)))
                )
            name, text, weight = q.get("name") or "queries[%d]" % i, q.get("sql"), q.get("weight", 1)
        else:
            name, text, weight = "queries[%d]" % i, q, 1
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise IndexAdviceError("%s: weight must be a number, got %r." % (name, weight)) from None
        if weight <= 0:
            raise IndexAdviceError("%s: weight must be above 0, got %s." % (name, weight))
        try:
            info = ex.classify(text)
        except ex.ExplainError as exc:
            raise IndexAdviceError("%s: %s" % (name, exc)) from None
        out.append(
            dict(
                name=str(name),
                sql=info["text"],
                weight=weight,
                params=info["params"],
                kind=info["kind"],
                role=None,
            )
        )
    return out


def _relations(text):
    """(schema or None, name) of every table a statement names, or None when it does not parse."""
    import pglast  # noqa: PLC0415 - optional dependency (explain needs it too)

    try:
        stmts = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return None
    return [(n.schemaname, n.relname) for n in ex.walk(stmts[0].stmt) if type(n).__name__ == "RangeVar"]


def _is_system(rels):
    return all((s or "").startswith(_SYSTEM_PREFIXES) or n.startswith(_SYSTEM_PREFIXES) for s, n in rels)


def workload_from_stats(session, limit, explain_role=None, allow_superuser_statements=False):
    """(workload, info): the top statements of the connected database by total time.

    Anyone who can connect fills pg_stat_statements, and planning a statement evaluates its
    immutable functions (constant folding): each statement is planned as the role that ran
    it (``role``), or as ``explain_role``. A statement a superuser ran is left out, with the
    reason in ``info["skipped"]``, unless ``allow_superuser_statements``.
    """
    st = qs.status(session)
    info = dict(source="pg_stat_statements", usable=st["usable"], reason=None, utility_skipped=0, skipped=[])
    if not st["usable"]:
        info["reason"] = qs.message(st)
        return [], info
    data = qs.read(session, st)
    shaped = []
    for r in data["statements"]:
        s = qs.shape(r)
        s["raw_query"] = r["query"]  # the text as recorded: planned as is, never returned
        shaped.append(s)
    rows = qs.top(shaped, "total_time", 0)
    out = []
    for r in rows:
        text = r["raw_query"]
        if not text or text == qs.INSUFFICIENT:
            continue
        try:
            c = ex.classify(text)
        except ex.ExplainError:
            info["utility_skipped"] += 1  # BEGIN, SET, DDL, EXPLAIN, ...
            continue
        rels = _relations(text)
        if not rels or _is_system(rels):
            continue
        name = "queryid %s" % r["queryid"]
        role = explain_role or r["user"]
        if not explain_role and r["user"] is None:
            info["skipped"].append(
                dict(
                    name=name,
                    sql=redact.statement(c["text"]),
                    user=None,
                    reason="skipped: the role that recorded it no longer exists; give explain_role to plan "
                    "it as another role.",
                )
            )
            continue
        if not explain_role and r["user_superuser"] and not allow_superuser_statements:
            if not any(s["name"] == name for s in info["skipped"]):
                info["skipped"].append(
                    dict(
                        name=name,
                        sql=redact.statement(c["text"]),
                        user=r["user"],
                        superuser=True,
                        reason=ex.superuser_reason(r["user"]),
                    )
                )
            continue
        # one text and one role, several nesting levels
        same = [q for q in out if q["sql"] == c["text"] and q["role"] == role]
        if same:
            same[0]["weight"] += max(float(r["total_time_ms"] or 0), 0.001)
            same[0]["calls"] += r["calls"]
            continue
        out.append(
            dict(
                name=name,
                sql=c["text"],
                weight=max(float(r["total_time_ms"] or 0), 0.001),
                params=c["params"],
                kind=c["kind"],
                calls=r["calls"],
                total_time_ms=r["total_time_ms"],
                role=role,
                user=r["user"],
            )
        )
        if limit and len(out) >= limit:
            break
    info["stats_reset"] = data["stats_reset"]
    return out, info


def updated_columns(workload):
    """{(schema or None, table): set(columns)} SET by the UPDATE statements of the workload."""
    import pglast  # noqa: PLC0415

    out = {}
    for q in workload:
        if q["kind"] != "UPDATE":
            continue
        try:
            node = pglast.parse_sql(q["sql"])[0].stmt
        except pglast.parser.ParseError:
            continue
        rel = node.relation
        cols = out.setdefault((rel.schemaname, rel.relname), set())
        for target in node.targetList or ():
            if target.name:
                cols.add(target.name)
    return out


# -- planning -------------------------------------------------------------------------------
def _doc(rows):
    doc = list(rows[0].values())[0]
    if isinstance(doc, str):
        doc = json.loads(doc)
    return doc[0]


def plan_steps(features, q, pruning_off=False):
    """(statements to run in order, the last returning the EXPLAIN document; whether they PREPARE)."""
    S = pg.pgsql.SQL
    text = S(q["sql"])
    if not q["params"]:
        return [S("EXPLAIN (VERBOSE, FORMAT JSON) ") + text], False
    if features.has_explain_generic_plan:
        return [S("EXPLAIN (GENERIC_PLAN, VERBOSE, FORMAT JSON) ") + text], False
    steps = [S("SET LOCAL plan_cache_mode = force_generic_plan")]
    if pruning_off:
        steps.append(S("SET LOCAL enable_partition_pruning = off"))
    steps.append(S("PREPARE {} AS ").format(pg.ident(PREPARED_NAME)) + text)
    steps.append(
        S("EXPLAIN (VERBOSE, FORMAT JSON) EXECUTE {} (").format(pg.ident(PREPARED_NAME))
        + S(", ".join(["NULL"] * q["params"]))
        + S(")")
    )
    return steps, True


def plan(session, features, q, wall=None):
    """The JSON plan document of one workload statement (generic when it has placeholders),
    planned as ``q["role"]`` (behind ``wall`` when it has a function for the role, else after
    SET LOCAL ROLE) or as the login when it is None.

    Runs inside the caller's transaction; the caller wraps it in a savepoint.
    """
    steps, prepares = plan_steps(features, q)
    doc = _run_steps(session, q, steps, prepares, wall)
    if prepares and features.generic_plan_prunes_partitions_at_startup and _subplans_removed(doc["Plan"]):
        # the NULLs pruned partitions at executor startup: plan again without pruning
        _deallocate(session)
        steps, prepares = plan_steps(features, q, pruning_off=True)
        doc = _run_steps(session, q, steps, prepares, wall)
        doc["dbarch_partition_pruning"] = "off (the NULL parameter values pruned every partition)"
    return doc


def _run_steps(session, q, steps, prepares, wall):
    role = q.get("role")
    session.prepared = getattr(session, "prepared", False)
    if role and wall is not None and role in wall.functions:
        try:
            return wall.run(session, role, steps)[0]
        finally:
            session.prepared = session.prepared or prepares
    ex.set_role(session, role)
    try:
        for step in steps[:-1]:
            session.execute(step)
        session.prepared = session.prepared or prepares
        return _doc(session.fetchall(steps[-1]))
    finally:
        if role:
            session.execute("RESET ROLE", record=False)


def _subplans_removed(node):
    if node.get("Subplans Removed"):
        return True
    return any(_subplans_removed(k) for k in node.get("Plans") or ())


def _deallocate(session):
    if getattr(session, "prepared", False):
        if session.scalar(
            "SELECT count(*) FROM pg_prepared_statements WHERE name = %s", (PREPARED_NAME,), record=False
        ):
            session.execute(pg.pgsql.SQL("DEALLOCATE {}").format(pg.ident(PREPARED_NAME)), record=False)
        session.prepared = False


def _plan_safely(session, features, q, wall=None):
    """(plan document, None) or (None, reason)."""
    session.execute("SAVEPOINT dbarch_advice", record=False)
    try:
        doc = plan(session, features, q, wall)
    except pg.PgError as exc:
        session.execute("ROLLBACK TO SAVEPOINT dbarch_advice", record=False)
        _deallocate(session)
        reason = ("as role %s: %s" % (q["role"], exc)) if q.get("role") else str(exc)
        return None, redact.statement(reason)
    session.execute("RELEASE SAVEPOINT dbarch_advice", record=False)
    _deallocate(session)
    return doc, None


# -- reading plan expressions -------------------------------------------------------------------
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_COLREF = r"\(?(?:(?P<{p}q>{i})\.)?(?P<{p}c>{i})\)?(?:::[A-Za-z_][A-Za-z0-9_ ]*(?:\[\])?)?"
_OPS = r"(?P<op>=|<>|<=|>=|<|>|~~|!~~)"
_LEFT = re.compile(r"^%s\s*%s\s*(?P<rhs>.+)$" % (_COLREF.format(p="l", i=_IDENT), _OPS), re.S)
_RIGHT = re.compile(r"^(?P<lhs>.+?)\s*%s\s*%s$" % (_OPS, _COLREF.format(p="r", i=_IDENT)), re.S)
_NULLTEST = re.compile(r"^%s\s+IS\s+(?P<not>NOT\s+)?NULL$" % _COLREF.format(p="l", i=_IDENT), re.S)
_LITERAL = re.compile(
    r"^(?:'(?:[^']|'')*'|-?\d+(?:\.\d+)?|true|false)(?:::[A-Za-z_][A-Za-z0-9_ ]*(?:\[\])?)?$"
)
_PARAM = re.compile(r"^\$\d+(?:::[A-Za-z_][A-Za-z0-9_ ]*)?$")
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "<>": "<>"}


def _unident(name):
    if name and name.startswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def _split_and(text):
    """Top-level AND conjuncts of a plan expression (quotes and parentheses respected)."""
    text = sr._strip_parens(text)
    parts, depth, start, i, quote = [], 0, 0, 0, False
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quote = not quote
        elif not quote:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif depth == 0 and text[i : i + 5] == " AND ":
                parts.append(text[start:i])
                start = i + 5
                i += 5
                continue
        i += 1
    parts.append(text[start:])
    return [sr._strip_parens(p) for p in parts if p.strip()]


def _value(rhs, alias):
    rhs = sr._strip_parens(rhs)
    if _LITERAL.match(rhs):
        return "constant", rhs
    if _PARAM.match(rhs):
        return "param", rhs
    m = re.match(r"^%s$" % _COLREF.format(p="v", i=_IDENT), rhs)
    if m and m.group("vq") and _unident(m.group("vq")) != alias:
        return "join", rhs
    if rhs.startswith("ANY ("):
        return "list", rhs
    return "expression", rhs


def predicates(text, alias):
    """[{column, kind (eq, range, null), value_kind, value}] of a plan expression on ``alias``.

    Conjuncts on other aliases, OR-ed conditions and expressions on columns are left out.
    """
    out = []
    for part in _split_and(text or ""):
        if re.search(r"\sOR\s", part):
            continue  # an OR needs a BitmapOr of indexes or a rewrite: not one index
        m = _NULLTEST.match(part)
        if m:
            q = _unident(m.group("lq"))
            if (q is None or alias is None or q == alias) and not m.group("not"):
                out.append(
                    dict(column=_unident(m.group("lc")), kind="null", value_kind="constant", value="NULL")
                )
            continue
        col = op = rhs = None
        m = _LEFT.match(part)
        if m and (m.group("lq") is None or alias is None or _unident(m.group("lq")) == alias):
            col, op, rhs = _unident(m.group("lc")), m.group("op"), m.group("rhs")
        else:
            m = _RIGHT.match(part)
            if m and (m.group("rq") is None or alias is None or _unident(m.group("rq")) == alias):
                col, op, rhs = _unident(m.group("rc")), _FLIP.get(m.group("op")), m.group("lhs")
        if col is None or op in (None, "<>", "~~", "!~~"):
            continue
        vkind, value = _value(rhs, alias)
        if op == "=":
            if vkind == "list":
                continue  # col = ANY(...) needs its own thought; leave it
            out.append(dict(column=col, kind="eq", value_kind=vkind, value=value))
        else:
            out.append(dict(column=col, kind="range", value_kind=vkind, value=value))
    return out


def _sort_columns(keys, alias, table):
    out = []
    for k in keys or ():
        m = re.match(
            r"^%s(?P<dir>\s+DESC)?(?:\s+NULLS\s+(?:FIRST|LAST))?$" % _COLREF.format(p="s", i=_IDENT), k
        )
        if not m:
            return []
        q = _unident(m.group("sq"))
        col = _unident(m.group("sc"))
        if (q is not None and alias is not None and q != alias) or table.column(col) is None:
            return []
        out.append((col, bool(m.group("dir"))))
    return out


def _walk(node, ancestors=()):
    yield node, ancestors
    for child in node.get("Plans") or ():
        yield from _walk(child, ancestors + (node,))


_JOINS = ("Nested Loop", "Hash Join", "Merge Join")


def _scan_below(node):
    """The Seq Scan a join side reads (through Hash, Materialize, Gather), or None."""
    while node is not None:
        if node.get("Node Type") == "Seq Scan":
            return node
        if node.get("Node Type") in ("Hash", "Materialize", "Gather", "Sort", "Memoize"):
            kids = node.get("Plans") or []
            node = kids[0] if len(kids) == 1 else None
        else:
            return None
    return None


# -- candidates -------------------------------------------------------------------------------
class Candidate:
    def __init__(self, table, columns, where, include, reason, selectivity):
        self.table = table
        self.columns = columns  # [(name, desc)]
        self.where = where
        self.include = include
        self.reason = reason
        self.selectivity = selectivity
        self.queries = []  # (workload item, cost before)
        self.absorbed = []  # shorter candidates this one serves too (merge_prefixes)
        self.own_queries = None

    def serves(self, other):
        """True when this index serves ``other`` as well: same table and predicate, ``other``'s key
        columns (with their directions) lead this one's, its INCLUDE columns are in this one."""
        n = len(other.columns)
        return (
            self is not other
            and self.table.qualified == other.table.qualified
            and (self.where or "") == (other.where or "")
            and len(self.columns) > n
            and self.columns[:n] == other.columns
            and set(other.include) <= set(self.column_names()) | set(self.include)
        )

    def absorb(self, other):
        if self.own_queries is None:
            self.own_queries = list(self.queries)
        self.absorbed.append(other)
        for q, c in other.queries:
            if all(existing is not q for existing, _c in self.queries):
                self.queries.append((q, c))

    def split(self):
        """[self, absorbed ...] each with its own statements again."""
        out = [self] + self.absorbed
        self.queries, self.absorbed, self.own_queries = self.own_queries, [], None
        return out

    @property
    def key(self):
        return (self.table.qualified, tuple(self.columns), self.where or "", tuple(self.include))

    def column_names(self):
        return [c for c, _d in self.columns]

    def ddl(self, concurrently=True, name=None):
        cols = ", ".join(pg.quote_ident_text(c) + (" DESC" if d else "") for c, d in self.columns)
        # CREATE INDEX CONCURRENTLY cannot build on a partitioned table (PostgreSQL builds it on
        # every partition in one transaction)
        concurrently = concurrently and self.table.kind != "p"
        words = (
            ["CREATE INDEX"]
            + (["CONCURRENTLY"] if concurrently else [])
            + ([pg.quote_ident_text(name)] if name else [])
        )
        text = "%s ON %s (%s)" % (
            " ".join(words),
            pg.qualified_text(self.table.schema, self.table.name),
            cols,
        )
        if self.include:
            text += " INCLUDE (%s)" % ", ".join(pg.quote_ident_text(c) for c in self.include)
        if self.where:
            text += " WHERE %s" % self.where
        return text

    def name(self):
        base = "%s_%s%s_idx" % (self.table.name, "_".join(self.column_names()), "_part" if self.where else "")
        return sr._truncate(base)


def merge_prefixes(cands):
    """Candidates with every one whose key is a prefix of another's folded into the longer one
    (which keeps the statements of both): one index (a, b) rather than (a) and (a, b)."""
    kept = []
    for cand in sorted(cands, key=lambda c: -len(c.columns)):
        into = next((k for k in kept if k.serves(cand)), None)
        if into is None:
            kept.append(cand)
        else:
            into.absorb(cand)
    order = {id(c): i for i, c in enumerate(cands)}
    kept.sort(key=lambda c: order[id(c)])
    return kept


def _distinct(table, col):
    c = table.column(col)
    nd = getattr(c, "n_distinct", None) if c is not None else None
    if nd is None:
        return 0.0
    rows = float(table.row_estimate or 0)
    return -nd * rows if nd < 0 else nd


def _covered(table, names, where):
    """True when a valid btree index already leads with these columns (any order) and predicate."""
    need = set(names)
    for i in table.indexes:
        if not i.valid or i.method != "btree" or (i.predicate and i.predicate != (where or "")):
            continue
        lead = [sr._unquote(c) for c in i.columns[: len(need)]]
        if set(lead) == need:
            return True
    return False


def _literal(value):
    """'new'::text -> 'new' (the SQL literal without its cast)."""
    return re.sub(r"::[A-Za-z_][A-Za-z0-9_ ]*(?:\[\])?$", "", value)


def _rare_value_predicate(table, pred, mcv, literals=None):
    """(WHERE text of a partial index, frequency) for ``column = constant`` or ``IS NULL``.

    A partial index pays off for a genuinely rare value (at most PARTIAL_MAX_FREQUENCY of the
    rows, from pg_stats, or null_frac for IS NULL), or for the one value the whole workload
    compares the column with (``literals``: {(schema, table, column): set of the literals, and
    PARAM_VALUE for a parameter or expression, it is compared with in the workload}). A
    column the workload compares with several values gets no partial index (one per literal
    would be wrong): it stays a key column.
    """
    col = table.column(pred["column"])
    if col is None or pred["value_kind"] != "constant":
        return None, None
    used = (literals or {}).get((table.schema, table.name, col.name)) or set()
    constants = used - {PARAM_VALUE}
    only_value = len(used) == 1
    if len(constants) > 1:
        return None, None
    if pred["kind"] == "null":
        frac = getattr(col, "null_frac", None)
        if frac is not None and (frac <= PARTIAL_MAX_FREQUENCY or only_value):
            return "%s IS NULL" % pg.quote_ident_text(col.name), frac
        return None, None
    nd = _distinct(table, col.name)
    if not nd or nd > PARTIAL_MAX_DISTINCT:
        return None, None
    value = _literal(pred["value"])
    plain = value[1:-1].replace("''", "'") if value.startswith("'") else value
    vals, freqs = mcv.get((table.schema, table.name, col.name), ([], []))
    if plain in vals:
        freq = freqs[vals.index(plain)]
    else:
        rest = 1.0 - sum(freqs) - float(getattr(col, "null_frac", 0) or 0)
        others = nd - len(vals)
        freq = rest / others if others > 0 else 0.0
    if freq > PARTIAL_MAX_FREQUENCY and not only_value:
        return None, freq
    return "%s = %s" % (pg.quote_ident_text(col.name), value), freq


def _output_column(expr, alias, table):
    """The column of ``table`` a plan Output entry names (``o.total`` or ``total``), or None."""
    m = re.match(r"^(?:(?P<q>%s)\.)?(?P<c>%s)$" % (_IDENT, _IDENT), expr.strip())
    if not m:
        return None
    q, name = _unident(m.group("q")), _unident(m.group("c"))
    if q is not None and alias is not None and q not in (alias, table.name):
        return None
    return name if table.column(name) is not None else None


def _compose(table, preds, sort, output, covering, mcv, literals=None, alias=None):
    """Candidate (columns, where, include) from a scan's predicates, or None."""
    eq, rng, where, seen = [], [], None, set()
    consts = [p for p in preds if p["kind"] in ("eq", "null") and p["value_kind"] == "constant"]
    best = None
    for p in consts:
        w, freq = _rare_value_predicate(table, p, mcv, literals)
        if w and (best is None or freq < best[1]):
            best = (w, freq, p["column"])
    if best:
        where = best[0]
        seen.add(best[2])
    for p in preds:
        col = p["column"]
        if col in seen or table.column(col) is None:
            continue
        if p["kind"] in ("eq", "null"):
            eq.append(col)
            seen.add(col)
        elif p["kind"] == "range":
            rng.append(col)
    eq.sort(key=lambda c: -_distinct(table, c))
    columns = [(c, False) for c in eq]
    rng = [c for c in rng if c not in seen]
    if rng:
        columns.append((rng[0], False))
    elif sort:
        for col, desc in sort:
            if col not in seen:
                columns.append((col, desc))
                seen.add(col)
    if not columns:
        if not where:
            return None
        columns = [(best[2], False)]
    columns = columns[:INDEX_MAX_KEYS]
    include = []
    if covering:
        keys = {c for c, _d in columns}
        for o in output or ():
            name = _output_column(o, alias, table)
            if name and name not in keys and name not in include:
                include.append(name)
        if len(include) > MAX_INCLUDE or len(columns) + len(include) > INDEX_MAX_KEYS:
            include = []  # too wide to be worth it: an index-only scan needs every column
    return columns, where, include


def partition_root(catalog, table):
    """The partitioned table at the top of ``table``'s partition tree (itself when it is none)."""
    seen = set()
    while table is not None and table.partition_of and table.qualified not in seen:
        seen.add(table.qualified)
        schema, _dot, name = table.partition_of.partition(".")
        parent = catalog.get(schema, name)
        if parent is None:
            break
        table = parent
    return table


def partitions_of(catalog, root):
    """The leaf partitions under the partitioned table ``root``."""
    out = []
    for t in catalog.tables.values():
        if t.partition_of and t.kind != "p" and partition_root(catalog, t) is root:
            out.append(t)
    return out


def _rows(catalog, table):
    """Rows of a table, or of all the partitions of a partitioned one."""
    if table.kind == "p":
        return sum(float(t.row_estimate or 0) for t in partitions_of(catalog, table))
    return float(table.row_estimate or 0)


def candidates(doc, catalog, schemas, mcv, covering=False, literals=None):
    """Candidates of one plan document: [(Candidate, scan node)].

    A scan of a partition proposes the index on the partitioned table at the top of its tree
    (PostgreSQL creates it on every partition), so the scans of all partitions make one
    candidate whose saving is costed over them together.
    """
    out = []
    root = doc["Plan"]
    for node, ancestors in _walk(root):
        ntype = node.get("Node Type")
        if ntype == "Seq Scan":
            table = partition_root(catalog, catalog.get(node.get("Schema"), node.get("Relation Name")))
            if table is None or (schemas and table.schema not in schemas) or _rows(catalog, table) < MIN_ROWS:
                continue
            alias = node.get("Alias")
            preds = predicates(node.get("Filter"), alias)
            sort, limited = [], False
            for anc in reversed(ancestors):
                if anc.get("Node Type") in _JOINS:
                    break
                if anc.get("Node Type") in ("Sort", "Incremental Sort") and not sort:
                    sort = _sort_columns(anc.get("Sort Key"), alias, table)
                if anc.get("Node Type") == "Limit" and sort:
                    limited = True
            if ancestors and ancestors[-1].get("Node Type") == "Nested Loop":
                parent = ancestors[-1]
                if (parent.get("Plans") or [None, None])[-1] is node:
                    preds += predicates(parent.get("Join Filter"), alias)
            part = catalog.get(node.get("Schema"), node.get("Relation Name"))
            rows = float(part.row_estimate or 1) if part is not None else 1.0
            selectivity = min(1.0, float(node.get("Plan Rows") or 0) / max(rows, 1.0))
            if preds:
                reason = "filter"
            elif sort and limited:
                reason, selectivity = "sort", 0.0
            else:
                continue
            composed = _compose(table, preds, sort, node.get("Output"), covering, mcv, literals, alias)
            if composed:
                out.append(
                    (Candidate(table, composed[0], composed[1], composed[2], reason, selectivity), node)
                )
        elif ntype in ("Hash Join", "Merge Join"):
            cond = node.get("Hash Cond") or node.get("Merge Cond")
            sides = [_scan_below(k) for k in node.get("Plans") or ()]
            kids = node.get("Plans") or ()
            for i, scan in enumerate(sides):
                if scan is None or len(kids) != 2:
                    continue
                table = catalog.get(scan.get("Schema"), scan.get("Relation Name"))
                if (
                    table is None
                    or (schemas and table.schema not in schemas)
                    or (table.row_estimate or 0) < MIN_ROWS
                ):
                    continue
                other_rows = float(kids[1 - i].get("Plan Rows") or 0)
                if other_rows * JOIN_RATIO > float(table.row_estimate):
                    continue
                alias = scan.get("Alias")
                preds = [p for p in predicates(cond, alias) if p["value_kind"] == "join"]
                if not preds:
                    continue
                preds += predicates(scan.get("Filter"), alias)
                composed = _compose(table, preds, [], scan.get("Output"), covering, mcv, literals, alias)
                if composed:
                    sel = min(1.0, other_rows / float(table.row_estimate))
                    out.append((Candidate(table, composed[0], composed[1], composed[2], "join", sel), scan))
    return out


# -- statistics the catalog does not hold -------------------------------------------------------
_Q_MCV = """
SELECT schemaname AS schema, tablename AS table, attname AS column,
       most_common_vals::text::text[] AS vals, most_common_freqs AS freqs
FROM pg_stats
WHERE NOT inherited
  AND (schemaname, tablename, attname) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))
"""

_Q_STATS_RESET = "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"


def workload_literals(plans):
    """{(schema, table, column): {literal, ... or PARAM_VALUE}}: what the workload's scans compare
    each column with for equality (literals without their casts)."""
    out = {}
    for _q, doc in plans:
        for node, _a in _walk(doc["Plan"]):
            if node.get("Node Type") != "Seq Scan" or not node.get("Filter"):
                continue
            for p in predicates(node["Filter"], node.get("Alias")):
                if p["kind"] not in ("eq", "null"):
                    continue
                key = (node.get("Schema"), node.get("Relation Name"), p["column"])
                value = _literal(p["value"]) if p["value_kind"] == "constant" else PARAM_VALUE
                out.setdefault(key, set()).add(value)
    return out


def most_common_values(session, columns):
    """{(schema, table, column): (values, frequencies)} from pg_stats, for the given columns."""
    if not columns:
        return {}
    cols = sorted(columns)
    rows = session.fetchall(_Q_MCV, ([c[0] for c in cols], [c[1] for c in cols], [c[2] for c in cols]))
    return dict(
        (
            (r["schema"], r["table"], r["column"]),
            (list(r["vals"] or []), [float(f) for f in r["freqs"] or []]),
        )
        for r in rows
    )


# -- write cost ------------------------------------------------------------------------------------
def write_cost(table, columns, updated):
    """(note or None, factor for the score) for an index on ``columns`` of ``table``."""
    s = table.stats or {}
    upd = int(s.get("n_tup_upd") or 0)
    hot = int(s.get("n_tup_hot_upd") or 0)
    live = int(s.get("n_live_tup") or table.row_estimate or 0)
    hot_share = round(hot / float(upd), 3) if upd else None
    hit = sorted(
        set(columns) & updated.get((table.schema, table.name), set())
        | set(columns) & updated.get((None, table.name), set())
    )
    if hit and upd:
        return (
            "column(s) %s are SET by UPDATE statements of the workload; %s had %d update(s) since the "
            "statistics reset, %s HOT. With an index on them those updates can no longer be HOT: "
            "every update writes every index of the table and leaves more dead tuples."
            % (
                ", ".join(hit),
                table.qualified,
                upd,
                "%d%%" % round(100 * hot_share) if hot_share is not None else "none",
            ),
            0.5,
            dict(n_tup_upd=upd, n_tup_hot_upd=hot, hot_share=hot_share, updated_columns=hit),
        )
    if upd >= HEAVY_UPDATES and upd >= HEAVY_UPDATE_SHARE * max(live, 1):
        return (
            "%s is updated heavily (%d update(s) since the statistics reset, %s HOT): the index adds "
            "write cost; if the application updates %s, those updates lose HOT."
            % (
                table.qualified,
                upd,
                "%d%%" % round(100 * hot_share) if hot_share is not None else "none",
                ", ".join(columns),
            ),
            0.8,
            dict(n_tup_upd=upd, n_tup_hot_upd=hot, hot_share=hot_share, updated_columns=[]),
        )
    return None, 1.0, dict(n_tup_upd=upd, n_tup_hot_upd=hot, hot_share=hot_share, updated_columns=[])


# -- proving with hypopg -----------------------------------------------------------------------------
def _hypopg(catalog):
    for e in catalog.extensions:
        if e["name"] == "hypopg":
            return e
    return None


def _uses(doc, index_name):
    found = []

    def walk(node):
        if node.get("Index Name") == index_name:
            found.append(node)
        for child in node.get("Plans") or ():
            walk(child)

    walk(doc["Plan"])
    return bool(found)


def prove(session, features, ext, cand, wall=None):
    """Create ``cand`` hypothetically, plan its queries again: [(cost after, uses index)] or reason."""
    schema = ext["schema"]
    session.execute("SAVEPOINT dbarch_hypo", record=False)
    try:
        row = session.fetchone(
            pg.pgsql.SQL("SELECT indexname FROM {}(%s)").format(pg.ident(schema, "hypopg_create_index")),
            (cand.ddl(concurrently=False),),
        )
    except pg.PgError as exc:
        session.execute("ROLLBACK TO SAVEPOINT dbarch_hypo", record=False)
        return None, redact.statement("hypopg could not create it: %s" % exc)
    results = []
    try:
        for q, _before in cand.queries:
            doc, err = _plan_safely(session, features, q, wall)
            if err:
                return None, "planning again failed: %s" % err
            results.append((float(doc["Plan"].get("Total Cost") or 0), _uses(doc, row["indexname"])))
    finally:
        session.execute(pg.pgsql.SQL("SELECT {}()").format(pg.ident(schema, "hypopg_reset")))
        session.execute("RELEASE SAVEPOINT dbarch_hypo", record=False)
    return results, None


# -- findings on existing indexes ------------------------------------------------------------------
def _finding(rule_id, obj, message, why, fix, evidence):
    title, severity = RULES[rule_id]
    return fnd.Finding(
        rule=rule_id,
        severity=severity,
        object=obj,
        message=message,
        why=why,
        fix=fix,
        evidence=evidence,
        title=title,
    )


def index_findings(catalog, stats_reset, schemas=None):
    """Duplicate, redundant, invalid, FK-without-index (schema review's rules) and unused indexes."""
    ctx = sr.Context(catalog, sr.merge_policy(None), None)
    if schemas:
        ctx.tables = [t for t in ctx.tables if t.schema in schemas]
    out, reported = [], set()
    for check, rule_id, shared_id in _SHARED:
        for f in check(ctx) or ():
            f.rule, f.title = rule_id, RULES[rule_id][0]
            f.severity = RULES[rule_id][1]
            f.evidence["schema_review_rule"] = shared_id
            # Sizes and row estimates move with VACUUM and growth; the report must not (idempotence).
            f.evidence.pop("bytes", None)
            f.evidence.pop("row_estimate", None)
            for key in ("duplicate", "redundant", "index"):
                if f.evidence.get(key):
                    reported.add((f.object, f.evidence[key]))
            out.append(f)
    since = stats_reset or "the statistics were never reset (since the server's statistics began)"
    for t in ctx.tables:
        fks = t.foreign_keys
        for i in t.indexes:
            if i.idx_scan is None or i.idx_scan > 0 or not i.valid:
                continue
            if i.primary or i.unique or i.constraint or (t.qualified, i.name) in reported:
                continue
            if any(sr.index_supports_fk(i, fk) for fk in fks):
                continue
            out.append(
                _finding(
                    "IA-UNUSED-001",
                    t.qualified,
                    "Index %s on %s has not been used by any scan since %s."
                    % (i.name, t.qualified, stats_reset or "the statistics began"),
                    "An index no query reads still costs every INSERT, every non-HOT UPDATE and every "
                    "DELETE, and takes disk and cache. Counters are per server: check the replicas before "
                    "dropping it.",
                    "DROP INDEX CONCURRENTLY %s;" % pg.qualified_text(t.schema, i.name),
                    dict(
                        index=i.name,
                        definition=i.definition,
                        idx_scan=i.idx_scan,
                        last_idx_scan=i.last_idx_scan,
                        stats_reset=stats_reset,
                        counted_since=since,
                    ),
                )
            )
    return out


# -- the whole advice -----------------------------------------------------------------------------------
def advise(
    session,
    queries=None,
    min_cost_saving=DEFAULT_MIN_COST_SAVING,
    limit=DEFAULT_LIMIT,
    schemas=None,
    covering=False,
    explain_role=None,
    allow_superuser_statements=False,
):
    """Returns dict(proposals, rejected, findings (Finding objects), not_planned, summary).

    ``explain_role``: plan every statement as this role (not a superuser unless
    ``allow_superuser_statements``). Without it, statements of pg_stat_statements are planned
    as the role that ran them and those of superusers are skipped (see workload_from_stats);
    ``queries`` (the caller's own statements) are planned as the login.
    """
    check_min_cost_saving(min_cost_saving)
    features = Features(session.server_version_num)
    if explain_role:
        try:
            explain_role = ex.check_explain_role(session, explain_role, allow_superuser_statements)
        except ex.ExplainError as exc:
            raise IndexAdviceError(str(exc)) from None
    if queries:
        workload = normalize_queries(queries)
        for q in workload:
            q["role"] = explain_role
        source = dict(source="queries", usable=True, reason=None, utility_skipped=0, skipped=[])
    else:
        workload, source = workload_from_stats(session, limit, explain_role, allow_superuser_statements)
    catalog = cat.snapshot(session, schemas=schemas)
    stats_reset = session.scalar(_Q_STATS_RESET)
    stats_reset = stats_reset.isoformat() if hasattr(stats_reset, "isoformat") else stats_reset
    ext = _hypopg(catalog)
    updated = updated_columns(workload)
    skipped, rejected = list(source["skipped"]), []
    total_weight = sum(q["weight"] for q in workload) or 1.0
    found = OrderedDict()
    # statements planned as another role run behind a SECURITY DEFINER wall (see explain.RoleWall)
    wall = ex.RoleWall()
    wall.prepare(session, [q.get("role") for q in workload])
    conn = session.conn
    was_autocommit = conn.autocommit
    conn.autocommit = False
    try:
        conn.set_session(readonly=True)
        plans = []
        for q in workload:
            doc, err = _plan_safely(session, features, q, wall)
            if err:
                skipped.append(
                    dict(
                        name=q["name"],
                        sql=redact.statement(q["sql"]),
                        user=q.get("user"),
                        reason=redact.statement(err),
                    )
                )
                continue
            plans.append((q, doc))
        # rare-value statistics for every column a constant predicate names
        wanted = set()
        for _q, doc in plans:
            for node, _a in _walk(doc["Plan"]):
                if node.get("Node Type") == "Seq Scan" and node.get("Filter"):
                    for p in predicates(node["Filter"], node.get("Alias")):
                        if p["value_kind"] == "constant":
                            wanted.add((node.get("Schema"), node.get("Relation Name"), p["column"]))
        mcv = most_common_values(session, wanted)
        literals = workload_literals(plans)
        for q, doc in plans:
            cost = float(doc["Plan"].get("Total Cost") or 0)
            for cand, _node in candidates(doc, catalog, schemas, mcv, covering, literals):
                if _covered(cand.table, cand.column_names(), cand.where):
                    continue
                have = found.setdefault(cand.key, cand)
                if all(existing is not q for existing, _c in have.queries):
                    have.queries.append((q, cost))
                have.selectivity = min(have.selectivity, cand.selectivity)
        proposals = []
        queue = merge_prefixes(list(found.values()))
        while queue:
            cand = queue.pop(0)
            before = [c for _q, c in cand.queries]
            weights = [q["weight"] for q, _c in cand.queries]
            note, factor, write = write_cost(
                cand.table, cand.column_names() + list(cand.include) + _where_columns(cand), updated
            )
            item = OrderedDict(
                table=cand.table.qualified,
                columns=[c + (" DESC" if d else "") for c, d in cand.columns],
                where=cand.where,
                include=list(cand.include),
                name=cand.name(),
                create_sql=cand.ddl(name=cand.name()) + ";",
                reason=cand.reason,
                queries=[
                    dict(
                        name=q["name"],
                        sql=redact.statement(q["sql"]),
                        planned_as=q.get("role"),
                        cost_before=round(c, 2),
                    )
                    for q, c in cand.queries
                ],
                cost_before=round(sum(before), 2),
                cost_after=None,
                saving=None,
                hypopg=ext is not None,
                proven=False,
                method="hypopg" if ext is not None else "heuristic",
                write_cost_note=note,
                merged=[c.name() for c in cand.absorbed],
                evidence=OrderedDict(
                    partitioned=cand.table.kind == "p",
                    hypopg=ext is not None,
                    selectivity=round(cand.selectivity, 4),
                    table_rows=cand.table.row_estimate,
                    write=write,
                ),
            )
            share = sum(weights) / total_weight
            if ext is not None:
                results, err = prove(session, features, ext, cand, wall)
                if err:
                    item["rejected_because"] = err
                    rejected.append(item)
                    continue
                after = [r[0] for r in results]
                used = all(r[1] for r in results)
                wb = sum(w * b for w, b in zip(weights, before))  # noqa: B905
                wa = sum(w * a for w, a in zip(weights, after))  # noqa: B905
                saving = 1.0 - wa / wb if wb else 0.0
                for qd, a, r in zip(item["queries"], after, results):  # noqa: B905
                    qd.update(cost_after=round(a, 2), uses_index=r[1])
                item.update(cost_after=round(sum(after), 2), saving=round(saving, 4))
                item["evidence"]["planner_uses_index"] = used
                if cand.absorbed and not used:
                    # the longer index does not serve every statement of the shorter ones: apart again
                    queue[:0] = cand.split()
                    continue
                if not used or saving < float(min_cost_saving):
                    item["rejected_because"] = (
                        "the planner does not use the hypothetical index"
                        if not used
                        else "planned cost falls by %s%%, less than min_cost_saving %s%%"
                        % (percent_below(saving), percent(min_cost_saving))
                    )
                    rejected.append(item)
                    continue
                item["proven"] = True
                item["score"] = round(saving * share * factor, 4)
            else:
                if cand.reason == "filter" and cand.selectivity > HEURISTIC_MAX_SELECTIVITY:
                    item["rejected_because"] = (
                        "the filter keeps %d%% of the rows (estimated): an index would not help"
                        % round(100 * cand.selectivity)
                    )
                    rejected.append(item)
                    continue
                item["evidence"]["note"] = (
                    "not proven: the hypopg extension is not installed in this database "
                    "(CREATE EXTENSION hypopg; proves each proposal with a hypothetical index)"
                )
                item["score"] = round((1.0 - cand.selectivity) * share * factor, 4)
            proposals.append(item)
    finally:
        conn.rollback()
        conn.set_session(readonly="DEFAULT")
        conn.autocommit = True
        wall.close(session)
        conn.autocommit = was_autocommit
    proposals.sort(key=lambda p: (-p["score"], p["table"], p["columns"]))
    findings = [_proposal_finding(p) for p in proposals] + index_findings(catalog, stats_reset, schemas)
    findings.sort(key=lambda f: f.sort_key())
    summary = OrderedDict(
        database=catalog.database,
        workload=source["source"],
        workload_usable=source["usable"],
        workload_reason=source["reason"],
        statements=len(workload) + len(source["skipped"]),
        statements_planned=len(workload) + len(source["skipped"]) - len(skipped),
        statements_skipped=len(skipped),
        superuser_statements_skipped=len([x for x in source["skipped"] if x.get("user") is not None]),
        planned_as=explain_role or ("the login role" if queries else "the role that ran each statement"),
        # SECURITY DEFINER functions hold the role (a function cannot RESET ROLE behind them); where
        # they could not be created, SET LOCAL ROLE only, with the reason
        role_wall=dict(
            security_definer=sorted(wall.roles),
            set_role_only=dict((r, redact.statement(m)) for r, m in sorted(wall.problems.items())),
        ),
        utility_statements_skipped=source["utility_skipped"],
        generic_plan="EXPLAIN (GENERIC_PLAN)"
        if features.has_explain_generic_plan
        else "PREPARE + EXPLAIN EXECUTE (force_generic_plan)",
        hypopg=ext is not None,
        hypopg_version=ext["version"] if ext else None,
        min_cost_saving=float(min_cost_saving),
        candidates=len(found),
        proposals=len(proposals),
        rejected=len(rejected),
        stats_reset=stats_reset,
        counts=fnd.counts(findings),
    )
    return dict(
        proposals=proposals, rejected=rejected, findings=findings, not_planned=skipped, summary=summary
    )


def percent(share):
    """0.3 -> '30', 0.12345 -> '12.345' (at most 4 decimals, no trailing zeros)."""
    return ("%.4f" % (100 * float(share))).rstrip("0").rstrip(".")


def percent_below(share):
    """A share as a percentage floored to one decimal: 0.9955 -> '99.5', never rounded up to a
    threshold it is below."""
    return "%.1f" % (math.floor(round(1000 * float(share), 6)) / 10.0)


def _where_columns(cand):
    if not cand.where:
        return []
    m = re.match(r"^(%s)" % _IDENT, cand.where)
    return [_unident(m.group(1))] if m else []


def _bucket(share):
    for limit in (0.01, 0.05, 0.1, 0.25, 0.5):
        if share < limit:
            return "under %d%%" % round(100 * limit)
    return "%d%% or more" % 50


def _stable_write_note(p):
    """The write cost in words without counters (they move between runs; the proposal has them)."""
    write = p["evidence"]["write"]
    if write["updated_columns"]:
        return (
            "column(s) %s are SET by UPDATE statements of the workload: an index on them makes those "
            "updates non-HOT." % ", ".join(write["updated_columns"])
        )
    if p["write_cost_note"]:
        return "the table is updated heavily: the index adds write cost, and updates of its columns lose HOT."
    return None


def _proposal_finding(p):
    """IA-INDEX-001 for a proposal. Its text and evidence leave out planned costs, row counts and
    update counters, which drift as tables grow and autovacuum runs, so a report of the same
    advice does not change between runs; the proposal itself has the numbers."""
    names = ", ".join(q["name"] for q in p["queries"])
    if p["proven"]:
        gain = "a hypothetical index (hypopg) cuts their planned cost by about %d%%" % round(
            100 * p["saving"]
        )
    else:
        gain = "not proven (no hypopg): the predicates select %s of %s" % (
            _bucket(p["evidence"]["selectivity"]),
            p["table"],
        )
    note = _stable_write_note(p)
    f = _finding(
        "IA-INDEX-001",
        p["table"],
        "An index on %s (%s)%s would serve %s."
        % (p["table"], ", ".join(p["columns"]), " WHERE %s" % p["where"] if p["where"] else "", names),
        "The statements scan the table to find few rows; "
        + gain
        + "."
        + (" Write cost: %s" % note if note else ""),
        p["create_sql"],
        dict(
            columns=p["columns"],
            where=p["where"],
            include=p["include"],
            queries=[q["name"] for q in p["queries"]],
            saving_percent=round(100 * p["saving"]) if p["saving"] is not None else None,
            hypopg=p["hypopg"],
            proven=p["proven"],
            method=p["method"],
            write_cost=note,
        ),
    )
    if not p["proven"]:
        f.severity = "low"
    return f


def rule_catalog():
    return [dict(id=k, title=v[0], severity=v[1]) for k, v in RULES.items()]
