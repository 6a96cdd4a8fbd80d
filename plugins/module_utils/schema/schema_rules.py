# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Schema review rules over one ``catalog.Catalog``.

Every rule reads the model only (never the database), so a catalog read from a live
database and one built from DDL files get the same review. Rules that need statistics
use them when present (``Table.row_estimate``) and fall back to the ``expected_rows``
input, so they also work on DDL, where there are none.

Each finding has a stable rule id (``SR-<AREA>-<NNN>``), a severity, the object
(``schema.table`` or ``schema.table.column``), what is wrong, why it matters, the SQL
that fixes it (identifiers quoted) and the evidence.

Entry point: ``review(catalog, policy=None, denormalization_decisions=None,
expected_rows=None, suppressions=None)`` returns ``(findings, summary)``.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import re
from collections import OrderedDict

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import profiling
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import shared_rules as shared
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import is_reserved, qualified_text
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import quote_ident_text as qi

INT4_MAX = 2147483647
MAX_IDENTIFIER_BYTES = 63

DEFAULT_POLICY = dict(
    # Rule ids (shell-style patterns allowed, e.g. "SR-NAME-*") that are not run.
    disabled_rules=[],
    # Severity per rule id, overriding the rule's default.
    severities={},
    # Regular expression every name of that kind must match (re.fullmatch).
    naming=dict(
        table=r"[a-z][a-z0-9_]*",
        view=r"[a-z][a-z0-9_]*",
        column=r"[a-z][a-z0-9_]*",
        index=r"[a-z][a-z0-9_]*",
        constraint=r"[a-z][a-z0-9_]*",
    ),
    # A column whose name matches this is expected to be a foreign key; group "stem" names
    # the table it probably points at.
    fk_column_pattern=r"(?P<stem>[a-z][a-z0-9_]*)_id",
    # ... unless a word of the stem is an ordinal (sequence_id, position_id, line_id, version_id:
    # a number in an order, not a reference) and no table of that name exists.
    ordinal_name_pattern=r"(^|_)(seq|sequence|ordinal|position|pos|sort|rank|line|lineno|version|revision|rev|"
    r"step|idx|index|num|number|no|nr|priority|slot|iteration|attempt|generation|epoch|page|row)(_|$)",
    # Names that hold money (word-wise match, case-insensitive).
    money_name_pattern=r"(^|_)(price|amount|total|subtotal|cost|balance|fee|tax|salary|payment)(_|$)",
    # int4 primary keys: flag when the estimated or expected rows reach this number.
    int4_pk_max_rows=100000000,
    # Columns stem1, stem2, ... stemN with N at least this many are a repeating group.
    repeating_group_min=3,
    # Table names: "plural", "singular" or "any" (no check).
    table_names="any",
    # Columns named like this hold a code from a small set (enum-like).
    enum_name_pattern=r"(^|_)(status|state|type|kind|category)$",
)

# Rules whose findings a documented denormalization decision can suppress.
_DECISION_AREAS = ("SR-NORM-", "SR-TYPE-")


class SchemaRuleError(DbarchError, ValueError):
    """Bad policy or input; the message says what and how to fix it."""


# -- rule registry ---------------------------------------------------------------------------
RULES = OrderedDict()


def rule(rule_id, title, severity=None, needs=None, problem=None):
    """Register a rule, here and in the findings registry (docs, SARIF).

    ``needs``: "profile" (sampled rows) or "query_patterns" (plans). ``problem``: a problem of
    shared_rules that the migration lint judges too; the rule then takes its severity.
    """

    def wrap(fn):
        reg = fnd.register_rule(
            rule_id,
            title,
            severity,
            why=(fn.__doc__ or "").strip(),
            analysis="schema_review",
            problem=problem,
        )
        RULES[rule_id] = dict(id=rule_id, title=title, severity=reg.severity, check=fn, needs=needs)
        return fn

    return wrap


# -- helpers ---------------------------------------------------------------------------------
def _unquote(name):
    """Index columns come from pg_get_indexdef, quoted when needed: give the plain name."""
    name = str(name).strip()
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name


_TYPE_ALIASES = {
    "int": "integer",
    "int4": "integer",
    "int2": "smallint",
    "int8": "bigint",
    "serial": "integer",
    "serial4": "integer",
    "bigserial": "bigint",
    "serial8": "bigint",
    "smallserial": "smallint",
    "serial2": "smallint",
    "float8": "double precision",
    "float4": "real",
    "float": "double precision",
    "varchar": "character varying",
    "char": "character",
    "bpchar": "character",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "time": "time without time zone",
    "timetz": "time with time zone",
    "bool": "boolean",
    "decimal": "numeric",
}


def type_info(type_text):
    """(base type, modifier text or None, is_array) of a column type, aliases resolved."""
    t = " ".join(str(type_text or "").lower().split())
    is_array = t.endswith("[]")
    while t.endswith("[]"):
        t = t[:-2].strip()
    if "." in t and not t.startswith('"'):
        schema, _sep, rest = t.partition(".")
        if schema in ("pg_catalog", "public"):
            t = rest
    mods = None
    m = re.match(r"^(.*?)\s*\(([^)]*)\)(.*)$", t)
    if m:
        t = (m.group(1) + m.group(3)).strip()
        mods = m.group(2).replace(" ", "")
    t = _TYPE_ALIASES.get(t, t)
    return t, mods, is_array


def _same_type(a, b):
    ta, ma, aa = type_info(a)
    tb, mb, ab = type_info(b)
    if ta != tb or aa != ab:
        return False
    # varchar(10) referencing varchar(20) works; numeric(10,0) vs numeric(12,2) does not.
    if ta in ("character varying", "text"):
        return True
    return (ma or None) == (mb or None)


def _is_serial(col):
    return col.is_serial or str(col.type).lower() in (
        "serial",
        "serial4",
        "bigserial",
        "serial8",
        "smallserial",
    )


def _to_snake(name):
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    s = re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()
    if not s or not re.match(r"^[a-z]", s):
        s = "x_" + s
    return s


def _truncate(name, limit=MAX_IDENTIFIER_BYTES):
    raw = str(name).encode("utf-8")[:limit]
    return raw.decode("utf-8", "ignore")


def _obj(table, column=None):
    base = table.qualified
    return base if column is None else "%s.%s" % (base, column)


def _tq(table):
    return qualified_text(table.schema, table.name)


def _cols(names):
    return ", ".join(qi(n) for n in names)


def _index_name(table, columns, suffix="idx"):
    return _truncate("%s_%s_%s" % (table.name, "_".join(columns), suffix))


def _plain_columns(index):
    """Key columns of an index as plain names, or None when one is an expression."""
    out = []
    for c in index.columns:
        n = _unquote(c)
        if n != str(c).strip() or re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", n):
            out.append(n)
        else:
            return None
    return out


class Context:
    """What a rule sees: the catalog, the policy and the inputs, plus shared lookups."""

    def __init__(self, catalog, policy, expected_rows, profile=None, query_results=None):
        self.catalog = catalog
        self.policy = policy
        self.profile = profile
        self.query_results = query_results
        self.expected_rows = {}
        if not isinstance(expected_rows or {}, dict):
            raise SchemaRuleError("expected_rows must be a dict of table (or schema.table) -> rows.")
        for key, value in (expected_rows or {}).items():
            try:
                self.expected_rows[str(key)] = int(value)
            except (TypeError, ValueError):
                raise SchemaRuleError(
                    "expected_rows[%r]=%r is not a number of rows." % (key, value)
                ) from None
        self.relations = [t for t in catalog.relations() if not t.partition_of]
        self.tables = [t for t in self.relations if t.is_table]
        # Partitions are reviewed by the rules whose findings can differ from one partition to
        # the next (indexes, FKs); review() folds what holds on every partition into the parent.
        self.partitions = [t for t in catalog.relations(("r", "p")) if t.partition_of]
        self.by_name = dict((t.qualified, t) for t in catalog.relations())
        self.children = OrderedDict()
        for part in self.partitions:
            self.children.setdefault(part.partition_of, []).append(part)

    @property
    def tables_and_partitions(self):
        return self.tables + self.partitions

    def partitions_of(self, table):
        return self.children.get(table.qualified, [])

    def expected(self, table):
        for key in (table.qualified, table.name):
            if key in self.expected_rows:
                return self.expected_rows[key]
        return None

    def find_table(self, name, near_schema):
        """A table by unqualified name: same schema first, then any schema."""
        t = self.catalog.get(near_schema, name)
        if t is not None and t.is_table:
            return t
        for cand in self.tables:
            if cand.name == name:
                return cand
        return None


def _finding(ctx, rule_id, obj, message, why, fix, evidence=None, location=None):
    meta = RULES[rule_id]
    severity = ctx.policy["severities"].get(rule_id, meta["severity"])
    return fnd.Finding(
        rule=rule_id,
        severity=severity,
        object=obj,
        message=message,
        why=why,
        fix=fix,
        evidence=evidence or {},
        title=meta["title"],
        location=location,
    )


# -- keys -----------------------------------------------------------------------------------
@rule("SR-KEY-001", "Table without a primary key", "high")
def no_primary_key(ctx):
    for t in ctx.tables:
        if t.primary_key is not None:
            continue
        candidates = []
        for i in t.indexes:
            cols = _plain_columns(i)
            usable = i.unique and i.valid and not i.predicate and cols
            if usable and all(t.column(c) is not None and t.column(c).not_null for c in cols):
                candidates.append((i, cols))
        if candidates:
            idx, cols = candidates[0]
            fix = "ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY USING INDEX %s;" % (
                _tq(t),
                qi(_truncate("%s_pkey" % t.name)),
                qi(idx.name),
            )
            if t.kind == "p":
                fix = "ALTER TABLE %s ADD PRIMARY KEY (%s);" % (_tq(t), _cols(cols))
        else:
            fix = "ALTER TABLE %s ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;" % _tq(t)
        yield _finding(
            ctx,
            "SR-KEY-001",
            _obj(t),
            "Table %s has no primary key." % t.qualified,
            "Without a primary key rows cannot be addressed reliably: duplicates creep in, logical "
            "replication cannot replicate UPDATE and DELETE, and ORMs and tools that need row identity fail.",
            fix,
            dict(
                unique_not_null_indexes=[i.name for i, _c in candidates],
                row_estimate=t.row_estimate,
            ),
        )


def _strip_parens(text):
    """'((a))' -> 'a'; '(a) AND (b)' stays as it is (its outer parentheses are not one pair)."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def _split_top(text, word):
    """Split ``text`` on a top-level boolean ``word`` (AND / OR), outside parentheses and quotes."""
    parts, depth, start, i, quote = [], 0, 0, 0, None
    pat = re.compile(r"\s%s\s" % word, re.IGNORECASE)
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            m = pat.match(text, i)
            if m:
                parts.append(text[start:i])
                start = i = m.end()
                continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


_IS_NOT_NULL = re.compile(
    r'^(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))\s+IS\s+NOT\s+NULL$', re.IGNORECASE
)


def predicate_implied_by_fk(predicate, columns):
    """True when the partial index predicate is implied by ``col = $1`` on every FK column.

    PostgreSQL's foreign key check runs ``SELECT 1 FROM ONLY child x WHERE col = $1 ...
    FOR KEY SHARE OF x``; its planner (predtest.c) can use a partial index only when that
    WHERE clause proves the predicate. ``col = $1`` (a strict operator) proves ``col IS NOT
    NULL`` and nothing else about the row, so the predicates that qualify are ANDs and ORs
    of ``<fk column> IS NOT NULL``. ``WHERE status = 'x'`` (or any other) cannot be used.
    """
    if not predicate:
        return True
    text = _strip_parens(str(predicate))
    ors = _split_top(text, "OR")
    if len(ors) > 1:
        return any(predicate_implied_by_fk(p, columns) for p in ors)
    ands = _split_top(text, "AND")
    if len(ands) > 1:
        return all(predicate_implied_by_fk(p, columns) for p in ands)
    m = _IS_NOT_NULL.match(text)
    if not m:
        return False
    name = m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2)
    return name in columns or (m.group(2) is not None and name.lower() in columns)


def index_supports_fk(index, fk):
    """True when PostgreSQL's foreign key check can use ``index``.

    A valid btree whose leading key columns are exactly the FK's columns (any order),
    full or partial with a predicate the check's ``WHERE col = $1`` implies (see
    ``predicate_implied_by_fk``); or a hash index on a single-column FK.
    """
    if not index.valid:
        return False
    if index.predicate and not predicate_implied_by_fk(index.predicate, fk.columns):
        return False
    need = set(fk.columns)
    cols = [_unquote(c) for c in index.columns]
    if index.method == "hash":
        return len(need) == 1 and cols == list(need)
    if index.method not in ("btree", None):
        return False
    return set(cols[: len(need)]) == need


def _fk_supported(t, fk):
    return any(index_supports_fk(i, fk) for i in t.indexes)


@rule("SR-KEY-002", "Foreign key without a supporting index", "medium")
def fk_without_index(ctx):
    for t in ctx.tables_and_partitions:
        if t.kind == "p" and ctx.partitions_of(t):
            continue  # the FK check reads the partitions: their findings fold into this table
        for fk in t.foreign_keys:
            if _fk_supported(t, fk):
                continue
            yield _fk_without_index_finding(ctx, t, fk)


def _fk_without_index_finding(ctx, t, fk, partitions=None):
    obj = _obj(t, fk.columns[0]) if len(fk.columns) == 1 else _obj(t)
    where = t.qualified
    if partitions:
        where = "%s (all %d of its partitions)" % (t.qualified, len(partitions))
    return _finding(
        ctx,
        "SR-KEY-002",
        obj,
        "Foreign key %s on %s (%s) has no index whose leading columns are (%s)."
        % (fk.name, where, ", ".join(fk.columns), ", ".join(fk.columns)),
        "Every DELETE or key UPDATE on %s.%s scans %s to check for referencing rows, and "
        "joins from the parent to its children cannot use an index." % (fk.ref_schema, fk.ref_table, where),
        _create_index_sql(ctx, t, fk.columns),
        dict(
            constraint=fk.name,
            columns=list(fk.columns),
            references="%s.%s" % (fk.ref_schema, fk.ref_table),
            row_estimate=t.row_estimate,
            table=t.qualified,
        ),
    )


@rule("SR-KEY-003", "Foreign key type differs from the referenced column", "high")
def fk_type_mismatch(ctx):
    for t in ctx.tables:
        for fk in t.foreign_keys:
            parent = ctx.catalog.get(fk.ref_schema, fk.ref_table)
            if parent is None:
                continue
            for col_name, ref_name in zip(fk.columns, fk.ref_columns):  # noqa: B905
                col, ref = t.column(col_name), parent.column(ref_name)
                if col is None or ref is None or _same_type(col.type, ref.type):
                    continue
                yield _finding(
                    ctx,
                    "SR-KEY-003",
                    _obj(t, col_name),
                    "%s.%s is %s but references %s.%s, which is %s."
                    % (t.qualified, col_name, col.type, parent.qualified, ref_name, ref.type),
                    "Joins and foreign key checks need a cast on one side, which can keep the planner "
                    "from using the index, and values the parent allows may not fit the child.",
                    "ALTER TABLE %s ALTER COLUMN %s TYPE %s;" % (_tq(t), qi(col_name), ref.type),
                    dict(
                        constraint=fk.name,
                        column_type=col.type,
                        referenced_type=ref.type,
                        references="%s.%s" % (parent.qualified, ref_name),
                    ),
                )


@rule("SR-KEY-004", "Column named like a foreign key without one", "low")
def id_without_fk(ctx):
    pattern = re.compile(ctx.policy["fk_column_pattern"])
    ordinal = re.compile(ctx.policy["ordinal_name_pattern"]) if ctx.policy["ordinal_name_pattern"] else None
    for t in ctx.tables:
        fk_cols = {c for fk in t.foreign_keys for c in fk.columns}
        pk = t.primary_key
        pk_cols = set(pk.columns) if pk else set()
        for col in t.columns:
            if col.name in fk_cols or col.name == "id":
                continue
            m = pattern.fullmatch(col.name)
            if not m:
                continue
            stem = m.groupdict().get("stem") or ""
            if not stem:
                continue
            candidates = [stem + "s", stem, stem + "es", re.sub(r"y$", "ies", stem)]
            target = None
            for cand in candidates:
                target = ctx.find_table(cand, t.schema)
                if target is not None:
                    break
            if target is t:
                continue
            if target is None and ordinal is not None and ordinal.search(stem):
                continue  # sequence_id, line_id: a position in an order, and nothing it could point at
            if pk_cols and col.name in pk_cols and len(pk_cols) == 1:
                # The table's own key (e.g. orders.order_id): not a reference.
                continue
            target_pk = target.primary_key if target is not None else None
            if target is not None and target_pk is not None and len(target_pk.columns) == 1:
                ref_col = target_pk.columns[0]
                fk_name = _truncate("%s_%s_fkey" % (t.name, col.name))
                fix = (
                    "ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s) NOT VALID;\n"
                    "ALTER TABLE %s VALIDATE CONSTRAINT %s;"
                    % (
                        _tq(t),
                        qi(fk_name),
                        qi(col.name),
                        _tq(target),
                        qi(ref_col),
                        _tq(t),
                        qi(fk_name),
                    )
                )
                confidence = "high"
                message = "%s.%s looks like a reference to %s but has no foreign key." % (
                    t.qualified,
                    col.name,
                    target.qualified,
                )
            else:
                fix = (
                    "-- No table named %s or %ss was found; if %s references another table:\n"
                    "ALTER TABLE %s ADD FOREIGN KEY (%s) REFERENCES <parent> (<key>) NOT VALID;"
                    % (stem, stem, col.name, _tq(t), qi(col.name))
                )
                confidence = "low"
                message = "%s.%s is named like a foreign key but has none." % (t.qualified, col.name)
            finding = _finding(
                ctx,
                "SR-KEY-004",
                _obj(t, col.name),
                message,
                "Without the constraint nothing stops orphan rows (ids of deleted or never-existing "
                "parents), and readers of the schema cannot tell what the column points at.",
                fix,
                dict(
                    confidence=confidence,
                    candidate_table=target.qualified if target is not None else None,
                    heuristic="name matches %s" % ctx.policy["fk_column_pattern"],
                ),
            )
            if confidence == "low" and "SR-KEY-004" not in ctx.policy["severities"]:
                finding.severity = "info"  # an external id (payment provider, ...) is common
            yield finding


# -- indexes ---------------------------------------------------------------------------------
def _index_key(i):
    return (
        i.method,
        tuple(_unquote(c) for c in i.columns),
        tuple(i.opclasses or ()),
        (i.predicate or "").strip(),
    )


def _drop_index(t, i):
    if t.kind == "p":
        return (
            "DROP INDEX %s;  -- a partitioned index: CONCURRENTLY is not supported, and this drops the "
            "index on every partition under an ACCESS EXCLUSIVE lock" % qualified_text(t.schema, i.name)
        )
    if i.parent_index:
        return (
            "-- %s is attached to the parent's index %s: drop that one on the parent instead:\n"
            "DROP INDEX %s;" % (i.name, i.parent_index, qualified_text(t.schema, i.parent_index))
        )
    return "DROP INDEX CONCURRENTLY %s;" % qualified_text(t.schema, i.name)


def _create_index_sql(ctx, t, columns):
    """CREATE INDEX for ``t``; on a partitioned table the sequence that never locks it for long:
    the parent's index ON ONLY (invalid until every partition has one), each partition's
    built CONCURRENTLY, then attached."""
    name = _index_name(t, columns)
    if t.kind != "p":
        return "CREATE INDEX CONCURRENTLY %s ON %s (%s);" % (qi(name), _tq(t), _cols(columns))
    lines = ["CREATE INDEX %s ON ONLY %s (%s);" % (qi(name), _tq(t), _cols(columns))]
    for part in ctx.partitions_of(t):
        lines.append(_create_index_sql(ctx, part, columns))
        lines.append(
            "ALTER INDEX %s ATTACH PARTITION %s;"
            % (qualified_text(t.schema, name), qualified_text(part.schema, _index_name(part, columns)))
        )
    return "\n".join(lines)


@rule("SR-IDX-001", "Duplicate index", "medium")
def duplicate_indexes(ctx):
    for t in ctx.tables_and_partitions:
        groups = OrderedDict()
        for i in t.indexes:
            if i.valid:
                groups.setdefault(_index_key(i) + (tuple(i.include),), []).append(i)
        for same in groups.values():
            if len(same) < 2:
                continue
            # Keep the one that backs a constraint (or is unique), drop the others.
            # (and, on a partition, the one attached to the parent's index: it cannot go alone)
            ranked = sorted(
                same,
                key=lambda i: (not i.primary, not i.constraint, not i.parent_index, not i.unique, i.name),
            )
            keep = ranked[0]
            for dup in ranked[1:]:
                if dup.constraint:
                    fix = "ALTER TABLE %s DROP CONSTRAINT %s;" % (_tq(t), qi(dup.constraint))
                elif dup.unique and not keep.unique:
                    fix = _drop_index(t, keep)
                else:
                    fix = _drop_index(t, dup)
                yield _finding(
                    ctx,
                    "SR-IDX-001",
                    _obj(t),
                    "Indexes %s and %s on %s are the same (%s on %s)."
                    % (keep.name, dup.name, t.qualified, keep.method, ", ".join(keep.columns)),
                    "A duplicate index doubles the write cost and the disk and cache it takes, and "
                    "serves no query the other does not.",
                    fix,
                    dict(
                        kept=keep.name,
                        duplicate=dup.name,
                        columns=list(keep.columns),
                        bytes=dup.bytes,
                        kept_backs_constraint=keep.constraint,
                        method=keep.method,
                        table=t.qualified,
                    ),
                )


@rule("SR-IDX-002", "Redundant index (prefix of another)", "low")
def redundant_indexes(ctx):
    for t in ctx.tables_and_partitions:
        valid = [i for i in t.indexes if i.valid and i.method == "btree"]
        for a in valid:
            if a.unique or a.primary or a.constraint:
                continue  # it enforces something
            ka = _index_key(a)
            for b in valid:
                if b is a:
                    continue
                kb = _index_key(b)
                n = len(ka[1])
                if ka[3] != kb[3] or len(kb[1]) <= n:
                    continue
                if kb[1][:n] != ka[1] or tuple(kb[2][:n]) != tuple(ka[2][:n]):
                    continue
                if a.parent_index and not b.parent_index:
                    continue  # dropping a would drop the parent's index on every partition
                yield _finding(
                    ctx,
                    "SR-IDX-002",
                    _obj(t),
                    "Index %s on %s (%s) is a leading prefix of %s (%s)."
                    % (a.name, t.qualified, ", ".join(a.columns), b.name, ", ".join(b.columns)),
                    "The longer index serves every lookup the shorter one does; the shorter one only "
                    "costs writes, disk and cache.",
                    _drop_index(t, a),
                    dict(
                        redundant=a.name,
                        covered_by=b.name,
                        columns=list(a.columns),
                        covering_columns=list(b.columns),
                        bytes=a.bytes,
                        table=t.qualified,
                    ),
                )
                break


def _invalid_index_fix(ctx, t, i):
    if t.kind != "p":
        return "REINDEX INDEX CONCURRENTLY %s;\n-- or, if it is not needed: %s" % (
            qualified_text(t.schema, i.name),
            _drop_index(t, i),
        )
    # A partitioned index is invalid until every partition has an index attached to it.
    cols = [_unquote(c) for c in i.columns]
    lines = ["-- %s stays invalid until each partition has an index attached to it:" % i.name]
    for part in ctx.partitions_of(t):
        if any(x.parent_index == i.name for x in part.indexes):
            continue
        lines.append(_create_index_sql(ctx, part, cols))
        lines.append(
            "ALTER INDEX %s ATTACH PARTITION %s;"
            % (qualified_text(t.schema, i.name), qualified_text(part.schema, _index_name(part, cols)))
        )
    lines.append("-- or, if it is not needed: %s" % _drop_index(t, i))
    return "\n".join(lines)


@rule("SR-IDX-003", "Invalid index", "high")
def invalid_indexes(ctx):
    for t in ctx.tables_and_partitions:
        for i in t.indexes:
            if i.valid:
                continue
            yield _finding(
                ctx,
                "SR-IDX-003",
                _obj(t),
                "Index %s on %s is invalid (a CREATE INDEX CONCURRENTLY or REINDEX that failed)."
                % (i.name, t.qualified),
                "The planner never uses an invalid index but every write still maintains it; a unique "
                "one may not be enforcing uniqueness.",
                _invalid_index_fix(ctx, t, i),
                dict(
                    index=i.name,
                    definition=i.definition,
                    ready=i.ready,
                    columns=list(i.columns),
                    method=i.method,
                    table=t.qualified,
                ),
            )


@rule("SR-IDX-004", "Unique index instead of a UNIQUE constraint", "low")
def unique_index_not_constraint(ctx):
    for t in ctx.tables:
        for i in t.indexes:
            if not i.unique or i.primary or i.constraint or i.predicate or not i.valid:
                continue
            if i.method != "btree" or _plain_columns(i) is None:
                continue
            yield _finding(
                ctx,
                "SR-IDX-004",
                _obj(t),
                "Uniqueness of %s (%s) is enforced by index %s only, not by a UNIQUE constraint."
                % (t.qualified, ", ".join(i.columns), i.name),
                "A constraint states the rule in the schema: information_schema, ORMs, documentation "
                "and ON CONFLICT ON CONSTRAINT see it, and it can be made DEFERRABLE; an index is an "
                "implementation detail someone may drop.",
                "ALTER TABLE %s ADD CONSTRAINT %s UNIQUE USING INDEX %s;" % (_tq(t), qi(i.name), qi(i.name)),
                dict(index=i.name, columns=list(i.columns)),
            )


# -- partitions ------------------------------------------------------------------------------
def _fk_signature(fk):
    return (tuple(fk.columns), fk.ref_schema, fk.ref_table, tuple(fk.ref_columns))


@rule("SR-PART-001", "Partition without a foreign key its sibling partitions have", "medium")
def partition_missing_fk(ctx):
    for parent, parts in ctx.children.items():
        if len(parts) < 2:
            continue
        having = OrderedDict()
        example = {}
        for part in parts:
            for fk in part.foreign_keys:
                sig = _fk_signature(fk)
                having.setdefault(sig, set()).add(part.qualified)
                example.setdefault(sig, fk)
        for sig, names in having.items():
            missing = [p for p in parts if p.qualified not in names]
            if not missing or len(names) < len(missing):
                continue  # all have it, or most do not: not "its siblings have"
            fk = example[sig]
            for part in missing:
                name = _truncate("%s_%s_fkey" % (part.name, "_".join(fk.columns)))
                yield _finding(
                    ctx,
                    "SR-PART-001",
                    _obj(part),
                    "Partition %s of %s has no foreign key (%s) -> %s.%s (%s), which %d of its %d sibling "
                    "partitions have."
                    % (
                        part.qualified,
                        parent,
                        ", ".join(fk.columns),
                        fk.ref_schema,
                        fk.ref_table,
                        ", ".join(fk.ref_columns),
                        len(names),
                        len(parts) - 1,
                    ),
                    "Rows routed to this partition are not checked: orphans can be written there only, "
                    "and a query that trusts the constraint on the other partitions is wrong on this one.",
                    "ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s) NOT VALID;\n"
                    "ALTER TABLE %s VALIDATE CONSTRAINT %s;\n"
                    "-- or declare it once on %s, and every partition (also future ones) has it."
                    % (
                        _tq(part),
                        qi(name),
                        _cols(fk.columns),
                        qualified_text(fk.ref_schema, fk.ref_table),
                        _cols(fk.ref_columns),
                        _tq(part),
                        qi(name),
                        parent,
                    ),
                    dict(
                        partition_of=parent,
                        columns=list(fk.columns),
                        references="%s.%s" % (fk.ref_schema, fk.ref_table),
                        siblings_with_it=sorted(names),
                        table=part.qualified,
                    ),
                )


# Findings of these rules that hold on every partition of a table become one finding on the
# table; the evidence keys say when two findings are "the same" on two partitions.
_PARTITION_GROUPS = {
    "SR-KEY-002": ("columns", "references"),
    "SR-IDX-001": ("columns", "method"),
    "SR-IDX-002": ("columns", "covering_columns"),
    "SR-IDX-003": ("columns", "method"),
}


def _group_key(f):
    keys = _PARTITION_GROUPS.get(f.rule)
    if keys is None or "table" not in f.evidence:
        return None
    return (f.rule,) + tuple(repr(f.evidence.get(k)) for k in keys)


def _depth(ctx, table):
    n = 0
    while table is not None and table.partition_of and n < 64:
        table = ctx.by_name.get(table.partition_of)
        n += 1
    return n


def group_partition_findings(ctx, findings):
    """Fold findings that hold on EVERY partition of a table into one finding on that table.

    Deepest parents first, so a sub-partitioned partition's folded finding can fold again.
    Findings on only some partitions stay on those partitions.
    """
    out = list(findings)
    parents = sorted(ctx.children, key=lambda q: -_depth(ctx, ctx.by_name.get(q)))
    for qualified in parents:
        parent = ctx.by_name.get(qualified)
        parts = ctx.children[qualified]
        if parent is None or not parts:
            continue
        names = {p.qualified for p in parts}
        buckets = OrderedDict()
        own = {}
        for f in out:
            key = _group_key(f)
            if key is None:
                continue
            if f.evidence["table"] in names:
                buckets.setdefault(key, []).append(f)
            elif f.evidence["table"] == qualified:
                own.setdefault(key, f)
        for key, items in buckets.items():
            if {f.evidence["table"] for f in items} != names:
                continue  # partition-specific: stays on the partitions it concerns
            drop = {id(f) for f in items}
            out = [f for f in out if id(f) not in drop]
            merged = own.get(key)
            if merged is None:
                merged = _parent_finding(ctx, parent, items)
                out.append(merged)
            else:
                merged.message = "%s The same holds on all %d partitions of %s." % (
                    merged.message,
                    len(parts),
                    qualified,
                )
            merged.evidence["partitions"] = len(parts)
            merged.evidence["partition_names"] = sorted(names)
    return out


def _parent_finding(ctx, parent, items):
    first = items[0]
    if first.rule == "SR-KEY-002":
        fk = next(
            (
                fk
                for p in ctx.partitions_of(parent)
                for fk in p.foreign_keys
                if list(fk.columns) == first.evidence["columns"]
            ),
            None,
        )
        if fk is not None:
            f = _fk_without_index_finding(ctx, parent, fk, partitions=ctx.partitions_of(parent))
            f.severity = first.severity
            return f
    fixes = []
    for f in sorted(items, key=lambda x: x.object):
        if f.fix and f.fix not in fixes:
            fixes.append(f.fix)
    column = (
        first.object[len(first.evidence["table"]) + 1 :] if first.object != first.evidence["table"] else None
    )
    evidence = dict(first.evidence)
    evidence["table"] = parent.qualified
    evidence["example"] = first.message
    return fnd.Finding(
        rule=first.rule,
        severity=first.severity,
        object=_obj(parent, column or None),
        message="All %d partitions of %s: %s"
        % (len(ctx.partitions_of(parent)), parent.qualified, first.message[:1].lower() + first.message[1:]),
        why=first.why,
        fix="\n".join(fixes),
        evidence=evidence,
        title=first.title,
    )


# -- types -----------------------------------------------------------------------------------
def _type_findings(ctx, rule_id, test, message, why, fix):
    for t in ctx.tables:
        for col in t.columns:
            if col.generated:
                continue
            base, mods, is_array = type_info(col.type)
            if test(col, base, mods, is_array):
                yield _finding(
                    ctx,
                    rule_id,
                    _obj(t, col.name),
                    message % dict(table=t.qualified, column=col.name, type=col.type, mods=mods),
                    why,
                    fix(t, col, mods),
                    dict(type=col.type),
                )


def _alter_type(t, col, new_type, using=None):
    text = "ALTER TABLE %s ALTER COLUMN %s TYPE %s" % (_tq(t), qi(col.name), new_type)
    if using:
        text += " USING %s" % using
    return text + ";"


@rule("SR-TYPE-001", "timestamp without time zone", problem=shared.TIMESTAMP_WITHOUT_TZ)
def timestamp_without_tz(ctx):
    return _type_findings(
        ctx,
        "SR-TYPE-001",
        lambda c, b, m, a: b == "timestamp without time zone",
        "%(table)s.%(column)s is timestamp without time zone.",
        "It stores wall-clock time with no zone: the same instant written from sessions with "
        "different TimeZone settings reads back differently, and DST changes make values ambiguous.",
        lambda t, c, m: (
            _alter_type(t, c, "timestamptz", "%s AT TIME ZONE 'UTC'" % qi(c.name))
            + "\n-- the USING clause assumes the stored values are UTC; use the zone they were written in."
        ),
    )


@rule("SR-TYPE-002", "char(n)", problem=shared.CHAR_N)
def char_n(ctx):
    return _type_findings(
        ctx,
        "SR-TYPE-002",
        lambda c, b, m, a: b == "character",
        "%(table)s.%(column)s is %(type)s.",
        "char(n) pads with spaces, which leak into comparisons with text and into the application; "
        "it is no faster than text in PostgreSQL.",
        lambda t, c, m: (
            _alter_type(t, c, "text")
            + ("\nALTER TABLE %s ADD CHECK (char_length(%s) = %s);" % (_tq(t), qi(c.name), m) if m else "")
        ),
    )


@rule("SR-TYPE-003", "money type", "medium")
def money_type(ctx):
    return _type_findings(
        ctx,
        "SR-TYPE-003",
        lambda c, b, m, a: b == "money",
        "%(table)s.%(column)s is money.",
        "money's format and precision follow lc_monetary, so a dump restored under another locale "
        "changes the values, and it holds no currency.",
        lambda t, c, m: _alter_type(t, c, "numeric(19,4)", "%s::numeric" % qi(c.name)),
    )


@rule("SR-TYPE-004", "serial instead of identity", problem=shared.SERIAL_NOT_IDENTITY)
def serial_not_identity(ctx):
    for t in ctx.tables:
        for col in t.columns:
            if not _is_serial(col):
                continue
            seq = None
            m = re.match(r"^nextval\('(.+?)'(::regclass)?\)", col.default or "")
            if m:
                seq = m.group(1)
            steps = ["BEGIN;", "ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT;" % (_tq(t), qi(col.name))]
            if seq:
                steps.append("DROP SEQUENCE %s;" % seq)
            steps += [
                "ALTER TABLE %s ALTER COLUMN %s ADD GENERATED BY DEFAULT AS IDENTITY;"
                % (_tq(t), qi(col.name)),
                "SELECT setval(pg_get_serial_sequence('%s', '%s'), COALESCE(max(%s), 0) + 1, false) FROM %s;"
                % (
                    _tq(t).replace("'", "''"),
                    col.name.replace("'", "''"),
                    qi(col.name),
                    _tq(t),
                ),
                "COMMIT;",
            ]
            yield _finding(
                ctx,
                "SR-TYPE-004",
                _obj(t, col.name),
                "%s.%s uses serial (a sequence default) instead of an identity column."
                % (t.qualified, col.name),
                "An identity column owns its sequence in the standard way: privileges, CREATE TABLE "
                "LIKE and dumps handle it, and GENERATED ALWAYS stops writes that bypass the sequence.",
                "\n".join(steps),
                dict(type=col.type, default=col.default),
            )


@rule("SR-TYPE-005", "json instead of jsonb", "low")
def json_not_jsonb(ctx):
    return _type_findings(
        ctx,
        "SR-TYPE-005",
        lambda c, b, m, a: b == "json",
        "%(table)s.%(column)s is json, not jsonb.",
        "json is stored as text and parsed on every access; jsonb is indexable (GIN), has equality "
        "and containment operators, and is usually smaller to query.",
        lambda t, c, m: _alter_type(t, c, "jsonb", "%s::jsonb" % qi(c.name)),
    )


@rule("SR-TYPE-006", "varchar(n) with an arbitrary limit", problem=shared.VARCHAR_N)
def varchar_n(ctx):
    return _type_findings(
        ctx,
        "SR-TYPE-006",
        lambda c, b, m, a: b == "character varying" and bool(m) and not a,
        "%(table)s.%(column)s is %(type)s: a length limit in the type.",
        "varchar(n) and text are stored the same way; the limit in the type can only be raised by "
        "ALTER TABLE, while a CHECK constraint states a real business limit and is easier to change.",
        lambda t, c, m: (
            _alter_type(t, c, "text")
            + "\nALTER TABLE %s ADD CONSTRAINT %s CHECK (char_length(%s) <= %s);"
            % (_tq(t), qi(_truncate("%s_%s_length_check" % (t.name, c.name))), qi(c.name), m)
        ),
    )


@rule("SR-TYPE-007", "Floating point for money", "high")
def float_money(ctx):
    pattern = re.compile(ctx.policy["money_name_pattern"], re.IGNORECASE)
    return _type_findings(
        ctx,
        "SR-TYPE-007",
        lambda c, b, m, a: b in ("real", "double precision") and bool(pattern.search(c.name)),
        "%(table)s.%(column)s holds money but is %(type)s (binary floating point).",
        "Floating point cannot store most decimal fractions exactly: sums drift by cents and "
        "equality tests fail. numeric is exact.",
        lambda t, c, m: _alter_type(t, c, "numeric(19,4)"),
    )


@rule("SR-TYPE-008", "int4 primary key on a table expected to grow", problem=shared.INT4_KEY_OVERFLOW)
def int4_pk(ctx):
    limit = int(ctx.policy["int4_pk_max_rows"])
    for t in ctx.tables:
        pk = t.primary_key
        if pk is None or len(pk.columns) != 1:
            continue
        col = t.column(pk.columns[0])
        if col is None or type_info(col.type)[0] != "integer":
            continue
        expected = ctx.expected(t)
        rows = max([r for r in (t.row_estimate, expected) if r is not None] or [0])
        if rows < limit:
            continue
        steps = ["ALTER TABLE %s ALTER COLUMN %s TYPE bigint;" % (_tq(t), qi(col.name))]
        for child, fk in ctx.catalog.referenced_by(t):
            for c in fk.columns:
                steps.append("ALTER TABLE %s ALTER COLUMN %s TYPE bigint;" % (_tq(child), qi(c)))
        steps.append("-- each ALTER rewrites its table under an ACCESS EXCLUSIVE lock: plan a window.")
        yield _finding(
            ctx,
            "SR-TYPE-008",
            _obj(t, col.name),
            "Primary key %s.%s is integer (max %d) on a table expected to hold %d rows."
            % (t.qualified, col.name, INT4_MAX, rows),
            "Sequences also burn values on rollbacks and deletes; when the key reaches 2^31-1 every "
            "INSERT fails, and the change to bigint then rewrites the table and its children under lock.",
            "\n".join(steps),
            dict(
                type=col.type,
                row_estimate=t.row_estimate,
                expected_rows=expected,
                threshold=limit,
                used_fraction=round(float(rows) / INT4_MAX, 4),
            ),
        )


# -- naming ----------------------------------------------------------------------------------
def _rename(kind, t, old, new, extra=None):
    if kind in ("table", "view"):
        what = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"}
        return "ALTER %s %s RENAME TO %s;" % (what.get(t.kind, "TABLE"), _tq(t), qi(new))
    if kind == "column":
        return "ALTER TABLE %s RENAME COLUMN %s TO %s;" % (_tq(t), qi(old), qi(new))
    if kind == "index":
        return "ALTER INDEX %s RENAME TO %s;" % (qualified_text(t.schema, old), qi(new))
    return "ALTER TABLE %s RENAME CONSTRAINT %s TO %s;" % (_tq(t), qi(old), qi(new))


def _names(ctx):
    """(kind, table, name, object) for every name the naming rules look at."""
    for t in ctx.relations:
        kind = "table" if t.is_table else "view"
        yield kind, t, t.name, _obj(t)
        for c in t.columns:
            yield "column", t, c.name, _obj(t, c.name)
        for i in t.indexes:
            if not i.constraint:
                yield "index", t, i.name, "%s.%s" % (t.schema, i.name)
        for con in t.constraints:
            yield "constraint", t, con.name, "%s.%s" % (t.qualified, con.name)


@rule("SR-NAME-001", "Name not in the naming convention", "low")
def naming_convention(ctx):
    patterns = dict((k, re.compile(v)) for k, v in ctx.policy["naming"].items() if v)
    for kind, t, name, obj in _names(ctx):
        pat = patterns.get(kind)
        if pat is None or pat.fullmatch(name):
            continue
        new = _to_snake(name)
        yield _finding(
            ctx,
            "SR-NAME-001",
            obj,
            "%s name %r does not match the convention %s." % (kind.capitalize(), name, pat.pattern),
            "Names outside the convention (mixed case, spaces) must be double-quoted in every query "
            "forever, and mixed styles make the schema harder to read and to search.",
            _rename(kind, t, name, new),
            dict(kind=kind, name=name, pattern=pat.pattern, suggested=new),
        )


@rule("SR-NAME-002", "Reserved word as a name", "medium")
def reserved_words(ctx):
    for kind, t, name, obj in _names(ctx):
        if kind not in ("table", "view", "column") or not is_reserved(name):
            continue
        new = name + "s" if kind in ("table", "view") else "%s_%s" % (_to_snake(t.name).rstrip("s"), name)
        if is_reserved(new):
            new = name + "_value"
        yield _finding(
            ctx,
            "SR-NAME-002",
            obj,
            "%s name %r is an SQL reserved word." % (kind.capitalize(), name),
            "A reserved word must be double-quoted in every statement; hand-written SQL, reporting "
            "tools and ORMs that forget the quotes fail with syntax errors.",
            _rename(kind, t, name, new) + "\n-- rename in the application code in the same release.",
            dict(kind=kind, name=name, suggested=new),
        )


@rule("SR-NAME-003", "Identifier longer than 63 bytes", problem=shared.LONG_IDENTIFIER)
def long_identifiers(ctx):
    for kind, _t, name, obj in _names(ctx):
        size = len(str(name).encode("utf-8"))
        if size <= MAX_IDENTIFIER_BYTES:
            continue
        new = _truncate(name)
        yield _finding(
            ctx,
            "SR-NAME-003",
            obj,
            "%s name %r is %d bytes; PostgreSQL keeps only the first %d."
            % (kind.capitalize(), name, size, MAX_IDENTIFIER_BYTES),
            "PostgreSQL silently truncates the name, so two long names can collide and code that "
            "uses the full name no longer matches the catalog.",
            "-- use a name of at most 63 bytes, e.g. %s" % qi(new),
            dict(kind=kind, bytes=size, truncated_to=new),
        )


@rule("SR-NAME-004", "Inconsistent foreign key column names", "low")
def inconsistent_fk_names(ctx):
    groups = OrderedDict()  # (ref table, normalized) -> {name: [(table, column)]}
    for t in ctx.tables:
        for fk in t.foreign_keys:
            if len(fk.columns) != 1:
                continue
            name = fk.columns[0]
            key = ("%s.%s" % (fk.ref_schema, fk.ref_table), name.replace("_", "").lower())
            groups.setdefault(key, OrderedDict()).setdefault(name, []).append(t)
    for (ref, _norm), names in groups.items():
        if len(names) < 2:
            continue
        # The most used spelling wins; on a tie the one with underscores (snake_case).
        ranked = sorted(names.items(), key=lambda kv: (-len(kv[1]), -kv[0].count("_"), kv[0]))
        best = ranked[0][0]
        for name, tables in ranked[1:]:
            for t in tables:
                yield _finding(
                    ctx,
                    "SR-NAME-004",
                    _obj(t, name),
                    "%s.%s references %s, which other tables reference as %s."
                    % (t.qualified, name, ref, best),
                    "One concept with several spellings makes joins error-prone and the schema harder to "
                    "search and to generate code from.",
                    _rename("column", t, name, best),
                    dict(
                        references=ref,
                        spellings=dict((n, [x.qualified for x in ts]) for n, ts in names.items()),
                    ),
                )


# -- normalization ---------------------------------------------------------------------------
@rule("SR-NORM-001", "Repeating group of columns (1NF)", "medium")
def repeating_groups(ctx):
    minimum = int(ctx.policy["repeating_group_min"])
    for t in ctx.tables:
        groups = OrderedDict()
        for c in t.columns:
            m = re.match(r"^(.*?[a-z])_?(\d+)$", c.name)
            if m:
                groups.setdefault(m.group(1), []).append((int(m.group(2)), c))
        for stem, members in groups.items():
            if len(members) < minimum:
                continue
            members.sort(key=lambda x: x[0])
            cols = [c for _n, c in members]
            child = _truncate("%s_%ss" % (t.name, stem))
            pk = t.primary_key
            if pk is not None and len(pk.columns) == 1 and t.column(pk.columns[0]) is not None:
                key = pk.columns[0]
                key_type = type_info(t.column(key).type)[0]
                fk_col = "%s_%s" % (t.name.rstrip("s"), key) if key == "id" else key
                value_type = cols[0].type
                inserts = "\nUNION ALL ".join(
                    "SELECT %s, %d, %s FROM %s WHERE %s IS NOT NULL"
                    % (qi(key), n, qi(c.name), _tq(t), qi(c.name))
                    for n, c in members
                )
                fix = (
                    "CREATE TABLE %s (\n    %s %s NOT NULL REFERENCES %s (%s) ON DELETE CASCADE,\n"
                    "    position smallint NOT NULL,\n    %s %s NOT NULL,\n"
                    "    PRIMARY KEY (%s, position)\n);\n"
                    "INSERT INTO %s\n%s;\nALTER TABLE %s %s;"
                    % (
                        qualified_text(t.schema, child),
                        qi(fk_col),
                        key_type,
                        _tq(t),
                        qi(key),
                        qi(stem),
                        value_type,
                        qi(fk_col),
                        qualified_text(t.schema, child),
                        inserts,
                        _tq(t),
                        ", ".join("DROP COLUMN %s" % qi(c.name) for c in cols),
                    )
                )
            else:
                fix = "-- move %s into a child table %s (one row per value) keyed by the parent's key." % (
                    ", ".join(c.name for c in cols),
                    child,
                )
            yield _finding(
                ctx,
                "SR-NORM-001",
                _obj(t),
                "%s has a repeating group %s (%s)." % (t.qualified, stem, ", ".join(c.name for c in cols)),
                "A fixed number of slots (first normal form violation) caps the values at N, makes "
                "'find the row with this %s' an OR over N columns that no single index serves, and "
                "leaves gaps and duplicates between slots." % stem,
                fix,
                dict(columns=[c.name for c in cols], stem=stem),
            )


@rule("SR-NORM-002", "Array of keys instead of a junction table", "medium")
def key_arrays(ctx):
    for t in ctx.tables:
        for c in t.columns:
            base, _m, is_array = type_info(c.type)
            if not is_array or not re.search(r"_ids$", c.name):
                continue
            stem = c.name[: -len("_ids")]
            junction = _truncate("%s_%ss" % (t.name.rstrip("s"), stem))
            yield _finding(
                ctx,
                "SR-NORM-002",
                _obj(t, c.name),
                "%s.%s is an array of keys (%s)." % (t.qualified, c.name, c.type),
                "Array elements cannot be foreign keys, so nothing stops dangling ids; joins need "
                "unnest() and updating one element rewrites the whole array.",
                "-- move the ids to a junction table, one row per (%s, %s_id):\nCREATE TABLE %s (...);"
                % (t.name, stem, qualified_text(t.schema, junction)),
                dict(type=c.type, element_type=base),
            )


# -- profile (sampled rows) ----------------------------------------------------------------
def _sampled(ctx, t):
    """The sampled rows of ``t`` when there are enough of them, else None."""
    data = (ctx.profile or {}).get("tables", {}).get(t.qualified)
    if not data or data["sampled"] < profiling.MIN_ROWS:
        return None
    return data


def _rows_text(n):
    return "{:,}".format(n)


def _key_columns(t):
    """Columns of the primary key and of single-column unique constraints or indexes."""
    keys = set(t.primary_key.columns) if t.primary_key else set()
    for i in t.indexes:
        cols = _plain_columns(i)
        if i.unique and not i.predicate and cols and len(cols) == 1:
            keys.add(cols[0])
    return keys


@rule("SR-CONS-001", "Nullable column that holds no NULL", "low", needs="profile")
def missing_not_null(ctx):
    for t in ctx.tables:
        data = _sampled(ctx, t)
        if data is None:
            continue
        for col in profiling.null_candidates(t, data):
            state, evidence = profiling.null_evidence(data, col)
            if state == "has_nulls":
                continue  # the sample missed them; SET NOT NULL would fail
            check = qi(_truncate("%s_%s_not_null" % (t.name, col)))
            safe = (
                "ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID;\n"
                "ALTER TABLE %s VALIDATE CONSTRAINT %s;  -- fails, changing nothing, if a NULL exists\n"
                "ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;  -- PostgreSQL 12+ uses the check, no scan\n"
                "ALTER TABLE %s DROP CONSTRAINT %s;"
                % (_tq(t), check, qi(col), _tq(t), check, _tq(t), qi(col), _tq(t), check)
            )
            if state == "exact":
                message = "%s.%s is nullable but holds no NULL: %s." % (t.qualified, col, evidence)
                fix = (
                    "-- SET NOT NULL takes an ACCESS EXCLUSIVE lock and scans the whole table.\n"
                    "ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;\n"
                    "-- On a busy table, the same without the long lock:\n" % (_tq(t), qi(col))
                ) + "\n".join("-- " + line for line in safe.split("\n"))
            else:
                message = (
                    "%s.%s is nullable and probably always filled in: %s. Only a sample was read, so "
                    "check the whole table before adding NOT NULL." % (t.qualified, col, evidence)
                )
                fix = (
                    "-- Sampled, not proven: this must return 0 before anything else\n"
                    "SELECT count(*) FROM %s WHERE %s IS NULL;\n" % (_tq(t), qi(col))
                ) + safe
            yield _finding(
                ctx,
                "SR-CONS-001",
                _obj(t, col),
                message,
                "A column that is always filled in should say so: NOT NULL documents the rule, stops "
                "the first bad row, and lets the planner and the application rely on it.",
                fix,
                dict(
                    sampled_rows=data["sampled"],
                    sample_method=data.get("method"),
                    nulls=0,
                    exact=state == "exact",
                    row_estimate=data.get("row_estimate", t.row_estimate),
                    evidence=evidence,
                ),
            )


@rule("SR-NORM-003", "Comma-separated list in a text column (1NF)", "medium", needs="profile")
def comma_lists(ctx):
    for t in ctx.tables:
        data = _sampled(ctx, t)
        if data is None:
            continue
        for col in t.columns:
            base = type_info(col.type)[0]
            if base not in ("text", "character varying", "character") or col.name not in data["columns"]:
                continue
            share, lists, present = profiling.list_share(profiling.column_values(data, col.name))
            if present < profiling.MIN_ROWS or share < profiling.LIST_MIN_SHARE:
                continue
            child = _truncate("%s_%s" % (t.name.rstrip("s"), col.name))
            yield _finding(
                ctx,
                "SR-NORM-003",
                _obj(t, col.name),
                "%s.%s holds comma-separated lists (%s of %s non-empty sampled values)."
                % (t.qualified, col.name, profiling.percent(share), _rows_text(present)),
                "A list in one text value (first normal form violation) cannot be indexed per item, "
                "joined or constrained: 'rows with this item' becomes a LIKE or a string split over "
                "every row, and nothing stops misspelled or duplicate items.",
                "-- one row per item, keyed by the parent's key:\nCREATE TABLE %s (...);\n"
                "-- fill it with string_to_table(%s, ',') (PostgreSQL 14+), then drop %s."
                % (qualified_text(t.schema, child), qi(col.name), qi(col.name)),
                dict(
                    columns=[col.name],
                    sampled_rows=data["sampled"],
                    non_empty=present,
                    lists=lists,
                    share=round(share, 4),
                    evidence="%s of %s non-empty values in %s sampled rows are comma-separated lists"
                    % (profiling.percent(share), _rows_text(present), _rows_text(data["sampled"])),
                ),
            )


@rule("SR-NORM-004", "Functional dependency between non-key columns (2NF/3NF)", "medium", needs="profile")
def functional_dependencies(ctx):
    for t in ctx.tables:
        data = _sampled(ctx, t)
        if data is None:
            continue
        keys = _key_columns(t)
        fk_cols = {c for fk in t.foreign_keys for c in fk.columns}
        non_key = [
            c.name
            for c in t.columns
            if c.name not in keys and not c.generated and not c.identity and c.name in data["columns"]
        ]
        found = []
        # 3NF: between non-key columns.
        for a, b, ratio, counted, both in profiling.dependencies(data, non_key):
            found.append(("3NF", a, b, ratio, counted, both))
        # 2NF: a part of a composite primary key determines a non-key column.
        pk = t.primary_key
        if pk is not None and len(pk.columns) > 1:
            idx = dict((c, i) for i, c in enumerate(data["columns"]))
            for k in pk.columns:
                if k not in idx:
                    continue
                for b in non_key:
                    ok, ratio, _d, counted = profiling.dependency_holds(data["rows"], idx[k], idx[b])
                    if ok:
                        found.append(("2NF", k, b, ratio, counted, False))
        for form, a, b, ratio, counted, both in found:
            arrow = "<->" if both else "->"
            text = "%s %s %s holds on %s of %s sampled rows" % (
                a,
                arrow,
                b,
                profiling.percent(ratio),
                _rows_text(data["sampled"]),
            )
            lookup = qualified_text(
                t.schema, _truncate("%s_%s" % (a[:-3] if a.endswith("_id") else a, "info"))
            )
            if form == "2NF":
                message = "%s.%s depends on %s, only part of the primary key (%s): %s." % (
                    t.qualified,
                    b,
                    a,
                    ", ".join(pk.columns),
                    text,
                )
                why = (
                    "A non-key column that depends on part of a composite key (second normal form "
                    "violation) is repeated on every row with that part, so an update must touch all "
                    "of them and they drift apart."
                )
            else:
                message = "In %s, %s determines %s (%s): a transitive dependency." % (t.qualified, a, b, text)
                why = (
                    "A non-key column determined by another non-key column (third normal form "
                    "violation) stores the same fact on many rows: updates must change all of them "
                    "and one missed row makes the data contradict itself."
                )
            if a in fk_cols:
                fix = "-- %s is a foreign key: read %s from the referenced table and drop it here:\n" % (a, b)
                fix += "ALTER TABLE %s DROP COLUMN %s;" % (_tq(t), qi(b))
            else:
                fix = (
                    "CREATE TABLE %s (%s %s PRIMARY KEY, %s %s NOT NULL);\n"
                    "INSERT INTO %s SELECT DISTINCT ON (%s) %s, %s FROM %s WHERE %s IS NOT NULL;\n"
                    "-- then reference %s from %s and drop %s (after checking the rows that disagree)."
                    % (
                        lookup,
                        qi(a),
                        t.column(a).type,
                        qi(b),
                        t.column(b).type,
                        lookup,
                        qi(a),
                        qi(a),
                        qi(b),
                        _tq(t),
                        qi(a),
                        lookup,
                        _tq(t),
                        qi(b),
                    )
                )
            yield _finding(
                ctx,
                "SR-NORM-004",
                _obj(t, b),
                message,
                why,
                fix,
                dict(
                    columns=[a, b],
                    determinant=a,
                    dependent=b,
                    normal_form=form,
                    both_ways=both,
                    holds=round(ratio, 4),
                    sampled_rows=data["sampled"],
                    rows_counted=counted,
                    evidence=text,
                ),
            )


# -- query patterns ------------------------------------------------------------------------
@rule("SR-QUERY-001", "Query pattern without a supporting index", "medium", needs="query_patterns")
def query_needs_index(ctx):
    for r in ctx.query_results or []:
        if r.get("error") or not r.get("table"):
            continue
        schema, name = r["table"].split(".", 1)
        t = ctx.catalog.get(schema, name)
        if t is None:
            continue
        evidence = dict(
            query=r["name"],
            sql=r["sql"],
            plan="Seq Scan on %s, Filter: %s" % (r["table"], r["filter"]),
            columns=r["columns"],
            row_estimate=r["row_estimate"],
            cost_before=r["cost_before"],
        )
        if r["hypopg"] and r.get("cost_after") is not None:
            if not r["uses_index"] or r["cost_after"] >= r["cost_before"]:
                continue  # the planner would not use the index: proposing it helps nothing
            evidence["cost_after"] = r["cost_after"]
            evidence["gain"] = "estimated cost %.2f -> %.2f with a hypothetical index (hypopg)" % (
                r["cost_before"],
                r["cost_after"],
            )
        else:
            evidence["gain"] = "not proven: the hypopg extension is not installed in this database"
        yield _finding(
            ctx,
            "SR-QUERY-001",
            _obj(t),
            "Query pattern %s reads %s with a sequential scan filtered on %s."
            % (r["name"], t.qualified, ", ".join(r["columns"])),
            "Without an index every run of this query reads the whole table (about %s rows), so its "
            "latency grows with the table." % _rows_text(int(r["row_estimate"] or 0)),
            "CREATE INDEX CONCURRENTLY %s ON %s (%s);"
            % (qi(_index_name(t, r["columns"])), _tq(t), _cols(r["columns"])),
            evidence,
        )


# -- more naming, key and type rules ---------------------------------------------------------
_IRREGULAR = {
    "person": "people",
    "child": "children",
    "man": "men",
    "woman": "women",
    "mouse": "mice",
    "datum": "data",
    "criterion": "criteria",
    "index": "indices",
    "matrix": "matrices",
}
_UNCOUNTABLE = {
    "data",
    "information",
    "equipment",
    "news",
    "series",
    "species",
    "metadata",
    "staff",
    "inventory",
    "audit",
    "feedback",
    "software",
    "media",
}


def plural_of(word):
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if w in _UNCOUNTABLE:
        return w
    if re.search(r"[^aeiou]y$", w):
        return w[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", w):
        return w + "es"
    return w + "s"


def singular_of(word):
    w = word.lower()
    for one, many in _IRREGULAR.items():
        if w == many:
            return one
    if w in _UNCOUNTABLE:
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if re.search(r"(ss|x|z|ch|sh)es$", w) or w.endswith("uses"):
        return w[:-2]
    if w.endswith("s") and not w.endswith("ss") and not w.endswith("us") and not w.endswith("is"):
        return w[:-1]
    return w


def name_number(name):
    """'plural', 'singular' or None (uncountable) for a table name; the last word counts."""
    last = re.split(r"_", name.lower())[-1]
    if last in _UNCOUNTABLE:
        return None
    if singular_of(last) != last:
        return "plural"
    return "singular"


def _with_number(name, number):
    parts = name.split("_")
    last = parts[-1]
    parts[-1] = plural_of(last) if number == "plural" else singular_of(last)
    return "_".join(parts)


@rule("SR-NAME-005", "Table name not in the plural/singular policy", "low")
def table_name_number(ctx):
    want = ctx.policy["table_names"]
    if want == "any":
        return
    for t in ctx.tables:
        number = name_number(t.name)
        if number is None or number == want:
            continue
        new = _with_number(t.name, want)
        if new == t.name:
            continue
        yield _finding(
            ctx,
            "SR-NAME-005",
            _obj(t),
            "Table %s is named in the %s; the policy wants %s table names (%s)."
            % (t.qualified, number, want, new),
            "Mixing orders and order_item makes every name a guess for whoever writes the next query.",
            _rename("table", t, t.name, new),
            dict(name=t.name, number=number, policy=want, suggested=new),
        )


@rule("SR-KEY-005", "Composition child without a decided ON DELETE", "low")
def composition_on_delete(ctx):
    for t in ctx.tables:
        pk = t.primary_key
        if pk is None:
            continue
        for fk in t.foreign_keys:
            n = len(fk.columns)
            # Identifying relationship: the foreign key leads the child's primary key.
            if list(pk.columns[:n]) != list(fk.columns) or (fk.on_delete or "NO ACTION") != "NO ACTION":
                continue
            parent = "%s.%s" % (fk.ref_schema, fk.ref_table)
            yield _finding(
                ctx,
                "SR-KEY-005",
                _obj(t),
                "%s is part of %s (its primary key starts with %s) but %s says nothing ON DELETE."
                % (t.qualified, parent, ", ".join(fk.columns), fk.name),
                "A child whose identity includes its parent is deleted with it or blocks the delete; the "
                "default NO ACTION leaves that decision to whoever first hits the error.",
                "ALTER TABLE %s DROP CONSTRAINT %s, ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s (%s) "
                "ON DELETE CASCADE;  -- or ON DELETE RESTRICT to protect the children"
                % (
                    _tq(t),
                    qi(fk.name),
                    qi(fk.name),
                    _cols(fk.columns),
                    qualified_text(fk.ref_schema, fk.ref_table),
                    _cols(fk.ref_columns),
                ),
                dict(
                    constraint=fk.name,
                    columns=list(fk.columns),
                    references=parent,
                    on_delete="NO ACTION",
                    primary_key=list(pk.columns),
                ),
            )


def _check_mentions(t, column):
    pat = re.compile(r'(^|[^A-Za-z0-9_$"])("?)%s\2([^A-Za-z0-9_$]|$)' % re.escape(column))
    for con in t.constraints:
        if con.type == "c" and (column in con.columns or pat.search(con.definition or "")):
            return True
    return False


@rule("SR-TYPE-009", "Enum-like text column without CHECK or lookup table", "low")
def enum_like_text(ctx):
    """A suggestion, made only on strong evidence.

    With sampled rows (profile) the values must look like codes from a small closed set
    (``profiling.enum_evidence``): a province or MIME type column named ``state`` or
    ``mime_type`` is free text, not an enum. Without rows (DDL, no profile) only the name
    speaks: the finding is an info-level suggestion saying it was not checked on data.
    """
    pattern = re.compile(ctx.policy["enum_name_pattern"], re.IGNORECASE)
    for t in ctx.tables:
        fk_cols = {c for fk in t.foreign_keys for c in fk.columns}
        data = _sampled(ctx, t)
        for col in t.columns:
            base, _m, is_array = type_info(col.type)
            if is_array or base not in ("text", "character varying", "character") or col.generated:
                continue
            if not pattern.search(col.name) or col.name in fk_cols or _check_mentions(t, col.name):
                continue
            lookup = qualified_text(t.schema, _truncate("%s_%s" % (t.name.rstrip("s"), col.name)))
            check_name = qi(_truncate("%s_%s_check" % (t.name, col.name)))
            evidence = dict(type=col.type, columns=[col.name])
            if data is not None and col.name in data["columns"]:
                is_enum, facts = profiling.enum_evidence(profiling.column_values(data, col.name))
                if not is_enum:
                    continue  # free text (places, MIME types, names): no suggestion
                codes = facts["codes"]
                message = (
                    "%s.%s (%s) looks like a code from a small fixed set: %d distinct short codes (%s) in a "
                    "random sample of %s rows, all already present in the first half of the sample. "
                    "Consider a CHECK constraint or a lookup table."
                    % (
                        t.qualified,
                        col.name,
                        col.type,
                        len(codes),
                        ", ".join(codes),
                        _rows_text(data["sampled"]),
                    )
                )
                values = ", ".join("'%s'" % v.replace("'", "''") for v in codes)
                severity = None
                evidence.update(
                    sampled_rows=data["sampled"], distinct=len(codes), values=codes, checked="sample"
                )
            else:
                message = (
                    "%s.%s (%s) is named like a code from a fixed set and nothing limits its values; if it "
                    "is one, consider a CHECK constraint or a lookup table (only the name was checked: "
                    "profile: true on a live database looks at the values)."
                    % (t.qualified, col.name, col.type)
                )
                values = "'...', '...'"
                severity = "info"
                evidence.update(checked="name only")
            finding = _finding(
                ctx,
                "SR-TYPE-009",
                _obj(t, col.name),
                message,
                "Free text where a small set of codes is meant lets 'Shipped', 'shipped ' and 'shiped' "
                "all in; reports then count them apart and code paths miss them.",
                "-- a suggestion: check that the set of values is closed first\n"
                "ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IN (%s)) NOT VALID;\n"
                "ALTER TABLE %s VALIDATE CONSTRAINT %s;\n"
                "-- or: CREATE TABLE %s (code text PRIMARY KEY); and a foreign key to it."
                % (_tq(t), check_name, qi(col.name), values, _tq(t), check_name, lookup),
                evidence,
            )
            if severity and "SR-TYPE-009" not in ctx.policy["severities"]:
                finding.severity = severity
            yield finding


# -- running the review ---------------------------------------------------------------------
def merge_policy(policy):
    """DEFAULT_POLICY with the user's values; unknown keys and bad patterns are refused."""
    merged = dict(DEFAULT_POLICY)
    merged["naming"] = dict(DEFAULT_POLICY["naming"])
    merged["severities"] = {}
    merged["disabled_rules"] = []
    for key, value in (policy or {}).items():
        if key not in DEFAULT_POLICY:
            raise SchemaRuleError(
                "policy.%s is not a schema review setting: use %s." % (key, ", ".join(sorted(DEFAULT_POLICY)))
            )
        if key == "naming":
            if not isinstance(value, dict):
                raise SchemaRuleError("policy.naming must be a dict of object kind -> regular expression.")
            for kind, pattern in value.items():
                if kind not in DEFAULT_POLICY["naming"]:
                    raise SchemaRuleError(
                        "policy.naming.%s: kinds are %s."
                        % (kind, ", ".join(sorted(DEFAULT_POLICY["naming"])))
                    )
                merged["naming"][kind] = pattern
        elif key == "severities":
            for rid, sev in dict(value or {}).items():
                if rid not in RULES:
                    raise SchemaRuleError(
                        "policy.severities.%s: no such rule (rules: %s)." % (rid, ", ".join(RULES))
                    )
                try:
                    fnd.severity_rank(sev)
                except fnd.FindingError as exc:
                    raise SchemaRuleError("policy.severities.%s: %s" % (rid, exc)) from None
                merged["severities"][rid] = str(sev).lower()
        elif key == "disabled_rules":
            merged[key] = [str(r) for r in (value or [])]
        else:
            merged[key] = value
    if merged["table_names"] not in ("plural", "singular", "any"):
        raise SchemaRuleError(
            "policy.table_names=%r: use plural, singular or any." % (merged["table_names"],)
        )
    for name, pattern in [
        ("fk_column_pattern", merged["fk_column_pattern"]),
        ("ordinal_name_pattern", merged["ordinal_name_pattern"]),
        ("money_name_pattern", merged["money_name_pattern"]),
        ("enum_name_pattern", merged["enum_name_pattern"]),
    ] + [("naming.%s" % k, v) for k, v in merged["naming"].items()]:
        if pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise SchemaRuleError(
                    "policy.%s=%r is not a valid regular expression: %s." % (name, pattern, exc)
                ) from None
    for name in ("int4_pk_max_rows", "repeating_group_min"):
        try:
            merged[name] = int(merged[name])
        except (TypeError, ValueError):
            raise SchemaRuleError("policy.%s=%r must be a whole number." % (name, merged[name])) from None
    return merged


def _enabled(rule_id, disabled):
    return not any(fnmatch.fnmatchcase(rule_id, pat) for pat in disabled)


def _decision_matches(decision, finding):
    """A decision covers type and normalization findings on its table (and its columns)."""
    if not any(finding.rule.startswith(a) for a in _DECISION_AREAS):
        return False
    parts = finding.object.split(".", 2)
    if len(parts) < 2:
        return False
    want = decision["table"]
    if want not in ("%s.%s" % (parts[0], parts[1]), parts[1]) or (
        "." in want and want != "%s.%s" % tuple(parts[:2])
    ):
        return False
    cols = decision["columns"]
    if not cols:
        return True
    touched = set(finding.evidence.get("columns") or [])
    if len(parts) == 3:
        touched.add(parts[2])
    return bool(touched & set(cols))


def check_decisions(decisions):
    out = []
    for i, d in enumerate(decisions or []):
        if not isinstance(d, dict) or not d.get("table"):
            raise SchemaRuleError(
                "denormalization_decisions[%d] needs at least table and reason (and columns, trade_off)." % i
            )
        reason = str(d.get("reason") or "").strip()
        if not reason:
            raise SchemaRuleError(
                "denormalization_decisions[%d] (table %s) has no reason: record why the design is accepted."
                % (i, d["table"])
            )
        cols = d.get("columns") or []
        if isinstance(cols, str):
            cols = [cols]
        out.append(
            dict(
                table=str(d["table"]),
                columns=list(cols),
                reason=reason,
                trade_off=str(d.get("trade_off") or ""),
            )
        )
    return out


_NOT_RUN = dict(
    profile="needs profile: true on a live database (it samples rows)",
    query_patterns="needs query_patterns on a live database (it plans them with EXPLAIN)",
)


def review(
    catalog,
    policy=None,
    denormalization_decisions=None,
    expected_rows=None,
    suppressions=None,
    profile=None,
    query_results=None,
):
    """Run every enabled rule. Returns (findings sorted most severe first, summary dict).

    ``profile``: the result of ``profiling.sample`` (None: the profile rules do not run).
    ``query_results``: the result of ``query_patterns.check`` (None: SR-QUERY-* do not run).
    """
    pol = merge_policy(policy)
    decisions = check_decisions(denormalization_decisions)
    ctx = Context(catalog, pol, expected_rows, profile=profile, query_results=query_results)
    available = dict(profile=profile is not None, query_patterns=query_results is not None)
    out = []
    ran = []
    not_run = OrderedDict()
    for rule_id, meta in RULES.items():
        if not _enabled(rule_id, pol["disabled_rules"]):
            continue
        if meta["needs"] and not available[meta["needs"]]:
            not_run[rule_id] = _NOT_RUN[meta["needs"]]
            continue
        ran.append(rule_id)
        out.extend(meta["check"](ctx) or [])
    out = group_partition_findings(ctx, out)
    applied = []
    for d in decisions:
        matched = []
        for f in out:
            if not f.suppressed and _decision_matches(d, f):
                f.suppressed = True
                f.suppression_reason = "denormalization decision: %s%s" % (
                    d["reason"],
                    " (trade-off: %s)" % d["trade_off"] if d["trade_off"] else "",
                )
                matched.append("%s %s" % (f.rule, f.object))
        applied.append(dict(d, suppressed=matched))
    try:
        out, unused = fnd.apply_suppressions(out, suppressions or [])
    except fnd.FindingError as exc:
        raise SchemaRuleError(str(exc)) from None
    out.sort(key=lambda f: f.sort_key())
    summary = OrderedDict(
        source=catalog.source,
        database=catalog.database,
        counts=fnd.counts(out),
        tables_reviewed=len(ctx.tables),
        partitions_reviewed=len(ctx.partitions),
        views_reviewed=len([t for t in ctx.relations if not t.is_table]),
        rules_run=ran,
        rules_disabled=[r for r in RULES if r not in ran and r not in not_run],
        rules_not_run=dict(not_run),
        denormalization_decisions=applied,
        unused_suppressions=unused,
    )
    if profile is not None:
        summary["profile"] = dict(
            enabled=True,
            sample_rows=profile.get("sample_rows"),
            statement_timeout=profile.get("statement_timeout"),
            tables_sampled=len(profile.get("tables", {})),
            rows_sampled=sum(d["sampled"] for d in profile.get("tables", {}).values()),
            skipped=list(profile.get("skipped", [])),
        )
    else:
        summary["profile"] = dict(
            enabled=False,
            note="SR-CONS-001, SR-NORM-003 and SR-NORM-004 read sampled rows; "
            "they did not run: set profile: true. SR-TYPE-009 then also checks the values "
            "(without them it judges by the column name only, as an info-level suggestion).",
        )
    if query_results is not None:
        summary["query_patterns"] = dict(
            checked=len({r["name"] for r in query_results}),
            errors=[dict(name=r["name"], error=r["error"]) for r in query_results if r.get("error")],
        )
    return out, dict(summary)


def rule_catalog():
    """[{id, title, severity}] of every rule, for documentation and reports."""
    return [dict(id=r["id"], title=r["title"], severity=r["severity"]) for r in RULES.values()]
