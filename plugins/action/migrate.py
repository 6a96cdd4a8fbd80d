# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of dbarch.postgresql.migrate: ships the migration files to the module.

The files of O(path) are read on the controller (a relative path is looked up like
other action plugins do: the role's files/, the role, the playbook's files/, the
playbook's folder) and passed to the module as the internal option ``_files``, so a
migration set in the playbook project applies to any host without copying it first.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase


def read_migration_files(folder):
    """[{name, content}] of the .sql files under folder (relative names, sorted)."""
    files = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in sorted(names):
            if not name.endswith(".sql") or name[:1] not in ("V", "U", "R"):
                continue
            full = os.path.join(root, name)
            rel = os.path.relpath(full, folder).replace(os.sep, "/")
            with open(full, "rb") as handle:
                raw = handle.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise AnsibleActionFail(
                    "%s is not UTF-8 (byte %d): migration files must be UTF-8, as Flyway reads them."
                    % (full, exc.start)
                ) from None
            files.append(dict(name=rel, content=text))
    return files


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        args = dict(self._task.args)
        if "_files" in args:
            raise AnsibleActionFail("_files is internal to dbarch.postgresql.migrate; set path instead.")
        path = args.get("path")
        if not path:
            raise AnsibleActionFail("path is required: the folder of migration files on the controller.")
        path = to_text(path)
        if os.path.isabs(path):
            folder = path
        else:
            try:
                folder = self._find_needle("files", path)
            except AnsibleError:
                folder = self._loader.path_dwim(path)
        if not os.path.isdir(folder):
            raise AnsibleActionFail(
                "path %s: no such folder on the controller (looked up as %s). Give the folder of the "
                "migration files, absolute or relative to the playbook." % (path, folder)
            )
        args["path"] = folder
        args["_files"] = read_migration_files(folder)
        # ${flyway:workingDirectory} is Flyway's user.dir: where the tool was started, here the
        # controller's working directory (not the module's temporary folder on the host).
        if not args.get("working_directory"):
            args["working_directory"] = os.getcwd()
        module_result = self._execute_module(
            module_name="dbarch.postgresql.migrate", module_args=args, task_vars=task_vars
        )
        invocation = module_result.get("invocation", {}).get("module_args")
        if isinstance(invocation, dict):
            invocation.pop("_files", None)
        result.update(module_result)
        return result
