#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: index_advice_info
short_description: Propose indexes for a workload, prove them with hypopg, review the existing indexes
version_added: "0.1.0"
description:
  - Plans every statement of the workload with C(EXPLAIN (VERBOSE, FORMAT JSON)), never with ANALYZE, in one
    READ ONLY transaction that is rolled back. The workload is the top O(limit) statements of
    C(pg_stat_statements) by total time, or O(queries).
  - Statements with C($1) placeholders (as C(pg_stat_statements) records them) get a generic plan,
    C(EXPLAIN (GENERIC_PLAN)) on PostgreSQL 16 and later; before 16 the statement is prepared and
    C(EXPLAIN EXECUTE) runs with NULLs under C(plan_cache_mode = force_generic_plan). A statement whose
    parameter types cannot be inferred is skipped, with the reason in RV(not_planned).
  - Candidate indexes come from the plans, sequential scans with a filter, the large side of a join whose
    other side is small, and sequential scans sorted under a LIMIT. Equality columns come first, then one
    range column, else the sort keys. A constant predicate becomes the C(WHERE) of a partial index only
    for a rare value (at most 2% of the rows per C(pg_stats), or C(null_frac) for C(IS NULL)) or the one
    value the workload ever compares the column with; several literals on one column give one index
    with that column as a key, not one partial index each. An index whose key is a prefix of another
    proposed one is merged into it. An index that already leads with the columns is not proposed again.
  - A scan of a partition proposes the index on the partitioned table (C(create_sql) without
    C(CONCURRENTLY), which PostgreSQL refuses there), costed over all partitions; hypopg creates it on the
    parent. Before 16, a generic plan whose NULL parameters pruned the partitions is taken again with
    C(enable_partition_pruning = off).
  - With the hypopg extension installed in the database, each candidate is created hypothetically and the
    statements it serves planned again. It is proposed only when the planner uses it and the planned cost,
    weighted by each statement's total time, falls by O(min_cost_saving). Without hypopg the proposals rest
    on predicate heuristics and say so (C(hypopg=false), C(proven=false)).
  - The write cost is weighed from the table statistics, updates and the share of HOT updates, and the
    columns the workload's UPDATE statements set. An index on such columns makes those updates non-HOT;
    the proposal says so in C(write_cost_note) and its score is lowered.
  - "Findings: C(IA-INDEX-001) proposed index, C(IA-UNUSED-001) index unused since the statistics reset
    (primary key, unique, constraint and foreign key indexes excluded), C(IA-DUP-001) duplicate index,
    C(IA-REDUNDANT-001) index that is a prefix of another, C(IA-INVALID-001) invalid index, C(IA-FK-001)
    foreign key without an index. The last four are the schema review's rules on the same catalog."
  - "Whose rights statements are planned with: anyone who can connect fills C(pg_stat_statements), and
    planning evaluates the immutable functions a statement calls (constant folding), outside the reach
    of the READ ONLY transaction and its rollback (C(COPY ... TO PROGRAM) as a superuser). So each statement
    of C(pg_stat_statements) is planned as the role that ran it (C(SET LOCAL ROLE), quoted), or as
    O(explain_role) when given; a statement a superuser ran is not planned (it is listed in RV(not_planned)
    with the reason) unless O(allow_superuser_statements). Statements of O(queries) are yours and are
    planned as the login unless O(explain_role) is given."
  - "A statement planned as another role runs inside a temporary C(SECURITY DEFINER) function owned by
    that role (created in C(pg_temp) and dropped after), where PostgreSQL refuses C(RESET ROLE): a plain
    C(SET ROLE) would not stop a function that resets it while the login is a superuser. Where the
    function cannot be created (a hot standby) the module falls back to C(SET LOCAL ROLE) and says so in
    C(summary.role_wall); there, run it as a login without SUPERUSER (C(pg_read_all_stats) to read the
    workload, membership in the workload's roles) if untrusted roles can connect."
  - Password literals in statement text (C(PASSWORD '...'), C(password=...) of connection strings) are
    replaced by C(********) in everything returned.
  - Read-only; never reports a change. Needs the Python package C(pglast) where the module runs.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  queries:
    description:
      - The workload, instead of C(pg_stat_statements). Each item is a SQL string, or a dict with C(sql),
        C(name) and C(weight) (default 1; the share of the workload the statement stands for).
      - Statements may use C($1) placeholders. They are planned, never run.
    type: list
    elements: raw
  min_cost_saving:
    description:
      - The share by which a hypothetical index must cut the planned cost of the statements it serves
        (V(0.3) is 30%), above 0 and at most 1 (V(1.0) included). Used only with hypopg.
    type: float
    default: 0.3
  limit:
    description:
      - Size of the workload read from C(pg_stat_statements), the top statements by total time of the
        connected database (statements on system catalogs and utility statements left out). V(0) takes all.
    type: int
    default: 20
  schemas:
    description:
      - Only tables and indexes of these schemas. Default every user schema.
    type: list
    elements: str
  explain_role:
    description:
      - Plan every statement as this role (C(SET LOCAL ROLE)), for example a role without SUPERUSER that
        has SELECT on the workload's tables. The login must be a member of it (a superuser is).
      - Without it, statements of C(pg_stat_statements) are planned as the role that ran them.
      - A superuser is refused unless O(allow_superuser_statements).
    type: str
  allow_superuser_statements:
    description:
      - Plan the C(pg_stat_statements) statements that a superuser ran (as that superuser), and accept a
        superuser as O(explain_role). Off by default, since a function in such a statement would run with a
        superuser's rights.
    type: bool
    default: false
  covering:
    description:
      - Add the other columns the scan returns as C(INCLUDE) columns (at most four, and never more than 32
        columns in all with the key), so an index-only scan
        can answer the statement.
    type: bool
    default: false
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
  - dbarch.postgresql.attributes.read_only
seealso:
  - module: dbarch.postgresql.query_stats_info
  - module: dbarch.postgresql.explain
  - module: dbarch.postgresql.schema_review
"""

EXAMPLES = r"""
- name: Index advice for the top 20 statements of pg_stat_statements
  dbarch.postgresql.index_advice_info:
    login_db: shop
  register: advice

- name: Show the proposals
  ansible.builtin.debug:
    msg: "{{ advice.proposals | map(attribute='create_sql') | list }}"

- name: Advice for given statements, a 50% saving required
  dbarch.postgresql.index_advice_info:
    login_db: shop
    min_cost_saving: 0.5
    queries:
      - name: orders of a customer
        sql: SELECT * FROM shop.orders WHERE customer_id = $1
        weight: 10
      - SELECT id FROM shop.orders WHERE status = 'new' ORDER BY created_at LIMIT 50

- name: Plan the pg_stat_statements workload as a role without SUPERUSER
  dbarch.postgresql.index_advice_info:
    login_db: shop
    explain_role: advice_reader  # CREATE ROLE advice_reader NOLOGIN; GRANT SELECT ON ALL TABLES ...
"""

RETURN = r"""
proposals:
  description:
    - Indexes to build, best score first. Each has C(table), C(columns) (key columns in order, C(DESC) where
      the sort needs it), C(where) (partial index predicate or null), C(include), C(name), C(create_sql)
      (C(CREATE INDEX CONCURRENTLY ...)), C(reason) (C(filter), C(join) or C(sort)), C(queries) (the
      statements served, each with C(name), C(sql), C(planned_as) (the role it was planned as, null for the
      login), C(cost_before) and, with hypopg, C(cost_after) and
      C(uses_index)), C(cost_before), C(cost_after), C(saving) (share, with hypopg), C(hypopg), C(proven),
      C(method) (C(hypopg) or C(heuristic)), C(write_cost_note), C(merged) (names of the shorter candidates
      folded into this one), C(score) and C(evidence) (with C(partitioned)).
  returned: always
  type: list
  elements: dict
rejected:
  description:
    - Candidates not proposed, each as a proposal with C(rejected_because) (the planner does not use the
      hypothetical index, the saving is under O(min_cost_saving), or the filter is not selective).
  returned: always
  type: list
  elements: dict
findings:
  description: Findings in the shared format (C(IA-*) rules), most severe first.
  returned: always
  type: list
  elements: dict
not_planned:
  description:
    - Workload statements not planned, each with C(name), C(sql), C(user) (the role that ran it, from
      C(pg_stat_statements)) and C(reason), statements of superusers skipped (C(superuser=true); see
      O(allow_superuser_statements)) and those the planner refused.
  returned: always
  type: list
  elements: dict
summary:
  description:
    - C(database), C(workload) (C(pg_stat_statements) or C(queries)), C(workload_usable), C(workload_reason),
      C(statements), C(statements_planned), C(statements_skipped), C(superuser_statements_skipped),
      C(planned_as) (whose rights the statements were planned with), C(role_wall) (C(security_definer),
      the roles planned behind a SECURITY DEFINER function, and C(set_role_only), role to the reason it
      could not be created), C(generic_plan) (how placeholders were
      planned), C(hypopg), C(hypopg_version), C(min_cost_saving), C(candidates), C(proposals), C(rejected),
      C(stats_reset) (of C(pg_stat_database), the start of the index usage counters) and C(counts).
  returned: always
  type: dict
msg:
  description: A one-line summary.
  returned: always
  type: str
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.query import index_advice as ia
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


ARGUMENT_SPEC = dict(
    queries=dict(type="list", elements="raw"),
    min_cost_saving=dict(type="float", default=ia.DEFAULT_MIN_COST_SAVING),
    limit=dict(type="int", default=ia.DEFAULT_LIMIT),
    schemas=dict(type="list", elements="str"),
    covering=dict(type="bool", default=False),
)


def main():
    module = DbarchModule(
        argument_spec=ARGUMENT_SPEC, findings=True, user_statements=True, supports_check_mode=True
    )
    p = module.params
    if p["limit"] < 0:
        module.fail_json(msg="limit must be 0 (all) or more, got %d." % p["limit"])
    try:
        ia.check_min_cost_saving(p["min_cost_saving"])
        ia.normalize_queries(p["queries"])
    except DbarchError as exc:
        module.fail_from(exc)
    result, queries = module.run(
        lambda session: ia.advise(
            session,
            queries=p["queries"],
            min_cost_saving=p["min_cost_saving"],
            limit=p["limit"],
            schemas=p["schemas"],
            covering=p["covering"],
            explain_role=p["explain_role"],
            allow_superuser_statements=p["allow_superuser_statements"],
        )
    )
    found, _unused = module.suppress(result["findings"])
    s = result["summary"]
    result["msg"] = "%d proposal(s) (%s), %d finding(s) from %d statement(s) of %s." % (
        s["proposals"],
        "proven with hypopg" if s["hypopg"] else "heuristic: hypopg is not installed",
        len(found),
        s["statements_planned"],
        s["workload"],
    )
    if not s["workload_usable"]:
        result["msg"] += " The workload could not be read: %s" % s["workload_reason"]
    result["queries"] = queries
    module.exit_findings(found, **result)


if __name__ == "__main__":
    main()
