# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of dbarch.postgresql.report: writes reports on the controller."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import reports


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(reports.REPORT_ARGSPEC)
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        _spec, params = self.validate_argument_spec(argument_spec=reports.REPORT_ARGSPEC)
        if not params.get("hostname"):
            params["hostname"] = task_vars.get("inventory_hostname", "localhost")
        if not os.path.isabs(params["dest"]):
            params["dest"] = os.path.abspath(params["dest"])
        try:
            items, files = reports.build(params)
        except (reports.ReportError, fnd.FindingError) as exc:
            raise AnsibleActionFail(str(exc)) from exc
        changes = reports.plan(files)
        if not self._task.check_mode:
            for _ext, path, _before, after in changes:
                reports.write_atomic(path, after)
        result["changed"] = bool(changes)
        result["files"] = dict((ext, path) for ext, (path, _text) in files.items())
        result["counts"] = fnd.counts(items)
        result["findings"] = [f.to_dict() for f in items]
        if self._task.diff and changes:
            result["diff"] = [
                dict(
                    before=before or "",
                    after=after,
                    before_header=path if before is not None else "/dev/null",
                    after_header=path,
                )
                for ext, path, before, after in changes
                if ext == "md"
            ]
        failing = fnd.gate(items, params["fail_on"])
        result["failing"] = [dict(rule=f.rule, object=f.object, severity=f.severity) for f in failing]
        if failing:
            result["failed"] = True
            result["msg"] = "Report written to %s. %s" % (
                os.path.dirname(result["files"][sorted(result["files"])[0]]),
                fnd.gate_message(failing, params["fail_on"]),
            )
        else:
            result["msg"] = "Report %s: %d finding(s)" % (params["name"], result["counts"]["total"])
        return result
