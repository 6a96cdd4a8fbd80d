#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: health_info
short_description: The Database Health dashboard's panels of a server, judged against thresholds
version_added: "0.3.0"
description:
  - Evaluates the four panels of the health dashboard and returns, per panel, C(status) (C(ok),
    C(warning), C(critical) or C(unknown)), C(value) and its C(source).
  - C(connections), client sessions against C(max_connections) minus the reserved slots, in percent
    (as M(dbarch.postgresql.connections_info) counts them).
  - C(replication_lag), on a primary the replay lag in seconds of every standby of
    C(pg_stat_replication) (the worst one is the value), on a standby its own replay delay (the
    engine of M(dbarch.postgresql.replication_info); 0 when everything is replayed, so an idle
    primary is not lag).
  - C(disk), the used share of the filesystem of the data folder and of the WAL folder (C(pg_wal),
    wherever its link points), read with C(os.statvfs) when the module runs on the server's host;
    C(unknown) elsewhere.
  - C(query_latency_p95), an ESTIMATE from C(pg_stat_statements) (calls, mean, standard deviation,
    minimum and maximum per top-level statement, combined as a mixture of log-normal distributions),
    labelled C(source=estimate) and C(exact=false), over everything since the statistics were last
    reset; C(unknown) when C(pg_stat_statements) cannot be read (the detail says how to fix it).
  - Returns one finding per panel at warning (C(medium)) or critical (C(high)).
  - Read-only; never reports a change. Works as a role with C(pg_monitor).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  thresholds:
    description:
      - Per panel (C(query_latency_p95) in ms, C(connections) in percent, C(replication_lag) in
        seconds, C(disk) in percent) a dict with C(warning) and/or C(critical); the panels and values
        not given keep the dashboard's defaults (100/500 ms, 70/90 %, 5/30 s, 80/90 %).
    type: dict
    default: {}
  panels:
    description: The panels to evaluate (default all four).
    type: list
    elements: str
    choices: [query_latency_p95, connections, replication_lag, disk]
    default: [query_latency_p95, connections, replication_lag, disk]
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
  - dbarch.postgresql.attributes.read_only
notes:
  - C(pg_stat_monitor)'s histogram is not read yet; the p95 is always the C(pg_stat_statements)
    estimate. C(bench/latency/run.py) measures its error against pgbench's per-transaction log.
  - The panels, their sources and the runbooks they point to are in C(docs/connections.md).
seealso:
  - module: dbarch.postgresql.connections_info
  - module: dbarch.postgresql.replication_info
"""

EXAMPLES = r"""
- name: The health panels of the server, with the dashboard's thresholds
  dbarch.postgresql.health_info:
  register: health

- name: Show them
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.status }} ({{ item.value.value }} {{ item.value.unit }})"
  loop: "{{ health.panels | dict2items }}"

- name: Stricter lag thresholds, fail when a panel is critical
  dbarch.postgresql.health_info:
    thresholds:
      replication_lag: {warning: 2, critical: 10}
    fail_on: high
"""

RETURN = r"""
panels:
  description:
    - Panel name -> C(status) (C(ok), C(warning), C(critical), C(unknown)), C(value) (null when
      unknown), C(unit), C(source) (C(estimate) for the p95), C(warning), C(critical), C(detail), and per
      panel C(standbys) (replication_lag), C(filesystems) (disk), C(exact) (query_latency_p95),
      C(total)/C(usable) (connections).
  returned: always
  type: dict
status:
  description: The worst status of the panels.
  returned: always
  type: str
findings:
  description: One finding per panel at warning or critical. Rules C(HEALTH-P95-001), C(HEALTH-CONN-001),
    C(HEALTH-LAG-001), C(HEALTH-DISK-001).
  returned: always
  type: list
  elements: dict
thresholds:
  description: The thresholds applied, per panel.
  returned: always
  type: dict
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

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.health import panels as eng

ARGUMENT_SPEC = dict(
    thresholds=dict(type="dict", default={}),
    panels=dict(type="list", elements="str", choices=list(eng.PANELS), default=list(eng.PANELS)),
)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, findings=True, supports_check_mode=True)
    try:
        limits = eng.thresholds(module.params["thresholds"])
    except eng.HealthError as exc:
        module.fail_from(exc)
    wanted = module.params["panels"]
    result, queries = module.run(lambda session: eng.evaluate(session, limits, wanted))
    found, unused = module.suppress(eng.findings(result))
    module.exit_findings(
        found,
        panels=result,
        status=eng.overall(result),
        thresholds=limits,
        unused_suppressions=unused,
        queries=queries,
    )


if __name__ == "__main__":
    main()
