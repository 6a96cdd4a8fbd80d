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

from ansible_collections.dbarch.postgresql.plugins.module_utils import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.pg import is_reserved, qualified_text
from ansible_collections.dbarch.postgresql.plugins.module_utils.pg import quote_ident_text as qi

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
    # Names that hold money (word-wise match, case-insensitive).
    money_name_pattern=r"(^|_)(price|amount|total|subtotal|cost|balance|fee|tax|salary|payment)(_|$)",
    # int4 primary keys: flag when the estimated or expected rows reach this number.
    int4_pk_max_rows=100000000,
    # Columns stem1, stem2, ... stemN with N at least this many are a repeating group.
    repeating_group_min=3,
)

# Rules whose findings a documented denormalization decision can suppress.
_DECISION_AREAS = ("SR-NORM-", "SR-TYPE-")


class SchemaRuleError(ValueError):
    """Bad policy or input; the message says what and how to fix it."""


# -- rule registry ---------------------------------------------------------------------------
RULES = OrderedDict()


def rule(rule_id, title, severity):
    def wrap(fn):
        RULES[rule_id] = dict(id=rule_id, title=title, severity=severity, check=fn)
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

    def __init__(self, catalog, policy, expected_rows):
        self.catalog = catalog
        self.policy = policy
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


def _fk_supported(t, fk):
    need = set(fk.columns)
    for i in t.indexes:
        if not i.valid or i.predicate or i.method not in ("btree", None):
            continue
        cols = [_unquote(c) for c in i.columns]
        if set(cols[: len(need)]) == need:
            return True
    return False


@rule("SR-KEY-002", "Foreign key without a supporting index", "medium")
def fk_without_index(ctx):
    for t in ctx.tables:
        for fk in t.foreign_keys:
            if _fk_supported(t, fk):
                continue
            obj = _obj(t, fk.columns[0]) if len(fk.columns) == 1 else _obj(t)
            yield _finding(
                ctx,
                "SR-KEY-002",
                obj,
                "Foreign key %s on %s (%s) has no index whose leading columns are (%s)."
                % (fk.name, t.qualified, ", ".join(fk.columns), ", ".join(fk.columns)),
                "Every DELETE or key UPDATE on %s.%s scans %s to check for referencing rows, and "
                "joins from the parent to its children cannot use an index."
                % (fk.ref_schema, fk.ref_table, t.qualified),
                "CREATE INDEX CONCURRENTLY %s ON %s (%s);"
                % (qi(_index_name(t, fk.columns)), _tq(t), _cols(fk.columns)),
                dict(
                    constraint=fk.name,
                    columns=list(fk.columns),
                    references="%s.%s" % (fk.ref_schema, fk.ref_table),
                    row_estimate=t.row_estimate,
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
    return "DROP INDEX CONCURRENTLY %s;" % qualified_text(t.schema, i.name)


@rule("SR-IDX-001", "Duplicate index", "medium")
def duplicate_indexes(ctx):
    for t in ctx.tables:
        groups = OrderedDict()
        for i in t.indexes:
            if i.valid:
                groups.setdefault(_index_key(i) + (tuple(i.include),), []).append(i)
        for same in groups.values():
            if len(same) < 2:
                continue
            # Keep the one that backs a constraint (or is unique), drop the others.
            ranked = sorted(same, key=lambda i: (not i.primary, not i.constraint, not i.unique, i.name))
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
                    ),
                )


@rule("SR-IDX-002", "Redundant index (prefix of another)", "low")
def redundant_indexes(ctx):
    for t in ctx.tables:
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
                yield _finding(
                    ctx,
                    "SR-IDX-002",
                    _obj(t),
                    "Index %s on %s (%s) is a leading prefix of %s (%s)."
                    % (a.name, t.qualified, ", ".join(a.columns), b.name, ", ".join(b.columns)),
                    "The longer index serves every lookup the shorter one does; the shorter one only "
                    "costs writes, disk and cache.",
                    _drop_index(t, a),
                    dict(redundant=a.name, covered_by=b.name, columns=list(a.columns), bytes=a.bytes),
                )
                break


@rule("SR-IDX-003", "Invalid index", "high")
def invalid_indexes(ctx):
    for t in ctx.tables:
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
                "REINDEX INDEX CONCURRENTLY %s;\n-- or, if it is not needed: %s"
                % (qualified_text(t.schema, i.name), _drop_index(t, i)),
                dict(index=i.name, definition=i.definition, ready=i.ready),
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


@rule("SR-TYPE-001", "timestamp without time zone", "medium")
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


@rule("SR-TYPE-002", "char(n)", "low")
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


@rule("SR-TYPE-004", "serial instead of identity", "low")
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


@rule("SR-TYPE-006", "varchar(n) with an arbitrary limit", "info")
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


@rule("SR-TYPE-008", "int4 primary key on a table expected to grow", "medium")
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


@rule("SR-NAME-003", "Identifier longer than 63 bytes", "high")
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
    for name, pattern in [
        ("fk_column_pattern", merged["fk_column_pattern"]),
        ("money_name_pattern", merged["money_name_pattern"]),
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


def review(catalog, policy=None, denormalization_decisions=None, expected_rows=None, suppressions=None):
    """Run every enabled rule. Returns (findings sorted most severe first, summary dict)."""
    pol = merge_policy(policy)
    decisions = check_decisions(denormalization_decisions)
    ctx = Context(catalog, pol, expected_rows)
    out = []
    ran = []
    for rule_id, meta in RULES.items():
        if not _enabled(rule_id, pol["disabled_rules"]):
            continue
        ran.append(rule_id)
        out.extend(meta["check"](ctx) or [])
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
        views_reviewed=len([t for t in ctx.relations if not t.is_table]),
        rules_run=ran,
        rules_disabled=[r for r in RULES if r not in ran],
        denormalization_decisions=applied,
        unused_suppressions=unused,
    )
    return out, dict(summary)


def rule_catalog():
    """[{id, title, severity}] of every rule, for documentation and reports."""
    return [dict(id=r["id"], title=r["title"], severity=r["severity"]) for r in RULES.values()]
