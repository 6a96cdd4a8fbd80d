# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node without data cloned from its primary (the standby module's ``cloned`` action).

Plain Python, no Ansible imports. pg_basebackup (``-X stream -c fast``, ``-S slot -C`` when the
slot is missing) writes into ``<parent>/.<name>.dbarch-clone``, which is configured as a standby
(standby.signal, primary_conninfo, primary_slot_name, the local port when the copied configuration
names another) and only then renamed to the data folder: an interrupted or failed copy never
leaves a data folder that looks usable. A data folder that is a mount point is filled in place
and emptied again on failure. The password comes from the password file (PGPASSFILE), so
pg_basebackup -R (which would write it into postgresql.auto.conf) is not used.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import node as nd


def clone(run):
    """Clone the node (check mode: plan it); ``run`` is the standby.Run."""
    req, node = run.req, run.node
    slot = run.check_slot(streaming_here=False)
    run.result["action"] = "cloned"
    run.result["changed"] = True
    run.plan(
        "copy %s from %s with pg_basebackup%s"
        % (
            req.data_dir,
            run.up.where,
            " (creating the slot %s)" % req.slot_name if req.slot_name and slot is None else "",
        )
    )
    run.plan("configure it as a standby, start it and check that it streams")
    if req.check_mode:
        return run.result
    make_folders(node.parent, node.owner_ids())
    direct = os.path.isdir(req.data_dir) and os.path.ismount(req.data_dir)
    target = req.data_dir if direct else os.path.join(node.parent, ".%s.dbarch-clone" % node.name)
    if not direct:
        shutil.rmtree(target, ignore_errors=True)
        os.mkdir(target, 0o700)
        if os.geteuid() == 0:
            os.chown(target, *node.owner_ids())
    run.write_passfile()
    argv = [
        "-D",
        target,
        "-h",
        req.primary["host"],
        "-p",
        str(req.primary["port"]),
        "-U",
        req.primary["user"],
    ]
    argv += ["-X", "stream", "-c", "fast", "-w"]
    if req.slot_name:
        argv += ["-S", req.slot_name] + (["-C"] if slot is None else [])
    env = {"PGPASSFILE": run.passfile} if req.primary.get("password") else {}
    if req.primary.get("sslmode"):
        env["PGSSLMODE"] = req.primary["sslmode"]
    try:
        node.run(
            "pg_basebackup",
            argv,
            what="pg_basebackup from %s" % run.up.where,
            env_extra=env,
            secrets=req.secrets,
        )
        staged = nd.Node(target, node.bindir, node.service, node.run_as)
        settings = run.standby_settings() + port_setting(run, staged)
        staged.configure_standby(settings)
        if not direct:
            if os.path.isdir(req.data_dir):
                os.rmdir(req.data_dir)
            os.rename(target, req.data_dir)
    except (DbarchError, OSError) as exc:
        undo_clone(run, target, direct, slot)
        run.fail(
            "cloning %s from %s failed; no data folder was left behind%s: %s"
            % (
                req.data_dir,
                run.up.where,
                " and the slot it created was dropped" if slot is None and req.slot_name else "",
                exc,
            )
        )
    run.slot_created = slot is None and bool(req.slot_name)
    run.done(
        "copied %s from %s with pg_basebackup%s"
        % (
            req.data_dir,
            run.up.where,
            " (created the slot %s)" % req.slot_name if run.slot_created else "",
        )
    )
    run.done(
        "configured it as a standby (standby.signal, primary_conninfo%s)"
        % (", primary_slot_name" if req.slot_name else "")
    )
    run.start_and_verify()
    return run.result


def port_setting(run, staged):
    """The port the clone must listen on when its copied configuration names another (the
    primary's): the local login_port, written into postgresql.auto.conf (pg_ctl service)."""
    port = pg.resolve_params(run.req.local).get("port")
    if run.req.service != nd.PG_CTL or not port:
        return []
    configured = staged.config_value("port")
    if configured and str(configured) != str(port):
        run.note(
            "the copied configuration named port %s; port %s (login_port) written into postgresql.auto.conf"
            % (configured, port)
        )
        return [("port", int(port))]
    return []


def undo_clone(run, target, direct, slot):
    if direct:
        for name in os.listdir(target):
            path = os.path.join(target, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
    else:
        shutil.rmtree(target, ignore_errors=True)
    if slot is None and run.req.slot_name:
        try:
            run.up.drop_slot(run.req.slot_name)
        except DbarchError:
            run.note(
                "the slot %s on %s may be left over: drop it if unused" % (run.req.slot_name, run.up.where)
            )


def make_folders(path, owner):
    """Create ``path`` and its missing parents (0750); those created are given to ``owner`` (uid,
    gid) when running as root, so the server's OS user can write the data folder beside them."""
    missing = []
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    for folder in reversed(missing):
        os.mkdir(folder, 0o750)
        if os.geteuid() == 0:
            os.chown(folder, owner[0], owner[1])
    return missing
