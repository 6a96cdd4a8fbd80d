# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one PostgreSQL connection helper of the collection.

Plain Python: no Ansible imports. Modules reach it through ``ansible_pg`` (the thin
adapter), tests and benchmarks call it directly.

What it owns:
- the connection argument spec every module shares (``CONNECTION_ARGSPEC``);
- libpq environment defaults (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE);
- ``application_name`` = ``dbarch.<module>``;
- session settings (lock_timeout, statement_timeout) applied at connect time;
- server version detection;
- identifier quoting (psycopg2.sql, never string formatting);
- error messages that name host, port, user, database and the server's reason, and
  never the password;
- a record of the statements a module ran (``Session.queries``), which modules return.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc

import os
import re
import sys

try:
    import psycopg2
    import psycopg2.extras
    from psycopg2 import sql as pgsql

    HAS_PSYCOPG2 = True
except ImportError:  # pragma: no cover - exercised on hosts without the driver
    psycopg2 = None
    pgsql = None
    HAS_PSYCOPG2 = False


MISSING_DRIVER_MESSAGE = (
    "The PostgreSQL driver psycopg2 is not installed for the Python interpreter that runs "
    "this module ({python}). On Debian/Ubuntu hosts install the package python3-psycopg2 "
    "(apt-get install python3-psycopg2); on RHEL-like hosts python3-psycopg2 from the "
    "distribution; on the controller or in a virtualenv, pip install psycopg2-binary. "
    "Or point ansible_python_interpreter at an interpreter that has it."
)

# Option name -> (libpq keyword, environment variable that supplies the default).
_LIBPQ = {
    "login_host": ("host", "PGHOST"),
    "login_port": ("port", "PGPORT"),
    "login_user": ("user", "PGUSER"),
    "login_password": ("password", "PGPASSWORD"),
    "login_db": ("dbname", "PGDATABASE"),
    "ssl_mode": ("sslmode", "PGSSLMODE"),
    "ca_cert": ("sslrootcert", "PGSSLROOTCERT"),
    "connect_timeout": ("connect_timeout", "PGCONNECT_TIMEOUT"),
}

# The environment variables the connection options map to.
LIBPQ_ENV_NAMES = frozenset(env for _keyword, env in _LIBPQ.values())

SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

# The one argument spec for connection options (Ansible argument_spec format; plain data).
CONNECTION_ARGSPEC = dict(
    login_host=dict(type="str", aliases=["host"]),
    login_port=dict(type="int", aliases=["port"]),
    login_user=dict(type="str", aliases=["user"]),
    login_password=dict(type="str", no_log=True, aliases=["password"]),
    login_db=dict(type="str", aliases=["db", "database"]),
    login_unix_socket=dict(type="str", aliases=["unix_socket"]),
    ssl_mode=dict(type="str", choices=SSL_MODES),
    ca_cert=dict(type="path", aliases=["ssl_rootcert"]),
    connect_timeout=dict(type="int", default=10),
    lock_timeout=dict(type="str"),
    statement_timeout=dict(type="str"),
    session_settings=dict(type="dict", default={}),
)

_TIMEOUT_RE = re.compile(r"^\s*\d+\s*(us|ms|s|min|h|d)?\s*$")


class PgError(DbarchError):
    """An error a DBA can act on. ``str()`` is the whole one-line message."""

    def __init__(self, message, sqlstate=None, where=None):
        super(PgError, self).__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.where = where


def _env(name):
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def resolve_params(params):
    """Merge module options with libpq environment defaults.

    Returns the libpq keyword dict (password included) ready for psycopg2.connect.
    Explicit options win; an unset option falls back to its PG* variable; what is
    still unset is left to libpq's own defaults.
    """
    params = params or {}
    kw = {}
    for opt, (keyword, env) in _LIBPQ.items():
        value = params.get(opt)
        if value in (None, ""):
            value = _env(env)
        if value not in (None, ""):
            kw[keyword] = value
    sock = params.get("login_unix_socket")
    if sock and not params.get("login_host"):
        # libpq takes a socket directory as host.
        kw["host"] = sock
    return kw


def libpq_environment(kw, exclude=()):
    """The PG* environment variables for libpq keywords from ``resolve_params``.

    For the client programs (pg_dump, pg_restore, pg_basebackup) that modules run: the
    password reaches them this way, never on a command line. ``exclude``: keywords to leave out.
    """
    names = dict((keyword, env) for keyword, env in _LIBPQ.values())
    return dict(
        (names[k], str(v))
        for k, v in (kw or {}).items()
        if k in names and k not in exclude and v not in (None, "")
    )


def describe_target(kw):
    """host:port/db as user -- for messages. Never includes the password."""
    host = kw.get("host") or "local socket"
    port = kw.get("port") or 5432
    user = kw.get("user") or os.environ.get("USER", "?")
    db = kw.get("dbname") or user
    return "host=%s port=%s user=%s db=%s" % (host, port, user, db)


def _server_reason(exc):
    """The server's (or libpq's) reason, one line."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    reason = primary or str(exc)
    lines = [ln.strip() for ln in str(reason).strip().splitlines() if ln.strip()]
    text = " ".join(lines) if lines else exc.__class__.__name__
    # libpq repeats the address we already name; keep the server's own words.
    text = re.sub(r"^connection to server (at|on) .*? failed: ", "", text)
    text = re.sub(r"^(FATAL|ERROR):\s+", "", text)
    return text


def validate_timeout(name, value):
    if value is None:
        return None
    value = str(value).strip()
    if not _TIMEOUT_RE.match(value):
        raise PgError(
            "%s=%r is not a PostgreSQL duration: use a number with an optional unit "
            "(us, ms, s, min, h, d), e.g. '5s' or '250ms'." % (name, value)
        )
    return value


class Session:
    """A connection plus the record of what ran on it.

    ``execute`` and ``fetch*`` helpers keep ``queries`` (SQL text as sent, parameters
    never interpolated into the record) so modules can return them.
    """

    def __init__(self, conn, target, module_name):
        self.conn = conn
        self.target = target
        self.module_name = module_name
        self.queries = []
        self.query_count = 0
        self._version_num = None

    # -- version -------------------------------------------------------------
    @property
    def server_version_num(self):
        if self._version_num is None:
            self._version_num = int(self.conn.server_version)
        return self._version_num

    @property
    def major(self):
        return self.server_version_num // 10000

    # -- running SQL -----------------------------------------------------------
    def _as_text(self, query):
        if pgsql is not None and isinstance(query, pgsql.Composable):
            return query.as_string(self.conn)
        return query

    def execute(self, query, params=None, record=True):
        cur = self.conn.cursor()
        try:
            cur.execute(query, params)
        except psycopg2.Error as exc:
            cur.close()
            raise self.error_from(exc, self._as_text(query)) from exc
        self.query_count += 1
        if record:
            self.queries.append(self._as_text(query))
        return cur

    def fetchall(self, query, params=None, record=True):
        """Rows as dicts (built from plain tuples: much cheaper than a dict cursor)."""
        cur = self.conn.cursor()
        try:
            cur.execute(query, params)
            if cur.description is None:
                rows, names = [], []
            else:
                names = [d[0] for d in cur.description]
                rows = cur.fetchall()
        except psycopg2.Error as exc:
            raise self.error_from(exc, self._as_text(query)) from exc
        finally:
            cur.close()
        self.query_count += 1
        if record:
            self.queries.append(self._as_text(query))
        return [dict(zip(names, r)) for r in rows]  # noqa: B905 - targets older than 3.10 lack strict=

    def fetchone(self, query, params=None, record=True):
        rows = self.fetchall(query, params, record=record)
        return rows[0] if rows else None

    def scalar(self, query, params=None, record=True):
        row = self.fetchone(query, params, record=record)
        if row is None:
            return None
        return list(row.values())[0]

    def error_from(self, exc, statement=None):
        sqlstate = getattr(exc, "pgcode", None)
        reason = _server_reason(exc)
        msg = "PostgreSQL error on %s" % self.target
        if sqlstate:
            msg += " [SQLSTATE %s]" % sqlstate
        msg += ": %s" % reason
        if statement:
            stmt = " ".join(str(statement).split())
            if len(stmt) > 300:
                stmt = stmt[:297] + "..."
            msg += " (statement: %s)" % stmt
        return PgError(msg, sqlstate=sqlstate, where=self.target)

    def close(self):
        if not self.conn.closed:
            self.conn.close()


SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)*$")


def libpq_options(settings):
    """The libpq ``options`` string (``-c name=value ...``) for session settings.

    The server splits it on any white space (space, tab, newline...) and takes a backslash as
    "the next character is literal" (pg_split_opts), so every white space character and every
    backslash in a value is escaped: a value cannot add another option. Names must be setting
    names (``name`` or ``class.name``); a NUL byte cannot travel at all.
    """
    options = []
    for name, value in sorted((settings or {}).items()):
        if not SETTING_NAME_RE.match(str(name)):
            raise PgError(
                "session_settings: %r is not a valid setting name (letters, digits and _, "
                "optionally class.name)." % (name,)
            )
        text = str(value)
        if "\x00" in text:
            raise PgError("session_settings: the value of %s holds a NUL byte." % name)
        escaped = "".join("\\" + ch if ch == "\\" or ch.isspace() else ch for ch in text)
        options.append("-c %s=%s" % (name, escaped))
    return " ".join(options)


def connect(params, module_name, autocommit=True, readonly=False):
    """Open a Session. Raises PgError with a one-line, password-free message."""
    if not HAS_PSYCOPG2:
        raise PgError(MISSING_DRIVER_MESSAGE.format(python=sys.executable))
    params = params or {}
    kw = resolve_params(params)
    target = describe_target(kw)
    app = "dbarch.%s" % module_name
    settings = dict(params.get("session_settings") or {})
    for name in ("lock_timeout", "statement_timeout"):
        value = validate_timeout(name, params.get(name))
        if value is not None:
            settings[name] = value
    options = libpq_options(settings)
    if options:
        kw["options"] = options
    kw["application_name"] = app
    secrets = [kw.get("password")]
    try:
        conn = psycopg2.connect(**kw)
    except psycopg2.Error as exc:
        reason = proc.mask(_server_reason(exc), secrets)
        raise PgError(
            "Cannot connect to PostgreSQL (%s): %s" % (target, reason),
            sqlstate=getattr(exc, "pgcode", None),
            where=target,
        ) from None
    conn.autocommit = autocommit
    if readonly and not autocommit:
        conn.set_session(readonly=True)
    return Session(conn, target, module_name)


# -- identifiers ----------------------------------------------------------------
def ident(*parts):
    """A (possibly qualified) identifier, quoted by psycopg2.sql."""
    return pgsql.Identifier(*[p for p in parts if p is not None])


def literal(value):
    return pgsql.Literal(value)


def quote_ident_text(name):
    """Quoted identifier as text without a connection (for fix SQL shown to users).

    Same rule as PostgreSQL's quote_ident(): quote unless it is a plain lower-case
    identifier that is not a keyword.
    """
    name = str(name)
    if re.match(r"^[a-z_][a-z0-9_$]*$", name) and name.upper() not in _RESERVED:
        return name
    return '"%s"' % name.replace('"', '""')


def qualified_text(schema, name):
    if schema in (None, "", "public"):
        return quote_ident_text(name)
    return "%s.%s" % (quote_ident_text(schema), quote_ident_text(name))


# Reserved key words of PostgreSQL (those quote_ident() quotes); kept short on purpose.
_RESERVED = frozenset(
    """ALL ANALYSE ANALYZE AND ANY ARRAY AS ASC ASYMMETRIC AUTHORIZATION BINARY BOTH CASE
    CAST CHECK COLLATE COLLATION COLUMN CONCURRENTLY CONSTRAINT CREATE CROSS CURRENT_CATALOG
    CURRENT_DATE CURRENT_ROLE CURRENT_SCHEMA CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER
    DEFAULT DEFERRABLE DESC DISTINCT DO ELSE END EXCEPT FALSE FETCH FOR FOREIGN FREEZE FROM
    FULL GRANT GROUP HAVING ILIKE IN INITIALLY INNER INTERSECT INTO IS ISNULL JOIN LATERAL
    LEADING LEFT LIKE LIMIT LOCALTIME LOCALTIMESTAMP NATURAL NOT NOTNULL NULL OFFSET ON ONLY
    OR ORDER OUTER OVERLAPS PLACING PRIMARY REFERENCES RETURNING RIGHT SELECT SESSION_USER
    SIMILAR SOME SYMMETRIC SYSTEM_USER TABLE TABLESAMPLE THEN TO TRAILING TRUE UNION UNIQUE
    USER USING VARIADIC VERBOSE WHEN WHERE WINDOW WITH""".split()
)


def is_reserved(word):
    return str(word).upper() in _RESERVED
