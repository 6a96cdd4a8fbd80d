# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the application's query patterns against the live schema with EXPLAIN.

Each pattern (a SELECT) is planned with ``EXPLAIN (VERBOSE, FORMAT JSON)`` -- never ANALYZE, never
executed -- in a READ ONLY transaction. A sequential scan with a filter is a candidate for
an index on the filtered columns. When the hypopg extension is installed in the database
the index is created hypothetically (``hypopg_create_index``), the pattern re-planned and
the estimated cost before and after reported; ``hypopg_reset()`` clears it afterwards.

Only SELECT statements are accepted: each pattern is parsed with pglast first.
Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg

# Sequential scans on tables estimated smaller than this are left alone: they are cheap.
MIN_ROWS = 1000


class QueryPatternError(DbarchError, ValueError):
    pass


def normalize(patterns):
    """[(name, sql)] from a list of SQL strings or {name, sql} dicts; each must be one SELECT."""
    try:
        import pglast  # noqa: PLC0415 - optional dependency, only for query_patterns
    except ImportError as exc:
        raise QueryPatternError(
            "query_patterns needs the Python package pglast on the host that runs the module "
            "(pip install pglast): %s" % exc
        ) from None
    out = []
    for i, p in enumerate(patterns or []):
        if isinstance(p, dict):
            name, text = p.get("name") or "query_patterns[%d]" % i, p.get("sql")
        else:
            name, text = "query_patterns[%d]" % i, p
        if not isinstance(text, str) or not text.strip():
            raise QueryPatternError("%s: give the SQL as a string, or a dict with name and sql." % name)
        try:
            stmts = pglast.parse_sql(text)
        except pglast.parser.ParseError as exc:
            raise QueryPatternError("%s is not valid SQL: %s" % (name, exc)) from None
        if len(stmts) != 1:
            raise QueryPatternError(
                "%s holds %d statements: give one SELECT per pattern." % (name, len(stmts))
            )
        node = stmts[0].stmt
        kind = type(node).__name__
        if kind != "SelectStmt" or getattr(node, "intoClause", None) is not None:
            raise QueryPatternError(
                "%s is a %s statement: query_patterns accepts only SELECT statements "
                "(they are planned with EXPLAIN, never run)."
                % (name, "SELECT INTO" if kind == "SelectStmt" else kind)
            )
        for cte in getattr(getattr(node, "withClause", None), "ctes", None) or ():
            if type(cte.ctequery).__name__ != "SelectStmt":
                raise QueryPatternError(
                    "%s has a data-modifying WITH (%s): query_patterns accepts only SELECT statements."
                    % (name, cte.ctename)
                )
        out.append((str(name), text.strip().rstrip(";")))
    return out


def seq_scans_with_filter(plan):
    """[(schema, table, alias, filter)] for every Seq Scan node with a Filter in a JSON plan."""
    found = []

    def walk(node):
        if node.get("Node Type") == "Seq Scan" and node.get("Filter"):
            found.append((node.get("Schema"), node.get("Relation Name"), node.get("Alias"), node["Filter"]))
        for child in node.get("Plans") or ():
            walk(child)

    walk(plan)
    return found


def filter_columns(filter_text, column_names, alias=None):
    """Columns of the table named in a plan's Filter, equality comparisons first."""
    names = set(column_names)
    ident = r'(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))'
    eq, other = [], []
    for m in re.finditer(r"(?:%s\.)?%s(\s*=)?" % (ident, ident), filter_text):
        qual = m.group(1) or m.group(2)
        col = (m.group(3) or "").replace('""', '"') or m.group(4)
        if qual and alias and qual != alias:
            continue
        if col in names:
            (eq if m.group(5) else other).append(col)
    out = []
    for c in eq + other:
        if c not in out:
            out.append(c)
    return out


def _explain(session, text):
    rows = session.fetchall(pg.pgsql.SQL("EXPLAIN (VERBOSE, FORMAT JSON) ") + pg.pgsql.SQL(text))
    doc = list(rows[0].values())[0]
    if isinstance(doc, str):
        doc = json.loads(doc)
    return doc[0]["Plan"]


def check(session, catalog, patterns):
    """Plan each (name, sql); return a list of results, one per candidate index:

    {name, sql, table (schema.table), columns, filter, row_estimate, cost_before,
     cost_after (None without hypopg), hypopg (bool), uses_index (bool or None)}
    and errors as {name, sql, error}.
    """
    conn = session.conn
    was_autocommit = conn.autocommit
    conn.autocommit = False
    out = []
    try:
        conn.set_session(readonly=True)
        has_hypopg = bool(session.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'"))
        for name, text in patterns:
            session.execute("SAVEPOINT dbarch_qp", record=False)
            try:
                plan = _explain(session, text)
            except pg.PgError as exc:
                session.execute("ROLLBACK TO SAVEPOINT dbarch_qp", record=False)
                out.append(dict(name=name, sql=text, error=str(exc)))
                continue
            out.append(dict(name=name, sql=text, planned=True))
            seen = set()
            for schema, rel, alias, filt in seq_scans_with_filter(plan):
                table = catalog.get(schema, rel)
                if table is None or (table.qualified in seen):
                    continue
                seen.add(table.qualified)
                if (table.row_estimate or 0) < MIN_ROWS:
                    continue
                cols = filter_columns(filt, [c.name for c in table.columns], alias)
                if not cols:
                    continue
                item = dict(
                    name=name,
                    sql=text,
                    table=table.qualified,
                    columns=cols,
                    filter=filt,
                    row_estimate=table.row_estimate,
                    cost_before=plan.get("Total Cost"),
                    cost_after=None,
                    hypopg=has_hypopg,
                    uses_index=None,
                )
                if has_hypopg:
                    ddl = "CREATE INDEX ON %s (%s)" % (
                        pg.qualified_text(table.schema, table.name),
                        ", ".join(pg.quote_ident_text(c) for c in cols),
                    )
                    try:
                        hypo = session.fetchone("SELECT indexname FROM hypopg_create_index(%s)", (ddl,))
                        after = _explain(session, text)
                        item["cost_after"] = after.get("Total Cost")
                        item["uses_index"] = hypo is not None and hypo["indexname"] in json.dumps(after)
                    except pg.PgError as exc:
                        session.execute("ROLLBACK TO SAVEPOINT dbarch_qp", record=False)
                        item["hypopg_error"] = str(exc)
                    session.execute("SELECT hypopg_reset()")
                out.append(item)
            session.execute("RELEASE SAVEPOINT dbarch_qp", record=False)
    finally:
        conn.rollback()
        conn.set_session(readonly="DEFAULT")
        conn.autocommit = was_autocommit
    return out
