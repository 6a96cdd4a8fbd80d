# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The sharded table and its shards (shard_table, shard_info).
    DOCUMENTATION = r"""
options:
  table:
    description: The sharded table's name (the same on the coordinator and on every shard).
    type: str
    required: true
  schema:
    description: Its schema (created where missing).
    type: str
    default: public
  backend:
    description:
      - How the shards are reached. V(fdw) is PostgreSQL's declarative partitioning, each partition a
        C(postgres_fdw) foreign table. It is the only backend today; the option exists so that a
        Citus backend can take the same map later.
    type: str
    choices: [fdw]
    default: fdw
  shards:
    description:
      - The shards, one database each. The connection options reach the coordinator; these reach the shards.
      - The same user and password go into the coordinator's user mapping (postgres_fdw connects
        with them). The password never shows in output or logs.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - The shard's name (lower case); it names the partition C(<table>_<name>) and the server
            C(shard_<name>).
        type: str
        required: true
      host:
        description: Host of the shard, as the coordinator's server reaches it (and this module).
        type: str
        required: true
      port:
        description: Port.
        type: int
        default: 5432
      dbname:
        description: Database on the shard.
        type: str
        required: true
      user:
        description: Role on the shard.
        type: str
        required: true
      password:
        description: Its password (user mapping; a non-superuser's mapping needs one).
        type: str
      server:
        description: The foreign server's name on the coordinator. Default C(shard_<name>).
        type: str
      from:
        description: Range sharding, the lower bound (included), or V(MINVALUE).
        type: raw
      to:
        description: Range sharding, the upper bound (excluded), or V(MAXVALUE).
        type: raw
      remainder:
        description: Hash sharding, the hash remainder this shard holds (0 to the modulus minus 1).
        type: int
"""
