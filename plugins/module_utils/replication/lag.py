# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Judging replication state (from status.read) against thresholds: the findings of
replication_info.

Each rule is registered in core/findings.py (analysis ``replication_info``); each finding says what
is wrong, why it matters and how to fix it (the SQL where there is one). Plain Python: no Ansible
imports, no database: every function here takes the facts status.read returned.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

MIB = 1024 * 1024
# Defaults of the options (docs/replication.md explains the choice): seconds as the health
# dashboard's; 16 MiB is one WAL segment, 1 GiB is 64 of them.
DEFAULT_THRESHOLDS = dict(
    lag_warning_seconds=5.0,
    lag_critical_seconds=30.0,
    lag_warning_bytes=16 * MIB,
    lag_critical_bytes=1024 * MIB,
)

ANALYSIS = "replication_info"
LEVEL_SEVERITY = {"warning": "medium", "critical": "high"}


class LagError(DbarchError, ValueError):
    """Bad thresholds; the message says which and how to fix them."""


def _rule(rule_id, title, severity, why):
    fnd.register_rule(rule_id, title, severity, why=why, analysis=ANALYSIS)
    return rule_id


LAG_SECONDS = _rule(
    "REPL-LAG-001",
    "Replication lag over the time threshold",
    "medium",
    "Reads on the standby return data that old, and a failover to it now would have to replay that "
    "much before accepting writes (and, with asynchronous replication, may lose what was not received).",
)
LAG_BYTES = _rule(
    "REPL-LAG-002",
    "Replication lag over the byte threshold",
    "medium",
    "WAL not yet replayed on the standby: the time a promotion takes grows with it, and the primary "
    "keeps that WAL (slots, wal_keep_size) while the standby needs it.",
)
STANDBY_MISSING = _rule(
    "REPL-STANDBY-001",
    "Expected standby is not connected",
    "high",
    "A standby that does not stream is not a failover target and falls further behind every second; "
    "with a slot the primary keeps all WAL for it and can fill its disk.",
)
NOT_STREAMING = _rule(
    "REPL-STANDBY-002",
    "Standby connected but not streaming",
    "medium",
    "A standby in catchup, startup or backup state is not yet receiving WAL as it is written.",
)
SLOT_INACTIVE = _rule(
    "REPL-SLOT-001",
    "Inactive replication slot retains WAL",
    "medium",
    "Nothing consumes the slot, so the primary keeps every WAL segment from its restart_lsn on: pg_wal "
    "grows until the disk is full (and the primary stops) unless max_slot_wal_keep_size caps it.",
)
SLOT_LOST = _rule(
    "REPL-SLOT-002",
    "Replication slot lost required WAL",
    "high",
    "The WAL the slot's consumer needs is gone (wal_status lost, or the slot was invalidated): the standby "
    "or subscriber behind it can never catch up from this primary and must be rebuilt.",
)
SLOT_UNRESERVED = _rule(
    "REPL-SLOT-003",
    "Replication slot about to lose required WAL",
    "high",
    "wal_status unreserved: the slot retains more than max_slot_wal_keep_size, so the next checkpoint may "
    "remove WAL its consumer still needs.",
)
RECEIVER_DOWN = _rule(
    "REPL-RECV-001",
    "Standby has no streaming WAL receiver",
    "high",
    "Without a WAL receiver the standby gets WAL only from restore_command (if any): it falls behind, "
    "and its replay delay reads as 0 only because it has nothing new to replay.",
)
REPLAY_PAUSED = _rule(
    "REPL-REPLAY-001",
    "WAL replay is paused on the standby",
    "medium",
    "Received WAL piles up unapplied: reads show old data and a promotion has to replay all of it first.",
)
CONFLICTS = _rule(
    "REPL-CONFLICT-001",
    "Queries on the standby were cancelled by recovery conflicts",
    "low",
    "Replay needed to remove rows, locks or buffers that queries on the standby still used, and cancelled "
    "those queries (or replay waited for them up to max_standby_streaming_delay, which is lag).",
)


def thresholds(**values):
    """The thresholds, defaults for those not given, checked: numbers >= 0, warning <= critical."""
    out = dict(DEFAULT_THRESHOLDS)
    for name, value in values.items():
        if name not in DEFAULT_THRESHOLDS:
            raise LagError(
                "Unknown threshold %r: use one of %s." % (name, ", ".join(sorted(DEFAULT_THRESHOLDS)))
            )
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise LagError("%s=%r is not a number." % (name, value)) from None
        if number < 0:
            raise LagError("%s=%r must not be negative." % (name, value))
        out[name] = int(number) if name.endswith("_bytes") else number
    for unit in ("seconds", "bytes"):
        warn, crit = out["lag_warning_%s" % unit], out["lag_critical_%s" % unit]
        if warn > crit:
            raise LagError(
                "lag_warning_%s=%s is above lag_critical_%s=%s: the warning threshold must be the lower one."
                % (unit, warn, unit, crit)
            )
    return out


def level(value, warning, critical):
    """None, 'warning' or 'critical' for a lag ``value`` (None: unknown, no level)."""
    if value is None:
        return None
    if value >= critical:
        return "critical"
    if value >= warning:
        return "warning"
    return None


def size_text(n):
    """Bytes for people: 16.0 MiB."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "bytes" else ("%.1f %s" % (value, unit))
        value /= 1024.0
    return "%d bytes" % n  # pragma: no cover


def standby_label(row):
    """How a standby row of pg_stat_replication is named in findings."""
    name = row.get("application_name") or "(no application_name)"
    addr = row.get("client_addr")
    return "standby %s (%s)" % (name, addr) if addr else "standby %s" % name


def lag_findings(obj, lag_bytes, lag_seconds, limits, evidence, side):
    """REPL-LAG-001/002 for one standby; ``side`` says where it was measured (for the message)."""
    found = []
    seconds_level = level(lag_seconds, limits["lag_warning_seconds"], limits["lag_critical_seconds"])
    if seconds_level:
        found.append(
            fnd.Finding(
                LAG_SECONDS,
                LEVEL_SEVERITY[seconds_level],
                obj,
                "%s is %.1f s behind (%s, %s threshold %s s)"
                % (
                    obj,
                    lag_seconds,
                    side,
                    seconds_level,
                    limits["lag_%s_seconds" % seconds_level],
                ),
                why=fnd.registered_rule(LAG_SECONDS).why,
                fix="Find the cause with playbooks/runbook_replication_lag.yml: replay paused "
                "(SELECT pg_wal_replay_resume() on the standby), queries holding replay back, the network, "
                "or the standby's I/O or CPU.",
                evidence=dict(evidence, lag_seconds=round(lag_seconds, 3), level=seconds_level),
                title=fnd.registered_rule(LAG_SECONDS).title,
            )
        )
    bytes_level = level(lag_bytes, limits["lag_warning_bytes"], limits["lag_critical_bytes"])
    if bytes_level:
        found.append(
            fnd.Finding(
                LAG_BYTES,
                LEVEL_SEVERITY[bytes_level],
                obj,
                "%s has %s of WAL not replayed (%s, %s threshold %s)"
                % (
                    obj,
                    size_text(lag_bytes),
                    side,
                    bytes_level,
                    size_text(limits["lag_%s_bytes" % bytes_level]),
                ),
                why=fnd.registered_rule(LAG_BYTES).why,
                fix="Find the cause with playbooks/runbook_replication_lag.yml; compare the sent, flushed "
                "and replayed LSNs: sent far from flushed is the network, flushed far from replayed is the "
                "standby's replay (paused, conflicts, I/O or CPU).",
                evidence=dict(evidence, lag_bytes=lag_bytes, level=bytes_level),
                title=fnd.registered_rule(LAG_BYTES).title,
            )
        )
    return found


_finding = fnd.from_registered_rule


def primary_findings(facts, limits, expected_standbys=()):
    """Findings of a primary: lag of each standby, expected standbys, slots."""
    found = []
    for row in facts.get("standbys") or []:
        obj = standby_label(row)
        evidence = dict(
            (k, row.get(k))
            for k in (
                "state",
                "sync_state",
                "sent_lsn",
                "flush_lsn",
                "replay_lsn",
                "replay_lag_bytes",
                "slot_name",
            )
        )
        evidence["current_lsn"] = facts.get("current_lsn")
        found += lag_findings(
            obj,
            row.get("replay_lag_bytes"),
            row.get("replay_lag_seconds"),
            limits,
            evidence,
            "seen from the primary",
        )
        if row.get("state") != "streaming":
            found.append(
                _finding(
                    NOT_STREAMING,
                    None,
                    obj,
                    "%s is connected in state %s, not streaming" % (obj, row.get("state")),
                    "Wait for catchup to finish and watch the lag shrink; a standby that stays in catchup "
                    "gets WAL more slowly than the primary writes it (network or standby I/O): see the "
                    "runbook.",
                    dict(
                        state=row.get("state"),
                        sent_lsn=row.get("sent_lsn"),
                        current_lsn=facts.get("current_lsn"),
                    ),
                )
            )
    connected = dict((r.get("application_name"), r) for r in facts.get("standbys") or [])
    for name in expected_standbys or ():
        row = connected.get(name)
        if row is None:
            found.append(
                _finding(
                    STANDBY_MISSING,
                    None,
                    "standby %s" % name,
                    "Expected standby %s is not connected to this primary" % name,
                    "Check the standby: is it running (pg_ctl status / systemctl status), does its log show "
                    "connection errors, does primary_conninfo point here with application_name=%s? Then "
                    "SELECT * FROM pg_stat_wal_receiver on it." % name,
                    dict(connected=sorted(k for k in connected if k)),
                )
            )
    found += slot_findings(facts.get("slots") or [], limits)
    return found


def slot_findings(slots, limits):
    """Inactive slots retaining WAL, slots that lost or are about to lose WAL."""
    found = []
    for slot in slots:
        name = slot.get("slot_name")
        obj = "slot %s" % name
        drop = "SELECT pg_drop_replication_slot(%s);" % _sql_text(name)
        evidence = dict(
            (k, slot.get(k))
            for k in (
                "slot_type",
                "active",
                "wal_status",
                "restart_lsn",
                "retained_bytes",
                "safe_wal_size",
                "inactive_since",
                "invalidation_reason",
                "conflicting",
            )
            if k in slot
        )
        status = slot.get("wal_status")
        if status == "lost" or slot.get("invalidation_reason") or slot.get("conflicting"):
            found.append(
                _finding(
                    SLOT_LOST,
                    None,
                    obj,
                    "Slot %s can no longer serve its consumer: %s"
                    % (name, slot.get("invalidation_reason") or ("wal_status %s" % status)),
                    "Rebuild the standby (or resynchronize the subscriber) behind it, then drop the dead "
                    "slot: %s" % drop,
                    evidence,
                )
            )
            continue
        if status == "unreserved":
            found.append(
                _finding(
                    SLOT_UNRESERVED,
                    None,
                    obj,
                    "Slot %s retains %s, beyond max_slot_wal_keep_size: its WAL may be removed at the next "
                    "checkpoint" % (name, size_text(slot.get("retained_bytes"))),
                    "Get its consumer streaming now (see the runbook), or, if it is gone for good, drop "
                    "it: %s" % drop,
                    evidence,
                )
            )
        retained = slot.get("retained_bytes") or 0
        if not slot.get("active") and retained > 0 and status != "unreserved":
            severity = "high" if retained >= limits["lag_critical_bytes"] else None
            found.append(
                _finding(
                    SLOT_INACTIVE,
                    severity,
                    obj,
                    "Slot %s is inactive and retains %s of WAL" % (name, size_text(retained)),
                    "Start the standby (or subscriber) that uses it; if none does any more, drop it: %s "
                    "Cap what any slot may retain: ALTER SYSTEM SET max_slot_wal_keep_size = '<size>'; "
                    "SELECT pg_reload_conf();" % drop,
                    evidence,
                )
            )
    return found


def standby_findings(facts, limits):
    """Findings of a standby: its receiver, replay delay and pending bytes, pause, conflicts, slots."""
    found = []
    receiver = facts.get("receiver") or {}
    obj = "standby %s" % (receiver.get("application_name") or "")
    evidence = dict(
        (k, receiver.get(k))
        for k in (
            "status",
            "sender_host",
            "sender_port",
            "receive_lsn",
            "replay_lsn",
            "replay_pending_bytes",
            "last_replay_time",
            "replay_pause_state",
        )
    )
    found += lag_findings(
        obj,
        receiver.get("replay_pending_bytes"),
        receiver.get("replay_delay_seconds"),
        limits,
        evidence,
        "replay on the standby",
    )
    if receiver.get("status") != "streaming":
        found.append(
            _finding(
                RECEIVER_DOWN,
                None,
                obj,
                "The standby's WAL receiver is %s, not streaming" % receiver.get("status"),
                "Read the standby's log for the receiver's error; check primary_conninfo (SHOW "
                "primary_conninfo), the primary's pg_hba.conf and max_wal_senders, and that the slot "
                "(primary_slot_name) exists on the primary.",
                evidence,
            )
        )
    if receiver.get("replay_paused"):
        found.append(
            _finding(
                REPLAY_PAUSED,
                None,
                obj,
                "WAL replay is %s on the standby (%s not replayed)"
                % (receiver.get("replay_pause_state"), size_text(receiver.get("replay_pending_bytes"))),
                "If nobody paused it on purpose (a restore or investigation), resume it: "
                "SELECT pg_wal_replay_resume();",
                evidence,
            )
        )
    for db in facts.get("conflicts") or []:
        found.append(
            _finding(
                CONFLICTS,
                None,
                "database %s" % db["database"],
                "%d quer%s on database %s cancelled by recovery conflicts since %s"
                % (
                    db["total"],
                    "y" if db["total"] == 1 else "ies",
                    db["database"],
                    db.get("stats_reset") or "the statistics were last reset",
                ),
                "Avoid snapshot conflicts with ALTER SYSTEM SET hot_standby_feedback = on (the primary then "
                "keeps rows the standby's queries see: watch bloat), or let queries wait longer with "
                "max_standby_streaming_delay (more lag); run long reports on a standby kept for them. "
                "Reset the counters once handled: SELECT pg_stat_reset(); in that database.",
                dict(counts=db["counts"], stats_reset=db.get("stats_reset")),
            )
        )
    found += slot_findings(facts.get("slots") or [], limits)
    return found


def findings(facts, limits, expected_standbys=()):
    """The findings of status.read's ``facts``, most severe first."""
    if facts.get("role") == "standby":
        found = standby_findings(facts, limits)
    else:
        found = primary_findings(facts, limits, expected_standbys)
    return fnd.normalize(found)


def _sql_text(value):
    """A SQL string literal for fix text shown to people."""
    return "'%s'" % str(value).replace("'", "''")
