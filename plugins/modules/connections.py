#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: connections
short_description: Terminate or cancel the PostgreSQL sessions that match a filter
version_added: "0.3.0"
description:
  - Reads the client sessions of C(pg_stat_activity), keeps those that every given filter matches
    (O(states), O(min_idle_seconds), O(min_xact_seconds), O(users), O(applications), O(databases),
    O(client_addrs)) and terminates them (C(pg_terminate_backend)) or cancels their running query
    (C(pg_cancel_backend)), longest idle first, at most O(max_terminate) per run.
  - Never touches a replication connection (WAL sender), an autovacuum or other background worker,
    or the module's own session; only client backends are ever matched.
  - A session is signalled only while it is the same backend in the same state as when it was read
    (same C(backend_start), C(state) and C(state_change)); one that became active in between is left
    alone and returned in RV(skipped).
  - In check mode nothing is signalled; RV(selected) lists exactly the sessions a real run would
    signal now.
  - At least one filter must be given.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  mode:
    description:
      - C(terminate) ends the sessions (their clients see the connection closed); C(cancel) only
        cancels the statement they run (an idle session is not affected).
    type: str
    choices: [terminate, cancel]
    default: terminate
  states:
    description:
      - States of C(pg_stat_activity) to match (C(idle), C(idle in transaction),
        C(idle in transaction (aborted)), C(active), C(fastpath function call), C(disabled)).
    type: list
    elements: str
  min_idle_seconds:
    description:
      - Match only sessions idle (or idle in transaction) for at least this many seconds (since their
        C(state_change)).
    type: float
  min_xact_seconds:
    description:
      - Match only sessions whose transaction has been open for at least this many seconds.
    type: float
  users:
    description: Match only sessions of these roles.
    type: list
    elements: str
  applications:
    description: Match only sessions with one of these C(application_name)s.
    type: list
    elements: str
  databases:
    description: Match only sessions connected to these databases.
    type: list
    elements: str
  client_addrs:
    description: Match only sessions from these client addresses (as C(host(client_addr)) shows them).
    type: list
    elements: str
  max_terminate:
    description:
      - The most sessions signalled in one run; the longest idle are taken first. The others stay in
        RV(matched) and RV(capped) is true.
    type: int
    default: 100
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Lists the sessions it would signal in RV(selected); signals none.
  diff_mode:
    support: none
    description: Sessions are not a state with a before and after; RV(selected) says who.
notes:
  - Needs a superuser, or a member of C(pg_signal_backend) (which may not signal superusers' sessions).
  - Run again with the same filter, the sessions are gone; nothing matches and nothing changes.
  - The connection runbook (C(playbooks/runbook_connections.yml)) is in C(docs/connections.md).
seealso:
  - module: dbarch.postgresql.connections_info
"""

EXAMPLES = r"""
- name: Who would be terminated (idle for more than 10 minutes), check mode first
  dbarch.postgresql.connections:
    states: [idle]
    min_idle_seconds: 600
  check_mode: true
  register: would

- name: Terminate them, at most 50
  dbarch.postgresql.connections:
    states: [idle]
    min_idle_seconds: 600
    max_terminate: 50

- name: End transactions of the reporting tool idle for more than 5 minutes
  dbarch.postgresql.connections:
    states: ["idle in transaction"]
    min_idle_seconds: 300
    applications: [reporting]

- name: Cancel statements of a batch user that ran for an hour
  dbarch.postgresql.connections:
    mode: cancel
    states: [active]
    min_xact_seconds: 3600
    users: [batch]
"""

RETURN = r"""
matched:
  description:
    - Every client session the filter matched, longest idle first, each with C(pid), C(user),
      C(database), C(application_name), C(client_addr), C(state), C(idle_seconds), C(xact_seconds) and
      C(connected_seconds).
  returned: always
  type: list
  elements: dict
selected:
  description: The matched sessions within O(max_terminate), signalled (or, in check mode, that would be).
  returned: always
  type: list
  elements: dict
terminated:
  description:
    - The sessions signalled (terminated, or cancelled with O(mode=cancel)), as in RV(matched). Empty in
      check mode.
  returned: always
  type: list
  elements: dict
skipped:
  description: Selected sessions left alone because they ended or changed state since they were read,
    each with C(reason).
  returned: always
  type: list
  elements: dict
capped:
  description: Whether more sessions matched than O(max_terminate).
  returned: always
  type: bool
mode:
  description: C(terminate) or C(cancel).
  returned: always
  type: str
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.health import activity

FILTER_SPEC = dict(
    states=dict(type="list", elements="str"),
    min_idle_seconds=dict(type="float"),
    min_xact_seconds=dict(type="float"),
    users=dict(type="list", elements="str"),
    applications=dict(type="list", elements="str"),
    databases=dict(type="list", elements="str"),
    client_addrs=dict(type="list", elements="str"),
)
ARGUMENT_SPEC = dict(
    mode=dict(type="str", choices=["terminate", "cancel"], default="terminate"),
    max_terminate=dict(type="int", default=100),
)
ARGUMENT_SPEC.update(FILTER_SPEC)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    filters = dict((k, p[k]) for k in FILTER_SPEC)
    if p["max_terminate"] < 1:
        module.fail_json(msg="max_terminate=%s must be at least 1." % p["max_terminate"])
    try:
        activity.check_filter(**filters)
    except activity.ActivityError as exc:
        module.fail_from(exc)
    session = module.connect()
    try:
        facts = activity.read(session)
        matched = activity.select(facts["_raw"], **filters)
        chosen = matched[: p["max_terminate"]]
        result = dict(
            mode=p["mode"],
            matched=[activity.describe(s) for s in matched],
            selected=[activity.describe(s) for s in chosen],
            terminated=[],
            skipped=[],
            capped=len(matched) > len(chosen),
        )
        if not module.check_mode and chosen:
            result["terminated"], result["skipped"] = activity.signal(session, chosen, p["mode"])
    except DbarchError as exc:
        module.fail_from(exc, session)
    finally:
        session.close()
    changed = bool(result["selected"]) if module.check_mode else bool(result["terminated"])
    if result["capped"]:
        module.warn(
            "%d sessions matched; only the %d longest idle were %s (max_terminate)."
            % (len(matched), len(chosen), "selected" if module.check_mode else "signalled")
        )
    module.exit_json(changed=changed, queries=module.queries(), **result)


if __name__ == "__main__":
    main()
