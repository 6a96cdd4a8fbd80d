# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data retention (the ``data_retention`` module): rows older than a per-table policy are
deleted or anonymized, in batches.

Each batch is one short transaction (autocommit): it picks at most ``batch_size`` rows by primary
key (or ctid when the table has none) with ``FOR UPDATE SKIP LOCKED``, so it never waits on rows a
client holds, and changes them; the locks last one batch. Anonymized rows are left out of the next
batch by their rule (a column set to NULL is picked only while it is not NULL), so the run ends
and a second run changes nothing. Check mode counts the rows. Plain Python, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import catalog, pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.compliance.subject import split_name

RULES = ("null", "redact")


class RetentionError(DbarchError):
    """A policy cannot be applied as given; nothing of that table was changed."""


def _check(policy, cat, session):
    table = policy.get("table")
    schema, name = split_name(table)
    t = cat.get(schema, name)
    if t is None or not t.is_table:
        raise RetentionError("policies: %s is not a table of database %s" % (table, cat.database))
    column = policy.get("column")
    col = t.column(column) if column else None
    if col is None:
        raise RetentionError("policies[%s].column: give the table's timestamp or date column" % table)
    if not any(k in col.type for k in ("timestamp", "date")):
        raise RetentionError(
            "policies[%s].column: %s is %s, not a date or timestamp" % (table, column, col.type)
        )
    older = policy.get("older_than")
    if not older:
        raise RetentionError(
            "policies[%s].older_than: give an interval such as '90 days' or '7 years'" % table
        )
    try:
        session.scalar("SELECT %s::interval", (str(older),))
    except pg.PgError:
        raise RetentionError(
            "policies[%s].older_than=%r is not an interval ('90 days', '7 years')" % (table, older)
        ) from None
    action = policy.get("action", "delete")
    if action not in ("delete", "anonymize"):
        raise RetentionError("policies[%s].action=%r: use delete or anonymize" % (table, action))
    rules = dict(policy.get("columns") or {})
    if action == "anonymize":
        if not rules:
            raise RetentionError(
                "policies[%s]: anonymize needs columns: {column: null | redact | {value: ...}}" % table
            )
        for c, rule in rules.items():
            column_obj = t.column(c)
            if column_obj is None:
                raise RetentionError("policies[%s].columns: no column %s" % (table, c))
            if column_obj.not_null and rule == "null":
                raise RetentionError(
                    "policies[%s].columns.%s: NOT NULL column cannot be set to null" % (table, c)
                )
            if not (rule in RULES or (isinstance(rule, dict) and "value" in rule)):
                raise RetentionError(
                    "policies[%s].columns.%s=%r: use null, redact or {value: ...}" % (table, c, rule)
                )
    return t, col, str(older), action, rules


def _target_sql(t, col, rule):
    if rule == "null":
        return pg.pgsql.SQL("NULL")
    if rule == "redact":
        return pg.pgsql.SQL("'redacted'::{}").format(pg.pgsql.SQL(col.type))
    return pg.pgsql.SQL("{}::{}").format(pg.literal(rule["value"]), pg.pgsql.SQL(col.type))


def _condition(t, col, older, action, rules):
    cond = pg.pgsql.SQL("{} < now() - {}::interval").format(pg.ident(col.name), pg.literal(older))
    if action == "anonymize":
        pending = [
            pg.pgsql.SQL("{} IS DISTINCT FROM {}").format(pg.ident(c), _target_sql(t, t.column(c), r))
            for c, r in sorted(rules.items())
        ]
        cond = pg.pgsql.SQL("{} AND ({})").format(cond, pg.pgsql.SQL(" OR ").join(pending))
    return cond


def _batch_sql(t, col, older, action, rules, batch_size):
    rel = pg.ident(t.schema, t.name)
    pk = t.primary_key
    keys = [pg.ident(c) for c in pk.columns] if pk else [pg.pgsql.SQL("ctid")]
    keylist = pg.pgsql.SQL(", ").join(keys)
    pick = pg.pgsql.SQL("SELECT {} FROM {} WHERE {} LIMIT {} FOR UPDATE SKIP LOCKED").format(
        keylist, rel, _condition(t, col, older, action, rules), pg.literal(int(batch_size))
    )
    where = pg.pgsql.SQL("({}) IN ({})").format(keylist, pick)
    if action == "delete":
        return pg.pgsql.SQL("DELETE FROM {} WHERE {}").format(rel, where)
    sets = pg.pgsql.SQL(", ").join(
        pg.pgsql.SQL("{} = {}").format(pg.ident(c), _target_sql(t, t.column(c), r))
        for c, r in sorted(rules.items())
    )
    return pg.pgsql.SQL("UPDATE {} SET {} WHERE {}").format(rel, sets, where)


def apply(session, policies, batch_size=1000, pause=0.0, max_batches=None, check_mode=False):
    """Returns {'tables': {table: {action, rows, batches, older_than, column}}, 'changed'}."""
    if not policies:
        raise RetentionError("policies: give at least one {table, column, older_than, action}")
    if int(batch_size) < 1:
        raise RetentionError("batch_size must be 1 or more")
    cat = catalog.snapshot(session, column_stats=False)
    checked = [_check(p, cat, session) for p in policies]  # every policy valid before any change
    tables = {}
    for t, col, older, action, rules in checked:
        entry = dict(action=action, column=col.name, older_than=older, rows=0, batches=0, complete=True)
        tables[t.qualified] = entry
        if check_mode:
            entry["rows"] = session.scalar(
                pg.pgsql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                    pg.ident(t.schema, t.name), _condition(t, col, older, action, rules)
                )
            )
            continue
        statement = _batch_sql(t, col, older, action, rules, batch_size)
        session.conn.autocommit = True
        while True:
            if max_batches and entry["batches"] >= max_batches:
                entry["complete"] = False
                break
            cur = session.execute(statement, record=entry["batches"] == 0)
            done = cur.rowcount
            cur.close()
            if done <= 0:
                break
            entry["batches"] += 1
            entry["rows"] += done
            if done < batch_size:
                break
            if pause:
                time.sleep(pause)
    return dict(tables=tables, changed=any(e["rows"] for e in tables.values()))
