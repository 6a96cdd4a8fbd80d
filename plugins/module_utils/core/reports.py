# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a findings report to disk: one file per format, atomically, only when it changed.

Plain Python: no Ansible imports. The ``report`` action plugin is its front end.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.fsutil import atomic_write
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import CONNECTION_ARGSPEC

# Connection options are accepted (and unused) so that one module_defaults block for
# group/dbarch.postgresql.all can serve every module of the collection, this one included.
REPORT_ARGSPEC = dict(CONNECTION_ARGSPEC)
REPORT_ARGSPEC.update(
    name=dict(type="str", required=True),
    findings=dict(type="list", elements="dict", default=[]),
    summary=dict(type="dict", default={}),
    meta=dict(type="dict", default={}),
    title=dict(type="str"),
    formats=dict(type="list", elements="str", default=list(fnd.FORMATS), choices=list(fnd.FORMATS)),
    dest=dict(type="path", default="reports"),
    hostname=dict(type="str"),
    suppressions=dict(type="list", elements="dict", default=[]),
    junit_failure_severity=dict(type="str", default="medium", choices=list(fnd.FAIL_ON_CHOICES)),
    fail_on=dict(type="str", default="never", choices=list(fnd.FAIL_ON_CHOICES)),
)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ReportError(DbarchError, ValueError):
    pass


def check_name(kind, value):
    if not value or not _SAFE_NAME.match(value) or ".." in value:
        raise ReportError(
            "%s %r cannot be used as a file name: use letters, digits, '.', '_' and '-' only." % (kind, value)
        )
    return value


def read_text(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def write_atomic(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, text, mode)


def build(params):
    """Render every format. Returns (findings, {ext: (path, text)})."""
    host = check_name("hostname", params["hostname"])
    name = check_name("name", params["name"])
    items = fnd.normalize(params.get("findings") or [])
    items, unused = fnd.apply_suppressions(items, params.get("suppressions") or [])
    title = params.get("title") or "%s: %s" % (name, host)
    meta = dict(params.get("meta") or {})
    meta.setdefault("host", host)
    if unused:
        meta["unused_suppressions"] = unused
    texts = fnd.render_all(
        items,
        formats=params.get("formats"),
        title=title,
        summary=params.get("summary") or {},
        meta=meta,
        fail_on=params.get("junit_failure_severity") or "medium",
    )
    folder = os.path.join(params["dest"], host)
    files = dict((ext, (os.path.join(folder, "%s.%s" % (name, ext)), text)) for ext, text in texts.items())
    return items, files


def plan(files):
    """[(ext, path, before, after)] for the files whose content would change."""
    out = []
    for ext, (path, text) in sorted(files.items()):
        before = read_text(path)
        if before != text:
            out.append((ext, path, before, text))
    return out
