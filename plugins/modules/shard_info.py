#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: shard_info
short_description: Rows and bytes per shard of a sharded table, and the skew
version_added: "0.4.0"
description:
  - Reads a table sharded by M(dbarch.postgresql.shard_table). From the coordinator (the
    connection options) it reads the partitions, their servers and bounds. From each shard of
    O(shards) it reads the rows (C(count(*)), or the planner's estimate with O(exact=false)) and
    the bytes (C(pg_total_relation_size)).
  - A partition of the coordinator that O(shards) does not list is counted through the
    coordinator (its bytes are unknown).
  - The skew is the largest shard's share over the mean (1.0 is even). Over O(skew_threshold) it
    gives a finding (C(SHARD-SKEW-001)).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  exact:
    description:
      - Count rows with C(count(*)) on each shard (a full scan); V(false) reads the planner's estimate.
    type: bool
    default: true
  skew_threshold:
    description: The largest shard over the mean (rows or bytes) above which a finding is reported.
    type: float
    default: 1.5
extends_documentation_fragment:
  - dbarch.postgresql.shard_map
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
  - dbarch.postgresql.attributes.read_only
seealso:
  - module: dbarch.postgresql.shard_table
"""

EXAMPLES = r"""
- name: Rows and bytes per shard
  dbarch.postgresql.shard_info:
    login_host: coordinator.example.com
    table: events
    shards: "{{ shard_map.shards }}"
  register: sharding
"""

RETURN = r"""
table:
  description: The table (schema-qualified where not in public).
  returned: always
  type: str
shards:
  description: Per shard, C(shard), C(partition), C(server), C(bound), C(rows) and C(bytes).
  returned: always
  type: list
  elements: dict
total_rows:
  description: Rows over all shards.
  returned: always
  type: int
total_bytes:
  description: Bytes over the shards read directly.
  returned: always
  type: int
skew:
  description: C(rows) and C(bytes), the largest shard over the mean (null when empty).
  returned: always
  type: dict
findings:
  description: C(SHARD-SKEW-001) when the skew is over O(skew_threshold).
  returned: always
  type: list
  elements: dict
queries:
  description: The queries run on the coordinator.
  returned: always
  type: list
  elements: str
"""

import copy

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.sharding import fdw, shardmap

ARGUMENT_SPEC = copy.deepcopy(shardmap.SHARD_ARGSPEC)
ARGUMENT_SPEC.update(
    exact=dict(type="bool", default=True),
    skew_threshold=dict(type="float", default=1.5),
)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, findings=True, supports_check_mode=True)
    p = module.params
    timeout = p.get("connect_timeout") or 10

    def connect_shard(shard):
        return pg.connect(fdw.shard_params(shard, timeout), "shard_info")

    def work(session):
        return fdw.info(session, connect_shard, p["table"], p["shards"], schema=p["schema"], exact=p["exact"])

    report, queries = module.run(work)
    found, unused = module.suppress(fdw.skew_findings(report, p["skew_threshold"]))
    module.exit_findings(found, unused_suppressions=unused, queries=queries, **report)


if __name__ == "__main__":
    main()
