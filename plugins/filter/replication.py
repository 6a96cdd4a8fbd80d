# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side join of several hosts' replication_info results: the replication-lag runbook's
diagnosis (the engine is plugins/module_utils/replication/diagnosis.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import diagnosis, lag


def replication_diagnosis(infos, limits=None, inventory_primaries=None):
    """{host: replication_info result} -> the diagnosis (see the filter's documentation)."""
    if not isinstance(infos, dict):
        raise AnsibleFilterError(
            "replication_diagnosis takes a dict of host name -> replication_info result, got %s"
            % type(infos).__name__
        )
    try:
        return diagnosis.diagnose(
            dict((str(host), dict(info) if isinstance(info, dict) else info) for host, info in infos.items()),
            limits=dict(limits) if limits else None,
            inventory_primaries=[str(h) for h in inventory_primaries or ()],
        )
    except lag.LagError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule(object):
    def filters(self):
        return {"replication_diagnosis": replication_diagnosis}
