# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the replication state of one server, primary or standby, with least privilege.

``read(session)`` returns plain data (no judgement; lag.py judges it):

- on a primary: every standby of pg_stat_replication with its sent/write/flush/replay LSNs, the
  bytes between them and the primary's current LSN, and the lag times PostgreSQL measured;
- on both: every replication slot with the WAL it retains (newer columns where the major has
  them, through versions.Features);
- on a standby: the WAL receiver (upstream host/port, the conninfo with the password masked,
  received vs replayed LSN, last message times), the replay pause state, a replay delay that
  reads 0 when everything received is replayed, what the startup process waits on, the oldest
  open transactions, the recovery-conflict counters and the standby settings that explain lag.

Works as a role with ``pg_monitor``; what the role may not read goes to ``checks_skipped``.
Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re
from decimal import Decimal

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import redact
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features, version_text

# How many of the oldest open transactions of a standby are returned.
OLDEST_TRANSACTIONS = 5
# Query text of those transactions is cut to this many characters.
QUERY_TEXT_LIMIT = 200

# The standby settings that explain lag (pg_settings: pg_read_all_settings, in pg_monitor).
STANDBY_SETTINGS = (
    "hot_standby_feedback",
    "max_standby_streaming_delay",
    "max_standby_archive_delay",
    "recovery_min_apply_delay",
    "primary_slot_name",
    "wal_receiver_timeout",
    "wal_receiver_status_interval",
    "cluster_name",
)

_Q_STATE = """
SELECT current_setting('server_version_num')::int AS version_num,
       pg_is_in_recovery() AS in_recovery,
       now() AS now,
       (SELECT system_identifier FROM pg_control_system())::text AS system_identifier,
       pg_postmaster_start_time() AS postmaster_start_time,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_walfile,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint AS replay_pending_bytes,
       pg_last_xact_replay_timestamp() AS last_replay_time,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 AS seconds_since_last_replay,
       CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END AS replay_pause_state,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
       current_user AS current_user,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS is_superuser,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_all_stats,
       pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') AS can_read_all_settings,
       has_function_privilege('pg_catalog.pg_promote(boolean, integer)', 'EXECUTE') AS can_promote
"""

# One pg_current_wal_lsn() for every row (a CTE is evaluated once).
_Q_STANDBYS = """
WITH cur AS (SELECT pg_current_wal_lsn() AS lsn)
SELECT r.pid, r.application_name, host(r.client_addr) AS client_addr, r.client_hostname, r.client_port,
       r.state, r.sync_state, r.sync_priority, r.backend_start, r.reply_time,
       extract(epoch FROM now() - r.reply_time)::float8 AS seconds_since_reply,
       r.sent_lsn::text AS sent_lsn, r.write_lsn::text AS write_lsn,
       r.flush_lsn::text AS flush_lsn, r.replay_lsn::text AS replay_lsn,
       pg_wal_lsn_diff(cur.lsn, r.sent_lsn)::bigint AS unsent_bytes,
       pg_wal_lsn_diff(r.sent_lsn, r.flush_lsn)::bigint AS unflushed_bytes,
       pg_wal_lsn_diff(r.flush_lsn, r.replay_lsn)::bigint AS unreplayed_bytes,
       pg_wal_lsn_diff(cur.lsn, r.write_lsn)::bigint AS write_lag_bytes,
       pg_wal_lsn_diff(cur.lsn, r.flush_lsn)::bigint AS flush_lag_bytes,
       pg_wal_lsn_diff(cur.lsn, r.replay_lsn)::bigint AS replay_lag_bytes,
       extract(epoch FROM r.write_lag)::float8 AS write_lag_seconds,
       extract(epoch FROM r.flush_lag)::float8 AS flush_lag_seconds,
       extract(epoch FROM r.replay_lag)::float8 AS replay_lag_seconds,
       s.slot_name
FROM pg_stat_replication r
CROSS JOIN cur
LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid
ORDER BY r.application_name, r.pid
"""

_Q_SLOTS = """
WITH cur AS (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                         ELSE pg_current_wal_lsn() END AS lsn)
SELECT s.slot_name, s.slot_type, s.plugin, s.database, s.temporary, s.active, s.active_pid,
       s.restart_lsn::text AS restart_lsn, s.confirmed_flush_lsn::text AS confirmed_flush_lsn,
       s.wal_status, s.safe_wal_size,
       pg_wal_lsn_diff(cur.lsn, s.restart_lsn)::bigint AS retained_bytes{extra}
FROM pg_replication_slots s CROSS JOIN cur
ORDER BY s.slot_name
"""

_Q_RECEIVER = """
SELECT pid, status, receive_start_lsn::text AS receive_start_lsn, receive_start_tli,
       written_lsn::text AS written_lsn, flushed_lsn::text AS flushed_lsn, received_tli,
       last_msg_send_time, last_msg_receipt_time,
       extract(epoch FROM now() - last_msg_receipt_time)::float8 AS seconds_since_last_msg,
       latest_end_lsn::text AS latest_end_lsn, latest_end_time,
       slot_name, sender_host, sender_port, conninfo
FROM pg_stat_wal_receiver
"""

_Q_STARTUP = """
SELECT pid, wait_event_type, wait_event FROM pg_stat_activity WHERE backend_type = 'startup'
"""

_Q_OLDEST = """
SELECT pid, usename AS user, datname AS database, application_name, state,
       extract(epoch FROM now() - xact_start)::float8 AS xact_seconds,
       extract(epoch FROM now() - query_start)::float8 AS query_seconds,
       wait_event_type, wait_event, backend_xmin::text AS backend_xmin, query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
ORDER BY xact_start
LIMIT %(limit)s
"""

_Q_CONFLICTS = """
SELECT c.datname AS database, {columns}, d.stats_reset
FROM pg_stat_database_conflicts c JOIN pg_stat_database d ON d.datid = c.datid
WHERE c.datname IS NOT NULL
ORDER BY c.datname
"""

_Q_SETTINGS = """
SELECT name, setting, unit, current_setting(name) AS value FROM pg_settings WHERE name = ANY (%(names)s)
"""


def _plain(value):
    """JSON-safe value: timestamps as ISO text, numerics as numbers."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _clean(row):
    return dict((k, _plain(v)) for k, v in row.items())


def timeline_of_walfile(name):
    """Timeline of a WAL file name (its first 8 hex digits), or None."""
    if not name or len(name) < 8:
        return None
    try:
        return int(name[:8], 16)
    except ValueError:
        return None


def conninfo_value(conninfo, key):
    """The value of ``key`` in a libpq key=value conninfo (quotes removed), or None."""
    match = re.search(r"(?:^|\s)%s=('(?:[^'\\]|\\.)*'|\S+)" % re.escape(key), conninfo or "")
    if not match:
        return None
    value = match.group(1)
    if value.startswith("'") and value.endswith("'"):
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def mask_conninfo(conninfo):
    """The conninfo with any password value masked (PostgreSQL already obfuscates it in
    pg_stat_wal_receiver; this keeps it so for any other source)."""
    return redact.statement(conninfo) if conninfo else conninfo


def standby_application_name(receiver, settings):
    """The application_name the primary shows for this standby: the conninfo's
    application_name, else its fallback_application_name (cluster_name, set by the WAL receiver),
    else cluster_name, else 'walreceiver'."""
    conninfo = (receiver or {}).get("conninfo")
    name = conninfo_value(conninfo, "application_name") or conninfo_value(
        conninfo, "fallback_application_name"
    )
    if name:
        return name
    cluster = ((settings or {}).get("cluster_name") or {}).get("setting")
    return cluster or "walreceiver"


def replay_delay(receive_pending_bytes, seconds_since_last_replay, has_receive_lsn):
    """Seconds the standby's replay is behind, reading 0 when it has replayed everything it
    received (an idle primary sends nothing new: the last replayed commit's age is no lag).

    None when it cannot be told: no WAL received by streaming, or no transaction replayed yet.
    """
    if not has_receive_lsn:
        return None
    if receive_pending_bytes is None or receive_pending_bytes <= 0:
        return 0.0
    if seconds_since_last_replay is None:
        return None
    return max(0.0, float(seconds_since_last_replay))


def _zero_when_caught_up(row):
    """pg_stat_replication's lag times stay at their last value (then NULL) once a standby has
    caught up; a standby with no byte left to write/flush/replay has no lag."""
    for kind in ("write", "flush", "replay"):
        if row.get("%s_lag_bytes" % kind) == 0:
            row["%s_lag_seconds" % kind] = 0.0
    return row


def read(session):
    """The replication state of the server of ``session`` (see the module docstring)."""
    state = _clean(session.fetchone(_Q_STATE))
    feats = Features(state["version_num"])
    in_recovery = bool(state["in_recovery"])
    privileges = dict(
        superuser=bool(state["is_superuser"]),
        read_all_stats=bool(state["is_superuser"] or state["can_read_all_stats"]),
        read_all_settings=bool(state["is_superuser"] or state["can_read_all_settings"]),
        # pg_promote() is superuser-only unless granted (GRANT EXECUTE ON FUNCTION pg_promote ...).
        promote=bool(state["is_superuser"] or state["can_promote"]),
    )
    facts = dict(
        role="standby" if in_recovery else "primary",
        in_recovery=in_recovery,
        version=dict(num=feats.num, major=feats.major, text=version_text(feats.num)),
        system_identifier=state["system_identifier"],
        postmaster_start_time=state["postmaster_start_time"],
        current_user=state["current_user"],
        privileges=privileges,
        checks_skipped=[],
        now=state["now"],
        standbys=[],
        slots=[],
        receiver=None,
        conflicts=[],
    )
    if not privileges["read_all_stats"]:
        facts["checks_skipped"].append(
            dict(
                check="replication details",
                reason="the LSNs and addresses of standbys, the WAL receiver's upstream and other sessions' "
                "queries need pg_read_all_stats (granted by pg_monitor) to role %s" % state["current_user"],
            )
        )
    if not in_recovery:
        facts["current_lsn"] = state["current_lsn"]
        facts["timeline"] = timeline_of_walfile(state["current_walfile"])
        facts["standbys"] = [_zero_when_caught_up(_clean(r)) for r in session.fetchall(_Q_STANDBYS)]
    extra = "".join(", s.%s" % column for column in feats.replication_slot_columns)
    facts["slots"] = [_clean(r) for r in session.fetchall(_Q_SLOTS.format(extra=extra))]
    if in_recovery:
        facts["receiver"] = _standby(session, state, feats, facts)
        facts["timeline"] = facts["receiver"]["timeline"]
    return facts


def _standby(session, state, feats, facts):
    """The standby side: receiver, replay, conflicts, settings, oldest transactions."""
    row = session.fetchone(_Q_RECEIVER)
    wal_receiver = _clean(row) if row else None
    settings = dict(
        (r["name"], _clean(r)) for r in session.fetchall(_Q_SETTINGS, dict(names=list(STANDBY_SETTINGS)))
    )
    if len(settings) < len(STANDBY_SETTINGS) and not facts["privileges"]["read_all_settings"]:
        facts["checks_skipped"].append(
            dict(check="standby settings", reason="some settings need pg_read_all_settings (in pg_monitor)")
        )
    startup = session.fetchone(_Q_STARTUP)
    oldest = [_clean(r) for r in session.fetchall(_Q_OLDEST, dict(limit=OLDEST_TRANSACTIONS))]
    for tx in oldest:
        text = tx.get("query")
        if text:
            text = redact.statement(" ".join(text.split()))
            tx["query"] = text if len(text) <= QUERY_TEXT_LIMIT else text[: QUERY_TEXT_LIMIT - 3] + "..."
    columns = ", ".join("c.%s" % c for c in feats.recovery_conflict_columns)
    for raw in session.fetchall(_Q_CONFLICTS.format(columns=columns)):
        r = _clean(raw)
        counts = dict((c[len("confl_") :], r[c] or 0) for c in feats.recovery_conflict_columns)
        if sum(counts.values()):
            facts["conflicts"].append(
                dict(
                    database=r["database"],
                    total=sum(counts.values()),
                    counts=counts,
                    stats_reset=r["stats_reset"],
                )
            )
    has_receive = state["receive_lsn"] is not None
    pending = state["replay_pending_bytes"]
    receiver = dict(
        status=(wal_receiver or {}).get("status") or "not running",
        running=wal_receiver is not None,
        sender_host=(wal_receiver or {}).get("sender_host"),
        sender_port=(wal_receiver or {}).get("sender_port"),
        upstream=mask_conninfo((wal_receiver or {}).get("conninfo")),
        slot_name=(wal_receiver or {}).get("slot_name"),
        application_name=standby_application_name(wal_receiver, settings),
        received_tli=(wal_receiver or {}).get("received_tli"),
        receive_lsn=state["receive_lsn"],
        written_lsn=(wal_receiver or {}).get("written_lsn"),
        flushed_lsn=(wal_receiver or {}).get("flushed_lsn"),
        replay_lsn=state["replay_lsn"],
        replay_pending_bytes=max(0, pending) if pending is not None else None,
        last_replay_time=state["last_replay_time"],
        replay_delay_seconds=replay_delay(pending, state["seconds_since_last_replay"], has_receive),
        replay_pause_state=state["replay_pause_state"],
        replay_paused=state["replay_pause_state"] in ("paused", "pause requested"),
        last_msg_send_time=(wal_receiver or {}).get("last_msg_send_time"),
        last_msg_receipt_time=(wal_receiver or {}).get("last_msg_receipt_time"),
        seconds_since_last_msg=(wal_receiver or {}).get("seconds_since_last_msg"),
        latest_end_lsn=(wal_receiver or {}).get("latest_end_lsn"),
        latest_end_time=(wal_receiver or {}).get("latest_end_time"),
        startup_wait_event_type=(startup or {}).get("wait_event_type"),
        startup_wait_event=(startup or {}).get("wait_event"),
        settings=dict((name, s["value"]) for name, s in sorted(settings.items())),
        recovery_min_apply_delay_ms=_milliseconds(settings.get("recovery_min_apply_delay")),
        oldest_transactions=oldest,
    )
    receiver["timeline"] = receiver["received_tli"] or state["checkpoint_timeline"]
    return receiver


def _milliseconds(setting):
    """A time setting of pg_settings (setting + unit) in milliseconds, or None."""
    if not setting or setting.get("setting") in (None, ""):
        return None
    factor = {"ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}.get(
        setting.get("unit") or "ms", 1
    )
    try:
        return int(setting["setting"]) * factor
    except (TypeError, ValueError):
        return None
