#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: local_cluster
short_description: Create, start, stop and remove local PostgreSQL clusters (primary or standby)
version_added: "0.1.0"
description:
  - Builds a PostgreSQL cluster on the host it runs on with C(initdb), or a streaming
    standby of another server with C(pg_basebackup -R -X stream) and a replication slot,
    then keeps it started or stopped. Used for the collection's sandbox, Molecule
    scenarios and test clusters.
  - The parent folder of O(data_dir) is the cluster's own folder. Next to PGDATA it holds
    the unix socket folder C(run/), the server log C(log/postgresql.log) and the marker
    file C(.dbarch-cluster.json) recording that dbarch created the cluster. A cluster the
    module did not create is never changed or deleted.
  - A cluster whose creation was interrupted (initdb or pg_basebackup killed) is
    recognised by its marker and built again by the next run.
  - Settings go to C(dbarch.conf) in PGDATA, included from C(postgresql.conf); the
    server is reloaded, or restarted when a changed setting needs it. C(pg_hba.conf) is
    written by the module; password authentication (scram-sha-256) on 127.0.0.1 and ::1,
    peer authentication on the unix socket for the OS user that runs the server.
  - When the module runs as root the server binaries run as the C(postgres) OS user
    (C(runuser)); no C(become_user) is needed.
  - Server binaries are looked up in C($DBARCH_PG_BINDIR_<major>), then
    C(/usr/lib/postgresql/<major>/bin), then the cache filled by
    C(scripts/fetch-pg-binaries) (C($DBARCH_PG_CACHE), default C(/var/tmp/dbarch-pg)).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  data_dir:
    description:
      - PGDATA of the cluster, an absolute path. Its parent folder must be dedicated to this cluster (it
        holds the socket folder, the log and the marker), for example
        C(/var/tmp/mycluster/data).
      - Every folder on the way must be traversable by the OS user that runs the server.
    type: path
    required: true
  state:
    description:
      - V(started) (or its alias V(present)) creates the cluster when missing and makes
        sure it runs; V(stopped) creates it when missing and makes sure it does not run;
        V(absent) stops it and deletes it, only when the folder carries the dbarch marker.
    type: str
    choices: [present, started, stopped, absent]
    default: started
  version:
    description:
      - PostgreSQL major version. Required to create a cluster; for an existing cluster
        it defaults to the version in C(PG_VERSION) and must match it when given.
    type: int
    choices: [14, 15, 16, 17, 18]
  port:
    description:
      - Preferred TCP port (on 127.0.0.1). When another process holds it, the module uses
        the cluster's current port or a free high port instead and says so in RV(port_note).
      - Default is the cluster's current port, or a free high port for a new cluster.
    type: int
  superuser:
    description:
      - Name of the bootstrap superuser given to C(initdb). Ignored for a standby, which
        has the primary's roles.
      - Letters, digits, C(_), C(.), C(-) and C($), starting with a letter or C(_), at most 63 bytes,
        not starting with C(pg_); checked before anything is created. When C(initdb) fails, what the
        module created for it is removed.
    type: str
    default: postgres
  superuser_password:
    description:
      - Password of O(superuser). Required to create a primary with password
        authentication. On an existing running primary the module checks it by logging
        in over TCP and sets it (as a SCRAM secret computed on the host) when it differs.
    type: str
  auth:
    description:
      - Authentication method for TCP connections from 127.0.0.1 and ::1.
    type: str
    choices: [scram-sha-256, md5, trust]
    default: scram-sha-256
  settings:
    description:
      - C(postgresql.conf) settings, for example C(shared_preload_libraries),
        C(archive_mode), C(archive_command). Booleans become C(on)/C(off); lists are
        joined with commas. V(port) and the file locations are managed by the module.
      - C(listen_addresses) defaults to C(127.0.0.1).
      - A carriage return, newline or NUL byte in a name or value is refused before anything is
        written (C(postgresql.conf) cannot carry one and the server would not start).
    type: dict
    default: {}
  hba:
    description:
      - Extra C(pg_hba.conf) lines, placed after the unix socket rules and before the
        loopback TCP rules (first match wins).
    type: list
    elements: str
    default: []
  databases:
    description:
      - Databases to create when missing (primary only; a standby has the primary's).
        Databases not listed are left alone. Not done with O(state=stopped).
    type: list
    elements: str
    default: []
  primary:
    description:
      - Makes the cluster a streaming standby of this server, built with
        C(pg_basebackup -R -X stream) and, with O(primary.slot), a physical replication
        slot (created when missing, reused when no other standby uses it).
      - An existing primary is never turned into a standby.
      - With O(state=absent), the slot is dropped on the primary when it is inactive.
    type: dict
    suboptions:
      host:
        description: Host of the primary.
        type: str
        default: 127.0.0.1
      port:
        description: Port of the primary.
        type: int
        required: true
      user:
        description: Role with the REPLICATION attribute (or a superuser) on the primary.
        type: str
        default: postgres
      password:
        description:
          - Password of O(primary.user). The standby keeps it in a password file beside its data folder
            (C(<parent>/.dbarch-<data folder name>.pgpass), mode 0600, removed with O(state=absent)),
            named by C(passfile) in C(primary_conninfo), never in C(primary_conninfo) itself (which
            members of C(pg_read_all_settings) read); the same file as M(dbarch.postgresql.standby)'s.
        type: str
      slot:
        description: Physical replication slot name (lower-case letters, digits, _).
        type: str
  run_as:
    description:
      - OS user that runs the server binaries. Default C(postgres) when the module runs as
        root, otherwise the current user (who must then own the folders).
    type: str
  bindir:
    description:
      - Folder with the server binaries, instead of looking them up by O(version).
    type: path
  timeout:
    description:
      - Seconds to wait for the server to start or stop.
    type: int
    default: 120
extends_documentation_fragment:
  - dbarch.postgresql.connection.no_aliases
attributes:
  check_mode:
    support: full
    description: Reports the actions it would take in RV(actions); changes nothing.
  diff_mode:
    support: full
    description: Shows changes to C(dbarch.conf) and C(pg_hba.conf), and the cluster's state.
notes:
  - The connection options of the collection (C(login_host), C(login_port), C(login_user),
    C(login_password), ...) are accepted and not used, so that one C(module_defaults) block for
    C(group/dbarch.postgresql.all) serves this module too. They take no aliases here (C(port) is an
    option of this module).
  - Runs on the managed host (here usually C(localhost) with C(ansible_connection=local)).
  - The superuser password never appears in the output or in the server log.
seealso:
  - module: dbarch.postgresql.local_cluster_info
"""

EXAMPLES = r"""
- name: A PostgreSQL 16 primary with pg_stat_statements and WAL archiving
  dbarch.postgresql.local_cluster:
    data_dir: /var/tmp/lab/primary/data
    version: 16
    port: 55432
    superuser_password: "{{ lab_superuser_password }}"
    settings:
      shared_preload_libraries: pg_stat_statements
      archive_mode: true
      archive_command: "test ! -f /var/tmp/lab/archive/%f && cp %p /var/tmp/lab/archive/%f"
    databases: [demo]
  register: primary

- name: A streaming standby of it, with a replication slot
  dbarch.postgresql.local_cluster:
    data_dir: /var/tmp/lab/replica/data
    version: 16
    port: 55433
    primary:
      port: "{{ primary.port }}"
      user: postgres
      password: "{{ lab_superuser_password }}"
      slot: lab_replica
    settings:
      shared_preload_libraries: pg_stat_statements
      hot_standby_feedback: true

- name: Stop the standby
  dbarch.postgresql.local_cluster:
    data_dir: /var/tmp/lab/replica/data
    state: stopped

- name: Remove the standby and drop its slot on the primary
  dbarch.postgresql.local_cluster:
    data_dir: /var/tmp/lab/replica/data
    state: absent
    primary:
      port: "{{ primary.port }}"
      password: "{{ lab_superuser_password }}"
      slot: lab_replica
"""

RETURN = r"""
data_dir:
  description: PGDATA of the cluster.
  returned: always
  type: str
  sample: /var/tmp/lab/primary/data
cluster_dir:
  description: The cluster's folder (parent of data_dir) with run/, log/ and the marker.
  returned: always
  type: str
  sample: /var/tmp/lab/primary
port:
  description: TCP port of the cluster (may differ from the preferred port, see port_note).
  returned: unless state is absent
  type: int
  sample: 55432
port_note:
  description: Why the port differs from the preferred one; null when it does not.
  returned: unless state is absent
  type: str
  sample: port 55432 is in use by another process; using free port 41877 instead
version:
  description: PostgreSQL major version.
  returned: unless state is absent
  type: int
  sample: 16
socket_dir:
  description: Unix socket folder (use it as host for local connections).
  returned: unless state is absent
  type: str
  sample: /var/tmp/lab/primary/run
log_file:
  description: Server log written by pg_ctl.
  returned: unless state is absent
  type: str
  sample: /var/tmp/lab/primary/log/postgresql.log
running:
  description: Whether the server runs after the task (in check mode, whether it would).
  returned: always
  type: bool
role:
  description: V(primary) or V(standby).
  returned: unless state is absent
  type: str
  sample: standby
bindir:
  description: Folder of the server binaries used.
  returned: unless state is absent
  type: str
  sample: /usr/lib/postgresql/16/bin
run_as:
  description: OS user that runs the server.
  returned: always
  type: str
  sample: postgres
actions:
  description: What the module did (or, in check mode, would do), in order.
  returned: always
  type: list
  elements: str
  sample: ["initdb (PostgreSQL 16, superuser postgres)", "start on port 55432", "create database demo"]
restarted_for:
  description: Changed settings that needed a restart.
  returned: when settings changed
  type: list
  elements: str
  sample: [shared_preload_libraries]
"""

import os
import traceback

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.localcluster import (
    LocalCluster,
    LocalClusterError,
    choose_port,
    conf_changes,
    find_bindir,
    hba_text,
    primary_conninfo,
    validate_settings,
    validate_superuser,
)

PRIMARY_SPEC = dict(
    host=dict(type="str", default="127.0.0.1"),
    port=dict(type="int", required=True),
    user=dict(type="str", default="postgres"),
    password=dict(type="str", no_log=True),
    slot=dict(type="str"),
)

ARGUMENT_SPEC = dict(
    data_dir=dict(type="path", required=True),
    state=dict(type="str", default="started", choices=["present", "started", "stopped", "absent"]),
    version=dict(type="int", choices=[14, 15, 16, 17, 18]),
    port=dict(type="int"),
    superuser=dict(type="str", default="postgres"),
    superuser_password=dict(type="str", no_log=True),
    auth=dict(type="str", default="scram-sha-256", choices=["scram-sha-256", "md5", "trust"]),
    settings=dict(type="dict", default={}),
    hba=dict(type="list", elements="str", default=[]),
    databases=dict(type="list", elements="str", default=[]),
    primary=dict(type="dict", options=PRIMARY_SPEC),
    run_as=dict(type="str"),
    bindir=dict(type="path"),
    timeout=dict(type="int", default=120),
)


class Plan:
    """Collects actions and diffs; runs a step only outside check mode."""

    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.actions = []
        self.diffs = []
        self.changed = False

    def step(self, description, func=None, *args, **kwargs):
        self.actions.append(description)
        self.changed = True
        if func is not None and not self.check_mode:
            return func(*args, **kwargs)
        return None

    def file_diff(self, name, before, after):
        if before != after:
            self.diffs.append({"before_header": name, "after_header": name, "before": before, "after": after})


def resolve_version(module, cluster, state):
    existing = cluster.data_major() if state == "ready" else None
    wanted = module.params["version"]
    if existing and wanted and existing != wanted:
        raise LocalClusterError(
            "%s holds a PostgreSQL %d cluster but version=%d was asked for; this module does not "
            "upgrade clusters (use pg_upgrade), so pass version=%d or another data_dir"
            % (cluster.data_dir, existing, wanted, existing)
        )
    version = existing or wanted
    if not version:
        raise LocalClusterError(
            "version is required to create the cluster at %s (one of 14, 15, 16, 17, 18)" % cluster.data_dir
        )
    return version


def create(module, cluster, plan, state, version):
    """Build a missing (or half-built) cluster: initdb, or pg_basebackup for a standby."""
    params = module.params
    if state == "partial":
        plan.step("remove the half-created cluster left by an interrupted run")
    if params["primary"]:
        conn = primary_conninfo(params["primary"])
        slot = params["primary"]["slot"]
        plan.step(
            "pg_basebackup from %s:%s%s"
            % (conn["host"], conn["port"], " using slot %s" % slot if slot else ""),
            cluster.create_replica, conn, slot, settings=params["settings"], hba_extra=params["hba"],
            auth=params["auth"], timeout=max(params["timeout"], 600),
        )
        return
    if params["auth"] != "trust" and not params["superuser_password"]:
        raise LocalClusterError(
            "superuser_password is required to create %s with auth=%s" % (cluster.data_dir, params["auth"])
        )
    plan.step(
        "initdb (PostgreSQL %d, superuser %s)" % (version, params["superuser"]),
        cluster.initdb, superuser=params["superuser"], password=params["superuser_password"],
        auth=params["auth"], settings=params["settings"], hba_extra=params["hba"],
    )


def reconfigure(module, cluster, plan):
    """Bring dbarch.conf and pg_hba.conf of an existing cluster to the wanted text."""
    params = module.params
    conf_before = _read(cluster.conf_path)
    conf_after = cluster.desired_conf(params["settings"])
    hba_before = _read(cluster.hba_path())
    hba_after = hba_text(params["auth"], params["hba"], cluster.run_as)
    plan.file_diff(cluster.conf_path, conf_before, conf_after)
    plan.file_diff(cluster.hba_path(), hba_before, hba_after)
    changed_names = conf_changes(conf_before, conf_after)
    if changed_names:
        plan.step("write %s (%s)" % (cluster.conf_path, ", ".join(changed_names)),
                  cluster.write_settings, params["settings"])
    if hba_before != hba_after:
        plan.step("write %s" % cluster.hba_path(), cluster.write_hba, params["hba"], params["auth"])
    return changed_names, hba_before != hba_after


def apply_running_state(module, cluster, plan, changed_names, hba_changed, was_running):
    """Start/stop, and reload or restart for configuration changes. Returns restart reasons."""
    params = module.params
    if params["state"] == "stopped":
        if was_running:
            plan.step("stop", cluster.stop, "fast", params["timeout"])
        return []
    if not was_running:
        plan.step("start on port %d" % cluster.port, cluster.start, params["timeout"])
        return []
    if "port" in changed_names:
        plan.step("restart (port changes to %d)" % cluster.port, cluster.restart, params["timeout"])
        return ["port"]
    if not (changed_names or hba_changed):
        return []
    if plan.check_mode:
        needs = cluster.restart_settings(changed_names)
        plan.step("restart (for %s)" % ", ".join(needs) if needs else "reload")
        return needs
    plan.step("reload", cluster.reload)
    needs = sorted(set(cluster.restart_settings(changed_names)) | set(cluster.pending_restart()))
    if needs:
        plan.step("restart (for %s)" % ", ".join(needs), cluster.restart, params["timeout"])
    return needs


def ensure_password(module, cluster, plan):
    params = module.params
    password = params["superuser_password"]
    if not password or params["auth"] == "trust" or cluster.role() != "primary":
        return
    if not cluster.password_works(cluster.superuser, password):
        plan.step("set the password of %s" % cluster.superuser,
                  cluster.set_password, cluster.superuser, password)


def ensure_databases(module, cluster, plan, running):
    wanted = module.params["databases"]
    if not wanted or cluster.role() != "primary":
        return
    existing = set(cluster.databases()) if running else set()
    for name in wanted:
        if name not in existing:
            plan.step("create database %s" % name, cluster.create_database, name)


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def run_present(module, cluster):
    params = module.params
    plan = Plan(module.check_mode)
    state = cluster.state()
    if state == "foreign":
        raise LocalClusterError(cluster.foreign_reason())
    if state == "ready" and params["primary"] and cluster.role() != "standby":
        raise LocalClusterError(
            "%s holds a primary; it is not turned into a standby of %s:%s. Remove it first "
            "(state=absent) to rebuild it as a standby"
            % (cluster.data_dir, params["primary"]["host"], params["primary"]["port"])
        )
    version = resolve_version(module, cluster, state)
    cluster.bindir = params["bindir"] or find_bindir(version)
    was_running = state == "ready" and cluster.is_running()
    current = cluster.configured_port() if state == "ready" else None
    cluster.port, port_note = choose_port(params["port"], current, was_running)
    if state == "ready":
        cluster.superuser = (cluster.read_marker() or {}).get("superuser") or params["superuser"]
        changed_names, hba_changed = reconfigure(module, cluster, plan)
    else:
        create(module, cluster, plan, state, version)
        changed_names, hba_changed = [], False
        plan.diffs.append({"before": {"state": "absent"},
                           "after": {"state": "present", "version": version, "port": cluster.port}})
    restarted_for = apply_running_state(module, cluster, plan, changed_names, hba_changed, was_running)
    running = params["state"] != "stopped"
    if running and not (module.check_mode and not was_running):
        ensure_password(module, cluster, plan)
    if running:
        ensure_databases(module, cluster, plan, was_running or not module.check_mode)
    role = "standby" if params["primary"] else "primary"
    if state == "ready":
        role = cluster.role()
    result = dict(
        changed=plan.changed, actions=plan.actions, data_dir=cluster.data_dir, cluster_dir=cluster.base_dir,
        port=cluster.port, port_note=port_note, version=version, socket_dir=cluster.socket_dir,
        log_file=cluster.log_file, running=running, role=role, bindir=cluster.bindir, run_as=cluster.run_as,
    )
    if changed_names or hba_changed:
        result["restarted_for"] = restarted_for
    if module._diff and plan.diffs:
        result["diff"] = plan.diffs
    return result


def run_absent(module, cluster):
    params = module.params
    plan = Plan(module.check_mode)
    state = cluster.state()
    result = dict(data_dir=cluster.data_dir, cluster_dir=cluster.base_dir, run_as=cluster.run_as,
                  running=False)
    if state == "absent" and cluster.read_marker() is None:
        return dict(result, changed=False, actions=[])
    if state == "foreign":
        raise LocalClusterError("Refusing to delete %s: %s" % (cluster.data_dir, cluster.foreign_reason()))
    marker = cluster.read_marker() or {}
    major = cluster.data_major() or marker.get("major")
    if params["bindir"] or major:
        try:
            cluster.bindir = params["bindir"] or find_bindir(major)
        except LocalClusterError:
            cluster.bindir = None
    role = cluster.role() if os.path.isdir(cluster.data_dir) else marker.get("role")
    if cluster.is_running():
        plan.step("stop (fast)")
    plan.step("delete %s" % cluster.base_dir, cluster.destroy)
    primary = params["primary"]
    if primary and primary.get("slot") and role == "standby":
        conn = primary_conninfo(primary)
        where = "slot %s on %s:%s" % (primary["slot"], conn["host"], conn["port"])
        if module.check_mode:
            plan.actions.append("drop %s if inactive" % where)
        elif cluster.drop_remote_slot(conn, primary["slot"]):
            plan.actions.append("dropped %s" % where)
    if module._diff:
        result["diff"] = {"before": {"state": "present", "data_dir": cluster.data_dir},
                          "after": {"state": "absent"}}
    return dict(result, changed=plan.changed, actions=plan.actions)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, connection_aliases=False, supports_check_mode=True)
    params = module.params
    module.require_absolute("data_dir", "bindir")
    secrets = [params["superuser_password"], (params["primary"] or {}).get("password")]
    try:
        # bad input fails before anything is created (also in check mode)
        if params["state"] != "absent":
            if not params["primary"]:  # a standby takes the primary's superuser
                validate_superuser(params["superuser"])
            validate_settings(params["settings"])
        cluster = LocalCluster(params["data_dir"], run_as=params["run_as"], superuser=params["superuser"])
        with cluster.lock():
            if params["state"] == "absent":
                result = run_absent(module, cluster)
            else:
                result = run_present(module, cluster)
    except LocalClusterError as exc:
        module.fail_from(LocalClusterError(proc.mask(str(exc), secrets)), data_dir=params["data_dir"])
    except OSError as exc:
        module.fail_json(
            msg=proc.mask("local_cluster could not complete for %s: %s" % (params["data_dir"], exc), secrets),
            exception=proc.mask(traceback.format_exc(), secrets),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
