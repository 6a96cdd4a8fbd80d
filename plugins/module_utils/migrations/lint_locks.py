# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration lint rules on locks and rewrites: ML-021, ML-022 (timeouts), ML-027, ML-028.

Registered with lint_base (``rule``, ``@on``, ``@on_alter``) when imported; migration_lint.py
walks the statements. Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations.lint_base import (
    ACCESS_EXCLUSIVE,
    BLOCKING_LOCKS,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    Hit,
    enum_name,
    on,
    on_alter,
    rule,
    strings,
    tname,
)

rule(
    "ML-021",
    "No lock_timeout before a statement that takes a blocking lock",
    "medium",
    squawk=("require-lock-timeout",),
    why="While a statement waits for its lock (behind any long transaction), every later query on the "
    "table queues behind it: a migration that waits becomes an outage.",
)
rule(
    "ML-022",
    "No statement_timeout before a long locking statement",
    "low",
    squawk=("require-statement-timeout",),
    why="Without a bound the lock is held until the statement ends, however long the scan or rewrite takes.",
)
rule(
    "ML-027",
    "SET LOGGED/UNLOGGED, SET TABLESPACE or SET ACCESS METHOD rewrites the table",
    "high",
    scales=True,
    why="The table is copied under an ACCESS EXCLUSIVE lock: nothing reads or writes it until the copy "
    "is done (SET LOGGED also writes all of it to WAL).",
)
rule(
    "ML-028",
    "VACUUM FULL or CLUSTER rewrites the table under ACCESS EXCLUSIVE",
    "high",
    scales=True,
    why="Nothing can read or write the table until the copy is done, and it needs free disk space for a "
    "full copy of the table and its indexes.",
)


def timeouts(lt, stmt, lock_info):
    """lock_info: (table, lock, slow) for the table the statement locks."""
    table, lock, slow = lock_info
    if table is None or lock not in BLOCKING_LOCKS or lt.is_created(table):
        return
    obj = lt.qname(table)
    if not lt.lock_timeout:
        lt.hit(
            stmt,
            Hit(
                "ML-021",
                obj,
                "%s takes the %s lock on %s and no lock_timeout is set before it in this file."
                % (verb(stmt), lock, obj),
                "While it waits for the lock (behind any long transaction), every later query on the "
                "table "
                "queues behind it: a migration that waits becomes an outage.",
                "SET lock_timeout = '5s';  -- then retry the migration when it times out\n" + stmt.text + ";",
                lock=lock,
                table=table,
            ),
        )
    if slow and not lt.statement_timeout:
        lt.hit(
            stmt,
            Hit(
                "ML-022",
                obj,
                "%s holds a %s lock on %s for as long as it scans or rewrites the table, and no "
                "statement_timeout is set before it." % (verb(stmt), lock, obj),
                "Without a bound the lock is held until the statement ends, however long that takes.",
                "SET statement_timeout = '15min';  -- an upper bound you accept for the lock\n"
                + stmt.text
                + ";",
                lock=lock,
                table=table,
            ),
        )


def verb(stmt):
    words = stmt.text.split()
    return " ".join(words[:2]).upper() if words else "This statement"


@on("VariableSetStmt")
def on_variable_set_stmt(lt, stmt, node):
    name = (node.name or "").lower()
    if name == "search_path" and enum_name(node.kind) == "VAR_SET_VALUE":
        for arg in node.args or ():
            value = getattr(getattr(arg, "val", None), "sval", None)
            if value and value not in ("$user", "pg_catalog"):
                lt.schema = value
                break
        return None
    if name not in ("lock_timeout", "statement_timeout"):
        return None
    value = True
    if enum_name(node.kind) != "VAR_SET_VALUE":
        value = False
    else:
        args = node.args or ()
        if args and tname(args[0]) == "A_Const":
            val = args[0].val
            raw = getattr(val, "sval", None)
            if raw is None:
                raw = getattr(val, "ival", None)
            if raw is not None and str(raw).strip() in ("0", "0ms", "0s"):
                value = False
    setattr(lt, name, value)
    return None


@on("SelectStmt")
def on_select_stmt(lt, stmt, node):
    for target in node.targetList or ():
        val = target.val
        if tname(val) == "FuncCall" and strings(val.funcname)[-1] == "set_config":
            args = val.args or ()
            if len(args) >= 2 and all(tname(a) == "A_Const" for a in args[:2]):
                name = getattr(args[0].val, "sval", "") or ""
                value = getattr(args[1].val, "sval", "") or ""
                if name.lower() in ("lock_timeout", "statement_timeout"):
                    setattr(lt, name.lower(), value.strip() not in ("0", "0ms", "0s", ""))


def rewrite_hit(lt, stmt, table, what):
    obj = lt.qname(table) if table else "(every table)"
    return Hit(
        "ML-028",
        obj,
        "%s rewrites %s under an ACCESS EXCLUSIVE lock." % (what, obj),
        "Nothing can read or write the table until the copy is done, and it needs free disk space for a "
        "full copy of the table and its indexes.",
        "-- reclaim space online instead (extension pg_repack), or rely on plain VACUUM:\n"
        "VACUUM (ANALYZE) %s;" % (lt.qtext(table) if table else ""),
        lock=ACCESS_EXCLUSIVE,
        rewrites=True,
        table=table,
    )


@on("VacuumStmt")
def on_vacuum_stmt(lt, stmt, node):
    full = any(o.defname == "full" for o in node.options or ())
    if not node.is_vacuumcmd or not full:
        return None
    first = None
    for vr in node.rels or ():
        table = lt.rel(vr.relation)
        first = first or table
        lt.hit(stmt, rewrite_hit(lt, stmt, table, "VACUUM FULL"))
    if not node.rels:
        lt.hit(stmt, rewrite_hit(lt, stmt, None, "VACUUM FULL"))
    return (first, ACCESS_EXCLUSIVE, True) if first else None


@on("ClusterStmt")
def on_cluster_stmt(lt, stmt, node):
    table = lt.rel(node.relation) if node.relation is not None else None
    lt.hit(stmt, rewrite_hit(lt, stmt, table, "CLUSTER"))
    return (table, ACCESS_EXCLUSIVE, True) if table else None


@on_alter("AT_SetLogged", "AT_SetUnLogged", "AT_SetTableSpace", "AT_SetAccessMethod")
def alter_rewriting_setting(lt, stmt, table, cmd):
    """ML-027: SET LOGGED/UNLOGGED, SET TABLESPACE, SET ACCESS METHOD copy the table."""
    sub = enum_name(cmd.subtype)
    empty = "info" if lt.is_created(table) else None
    obj = lt.qname(table)
    what = {
        "AT_SetLogged": "SET LOGGED",
        "AT_SetUnLogged": "SET UNLOGGED",
        "AT_SetTableSpace": "SET TABLESPACE",
        "AT_SetAccessMethod": "SET ACCESS METHOD",
    }[sub]
    lt.hit(
        stmt,
        Hit(
            "ML-027",
            obj,
            "ALTER TABLE %s %s copies the whole table under an ACCESS EXCLUSIVE lock." % (obj, what),
            "Nothing reads or writes the table until the copy is done (SET LOGGED also writes all "
            "of it to WAL).",
            "-- build a copy with the new setting, keep it in sync (trigger or logical replication), "
            "then swap names in one short transaction with lock_timeout set",
            lock=ACCESS_EXCLUSIVE,
            rewrites=True,
            table=table,
            severity=empty,
        ),
    )
    return ACCESS_EXCLUSIVE, True


def _takes(lock, doc):
    """The handler of subcommands that take ``lock`` and never rewrite."""

    def handler(lt, stmt, table, cmd):
        return lock, False

    handler.__doc__ = doc
    return handler


# Subcommands that only take a lock: (lock, what it means, subcommands).
for _lock, _doc, _subs in (
    (
        SHARE_UPDATE_EXCLUSIVE,
        "Subcommands that take SHARE UPDATE EXCLUSIVE: reads and writes go on.",
        ("AT_SetStatistics", "AT_ClusterOn", "AT_DropCluster", "AT_SetOptions", "AT_ResetOptions"),
    ),
    (
        SHARE_ROW_EXCLUSIVE,
        "Enabling or disabling triggers takes SHARE ROW EXCLUSIVE.",
        (
            "AT_EnableTrig",
            "AT_DisableTrig",
            "AT_EnableAlwaysTrig",
            "AT_EnableReplicaTrig",
            "AT_EnableTrigAll",
            "AT_DisableTrigAll",
            "AT_EnableTrigUser",
            "AT_DisableTrigUser",
        ),
    ),
):
    on_alter(*_subs)(_takes(_lock, _doc))
