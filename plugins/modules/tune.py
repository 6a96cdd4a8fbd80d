#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: tune
short_description: Recommended PostgreSQL settings from memory, CPUs, storage and workload (pgtune's formulas)
version_added: "0.3.0"
description:
  - Computes the settings pgtune (le0pard/pgtune, U(https://pgtune.leopard.in.ua)) recommends for a Linux
    server from O(memory), O(cpus), O(storage), O(workload), O(max_connections) and the server's version,
    each with the reason for its value, so that a user can check every value there.
  - Returns RV(recommended) (name to value as PostgreSQL writes it, such as C(2GB)) and RV(diff) against
    the server's current values (the value C(ALTER SYSTEM) wrote, else the value in effect, compared the
    way PostgreSQL reads values).
  - "Where it deliberately differs from pgtune (RV(differences)): without O(max_connections) the server's
    own value is kept (pgtune assumes one per workload); for C(desktop) pgtune's C(wal_level = minimal) and
    C(max_wal_senders = 0) are left out (they end replication, archiving and backups); C(wal_compression) is
    C(lz4) only on a server built with lz4, else C(pglz)."
  - With O(apply=true), writes them through the M(dbarch.postgresql.setting) module's engine (C(ALTER SYSTEM),
    reload); settings that need a restart are in RV(pending_restart).
  - With O(restart=true) as well, restarts the server when a setting waits for it, through the
    M(dbarch.postgresql.server_control) module's engine (the module must run on the database host).
    RV(restart_plan) gives the safe order over a primary and the standbys streaming from it (standbys
    first, then the primary); settings a standby must hold at least as high as its primary
    (C(max_connections), C(max_worker_processes), C(max_wal_senders), C(max_prepared_transactions),
    C(max_locks_per_transaction)) raised on the standbys first and lowered on the primary first
    (O(only_lowered_guarded) runs that first step). C(playbooks/scale.yml) follows it.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  memory:
    description:
      - The server's memory, as a size (V(8GB), V(512MB)). Defaults to the host's C(MemTotal) when the module
        runs on the database host.
    type: str
  cpus:
    description:
      - CPU cores of the server. Defaults to the host's. Parallel settings are recommended from 4 cores
        (as pgtune).
    type: int
  storage:
    description: The data folder's storage.
    type: str
    default: ssd
    choices: [hdd, ssd, san, nvme]
  workload:
    description:
      - V(web) (web application), V(oltp), V(dw) (data warehouse), V(desktop), V(mixed).
    type: str
    default: web
    choices: [web, oltp, dw, desktop, mixed]
  max_connections:
    description:
      - Connections the server must accept; it sizes C(work_mem). Default the server's current
        C(max_connections).
    type: int
  apply:
    description: Write the recommended settings (C(ALTER SYSTEM), reload).
    type: bool
    default: false
  restart:
    description:
      - With O(apply), restart the server when a written setting waits for a restart. The module must run on
        the database host (it uses pg_ctl or the Debian service of the data folder).
    type: bool
    default: false
  only:
    description: Apply only these of the recommended settings (names).
    type: list
    elements: str
  only_lowered_guarded:
    description:
      - Apply only the guarded settings (see the description) that the recommendation lowers (the first step
        on a primary that has standbys).
    type: bool
    default: false
  data_dir:
    description: The data folder, for O(restart) (default found as M(dbarch.postgresql.server_control) does).
    type: path
  bindir:
    description: The server binaries, for O(restart).
    type: path
  service:
    description: The systemd unit or V(pg_ctl), for O(restart).
    type: str
  wait_timeout:
    description: Seconds to wait for the server to stop and to start, with O(restart).
    type: int
    default: 300
  reload_wait:
    description: Seconds to wait after the reload for reloadable settings to show in C(pg_settings).
    type: float
    default: 5
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Computes and compares; writes nothing, restarts nothing.
  diff_mode:
    support: full
    description: The settings before and after (as the M(dbarch.postgresql.setting) module shows them).
notes:
  - pgtune's formulas assume a server dedicated to PostgreSQL. Tested values are in docs/scaling.md.
seealso:
  - module: dbarch.postgresql.setting
  - module: dbarch.postgresql.server_control
  - module: dbarch.postgresql.diagnose_info
"""

EXAMPLES = r"""
- name: Tuning advice only
  dbarch.postgresql.tune:
    memory: 16GB
    cpus: 8
    storage: ssd
    workload: oltp
  register: advice

- name: Apply and restart if needed (on the database host)
  dbarch.postgresql.tune:
    memory: 16GB
    cpus: 8
    workload: oltp
    apply: true
    restart: true
  become: true
  become_user: postgres
"""

RETURN = r"""
recommended:
  description:
    - Setting name to the recommended value, as PostgreSQL writes it.
  returned: always
  type: dict
  sample: {shared_buffers: 4GB, work_mem: 13273kB, random_page_cost: "1.1"}
explained:
  description: Setting name to the reason for its value (the pgtune formula).
  returned: always
  type: dict
diff:
  description:
    - The recommended settings whose value differs from the server's current one (C(current_setting())), in
      C(settings) (name to C(current) and C(recommended)), and as C(before)/C(after) text for --diff.
  returned: always
  type: dict
  sample: {settings: {shared_buffers: {current: 128MB, recommended: 4GB}}, before: "...", after: "..."}
differences:
  description: Where this module deliberately differs from pgtune, and why.
  returned: always
  type: dict
changed_settings:
  description:
    - The settings written (in check mode, that would be written); empty without O(apply).
  returned: always
  type: list
  elements: str
pending_restart:
  description:
    - The written settings that take effect only after a restart (after O(restart), the empty list).
  returned: always
  type: list
  elements: str
restarted:
  description: Whether the server was restarted.
  returned: always
  type: bool
restart_plan:
  description:
    - The safe order to apply the changes over this primary and its standbys (C(pg_stat_replication)), each
      step with C(node), C(settings), C(restart), C(why). Empty on a standby.
  returned: always
  type: list
  elements: dict
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

import os

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import settings as st
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import control
from ansible_collections.dbarch.postgresql.plugins.module_utils.scaling import tune


def settings_diff(planned, current, recommended):
    """``diff``: per changed setting its current and recommended value (``settings``), and the same as
    before/after text, so that --diff shows it."""
    names = planned["changes"]
    return dict(
        settings=dict((n, dict(current=current[n], recommended=recommended[n])) for n in names),
        before_header="current settings",
        after_header="recommended settings",
        before="".join("%s = '%s'\n" % (n, current[n]) for n in names),
        after="".join("%s = '%s'\n" % (n, recommended[n]) for n in names),
    )


def restart_server(module, facts):
    p = module.params
    located = control.locate(
        data_dir=p["data_dir"],
        bindir=p["bindir"],
        service=p["service"],
        port=p.get("login_port"),
        server_data_dir=None if p["data_dir"] else facts.get("data_directory"),
    )
    control.converge(located, state="stopped", wait_timeout=p["wait_timeout"])
    control.converge(located, state="started", wait_timeout=p["wait_timeout"])


def main():
    module = DbarchModule(
        argument_spec=dict(
            memory=dict(type="str"),
            cpus=dict(type="int"),
            storage=dict(type="str", default="ssd", choices=list(tune.STORAGES)),
            workload=dict(type="str", default="web", choices=list(tune.WORKLOADS)),
            max_connections=dict(type="int"),
            apply=dict(type="bool", default=False),
            restart=dict(type="bool", default=False),
            only=dict(type="list", elements="str"),
            only_lowered_guarded=dict(type="bool", default=False),
            data_dir=dict(type="path"),
            bindir=dict(type="path"),
            service=dict(type="str"),
            wait_timeout=dict(type="int", default=300),
            reload_wait=dict(type="float", default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    module.require_absolute("data_dir", "bindir")
    if p["restart"] and not p["apply"]:
        module.fail_json(msg="restart=true needs apply=true (only written settings are restarted for)")
    memory = p["memory"]
    if not memory:
        kb = tune.host_memory()
        if not kb:
            module.fail_json(
                msg="memory is not given and /proc/meminfo cannot be read: give memory, e.g. 8GB"
            )
        memory = kb
    cpus = p["cpus"] or os.cpu_count()
    session = module.connect()
    result = dict(changed=False, restarted=False, differences=tune.DIFFERENCES)
    try:
        rec, facts = tune.for_server(
            session, memory, p["workload"], p["storage"], cpus=cpus, max_connections=p["max_connections"]
        )
        recommended = tune.as_dict(rec)
        planned = st.plan(session, recommended)
        current = dict((n, planned["details"][n]["current"]) for n in planned["names"])
        result.update(
            recommended=recommended,
            explained=dict((r["name"], r["why"]) for r in rec),
            diff=settings_diff(planned, current, recommended),
            restart_plan=tune.server_plan(
                session, dict((n, recommended[n]) for n in planned["changes"]), current, facts
            ),
        )
        wanted = recommended
        if p["only"] is not None:
            unknown = sorted(set(p["only"]) - set(recommended))
            if unknown:
                raise tune.TuneError("only: not among the recommended settings: %s" % ", ".join(unknown))
            wanted = dict((n, v) for n, v in recommended.items() if n in p["only"])
        if p["only_lowered_guarded"]:
            lowered = tune.lowered_guarded(session, wanted)
            wanted = dict((n, wanted[n]) for n in lowered)
        changes, restart = [], []
        if p["apply"] and wanted:
            planned = st.plan(session, wanted)
            changes = planned["changes"]
            if module.check_mode:
                restart = st.predicted_restart(planned, wanted)
            else:
                restart = st.apply(session, planned, wanted, wait_seconds=p["reload_wait"])
            waiting = [r["name"] for r in planned["rows"].values() if r["pending_restart"]]
            restart = sorted(set(restart) | set(waiting))
            result["changed"] = bool(changes)
        if p["restart"] and restart and not module.check_mode:
            session.close()
            restart_server(module, facts)
            result.update(restarted=True, changed=True)
            restart = []
        result.update(changed_settings=changes, pending_restart=restart)
    except (DbarchError, OSError) as exc:
        module.fail_from(exc, session, msg_prefix=None if isinstance(exc, DbarchError) else "tune")
    finally:
        session.close()
    result["queries"] = session.queries
    module.exit_json(**result)


if __name__ == "__main__":
    main()
