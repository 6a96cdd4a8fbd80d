# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration lint rules on transactions: ML-023, ML-024, ML-030.

Registered with lint_base (``rule``, ``@on``, ``@on_alter``) when imported; migration_lint.py
walks the statements. Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations.lint_base import (
    NON_TRANSACTIONAL,
    Hit,
    enum_name,
    on,
    rule,
    strings,
    tname,
)
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import quote_ident_text

rule(
    "ML-023",
    "CONCURRENTLY (or another non-transactional statement) inside a transaction",
    "high",
    squawk=("ban-concurrent-index-creation-in-transaction",),
    why="PostgreSQL fails the statement with 'cannot run inside a transaction block' (SQLSTATE 25001), "
    "after BEGIN or in a file that a migration runner wraps in one transaction, and the migration stops.",
)
rule(
    "ML-024",
    "Transaction nesting or an unbalanced BEGIN/COMMIT",
    "medium",
    squawk=("transaction-nesting", "ban-uncommitted-transaction"),
    why="PostgreSQL has no nested transactions: an inner BEGIN only warns, a COMMIT ends the runner's "
    "transaction early, and a file that ends inside BEGIN keeps its locks until the session ends.",
)
rule(
    "ML-030",
    "Enum value added inside a transaction",
    "low",
    why="Before PostgreSQL 12 ALTER TYPE ... ADD VALUE fails in a transaction block; from 12 on the new "
    "value cannot be used until the transaction commits.",
)


def tx_kind(node):
    """'begin', 'commit', 'neutral' (SET...), 'non-transactional' or 'transactional'."""
    kind = tname(node)
    if kind == "TransactionStmt":
        k = enum_name(node.kind)
        if k in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
            return "begin"
        if k in ("TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_PREPARE"):
            return "commit"
        return "neutral"
    if kind in ("VariableSetStmt", "VariableShowStmt"):
        return "neutral"
    if kind == "AlterEnumStmt" and node.newVal:
        return "enum-add"  # transactional, but alone in a file it is fine (PostgreSQL 12+)
    if kind == "IndexStmt" and node.concurrent:
        return NON_TRANSACTIONAL
    if kind == "DropStmt" and node.concurrent:
        return NON_TRANSACTIONAL
    if kind == "ReindexStmt" and any(p.defname == "concurrently" for p in node.params or ()):
        return NON_TRANSACTIONAL
    if kind == "ReindexStmt" and enum_name(node.kind) in ("REINDEX_OBJECT_SYSTEM", "REINDEX_OBJECT_DATABASE"):
        return NON_TRANSACTIONAL
    if kind == "VacuumStmt" and node.is_vacuumcmd:
        return NON_TRANSACTIONAL
    if kind in (
        "CreatedbStmt",
        "DropdbStmt",
        "AlterSystemStmt",
        "CreateTableSpaceStmt",
        "DropTableSpaceStmt",
    ):
        return NON_TRANSACTIONAL
    if kind in ("CreateSubscriptionStmt", "DropSubscriptionStmt"):
        return NON_TRANSACTIONAL
    return "transactional"


def concurrent_in_tx(lt, stmt, explicit):
    if explicit:
        msg = "This statement cannot run inside a transaction block, and it follows BEGIN."
    else:
        msg = (
            "This statement cannot run inside a transaction block, and the file also holds "
            "transactional statements, so a migration runner runs the whole file in one transaction."
        )
    return Hit(
        "ML-023",
        lt.where(stmt),
        msg,
        "PostgreSQL fails it with 'cannot run inside a transaction block' (SQLSTATE 25001), and the "
        "migration stops there.",
        "Put this statement in a migration file of its own (with only SET lock_timeout/statement_timeout "
        "beside it), outside BEGIN/COMMIT.",
        lock=None,
    )


# ML-024's three cases: (message, why, fix).
_TX_MISUSE = {
    "nested-begin": (
        "BEGIN inside a transaction that is already open (line of the first BEGIN "
        "is earlier in this file): PostgreSQL has no nested transactions.",
        "The second BEGIN only warns; the first COMMIT then ends the whole transaction, "
        "so statements meant to be atomic are committed separately.",
        "Remove the inner BEGIN/COMMIT, or use SAVEPOINT name / RELEASE SAVEPOINT name.",
    ),
    "commit-without-begin": (
        "COMMIT/ROLLBACK without a BEGIN in this file: a migration runner that wraps the "
        "file in its own transaction is ended here.",
        "The runner's transaction commits early; what follows runs outside it and a "
        "failure later leaves the migration half-applied.",
        "Remove the COMMIT (the runner commits the file), or pair it with a BEGIN.",
    ),
    "never-committed": (
        "This BEGIN is never committed or rolled back: the file ends inside its transaction.",
        "An open transaction keeps its locks until the session ends; a runner may commit or "
        "roll it back behind your back.",
        "End the file with COMMIT, or remove the BEGIN and let the runner wrap the file.",
    ),
}


def tx_misuse(lt, stmt, case):
    """ML-024 on ``stmt``: ``case`` is nested-begin (BEGIN inside an open transaction),
    commit-without-begin (COMMIT/ROLLBACK with no BEGIN in the file) or never-committed (the file
    ends inside the transaction ``stmt`` opened)."""
    return Hit("ML-024", lt.where(stmt), *_TX_MISUSE[case])


@on("AlterEnumStmt")
def on_alter_enum_stmt(lt, stmt, node):
    if not node.newVal or not lt.in_any_tx:
        return None
    name = ".".join(strings(node.typeName))
    lt.hit(
        stmt,
        Hit(
            "ML-030",
            name,
            "ALTER TYPE %s ADD VALUE %r runs inside a transaction." % (name, node.newVal),
            "Before PostgreSQL 12 it fails in a transaction block; from 12 on the new value cannot be "
            "used "
            "until the transaction commits, so a later statement of the same migration that uses it "
            "fails.",
            "-- in a migration file of its own, before the migration that uses the value:\n"
            "ALTER TYPE %s ADD VALUE IF NOT EXISTS '%s';"
            % (
                ".".join(quote_ident_text(p) for p in strings(node.typeName)),
                node.newVal.replace("'", "''"),
            ),
        ),
    )
    return None
