# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GDPR data subject requests (the ``data_subject`` module): export, erase, rectify.

One data subject is one key value in a root table. Every row that refers to it is found by
following foreign keys from the root down (the catalog snapshot's constraints): a child row
belongs to the subject when its foreign key columns match a subject row of the parent. Each
table gets one predicate (an OR over the foreign keys that reach it), written with psycopg2.sql
as nested ``(fk columns) IN (SELECT referenced columns FROM parent WHERE ...)``.

- export (access, portability): the rows of each table as JSON (``to_jsonb``, PostgreSQL's own
  rendering of every type) and CSV (``COPY ... TO STDOUT``), in one REPEATABLE READ read-only
  transaction so the files agree with each other;
- erase: per table ``delete`` (the default) or ``anonymize`` (column rules: null, redact, hash,
  or a fixed value); in ONE transaction, deepest tables first, so every foreign key holds
  afterwards (an anonymized row's foreign key to a deleted parent is set to NULL; a NOT NULL one
  is refused before anything changes); ``legal_hold`` refuses it;
- rectify: given columns of the subject's rows set to given values, one transaction.

``dry_run`` counts the rows (SELECT count) and changes nothing. Plain Python, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import catalog, fsutil, pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

MAX_DEPTH = 12
RULES = ("null", "redact", "hash", "keep")
ACTIONS = ("delete", "anonymize")


class SubjectError(DbarchError):
    """The request cannot be carried out as given; nothing was changed."""


def split_name(name, default_schema="public"):
    text = str(name or "").strip()
    if not text:
        raise SubjectError("table: give the root table, such as public.customers")
    if "." in text:
        schema, table = text.split(".", 1)
        return schema.strip('"'), table.strip('"')
    return default_schema, text.strip('"')


def qualified(table):
    return "%s.%s" % (table.schema, table.name)


# -- the graph ---------------------------------------------------------------------------
def subject_tables(cat, root, key):
    """The tables that hold the subject's rows, root first, in breadth-first order.

    Returns [(table, [(fk, parent table)], depth)]: the foreign keys through which a table is
    reached from tables nearer the root (a self-reference or a key back up is left out).
    """
    if root.column(key) is None:
        raise SubjectError("key: %s has no column %s" % (qualified(root), key))
    order = [(root, [], 0)]
    seen = {(root.schema, root.name): 0}
    level = [root]
    depth = 0
    while level and depth < MAX_DEPTH:
        depth += 1
        found = {}
        for parent in level:
            for child, fk in cat.referenced_by(parent):
                ident = (child.schema, child.name)
                if ident in seen and seen[ident] < depth:
                    continue
                found.setdefault(ident, (child, []))[1].append((fk, parent))
        level = []
        for ident in sorted(found):
            child, edges = found[ident]
            seen[ident] = depth
            order.append((child, edges, depth))
            level.append(child)
    return order


def predicates(order, key, value):
    """{(schema, name): sql predicate selecting the subject's rows of that table}."""
    preds = {}
    root = order[0][0]
    preds[(root.schema, root.name)] = pg.pgsql.SQL("{} = {}").format(pg.ident(key), pg.literal(value))
    for table, edges, _depth in order[1:]:
        parts = []
        for fk, parent in edges:
            parent_pred = preds[(parent.schema, parent.name)]
            parts.append(
                pg.pgsql.SQL("({}) IN (SELECT {} FROM {} WHERE {})").format(
                    pg.pgsql.SQL(", ").join(pg.ident(c) for c in fk.columns),
                    pg.pgsql.SQL(", ").join(pg.ident(c) for c in fk.ref_columns),
                    pg.ident(parent.schema, parent.name),
                    parent_pred,
                )
            )
        preds[(table.schema, table.name)] = pg.pgsql.SQL("({})").format(pg.pgsql.SQL(" OR ").join(parts))
    return preds


def load(session, table, key, value):
    schema, name = split_name(table)
    cat = catalog.snapshot(session, column_stats=False)
    root = cat.get(schema, name)
    if root is None or not root.is_table:
        raise SubjectError("table: %s.%s is not a table of database %s" % (schema, name, cat.database))
    order = subject_tables(cat, root, key)
    return cat, order, predicates(order, key, value)


def count(session, table, pred):
    return session.scalar(
        pg.pgsql.SQL("SELECT count(*) FROM {} WHERE {}").format(pg.ident(table.schema, table.name), pred)
    )


# -- export ------------------------------------------------------------------------------
def _safe(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))[:80] or "subject"


def export(session, table, key, value, dest=None, write=True):
    """Rows per table; files (JSON + one CSV per table) under dest/<table>-<key>-<value>/."""
    _cat, order, preds = load(session, table, key, value)
    conn = session.conn
    was = conn.autocommit
    conn.autocommit = False
    tables, rows_by_table, csv_by_table = {}, {}, {}
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        for t, edges, depth in order:
            pred = preds[(t.schema, t.name)]
            rel = pg.ident(t.schema, t.name)
            rows = session.fetchall(
                pg.pgsql.SQL("SELECT to_jsonb(t) AS row FROM {} AS t WHERE {}").format(rel, pred)
            )
            rows_by_table[qualified(t)] = [r["row"] for r in rows]
            tables[qualified(t)] = dict(
                rows=len(rows), depth=depth, via=[fk.name for fk, _p in edges], action="export"
            )
            if write and dest:
                csv_by_table[qualified(t)] = _copy_csv(
                    session, pg.pgsql.SQL("SELECT * FROM {} WHERE {}").format(rel, pred)
                )
    finally:
        conn.rollback()
        conn.set_session(isolation_level="DEFAULT", readonly="DEFAULT")
        conn.autocommit = was
    files = []
    if write and dest:
        folder = os.path.join(dest, _safe("%s-%s-%s" % (split_name(table)[1], key, value)))
        os.makedirs(folder, mode=0o700, exist_ok=True)
        document = dict(subject=dict(table=table, key=key, value=value), tables=rows_by_table)
        path = os.path.join(folder, "subject.json")
        fsutil.atomic_write(
            path, json.dumps(document, indent=2, sort_keys=True, default=str) + "\n", mode=0o600
        )
        files.append(path)
        for name, data in csv_by_table.items():
            path = os.path.join(folder, "%s.csv" % _safe(name))
            fsutil.atomic_write(path, data, mode=0o600)
            files.append(path)
    return dict(tables=tables, files=files, rows=rows_by_table)


def _copy_csv(session, select):
    buf = io.StringIO()
    cur = session.conn.cursor()
    try:
        statement = pg.pgsql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(select)
        cur.copy_expert(statement.as_string(session.conn), buf)
        session.queries.append(statement.as_string(session.conn))
    finally:
        cur.close()
    return buf.getvalue()


# -- erase -------------------------------------------------------------------------------
def _policy(policies, table):
    """('delete' | 'anonymize', {column: rule}) for a table from the ``policies`` option."""
    policies = policies or {}
    spec = policies.get(qualified(table), policies.get(table.name) if table.schema == "public" else None)
    if spec is None:
        spec = policies.get(table.name)
    if spec is None or spec == "delete":
        return "delete", {}
    if spec == "anonymize":
        spec = dict(action="anonymize")
    if not isinstance(spec, dict):
        raise SubjectError(
            "policies[%s]: use delete, anonymize or {action: anonymize, columns: {...}}" % qualified(table)
        )
    action = spec.get("action", "anonymize")
    if action not in ACTIONS:
        raise SubjectError(
            "policies[%s].action=%r: use one of %s" % (qualified(table), action, ", ".join(ACTIONS))
        )
    columns = dict(spec.get("columns") or {})
    for column, rule in columns.items():
        if table.column(column) is None:
            raise SubjectError("policies[%s].columns: no column %s" % (qualified(table), column))
        if not (rule in RULES or isinstance(rule, dict) and "value" in rule):
            raise SubjectError(
                "policies[%s].columns.%s=%r: use null, redact, hash, keep or {value: ...}"
                % (qualified(table), column, rule)
            )
    return action, columns


def _rule_sql(column, rule):
    col = pg.ident(column.name)
    if rule == "null":
        return pg.pgsql.SQL("NULL")
    if rule == "hash":
        return pg.pgsql.SQL("md5({}::text)::{}").format(col, pg.pgsql.SQL(column.type))
    if rule == "redact":
        return pg.pgsql.SQL("CASE WHEN {} IS NULL THEN NULL ELSE {} END").format(
            col, pg.pgsql.SQL("'redacted'::{}").format(pg.pgsql.SQL(column.type))
        )
    return pg.pgsql.SQL("{}::{}").format(pg.literal(rule["value"]), pg.pgsql.SQL(column.type))


def erase_plan(order, policies):
    """Per table (deepest first): action, column rules, and FK columns to set NULL."""
    actions = {}
    for t, _edges, _depth in order:
        actions[(t.schema, t.name)] = _policy(policies, t)
    steps = []
    for t, edges, depth in sorted(order, key=lambda item: -item[2]):
        action, columns = actions[(t.schema, t.name)]
        detach = []
        if action == "anonymize":
            for fk, parent in edges:
                if actions[(parent.schema, parent.name)][0] == "delete":
                    for name in fk.columns:
                        col = t.column(name)
                        if col.not_null:
                            raise SubjectError(
                                "policies: %s is anonymized but its column %s (NOT NULL) refers to %s, "
                                "which is deleted: delete %s too, or make the column nullable"
                                % (qualified(t), name, qualified(parent), qualified(t))
                            )
                        detach.append(name)
        steps.append(dict(table=t, action=action, columns=columns, detach=sorted(set(detach)), depth=depth))
    return steps


def erase(session, table, key, value, policies=None, legal_hold=False, dry_run=True):
    if legal_hold:
        raise SubjectError(
            "legal_hold is set for this subject: erasure is refused (GDPR art. 17(3)(e)); nothing was changed"
        )
    _cat, order, preds = load(session, table, key, value)
    steps = erase_plan(order, policies)
    return _apply(session, steps, preds, dry_run)


def _apply(session, steps, preds, dry_run, build=None):
    tables = {}
    conn = session.conn
    was = conn.autocommit
    conn.autocommit = False
    try:
        # Counts first, all against the same data (before any change).
        for step in steps:
            t = step["table"]
            tables[qualified(t)] = dict(
                action=step["action"], rows=count(session, t, preds[(t.schema, t.name)]), depth=step["depth"]
            )
        if dry_run:
            conn.rollback()
            return dict(tables=tables, changed=False)
        for step in steps:
            t = step["table"]
            statement = (build or _statement)(step, preds[(t.schema, t.name)])
            if statement is None:
                continue
            cur = session.execute(statement)
            tables[qualified(t)]["rows"] = cur.rowcount
            cur.close()
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = was
    return dict(tables=tables, changed=any(v["rows"] for v in tables.values()))


def _statement(step, pred):
    t = step["table"]
    rel = pg.ident(t.schema, t.name)
    if step["action"] == "delete":
        return pg.pgsql.SQL("DELETE FROM {} WHERE {}").format(rel, pred)
    sets = [pg.pgsql.SQL("{} = NULL").format(pg.ident(c)) for c in step["detach"]]
    for name, rule in sorted(step["columns"].items()):
        if rule == "keep" or name in step["detach"]:
            continue
        sets.append(pg.pgsql.SQL("{} = {}").format(pg.ident(name), _rule_sql(t.column(name), rule)))
    if not sets:
        return None
    return pg.pgsql.SQL("UPDATE {} SET {} WHERE {}").format(rel, pg.pgsql.SQL(", ").join(sets), pred)


# -- rectify -----------------------------------------------------------------------------
def rectify(session, table, key, value, changes, dry_run=True):
    """``changes``: {table: {column: new value}} for the subject's rows of those tables."""
    if not changes:
        raise SubjectError("changes: give {table: {column: new value}} for rectify")
    _cat, order, preds = load(session, table, key, value)
    by_name, depth_of = {}, {}
    for t, _e, d in order:
        depth_of[qualified(t)] = d
        by_name[qualified(t)] = t
        if t.schema == "public":
            by_name.setdefault(t.name, t)
    steps = []
    for name, columns in changes.items():
        t = by_name.get(name)
        if t is None:
            raise SubjectError(
                "changes: %s holds no row of this subject (tables: %s)"
                % (name, ", ".join(sorted(qualified(x[0]) for x in order)))
            )
        if not isinstance(columns, dict) or not columns:
            raise SubjectError("changes[%s]: give {column: new value}" % name)
        for column in columns:
            if t.column(column) is None:
                raise SubjectError("changes[%s]: no column %s" % (name, column))
        steps.append(dict(table=t, action="rectify", columns=columns, depth=depth_of[qualified(t)]))

    steps.sort(key=lambda step: -step["depth"])  # the root (and its key) last

    def build(step, pred):
        t = step["table"]
        sets = [
            pg.pgsql.SQL("{} = {}").format(pg.ident(c), pg.literal(v))
            for c, v in sorted(step["columns"].items())
        ]
        return pg.pgsql.SQL("UPDATE {} SET {} WHERE {}").format(
            pg.ident(t.schema, t.name), pg.pgsql.SQL(", ").join(sets), pred
        )

    return _apply(session, steps, preds, dry_run, build=build)
