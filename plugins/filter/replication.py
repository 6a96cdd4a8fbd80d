# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side join of several hosts' replication_info results: the replication-lag runbook's
diagnosis, the replication group for the playbooks that change it (topology.py) and LSNs as numbers
(the engines are plugins/module_utils/replication/diagnosis.py and topology.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import (
    diagnosis,
    lag,
    outcome,
    topology,
)


def replication_diagnosis(infos, limits=None, inventory_primaries=None, detail="full"):
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
            detail=str(detail),
        )
    except lag.LagError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def replication_topology(infos, inventory_primaries=None):
    """{host: replication_info result} -> the replication group as the servers see it (see the
    filter's documentation)."""
    if not isinstance(infos, dict):
        raise AnsibleFilterError(
            "replication_topology takes a dict of host name -> replication_info result, got %s"
            % type(infos).__name__
        )
    try:
        return topology.topology(
            dict((str(host), dict(info) if isinstance(info, dict) else info) for host, info in infos.items()),
            inventory_primaries=[str(h) for h in inventory_primaries or ()],
        )
    except lag.LagError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def lsn_bytes(lsn):
    """An LSN such as C(0/3000148) as a number of bytes (C(None) stays C(None))."""
    if lsn is None or lsn == "":
        return None
    try:
        return wal.parse_lsn(str(lsn))
    except wal.WalError as exc:
        raise AnsibleFilterError("lsn_bytes: %r is not an LSN (such as 0/3000148)" % (lsn,)) from exc


def rejoin_findings(result, host, primary=None):
    """A standby-module result of a rejoin -> its findings (lost transactions), as dicts."""
    if not isinstance(result, dict):
        raise AnsibleFilterError(
            "rejoin_findings takes the standby module's result, got %s" % type(result).__name__
        )
    return outcome.lost_transaction_findings(str(host), str(primary) if primary else None, dict(result))


class FilterModule(object):
    def filters(self):
        return {
            "replication_diagnosis": replication_diagnosis,
            "replication_topology": replication_topology,
            "lsn_bytes": lsn_bytes,
            "rejoin_findings": rejoin_findings,
        }
