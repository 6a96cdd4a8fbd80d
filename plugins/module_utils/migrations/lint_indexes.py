# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration lint rules on indexes: ML-006, ML-007, ML-008.

Registered with lint_base (``rule``, ``@on``, ``@on_alter``) when imported; migration_lint.py
walks the statements. Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations.lint_base import (
    ACCESS_EXCLUSIVE,
    SHARE,
    SHARE_UPDATE_EXCLUSIVE,
    Hit,
    enum_name,
    on,
    rule,
    strings,
)
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import quote_ident_text

rule(
    "ML-006",
    "CREATE INDEX without CONCURRENTLY",
    "medium",
    scales=True,
    squawk=("require-concurrent-index-creation",),
    why="A plain CREATE INDEX holds a SHARE lock for the whole build: INSERT, UPDATE and DELETE wait.",
)
rule(
    "ML-007",
    "DROP INDEX without CONCURRENTLY",
    "medium",
    squawk=("require-concurrent-index-deletion",),
    why="DROP INDEX takes an ACCESS EXCLUSIVE lock on the table: reads and writes wait, and everything "
    "queued behind it waits too.",
)
rule(
    "ML-008",
    "REINDEX without CONCURRENTLY",
    "medium",
    scales=True,
    squawk=("require-concurrent-reindex",),
    why="REINDEX takes a SHARE lock on the table and ACCESS EXCLUSIVE on the index for the whole rebuild.",
)


@on("IndexStmt")
def on_index_stmt(lt, stmt, node):
    table = lt.rel(node.relation)
    name = node.idxname or "(unnamed index)"
    if node.idxname and lt.is_created(table):
        lt.state.indexes[(table[0] or lt.schema, node.idxname)] = lt.key(table)
    if node.concurrent:
        return (table, SHARE_UPDATE_EXCLUSIVE, False)
    obj = lt.qname(table)
    cols = stmt.text
    fix = re.sub(
        r"(?i)^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+", lambda m: m.group(0) + "CONCURRENTLY ", cols, count=1
    )
    lt.hit(
        stmt,
        Hit(
            "ML-006",
            obj,
            "CREATE INDEX %s on %s without CONCURRENTLY blocks every write to the table while the "
            "index builds." % (name, obj),
            "A plain CREATE INDEX holds a SHARE lock for the whole build: INSERT, UPDATE and DELETE wait.",
            "-- in a migration file of its own (it cannot run in a transaction):\n" + fix + ";",
            lock=SHARE,
            table=table,
            index=node.idxname,
        ),
    )
    return (table, SHARE, True)


@on("DropStmt")
def on_drop_index(lt, stmt, node):
    rtype = enum_name(node.removeType)
    if rtype == "OBJECT_INDEX":
        lock = SHARE_UPDATE_EXCLUSIVE if node.concurrent else ACCESS_EXCLUSIVE
        if node.concurrent:
            return None
        for names in node.objects or ():
            parts = strings(names)
            name = ".".join(parts)
            qi = ".".join(quote_ident_text(p) for p in parts)
            on_new = lt.state.indexes.get((parts[-2] if len(parts) > 1 else lt.schema, parts[-1]))
            lt.hit(
                stmt,
                Hit(
                    "ML-007",
                    name if len(parts) > 1 else "%s.%s" % (lt.schema, name),
                    "DROP INDEX %s without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on its table." % name,
                    "Reads and writes of the table wait for the drop, and everything queued behind it "
                    "waits too.",
                    "-- in a migration file of its own:\nDROP INDEX CONCURRENTLY IF EXISTS %s;" % qi,
                    lock=lock,
                    table=on_new,
                    severity="info" if on_new else None,
                ),
            )
        return None
    return None


@on("ReindexStmt")
def on_reindex_stmt(lt, stmt, node):
    if any(p.defname == "concurrently" for p in node.params or ()):
        return None
    target = node.relation.relname if node.relation is not None else (node.name or "")
    kind = enum_name(node.kind).replace("REINDEX_OBJECT_", "")
    table = lt.rel(node.relation) if node.relation is not None and kind == "TABLE" else None
    obj = lt.qname(table) if table else target
    if kind == "INDEX" and node.relation is not None:  # an index built on a table new in this run
        index = lt.rel(node.relation)
        table = lt.state.indexes.get((index[0] or lt.schema, index[1]))
    text = re.sub(
        r"(?i)^\s*REINDEX\s+(\([^)]*\)\s*)?(\w+)\s+",
        lambda m: m.group(0) + "CONCURRENTLY ",
        stmt.text,
        count=1,
    )
    lt.hit(
        stmt,
        Hit(
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
