#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: promote
short_description: Promote a PostgreSQL standby to primary, guarded against data loss and split brain
version_added: "0.2.0"
description:
  - Promotes the standby the module connects to (the connection options) with
    C(pg_promote(wait => true)), after guards that run in this order and each record what they saw in
    RV(guards).
  - C(target) guard. The server must be in recovery. One that is already out of recovery is left as
    it is (changed=false), unless a candidate shows it is not the right primary (another candidate is
    out of recovery too, or on a newer timeline).
  - C(privilege) guard, first, on a standby. The login role must be allowed to run C(pg_promote)
    (a superuser, or C(GRANT EXECUTE ON FUNCTION pg_catalog.pg_promote(boolean, integer))); otherwise
    the module refuses before it probes any other server.
  - C(candidates) guard. Every other server of O(candidates) that can be reached must not have
    received more WAL than the target (on the same timeline; a newer timeline counts as more), nor,
    with as much received, replayed more (a target that only replayed less of the same WAL, replay not
    paused, is first given up to O(wait_timeout) seconds to replay as far). One that cannot be reached is
    recorded as
    C(unreachable) with the reason and skipped; one that answers but cannot be read (a refused login)
    refuses. O(allow_behind) overrides this guard.
  - C(old_primary) guard. O(old_primary) must not accept connections; it is tried with a short
    timeout; a server there that is out of recovery means two writable primaries, and any server that
    answers at all (even refusing the login) is alive. O(force) overrides this guard, and only this one.
  - C(replay) guard. Replay must not be paused on the target; then the module waits, up to
    O(wait_timeout) seconds, until the target has replayed all the WAL it received.
  - Then it promotes and returns the new RV(timeline) and RV(promoted_lsn).
  - A refusal fails the task naming the guard and how to override it; nothing is changed then.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  candidates:
    description:
      - The other standbys that could be promoted instead, to compare with the target. Each is a
        connection; keys not given are taken from the module's own connection options (user,
        password, database, SSL mode).
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: Port.
        type: int
        default: 5432
      user:
        description: Role to connect as.
        type: str
      password:
        description: Its password.
        type: str
      dbname:
        description: Database to connect to.
        type: str
      connect_timeout:
        description: Seconds to wait for the connection.
        type: int
        default: 5
  old_primary:
    description:
      - The primary the target replaces. It must not accept connections (stopped, or fenced off),
        unless O(force). Same keys as an item of O(candidates).
    type: dict
    suboptions:
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: Port.
        type: int
        default: 5432
      user:
        description: Role to connect as.
        type: str
      password:
        description: Its password.
        type: str
      dbname:
        description: Database to connect to.
        type: str
      connect_timeout:
        description: Seconds to wait for the connection (keep it short, a dead host does not answer).
        type: int
        default: 3
  allow_behind:
    description:
      - Promote even when a reachable candidate has more WAL than the target (that WAL is lost), or
        answers but cannot be read.
    type: bool
    default: false
  force:
    description:
      - Promote even when the old primary accepts connections. Only when clients can no longer reach
        it (fenced); otherwise two primaries take writes.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for the target to replay what it received, and for C(pg_promote) to finish.
    type: int
    default: 60
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description:
      - Runs every guard (connecting to the candidates and the old primary, reading only) and reports
        whether it would promote; does not wait for replay and promotes nothing.
  diff_mode:
    support: none
    description: The change is the server's role; RV(guards) says what was seen.
notes:
  - C(pg_promote) needs a superuser, or C(GRANT EXECUTE ON FUNCTION pg_promote(boolean, integer)) to the
    login role; reading the candidates needs no privilege beyond connecting.
  - Timelines and LSNs are compared as PostgreSQL reports them (C(pg_last_wal_receive_lsn),
    C(pg_last_wal_replay_lsn), C(pg_stat_wal_receiver.received_tli)).
  - Passwords of O(candidates) and O(old_primary) are never shown.
seealso:
  - module: dbarch.postgresql.replication_info
"""

EXAMPLES = r"""
- name: Promote db2 once db1 is down, unless db3 has more WAL
  dbarch.postgresql.promote:
    login_host: db2.example.com
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
    candidates:
      - host: db3.example.com
    old_primary:
      host: db1.example.com
  register: promoted

- name: Show the new timeline
  ansible.builtin.debug:
    msg: "timeline {{ promoted.timeline }} from {{ promoted.promoted_lsn }}"

- name: What would happen (guards only)
  dbarch.postgresql.promote:
    login_host: db2.example.com
    old_primary:
      host: db1.example.com
  check_mode: true
"""

RETURN = r"""
promoted:
  description: Whether the server was promoted by this run.
  returned: always
  type: bool
timeline:
  description: The target's timeline after the run (the new one after a promotion).
  returned: always
  type: int
promoted_lsn:
  description:
    - The LSN where the new timeline begins (the last WAL replayed before the promotion). On a server
      that was already a primary, read back when PostgreSQL still knows it, else null.
  returned: always
  type: str
guards:
  description:
    - What each guard saw. C(target) (its recovery state, LSNs, timeline), C(candidates) (each with
      C(name), C(status) (C(reachable), or C(unreachable) and the reason), its LSNs and timeline, and
      C(verdict)), C(old_primary) (C(status), C(in_recovery) when reached, C(verdict)), C(replay)
      (received and replayed LSN, C(pending_bytes), C(waited_seconds)) and, after a promotion,
      C(promote); on a standby, C(privilege) (C(login_role), C(may_promote), C(verdict)).
  returned: always
  type: dict
guard:
  description:
    - On a refusal, the guard that refused (C(privilege), C(candidates), C(old_primary), C(replay),
      C(promote)).
  returned: on failure
  type: str
msg:
  description: What was done, or would be done (on a refusal, the guard, what it saw and how to override it).
  returned: always
  type: str
queries:
  description: The SQL the module ran on the target.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import promote


def _server_spec(timeout):
    return dict(
        host=dict(type="str", required=True),
        port=dict(type="int", default=5432),
        user=dict(type="str"),
        password=dict(type="str", no_log=True),
        dbname=dict(type="str"),
        connect_timeout=dict(type="int", default=timeout),
    )


ARGUMENT_SPEC = dict(
    candidates=dict(type="list", elements="dict", default=[], options=_server_spec(5)),
    old_primary=dict(type="dict", options=_server_spec(3)),
    allow_behind=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=60),
)


def connection(module, server):
    """The collection's connection options for another server: its own keys, the rest from the module's."""
    params = dict(
        login_host=server["host"],
        login_port=server["port"],
        login_user=server.get("user") or module.params.get("login_user"),
        login_password=server.get("password") or module.params.get("login_password"),
        login_db=server.get("dbname") or module.params.get("login_db") or "postgres",
        ssl_mode=module.params.get("ssl_mode"),
        ca_cert=module.params.get("ca_cert"),
        connect_timeout=server["connect_timeout"],
    )
    return params


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    if p["wait_timeout"] < 1:
        module.fail_json(msg="wait_timeout=%s: give at least 1 second" % p["wait_timeout"])
    for server in p["candidates"] + ([p["old_primary"]] if p["old_primary"] else []):
        if server.get("password"):
            module.no_log_values.add(server["password"])
    host = p.get("login_host") or p.get("login_unix_socket") or "local socket"
    target_name = "%s:%s" % (host, p.get("login_port") or 5432)
    session = module.connect()
    try:
        result = promote.run(
            session,
            target_name,
            candidates=[connection(module, c) for c in p["candidates"]],
            old_primary=connection(module, p["old_primary"]) if p["old_primary"] else None,
            allow_behind=p["allow_behind"],
            force=p["force"],
            wait_timeout=p["wait_timeout"],
            check_mode=module.check_mode,
        )
    except DbarchError as exc:
        module.fail_from(exc, session)
    finally:
        session.close()
    module.exit_json(queries=list(session.queries), **result)


if __name__ == "__main__":
    main()
