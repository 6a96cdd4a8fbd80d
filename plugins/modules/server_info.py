#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: server_info
short_description: Facts about a PostgreSQL server
version_added: "0.1.0"
description:
  - Reads the server's version, whether it is in recovery, its replication role, key
    settings (with C(pending_restart)), databases and their sizes, installed and
    available extensions, standbys, the WAL receiver and replication slots.
  - Read-only; never reports a change. Works with the C(pg_monitor) role; what the login
    role may not read is listed in RV(checks_skipped) instead of failing.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  settings:
    description:
      - Setting names to read on top of the key settings the module always reads.
    type: list
    elements: str
    default: []
  all_settings:
    description:
      - Read every row of C(pg_settings).
    type: bool
    default: false
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.attributes.read_only
"""

EXAMPLES = r"""
- name: Read the server's facts
  dbarch.postgresql.server_info:
    login_host: db1.example.com
    login_user: monitor
    login_password: "{{ vault_monitor_password }}"
  register: server

- name: Stop when a restart is pending
  ansible.builtin.assert:
    that: server.pending_restart | length == 0
    fail_msg: "Settings waiting for a restart: {{ server.pending_restart | join(', ') }}"

- name: All settings, connection taken from module_defaults
  module_defaults:
    group/dbarch.postgresql.all:
      login_host: "{{ inventory_hostname }}"
      login_user: postgres
  dbarch.postgresql.server_info:
    all_settings: true
"""

RETURN = r"""
version:
  description: Server version.
  returned: always
  type: dict
  sample: {full: "PostgreSQL 16.4 on x86_64-pc-linux-gnu", text: "16.4", num: 160004, major: 16,
           supported: true, short: "16.4"}
in_recovery:
  description: Whether the server is a standby (in recovery).
  returned: always
  type: bool
role:
  description: C(primary) or C(standby).
  returned: always
  type: str
settings:
  description: Settings by name, each with setting, unit, value, source, context, pending_restart.
  returned: always
  type: dict
pending_restart:
  description: Names of settings changed in the configuration that wait for a server restart.
  returned: always
  type: list
  elements: str
databases:
  description: Databases (templates excluded) with owner, encoding, size in bytes and XID age.
  returned: always
  type: list
  elements: dict
extensions:
  description: C(installed) (name -> version in the connected database), C(available) and C(preloaded).
  returned: always
  type: dict
replication:
  description: C(role), and C(standbys) on a primary or C(wal_receiver) on a standby; C(slots).
  returned: always
  type: dict
privileges:
  description: Whether the login role is superuser, can read all settings, can read all statistics.
  returned: always
  type: dict
checks_skipped:
  description: Checks not done for lack of privilege, each with C(check) and C(reason).
  returned: always
  type: list
  elements: dict
timeline:
  description: Timeline of the latest checkpoint.
  returned: always
  type: int
system_identifier:
  description: The cluster's system identifier (same on a primary and its physical standbys).
  returned: always
  type: str
uptime_seconds:
  description: Seconds since the postmaster started.
  returned: always
  type: int
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.server import gather


def main():
    spec = dict(
        settings=dict(type="list", elements="str", default=[]),
        all_settings=dict(type="bool", default=False),
    )
    module = DbarchModule(argument_spec=spec, supports_check_mode=True)
    facts, queries = module.run(
        lambda session: gather(
            session, settings=module.params["settings"], all_settings=module.params["all_settings"]
        ),
    )
    module.exit_json(changed=False, queries=queries, **facts)


if __name__ == "__main__":
    main()
