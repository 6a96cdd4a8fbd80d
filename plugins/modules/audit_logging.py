#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: audit_logging
short_description: Enforce the logging settings and the pgaudit configuration a security audit expects
version_added: "0.3.0"
description:
  - Brings the server's logging to what an audit reads, with C(ALTER SYSTEM) and a reload through the
    collection's settings engine (the one of M(dbarch.postgresql.setting)), C(log_connections),
    C(log_disconnections), a C(log_line_prefix) that names time, process, user, database, client address and
    application, C(log_statement) (C(ddl) by default), C(log_lock_waits), optionally
    C(log_min_duration_statement) and C(log_destination).
  - With O(pgaudit=true), adds C(pgaudit) to C(shared_preload_libraries) (keeping the libraries already
    there), and once the library is loaded sets C(pgaudit.log) and its companions and creates the extension.
    Loading it needs a restart, done only with O(restart=true), through C(pg_ctl) or the systemd unit;
    otherwise RV(pending_restart) says so and the pgaudit settings are reported as pending in RV(pgaudit).
  - Compares first, so a second run changes nothing.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  log_connections:
    description: Log each connection attempt and authorization.
    type: bool
    default: true
  log_disconnections:
    description: Log each session end with its duration.
    type: bool
    default: true
  log_line_prefix:
    description: The prefix of each log line (read back by M(dbarch.postgresql.audit_log_info)).
    type: str
    default: "%m [%p] %q%u@%d %h %a: "
  log_statement:
    description: Which statements to log.
    type: str
    choices: [none, ddl, mod, all]
    default: ddl
  log_lock_waits:
    description: Log lock waits longer than C(deadlock_timeout).
    type: bool
    default: true
  log_min_duration_statement:
    description: Log statements slower than this (C(250ms), C(1s)); unset leaves it as it is.
    type: str
  log_destination:
    description: C(stderr), C(csvlog), C(jsonlog) (16+) or a list of them; unset leaves it as it is.
    type: str
  settings:
    description: More settings to enforce at the same time (name to value).
    type: dict
    default: {}
  pgaudit:
    description: Configure pgaudit (the extension must be installed on the server).
    type: bool
    default: false
  pgaudit_log:
    description: The statement classes pgaudit logs (C(pgaudit.log)).
    type: list
    elements: str
    default: [ddl, role]
  pgaudit_log_parameter:
    description: Also log statement parameters (they may hold personal data).
    type: bool
    default: false
  pgaudit_log_relation:
    description: One line per relation a statement touches.
    type: bool
    default: true
  restart:
    description: Restart the server when that is needed to load pgaudit (never otherwise).
    type: bool
    default: false
  data_dir:
    description: For the restart, the data folder (default the running server's C(data_directory)).
    type: path
  service:
    description: For the restart, the systemd unit (default C(pg_ctl) on the data folder, or Debian's unit).
    type: str
  restart_timeout:
    description: Seconds to wait for the stop and for the start.
    type: int
    default: 120
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Reports the settings that would change and whether a restart would be needed.
  diff_mode:
    support: full
    description: The settings before and after.
notes:
  - Needs a superuser (C(ALTER SYSTEM), C(CREATE EXTENSION pgaudit)). The restart runs on the host of the
    server, as the owner of its data folder.
seealso:
  - module: dbarch.postgresql.audit_log_info
  - module: dbarch.postgresql.setting
"""

EXAMPLES = r"""
- name: Audit logging with pgaudit, restarting once to load it
  dbarch.postgresql.audit_logging:
    pgaudit: true
    pgaudit_log: [ddl, role]
    restart: true
  become: true
  become_user: postgres
"""

RETURN = r"""
changed_settings:
  description: The settings (and C(CREATE EXTENSION pgaudit)) that were (check mode, would be) changed.
  returned: always
  type: list
  elements: str
pending_restart:
  description: Settings that wait for a restart.
  returned: always
  type: list
  elements: str
restarted:
  description: Whether the server was restarted.
  returned: always
  type: bool
pgaudit:
  description:
    - C(enabled), C(loaded) (the library), C(extension) (created), C(pending) (settings waiting for the load).
  returned: always
  type: dict
settings:
  description: Per setting, C(before), C(after) and whether it C(changed).
  returned: always
  type: dict
actions:
  description: What was done besides settings (the restart).
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
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import control
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import node as nd
from ansible_collections.dbarch.postgresql.plugins.module_utils.security import audit_logging as al


def main():
    module = DbarchModule(
        argument_spec=dict(
            log_connections=dict(type="bool", default=True),
            log_disconnections=dict(type="bool", default=True),
            log_line_prefix=dict(type="str", default=al.DEFAULT_PREFIX),
            log_statement=dict(type="str", default="ddl", choices=["none", "ddl", "mod", "all"]),
            log_lock_waits=dict(type="bool", default=True),
            log_min_duration_statement=dict(type="str"),
            log_destination=dict(type="str"),
            settings=dict(type="dict", default={}),
            pgaudit=dict(type="bool", default=False),
            pgaudit_log=dict(type="list", elements="str", default=["ddl", "role"]),
            pgaudit_log_parameter=dict(type="bool", default=False),
            pgaudit_log_relation=dict(type="bool", default=True),
            restart=dict(type="bool", default=False),
            data_dir=dict(type="path"),
            service=dict(type="str"),
            restart_timeout=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    p = module.params
    module.require_absolute("data_dir")
    session = module.connect()
    queries = []

    def restart():
        server_dir = session.scalar("SELECT current_setting('data_directory')")
        located = control.locate(
            data_dir=p["data_dir"],
            service=p["service"],
            port=session.conn.info.port,
            server_data_dir=server_dir,
        )
        node = nd.Node(located["data_dir"], located["bindir"], located["service"])
        queries.extend(session.queries)
        session.close()
        node.stop(p["restart_timeout"])
        node.start(p["restart_timeout"])

    def reconnect():
        new = module.connect()
        return new

    try:
        wanted = al.logging_settings(
            log_connections=p["log_connections"],
            log_disconnections=p["log_disconnections"],
            log_line_prefix=p["log_line_prefix"],
            log_statement=p["log_statement"],
            log_lock_waits=p["log_lock_waits"],
            log_min_duration_statement=p["log_min_duration_statement"],
            log_destination=p["log_destination"],
            extra=p["settings"],
        )
        out = al.converge(
            session,
            wanted,
            pgaudit=p["pgaudit"],
            pgaudit_wanted=al.pgaudit_settings(
                p["pgaudit_log"],
                log_parameter=p["pgaudit_log_parameter"],
                log_relation=p["pgaudit_log_relation"],
            ),
            restart=p["restart"],
            restart_fn=restart,
            reconnect=reconnect,
            check_mode=module.check_mode,
        )
    except DbarchError as exc:
        module.fail_from(exc, module.session)
    last = out.pop("session")
    queries.extend(last.queries)  # the session after a restart, or the only one
    last.close()
    result = dict(
        changed=bool(out["changes"]) or out["restarted"],
        changed_settings=out["changes"],
        pending_restart=out["pending_restart"],
        restarted=out["restarted"],
        pgaudit=out["pgaudit"],
        settings=out["details"],
        actions=out["actions"],
        queries=queries,
    )
    if module._diff and out["changes"]:
        result["diff"] = al.diff(out)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
