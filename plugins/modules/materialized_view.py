#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: materialized_view
short_description: Create, refresh (concurrently when it can) or drop a materialized view
version_added: "0.1.0"
description:
  - "O(state=present): creates the materialized view when it is missing, with the unique index on
    O(unique_columns) that C(REFRESH MATERIALIZED VIEW CONCURRENTLY) needs, in one transaction."
  - "When it exists, its definition is compared with O(query) by PostgreSQL: O(query) becomes a temporary
    view in a transaction that is rolled back, and both are read back with C(pg_get_viewdef), so formatting
    does not count. Same definition: a missing unique index is built with C(CREATE UNIQUE INDEX
    CONCURRENTLY), else nothing changes. Another definition: the module fails unless O(replace=true), which
    drops and creates the view in one transaction (readers wait for that transaction)."
  - "O(state=refreshed): C(REFRESH MATERIALIZED VIEW CONCURRENTLY) when the view is populated and has a unique
    index on plain columns without a predicate, so readers are not blocked; otherwise a plain refresh (an
    ACCESS EXCLUSIVE lock for its duration) and C(reason) in RV(refresh) says why. Returns the measured
    duration and the row count. A refresh always reports C(changed=true)."
  - O(state=absent) drops it (C(DROP MATERIALIZED VIEW IF EXISTS), never CASCADE; objects that depend on it
    make the module fail with their names).
  - O(query) is parsed with pglast first; it must be exactly one SELECT (or VALUES) without parameters.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  name:
    description:
      - The materialized view, C(schema.view) or a name found on the search_path (created in
        C(current_schema()) when it is not found).
    type: str
    required: true
  query:
    description: The SELECT the view stores. Required with O(state=present).
    type: str
  unique_columns:
    description:
      - Columns of a unique index (named C(<view>_unique)) built with the view, which C(REFRESH ...
        CONCURRENTLY) needs. Their values must be unique in the result of O(query).
    type: list
    elements: str
    default: []
  with_data:
    description: Populate the view when it is created (V(false) creates it C(WITH NO DATA)).
    type: bool
    default: true
  replace:
    description: With O(state=present), drop and create the view when its definition differs.
    type: bool
    default: false
  concurrently:
    description:
      - How O(state=refreshed) refreshes. V(auto) refreshes concurrently when it can and plainly otherwise,
        with the reason; V(true) fails when it cannot refresh concurrently; V(false) always refreshes plainly.
    type: raw
    default: auto
  state:
    description: V(present), V(absent) or V(refreshed).
    type: str
    default: present
    choices: [present, absent, refreshed]
notes:
  - Needs the Python package pglast on the host that runs the module with O(state=present).
  - "Scheduled refreshes: roles/query_tuning (C(query_tuning_matview_schedules)) runs this module with
    O(state=refreshed) in check mode to get RV(refresh_sql), then installs it with
    dbarch.postgresql.scheduled_job (a systemd timer or cron on the host) run through psql."
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Reads the catalog (and makes the temporary comparison view in a rolled-back transaction) and
      returns the statements it would run in RV(planned).
  diff_mode:
    support: full
    description: The existing and the wanted definition (pg_get_viewdef form) with O(state=present) and
      O(state=absent).
seealso:
  - module: dbarch.postgresql.index
"""

EXAMPLES = r"""
- name: Daily revenue per region, refreshable without blocking readers
  dbarch.postgresql.materialized_view:
    login_db: shop
    name: reporting.daily_revenue
    query: >-
      SELECT o.created_at::date AS day, c.region, sum(o.total) AS revenue
      FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY 1, 2
    unique_columns: [day, region]

- name: Refresh it (concurrently, since it has a unique index)
  dbarch.postgresql.materialized_view:
    login_db: shop
    name: reporting.daily_revenue
    state: refreshed
  register: refresh

- name: Drop it
  dbarch.postgresql.materialized_view:
    login_db: shop
    name: reporting.daily_revenue
    state: absent
"""

RETURN = r"""
name:
  description: The view, schema-qualified.
  returned: always
  type: str
definition:
  description: The wanted definition as C(pg_get_viewdef) writes it.
  returned: when state is present
  type: str
before:
  description: The existing definition before the run; null when there was none.
  returned: when state is present or absent
  type: str
replaced:
  description: The view was dropped and created with the new definition.
  returned: when state is present
  type: bool
unique_index:
  description: C(name) and C(columns) of the unique index REFRESH CONCURRENTLY can use; null without
    O(unique_columns).
  returned: when state is present
  type: dict
refresh:
  description:
    - C(concurrent), C(reason), C(duration_ms) (measured around the REFRESH), C(rows) and C(rows_exact) (an
      exact count up to 64 MB of data, else the planner's estimate). Times and rows are null in check mode.
  returned: when state is refreshed
  type: dict
refresh_sql:
  description:
    - The REFRESH statement (identifiers quoted), with CONCURRENTLY when C(refresh.concurrent) is true. In
      check mode it is computed and not run, so a scheduled job can run exactly what the module would.
  returned: when state is refreshed
  type: str
  sample: REFRESH MATERIALIZED VIEW CONCURRENTLY "reporting"."daily_revenue"
planned:
  description: The state-changing statements run (or that would run in check mode).
  returned: always
  type: list
  elements: str
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.query import matviews
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import (
    DbarchModule,
    definition_diff,
)
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    query=dict(type="str"),
    unique_columns=dict(type="list", elements="str", default=[]),
    with_data=dict(type="bool", default=True),
    replace=dict(type="bool", default=False),
    concurrently=dict(type="raw", default="auto"),
    state=dict(type="str", default="present", choices=["present", "absent", "refreshed"]),
)

REQUIRED_IF = [("state", "present", ["query"])]


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    p = module.params
    how = str(p["concurrently"]).lower()
    how = {"yes": "true", "no": "false", "on": "true", "off": "false"}.get(how, how)
    if how not in ("auto", "true", "false"):
        module.fail_json(msg="concurrently must be auto, true or false, not %r." % p["concurrently"])
    if p["state"] == "present":
        try:
            matviews.check_query(p["query"])
        except DbarchError as exc:
            module.fail_from(exc)

    def work(session):
        if p["state"] == "present":
            return matviews.present(
                session, p["name"], p["query"], unique_columns=p["unique_columns"], with_data=p["with_data"],
                replace=p["replace"], check_mode=module.check_mode,
            )
        if p["state"] == "absent":
            return matviews.absent(session, p["name"], check_mode=module.check_mode)
        return matviews.refreshed(session, p["name"], concurrently=how, check_mode=module.check_mode)

    result, queries = module.run(work)
    result["queries"] = queries
    if module._diff and p["state"] != "refreshed" and result["changed"]:
        after = result.get("definition") if p["state"] == "present" else None
        result["diff"] = definition_diff("materialized view %s" % result["name"], result["before"], after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
