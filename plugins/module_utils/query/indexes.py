# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build and drop indexes without stalling production traffic.

What this engine guarantees:
- identifiers (index, table, columns, INCLUDE columns, tablespace) always go through
  psycopg2.sql; an expression or a predicate is sent only after pglast parsed it as
  exactly one expression;
- the wanted definition is compared with the existing index by PostgreSQL itself: the
  wanted index is built on an empty temporary copy of the table's columns (CREATE TEMP
  TABLE ... (LIKE ...)) in a transaction that is rolled back, and both are read back with
  pg_get_indexdef, so ``lower(email)`` and ``lower((email)::text)`` compare equal;
- CREATE INDEX CONCURRENTLY runs in autocommit under ``lock_timeout``; on lock_not_available
  (55P03) or a deadlock (40P01) the INVALID leftover is dropped and the build is retried with
  exponential backoff; a build that fails for good leaves no INVALID index behind when the
  locks allow dropping it (and says so when they do not);
- progress is read from pg_stat_progress_create_index on a second connection while the
  build runs.
Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import threading
import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.query import explain as ex
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import retry

METHODS = ["btree", "hash", "gist", "gin", "brin", "spgist"]
RETRYABLE = ("55P03", "40P01")  # lock_not_available, deadlock_detected
SCAN_NODES = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
PROBE_TABLE = "dbarch_index_probe"
PROBE_INDEX = "dbarch_index_probe_idx"
NAMEDATALEN = 63
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


class IndexError_(DbarchError):
    """An error a DBA can act on (named with a trailing underscore: IndexError is a builtin).

    ``result`` holds what was done before the failure (attempts, progress, actions).
    """

    def __init__(self, message, result=None):
        super(IndexError_, self).__init__(message)
        self.result = result or {}


# -- input checks -------------------------------------------------------------------------
def check_expression(text, what):
    """Raise IndexError_ unless ``text`` is exactly one SQL expression (parsed with pglast)."""
    try:
        import pglast  # noqa: PLC0415 - optional dependency
    except ImportError as exc:
        raise IndexError_(
            "%s is an expression, which is parsed with the Python package pglast before it is sent; "
            "pglast is not installed on the host that runs the module (pip install pglast): %s" % (what, exc)
        ) from None
    text = str(text or "").strip()
    if not text:
        raise IndexError_("%s is empty." % what)
    try:
        stmts = pglast.parse_sql("SELECT (%s)" % text)
    except pglast.parser.ParseError as exc:
        raise IndexError_("%s %r is not one valid SQL expression: %s" % (what, text, exc)) from None
    node = stmts[0].stmt if len(stmts) == 1 else None
    ok = (
        node is not None
        and type(node).__name__ == "SelectStmt"
        and len(node.targetList or ()) == 1
        and node.targetList[0].name is None
        and not any(
            getattr(node, attr, None)
            for attr in (
                "fromClause",
                "whereClause",
                "groupClause",
                "havingClause",
                "sortClause",
                "intoClause",
            )
        )
    )
    if ok:
        for sub in ex.walk(node.targetList[0]):
            name = type(sub).__name__
            if name in ("SubLink", "ParamRef"):
                ok = False
    if not ok:
        raise IndexError_(
            "%s %r must be exactly one expression (no subquery, no parameter, no second item): "
            "give one column name or expression per list item." % (what, text)
        )
    return text


def check_name(name, what="name"):
    name = str(name or "")
    if not name:
        raise IndexError_("%s is empty." % what)
    if len(name.encode("utf-8")) > NAMEDATALEN:
        raise IndexError_(
            "%s %r is longer than %d bytes; PostgreSQL would truncate it, so give a shorter name."
            % (what, name, NAMEDATALEN)
        )
    return name


# -- catalog reads --------------------------------------------------------------------------
def resolve_table(session, table):
    """{oid, schema, name, kind, columns} of ``table`` (qualified or found on search_path), or None.

    The server parses the name (quoting rules, search_path), through to_regclass.
    """
    row = session.fetchone(
        "SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind, "
        "ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum)::text[] AS columns "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        (table,),
    )
    return row


def find_index(session, schema, name):
    """The relation called ``name`` in ``schema``, with index facts when it is one; None when absent."""
    return session.fetchone(
        "SELECT c.oid, c.relkind AS kind, x.indrelid::regclass::text AS table_name, x.indrelid AS table_oid, "
        "x.indisvalid AS valid, x.indisready AS ready, x.indisunique AS is_unique, "
        "pg_get_indexdef(c.oid) AS definition, "
        "coalesce(ts.spcname, '') AS tablespace, "
        "format('CREATE %%sINDEX %%I ON %%s%%I.%%I USING ', CASE WHEN x.indisunique THEN 'UNIQUE ' END, "
        "c.relname, CASE WHEN t.relkind = 'p' THEN 'ONLY ' END, tn.nspname, t.relname) AS prefix, "
        "(SELECT json_agg(json_build_object('name', k.conname, 'type', k.contype::text)) "
        " FROM pg_constraint k WHERE k.conindid = c.oid) AS constraints "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_index x ON x.indexrelid = c.oid "
        "LEFT JOIN pg_class t ON t.oid = x.indrelid "
        "LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace "
        "LEFT JOIN pg_tablespace ts ON ts.oid = c.reltablespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )


def shape(index_row):
    """The part of pg_get_indexdef after ``... USING``: method, keys, INCLUDE, WITH, WHERE."""
    definition, prefix = index_row["definition"], index_row["prefix"]
    if definition.startswith(prefix):
        return definition[len(prefix) :]
    return definition.split(" USING ", 1)[-1]


# -- SQL ------------------------------------------------------------------------------------
class Wanted:
    """The index asked for, turned into SQL pieces (psycopg2.sql) once the table is known."""

    def __init__(
        self, name, table, columns, unique=False, where=None, include=None, method="btree", tablespace=None
    ):
        self.name = check_name(name)
        self.table_text = table
        if not columns:
            raise IndexError_("columns is empty: give at least one column name or expression.")
        if method not in METHODS:
            raise IndexError_("method %r is not one of %s." % (method, ", ".join(METHODS)))
        if unique and method != "btree":
            raise IndexError_(
                "unique=true needs method btree (PostgreSQL has unique indexes only for btree)."
            )
        self.columns = [str(c).strip() for c in columns]
        self.unique = bool(unique)
        self.where = check_expression(where, "where") if where not in (None, "") else None
        self.include = [check_name(c, "include") for c in (include or [])]
        if self.include and method not in ("btree", "gist", "spgist"):
            raise IndexError_(
                "include needs method btree, gist or spgist (PostgreSQL %s has no INCLUDE)." % method
            )
        self.method = method
        self.tablespace = check_name(tablespace, "tablespace") if tablespace else None
        self.table = None

    def bind(self, table):
        """Check column names against the table; expressions are parse-checked."""
        self.table = table
        known = set(table["columns"])
        self._keys = []
        for col in self.columns:
            if col in known:
                self._keys.append(pg.ident(col))
            elif _PLAIN_NAME.match(col):
                raise IndexError_(
                    "column %r does not exist in table %s.%s (columns: %s); names are case-sensitive."
                    % (col, table["schema"], table["name"], ", ".join(table["columns"]))
                )
            else:
                self._keys.append(pg.pgsql.SQL("(%s)" % check_expression(col, "columns item")))
        for col in self.include:
            if col not in known:
                raise IndexError_(
                    "include column %r does not exist in table %s.%s." % (col, table["schema"], table["name"])
                )
        return self

    def create_sql(self, name=None, schema=None, table=None, concurrently=True, tablespace=True):
        S = pg.pgsql.SQL
        parts = [S("CREATE UNIQUE INDEX ") if self.unique else S("CREATE INDEX ")]
        if concurrently:
            parts.append(S("CONCURRENTLY "))
        parts.append(
            S("{} ON {} USING {} ({})").format(
                pg.ident(name or self.name),
                pg.ident(schema, table) if table else pg.ident(self.table["schema"], self.table["name"]),
                S(self.method),
                S(", ").join(self._keys),
            )
        )
        if self.include:
            parts.append(S(" INCLUDE ({})").format(S(", ").join(pg.ident(c) for c in self.include)))
        if self.tablespace and tablespace:
            parts.append(S(" TABLESPACE {}").format(pg.ident(self.tablespace)))
        if self.where:
            parts.append(S(" WHERE (%s)" % self.where))
        return pg.pgsql.Composed(parts)


def drop_sql(schema, name, concurrently=True):
    word = "DROP INDEX CONCURRENTLY IF EXISTS {}" if concurrently else "DROP INDEX IF EXISTS {}"
    return pg.pgsql.SQL(word).format(pg.ident(schema, name))


def probe(session, wanted):
    """The wanted index as PostgreSQL would write it: (shape, definition), from a rolled-back build.

    The index is built on an empty temporary table with the same columns (LIKE), inside a
    transaction that is always rolled back: nothing is left and no lock is held on the
    real table beyond ACCESS SHARE for the LIKE.
    """
    conn = session.conn
    conn.autocommit = False
    try:
        session.execute(
            pg.pgsql.SQL("CREATE TEMP TABLE {} (LIKE {})").format(
                pg.ident(PROBE_TABLE), pg.ident(wanted.table["schema"], wanted.table["name"])
            )
        )
        session.execute(
            wanted.create_sql(PROBE_INDEX, None, PROBE_TABLE, concurrently=False, tablespace=False)
        )
        row = find_index(
            session,
            session.scalar("SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema()", record=False),
            PROBE_INDEX,
        )
    finally:
        conn.rollback()
        conn.autocommit = True
    text = shape(row)
    prefix = session.scalar(
        "SELECT format('CREATE %%sINDEX %%I ON %%I.%%I USING ', %s::text, %s::text, %s::text, %s::text)",
        ("UNIQUE " if wanted.unique else "", wanted.name, wanted.table["schema"], wanted.table["name"]),
        record=False,
    )
    return text, prefix + text


# -- building -------------------------------------------------------------------------------
PROGRESS_SQL = (
    "SELECT phase, lockers_total, lockers_done, blocks_total, blocks_done, tuples_total, tuples_done "
    "FROM pg_stat_progress_create_index WHERE pid = %s"
)


class ProgressWatcher(threading.Thread):
    """Polls pg_stat_progress_create_index for one backend from its own connection."""

    def __init__(self, connect, pid, interval=0.1, on_change=None):
        super(ProgressWatcher, self).__init__(name="dbarch-index-progress", daemon=True)
        self.connect = connect
        self.pid = pid
        self.interval = interval
        self.on_change = on_change
        self.stop_event = threading.Event()
        self.phases = []
        self.last = None
        self.samples = 0
        self.error = None

    def run(self):
        try:
            session = self.connect()
        except pg.PgError as exc:
            self.error = str(exc)
            return
        try:
            while True:
                row = session.fetchone(PROGRESS_SQL, (self.pid,), record=False)
                if row:
                    self.samples += 1
                    if row["phase"] and (not self.phases or self.phases[-1] != row["phase"]):
                        self.phases.append(row["phase"])
                        if self.on_change:
                            self.on_change(dict(row))
                    self.last = dict(row)
                if self.stop_event.wait(self.interval):
                    break
        except pg.PgError as exc:
            self.error = str(exc)
        finally:
            session.close()

    def stop(self):
        self.stop_event.set()
        self.join(10)


def _run_watched(session, statement, connect, interval, on_change, keep):
    """Run ``statement`` while a ProgressWatcher reads its progress; ``keep(watcher)`` in any case."""
    watcher = None
    if connect is not None:
        watcher = ProgressWatcher(connect, session.conn.get_backend_pid(), interval, on_change)
        watcher.start()
    try:
        session.execute(statement)
    finally:
        if watcher is not None:
            watcher.stop()
            keep(watcher)


class Builder:
    """Runs the state-changing statements with retries; records what it did."""

    def __init__(
        self,
        session,
        schema,
        lock_timeout_retries=5,
        retry_delay=1.0,
        connect=None,
        progress_interval=0.1,
        on_progress=None,
        sleep=time.sleep,
    ):
        self.session = session
        self.schema = schema
        self.retries = int(lock_timeout_retries)
        self.retry_delay = float(retry_delay)
        self.connect = connect
        self.progress_interval = progress_interval
        self.on_progress = on_progress
        self.sleep = sleep
        self.attempts = []
        self.dropped_invalid = []
        self.progress = dict(phases=[], last=None, samples=0)

    def _leftover(self, name):
        row = find_index(self.session, self.schema, name)
        return row if row and row["kind"] in ("i", "I") and not row["valid"] else None

    def drop(self, name, concurrently=True):
        self.session.execute(drop_sql(self.schema, name, concurrently))

    def _call(self, func, report, on_retry=None):
        """``func()`` again on lock timeout or deadlock (retry.call), up to ``retries`` more times,
        waiting ``retry_delay``, twice that, ... seconds."""
        backoff = retry.doubling(self.retries, self.retry_delay)
        return retry.call(func, RETRYABLE, sleep=self.sleep, on_retry=on_retry, report=report, **backoff)

    def _failed(self, attempt, exc):
        self.attempts.append(dict(attempt=attempt, outcome="failed", sqlstate=exc.sqlstate, message=str(exc)))

    def retrying(self, func):
        """Run ``func`` (one statement); retry on lock timeout or deadlock with backoff."""
        report = retry.Retried()
        try:
            return self._call(func, report, on_retry=lambda attempt, exc, _delay: self._failed(attempt, exc))
        except pg.PgError as exc:
            raise IndexError_("%s (gave up after %d attempt(s))" % (exc, report.attempts)) from None

    def build(self, wanted, name, concurrently=True):
        """Build ``wanted`` as ``name``; returns {duration_ms, started_at, finished_at}."""
        statement = wanted.create_sql(name, concurrently=concurrently)
        report = retry.Retried()

        def once():
            try:
                if self._leftover(name):
                    self.drop(name, concurrently)
                    self.dropped_invalid.append(name)
                started = time.time()
                _run_watched(
                    self.session,
                    statement,
                    self.connect,
                    self.progress_interval,
                    self.on_progress,
                    self._keep_progress,
                )
                finished = time.time()
            except pg.PgError as exc:
                self._failed(report.attempts, exc)
                raise
            self.attempts.append(dict(attempt=report.attempts, outcome="built"))
            return dict(
                started_at=started,
                finished_at=finished,
                duration_ms=round((finished - started) * 1000, 1),
            )

        try:
            return self._call(once, report)
        except pg.PgError as exc:
            raise IndexError_(self._give_up(name, exc, concurrently)) from None

    def _keep_progress(self, watcher):
        if watcher is None:
            return
        for phase in watcher.phases:
            if phase not in self.progress["phases"]:
                self.progress["phases"].append(phase)
        self.progress["last"] = watcher.last or self.progress["last"]
        self.progress["samples"] += watcher.samples
        if watcher.error:
            self.progress["error"] = watcher.error

    def _give_up(self, name, exc, concurrently):
        tries = len([a for a in self.attempts if a["outcome"] == "failed"])
        msg = "Building index %s.%s failed%s [SQLSTATE %s]: %s" % (
            self.schema,
            name,
            " after %d attempt(s)" % tries if tries > 1 else "",
            exc.sqlstate,
            exc,
        )
        try:
            if self._leftover(name):
                self.drop(name, concurrently)
                msg += " The INVALID index the failed build left was dropped."
            else:
                msg += " No index was left behind."
        except pg.PgError as drop_exc:
            msg += (
                " The INVALID index %s.%s it left could not be dropped (%s); it is not used by queries but "
                "slows writes: the next run of this module drops and rebuilds it, or run DROP INDEX "
                "CONCURRENTLY once the locks are gone." % (self.schema, name, drop_exc)
            )
        return msg


# -- verify -----------------------------------------------------------------------------------
def nodes_using(plan, index_name):
    """Plan nodes (without their children) that scan ``index_name``."""
    found = []
    stack = [plan.get("Plan", plan)]
    while stack:
        node = stack.pop()
        if node.get("Node Type") in SCAN_NODES and node.get("Index Name") == index_name:
            found.append({k: v for k, v in node.items() if k != "Plans"})
        stack.extend(node.get("Plans") or [])
    return found


def temp_name(name, suffix="_dbarch_new"):
    base = name.encode("utf-8")[: NAMEDATALEN - len(suffix)].decode("utf-8", "ignore")
    return base + suffix


def backing_constraints(index_row):
    return [c for c in (index_row.get("constraints") or []) if c["type"] in ("p", "u", "x", "f")]


CONSTRAINT_KIND = {"p": "PRIMARY KEY", "u": "UNIQUE", "x": "EXCLUSION", "f": "FOREIGN KEY (referencing it)"}


# -- the two states ---------------------------------------------------------------------------
def _table_or_fail(session, table_text):
    table = resolve_table(session, table_text)
    if table is None:
        raise IndexError_(
            "table %r does not exist (or is not on the search_path; qualify it as schema.table)." % table_text
        )
    if table["kind"] not in ("r", "m", "p"):
        raise IndexError_(
            "%s.%s is not a table or materialized view (relkind %s)."
            % (table["schema"], table["name"], table["kind"])
        )
    return table


def _check_is_index_of(existing, table, name):
    if existing is None:
        return
    if existing["kind"] not in ("i", "I"):
        raise IndexError_(
            "%s.%s exists and is not an index (relkind %s): choose another name."
            % (table["schema"], name, existing["kind"])
        )
    if existing["table_oid"] != table["oid"]:
        raise IndexError_(
            "index %s.%s exists on another table (%s), not on %s.%s: choose another name."
            % (table["schema"], name, existing["table_name"], table["schema"], table["name"])
        )


def _same_tablespace(existing, wanted):
    if not wanted.tablespace:
        return True
    return (existing["tablespace"] or "pg_default") == wanted.tablespace


def verify(session, name, verify_info, verify_params):
    """EXPLAIN (FORMAT JSON, no ANALYZE) the verify query; {used, nodes, plan_node}."""

    doc, _transaction = ex.run(session, verify_info, verify_params, analyze=False)
    nodes = nodes_using(doc, name)
    top = doc.get("Plan", {})
    return dict(
        used=bool(nodes),
        plan_node=nodes[0] if nodes else None,
        nodes=nodes,
        top_node=top.get("Node Type"),
        total_cost=top.get("Total Cost"),
    )


def present(
    session,
    wanted,
    check_mode=False,
    concurrently=True,
    replace=False,
    verify_info=None,
    verify_params=None,
    rollback_unused=False,
    builder_options=None,
):
    """Make the index ``wanted`` exist; returns the result dict; IndexError_ when it cannot."""
    table = _table_or_fail(session, wanted.table_text)
    if table["kind"] == "p" and concurrently:
        raise IndexError_(
            "%s.%s is partitioned: PostgreSQL cannot CREATE INDEX CONCURRENTLY on a partitioned table. "
            "Build the index concurrently on each partition, then CREATE INDEX ON ONLY the parent and "
            "ATTACH them, or set concurrently=false (it blocks writes for the build)."
            % (table["schema"], table["name"])
        )
    wanted.bind(table)
    schema, name = table["schema"], wanted.name
    _shape, definition = probe(session, wanted)
    existing = find_index(session, schema, name)
    _check_is_index_of(existing, table, name)
    result = dict(
        changed=False,
        name=name,
        schema=schema,
        table="%s.%s" % (schema, table["name"]),
        definition=definition,
        before=existing["definition"] if existing else None,
        actions=[],
        planned=[],
        invalid_dropped=False,
        replaced=False,
        build=None,
        progress=None,
        verify=None,
    )
    as_text = session._as_text
    steps = []  # (description, sql or callable)
    build_name = name
    # A replace that failed after its build leaves <name>_dbarch_new behind: reuse it when it is
    # valid and what is wanted, otherwise drop it before anything else.
    spare_name = temp_name(name)
    spare = find_index(session, schema, spare_name)
    _check_is_index_of(spare, table, spare_name)
    spare_ready = bool(
        spare and spare["valid"] and shape(spare) == _shape and _same_tablespace(spare, wanted)
    )
    rename_spare = (
        "rename %s (left by an earlier replace) to %s" % (spare_name, name),
        pg.pgsql.SQL("ALTER INDEX {} RENAME TO {}").format(pg.ident(schema, spare_name), pg.ident(name)),
    )
    if spare and not spare_ready:
        steps.append(
            (
                "drop the leftover %s of an earlier replace" % spare_name,
                drop_sql(schema, spare_name, concurrently),
            )
        )
    if existing is None:
        if spare_ready:
            result["replaced"] = True
            steps.append(rename_spare)
        else:
            steps.append(("create", wanted.create_sql(name, concurrently=concurrently)))
    elif not existing["valid"]:
        result["invalid_dropped"] = True
        steps.append(
            ("drop the INVALID index left by an earlier failed build", drop_sql(schema, name, concurrently))
        )
        if spare_ready:
            steps.append(rename_spare)
        else:
            steps.append(("create", wanted.create_sql(name, concurrently=concurrently)))
    elif existing["definition"] == definition and _same_tablespace(existing, wanted):
        if spare:
            steps = [
                (
                    "drop the leftover %s of an earlier replace" % spare_name,
                    drop_sql(schema, spare_name, concurrently),
                )
            ]
    elif not replace:
        raise IndexError_(
            "index %s.%s exists with another definition. Existing: %s -- wanted: %s%s. Set replace=true "
            "to build the new one under a temporary name and swap it in, or choose another name."
            % (
                schema,
                name,
                existing["definition"],
                definition,
                ""
                if _same_tablespace(existing, wanted)
                else " (tablespace %s, existing %s)"
                % (wanted.tablespace, existing["tablespace"] or "default"),
            ),
            dict(result),
        )
    else:
        cons = backing_constraints(existing)
        if cons:
            raise IndexError_(
                "index %s.%s backs constraint %s (%s); replace would drop it. Change the constraint with "
                "ALTER TABLE instead." % (schema, name, cons[0]["name"], CONSTRAINT_KIND[cons[0]["type"]]),
                dict(result),
            )
        build_name = spare_name
        result["replaced"] = True
        if not spare_ready:
            steps.append(
                (
                    "create the new definition as %s" % build_name,
                    wanted.create_sql(build_name, concurrently=concurrently),
                )
            )
        steps.append(("drop the old index", drop_sql(schema, name, concurrently)))
        steps.append(
            (
                "rename %s to %s" % (build_name, name),
                pg.pgsql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    pg.ident(schema, build_name), pg.ident(name)
                ),
            )
        )
    result["planned"] = [as_text(sql) for _d, sql in steps]
    result["actions"] = [d for d, _sql in steps]
    result["changed"] = bool(steps)
    if check_mode:
        if verify_info is not None:
            if steps:
                result["verify"] = dict(
                    skipped="check mode: the index is not built, so the plan cannot use it"
                )
            else:
                result["verify"] = verify(session, name, verify_info, verify_params)
        return result

    builder = Builder(session, schema, **(builder_options or {}))
    current = None
    try:
        for description, sql in steps:
            current = description
            if description == "create" or description.startswith("create the new"):
                result["build"] = builder.build(wanted, build_name, concurrently)
            elif description.startswith("drop the INVALID") or description == "drop the old index":
                builder.retrying(lambda: builder.drop(name, concurrently))
            elif description.startswith("drop the leftover"):
                builder.retrying(lambda: builder.drop(spare_name, concurrently))
            else:
                builder.retrying(lambda sql=sql: session.execute(sql))
    except (IndexError_, pg.PgError) as exc:
        result.update(_builder_facts(builder))
        text = str(exc) if isinstance(exc, IndexError_) else "%s (while: %s)" % (exc, current)
        if current == "drop the old index" or (current or "").startswith("rename "):
            text += (
                " The new definition is built and valid as %s.%s; run the task again to finish the swap "
                "(it reuses that index), or drop it." % (schema, build_name)
            )
        raise IndexError_(text, result) from None
    result.update(_builder_facts(builder))
    if verify_info is not None:
        result["verify"] = verify(session, name, verify_info, verify_params)
        if not result["verify"]["used"]:
            msg = "The plan of verify_query does not use index %s.%s (top node: %s)." % (
                schema,
                name,
                result["verify"]["top_node"],
            )
            if rollback_unused and steps:
                builder.retrying(lambda: builder.drop(name, concurrently))
                result["rolled_back"] = True
                result["actions"].append("drop the unused index (rollback_unused)")
                msg += " rollback_unused: the index built by this run was dropped."
            elif rollback_unused:
                msg += " The index was not built by this run, so rollback_unused left it in place."
            raise IndexError_(msg, result)
    return result


def _builder_facts(builder):
    return dict(
        attempts=builder.attempts,
        retries=len([a for a in builder.attempts if a["outcome"] == "failed"]),
        progress=builder.progress if builder.connect is not None else None,
    )


def absent(session, name, table_text, check_mode=False, concurrently=True, builder_options=None):
    check_name(name)
    result = dict(changed=False, name=name, before=None, planned=[], actions=[])
    table = resolve_table(session, table_text)
    if table is None:
        return dict(result, msg="table %s does not exist, so neither does the index." % table_text)
    schema = table["schema"]
    result.update(schema=schema, table="%s.%s" % (schema, table["name"]))
    existing = find_index(session, schema, name)
    if existing is None:
        return result
    _check_is_index_of(existing, table, name)
    cons = backing_constraints(existing)
    if cons:
        raise IndexError_(
            "index %s.%s backs constraint %s (%s) and is not dropped: drop or change the constraint with "
            "ALTER TABLE ... DROP CONSTRAINT instead."
            % (schema, name, cons[0]["name"], CONSTRAINT_KIND[cons[0]["type"]]),
            result,
        )
    sql = drop_sql(schema, name, concurrently)
    result.update(
        changed=True,
        before=existing["definition"],
        planned=[session._as_text(sql)],
        actions=["drop"],
        was_valid=existing["valid"],
    )
    if not check_mode:
        builder = Builder(session, schema, **(builder_options or {}))
        try:
            builder.retrying(lambda: builder.drop(name, concurrently))
        except IndexError_ as exc:
            raise IndexError_(str(exc), dict(result, attempts=builder.attempts)) from None
        result["attempts"] = builder.attempts
    return result
