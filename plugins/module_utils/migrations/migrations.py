# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Flyway-compatible schema migrations for PostgreSQL.

Plain Python: no Ansible imports. The module ``migrate`` is a thin adapter; tests call
this engine directly.

Files (given as ``(name, text)`` pairs, so they may come from the controller):
- ``V<version>__<description>.sql``  versioned, applied once, in version order;
- ``U<version>__<description>.sql``  undo of the versioned migration of that version;
- ``R__<description>.sql``           repeatable, applied again whenever its checksum
  changes, after every versioned migration, in description order.

The history table has the columns of Flyway's ``flyway_schema_history`` and the
checksums are computed as Flyway computes them (see ``checksum``), so a database that
Flyway manages validates and continues without a new baseline.

Safety:
- one session-level advisory lock per history table, held for the whole run and taken
  with a bounded wait; the history is read again once it is held;
- each migration in its own transaction together with its history row;
- ``SET LOCAL lock_timeout`` in every migration transaction; a migration that fails
  with SQLSTATE 55P03 (lock_not_available) is retried as a whole, with exponential
  backoff, a bounded number of times;
- statements that cannot run in a transaction (found with pglast) make the migration
  run statement by statement outside one; its history row is written first with
  ``success = false`` and set to true at the end, so a failure (or a killed run) part
  way leaves a failed row and the next run refuses to continue until ``repair``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import hashlib
import os
import re
import struct
import time
import zlib

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import redact
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import retry
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.findings import Finding

DEFAULT_TABLE = "flyway_schema_history"
DEFAULT_SCHEMA = "public"
BASELINE_DESCRIPTION = "<< Flyway Baseline >>"
BASELINE_SCRIPT = "<< Flyway Baseline >>"
LOCK_NOT_AVAILABLE = "55P03"
COMMANDS = ("migrate", "info", "validate", "baseline", "repair", "undo")

_NAME_RE = re.compile(r"^(?P<prefix>[VUR])(?P<version>[^_]*(?:_(?!_)[^_]*)*)__(?P<desc>.*)\.sql$", re.DOTALL)
_VERSION_RE = re.compile(r"^\d+(?:[._]\d+)*$")
_PLACEHOLDER_RE = re.compile(r"\$\{([^{}\s]+)\}")
# PostgreSQL keeps NAMEDATALEN - 1 = 63 bytes of an identifier and silently truncates the rest.
MAX_IDENTIFIER_BYTES = 63
# The history table's own objects: "<table>_pk" (constraint) and "<table>_s_idx" (index).
HISTORY_SUFFIXES = ("_pk", "_s_idx")
# Placeholders whose value is masked in every message and returned text (besides secret_placeholders).
SECRET_NAME_RE = re.compile(r"password|passwd|secret|token|credential|key$", re.IGNORECASE)
MASK = proc.MASK
# Flyway's ${flyway:timestamp} format ('yyyy-MM-dd HH:mm:ss', local time of the process).
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_ENVIRONMENT = "default"


class MigrationError(DbarchError):
    """A problem a DBA can act on; ``str()`` is the whole message."""

    def __init__(self, message, script=None, line=None, sqlstate=None, statement=None):
        super(MigrationError, self).__init__(message)
        self.message = message
        self.script = script
        self.line = line
        self.sqlstate = sqlstate
        self.statement = statement


# -- checksum ----------------------------------------------------------------------------
def checksum(text):
    """Flyway's checksum of a migration file's text.

    Same algorithm as Flyway's ChecksumCalculator (flyway/flyway,
    flyway-core/src/main/java/org/flywaydb/core/internal/resolver/ChecksumCalculator.java,
    calculateChecksumForResource): the text is read line by line (Java
    BufferedReader.readLine, which ends a line at LF, CR or CRLF and drops the
    terminator), a UTF-8 byte order mark is removed from the first line, the UTF-8 bytes
    of each line are fed to one CRC-32 (java.util.zip.CRC32, the same polynomial as
    zlib.crc32) and the result is cast to a signed 32-bit int. The caller chooses the
    text: Flyway checksums a versioned (or undo) file as written, and a repeatable file
    after its placeholders are replaced (SqlMigrationResolver.getChecksumForLoadableResource:
    ``repeatable && placeholderReplacement``), so a changed placeholder value re-runs it.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    crc = 0
    for line in re.split(r"\r\n|\r|\n", text):
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return struct.unpack("<i", struct.pack("<I", crc & 0xFFFFFFFF))[0]


# -- names and versions ----------------------------------------------------------------
class Version:
    """A migration version: numeric parts compared one by one (1.10 > 1.9, 1.0 == 1)."""

    __slots__ = ("parts", "text")

    def __init__(self, text):
        text = str(text).strip()
        if not _VERSION_RE.match(text):
            raise MigrationError(
                "%r is not a migration version: use numbers separated by dots or underscores, "
                "such as 1, 1.2 or 2024_05_01." % text
            )
        self.parts = tuple(int(p) for p in re.split(r"[._]", text))
        # Stored as Flyway stores it: the name's version with "_" as ".".
        self.text = text.replace("_", ".")

    def _key(self):
        parts = list(self.parts)
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        return tuple(parts)

    def __eq__(self, other):
        return isinstance(other, Version) and self._key() == other._key()

    def __ne__(self, other):
        return not self == other

    def __lt__(self, other):
        a, b = list(self.parts), list(other.parts)
        width = max(len(a), len(b))
        return a + [0] * (width - len(a)) < b + [0] * (width - len(b))

    def __le__(self, other):
        return self < other or self == other

    def __gt__(self, other):
        return other < self

    def __ge__(self, other):
        return other <= self

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return "Version(%s)" % self.text

    def __str__(self):
        return self.text


def parse_name(name):
    """(prefix, Version or None, description) of a migration file name, or None.

    Files that are not ``.sql`` or do not start with V, U or R are not migrations
    (None). A name that looks like a migration but is malformed raises MigrationError.
    """
    base = name.rsplit("/", 1)[-1]
    if not base.endswith(".sql") or base[:1] not in ("V", "U", "R"):
        return None
    m = _NAME_RE.match(base)
    if not m or "__" not in base:
        raise MigrationError(
            "%s: not a migration name. Use V<version>__<description>.sql, "
            "U<version>__<description>.sql or R__<description>.sql (two underscores)." % name,
            script=name,
        )
    prefix, raw_version, desc = m.group("prefix"), m.group("version"), m.group("desc")
    description = desc.replace("_", " ")
    if prefix == "R":
        if raw_version:
            raise MigrationError(
                "%s: a repeatable migration has no version (R__<description>.sql)." % name, script=name
            )
        return prefix, None, description
    try:
        version = Version(raw_version)
    except MigrationError as exc:
        raise MigrationError("%s: %s" % (name, exc), script=name) from None
    return prefix, version, description


class Migration:
    """One migration file: name, version, description, raw text and Flyway checksum."""

    def __init__(self, script, text):
        parsed = parse_name(script)
        if parsed is None:
            raise MigrationError("%s is not a migration file." % script, script=script)
        self.prefix, self.version, self.description = parsed
        self.script = script
        self.text = text
        self.checksum = checksum(text)

    @property
    def version_text(self):
        return self.version.text if self.version is not None else None

    @property
    def repeatable(self):
        return self.prefix == "R"

    def summary(self):
        return dict(
            version=self.version_text,
            description=self.description,
            type="SQL" if self.prefix != "U" else "UNDO_SQL",
            script=self.script,
            checksum=self.checksum,
        )

    def __repr__(self):
        return "Migration(%s)" % self.script


class MigrationSet:
    """The migrations found in a set of files, checked for duplicates and ordered."""

    def __init__(self, files):
        self.versioned = []
        self.undo = {}
        self.repeatable = []
        self.ignored = []
        seen = {}
        seen_desc = {}
        for name, text in files:
            if parse_name(name) is None:
                self.ignored.append(name)
                continue
            mig = Migration(name, text)
            if mig.prefix == "V":
                if mig.version in seen:
                    raise MigrationError(
                        "Version %s is defined twice: %s and %s. Each version needs one V file."
                        % (mig.version_text, seen[mig.version].script, name),
                        script=name,
                    )
                seen[mig.version] = mig
                self.versioned.append(mig)
            elif mig.prefix == "U":
                if mig.version in self.undo:
                    raise MigrationError(
                        "Undo of version %s is defined twice: %s and %s."
                        % (mig.version_text, self.undo[mig.version].script, name),
                        script=name,
                    )
                self.undo[mig.version] = mig
            else:
                if mig.description in seen_desc:
                    raise MigrationError(
                        "Repeatable migration %r is defined twice: %s and %s."
                        % (mig.description, seen_desc[mig.description].script, name),
                        script=name,
                    )
                seen_desc[mig.description] = mig
                self.repeatable.append(mig)
        self.versioned.sort(key=lambda m: m.version)
        self.repeatable.sort(key=lambda m: m.description)

    def by_version(self):
        return dict((m.version, m) for m in self.versioned)


# -- placeholders and statements ----------------------------------------------------------
def substitute(text, placeholders, script):
    """Replace ``${name}`` by its value; an unknown name fails naming the file and line."""
    placeholders = placeholders or {}
    lower = dict((str(k).lower(), v) for k, v in placeholders.items())

    def repl_line(lineno, line):
        def repl(m):
            name = m.group(1)
            if name in placeholders:
                return str(placeholders[name])
            if name.lower() in lower:
                return str(lower[name.lower()])
            raise MigrationError(
                "%s line %d: unknown placeholder ${%s}. Known placeholders: %s. Add it to placeholders."
                % (script, lineno, name, ", ".join(sorted(placeholders)) or "none"),
                script=script,
                line=lineno,
            )

        return _PLACEHOLDER_RE.sub(repl, line)

    if "${" not in text:
        return text
    pieces = re.split(r"(\r\n|\r|\n)", text)
    out = []
    lineno = 1
    for piece in pieces:
        if piece in ("\r\n", "\r", "\n"):
            out.append(piece)
            lineno += 1
        else:
            out.append(repl_line(lineno, piece))
    return "".join(out)


def _lock_not_available(exc):
    """True for a psycopg2 error of a statement that hit lock_timeout (the migration's own SQL)."""
    return isinstance(exc, pg.psycopg2.Error) and getattr(exc, "pgcode", None) == LOCK_NOT_AVAILABLE


def is_secret_name(name, secret_names=()):
    """True when a placeholder's value must never show: listed in secret_names, or its name
    contains password, passwd, secret, token or credential, or ends with key (any case)."""
    lowered = str(name).lower()
    return lowered in {str(n).lower() for n in secret_names or ()} or bool(SECRET_NAME_RE.search(lowered))


def secret_values(placeholders, secret_names=()):
    """The values to mask: those of the secret placeholders, longest first, empty ones left out."""
    values = set()
    for name, value in (placeholders or {}).items():
        if value is not None and is_secret_name(name, secret_names):
            text = str(value)
            if text:
                values.add(text)
    return sorted(values, key=lambda v: (-len(v), v))


def mask(value, secrets):
    """value with every secret masked as a whole token (proc.mask), in strings, lists, tuples and
    dicts (recursively)."""
    if not secrets:
        return value
    if isinstance(value, str):
        return proc.mask(value, secrets)
    if isinstance(value, dict):
        return dict((k, mask(v, secrets)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(mask(v, secrets) for v in value)
    return value


def mask_error(exc, secrets):
    """Mask the secrets in a MigrationError's or PgError's message, statement and partial result."""
    if not secrets:
        return exc
    message = mask(getattr(exc, "message", None) or (exc.args[0] if exc.args else ""), secrets)
    exc.message = message
    exc.args = (message,) + tuple(exc.args[1:])
    if getattr(exc, "statement", None):
        exc.statement = mask(exc.statement, secrets)
    if getattr(exc, "partial", None):
        exc.partial = mask(exc.partial, secrets)
    return exc


def check_identifier(what, name, suffixes=()):
    """Refuse a name (with any of suffixes appended) that PostgreSQL would truncate to 63 bytes."""
    for suffix in ("",) + tuple(suffixes):
        full = name + suffix
        size = len(full.encode("utf-8"))
        if size > MAX_IDENTIFIER_BYTES:
            raise MigrationError(
                "%s %r is too long: %s%r is %d bytes in UTF-8 and PostgreSQL keeps only %d "
                "(NAMEDATALEN - 1); it would silently truncate it%s. Choose a %s name of at most %d bytes."
                % (
                    what,
                    name,
                    ""
                    if not suffix
                    else "the name of its %s " % ("constraint" if suffix == "_pk" else "index"),
                    full,
                    size,
                    MAX_IDENTIFIER_BYTES,
                    " and the names would collide" if suffix else "",
                    what,
                    MAX_IDENTIFIER_BYTES - max(len(x.encode("utf-8")) for x in ("",) + tuple(suffixes)),
                )
            )


class Statement:
    __slots__ = ("sql", "line", "transactional", "kind")

    def __init__(self, sql, line, transactional, kind):
        self.sql = sql
        self.line = line
        self.transactional = transactional
        self.kind = kind

    def __repr__(self):
        return "Statement(line=%d, %s, tx=%s)" % (self.line, self.kind, self.transactional)


def _non_transactional(node):
    """Why a parsed statement cannot run inside a transaction block, or None."""
    name = type(node).__name__
    if name == "IndexStmt" and getattr(node, "concurrent", False):
        return "CREATE INDEX CONCURRENTLY"
    if name == "DropStmt" and getattr(node, "concurrent", False):
        return "DROP INDEX CONCURRENTLY"
    if name == "ReindexStmt":
        params = getattr(node, "params", None) or ()
        if getattr(node, "concurrent", False) or any(
            getattr(p, "defname", None) == "concurrently" for p in params
        ):
            return "REINDEX CONCURRENTLY"
        kind = str(getattr(node, "kind", ""))
        if "SYSTEM" in kind or "DATABASE" in kind:
            return "REINDEX %s" % ("SYSTEM" if "SYSTEM" in kind else "DATABASE")
    if name == "VacuumStmt" and getattr(node, "is_vacuumcmd", True):
        return "VACUUM"
    return {
        "AlterSystemStmt": "ALTER SYSTEM",
        "CreatedbStmt": "CREATE DATABASE",
        "DropdbStmt": "DROP DATABASE",
        "CreateTableSpaceStmt": "CREATE TABLESPACE",
        "DropTableSpaceStmt": "DROP TABLESPACE",
    }.get(name)


def _line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def _skip_blank(text, pos, end):
    """Move past whitespace and comments so a statement's line is its first token's."""
    while pos < end:
        if text[pos].isspace():
            pos += 1
        elif text.startswith("--", pos):
            nl = text.find("\n", pos)
            pos = end if nl < 0 else nl + 1
        elif text.startswith("/*", pos):
            close = text.find("*/", pos + 2)
            pos = end if close < 0 else close + 2
        else:
            break
    return pos


def split_statements(text, script):
    """The statements of a migration's SQL (placeholders already replaced), with pglast.

    Each Statement carries its SQL, its line in the file, and whether it may run in a
    transaction. Transaction control (BEGIN, COMMIT, ...) is refused: the engine owns
    the transactions.
    """
    try:
        from pglast import parse_sql  # noqa: PLC0415 - optional dependency, checked here
        from pglast.parser import ParseError  # noqa: PLC0415
    except ImportError as exc:
        raise MigrationError(
            "Parsing migrations needs the Python package pglast on the host that runs the module "
            "(pip install pglast): %s" % exc
        ) from None
    # Line numbers are counted on LF; a lone CR ends a line for Flyway, so count it too.
    norm = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        raw = parse_sql(norm)
    except ParseError as exc:
        pos = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        where = " line %d" % _line_of(norm, pos) if pos is not None else ""
        raise MigrationError(
            "%s%s: SQL syntax error: %s" % (script, where, exc.args[0] if exc.args else exc),
            script=script,
            line=_line_of(norm, pos) if pos is not None else None,
        ) from None
    out = []
    for rs in raw:
        start = rs.stmt_location or 0
        end = start + rs.stmt_len if rs.stmt_len else len(norm)
        start = _skip_blank(norm, start, end)
        sql_text = norm[start:end].strip()
        if not sql_text:
            continue
        line = _line_of(norm, start)
        kind = type(rs.stmt).__name__
        if kind == "TransactionStmt":
            raise MigrationError(
                "%s line %d: transaction control (%s) is not allowed in a migration: each migration "
                "already runs in its own transaction (or outside one when it only holds statements "
                "such as CREATE INDEX CONCURRENTLY). Remove it."
                % (script, line, sql_text.split()[0].upper()),
                script=script,
                line=line,
            )
        reason = _non_transactional(rs.stmt)
        out.append(Statement(sql_text, line, reason is None, reason or kind))
    return out


def execution_mode(statements, script):
    """True when the migration runs in one transaction, False when outside one.

    A file that mixes statements that must run outside a transaction with ordinary
    ones is refused: split it into two migrations.
    """
    if not statements:
        return True
    non_tx = [s for s in statements if not s.transactional]
    if not non_tx:
        return True
    if len(non_tx) == len(statements):
        return False
    tx = [s for s in statements if s.transactional]
    raise MigrationError(
        "%s mixes statements that cannot run in a transaction (%s) with statements that should "
        "(lines %s). Put the non-transactional ones in a migration file of their own."
        % (
            script,
            ", ".join("%s at line %d" % (s.kind, s.line) for s in non_tx),
            ", ".join(str(s.line) for s in tx),
        ),
        script=script,
        line=non_tx[0].line,
    )


def prepare(migration, placeholders, builtins=None):
    """(statements, transactional) of a migration, placeholders replaced."""
    values = dict(builtins or {})
    values["flyway:filename"] = migration.script
    values.update(placeholders or {})
    raw = (
        migration.text[1:] if migration.text.startswith("\ufeff") else migration.text
    )  # BOM, as Flyway drops it
    text = substitute(raw, values, migration.script)
    statements = split_statements(text, migration.script)
    return statements, execution_mode(statements, migration.script)


# -- history -----------------------------------------------------------------------------


def advisory_key(schema, table):
    """A stable signed bigint for pg_advisory_lock, from the history table's name."""
    digest = hashlib.sha256(("dbarch.migrate:%s.%s" % (schema, table)).encode("utf-8")).digest()
    return struct.unpack(">q", digest[:8])[0]


class HistoryState:
    """What the history rows say: applied versions, repeatables, failures, baseline."""

    def __init__(self, rows):
        self.rows = rows
        self.applied = {}  # Version -> row, versioned migrations currently applied
        self.repeatable = {}  # description -> latest successful row
        self.failed = []
        self.baseline = None
        for row in rows:
            if not row["success"]:
                self.failed.append(row)
                continue
            typ = row["type"]
            if row["version"] is None:
                if typ in ("SQL", "JDBC", "SCRIPT"):
                    self.repeatable[row["description"]] = row
                elif typ == "DELETE":
                    self.repeatable.pop(row["description"], None)
                continue
            version = _safe_version(row["version"])
            if version is None:
                continue
            if typ == "BASELINE":
                self.baseline = row
                self.applied[version] = row
            elif typ in ("UNDO_SQL", "UNDO_JDBC", "UNDO_SCRIPT", "DELETE"):
                self.applied.pop(version, None)
            elif typ in ("SQL", "JDBC", "SCRIPT", "SQL_BASELINE"):
                self.applied[version] = row

    @property
    def current(self):
        return max(self.applied) if self.applied else None

    @property
    def baseline_version(self):
        return _safe_version(self.baseline["version"]) if self.baseline else None


def _safe_version(text):
    try:
        return Version(text) if text is not None else None
    except MigrationError:
        return None


def row_summary(row):
    return dict(
        installed_rank=row["installed_rank"],
        version=row["version"],
        description=row["description"],
        type=row["type"],
        script=row["script"],
        checksum=row["checksum"],
        installed_by=row["installed_by"],
        installed_on=row["installed_on"].isoformat(sep=" ") if row.get("installed_on") else None,
        execution_time=row["execution_time"],
        success=row["success"],
    )


class Migrator:
    """Runs one command against one database through a pg.Session (autocommit on)."""

    def __init__(
        self,
        session,
        files,
        schema=DEFAULT_SCHEMA,
        table=DEFAULT_TABLE,
        placeholders=None,
        target=None,
        out_of_order=False,
        lock_timeout="5s",
        lock_retries=3,
        lock_retry_delay=1.0,
        lock_wait_timeout=300,
        check_mode=False,
        preview=False,
        sleep=time.sleep,
        lint=None,
        secret_placeholders=None,
        fail_on_missing_target=True,
        environment=None,
        working_directory=None,
        return_history=False,
    ):
        self.session = session
        # lint(pending) -> findings: called with [(script, text with placeholders replaced)] of the
        # pending migrations before anything runs; it raises MigrationError to stop the run.
        self.lint_hook = lint
        self.schema = schema or DEFAULT_SCHEMA
        self.table = table or DEFAULT_TABLE
        check_identifier("schema", self.schema)
        check_identifier("history table", self.table)
        self.placeholders = dict(placeholders or {})
        self.secrets = secret_values(self.placeholders, secret_placeholders)
        self.set = MigrationSet(files)
        self.target = None
        # As in Flyway: a target version no migration has fails, unless it ends with "?".
        self.fail_on_missing_target = bool(fail_on_missing_target)
        target = str(target).strip() if target is not None else None
        if target and target.endswith("?"):
            target = target[:-1].strip()
            self.fail_on_missing_target = False
        if target not in (None, "", "latest", "current"):
            self.target = Version(target)
        self.environment = environment or DEFAULT_ENVIRONMENT
        self.working_directory = working_directory or os.getcwd()
        # Parsed once per run, as Flyway parses the scripts once.
        self.timestamp = time.strftime(TIMESTAMP_FORMAT, time.localtime())
        self.return_history = bool(return_history)
        self.out_of_order = bool(out_of_order)
        self.lock_timeout = pg.validate_timeout("lock_timeout", lock_timeout) if lock_timeout else None
        self.lock_retries = max(0, int(lock_retries))
        self.lock_retry_delay = max(0.0, float(lock_retry_delay))
        self.lock_wait_timeout = max(0.0, float(lock_wait_timeout))
        self.check_mode = check_mode
        self.want_preview = preview
        self.sleep = sleep
        self.locked = False
        self.applied = []
        self.log = []
        self.retries = 0
        self._builtins = None
        self._prepared = {}

    # -- SQL helpers ---------------------------------------------------------------------
    @property
    def qtable(self):
        return pg.ident(self.schema, self.table)

    def _sql(self, text, *idents):
        return pg.pgsql.SQL(text).format(*idents)

    def builtins(self):
        if self._builtins is None:
            row = self.session.fetchone("SELECT current_user AS u, current_database() AS d", record=False)
            self._builtins = {
                "flyway:defaultSchema": self.schema,
                "flyway:user": row["u"],
                "flyway:database": row["d"],
                "flyway:table": self.table,
                "flyway:timestamp": self.timestamp,
                "flyway:workingDirectory": self.working_directory,
                "flyway:environment": self.environment,
            }
        return self._builtins

    def resolve_checksums(self):
        """Checksum repeatable migrations after placeholder replacement, as Flyway does.

        Versioned and undo migrations keep the checksum of the file as written. A repeatable
        one whose text has ``${...}`` gets the checksum of its replaced text, so a changed
        placeholder value (or ``${flyway:timestamp}``, which changes every run) re-runs it.
        """
        for mig in self.set.repeatable:
            if "${" in mig.text:
                mig.checksum = checksum(self.substituted(mig))

    def table_exists(self):
        return (
            self.session.scalar(
                "SELECT to_regclass(%s) IS NOT NULL",
                (self._sql("{}", self.qtable).as_string(self.session.conn),),
                record=False,
            )
            is True
        )

    def read_history(self):
        if not self.table_exists():
            return HistoryState([])
        rows = self.session.fetchall(
            self._sql(
                "SELECT installed_rank, version, description, type, script, checksum, installed_by, "
                "installed_on, execution_time, success FROM {} ORDER BY installed_rank",
                self.qtable,
            ),
            record=False,
        )
        return HistoryState(rows)

    def create_history(self):
        if self.table_exists():
            return False
        check_identifier("history table", self.table, HISTORY_SUFFIXES)
        self.session.execute(self._sql("CREATE SCHEMA IF NOT EXISTS {}", pg.ident(self.schema)))
        self.session.execute(
            self._sql(
                "CREATE TABLE {} ("
                "installed_rank integer NOT NULL, version varchar(50), description varchar(200) NOT NULL, "
                "type varchar(20) NOT NULL, script varchar(1000) NOT NULL, checksum integer, "
                "installed_by varchar(100) NOT NULL, installed_on timestamp NOT NULL DEFAULT now(), "
                "execution_time integer NOT NULL, success boolean NOT NULL, "
                "CONSTRAINT {} PRIMARY KEY (installed_rank))",
                self.qtable,
                pg.ident(self.table + "_pk"),
            )
        )
        self.session.execute(
            self._sql("CREATE INDEX {} ON {} (success)", pg.ident(self.table + "_s_idx"), self.qtable)
        )
        return True

    def insert_row(self, version, description, typ, script, checksum_value, execution_time, success):
        cur = self.session.execute(
            pg.pgsql.SQL(
                "INSERT INTO {t} (installed_rank, version, description, type, script, checksum, "
                "installed_by, execution_time, success) "
                "SELECT coalesce(max(installed_rank), 0) + 1, %s, %s, %s, %s, %s, "
                "left(current_user, 100), %s, %s FROM {t} RETURNING installed_rank, installed_on"
            ).format(t=self.qtable),
            (version, description[:200], typ, script[:1000], checksum_value, int(execution_time), success),
            record=False,
        )
        recorded = cur.fetchone()
        cur.close()
        return recorded

    # -- locking -------------------------------------------------------------------------
    def lock(self):
        key = advisory_key(self.schema, self.table)
        deadline = time.monotonic() + self.lock_wait_timeout
        delay = 0.05
        while True:
            if self.session.scalar("SELECT pg_try_advisory_lock(%s)", (key,), record=False):
                self.locked = True
                return
            if time.monotonic() >= deadline:
                holder = self.session.fetchone(
                    "SELECT a.pid, a.application_name, a.client_addr::text AS addr FROM pg_locks l "
                    "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 1 "
                    "LIMIT 1",
                    ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
                    record=False,
                )
                who = (
                    " (held by pid %s, application_name %r)" % (holder["pid"], holder["application_name"])
                    if holder
                    else ""
                )
                raise MigrationError(
                    "Another migration run holds the lock of history table %s.%s%s; gave up after "
                    "lock_wait_timeout=%ss. Wait for it to finish, or raise lock_wait_timeout."
                    % (self.schema, self.table, who, _fmt_seconds(self.lock_wait_timeout))
                )
            self.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)

    def unlock(self):
        if self.locked and not self.session.conn.closed:
            try:
                self.session.execute(
                    "SELECT pg_advisory_unlock(%s)", (advisory_key(self.schema, self.table),), record=False
                )
            except pg.PgError:
                pass
            self.locked = False

    # -- validation ------------------------------------------------------------------------
    def findings(self, state):
        found = []
        on_disk = self.set.by_version()
        current = state.current
        baseline = state.baseline_version
        for row in state.failed:
            found.append(
                Finding(
                    "MG-004",
                    "critical",
                    row["script"],
                    "Migration %s (version %s) failed part way and is recorded with success=false; "
                    "the schema may hold part of it." % (row["script"], row["version"] or "repeatable"),
                    why="A non-transactional migration cannot be rolled back; later migrations may depend "
                    "on what it did not finish.",
                    fix="Finish or revert the migration by hand, then run command=repair.",
                    evidence=dict(installed_rank=row["installed_rank"], version=row["version"]),
                    location=dict(file=row["script"]),
                    title="Failed migration in the history",
                )
            )
        for version, row in sorted(state.applied.items()):
            if row["type"] == "BASELINE":
                continue
            mig = on_disk.get(version)
            if mig is None:
                found.append(
                    Finding(
                        "MG-002",
                        "high",
                        row["script"],
                        "Applied migration %s (version %s) is not among the migration files."
                        % (row["script"], row["version"]),
                        why="The files no longer describe the database; a new database built from them "
                        "would differ from this one.",
                        fix="Restore the file, or run command=repair to mark it deleted.",
                        evidence=dict(version=row["version"], checksum=row["checksum"]),
                        location=dict(file=row["script"]),
                        title="Applied migration missing from disk",
                    )
                )
                continue
            if row["checksum"] != mig.checksum:
                found.append(
                    Finding(
                        "MG-001",
                        "high",
                        mig.script,
                        "%s was changed after it was applied: checksum %s in the history, %s computed "
                        "from the file." % (mig.script, row["checksum"], mig.checksum),
                        why="An applied migration is never run again; the change will not reach this "
                        "database but will reach new ones.",
                        fix="Revert the file and put the change in a new migration, or run command=repair "
                        "to accept the file as it is.",
                        evidence=dict(
                            version=mig.version_text, stored=row["checksum"], computed=mig.checksum
                        ),
                        location=dict(file=mig.script, line=1),
                        title="Checksum drift",
                    )
                )
            elif row["description"] != mig.description:
                found.append(
                    Finding(
                        "MG-005",
                        "medium",
                        mig.script,
                        "%s: description %r in the history, %r from the file name."
                        % (mig.script, row["description"], mig.description),
                        fix="Rename the file back, or run command=repair.",
                        evidence=dict(version=mig.version_text),
                        location=dict(file=mig.script),
                        title="Description drift",
                    )
                )
        if current is not None and not self.out_of_order:
            for mig in self.set.versioned:
                if mig.version in state.applied or mig.version >= current:
                    continue
                if baseline is not None and mig.version <= baseline:
                    continue
                found.append(
                    Finding(
                        "MG-003",
                        "high",
                        mig.script,
                        "%s (version %s) is pending but older than the current version %s."
                        % (mig.script, mig.version_text, current.text),
                        why="Applying it after newer migrations changes the order the schema was built in.",
                        fix="Give it a version above %s, or set out_of_order=true to apply it."
                        % current.text,
                        evidence=dict(version=mig.version_text, current=current.text),
                        location=dict(file=mig.script),
                        title="Pending migration older than the current version",
                    )
                )
        return found

    def pending(self, state):
        """Migrations to apply, in order: versioned (out of order first), then repeatables."""
        current = state.current
        baseline = state.baseline_version
        versioned = []
        for mig in self.set.versioned:
            if mig.version in state.applied:
                continue
            if baseline is not None and mig.version <= baseline:
                continue
            if self.target is not None and mig.version > self.target:
                continue
            if current is not None and mig.version < current and not self.out_of_order:
                continue
            versioned.append(mig)
        repeatables = []
        for mig in self.set.repeatable:
            row = state.repeatable.get(mig.description)
            if row is None or row["checksum"] != mig.checksum:
                repeatables.append(mig)
        return versioned + repeatables

    # -- running ---------------------------------------------------------------------------
    def _error(self, mig, stmt, exc, state_version, transactional):
        sqlstate = getattr(exc, "pgcode", None)
        diag = getattr(exc, "diag", None)
        server = getattr(diag, "message_primary", None) or str(exc).strip().splitlines()[0]
        detail = getattr(diag, "message_detail", None)
        shown = redact.statement(stmt.sql)  # password literals out, as in every returned statement
        text = " ".join(shown.split())
        if len(text) > 300:
            text = text[:297] + "..."
        msg = "Migration %s failed at line %d [SQLSTATE %s]: %s%s. Statement: %s. " % (
            mig.script,
            stmt.line,
            sqlstate or "?",
            server,
            " (%s)" % detail.rstrip(".") if detail else "",
            text,
        )
        if transactional:
            msg += "It was rolled back; the database stays at version %s." % (state_version or "none (empty)")
        else:
            msg += (
                "It ran outside a transaction, so the statements before line %d stay applied; the history "
                "records it as failed and further runs refuse to continue until you finish or revert it by "
                "hand and run command=repair." % stmt.line
            )
        return MigrationError(msg, script=mig.script, line=stmt.line, sqlstate=sqlstate, statement=shown)

    def _lock_retrying(self, func):
        """``func()`` again when a statement of it hit lock_timeout (lock_not_available), up to
        ``lock_retries`` more times, waiting ``lock_retry_delay``, twice that, ... seconds
        (retry.call); every retry counts in ``self.retries``."""

        def counted(_attempt, _exc, _delay):
            self.retries += 1

        backoff = dict(retry.doubling(self.lock_retries, self.lock_retry_delay), retry_if=_lock_not_available)
        return retry.call(func, (), sleep=self.sleep, on_retry=counted, **backoff)

    def _run_transactional(self, mig, statements, typ, state_version):
        cur = self.session.conn.cursor()
        failing = {}  # the statement the last attempt failed on (None: BEGIN, SET or the history row)

        def once():
            started = time.monotonic()
            failing["stmt"] = None
            try:
                cur.execute("BEGIN")
                if self.lock_timeout:
                    cur.execute(
                        pg.pgsql.SQL("SET LOCAL lock_timeout = {}").format(pg.literal(self.lock_timeout))
                    )
                for stmt in statements:
                    failing["stmt"] = stmt
                    cur.execute(stmt.sql)
                elapsed = int((time.monotonic() - started) * 1000)
                failing["stmt"] = None
                recorded = self.insert_row(
                    mig.version_text, mig.description, typ, mig.script, mig.checksum, elapsed, True
                )
                cur.execute("COMMIT")
                return recorded, elapsed
            except (pg.psycopg2.Error, pg.PgError):
                try:
                    self.session.conn.cursor().execute("ROLLBACK")
                except pg.psycopg2.Error:
                    pass
                raise

        try:
            recorded, elapsed = self._lock_retrying(once)
        except pg.psycopg2.Error as exc:
            cur.close()
            stmt = failing["stmt"]
            if stmt is None:
                raise pg.PgError(
                    "Recording %s in %s.%s failed: %s" % (mig.script, self.schema, self.table, exc),
                    sqlstate=getattr(exc, "pgcode", None),
                ) from None
            err = self._error(mig, stmt, exc, state_version, True)
            if _lock_not_available(exc):
                err.message = err.args[0] + " Gave up after %d retries (lock_retries)." % self.lock_retries
                err.args = (err.message,)
            raise err from None
        cur.close()
        return recorded, elapsed

    def _run_outside(self, mig, statements, typ, state_version):
        recorded = self.insert_row(mig.version_text, mig.description, typ, mig.script, mig.checksum, 0, False)
        rank = recorded[0]
        cur = self.session.conn.cursor()
        started = time.monotonic()
        if self.lock_timeout:
            cur.execute(pg.pgsql.SQL("SET lock_timeout = {}").format(pg.literal(self.lock_timeout)))
        for stmt in statements:
            try:
                self._lock_retrying(functools.partial(cur.execute, stmt.sql))
            except pg.psycopg2.Error as exc:
                cur.close()
                elapsed = int((time.monotonic() - started) * 1000)
                self.session.execute(
                    self._sql("UPDATE {} SET execution_time = %s WHERE installed_rank = %s", self.qtable),
                    (elapsed, rank),
                    record=False,
                )
                raise self._error(mig, stmt, exc, state_version, False) from None
        cur.execute("RESET lock_timeout")
        cur.close()
        elapsed = int((time.monotonic() - started) * 1000)
        self.session.execute(
            self._sql(
                "UPDATE {} SET success = true, execution_time = %s WHERE installed_rank = %s", self.qtable
            ),
            (elapsed, rank),
            record=False,
        )
        return recorded, elapsed

    def substituted(self, mig):
        """The migration's text with its placeholders replaced, lines kept (for the lint)."""
        values = dict(self.builtins())
        values["flyway:filename"] = mig.script
        values.update(self.placeholders)
        raw = mig.text[1:] if mig.text.startswith("\ufeff") else mig.text
        return substitute(raw, values, mig.script)

    def lint(self, pending):
        """Findings of the lint hook on the pending migrations ([] without a hook)."""
        if self.lint_hook is None or not pending:
            return []
        return list(self.lint_hook([(mig.script, self.substituted(mig)) for mig in pending]))

    def prepared(self, mig):
        """Statements and mode of a migration, parsed once per run."""
        key = mig.script
        if key not in self._prepared:
            self._prepared[key] = prepare(mig, self.placeholders, self.builtins())
        return self._prepared[key]

    def apply(self, mig, typ, state_version):
        statements, transactional = self.prepared(mig)
        if transactional:
            (rank, installed_on), elapsed = self._run_transactional(mig, statements, typ, state_version)
        else:
            (rank, installed_on), elapsed = self._run_outside(mig, statements, typ, state_version)
        self.log.append(
            "%s %s (%d statements%s)"
            % (typ, mig.script, len(statements), "" if transactional else ", no transaction")
        )
        entry = mig.summary()
        entry.update(
            type=typ,
            execution_time=elapsed,
            installed_rank=rank,
            installed_on=installed_on.isoformat(sep=" ") if installed_on else None,
        )
        self.applied.append(entry)
        return entry

    def sql_preview(self, migrations):
        """The SQL that would run, placeholders replaced, password literals masked
        (redact.statement), for check mode and diff."""
        chunks = []
        for mig in migrations:
            statements, transactional = self.prepared(mig)
            head = "-- %s%s" % (mig.script, "" if transactional else " (runs outside a transaction)")
            chunks.append(
                head + "\n" + "\n".join(redact.statement(s.sql.rstrip(";")) + ";" for s in statements)
            )
        return "\n\n".join(chunks)

    # -- commands --------------------------------------------------------------------------
    def _result(self, state, changed, history=None, current=False, **extra):
        if current is False:
            current = state.current
        res = dict(
            changed=changed,
            current_version=current.text if current else None,
            applied=self.applied,
            retries=self.retries,
            log=self.log,
        )
        # The whole history only when asked for (or for info): on a long history it is most of
        # the result, and returning it on every run cost more than the run itself.
        if self.return_history if history is None else history:
            res["history"] = [row_summary(r) for r in state.rows]
        res.update(extra)
        return res

    def check_target(self, state):
        """Fail, as Flyway does, when target names a version no migration file or history row has."""
        if self.target is None or not self.fail_on_missing_target:
            return
        known = {m.version for m in self.set.versioned} | set(state.applied)
        if self.target in known:
            return
        below = sorted(v for v in known if v < self.target)[-3:]
        above = sorted(v for v in known if v > self.target)[:3]
        raise MigrationError(
            "target %s: no migration has this version. Nearest available versions: below %s; above %s. "
            "Give an existing version, or end the target with '?' (target: \"%s?\") or set "
            "fail_on_missing_target=false to migrate up to the highest version below it."
            % (
                self.target.text,
                ", ".join(v.text for v in below) or "none",
                ", ".join(v.text for v in above) or "none",
                self.target.text,
            )
        )

    def _failure(self, exc, mig, created, current):
        """Attach what this run did before it failed to the exception (exc.partial)."""
        recorded = mig is not None and not (self._prepared.get(mig.script, (None, True))[1])
        exc.partial = dict(
            changed=bool(self.applied) or created or recorded,
            applied=list(self.applied),
            failed_migration=None
            if mig is None
            else dict(
                version=mig.version_text,
                description=mig.description,
                script=mig.script,
                line=getattr(exc, "line", None),
                sqlstate=getattr(exc, "sqlstate", None),
                # A migration run outside a transaction leaves its row with success=false.
                recorded_as_failed=recorded,
            ),
            current_version=current.text if current else None,
            retries=self.retries,
            log=list(self.log),
        )
        return exc

    def info(self):
        state = self.read_history()
        pending = self.pending(state)
        return self._result(
            state, False, history=True, pending=[m.summary() for m in pending], findings=self.findings(state)
        )

    def validate(self):
        state = self.read_history()
        return self._result(
            state, False, pending=[m.summary() for m in self.pending(state)], findings=self.findings(state)
        )

    def _gate(self, state, action):
        found = self.findings(state)
        if found:
            raise MigrationError(
                "Validation failed, nothing was %s: %s" % (action, " ".join(f.message for f in found)),
                script=found[0].object,
            )

    def migrate(self):
        state = self.read_history()
        self.check_target(state)
        if self.check_mode:
            self._gate(state, "applied")
            pending = self.pending(state)
            linted = self.lint(pending)
            return self._result(
                state,
                bool(pending) or not self.table_exists(),
                pending=[m.summary() for m in pending],
                findings=linted,
                preview=self.sql_preview(pending),
                target_version=self._after_version(state, pending),
            )
        # Lint what is pending before the lock and before the history table exists: a lint
        # failure leaves the database exactly as it was.
        linted = self.lint(self.pending(state))
        self.lock()
        try:
            state = self.read_history()
            self._gate(state, "applied")
            pending = self.pending(state)
            before = state.current.text if state.current else None
            for mig in pending:  # every file parsed before anything runs
                self.prepared(mig)
            preview = self.sql_preview(pending) if self.want_preview else None
            # Nothing is written before every check passed (validation, lint, placeholders, parsing):
            # the history table is created here, right before the first migration (or when none is
            # pending, as Flyway does), so a lint stop and a syntax error both leave nothing behind.
            created = self.create_history()
            current = state.current
            mig = None
            try:
                for mig in pending:
                    # The history is not read again after each migration: the lock keeps it ours.
                    self.apply(mig, "SQL", current.text if current else None)
                    if mig.version is not None and (current is None or mig.version > current):
                        current = mig.version
                mig = None
            except (MigrationError, pg.PgError) as exc:
                self._failure(exc, mig, created, current)
                raise
            # The current version is known without reading the history again (the lock keeps it
            # ours); it is read again only when the whole history is to be returned.
            return self._result(
                self.read_history() if self.return_history else state,
                bool(self.applied) or created,
                current=current,
                pending=[],
                findings=linted,
                preview=preview,
                before_version=before,
            )
        finally:
            self.unlock()

    def _after_version(self, state, pending):
        versions = [m.version for m in pending if m.version is not None]
        if state.current is not None:
            versions.append(state.current)
        return max(versions).text if versions else None

    def baseline(self, version="1", description=BASELINE_DESCRIPTION):
        version = Version(version or "1")
        description = description or BASELINE_DESCRIPTION
        state = self.read_history()
        if state.rows:
            if (
                len(state.rows) == 1
                and state.baseline is not None
                and _safe_version(state.baseline["version"]) == version
            ):
                return self._result(state, False, pending=[], findings=[])
            raise MigrationError(
                "Cannot baseline %s.%s at version %s: the history is not empty "
                "(%d rows, current version %s). "
                "A baseline only marks an existing database that has no history yet."
                % (self.schema, self.table, version.text, len(state.rows), state.current or "none")
            )
        if self.check_mode:
            return self._result(state, True, pending=[], findings=[])
        self.lock()
        try:
            self.create_history()
            state = self.read_history()
            if state.rows:
                raise MigrationError(
                    "Another run wrote the history of %s.%s meanwhile." % (self.schema, self.table)
                )
            self.insert_row(version.text, description, "BASELINE", BASELINE_SCRIPT, None, 0, True)
            self.log.append("BASELINE %s" % version.text)
            return self._result(self.read_history(), True, pending=[], findings=[])
        finally:
            self.unlock()

    def repair(self):
        """Delete failed rows, realign checksums and descriptions, mark missing files deleted."""
        state = self.read_history()
        actions = self._repair_actions(state)
        if self.check_mode or not actions:
            return self._result(
                state, bool(actions), pending=[], findings=[], repairs=[a[0] for a in actions]
            )
        self.lock()
        try:
            state = self.read_history()
            actions = self._repair_actions(state)
            self.session.execute("BEGIN", record=False)
            try:
                for _text, sql, params in actions:
                    self.session.execute(sql, params, record=False)
                self.session.execute("COMMIT", record=False)
            except BaseException:
                self.session.conn.cursor().execute("ROLLBACK")
                raise
            self.log.extend(a[0] for a in actions)
            return self._result(
                self.read_history(), bool(actions), pending=[], findings=[], repairs=[a[0] for a in actions]
            )
        finally:
            self.unlock()

    def _repair_actions(self, state):
        actions = []
        on_disk = self.set.by_version()
        for row in state.failed:
            actions.append(
                (
                    "removed failed row %s (%s)" % (row["installed_rank"], row["script"]),
                    self._sql("DELETE FROM {} WHERE installed_rank = %s AND NOT success", self.qtable),
                    (row["installed_rank"],),
                )
            )
        for version, row in sorted(state.applied.items()):
            if row["type"] == "BASELINE":
                continue
            mig = on_disk.get(version)
            if mig is None:
                actions.append(
                    (
                        "marked %s (version %s) deleted" % (row["script"], row["version"]),
                        pg.pgsql.SQL(
                            "INSERT INTO {t} (installed_rank, version, description, type, script, checksum, "
                            "installed_by, execution_time, success) "
                            "SELECT coalesce(max(installed_rank), 0) + 1, "
                            "%s, %s, 'DELETE', %s, %s, left(current_user, 100), 0, true FROM {t}"
                        ).format(t=self.qtable),
                        (row["version"], row["description"], row["script"], row["checksum"]),
                    )
                )
            elif (row["checksum"], row["description"], row["script"]) != (
                mig.checksum,
                mig.description,
                mig.script,
            ):
                actions.append(
                    (
                        "realigned %s (checksum %s -> %s)" % (mig.script, row["checksum"], mig.checksum),
                        self._sql(
                            "UPDATE {} SET checksum = %s, description = %s, script = %s "
                            "WHERE installed_rank = %s",
                            self.qtable,
                        ),
                        (mig.checksum, mig.description[:200], mig.script[:1000], row["installed_rank"]),
                    )
                )
        return actions

    def undo(self):
        """Apply the U file of the latest applied version (down to ``target`` when given)."""
        state = self.read_history()
        todo = self._undo_plan(state)
        if self.check_mode:
            return self._result(
                state,
                bool(todo),
                pending=[m.summary() for m in todo],
                findings=[],
                preview=self.sql_preview(todo),
                target_version=self._undo_after(state, todo),
            )
        self.lock()
        try:
            state = self.read_history()
            self._gate(state, "undone")
            todo = self._undo_plan(state)
            before = state.current.text if state.current else None
            for mig in todo:
                self.prepared(mig)
            preview = self.sql_preview(todo) if self.want_preview else None
            mig = None
            try:
                for mig in todo:
                    self.apply(mig, "UNDO_SQL", state.current.text if state.current else None)
                    state = self.read_history()
                mig = None
            except (MigrationError, pg.PgError) as exc:
                self._failure(exc, mig, False, state.current)
                raise
            return self._result(
                state, bool(self.applied), pending=[], findings=[], preview=preview, before_version=before
            )
        finally:
            self.unlock()

    def _undo_after(self, state, todo):
        undone = {m.version for m in todo}
        left = [v for v in state.applied if v not in undone]
        return max(left).text if left else None

    def _undo_plan(self, state):
        if state.current is None:
            raise MigrationError(
                "Nothing to undo: no versioned migration is applied in %s.%s." % (self.schema, self.table)
            )
        if self.target is None:
            versions = [state.current]
        else:
            versions = sorted((v for v in state.applied if v > self.target), reverse=True)
        todo = []
        for version in versions:
            row = state.applied[version]
            if row["type"] == "BASELINE":
                raise MigrationError(
                    "Version %s is the baseline; a baseline cannot be undone." % version.text
                )
            mig = self.set.undo.get(version)
            if mig is None:
                raise MigrationError(
                    "Cannot undo version %s (%s): there is no undo file U%s__<description>.sql among the "
                    "migration files." % (version.text, row["script"], version.text.replace(".", "_")),
                    script=row["script"],
                )
            todo.append(mig)
        return todo


def _fmt_seconds(value):
    return ("%g" % value) if isinstance(value, float) else str(value)


def run(session, command, files, baseline_version=None, baseline_description=None, **options):
    """Run one command; returns the result dict (findings as Finding objects)."""
    if command not in COMMANDS:
        raise MigrationError("Unknown command %r: use one of %s." % (command, ", ".join(COMMANDS)))
    migrator = Migrator(session, files, **options)
    try:
        migrator.resolve_checksums()
        if command == "baseline":
            result = migrator.baseline(baseline_version, baseline_description)
        else:
            result = getattr(migrator, command)()
    except (MigrationError, pg.PgError) as exc:
        raise mask_error(exc, migrator.secrets) from None
    # Placeholder values given as secret never show, not even in the SQL preview.
    return mask(result, migrator.secrets)
