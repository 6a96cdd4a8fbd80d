# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration lint: SQL statements that lock or rewrite production tables, and their safe forms.

Each statement of a migration file is parsed with pglast (the PostgreSQL parser) and
checked against the rules in ``RULES`` (stable ids ``ML-001``...). A finding names the
lock the statement takes (``evidence.lock``), whether it rewrites the table
(``evidence.rewrites_table``), the statement and its file and line, and the safe
multi-step alternative (``fix``).

Table sizes (``table_sizes``, read from a live database by the module) move severities:
a rewrite of an empty or tiny table is downgraded, of a large table upgraded. A table
created in the same file is known to be empty.

Suppression: a comment just before a statement (or after it on the same line)
``-- migration_lint: ignore ML-004 reason: the table is empty here`` marks that
statement's ML-004 findings suppressed with the reason. A suppression without a reason
is itself a finding (ML-031) and suppresses nothing.

Plain Python: no Ansible imports. pglast is imported when first needed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils import ddl
from ansible_collections.dbarch.postgresql.plugins.module_utils.findings import Finding
from ansible_collections.dbarch.postgresql.plugins.module_utils.pg import qualified_text, quote_ident_text

NAMEDATALEN = 64
STATEMENT_EVIDENCE_CHARS = 500

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
SHARE = "SHARE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
_LOCK_ORDER = [
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

DEFAULT_THRESHOLDS = dict(
    small_table_bytes=10 * 1024 * 1024,
    small_table_rows=10000,
    large_table_bytes=1024 * 1024 * 1024,
    large_table_rows=1000000,
)

# id -> (title, default severity, scales with table size, squawk rule names that match)
RULES = {
    "ML-000": ("SQL that does not parse", "high", False, ()),
    "ML-001": ("Column added with a volatile default", "high", True, ("adding-field-with-default",)),
    "ML-002": ("Column added NOT NULL without a default", "high", True, ("adding-required-field",)),
    "ML-003": (
        "Foreign key added without NOT VALID",
        "medium",
        True,
        ("adding-foreign-key-constraint", "constraint-missing-not-valid"),
    ),
    "ML-004": ("CHECK constraint added without NOT VALID", "medium", True, ("constraint-missing-not-valid",)),
    "ML-005": (
        "SET NOT NULL scans the table under ACCESS EXCLUSIVE",
        "medium",
        True,
        ("adding-not-nullable-field",),
    ),
    "ML-006": ("CREATE INDEX without CONCURRENTLY", "medium", True, ("require-concurrent-index-creation",)),
    "ML-007": ("DROP INDEX without CONCURRENTLY", "medium", False, ("require-concurrent-index-deletion",)),
    "ML-008": ("REINDEX without CONCURRENTLY", "medium", True, ("require-concurrent-reindex",)),
    "ML-009": ("Column type changed", "high", True, ("changing-column-type",)),
    "ML-010": (
        "UNIQUE or PRIMARY KEY constraint built under ACCESS EXCLUSIVE",
        "medium",
        True,
        ("disallowed-unique-constraint", "adding-serial-primary-key-field"),
    ),
    "ML-011": ("Column renamed", "medium", False, ("renaming-column",)),
    "ML-012": ("Table renamed", "medium", False, ("renaming-table",)),
    "ML-013": ("Column dropped", "medium", False, ("ban-drop-column",)),
    "ML-014": ("Table dropped", "high", False, ("ban-drop-table",)),
    "ML-015": ("Database dropped", "critical", False, ("ban-drop-database",)),
    "ML-016": (
        "32-bit (or smaller) integer primary key",
        "low",
        False,
        ("prefer-bigint-over-int", "prefer-bigint-over-smallint"),
    ),
    "ML-017": ("serial column instead of identity", "low", False, ("prefer-identity",)),
    "ML-018": ("varchar(n) instead of text", "low", False, ("prefer-text-field",)),
    "ML-019": ("timestamp without time zone", "low", False, ("prefer-timestamp-tz",)),
    "ML-020": ("char(n) column", "low", False, ("ban-char-field",)),
    "ML-021": (
        "No lock_timeout before a statement that takes a blocking lock",
        "medium",
        False,
        ("require-lock-timeout",),
    ),
    "ML-022": (
        "No statement_timeout before a long locking statement",
        "low",
        False,
        ("require-statement-timeout",),
    ),
    "ML-023": (
        "CONCURRENTLY (or another non-transactional statement) inside a transaction",
        "high",
        False,
        ("ban-concurrent-index-creation-in-transaction",),
    ),
    "ML-024": (
        "Transaction nesting or an unbalanced BEGIN/COMMIT",
        "medium",
        False,
        ("transaction-nesting", "ban-uncommitted-transaction"),
    ),
    "ML-025": ("Identifier longer than 63 bytes", "medium", False, ("identifier-too-long",)),
    "ML-026": ("Column added as serial, identity or stored generated: table rewrite", "high", True, ()),
    "ML-027": (
        "SET LOGGED/UNLOGGED, SET TABLESPACE or SET ACCESS METHOD rewrites the table",
        "high",
        True,
        (),
    ),
    "ML-028": ("VACUUM FULL or CLUSTER rewrites the table under ACCESS EXCLUSIVE", "high", True, ()),
    "ML-029": ("TRUNCATE", "medium", False, ("ban-truncate-cascade",)),
    "ML-030": ("Enum value added inside a transaction", "low", False, ()),
    "ML-031": ("migration_lint suppression without a reason, or naming an unknown rule", "medium", False, ()),
    "ML-032": ("DROP NOT NULL", "low", False, ("ban-drop-not-null",)),
}

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
# Statements PostgreSQL refuses to run inside a transaction block.
_NON_TRANSACTIONAL = "non-transactional"

_SUPPRESS_RE = re.compile(r"migration_lint\s*:\s*ignore\b(?P<rest>.*)", re.IGNORECASE | re.DOTALL)
_REASON_RE = re.compile(r"\breason\s*:", re.IGNORECASE)


class MigrationLintError(DbarchError, ValueError):
    """Bad input: a missing file, unknown excluded rule, bad threshold."""


def require_pglast():
    """Import pglast now, or raise ImportError naming the package to install."""
    return ddl._lib()


def rule_table():
    """[(id, title, default severity, size sensitive, squawk names)] in id order."""
    return [(rid,) + RULES[rid] for rid in sorted(RULES)]


def check_rule_patterns(patterns, what="exclude_rules"):
    """Each pattern must match at least one rule id."""
    for pat in patterns or ():
        if not any(fnmatch.fnmatchcase(rid, str(pat).upper()) for rid in RULES):
            raise MigrationLintError(
                "%s: %r matches no rule; the rules are %s." % (what, pat, ", ".join(sorted(RULES)))
            )


def normalize_thresholds(thresholds):
    out = dict(DEFAULT_THRESHOLDS)
    for key, value in (thresholds or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise MigrationLintError(
                "Unknown threshold %r: use %s." % (key, ", ".join(sorted(DEFAULT_THRESHOLDS)))
            )
        if value is None:
            continue
        if int(value) < 0:
            raise MigrationLintError("Threshold %s must not be negative (got %s)." % (key, value))
        out[key] = int(value)
    return out


# -- small helpers over pglast nodes -------------------------------------------------------
def _tname(node):
    return type(node).__name__


def _enum(value):
    return getattr(value, "name", str(value))


def _strings(nodes):
    return [getattr(n, "sval", None) or "" for n in (nodes or ())]


def _type_info(type_name):
    """(base name lower-case, typmod ints, is array) of a TypeName node."""
    if type_name is None:
        return "", [], False
    names = _strings(type_name.names)
    base = names[-1].lower() if names else ""
    mods = []
    for m in type_name.typmods or ():
        val = getattr(m, "val", None)
        ival = getattr(val, "ival", None)
        if ival is not None:
            mods.append(int(ival))
    return base, mods, bool(type_name.arrayBounds)


def _type_text(type_name):
    base, mods, arr = _type_info(type_name)
    text = base + ("(%s)" % ",".join(str(m) for m in mods) if mods else "")
    return text + ("[]" if arr else "")


def _deparse(node):
    try:
        return ddl._deparse(node)
    except Exception:  # noqa: BLE001 - the text is only shown
        return "<expression>"


def _volatility(expr):
    """'constant', 'stable', 'volatile' or 'unknown' for a default expression."""
    kind = _tname(expr)
    if kind == "A_Const":
        return "constant"
    if kind == "TypeCast":
        return _volatility(expr.arg)
    if kind == "SQLValueFunction":
        return "stable"
    if kind == "FuncCall":
        name = _strings(expr.funcname)[-1].lower()
        if name in VOLATILE_FUNCTIONS:
            return "volatile"
        own = "stable" if name in NON_VOLATILE_FUNCTIONS else "unknown"
        return _worst([own] + [_volatility(a) for a in expr.args or ()])
    if kind in ("A_Expr", "BoolExpr", "CoalesceExpr", "MinMaxExpr", "A_ArrayExpr", "RowExpr", "NullTest"):
        parts = []
        for attr in ("lexpr", "rexpr", "args", "elements", "arg"):
            val = getattr(expr, attr, None)
            if val is None:
                continue
            if isinstance(val, tuple):
                parts.extend(_volatility(v) for v in val)
            else:
                parts.append(_volatility(val))
        return _worst(parts or ["constant"])
    return "unknown"


def _worst(kinds):
    order = ["constant", "stable", "unknown", "volatile"]
    return max(kinds, key=order.index)


def _skip_leading(text, pos):
    """Offset of the first token at or after ``pos`` (skips blanks and comments)."""
    n = len(text)
    while pos < n:
        if text[pos].isspace():
            pos += 1
        elif text.startswith("--", pos):
            nl = text.find("\n", pos)
            pos = n if nl < 0 else nl + 1
        elif text.startswith("/*", pos):
            depth, pos = 1, pos + 2
            while pos < n and depth:
                if text.startswith("/*", pos):
                    depth, pos = depth + 1, pos + 2
                elif text.startswith("*/", pos):
                    depth, pos = depth - 1, pos + 2
                else:
                    pos += 1
        else:
            break
    return pos


def _line_of(text, offset):
    return text.count("\n", 0, max(0, offset)) + 1


class _Stmt:
    __slots__ = ("node", "text", "start", "end", "line", "end_line", "index")

    def __init__(self, node, text, start, end, line, end_line, index):
        self.node = node
        self.text = text
        self.start = start
        self.end = end
        self.line = line
        self.end_line = end_line
        self.index = index


class _Hit:
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


# -- the linter ------------------------------------------------------------------------------
class _FileLinter:
    def __init__(self, text, source, table_sizes, thresholds, start_line):
        self.text = text
        self.source = source
        self.sizes = table_sizes
        self.thresholds = thresholds
        self.start_line = start_line
        self.created = set()  # (schema, name) of tables created in this file
        self.explicit_tx = False
        self.lock_timeout = False
        self.statement_timeout = False
        self.hits = []  # (stmt, _Hit)
        self.statements = []
        self.schema = "public"
        self.in_any_tx = False
        self.tokens = []

    # names
    def rel(self, rangevar):
        return (rangevar.schemaname or None, rangevar.relname)

    def qname(self, table):
        schema, name = table
        return "%s.%s" % (schema or self.schema, name)

    def qtext(self, table):
        return qualified_text(table[0], table[1])

    def is_created(self, table):
        schema, name = table
        return (schema or self.schema, name) in self.created

    # -- parsing -------------------------------------------------------------------------
    def parse(self):
        lib = ddl._lib()
        text = ddl.strip_psql(self.text)
        self.text = text
        try:
            raws = lib.parse_sql(text)
        except lib.parser.ParseError as exc:
            location = getattr(exc, "location", None)
            if location is None and len(exc.args) > 1:
                location = exc.args[1]
            line = _line_of(text, location or 0)
            msg = exc.args[0] if exc.args else str(exc)
            return None, (line, str(msg))
        stmts = []
        for i, raw in enumerate(raws):
            loc = raw.stmt_location or 0
            end = loc + raw.stmt_len if raw.stmt_len else len(text)
            start = _skip_leading(text, loc)
            body = text[start:end].strip()
            stmts.append(_Stmt(raw.stmt, body, start, end, _line_of(text, start), _line_of(text, end), i))
        return stmts, None

    def identifier_tokens(self):
        """[(start, end, text)] of the identifier tokens (IDENT), quoted or not."""
        lib = ddl._lib()
        try:
            tokens = lib.parser.scan(self.text)
        except Exception:  # noqa: BLE001 - an unscannable file already fails to parse
            return []
        return [(t.start, t.end + 1, self.text[t.start : t.end + 1]) for t in tokens if t.name == "IDENT"]

    def comments(self):
        """[(start, end, text)] of the comments, found by PostgreSQL's own scanner."""
        lib = ddl._lib()
        out = []
        try:
            tokens = lib.parser.scan(self.text)
        except Exception:  # noqa: BLE001 - an unscannable file already fails to parse
            return out
        for tok in tokens:
            if tok.name in ("SQL_COMMENT", "C_COMMENT"):
                out.append((tok.start, tok.end + 1, self.text[tok.start : tok.end + 1]))
        return out

    # -- transaction state ----------------------------------------------------------------
    @staticmethod
    def tx_kind(node):
        """'begin', 'commit', 'neutral' (SET...), 'non-transactional' or 'transactional'."""
        kind = _tname(node)
        if kind == "TransactionStmt":
            k = _enum(node.kind)
            if k in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
                return "begin"
            if k in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_PREPARE"):
                return "commit"
            return "neutral"
        if kind in ("VariableSetStmt", "VariableShowStmt"):
            return "neutral"
        if kind == "AlterEnumStmt" and node.newVal:
            return "enum-add"  # transactional, but alone in a file it is fine (PostgreSQL 12+)
        if kind == "IndexStmt" and node.concurrent:
            return _NON_TRANSACTIONAL
        if kind == "DropStmt" and node.concurrent:
            return _NON_TRANSACTIONAL
        if kind == "ReindexStmt" and any(p.defname == "concurrently" for p in node.params or ()):
            return _NON_TRANSACTIONAL
        if kind == "ReindexStmt" and _enum(node.kind) in ("REINDEX_OBJECT_SYSTEM", "REINDEX_OBJECT_DATABASE"):
            return _NON_TRANSACTIONAL
        if kind == "VacuumStmt" and node.is_vacuumcmd:
            return _NON_TRANSACTIONAL
        if kind in (
            "CreatedbStmt",
            "DropdbStmt",
            "AlterSystemStmt",
            "CreateTableSpaceStmt",
            "DropTableSpaceStmt",
        ):
            return _NON_TRANSACTIONAL
        if kind in ("CreateSubscriptionStmt", "DropSubscriptionStmt"):
            return _NON_TRANSACTIONAL
        return "transactional"

    # -- main -------------------------------------------------------------------------------
    def run(self):
        stmts, error = self.parse()
        findings = []
        if error is not None:
            line, msg = error
            findings.append(
                self.finding(
                    None,
                    _Hit(
                        "ML-000",
                        "%s:%d" % (self.source, line + self.start_line - 1),
                        "The SQL does not parse, so it was not linted: %s." % msg,
                        "A file that does not parse fails the migration, and none of its statements were "
                        "checked.",
                        "Fix the syntax error at this line.",
                    ),
                    line=line,
                )
            )
            return findings, 0
        self.statements = stmts
        self.tokens = self.identifier_tokens()
        kinds = [self.tx_kind(s.node) for s in stmts]
        # A migration runner wraps a file in one transaction unless the file holds only
        # statements that cannot run in one (and SET/BEGIN/COMMIT).
        file_wrapped = any(k == "transactional" for k in kinds)
        depth = 0
        opened = None
        for stmt, kind in zip(stmts, kinds):  # noqa: B905 - same length by construction
            if kind == "begin":
                if depth:
                    self.hit(
                        stmt,
                        _Hit(
                            "ML-024",
                            self.where(stmt),
                            "BEGIN inside a transaction that is already open (line of the first BEGIN "
                            "is earlier in this file): PostgreSQL has no nested transactions.",
                            "The second BEGIN only warns; the first COMMIT then ends the whole transaction, "
                            "so statements meant to be atomic are committed separately.",
                            "Remove the inner BEGIN/COMMIT, or use SAVEPOINT name / RELEASE SAVEPOINT name.",
                        ),
                    )
                if not depth:
                    opened = stmt
                depth += 1
                continue
            if kind == "commit":
                if depth == 0:
                    self.hit(
                        stmt,
                        _Hit(
                            "ML-024",
                            self.where(stmt),
                            "COMMIT/ROLLBACK without a BEGIN in this file: a migration runner that wraps the "
                            "file in its own transaction is ended here.",
                            "The runner's transaction commits early; what follows runs outside it and a "
                            "failure later leaves the migration half-applied.",
                            "Remove the COMMIT (the runner commits the file), or pair it with a BEGIN.",
                        ),
                    )
                depth = 0
                self.explicit_tx = False
                continue
            in_tx = depth > 0
            if kind == _NON_TRANSACTIONAL and (in_tx or file_wrapped):
                self.hit(stmt, self.concurrent_in_tx(stmt, in_tx))
            self.explicit_tx = in_tx
            self.in_any_tx = in_tx or (file_wrapped and kind in ("transactional", "enum-add"))
            self.statement(stmt)
        if depth:
            self.hit(
                opened,
                _Hit(
                    "ML-024",
                    self.where(opened),
                    "This BEGIN is never committed or rolled back: the file ends inside its transaction.",
                    "An open transaction keeps its locks until the session ends; a runner may commit or "
                    "roll it back behind your back.",
                    "End the file with COMMIT, or remove the BEGIN and let the runner wrap the file.",
                ),
            )
        for stmt, h in self.hits:
            findings.append(self.finding(stmt, h))
        return findings, len(stmts)

    def where(self, stmt):
        return "%s:%d" % (self.source, stmt.line + self.start_line - 1)

    def hit(self, stmt, h):
        self.hits.append((stmt, h))

    def concurrent_in_tx(self, stmt, explicit):
        if explicit:
            msg = "This statement cannot run inside a transaction block, and it follows BEGIN."
        else:
            msg = (
                "This statement cannot run inside a transaction block, and the file also holds "
                "transactional statements, so a migration runner runs the whole file in one transaction."
            )
        return _Hit(
            "ML-023",
            self.where(stmt),
            msg,
            "PostgreSQL fails it with 'cannot run inside a transaction block' (SQLSTATE 25001), and the "
            "migration stops there.",
            "Put this statement in a migration file of its own (with only SET lock_timeout/statement_timeout "
            "beside it), outside BEGIN/COMMIT.",
            lock=None,
        )

    # -- per statement ------------------------------------------------------------------------
    def statement(self, stmt):
        node = stmt.node
        kind = _tname(node)
        handler = getattr(self, "on_" + kind, None)
        lock_info = None
        try:
            if handler is not None:
                lock_info = handler(stmt, node)
            self.identifiers(stmt, node)
            if lock_info:
                self.timeouts(stmt, lock_info)
        except Exception as exc:  # noqa: BLE001 - name the statement instead of a traceback
            raise MigrationLintError(
                "%s: cannot lint this statement (%s: %s): %s"
                % (self.where(stmt), exc.__class__.__name__, exc, " ".join(stmt.text.split())[:200])
            ) from None

    def timeouts(self, stmt, lock_info):
        """lock_info: (table, lock, slow) for the table the statement locks."""
        table, lock, slow = lock_info
        if table is None or lock not in BLOCKING_LOCKS or self.is_created(table):
            return
        obj = self.qname(table)
        if not self.lock_timeout:
            self.hit(
                stmt,
                _Hit(
                    "ML-021",
                    obj,
                    "%s takes the %s lock on %s and no lock_timeout is set before it in this file."
                    % (self.verb(stmt), lock, obj),
                    "While it waits for the lock (behind any long transaction), every later query on the "
                    "table "
                    "queues behind it: a migration that waits becomes an outage.",
                    "SET lock_timeout = '5s';  -- then retry the migration when it times out\n"
                    + stmt.text
                    + ";",
                    lock=lock,
                    table=table,
                ),
            )
        if slow and not self.statement_timeout:
            self.hit(
                stmt,
                _Hit(
                    "ML-022",
                    obj,
                    "%s holds a %s lock on %s for as long as it scans or rewrites the table, and no "
                    "statement_timeout is set before it." % (self.verb(stmt), lock, obj),
                    "Without a bound the lock is held until the statement ends, however long that takes.",
                    "SET statement_timeout = '15min';  -- an upper bound you accept for the lock\n"
                    + stmt.text
                    + ";",
                    lock=lock,
                    table=table,
                ),
            )

    @staticmethod
    def verb(stmt):
        words = stmt.text.split()
        return " ".join(words[:2]).upper() if words else "This statement"

    def on_VariableSetStmt(self, stmt, node):
        name = (node.name or "").lower()
        if name == "search_path" and _enum(node.kind) == "VAR_SET_VALUE":
            for arg in node.args or ():
                value = getattr(getattr(arg, "val", None), "sval", None)
                if value and value not in ("$user", "pg_catalog"):
                    self.schema = value
                    break
            return None
        if name not in ("lock_timeout", "statement_timeout"):
            return None
        value = True
        if _enum(node.kind) != "VAR_SET_VALUE":
            value = False
        else:
            args = node.args or ()
            if args and _tname(args[0]) == "A_Const":
                val = args[0].val
                raw = getattr(val, "sval", None)
                if raw is None:
                    raw = getattr(val, "ival", None)
                if raw is not None and str(raw).strip() in ("0", "0ms", "0s"):
                    value = False
        setattr(self, name, value)
        return None

    def on_SelectStmt(self, stmt, node):
        for target in node.targetList or ():
            val = target.val
            if _tname(val) == "FuncCall" and _strings(val.funcname)[-1] == "set_config":
                args = val.args or ()
                if len(args) >= 2 and all(_tname(a) == "A_Const" for a in args[:2]):
                    name = getattr(args[0].val, "sval", "") or ""
                    value = getattr(args[1].val, "sval", "") or ""
                    if name.lower() in ("lock_timeout", "statement_timeout"):
                        setattr(self, name.lower(), value.strip() not in ("0", "0ms", "0s", ""))

    # CREATE TABLE
    def on_CreateStmt(self, stmt, node):
        table = self.rel(node.relation)
        self.created.add((table[0] or self.schema, table[1]))
        pk_cols = set()
        for elt in node.tableElts or ():
            if _tname(elt) == "Constraint" and _enum(elt.contype) == "CONSTR_PRIMARY":
                pk_cols.update(_strings(elt.keys))
        for elt in node.tableElts or ():
            if _tname(elt) != "ColumnDef":
                continue
            is_pk = elt.colname in pk_cols or any(
                _enum(c.contype) == "CONSTR_PRIMARY" for c in elt.constraints or ()
            )
            self.column_types(stmt, table, elt, is_pk)

    def column_types(self, stmt, table, coldef, is_pk):
        base, mods, _arr = _type_info(coldef.typeName)
        obj = "%s.%s" % (self.qname(table), coldef.colname)
        col = quote_ident_text(coldef.colname)
        tq = self.qtext(table)
        if is_pk and base in INT32_TYPES:
            self.hit(
                stmt,
                _Hit(
                    "ML-016",
                    obj,
                    "Primary key %s is %s: it runs out at 2,147,483,647 (32,767 for smallint)."
                    % (obj, _type_text(coldef.typeName)),
                    "Changing the key to bigint later rewrites the table and every referencing table under "
                    "ACCESS EXCLUSIVE locks.",
                    "-- declare it as bigint from the start:\n%s bigint GENERATED ALWAYS AS IDENTITY "
                    "PRIMARY KEY" % col,
                ),
            )
        if base in SERIAL_TYPES:
            self.hit(
                stmt,
                _Hit(
                    "ML-017",
                    obj,
                    "Column %s is %s; an identity column is the standard form." % (obj, base),
                    "serial creates a sequence owned separately (grants, dumps and ownership go wrong) and "
                    "does not stop explicit inserts from colliding with it.",
                    "%s bigint GENERATED BY DEFAULT AS IDENTITY" % col,
                ),
            )
        if base == "varchar" and mods:
            self.hit(
                stmt,
                _Hit(
                    "ML-018",
                    obj,
                    "Column %s is varchar(%d); text with a CHECK on length() is as fast and easier to change."
                    % (obj, mods[0]),
                    "Raising a varchar length is cheap, but lowering it rewrites the table; a CHECK "
                    "constraint "
                    "can be replaced with NOT VALID + VALIDATE without a long lock.",
                    "%s text CHECK (char_length(%s) <= %d)" % (col, col, mods[0]),
                ),
            )
        if base == "timestamp":
            self.hit(
                stmt,
                _Hit(
                    "ML-019",
                    obj,
                    "Column %s is timestamp without time zone." % obj,
                    "It stores wall-clock time without the offset: values from sessions in different time "
                    "zones, or across DST changes, cannot be compared.",
                    "%s timestamptz" % col,
                ),
            )
        if base == "bpchar":
            self.hit(
                stmt,
                _Hit(
                    "ML-020",
                    obj,
                    "Column %s is char(%s): values are blank-padded." % (obj, mods[0] if mods else 1),
                    "char(n) pads with spaces, wastes space and compares surprisingly; it is never faster "
                    "than text.",
                    "%s text CHECK (char_length(%s) = %s)" % (col, col, mods[0] if mods else 1),
                ),
            )
        del tq

    # CREATE INDEX
    def on_IndexStmt(self, stmt, node):
        table = self.rel(node.relation)
        name = node.idxname or "(unnamed index)"
        if node.concurrent:
            return (table, SHARE_UPDATE_EXCLUSIVE, False)
        obj = self.qname(table)
        cols = stmt.text
        fix = re.sub(
            r"(?i)^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+", lambda m: m.group(0) + "CONCURRENTLY ", cols, count=1
        )
        self.hit(
            stmt,
            _Hit(
                "ML-006",
                obj,
                "CREATE INDEX %s on %s without CONCURRENTLY blocks every write to the table while the "
                "index builds." % (name, obj),
                "A plain CREATE INDEX holds a SHARE lock for the whole build: INSERT, UPDATE and DELETE "
                "wait.",
                "-- in a migration file of its own (it cannot run in a transaction):\n" + fix + ";",
                lock=SHARE,
                table=table,
                index=node.idxname,
            ),
        )
        return (table, SHARE, True)

    def on_DropStmt(self, stmt, node):
        rtype = _enum(node.removeType)
        if rtype == "OBJECT_INDEX":
            lock = SHARE_UPDATE_EXCLUSIVE if node.concurrent else ACCESS_EXCLUSIVE
            if node.concurrent:
                return None
            for names in node.objects or ():
                parts = _strings(names)
                name = ".".join(parts)
                qi = ".".join(quote_ident_text(p) for p in parts)
                self.hit(
                    stmt,
                    _Hit(
                        "ML-007",
                        name if len(parts) > 1 else "%s.%s" % (self.schema, name),
                        "DROP INDEX %s without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on its table."
                        % name,
                        "Reads and writes of the table wait for the drop, and everything queued behind it "
                        "waits too.",
                        "-- in a migration file of its own:\nDROP INDEX CONCURRENTLY IF EXISTS %s;" % qi,
                        lock=lock,
                    ),
                )
            return None
        if rtype in ("OBJECT_TABLE", "OBJECT_MATVIEW"):
            first = None
            for names in node.objects or ():
                parts = _strings(names)
                table = (parts[-2] if len(parts) > 1 else None, parts[-1])
                first = first or table
                created = self.is_created(table)
                self.hit(
                    stmt,
                    _Hit(
                        "ML-014",
                        self.qname(table),
                        "DROP TABLE %s: its data is gone, and code that still reads it fails."
                        % self.qname(table),
                        "A drop cannot be undone by a later migration; deploys that still use the table "
                        "break.",
                        "-- stop using it first; rename it aside for a release, then drop it:\n"
                        "ALTER TABLE %s RENAME TO %s;"
                        % (self.qtext(table), quote_ident_text(("%s_to_drop" % table[1])[: NAMEDATALEN - 1])),
                        lock=ACCESS_EXCLUSIVE,
                        table=table,
                        severity="info" if created else None,
                    ),
                )
            return (first, ACCESS_EXCLUSIVE, False) if first else None
        return None

    def on_DropdbStmt(self, stmt, node):
        self.hit(
            stmt,
            _Hit(
                "ML-015",
                node.dbname,
                "DROP DATABASE %s in a migration." % node.dbname,
                "Everything in the database is lost; a migration is the wrong place for it.",
                "-- do it by hand, after a backup, outside the migrations",
                lock=ACCESS_EXCLUSIVE,
            ),
        )

    def on_ReindexStmt(self, stmt, node):
        if any(p.defname == "concurrently" for p in node.params or ()):
            return None
        target = node.relation.relname if node.relation is not None else (node.name or "")
        kind = _enum(node.kind).replace("REINDEX_OBJECT_", "")
        table = self.rel(node.relation) if node.relation is not None and kind == "TABLE" else None
        obj = self.qname(table) if table else target
        text = re.sub(
            r"(?i)^\s*REINDEX\s+(\([^)]*\)\s*)?(\w+)\s+",
            lambda m: m.group(0) + "CONCURRENTLY ",
            stmt.text,
            count=1,
        )
        self.hit(
            stmt,
            _Hit(
                "ML-008",
                obj,
                "REINDEX %s %s without CONCURRENTLY blocks writes to the table (and reads that use the "
                "index)." % (kind, target),
                "REINDEX takes a SHARE lock on the table and ACCESS EXCLUSIVE on the index for the whole "
                "rebuild.",
                "-- PostgreSQL 12+, in a migration file of its own:\n" + text + ";",
                lock=SHARE,
                rewrites=False,
                table=table,
            ),
        )
        return (table, SHARE, True) if table else None

    def on_VacuumStmt(self, stmt, node):
        full = any(o.defname == "full" for o in node.options or ())
        if not node.is_vacuumcmd or not full:
            return None
        first = None
        for vr in node.rels or ():
            table = self.rel(vr.relation)
            first = first or table
            self.hit(stmt, self.rewrite_hit(stmt, table, "VACUUM FULL"))
        if not node.rels:
            self.hit(stmt, self.rewrite_hit(stmt, None, "VACUUM FULL"))
        return (first, ACCESS_EXCLUSIVE, True) if first else None

    def on_ClusterStmt(self, stmt, node):
        table = self.rel(node.relation) if node.relation is not None else None
        self.hit(stmt, self.rewrite_hit(stmt, table, "CLUSTER"))
        return (table, ACCESS_EXCLUSIVE, True) if table else None

    def rewrite_hit(self, stmt, table, what):
        obj = self.qname(table) if table else "(every table)"
        return _Hit(
            "ML-028",
            obj,
            "%s rewrites %s under an ACCESS EXCLUSIVE lock." % (what, obj),
            "Nothing can read or write the table until the copy is done, and it needs free disk space for a "
            "full copy of the table and its indexes.",
            "-- reclaim space online instead (extension pg_repack), or rely on plain VACUUM:\n"
            "VACUUM (ANALYZE) %s;" % (self.qtext(table) if table else ""),
            lock=ACCESS_EXCLUSIVE,
            rewrites=True,
            table=table,
        )

    def on_TruncateStmt(self, stmt, node):
        first = None
        cascade = _enum(node.behavior) == "DROP_CASCADE"
        for rv in node.relations or ():
            table = self.rel(rv)
            first = first or table
            created = self.is_created(table)
            self.hit(
                stmt,
                _Hit(
                    "ML-029",
                    self.qname(table),
                    "TRUNCATE %s%s takes an ACCESS EXCLUSIVE lock and removes every row%s."
                    % (
                        self.qname(table),
                        " CASCADE" if cascade else "",
                        " of it and of every table that references it" if cascade else "",
                    ),
                    "The data is gone (it is not MVCC-safe for concurrent readers), and CASCADE empties "
                    "tables "
                    "you did not name.",
                    "-- delete in batches instead, naming each table:\nDELETE FROM %s WHERE ctid IN "
                    "(SELECT ctid FROM %s LIMIT 10000);" % (self.qtext(table), self.qtext(table)),
                    lock=ACCESS_EXCLUSIVE,
                    table=table,
                    severity="info" if created else ("high" if cascade else None),
                ),
            )
        return (first, ACCESS_EXCLUSIVE, False) if first else None

    def on_AlterEnumStmt(self, stmt, node):
        if not node.newVal or not self.in_any_tx:
            return None
        name = ".".join(_strings(node.typeName))
        self.hit(
            stmt,
            _Hit(
                "ML-030",
                name,
                "ALTER TYPE %s ADD VALUE %r runs inside a transaction." % (name, node.newVal),
                "Before PostgreSQL 12 it fails in a transaction block; from 12 on the new value cannot be "
                "used "
                "until the transaction commits, so a later statement of the same migration that uses it "
                "fails.",
                "-- in a migration file of its own, before the migration that uses the value:\n"
                "ALTER TYPE %s ADD VALUE IF NOT EXISTS '%s';"
                % (
                    ".".join(quote_ident_text(p) for p in _strings(node.typeName)),
                    node.newVal.replace("'", "''"),
                ),
            ),
        )
        return None

    def on_RenameStmt(self, stmt, node):
        rtype = _enum(node.renameType)
        if node.relation is None:
            return None
        table = self.rel(node.relation)
        created = self.is_created(table)
        tq = self.qtext(table)
        if rtype == "OBJECT_COLUMN":
            obj = "%s.%s" % (self.qname(table), node.subname)
            old, new = quote_ident_text(node.subname), quote_ident_text(node.newname)
            self.hit(
                stmt,
                _Hit(
                    "ML-011",
                    obj,
                    "Column %s renamed to %s: running code that uses the old name fails at once."
                    % (obj, node.newname),
                    "Application servers still running the previous release query the old name until they "
                    "are "
                    "replaced; the rename also takes an ACCESS EXCLUSIVE lock.",
                    "-- expand and contract over several releases:\n"
                    "ALTER TABLE %s ADD COLUMN %s <type>;\n"
                    "-- write both columns from the application (or a trigger), backfill in batches:\n"
                    "UPDATE %s SET %s = %s WHERE %s IS NULL;  -- in batches\n"
                    "-- switch reads to %s, then in a later release:\n"
                    "ALTER TABLE %s DROP COLUMN %s;" % (tq, new, tq, new, old, new, new, tq, old),
                    lock=ACCESS_EXCLUSIVE,
                    table=table,
                    severity="info" if created else None,
                ),
            )
            return (table, ACCESS_EXCLUSIVE, False)
        if rtype == "OBJECT_TABLE":
            obj = self.qname(table)
            new = qualified_text(table[0], node.newname)
            self.hit(
                stmt,
                _Hit(
                    "ML-012",
                    obj,
                    "Table %s renamed to %s: running code that uses the old name fails at once."
                    % (obj, node.newname),
                    "Application servers still running the previous release use the old name; the rename "
                    "also "
                    "takes an ACCESS EXCLUSIVE lock.",
                    "-- keep the old name working for a release with a simple (updatable) view:\n"
                    "BEGIN;\nALTER TABLE %s RENAME TO %s;\nCREATE VIEW %s AS SELECT * FROM %s;\nCOMMIT;\n"
                    "-- and drop the view once no code uses the old name."
                    % (tq, quote_ident_text(node.newname), tq, new),
                    lock=ACCESS_EXCLUSIVE,
                    table=table,
                    severity="info" if created else None,
                ),
            )
            return (table, ACCESS_EXCLUSIVE, False)
        return None

    # ALTER TABLE
    def on_AlterTableStmt(self, stmt, node):
        if _enum(node.objtype) not in ("OBJECT_TABLE", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE"):
            return None
        table = self.rel(node.relation)
        strongest = None
        slow = False
        for cmd in node.cmds or ():
            lock, is_slow = self.alter_cmd(stmt, table, cmd)
            if _LOCK_ORDER.index(lock) > _LOCK_ORDER.index(strongest):
                strongest = lock
            slow = slow or is_slow
        return (table, strongest, slow)

    def alter_cmd(self, stmt, table, cmd):
        """Record hits of one ALTER TABLE subcommand; return (lock it takes, scans or rewrites)."""
        sub = _enum(cmd.subtype)
        created = self.is_created(table)
        empty = "info" if created else None
        obj = self.qname(table)
        tq = self.qtext(table)
        if sub == "AT_AddColumn":
            return self.add_column(stmt, table, cmd.def_)
        if sub == "AT_AddConstraint":
            return self.add_constraint(stmt, table, cmd.def_)
        if sub == "AT_SetNotNull":
            self.hit(stmt, self.set_not_null_hit(table, cmd.name, empty))
            return ACCESS_EXCLUSIVE, True
        if sub == "AT_DropNotNull":
            col = "%s.%s" % (obj, cmd.name)
            self.hit(
                stmt,
                _Hit(
                    "ML-032",
                    col,
                    "DROP NOT NULL on %s: code that assumes the column is set may now read NULLs." % col,
                    "Removing a guarantee is hard to take back: adding NOT NULL again needs a full scan.",
                    "-- make sure every reader handles NULL in %s before dropping the constraint" % col,
                    lock=ACCESS_EXCLUSIVE,
                    table=table,
                    severity=empty,
                ),
            )
            return ACCESS_EXCLUSIVE, False
        if sub == "AT_AlterColumnType":
            col = quote_ident_text(cmd.name)
            newtype = _type_text(cmd.def_.typeName)
            tmp = quote_ident_text(("%s_new" % cmd.name)[: NAMEDATALEN - 1])
            self.hit(
                stmt,
                _Hit(
                    "ML-009",
                    "%s.%s" % (obj, cmd.name),
                    "ALTER COLUMN %s TYPE %s on %s rewrites the table and its indexes under an ACCESS "
                    "EXCLUSIVE "
                    "lock (unless the change is binary-compatible, such as varchar(n) to text or a larger "
                    "varchar)." % (cmd.name, newtype, obj),
                    "No read or write of the table runs until every row and index is rewritten; on a large "
                    "table "
                    "that is minutes to hours of downtime.",
                    "-- a new column, filled in batches, then swapped:\n"
                    "ALTER TABLE %s ADD COLUMN %s %s;\n"
                    "-- keep it in sync with a trigger (or the application), then backfill in batches:\n"
                    "UPDATE %s SET %s = %s::%s WHERE %s IS NULL AND ctid IN (SELECT ctid FROM %s WHERE %s "
                    "IS NULL LIMIT 10000);\n"
                    "-- in one short transaction with lock_timeout set:\n"
                    "ALTER TABLE %s RENAME COLUMN %s TO %s;\nALTER TABLE %s RENAME COLUMN %s TO %s;"
                    % (
                        tq,
                        tmp,
                        newtype,
                        tq,
                        tmp,
                        col,
                        newtype,
                        tmp,
                        tq,
                        tmp,
                        tq,
                        col,
                        quote_ident_text(("%s_old" % cmd.name)[: NAMEDATALEN - 1]),
                        tq,
                        tmp,
                        col,
                    ),
                    lock=ACCESS_EXCLUSIVE,
                    rewrites=True,
                    table=table,
                    severity=empty,
                    column=cmd.name,
                    new_type=newtype,
                ),
            )
            self.column_types(stmt, table, _Coldef(cmd.name, cmd.def_.typeName), False)
            return ACCESS_EXCLUSIVE, True
        if sub == "AT_DropColumn":
            col = "%s.%s" % (obj, cmd.name)
            self.hit(
                stmt,
                _Hit(
                    "ML-013",
                    col,
                    "DROP COLUMN %s: running code that selects or inserts it fails at once." % col,
                    "Application servers of the previous release still use the column; the data is gone "
                    "for good.",
                    "-- stop reading and writing the column in a release first, then:\n"
                    "SET lock_timeout = '5s';\nALTER TABLE %s DROP COLUMN IF EXISTS %s;"
                    % (tq, quote_ident_text(cmd.name)),
                    lock=ACCESS_EXCLUSIVE,
                    table=table,
                    severity=empty,
                ),
            )
            return ACCESS_EXCLUSIVE, False
        if sub in ("AT_SetLogged", "AT_SetUnLogged", "AT_SetTableSpace", "AT_SetAccessMethod"):
            what = {
                "AT_SetLogged": "SET LOGGED",
                "AT_SetUnLogged": "SET UNLOGGED",
                "AT_SetTableSpace": "SET TABLESPACE",
                "AT_SetAccessMethod": "SET ACCESS METHOD",
            }[sub]
            self.hit(
                stmt,
                _Hit(
                    "ML-027",
                    obj,
                    "ALTER TABLE %s %s copies the whole table under an ACCESS EXCLUSIVE lock." % (obj, what),
                    "Nothing reads or writes the table until the copy is done (SET LOGGED also writes all "
                    "of it to WAL).",
                    "-- build a copy with the new setting, keep it in sync (trigger or logical replication), "
                    "then swap names in one short transaction with lock_timeout set",
                    lock=ACCESS_EXCLUSIVE,
                    rewrites=True,
                    table=table,
                    severity=empty,
                ),
            )
            return ACCESS_EXCLUSIVE, True
        if sub in (
            "AT_ValidateConstraint",
            "AT_SetStatistics",
            "AT_ClusterOn",
            "AT_DropCluster",
            "AT_SetOptions",
            "AT_ResetOptions",
        ):
            return SHARE_UPDATE_EXCLUSIVE, sub == "AT_ValidateConstraint"
        if sub in (
            "AT_EnableTrig",
            "AT_DisableTrig",
            "AT_EnableAlwaysTrig",
            "AT_EnableReplicaTrig",
            "AT_EnableTrigAll",
            "AT_DisableTrigAll",
            "AT_EnableTrigUser",
            "AT_DisableTrigUser",
        ):
            return SHARE_ROW_EXCLUSIVE, False
        return ACCESS_EXCLUSIVE, False

    def set_not_null_hit(self, table, column, severity):
        obj = self.qname(table)
        tq = self.qtext(table)
        col = quote_ident_text(column)
        cname = quote_ident_text(("%s_%s_not_null" % (table[1], column))[: NAMEDATALEN - 1])
        return _Hit(
            "ML-005",
            "%s.%s" % (obj, column),
            "SET NOT NULL on %s.%s scans the whole table under an ACCESS EXCLUSIVE lock." % (obj, column),
            "No read or write runs while PostgreSQL checks every row for NULLs.",
            "ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID;\n"
            "ALTER TABLE %s VALIDATE CONSTRAINT %s;  -- SHARE UPDATE EXCLUSIVE: reads and writes go on\n"
            "ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;  -- PostgreSQL 12+ uses the valid CHECK, no scan\n"
            "ALTER TABLE %s DROP CONSTRAINT %s;" % (tq, cname, col, tq, cname, tq, col, tq, cname),
            lock=ACCESS_EXCLUSIVE,
            table=table,
            severity=severity,
            column=column,
        )

    def add_column(self, stmt, table, coldef):
        created = self.is_created(table)
        empty = "info" if created else None
        obj = self.qname(table)
        tq = self.qtext(table)
        col = quote_ident_text(coldef.colname)
        cobj = "%s.%s" % (obj, coldef.colname)
        base, _mods, _arr = _type_info(coldef.typeName)
        cons = list(coldef.constraints or ())
        kinds = [_enum(c.contype) for c in cons]
        default = next((c.raw_expr for c in cons if _enum(c.contype) == "CONSTR_DEFAULT"), None)
        not_null = coldef.is_not_null or "CONSTR_NOTNULL" in kinds
        identity = "CONSTR_IDENTITY" in kinds
        generated = "CONSTR_GENERATED" in kinds
        is_pk = "CONSTR_PRIMARY" in kinds
        lock, slow = ACCESS_EXCLUSIVE, False
        ttext = _type_text(coldef.typeName)
        if base in SERIAL_TYPES or identity or generated:
            what = (
                "a serial column (its default nextval() is volatile)"
                if base in SERIAL_TYPES
                else (
                    "an identity column (each row gets a value)" if identity else "a stored generated column"
                )
            )
            self.hit(
                stmt,
                _Hit(
                    "ML-026",
                    cobj,
                    "Adding %s %s to %s rewrites the table under an ACCESS EXCLUSIVE lock."
                    % (what, coldef.colname, obj),
                    "Every row is written again with its new value while nothing can read or write the "
                    "table.",
                    "ALTER TABLE %s ADD COLUMN %s bigint;  -- nullable, no default: instant\n"
                    "-- fill it in batches (UPDATE ... WHERE %s IS NULL LIMIT ...), set the default for "
                    "new rows,\n"
                    "-- then add NOT NULL the safe way (CHECK ... NOT VALID, VALIDATE, SET NOT NULL)"
                    % (tq, col, col),
                    lock=ACCESS_EXCLUSIVE,
                    rewrites=True,
                    table=table,
                    severity=empty,
                ),
            )
            slow = True
        elif default is not None:
            vol = _volatility(default)
            if vol in ("volatile", "unknown"):
                expr = _deparse(default)
                self.hit(
                    stmt,
                    _Hit(
                        "ML-001",
                        cobj,
                        "Column %s added with the %s default %s: %s."
                        % (
                            cobj,
                            "volatile" if vol == "volatile" else "possibly volatile",
                            expr,
                            "PostgreSQL rewrites the whole table to store a value per row"
                            if vol == "volatile"
                            else "if the function is VOLATILE, PostgreSQL rewrites the table",
                        ),
                        "A rewrite holds an ACCESS EXCLUSIVE lock until every row and index is copied. A "
                        "constant "
                        "or STABLE default (now(), a literal) is stored once in the catalog instead "
                        "(PostgreSQL 11+).",
                        "ALTER TABLE %s ADD COLUMN %s %s;  -- no default: instant\n"
                        "ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s;  -- new rows only, no rewrite\n"
                        "-- backfill existing rows in batches:\n"
                        "UPDATE %s SET %s = %s WHERE ctid IN (SELECT ctid FROM %s WHERE %s IS NULL LIMIT "
                        "10000);" % (tq, col, ttext, tq, col, expr, tq, col, expr, tq, col),
                        lock=ACCESS_EXCLUSIVE,
                        rewrites=vol == "volatile",
                        table=table,
                        severity=empty or (None if vol == "volatile" else "medium"),
                        default=expr,
                        volatility=vol,
                    ),
                )
                slow = slow or vol == "volatile"
        if not_null and default is None and not (identity or generated or base in SERIAL_TYPES):
            self.hit(
                stmt,
                _Hit(
                    "ML-002",
                    cobj,
                    "Column %s added NOT NULL without a default: the ALTER fails as soon as %s has a row."
                    % (cobj, obj),
                    "Existing rows would get NULL, which the constraint forbids, so the migration fails in "
                    "production although it passed on an empty development database.",
                    "ALTER TABLE %s ADD COLUMN %s %s;\n"
                    "-- backfill in batches, then add NOT NULL without a long lock:\n"
                    "ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID;\n"
                    "ALTER TABLE %s VALIDATE CONSTRAINT %s;\n"
                    "ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;"
                    % (
                        tq,
                        col,
                        ttext,
                        tq,
                        quote_ident_text(("%s_%s_not_null" % (table[1], coldef.colname))[: NAMEDATALEN - 1]),
                        col,
                        tq,
                        quote_ident_text(("%s_%s_not_null" % (table[1], coldef.colname))[: NAMEDATALEN - 1]),
                        tq,
                        col,
                    ),
                    lock=ACCESS_EXCLUSIVE,
                    table=table,
                    severity=empty,
                ),
            )
        for c in cons:
            ck = _enum(c.contype)
            if ck in ("CONSTR_UNIQUE", "CONSTR_PRIMARY"):
                self.hit(stmt, self.unique_hit(table, c, [coldef.colname], empty))
                slow = True
            elif ck == "CONSTR_FOREIGN":
                ref = self.rel(c.pktable)
                self.hit(
                    stmt,
                    self.fk_hit(
                        table, c, [coldef.colname], ref, "low" if not created else "info", new_column=True
                    ),
                )
                lock = ACCESS_EXCLUSIVE
        self.column_types(stmt, table, coldef, is_pk)
        return lock, slow

    def fk_hit(self, table, con, cols, ref, severity=None, new_column=False):
        obj = self.qname(table)
        tq = self.qtext(table)
        name = con.conname or ("%s_%s_fkey" % (table[1], "_".join(cols)))[: NAMEDATALEN - 1]
        refcols = _strings(con.pk_attrs)
        cq = ", ".join(quote_ident_text(c) for c in cols)
        rq = " (%s)" % ", ".join(quote_ident_text(c) for c in refcols) if refcols else ""
        nq = quote_ident_text(name)
        msg = (
            "Foreign key %s on %s added without NOT VALID: both %s and %s are locked SHARE ROW EXCLUSIVE "
            "(writes blocked) while every row is checked." % (name, obj, obj, self.qname(ref))
        )
        if new_column:
            msg = (
                "Column %s.%s added with REFERENCES %s: the ALTER locks %s SHARE ROW EXCLUSIVE (writes "
                "blocked) "
                "as well." % (obj, cols[0], self.qname(ref), self.qname(ref))
            )
        return _Hit(
            "ML-003",
            obj if not new_column else "%s.%s" % (obj, cols[0]),
            msg,
            "Validation scans the referencing table and probes the referenced one under locks that stop "
            "INSERT, UPDATE and DELETE on both.",
            "ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s%s NOT VALID;\n"
            "ALTER TABLE %s VALIDATE CONSTRAINT %s;  -- SHARE UPDATE EXCLUSIVE: writes go on"
            % (tq, nq, cq, self.qtext(ref), rq, tq, nq),
            lock=SHARE_ROW_EXCLUSIVE,
            table=table,
            severity=severity,
            referenced_table=self.qname(ref),
            constraint=name,
        )

    def unique_hit(self, table, con, cols, severity):
        obj = self.qname(table)
        tq = self.qtext(table)
        primary = _enum(con.contype) == "CONSTR_PRIMARY"
        kind = "PRIMARY KEY" if primary else "UNIQUE"
        default_name = "%s_pkey" % table[1] if primary else "%s_%s_key" % (table[1], "_".join(cols))
        name = con.conname or default_name[: NAMEDATALEN - 1]
        nq = quote_ident_text(name)
        cq = ", ".join(quote_ident_text(c) for c in cols)
        return _Hit(
            "ML-010",
            obj,
            "%s constraint %s on %s (%s) builds its index while holding an ACCESS EXCLUSIVE lock."
            % (kind, name, obj, ", ".join(cols)),
            "Reads and writes of the table wait for the whole index build.",
            "CREATE UNIQUE INDEX CONCURRENTLY %s ON %s (%s);  -- a migration file of its own\n"
            "ALTER TABLE %s ADD CONSTRAINT %s %s USING INDEX %s;  -- instant%s"
            % (
                nq,
                tq,
                cq,
                tq,
                nq,
                kind,
                nq,
                "\n-- (PRIMARY KEY also needs the columns NOT NULL first, added the safe way)"
                if primary
                else "",
            ),
            lock=ACCESS_EXCLUSIVE,
            table=table,
            severity=severity,
            constraint=name,
        )

    def add_constraint(self, stmt, table, con):
        ck = _enum(con.contype)
        created = self.is_created(table)
        empty = "info" if created else None
        obj = self.qname(table)
        tq = self.qtext(table)
        if ck == "CONSTR_FOREIGN":
            if con.skip_validation:
                return SHARE_ROW_EXCLUSIVE, False
            ref = self.rel(con.pktable)
            self.hit(stmt, self.fk_hit(table, con, _strings(con.fk_attrs), ref, empty))
            return SHARE_ROW_EXCLUSIVE, True
        if ck == "CONSTR_CHECK":
            if con.skip_validation:
                return ACCESS_EXCLUSIVE, False
            expr = _deparse(con.raw_expr)
            name = con.conname or ("%s_check" % table[1])
            nq = quote_ident_text(name)
            self.hit(
                stmt,
                _Hit(
                    "ML-004",
                    obj,
                    "CHECK constraint %s on %s added without NOT VALID: every row is checked under an ACCESS "
                    "EXCLUSIVE lock." % (name, obj),
                    "No read or write of the table runs while PostgreSQL scans it.",
                    "ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s) NOT VALID;  -- instant; new rows are "
                    "checked\n"
                    "ALTER TABLE %s VALIDATE CONSTRAINT %s;  -- SHARE UPDATE EXCLUSIVE: reads and writes "
                    "go on" % (tq, nq, expr, tq, nq),
                    lock=ACCESS_EXCLUSIVE,
                    table=table,
                    severity=empty,
                    constraint=name,
                ),
            )
            return ACCESS_EXCLUSIVE, True
        if ck in ("CONSTR_UNIQUE", "CONSTR_PRIMARY"):
            if con.indexname:
                return ACCESS_EXCLUSIVE, False
            self.hit(stmt, self.unique_hit(table, con, _strings(con.keys), empty))
            return ACCESS_EXCLUSIVE, True
        if ck == "CONSTR_EXCLUSION":
            name = con.conname or "(unnamed exclusion constraint)"
            self.hit(
                stmt,
                _Hit(
                    "ML-010",
                    obj,
                    "EXCLUDE constraint %s on %s builds its index under an ACCESS EXCLUSIVE lock; there is "
                    "no "
                    "concurrent way to add one." % (name, obj),
                    "Reads and writes of the table wait for the whole index build.",
                    "-- add it while the table is small, or in a maintenance window with lock_timeout set",
                    lock=ACCESS_EXCLUSIVE,
                    table=table,
                    severity=empty,
                ),
            )
            return ACCESS_EXCLUSIVE, True
        if ck == "CONSTR_NOTNULL":
            if con.skip_validation:
                return ACCESS_EXCLUSIVE, False
            for column in _strings(con.keys):
                self.hit(stmt, self.set_not_null_hit(table, column, empty))
            return ACCESS_EXCLUSIVE, True
        return ACCESS_EXCLUSIVE, False

    # identifiers
    def identifiers(self, stmt, node):
        """Identifiers of the statement over 63 bytes, from the raw tokens (the parser truncates them)."""
        names = []
        for tok_start, tok_end, raw in self.tokens:
            if tok_start < stmt.start or tok_end > stmt.end or len(raw.encode("utf-8")) < NAMEDATALEN:
                continue
            name = raw[1:-1].replace('""', '"') if raw.startswith('"') and raw.endswith('"') else raw.lower()
            if len(name.encode("utf-8")) >= NAMEDATALEN and name not in names:
                names.append(name)
        for name in names:
            if name and len(name.encode("utf-8")) >= NAMEDATALEN:
                short = name.encode("utf-8")[: NAMEDATALEN - 1].decode("utf-8", "ignore")
                self.hit(
                    stmt,
                    _Hit(
                        "ML-025",
                        name,
                        "Identifier %r is %d bytes; PostgreSQL silently truncates it to 63 bytes (%r)."
                        % (name, len(name.encode("utf-8")), short),
                        "Two long names that share their first 63 bytes collide, and code or later "
                        "migrations "
                        "that use the full name do not find the object.",
                        "-- choose a name of at most 63 bytes",
                        bytes=len(name.encode("utf-8")),
                    ),
                )

    # -- findings -------------------------------------------------------------------------
    def size_of(self, table):
        if table is None or not self.sizes:
            return None, None
        schema, name = table
        keys = ["%s.%s" % (schema, name)] if schema else ["%s.%s" % (self.schema, name), name]
        for key in keys:
            if key in self.sizes:
                return key, self.sizes[key]
        return keys[0], None

    def finding(self, stmt, h, line=None):
        title, default, scales, _sq = RULES[h.rule]
        severity = h.severity or default
        evidence = dict(lock=h.lock, rewrites_table=bool(h.rewrites))
        if stmt is not None:
            st = " ".join(stmt.text.split())
            if len(st) > STATEMENT_EVIDENCE_CHARS:
                st = st[: STATEMENT_EVIDENCE_CHARS - 3] + "..."
            evidence["statement"] = st
            line = stmt.line
        if h.table is not None:
            evidence["table"] = self.qname(h.table)
        evidence.update(h.extra)
        if h.table is not None and self.is_created(h.table):
            evidence["size_note"] = "table created in this file: known to be empty"
            if scales or h.rule in ("ML-021", "ML-022"):
                severity = "info"
        elif scales and h.table is not None and self.sizes is not None and h.severity is None:
            key, size = self.size_of(h.table)
            if size is None:
                evidence["size_note"] = (
                    "size of %s unknown (not in the database or not given): default severity" % key
                )
            else:
                severity, note = self.scaled(severity, size, h.rewrites, fails_with_rows=h.rule == "ML-002")
                evidence["table_bytes"] = size.get("bytes")
                evidence["table_rows"] = size.get("rows")
                evidence["size_note"] = note
        return Finding(
            rule=h.rule,
            severity=severity,
            object=h.object,
            message=h.message,
            why=h.why,
            fix=h.fix,
            evidence=evidence,
            references=[REFERENCES],
            location=dict(file=self.source, line=(line or 1) + self.start_line - 1),
            title=title,
        )

    def scaled(self, severity, size, rewrites, fails_with_rows=False):
        t = self.thresholds
        nbytes = int(size.get("bytes") or 0)
        rows = int(size.get("rows") or 0)
        if rows <= 0 and nbytes < t["small_table_bytes"]:
            return (
                "info",
                "table is empty (%d bytes, as of the last VACUUM/ANALYZE): the lock is brief" % nbytes,
            )
        if fails_with_rows:
            return severity, "table has about %d rows: the statement fails on the first one" % rows
        if nbytes < t["small_table_bytes"] and rows < t["small_table_rows"]:
            return "low", "table is small (%d bytes, about %d rows; thresholds %d bytes, %d rows)" % (
                nbytes,
                rows,
                t["small_table_bytes"],
                t["small_table_rows"],
            )
        if nbytes >= t["large_table_bytes"] or rows >= t["large_table_rows"]:
            return ("critical" if rewrites else "high"), (
                "table is large (%d bytes, about %d rows; large from %d bytes or %d rows): the lock lasts "
                "as long "
                "as the %s"
                % (
                    nbytes,
                    rows,
                    t["large_table_bytes"],
                    t["large_table_rows"],
                    "rewrite" if rewrites else "scan",
                )
            )
        return severity, "table has %d bytes, about %d rows: default severity" % (nbytes, rows)


class _Coldef:
    """A ColumnDef stand-in for type checks of ALTER COLUMN TYPE."""

    def __init__(self, colname, type_name):
        self.colname = colname
        self.typeName = type_name


# -- suppressions -------------------------------------------------------------------------------
def _suppressions(linter, stmts):
    """[(statement index or None, rules, reason, line, comment text)] from the file's comments."""
    out = []
    text = linter.text
    for start, end, comment in linter.comments():
        m = _SUPPRESS_RE.search(comment.strip().lstrip("-").lstrip("/*").rstrip("*/"))
        if not m:
            continue
        rest = m.group("rest").rstrip().rstrip("*/").strip()
        parts = _REASON_RE.split(rest, maxsplit=1)
        rules = [r.upper() for r in re.split(r"[\s,]+", parts[0].strip()) if r]
        reason = parts[1].strip() if len(parts) > 1 else ""
        line = _line_of(text, start)
        target = None
        for s in stmts:  # same line, after the statement
            if s.end <= start and s.end_line == line:
                target = s.index
        if target is None:
            for s in stmts:
                if s.start >= end:
                    target = s.index
                    break
        out.append((target, rules, reason, line, comment.strip()))
    return out


def _apply_suppressions(linter, stmts, findings):
    """Mark suppressed findings; return ML-031 findings for bad suppression comments."""
    problems = []
    by_line = dict((s.line + linter.start_line - 1, s.index) for s in stmts)
    for target, rules, reason, line, comment in _suppressions(linter, stmts):
        where = "%s:%d" % (linter.source, line + linter.start_line - 1)
        unknown = [r for r in rules if not any(fnmatch.fnmatchcase(rid, r) for rid in RULES)]
        bad = None
        if not rules:
            bad = "names no rule"
        elif unknown:
            bad = "names unknown rule(s) %s" % ", ".join(unknown)
        elif not reason:
            bad = "has no reason"
        elif target is None:
            bad = "is not followed by a statement"
        if bad:
            problems.append(
                Finding(
                    rule="ML-031",
                    severity=RULES["ML-031"][1],
                    object=where,
                    message="The suppression comment %r %s, so it suppresses nothing." % (comment, bad),
                    why="A silenced finding must say why it is accepted, so the next reviewer can judge it.",
                    fix="-- migration_lint: ignore %s reason: <why this is safe here>"
                    % (", ".join(rules) if rules and not unknown else "ML-0NN"),
                    evidence=dict(lock=None, rewrites_table=False, comment=comment),
                    location=dict(file=linter.source, line=line + linter.start_line - 1),
                    title=RULES["ML-031"][0],
                )
            )
            continue
        for f in findings:
            loc_line = (f.location or {}).get("line")
            if by_line.get(loc_line) != target or f.rule == "ML-031":
                continue
            if any(fnmatch.fnmatchcase(f.rule, r) for r in rules):
                f.suppressed = True
                f.suppression_reason = reason
    return problems


# -- public API ---------------------------------------------------------------------------------
def _excluded(rule, exclude_rules):
    return any(fnmatch.fnmatchcase(rule, str(p).upper()) for p in exclude_rules or ())


def _lint_text(text, source, table_sizes, exclude_rules, start_line, thresholds):
    linter = _FileLinter(text, source, table_sizes, normalize_thresholds(thresholds), start_line)
    findings, count = linter.run()
    if linter.statements:
        findings += _apply_suppressions(linter, linter.statements, findings)
    findings = [f for f in findings if not _excluded(f.rule, exclude_rules)]
    findings.sort(key=lambda f: ((f.location or {}).get("line") or 0, f.rule, f.object))
    return findings, count


def lint_sql(sql, source="<string>", table_sizes=None, exclude_rules=(), start_line=1, thresholds=None):
    """Findings for the SQL text ``sql`` (one migration), in statement order.

    table_sizes: {"schema.table" or "table": {"bytes": int, "rows": int}} or None.
    exclude_rules: rule ids or shell-style patterns (``ML-01*``) to leave out.
    start_line: the line of ``sql``'s first line in ``source`` (for SQL cut out of a file).
    thresholds: overrides of DEFAULT_THRESHOLDS.
    """
    check_rule_patterns(exclude_rules)
    return _lint_text(sql, source, table_sizes, exclude_rules, start_line, thresholds)[0]


def statement_spans(sql):
    """[{"line", "end_line", "text"}] of each statement of ``sql`` (psql meta-commands skipped).

    Raises MigrationLintError with the line when the SQL does not parse.
    """
    linter = _FileLinter(sql, "<sql>", None, DEFAULT_THRESHOLDS, 1)
    stmts, error = linter.parse()
    if error is not None:
        raise MigrationLintError("line %d: %s" % error)
    return [dict(line=s.line, end_line=s.end_line, text=s.text) for s in stmts]


def lint_paths(paths, table_sizes=None, exclude_rules=(), thresholds=None):
    """Findings for files and folders (each folder's *.sql sorted by name), file by file."""
    return lint(paths, table_sizes=table_sizes, exclude_rules=exclude_rules, thresholds=thresholds)[0]


def lint(paths=None, sql=None, table_sizes=None, exclude_rules=(), thresholds=None):
    """(findings, summary) for files/folders and/or an SQL string: what the module returns."""
    check_rule_patterns(exclude_rules)
    try:
        files = ddl.expand_paths(paths) if paths else []
    except ddl.DdlError as exc:
        raise MigrationLintError(str(exc)) from None
    if paths and not files:
        raise MigrationLintError("No .sql file found in %s." % ", ".join(paths))
    findings = []
    per_file = []
    total = 0
    for path in files:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise MigrationLintError("Cannot read %s: %s" % (path, exc)) from None
        found, count = _lint_text(text, path, table_sizes, exclude_rules, 1, thresholds)
        findings += found
        total += count
        per_file.append(
            dict(file=path, statements=count, findings=len([f for f in found if not f.suppressed]))
        )
    if sql is not None:
        found, count = _lint_text(sql, "<sql>", table_sizes, exclude_rules, 1, thresholds)
        findings += found
        total += count
        per_file.append(
            dict(file="<sql>", statements=count, findings=len([f for f in found if not f.suppressed]))
        )
    summary = dict(
        files=per_file,
        file_count=len(files),
        statements=total,
        rules=sorted(r for r in RULES if not _excluded(r, exclude_rules)),
        table_sizes_known=len(table_sizes or {}),
        thresholds=normalize_thresholds(thresholds),
    )
    return findings, summary


# -- sizes from a live database -------------------------------------------------------------------
# One query on pg_class; sizes from relpages/reltuples (as of the last VACUUM/ANALYZE), so
# it takes no lock on user tables and never waits behind a migration.
TABLE_SIZES_QUERY = """
SELECT n.nspname AS schema, c.relname AS name,
       (c.relpages::bigint + COALESCE(t.relpages, 0)::bigint)
         * current_setting('block_size')::bigint AS bytes,
       c.reltuples::float8 AS reltuples
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
WHERE c.relkind IN ('r', 'p', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp%'
"""


def table_sizes(session):
    """{"schema.table": {"bytes", "rows"}} of the connected database, from one query on pg_class.

    A table never vacuumed or analyzed (reltuples = -1) is left out: its size is unknown, and
    its findings keep their default severity.
    """
    sizes = {}
    for row in session.fetchall(TABLE_SIZES_QUERY):
        if row["reltuples"] is None or row["reltuples"] < 0:
            continue
        sizes["%s.%s" % (row["schema"], row["name"])] = dict(
            bytes=int(row["bytes"]), rows=int(row["reltuples"])
        )
    return sizes
