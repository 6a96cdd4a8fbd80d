#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pgbouncer_info
short_description: PgBouncer's pools, databases, stats and config from its admin console; pool reachability
version_added: "0.2.0"
description:
  - Reads PgBouncer's admin console with C(SHOW VERSION), C(SHOW DATABASES), C(SHOW POOLS), C(SHOW STATS)
    and C(SHOW CONFIG). Sends no other command; never changes anything and always reports C(changed=false).
  - With O(pid_file), first checks that the process named in PgBouncer's pid file is alive, and returns
    RV(running)=false without touching the console when it is not (the role decides from this whether to
    start PgBouncer or to reload it).
  - With O(check_pools), logs in through PgBouncer to each pool named there as O(admin_user) and runs
    C(pg_is_in_recovery()) and a call of the lookup function that C(auth_query) uses. This proves that
    PgBouncer reaches the server as its C(auth_user) (TLS client certificate or other), that the role may
    run the function, and whether the pool's server is a primary or a standby (RV(checks)).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  pid_file:
    description:
      - PgBouncer's C(pidfile), an absolute path. When given and no live process is named there, the module
        returns RV(running)=false and reads nothing else.
    type: path
  check_pools:
    description:
      - Pools to log in to through PgBouncer (see RV(checks)). A paused pool would hold the login, so leave
        it out.
    type: list
    elements: str
    default: []
  lookup_schema:
    description:
      - Schema of the C(auth_query) lookup function (C(<schema>.user_lookup(text))) that O(check_pools)
        calls. Null to skip the call.
    type: str
    default: pgbouncer
extends_documentation_fragment:
  - dbarch.postgresql.pgbouncer_console
  - dbarch.postgresql.connection
  - dbarch.postgresql.attributes.read_only
notes:
  - The connection options of the collection (O(login_host)...) are accepted and not used.
seealso:
  - module: dbarch.postgresql.pgbouncer
  - name: PgBouncer SHOW commands
    description: What each column of the SHOW commands means.
    link: https://www.pgbouncer.org/usage.html
"""

EXAMPLES = r"""
- name: Pools and clients waiting on PgBouncer
  dbarch.postgresql.pgbouncer_info:
    admin_password: "{{ vault_pgbouncer_admin_password }}"
  register: bouncer

- name: Say which pools have clients waiting
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.cl_waiting }} clients waiting, longest {{ item.value.maxwait }} s"
  loop: "{{ bouncer.pools | dict2items | selectattr('value.cl_waiting', 'gt', 0) }}"

- name: The read-write pool must reach a primary after the switchover
  dbarch.postgresql.pgbouncer_info:
    admin_password: "{{ vault_pgbouncer_admin_password }}"
    check_pools: [shop]
  register: after
  failed_when: not after.checks.shop.ok or after.checks.shop.in_recovery
"""

RETURN = r"""
running:
  description: Whether PgBouncer runs (the pid file's process is alive, or the console answered).
  returned: always
  type: bool
pid:
  description: Process id from O(pid_file).
  returned: when O(pid_file) names one
  type: int
version:
  description: C(SHOW VERSION).
  returned: when running
  type: str
  sample: PgBouncer 1.18.0
databases:
  description: C(SHOW DATABASES) rows (C(name), C(host), C(port), C(database), C(pool_size), C(paused), ...).
  returned: when running
  type: list
  elements: dict
pools:
  description:
    - C(SHOW POOLS) summed per pool (C(cl_active), C(cl_waiting), C(sv_active), C(sv_idle), C(sv_used),
      C(sv_tested), C(sv_login), C(maxwait) in seconds, C(users), C(pool_mode)).
  returned: when running
  type: dict
pool_rows:
  description: C(SHOW POOLS) rows as PgBouncer prints them (one per pool and user).
  returned: when running
  type: list
  elements: dict
stats:
  description: C(SHOW STATS) rows (totals and averages per pool).
  returned: when running
  type: list
  elements: dict
config:
  description: C(SHOW CONFIG) as setting name to value.
  returned: when running
  type: dict
checks:
  description:
    - Per pool of O(check_pools), C(ok), C(in_recovery) (the server behind the pool is a standby) and
      C(error).
  returned: when running
  type: dict
  sample: {shop: {ok: true, in_recovery: false}, shop_ro: {ok: true, in_recovery: true}}
commands:
  description: The console commands sent.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer as eng


def main():
    spec = dict(
        pid_file=dict(type="path"),
        check_pools=dict(type="list", elements="str", default=[]),
        lookup_schema=dict(type="str", default="pgbouncer"),
    )
    spec.update(eng.CONSOLE_ARGSPEC)
    module = DbarchModule(argument_spec=spec, supports_check_mode=True)
    module.require_absolute("pid_file")
    params = module.params
    result = dict(changed=False, running=False, commands=[])
    if params["pid_file"]:
        running, pid = eng.pid_running(params["pid_file"])
        if pid is not None:
            result["pid"] = pid
        if not running:
            module.exit_json(**result)
    console = eng.console_from(params, "pgbouncer_info")
    try:
        result.update(eng.info(console))
        result["running"] = True
        result["checks"] = eng.check_pools(
            params["admin_host"],
            params["admin_port"],
            params["admin_user"],
            params["admin_password"],
            params["check_pools"],
            lookup_schema=params["lookup_schema"],
            connect_timeout=params["admin_connect_timeout"],
        )
    except DbarchError as exc:
        module.fail_from(exc, commands=list(console.commands))
    finally:
        console.close()
    result["commands"] = list(console.commands)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
