# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet summary of one workflow's per-host reports (the engine is
plugins/module_utils/fleet/summary.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.dbarch.postgresql.plugins.module_utils.fleet import summary as fleet


def fleet_summary(hosts, dest, name, failed=None, top=20, fields=None):
    """Hosts of the run + the reports' folder and name -> {summary, findings} of the fleet."""
    if isinstance(hosts, str) or not hasattr(hosts, "__iter__"):
        raise AnsibleFilterError("fleet_summary takes the list of the run's hosts")
    hosts = [str(h) for h in hosts]
    if failed is not None and not isinstance(failed, dict):
        failed = dict((str(h), "failed or unreachable") for h in failed)
    try:
        reports = fleet.read_reports(dest, name, hosts)
        return fleet.summarize(
            reports, hosts, failed=failed, top=top, fields=list(fields or []), name=str(name)
        )
    except fleet.DbarchError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule(object):
    def filters(self):
        return {"fleet_summary": fleet_summary}
