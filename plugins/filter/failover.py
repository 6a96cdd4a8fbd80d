# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side findings of the failover report (the engine is
plugins/module_utils/replication/failover_report.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import failover_report


def failover_findings(follow, routes=None, check=None, rpo=None, old_primary=None, new_primary=None):
    """The failover report's findings (see the filter's documentation)."""
    if not isinstance(follow, (list, tuple)):
        raise AnsibleFilterError(
            "failover_findings takes the list of the followers' status, got %s" % type(follow).__name__
        )
    return failover_report.findings(
        [dict(f) for f in follow],
        routes=[str(r) for r in routes or ()],
        check=dict(check) if isinstance(check, dict) else None,
        rpo=dict(rpo) if isinstance(rpo, dict) else None,
        old_primary=old_primary,
        new_primary=new_primary,
    )


class FilterModule(object):
    def filters(self):
        return {"failover_findings": failover_findings}
