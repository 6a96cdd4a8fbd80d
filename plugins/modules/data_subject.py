#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: data_subject
short_description: GDPR data subject requests, export, erase or rectify every row that refers to one subject
version_added: "0.3.0"
description:
  - One data subject is one value O(value) of the column O(key) in the root table O(table). Every row that
    refers to it is found by following foreign keys from the root down (from the catalog snapshot), through
    as many levels as the schema has.
  - O(action=export) (right of access and portability, GDPR art. 15 and 20) writes the rows as one JSON
    document and one CSV file per table under O(dest) on the host, read in one REPEATABLE READ transaction.
  - O(action=erase) (art. 17) deletes the rows, or anonymizes them per O(policies), in one transaction,
    deepest tables first, so that every foreign key holds afterwards. O(legal_hold) refuses it.
  - O(action=rectify) (art. 16) sets the given O(changes) on the subject's rows, in one transaction.
  - O(dry_run) (the default) and check mode count the rows and change nothing.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  action:
    description: What to do for the subject.
    type: str
    choices: [export, erase, rectify]
    required: true
  table:
    description: The root table (C(schema.table), or C(table) in C(public)).
    type: str
    required: true
  key:
    description: The root table's column that identifies the subject.
    type: str
    required: true
  value:
    description: The subject's key value.
    type: raw
    required: true
  policies:
    description:
      - For erase, table (C(schema.table) or C(table)) to C(delete) (the default for a table not named),
        C(anonymize), or a dict C({action, columns}) where C(columns) maps a column to a rule, C(null),
        C(redact) (the text C(redacted)), C(hash) (md5 of the value), C(keep), or C({value, <fixed value>}).
      - An anonymized row whose foreign key points to a deleted row gets NULL in that foreign key.
    type: dict
    default: {}
  legal_hold:
    description: The subject's data is under legal hold; erase is refused and nothing changes.
    type: bool
    default: false
  dry_run:
    description: Count the rows an erase or rectify would change and change nothing.
    type: bool
    default: true
  dest:
    description: For export, the host folder (absolute path) under which a folder per subject is written.
    type: path
  changes:
    description: For rectify, table to C({column, new value}).
    type: dict
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Counts the rows; writes no file and changes no row.
  diff_mode:
    support: none
    description: Nothing has a before and after to show.
notes:
  - Tables that hold the subject's data without a foreign key to the root cannot be found this way; give them
    a foreign key or handle them with their own request.
seealso:
  - module: dbarch.postgresql.pii_inventory_info
  - module: dbarch.postgresql.data_retention
"""

EXAMPLES = r"""
- name: Right of access, every row of customer 42 as JSON and CSV
  dbarch.postgresql.data_subject:
    action: export
    table: public.customers
    key: id
    value: 42
    dest: /var/lib/postgresql/gdpr

- name: Erasure, invoices kept for accounting but anonymized
  dbarch.postgresql.data_subject:
    action: erase
    table: public.customers
    key: id
    value: 42
    dry_run: false
    policies:
      public.invoices:
        action: anonymize
        columns: {billing_name: redact, billing_email: hash}
"""

RETURN = r"""
tables:
  description:
    - Per table (C(schema.table)), C(rows) read (export), counted (dry run) or changed, C(action), C(depth)
      (foreign keys from the root).
  returned: always
  type: dict
files:
  description: For export, the files written (the JSON document first, then one CSV per table).
  returned: always
  type: list
  elements: str
dry_run:
  description: Whether nothing was changed on purpose (O(dry_run) or check mode).
  returned: always
  type: bool
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.compliance import subject
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


def main():
    module = DbarchModule(
        argument_spec=dict(
            action=dict(type="str", required=True, choices=["export", "erase", "rectify"]),
            table=dict(type="str", required=True),
            key=dict(type="str", required=True, no_log=False),
            value=dict(type="raw", required=True),
            policies=dict(type="dict", default={}),
            legal_hold=dict(type="bool", default=False),
            dry_run=dict(type="bool", default=True),
            dest=dict(type="path"),
            changes=dict(type="dict"),
        ),
        supports_check_mode=True,
        required_if=[("action", "export", ("dest",)), ("action", "rectify", ("changes",))],
    )
    p = module.params
    module.require_absolute("dest")
    dry = p["dry_run"] or module.check_mode
    session = module.connect()
    try:
        if p["action"] == "export":
            out = subject.export(
                session, p["table"], p["key"], p["value"], dest=p["dest"], write=not module.check_mode
            )
            result = dict(changed=bool(out["files"]), tables=out["tables"], files=out["files"])
        elif p["action"] == "erase":
            out = subject.erase(
                session,
                p["table"],
                p["key"],
                p["value"],
                policies=p["policies"],
                legal_hold=p["legal_hold"],
                dry_run=dry,
            )
            result = dict(changed=out["changed"], tables=out["tables"], files=[])
        else:
            out = subject.rectify(session, p["table"], p["key"], p["value"], p["changes"], dry_run=dry)
            result = dict(changed=out["changed"], tables=out["tables"], files=[])
    except DbarchError as exc:
        module.fail_from(exc, session)
    finally:
        session.close()
    result.update(dry_run=dry, queries=session.queries)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
