#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: schema_review
short_description: Review a PostgreSQL schema (live or DDL files) against design rules
version_added: "0.1.0"
description:
  - Reviews the schema of a live database, or DDL files that exist in no database yet (O(src)),
    with the same rules and the same output either way.
  - "Rules: table without primary key, foreign key without a supporting index, foreign key type
    mismatch, C(*_id) column without a foreign key (heuristic, with its confidence), duplicate,
    redundant and invalid indexes, unique indexes standing in for UNIQUE constraints,
    timestamp without time zone, char(n), money, serial instead of identity, json instead of jsonb,
    varchar(n), floating point for money, int4 primary keys on tables expected to grow, enum-like
    text columns without CHECK or lookup table, composition children without a decided ON DELETE,
    naming convention, reserved words, identifiers over 63 bytes, inconsistent foreign key column
    names, plural/singular table names (by policy), repeating groups and arrays of keys, and
    partitions without a foreign key their sibling partitions have (C(SR-PART-001))."
  - "Partitions are reviewed too (foreign keys without an index, duplicate, redundant and invalid
    indexes). A problem found on every partition of a table is one finding on the partitioned table,
    with C(evidence.partitions) (the count) and C(evidence.partition_names); a problem on only some
    partitions is reported on each of them. A partial index counts for a foreign key when PostgreSQL's
    own check (C(SELECT 1 FROM ONLY child WHERE fk = $1 FOR KEY SHARE)) can use it, that is when its
    predicate is C(fk IS NOT NULL) (or ANDs/ORs of such terms); a hash index counts for a one-column
    foreign key."
  - "C(SR-TYPE-009) (enum-like text) is a suggestion. With O(profile=true) it needs the sampled values
    to look like codes from a small closed set (short, one case, no space or slash, few distinct values
    compared with the sample, each repeated, none new in the second half of the sample): provinces or
    MIME types are not flagged. Without sampled rows it judges by the column name only, at severity
    info."
  - "With O(profile=true) on a live database it also samples rows and reports nullable columns
    that hold no NULL (C(SR-CONS-001)), comma-separated lists in text columns (C(SR-NORM-003)) and
    functional dependencies between non-key columns or on part of a composite key (C(SR-NORM-004))."
  - With O(query_patterns) it plans each query with EXPLAIN and proposes an index where a filtered
    sequential scan serves it (C(SR-QUERY-001)).
  - Each finding has a stable rule id (such as C(SR-KEY-001)), a severity, the object, what is wrong,
    why it matters, the SQL that fixes it and the evidence. Pass them to M(dbarch.postgresql.report).
  - Read-only. The live path reads the catalog with a fixed number of queries in one read-only
    transaction and takes no lock on user tables.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  src:
    description:
      - DDL files, or folders of C(.sql) files, to review instead of a live database. Absolute paths; a
        relative one is refused.
      - When set, no connection is made and the connection options are ignored.
      - Needs the Python package C(pglast) on the host that runs the module.
    type: list
    elements: path
  schemas:
    description:
      - Schemas to review. Default is every schema but the system ones.
    type: list
    elements: str
  policy:
    description:
      - Settings of the rules. Keys are C(disabled_rules) (rule ids, shell-style patterns such as
        C(SR-NAME-*)), C(severities) (rule id to severity), C(naming) (object kind C(table), C(view),
        C(column), C(index) or C(constraint) to a regular expression every name must match in full;
        null disables the check for that kind), C(fk_column_pattern) (regular expression of column
        names expected to be foreign keys; group C(stem) names the table), C(ordinal_name_pattern)
        (regular expression searched in that stem; when it matches and no table of that name exists,
        the column is an ordinal such as C(sequence_id) or C(line_id), not a missing foreign key;
        null turns this off), C(money_name_pattern),
        C(int4_pk_max_rows) (default 100000000), C(repeating_group_min) (default 3),
        C(table_names) (C(plural), C(singular) or C(any), the default, which turns C(SR-NAME-005) off)
        and C(enum_name_pattern) (column names that hold a code from a fixed set, for C(SR-TYPE-009)).
      - An unknown key or an invalid pattern fails the task with the list of valid ones.
    type: dict
    default: {}
  denormalization_decisions:
    description:
      - Documented design decisions. Each item has C(table) (C(name) or C(schema.name)), C(columns)
        (list; empty means the whole table), a required C(reason) and a C(trade_off).
      - They suppress the matching type and normalization findings (C(SR-TYPE-*), C(SR-NORM-*)),
        which stay in the output marked suppressed with the reason, and are listed in the summary.
    type: list
    elements: dict
    default: []
  expected_rows:
    description:
      - Expected number of rows per table (C(name) or C(schema.name)), for rules that depend on
        growth (int4 primary keys). Used together with the live row estimate, and alone for DDL.
    type: dict
    default: {}
  profile:
    description:
      - Sample the rows of each table (live database only) and run the rules that need data
        (C(SR-CONS-001), C(SR-NORM-003), C(SR-NORM-004)). Without it those rules do not run, and the
        summary says so.
      - Read-only; one SELECT per table in a READ ONLY transaction, with O(statement_timeout) or 30s
        when that is unset. The rows are a random sample (C(TABLESAMPLE BERNOULLI) up to 256 MiB,
        C(TABLESAMPLE SYSTEM) above, then C(ORDER BY random()); every row of tables smaller than
        O(sample_rows)), never the first rows of the table. Tables over 10 GiB are skipped and listed in
        C(summary.profile.skipped).
      - C(SR-CONS-001) (SET NOT NULL) is certain only when the whole table was checked; on tables of up
        to 200,000 estimated rows the NULLs of the candidate columns are counted with one more scan
        (no proposal when there are some). On bigger tables the finding says it comes from a sample of
        N of about M rows and its fix starts with a precheck and the safe sequence (CHECK ... NOT VALID,
        VALIDATE, SET NOT NULL), which stops harmlessly if a NULL exists.
      - Ignored when reviewing DDL files (O(src)).
    type: bool
    default: false
  sample_rows:
    description:
      - At most this many rows are sampled per table when O(profile=true). Evidence names how many were
        read, of about how many, and whether the result is exact (whole table) or sampled.
    type: int
    default: 10000
  query_patterns:
    description:
      - Queries the application will run, as SQL strings or dicts with C(name) and C(sql).
      - Only SELECT statements are accepted (checked with pglast); each is planned with
        C(EXPLAIN (VERBOSE, FORMAT JSON)) on the live database, never run or analyzed.
      - A sequential scan with a filter on a table of at least 1000 rows gets a proposed index
        (C(SR-QUERY-001)). When the hypopg extension is installed in the database, the index is created
        hypothetically, the query planned again and the estimated costs reported; it is proposed only
        if the planner uses it. Without hypopg the evidence says the gain is not proven.
      - Ignored when reviewing DDL files (O(src)). Needs the Python package pglast.
    type: list
    elements: raw
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
  - dbarch.postgresql.attributes.read_only
seealso:
  - module: dbarch.postgresql.catalog_info
  - module: dbarch.postgresql.report
"""

EXAMPLES = r"""
- name: Review the live schema of the shop database
  dbarch.postgresql.schema_review:
    login_db: shop
    schemas: [public]
    expected_rows:
      orders: 500000000
    profile: true
    sample_rows: 20000
    query_patterns:
      - name: orders of a user
        sql: SELECT * FROM orders WHERE user_id = '00000000-0000-0000-0000-000000000000'
    denormalization_decisions:
      - table: users
        columns: [phone1, phone2, phone3]
        reason: At most three numbers, by contract
        trade_off: No index on a phone number
  register: review

- name: Write the review as Markdown, JSON, JUnit and SARIF
  dbarch.postgresql.report:
    name: schema_review
    findings: "{{ review.findings }}"
    summary: "{{ review.summary }}"

- name: Review the DDL of a pull request in CI and fail on high findings
  dbarch.postgresql.schema_review:
    src:
      - "{{ playbook_dir }}/../db/migrations"
    policy:
      disabled_rules: [SR-TYPE-006]
      naming:
        index: "[a-z][a-z0-9_]*_(idx|key|pkey)"
    fail_on: high
    suppressions:
      - rule: SR-KEY-001
        object: public.audit_log
        reason: Append-only log, rows are never addressed one by one
"""

RETURN = r"""
findings:
  description:
    - The findings, most severe first, each with C(rule), C(title), C(severity), C(object), C(message),
      C(why), C(fix), C(evidence), C(references), C(suppressed) and, when suppressed, C(suppression_reason).
  returned: always
  type: list
  elements: dict
  sample:
    - rule: SR-KEY-002
      title: Foreign key without a supporting index
      severity: medium
      object: public.order_items.product_id
      message: Foreign key order_items_product_id_fkey on public.order_items (product_id) has no index ...
      fix: CREATE INDEX CONCURRENTLY order_items_product_id_idx ON order_items (product_id);
      evidence: {constraint: order_items_product_id_fkey, columns: [product_id]}
      suppressed: false
summary:
  description:
    - C(source) (C(database) or C(ddl)), C(database), C(counts) by severity (with C(suppressed) and
      C(total)), C(tables_reviewed), C(partitions_reviewed), C(views_reviewed), C(rules_run),
      C(rules_disabled),
      C(denormalization_decisions) (each with the findings it suppressed), C(unused_suppressions),
      C(rules_not_run) (rule id to the reason, such as profile or query_patterns not set), C(profile)
      (C(enabled), C(sample_rows), C(tables_sampled), C(rows_sampled), C(skipped)) and, with
      O(query_patterns), C(query_patterns) (C(checked), C(errors)).
  returned: always
  type: dict
  sample: {source: database, tables_reviewed: 4, counts: {high: 0, medium: 1, total: 1}}
queries:
  description: The SQL the module ran (empty when reviewing DDL files).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import profiling
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import query_patterns as qp
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import schema_rules
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.catalog import snapshot
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


def ddl_catalog(module, paths, schemas):
    try:
        from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import ddl  # noqa: PLC0415 - optional
    except ImportError as exc:
        module.fail_json(
            msg="Reviewing DDL files (src) needs the DDL parser and the Python package pglast "
            "on the host that runs the module (pip install pglast): %s" % exc
        )
    try:
        cat = ddl.catalog_from_paths(paths)
    except Exception as exc:  # the parser's own errors name the file and line
        module.fail_json(msg="Cannot read the DDL in %s: %s" % (", ".join(paths), exc))
    if schemas:
        for key in [k for k in cat.tables if k[0] not in schemas]:
            del cat.tables[key]
    return cat


ARGUMENT_SPEC = dict(
    src=dict(type="list", elements="path"),
    schemas=dict(type="list", elements="str"),
    policy=dict(type="dict", default={}),
    denormalization_decisions=dict(type="list", elements="dict", default=[]),
    expected_rows=dict(type="dict", default={}),
    profile=dict(type="bool", default=False),
    sample_rows=dict(type="int", default=profiling.DEFAULT_SAMPLE_ROWS),
    query_patterns=dict(type="list", elements="raw"),
)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, findings=True, supports_check_mode=True)
    p = module.params
    module.require_absolute("src")
    queries = []
    profile = query_results = None
    patterns = None
    if p["sample_rows"] < 1:
        module.fail_json(msg="sample_rows must be at least 1 (got %d)." % p["sample_rows"])
    if p["query_patterns"] and not p["src"]:
        try:
            patterns = qp.normalize(p["query_patterns"])
        except DbarchError as exc:
            module.fail_from(exc)
    if p["src"]:
        cat = ddl_catalog(module, p["src"], p["schemas"])
    else:

        def work(session):
            cat = snapshot(session, schemas=p["schemas"], column_stats=False)
            prof = qres = None
            if p["profile"]:
                prof = profiling.sample(session, cat, p["sample_rows"], p["statement_timeout"])
            if patterns is not None:
                qres = qp.check(session, cat, patterns)
            return cat, prof, qres

        (cat, profile, query_results), queries = module.run(work)
    try:
        found, summary = schema_rules.review(
            cat,
            policy=p["policy"],
            denormalization_decisions=p["denormalization_decisions"],
            expected_rows=p["expected_rows"],
            suppressions=p["suppressions"],
            profile=profile,
            query_results=query_results,
        )
    except DbarchError as exc:
        module.fail_from(exc, queries=queries)
    if p["src"] and (p["profile"] or p["query_patterns"]):
        summary["notes"] = ["profile and query_patterns need a live database; they were ignored for src."]
    module.exit_findings(found, summary=summary, queries=queries)


if __name__ == "__main__":
    main()
