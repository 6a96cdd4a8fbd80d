# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbarch.postgresql on three local clusters built by LocalCluster (initdb, then two standbys by
``create_replica``: pg_basebackup -R with a slot each).

Two lines:

- ``playbooks``: ``ansible-playbook playbooks/switchover.yml -e switchover_target=<host>`` and,
  right after the kill, ``ansible-playbook playbooks/failover.yml`` over an inventory generated
  for the three clusters (groups ``primary`` and ``replicas``, host vars
  ``dbarch_login_host/port/user/password``, ``dbarch_data_dir``, ``dbarch_bindir``; no
  ``dbarch_service``, so the playbooks' default, ``pg_ctl`` as ``postgres``). dbarch has no
  daemon that watches the primary: the failover time counts from the kill, with the playbook
  started at once, so its detection is the playbook's own confirmation that the primary is down.
- ``modules`` (``--dbarch-modules``): the same switchover as one play of the collection's
  lower-level steps: ``local_cluster state=stopped`` on the old primary (a fast shutdown, with its
  shutdown checkpoint), ``promote`` on the target (with the sibling as candidate and the old
  primary as ``old_primary``), then ``standby`` on the old primary and on the sibling with the new
  primary as ``primary``. No failover on this line.

Each line is skipped, with the reason, when what it runs is not in this checkout.
"""

import json
import os
import secrets
import shutil
import time

import common
from observe import Node
from patroni_side import stop_folder

lc = common.lc
PLAYBOOKS = os.path.join(common.REPO, "playbooks")
MODULES = os.path.join(common.REPO, "plugins", "modules")


def missing(line):
    """Why ``line`` ('playbooks' or 'modules') cannot run from this checkout, or None."""
    if line == "playbooks":
        for name in ("switchover.yml", "failover.yml"):
            if not os.path.exists(os.path.join(PLAYBOOKS, name)):
                return "playbooks/%s not on this branch" % name
        return None
    for name in ("promote", "standby"):
        if not os.path.exists(os.path.join(MODULES, name + ".py")):
            return "module dbarch.postgresql.%s not on this branch" % name
    return None


class DbarchSide:
    kind = "dbarch"

    def __init__(self, top, bindir, line, pg_settings, log, extra_vars=None):
        self.line = line
        self.key = "dbarch-%s" % line
        self.label = (
            "dbarch playbooks (switchover.yml / failover.yml)"
            if line == "playbooks"
            else "dbarch modules (local_cluster, promote, standby)"
        )
        self.top = os.path.join(top, self.key)
        self.bindir = bindir
        self.pg_settings = pg_settings
        self.log = log
        self.extra_vars = list(extra_vars or [])
        self.password = secrets.token_urlsafe(18)
        self.clusters = {}
        self.nodes = []
        self.primary_name = "node1"
        self.settings = dict(line=line, service="pg_ctl (the playbooks' default)", slots=True)
        self.can_failover = line == "playbooks"

    # -- set-up ------------------------------------------------------------------------------------
    def setup(self):
        os.makedirs(self.top, exist_ok=True)
        os.chmod(self.top, 0o755)  # noqa: S103 - the postgres OS user must reach its folders
        primary = lc.LocalCluster(os.path.join(self.top, "node1", "data"), bindir=self.bindir)
        primary.initdb(superuser="postgres", password=self.password, settings=self.pg_settings)
        primary.start()
        primary.password = self.password
        self.clusters["node1"] = primary
        for name in ("node2", "node3"):
            standby = lc.LocalCluster(os.path.join(self.top, name, "data"), bindir=self.bindir)
            standby.create_replica(primary, slot_name="%s_slot" % name, settings=self.pg_settings)
            standby.start()
            self.clusters[name] = standby
        for name in ("node1", "node2", "node3"):
            cluster = self.clusters[name]
            self.nodes.append(Node(name, cluster.port, cluster.data_dir, cluster.log_file))
        return self.nodes[0]

    def _node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def _conn(self, node):
        return dict(host="127.0.0.1", port=node.port, user="postgres", password=self.password)

    # -- ansible -----------------------------------------------------------------------------------
    def write_inventory(self, primary):
        """The inventory the playbooks take: ``primary`` in group primary, the others in replicas."""
        hosts = {}
        for node in self.nodes:
            hosts[node.name] = dict(
                ansible_connection="local",
                ansible_python_interpreter=os.path.join(common.OUR_VENV_BIN, "python"),
                dbarch_login_host="127.0.0.1",
                dbarch_login_port=node.port,
                dbarch_login_user="postgres",
                dbarch_login_password=self.password,
                dbarch_data_dir=node.data_dir,
                dbarch_bindir=self.bindir,
            )
        inventory = {
            "all": {
                "children": {
                    "primary": {"hosts": {primary.name: hosts[primary.name]}},
                    "replicas": {"hosts": dict((n, v) for n, v in hosts.items() if n != primary.name)},
                }
            }
        }
        path = os.path.join(self.top, "inventory.yml")
        with open(path, "w") as handle:
            json.dump(inventory, handle, indent=2)  # JSON is YAML
        os.chmod(path, 0o600)
        return path

    def _env(self):
        env = common.ansible_env(
            None,
            collections_path=common.COLLECTIONS,
            ANSIBLE_CONFIG=os.path.join(common.REPO, "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_LOCAL_TEMP=os.path.join(self.top, "ansible-tmp"),
        )
        env.pop("PGPASSWORD", None)
        return env

    def _playbook(self, playbook, inventory, extra=(), timeout=900):
        argv = [os.path.join(common.OUR_VENV_BIN, "ansible-playbook"), "-i", inventory, playbook]
        for item in list(extra) + self.extra_vars:
            argv += ["-e", item]
        proc = common.run_group(argv, env=self._env(), cwd=common.REPO, timeout=timeout)
        log_path = os.path.join(self.top, "%s-%d.log" % (os.path.basename(playbook), int(time.time())))
        with open(log_path, "w") as handle:
            handle.write(proc.stdout + proc.stderr)
        return dict(
            returncode=proc.returncode,
            output=common.last_line(proc.stdout + proc.stderr),
            recap=_recap(proc.stdout),
            output_tail=common.tail_lines(proc.stdout + proc.stderr),
        )

    def _modules_play(self, old, new, sibling):
        """One play, the collection's lower-level steps of a switchover from old to new."""

        def login(node):
            return dict(
                login_host="127.0.0.1",
                login_port=node.port,
                login_user="postgres",
                login_password=self.password,
            )

        tasks = [
            {
                "name": "Stop the old primary (fast shutdown: shutdown checkpoint, WAL sent to the standbys)",
                "dbarch.postgresql.local_cluster": dict(
                    data_dir=old.data_dir,
                    state="stopped",
                    port=old.port,
                    bindir=self.bindir,
                    settings=self.pg_settings,
                ),
            },
            {
                "name": "Promote the target (guards: the sibling is not ahead, the old primary is down)",
                "dbarch.postgresql.promote": dict(
                    login(new), candidates=[self._conn(sibling)], old_primary=self._conn(old)
                ),
            },
            {
                "name": "The old primary follows the new one",
                "dbarch.postgresql.standby": dict(
                    login(old),
                    primary=dict(self._conn(new), application_name=old.name),
                    data_dir=old.data_dir,
                    bindir=self.bindir,
                    slot_name="%s_slot" % old.name,
                ),
            },
            {
                "name": "The sibling follows the new primary",
                "dbarch.postgresql.standby": dict(
                    login(sibling),
                    primary=dict(self._conn(new), application_name=sibling.name),
                    data_dir=sibling.data_dir,
                    bindir=self.bindir,
                    slot_name="%s_slot" % sibling.name,
                ),
            },
        ]
        for task in tasks:
            task["no_log"] = True  # passwords in the arguments
        play = [
            {
                "name": "failbench switchover (modules)",
                "hosts": "localhost",
                "gather_facts": False,
                "tasks": tasks,
            }
        ]
        path = os.path.join(self.top, "switchover-modules.yml")
        with open(path, "w") as handle:
            json.dump(play, handle, indent=2)
        os.chmod(path, 0o600)
        inventory = os.path.join(self.top, "localhost.ini")
        with open(inventory, "w") as handle:
            handle.write(
                "localhost ansible_connection=local ansible_python_interpreter=%s\n"
                % os.path.join(common.OUR_VENV_BIN, "python")
            )
        return path, inventory

    def wait_ready(self, primary, timeout):
        return None  # no daemon: the servers' own state (checked by the harness) is all there is

    # -- the measured steps -----------------------------------------------------------------------
    def switchover(self, old, new):
        if self.line == "playbooks":
            inventory = self.write_inventory(old)
            return self._playbook(
                os.path.join(PLAYBOOKS, "switchover.yml"), inventory, ["switchover_target=%s" % new.name]
            )
        sibling = next(n for n in self.nodes if n.name not in (old.name, new.name))
        play, inventory = self._modules_play(old, new, sibling)
        return self._playbook(play, inventory)

    def prepare_failover(self, primary):
        """The inventory names the current primary (written before the clock starts)."""
        self.failover_inventory = self.write_inventory(primary)

    def kill_primary(self, node):
        pid = node.postmaster_pid()
        if pid:
            os.kill(pid, 9)
        return time.time()

    def after_kill(self, old, survivors):
        """Run playbooks/failover.yml at once (dbarch has no watching daemon)."""
        return self._playbook(os.path.join(PLAYBOOKS, "failover.yml"), self.failover_inventory)

    # -- removal -----------------------------------------------------------------------------------
    def teardown(self):
        for cluster in self.clusters.values():
            stop_folder(self.bindir, cluster.data_dir)
        shutil.rmtree(self.top, ignore_errors=True)


def _recap(text):
    lines = [line for line in (text or "").splitlines() if " : ok=" in line]
    return lines[-5:]
