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
    varchar(n), floating point for money, int4 primary keys on tables expected to grow, naming
    convention, reserved words, identifiers over 63 bytes, inconsistent foreign key column names,
    repeating groups and arrays of keys."
  - Each finding has a stable rule id (such as C(SR-KEY-001)), a severity, the object, what is wrong,
    why it matters, the SQL that fixes it and the evidence. Pass them to M(dbarch.postgresql.report).
  - Read-only. The live path reads the catalog with a fixed number of queries in one read-only
    transaction and takes no lock on user tables.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  src:
    description:
      - DDL files, or folders of C(.sql) files, to review instead of a live database.
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
        names expected to be foreign keys; group C(stem) names the table), C(money_name_pattern),
        C(int4_pk_max_rows) (default 100000000) and C(repeating_group_min) (default 3).
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
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
attributes:
  check_mode:
    support: full
    description: Runs normally in check mode; it only reads.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
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
      C(total)), C(tables_reviewed), C(views_reviewed), C(rules_run), C(rules_disabled),
      C(denormalization_decisions) (each with the findings it suppressed) and C(unused_suppressions).
  returned: always
  type: dict
  sample: {source: database, tables_reviewed: 4, counts: {high: 0, medium: 1, total: 1}}
queries:
  description: The SQL the module ran (empty when reviewing DDL files).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dbarch.postgresql.plugins.module_utils import ansible_pg
from ansible_collections.dbarch.postgresql.plugins.module_utils import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils import schema_rules
from ansible_collections.dbarch.postgresql.plugins.module_utils.catalog import snapshot


def ddl_catalog(module, paths, schemas):
    try:
        from ansible_collections.dbarch.postgresql.plugins.module_utils import ddl  # noqa: PLC0415 - optional
    except ImportError as exc:
        module.fail_json(msg="Reviewing DDL files (src) needs the DDL parser and the Python package pglast "
                             "on the host that runs the module (pip install pglast): %s" % exc)
    try:
        cat = ddl.catalog_from_paths(paths)
    except Exception as exc:  # the parser's own errors name the file and line
        module.fail_json(msg="Cannot read the DDL in %s: %s" % (", ".join(paths), exc))
    if schemas:
        for key in [k for k in cat.tables if k[0] not in schemas]:
            del cat.tables[key]
    return cat


def main():
    spec = ansible_pg.connection_argument_spec()
    spec.update(ansible_pg.findings_argument_spec())
    spec.update(
        src=dict(type="list", elements="path"),
        schemas=dict(type="list", elements="str"),
        policy=dict(type="dict", default={}),
        denormalization_decisions=dict(type="list", elements="dict", default=[]),
        expected_rows=dict(type="dict", default={}),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    queries = []
    if p["src"]:
        cat = ddl_catalog(module, p["src"], p["schemas"])
    else:
        cat, queries = ansible_pg.run_with_session(
            module, lambda session: snapshot(session, schemas=p["schemas"], column_stats=False)
        )
    try:
        found, summary = schema_rules.review(
            cat,
            policy=p["policy"],
            denormalization_decisions=p["denormalization_decisions"],
            expected_rows=p["expected_rows"],
            suppressions=p["suppressions"],
        )
    except schema_rules.SchemaRuleError as exc:
        module.fail_json(msg=str(exc), queries=queries)
    result = dict(changed=False, findings=[f.to_dict() for f in found], summary=summary, queries=queries)
    failing = fnd.gate(found, p["fail_on"])
    if failing:
        module.fail_json(msg=fnd.gate_message(failing, p["fail_on"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
