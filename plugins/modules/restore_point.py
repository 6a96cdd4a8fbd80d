#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: restore_point
short_description: Create a named restore point with marker rows and a consistent fingerprint of tables
version_added: "0.2.0"
description:
  - The source side of a restore drill. On the server it connects to, in this order, it creates the marker
    table (O(marker_schema).O(marker_table)) when it is missing and inserts and commits a C(before) marker
    row for O(drill_id).
  - Then, in ONE transaction with C(lock_timeout) O(restore_lock_timeout), it locks O(tables)
    C(IN SHARE MODE), reads each table's row count and checksum, runs C(pg_create_restore_point) with O(name)
    and commits.
  - Then it inserts and commits an C(after) marker row, runs C(pg_switch_wal) and waits until
    C(pg_stat_archiver) shows the segment holding the restore point archived (O(wait_archived)).
  - The checksum is the sum, over all rows, of the first 64 bits of the C(md5) of the row's text, with the
    settings that shape a row's text (C(DateStyle), C(IntervalStyle), C(TimeZone), C(extra_float_digits),
    C(bytea_output)) fixed, so it does not depend on row order or on a primary key.
    M(dbarch.postgresql.restore_check_info) computes the same numbers on the restored copy.
  - Why the numbers describe the restored copy exactly, also under concurrent writes. The SHARE lock
    conflicts with the ROW EXCLUSIVE lock of every INSERT, UPDATE and DELETE; taking it waits for the
    transactions that already wrote to the tables, and holding it blocks new writers until the COMMIT.
    Commits to those tables before the lock are before the restore point record (replayed), commits after
    it are after the COMMIT (not replayed).
  - Every run creates a new restore point, so it always reports a change.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  name:
    description:
      - Name of the restore point. Use a new name per drill; recovery stops at the first restore point of
        that name.
    type: str
    required: true
  drill_id:
    description: Value of the C(drill_id) column of the marker rows. Default, O(name).
    type: str
  tables:
    description:
      - Tables to fingerprint, as C(schema.table) (quote names with dots or capitals with double quotes),
        in the database the module connects to (O(login_db)).
    type: list
    elements: str
    default: []
  marker_database:
    description:
      - Database of the marker table. Default, the database the module connects to (O(login_db)).
      - A database of its own (for example C(postgres)) keeps the drill's table out of the application's
        schema; a physical backup restores every database, so the markers are checked all the same.
    type: str
  marker_schema:
    description: Schema of the marker table (created when missing).
    type: str
    default: dbarch_drill
  marker_table:
    description: Marker table, columns C(id), C(drill_id), C(kind) (C(before) or C(after)), C(at).
    type: str
    default: marker
  restore_lock_timeout:
    description:
      - C(lock_timeout) of the transaction that locks the tables. A lock not granted in time fails the task.
    type: str
    default: 10s
  wait_archived:
    description: Switch WAL and wait until the segment holding the restore point is archived.
    type: bool
    default: true
  archive_timeout:
    description: Seconds to wait for the archiver.
    type: int
    default: 300
  rpo_reference_time:
    description:
      - Time of the last commit in the WAL archive before the drill (C(backup_info)'s
        C(wal.latest_commit_time)). With it, the module returns RV(rpo_seconds), the server's C(now) at the
        start of the task minus this time.
    type: str
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Checks that the tables exist and reports the steps; writes nothing, creates no restore point.
  diff_mode:
    support: none
    description: A restore point has no before/after.
notes:
  - Needs a superuser or a role with EXECUTE on C(pg_create_restore_point) and C(pg_switch_wal), INSERT on
    the marker table, and the right to take SHARE locks on the tables (SELECT is not enough; UPDATE, DELETE,
    INSERT or TRUNCATE is). C(wal_level) must be C(replica) or C(logical).
seealso:
  - module: dbarch.postgresql.restore_check_info
  - module: dbarch.postgresql.pitr_restore
"""

EXAMPLES = r"""
- name: Restore point with markers and a fingerprint of two tables
  dbarch.postgresql.restore_point:
    login_db: shop
    name: dbarch_drill_20261126T020000Z
    tables: [shop.customers, shop.orders]
  register: point

- name: Restore to it
  dbarch.postgresql.pitr_restore:
    repository: /var/backups/postgresql/main
    data_dir: /srv/drill/data
    port: 5440
    target_name: "{{ point.name }}"
  become: true
"""

RETURN = r"""
name:
  description: The restore point's name.
  returned: always
  type: str
drill_id:
  description: The C(drill_id) of the marker rows.
  returned: always
  type: str
started_at:
  description: The server's C(now) at the start of the task, before anything was written (UTC, ISO 8601).
  returned: always
  type: str
rpo_seconds:
  description: RV(started_at) minus O(rpo_reference_time); null without it.
  returned: always
  type: float
lsn:
  description: WAL location of the restore point record.
  returned: success, not in check mode
  type: str
wal_file:
  description: WAL segment holding the restore point.
  returned: success, not in check mode
  type: str
time:
  description: Time the restore point was created (UTC, ISO 8601).
  returned: success, not in check mode
  type: str
tables:
  description: Per table (C(schema.table)), C(rows) and C(checksum) read under the SHARE lock.
  returned: success, not in check mode
  type: dict
  sample: {shop.orders: {rows: 1200, checksum: "4711"}}
markers:
  description: The C(before) and C(after) marker rows written, each C(id) and C(at).
  returned: success, not in check mode
  type: dict
archived:
  description: C(last_archived_wal) once the segment was archived, and the segment C(pg_switch_wal) closed.
  returned: success, not in check mode, with O(wait_archived)
  type: dict
marker_table_created:
  description: Whether the marker schema/table were created by this run.
  returned: success, not in check mode
  type: bool
planned:
  description: The steps the module takes (in check mode, would take).
  returned: always
  type: list
  elements: str
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import ansible_pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import drill
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


def marker_session(module, session, autocommit=True):
    """The session of the marker table: ``session`` itself, or one to O(marker_database)."""
    wanted = module.params["marker_database"]
    if not wanted or wanted == session.scalar("SELECT current_database()"):
        return session
    return ansible_pg.connect(module, autocommit=autocommit, params=dict(module.params, login_db=wanted))


def work(module, session):
    p = module.params
    name = drill.check_name(p["name"])
    drill_id = p["drill_id"] or name
    started = session.scalar("SELECT now()")
    result = dict(
        name=name,
        drill_id=drill_id,
        started_at=started.isoformat(),
        rpo_seconds=drill.seconds_between(started, p["rpo_reference_time"]),
    )
    tables = [drill.split_table(t) for t in p["tables"]]
    marker = "%s.%s" % (p["marker_schema"], p["marker_table"])
    result["planned"] = [
        "create %s if missing" % marker,
        "insert and commit marker 'before' of %s" % drill_id,
        "in one transaction: LOCK %s IN SHARE MODE, count and checksum them, "
        "pg_create_restore_point(%r), COMMIT"
        % (", ".join("%s.%s" % t for t in tables) or "no table", name),
        "insert and commit marker 'after' of %s" % drill_id,
    ]
    if p["wait_archived"]:
        result["planned"].append("pg_switch_wal() and wait up to %ss for the archiver" % p["archive_timeout"])
    # every table must exist before anything is created or written (no marker row, no schema)
    drill.existing_tables(session, tables)
    if module.check_mode:
        return dict(result, changed=True)
    session.conn.autocommit = True
    markers_at = marker_session(module, session)
    try:
        created = drill.ensure_marker_table(markers_at, p["marker_schema"], p["marker_table"])
        before = drill.insert_marker(markers_at, drill_id, "before", p["marker_schema"], p["marker_table"])
        session.conn.autocommit = False
        point = drill.locked_restore_point(session, name, p["tables"], p["restore_lock_timeout"])
        session.conn.autocommit = True
        after = drill.insert_marker(markers_at, drill_id, "after", p["marker_schema"], p["marker_table"])
    finally:
        if markers_at is not session:
            session.queries.extend(markers_at.queries)
            markers_at.close()
    result.update(
        changed=True,
        marker_table_created=created,
        lsn=point["lsn"],
        wal_file=point["wal_file"],
        time=point["time"],
        tables=point["tables"],
        markers={"before": before, "after": after},
    )
    if p["wait_archived"]:
        result["archived"] = drill.wait_archived(session, point["wal_file"], timeout=p["archive_timeout"])
    return result


def main():
    spec = dict(
        name=dict(type="str", required=True),
        drill_id=dict(type="str"),
        tables=dict(type="list", elements="str", default=[]),
        marker_database=dict(type="str"),
        marker_schema=dict(type="str", default=drill.MARKER_SCHEMA),
        marker_table=dict(type="str", default=drill.MARKER_TABLE),
        restore_lock_timeout=dict(type="str", default="10s"),
        wait_archived=dict(type="bool", default=True),
        archive_timeout=dict(type="int", default=300),
        rpo_reference_time=dict(type="str"),
    )
    module = DbarchModule(argument_spec=spec, supports_check_mode=True)
    session = module.connect()
    try:
        result = work(module, session)
    except DbarchError as exc:
        module.fail_from(exc, session)
    except ValueError as exc:
        module.fail_from(drill.DrillError(str(exc)), session)
    session.close()
    module.exit_json(queries=session.queries, **result)


if __name__ == "__main__":
    main()
