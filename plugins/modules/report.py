#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: report
short_description: Write findings as Markdown, JSON, JUnit XML and SARIF reports on the controller
version_added: "0.1.0"
description:
  - Renders a list of findings returned by any module of the collection, plus an optional
    summary, into C(<dest>/<hostname>/<name>.md), C(.json), C(.xml) (JUnit, for CI) and C(.sarif)
    (SARIF 2.1.0, for code scanning).
  - Runs on the controller (action plugin); nothing is written on the managed host.
  - A file is rewritten only when its content changes, atomically, so a second run with the same
    findings reports no change.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  name:
    description: Base name of the report files.
    type: str
    required: true
  findings:
    description:
      - Findings, each a dict with at least C(rule), C(severity) (info, low, medium, high, critical)
        and C(message); C(object), C(why), C(fix), C(evidence), C(references) and C(location)
        are shown when present.
    type: list
    elements: dict
    default: []
  summary:
    description: Key facts shown at the top of the report.
    type: dict
    default: {}
  meta:
    description: Extra context (run id, inventory group, ...) recorded in the report.
    type: dict
    default: {}
  title:
    description: "Report title. Default is C(<name>: <host>)."
    type: str
  formats:
    description: Formats to write.
    type: list
    elements: str
    choices: [json, markdown, junit, sarif]
    default: [json, markdown, junit, sarif]
  dest:
    description:
      - Folder of the reports on the controller; relative paths are taken from the directory
        C(ansible-playbook) runs in.
    type: path
    default: reports
  hostname:
    description: Sub-folder and name of the host in the report. Default is C(inventory_hostname).
    type: str
  suppressions:
    description:
      - Accepted findings, each with C(rule) and C(object) (shell-style patterns) and a required C(reason).
    type: list
    elements: dict
    default: []
  junit_failure_severity:
    description: Findings at or above this severity are JUnit failures; the others pass with their message.
    type: str
    default: medium
    choices: [never, info, low, medium, high, critical]
  fail_on:
    description:
      - Fail the task, after writing the reports, when a finding not suppressed is at or above this severity.
    type: str
    default: never
    choices: [never, info, low, medium, high, critical]
extends_documentation_fragment:
  - dbarch.postgresql.connection
notes:
  - The connection options are accepted and ignored, so that one C(module_defaults) block for
    C(group/dbarch.postgresql.all) serves this module too.
attributes:
  check_mode:
    support: full
    description: Reports which files would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the change of the Markdown report.
  action:
    support: full
    description: Runs on the controller.
"""

EXAMPLES = r"""
- name: Review the schema
  dbarch.postgresql.schema_review:
    login_db: shop
  register: review

- name: Write the review as Markdown, JSON, JUnit and SARIF
  dbarch.postgresql.report:
    name: schema_review
    findings: "{{ review.findings }}"
    summary: "{{ review.summary }}"
    fail_on: high

- name: Only JUnit, for the CI system, in a custom folder
  dbarch.postgresql.report:
    name: security
    findings: "{{ audit.findings }}"
    formats: [junit]
    dest: "{{ playbook_dir }}/../build/reports"
"""

RETURN = r"""
files:
  description: Path of each file written, by extension (md, json, xml, sarif).
  returned: always
  type: dict
  sample: {md: reports/pg-primary/server.md, json: reports/pg-primary/server.json}
counts:
  description: Number of findings by severity, suppressed ones and the total not suppressed.
  returned: always
  type: dict
failing:
  description: The findings (rule, object, severity) at or above O(fail_on) that are not suppressed.
  returned: always
  type: list
  elements: dict
findings:
  description: The findings, normalized, sorted most severe first, with suppressions applied.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.reports import REPORT_ARGSPEC


def main():
    module = DbarchModule(argument_spec=REPORT_ARGSPEC, supports_check_mode=True)
    module.fail_json(msg="dbarch.postgresql.report runs on the controller through its action plugin; "
                         "call it as a task, not with the module directly.")


if __name__ == "__main__":
    main()
