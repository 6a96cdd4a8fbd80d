# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sessions of one server and its connection capacity: what connections_info reports and what
the connections module chooses to terminate or cancel.

- ``read(session)``: every session of pg_stat_activity (client backends, with their idle and
  transaction durations, and the other backend types apart), max_connections and the slots
  reserved from it (versions.Features.reserved_connection_settings), the utilization of the
  slots ordinary roles can use, counts by state/user/database/application/client address and the
  blocking chains (pg_blocking_pids).
- ``findings(facts, limits, pools=None)``: utilization at the dashboard's thresholds, long idle
  transactions, blocked sessions, PgBouncer clients waiting.
- ``select(sessions, ...)``: the sessions a filter matches, never a replication connection, an
  autovacuum or background worker, or the caller's own session.
- ``signal(session, chosen, mode)``: pg_terminate_backend / pg_cancel_backend on each chosen
  session, only if it is still in the state it was read in (a session that became active since is
  left alone).

Works as a role with pg_monitor (pg_read_all_stats shows other roles' sessions; without it their
state and times are hidden, which ``checks_skipped`` says). Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
from decimal import Decimal

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features, version_text

ANALYSIS = "connections_info"
CLIENT_BACKEND = "client backend"
IDLE_STATES = ("idle", "idle in transaction", "idle in transaction (aborted)")
STATES = ("active",) + IDLE_STATES + ("fastpath function call", "disabled")
QUERY_TEXT_LIMIT = 200
# Dashboard thresholds (percent of the usable slots) and the idle-in-transaction limit (seconds).
DEFAULT_LIMITS = dict(
    utilization_warning_percent=70.0,
    utilization_critical_percent=90.0,
    idle_in_transaction_seconds=300.0,
)
LEVEL_SEVERITY = {"warning": "medium", "critical": "high"}


class ActivityError(DbarchError, ValueError):
    """Bad thresholds or filters; the message says which and how to fix them."""


def _rule(rule_id, title, severity, why):
    fnd.register_rule(rule_id, title, severity, why=why, analysis=ANALYSIS)
    return rule_id


UTILIZATION = _rule(
    "CONN-UTIL-001",
    "Connection slots nearly used up",
    "medium",
    "When every slot ordinary roles may use is taken, new connections fail with 'sorry, too many clients "
    "already' (SQLSTATE 53300): applications see errors although the server itself is healthy.",
)
IDLE_IN_TRANSACTION = _rule(
    "CONN-IDLE-TX-001",
    "Session idle in transaction for too long",
    "medium",
    "An open transaction holds its locks and its snapshot: it blocks DDL and other writers, and keeps "
    "VACUUM from removing dead rows everywhere (bloat), while it does no work.",
)
BLOCKING = _rule(
    "CONN-BLOCK-001",
    "Sessions blocked by other sessions' locks",
    "medium",
    "A blocked session waits while it holds a connection slot, and everything queued behind its lock "
    "waits too: one forgotten transaction can stall a whole application.",
)
POOL_WAITING = _rule(
    "CONN-POOL-001",
    "PgBouncer clients waiting for a server connection",
    "medium",
    "Clients queue in PgBouncer when every server connection of the pool is busy: their latency grows "
    "with the queue although PostgreSQL itself may have free slots.",
)

_Q_CAPACITY = """
SELECT current_setting('server_version_num')::int AS version_num,
       current_setting('max_connections')::int AS max_connections,
       pg_backend_pid() AS own_pid,
       now() AS now,
       current_user AS current_user,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS is_superuser,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_all_stats
"""

_Q_RESERVED = "SELECT name, setting::int AS setting FROM pg_settings WHERE name = ANY(%s)"

# Lock waits only: pg_blocking_pids is not cheap, and only a session waiting on a lock has blockers.
_Q_SESSIONS = """
SELECT a.pid, a.usename AS user, a.datname AS database, a.application_name,
       host(a.client_addr) AS client_addr, a.backend_type, a.state,
       a.wait_event_type, a.wait_event, a.backend_start, a.state_change,
       extract(epoch FROM now() - a.state_change)::float8 AS state_seconds,
       extract(epoch FROM now() - a.xact_start)::float8 AS xact_seconds,
       extract(epoch FROM now() - a.query_start)::float8 AS query_seconds,
       extract(epoch FROM now() - a.backend_start)::float8 AS connected_seconds,
       a.pid = pg_backend_pid() AS own,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END AS blocked_by,
       left(a.query, %s) AS query
FROM pg_stat_activity a
ORDER BY a.backend_start, a.pid
"""


def _plain(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def limits(**values):
    """The thresholds, defaults for those not given: numbers >= 0, warning <= critical."""
    out = dict(DEFAULT_LIMITS)
    for name, value in values.items():
        if name not in DEFAULT_LIMITS:
            raise ActivityError(
                "Unknown threshold %r: use one of %s." % (name, ", ".join(sorted(DEFAULT_LIMITS)))
            )
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ActivityError("%s=%r is not a number." % (name, value)) from None
        if number < 0:
            raise ActivityError("%s=%r must not be negative." % (name, value))
        out[name] = number
    if out["utilization_warning_percent"] > out["utilization_critical_percent"]:
        raise ActivityError(
            "utilization_warning_percent=%s is above utilization_critical_percent=%s: the warning threshold "
            "must be the lower one."
            % (out["utilization_warning_percent"], out["utilization_critical_percent"])
        )
    return out


def level(value, warning, critical):
    """'ok', 'warning' or 'critical' for ``value`` (None -> 'unknown')."""
    if value is None:
        return "unknown"
    if value >= critical:
        return "critical"
    if value >= warning:
        return "warning"
    return "ok"


def idle_seconds(row):
    """Seconds since an idle (or idle in transaction) session last changed state; None otherwise."""
    if row.get("state") in IDLE_STATES and row.get("state_seconds") is not None:
        return max(0.0, float(row["state_seconds"]))
    return None


def _session(row):
    out = dict((k, _plain(v)) for k, v in row.items())
    out["idle_seconds"] = idle_seconds(out)
    for key in ("xact_seconds", "query_seconds", "connected_seconds", "state_seconds"):
        if out.get(key) is not None:
            out[key] = round(max(0.0, float(out[key])), 3)
    if out["idle_seconds"] is not None:
        out["idle_seconds"] = round(out["idle_seconds"], 3)
    out["blocked_by"] = list(out.get("blocked_by") or [])
    out["own"] = bool(out.get("own"))
    return out


def _count(rows, key, missing="(none)"):
    out = {}
    for row in rows:
        name = row.get(key)
        name = missing if name in (None, "") else str(name)
        out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def blocking_chains(sessions):
    """Every session waiting on another's lock: who blocks it directly and at the root of the chain
    (the sessions that block others and wait on nobody), longest wait first."""
    by_pid = dict((s["pid"], s) for s in sessions)
    out = []
    for s in sessions:
        if not s["blocked_by"]:
            continue
        roots, seen, todo = [], set(), list(s["blocked_by"])
        while todo:
            pid = todo.pop(0)
            if pid in seen:
                continue
            seen.add(pid)
            parents = (by_pid.get(pid) or {}).get("blocked_by") or []
            if parents:
                todo.extend(parents)
            elif pid not in roots:
                roots.append(pid)
        out.append(
            dict(
                pid=s["pid"],
                user=s.get("user"),
                database=s.get("database"),
                application_name=s.get("application_name"),
                waiting_seconds=s.get("state_seconds"),
                blocked_by=s["blocked_by"],
                root_blockers=[
                    dict(
                        pid=pid,
                        user=(by_pid.get(pid) or {}).get("user"),
                        state=(by_pid.get(pid) or {}).get("state"),
                        xact_seconds=(by_pid.get(pid) or {}).get("xact_seconds"),
                    )
                    for pid in sorted(roots)
                ],
                query=s.get("query"),
            )
        )
    out.sort(key=lambda b: -(b["waiting_seconds"] or 0))
    return out


def summarize(clients, max_connections, reserved):
    """Totals and utilization of the client backends against the usable slots."""
    reserved_total = sum(reserved.values())
    usable = max(0, max_connections - reserved_total)
    total = len(clients)
    utilization = round(100.0 * total / usable, 1) if usable else None
    idle = [s for s in clients if s["state"] == "idle"]
    idle_tx = [s for s in clients if s["state"] in IDLE_STATES[1:]]
    in_xact = [s for s in clients if s.get("xact_seconds") is not None]
    oldest = max(in_xact, key=lambda s: s["xact_seconds"]) if in_xact else None
    return dict(
        total=total,
        max_connections=max_connections,
        reserved=reserved_total,
        reserved_by_setting=reserved,
        usable=usable,
        available=max(0, usable - total),
        utilization_percent=utilization,
        by_state=_count(clients, "state", missing="(unknown)"),
        by_user=_count(clients, "user"),
        by_database=_count(clients, "database"),
        by_application=_count(clients, "application_name"),
        by_client=_count(clients, "client_addr", missing="(local socket)"),
        idle=dict(
            count=len(idle),
            max_seconds=max([s["idle_seconds"] for s in idle] or [None], key=lambda v: v or 0),
        ),
        idle_in_transaction=dict(
            count=len(idle_tx),
            max_seconds=max([s["idle_seconds"] for s in idle_tx] or [None], key=lambda v: v or 0),
        ),
        oldest_transaction=_brief(oldest) if oldest else None,
    )


_SESSION_KEYS = (
    "user",
    "database",
    "application_name",
    "client_addr",
    "state",
    "idle_seconds",
    "xact_seconds",
)


def _session_dict(s, *extra):
    """A session's identity and ages, plus the ``extra`` keys (one shape for reports and results)."""
    out = dict(pid=s["pid"])
    out.update((key, s.get(key)) for key in _SESSION_KEYS + extra)
    return out


def _brief(s):
    return _session_dict(s, "query")


def read(session):
    """The sessions and capacity of the server of ``session`` (see the module docstring)."""
    cap = session.fetchone(_Q_CAPACITY)
    feats = Features(cap["version_num"])
    rows = session.fetchall(_Q_RESERVED, (list(feats.reserved_connection_settings),))
    reserved = dict((name, 0) for name in feats.reserved_connection_settings)
    reserved.update(dict((r["name"], int(r["setting"])) for r in rows))
    sessions = [_session(r) for r in session.fetchall(_Q_SESSIONS, (QUERY_TEXT_LIMIT,))]
    clients = [s for s in sessions if s["backend_type"] == CLIENT_BACKEND]
    others = _count([s for s in sessions if s["backend_type"] != CLIENT_BACKEND], "backend_type")
    read_all = bool(cap["is_superuser"] or cap["can_read_all_stats"])
    facts = summarize(clients, int(cap["max_connections"]), reserved)
    facts.update(
        version=dict(num=feats.num, major=feats.major, text=version_text(feats.num)),
        own_pid=cap["own_pid"],
        sessions=[
            dict((k, v) for k, v in s.items() if k not in ("backend_start", "state_change")) for s in clients
        ],
        other_backends=others,
        blocking=blocking_chains(clients),
        privileges=dict(superuser=bool(cap["is_superuser"]), read_all_stats=read_all),
        checks_skipped=[],
    )
    facts["_raw"] = clients
    if not read_all:
        facts["checks_skipped"].append(
            dict(
                check="other roles' sessions",
                reason="the state, times, client address and query of sessions of other roles need "
                "pg_read_all_stats (granted by pg_monitor) to role %s: they are counted, not described"
                % cap["current_user"],
            )
        )
    return facts


# -- findings ------------------------------------------------------------------------------


_finding = fnd.from_registered_rule


def utilization_finding(facts, lim, obj="server"):
    """CONN-UTIL-001 at the warning (medium) or critical (high) threshold, or None."""
    pct = facts.get("utilization_percent")
    lvl = level(pct, lim["utilization_warning_percent"], lim["utilization_critical_percent"])
    if lvl not in LEVEL_SEVERITY:
        return None
    top = list(facts.get("by_application", {}).items())[:3]
    return _finding(
        UTILIZATION,
        LEVEL_SEVERITY[lvl],
        obj,
        "%d of the %d connection slots ordinary roles may use are taken (%.1f %%, %s threshold %s %%); "
        "%d idle, %d idle in transaction."
        % (
            facts["total"],
            facts["usable"],
            pct,
            lvl,
            lim["utilization_%s_percent" % lvl],
            facts["idle"]["count"],
            facts["idle_in_transaction"]["count"],
        ),
        "-- Idle sessions first (playbooks/runbook_connections.yml, check mode first):\n"
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity\n"
        " WHERE backend_type = 'client backend' AND state = 'idle'\n"
        "   AND state_change < now() - interval '10 minutes';\n"
        "-- If the sessions are busy, capacity is the issue: pool them (PgBouncer, roles/pgbouncer), or\n"
        "ALTER SYSTEM SET max_connections = %d;  -- needs a restart, standbys first"
        % (facts["max_connections"] * 2),
        dict(
            total=facts["total"],
            usable=facts["usable"],
            max_connections=facts["max_connections"],
            reserved=facts["reserved"],
            utilization_percent=pct,
            by_state=facts["by_state"],
            top_applications=dict(top),
        ),
    )


def findings(facts, lim, pools=None):
    """Findings of connections_info, most severe first."""
    out = []
    util = utilization_finding(facts, lim)
    if util is not None:
        out.append(util)
    for s in facts["sessions"]:
        if s["state"] in IDLE_STATES[1:] and (s["idle_seconds"] or 0) >= lim["idle_in_transaction_seconds"]:
            out.append(
                _finding(
                    IDLE_IN_TRANSACTION,
                    None,
                    "pid %s (%s@%s, %s)"
                    % (s["pid"], s["user"], s["database"], s["application_name"] or "no application"),
                    "Session %s has been %s for %.0f s (transaction open %.0f s)."
                    % (s["pid"], s["state"], s["idle_seconds"], s["xact_seconds"] or 0),
                    "SELECT pg_terminate_backend(%d);\n"
                    "-- and cap it: ALTER ROLE ... SET idle_in_transaction_session_timeout = '5min';"
                    % s["pid"],
                    dict(
                        pid=s["pid"],
                        idle_seconds=s["idle_seconds"],
                        xact_seconds=s["xact_seconds"],
                        client_addr=s["client_addr"],
                        query=s["query"],
                    ),
                )
            )
    for b in facts["blocking"]:
        roots = [r["pid"] for r in b["root_blockers"]]
        out.append(
            _finding(
                BLOCKING,
                None,
                "pid %s" % b["pid"],
                "Session %s (%s) waits on a lock held by %s (root of the chain: %s)."
                % (
                    b["pid"],
                    b["user"],
                    ", ".join(str(p) for p in b["blocked_by"]),
                    ", ".join(str(p) for p in roots),
                ),
                "\n".join(
                    "SELECT pg_terminate_backend(%d);  -- the root blocker, once understood" % p
                    for p in roots
                ),
                dict(b),
            )
        )
    for database, pool in sorted((pools or {}).items()):
        if int(pool.get("cl_waiting") or 0) > 0:
            out.append(
                _finding(
                    POOL_WAITING,
                    None,
                    "pgbouncer database %s" % database,
                    "%d clients wait in PgBouncer for a server connection of database %s (longest %.1f s)."
                    % (pool["cl_waiting"], database, float(pool.get("maxwait") or 0)),
                    "-- Raise the pool's pool_size in pgbouncer.ini (roles/pgbouncer) within the server's "
                    "free slots, "
                    "or shorten the transactions that hold server connections.",
                    dict(pool),
                )
            )
    return fnd.normalize(out)


# -- choosing and signalling sessions ---------------------------------------------------------------

FILTERS = (
    "states",
    "min_idle_seconds",
    "min_xact_seconds",
    "users",
    "applications",
    "databases",
    "client_addrs",
)


def check_filter(states=None, min_idle_seconds=None, min_xact_seconds=None, **lists):
    """Refuse a filter that would match every session, and unknown states."""
    given = [
        name
        for name, value in dict(
            states=states, min_idle_seconds=min_idle_seconds, min_xact_seconds=min_xact_seconds, **lists
        ).items()
        if value not in (None, [], ())
    ]
    if not given:
        raise ActivityError(
            "No filter given: name at least one of %s (for example states: [idle] and "
            "min_idle_seconds: 600), "
            "so that no session is terminated by accident." % ", ".join(FILTERS)
        )
    for state in states or ():
        if state not in STATES:
            raise ActivityError("Unknown state %r: use one of %s." % (state, ", ".join(STATES)))
    for name, value in (("min_idle_seconds", min_idle_seconds), ("min_xact_seconds", min_xact_seconds)):
        if value is not None and float(value) < 0:
            raise ActivityError("%s=%r must not be negative." % (name, value))


def protected(s):
    """Why a session is never signalled (None when it may be)."""
    if s.get("own"):
        return "the module's own session"
    if s.get("backend_type") != CLIENT_BACKEND:
        return "a %s, not a client session" % s.get("backend_type")
    return None


def select(
    sessions,
    states=None,
    min_idle_seconds=None,
    min_xact_seconds=None,
    users=None,
    applications=None,
    databases=None,
    client_addrs=None,
):
    """The client sessions every given filter matches (filters are ANDed, a list matches any of its
    values), longest idle (or longest transaction) first. Protected sessions never match."""
    out = []
    for s in sessions:
        if protected(s):
            continue
        if states and s.get("state") not in states:
            continue
        if min_idle_seconds is not None and (
            s.get("idle_seconds") is None or s["idle_seconds"] < float(min_idle_seconds)
        ):
            continue
        if min_xact_seconds is not None and (
            s.get("xact_seconds") is None or s["xact_seconds"] < float(min_xact_seconds)
        ):
            continue
        if users and s.get("user") not in users:
            continue
        if applications and s.get("application_name") not in applications:
            continue
        if databases and s.get("database") not in databases:
            continue
        if client_addrs and s.get("client_addr") not in client_addrs:
            continue
        out.append(s)
    out.sort(key=lambda s: (-(s.get("idle_seconds") or 0), -(s.get("xact_seconds") or 0), s["pid"]))
    return out


def describe(s):
    """A session as the connections module returns it."""
    return _session_dict(s, "connected_seconds")


_SIGNAL = {
    "terminate": "pg_terminate_backend",
    "cancel": "pg_cancel_backend",
}

# The session is signalled only while it is the same backend in the same state as when it was read.
_Q_SIGNAL = """
SELECT {fn}(a.pid) AS signalled FROM pg_stat_activity a
WHERE a.pid = %(pid)s AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
  AND a.backend_start = %(backend_start)s AND a.state IS NOT DISTINCT FROM %(state)s
  AND a.state_change IS NOT DISTINCT FROM %(state_change)s
"""


def signal(session, chosen, mode="terminate"):
    """Terminate or cancel each chosen session (raw rows of read()) that is still as it was read.

    Returns (signalled, skipped): the sessions signalled, and those left alone with the reason."""
    if mode not in _SIGNAL:
        raise ActivityError("mode=%r: use terminate or cancel." % mode)
    query = _Q_SIGNAL.replace("{fn}", _SIGNAL[mode])
    done, skipped = [], []
    for s in chosen:
        row = session.fetchone(
            query,
            dict(
                pid=s["pid"],
                backend_start=s["backend_start"],
                state=s["state"],
                state_change=s["state_change"],
            ),
        )
        if row and row["signalled"]:
            done.append(describe(s))
        else:
            skipped.append(dict(describe(s), reason="gone, or no longer in the state it was read in"))
    return done, skipped
