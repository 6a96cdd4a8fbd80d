# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration lint rules on constraints: ML-003, ML-004, ML-005, ML-010, ML-032.

Registered with lint_base (``rule``, ``@on``, ``@on_alter``) when imported; migration_lint.py
walks the statements. Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations.lint_base import (
    ACCESS_EXCLUSIVE,
    NAMEDATALEN,
    SHARE_ROW_EXCLUSIVE,
    SHARE_UPDATE_EXCLUSIVE,
    Hit,
    deparse,
    enum_name,
    not_null_column,
    on_alter,
    rule,
    strings,
)
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import quote_ident_text

rule(
    "ML-003",
    "Foreign key added without NOT VALID",
    "medium",
    scales=True,
    squawk=("adding-foreign-key-constraint", "constraint-missing-not-valid"),
    why="Validation scans the referencing table and probes the referenced one under SHARE ROW EXCLUSIVE "
    "locks that stop INSERT, UPDATE and DELETE on both; VALIDATE in the same transaction as the ADD "
    "... NOT VALID keeps that lock through the scan.",
)
rule(
    "ML-004",
    "CHECK constraint added without NOT VALID",
    "medium",
    scales=True,
    squawk=("constraint-missing-not-valid",),
    why="Every row is checked under an ACCESS EXCLUSIVE lock; VALIDATE in the same transaction as the ADD "
    "... NOT VALID keeps that lock through the scan.",
)
rule(
    "ML-005",
    "SET NOT NULL scans the table under ACCESS EXCLUSIVE",
    "medium",
    scales=True,
    squawk=("adding-not-nullable-field",),
    why="No read or write runs while PostgreSQL checks every row for NULLs, unless a valid CHECK (col IS "
    "NOT NULL) proves the column (PostgreSQL 12+).",
)
rule(
    "ML-010",
    "UNIQUE or PRIMARY KEY constraint built under ACCESS EXCLUSIVE",
    "medium",
    scales=True,
    squawk=("disallowed-unique-constraint", "adding-serial-primary-key-field"),
    why="Reads and writes of the table wait for the whole index build; CREATE UNIQUE INDEX CONCURRENTLY "
    "then ADD CONSTRAINT ... USING INDEX does not block them.",
)
rule(
    "ML-032",
    "DROP NOT NULL",
    "low",
    squawk=("ban-drop-not-null",),
    why="Code that assumes the column is set may now read NULLs, and adding NOT NULL again needs a full "
    "scan.",
)


def set_not_null_hit(lt, table, column, severity):
    obj = lt.qname(table)
    tq = lt.qtext(table)
    col = quote_ident_text(column)
    cname = quote_ident_text(("%s_%s_not_null" % (table[1], column))[: NAMEDATALEN - 1])
    return Hit(
        "ML-005",
        "%s.%s" % (obj, column),
        "SET NOT NULL on %s.%s scans the whole table under an ACCESS EXCLUSIVE lock." % (obj, column),
        "No read or write runs while PostgreSQL checks every row for NULLs.",
        "-- migration 1 (commits at once; new rows are checked):\n"
        "ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID;\n"
        "-- migration 2, a separate file (its own transaction; SHARE UPDATE EXCLUSIVE: reads and writes "
        "go on):\n"
        "ALTER TABLE %s VALIDATE CONSTRAINT %s;\n"
        "-- migration 3: PostgreSQL 12+ uses the valid CHECK, no scan:\n"
        "ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;\n"
        "ALTER TABLE %s DROP CONSTRAINT %s;" % (tq, cname, col, tq, cname, tq, col, tq, cname),
        lock=ACCESS_EXCLUSIVE,
        table=table,
        severity=severity,
        column=column,
    )


def validate_constraint(lt, stmt, table, name):
    """VALIDATE CONSTRAINT: a CHECK (col IS NOT NULL) becomes valid; a constraint added NOT VALID
    earlier in the same transaction is reported (its strong lock is held through the scan)."""
    key = lt.key(table) + (name,)
    column = lt.state.checks.get(key)
    if column:
        lt.state.valid_not_null.add(lt.key(table) + (column,))
    added = lt.not_valid.pop(key, None)
    if added is None or added[2] != lt.transaction:
        return
    rule, first, _tx = added
    lock = SHARE_ROW_EXCLUSIVE if rule == "ML-003" else ACCESS_EXCLUSIVE
    obj = lt.qname(table)
    tq = lt.qtext(table)
    line = first.line + lt.start_line - 1
    lt.hit(
        stmt,
        Hit(
            rule,
            obj,
            "%s constraint %s on %s is validated in the same transaction that added it NOT VALID "
            "(line %d): the %s lock of the ADD is held until COMMIT, through the whole validation scan."
            % ("Foreign key" if rule == "ML-003" else "CHECK", name, obj, line, lock),
            "NOT VALID helps only when the ADD commits at once: VALIDATE alone takes SHARE UPDATE "
            "EXCLUSIVE and writes go on while it scans. In one transaction %s wait for the scan."
            % ("writes to both tables" if rule == "ML-003" else "reads and writes"),
            "-- keep the ADD ... NOT VALID (line %d) in its migration; validate in a separate migration "
            "file, so a separate transaction:\nALTER TABLE %s VALIDATE CONSTRAINT %s;"
            % (line, tq, quote_ident_text(name)),
            lock=lock,
            table=table,
            constraint=name,
            added_line=line,
        ),
    )


def fk_hit(lt, table, con, cols, ref, severity=None, new_column=False):
    obj = lt.qname(table)
    tq = lt.qtext(table)
    name = con.conname or ("%s_%s_fkey" % (table[1], "_".join(cols)))[: NAMEDATALEN - 1]
    refcols = strings(con.pk_attrs)
    cq = ", ".join(quote_ident_text(c) for c in cols)
    rq = " (%s)" % ", ".join(quote_ident_text(c) for c in refcols) if refcols else ""
    nq = quote_ident_text(name)
    msg = (
        "Foreign key %s on %s added without NOT VALID: both %s and %s are locked SHARE ROW EXCLUSIVE "
        "(writes blocked) while every row is checked." % (name, obj, obj, lt.qname(ref))
    )
    if new_column:
        msg = (
            "Column %s.%s added with REFERENCES %s: the ALTER locks %s SHARE ROW EXCLUSIVE (writes "
            "blocked) "
            "as well." % (obj, cols[0], lt.qname(ref), lt.qname(ref))
        )
    return Hit(
        "ML-003",
        obj if not new_column else "%s.%s" % (obj, cols[0]),
        msg,
        "Validation scans the referencing table and probes the referenced one under locks that stop "
        "INSERT, UPDATE and DELETE on both.",
        "-- migration 1 (commits at once; new rows are checked):\n"
        "ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) REFERENCES %s%s NOT VALID;\n"
        "-- migration 2, a separate file (its own transaction; SHARE UPDATE EXCLUSIVE: writes go on):\n"
        "ALTER TABLE %s VALIDATE CONSTRAINT %s;" % (tq, nq, cq, lt.qtext(ref), rq, tq, nq),
        lock=SHARE_ROW_EXCLUSIVE,
        table=table,
        severity=severity,
        referenced_table=lt.qname(ref),
        constraint=name,
    )


def unique_hit(lt, table, con, cols, severity):
    obj = lt.qname(table)
    tq = lt.qtext(table)
    primary = enum_name(con.contype) == "CONSTR_PRIMARY"
    kind = "PRIMARY KEY" if primary else "UNIQUE"
    default_name = "%s_pkey" % table[1] if primary else "%s_%s_key" % (table[1], "_".join(cols))
    name = con.conname or default_name[: NAMEDATALEN - 1]
    nq = quote_ident_text(name)
    cq = ", ".join(quote_ident_text(c) for c in cols)
    return Hit(
        "ML-010",
        obj,
        "%s constraint %s on %s (%s) builds its index while holding an ACCESS EXCLUSIVE lock."
        % (kind, name, obj, ", ".join(cols)),
        "Reads and writes of the table wait for the whole index build.",
        "CREATE UNIQUE INDEX CONCURRENTLY %s ON %s (%s);  -- a migration file of its own\n"
        "ALTER TABLE %s ADD CONSTRAINT %s %s USING INDEX %s;  -- instant%s"
        % (
            nq,
            tq,
            cq,
            tq,
            nq,
            kind,
            nq,
            "\n-- (PRIMARY KEY also needs the columns NOT NULL first, added the safe way)" if primary else "",
        ),
        lock=ACCESS_EXCLUSIVE,
        table=table,
        severity=severity,
        constraint=name,
    )


def add_constraint(lt, stmt, table, con):
    ck = enum_name(con.contype)
    created = lt.is_created(table)
    empty = "info" if created else None
    obj = lt.qname(table)
    tq = lt.qtext(table)
    if ck == "CONSTR_FOREIGN":
        if con.skip_validation:
            if con.conname:
                lt.not_valid[lt.key(table) + (con.conname,)] = ("ML-003", stmt, lt.transaction)
            return SHARE_ROW_EXCLUSIVE, False
        ref = lt.rel(con.pktable)
        lt.hit(stmt, fk_hit(lt, table, con, strings(con.fk_attrs), ref, empty))
        return SHARE_ROW_EXCLUSIVE, True
    if ck == "CONSTR_CHECK":
        column = not_null_column(con.raw_expr)
        name = (
            con.conname
            or (("%s_%s_check" % (table[1], column)) if column else ("%s_check" % table[1]))[
                : NAMEDATALEN - 1
            ]
        )
        if column:
            lt.state.checks[lt.key(table) + (name,)] = column
        if con.skip_validation:
            lt.not_valid[lt.key(table) + (name,)] = ("ML-004", stmt, lt.transaction)
            return ACCESS_EXCLUSIVE, False
        if column:
            lt.state.valid_not_null.add(lt.key(table) + (column,))
        expr = deparse(con.raw_expr)
        nq = quote_ident_text(name)
        lt.hit(
            stmt,
            Hit(
                "ML-004",
                obj,
                "CHECK constraint %s on %s added without NOT VALID: every row is checked under an ACCESS "
                "EXCLUSIVE lock." % (name, obj),
                "No read or write of the table runs while PostgreSQL scans it.",
                "-- migration 1 (instant; new rows are checked):\n"
                "ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s) NOT VALID;\n"
                "-- migration 2, a separate file (its own transaction; SHARE UPDATE EXCLUSIVE: reads "
                "and writes go on):\n"
                "ALTER TABLE %s VALIDATE CONSTRAINT %s;" % (tq, nq, expr, tq, nq),
                lock=ACCESS_EXCLUSIVE,
                table=table,
                severity=empty,
                constraint=name,
            ),
        )
        return ACCESS_EXCLUSIVE, True
    if ck in ("CONSTR_UNIQUE", "CONSTR_PRIMARY"):
        if con.indexname:
            return ACCESS_EXCLUSIVE, False
        lt.hit(stmt, unique_hit(lt, table, con, strings(con.keys), empty))
        return ACCESS_EXCLUSIVE, True
    if ck == "CONSTR_EXCLUSION":
        name = con.conname or "(unnamed exclusion constraint)"
        lt.hit(
            stmt,
            Hit(
                "ML-010",
                obj,
                "EXCLUDE constraint %s on %s builds its index under an ACCESS EXCLUSIVE lock; there is "
                "no "
                "concurrent way to add one." % (name, obj),
                "Reads and writes of the table wait for the whole index build.",
                "-- add it while the table is small, or in a maintenance window with lock_timeout set",
                lock=ACCESS_EXCLUSIVE,
                table=table,
                severity=empty,
            ),
        )
        return ACCESS_EXCLUSIVE, True
    if ck == "CONSTR_NOTNULL":
        if con.skip_validation:
            return ACCESS_EXCLUSIVE, False
        for column in strings(con.keys):
            lt.hit(stmt, set_not_null_hit(lt, table, column, empty))
        return ACCESS_EXCLUSIVE, True
    return ACCESS_EXCLUSIVE, False


@on_alter("AT_AddConstraint")
def alter_add_constraint(lt, stmt, table, cmd):
    """ADD CONSTRAINT: ML-003, ML-004, ML-010, ML-005 (NOT NULL constraint)."""
    return add_constraint(lt, stmt, table, cmd.def_)


@on_alter("AT_SetNotNull")
def alter_set_not_null(lt, stmt, table, cmd):
    """ML-005, unless a valid CHECK (col IS NOT NULL) proves the column."""
    if lt.key(table) + (cmd.name,) in lt.state.valid_not_null:
        return ACCESS_EXCLUSIVE, False  # PostgreSQL 12+ uses the valid CHECK: no scan
    lt.hit(stmt, set_not_null_hit(lt, table, cmd.name, "info" if lt.is_created(table) else None))
    return ACCESS_EXCLUSIVE, True


@on_alter("AT_ValidateConstraint")
def alter_validate_constraint(lt, stmt, table, cmd):
    """VALIDATE CONSTRAINT: SHARE UPDATE EXCLUSIVE, unless the ADD's lock is still held."""
    validate_constraint(lt, stmt, table, cmd.name)
    return SHARE_UPDATE_EXCLUSIVE, True


@on_alter("AT_DropNotNull")
def alter_drop_not_null(lt, stmt, table, cmd):
    """ML-032: DROP NOT NULL (info for a column added earlier in the run)."""
    empty = "info" if lt.is_created(table) or lt.is_new_column(table, cmd.name) else None
    obj = lt.qname(table)
    col = "%s.%s" % (obj, cmd.name)
    lt.hit(
        stmt,
        Hit(
            "ML-032",
            col,
            "DROP NOT NULL on %s: code that assumes the column is set may now read NULLs." % col,
            "Removing a guarantee is hard to take back: adding NOT NULL again needs a full scan.",
            "-- make sure every reader handles NULL in %s before dropping the constraint" % col,
            lock=ACCESS_EXCLUSIVE,
            table=table,
            severity=empty,
        ),
    )
    return ACCESS_EXCLUSIVE, False
