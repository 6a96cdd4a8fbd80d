#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: catalog_info
short_description: Snapshot of a database's schema and statistics
version_added: "0.1.0"
description:
  - Reads tables, views, columns, constraints, indexes, foreign keys, sizes, row
    estimates and usage statistics of one database with a fixed number of catalog
    queries, whatever the size of the schema.
  - Takes no lock on any user table (sizes come from C(pg_class.relpages), as of the
    last VACUUM or ANALYZE), so it is safe on a busy primary. A partitioned table has no
    storage of its own and a never analyzed table an unknown size, so their C(table_bytes) is
    null, never negative.
  - On partitions, constraints copied from the parent have C(inherited=true) and indexes
    attached to the parent's index name it in C(parent_index).
  - This is the model that schema review, the data dictionary, index advice and the
    PII inventory read.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  schemas:
    description:
      - Schemas to read. Default is every schema but the system ones.
    type: list
    elements: str
  include_extension_objects:
    description:
      - Also read relations that belong to an extension (such as the C(pg_stat_statements) view).
    type: bool
    default: false
  column_stats:
    description:
      - Read planner statistics of columns (C(null_frac), C(n_distinct), C(avg_width)) from C(pg_stats).
    type: bool
    default: true
  detail:
    description:
      - V(summary) returns counts only; V(full) also returns the whole model in RV(catalog).
    type: str
    choices: [summary, full]
    default: summary
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.attributes.read_only
"""

EXAMPLES = r"""
- name: Count what the application schema holds
  dbarch.postgresql.catalog_info:
    login_db: shop
    schemas: [public, billing]
  register: cat

- name: Show the tables without a primary key
  ansible.builtin.debug:
    msg: "{{ cat.summary.tables_without_primary_key }} tables have no primary key"

- name: Whole model, for a custom check
  dbarch.postgresql.catalog_info:
    login_db: shop
    detail: full
  register: model
"""

RETURN = r"""
summary:
  description: Counts of schemas, tables, partitions, views, columns, indexes (and invalid ones),
    foreign keys, tables without a primary key, estimated rows and bytes, extensions.
  returned: always
  type: dict
  sample: {tables: 4, columns: 27, indexes: 9, foreign_keys: 3, tables_without_primary_key: 0}
catalog:
  description: The model, with every relation's columns, constraints, indexes and statistics.
  returned: when O(detail=full)
  type: dict
query_count:
  description: Number of catalog queries the snapshot ran (the same whatever the schema size).
  returned: always
  type: int
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.catalog import snapshot


def main():
    spec = dict(
        schemas=dict(type="list", elements="str"),
        include_extension_objects=dict(type="bool", default=False),
        column_stats=dict(type="bool", default=True),
        detail=dict(type="str", choices=["summary", "full"], default="summary"),
    )
    module = DbarchModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    cat, queries = module.run(
        lambda session: snapshot(
            session,
            schemas=p["schemas"],
            include_extension_objects=p["include_extension_objects"],
            column_stats=p["column_stats"],
        ),
    )
    result = dict(changed=False, summary=cat.summary(), query_count=cat.query_count, queries=queries)
    if p["detail"] == "full":
        result["catalog"] = cat.to_dict()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
