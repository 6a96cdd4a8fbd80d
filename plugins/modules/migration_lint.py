#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: migration_lint
short_description: Lint migration SQL for statements that lock or rewrite production tables
version_added: "0.1.0"
description:
  - Parses migration files (or any SQL) with the PostgreSQL parser (pglast) and reports each statement
    that takes a long or blocking lock, rewrites a table, fails on a non-empty table, or breaks code that
    is still running, with the safe multi-step alternative.
  - Each finding gives the lock the statement takes (C(evidence.lock) of each of RV(findings), such as
    C(ACCESS EXCLUSIVE), C(SHARE ROW EXCLUSIVE), C(SHARE)), whether it rewrites the table
    (C(evidence.rewrites_table)), the statement, and its file and line (C(location)).
  - "Rules (stable ids): C(ML-000) SQL that does not parse; C(ML-001) column added with a volatile default
    such as random, gen_random_uuid or clock_timestamp (now and constants are fine);
    C(ML-002) column added NOT NULL without a default; C(ML-003) foreign key without NOT VALID;
    C(ML-004) CHECK without NOT VALID; C(ML-005) SET NOT NULL; C(ML-006) CREATE INDEX without
    CONCURRENTLY; C(ML-007) DROP INDEX without CONCURRENTLY; C(ML-008) REINDEX without CONCURRENTLY;
    C(ML-009) column type change; C(ML-010) UNIQUE, PRIMARY KEY or EXCLUDE constraint that builds its index
    under ACCESS EXCLUSIVE (not C(USING INDEX)); C(ML-011) column renamed; C(ML-012) table renamed;
    C(ML-013) column dropped; C(ML-014) table dropped; C(ML-015) database dropped; C(ML-016) 32-bit
    integer primary key, or serial/smallserial column; C(ML-017) serial instead of identity;
    C(ML-018) varchar(n); C(ML-019) timestamp
    without time zone; C(ML-020) char(n); C(ML-021) no C(lock_timeout) before a statement that takes a
    blocking lock; C(ML-022) no C(statement_timeout) before a long locking statement; C(ML-023)
    CONCURRENTLY (or VACUUM, CREATE DATABASE...) inside a transaction, including a file that a migration
    runner wraps in one because it also holds transactional statements; C(ML-024) nested BEGIN,
    COMMIT without BEGIN, or a file that ends inside a transaction; C(ML-025) identifier over 63 bytes;
    C(ML-026) column added as serial, identity or stored generated (rewrite); C(ML-027) SET LOGGED,
    SET UNLOGGED, SET TABLESPACE or SET ACCESS METHOD (rewrite); C(ML-028) VACUUM FULL or CLUSTER;
    C(ML-029) TRUNCATE; C(ML-030) enum value added inside a transaction; C(ML-031) suppression comment
    without a reason or naming an unknown rule; C(ML-032) DROP NOT NULL."
  - "Suppress a finding for one statement with a comment just before it, or after it on the same line:
    C(-- migration_lint: ignore ML-004 reason: the table is empty at this point). The finding stays in
    the output, marked suppressed with the reason. A comment without a reason suppresses nothing and is
    reported as C(ML-031)."
  - A table created in the same file is known to be empty, so findings on it are C(info).
  - With O(use_connection=true) the module reads the size of every table from C(pg_class) (one query,
    no lock on user tables) and moves severities by size; see O(small_table_bytes) and O(large_table_bytes).
    It also reads the C(CHECK (column IS NOT NULL)) constraints from C(pg_constraint) (one query); once
    such a constraint is valid, C(SET NOT NULL) on the column does not scan the table (PostgreSQL 12+).
    Without a connection the default severities apply.
  - Read-only; nothing is executed from the linted SQL.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  src:
    description:
      - Migration files, or folders whose C(.sql) files are linted in name order.
      - Files are read on the host that runs the module. Absolute paths; a relative one is refused.
      - One of O(src) and O(sql) is required.
    type: list
    elements: path
  sql:
    description:
      - SQL text to lint, reported as file C(<sql>).
    type: str
  exclude_rules:
    description:
      - Rule ids, or shell-style patterns such as C(ML-01*), to leave out (for example C(ML-021) and
        C(ML-022) when the migration runner sets C(lock_timeout) and C(statement_timeout) itself).
      - A pattern that matches no rule fails the task.
    type: list
    elements: str
    default: []
  use_connection:
    description:
      - Read table sizes from the database given by the connection options, and scale severities with
        them, and its valid C(CHECK (column IS NOT NULL)) constraints. Without it no connection is made
        and the connection options are ignored.
      - Sizes come from C(pg_class.relpages) and C(reltuples) as of the last VACUUM or ANALYZE; a table
        never vacuumed or analyzed keeps the default severities.
    type: bool
    default: false
  small_table_bytes:
    description:
      - With sizes known, a table under this size and under O(small_table_rows) rows is small, and a lock
        or rewrite on it is C(low) (C(info) when it is empty).
    type: int
    default: 10485760
  small_table_rows:
    description:
      - Row count under which a table (also under O(small_table_bytes)) is small.
    type: int
    default: 10000
  large_table_bytes:
    description:
      - With sizes known, a table of this size or more (or O(large_table_rows) rows or more) is large, and a
        lock that scans it is C(high), a rewrite of it C(critical).
    type: int
    default: 1073741824
  large_table_rows:
    description:
      - Row count from which a table is large.
    type: int
    default: 1000000
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
  - dbarch.postgresql.attributes.read_only
notes:
  - Needs the Python package C(pglast) on the host that runs the module.
  - psycopg2 is needed only with O(use_connection=true).
seealso:
  - module: dbarch.postgresql.schema_review
  - module: dbarch.postgresql.report
  - name: Explicit locking in PostgreSQL
    description: The lock modes and what each one blocks.
    link: https://www.postgresql.org/docs/current/explicit-locking.html
"""

EXAMPLES = r"""
- name: Lint the migrations of a pull request and fail on high findings
  dbarch.postgresql.migration_lint:
    src:
      - "{{ playbook_dir }}/../db/migrations"
    fail_on: high
  delegate_to: localhost

- name: Lint against the real table sizes of production
  dbarch.postgresql.migration_lint:
    src: [/srv/app/migrations/V42__orders_status.sql]
    use_connection: true
    login_host: db1.example.com
    login_db: shop
    large_table_bytes: 5368709120
    exclude_rules: [ML-022]
    suppressions:
      - rule: ML-016
        object: public.countries.*
        reason: About 250 rows, ever
  register: lint

- name: Write the findings as Markdown, JSON, JUnit and SARIF
  dbarch.postgresql.report:
    name: migration_lint
    findings: "{{ lint.findings }}"
    summary: "{{ lint.summary }}"

- name: Lint a statement given inline
  dbarch.postgresql.migration_lint:
    sql: |
      SET lock_timeout = '5s';
      -- migration_lint: ignore ML-006 reason: audit_log is empty until the feature ships
      CREATE INDEX audit_log_at_idx ON audit_log (at);
"""

RETURN = r"""
findings:
  description:
    - The findings in file and line order, each with C(rule), C(title), C(severity), C(object), C(message),
      C(why), C(fix) (the safe alternative), C(evidence), C(references), C(location) (C(file), C(line)),
      C(suppressed) and, when suppressed, C(suppression_reason).
    - C(evidence) holds C(lock) (the lock mode, or null), C(rewrites_table), C(statement), C(table), and
      with sizes C(table_bytes), C(table_rows) and C(size_note) (why the severity moved).
  returned: always
  type: list
  elements: dict
  sample:
    - rule: ML-006
      title: CREATE INDEX without CONCURRENTLY
      severity: medium
      object: public.orders
      message: CREATE INDEX orders_status_idx on public.orders without CONCURRENTLY blocks every write ...
      fix: CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status);
      evidence: {lock: SHARE, rewrites_table: false, statement: "CREATE INDEX orders_status_idx ..."}
      location: {file: db/migrations/V3__status_index.sql, line: 4}
      suppressed: false
summary:
  description:
    - C(counts) by severity (with C(suppressed) and C(total)), C(files) (each with C(file), C(statements)
      and C(findings)), C(file_count), C(statements), C(rules) (the rules run), C(table_sizes) (C(database)
      or C(none)), C(table_sizes_known), C(thresholds) and C(unused_suppressions).
  returned: always
  type: dict
  sample: {file_count: 3, statements: 12, counts: {high: 1, medium: 2, total: 3, suppressed: 1}}
queries:
  description: The SQL the module ran (empty without O(use_connection)).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import migration_lint as ml
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

THRESHOLDS = ("small_table_bytes", "small_table_rows", "large_table_bytes", "large_table_rows")


ARGUMENT_SPEC = dict(
    src=dict(type="list", elements="path"),
    sql=dict(type="str"),
    exclude_rules=dict(type="list", elements="str", default=[]),
    use_connection=dict(type="bool", default=False),
    small_table_bytes=dict(type="int", default=10485760),
    small_table_rows=dict(type="int", default=10000),
    large_table_bytes=dict(type="int", default=1073741824),
    large_table_rows=dict(type="int", default=1000000),
)


def main():
    module = DbarchModule(
        argument_spec=ARGUMENT_SPEC,
        findings=True,
        supports_check_mode=True,
        required_one_of=[("src", "sql")],
    )
    p = module.params
    module.require_absolute("src")
    try:
        ml.require_pglast()
    except ImportError as exc:
        module.fail_json(msg=str(exc))
    thresholds = dict((k, p[k]) for k in THRESHOLDS)
    try:
        ml.check_rule_patterns(p["exclude_rules"])
        ml.normalize_thresholds(thresholds)
    except DbarchError as exc:
        module.fail_from(exc)
    if thresholds["small_table_bytes"] > thresholds["large_table_bytes"]:
        module.fail_json(msg="small_table_bytes must not be larger than large_table_bytes.")
    sizes, checks, queries = None, None, []
    if p["use_connection"]:
        (sizes, checks), queries = module.run(ml.database_facts)
    try:
        found, summary = ml.lint(
            paths=p["src"],
            sql=p["sql"],
            table_sizes=sizes,
            not_null_checks=checks,
            exclude_rules=p["exclude_rules"],
            thresholds=thresholds,
        )
    except DbarchError as exc:
        module.fail_from(exc, queries=queries)
    _found, unused = module.suppress([f for f in found if not f.suppressed], queries=queries)
    summary["table_sizes"] = "database" if sizes is not None else "none"
    summary["unused_suppressions"] = unused
    summary["counts"] = fnd.counts(found)
    module.exit_findings(found, summary=summary, queries=queries)


if __name__ == "__main__":
    main()
