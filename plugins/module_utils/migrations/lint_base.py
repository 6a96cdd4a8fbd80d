# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared pieces of the migration lint's rule families (lint_*.py).

The lock names, the helpers over pglast nodes, the ``Hit`` a rule records, and the three
registries the families fill when they are imported (as schema_rules' ``@rule`` does):

- ``rule(id, title, severity, ...)`` defines a rule (ML-0NN) here and in the findings
  registry (docs, SARIF);
- ``@on("IndexStmt")`` registers a handler ``fn(linter, stmt, node)`` for a statement node
  type; it records hits with ``linter.hit()`` and returns ``(table, lock, slow)`` for the
  timeout rules, or None;
- ``@on_alter("AT_AddColumn")`` registers a handler ``fn(linter, stmt, table, cmd)`` for an
  ALTER TABLE subcommand; it returns ``(lock, slow)``.

migration_lint.py walks the statements and calls them. Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import ddl
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd

NAMEDATALEN = 64
STATEMENT_EVIDENCE_CHARS = 500

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
SHARE = "SHARE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
LOCK_ORDER = [
    None,
    ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    EXCLUSIVE,
    ACCESS_EXCLUSIVE,
]
# Locks that block writes (or everything) while held: a statement waiting for one queues
# every later query on the table behind it.
BLOCKING_LOCKS = (SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE)


REFERENCES = "https://www.postgresql.org/docs/current/explicit-locking.html"

# Functions whose value differs per row: as a column default they force a table rewrite.
VOLATILE_FUNCTIONS = frozenset(
    """random random_normal gen_random_uuid uuidv4 uuidv7 uuid_generate_v1 uuid_generate_v1mc
    uuid_generate_v4 clock_timestamp timeofday nextval setval txid_current pg_current_xact_id
    gen_random_bytes""".split()
)
# Functions that are STABLE or IMMUTABLE: evaluated once for ADD COLUMN (PostgreSQL 11+).
NON_VOLATILE_FUNCTIONS = frozenset(
    """now transaction_timestamp statement_timestamp current_setting current_database current_schema
    lower upper btrim ltrim rtrim trim concat concat_ws coalesce nullif greatest least length
    abs round floor ceil trunc date_trunc make_date make_time make_timestamp make_timestamptz
    make_interval to_timestamp to_date to_char to_number timezone jsonb_build_object
    jsonb_build_array json_build_object json_build_array to_jsonb to_json array_fill
    string_to_array array_to_string md5 replace substr substring left right lpad rpad""".split()
)
INT32_TYPES = frozenset(
    ["int2", "int4", "int", "integer", "smallint", "serial", "serial4", "smallserial", "serial2"]
)
SERIAL_TYPES = frozenset(["serial", "serial4", "serial2", "smallserial", "bigserial", "serial8"])
# serial columns whose sequence runs out like an int4/int2 key, primary key or not.
SMALL_SERIAL_TYPES = frozenset(["serial", "serial4", "serial2", "smallserial"])
# Statements PostgreSQL refuses to run inside a transaction block.
NON_TRANSACTIONAL = "non-transactional"

# -- registries ---------------------------------------------------------------------------------
# id -> (title, default severity, scales with table size, squawk rule names that match)
RULES = {}
HANDLERS = {}  # pglast node type name -> [fn(linter, stmt, node)]
ALTER_HANDLERS = {}  # ALTER TABLE subcommand (AT_...) -> fn(linter, stmt, table, cmd)


def rule(rule_id, title, severity=None, scales=False, squawk=(), why="", problem=None):
    """Define a lint rule, here and in the findings registry (docs, SARIF's rule list).

    scales: the severity moves with the table size. squawk: squawk's names for the same rule.
    problem: a problem of shared_rules that the schema review judges too (same severity).
    """
    reg = fnd.register_rule(
        rule_id,
        title,
        severity,
        why=why,
        references=() if problem else (REFERENCES,),
        analysis="migration_lint",
        problem=problem,
    )
    RULES[rule_id] = (title, reg.severity, bool(scales), tuple(squawk))
    return rule_id


def on(*node_kinds):
    """Register a statement handler for pglast node types (several families may share one)."""

    def wrap(fn):
        for kind in node_kinds:
            HANDLERS.setdefault(kind, []).append(fn)
        return fn

    return wrap


def on_alter(*subtypes):
    """Register the handler of ALTER TABLE subcommands (one handler per subcommand)."""

    def wrap(fn):
        for sub in subtypes:
            if sub in ALTER_HANDLERS:
                raise ValueError("ALTER TABLE %s has two handlers" % sub)
            ALTER_HANDLERS[sub] = fn
        return fn

    return wrap


# -- small helpers over pglast nodes -------------------------------------------------------
def tname(node):
    return type(node).__name__


def enum_name(value):
    return getattr(value, "name", str(value))


def strings(nodes):
    return [getattr(n, "sval", None) or "" for n in (nodes or ())]


def type_info(type_name):
    """(base name lower-case, typmod ints, is array) of a TypeName node."""
    if type_name is None:
        return "", [], False
    names = strings(type_name.names)
    base = names[-1].lower() if names else ""
    mods = []
    for m in type_name.typmods or ():
        val = getattr(m, "val", None)
        ival = getattr(val, "ival", None)
        if ival is not None:
            mods.append(int(ival))
    return base, mods, bool(type_name.arrayBounds)


def type_text(type_name):
    base, mods, arr = type_info(type_name)
    text = base + ("(%s)" % ",".join(str(m) for m in mods) if mods else "")
    return text + ("[]" if arr else "")


def deparse(node):
    try:
        return ddl._deparse(node)
    except Exception:  # noqa: BLE001 - the text is only shown
        return "<expression>"


def volatility(expr):
    """'constant', 'stable', 'volatile' or 'unknown' for a default expression."""
    kind = tname(expr)
    if kind == "A_Const":
        return "constant"
    if kind == "TypeCast":
        return volatility(expr.arg)
    if kind == "SQLValueFunction":
        return "stable"
    if kind == "FuncCall":
        name = strings(expr.funcname)[-1].lower()
        if name in VOLATILE_FUNCTIONS:
            return "volatile"
        own = "stable" if name in NON_VOLATILE_FUNCTIONS else "unknown"
        return worst([own] + [volatility(a) for a in expr.args or ()])
    if kind in ("A_Expr", "BoolExpr", "CoalesceExpr", "MinMaxExpr", "A_ArrayExpr", "RowExpr", "NullTest"):
        parts = []
        for attr in ("lexpr", "rexpr", "args", "elements", "arg"):
            val = getattr(expr, attr, None)
            if val is None:
                continue
            if isinstance(val, tuple):
                parts.extend(volatility(v) for v in val)
            else:
                parts.append(volatility(val))
        return worst(parts or ["constant"])
    return "unknown"


def worst(kinds):
    order = ["constant", "stable", "unknown", "volatile"]
    return max(kinds, key=order.index)


def not_null_column(expr):
    """The column of a ``column IS NOT NULL`` expression, else None."""
    if expr is None or tname(expr) != "NullTest" or enum_name(expr.nulltesttype) != "IS_NOT_NULL":
        return None
    arg = expr.arg
    if tname(arg) != "ColumnRef" or len(arg.fields or ()) != 1:
        return None
    return getattr(arg.fields[0], "sval", None)


class Hit:
    """A rule hit before it becomes a Finding (severity is settled later)."""

    def __init__(
        self, rule, obj, message, why, fix, lock=None, rewrites=False, table=None, severity=None, **extra
    ):
        self.rule = rule
        self.object = obj
        self.message = message
        self.why = why
        self.fix = fix
        self.lock = lock
        self.rewrites = rewrites
        self.table = table  # (schema or None, name) the severity scales with
        self.severity = severity
        self.extra = extra


class Coldef:
    """A ColumnDef stand-in for type checks of ALTER COLUMN TYPE."""

    def __init__(self, colname, type_name):
        self.colname = colname
        self.typeName = type_name
