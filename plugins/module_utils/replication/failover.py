# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an unplanned failover must know before it changes anything (the ``failover_info`` module):

1. the old primary is down: ``checks`` consecutive connection attempts, ``interval`` seconds apart,
   that no server answers (a server that answers at all, even refusing our login, is alive: the
   same test as the ``promote`` module's ``old_primary`` guard, promote.probe);
2. where every standby stands (recovery state, timeline, WAL received and replayed), read once the
   old primary is confirmed down, so that nothing more can arrive;
3. the standby to promote: the most advanced reachable one (newest timeline, then most WAL held,
   then most replayed; promote.position), or the reason not to fail over at all.

Nothing here changes anything. Plain Python: no Ansible imports; connections through core/pg.py
(``connect`` is injectable, as are the clock and sleep).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import conninfo, promote

MODULE_NAME = "failover_info"
DEFAULT_CHECKS = 3
DEFAULT_INTERVAL = 2.0

# Settings of a standby the playbook needs to repoint it; each read on its own (primary_conninfo
# needs a superuser or pg_read_all_settings: a refusal leaves that one out).
_SETTINGS = ("primary_slot_name", "primary_conninfo", "data_directory", "synchronous_standby_names")


class FailoverError(DbarchError):
    """Bad input (the message says which option and how to fix it)."""


def check_options(checks, interval):
    if int(checks) < 1:
        raise FailoverError("checks=%s: give at least 1 (3 is the default)" % checks)
    if float(interval) < 0:
        raise FailoverError("check_interval=%s: give 0 or more seconds" % interval)


# -- 1. the old primary ----------------------------------------------------------------------------
def confirm_down(
    params, connect, checks=DEFAULT_CHECKS, interval=DEFAULT_INTERVAL, clock=time.monotonic, sleep=time.sleep
):
    """Try the old primary up to ``checks`` times, ``interval`` seconds apart.

    Stops at the first attempt a server answers. Returns {name, down, checks: [{attempt, status,
    answered, seconds}], seconds, state?}: ``down`` only when every attempt found no server; ``state``
    (recovery state, LSNs) when an answering server could be read."""
    started = clock()
    attempts = []
    name = promote.label(params)
    for attempt in range(1, int(checks) + 1):
        began = clock()
        seen = promote.probe(params, connect, params.get("connect_timeout") or 3)
        attempts.append(
            dict(
                attempt=attempt,
                status=seen["status"],
                answered=seen["answered"],
                seconds=round(clock() - began, 3),
            )
        )
        if seen["answered"]:
            out = dict(name=name, down=False, checks=attempts, seconds=round(clock() - started, 3))
            if seen.get("state"):
                out["state"] = promote.public_state(seen["state"])
            return out
        if attempt < int(checks):
            sleep(float(interval))
    return dict(name=name, down=True, checks=attempts, seconds=round(clock() - started, 3))


# -- 2. the standbys ---------------------------------------------------------------------------------
def _setting(session, name):
    try:
        return session.scalar("SELECT current_setting(%s)", (name,))
    except DbarchError:
        return None


def upstream_of(conninfo_text):
    """(host, port) a standby's primary_conninfo names, or (None, None)."""
    if not conninfo_text:
        return None, None
    try:
        keys = conninfo.parse(conninfo_text)
    except conninfo.ConninfoError:
        return None, None
    port = keys.get("port") or "5432"
    return keys.get("host") or keys.get("hostaddr"), int(port) if str(port).isdigit() else None


def read_server(name, params, connect):
    """One server of the group: {name, reachable, answered, status, state?, settings?}."""
    params = dict(params)
    params["connect_timeout"] = params.get("connect_timeout") or 5
    try:
        session = connect(params)
    except DbarchError as exc:
        reason = promote._failure_reason(exc)
        answered = not promote.unreachable(reason)
        status = ("answered but not readable: %s" if answered else "unreachable: %s") % reason
        return dict(
            name=name, address=promote.label(params), reachable=False, answered=answered, status=status
        )
    try:
        state = promote.node_state(session)
        settings = dict((s, _setting(session, s)) for s in _SETTINGS)
    except DbarchError as exc:
        return dict(
            name=name,
            address=promote.label(params),
            reachable=False,
            answered=True,
            status="answered but not readable: %s" % exc,
        )
    finally:
        session.close()
    host, port = upstream_of(settings.get("primary_conninfo"))
    return dict(
        name=name,
        address=promote.label(params),
        reachable=True,
        answered=True,
        status="reachable",
        state=state,
        slot_name=settings.get("primary_slot_name") or None,
        upstream=dict(host=host, port=port) if host else None,
        data_directory=settings.get("data_directory"),
        synchronous_standby_names=settings.get("synchronous_standby_names"),
    )


def public(server):
    """What the module returns of one server (no system identifier, plain values)."""
    out = dict((k, server.get(k)) for k in ("name", "address", "reachable", "status"))
    state = server.get("state")
    if state:
        out.update(promote.public_state(state))
        for key in ("slot_name", "upstream", "data_directory", "synchronous_standby_names"):
            out[key] = server.get(key)
    for key in ("rank", "verdict"):
        if key in server:
            out[key] = server[key]
    return out


# -- 3. the choice --------------------------------------------------------------------------------
def choose(servers, exclude=()):
    """Rank the readable standbys, most advanced first, and pick the first not excluded.

    ``servers``: read_server results in inventory order (the order breaks ties). Returns (candidate
    name or None, ranking: the servers with ``rank`` and ``verdict`` set)."""
    exclude = set(exclude or ())
    standbys = [s for s in servers if s.get("reachable") and s["state"]["in_recovery"]]
    order = dict((s["name"], i) for i, s in enumerate(servers))
    ranked = sorted(
        standbys,
        key=lambda s: (
            tuple(-v for v in promote.position(s["state"])),
            order[s["name"]],
        ),
    )
    candidate = None
    best = ranked[0] if ranked else None
    for rank, server in enumerate(ranked, 1):
        server["rank"] = rank
        if server["name"] in exclude:
            server["verdict"] = "excluded (failover_exclude)"
            continue
        if candidate is None:
            candidate = server["name"]
            if promote.compare(server["state"], best["state"]) == "ahead":
                server["verdict"] = "chosen (the most advanced ones are excluded)"
            else:
                server["verdict"] = "chosen (most advanced)"
        else:
            server["verdict"] = "follows the candidate"
    for server in servers:
        if "verdict" not in server:
            if not server.get("reachable"):
                server["verdict"] = "left out (%s)" % server["status"]
            else:
                server["verdict"] = "left out (not in recovery)"
    return candidate, ranked


def _lsn_text(state):
    pos = promote.position(state)
    return "timeline %d, received %s, replayed %s" % (pos[0], wal.format_lsn(pos[1]), wal.format_lsn(pos[2]))


def refusal(old, servers, candidate, exclude=()):
    """Why the failover must not go on (None when it may): the old primary answers, a server of the
    group is already out of recovery, or no standby can be promoted."""
    if not old["down"]:
        state = old.get("state") or {}
        last = old["checks"][-1]
        if state and not state.get("in_recovery"):
            return (
                "the old primary %s accepts connections and is out of recovery (timeline %s, LSN %s): "
                "it is up, there is nothing to fail over. For a planned change of primary run "
                "playbooks/switchover.yml; if clients cannot reach it, find out why before anything else"
                % (old["name"], state.get("timeline"), state.get("current_lsn"))
            )
        if state:
            return (
                "%s answers and is in recovery: it is a standby, not the failed primary (a stale "
                "inventory?). Name the failed primary with -e failover_old_primary=<host>" % old["name"]
            )
        return (
            "a server answers at the old primary %s on check %d (%s): it is alive. Stop it or fence it "
            "from clients, or fix the login so its state can be read, then run again"
            % (old["name"], last["attempt"], last["status"])
        )
    writable = [s["name"] for s in servers if s.get("reachable") and not s["state"]["in_recovery"]]
    if writable:
        return (
            "%s %s out of recovery: a primary exists already (a failover done before? then the "
            "inventory is stale). Point the inventory's primary group at it, or make the others follow it "
            "with playbooks/rejoin.yml" % (", ".join(writable), "is" if len(writable) == 1 else "are")
        )
    if candidate is None:
        readable = [s for s in servers if s.get("reachable")]
        if readable and {s["name"] for s in readable} <= set(exclude or ()):
            return "every reachable standby is excluded (failover_exclude: %s)" % ", ".join(sorted(exclude))
        return "no standby could be read: %s" % (
            "; ".join("%s: %s" % (s["name"], s["status"]) for s in servers) or "none given"
        )
    return None


def run(
    old_primary,
    standbys,
    connect=None,
    checks=DEFAULT_CHECKS,
    interval=DEFAULT_INTERVAL,
    exclude=(),
    clock=time.monotonic,
    sleep=time.sleep,
):
    """The ``failover_info`` run. ``old_primary``: connection options (login_host, ...) plus ``name``;
    ``standbys``: a list of the same. Returns {old_primary, standbys, candidate, ready, refusal,
    detection_seconds, msg}."""
    check_options(checks, interval)
    connect = connect or (lambda params: pgmod.connect(params, MODULE_NAME))
    old_params = dict(old_primary)
    old_name = old_params.pop("name", None)
    old = confirm_down(old_params, connect, checks, interval, clock, sleep)
    old["name"] = old_name or old["name"]
    servers = []
    for item in standbys:
        params = dict(item)
        name = params.pop("name", None) or promote.label(params)
        servers.append(read_server(name, params, connect))
    candidate, _ranked = choose(servers, exclude) if old["down"] else (None, [])
    reason = refusal(old, servers, candidate, exclude)
    if reason:
        candidate = None
    chosen = next((s for s in servers if s["name"] == candidate), None)
    if reason:
        msg = "no failover: " + reason
    else:
        msg = "%s is down (%d failed checks in %.1f s); the standby to promote is %s (%s)" % (
            old["name"],
            len(old["checks"]),
            old["seconds"],
            candidate,
            _lsn_text(chosen["state"]),
        )
    return dict(
        old_primary=old,
        standbys=[public(s) for s in servers],
        candidate=candidate,
        ready=reason is None,
        refusal=reason,
        detection_seconds=old["seconds"],
        msg=msg,
    )
