# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration lint rules on renames, drops and TRUNCATE: ML-011 to ML-015, ML-029.

Registered with lint_base (``rule``, ``@on``, ``@on_alter``) when imported; migration_lint.py
walks the statements. Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations.lint_base import (
    ACCESS_EXCLUSIVE,
    NAMEDATALEN,
    Hit,
    enum_name,
    on,
    on_alter,
    rule,
    strings,
)
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import (
    qualified_text,
    quote_ident_text,
)

NEW_COLUMN_NOTE = "column added earlier in this run: no running code uses it yet"

rule(
    "ML-011",
    "Column renamed",
    "medium",
    squawk=("renaming-column",),
    why="Application servers still running the previous release query the old name and fail at once; "
    "the rename also takes an ACCESS EXCLUSIVE lock.",
)
rule(
    "ML-012",
    "Table renamed",
    "medium",
    squawk=("renaming-table",),
    why="Application servers still running the previous release use the old name and fail at once; the "
    "rename also takes an ACCESS EXCLUSIVE lock.",
)
rule(
    "ML-013",
    "Column dropped",
    "medium",
    squawk=("ban-drop-column",),
    why="Application servers of the previous release still select or insert the column; the data is gone "
    "for good.",
)
rule(
    "ML-014",
    "Table dropped",
    "high",
    squawk=("ban-drop-table",),
    why="The data is gone, a later migration cannot undo the drop, and deploys that still use the table "
    "break.",
)
rule(
    "ML-015",
    "Database dropped",
    "critical",
    squawk=("ban-drop-database",),
    why="Everything in the database is lost; a migration is the wrong place for it.",
)
rule(
    "ML-029",
    "TRUNCATE",
    "medium",
    squawk=("ban-truncate-cascade",),
    why="TRUNCATE takes an ACCESS EXCLUSIVE lock, is not MVCC-safe for concurrent readers, and CASCADE "
    "empties tables you did not name.",
)


@on("RenameStmt")
def on_rename_stmt(lt, stmt, node):
    rtype = enum_name(node.renameType)
    if node.relation is None:
        return None
    table = lt.rel(node.relation)
    created = lt.is_created(table)
    tq = lt.qtext(table)
    if rtype == "OBJECT_COLUMN":
        obj = "%s.%s" % (lt.qname(table), node.subname)
        new_column = lt.is_new_column(table, node.subname)
        if new_column:
            lt.state.columns.add(lt.key(table) + (node.newname,))
        extra = dict(column_note=NEW_COLUMN_NOTE) if new_column else {}
        old, new = quote_ident_text(node.subname), quote_ident_text(node.newname)
        lt.hit(
            stmt,
            Hit(
                "ML-011",
                obj,
                "Column %s renamed to %s: running code that uses the old name fails at once."
                % (obj, node.newname),
                "Application servers still running the previous release query the old name until they "
                "are "
                "replaced; the rename also takes an ACCESS EXCLUSIVE lock.",
                "-- expand and contract over several releases:\n"
                "ALTER TABLE %s ADD COLUMN %s <type>;\n"
                "-- write both columns from the application (or a trigger), backfill in batches:\n"
                "UPDATE %s SET %s = %s WHERE %s IS NULL;  -- in batches\n"
                "-- switch reads to %s, then in a later release:\n"
                "ALTER TABLE %s DROP COLUMN %s;" % (tq, new, tq, new, old, new, new, tq, old),
                lock=ACCESS_EXCLUSIVE,
                table=table,
                severity="info" if created or new_column else None,
                **extra,
            ),
        )
        return (table, ACCESS_EXCLUSIVE, False)
    if rtype == "OBJECT_TABLE":
        obj = lt.qname(table)
        if created:  # the new name is as new (and empty) as the old one
            lt.created.setdefault((lt.key(table)[0], node.newname), lt.created[lt.key(table)])
        new = qualified_text(table[0], node.newname)
        lt.hit(
            stmt,
            Hit(
                "ML-012",
                obj,
                "Table %s renamed to %s: running code that uses the old name fails at once."
                % (obj, node.newname),
                "Application servers still running the previous release use the old name; the rename "
                "also "
                "takes an ACCESS EXCLUSIVE lock.",
                "-- keep the old name working for a release with a simple (updatable) view:\n"
                "BEGIN;\nALTER TABLE %s RENAME TO %s;\nCREATE VIEW %s AS SELECT * FROM %s;\nCOMMIT;\n"
                "-- and drop the view once no code uses the old name."
                % (tq, quote_ident_text(node.newname), tq, new),
                lock=ACCESS_EXCLUSIVE,
                table=table,
                severity="info" if created else None,
            ),
        )
        return (table, ACCESS_EXCLUSIVE, False)
    return None


@on("DropStmt")
def on_drop_table(lt, stmt, node):
    """ML-014: DROP TABLE / DROP MATERIALIZED VIEW."""
    rtype = enum_name(node.removeType)
    if rtype in ("OBJECT_TABLE", "OBJECT_MATVIEW"):
        first = None
        for names in node.objects or ():
            parts = strings(names)
            table = (parts[-2] if len(parts) > 1 else None, parts[-1])
            first = first or table
            created = lt.is_created(table)
            lt.hit(
                stmt,
                Hit(
                    "ML-014",
                    lt.qname(table),
                    "DROP TABLE %s: its data is gone, and code that still reads it fails." % lt.qname(table),
                    "A drop cannot be undone by a later migration; deploys that still use the table break.",
                    "-- stop using it first; rename it aside for a release, then drop it:\n"
                    "ALTER TABLE %s RENAME TO %s;"
                    % (lt.qtext(table), quote_ident_text(("%s_to_drop" % table[1])[: NAMEDATALEN - 1])),
                    lock=ACCESS_EXCLUSIVE,
                    table=table,
                    severity="info" if created else None,
                ),
            )
        return (first, ACCESS_EXCLUSIVE, False) if first else None
    return None


@on("DropdbStmt")
def on_dropdb_stmt(lt, stmt, node):
    lt.hit(
        stmt,
        Hit(
            "ML-015",
            node.dbname,
            "DROP DATABASE %s in a migration." % node.dbname,
            "Everything in the database is lost; a migration is the wrong place for it.",
            "-- do it by hand, after a backup, outside the migrations",
            lock=ACCESS_EXCLUSIVE,
        ),
    )


@on("TruncateStmt")
def on_truncate_stmt(lt, stmt, node):
    first = None
    cascade = enum_name(node.behavior) == "DROP_CASCADE"
    for rv in node.relations or ():
        table = lt.rel(rv)
        first = first or table
        created = lt.is_created(table)
        lt.hit(
            stmt,
            Hit(
                "ML-029",
                lt.qname(table),
                "TRUNCATE %s%s takes an ACCESS EXCLUSIVE lock and removes every row%s."
                % (
                    lt.qname(table),
                    " CASCADE" if cascade else "",
                    " of it and of every table that references it" if cascade else "",
                ),
                "The data is gone (it is not MVCC-safe for concurrent readers), and CASCADE empties "
                "tables "
                "you did not name.",
                "-- delete in batches instead, naming each table:\nDELETE FROM %s WHERE ctid IN "
                "(SELECT ctid FROM %s LIMIT 10000);" % (lt.qtext(table), lt.qtext(table)),
                lock=ACCESS_EXCLUSIVE,
                table=table,
                severity="info" if created else ("high" if cascade else None),
            ),
        )
    return (first, ACCESS_EXCLUSIVE, False) if first else None


@on_alter("AT_DropColumn")
def alter_drop_column(lt, stmt, table, cmd):
    """ML-013: DROP COLUMN (info for a column added earlier in the run: no running code uses it)."""
    new_column = lt.is_new_column(table, cmd.name)
    empty = "info" if lt.is_created(table) or new_column else None
    obj = lt.qname(table)
    tq = lt.qtext(table)
    col = "%s.%s" % (obj, cmd.name)
    lt.hit(
        stmt,
        Hit(
            "ML-013",
            col,
            "DROP COLUMN %s: running code that selects or inserts it fails at once." % col,
            "Application servers of the previous release still use the column; the data is gone for good.",
            "-- stop reading and writing the column in a release first, then:\n"
            "SET lock_timeout = '5s';\nALTER TABLE %s DROP COLUMN IF EXISTS %s;"
            % (tq, quote_ident_text(cmd.name)),
            lock=ACCESS_EXCLUSIVE,
            table=table,
            severity=empty,
            **(dict(column_note=NEW_COLUMN_NOTE) if new_column else {}),
        ),
    )
    return ACCESS_EXCLUSIVE, False
