#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: connections_info
short_description: Client sessions of a PostgreSQL server against its connection slots, with findings
version_added: "0.3.0"
description:
  - Counts the client sessions of C(pg_stat_activity) against C(max_connections) minus the reserved
    slots (C(superuser_reserved_connections), and C(reserved_connections) on PostgreSQL 16 and later)
    and returns the utilization in percent.
  - Groups them by state, user, database, application and client address; reports how long idle and
    idle-in-transaction sessions have been so, the oldest open transaction and the blocking chains
    (C(pg_blocking_pids)) of sessions waiting on locks.
  - With O(pgbouncer=true), also reads PgBouncer's pools (C(SHOW POOLS)) from its admin console.
  - Judges it at the health dashboard's thresholds (70 and 90 percent) and returns RV(findings).
  - Read-only; never reports a change. Works as a role with C(pg_monitor); without
    C(pg_read_all_stats) other roles' sessions are counted but not described (RV(checks_skipped)).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  utilization_warning_percent:
    description:
      - Utilization of the usable slots, in percent, at which C(CONN-UTIL-001) is C(medium).
    type: float
    default: 70
  utilization_critical_percent:
    description:
      - Utilization, in percent, at which C(CONN-UTIL-001) is C(high).
    type: float
    default: 90
  idle_in_transaction_seconds:
    description:
      - Seconds a session may stay idle in transaction before it gets a C(CONN-IDLE-TX-001) finding.
    type: float
    default: 300
  pgbouncer:
    description:
      - Read PgBouncer's pools from the admin console named by O(admin_host), O(admin_port),
        O(admin_user) and O(admin_password). Clients waiting in a pool get a C(CONN-POOL-001) finding.
    type: bool
    default: false
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
  - dbarch.postgresql.pgbouncer_console
  - dbarch.postgresql.attributes.read_only
notes:
  - Only client backends count against C(max_connections); WAL senders, autovacuum and background
    workers have slots of their own and are returned apart in RV(other_backends).
  - The module's own session is one of the sessions counted.
  - The connection runbook (C(playbooks/runbook_connections.yml)) and the rules are in
    C(docs/connections.md).
seealso:
  - module: dbarch.postgresql.connections
  - module: dbarch.postgresql.health_info
"""

EXAMPLES = r"""
- name: Sessions and capacity of the primary
  dbarch.postgresql.connections_info:
    login_host: db1.example.com
    login_user: monitor
    login_password: "{{ vault_monitor_password }}"
  register: conns

- name: Show the utilization
  ansible.builtin.debug:
    msg: "{{ conns.total }} of {{ conns.usable }} slots ({{ conns.utilization_percent }} %)"

- name: With PgBouncer's pools, failing when a finding is high
  dbarch.postgresql.connections_info:
    pgbouncer: true
    admin_host: 127.0.0.1
    admin_port: 6432
    admin_user: dbarch_pgbouncer
    admin_password: "{{ vault_pgbouncer_admin_password }}"
    fail_on: high
"""

RETURN = r"""
total:
  description: Client sessions (backend type C(client backend)), this module's own included.
  returned: always
  type: int
max_connections:
  description: The server's C(max_connections).
  returned: always
  type: int
reserved:
  description: Slots reserved from C(max_connections) (C(superuser_reserved_connections) plus, on 16+,
    C(reserved_connections)).
  returned: always
  type: int
reserved_by_setting:
  description: The reserved slots per setting.
  returned: always
  type: dict
usable:
  description: C(max_connections) minus RV(reserved), the slots ordinary roles may use.
  returned: always
  type: int
available:
  description: Usable slots still free.
  returned: always
  type: int
utilization_percent:
  description: RV(total) over RV(usable), in percent (null when no slot is usable).
  returned: always
  type: float
sessions:
  description:
    - Every client session, each with C(pid), C(user), C(database), C(application_name),
      C(client_addr), C(backend_type), C(state), C(wait_event_type), C(wait_event), C(idle_seconds)
      (since an idle or idle-in-transaction session last changed state, else null), C(xact_seconds)
      (age of its open transaction, else null), C(query_seconds), C(connected_seconds),
      C(state_seconds), C(own) (the module's session), C(blocked_by) and C(query) (cut to 200 characters).
  returned: always
  type: list
  elements: dict
by_state:
  description: Client sessions per state.
  returned: always
  type: dict
by_user:
  description: Client sessions per user.
  returned: always
  type: dict
by_database:
  description: Client sessions per database.
  returned: always
  type: dict
by_application:
  description: Client sessions per application_name.
  returned: always
  type: dict
by_client:
  description: Client sessions per client address (C((local socket)) for Unix-socket sessions).
  returned: always
  type: dict
idle:
  description: Idle sessions, C(count) and C(max_seconds).
  returned: always
  type: dict
idle_in_transaction:
  description: Sessions idle in transaction (or in an aborted one), C(count) and C(max_seconds).
  returned: always
  type: dict
oldest_transaction:
  description: The session with the oldest open transaction (null when none is open).
  returned: always
  type: dict
blocking:
  description:
    - Every session waiting on another's lock, longest first, with C(pid), C(user), C(database),
      C(application_name), C(waiting_seconds), C(blocked_by) (C(pg_blocking_pids)), C(root_blockers)
      (the sessions at the head of the chain, with their state and transaction age) and C(query).
  returned: always
  type: list
  elements: dict
other_backends:
  description: Sessions that are not client backends, per backend type (walsender, autovacuum worker, ...).
  returned: always
  type: dict
pgbouncer:
  description: With O(pgbouncer=true), C(pools) (SHOW POOLS summed per database) and C(pool_rows).
  returned: when O(pgbouncer=true)
  type: dict
version:
  description: Server version, with C(num), C(major) and C(text).
  returned: always
  type: dict
findings:
  description:
    - Findings, most severe first. Rules C(CONN-UTIL-001), C(CONN-IDLE-TX-001), C(CONN-BLOCK-001),
      C(CONN-POOL-001).
  returned: always
  type: list
  elements: dict
thresholds:
  description: The thresholds applied.
  returned: always
  type: dict
privileges:
  description: Whether the login role is superuser and can read all statistics.
  returned: always
  type: dict
checks_skipped:
  description: What was not read for lack of privilege, each with C(check) and C(reason).
  returned: always
  type: list
  elements: dict
unused_suppressions:
  description: Suppressions that matched no finding.
  returned: always
  type: list
  elements: dict
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.health import activity
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer as bouncer

ARGUMENT_SPEC = dict(
    utilization_warning_percent=dict(type="float", default=70),
    utilization_critical_percent=dict(type="float", default=90),
    idle_in_transaction_seconds=dict(type="float", default=300),
    pgbouncer=dict(type="bool", default=False),
)
ARGUMENT_SPEC.update(bouncer.CONSOLE_ARGSPEC)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, findings=True, supports_check_mode=True)
    p = module.params
    try:
        limits = activity.limits(**dict((k, p[k]) for k in activity.DEFAULT_LIMITS))
    except activity.ActivityError as exc:
        module.fail_from(exc)
    facts, queries = module.run(activity.read)
    facts.pop("_raw", None)
    pools = None
    if p["pgbouncer"]:
        console = bouncer.console_from(p, "connections_info")
        try:
            pools = bouncer.pool_summary(console.show("POOLS"))
            facts["pgbouncer"] = dict(pools=pools, commands=list(console.commands))
        except DbarchError as exc:
            module.fail_from(exc, queries=queries)
        finally:
            console.close()
    found, unused = module.suppress(activity.findings(facts, limits, pools))
    module.exit_findings(found, thresholds=limits, unused_suppressions=unused, queries=queries, **facts)


if __name__ == "__main__":
    main()
