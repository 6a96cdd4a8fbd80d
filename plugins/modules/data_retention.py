#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: data_retention
short_description: Delete or anonymize rows older than a retention policy, in batches that keep locks short
version_added: "0.3.0"
description:
  - For each policy, the rows of O(policies[].table) whose O(policies[].column) is older than
    O(policies[].older_than) are deleted, or anonymized with column rules (storage limitation, GDPR
    art. 5(1)(e)).
  - Each batch is one short transaction of at most O(batch_size) rows, picked by primary key (or C(ctid)) with
    C(FOR UPDATE SKIP LOCKED), so the run never waits on rows a client holds and holds its own locks for one
    batch only.
  - Every policy is checked (table, column type, interval, rules) before any row changes. Anonymized rows are
    not picked again, so a second run changes nothing. Check mode counts the rows.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  policies:
    description: The retention policies.
    type: list
    elements: dict
    required: true
    suboptions:
      table:
        description: The table (C(schema.table), or C(table) in C(public)).
        type: str
        required: true
      column:
        description: Its date or timestamp column that says how old a row is.
        type: str
        required: true
      older_than:
        description: The retention period, a PostgreSQL interval (C(90 days), C(7 years)).
        type: str
        required: true
      action:
        description: Delete the rows or anonymize them.
        type: str
        choices: [delete, anonymize]
        default: delete
      columns:
        description:
          - For anonymize, column to rule, C(null), C(redact) (the text C(redacted)) or C({value, <fixed>}).
        type: dict
  batch_size:
    description: Rows per batch (one transaction each).
    type: int
    default: 1000
  pause:
    description: Seconds to wait between batches (lets replicas and vacuum keep up).
    type: float
    default: 0
  max_batches:
    description: Stop a table after this many batches (the rest waits for the next run); unset is no limit.
    type: int
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Counts the rows each policy would change; changes nothing.
  diff_mode:
    support: none
    description: Nothing has a before and after to show.
notes:
  - Set O(lock_timeout) so a batch that cannot get its table lock fails fast instead of queueing.
seealso:
  - module: dbarch.postgresql.data_subject
"""

EXAMPLES = r"""
- name: Nightly retention, web logs 90 days, old orders' customer names redacted after 10 years
  dbarch.postgresql.data_retention:
    lock_timeout: 2s
    batch_size: 5000
    policies:
      - {table: public.web_log, column: created_at, older_than: 90 days}
      - table: public.orders
        column: placed_at
        older_than: 10 years
        action: anonymize
        columns: {customer_name: redact, customer_email: null}
"""

RETURN = r"""
tables:
  description:
    - Per table, C(action), C(column), C(older_than), C(rows) changed (check mode, counted), C(batches),
      C(complete) (false when O(max_batches) stopped it).
  returned: always
  type: dict
queries:
  description: The SQL the module ran (each batch statement once).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.compliance import retention
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule


def main():
    module = DbarchModule(
        argument_spec=dict(
            policies=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    table=dict(type="str", required=True),
                    column=dict(type="str", required=True),
                    older_than=dict(type="str", required=True),
                    action=dict(type="str", default="delete", choices=["delete", "anonymize"]),
                    columns=dict(type="dict"),
                ),
            ),
            batch_size=dict(type="int", default=1000),
            pause=dict(type="float", default=0),
            max_batches=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    p = module.params

    def work(session):
        return retention.apply(
            session,
            p["policies"],
            batch_size=p["batch_size"],
            pause=p["pause"],
            max_batches=p["max_batches"],
            check_mode=module.check_mode,
        )

    result, queries = module.run(work)
    module.exit_json(queries=queries, **result)


if __name__ == "__main__":
    main()
