# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The replication group as the servers see it, for the playbooks that change it (add_replica,
switchover, failover, rejoin): which server is the real primary (the one out of recovery, whatever
the inventory says), which hosts are standbys of it and streaming, which cannot be read.

Plain Python, no Ansible imports; reached from playbooks through the ``replication_topology``
filter (plugins/filter/replication.py) and the role ``replication_topology``. The primary is picked
and the standbys are matched to the primary's ``pg_stat_replication`` rows by diagnosis.py (one
place for both), this file only shapes the answer the playbooks branch on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import diagnosis


def _readable(info):
    return isinstance(info, dict) and not info.get("failed") and info.get("role") in ("primary", "standby")


def _lsn(value):
    try:
        return wal.parse_lsn(value) if value else None
    except wal.WalError:
        return None


def topology(infos, inventory_primaries=()):
    """{host: replication_info result} -> the group's state.

    Returns a dict:
    - ``primary``: the host the servers say is the primary (None when none is out of recovery; among
      several, the one diagnosis.py picks), ``primaries``: every host out of recovery;
    - ``inventory_primary``: the first host the inventory calls primary, ``stale``: true when the
      servers name another one (or none of the inventory's primaries is out of recovery);
    - ``standbys``: per host in recovery, ``streaming`` (its WAL receiver streams), ``follows_primary``
      (the primary's pg_stat_replication shows it), ``matched_by``, ``upstream`` (host:port its
      receiver shows), ``timeline``, ``receive_lsn``, ``replay_lsn``, ``lag_bytes`` (the primary's
      current LSN minus its replay LSN, when both are known), ``replay_paused``, ``apply_delay_ms``
      (recovery_min_apply_delay: a delayed standby), ``can_promote`` (the login role may run
      pg_promote there: superuser or EXECUTE granted);
    - ``streaming_standbys``: the hosts that stream from the primary, sorted;
    - ``unreadable``: {host: reason} of the hosts that could not be read;
    - ``notes``: sentences for the operator (a stale inventory, several primaries, none).
    """
    infos = dict(infos or {})
    inventory_primaries = [str(h) for h in inventory_primaries or ()]
    found = diagnosis.diagnose(infos, inventory_primaries=inventory_primaries)
    primary = found["primary"]
    readable = dict((h, i) for h, i in infos.items() if _readable(i))
    primaries = sorted(h for h, i in readable.items() if i["role"] == "primary")
    standbys = dict((h, i) for h, i in readable.items() if i["role"] == "standby")
    rows = (readable[primary].get("standbys") or []) if primary else []
    pairs = diagnosis.match_standbys(rows, standbys)
    current = _lsn(readable[primary].get("current_lsn")) if primary else None
    out_standbys = {}
    for host in sorted(standbys):
        rec = standbys[host].get("receiver") or {}
        row, how = pairs[host]
        replay = _lsn(rec.get("replay_lsn"))
        upstream = None
        if rec.get("sender_host"):
            upstream = "%s:%s" % (rec.get("sender_host"), rec.get("sender_port"))
        out_standbys[host] = dict(
            streaming=rec.get("status") == "streaming",
            follows_primary=bool(row) and rec.get("status") == "streaming",
            matched_by=how,
            upstream=upstream,
            application_name=rec.get("application_name"),
            slot_name=rec.get("slot_name"),
            timeline=standbys[host].get("timeline"),
            receive_lsn=rec.get("receive_lsn"),
            replay_lsn=rec.get("replay_lsn"),
            lag_bytes=max(current - replay, 0) if current is not None and replay is not None else None,
            replay_paused=bool(rec.get("replay_paused")),
            apply_delay_ms=rec.get("recovery_min_apply_delay_ms") or 0,
            can_promote=bool((standbys[host].get("privileges") or {}).get("promote")),
        )
    unreadable = {}
    for host in sorted(set(infos) - set(readable)):
        info = infos[host] if isinstance(infos[host], dict) else {}
        unreadable[host] = info.get("msg") or "no replication_info result"
    named = inventory_primaries[0] if inventory_primaries else None
    stale = bool(primary) and primary not in inventory_primaries
    # diagnosis.py words its stale-inventory note for a report; the playbooks say what they do.
    notes = [n for n in found["notes"] if "inventory is stale" not in n]
    if stale:
        notes.append(
            "The inventory calls %s the primary, but the server out of recovery is %s: the inventory is "
            "stale; following the servers." % (named or "no host", primary)
        )
    return dict(
        primary=primary,
        primaries=primaries,
        inventory_primary=named,
        stale=stale,
        standbys=out_standbys,
        streaming_standbys=sorted(h for h, s in out_standbys.items() if s["follows_primary"]),
        unreadable=unreadable,
        notes=notes,
    )
