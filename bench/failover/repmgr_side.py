# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""repmgr 5 (Debian ``postgresql-15-repmgr``) on three local clusters.

node1 is built by LocalCluster (initdb, its dbarch.conf layout, ``shared_preload_libraries =
repmgr``); ``repmgr primary register`` registers it, ``repmgr standby clone`` copies it into node2
and node3 (their dbarch.conf then gets their own port and socket folder) and ``repmgr standby
register`` registers them. Every node has its own repmgr.conf and runs ``repmgrd`` with
``failover=automatic``.

``repmgr standby switchover`` runs commands on the demotion candidate (and with
``--siblings-follow`` on the siblings) over SSH, to the host in the node's conninfo, even when that
is this host. So the run starts an sshd of its own on a free loopback port, as the ``postgres`` OS
user (a non-root sshd lets only its own user in), with a host key and an authorized key made for
the run, and gives repmgr ``ssh_options`` with that port and key: nothing of the machine's SSH
set-up (``/etc/ssh``, ``~postgres/.ssh``) is read or changed. A password file of the run
(``passfile`` in conninfo and in repmgr.conf) carries the repmgr user's password.

Unclean failover: SIGKILL of the primary's repmgrd and postmaster (the node is lost); the
standbys' repmgrd notice, retry ``reconnect_attempts`` times ``reconnect_interval`` seconds apart,
elect, and run ``promote_command`` / ``follow_command``.
"""

import os
import secrets
import shutil
import subprocess
import time

import common
from observe import Node
from patroni_side import stop_folder

lc = common.lc
SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"

# repmgrd's failure detection: its defaults, and a tuned set with about the tolerance of Patroni's
# tuned ttl (a primary is declared lost after about 8-10 s of silence).
CONFIGS = {
    "default": dict(monitor_interval_secs=2, reconnect_attempts=6, reconnect_interval=10),
    "tuned": dict(monitor_interval_secs=1, reconnect_attempts=4, reconnect_interval=2),
}


def repmgr_bin(bindir, name):
    return os.path.join(bindir, name)


def missing(bindir):
    lacking = [
        p for p in (repmgr_bin(bindir, "repmgr"), repmgr_bin(bindir, "repmgrd")) if not os.access(p, os.X_OK)
    ]
    if lacking:
        return "not installed: %s (apt-get install postgresql-15-repmgr; make bench-deps)" % ", ".join(
            lacking
        )
    if not os.access(SSHD, os.X_OK):
        return (
            "not installed: %s (apt-get install openssh-server; make bench-deps): repmgr switchover needs SSH"
            % SSHD
        )
    return None


def version(bindir):
    try:
        out = subprocess.run(
            [repmgr_bin(bindir, "repmgr"), "--version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except OSError as exc:
        return "n/a (%s)" % exc
    return common.first_line(out.stdout or out.stderr)


def _conf_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return "'%s'" % str(value).replace("'", "''")


class RepmgrSide:
    kind = "repmgr"

    def __init__(self, top, bindir, config, pg_settings, log):
        self.config = config
        self.failover_conf = dict(CONFIGS[config])
        self.label = (
            "repmgr (monitor %(monitor_interval_secs)ds, %(reconnect_attempts)d x %(reconnect_interval)ds)"
            % self.failover_conf
        )
        self.key = "repmgr-%s" % config
        self.top = os.path.join(top, self.key)
        self.bindir = bindir
        self.pg_settings = dict(pg_settings, shared_preload_libraries="repmgr")
        self.log = log
        self.password = secrets.token_urlsafe(18)
        self.repmgr_password = secrets.token_urlsafe(18)
        self.nodes = []
        self.primary_cluster = None
        self.repmgrd = {}
        self.sshd = None
        self.settings = dict(self.failover_conf, failover="automatic", use_replication_slots=True)
        self.can_failover = True

    # -- helpers -----------------------------------------------------------------------------------
    def _dir(self, *parts, mode=0o755):
        path = os.path.join(self.top, *parts)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
        shutil.chown(path, "postgres", "postgres")
        return path

    def _write(self, path, text, mode=0o600):
        with open(path, "w") as handle:
            handle.write(text)
        os.chmod(path, mode)
        shutil.chown(path, "postgres", "postgres")
        return path

    def _repmgr(self, name, *args, timeout=600):
        argv = common.as_user(
            [repmgr_bin(self.bindir, "repmgr"), "-f", self.conf[name]] + list(args), "postgres"
        )
        proc = common.run_group(argv, cwd=self.top, timeout=timeout)
        if proc.returncode != 0:
            raise common.ToolFailed(
                "repmgr %s on %s exited %d: %s"
                % (" ".join(args[:2]), name, proc.returncode, common.last_line(proc.stderr or proc.stdout))
            )
        return proc

    def _pg_ctl(self, node, *args, timeout=180):
        argv = common.as_user([os.path.join(self.bindir, "pg_ctl")] + list(args), "postgres")
        proc = common.run_group(argv, timeout=timeout)
        if proc.returncode != 0:
            raise common.ToolFailed(
                "pg_ctl %s on %s: %s" % (args[0], node.name, common.last_line(proc.stderr))
            )

    # -- sshd on loopback, as postgres --------------------------------------------------------------
    def _start_sshd(self):
        folder = self._dir("ssh", mode=0o700)
        for key in ("host_key", "client_key"):
            subprocess.run(
                common.as_user(
                    [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(folder, key)], "postgres"
                ),
                check=True,
                capture_output=True,
            )
        with open(os.path.join(folder, "client_key.pub")) as handle:
            self._write(os.path.join(folder, "authorized_keys"), handle.read())
        self.ssh_port = lc.free_port()
        config = "\n".join(
            [
                "Port %d" % self.ssh_port,
                "ListenAddress 127.0.0.1",
                "HostKey %s" % os.path.join(folder, "host_key"),
                "PidFile %s" % os.path.join(folder, "sshd.pid"),
                "AuthorizedKeysFile %s" % os.path.join(folder, "authorized_keys"),
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PrintMotd no",
                "",
            ]
        )
        conf = self._write(os.path.join(folder, "sshd_config"), config)
        self.sshd = common.Background(
            common.as_user([SSHD, "-D", "-e", "-f", conf], "postgres"),
            os.path.join(folder, "sshd.log"),
            name="sshd",
        )
        self.ssh_options = (
            "-q -p %d -i %s -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o LogLevel=ERROR -o ConnectTimeout=10" % (self.ssh_port, os.path.join(folder, "client_key"))
        )
        deadline = time.time() + 30
        while time.time() < deadline and not lc.port_in_use(self.ssh_port):
            if not self.sshd.alive():
                break
            time.sleep(0.1)
        probe = common.run_group(
            common.as_user(["ssh"] + self.ssh_options.split() + ["127.0.0.1", "true"], "postgres"), timeout=30
        )
        if probe.returncode != 0:
            raise common.ToolFailed(
                "loopback sshd for repmgr does not let postgres in: %s" % self.sshd.tail()
            )

    # -- set-up ------------------------------------------------------------------------------------
    def _repmgr_conf(self, index, node):
        base = os.path.dirname(node.data_dir)
        service = os.path.join(self.bindir, "pg_ctl")
        conf_path = os.path.join(base, "repmgr.conf")
        repmgr = repmgr_bin(self.bindir, "repmgr")
        items = [
            ("node_id", index),
            ("node_name", node.name),
            (
                "conninfo",
                "host=127.0.0.1 port=%d user=repmgr dbname=repmgr connect_timeout=2 passfile=%s"
                % (node.port, self.passfile),
            ),
            ("data_directory", node.data_dir),
            ("passfile", self.passfile),
            ("pg_bindir", self.bindir),
            ("repmgr_bindir", self.bindir),
            ("use_replication_slots", True),
            ("ssh_options", self.ssh_options),
            ("service_start_command", "%s -D %s -l %s -w start" % (service, node.data_dir, node.log_file)),
            ("service_stop_command", "%s -D %s -m fast -w stop" % (service, node.data_dir)),
            (
                "service_restart_command",
                "%s -D %s -l %s -m fast -w restart" % (service, node.data_dir, node.log_file),
            ),
            ("service_reload_command", "%s -D %s reload" % (service, node.data_dir)),
            ("log_level", "INFO"),
            ("log_file", os.path.join(base, "repmgr.log")),
            ("repmgrd_pid_file", os.path.join(base, "repmgrd.pid")),
            ("failover", "automatic"),
            ("promote_command", "%s standby promote -f %s --log-to-file" % (repmgr, conf_path)),
            (
                "follow_command",
                "%s standby follow -f %s --log-to-file --upstream-node-id=%%n" % (repmgr, conf_path),
            ),
            ("priority", 100),
        ] + sorted(self.failover_conf.items())
        text = "".join("%s=%s\n" % (key, _conf_value(value)) for key, value in items)
        return self._write(conf_path, text)

    def setup(self):
        self._dir()
        self._start_sshd()
        self.passfile = self._write(
            os.path.join(self.top, "pgpass"),
            "127.0.0.1:*:*:repmgr:%s\n127.0.0.1:*:replication:repmgr:%s\n"
            % (self.repmgr_password, self.repmgr_password),
        )
        self.conf = {}
        names = ("node1", "node2", "node3")
        ports = dict((name, lc.free_port()) for name in names)
        # node1: a LocalCluster, the repmgr user and database, registered as primary.
        data1 = os.path.join(self._dir("node1"), "data")
        self.primary_cluster = lc.LocalCluster(data1, port=ports["node1"], bindir=self.bindir)
        self.primary_cluster.initdb(superuser="postgres", password=self.password, settings=self.pg_settings)
        node1 = Node("node1", ports["node1"], data1, self.primary_cluster.log_file)
        self.nodes.append(node1)
        self.conf["node1"] = self._repmgr_conf(1, node1)
        self.primary_cluster.start()
        verifier = lc.scram_verifier(self.repmgr_password)
        self.primary_cluster.psql(
            "CREATE ROLE repmgr LOGIN SUPERUSER PASSWORD %s" % lc.quote_literal(verifier)
        )
        self.primary_cluster.psql('ALTER ROLE repmgr SET search_path TO repmgr, "$user", public')
        self.primary_cluster.create_database("repmgr", owner="repmgr")
        self._repmgr("node1", "primary", "register")
        # node2, node3: repmgr standby clone, then their own port and socket folder, start, register.
        for index, name in ((2, "node2"), (3, "node3")):
            base = self._dir(name)
            data = os.path.join(base, "data")
            run_dir, log_dir = self._dir(name, "run"), self._dir(name, "log", mode=0o750)
            node = Node(name, ports[name], data, os.path.join(log_dir, "postgresql.log"))
            self.nodes.append(node)
            self.conf[name] = self._repmgr_conf(index, node)
            upstream = "host=127.0.0.1 port=%d user=repmgr dbname=repmgr passfile=%s" % (
                ports["node1"],
                self.passfile,
            )
            self._repmgr(name, "-d", upstream, "standby", "clone", "--fast-checkpoint")
            self._write(
                os.path.join(data, lc.MANAGED_CONF),
                lc.managed_conf_text(node.port, run_dir, self.pg_settings),
            )
            self._pg_ctl(node, "-D", data, "-l", node.log_file, "-w", "start")
            self._repmgr(name, "standby", "register")
        for node in self.nodes:
            self._start_repmgrd(node)
        why = self.wait_ready(node1, 60)
        if why:
            raise common.ToolFailed(why)
        return node1

    def _start_repmgrd(self, node):
        argv = common.as_user(
            [repmgr_bin(self.bindir, "repmgrd"), "-f", self.conf[node.name], "--daemonize=false"], "postgres"
        )
        base = os.path.dirname(node.data_dir)
        self.repmgrd[node.name] = common.Background(
            argv, os.path.join(base, "repmgrd.out"), cwd=base, name="repmgrd %s" % node.name
        )

    def wait_ready(self, primary, timeout):
        """Until ``repmgr service status`` (run on ``primary``) shows it as the primary, the others
        as standbys, every repmgrd running and not paused, and every standby's repmgrd having
        seen its upstream within two monitoring intervals (a repmgrd still sleeping between
        reconnection attempts after a switchover shows a growing 'upstream last seen').
        None when so, else the last status seen."""
        fresh = 2 * self.failover_conf["monitor_interval_secs"] + 1
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            proc = common.run_group(
                common.as_user(
                    [
                        repmgr_bin(self.bindir, "repmgr"),
                        "-f",
                        self.conf[primary.name],
                        "service",
                        "status",
                        "--csv",
                    ],
                    "postgres",
                ),
                timeout=60,
            )
            rows = [line.split(",") for line in proc.stdout.splitlines() if line.count(",") >= 8]
            last = proc.stdout.strip() or common.last_line(proc.stderr)
            good = proc.returncode == 0 and len(rows) == len(self.nodes)
            for row in rows if good else []:
                name, role, running, paused, seen = row[1], row[2], row[4], row[6], row[8]
                wanted = "primary" if name == primary.name else "standby"
                good = good and role == wanted and running == "1" and paused == "0"
                good = good and (role == "primary" or 0 <= int(seen) <= fresh)
            if good:
                return None
            time.sleep(0.5)
        return "repmgrd did not settle with %s as primary; last status: %s" % (primary.name, last)

    # -- the measured steps -----------------------------------------------------------------------
    def switchover(self, old, new):
        argv = common.as_user(
            [
                repmgr_bin(self.bindir, "repmgr"),
                "-f",
                self.conf[new.name],
                "standby",
                "switchover",
                "--siblings-follow",
            ],
            "postgres",
        )
        proc = common.run_group(argv, cwd=self.top, timeout=300)
        return dict(
            returncode=proc.returncode,
            output=common.last_line(proc.stderr + proc.stdout),
            output_tail=common.tail_lines(proc.stderr + proc.stdout),
        )

    def kill_primary(self, node):
        """SIGKILL the node's repmgrd and its postmaster: the node is lost."""
        pid = node.postmaster_pid()
        self.repmgrd[node.name].kill()
        if pid:
            os.kill(pid, 9)
        return time.time()

    def prepare_failover(self, primary):
        return None

    def after_kill(self, old, survivors):
        return None

    # -- removal -----------------------------------------------------------------------------------
    def teardown(self):
        for proc in self.repmgrd.values():
            proc.stop(grace=10)
        for node in self.nodes:
            stop_folder(self.bindir, node.data_dir)
        if self.sshd is not None:
            self.sshd.stop()
        shutil.rmtree(self.top, ignore_errors=True)
