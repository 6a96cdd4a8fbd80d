#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: shard_table
short_description: Create or extend a table sharded over PostgreSQL servers (partitions + postgres_fdw)
version_added: "0.4.0"
description:
  - Builds a sharded table from a shard map on PostgreSQL's own declarative partitioning. The
    connection options reach the B(coordinator); O(shards) lists the shard databases, each
    holding one range (O(strategy=range)) or one hash remainder (O(strategy=hash)).
  - On each shard it creates the table (O(columns), O(primary_key)).
  - On the coordinator it creates the C(postgres_fdw) extension, one foreign server and one user
    mapping per shard, the partitioned table (partitioned by O(shard_key)), and one foreign-table
    partition per shard. Inserts and reads through the coordinator reach the right shard;
    queries on the shard key are pruned to the shards that hold it.
  - Idempotent. Only what is missing is created. Adding a shard (a new range) to the map adds
    that shard's table, server, mapping and partition and touches no existing data. An existing
    shard's range is never changed (no rebalancing).
  - See C(docs/sharding.md) for what this gives and does not (no distributed transactions beyond
    postgres_fdw's, no rebalancing), and when to move to Citus.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  columns:
    description:
      - The table's columns, the same on every shard. Each is C(name), C(type) (a type the
        coordinator knows, such as C(bigint), C(numeric(12,2)), C(timestamptz)), and optionally
        C(not_null).
    type: list
    elements: dict
    required: true
  shard_key:
    description: The column the rows are sharded by.
    type: str
    required: true
  strategy:
    description:
      - V(range) is one range of O(shard_key) per shard (time or id ranges; a new range is a new shard).
      - V(hash) is one remainder of O(modulus) per shard (fixed for the table's life).
    type: str
    choices: [range, hash]
    default: range
  modulus:
    description: Hash sharding, the number of hash buckets.
    type: int
  primary_key:
    description:
      - Primary key columns on each shard. Must include O(shard_key); uniqueness holds per shard.
      - The coordinator's partitioned table has no index (foreign partitions take none).
    type: list
    elements: str
  fdw_options:
    description: Further postgres_fdw server options, such as C(fetch_size) or C(use_remote_estimate).
    type: dict
  local_user:
    description:
      - The coordinator role whose user mapping is made (V(PUBLIC) for every role). Default the login role.
    type: str
extends_documentation_fragment:
  - dbarch.postgresql.shard_map
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Reads the coordinator and the shards and lists what it would create; changes nothing.
  diff_mode:
    support: none
    description: The result lists what was created (RV(shard_actions), RV(coordinator_actions)) instead.
notes:
  - The shards must be reachable from the coordinator's server (postgres_fdw connects from there)
    and from the host the module runs on.
seealso:
  - module: dbarch.postgresql.shard_info
"""

EXAMPLES = r"""
- name: Events sharded by month range over two servers
  dbarch.postgresql.shard_table:
    login_host: coordinator.example.com
    table: events
    columns:
      - {name: id, type: bigint, not_null: true}
      - {name: created, type: date, not_null: true}
      - {name: payload, type: jsonb}
    shard_key: created
    primary_key: [id, created]
    shards:
      - name: y2024
        host: shard1.example.com
        dbname: events
        user: shard_rw
        password: "{{ vault_shard_pw }}"
        from: "2024-01-01"
        to: "2025-01-01"
      - name: y2025
        host: shard2.example.com
        dbname: events
        user: shard_rw
        password: "{{ vault_shard_pw }}"
        from: "2025-01-01"
        to: "2026-01-01"
"""

RETURN = r"""
table:
  description: The sharded table (schema.table).
  returned: always
  type: str
backend:
  description: The backend used (C(fdw)).
  returned: always
  type: str
coordinator_actions:
  description: What was (or would be) created on the coordinator besides the per-shard objects.
  returned: always
  type: list
  elements: str
shard_actions:
  description: Per shard name, what was (or would be) created for it (table, server, user mapping, partition).
  returned: always
  type: dict
partitions:
  description: The coordinator's partitions of the table (C(name), C(server), C(bound), C(foreign)).
  returned: always
  type: list
  elements: dict
queries:
  description: The statements run on the coordinator (user mapping passwords masked).
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
    columns=dict(type="list", elements="dict", required=True),
    shard_key=dict(type="str", required=True, no_log=False),
    strategy=dict(type="str", choices=list(shardmap.STRATEGIES), default="range"),
    modulus=dict(type="int"),
    primary_key=dict(type="list", elements="str", no_log=False),
    fdw_options=dict(type="dict"),
    local_user=dict(type="str"),
)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    timeout = p.get("connect_timeout") or 10

    def connect_shard(shard):
        return pg.connect(fdw.shard_params(shard, timeout), "shard_table")

    def work(session):
        return fdw.apply(
            session,
            connect_shard,
            p["table"],
            p["columns"],
            p["shard_key"],
            p["strategy"],
            p["shards"],
            schema=p["schema"],
            modulus=p["modulus"],
            primary_key=p["primary_key"],
            fdw_options=p["fdw_options"],
            local_user=p["local_user"],
            check_mode=module.check_mode,
        )

    result, queries = module.run(work)
    result["queries"] = queries
    module.exit_json(**result)


if __name__ == "__main__":
    main()
