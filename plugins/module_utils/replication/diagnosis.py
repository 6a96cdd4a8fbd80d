# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replication-lag runbook's diagnosis: per standby, its lag in bytes and seconds, the likely
cause with the evidence for it, and the short- and long-term remedies.

``diagnose(infos, limits, inventory_primaries)`` takes the replication_info results of every host
(the primary's view of each standby from pg_stat_replication and each standby's own view: receiver,
pause, conflicts, queries) and joins them. The causes it tells apart:

- ``not streaming``: the primary does not see the standby, or its WAL receiver is not streaming;
- ``replay paused``: pg_get_wal_replay_pause_state() is not 'not paused';
- ``delayed standby``: recovery_min_apply_delay holds replay back on purpose;
- ``queries hold replay back``: the startup process waits on a recovery conflict, or transactions on
  the standby are older than the lag (max_standby_streaming_delay lets them), or conflicts cancelled
  queries;
- ``network``: WAL the primary wrote is not yet on the standby's disk (sent - flushed, or not sent);
- ``standby replay (I/O or CPU)``: WAL is on the standby's disk but replay cannot keep up, none of the
  above explaining it;
- ``slot retention``: slots on the primary keep WAL for a lagging or gone consumer.

Plain Python: no Ansible imports, no database. The rules are registered in core/findings.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import lag

ANALYSIS = "replication_lag_runbook"
_WAITS_ON_QUERIES = ("Lock", "BufferPin")


def _rule(rule_id, title, severity, why):
    fnd.register_rule(rule_id, title, severity, why=why, analysis=ANALYSIS)
    return rule_id


NOT_STREAMING = _rule(
    "REPL-CAUSE-001",
    "Standby not streaming from the primary",
    "high",
    "A standby that does not stream receives no new WAL: its lag grows without bound and its own replay "
    "delay reads 0 because it has nothing to replay.",
)
PAUSED = _rule(
    "REPL-CAUSE-002",
    "Replay paused",
    "medium",
    "While replay is paused the standby receives WAL but applies none of it.",
)
DELAYED = _rule(
    "REPL-CAUSE-003",
    "Delayed standby (recovery_min_apply_delay)",
    "info",
    "A delayed standby lags on purpose (a window to recover from mistakes); it is a poor failover target.",
)
QUERIES = _rule(
    "REPL-CAUSE-004",
    "Queries on the standby hold replay back",
    "medium",
    "Replay waits (up to max_standby_streaming_delay) for standby queries that use rows, locks or buffers "
    "it must change, then cancels them.",
)
NETWORK = _rule(
    "REPL-CAUSE-005",
    "Network: WAL not yet received by the standby",
    "medium",
    "WAL written on the primary is not yet on the standby's disk: it is lost if the primary fails now "
    "(asynchronous replication), and synchronous commits wait for it.",
)
APPLY = _rule(
    "REPL-CAUSE-006",
    "Standby replay cannot keep up (I/O or CPU)",
    "medium",
    "The standby has the WAL but replays it more slowly than the primary writes it: reads are stale and a "
    "promotion would first have to replay the backlog.",
)
SLOTS = _rule(
    "REPL-CAUSE-007",
    "Replication slots retain WAL on the primary",
    "medium",
    "WAL kept for a lagging or gone consumer fills the primary's pg_wal; when the disk is full the primary "
    "stops.",
)
UNREADABLE = _rule(
    "REPL-CAUSE-008",
    "Server could not be read",
    "high",
    "A server the inventory lists did not answer: its replication state is unknown.",
)
PRIMARIES = _rule(
    "REPL-CAUSE-009",
    "More than one primary, or none",
    "critical",
    "Two servers out of recovery both accept writes (split brain); with none, nothing accepts writes.",
)

# Per cause: (short-term, long-term) remedies, each a list of lines; SQL lines are run as they are,
# the others are said (they become SQL comments in the finding's fix).
REMEDIES = {
    NOT_STREAMING: (
        [
            "Read the standby's log for the WAL receiver's error; check that it runs, that primary_conninfo",
            "points at the primary and that the primary's pg_hba.conf lets it replicate. On the standby:",
            "SELECT status, sender_host, sender_port, slot_name FROM pg_stat_wal_receiver;",
        ],
        [
            "Alert on a missing standby (replication_info expected_standbys); keep a slot or",
            "wal_keep_size that covers an outage, with max_slot_wal_keep_size as a cap.",
        ],
    ),
    PAUSED: (
        ["On the standby:", "SELECT pg_wal_replay_resume();"],
        [
            "Find who paused it (an investigation, a restore tool) and have them resume it; alert on",
            "pg_get_wal_replay_pause_state() <> 'not paused'.",
        ],
    ),
    DELAYED: (
        [
            "Nothing, if the delay is intended. If it is not, on the standby:",
            "ALTER SYSTEM SET recovery_min_apply_delay = 0;",
            "SELECT pg_reload_conf();",
        ],
        ["Leave delayed standbys out of lag alerts and failover candidates; document their delay."],
    ),
    QUERIES: (
        [
            "On the standby, cancel the blocking transaction (the oldest ones are in the evidence):",
            "SELECT pg_cancel_backend(<pid>);",
        ],
        [
            "Either no snapshot conflicts (the primary then keeps dead rows longer: watch bloat):",
            "ALTER SYSTEM SET hot_standby_feedback = on;",
            "or cancel conflicting queries sooner (less lag, more cancelled queries):",
            "ALTER SYSTEM SET max_standby_streaming_delay = '5s';",
            "SELECT pg_reload_conf();",
            "and run long reports on a standby kept for them.",
        ],
    ),
    NETWORK: (
        [
            "Check the path between primary and standby (packet loss, a saturated link: ping, mtr,",
            "iperf3) and the standby's disk writes; pause bulk loads on the primary until it catches up.",
        ],
        [
            "More bandwidth or a closer standby; send less WAL (on the primary):",
            "ALTER SYSTEM SET wal_compression = on;",
            "SELECT pg_reload_conf();",
            "and synchronous replication (synchronous_standby_names) for the standbys that must not",
            "lose data.",
        ],
    ),
    APPLY: (
        [
            "Check the standby's I/O (iostat -x) and the startup process's CPU (top -p <pid of the startup",
            "process>); stop heavy read queries there until it catches up.",
        ],
        [
            "Storage and memory on the standby that match the primary's; on 15 and later keep",
            "recovery_prefetch = try and raise maintenance_io_concurrency; spread bulk writes on the",
            "primary.",
        ],
    ),
    SLOTS: (
        [
            "Get each slot's consumer streaming again; on the primary, drop a slot nobody uses:",
            "SELECT pg_drop_replication_slot('<slot>');",
        ],
        [
            "Cap the WAL any slot keeps, so a gone consumer cannot fill the disk:",
            "ALTER SYSTEM SET max_slot_wal_keep_size = '<size>';",
            "SELECT pg_reload_conf();",
            "and alert on the WAL retained per slot.",
        ],
    ),
    UNREADABLE: (
        ["Check that the server runs and accepts the connection (host, port, user, password, pg_hba.conf)."],
        ["Monitor the server's availability."],
    ),
    PRIMARIES: (
        ["Find which server clients write to; stop or fence the other one before anything else."],
        ["Fence the old primary in every failover (the promote module refuses while it is up)."],
    ),
}

_SQL_START = ("SELECT ", "ALTER ")


def remedy_text(short, long_):
    """The fix of a cause: short- then long-term remedy, said lines as SQL comments."""
    lines = ["-- Short term:"]
    for part, label in ((short, None), (long_, "-- Long term:")):
        if label:
            lines.append(label)
        lines += [line if line.startswith(_SQL_START) else "--   " + line for line in part]
    return "\n".join(lines)


def cause(rule_id, obj, message, evidence, severity=None):
    """One cause: a Finding whose fix is the short- then long-term remedy."""
    reg = fnd.registered_rule(rule_id)
    return fnd.Finding(
        rule_id,
        severity or reg.severity,
        obj,
        message,
        why=reg.why,
        fix=remedy_text(*REMEDIES[rule_id]),
        evidence=evidence,
        title=reg.title,
    )


# -- joining the primary's rows with the standbys ------------------------------------------------
def match_standbys(rows, standbys):
    """{standby host: pg_stat_replication row or None}: by slot name, then by a unique
    application_name, then the one row left with the one standby left."""
    matched = {}
    free = list(rows)

    def take(host, row, how):
        matched[host] = (row, how)
        free.remove(row)

    for host, facts in standbys.items():
        slot = (facts.get("receiver") or {}).get("slot_name")
        hits = [r for r in free if slot and r.get("slot_name") == slot]
        if len(hits) == 1:
            take(host, hits[0], "slot %s" % slot)
    for host, facts in standbys.items():
        if host in matched:
            continue
        name = (facts.get("receiver") or {}).get("application_name")
        hits = [r for r in free if name and r.get("application_name") == name]
        others = [h for h, f in standbys.items() if (f.get("receiver") or {}).get("application_name") == name]
        if len(hits) == 1 and len(others) == 1:
            take(host, hits[0], "application_name %s" % name)
    left = [h for h in standbys if h not in matched]
    if len(left) == 1 and len(free) == 1:
        take(left[0], free[0], "the only standby left")
    return dict((host, matched.get(host, (None, None))) for host in standbys)


# -- one standby ---------------------------------------------------------------------------------
def _worst(*levels):
    for name in ("critical", "warning"):
        if name in levels:
            return name
    return None


def _max_known(*values):
    known = [v for v in values if v is not None]
    return max(known) if known else None


def standby_causes(host, row, rec, limits, current_lsn=None):
    """(lag dict, [cause Findings]) of one standby from the primary's ``row`` (None: not seen by the
    primary; ``current_lsn`` is the primary's) and the standby's own receiver facts ``rec`` (None:
    not read)."""
    rec = rec or {}
    row = row or {}
    obj = "standby %s" % host
    transit = None
    if row:
        transit = (row.get("unsent_bytes") or 0) + (row.get("unflushed_bytes") or 0)
    apply_bytes = row.get("unreplayed_bytes") if row else rec.get("replay_pending_bytes")
    lag_bytes = row.get("replay_lag_bytes") if row else rec.get("replay_pending_bytes")
    lag_seconds = _max_known(row.get("replay_lag_seconds"), rec.get("replay_delay_seconds"))
    level = _worst(
        lag.level(lag_bytes, limits["lag_warning_bytes"], limits["lag_critical_bytes"]),
        lag.level(lag_seconds, limits["lag_warning_seconds"], limits["lag_critical_seconds"]),
    )
    severity = lag.LEVEL_SEVERITY.get(level)
    info = dict(
        lag_bytes=lag_bytes,
        lag_seconds=None if lag_seconds is None else round(lag_seconds, 3),
        level=level or "ok",
        transit_bytes=transit,
        apply_bytes=apply_bytes,
        sent_lsn=row.get("sent_lsn"),
        flush_lsn=row.get("flush_lsn"),
        replay_lsn=row.get("replay_lsn") or rec.get("replay_lsn"),
        write_lag_seconds=row.get("write_lag_seconds"),
        flush_lag_seconds=row.get("flush_lag_seconds"),
        replay_lag_seconds=row.get("replay_lag_seconds"),
        replay_delay_seconds=rec.get("replay_delay_seconds"),
    )
    found = []
    lsns = dict((k, info[k]) for k in ("sent_lsn", "flush_lsn", "replay_lsn", "lag_bytes", "lag_seconds"))
    if not row or (rec and rec.get("status") != "streaming"):
        found.append(
            cause(
                NOT_STREAMING,
                obj,
                "%s is %s"
                % (
                    obj,
                    "not connected to the primary"
                    if not row
                    else "not streaming (receiver %s)" % rec.get("status"),
                ),
                dict(
                    seen_by_primary=bool(row),
                    primary_state=row.get("state"),
                    receiver_status=rec.get("status"),
                    last_msg_receipt_time=rec.get("last_msg_receipt_time"),
                    sender_host=rec.get("sender_host"),
                    sender_port=rec.get("sender_port"),
                ),
            )
        )
    if rec.get("replay_paused"):
        found.append(
            cause(
                PAUSED,
                obj,
                "Replay is %s on %s: %s received and not applied"
                % (rec.get("replay_pause_state"), obj, lag.size_text(rec.get("replay_pending_bytes"))),
                dict(
                    lsns,
                    replay_pause_state=rec.get("replay_pause_state"),
                    receive_lsn=rec.get("receive_lsn"),
                    replay_pending_bytes=rec.get("replay_pending_bytes"),
                ),
                severity,
            )
        )
    if not level:
        return info, found
    delay_ms = rec.get("recovery_min_apply_delay_ms") or 0
    if delay_ms > 0:
        found.append(
            cause(
                DELAYED,
                obj,
                "%s applies WAL %s s late on purpose (recovery_min_apply_delay)" % (obj, delay_ms / 1000.0),
                dict(lsns, recovery_min_apply_delay_ms=delay_ms),
            )
        )
    held = _held_by_queries(rec, limits, lag_seconds)
    if held and not rec.get("replay_paused"):
        found.append(
            cause(QUERIES, obj, "Queries on %s hold replay back: %s" % (obj, held["why"]), held, severity)
        )
    if (
        transit is not None
        and transit > 0
        and (transit >= limits["lag_warning_bytes"] or transit >= (apply_bytes or 0))
    ):
        found.append(
            cause(
                NETWORK,
                obj,
                "%s of WAL written on the primary is not yet flushed on %s (%s not even sent)"
                % (lag.size_text(transit), obj, lag.size_text(row.get("unsent_bytes"))),
                dict(
                    lsns,
                    current_lsn=current_lsn,
                    unsent_bytes=row.get("unsent_bytes"),
                    unflushed_bytes=row.get("unflushed_bytes"),
                    write_lag_seconds=row.get("write_lag_seconds"),
                    flush_lag_seconds=row.get("flush_lag_seconds"),
                    seconds_since_last_msg=rec.get("seconds_since_last_msg"),
                ),
                severity,
            )
        )
    explained = rec.get("replay_paused") or delay_ms > 0 or held
    if (apply_bytes or 0) > 0 and (apply_bytes or 0) >= (transit or 0) and not explained:
        found.append(
            cause(
                APPLY,
                obj,
                "%s has %s of WAL on disk not yet replayed, with no pause, delay or blocking query to "
                "explain it" % (obj, lag.size_text(apply_bytes)),
                dict(
                    lsns,
                    apply_bytes=apply_bytes,
                    replay_lag_seconds=row.get("replay_lag_seconds"),
                    flush_lag_seconds=row.get("flush_lag_seconds"),
                    startup_wait_event=rec.get("startup_wait_event"),
                ),
                severity,
            )
        )
    return info, found


def _held_by_queries(rec, limits, lag_seconds):
    """Evidence that standby queries hold replay back, or None."""
    waits = rec.get("startup_wait_event") or ""
    waiting = waits.startswith("RecoveryConflict") or rec.get("startup_wait_event_type") in _WAITS_ON_QUERIES
    threshold = max(limits["lag_warning_seconds"], 0.0)
    old = [
        dict(
            (k, tx.get(k))
            for k in (
                "pid",
                "user",
                "database",
                "state",
                "xact_seconds",
                "wait_event",
                "backend_xmin",
                "query",
            )
        )
        for tx in rec.get("oldest_transactions") or []
        if (tx.get("xact_seconds") or 0) >= threshold
        and (lag_seconds is None or tx["xact_seconds"] >= lag_seconds * 0.5)
    ]
    if not waiting and not old:
        return None
    reasons = []
    if waiting:
        reasons.append("the startup process waits on %s/%s" % (rec.get("startup_wait_event_type"), waits))
    if old:
        reasons.append(
            "%d transaction(s) open for %.0f s or more" % (len(old), min(t["xact_seconds"] for t in old))
        )
    settings = rec.get("settings") or {}
    return dict(
        why="; ".join(reasons),
        startup_wait_event_type=rec.get("startup_wait_event_type"),
        startup_wait_event=rec.get("startup_wait_event"),
        oldest_transactions=old,
        max_standby_streaming_delay=settings.get("max_standby_streaming_delay"),
        hot_standby_feedback=settings.get("hot_standby_feedback"),
    )


# -- every host -----------------------------------------------------------------------------------
def _readable(info):
    return isinstance(info, dict) and not info.get("failed") and info.get("role") in ("primary", "standby")


def slot_cause(host, facts, limits):
    """One REPL-CAUSE-007 for the slots of the primary that retain at least the warning bytes."""
    heavy = [
        dict(
            (k, s.get(k))
            for k in (
                "slot_name",
                "active",
                "wal_status",
                "retained_bytes",
                "safe_wal_size",
                "inactive_since",
            )
        )
        for s in facts.get("slots") or []
        if (s.get("retained_bytes") or 0) >= limits["lag_warning_bytes"]
    ]
    if not heavy:
        return []
    worst = max(s["retained_bytes"] for s in heavy)
    severity = "high" if worst >= limits["lag_critical_bytes"] else None
    names = ", ".join(
        "%s (%s%s)"
        % (s["slot_name"], lag.size_text(s["retained_bytes"]), "" if s["active"] else ", inactive")
        for s in heavy
    )
    return [
        cause(
            SLOTS,
            "primary %s" % host,
            "Replication slots on %s retain WAL: %s" % (host, names),
            dict(slots=heavy, lag_warning_bytes=limits["lag_warning_bytes"]),
            severity,
        )
    ]


def _own_findings(info):
    return [fnd.Finding.from_dict(f) for f in info.get("findings") or []]


# Summary keys that are readings (they change from one run to the next on a live server); a report of
# the state only (``detail="state"``: role, upstream, level, causes) leaves them out, so that writing
# it again on an unchanged group changes nothing (site.yml's second run).
READINGS = frozenset(
    (
        "lag_bytes",
        "lag",
        "lag_seconds",
        "transit_bytes",
        "apply_bytes",
        "sent_lsn",
        "flush_lsn",
        "replay_lsn",
        "current_lsn",
        "lag_by_standby",
        "slots",
    )
)
DETAILS = ("full", "state")


def diagnose(infos, limits=None, inventory_primaries=(), detail="full"):
    """The runbook's diagnosis of every host.

    ``infos``: {host: replication_info result} (a failed result, with ``failed`` and ``msg``, is a
    host that could not be read). ``limits``: the thresholds (default: those the results were judged
    with, else lag.DEFAULT_THRESHOLDS). ``inventory_primaries``: the hosts the inventory calls primary,
    checked against what the servers say. Returns {primary, notes, standbys, hosts}: ``standbys`` one
    entry per standby host (lag, level, causes), ``hosts`` per host its report ``summary`` and
    ``findings`` (dicts, most severe first). ``detail``: ``full`` (every reading) or ``state`` (the
    summaries without the READINGS, for a report written on every run of a scheduled job)."""
    if detail not in DETAILS:
        raise lag.LagError("detail must be one of %s, not %r" % (", ".join(DETAILS), detail))
    if limits is None:
        # The thresholds replication_info applied (sizes already in bytes).
        given = [i.get("thresholds") for i in infos.values() if _readable(i) and i.get("thresholds")]
        limits = given[0] if given else {}
    limits = lag.thresholds(**limits)
    out = dict(primary=None, notes=[], standbys=[], hosts={})
    found = dict((host, []) for host in infos)
    summaries = dict((host, {}) for host in infos)
    readable = dict((h, i) for h, i in infos.items() if _readable(i))
    for host in sorted(set(infos) - set(readable)):
        info = infos[host] if isinstance(infos[host], dict) else {}
        reason = info.get("msg") or "no replication_info result"
        summaries[host] = dict(role="unknown", error=reason)
        found[host].append(
            cause(UNREADABLE, "server %s" % host, "%s could not be read: %s" % (host, reason), {})
        )
    primaries = sorted(h for h, i in readable.items() if i["role"] == "primary")
    standbys = dict((h, i) for h, i in readable.items() if i["role"] == "standby")
    primary = _pick_primary(primaries, inventory_primaries, readable, out["notes"])
    out["primary"] = primary
    if len(primaries) != 1:
        where = primary or sorted(readable or infos or ["(none)"])[0]
        found.setdefault(where, []).append(
            cause(
                PRIMARIES,
                "replication group",
                "%d servers are out of recovery%s"
                % (len(primaries), (": " + ", ".join(primaries)) if primaries else ""),
                dict(primaries=primaries, standbys=sorted(standbys)),
            )
        )
    stale = [h for h in inventory_primaries or () if h in readable and h != primary]
    if stale and primary:
        out["notes"].append(
            "The inventory calls %s the primary, but the server out of recovery is %s: the inventory is "
            "stale (after a failover?); this report follows the servers." % (", ".join(stale), primary)
        )
    rows = readable[primary].get("standbys") or [] if primary else []
    pairs = match_standbys(rows, standbys)
    table = {}
    for host in sorted(standbys):
        row, how = pairs[host]
        rec = standbys[host].get("receiver") or {}
        current = readable[primary].get("current_lsn") if primary else None
        info, causes = standby_causes(host, row, rec, limits, current)
        info.update(host=host, application_name=rec.get("application_name"), matched_by=how)
        info["causes"] = [c.title for c in causes]
        out["standbys"].append(info)
        found[host] += causes + _own_findings(standbys[host])
        summaries[host] = dict(
            role="standby",
            primary=primary,
            application_name=rec.get("application_name"),
            matched_by=how or "not seen by the primary",
            level=info["level"],
            lag_bytes=info["lag_bytes"],
            lag=lag.size_text(info["lag_bytes"]),
            lag_seconds=info["lag_seconds"],
            transit_bytes=info["transit_bytes"],
            apply_bytes=info["apply_bytes"],
            sent_lsn=info["sent_lsn"],
            flush_lsn=info["flush_lsn"],
            replay_lsn=info["replay_lsn"],
            receiver_status=rec.get("status"),
            upstream="%s:%s" % (rec.get("sender_host"), rec.get("sender_port"))
            if rec.get("sender_host")
            else None,
            replay_pause_state=rec.get("replay_pause_state"),
            causes=info["causes"] or ["none: no lag over the thresholds"],
        )
        table[host] = "%s, %s s, %s" % (
            lag.size_text(info["lag_bytes"]),
            "?" if info["lag_seconds"] is None else info["lag_seconds"],
            info["level"],
        )
    if primary:
        pinfo = readable[primary]
        found[primary] += slot_cause(primary, pinfo, limits) + _own_findings(pinfo)
        seen = {r.get("application_name") for r, _how in pairs.values() if r}
        summaries[primary] = dict(
            role="primary",
            timeline=pinfo.get("timeline"),
            current_lsn=pinfo.get("current_lsn"),
            standbys_connected=[r.get("application_name") for r in rows],
            standbys_not_in_inventory=sorted({r.get("application_name") for r in rows} - seen),
            lag_by_standby=table,
            slots=dict(
                (s.get("slot_name"), "%s, %s" % (lag.size_text(s.get("retained_bytes")), s.get("wal_status")))
                for s in pinfo.get("slots") or []
            ),
            thresholds=limits,
        )
    for host in primaries:
        if host != primary:
            summaries[host] = dict(role="primary", note="another server out of recovery: see the findings")
            found[host] += _own_findings(readable[host])
    for host in infos:
        summary = summaries.get(host) or {}
        if out["notes"]:
            summary["notes"] = list(out["notes"])
        if detail == "state":
            summary = dict((k, v) for k, v in summary.items() if k not in READINGS)
        out["hosts"][host] = dict(summary=summary, findings=[f.to_dict() for f in fnd.normalize(found[host])])
    return out


def _pick_primary(primaries, inventory_primaries, readable, notes):
    """The primary the report follows: the only server out of recovery; among several, the one the
    inventory names, else the one most standbys stream from."""
    if not primaries:
        notes.append("No server is out of recovery: there is no primary to compare the standbys with.")
        return None
    if len(primaries) == 1:
        return primaries[0]
    named = [h for h in primaries if h in (inventory_primaries or ())]
    best = (
        named[0] if len(named) == 1 else max(primaries, key=lambda h: len(readable[h].get("standbys") or []))
    )
    notes.append(
        "Several servers are out of recovery (%s); the standbys are compared with %s."
        % (", ".join(primaries), best)
    )
    return best
