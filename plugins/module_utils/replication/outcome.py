# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Findings of the playbooks that rejoin a node (playbooks/rejoin.yml): each committed transaction the
rewind discarded, and a lost-transactions list that is not complete.

Plain Python, no Ansible imports; reached through the ``rejoin_findings`` filter. The transactions
themselves are the standby module's (rewind.py reads them with pg_waldump).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd

ANALYSIS = "rejoin"


def _rule(rule_id, title, severity, why):
    fnd.register_rule(rule_id, title, severity, why=why, analysis=ANALYSIS)
    return rule_id


LOST = _rule(
    "REPL-REJOIN-001",
    "Committed transaction lost by the rejoin",
    "high",
    "The node committed this transaction after the point where the new primary's history left its own (the "
    "failover); the new primary never had it, and the rewind discarded it. A client may have been told it "
    "was committed.",
)
INCOMPLETE = _rule(
    "REPL-REJOIN-002",
    "Lost-transactions list incomplete",
    "medium",
    "Not every lost transaction is listed: the list was cut at its limit, or some of the node's WAL after "
    "the fork point was no longer in pg_wal when it was read.",
)


def _fix(primary, tx):
    relations = ", ".join(tx.get("relations") or []) or "the relations it touched"
    return (
        "Compare %s on %s with what the application expected after %s; re-apply the changes that matter "
        "(the old node's WAL, pg_waldump output, is the only record left of them)."
        % (relations, primary or "the primary", tx.get("commit_time") or "the failover")
    )


def lost_transaction_findings(host, primary, result):
    """Finding dicts of a standby-module ``result`` for ``host`` that now follows ``primary``: one
    REPL-REJOIN-001 per listed lost transaction, REPL-REJOIN-002 when the list is incomplete."""
    result = result or {}
    found = []
    for tx in result.get("lost_transactions") or []:
        found.append(
            fnd.Finding(
                LOST,
                "high",
                "transaction %s on %s" % (tx.get("xid"), host),
                "Transaction %s, committed on %s at %s (commit record %s), touching %s, is not on %s: the "
                "rewind discarded it."
                % (
                    tx.get("xid"),
                    host,
                    tx.get("commit_time") or "an unknown time",
                    tx.get("lsn"),
                    ", ".join(tx.get("relations") or []) or "no relation recorded after the fork",
                    primary or "the primary",
                ),
                fix=_fix(primary, tx),
                title="Committed transaction lost by the rejoin",
                evidence=dict(tx),
            )
        )
    summary = result.get("lost_summary") or {}
    committed = summary.get("committed") or 0
    listed = summary.get("listed", len(result.get("lost_transactions") or []))
    if summary and (summary.get("complete") is False or committed > listed):
        found.append(
            fnd.Finding(
                INCOMPLETE,
                "medium",
                "lost transactions of %s" % host,
                "%d committed transaction(s) lost, %d listed%s."
                % (
                    committed,
                    listed,
                    "; part of the WAL after the fork was gone" if summary.get("complete") is False else "",
                ),
                fix="Raise lost_transactions_limit (rejoin_lost_limit) to list them all; keep WAL longer "
                "(wal_keep_size) so that it is still there when a node is rejoined.",
                title="Lost-transactions list incomplete",
                evidence=dict(summary),
            )
        )
    return [f.to_dict() for f in fnd.normalize(found)]
