#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: restore_check_info
short_description: Check a restored database against a restore point (markers, row counts, checksums)
version_added: "0.2.0"
description:
  - The restored side of a restore drill. Reads, in one read-only transaction, the marker rows of O(drill_id)
    and the row count and checksum of O(tables), computed exactly as M(dbarch.postgresql.restore_point)
    computed them on the source under its SHARE lock.
  - Compares them with O(expected) (the RV(dbarch.postgresql.restore_point#module:tables) of the source) and
    with the markers a restore to the restore point must show (C(before) present, C(after) absent), and
    returns every difference in RV(mismatches).
  - Never changes anything and always reports C(changed=false). It does not fail on a mismatch unless
    O(fail_on_mismatch).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  drill_id:
    description: C(drill_id) of the marker rows to look for. Without it, markers are not checked.
    type: str
  tables:
    description: Tables to fingerprint, as C(schema.table).
    type: list
    elements: str
    default: []
  expected:
    description: Per table, C(rows) and C(checksum) the restored copy must have.
    type: dict
    default: {}
  marker_database:
    description: Database of the marker table (as given to restore_point). Default, O(login_db).
    type: str
  marker_schema:
    description: Schema of the marker table.
    type: str
    default: dbarch_drill
  marker_table:
    description: Marker table.
    type: str
    default: marker
  fail_on_mismatch:
    description: Fail the task when RV(mismatches) is not empty.
    type: bool
    default: false
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.attributes.read_only
seealso:
  - module: dbarch.postgresql.restore_point
"""

EXAMPLES = r"""
- name: Compare the restored copy with the source at the restore point
  dbarch.postgresql.restore_check_info:
    login_unix_socket: /srv/drill/run
    login_port: 5440
    login_db: shop
    drill_id: "{{ point.drill_id }}"
    tables: [shop.customers, shop.orders]
    expected: "{{ point.tables }}"
  become: true
  become_user: postgres
  register: check
"""

RETURN = r"""
markers:
  description: Kinds of the marker rows of O(drill_id) found (C(before), C(after)).
  returned: always
  type: list
  elements: str
tables:
  description: Per table, C(rows) and C(checksum) of the restored copy.
  returned: always
  type: dict
mismatches:
  description: Every difference found, one sentence each; empty when the restored copy matches.
  returned: always
  type: list
  elements: str
ok:
  description: Whether RV(mismatches) is empty.
  returned: always
  type: bool
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


def work(module, session):
    p = module.params
    found = []
    if p["drill_id"]:
        wanted = p["marker_database"]
        if wanted and wanted != session.scalar("SELECT current_database()"):
            other = ansible_pg.connect(module, autocommit=False, params=dict(p, login_db=wanted))
            try:
                other.conn.set_session(readonly=True)
                found = drill.markers(other, p["drill_id"], p["marker_schema"], p["marker_table"])
            finally:
                session.queries.extend(other.queries)
                other.close()
        else:
            found = drill.markers(session, p["drill_id"], p["marker_schema"], p["marker_table"])
    tables = drill.fingerprint(session, p["tables"])
    session.conn.rollback()
    return dict(
        markers=found,
        tables=tables,
        mismatches=drill.compare(found if p["drill_id"] else None, tables, p["expected"]),
    )


def main():
    spec = dict(
        drill_id=dict(type="str"),
        tables=dict(type="list", elements="str", default=[]),
        expected=dict(type="dict", default={}),
        marker_database=dict(type="str"),
        marker_schema=dict(type="str", default=drill.MARKER_SCHEMA),
        marker_table=dict(type="str", default=drill.MARKER_TABLE),
        fail_on_mismatch=dict(type="bool", default=False),
    )
    module = DbarchModule(argument_spec=spec, supports_check_mode=True)
    session = module.connect(autocommit=False)
    try:
        session.conn.rollback()
        session.conn.set_session(readonly=True)
        result = work(module, session)
    except DbarchError as exc:
        module.fail_from(exc, session)
    except ValueError as exc:
        module.fail_from(drill.DrillError(str(exc)), session)
    session.close()
    result.update(changed=False, ok=not result["mismatches"], queries=session.queries)
    if module.params["fail_on_mismatch"] and result["mismatches"]:
        module.fail_json(msg="The restored copy differs: " + "; ".join(result["mismatches"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
