# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Defects planted in the bench/catalog schema, after it is loaded, for the schema review bench.

The generated schema (bench/catalog/schema.py) is clean for most rules: every table has a
primary key and an index on its foreign key column, no json, no timestamp. This adds a
known number of each defect type, on fixed tables (table index modulo a number), so both
tools have something to find and the counts can be checked:

====  ==========================================================  ===========================
i %   change on table i                                           expected
====  ==========================================================  ===========================
50=0  ADD COLUMN meta json                                        both: json
40=1  ADD COLUMN seen_at timestamp                                both: timestamp
500=3 ADD COLUMN seen_log timestamp[]                             array of timestamp
100=7 ADD COLUMN note varchar (no length)                         varchar without a limit
500=9 ADD COLUMN tags varchar(20)[]                               array of varchar(n)
250=11 DROP the primary key (CASCADE drops table i+1's FK to it)  both: no primary key
500=11 ... and CREATE UNIQUE INDEX on the NOT NULL id              no PK, unique index stands in
100=13 DROP INDEX <t>_parent_idx                                  both: FK without index
500=17 two-column FK (parent_id, parent_code) -> parent (id, code) index on parent_id only
500=19 index on parent_id replaced by a partial one               FK index with a predicate
250=23 RENAME COLUMN name TO "displayName"                        both: camelCase column
1000=29 RENAME TO "Audit<i>"                                      both: PascalCase table
1000=31 CREATE INDEX "ByName<i>" ON (name)                        PascalCase index name
====  ==========================================================  ===========================

Plus what the generated schema has anyway: ``code varchar(32)`` on every table and
``id bigserial`` on every 4th table (i % 4 = 1).

A comment on the first schema marks the database as planted, so a reused database
(``--dsn``) is not planted twice.
"""

import time

MARKER = "dbarch schema_review bench: defects planted (v1)"


def _pick(shape, mod, rest):
    return [i for i in range(shape.table_count) if i % mod == rest]


def plan(shape):
    """(list of SQL statements, dict of what was planted: name -> list of table indexes)."""
    n = shape.table_count
    planted = dict(
        json=_pick(shape, 50, 0),
        timestamp=_pick(shape, 40, 1),
        timestamp_array=_pick(shape, 500, 3),
        varchar_no_length=_pick(shape, 100, 7),
        varchar_n_array=_pick(shape, 500, 9),
        no_pk=_pick(shape, 250, 11),
        no_pk_unique_index=_pick(shape, 500, 11),
        fk_no_index=_pick(shape, 100, 13),
        fk_two_columns=[i for i in _pick(shape, 500, 17) if shape.fk_target(i) != i],
        fk_partial_index=_pick(shape, 500, 19),
        camel_column=_pick(shape, 250, 23),
        pascal_table=_pick(shape, 1000, 29),
        pascal_index=_pick(shape, 1000, 31),
    )
    sql = []
    q, t = shape.qualified, shape.table_name
    for i in planted["json"]:
        sql.append("ALTER TABLE %s ADD COLUMN meta json;" % q(i))
    for i in planted["timestamp"]:
        sql.append("ALTER TABLE %s ADD COLUMN seen_at timestamp;" % q(i))
    for i in planted["timestamp_array"]:
        sql.append("ALTER TABLE %s ADD COLUMN seen_log timestamp[];" % q(i))
    for i in planted["varchar_no_length"]:
        sql.append("ALTER TABLE %s ADD COLUMN note varchar;" % q(i))
    for i in planted["varchar_n_array"]:
        sql.append("ALTER TABLE %s ADD COLUMN tags varchar(20)[];" % q(i))
    for i in planted["no_pk"]:
        sql.append('ALTER TABLE %s DROP CONSTRAINT "%s_pkey" CASCADE;' % (q(i), t(i)))
    for i in planted["no_pk_unique_index"]:
        sql.append('CREATE UNIQUE INDEX "%s_id_uidx" ON %s (id);' % (t(i), q(i)))
    for i in planted["fk_no_index"]:
        sql.append('DROP INDEX %s."%s_parent_idx";' % (shape.schema_of(i), t(i)))
    for i in planted["fk_two_columns"]:
        j = shape.fk_target(i)
        sql.append('ALTER TABLE %s ADD CONSTRAINT "%s_id_code_key" UNIQUE (id, code);' % (q(j), t(j)))
        sql.append(
            'ALTER TABLE %s ADD COLUMN parent_code varchar(32), ADD CONSTRAINT "%s_parent_code_fk" '
            "FOREIGN KEY (parent_id, parent_code) REFERENCES %s (id, code);" % (q(i), t(i), q(j))
        )
    for i in planted["fk_partial_index"]:
        sql.append('DROP INDEX %s."%s_parent_idx";' % (shape.schema_of(i), t(i)))
        sql.append(
            'CREATE INDEX "%s_parent_partial_idx" ON %s (parent_id) WHERE parent_id IS NOT NULL;'
            % (t(i), q(i))
        )
    for i in planted["camel_column"]:
        sql.append('ALTER TABLE %s RENAME COLUMN name TO "displayName";' % q(i))
    for i in planted["pascal_index"]:
        sql.append('CREATE INDEX "ByName%05d" ON %s (name);' % (i, q(i)))
    for i in planted["pascal_table"]:  # last: later statements use the generated names
        sql.append('ALTER TABLE %s RENAME TO "Audit%05d";' % (q(i), i))
    sql.append("COMMENT ON SCHEMA \"%s\" IS '%s';" % (shape.schemas[0], MARKER))
    assert n == shape.table_count
    return sql, planted


def already_planted(conn, shape):
    with conn.cursor() as cur:
        cur.execute("SELECT obj_description(%s::regnamespace, 'pg_namespace')", ('"%s"' % shape.schemas[0],))
        return cur.fetchone()[0] == MARKER


def plant(conn, shape):
    """Plant the defects through ``conn`` (autocommit psycopg2 connection), in one transaction.

    Returns (seconds or None when the database was already planted, planted dict).
    """
    sql, planted = plan(shape)
    if already_planted(conn, shape):
        return None, planted
    t0 = time.monotonic()
    with conn.cursor() as cur:
        cur.execute("BEGIN;\n" + "\n".join(sql) + "\nCOMMIT;")
    return time.monotonic() - t0, planted
