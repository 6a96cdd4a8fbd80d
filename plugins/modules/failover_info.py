#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: failover_info
short_description: Confirm that a PostgreSQL primary is down and pick the standby to promote
version_added: "0.3.0"
description:
  - The read-only first step of an unplanned failover (C(playbooks/failover.yml)). Changes nothing.
  - Confirms that O(old_primary) is down. It is tried O(checks) times, O(check_interval) seconds
    apart, and is down only when no server answered any attempt. A server that answers at all, even
    refusing the login, is alive, the same test as the M(dbarch.postgresql.promote) module's
    C(old_primary) guard. The checks stop at the first attempt that gets an answer.
  - Then reads every server of O(standbys). For each it gets the recovery state, timeline, WAL
    received and replayed, C(primary_slot_name), the host and port of C(primary_conninfo) and
    C(data_directory).
  - Ranks the standbys that could be read, most advanced first. That is the newest timeline, then the
    most WAL held (received, or replayed when more), then the most replayed. Inventory order breaks
    ties. RV(candidate) is the first one not in O(exclude).
  - Says, in RV(refusal), why a failover must not go on. The old primary answers. A server of
    O(standbys) is already out of recovery (someone promoted it). No standby can be read.
    RV(ready) is true only when there is no refusal. The module itself does not fail on a refusal;
    the playbook does.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  old_primary:
    description:
      - The primary that failed. Keys not given are taken from the module's connection options
        (user, password, database, SSL mode).
    type: dict
    required: true
    suboptions:
      name:
        description: Its name in the result (the inventory host). Default C(host:port).
        type: str
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: Port.
        type: int
        default: 5432
      user:
        description: Role to connect as.
        type: str
      password:
        description: Its password.
        type: str
      dbname:
        description: Database to connect to.
        type: str
      connect_timeout:
        description: Seconds one check waits for an answer (a host that is gone does not answer).
        type: int
        default: 3
  standbys:
    description:
      - The other servers of the group, each a connection like O(old_primary) (C(connect_timeout)
        default 5). Include every standby, so that none holding more WAL than the candidate is
        overlooked.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Its name in the result (the inventory host). Default C(host:port).
        type: str
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: Port.
        type: int
        default: 5432
      user:
        description: Role to connect as.
        type: str
      password:
        description: Its password.
        type: str
      dbname:
        description: Database to connect to.
        type: str
      connect_timeout:
        description: Seconds to wait for the connection.
        type: int
        default: 5
  checks:
    description:
      - How many consecutive checks of O(old_primary) must find no server before it counts as down.
    type: int
    default: 3
  check_interval:
    description: Seconds between two checks.
    type: float
    default: 2
  exclude:
    description:
      - Names (of O(standbys)) never to choose as RV(candidate), such as a delayed standby or one in
        another region. They are still read and ranked.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes.
notes:
  - O(login_host) and O(login_port) are not used; the servers are those of O(old_primary) and
    O(standbys). O(login_user), O(login_password), O(login_db), O(ssl_mode) and O(ca_cert) are the
    defaults of their keys.
  - C(primary_conninfo) and C(data_directory) are read only with a superuser or C(pg_read_all_settings);
    without, C(upstream) and C(data_directory) of RV(standbys) are null.
  - Passwords of O(old_primary) and O(standbys) are never shown.
seealso:
  - module: dbarch.postgresql.promote
  - module: dbarch.postgresql.standby
  - module: dbarch.postgresql.primary_check
"""

EXAMPLES = r"""
- name: Is db1 down, and which standby has the most WAL?
  dbarch.postgresql.failover_info:
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
    old_primary: {name: db1, host: db1.example.com}
    standbys:
      - {name: db2, host: db2.example.com}
      - {name: db3, host: db3.example.com}
    checks: 3
    check_interval: 2
  register: failover

- name: Stop unless a failover may go on
  ansible.builtin.assert:
    that: failover.ready
    fail_msg: "{{ failover.refusal }}"
"""

RETURN = r"""
ready:
  description: Whether a failover may go on (the old primary is down, a candidate was found).
  returned: always
  type: bool
refusal:
  description: Why a failover must not go on, or null.
  returned: always
  type: str
candidate:
  description: The name of the standby to promote, or null.
  returned: always
  type: str
  sample: db2
old_primary:
  description:
    - C(name), C(down), C(checks) (each C(attempt), C(status), C(answered), C(seconds)), C(seconds)
      (all checks), and C(state) (C(in_recovery), C(timeline), LSNs) when a server answered and could
      be read.
  returned: always
  type: dict
standbys:
  description:
    - Each server of O(standbys) in the order given, with C(name), C(address), C(reachable),
      C(status), and when read C(in_recovery), C(timeline), C(receive_lsn), C(replay_lsn),
      C(replay_pause_state), C(slot_name) (its C(primary_slot_name)), C(upstream) (C(host), C(port) of
      its C(primary_conninfo)), C(data_directory), C(synchronous_standby_names); C(rank) (1 is the most
      advanced) and C(verdict).
  returned: always
  type: list
  elements: dict
detection_seconds:
  description: Seconds the checks of the old primary took.
  returned: always
  type: float
msg:
  description: One line saying what was found.
  returned: always
  type: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import failover


def _server_spec(timeout):
    return dict(
        name=dict(type="str"),
        host=dict(type="str", required=True),
        port=dict(type="int", default=5432),
        user=dict(type="str"),
        password=dict(type="str", no_log=True),
        dbname=dict(type="str"),
        connect_timeout=dict(type="int", default=timeout),
    )


ARGUMENT_SPEC = dict(
    old_primary=dict(type="dict", required=True, options=_server_spec(3)),
    standbys=dict(type="list", elements="dict", required=True, options=_server_spec(5)),
    checks=dict(type="int", default=failover.DEFAULT_CHECKS),
    check_interval=dict(type="float", default=failover.DEFAULT_INTERVAL),
    exclude=dict(type="list", elements="str", default=[]),
)


def connection(module, server):
    """The collection's connection options for one server: its own keys, the rest from the module's."""
    p = module.params
    return dict(
        name=server.get("name"),
        login_host=server["host"],
        login_port=server["port"],
        login_user=server.get("user") or p.get("login_user"),
        login_password=server.get("password") or p.get("login_password"),
        login_db=server.get("dbname") or p.get("login_db") or "postgres",
        ssl_mode=p.get("ssl_mode"),
        ca_cert=p.get("ca_cert"),
        connect_timeout=server["connect_timeout"],
    )


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    for server in p["standbys"] + [p["old_primary"]]:
        if server.get("password"):
            module.no_log_values.add(server["password"])
    try:
        result = failover.run(
            connection(module, p["old_primary"]),
            [connection(module, s) for s in p["standbys"]],
            checks=p["checks"],
            interval=p["check_interval"],
            exclude=p["exclude"],
        )
    except DbarchError as exc:
        module.fail_from(exc)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
