# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Migration lint rules on added columns: ML-001, ML-002, ML-026.

Registered with lint_base (``rule``, ``@on``, ``@on_alter``) when imported; migration_lint.py
walks the statements. Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations.lint_base import (
    ACCESS_EXCLUSIVE,
    NAMEDATALEN,
    SERIAL_TYPES,
    Hit,
    deparse,
    enum_name,
    on_alter,
    rule,
    type_info,
    type_text,
    volatility,
)
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations.lint_constraints import (
    fk_hit,
    unique_hit,
)
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations.lint_types import column_types
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import quote_ident_text

rule(
    "ML-001",
    "Column added with a volatile default",
    "high",
    scales=True,
    squawk=("adding-field-with-default",),
    why="A volatile default is computed per row, so PostgreSQL rewrites the table under an ACCESS EXCLUSIVE "
    "lock; a constant or STABLE default (now(), a literal) is stored once in the catalog (PostgreSQL 11+).",
)
rule(
    "ML-002",
    "Column added NOT NULL without a default",
    "high",
    scales=True,
    squawk=("adding-required-field",),
    why="Existing rows would get NULL, which the constraint forbids, so the migration fails in production "
    "although it passed on an empty development database.",
)
rule(
    "ML-026",
    "Column added as serial, identity or stored generated: table rewrite",
    "high",
    scales=True,
    why="Every row is written again with its new value while nothing can read or write the table.",
)


def add_column(lt, stmt, table, coldef):
    created = lt.is_created(table)
    empty = "info" if created else None
    obj = lt.qname(table)
    tq = lt.qtext(table)
    col = quote_ident_text(coldef.colname)
    cobj = "%s.%s" % (obj, coldef.colname)
    base, _mods, _arr = type_info(coldef.typeName)
    cons = list(coldef.constraints or ())
    kinds = [enum_name(c.contype) for c in cons]
    default = next((c.raw_expr for c in cons if enum_name(c.contype) == "CONSTR_DEFAULT"), None)
    not_null = coldef.is_not_null or "CONSTR_NOTNULL" in kinds
    identity = "CONSTR_IDENTITY" in kinds
    generated = "CONSTR_GENERATED" in kinds
    is_pk = "CONSTR_PRIMARY" in kinds
    lt.state.columns.add(lt.key(table) + (coldef.colname,))
    lock, slow = ACCESS_EXCLUSIVE, False
    ttext = type_text(coldef.typeName)
    if base in SERIAL_TYPES or identity or generated:
        what = (
            "a serial column (its default nextval() is volatile)"
            if base in SERIAL_TYPES
            else ("an identity column (each row gets a value)" if identity else "a stored generated column")
        )
        lt.hit(
            stmt,
            Hit(
                "ML-026",
                cobj,
                "Adding %s %s to %s rewrites the table under an ACCESS EXCLUSIVE lock."
                % (what, coldef.colname, obj),
                "Every row is written again with its new value while nothing can read or write the table.",
                "ALTER TABLE %s ADD COLUMN %s bigint;  -- nullable, no default: instant\n"
                "-- fill it in batches (UPDATE ... WHERE %s IS NULL LIMIT ...), set the default for "
                "new rows,\n"
                "-- then add NOT NULL the safe way (CHECK ... NOT VALID, VALIDATE, SET NOT NULL)"
                % (tq, col, col),
                lock=ACCESS_EXCLUSIVE,
                rewrites=True,
                table=table,
                severity=empty,
            ),
        )
        slow = True
    elif default is not None:
        vol = volatility(default)
        if vol in ("volatile", "unknown"):
            expr = deparse(default)
            lt.hit(
                stmt,
                Hit(
                    "ML-001",
                    cobj,
                    "Column %s added with the %s default %s: %s."
                    % (
                        cobj,
                        "volatile" if vol == "volatile" else "possibly volatile",
                        expr,
                        "PostgreSQL rewrites the whole table to store a value per row"
                        if vol == "volatile"
                        else "if the function is VOLATILE, PostgreSQL rewrites the table",
                    ),
                    "A rewrite holds an ACCESS EXCLUSIVE lock until every row and index is copied. A "
                    "constant "
                    "or STABLE default (now(), a literal) is stored once in the catalog instead "
                    "(PostgreSQL 11+).",
                    "ALTER TABLE %s ADD COLUMN %s %s;  -- no default: instant\n"
                    "ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s;  -- new rows only, no rewrite\n"
                    "-- backfill existing rows in batches:\n"
                    "UPDATE %s SET %s = %s WHERE ctid IN (SELECT ctid FROM %s WHERE %s IS NULL LIMIT "
                    "10000);" % (tq, col, ttext, tq, col, expr, tq, col, expr, tq, col),
                    lock=ACCESS_EXCLUSIVE,
                    rewrites=vol == "volatile",
                    table=table,
                    severity=empty or (None if vol == "volatile" else "medium"),
                    default=expr,
                    volatility=vol,
                ),
            )
            slow = slow or vol == "volatile"
    if not_null and default is None and not (identity or generated or base in SERIAL_TYPES):
        lt.hit(
            stmt,
            Hit(
                "ML-002",
                cobj,
                "Column %s added NOT NULL without a default: the ALTER fails as soon as %s has a row."
                % (cobj, obj),
                "Existing rows would get NULL, which the constraint forbids, so the migration fails in "
                "production although it passed on an empty development database.",
                "ALTER TABLE %s ADD COLUMN %s %s;\n"
                "-- backfill in batches, then add NOT NULL without a long lock, each step a "
                "migration of its own:\n"
                "ALTER TABLE %s ADD CONSTRAINT %s CHECK (%s IS NOT NULL) NOT VALID;\n"
                "ALTER TABLE %s VALIDATE CONSTRAINT %s;  -- separate migration (transaction)\n"
                "ALTER TABLE %s ALTER COLUMN %s SET NOT NULL;  -- no scan: the valid CHECK proves it"
                % (
                    tq,
                    col,
                    ttext,
                    tq,
                    quote_ident_text(("%s_%s_not_null" % (table[1], coldef.colname))[: NAMEDATALEN - 1]),
                    col,
                    tq,
                    quote_ident_text(("%s_%s_not_null" % (table[1], coldef.colname))[: NAMEDATALEN - 1]),
                    tq,
                    col,
                ),
                lock=ACCESS_EXCLUSIVE,
                table=table,
                severity=empty,
            ),
        )
    for c in cons:
        ck = enum_name(c.contype)
        if ck in ("CONSTR_UNIQUE", "CONSTR_PRIMARY"):
            lt.hit(stmt, unique_hit(lt, table, c, [coldef.colname], empty))
            slow = True
        elif ck == "CONSTR_FOREIGN":
            ref = lt.rel(c.pktable)
            lt.hit(
                stmt,
                fk_hit(
                    lt, table, c, [coldef.colname], ref, "low" if not created else "info", new_column=True
                ),
            )
            lock = ACCESS_EXCLUSIVE
    column_types(lt, stmt, table, coldef, is_pk)
    return lock, slow


@on_alter("AT_AddColumn")
def alter_add_column(lt, stmt, table, cmd):
    """ADD COLUMN: ML-001, ML-002, ML-026, and the new column's constraints and type."""
    return add_column(lt, stmt, table, cmd.def_)
