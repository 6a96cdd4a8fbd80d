#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: replication_slot
short_description: Create or drop a physical replication slot on a PostgreSQL server
version_added: "0.3.0"
description:
  - Creates the physical replication slot O(name) when it is missing (O(state=present)), or drops it
    (O(state=absent)).
  - A slot in use (a standby streams from it) is never dropped; the task fails naming the process that
    uses it, and changes nothing.
  - Meant for the slots a former primary keeps after a switchover; on a standby they are inactive and
    would keep WAL in its C(pg_wal) for ever. The M(dbarch.postgresql.standby) module creates the slot a
    standby streams from on its primary.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  name:
    description: The slot name (1-63 lower-case letters, digits or C(_)).
    type: str
    required: true
  state:
    description: V(present) (created when missing) or V(absent) (dropped when it exists and is not in use).
    type: str
    choices: [present, absent]
    default: present
  immediately_reserve:
    description:
      - Whether a created slot reserves WAL from now on, or only once a standby first streams from it.
    type: bool
    default: true
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Reads the slot and reports what it would do; creates and drops nothing.
  diff_mode:
    support: full
    description: The slot's row (C(pg_replication_slots)) before and after.
notes:
  - Needs a superuser or a role with the C(REPLICATION) attribute.
  - Works on a primary and on a standby (physical slots only).
seealso:
  - module: dbarch.postgresql.standby
  - module: dbarch.postgresql.replication_info
"""

EXAMPLES = r"""
- name: Drop the slot a former standby left on the demoted primary
  dbarch.postgresql.replication_slot:
    name: db2
    state: absent

- name: A slot for a standby that will be cloned later
  dbarch.postgresql.replication_slot:
    name: db3
"""

RETURN = r"""
action:
  description: V(create), V(drop) or V(none) (in check mode, what it would do).
  returned: always
  type: str
  sample: drop
why:
  description: What the module found.
  returned: always
  type: str
before:
  description:
    - The slot's row before (C(slot_name), C(slot_type), C(active), C(active_pid), C(restart_lsn)), null when
      missing.
  returned: always
  type: dict
after:
  description: The slot's row after, null when there is none.
  returned: always
  type: dict
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import slots


def main():
    module = DbarchModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=list(slots.STATES)),
            immediately_reserve=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def work(session):
        return slots.converge(
            session,
            params["name"],
            state=params["state"],
            immediately_reserve=params["immediately_reserve"],
            check_mode=module.check_mode,
        )

    result, queries = module.run(work)
    if module._diff and result["changed"]:
        result["diff"] = dict(before=result["before"] or {}, after=result["after"] or {})
    module.exit_json(queries=queries, **result)


if __name__ == "__main__":
    main()
