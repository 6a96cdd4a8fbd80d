# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run EXPLAIN on one statement safely; the plan rules live in ``plans``.

Safety, decided once for every statement:
- the statement is parsed with pglast first: exactly one statement, and only one that
  EXPLAIN can run (SELECT, VALUES, INSERT, UPDATE, DELETE, MERGE);
- EXPLAIN ANALYZE always runs inside a transaction that is always rolled back, under
  ``statement_timeout`` (30s unless the caller set one);
- a statement that does not write (no INSERT/UPDATE/DELETE/MERGE, no data-modifying
  WITH, no SELECT INTO / FOR UPDATE) runs in a READ ONLY transaction too, so a function
  it calls cannot write either (PostgreSQL refuses, and even nextval() is refused);
- parameters ($1, $2 ...) are bound on the server: PREPARE, then EXPLAIN EXECUTE with the
  values passed by psycopg2, never formatted into the SQL text.
Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg

DEFAULT_STATEMENT_TIMEOUT = "30s"
PREPARED_NAME = "dbarch_explain"

_EXPLAINABLE = {
    "SelectStmt": "SELECT",
    "InsertStmt": "INSERT",
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "MergeStmt": "MERGE",
}
_WRITES = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")


class ExplainError(DbarchError, ValueError):
    pass


def walk(node):
    """Every pglast node below ``node`` (including it). Shared by the modules that parse SQL."""
    from pglast import ast  # noqa: PLC0415 - optional dependency

    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
            continue
        if not isinstance(item, ast.Node):
            continue
        yield item
        for attr in item:
            stack.append(getattr(item, attr))


def classify(text):
    """{kind, writes, why, params} of one statement; ExplainError when it cannot be explained.

    ``params`` is the highest $n placeholder used.
    """
    try:
        import pglast  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise ExplainError(
            "explain parses the statement with the Python package pglast, which is not installed on "
            "the host that runs the module (pip install pglast): %s" % exc
        ) from None
    if not isinstance(text, str) or not text.strip():
        raise ExplainError("query is empty: give one SELECT, INSERT, UPDATE, DELETE or MERGE statement.")
    try:
        stmts = pglast.parse_sql(text)
    except pglast.parser.ParseError as exc:
        raise ExplainError("query is not valid SQL: %s" % exc) from None
    if len(stmts) != 1:
        raise ExplainError(
            "query holds %d statements: explain takes exactly one statement (remove the others, "
            "or the trailing text after the first ';')." % len(stmts)
        )
    node = stmts[0].stmt
    kind = type(node).__name__
    if kind not in _EXPLAINABLE:
        raise ExplainError(
            "query is a %s statement, which EXPLAIN cannot run: give one SELECT, VALUES, INSERT, UPDATE, "
            "DELETE or MERGE statement." % kind.replace("Stmt", "").upper()
        )
    reasons = []
    if kind in _WRITES:
        reasons.append("%s statement" % _EXPLAINABLE[kind])
    if kind == "SelectStmt" and getattr(node, "intoClause", None) is not None:
        raise ExplainError(
            "query is SELECT INTO, which creates a table: use CREATE TABLE AS outside explain."
        )
    max_param = 0
    for sub in walk(node):
        name = type(sub).__name__
        if name == "CommonTableExpr" and type(sub.ctequery).__name__ in _WRITES:
            reasons.append("data-modifying WITH %s" % sub.ctename)
        elif name == "LockingClause":
            reasons.append("row locks (FOR UPDATE/SHARE)")
        elif name == "ParamRef":
            max_param = max(max_param, int(sub.number or 0))
    return dict(
        kind=_EXPLAINABLE[kind],
        writes=bool(reasons),
        why=", ".join(dict.fromkeys(reasons)) or "reads only",
        params=max_param,
        text=text.strip().rstrip(";").strip(),
    )


def explain_sql(analyze, settings=True):
    """The EXPLAIN prefix (a psycopg2.sql.SQL): options are fixed words, never user text."""
    opts = ["ANALYZE", "BUFFERS", "VERBOSE"] if analyze else ["VERBOSE"]
    if settings:
        opts.append("SETTINGS")
    opts.append("FORMAT JSON")
    if not analyze:
        opts.insert(0, "ANALYZE false")
    return pg.pgsql.SQL("EXPLAIN (%s) " % ", ".join(opts))


READ_ONLY_SQLSTATE = "25006"

# -- whose rights a statement is planned with ---------------------------------------------
_Q_ROLE = "SELECT rolname, rolsuper FROM pg_roles WHERE rolname = %s"


def check_explain_role(session, role, allow_superuser=False):
    """The role statements are planned as: it must exist and, unless ``allow_superuser``,
    not be a superuser. Returns its name; ExplainError otherwise."""
    row = session.fetchone(_Q_ROLE, (role,))
    if row is None:
        raise ExplainError(
            "explain_role %r does not exist: CREATE ROLE %s NOLOGIN; and GRANT it the rights of the "
            "workload (or give the name of an existing role)." % (role, pg.quote_ident_text(role))
        )
    if row["rolsuper"] and not allow_superuser:
        raise ExplainError(
            "explain_role %s is a superuser: statements taken from pg_stat_statements must not be planned "
            "with a superuser's rights (a function in them would run as that superuser). Give a role "
            "without SUPERUSER, or set allow_superuser_statements=true to accept the risk." % role
        )
    return row["rolname"]


def superuser_reason(user):
    """Why a statement the superuser ``user`` ran is not planned (allow_superuser_statements)."""
    return (
        "skipped: recorded for the superuser %s; planning it would evaluate its functions with a "
        "superuser's rights. Set allow_superuser_statements=true to plan it as %s, or give "
        "explain_role (a role without SUPERUSER) to plan every statement as that role." % (user, user)
    )


# SET ROLE alone is no wall: while the session's login is a superuser, a function the planner
# evaluates may run RESET ROLE itself. Inside a SECURITY DEFINER function PostgreSQL refuses
# SET ROLE, RESET ROLE and SET SESSION AUTHORIZATION ("cannot set parameter role within
# security-definer function"), for every function it calls too. So a statement is planned
# from a temporary SECURITY DEFINER function owned by the role (``RoleWall``); it runs the
# given steps (SET LOCAL, PREPARE, EXPLAIN ...) and returns the EXPLAIN document.
_WRAPPER = (
    "CREATE FUNCTION pg_temp.{}(steps text[]) RETURNS json LANGUAGE plpgsql SECURITY DEFINER "
    "AS $dbarch$ DECLARE doc json; BEGIN "
    "FOR i IN 1 .. coalesce(array_length(steps, 1), 0) - 1 LOOP EXECUTE steps[i]; END LOOP; "
    "EXECUTE steps[array_length(steps, 1)] INTO doc; RETURN doc; END $dbarch$"
)


class RoleWall:
    """Temporary SECURITY DEFINER functions, one per role, that plan statements as that role.

    ``prepare(session, roles)`` creates them (in autocommit, before the planning transaction:
    a temporary function, gone when the session ends; ``close`` drops them). Where they cannot be
    created (a hot standby, no TEMP privilege) ``functions`` lacks the role and ``problems``
    says why; the caller falls back to SET LOCAL ROLE.
    """

    def __init__(self):
        self.functions = {}
        self.problems = {}
        self.roles = []  # roles that had a function (kept after close, for the report)

    def prepare(self, session, roles):
        for role in sorted({r for r in roles if r}):
            if role in self.functions or role in self.problems:
                continue
            name = "dbarch_plan_as_%d" % (len(self.functions) + len(self.problems) + 1)
            try:
                session.execute(pg.pgsql.SQL("SET ROLE {}").format(pg.ident(role)), record=False)
                try:
                    session.execute(pg.pgsql.SQL(_WRAPPER).format(pg.ident(name)), record=False)
                finally:
                    session.execute("RESET ROLE", record=False)
            except pg.PgError as exc:
                self.problems[role] = str(exc)
                continue
            self.functions[role] = name
            self.roles.append(role)

    def run(self, session, role, steps):
        """The EXPLAIN document the last of ``steps`` returns, run as ``role`` behind the wall."""
        texts = [st.as_string(session.conn) if hasattr(st, "as_string") else st for st in steps]
        doc = session.scalar(
            pg.pgsql.SQL("SELECT {}(%s::text[])").format(pg.ident("pg_temp", self.functions[role])), (texts,)
        )
        return json.loads(doc) if isinstance(doc, str) else doc

    def close(self, session):
        for name in self.functions.values():
            try:
                session.execute(
                    pg.pgsql.SQL("DROP FUNCTION IF EXISTS {}(text[])").format(pg.ident("pg_temp", name)),
                    record=False,
                )
            except pg.PgError:
                pass  # gone with the session anyway
        self.functions = {}


def set_role(session, role):
    """SET LOCAL ROLE ``role`` (quoted) in the caller's transaction; None leaves the login's role."""
    if role:
        session.execute(pg.pgsql.SQL("SET LOCAL ROLE {}").format(pg.ident(role)))


def check_params(info, params):
    """The params as a list, one per $n placeholder, or ExplainError."""
    params = list(params or [])
    if info["params"] != len(params):
        raise ExplainError(
            "query uses %d parameter(s) ($1..$%d) and params holds %d value(s): give one value per "
            "placeholder, in order." % (info["params"], info["params"], len(params))
            if info["params"]
            else "params holds %d value(s) but query has no $1, $2 ... placeholders." % len(params)
        )
    return params


def run(
    session,
    info,
    params=None,
    analyze=True,
    statement_timeout=None,
    role=None,
    retry_read_write=True,
):
    """EXPLAIN the classified statement ``info``; returns (plan document, transaction).

    ``transaction`` is ``read only`` or ``read write``. A statement classified as
    reading only runs READ ONLY; if PostgreSQL refuses because a function it calls
    writes, it runs again read-write -- still rolled back -- unless ``retry_read_write``
    is false (check mode): a rolled-back transaction does not give back what a function
    took outside it (nextval()), so then ExplainError says the statement needs write access.
    ``role``: SET LOCAL ROLE to it first, so the statement runs with that role's rights.
    """
    try:
        return _run(session, info, params, analyze, statement_timeout, info["writes"], role), (
            "read write" if info["writes"] else "read only"
        )
    except pg.PgError as exc:
        if info["writes"] or exc.sqlstate != READ_ONLY_SQLSTATE:
            raise
        if not retry_read_write:
            raise ExplainError(
                "the statement needs write access (%s): a function it calls writes, and in check mode it "
                "is not run again read-write (a rollback does not give back sequence values). Run without "
                "check mode, or with analyze=false." % exc.message
            ) from None
    return _run(session, info, params, analyze, statement_timeout, True, role), "read write"


def _run(session, info, params, analyze, statement_timeout, writable, role=None):
    params = check_params(info, params)
    timeout = pg.validate_timeout("statement_timeout", statement_timeout or DEFAULT_STATEMENT_TIMEOUT)
    conn = session.conn
    conn.rollback()
    conn.autocommit = True
    wall = RoleWall()
    if role and not params:
        # behind a SECURITY DEFINER function a function of the statement cannot RESET ROLE
        wall.prepare(session, [role])
    conn.autocommit = False
    try:
        conn.set_session(readonly=not writable)
        session.execute("SELECT set_config('statement_timeout', %s, true)", (timeout,))
        prefix = explain_sql(analyze)
        if role in wall.functions:
            session.role_wall = "security definer"
            return wall.run(session, role, [prefix + pg.pgsql.SQL(info["text"])])[0]
        if role:
            session.role_wall = "set role only: %s" % (
                "the values of params are bound on the server" if params else wall.problems.get(role)
            )
        set_role(session, role)
        if params:
            session.execute(
                pg.pgsql.SQL("PREPARE {} AS ").format(pg.ident(PREPARED_NAME)) + pg.pgsql.SQL(info["text"])
            )
            placeholders = pg.pgsql.SQL(", ").join([pg.pgsql.Placeholder()] * len(params))
            stmt = prefix + pg.pgsql.SQL("EXECUTE {} ({})").format(pg.ident(PREPARED_NAME), placeholders)
            rows = session.fetchall(stmt, params)
        else:
            rows = session.fetchall(prefix + pg.pgsql.SQL(info["text"]))
    finally:
        conn.rollback()
        if params:
            try:
                conn.autocommit = True
                session.execute(pg.pgsql.SQL("DEALLOCATE {}").format(pg.ident(PREPARED_NAME)), record=False)
            except pg.PgError:
                pass  # it was never prepared
        conn.set_session(readonly="DEFAULT")
        conn.autocommit = True
        wall.close(session)
    doc = list(rows[0].values())[0]
    if isinstance(doc, str):
        doc = json.loads(doc)
    return doc[0]
