# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Promoting one standby, guarded, so that a promotion neither loses WAL another standby has nor
creates a second writable primary.

The guards run in this order, and each records what it saw (``guards`` of the result):

1. ``target``: the server to promote must be in recovery. Already out of recovery: nothing to do
   (changed=false), unless a candidate shows it is not the right primary (another candidate is a
   writable primary too, or is on a newer timeline).
2. ``candidates``: every other candidate that answers must not have received, or (when received
   WAL is equal) replayed, more WAL than the target, on the same or an older timeline
   (``allow_behind`` overrides). When a candidate only replayed more of the same WAL, the target
   (replay not paused) is first given up to ``wait_timeout`` seconds to replay as far. One that
   cannot be reached is recorded as ``unreachable: <reason>``.
3. ``old_primary``: must not accept connections: a server that is out of recovery there means two
   writable primaries; any server that answers (even refusing our login) is alive (``force``
   overrides this guard only).
4. ``replay``: the target must not have replay paused; then (not in check mode) it replays all it
   received, waited for up to ``wait_timeout`` seconds.

Then ``pg_promote(wait => true, wait_seconds => wait_timeout)``, and the new timeline (of
pg_walfile_name(pg_current_wal_lsn())) and the promoted LSN (the last replayed, where the new
timeline begins) are read back. Check mode runs every guard and promotes nothing.

Plain Python: no Ansible imports. Connections through core/pg.py (``connect`` is injectable).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import retry
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

MODULE_NAME = "promote"
DEFAULT_PROBE_TIMEOUT = 5

_Q_NODE = """
SELECT pg_is_in_recovery() AS in_recovery,
       (SELECT system_identifier FROM pg_control_system())::text AS system_identifier,
       pg_postmaster_start_time()::text AS postmaster_start_time,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_walfile,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS replay_pause_state,
       (SELECT received_tli FROM pg_stat_wal_receiver) AS received_tli,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
       current_setting('recovery_min_apply_delay') AS recovery_min_apply_delay
"""

# libpq's words when no server answered at all (nothing listens, nothing routes, nobody answered
# in time). Any other failure to connect came from a server that is up.
_NO_SERVER = re.compile(
    r"connection refused|timeout expired|timed out|could not translate host name|name or service not known|"
    r"no route to host|network is unreachable|host is unreachable|no such file or directory|"
    r"could not connect to server",
    re.I,
)


class PromoteError(DbarchError):
    """A guard refused, or the promotion failed; ``guard`` names it, ``result`` holds what every
    guard saw so far (returned with the failure)."""

    DETAIL_ATTRIBUTES = ("sqlstate", "guard")

    def __init__(self, message, guard=None, result=None, sqlstate=None):
        super(PromoteError, self).__init__(message)
        self.guard = guard
        self.result = result or {}
        self.sqlstate = sqlstate


# -- what a server is ----------------------------------------------------------------------------
_Q_CAN_PROMOTE = (
    "SELECT current_user AS login_role, "
    "has_function_privilege('pg_catalog.pg_promote(boolean, integer)', 'EXECUTE') AS may_promote"
)


def _lsn(text):
    return wal.parse_lsn(text) if text else None


def node_state(session):
    """Recovery state, LSNs and timeline of the server of ``session`` (plain data)."""
    row = session.fetchone(_Q_NODE)
    state = dict(row)
    state["timeline"] = (
        wal.timeline_of(row["current_walfile"])
        if row["current_walfile"]
        else (row["received_tli"] or max(row["checkpoint_timeline"] or 0, _wal_timeline(session, row)))
    )
    return state


def _wal_timeline(session, row):
    """The timeline of a standby whose WAL receiver is down, from its pg_wal segments (its control file
    names the old timeline until its next restartpoint); 0 when pg_ls_waldir() is not allowed (a
    superuser or pg_monitor may)."""
    held = max(_lsn(row.get("receive_lsn")) or 0, _lsn(row.get("replay_lsn")) or 0)
    if not held:
        return 0
    try:
        size = session.scalar("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")
        names = [r["name"] for r in session.fetchall("SELECT name FROM pg_ls_waldir()")]
    except DbarchError:
        return 0
    return wal.newest_timeline_holding(names, held, int(size or wal.DEFAULT_SEGMENT_SIZE))


def public_state(state):
    """What a guard shows of a server state."""
    keys = ("in_recovery", "timeline", "receive_lsn", "replay_lsn", "current_lsn", "replay_pause_state")
    return dict((k, state.get(k)) for k in keys if state.get(k) is not None or k == "in_recovery")


def same_server(a, b):
    """Whether two states are of one running server (same cluster, same postmaster start)."""
    return (
        a.get("system_identifier") == b.get("system_identifier")
        and a.get("postmaster_start_time") == b.get("postmaster_start_time")
        and a.get("postmaster_start_time") is not None
    )


def position(state):
    """(timeline, WAL it holds, WAL it replayed) of a standby, to compare candidates.

    What a standby holds is the furthest of what it received by streaming and what it replayed
    (WAL restored from an archive is replayed without being "received")."""
    received = _lsn(state.get("receive_lsn"))
    replayed = _lsn(state.get("replay_lsn")) or 0
    holds = max(received or 0, replayed)
    return (int(state.get("timeline") or 0), holds, replayed)


def compare(target, candidate):
    """'ahead', 'behind' or 'equal': where ``candidate`` stands against ``target`` (both standbys).

    A newer timeline is ahead whatever its LSN (someone promoted already); on one timeline, more
    WAL held is ahead; with the same WAL held, more replayed is ahead."""
    t, c = position(target), position(candidate)
    if c > t:
        return "ahead"
    if c < t:
        return "behind"
    return "equal"


def unreachable(reason):
    """Whether a connection failure means that no server answered (vs a server that refused us)."""
    return bool(_NO_SERVER.search(str(reason)))


def _failure_reason(exc):
    text = str(exc)
    # pg.connect's message is "Cannot connect to PostgreSQL (host=... user=...): <reason>".
    return text.split("): ", 1)[1] if "): " in text else text


def label(params):
    host = params.get("login_host") or params.get("login_unix_socket") or "local socket"
    return "%s:%s" % (host, params.get("login_port") or 5432)


def probe(params, connect, timeout=DEFAULT_PROBE_TIMEOUT):
    """Connect to one other server and read its state.

    Returns {name, reachable, answered, status, state?}: ``reachable`` when it was read,
    ``answered`` when a server answered at all (also when it refused our login)."""
    params = dict(params)
    params.setdefault("connect_timeout", timeout)
    if not params.get("connect_timeout"):
        params["connect_timeout"] = timeout
    name = label(params)
    try:
        session = connect(params)
    except DbarchError as exc:
        reason = _failure_reason(exc)
        if unreachable(reason):
            return dict(name=name, reachable=False, answered=False, status="unreachable: %s" % reason)
        return dict(
            name=name, reachable=False, answered=True, status="answered but not readable: %s" % reason
        )
    try:
        state = node_state(session)
    except DbarchError as exc:
        return dict(name=name, reachable=False, answered=True, status="answered but not readable: %s" % exc)
    finally:
        session.close()
    return dict(name=name, reachable=True, answered=True, status="reachable", state=state)


# -- the guards' decisions (pure) ------------------------------------------------------------------
def judge_candidate(target, seen, allow_behind, target_is_primary=False):
    """The guard entry of one probed candidate and the refusal (None when it passes)."""
    entry = dict(name=seen["name"], status=seen["status"])
    if not seen["reachable"]:
        if seen["answered"]:
            entry["verdict"] = "overridden (allow_behind)" if allow_behind else "refused"
            refusal = (
                None
                if allow_behind
                else "candidate %s answered but could not be read (%s): it may hold more WAL than the "
                "target. Fix its connection (user, password, pg_hba.conf), remove it from candidates, or set "
                "allow_behind: true to promote anyway" % (seen["name"], seen["status"])
            )
            return entry, refusal
        entry["verdict"] = "skipped (unreachable)"
        return entry, None
    state = seen["state"]
    entry.update(public_state(state))
    if same_server(target, state):
        entry["verdict"] = "skipped (the target itself)"
        return entry, None
    if not state["in_recovery"]:
        entry["verdict"] = "refused"
        return entry, (
            "candidate %s is not in recovery: it is a writable primary (timeline %s, LSN %s); promoting "
            "the target too would make two. Find out which primary clients write to before going on"
            % (seen["name"], state.get("timeline"), state.get("current_lsn"))
        )
    if target_is_primary:
        if int(state.get("timeline") or 0) > int(target.get("timeline") or 0):
            entry["verdict"] = "refused"
            return entry, (
                "candidate %s is on timeline %s, newer than the target's %s: another server was promoted "
                "after the target" % (seen["name"], state.get("timeline"), target.get("timeline"))
            )
        entry["verdict"] = "ok (a standby)"
        return entry, None
    where = compare(target, state)
    entry["compared"] = where
    if where != "ahead":
        entry["verdict"] = "ok (%s)" % ("behind the target" if where == "behind" else "equal to the target")
        return entry, None
    if allow_behind:
        entry["verdict"] = "overridden (allow_behind)"
        return entry, None
    entry["verdict"] = "refused"
    t, c = position(target), position(state)
    if c[0] > t[0]:
        what = "is on timeline %d, newer than the target's %d" % (c[0], t[0])
    elif c[1] > t[1]:
        what = "has received WAL up to %s, the target only up to %s (%d bytes more)" % (
            wal.format_lsn(c[1]),
            wal.format_lsn(t[1]),
            c[1] - t[1],
        )
    else:
        what = "has replayed WAL up to %s, the target only up to %s (%d bytes more)" % (
            wal.format_lsn(c[2]),
            wal.format_lsn(t[2]),
            c[2] - t[2],
        )
    return entry, (
        "candidate %s %s: promoting the target would lose that WAL. Promote %s instead, or set "
        "allow_behind: true to accept the loss" % (seen["name"], what, seen["name"])
    )


def judge_old_primary(target, seen, force):
    """The guard entry of the probed old primary and the refusal (None when it passes)."""
    entry = dict(name=seen["name"], status=seen["status"])
    if not seen["answered"]:
        entry["verdict"] = "ok (does not accept connections)"
        return entry, None
    overridable = None
    if seen["reachable"]:
        state = seen["state"]
        entry.update(public_state(state))
        if same_server(target, state):
            entry["verdict"] = "refused"
            return entry, (
                "old_primary %s is the target server itself: give the address of the old primary"
                % seen["name"]
            )
        if state["in_recovery"]:
            entry["verdict"] = "ok (in recovery: not writable)"
            return entry, None
        overridable = (
            "old primary %s accepts connections and is not in recovery (timeline %s, LSN %s): promoting "
            "the target would make a second writable primary (split brain). Stop it (pg_ctl stop -m "
            "fast, systemctl stop) or fence it from clients first; set force: true only if clients can "
            "no longer reach it" % (seen["name"], state.get("timeline"), state.get("current_lsn"))
        )
    else:
        overridable = (
            "a server answers at old primary %s (%s): it is up and may accept writes. Stop it or fix the "
            "connection so its state can be read; set force: true only if clients can no longer reach it"
            % (seen["name"], seen["status"])
        )
    if force:
        entry["verdict"] = "overridden (force)"
        return entry, None
    entry["verdict"] = "refused"
    return entry, overridable


def replay_refusal(state):
    """A refusal when the target's replay cannot finish by itself (paused), else None."""
    if state.get("replay_pause_state") in ("paused", "pause requested"):
        return (
            "WAL replay is %s on the target: it would never replay what it received. Resume it "
            "(SELECT pg_wal_replay_resume();) and run again" % state["replay_pause_state"]
        )
    return None


def pending_bytes(state):
    received = _lsn(state.get("receive_lsn"))
    replayed = _lsn(state.get("replay_lsn"))
    if received is None or replayed is None:
        return 0
    return max(0, received - replayed)


# -- the run ------------------------------------------------------------------------------------
def _refuse(guard, message, result):
    raise PromoteError("promote refused by the %s guard: %s." % (guard, message), guard=guard, result=result)


def run(
    session,
    target_name,
    candidates=(),
    old_primary=None,
    allow_behind=False,
    force=False,
    wait_timeout=60,
    check_mode=False,
    connect=None,
    probe_timeout=DEFAULT_PROBE_TIMEOUT,
    clock=time.monotonic,
    sleep=time.sleep,
):
    """Guards, then the promotion of the server of ``session``. ``candidates``/``old_primary``:
    connection option dicts (login_host, login_port, login_user, login_password, login_db, ...).

    Returns {changed, promoted, timeline, promoted_lsn, guards, msg}; raises PromoteError naming the
    guard that refused (nothing changed then)."""
    connect = connect or (lambda params: pgmod.connect(params, MODULE_NAME))
    target = node_state(session)
    guards = dict(target=dict(name=target_name, **public_state(target)))
    result = dict(
        changed=False, promoted=False, timeline=target["timeline"], promoted_lsn=None, guards=guards
    )
    is_primary = not target["in_recovery"]
    if not is_primary:
        # First: a role that may not promote would otherwise be found out only after the checks (or, in
        # a switchover, after the old primary was stopped).
        row = session.fetchone(_Q_CAN_PROMOTE, record=False)
        allowed = bool(row["may_promote"])
        guards["privilege"] = dict(
            login_role=row["login_role"], may_promote=allowed, verdict="ok" if allowed else "refused"
        )
        if not allowed:
            _refuse(
                "privilege",
                "the login role may not run pg_promote on %s: connect as a superuser, or GRANT EXECUTE ON "
                "FUNCTION pg_catalog.pg_promote(boolean, integer) TO %s" % (target_name, row["login_role"]),
                result,
            )

    observed = [probe(params, connect, probe_timeout) for params in candidates or ()]
    if not is_primary and not allow_behind:
        target = _catch_up_replay(session, target, observed, wait_timeout, clock, sleep)
        guards["target"] = dict(name=target_name, **public_state(target))
    checked = []
    refusals = []
    for seen in observed:
        entry, refusal = judge_candidate(target, seen, allow_behind, is_primary)
        checked.append(entry)
        if refusal:
            refusals.append(refusal)
    guards["candidates"] = checked
    if refusals:
        _refuse("candidates", "; ".join(refusals), result)
    if old_primary:
        entry, refusal = judge_old_primary(target, probe(old_primary, connect, probe_timeout), force)
        guards["old_primary"] = entry
        if refusal:
            _refuse("old_primary", refusal, result)
    else:
        guards["old_primary"] = dict(status="not given", verdict="not checked")

    if is_primary:
        result["promoted_lsn"] = target.get("replay_lsn") or _switch_point(session, target["timeline"])
        result["msg"] = "%s is not in recovery (timeline %s): already a primary, nothing to do" % (
            target_name,
            target["timeline"],
        )
        return result

    refusal = replay_refusal(target)
    guards["replay"] = dict(
        receive_lsn=target.get("receive_lsn"),
        replay_lsn=target.get("replay_lsn"),
        pending_bytes=pending_bytes(target),
        recovery_min_apply_delay=target.get("recovery_min_apply_delay"),
    )
    if refusal:
        guards["replay"]["verdict"] = "refused"
        _refuse("replay", refusal, result)
    result["changed"] = True
    if check_mode:
        guards["replay"]["verdict"] = "not waited (check mode)"
        result["msg"] = "would promote %s (timeline %s, replayed %s); every guard passed" % (
            target_name,
            target["timeline"],
            target.get("replay_lsn"),
        )
        return result

    started = clock()
    caught_up = retry.poll(
        lambda: _caught_up(session), timeout=wait_timeout, interval=0.2, clock=clock, sleep=sleep
    )
    waited = round(clock() - started, 3)
    guards["replay"]["waited_seconds"] = waited
    if caught_up is None:
        last = node_state(session)
        guards["replay"].update(
            receive_lsn=last.get("receive_lsn"),
            replay_lsn=last.get("replay_lsn"),
            pending_bytes=pending_bytes(last),
        )
        guards["replay"]["verdict"] = "refused (timeout)"
        result["changed"] = False
        refusal = replay_refusal(last) or (
            "the target replayed %s of the %s it received after %s s (%d bytes left): raise "
            "wait_timeout, or find why replay is slow (recovery_min_apply_delay=%s, queries in conflict, I/O)"
            % (
                last.get("replay_lsn"),
                last.get("receive_lsn"),
                wait_timeout,
                pending_bytes(last),
                last.get("recovery_min_apply_delay"),
            )
        )
        _refuse("replay", refusal, result)
    guards["replay"].update(
        verdict="ok (everything received is replayed)",
        receive_lsn=caught_up.get("receive_lsn"),
        replay_lsn=caught_up.get("replay_lsn"),
        pending_bytes=0,
    )
    if caught_up.get("incomplete_bytes"):
        guards["replay"].update(
            verdict="ok (every complete record received is replayed; the last %d bytes are an incomplete "
            "record, cut when the old primary stopped)" % caught_up["incomplete_bytes"],
            incomplete_bytes=caught_up["incomplete_bytes"],
        )

    try:
        done = session.scalar("SELECT pg_promote(wait => true, wait_seconds => %s)", (int(wait_timeout),))
    except pgmod.PgError as exc:
        result["changed"] = False
        hint = (
            " pg_promote needs a superuser, or GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer) "
            "TO the role."
            if exc.sqlstate == "42501"
            else ""
        )
        raise PromoteError(
            "pg_promote failed on %s: %s.%s" % (target_name, exc, hint),
            guard="promote",
            result=result,
            sqlstate=exc.sqlstate,
        ) from None
    after = node_state(session)
    if not done or after["in_recovery"]:
        raise PromoteError(
            "pg_promote on %s did not finish within %s s; the server may still be promoting: check "
            "SELECT pg_is_in_recovery(); on it before anything else (do not promote another server meanwhile)"
            % (target_name, wait_timeout),
            guard="promote",
            result=result,
        )
    result.update(
        promoted=True,
        timeline=after["timeline"],
        promoted_lsn=after.get("replay_lsn") or _switch_point(session, after["timeline"]),
        msg="promoted %s: timeline %s -> %s at %s"
        % (target_name, target["timeline"], after["timeline"], after.get("replay_lsn")),
    )
    guards["promote"] = dict(
        timeline_before=target["timeline"], timeline_after=after["timeline"], waited_replay=waited
    )
    return result


def ahead_by_replay_only(target, state):
    """Whether ``state`` holds the same WAL as ``target`` on the same timeline and only replayed more
    of it: the target has that WAL and will replay it."""
    t, c = position(target), position(state)
    return c[0] == t[0] and c[1] == t[1] and c[2] > t[2]


def _catch_up_replay(session, target, observed, wait_timeout, clock, sleep):
    """When candidates received no more WAL than the target but replayed more of it, give the
    target (replay not paused) up to ``wait_timeout`` seconds to replay as far; returns its state
    then (the candidates guard judges that one)."""
    ahead = [
        position(seen["state"])[2]
        for seen in observed
        if seen["reachable"] and seen["state"]["in_recovery"] and ahead_by_replay_only(target, seen["state"])
    ]
    if not ahead or replay_refusal(target):
        return target
    goal = max(ahead)

    def replayed_as_far():
        state = node_state(session)
        return state if position(state)[2] >= goal or replay_refusal(state) else None

    return retry.poll(
        replayed_as_far, timeout=wait_timeout, interval=0.2, clock=clock, sleep=sleep
    ) or node_state(session)


# What the startup process waits on when it has replayed every complete record it has.
WAITING_FOR_WAL = ("RecoveryWalStream", "RecoveryRetrieveRetryInterval", "RecoveryWalAll")


def _caught_up(session):
    """The state once the target replayed all it received (None while it is still replaying).

    After a primary crashed, the WAL received may end with an incomplete record (the primary died
    while writing it): it is never replayed, and the startup process then waits for more WAL. That
    wait counts as caught up; the bytes of the incomplete record stay in ``incomplete_bytes``."""
    state = node_state(session)
    if replay_refusal(state):
        return state  # ends the wait: the refusal is raised with the last state
    if pending_bytes(state) == 0:
        return state
    try:
        waits = session.scalar("SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'startup'")
    except DbarchError:
        return None
    if waits in WAITING_FOR_WAL:
        again = node_state(session)
        if again.get("replay_lsn") == state.get("replay_lsn"):
            again["incomplete_bytes"] = pending_bytes(again)
            return again
    return None


def _switch_point(session, timeline):
    """Where ``timeline`` began, from its history file (needs the right to read server files);
    None when it cannot be read."""
    if not timeline or int(timeline) <= 1:
        return None
    try:
        text = session.scalar(
            "SELECT pg_read_file(%s, true)", ("pg_wal/%08X.history" % int(timeline),), record=False
        )
    except DbarchError:
        return None
    entries = wal.parse_history(text or "")
    return wal.format_lsn(entries[-1][1]) if entries else None
