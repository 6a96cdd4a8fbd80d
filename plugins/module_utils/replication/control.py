# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``server_control`` module's engine: find a node's data folder, binaries and service, start or
stop its server cleanly, and read what ``pg_controldata`` says afterwards (the switchover reads the
old primary's shutdown checkpoint there).

Plain Python, no Ansible imports. The node itself (pg_ctl or systemd, the OS user the binaries run
as, pg_controldata) is node.py's ``Node``, the standby module's: one place for both.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import node as nd

STATES = ("started", "stopped")
# pg_controldata's "Database cluster state" of a clean shutdown (a primary, a standby).
CLEAN_STATES = ("shut down", "shut down in recovery")


class ControlError(nd.StandbyError):
    """A failure of server_control: what failed, where, how to fix it."""


def locate(data_dir=None, bindir=None, service=None, port=None, server_data_dir=None, debian=None):
    """{data_dir, bindir, service, found} of a node.

    ``data_dir``: given, else Debian's pg_lsclusters entry whose port is ``port``, else
    ``server_data_dir`` (the running server's ``data_directory``). ``service``: given, else the
    Debian cluster's systemd unit (pg_ctl cannot start a Debian cluster: its configuration is in
    /etc/postgresql), else pg_ctl. ``bindir``: node.py's resolve_bindir. ``debian``: the
    pg_lsclusters entries (looked up when None). ``found`` says where each came from."""
    entries = nd.lsclusters() if debian is None else debian
    found = {}
    entry = None
    if data_dir:
        found["data_dir"] = "the data_dir option"
        wanted = os.path.realpath(data_dir)
        entry = next((e for e in entries if os.path.realpath(e["pgdata"]) == wanted), None)
    else:
        by_port = [e for e in entries if port and e.get("port") == int(port)]
        if len(by_port) == 1:
            entry = by_port[0]
            data_dir = entry["pgdata"]
            found["data_dir"] = "pg_lsclusters (cluster %s/%s on port %s)" % (
                entry["version"],
                entry["cluster"],
                port,
            )
        elif server_data_dir:
            data_dir = server_data_dir
            found["data_dir"] = "the running server's data_directory"
        else:
            raise ControlError(
                "cannot tell the data folder of the server on port %s: it is not a Debian cluster that "
                "pg_lsclusters lists and the server could not be asked (data_directory). Set the host var "
                "dbarch_data_dir (the data_dir option)" % (port or "(default)")
            )
    if service:
        found["service"] = "the service option"
    elif entry:
        service = "postgresql@%s-%s" % (entry["version"], entry["cluster"])
        found["service"] = "pg_lsclusters (Debian cluster %s/%s)" % (entry["version"], entry["cluster"])
    else:
        service = nd.PG_CTL
        found["service"] = "the default (pg_ctl on the data folder)"
    nd.check_service(service)
    resolved, how = nd.resolve_bindir(data_dir, bindir, None, entry if entry else False)
    found["bindir"] = how
    return dict(data_dir=os.path.abspath(data_dir), bindir=resolved, service=service, found=found)


def control_facts(node):
    """What pg_controldata says of the node, with LSNs as PostgreSQL writes them."""
    control = node.controldata()
    raw = control["raw"]
    return dict(
        state=control["state"],
        clean=control["state"] in CLEAN_STATES,
        checkpoint_lsn=wal.format_lsn(control["checkpoint_lsn"]),
        redo_lsn=raw.get("Latest checkpoint's REDO location"),
        timeline=control["checkpoint_timeline"],
        system_identifier=control["system_identifier"],
        wal_log_hints=control["wal_log_hints"],
        checksums=control["checksums"],
    )


def is_running(located):
    """True when a server runs on the located data folder."""
    return nd.Node(located["data_dir"], located["bindir"], located["service"]).running()


def converge(located, state=None, wait_timeout=300, check_mode=False, node=None):
    """Bring the node to ``state`` (None: only read it). Returns the module's result: changed,
    running (after), steps, controldata (read when the server is stopped: pg_controldata of a
    running server is a moving target) and the located settings."""
    if state not in (None,) + STATES:
        raise ControlError("state=%r: give started or stopped" % (state,))
    node = node or nd.Node(located["data_dir"], located["bindir"], located["service"])
    if node.contents() != "cluster":
        raise ControlError(
            "%s holds no PostgreSQL data folder (no PG_VERSION): check dbarch_data_dir / the data_dir option"
            % located["data_dir"]
        )
    running = node.running()
    result = dict(located, changed=False, steps=[], running=running, was_running=running)
    if state == "stopped" and running:
        result.update(changed=True)
        if check_mode:
            result["steps"].append("would stop the server (fast shutdown: a shutdown checkpoint)")
        else:
            node.stop(wait_timeout)
            result["steps"].append("stopped the server (fast shutdown)")
            result["running"] = False
    elif state == "started" and not running:
        result.update(changed=True)
        if check_mode:
            result["steps"].append("would start the server")
        else:
            node.check_startable(nd.lsclusters_entry(located["data_dir"]))
            node.start(wait_timeout)
            result["steps"].append("started the server")
            result["running"] = True
    result["controldata"] = None if result["running"] else control_facts(node)
    return result
