#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: replication_info
short_description: Replication state and lag of a PostgreSQL primary or standby, with findings
version_added: "0.2.0"
description:
  - On a primary, every standby of C(pg_stat_replication) (application_name, client address, state,
    sync state, sent/write/flush/replay LSN, the bytes between them and the primary's current LSN,
    write/flush/replay lag in seconds) and every replication slot (active, C(wal_status), retained
    WAL, C(safe_wal_size); on PostgreSQL 17 and later C(inactive_since) and C(invalidation_reason)
    too).
  - On a standby, the WAL receiver (status, upstream host and port, the conninfo with the password
    masked, received and replayed LSN, last message times), whether replay is paused, a replay delay
    in seconds that reads 0 when everything received is replayed (an idle primary is not lag), what
    the startup process waits on, the oldest open transactions and the recovery conflicts of
    C(pg_stat_database_conflicts).
  - Judges it against thresholds and returns RV(findings) (lag over the thresholds in seconds and
    bytes, inactive slots holding WAL, slots that lost or may lose WAL, expected standbys missing or
    not streaming, a receiver not streaming, replay paused, queries cancelled by recovery conflicts).
  - Read-only; never reports a change. Works as a role with C(pg_monitor); what the role may not read
    is listed in RV(checks_skipped).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  lag_warning_seconds:
    description:
      - Replay lag, in seconds, at which a standby gets a C(medium) finding (C(REPL-LAG-001)).
    type: float
    default: 5
  lag_critical_seconds:
    description:
      - Replay lag, in seconds, at which the finding is C(high).
    type: float
    default: 30
  lag_warning_bytes:
    description:
      - WAL not yet replayed by a standby, in bytes, at which it gets a C(medium) finding
        (C(REPL-LAG-002)). Takes a number or a size such as C(16MB) (powers of 1024).
      - The default, 16 MiB, is one WAL segment.
    type: raw
    default: 16MB
  lag_critical_bytes:
    description:
      - WAL not yet replayed, in bytes, at which the finding is C(high); also the size at which an
        inactive slot's finding is C(high). Takes a number or a size such as C(1GB).
    type: raw
    default: 1GB
  expected_standbys:
    description:
      - C(application_name) of every standby that should stream from this primary; each one missing
        gets a C(high) finding (C(REPL-STANDBY-001)). Ignored on a standby.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
  - dbarch.postgresql.attributes.read_only
notes:
  - On a primary the lag in bytes is C(pg_current_wal_lsn()) minus the standby's replay LSN; the lag
    in seconds is PostgreSQL's own C(replay_lag), read as 0 once the standby has replayed everything.
  - On a standby the lag in bytes is the WAL received but not replayed, and the delay in seconds is
    the age of the last replayed transaction while WAL waits to be replayed (0 otherwise), an upper
    bound when the primary had been idle before the last write.
  - The rules and what to do about each are in C(docs/replication.md).
seealso:
  - module: dbarch.postgresql.promote
  - module: dbarch.postgresql.server_info
"""

EXAMPLES = r"""
- name: Replication state of the primary, with the standbys that must be there
  dbarch.postgresql.replication_info:
    login_host: db1.example.com
    login_user: monitor
    login_password: "{{ vault_monitor_password }}"
    expected_standbys: [db2, db3]
  register: repl

- name: Fail when a standby is more than 30 seconds or 1 GiB behind
  dbarch.postgresql.replication_info:
    lag_critical_seconds: 30
    lag_critical_bytes: 1GB
    fail_on: high

- name: A standby's receiver and replay
  dbarch.postgresql.replication_info:
    login_host: db2.example.com
  register: standby

- name: Show its replay delay
  ansible.builtin.debug:
    msg: >-
      {{ standby.receiver.replay_delay_seconds }} s behind,
      replay {{ standby.receiver.replay_pause_state }}
"""

RETURN = r"""
role:
  description: C(primary) or C(standby) (in recovery).
  returned: always
  type: str
in_recovery:
  description: Whether the server is in recovery (a standby).
  returned: always
  type: bool
version:
  description: Server version, with C(num), C(major) and C(text).
  returned: always
  type: dict
system_identifier:
  description: The cluster's system identifier (a primary and its physical standbys share it).
  returned: always
  type: str
timeline:
  description:
    - The server's timeline (of its current WAL file on a primary, of the WAL it receives on a
      standby).
  returned: always
  type: int
current_lsn:
  description: The primary's current WAL LSN.
  returned: on a primary
  type: str
standbys:
  description:
    - The standbys streaming from this primary (empty on a standby), each with C(application_name),
      C(client_addr), C(state), C(sync_state), C(sent_lsn), C(write_lsn), C(flush_lsn), C(replay_lsn),
      C(replay_lag_bytes) (current LSN minus replay LSN), C(write_lag_bytes), C(flush_lag_bytes),
      C(unsent_bytes), C(unflushed_bytes) (sent, not yet flushed), C(unreplayed_bytes) (flushed, not
      yet replayed), C(write_lag_seconds), C(flush_lag_seconds), C(replay_lag_seconds) (0 when caught
      up), C(reply_time) and C(slot_name).
  returned: always
  type: list
  elements: dict
slots:
  description:
    - Replication slots, each with C(slot_name), C(slot_type), C(active), C(wal_status),
      C(restart_lsn), C(retained_bytes) (WAL the slot keeps), C(safe_wal_size), and where the major
      has them C(conflicting) (16+), C(inactive_since), C(invalidation_reason), C(failover),
      C(synced) (17+), C(two_phase_at) (18+).
  returned: always
  type: list
  elements: dict
receiver:
  description:
    - On a standby (null on a primary), C(status) of the WAL receiver (C(not running) when there is
      none), C(sender_host), C(sender_port), C(upstream) (its conninfo, password masked),
      C(application_name) the primary sees, C(slot_name), C(receive_lsn), C(replay_lsn),
      C(replay_pending_bytes), C(replay_delay_seconds) (0 when everything received is replayed),
      C(replay_pause_state), C(replay_paused), C(last_replay_time), C(last_msg_send_time),
      C(last_msg_receipt_time), C(seconds_since_last_msg), C(startup_wait_event_type),
      C(startup_wait_event), C(settings) (hot_standby_feedback, max_standby_streaming_delay,
      recovery_min_apply_delay, ...) and C(oldest_transactions) (the open transactions of the standby,
      oldest first, query text cut and password literals masked).
  returned: always
  type: dict
conflicts:
  description: On a standby, the databases whose queries were cancelled by recovery conflicts, with
    C(total), C(counts) per kind and C(stats_reset).
  returned: always
  type: list
  elements: dict
findings:
  description:
    - Findings, most severe first, each with C(rule), C(severity), C(object), C(message), C(why),
      C(fix) and C(evidence). Rules C(REPL-LAG-001), C(REPL-LAG-002), C(REPL-STANDBY-001),
      C(REPL-STANDBY-002), C(REPL-SLOT-001), C(REPL-SLOT-002), C(REPL-SLOT-003), C(REPL-RECV-001),
      C(REPL-REPLAY-001), C(REPL-CONFLICT-001).
  returned: always
  type: list
  elements: dict
thresholds:
  description: The thresholds applied, bytes as numbers.
  returned: always
  type: dict
privileges:
  description:
    - Whether the login role is C(superuser), can read all statistics (C(read_all_stats)) and all
      settings (C(read_all_settings)), and may run C(pg_promote) (C(promote), true for a superuser or
      with EXECUTE granted; M(dbarch.postgresql.promote) and the switchover check it before anything
      changes).
  returned: always
  type: dict
checks_skipped:
  description: What was not read for lack of privilege, each with C(check) and C(reason).
  returned: always
  type: list
  elements: dict
unused_suppressions:
  description: Suppressions that matched no finding.
  returned: always
  type: list
  elements: dict
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.common.text.formatters import human_to_bytes
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import lag, status

ARGUMENT_SPEC = dict(
    lag_warning_seconds=dict(type="float", default=5),
    lag_critical_seconds=dict(type="float", default=30),
    lag_warning_bytes=dict(type="raw", default="16MB"),
    lag_critical_bytes=dict(type="raw", default="1GB"),
    expected_standbys=dict(type="list", elements="str", default=[]),
)


def _bytes(module, name):
    value = module.params[name]
    try:
        return int(value) if isinstance(value, int) or str(value).strip().isdigit() else human_to_bytes(value)
    except ValueError:
        module.fail_json(
            msg="%s=%r is not a size: give a number of bytes or a size such as 16MB or 1GB" % (name, value)
        )


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, findings=True, supports_check_mode=True)
    p = module.params
    try:
        limits = lag.thresholds(
            lag_warning_seconds=p["lag_warning_seconds"],
            lag_critical_seconds=p["lag_critical_seconds"],
            lag_warning_bytes=_bytes(module, "lag_warning_bytes"),
            lag_critical_bytes=_bytes(module, "lag_critical_bytes"),
        )
    except lag.LagError as exc:
        module.fail_from(exc)
    facts, queries = module.run(status.read)
    found, unused = module.suppress(lag.findings(facts, limits, p["expected_standbys"]))
    for key in ("now", "postmaster_start_time", "current_user"):
        facts.pop(key, None)
    module.exit_findings(found, thresholds=limits, unused_suppressions=unused, queries=queries, **facts)


if __name__ == "__main__":
    main()
