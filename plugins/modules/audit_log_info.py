#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: audit_log_info
short_description: Server log audit, failed logins, DDL, superuser sessions, unexpected clients
version_added: "0.3.0"
description:
  - Reads the PostgreSQL server log on the host for a time window, in csvlog format or stderr format with
    the server's own C(log_line_prefix) (read from the server and compiled into a pattern), and reports
    failed logins by role and client address, DDL (from C(log_statement) and from pgaudit's C(AUDIT) lines,
    password literals masked), superuser sessions by role and address, and connections from addresses
    outside O(expected_networks).
  - The log is O(log_file), else the server's current log file (C(pg_current_logfile())) and the rotated
    files beside it.
  - Works best with the settings M(dbarch.postgresql.audit_logging) enforces (C(log_connections), a prefix
    with C(%u), C(%d), C(%h)).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  log_file:
    description: The log file to read (absolute path on the host); default the server's current one.
    type: path
  log_format:
    description: The log's format; default C(csvlog) when C(log_destination) has it, else C(stderr).
    type: str
    choices: [stderr, csvlog]
  since:
    description: Start of the window, a duration back from now (C(30m), C(24h), C(7d)) or a timestamp in the
      log's time zone.
    type: str
    default: 24h
  until:
    description: End of the window (same forms); default now.
    type: str
  expected_networks:
    description: Client networks (CIDR) connections are expected from; others are reported.
    type: list
    elements: str
    default: []
  superusers:
    description: Roles counted as superusers; default the roles with C(rolsuper).
    type: list
    elements: str
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing has a before and after to show.
notes:
  - Runs on the server's host, as a user that may read the log (C(postgres)). C(pg_current_logfile()) needs a
    superuser or an C(EXECUTE) grant; otherwise give O(log_file).
seealso:
  - module: dbarch.postgresql.audit_logging
"""

EXAMPLES = r"""
- name: The last week of the log
  dbarch.postgresql.audit_log_info:
    since: 7d
    expected_networks: [10.0.0.0/8, 127.0.0.1/32]
  become: true
  become_user: postgres
  register: audit
"""

RETURN = r"""
failed_logins:
  description: Per role and address, C(count), C(first), C(last) and the C(reasons).
  returned: always
  type: list
  elements: dict
ddl:
  description:
    - DDL statements (the last 200) with C(time), C(user), C(database), C(address), C(command), C(statement),
      C(source) (C(pgaudit) or C(log_statement)).
  returned: always
  type: list
  elements: dict
ddl_count:
  description: How many DDL statements the window holds.
  returned: always
  type: int
superuser_sessions:
  description: Superuser sessions per role and address, with C(count), C(first), C(last).
  returned: always
  type: list
  elements: dict
unexpected_connections:
  description: Connections from outside O(expected_networks), per address, with C(count) and C(roles).
  returned: always
  type: list
  elements: dict
entries:
  description: Log entries in the window.
  returned: always
  type: int
files:
  description: The log files read.
  returned: always
  type: list
  elements: str
format:
  description: The log format read.
  returned: always
  type: str
window:
  description: C(since) and C(until) of the window, in the log's time zone.
  returned: always
  type: dict
checks_skipped:
  description: What could not be checked, with the reason.
  returned: always
  type: list
  elements: str
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.security import audit_log


def main():
    module = DbarchModule(
        argument_spec=dict(
            log_file=dict(type="path"),
            log_format=dict(type="str", choices=["stderr", "csvlog"]),
            since=dict(type="str", default="24h"),
            until=dict(type="str"),
            expected_networks=dict(type="list", elements="str", default=[]),
            superusers=dict(type="list", elements="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    module.require_absolute("log_file")

    def work(session):
        return audit_log.read(
            session,
            log_file=p["log_file"],
            log_format=p["log_format"],
            since=p["since"],
            until=p["until"],
            expected_networks=p["expected_networks"],
            superusers=p["superusers"],
        )

    result, queries = module.run(work)
    module.exit_json(changed=False, queries=queries, **result)


if __name__ == "__main__":
    main()
