#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: diagnose_info
short_description: Classify a PostgreSQL server's bottleneck (cpu, memory, io, connections, locks)
version_added: "0.3.0"
description:
  - Reads the server's cumulative counters twice, O(interval) seconds apart, and samples
    C(pg_stat_activity) several times in between; returns the bottleneck classes found (several may
    hold, none on a server that has room), each with its evidence, the remedies for it and the
    collection's playbook that carries each remedy out.
  - "C(cpu): backends on CPU (active with no wait event) on average against the CPU count (O(cpus), or
    the host's when the module runs on the database host); or the host's CPU busy at 90 % or more with
    backends on CPU."
  - "C(memory): temporary files (sorts and hashes spilling past C(work_mem)) at 1 MB/s or more; on the
    database host, available memory under 5 % or swapping."
  - "C(io): buffer cache hit ratio under 90 % in the interval with 500 blocks or more read a second, or
    30 % or more of the active backend samples waiting on C(IO) events. Evidence also has the read time
    (C(track_io_timing)), checkpoints requested against timed (C(pg_stat_checkpointer) on 17 and later,
    C(pg_stat_bgwriter) before) and C(pg_stat_io) on 16 and later."
  - "C(connections): client connections at 80 % or more of C(max_connections) minus the reserved slots
    (C(superuser_reserved_connections), and C(reserved_connections) on 16 and later); idle in
    transaction sessions are in the evidence."
  - "C(locks): a backend waiting on a lock in half the samples or more; evidence has the blocking chains
    (C(pg_blocking_pids))."
  - Backends report their counters when a transaction ends, so a single statement running for the whole
    interval shows in the activity samples (wait events), not in the block counters.
  - Read-only; never reports a change. Needs C(pg_monitor) (or C(pg_read_all_stats)) to see other roles'
    sessions.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  interval:
    description:
      - Seconds between the two counter snapshots (activity is sampled twice a second, 4 to 20 times).
    type: float
    default: 10
  cpus:
    description:
      - CPU cores of the database server. Defaults to the host's when the module runs on the database
        host (the connection goes to a socket folder or the loopback address); needed for the C(cpu)
        class otherwise.
    type: int
  host_metrics:
    description:
      - Read C(/proc) (CPU, iowait, memory, swap). V(auto) does when the connection is local.
    type: str
    default: auto
    choices: [auto, always, never]
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
  - dbarch.postgresql.attributes.read_only
seealso:
  - module: dbarch.postgresql.tune
  - module: dbarch.postgresql.query_stats_info
"""

EXAMPLES = r"""
- name: What limits the server now
  dbarch.postgresql.diagnose_info:
    interval: 10
  register: diagnosis

- name: Say it
  ansible.builtin.debug:
    msg: "{{ diagnosis.classes | join(', ') or 'no bottleneck' }}: {{ diagnosis.remedies }}"
"""

RETURN = r"""
classes:
  description:
    - The bottlenecks found, among C(cpu), C(memory), C(io), C(connections), C(locks); empty when none.
  returned: always
  type: list
  elements: str
  sample: [connections, locks]
evidence:
  description:
    - What was measured, by class (C(cpu), C(memory), C(io), C(connections), C(locks)), with C(wait_events)
      (counts over the samples), C(host) (from C(/proc), when read), C(interval_seconds) and C(samples).
  returned: always
  type: dict
remedies:
  description:
    - For each class found, the remedies, each with C(remedy) and the C(playbook) that carries it out.
  returned: always
  type: dict
findings:
  description:
    - One finding per class found, and findings on checkpoints, C(track_io_timing), idle in transaction.
  returned: always
  type: list
  elements: dict
metrics:
  description:
    - The scaling workflow's post-scaling metrics now, C(cpu) (share busy, C(cpu_source) says from what),
      C(p95_ms_estimate) (an ESTIMATE of the 95th percentile latency from C(pg_stat_statements), the
      top-level statements of every database the role may read; each statement a log-normal distribution
      of its mean and standard deviation cut to its min and max, mixed by calls, the model of
      M(dbarch.postgresql.health_info) and of the monitoring role's C(pg_statements_p95_seconds); null without
      it, C(p95_source) says why), C(connection_use) (share of the usable slots), C(replication_lag_seconds)
      (the largest replay lag of the standbys on a primary, the replay delay on a standby).
  returned: always
  type: dict
criteria:
  description:
    - The success criteria evaluated on RV(metrics) (C(cpu) < 0.70, C(p95_latency) < 100 ms,
      C(pool_use) < 0.60, C(replication_lag) < 1 s), each with C(value), C(below) and C(met) (null when not
      measured), and C(all_met).
  returned: always
  type: dict
queries:
  description: The SQL the module ran (each sampling query once).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.scaling import diagnose as dg


def measure(session, p, local):
    """The diagnosis, then the post-scaling metrics and the success criteria on it."""
    found = dg.diagnose(session, interval=p["interval"], cpus=p["cpus"], local=local)
    found["metrics"] = dg.metrics(session, found)
    found["criteria"] = dg.criteria(found["metrics"])
    return found


def main():
    module = DbarchModule(
        argument_spec=dict(
            interval=dict(type="float", default=10),
            cpus=dict(type="int"),
            host_metrics=dict(type="str", default="auto", choices=["auto", "always", "never"]),
        ),
        findings=True,
        supports_check_mode=True,
    )
    p = module.params
    if not 0 < p["interval"] <= 3600:
        module.fail_json(msg="interval must be between 0 and 3600 seconds, got %s" % p["interval"])
    if p["cpus"] is not None and p["cpus"] < 1:
        module.fail_json(msg="cpus must be 1 or more, got %d" % p["cpus"])
    local = p["host_metrics"] == "always" or (
        p["host_metrics"] == "auto" and dg.is_local(pg.resolve_params(p).get("host"))
    )
    result, queries = module.run(lambda session: measure(session, p, local))
    found, _unused = module.suppress(fnd.normalize(result.pop("findings")))
    module.exit_findings(found, queries=queries, **result)


if __name__ == "__main__":
    main()
