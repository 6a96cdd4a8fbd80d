# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The findings of the failover report (playbooks/failover.yml, through the ``failover_findings``
filter): a standby that does not follow the new primary, clients not repointed, a failed write or
replication check, WAL known to be lost or a loss that cannot be known.

Each rule is registered in core/findings.py (analysis ``failover``). Plain Python, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd

ANALYSIS = "failover"


def _rule(rule_id, title, severity, why):
    fnd.register_rule(rule_id, title, severity, why=why, analysis=ANALYSIS)
    return rule_id


FOLLOW = _rule(
    "FAILOVER-FOLLOW-001",
    "Standby does not follow the new primary",
    "high",
    "A standby left on the failed primary receives nothing: it serves older and older data and cannot "
    "take over in the next failover.",
)
ROUTE = _rule(
    "FAILOVER-ROUTE-001",
    "Clients not pointed at the new primary",
    "high",
    "Clients that go through PgBouncer or the DNS name still reach the failed primary: their writes fail.",
)
CHECK = _rule(
    "FAILOVER-CHECK-001",
    "New primary failed the write or replication check",
    "critical",
    "A primary that does not commit (read-only, or waiting for a synchronous standby that is not there) "
    "leaves the service down; a follower that does not replay is not a standby.",
)
RPO_LOST = _rule(
    "FAILOVER-RPO-001",
    "WAL written by the old primary is lost",
    "medium",
    "The old primary was seen with WAL past the promoted LSN: the transactions in it are not on the new "
    "primary. Rejoining it (playbooks/rejoin.yml) lists them, to be replayed by hand if they matter.",
)
RPO_UNKNOWN = _rule(
    "FAILOVER-RPO-002",
    "Data loss of the failover cannot be known",
    "info",
    "No LSN of the old primary was recorded before it failed, so what it wrote that no standby received "
    "is not known until it is rejoined. Schedule the replication-lag runbook so that its LSN is recorded.",
)


def _finding(rule, severity, obj, message, fix, evidence):
    reg = fnd.registered_rule(rule)
    return dict(
        rule=rule,
        title=reg.title,
        severity=severity,
        object=obj,
        message=message,
        why=reg.why,
        fix=fix,
        evidence=evidence,
    )


def findings(follow, routes=(), check=None, rpo=None, old_primary=None, new_primary=None):
    """The report's findings (dicts). ``follow``: the followers' status (``host``, ``ok``, ``error``);
    ``routes``: messages of what failed to repoint clients; ``check``: the primary_check result
    (``failed_check`` when it failed); ``rpo``: the playbook's RPO (``lost_bytes`` a number or
    ``unknown``, ``old_primary_last_lsn``, ``promoted_lsn``, ``note``)."""
    out = []
    for item in follow or ():
        if item.get("ok"):
            continue
        host = item.get("host") or "a standby"
        out.append(
            _finding(
                FOLLOW,
                "high",
                "standby %s" % host,
                "%s does not follow the new primary %s: %s"
                % (host, new_primary, item.get("error") or "failed"),
                "Fix what the message says, then ansible-playbook playbooks/rejoin.yml -e rejoin_host=%s"
                % host,
                dict(item),
            )
        )
    for message in routes or ():
        out.append(
            _finding(
                ROUTE,
                "high",
                "clients of %s" % new_primary,
                "%s" % message,
                "Point the pool or the name at %s by hand, or fix the cause and run the failover again "
                "(it changes nothing on the servers that is already done)" % new_primary,
                dict(message=message),
            )
        )
    if check and check.get("failed_check"):
        out.append(
            _finding(
                CHECK,
                "critical",
                "server %s" % new_primary,
                check.get("msg") or "the check failed",
                "Read the check's message: a read-only setting, synchronous_standby_names naming standbys "
                "that are not there, or a follower that does not replay",
                dict((k, check.get(k)) for k in ("role", "write", "standbys") if k in check),
            )
        )
    if rpo:
        lost = rpo.get("lost_bytes")
        if lost == "unknown" or lost is None:
            out.append(
                _finding(
                    RPO_UNKNOWN,
                    "info",
                    "server %s" % old_primary,
                    "No LSN of %s was recorded before it failed: the RPO is unknown until it is rejoined"
                    % old_primary,
                    "ansible-playbook playbooks/rejoin.yml -e rejoin_host=%s (it lists the lost "
                    "transactions); schedule playbooks/runbook_replication_lag.yml" % old_primary,
                    dict(rpo),
                )
            )
        elif int(lost) > 0:
            out.append(
                _finding(
                    RPO_LOST,
                    "medium",
                    "server %s" % old_primary,
                    "%s was seen at %s, %d bytes of WAL past the promoted LSN %s: they are lost"
                    % (old_primary, rpo.get("old_primary_last_lsn"), int(lost), rpo.get("promoted_lsn")),
                    "ansible-playbook playbooks/rejoin.yml -e rejoin_host=%s lists the lost transactions"
                    % old_primary,
                    dict(rpo),
                )
            )
    return out
