#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: query_stats
short_description: Reset the pg_stat_statements statistics
version_added: "0.1.0"
description:
  - With O(state=reset), calls C(pg_stat_statements_reset()), which clears the statistics of every
    statement of every database on the server.
  - A reset is an action, not a state, so every run that resets reports a change. In check mode nothing
    is run; the module reports C(changed=true) and the statement it would run in RV(planned).
  - Reading the statistics is M(dbarch.postgresql.query_stats_info); it never changes anything.
  - The login role must be a superuser or have EXECUTE on C(pg_stat_statements_reset); the error says
    which grant is missing.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  state:
    description:
      - V(reset) clears the statistics.
    type: str
    default: reset
    choices: [reset]
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Runs nothing; reports the reset it would do.
  diff_mode:
    support: none
    description: There is no before/after to show beyond RV(stats_reset).
seealso:
  - module: dbarch.postgresql.query_stats_info
"""

EXAMPLES = r"""
- name: Start a clean measurement window
  dbarch.postgresql.query_stats:
    login_db: shop
    state: reset
"""

RETURN = r"""
stats_reset:
  description:
    - The reset time after the run (before it in check mode), ISO 8601; null before extension version 1.9.
  returned: always
  type: str
planned:
  description: The statement the module runs (in check mode, would run).
  returned: always
  type: list
  elements: str
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.query import query_stats as qs
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule


def work(session, module):
    st = qs.status(session)
    if not st["installed"]:
        return dict(error="Cannot reset: " + qs.message(st))
    planned = ["SELECT %s.pg_stat_statements_reset()" % st["schema"]]
    if module.check_mode:
        reset, _dealloc = qs.stats_reset_of(session, st)
        return dict(changed=True, stats_reset=reset, planned=planned)
    return dict(changed=True, stats_reset=qs.reset(session, st), planned=planned)


def main():
    module = DbarchModule(
        argument_spec=dict(state=dict(type="str", default="reset", choices=["reset"])),
        supports_check_mode=True,
    )
    result, queries = module.run(lambda session: work(session, module))
    if "error" in result:
        module.fail_json(msg=result["error"], queries=queries)
    module.exit_json(queries=queries, **result)


if __name__ == "__main__":
    main()
