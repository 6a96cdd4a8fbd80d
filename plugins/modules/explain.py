#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: explain
short_description: EXPLAIN ANALYZE one statement safely and report what is wrong with its plan
version_added: "0.1.0"
description:
  - Runs C(EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON)) on O(query) and returns the plan,
    its times, buffers and findings. With O(analyze=false) the statement is only planned, never executed.
  - The statement is parsed with pglast first. It must be exactly one SELECT, VALUES, INSERT, UPDATE,
    DELETE or MERGE statement; anything else fails with a message saying so.
  - "Safety: the statement always runs inside a transaction that is always rolled back, under
    O(statement_timeout) (30s when it is not set). A statement that does not write (no INSERT, UPDATE,
    DELETE, MERGE, data-modifying WITH or FOR UPDATE) runs in a READ ONLY transaction too, so a function
    it calls cannot write either; if PostgreSQL refuses because such a function writes, it is run again
    read-write, still rolled back (never in check mode: there the module fails and says the statement
    needs write access). Sequence values taken by the statement (nextval, serial or identity
    defaults of an INSERT) are not given back by a rollback: that is the one trace an analyzed writing
    statement leaves."
  - "A statement taken from C(pg_stat_statements) was written by whoever can connect, and EXPLAIN (even
    without ANALYZE: the planner evaluates immutable functions) runs the functions it calls with the
    rights of the role the module runs as, usually a superuser, outside the reach of the rollback
    (C(COPY ... TO PROGRAM)). Run such statements with O(explain_role), the role that recorded them (the
    C(user) of M(dbarch.postgresql.query_stats_info)) or a role without SUPERUSER; the role
    dbarch.postgresql.query_tuning does so."
  - Password literals (C(PASSWORD '...'), C(password=...) of connection strings) in the plan and in error
    messages are replaced by C(********).
  - Parameters are bound on the server. Write C($1), C($2) ... in O(query) and give the values in O(params);
    the module runs C(PREPARE) and C(EXPLAIN EXECUTE), so the values are never formatted into the SQL.
  - "Findings (rule ids are stable): C(QP-SCAN-001) sequential scan with a selective filter (with the index
    that would serve it), C(QP-EST-001) row estimate off by more than 10x,
    C(QP-LOOP-001) nested loop with many inner iterations, C(QP-SUBPLAN-001) subquery executed once
    per row (rewrite as a JOIN or LATERAL),
    C(QP-SPILL-001) sort spilled to disk, C(QP-SPILL-002) hash spilled to disk (work_mem),
    C(QP-BITMAP-001) lossy bitmap heap scan, C(QP-VM-001) heap fetches in an index-only scan (VACUUM),
    C(QP-PAR-001) fewer parallel workers than planned, C(QP-JIT-001) JIT time a large share of the total.
    Each has what, why, fix and evidence (node and numbers). Rules that need actual rows do not run with
    O(analyze=false); RV(rules_not_run) lists them."
  - The module never changes anything (the rollback guarantees it) and always reports C(changed=false).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  query:
    description:
      - The statement to explain, with C($1), C($2) ... placeholders for O(params).
    type: str
    required: true
  params:
    description:
      - Values of the placeholders, in order, bound on the server.
    type: list
    elements: raw
    default: []
  analyze:
    description:
      - Execute the statement (in a rolled-back transaction) to get actual rows, times and buffers.
      - V(false) only plans it.
      - In check mode a statement that writes is only planned, whatever this option says; a statement
        that reads only is analyzed as usual (in a READ ONLY transaction that is rolled back).
    type: bool
    default: true
  compare_to:
    description:
      - The registered result of an earlier run of this module (or its RV(plan)).
      - RV(comparison) then gives the times before and after, their ratio and the relations whose plan
        nodes changed.
    type: dict
  explain_role:
    description:
      - Run the statement as this role (C(SET LOCAL ROLE), quoted), with its rights and not the login's.
        The login must be a member of it (a superuser is).
      - Give it for statements taken from C(pg_stat_statements) or written by someone else, the C(user)
        that recorded them; a superuser is refused unless O(allow_superuser_statements).
      - "Without O(params) the statement runs inside a temporary C(SECURITY DEFINER) function owned by
        the role (created in C(pg_temp) and dropped after), where PostgreSQL refuses C(RESET ROLE): a
        plain C(SET ROLE) would not stop a function of the statement that resets it while the login is a
        superuser. With O(params), or where that function cannot be created (a hot standby), it is
        C(SET LOCAL ROLE) only: for statements nobody vetted, connect with a login without SUPERUSER."
    type: str
  allow_superuser_statements:
    description:
      - Accept a superuser as O(explain_role).
    type: bool
    default: false
  thresholds:
    description:
      - Limits of the plan rules, by name. C(seq_scan_min_removed) (1000), C(seq_scan_selectivity) (10),
        C(estimate_ratio) (10), C(estimate_min_rows) (100), C(nested_loop_loops) (1000),
        C(subplan_loops) (100),
        C(heap_fetch_share) (0.1), C(heap_fetch_min) (100), C(jit_share) (0.2), C(jit_min_ms) (10).
    type: dict
    default: {}
notes:
  - Use O(session_settings) to explain under the settings of the application, for example a
    C(work_mem) of C(64kB); the plan's C(Settings) lists those that differ from the defaults.
  - Needs the Python package pglast on the host that runs the module.
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
attributes:
  check_mode:
    support: full
    description: Reading statements are analyzed as usual; writing statements are planned without ANALYZE.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
seealso:
  - module: dbarch.postgresql.query_stats_info
"""

EXAMPLES = r"""
- name: Explain the orders of a customer
  dbarch.postgresql.explain:
    login_db: shop
    query: SELECT * FROM orders WHERE customer_id = $1 ORDER BY created_at DESC
    params: [42]
    statement_timeout: 10s
  register: before

- name: An UPDATE is analyzed and rolled back
  dbarch.postgresql.explain:
    login_db: shop
    query: UPDATE orders SET status = 'shipped' WHERE id = $1
    params: [1001]

- name: The top statement of pg_stat_statements
  dbarch.postgresql.query_stats_info:
    login_db: shop
    limit: 1
  register: top

- name: Explain it with the rights of the role that recorded it, never a superuser's
  dbarch.postgresql.explain:
    login_db: shop
    query: "{{ top.statements[0].query }}"
    explain_role: "{{ top.statements[0].user }}"
  when: not top.statements[0].user_superuser

- name: After building the index, compare
  dbarch.postgresql.explain:
    login_db: shop
    query: SELECT * FROM orders WHERE customer_id = $1 ORDER BY created_at DESC
    params: [42]
    compare_to: "{{ before }}"
  register: after

- name: Explain under the application's work_mem and fail on a high finding
  dbarch.postgresql.explain:
    login_db: shop
    query: SELECT customer_id, sum(total) FROM orders GROUP BY customer_id ORDER BY 2 DESC
    session_settings:
      work_mem: 4MB
    fail_on: high
"""

RETURN = r"""
plan:
  description:
    - The plan document EXPLAIN returned (C(Plan), C(Planning Time), C(Execution Time), C(Settings),
      C(JIT) ...).
  returned: always
  type: dict
analyzed:
  description:
    - Whether the statement was executed (ANALYZE); false with O(analyze=false) and for writing
      statements in check mode.
  returned: always
  type: bool
statement:
  description:
    - C(kind) (SELECT, INSERT ...), C(writes), C(why) (what makes it writing), C(transaction)
      (C(read only) or C(read write)), C(rolled_back) (always true), C(role) (O(explain_role), or null
      for the login's role) and C(role_wall) (with O(explain_role), C(security definer) or C(set role
      only) with the reason).
  returned: always
  type: dict
total_time_ms:
  description: Planning plus execution time in ms; null without ANALYZE.
  returned: always
  type: float
planning_time_ms:
  description: Planning time in ms.
  returned: always
  type: float
execution_time_ms:
  description: Execution time in ms; null without ANALYZE.
  returned: always
  type: float
total_cost:
  description: The planner's estimated total cost of the top node.
  returned: always
  type: float
buffers:
  description:
    - Blocks of the statement, C(shared_hit), C(shared_read), C(shared_dirtied), C(shared_written),
      C(local_hit), C(local_read), C(temp_read), C(temp_written), C(cache_hit_ratio), and of planning
      (C(planning_shared_hit), C(planning_shared_read)).
  returned: always
  type: dict
findings:
  description: Findings in the shared format, most severe first.
  returned: always
  type: list
  elements: dict
rules_not_run:
  description: Rule id to the reason it did not run (without ANALYZE).
  returned: always
  type: dict
comparison:
  description:
    - With O(compare_to). C(before) and C(after) (planning, execution and total times, cost), C(ratio)
      (after / before of total time, or of cost when either run was not analyzed; C(basis) says which),
      C(faster) (by time, from one run, so noisy on a busy host), C(improved) (fewer shared buffers
      touched, independent of load; by time when buffers were not counted), C(buffers),
      C(shape_changed) and C(shape_changes) (relations whose node types changed, with C(before)
      and C(after)).
  returned: when compare_to is set
  type: dict
msg:
  description: In check mode, says when a writing statement was planned without ANALYZE.
  returned: sometimes
  type: str
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.query import explain as ex
from ansible_collections.dbarch.postgresql.plugins.module_utils.query import plans
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import redact
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


ARGUMENT_SPEC = dict(
    query=dict(type="str", required=True),
    params=dict(type="list", elements="raw", default=[]),
    analyze=dict(type="bool", default=True),
    compare_to=dict(type="dict"),
    thresholds=dict(type="dict", default={}),
)


def main():
    module = DbarchModule(
        argument_spec=ARGUMENT_SPEC, findings=True, user_statements=True, supports_check_mode=True
    )
    p = module.params
    try:
        info = ex.classify(p["query"])
        plans.thresholds(p["thresholds"])
        ex.check_params(info, p["params"])
        module.suppress([])
        if p["compare_to"] is not None:
            plans.document(p["compare_to"].get("plan", p["compare_to"]))
    except plans.PlanError as exc:
        module.fail_from(exc, msg_prefix="compare_to or thresholds")
    except DbarchError as exc:
        module.fail_from(exc)
    analyze = p["analyze"] and not (module.check_mode and info["writes"])

    def work(session):
        role = None
        if p["explain_role"]:
            role = ex.check_explain_role(session, p["explain_role"], p["allow_superuser_statements"])
        return ex.run(
            session,
            info,
            p["params"],
            analyze=analyze,
            statement_timeout=p["statement_timeout"],
            role=role,
            retry_read_write=not module.check_mode,
        )

    (doc, transaction), queries = module.run(work)
    doc = redact.walk(doc)
    statement = dict(
        kind=info["kind"],
        writes=info["writes"],
        why=info["why"],
        transaction=transaction,
        rolled_back=True,
        role=p["explain_role"] or None,
        role_wall=redact.statement(getattr(module.session, "role_wall", None)) if p["explain_role"] else None,
    )
    found, _unused = module.suppress(plans.analyze(doc, p["thresholds"]))
    result = dict(
        plan=doc,
        analyzed=analyze,
        statement=statement,
        buffers=plans.buffers(doc),
        rules_not_run=plans.rules_not_run(doc),
        queries=queries,
    )
    result.update(plans.timing(doc))
    if p["analyze"] and not analyze:
        result["msg"] = "Check mode: the %s statement writes, so it was planned without ANALYZE." % (
            info["kind"]
        )
    if p["compare_to"] is not None:
        result["comparison"] = plans.compare(p["compare_to"], doc)
    module.exit_findings(found, **result)


if __name__ == "__main__":
    main()
