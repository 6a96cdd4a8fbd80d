#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pgbouncer
short_description: Repoint PgBouncer pools with PAUSE, RELOAD and RESUME, so clients wait instead of failing
version_added: "0.2.0"
description:
  - Points PgBouncer pools (its C([databases]) entries) at new servers through its admin console, the way a
    switchover or failover needs it. With O(state=present) the module rewrites the pool lines of
    O(config_file) (the main C(pgbouncer.ini) or a file it C(%include)s, as the
    M(dbarch.postgresql.pgbouncer) role sets up), then C(PAUSE)s the pools whose target changes (PgBouncer
    waits for their transactions in flight, up to O(pause_timeout), and holds new ones), C(RELOAD)s, checks
    with C(SHOW DATABASES) that PgBouncer serves the new target, and C(RESUME)s. Clients wait during the
    pause; none gets an error.
  - Whatever fails after a C(PAUSE), the pools this run paused are resumed before the module fails, and the
    message says so (or says to run C(RESUME) by hand when even that failed). A file written but not taken
    by PgBouncer is put back as it was.
  - For a switchover the pause must span the stop of the old primary and the promotion of the new one, which
    other tasks do. O(state=paused) C(PAUSE)s the pools and returns; O(state=resumed) with O(databases)
    rewrites the file, C(RELOAD)s, checks, and always C(RESUME)s. Between the two, clients wait (up to
    PgBouncer's C(query_wait_timeout)).
  - Only the pool lines named in O(databases) are touched; every other line, comment and pool of the file
    stays as it is, and a key of a pool line that O(databases) does not name (C(pool_size)...) keeps its
    value.
  - Idempotent. The same targets, already in the file and served by PgBouncer, change nothing and pause
    nothing. When the file holds the targets but PgBouncer still serves the old ones, the module pauses,
    reloads and resumes.
  - Read-only facts (C(SHOW POOLS), C(DATABASES), C(STATS), C(CONFIG)) come from
    M(dbarch.postgresql.pgbouncer_info).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  state:
    description:
      - V(present) brings the pools of O(databases) to their targets (PAUSE when O(pause), RELOAD, RESUME).
      - V(paused) C(PAUSE)s the pools O(aliases) (default the names in O(databases)) and leaves them paused.
      - V(resumed) rewrites the file and C(RELOAD)s when O(databases) is given, then C(RESUME)s the pools
        that are paused among O(aliases) (default the names in O(databases)).
      - V(reloaded) sends C(RELOAD) (always reported as a change; meant for handlers).
    type: str
    choices: [present, paused, resumed, reloaded]
    default: present
  config_file:
    description:
      - The file whose C([databases]) section the module rewrites, an absolute path on the PgBouncer host.
        Created (with a C([databases]) header) when missing. Needed with O(databases).
    type: path
  databases:
    description:
      - Pool name (the dbname clients ask PgBouncer for) to its target, a dict of PgBouncer keys, usually
        C(host), C(port) and C(dbname); also C(auth_user), C(pool_size), C(min_pool_size), C(reserve_pool),
        C(pool_mode), C(max_db_connections), C(client_encoding), C(datestyle), C(timezone). A key set to
        null is removed from the line; a pool set to null is removed from the file.
      - C(password) and C(user) are refused, so no secret ever lands in a PgBouncer file.
      - C(host) may list several hosts separated by commas; PgBouncer 1.18 then opens new server connections
        to them in turn (round robin) and cannot skip one that is down.
    type: dict
  aliases:
    description:
      - Pools to pause or resume (O(state=paused) or O(state=resumed)). Default the names in O(databases).
    type: list
    elements: str
  pause:
    description:
      - With O(state=present), C(PAUSE) the pools whose target changes before the C(RELOAD), so that no
        transaction runs on the old server while new ones start on the new one. V(false) only reloads, and
        transactions in flight finish on the old server, new ones go to the new one.
    type: bool
    default: true
  pause_timeout:
    description:
      - Seconds a C(PAUSE) may wait for the transactions in flight on a pool. When they run longer the
        module resumes the pool, changes nothing and fails, naming the pool.
    type: float
    default: 30
  apply:
    description:
      - V(reload) applies the change through the admin console.
      - V(file) only writes O(config_file), without the console; for a PgBouncer that is stopped and reads
        the file when it starts (the role's first run).
    type: str
    choices: [reload, file]
    default: reload
  file_owner:
    description:
      - OS user that owns O(config_file) when the module creates it (an existing file keeps its owner and
        mode). Default the user the module runs as.
    type: str
  file_mode:
    description:
      - Mode of O(config_file) when the module creates it.
    type: raw
    default: "0640"
  paused_at:
    description:
      - With O(state=resumed), the RV(paused_at) of the O(state=paused) run, so that RV(paused_seconds)
        covers the whole pause.
    type: float
extends_documentation_fragment:
  - dbarch.postgresql.pgbouncer_console
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description:
      - Reads the file and the console (C(SHOW) commands only); reports the pools it would pause, repoint
        and resume. Sends no C(PAUSE), C(RELOAD) or C(RESUME) and writes nothing.
  diff_mode:
    support: full
    description:
      - The targets of the pools named in O(databases), before and after.
notes:
  - The module runs on the PgBouncer host (it writes O(config_file) there) and reaches the console over TCP
    or the Unix socket. The connection options of the collection (O(login_host)...) are accepted and not
    used, so that one C(module_defaults) block for C(group/dbarch.postgresql.all) serves this module too.
  - PgBouncer holds the clients of a paused pool until C(query_wait_timeout) (default 120 s); keep the work
    between O(state=paused) and O(state=resumed) well under it.
  - Settings such as C(listen_port) need a restart, not a C(RELOAD); the role handles them.
seealso:
  - module: dbarch.postgresql.pgbouncer_info
  - module: dbarch.postgresql.pgbouncer_auth
  - name: PgBouncer admin console (PAUSE, RELOAD, RESUME)
    description: PgBouncer's usage page.
    link: https://www.pgbouncer.org/usage.html
"""

EXAMPLES = r"""
- name: Point the read-write pool at the new primary (PAUSE, RELOAD, RESUME in one step)
  dbarch.postgresql.pgbouncer:
    config_file: /etc/pgbouncer/databases.ini
    databases:
      shop: {host: 10.0.0.12, port: 5432, dbname: shop}
    admin_password: "{{ vault_pgbouncer_admin_password }}"

- name: Switchover, first half - hold the writers
  dbarch.postgresql.pgbouncer:
    state: paused
    aliases: [shop]
    pause_timeout: 20
    admin_password: "{{ vault_pgbouncer_admin_password }}"
  register: held

# ... stop the old primary cleanly, promote the standby (dbarch.postgresql.promote) ...

- name: Switchover, second half - point the pool at the new primary and let the writers go
  dbarch.postgresql.pgbouncer:
    state: resumed
    config_file: /etc/pgbouncer/databases.ini
    databases:
      shop: {host: 10.0.0.12, port: 5432, dbname: shop}
    paused_at: "{{ held.paused_at }}"
    admin_password: "{{ vault_pgbouncer_admin_password }}"
"""

RETURN = r"""
before:
  description: Pool name to its keys in the file before the run (null for a pool that was not there).
  returned: always
  type: dict
  sample: {shop: {host: 10.0.0.11, port: "5432", dbname: shop}}
after:
  description: Pool name to its keys in the file after the run (null for a pool removed).
  returned: always
  type: dict
  sample: {shop: {host: 10.0.0.12, port: "5432", dbname: shop}}
live_before:
  description: Pool name to the target PgBouncer served before the run (from C(SHOW DATABASES)).
  returned: when the console was used with O(databases)
  type: dict
live_after:
  description: Pool name to the target PgBouncer serves after the C(RELOAD).
  returned: when PgBouncer was reloaded
  type: dict
file_changed:
  description: Whether O(config_file) was (in check mode, would be) rewritten.
  returned: always
  type: bool
paused:
  description: Pools this run paused (in check mode, would pause).
  returned: always
  type: list
  elements: str
already_paused:
  description: With O(state=paused), pools that were paused before the run.
  returned: with O(state=paused)
  type: list
  elements: str
resumed:
  description: Pools this run resumed.
  returned: always
  type: list
  elements: str
reloaded:
  description: Whether C(RELOAD) was sent.
  returned: always
  type: bool
paused_seconds:
  description:
    - Seconds the pools were paused. With O(state=resumed), measured from O(paused_at) when it is given.
  returned: always
  type: float
paused_at:
  description:
    - Time (seconds since the epoch) the pause completed, to give as O(paused_at) to the O(state=resumed)
      run.
  returned: with O(state=paused) when pools were paused
  type: float
pools:
  description:
    - C(SHOW POOLS) summed per pool after the run (C(cl_active), C(cl_waiting), C(sv_active), C(sv_idle),
      C(sv_used), C(sv_tested), C(sv_login), C(maxwait) in seconds, C(users), C(pool_mode)).
  returned: when the console was used
  type: dict
  sample: {shop: {cl_active: 12, cl_waiting: 0, sv_active: 3, sv_idle: 5, maxwait: 0.0}}
commands:
  description: The console commands sent, in order (C(SHOW), C(PAUSE), C(RELOAD), C(RESUME)).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer as eng
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer_auth as auth


def file_owner(module):
    if not module.params["file_owner"]:
        return None
    try:
        return auth.os_user_ids(module.params["file_owner"])
    except DbarchError as exc:
        module.fail_from(exc)


def file_mode(module):
    raw = module.params["file_mode"]
    try:
        return int(str(raw), 8) if not isinstance(raw, int) else raw
    except ValueError:
        module.fail_json(msg="file_mode=%r: give an octal mode such as '0640'" % (raw,))


def check_input(module):
    params = module.params
    state = params["state"]
    if state == "present" and not params["databases"]:
        module.fail_json(msg="state=present needs databases: pool name -> {host, port, dbname}")
    if params["databases"] and not params["config_file"]:
        module.fail_json(msg="databases needs config_file: the file holding PgBouncer's [databases] section")
    if state in ("paused", "resumed") and not (params["aliases"] or params["databases"]):
        module.fail_json(msg="state=%s needs aliases (pool names) or databases" % state)
    if params["pause_timeout"] <= 0:
        module.fail_json(msg="pause_timeout must be more than 0 seconds")
    module.require_absolute("config_file")


def work(module, console):
    params = module.params
    state = params["state"]
    if state == "present":
        return eng.repoint(
            console,
            params["config_file"],
            params["databases"],
            pause=params["pause"],
            pause_timeout=params["pause_timeout"],
            check_mode=module.check_mode,
            owner=file_owner(module),
            mode=file_mode(module),
        )
    if state == "paused":
        aliases = params["aliases"] or sorted(params["databases"])
        return eng.pause_pools(console, aliases, params["pause_timeout"], check_mode=module.check_mode)
    if state == "resumed":
        return eng.resume_pools(
            console,
            aliases=params["aliases"],
            path=params["config_file"],
            changes=params["databases"],
            check_mode=module.check_mode,
            owner=file_owner(module),
            mode=file_mode(module),
            paused_at=params["paused_at"],
        )
    if not module.check_mode:
        console.reload()
    return {"changed": True, "reloaded": not module.check_mode}


def main():
    spec = dict(
        state=dict(type="str", default="present", choices=["present", "paused", "resumed", "reloaded"]),
        config_file=dict(type="path"),
        databases=dict(type="dict"),
        aliases=dict(type="list", elements="str"),
        pause=dict(type="bool", default=True),
        pause_timeout=dict(type="float", default=30),
        apply=dict(type="str", default="reload", choices=["reload", "file"]),
        file_owner=dict(type="str"),
        file_mode=dict(type="raw", default="0640"),
        paused_at=dict(type="float"),
    )
    spec.update(eng.CONSOLE_ARGSPEC)
    module = DbarchModule(argument_spec=spec, supports_check_mode=True)
    check_input(module)
    offline = module.params["state"] == "present" and module.params["apply"] == "file"
    console = None if offline else eng.console_from(module.params, "pgbouncer")
    result = dict(changed=False, before={}, after={}, file_changed=False, paused=[], resumed=[])
    result.update(reloaded=False, paused_seconds=0.0)
    try:
        result.update(work(module, console))
        if console is not None:
            result["pools"] = eng.pool_summary(console.show("POOLS"))
    except DbarchError as exc:
        if isinstance(getattr(exc, "result", None), dict):
            exc.result.pop("diff", None)
        extra = {"commands": list(console.commands) if console else []}
        if console is not None:
            try:
                extra["pools"] = eng.pool_summary(console.show("POOLS"))
            except DbarchError:
                pass
            console.close()
        module.fail_from(exc, **extra)
    if console is not None:
        result["commands"] = list(console.commands)
        console.close()
    else:
        result["commands"] = []
    diff = result.pop("diff", None)
    if module._diff and diff is not None and result["changed"]:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
