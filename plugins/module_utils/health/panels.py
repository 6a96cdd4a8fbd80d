# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The "Database Health" dashboard's four panels, judged against their thresholds.

- ``connections``: client sessions against the slots ordinary roles may use (activity.py);
- ``replication_lag``: the replay lag in seconds of every standby of a primary, or of this standby
  (replication/status.py, the engine of replication_info; 0 when everything is replayed, so an
  idle primary is no lag);
- ``disk``: the used share of the filesystem of the data folder and of the WAL folder, read with
  os.statvfs when the module runs on the server's host (the data folder's postmaster.pid names
  the server's port), else unknown;
- ``query_latency_p95``: an estimate from pg_stat_statements (latency.py), labelled ``estimate``.

Each panel: status ok / warning / critical / unknown, value, unit, source, detail. Plain Python:
no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.health import activity, latency
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import status as repl_status

ANALYSIS = "health_info"
PANELS = ("query_latency_p95", "connections", "replication_lag", "disk")
# The dashboard's thresholds: p95 in ms, connections and disk in percent, lag in seconds.
DEFAULT_THRESHOLDS = dict(
    query_latency_p95=dict(warning=100.0, critical=500.0),
    connections=dict(warning=70.0, critical=90.0),
    replication_lag=dict(warning=5.0, critical=30.0),
    disk=dict(warning=80.0, critical=90.0),
)
UNITS = dict(query_latency_p95="ms", connections="percent", replication_lag="seconds", disk="percent")
STATUS_RANK = dict(ok=0, unknown=1, warning=2, critical=3)
LEVEL_SEVERITY = {"warning": "medium", "critical": "high"}


class HealthError(DbarchError, ValueError):
    """Bad thresholds; the message says which and how to fix them."""


def _rule(rule_id, title, why):
    fnd.register_rule(rule_id, title, "medium", why=why, analysis=ANALYSIS)
    return rule_id


RULES = dict(
    query_latency_p95=_rule(
        "HEALTH-P95-001",
        "Query latency p95 over its threshold",
        "One query in twenty takes longer than the threshold: users feel it, and slow statements hold "
        "connections and locks longer, which feeds the other panels.",
    ),
    connections=_rule(
        "HEALTH-CONN-001",
        "Connection utilization over its threshold",
        "Close to max_connections new sessions are refused (SQLSTATE 53300); see the connection runbook.",
    ),
    replication_lag=_rule(
        "HEALTH-LAG-001",
        "Replication lag over its threshold",
        "Reads on the standby are that old, and a failover would lose or have to replay that much.",
    ),
    disk=_rule(
        "HEALTH-DISK-001",
        "Disk usage over its threshold",
        "A full data or WAL filesystem stops PostgreSQL (PANIC on a failed WAL write): act before it fills.",
    ),
)

FIXES = dict(
    query_latency_p95="-- The statements that weigh most: dbarch.postgresql.query_stats_info\n"
    "-- (order_by: total_time),\n"
    "-- then playbooks/query_tuning.yml on them.",
    connections="-- playbooks/runbook_connections.yml: terminate idle sessions (check mode first),\n"
    "-- then pool"
    " (PgBouncer, roles/pgbouncer) or raise max_connections (dbarch.postgresql.setting, restart).",
    replication_lag="-- playbooks/runbook_replication_lag.yml: the cause per standby and its remedy.",
    disk="-- Find what grows: pg_wal (slots holding WAL: dbarch.postgresql.replication_info), bloat, logs;\n"
    "-- then grow the filesystem or free space. Never delete files in pg_wal by hand.",
)


def thresholds(overrides=None):
    """The thresholds: the dashboard's, with ``overrides`` (panel -> {warning, critical}) applied."""
    out = dict((k, dict(v)) for k, v in DEFAULT_THRESHOLDS.items())
    for panel, values in (overrides or {}).items():
        if panel not in out:
            raise HealthError("thresholds: unknown panel %r; use one of %s." % (panel, ", ".join(PANELS)))
        if not isinstance(values, dict):
            raise HealthError("thresholds.%s must be a dict with warning and/or critical." % panel)
        for key, value in values.items():
            if key not in ("warning", "critical"):
                raise HealthError("thresholds.%s.%s: use warning or critical." % (panel, key))
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise HealthError("thresholds.%s.%s=%r is not a number." % (panel, key, value)) from None
            if number < 0:
                raise HealthError("thresholds.%s.%s=%r must not be negative." % (panel, key, value))
            out[panel][key] = number
        if out[panel]["warning"] > out[panel]["critical"]:
            raise HealthError(
                "thresholds.%s: warning %s is above critical %s."
                % (panel, out[panel]["warning"], out[panel]["critical"])
            )
    return out


def panel(name, value, limits, source, detail=None, **extra):
    """One panel: the value judged against its thresholds (None -> unknown)."""
    out = dict(
        status=activity.level(value, limits[name]["warning"], limits[name]["critical"]),
        value=None if value is None else round(float(value), 3),
        unit=UNITS[name],
        source=source,
        warning=limits[name]["warning"],
        critical=limits[name]["critical"],
        detail=detail,
    )
    out.update(extra)
    return out


# -- the four panels ----------------------------------------------------------------------


def connections_panel(facts, limits):
    return panel(
        "connections",
        facts["utilization_percent"],
        limits,
        "pg_stat_activity",
        "%d client sessions of %d usable slots (max_connections %d minus %d reserved)"
        % (facts["total"], facts["usable"], facts["max_connections"], facts["reserved"]),
        total=facts["total"],
        usable=facts["usable"],
    )


def lag_panel(repl, limits):
    """From replication/status.read: the worst standby's replay lag (primary), or this standby's."""
    if repl["role"] == "standby":
        rec = repl.get("receiver") or {}
        value = rec.get("replay_delay_seconds")
        return panel(
            "replication_lag",
            value,
            limits,
            "pg_last_xact_replay_timestamp (standby)",
            "replay %s; %s bytes received, not replayed"
            % (rec.get("replay_pause_state") or "state unknown", rec.get("replay_pending_bytes")),
            role="standby",
            standbys=[],
        )
    rows = []
    for s in repl.get("standbys") or []:
        lag = s.get("replay_lag_seconds")
        if lag is None and s.get("replay_lag_bytes") == 0:
            lag = 0.0
        rows.append(
            dict(
                application_name=s.get("application_name"),
                client_addr=s.get("client_addr"),
                state=s.get("state"),
                replay_lag_seconds=lag,
                replay_lag_bytes=s.get("replay_lag_bytes"),
                status=activity.level(
                    lag, limits["replication_lag"]["warning"], limits["replication_lag"]["critical"]
                ),
            )
        )
    if not rows:
        return panel(
            "replication_lag",
            0.0,
            limits,
            "pg_stat_replication",
            "no standby streams from this primary: nothing lags",
            role="primary",
            standbys=[],
        )
    known = [r["replay_lag_seconds"] for r in rows if r["replay_lag_seconds"] is not None]
    value = max(known) if known else None
    out = panel(
        "replication_lag",
        value,
        limits,
        "pg_stat_replication.replay_lag",
        "%d standbys; worst %s" % (len(rows), "unknown" if value is None else "%.1f s" % value),
        role="primary",
        standbys=rows,
    )
    if any(r["status"] == "unknown" for r in rows) and out["status"] == "ok":
        out["status"] = "unknown"
    return out


_Q_PATHS = """
SELECT current_setting('data_directory', true) AS data_directory,
       current_setting('port')::int AS port
"""


def _postmaster_port(data_dir):
    """The port line (4th) of the data folder's postmaster.pid, or None when unreadable."""
    try:
        with open(os.path.join(data_dir, "postmaster.pid")) as fh:
            lines = fh.read().splitlines()
        return int(lines[3])
    except (OSError, ValueError, IndexError):
        return None


def filesystem_usage(path):
    """Used percent of the filesystem of ``path`` as df counts it (used / (used + available to
    unprivileged users)), with sizes in bytes."""
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    pct = 100.0 * used / (used + avail) if used + avail else None
    return dict(
        path=path, used_percent=None if pct is None else round(pct, 2), used_bytes=used, available_bytes=avail
    )


def disk_panel(session, limits):
    """statvfs of the data folder and the WAL folder when this host holds the server's data folder."""
    row = session.fetchone(_Q_PATHS)
    data_dir = row["data_directory"]
    if not data_dir:
        return panel(
            "disk",
            None,
            limits,
            "os.statvfs",
            "data_directory is not readable by this role (needs pg_read_all_settings)",
        )
    if _postmaster_port(data_dir) != row["port"]:
        return panel(
            "disk",
            None,
            limits,
            "os.statvfs",
            "the data folder %s of the server is not on this host (or not readable here): run the module "
            "on the server's host for this panel" % data_dir,
        )
    wal_dir = os.path.realpath(os.path.join(data_dir, "pg_wal"))
    filesystems = [dict(filesystem_usage(data_dir), folder="data")]
    wal = dict(filesystem_usage(wal_dir), folder="wal")
    filesystems.append(wal)
    value = max(f["used_percent"] for f in filesystems if f["used_percent"] is not None)
    return panel(
        "disk",
        value,
        limits,
        "os.statvfs",
        "data folder %s: %s %%, WAL folder %s: %s %%"
        % (data_dir, filesystems[0]["used_percent"], wal_dir, wal["used_percent"]),
        filesystems=filesystems,
    )


def latency_panel(session, limits):
    est = latency.from_pg_stat_statements(session)
    detail = est.get("reason") or (
        "%s over %d statements, %d calls since %s"
        % (latency.METHOD, est["statements"], est["calls"], est["since"] or "the start")
    )
    return panel(
        "query_latency_p95",
        est.get("value_ms"),
        limits,
        est["source"],
        detail,
        exact=False,
    )


def evaluate(session, limits, wanted=PANELS):
    """The ``wanted`` panels of the server of ``session`` (name -> panel)."""
    readers = dict(
        query_latency_p95=lambda: latency_panel(session, limits),
        connections=lambda: connections_panel(activity.read(session), limits),
        replication_lag=lambda: lag_panel(repl_status.read(session), limits),
        disk=lambda: disk_panel(session, limits),
    )
    return dict((name, readers[name]()) for name in PANELS if name in wanted)


def overall(panels):
    """The worst status of the panels."""
    return max((p["status"] for p in panels.values()), key=lambda s: STATUS_RANK[s]) if panels else "unknown"


def findings(panels):
    """One finding per panel at warning (medium) or critical (high)."""
    out = []
    for name in PANELS:
        p = panels.get(name)
        if not p or p["status"] not in LEVEL_SEVERITY:
            continue
        reg = fnd.registered_rule(RULES[name])
        out.append(
            fnd.Finding(
                RULES[name],
                LEVEL_SEVERITY[p["status"]],
                "panel %s" % name,
                "%s is %s %s (%s threshold %s; source %s)."
                % (name, p["value"], p["unit"], p["status"], p[p["status"]], p["source"]),
                fix=FIXES[name],
                why=reg.why,
                title=reg.title,
                evidence=dict((k, v) for k, v in p.items() if k != "status"),
            )
        )
    return fnd.normalize(out)
