# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Materialized views: create, compare, replace, refresh (concurrently when it can), drop.

- the query is parsed with pglast first: exactly one SELECT (or VALUES), no SELECT INTO,
  no parameters;
- definitions are compared by PostgreSQL: the query becomes a temporary view in a
  transaction that is rolled back, and its pg_get_viewdef is compared with the existing
  materialized view's, so formatting and spelling differences do not count;
- REFRESH ... CONCURRENTLY needs a populated view and a unique index on plain columns
  without a predicate; ``concurrently: auto`` uses it when both hold and says why not
  otherwise.
Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.query import explain as ex
from ansible_collections.dbarch.postgresql.plugins.module_utils.query import indexes
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg

PROBE_VIEW = "dbarch_matview_probe"
EXACT_COUNT_MAX_BYTES = 64 * 1024 * 1024  # count(*) up to this heap size, else pg_class.reltuples


class MatviewError(DbarchError):
    def __init__(self, message, result=None):
        super(MatviewError, self).__init__(message)
        self.result = result or {}


def check_query(text):
    """The query text (stripped of a trailing ';') once pglast says it is one plain query."""
    try:
        import pglast  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise MatviewError(
            "query is parsed with the Python package pglast, which is not installed on the host that "
            "runs the module (pip install pglast): %s" % exc
        ) from None
    text = str(text or "").strip()
    if not text:
        raise MatviewError("query is empty: give the SELECT the materialized view stores.")
    try:
        stmts = pglast.parse_sql(text)
    except pglast.parser.ParseError as exc:
        raise MatviewError("query is not valid SQL: %s" % exc) from None
    if len(stmts) != 1:
        raise MatviewError("query holds %d statements: give exactly one SELECT." % len(stmts))
    node = stmts[0].stmt
    if type(node).__name__ != "SelectStmt" or getattr(node, "intoClause", None) is not None:
        raise MatviewError(
            "query must be one SELECT (or VALUES) statement, not %s."
            % type(node).__name__.replace("Stmt", "").upper()
        )
    for sub in ex.walk(node):
        if type(sub).__name__ == "ParamRef":
            raise MatviewError(
                "query must not use parameters ($1 ...): a materialized view stores one result."
            )
    return text.rstrip(";").strip()


def resolve_name(session, name):
    """(schema, name, oid or None). An unqualified name is looked up on the search_path and created in
    current_schema(); the server parses the name (parse_ident), so quoting rules apply."""
    try:
        parts = session.scalar("SELECT parse_ident(%s)", (name,), record=False)
    except pg.PgError as exc:
        raise MatviewError(
            "name %r is not a valid (optionally schema-qualified) name: %s" % (name, exc)
        ) from None
    if len(parts) > 2:
        raise MatviewError("name %r has more than two parts: give view or schema.view." % name)
    row = session.fetchone(
        "SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispopulated FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        (".".join('"%s"' % p.replace('"', '""') for p in parts),),
    )
    if row is None:
        schema = parts[0] if len(parts) == 2 else session.scalar("SELECT current_schema()", record=False)
        if schema is None:
            raise MatviewError("no schema to create %r in: the search_path names no existing schema." % name)
        return dict(schema=schema, name=parts[-1], oid=None, populated=None)
    if row["relkind"] != "m":
        raise MatviewError(
            "%s.%s exists and is not a materialized view (relkind %s)."
            % (row["nspname"], row["relname"], row["relkind"])
        )
    return dict(schema=row["nspname"], name=row["relname"], oid=row["oid"], populated=row["relispopulated"])


def normalized_definition(session, query):
    """pg_get_viewdef of ``query`` made into a temporary view, in a transaction that is rolled back."""
    conn = session.conn
    conn.autocommit = False
    try:
        session.execute(
            pg.pgsql.SQL("CREATE TEMP VIEW {} AS ").format(pg.ident(PROBE_VIEW)) + pg.pgsql.SQL(query)
        )
        return session.scalar(
            "SELECT pg_get_viewdef(c.oid, true) FROM pg_class c WHERE c.relname = %s "
            "AND c.relnamespace = pg_my_temp_schema()",
            (PROBE_VIEW,),
        )
    finally:
        conn.rollback()
        conn.autocommit = True


def usable_unique_indexes(session, oid):
    """[{name, columns}] of valid unique indexes on plain columns without a predicate (what
    REFRESH ... CONCURRENTLY needs)."""
    rows = session.fetchall(
        "SELECT c.relname AS name, "
        "ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(attnum, n) JOIN pg_attribute a "
        "ON a.attrelid = x.indrelid AND a.attnum = k.attnum ORDER BY k.n)::text[] AS columns "
        "FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = %s AND x.indisunique "
        "AND x.indisvalid AND x.indpred IS NULL AND x.indexprs IS NULL ORDER BY c.relname",
        (oid,),
    )
    return [dict(name=r["name"], columns=list(r["columns"])) for r in rows]


def unique_index_name(name):
    suffix = "_unique"
    return name.encode("utf-8")[: indexes.NAMEDATALEN - len(suffix)].decode("utf-8", "ignore") + suffix


def _create_sql(target, query, with_data):
    return (
        pg.pgsql.SQL("CREATE MATERIALIZED VIEW {} AS ").format(pg.ident(target["schema"], target["name"]))
        + pg.pgsql.SQL(query)
        + pg.pgsql.SQL(" WITH DATA" if with_data else " WITH NO DATA")
    )


def _index_sql(target, columns, concurrently):
    word = (
        "CREATE UNIQUE INDEX CONCURRENTLY {} ON {} ({})"
        if concurrently
        else "CREATE UNIQUE INDEX {} ON {} ({})"
    )
    return pg.pgsql.SQL(word).format(
        pg.ident(unique_index_name(target["name"])),
        pg.ident(target["schema"], target["name"]),
        pg.pgsql.SQL(", ").join(pg.ident(c) for c in columns),
    )


def present(session, name, query, unique_columns=None, with_data=True, replace=False, check_mode=False):
    query = check_query(query)
    target = resolve_name(session, name)
    wanted = normalized_definition(session, query)
    qualified = "%s.%s" % (target["schema"], target["name"])
    result = dict(
        changed=False,
        name=qualified,
        definition=wanted,
        before=None,
        planned=[],
        replaced=False,
        unique_index=None,
    )
    before = None
    if target["oid"] is not None:
        before = session.scalar("SELECT pg_get_viewdef(%s::oid, true)", (target["oid"],))
        result["before"] = before
    unique_columns = list(unique_columns or [])
    transaction = []  # statements run in one transaction
    if before is None:
        transaction.append(_create_sql(target, query, with_data))
        if unique_columns:
            transaction.append(_index_sql(target, unique_columns, False))
    elif before != wanted:
        if not replace:
            raise MatviewError(
                "materialized view %s exists with another definition. Existing: %s -- wanted: %s. Set "
                "replace=true to drop and create it in one transaction (readers wait for that transaction, "
                "and the data is computed again)."
                % (qualified, " ".join(before.split()), " ".join(wanted.split())),
                result,
            )
        result["replaced"] = True
        transaction.append(
            pg.pgsql.SQL("DROP MATERIALIZED VIEW {}").format(pg.ident(target["schema"], target["name"]))
        )
        transaction.append(_create_sql(target, query, with_data))
        if unique_columns:
            transaction.append(_index_sql(target, unique_columns, False))
    concurrent_index = None
    if before is not None and before == wanted and unique_columns:
        have = usable_unique_indexes(session, target["oid"])
        match = [i for i in have if sorted(i["columns"]) == sorted(unique_columns)]
        if match:
            result["unique_index"] = match[0]
        else:
            concurrent_index = _index_sql(target, unique_columns, True)
    statements = transaction + ([concurrent_index] if concurrent_index is not None else [])
    result["planned"] = [session._as_text(s) for s in statements]
    result["changed"] = bool(statements)
    if unique_columns and result["unique_index"] is None:
        result["unique_index"] = dict(name=unique_index_name(target["name"]), columns=unique_columns)
    if check_mode or not statements:
        return result
    if transaction:
        conn = session.conn
        conn.autocommit = False
        try:
            for statement in transaction:
                session.execute(statement)
            conn.commit()
        except pg.PgError as exc:
            conn.rollback()
            raise MatviewError(str(exc), result) from None
        finally:
            conn.autocommit = True
    if concurrent_index is not None:
        try:
            session.execute(concurrent_index)
        except pg.PgError as exc:
            msg = "Creating the unique index on %s failed [SQLSTATE %s]: %s" % (qualified, exc.sqlstate, exc)
            session.execute(
                pg.pgsql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
                    pg.ident(target["schema"], unique_index_name(target["name"]))
                )
            )
            raise MatviewError(msg + " The INVALID index it left was dropped.", result) from None
    return result


def absent(session, name, check_mode=False):
    target = resolve_name(session, name)
    qualified = "%s.%s" % (target["schema"], target["name"])
    result = dict(changed=False, name=qualified, before=None, planned=[])
    if target["oid"] is None:
        return result
    result["before"] = session.scalar("SELECT pg_get_viewdef(%s::oid, true)", (target["oid"],))
    statement = pg.pgsql.SQL("DROP MATERIALIZED VIEW IF EXISTS {}").format(
        pg.ident(target["schema"], target["name"])
    )
    result.update(changed=True, planned=[session._as_text(statement)])
    if not check_mode:
        try:
            session.execute(statement)
        except pg.PgError as exc:
            hint = " Objects depend on it: drop them first." if exc.sqlstate == "2BP01" else ""
            raise MatviewError(str(exc) + hint, result) from None
    return result


def refresh_plan(session, target, concurrently="auto"):
    """(concurrent, reason) for REFRESH on ``target``; MatviewError when concurrently=true cannot be met."""
    if concurrently == "false":
        return False, "concurrently=false"
    why_not = None
    if not target["populated"]:
        why_not = (
            "the view is not populated (created WITH NO DATA): REFRESH CONCURRENTLY needs data to compare"
        )
    else:
        usable = usable_unique_indexes(session, target["oid"])
        if not usable:
            why_not = (
                "no unique index on plain columns without a WHERE clause: REFRESH CONCURRENTLY needs one "
                "(set unique_columns with state=present)"
            )
    if why_not is None:
        return True, "a unique index and data are there, so readers are not blocked"
    if concurrently == "true":
        raise MatviewError(
            "cannot refresh %s.%s concurrently: %s." % (target["schema"], target["name"], why_not)
        )
    return False, why_not


def refreshed(session, name, concurrently="auto", check_mode=False):
    target = resolve_name(session, name)
    qualified = "%s.%s" % (target["schema"], target["name"])
    if target["oid"] is None:
        raise MatviewError(
            "materialized view %s does not exist: create it with state=present first." % qualified
        )
    concurrent, reason = refresh_plan(session, target, concurrently)
    statement = pg.pgsql.SQL(
        "REFRESH MATERIALIZED VIEW CONCURRENTLY {}" if concurrent else "REFRESH MATERIALIZED VIEW {}"
    ).format(pg.ident(target["schema"], target["name"]))
    result = dict(
        changed=True,
        name=qualified,
        planned=[session._as_text(statement)],
        refresh_sql=session._as_text(statement),
        refresh=dict(concurrent=concurrent, reason=reason, duration_ms=None, rows=None, rows_exact=None),
    )
    if check_mode:
        return result
    started = time.monotonic()
    try:
        session.execute(statement)
    except pg.PgError as exc:
        raise MatviewError(str(exc), result) from None
    result["refresh"]["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    size = session.scalar("SELECT pg_relation_size(%s::oid)", (target["oid"],))
    if size <= EXACT_COUNT_MAX_BYTES:
        rows = session.scalar(
            pg.pgsql.SQL("SELECT count(*) FROM {}").format(pg.ident(target["schema"], target["name"]))
        )
        result["refresh"].update(rows=rows, rows_exact=True)
    else:
        rows = session.scalar("SELECT reltuples::bigint FROM pg_class WHERE oid = %s", (target["oid"],))
        result["refresh"].update(rows=rows, rows_exact=False)
    return result
