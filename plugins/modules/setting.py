#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: setting
short_description: Set or reset PostgreSQL server settings with ALTER SYSTEM, reload, report restarts
version_added: "0.2.0"
description:
  - Brings a set of server settings to the wanted values with C(ALTER SYSTEM SET) (or C(ALTER SYSTEM
    RESET) for a null value), then calls C(pg_reload_conf()).
  - Compares before it changes anything, the way PostgreSQL reads values, so a second run changes
    nothing. The value compared with is the one C(ALTER SYSTEM) wrote into C(postgresql.auto.conf)
    (read from C(pg_file_settings)); a setting that file does not hold is compared with the value
    in effect (C(pg_settings)). Booleans (C(on), C(true), C(yes), C(1)...), numbers with units
    (C(1GB), C(5min), C(250ms)), enums (case-insensitive) and lists (C(shared_preload_libraries),
    C(search_path)) are normalised first.
  - Setting names are checked against C(pg_settings) (case-insensitively, as PostgreSQL does) and quoted as
    identifiers; values are passed as literals (list settings such as C(shared_preload_libraries) get one
    literal per element).
  - All values are validated before any is written, by type, allowed values and range from C(pg_settings), and
    for settings a session may set (contexts C(user) and C(superuser)) with C(SET LOCAL) in a transaction that
    is rolled back, which runs the server's own checks. The module fails with the list of exactly the invalid
    settings and writes nothing.
  - Never restarts the server. Settings that need one are returned in RV(pending_restart), from
    C(pg_settings.pending_restart) after the reload and from the C(postmaster) context of changed
    settings whose new value is not in effect yet.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  settings:
    description:
      - Setting name to value. A null value resets the setting (removes it from
        C(postgresql.auto.conf)). Booleans, numbers and lists are accepted and written the way
        PostgreSQL spells them.
    type: dict
    required: true
  reload_wait:
    description:
      - Seconds to wait, after the reload, for reloadable changes to show in C(pg_settings)
        (the reload is a signal, handled by each process shortly after).
    type: float
    default: 5
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description:
      - Reports RV(changed_settings) and the restarts the change would need; runs no ALTER SYSTEM.
  diff_mode:
    support: full
    description:
      - Shows the settings before and after (the C(postgresql.auto.conf) values, or the value in effect).
notes:
  - C(ALTER SYSTEM) needs a superuser, or on PostgreSQL 15 and later the C(ALTER SYSTEM) privilege on
    the parameter (C(GRANT ALTER SYSTEM ON PARAMETER ...)). Without the right to read C(pg_file_settings)
    every setting is compared with the value in effect.
  - A value only C(ALTER SYSTEM) can judge (of a setting a session cannot set) fails with PostgreSQL's own
    message; the settings written before it in the same run are put back as they were in
    C(postgresql.auto.conf), so nothing is written and nothing is reloaded.
seealso:
  - module: dbarch.postgresql.server_info
  - module: dbarch.postgresql.archive_check
"""

EXAMPLES = r"""
- name: WAL archiving with the collection's archive command
  dbarch.postgresql.setting:
    settings:
      archive_mode: true
      archive_command: "/usr/bin/python3 /usr/local/bin/dbarch-wal --repo /var/backups/pg archive %p %f"
  register: archiving

- name: Say when a restart is needed
  ansible.builtin.debug:
    msg: "Restart needed for {{ archiving.pending_restart | join(', ') }}"
  when: archiving.pending_restart | length > 0

- name: Memory settings (units as PostgreSQL takes them) and a reset
  dbarch.postgresql.setting:
    settings:
      work_mem: 64MB
      maintenance_work_mem: 1GB
      shared_preload_libraries: [pg_stat_statements, auto_explain]
      random_page_cost: null
"""

RETURN = r"""
changed_settings:
  description: Names of the settings that were (check mode, would be) changed.
  returned: always
  type: list
  elements: str
  sample: [archive_command]
pending_restart:
  description: Names of the wanted settings whose value takes effect only after a restart.
  returned: always
  type: list
  elements: str
  sample: [archive_mode]
restart_required:
  description: Whether RV(pending_restart) is not empty.
  returned: always
  type: bool
settings:
  description:
    - Per setting, C(before) (the C(postgresql.auto.conf) value or the value in effect), C(after), C(current)
      (C(current_setting()) when the module ran), C(context), C(unit), C(in_auto_conf) and C(changed).
  returned: always
  type: dict
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import settings as st
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


def main():
    module = DbarchModule(
        argument_spec=dict(
            settings=dict(type="dict", required=True),
            reload_wait=dict(type="float", default=5),
        ),
        supports_check_mode=True,
    )
    wanted = module.params["settings"]
    if not wanted:
        module.fail_json(msg="settings is empty: give at least one setting name and value")
    session = module.connect()
    result = dict(changed=False)
    try:
        planned = st.plan(session, wanted)
        if module.check_mode:
            restart = st.predicted_restart(planned, wanted)
            restart = sorted(
                set(restart) | {r["name"] for r in planned["rows"].values() if r["pending_restart"]}
            )
        else:
            restart = st.apply(session, planned, wanted, wait_seconds=module.params["reload_wait"])
    except DbarchError as exc:
        module.fail_from(exc, session)
    finally:
        session.close()
    result.update(
        changed=bool(planned["changes"]),
        changed_settings=planned["changes"],
        pending_restart=restart,
        restart_required=bool(restart),
        settings=planned["details"],
        queries=session.queries,
    )
    if module._diff and planned["changes"]:
        result["diff"] = st.diff(planned)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
