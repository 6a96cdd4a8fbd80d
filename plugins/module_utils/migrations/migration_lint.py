# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration lint: SQL statements that lock or rewrite production tables, and their safe forms.

Each statement of a migration file is parsed with pglast (the PostgreSQL parser) and
checked against the rules in ``RULES`` (stable ids ``ML-001``...). This file keeps the public
API, the statement walker and its state (transactions, timeouts, what the run created); the
rules live in families that register with lint_base when imported: lint_columns,
lint_constraints, lint_drops, lint_indexes, lint_locks, lint_transactions and lint_types.
Their definitions (title, severity, why) are in the findings registry. A finding names the
lock the statement takes (``evidence.lock``), whether it rewrites the table
(``evidence.rewrites_table``), the statement and its file and line, and the safe
multi-step alternative (``fix``).

Table sizes (``table_sizes``, read from a live database by the module) move severities:
a rewrite of an empty or tiny table is downgraded, of a large table upgraded. A table
created in the same file, or by an earlier migration of the same run (``lint_run``), is
known to be empty.

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

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import ddl
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import lint_base

# The rule families: importing them registers their rules and handlers with lint_base.
# pylint: disable=unused-import
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import lint_columns  # noqa: F401
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import lint_constraints  # noqa: F401
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import lint_drops  # noqa: F401
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import lint_indexes  # noqa: F401
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import lint_locks
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import lint_transactions
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import lint_types  # noqa: F401
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.findings import Finding
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations.lint_base import (  # noqa: F401 - public API
    ACCESS_EXCLUSIVE,
    BLOCKING_LOCKS,
    EXCLUSIVE,
    LOCK_ORDER,
    NAMEDATALEN,
    NON_TRANSACTIONAL,
    REFERENCES,
    ROW_EXCLUSIVE,
    RULES,
    SHARE,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    STATEMENT_EVIDENCE_CHARS,
    Hit,
    enum_name,
    rule,
    tname,
)

# pylint: enable=unused-import
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import qualified_text

DEFAULT_THRESHOLDS = dict(
    small_table_bytes=10 * 1024 * 1024,
    small_table_rows=10000,
    large_table_bytes=1024 * 1024 * 1024,
    large_table_rows=1000000,
)

rule(
    "ML-000",
    "SQL that does not parse",
    "high",
    why="A file that does not parse fails the migration, and none of its statements were checked.",
)
rule(
    "ML-031",
    "migration_lint suppression without a reason, or naming an unknown rule",
    "medium",
    why="A silenced finding must say why it is accepted, so the next reviewer can judge it; a comment "
    "without a reason, or naming no known rule, suppresses nothing.",
)

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


# -- state carried from migration to migration ---------------------------------------------
class LintState:
    """What the migrations linted so far in one run created, carried to the next migration.

    A migration runner applies a run's pending migrations in order: a table created by an
    earlier pending migration is new (empty) when a later one indexes or alters it, and a
    CHECK (col IS NOT NULL) validated earlier lets a later SET NOT NULL skip its scan.
    ``not_null_checks`` seeds the live catalog's CHECK (col IS NOT NULL) constraints
    ({"schema.table": [{"name", "column", "valid"}]}, see ``not_null_checks()``).
    """

    def __init__(self, not_null_checks=None):
        self.created = {}  # (schema, table) -> source of the migration that created it
        self.indexes = {}  # (schema, index) -> (schema, table) for indexes built on new tables
        self.columns = set()  # (schema, table, column) added by a migration of this run
        self.valid_not_null = set()  # (schema, table, column) with a valid CHECK (column IS NOT NULL)
        self.checks = {}  # (schema, table, constraint) -> column, of CHECK (column IS NOT NULL)
        for key, checks in (not_null_checks or {}).items():
            schema, _dot, name = str(key).rpartition(".")
            for check in checks or ():
                table = (schema or "public", name)
                self.checks[table + (check["name"],)] = check["column"]
                if check.get("valid"):
                    self.valid_not_null.add(table + (check["column"],))


# -- the linter ------------------------------------------------------------------------------
class _FileLinter:
    def __init__(self, text, source, table_sizes, thresholds, start_line, state=None):
        self.text = text
        self.source = source
        self.sizes = table_sizes
        self.thresholds = thresholds
        self.start_line = start_line
        self.state = state if state is not None else LintState()
        # (schema, name) of tables created in this file or by an earlier migration of the run
        self.created = self.state.created
        # (schema, table, constraint) -> (rule, line, transaction) of constraints added NOT VALID
        self.not_valid = {}
        self.transaction = 0  # counts the transactions of the file: changes at BEGIN/COMMIT
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

    def key(self, table):
        """(schema, name) with the schema of search_path filled in."""
        schema, name = table
        return (schema or self.schema, name)

    def is_created(self, table):
        return self.key(table) in self.created

    def is_new_column(self, table, column):
        """True when ``column`` was added by this file or an earlier migration of the run."""
        return self.key(table) + (column,) in self.state.columns

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

    # -- main -------------------------------------------------------------------------------
    def run(self):
        stmts, error = self.parse()
        findings = []
        if error is not None:
            line, msg = error
            findings.append(
                self.finding(
                    None,
                    Hit(
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
        kinds = [lint_transactions.tx_kind(s.node) for s in stmts]
        # A migration runner wraps a file in one transaction unless the file holds only
        # statements that cannot run in one (and SET/BEGIN/COMMIT).
        file_wrapped = any(k == "transactional" for k in kinds)
        depth = 0
        opened = None
        for stmt, kind in zip(stmts, kinds):  # noqa: B905 - same length by construction
            if kind == "begin":
                if depth:
                    self.hit(stmt, lint_transactions.tx_misuse(self, stmt, "nested-begin"))
                if not depth:
                    opened = stmt
                    self.transaction += 1
                depth += 1
                continue
            if kind == "commit":
                if depth == 0:
                    self.hit(stmt, lint_transactions.tx_misuse(self, stmt, "commit-without-begin"))
                depth = 0
                self.transaction += 1
                continue
            in_tx = depth > 0
            if not in_tx and not (file_wrapped and kind in ("transactional", "enum-add", "neutral")):
                self.transaction += 1  # runs in a transaction of its own (autocommit)
            if kind == NON_TRANSACTIONAL and (in_tx or file_wrapped):
                self.hit(stmt, lint_transactions.concurrent_in_tx(self, stmt, in_tx))
            self.in_any_tx = in_tx or (file_wrapped and kind in ("transactional", "enum-add"))
            self.statement(stmt)
        if depth:
            self.hit(opened, lint_transactions.tx_misuse(self, opened, "never-committed"))
        for stmt, h in self.hits:
            findings.append(self.finding(stmt, h))
        return findings, len(stmts)

    def where(self, stmt):
        return "%s:%d" % (self.source, stmt.line + self.start_line - 1)

    def hit(self, stmt, h):
        self.hits.append((stmt, h))

    # -- per statement ------------------------------------------------------------------------
    def statement(self, stmt):
        """Run the registered handlers of the statement's node type, then those of every statement
        ("*"); the lock a handler reports goes to the timeout rules (ML-021/022)."""
        node = stmt.node
        kind = tname(node)
        lock_info = None
        try:
            for handler in lint_base.HANDLERS.get(kind, []) + lint_base.HANDLERS.get("*", []):
                lock_info = handler(self, stmt, node) or lock_info
            if lock_info:
                lint_locks.timeouts(self, stmt, lock_info)
        except Exception as exc:  # noqa: BLE001 - name the statement instead of a traceback
            raise MigrationLintError(
                "%s: cannot lint this statement (%s: %s): %s"
                % (self.where(stmt), exc.__class__.__name__, exc, " ".join(stmt.text.split())[:200])
            ) from None

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
            by = self.created[self.key(h.table)]
            evidence["size_note"] = (
                "table created in this file: known to be empty"
                if by == self.source
                else "table created by %s, an earlier migration of this run: known to be empty" % by
            )
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
            references=list(fnd.registered_rule(h.rule).references),
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


# ALTER TABLE: each subcommand goes to its registered handler (lint_base.on_alter)
@lint_base.on("AlterTableStmt")
def _alter_table(linter, stmt, node):
    if enum_name(node.objtype) not in ("OBJECT_TABLE", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE"):
        return None
    table = linter.rel(node.relation)
    strongest = None
    slow = False
    for cmd in node.cmds or ():
        handler = lint_base.ALTER_HANDLERS.get(enum_name(cmd.subtype))
        # anything not registered: ACCESS EXCLUSIVE, no scan (ALTER TABLE's default lock)
        lock, is_slow = handler(linter, stmt, table, cmd) if handler else (ACCESS_EXCLUSIVE, False)
        if LOCK_ORDER.index(lock) > LOCK_ORDER.index(strongest):
            strongest = lock
        slow = slow or is_slow
    return (table, strongest, slow)


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


def _lint_text(text, source, table_sizes, exclude_rules, start_line, thresholds, state=None):
    linter = _FileLinter(text, source, table_sizes, normalize_thresholds(thresholds), start_line, state)
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


def lint_run(migrations, table_sizes=None, exclude_rules=(), thresholds=None, not_null_checks=None):
    """Findings for a run's pending migrations ``[(source, sql)]``, linted in the order they run.

    One LintState goes from migration to migration: a table created by an earlier pending
    migration is known to be empty in the later ones (so indexing it or adding a column with a
    volatile default to it is not a blocking finding), and a CHECK (col IS NOT NULL) validated
    earlier lets SET NOT NULL skip its scan. not_null_checks: the live catalog's such
    constraints, from ``not_null_checks(session)``.
    """
    check_rule_patterns(exclude_rules)
    state = LintState(not_null_checks)
    findings = []
    for source, sql in migrations:
        findings += _lint_text(sql, source, table_sizes, exclude_rules, 1, thresholds, state)[0]
    return findings


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


def lint(paths=None, sql=None, table_sizes=None, exclude_rules=(), thresholds=None, not_null_checks=None):
    """(findings, summary) for files/folders and/or an SQL string: what the module returns.

    Each file is linted on its own (a folder may hold migrations applied long ago); lint_run()
    lints the pending migrations of one run with the state they share.
    """
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
        found, count = _lint_text(
            text, path, table_sizes, exclude_rules, 1, thresholds, LintState(not_null_checks)
        )
        findings += found
        total += count
        per_file.append(
            dict(file=path, statements=count, findings=len([f for f in found if not f.suppressed]))
        )
    if sql is not None:
        found, count = _lint_text(
            sql, "<sql>", table_sizes, exclude_rules, 1, thresholds, LintState(not_null_checks)
        )
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


# CHECK constraints of the live catalog, valid or not: the lint keeps those of the form
# CHECK (column IS NOT NULL), which let SET NOT NULL skip its scan once valid (PostgreSQL 12+).
CHECK_CONSTRAINTS_QUERY = """
SELECT n.nspname AS schema, c.relname AS name, con.conname, con.convalidated,
       pg_get_constraintdef(con.oid) AS definition
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE con.contype = 'c'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%'
"""
_NOT_NULL_CHECK_RE = re.compile(
    r'^CHECK \(\((?P<col>"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*) IS NOT NULL\)\)( NOT VALID)?$'
)


def not_null_checks(session):
    """{"schema.table": [{"name", "column", "valid"}]} of the CHECK (column IS NOT NULL) constraints
    of the connected database, from one query on pg_constraint."""
    out = {}
    for row in session.fetchall(CHECK_CONSTRAINTS_QUERY):
        m = _NOT_NULL_CHECK_RE.match(row["definition"] or "")
        if not m:
            continue
        col = m.group("col")
        if col.startswith('"'):
            col = col[1:-1].replace('""', '"')
        out.setdefault("%s.%s" % (row["schema"], row["name"]), []).append(
            dict(name=row["conname"], column=col, valid=bool(row["convalidated"]))
        )
    return out


def database_facts(session):
    """(table_sizes, not_null_checks) of the connected database: what the lint reads from it."""
    return table_sizes(session), not_null_checks(session)
