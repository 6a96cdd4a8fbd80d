#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: archive_check
short_description: Check that WAL archiving works, optionally forcing a WAL switch and waiting for it
version_added: "0.2.0"
description:
  - Reads C(pg_stat_archiver) and fails when the last archive attempt failed (a failure newer than the
    last success), naming the WAL file, the time, the C(archive_command) and where the server logs the
    command's own error.
  - With O(switch_wal), forces a WAL switch (C(pg_switch_wal())) first and waits until the archiver has
    archived that segment, or fails as soon as it fails on it.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  switch_wal:
    description:
      - Force a WAL switch and wait for the archiver to archive the segment it closed.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for the archiver with O(switch_wal).
    type: int
    default: 60
  require_archiving:
    description: Fail when C(archive_mode) is off.
    type: bool
    default: true
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Only reads C(pg_stat_archiver); no WAL switch.
  diff_mode:
    support: none
    description: A WAL switch has no before and after.
notes:
  - A WAL switch closes the current segment early; on an idle server it does nothing, and the module
    then checks the segment switched before.
seealso:
  - module: dbarch.postgresql.setting
"""

EXAMPLES = r"""
- name: Archiving works (a segment is archived now)
  dbarch.postgresql.archive_check:
    switch_wal: true
    timeout: 120
"""

RETURN = r"""
archiver:
  description:
    - C(pg_stat_archiver) (C(archived_count), C(last_archived_wal), C(last_archived_time), C(failed_count),
      C(last_failed_wal), C(last_failed_time)), C(archive_mode), C(archive_command) and C(failing).
  returned: always
  type: dict
switched_segment:
  description: With O(switch_wal), the WAL segment the switch closed.
  returned: when O(switch_wal) ran
  type: str
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
    spec = dict(
        switch_wal=dict(type="bool", default=False),
        timeout=dict(type="int", default=60),
        require_archiving=dict(type="bool", default=True),
    )
    module = DbarchModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    session = module.connect()
    result = dict(changed=False)
    try:
        state = st.archiver_state(session)
        if p["require_archiving"] and state["archive_mode"] == "off":
            module.fail_json(
                msg="archive_mode is off: WAL is not archived, so no point-in-time recovery is possible. Set "
                "archive_mode (dbarch.postgresql.setting) and restart the server.",
                archiver=state,
                queries=session.queries,
            )
        if state["failing"]:
            module.fail_json(msg=st.failure_message(state), archiver=state, queries=session.queries)
        if p["switch_wal"] and not module.check_mode and not state["in_recovery"]:
            segment, state, ok = st.switch_and_wait(session, timeout=p["timeout"])
            result.update(changed=True, switched_segment=segment)
            if not ok:
                module.fail_json(
                    msg=st.failure_message(state, segment), archiver=state, queries=session.queries, **result
                )
    except DbarchError as exc:
        module.fail_from(exc, session)
    finally:
        session.close()
    module.exit_json(archiver=state, queries=session.queries, **result)


if __name__ == "__main__":
    main()
