#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: server_control
short_description: Find a PostgreSQL node's data folder, binaries and service; start or stop it cleanly
version_added: "0.3.0"
description:
  - Runs on the node's host. Finds the node's data folder, server binaries and how its server is started and
    stopped (RV(found) says where each came from), reports whether the server runs and, when it is stopped,
    what C(pg_controldata) says in RV(controldata), the state (a clean shutdown or not), the latest checkpoint
    location and timeline.
  - With O(state=stopped) a running server gets a fast shutdown (sessions ended, a shutdown checkpoint
    written; with C(pg_ctl stop -m fast) or C(systemctl stop)). During a switchover the standbys then
    replay everything up to that checkpoint, C(checkpoint_lsn) in RV(controldata).
  - With O(state=started) a stopped server is started (C(pg_ctl start) or C(systemctl start)).
  - Without O(state) it only reads (changed=false).
  - Binaries run as the data folder's owner (C(runuser) when the module runs as root).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  data_dir:
    description:
      - The node's data folder (PGDATA), an absolute path.
      - Default, Debian's C(pg_lsclusters) entry listening on O(login_port), else the C(data_directory) of the
        server the connection options reach (read when it runs; needs a superuser or C(pg_read_all_settings)).
    type: path
  bindir:
    description:
      - Folder of the server binaries (C(pg_ctl), C(pg_controldata)).
      - Default, Debian's C(pg_lsclusters) entry of the data folder, else the major in its C(PG_VERSION)
        looked up in C($DBARCH_PG_BINDIR_<major>), C(/usr/lib/postgresql/<major>/bin) and the dbarch binaries
        cache.
    type: path
  service:
    description:
      - How the server is started and stopped. V(pg_ctl) (on the data folder, as its owner; server log in
        C(<parent>/log/postgresql.log) when that folder exists, else C(<parent>/<name>.log)), or the name of a
        systemd unit such as V(postgresql@16-main).
      - Default, the Debian cluster's unit when C(pg_lsclusters) lists the data folder, else V(pg_ctl).
    type: str
  state:
    description:
      - V(stopped) (fast shutdown) or V(started). Omitted, the module only reads.
    type: str
    choices: [started, stopped]
  checkpoint:
    description:
      - Run C(CHECKPOINT) over SQL first, when the server runs (needs a superuser, or C(pg_checkpoint) on 15
        and later). Before a switchover's stop, the shutdown checkpoint then has little left to write, so the
        server stops sooner. Not in check mode.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the server to start or stop.
    type: int
    default: 300
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Reports in RV(steps) what it would do; starts and stops nothing.
  diff_mode:
    support: none
    description: The change is whether the server runs; RV(running) and RV(was_running) say it.
notes:
  - The connection options are only used to ask a running server its C(data_directory) when O(data_dir) is not
    given (a failed connection is not an error then, the server may be down).
  - A Debian cluster (configuration in C(/etc/postgresql)) cannot be started with C(pg_ctl) on its data
    folder; give its systemd unit (the default when C(pg_lsclusters) lists it).
seealso:
  - module: dbarch.postgresql.standby
  - module: dbarch.postgresql.promote
"""

EXAMPLES = r"""
- name: Stop the old primary cleanly and read its shutdown checkpoint
  dbarch.postgresql.server_control:
    data_dir: /var/lib/postgresql/16/main
    service: postgresql@16-main
    state: stopped
  become: true
  register: stopped

- name: Show the shutdown checkpoint the standbys must replay
  ansible.builtin.debug:
    msg: "{{ stopped.controldata.state }} at {{ stopped.controldata.checkpoint_lsn }}"

- name: Find the node's data folder, binaries and service (read only)
  dbarch.postgresql.server_control:
    login_port: 5432
  become: true
  register: node
"""

RETURN = r"""
data_dir:
  description: The data folder.
  returned: always
  type: str
  sample: /var/lib/postgresql/16/main
bindir:
  description: The server binaries used.
  returned: always
  type: str
  sample: /usr/lib/postgresql/16/bin
service:
  description: V(pg_ctl) or the systemd unit.
  returned: always
  type: str
  sample: postgresql@16-main
found:
  description: Where RV(data_dir), RV(bindir) and RV(service) came from.
  returned: always
  type: dict
running:
  description: Whether the server runs after the task (in check mode, whether it runs now).
  returned: always
  type: bool
was_running:
  description: Whether the server ran before the task.
  returned: always
  type: bool
steps:
  description:
    - What was done (C(ran CHECKPOINT) first with O(checkpoint)); in check mode, what would be done, each
      starting with C(would).
  returned: always
  type: list
  elements: str
controldata:
  description:
    - When the server is stopped (null while it runs), from C(pg_controldata) C(state) (such as C(shut down)),
      C(clean) (C(shut down) or C(shut down in recovery)), C(checkpoint_lsn) (latest checkpoint location, of a
      clean shutdown, the shutdown checkpoint), C(redo_lsn), C(timeline), C(system_identifier),
      C(wal_log_hints), C(checksums).
  returned: always
  type: dict
  sample: {state: shut down, clean: true, checkpoint_lsn: 0/3000028, timeline: 1}
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import control


def server_data_dir(module):
    """The running server's data_directory, or None (down, unreachable, or not readable)."""
    if not pg.HAS_PSYCOPG2:
        return None
    try:
        session = pg.connect(module.params, "server_control")
    except pg.PgError:
        return None
    try:
        return session.scalar("SELECT current_setting('data_directory', true)") or None
    except pg.PgError:
        return None
    finally:
        session.close()


def run_checkpoint(module):
    """CHECKPOINT on the server the connection options reach; fail_json when it cannot be done."""
    session = module.connect()
    try:
        session.execute("CHECKPOINT")
    except pg.PgError as exc:
        module.fail_from(exc, session, msg_prefix="CHECKPOINT before the stop")
    session.close()


def main():
    module = DbarchModule(
        argument_spec=dict(
            data_dir=dict(type="path"),
            bindir=dict(type="path"),
            service=dict(type="str"),
            state=dict(type="str", choices=list(control.STATES)),
            checkpoint=dict(type="bool", default=False),
            wait_timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    module.require_absolute("data_dir", "bindir")
    params = module.params
    try:
        located = control.locate(
            data_dir=params["data_dir"],
            bindir=params["bindir"],
            service=params["service"],
            port=params.get("login_port"),
            server_data_dir=None if params["data_dir"] else server_data_dir(module),
        )
        checkpointed = False
        if params["checkpoint"] and not module.check_mode and control.is_running(located):
            run_checkpoint(module)
            checkpointed = True
        result = control.converge(
            located, state=params["state"], wait_timeout=params["wait_timeout"], check_mode=module.check_mode
        )
        if checkpointed:
            result["steps"].insert(0, "ran CHECKPOINT")
    except (DbarchError, OSError) as exc:
        module.fail_from(exc, msg_prefix=None if isinstance(exc, DbarchError) else "server_control")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
