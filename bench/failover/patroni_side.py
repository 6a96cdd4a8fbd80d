# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Patroni (Debian ``patroni``) on a single local etcd member (Debian ``etcd-server``).

Three Patroni instances run as the ``postgres`` OS user, each with its own data folder, port and
REST port under the run's folder; Patroni bootstraps the cluster itself (initdb on the first,
``pg_basebackup`` on the others). Switchover: ``patronictl switchover --leader --candidate
--force``. Unclean failover: SIGKILL of the leader's Patroni process group AND of its postmaster
(Patroni starts the postmaster in a session of its own, and restarts a killed postmaster while it
is alive itself), the way the loss of the node looks to the others.
"""

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.request

import common
from observe import Node

ETCD = "/usr/bin/etcd"
PATRONI = "/usr/bin/patroni"
PATRONICTL = "/usr/bin/patronictl"

# ttl / loop_wait / retry_timeout: Patroni's defaults (its acceptance suite's basic failover runs
# on them and allows 32 s), and a tuned set that keeps loop_wait + 2 * retry_timeout <= ttl.
CONFIGS = {
    "default": dict(ttl=30, loop_wait=10, retry_timeout=10),
    "tuned": dict(ttl=10, loop_wait=2, retry_timeout=4),
}


def missing():
    """What is not installed, or None."""
    lacking = [path for path in (ETCD, PATRONI, PATRONICTL) if not os.access(path, os.X_OK)]
    if lacking:
        return "not installed: %s (apt-get install patroni etcd-server; make bench-deps)" % ", ".join(lacking)
    return None


def version():
    try:
        out = subprocess.run([PATRONI, "--version"], capture_output=True, text=True, check=False, timeout=60)
        etcd = subprocess.run([ETCD, "--version"], capture_output=True, text=True, check=False, timeout=60)
    except OSError as exc:
        return "n/a (%s)" % exc
    return "%s; %s" % (common.first_line(out.stdout or out.stderr), common.first_line(etcd.stdout))


class PatroniSide:
    kind = "patroni"

    def __init__(self, top, bindir, config, pg_settings, log):
        self.config = config
        self.dcs = dict(CONFIGS[config])
        self.label = (
            "Patroni (ttl %(ttl)d, loop_wait %(loop_wait)d, retry_timeout %(retry_timeout)d)" % self.dcs
        )
        self.key = "patroni-%s" % config
        self.top = os.path.join(top, self.key)
        self.bindir = bindir
        self.pg_settings = pg_settings
        self.log = log
        self.password = secrets.token_urlsafe(18)
        self.repl_password = secrets.token_urlsafe(18)
        self.scope = "failbench-%s" % config
        self.etcd = None
        self.patronis = {}
        self.nodes = []
        self.rest = {}
        self.settings = dict(self.dcs, dcs="etcd3 (one local member)", use_pg_rewind=True, use_slots=True)
        self.can_failover = True

    # -- set-up ------------------------------------------------------------------------------------
    def _dir(self, *parts):
        path = os.path.join(self.top, *parts)
        os.makedirs(path, exist_ok=True)
        shutil.chown(path, "postgres", "postgres")
        return path

    def _start_etcd(self):
        client, peer = common.lc.free_port(), common.lc.free_port()
        data = self._dir("etcd")
        argv = [
            ETCD,
            "--name=failbench",
            "--data-dir=%s" % os.path.join(data, "data"),
            "--listen-client-urls=http://127.0.0.1:%d" % client,
            "--advertise-client-urls=http://127.0.0.1:%d" % client,
            "--listen-peer-urls=http://127.0.0.1:%d" % peer,
            "--initial-advertise-peer-urls=http://127.0.0.1:%d" % peer,
            "--initial-cluster=failbench=http://127.0.0.1:%d" % peer,
            "--initial-cluster-state=new",
            "--log-level=warn",
        ]
        self.etcd = common.Background(
            common.as_user(argv, "postgres"), os.path.join(data, "etcd.log"), cwd=data, name="etcd"
        )
        self.etcd_port = client
        deadline = time.time() + 60
        while time.time() < deadline:
            if common.lc.port_in_use(client):
                return
            if not self.etcd.alive():
                break
            time.sleep(0.1)
        raise common.ToolFailed("etcd did not start: %s" % self.etcd.tail())

    def _node_config(self, name, port, rest_port):
        base = self._dir(name)
        data = os.path.join(base, "data")
        log_dir = self._dir(name, "log")
        run_dir = self._dir(name, "run")
        shared = dict((k, _pg_value(v)) for k, v in self.pg_settings.items())
        parameters = dict(shared)
        parameters.update(
            unix_socket_directories=run_dir,
            logging_collector="on",
            log_directory=log_dir,
            log_filename="postgresql.log",
            log_file_mode="0640",
        )
        config = {
            "scope": self.scope,
            "namespace": "/failbench/",
            "name": name,
            "log": {"level": "INFO", "dir": log_dir},
            "restapi": {"listen": "127.0.0.1:%d" % rest_port, "connect_address": "127.0.0.1:%d" % rest_port},
            "etcd3": {"hosts": "127.0.0.1:%d" % self.etcd_port},
            "bootstrap": {
                "dcs": dict(
                    self.dcs,
                    maximum_lag_on_failover=1048576,
                    postgresql={"use_pg_rewind": True, "use_slots": True, "parameters": shared},
                ),
                "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}, "data-checksums"],
            },
            "postgresql": {
                "listen": "127.0.0.1:%d" % port,
                "connect_address": "127.0.0.1:%d" % port,
                "data_dir": data,
                "bin_dir": self.bindir,
                "pgpass": os.path.join(base, "pgpass"),
                "use_unix_socket": True,
                "authentication": {
                    "superuser": {"username": "postgres", "password": self.password},
                    "replication": {"username": "replicator", "password": self.repl_password},
                },
                "parameters": parameters,
                "pg_hba": [
                    "local all postgres peer",
                    "local replication postgres peer",
                    "host all all 127.0.0.1/32 scram-sha-256",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                ],
            },
            "watchdog": {"mode": "off"},
        }
        path = os.path.join(base, "patroni.yml")
        with open(path, "w") as handle:
            json.dump(config, handle, indent=2)  # JSON is YAML
        os.chmod(path, 0o600)
        shutil.chown(path, "postgres", "postgres")
        return path, Node(name, port, data, os.path.join(log_dir, "postgresql.log"))

    def _start_patroni(self, name):
        conf = self.conf[name]
        self.patronis[name] = common.Background(
            common.as_user([PATRONI, conf], "postgres"),
            os.path.join(self.top, name, "patroni.out"),
            cwd=os.path.join(self.top, name),
            name="patroni %s" % name,
        )

    def setup(self):
        """etcd, then node1 (Patroni runs initdb), then node2 and node3 (Patroni clones them)."""
        self._dir()
        self._start_etcd()
        self.conf = {}
        for index in (1, 2, 3):
            name = "node%d" % index
            port, rest = common.lc.free_port(), common.lc.free_port()
            self.conf[name], node = self._node_config(name, port, rest)
            self.rest[name] = rest
            self.nodes.append(node)
        self._start_patroni("node1")
        self._wait_leader("node1", 120)
        for name in ("node2", "node3"):
            self._start_patroni(name)
        return self.nodes[0]

    def _wait_leader(self, name, timeout):
        deadline = time.time() + timeout
        url = "http://127.0.0.1:%d/primary" % self.rest[name]
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback REST API
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if not self.patronis[name].alive():
                break
            time.sleep(0.2)
        raise common.ToolFailed(
            "Patroni %s did not become the leader: %s" % (name, self.patronis[name].tail())
        )

    def wait_ready(self, primary, timeout):
        """Until Patroni's own view (GET /cluster) has ``primary`` as leader and the two others as
        running replicas; None when so, else what it showed last."""
        deadline = time.time() + timeout
        seen = None
        while time.time() < deadline:
            try:
                url = "http://127.0.0.1:%d/cluster" % self.rest[primary.name]
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback REST API
                    members = json.loads(resp.read().decode("utf-8")).get("members", [])
            except (OSError, ValueError) as exc:
                members, seen = [], str(exc)
            roles = dict((m.get("name"), (m.get("role"), m.get("state"))) for m in members)
            if members:
                seen = roles
            others = [n.name for n in self.nodes if n.name != primary.name]
            if roles.get(primary.name, (None,))[0] == "leader" and all(
                roles.get(name, (None, None))[0] == "replica" and roles[name][1] in ("running", "streaming")
                for name in others
            ):
                return None
            time.sleep(0.2)
        return "Patroni's cluster view did not settle: %s" % (seen,)

    # -- the measured steps -----------------------------------------------------------------------
    def switchover(self, old, new):
        argv = common.as_user(
            [
                PATRONICTL,
                "-c",
                self.conf[new.name],
                "switchover",
                self.scope,
                "--leader",
                old.name,
                "--candidate",
                new.name,
                "--force",
            ],
            "postgres",
        )
        proc = common.run_group(argv, cwd=self.top, timeout=300)
        return dict(
            returncode=proc.returncode,
            output=common.last_line(proc.stdout + proc.stderr),
            output_tail=common.tail_lines(proc.stdout + proc.stderr),
        )

    def kill_primary(self, node):
        """SIGKILL Patroni's process group of the node and its postmaster: the node is lost."""
        pid = node.postmaster_pid()
        self.patronis[node.name].kill()
        if pid:
            os.kill(pid, 9)
        return time.time()

    def prepare_failover(self, primary):
        return None

    def after_kill(self, old, survivors):
        return None

    # -- removal -----------------------------------------------------------------------------------
    def teardown(self):
        for proc in self.patronis.values():
            proc.stop(grace=15)
        for node in self.nodes:
            stop_folder(self.bindir, node.data_dir)
        if self.etcd is not None:
            self.etcd.stop()
        shutil.rmtree(self.top, ignore_errors=True)


def _pg_value(value):
    """A parameter value as postgresql.conf spells it (Patroni writes strings as given)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


def stop_folder(bindir, data_dir):
    """pg_ctl stop -m immediate on a data folder whose postmaster may still run (as postgres)."""
    if os.path.exists(os.path.join(data_dir, "postmaster.pid")):
        common.run_group(
            common.as_user(
                [os.path.join(bindir, "pg_ctl"), "stop", "-D", data_dir, "-m", "immediate", "-w"], "postgres"
            ),
            timeout=120,
        )
