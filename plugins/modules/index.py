#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: index
short_description: Create or drop an index concurrently, with lock_timeout, retries, progress and plan check
version_added: "0.1.0"
description:
  - Creates an index with C(CREATE INDEX CONCURRENTLY) (outside a transaction, under O(lock_timeout)), or
    drops one with C(DROP INDEX CONCURRENTLY IF EXISTS). Writes to the table keep going while it builds.
  - "Idempotent: the wanted index is compared with the existing index of that name by PostgreSQL itself. The
    wanted definition is built on an empty temporary copy of the table's columns inside a transaction that is
    rolled back, and both are read back with C(pg_get_indexdef), so an expression or a predicate written
    differently but meaning the same compares equal. Same definition: C(changed=false). Another definition:
    the module fails, unless O(replace=true)."
  - "O(replace=true): the new definition is built concurrently under a temporary name (C(<name>_dbarch_new)),
    then the old index is dropped concurrently and the new one renamed (C(ALTER INDEX ... RENAME), a short
    SHARE UPDATE EXCLUSIVE lock). Queries keep an index to use through the swap; an index that backs a
    constraint is never replaced. A replace interrupted after its build leaves a valid C(<name>_dbarch_new):
    the next run reuses it (drops the old index if still there, then renames), and drops it first when it
    is invalid or has another definition."
  - An INVALID index of that name (left by an earlier failed C(CREATE INDEX CONCURRENTLY)) is dropped
    concurrently and built again; RV(invalid_dropped) says so.
  - On C(lock_not_available) (SQLSTATE 55P03, O(lock_timeout) ran out) or a deadlock (40P01) the INVALID
    leftover is dropped and the build is retried O(retries) times, waiting O(retry_delay) seconds, then twice
    as long each time. A build that fails for good (for example a unique index on duplicate values) drops the
    INVALID index it left and fails with the SQLSTATE and the server's message. When even the drop cannot
    get its locks, the message says the INVALID index remains; the next run drops and rebuilds it.
  - While the index builds, a second connection reads C(pg_stat_progress_create_index) every 0.1 second;
    RV(progress) has the phases seen and the last blocks and tuples done (with O(log_progress), each phase is
    also written to the module log).
  - O(verify_query) is explained (C(EXPLAIN (FORMAT JSON)), never executed) after the build; its plan must
    scan the index (Index Scan, Index Only Scan or Bitmap Index Scan), else the module fails, and with
    O(rollback_unused=true) first drops the index it built.
  - Column names and every other identifier are quoted by psycopg2; an expression (in O(columns) or O(where))
    is sent only after pglast parsed it as exactly one SQL expression.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  name:
    description:
      - Name of the index, unqualified; the index lives in the schema of O(table).
    type: str
    required: true
  table:
    description:
      - The table, as C(schema.table) or a name found on the search_path (PostgreSQL quoting rules apply).
    type: str
    required: true
  columns:
    description:
      - Key columns, in order. An item that is a column of O(table) is quoted as an identifier; anything else
        must be one SQL expression, such as C(lower(email)), and is put in parentheses.
      - Required with O(state=present).
    type: list
    elements: str
  unique:
    description: Build a UNIQUE index (btree only).
    type: bool
    default: false
  where:
    description: Predicate of a partial index, one SQL expression such as C(deleted_at IS NULL).
    type: str
  include:
    description: Non-key columns (C(INCLUDE)), btree, gist and spgist only.
    type: list
    elements: str
    default: []
  method:
    description: Index access method.
    type: str
    default: btree
    choices: [btree, hash, gist, gin, brin, spgist]
  tablespace:
    description: Tablespace of the index; the database default when not set.
    type: str
  concurrently:
    description:
      - Build and drop with C(CONCURRENTLY), so writes go on. V(false) takes a SHARE lock (writes wait for
        the whole build); partitioned tables need it, as PostgreSQL cannot build their index concurrently.
    type: bool
    default: true
  state:
    description:
      - V(present) builds the index, V(absent) drops it (C(DROP INDEX CONCURRENTLY IF EXISTS)).
      - An index that backs a PRIMARY KEY, UNIQUE or EXCLUSION constraint, or that a FOREIGN KEY references,
        is never dropped; change the constraint with C(ALTER TABLE) instead.
    type: str
    default: present
    choices: [present, absent]
  replace:
    description:
      - When the index exists with another definition, build the wanted one and swap it in (see above).
        V(false) fails instead.
    type: bool
    default: false
  verify_query:
    description:
      - A statement whose plan must use the index after the build (explained, never executed).
      - In check mode it is explained only when the index already exists as wanted.
    type: str
  verify_params:
    description: Values of the C($1), C($2) ... placeholders of O(verify_query), bound on the server.
    type: list
    elements: raw
    default: []
  rollback_unused:
    description:
      - When the plan of O(verify_query) does not use the index, drop it (concurrently) before failing. Only
        an index built by this run is dropped.
    type: bool
    default: false
  lock_timeout:
    description:
      - Longest wait for a lock, for each statement (here with a default, unlike the other modules). Traffic
        queued behind a waiting C(CREATE INDEX) is released when it gives up.
    type: str
    default: 2s
  retries:
    description: How many times a build or drop stopped by O(lock_timeout) or a deadlock is tried again.
    type: int
    default: 5
  retry_delay:
    description: Seconds before the first retry; each following wait is twice as long.
    type: float
    default: 1.0
  log_progress:
    description: Write each build phase (with blocks and tuples done) to the module log (syslog or journal).
    type: bool
    default: false
notes:
  - C(CREATE INDEX CONCURRENTLY) waits for every transaction that could write the table or hold an older
    snapshot; a long transaction makes it wait O(lock_timeout) and retry. Check C(pg_stat_activity) for
    C(idle in transaction) sessions when retries run out.
  - Needs the Python package pglast on the host that runs the module when O(columns) holds an expression, or
    O(where) or O(verify_query) is set.
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Reads the catalog and builds the wanted definition in a rolled-back transaction on a
      temporary table, then returns the statements it would run in RV(planned); the real table is not touched.
  diff_mode:
    support: full
    description: The existing and the wanted definition (pg_get_indexdef form).
seealso:
  - module: dbarch.postgresql.explain
"""

EXAMPLES = r"""
- name: Index the foreign key used by the slow join, and prove the join uses it
  dbarch.postgresql.index:
    login_db: shop
    name: orders_customer_id_idx
    table: public.orders
    columns: [customer_id]
    verify_query: SELECT * FROM orders WHERE customer_id = $1
    verify_params: [42]
    rollback_unused: true

- name: A partial unique index on an expression
  dbarch.postgresql.index:
    login_db: shop
    name: users_email_active_key
    table: users
    columns: ["lower(email)"]
    unique: true
    where: deleted_at IS NULL
    lock_timeout: 500ms
    retries: 10

- name: Change the columns of an existing index without a window without it
  dbarch.postgresql.index:
    login_db: shop
    name: orders_customer_id_idx
    table: public.orders
    columns: [customer_id, created_at]
    replace: true

- name: Drop an index that is never used
  dbarch.postgresql.index:
    login_db: shop
    name: orders_note_idx
    table: public.orders
    state: absent
"""

RETURN = r"""
definition:
  description: The wanted index as C(pg_get_indexdef) writes it (with O(state=present)).
  returned: when state is present
  type: str
before:
  description: The definition of the existing index before the run; null when there was none.
  returned: always
  type: str
actions:
  description: What was done (or would be done in check mode), in words.
  returned: always
  type: list
  elements: str
planned:
  description: The state-changing statements run (or that would run in check mode), in order.
  returned: always
  type: list
  elements: str
invalid_dropped:
  description: An INVALID index of that name (an earlier failed build) was dropped and built again.
  returned: when state is present
  type: bool
replaced:
  description: The index existed with another definition and was replaced (O(replace=true)).
  returned: when state is present
  type: bool
build:
  description: C(started_at) and C(finished_at) (seconds since the epoch) and C(duration_ms) of the build that
    succeeded; null when nothing was built.
  returned: when state is present
  type: dict
attempts:
  description: Every build or drop attempt, with C(outcome) and, for a failure, C(sqlstate) and C(message).
  returned: when something ran
  type: list
  elements: dict
retries:
  description: How many attempts failed and were retried.
  returned: when something ran
  type: int
progress:
  description:
    - C(phases) seen in pg_stat_progress_create_index, in order, C(last) (the last row read, with
      C(blocks_done), C(blocks_total), C(tuples_done), C(tuples_total), C(lockers_done), C(lockers_total)) and
      C(samples). A build shorter than the polling interval may show no phase.
  returned: when an index was built
  type: dict
verify:
  description:
    - With O(verify_query). C(used), C(plan_node) (the first plan node that scans the index, without its
      children), C(nodes), C(top_node) and C(total_cost); or C(skipped) with the reason in check mode.
  returned: when verify_query is set
  type: dict
rolled_back:
  description: The index was dropped because O(verify_query) did not use it (O(rollback_unused)).
  returned: sometimes
  type: bool
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import ansible_pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.query import explain as ex
from ansible_collections.dbarch.postgresql.plugins.module_utils.query import indexes
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import (
    DbarchModule,
    definition_diff,
)
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


ARGUMENT_SPEC = dict(
    lock_timeout=dict(type="str", default="2s"),
    name=dict(type="str", required=True),
    table=dict(type="str", required=True),
    columns=dict(type="list", elements="str"),
    unique=dict(type="bool", default=False),
    where=dict(type="str"),
    include=dict(type="list", elements="str", default=[]),
    method=dict(type="str", default="btree", choices=indexes.METHODS),
    tablespace=dict(type="str"),
    concurrently=dict(type="bool", default=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    replace=dict(type="bool", default=False),
    verify_query=dict(type="str"),
    verify_params=dict(type="list", elements="raw", default=[]),
    rollback_unused=dict(type="bool", default=False),
    retries=dict(type="int", default=5),
    retry_delay=dict(type="float", default=1.0),
    log_progress=dict(type="bool", default=False),
)

REQUIRED_IF = [("state", "present", ["columns"])]


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    p = module.params
    if p["retries"] < 0 or p["retry_delay"] < 0:
        module.fail_json(msg="retries and retry_delay must be 0 or more.")
    verify_info = wanted = None
    try:
        if p["verify_query"]:
            verify_info = ex.classify(p["verify_query"])
            ex.check_params(verify_info, p["verify_params"])
        if p["state"] == "present":
            wanted = indexes.Wanted(
                p["name"],
                p["table"],
                p["columns"],
                unique=p["unique"],
                where=p["where"],
                include=p["include"],
                method=p["method"],
                tablespace=p["tablespace"],
            )
    except ex.ExplainError as exc:
        module.fail_from(exc, msg_prefix="verify_query")
    except DbarchError as exc:
        module.fail_from(exc)

    name = ansible_pg.module_name(module)

    def on_progress(row):
        module.log("index %s: %s" % (p["name"], ", ".join("%s=%s" % kv for kv in sorted(row.items()))))

    def reconnect():
        return pg.connect(p, name)

    builder_options = dict(
        lock_timeout_retries=p["retries"],
        retry_delay=p["retry_delay"],
        connect=reconnect,
        on_progress=on_progress if p["log_progress"] else None,
    )

    def work(session):
        if p["state"] == "present":
            return indexes.present(
                session,
                wanted,
                check_mode=module.check_mode,
                concurrently=p["concurrently"],
                replace=p["replace"],
                verify_info=verify_info,
                verify_params=p["verify_params"],
                rollback_unused=p["rollback_unused"],
                builder_options=builder_options,
            )
        return indexes.absent(
            session,
            p["name"],
            p["table"],
            check_mode=module.check_mode,
            concurrently=p["concurrently"],
            builder_options=builder_options,
        )

    result, queries = module.run(work)
    result["queries"] = queries
    if module._diff:
        after = result.get("definition") if p["state"] == "present" else None
        if result["changed"] or result["before"] != after:
            result["diff"] = definition_diff("index %s" % p["name"], result["before"], after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
