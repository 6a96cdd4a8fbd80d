# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet summary: the per-host reports of one read-only workflow (server report, schema review,
query tuning, ...) across many hosts joined into one report: which hosts answered and which did not,
the findings counted by severity across the fleet, and the worst of them, each with its host.

The per-host reports are the JSON files the report module writes (<dest>/<host>/<name>.json); the
summary is written by that same module (role dbarch.postgresql.fleet_summary), so it has the
Markdown, JSON, JUnit and SARIF forms every report has.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

ANALYSIS = "fleet"
NO_ANSWER = "FLEET-HOST-001"
NO_REPORT = "FLEET-HOST-002"
fnd.register_rule(
    NO_ANSWER,
    "A host of the fleet did not answer",
    "high",
    why="The workflow failed or could not reach the host, so nothing is known of its state; its "
    "problems are missing from the fleet's worst findings.",
    analysis=ANALYSIS,
)
fnd.register_rule(
    NO_REPORT,
    "A host of the fleet has no report",
    "medium",
    why="The host answered but its report is missing or unreadable (another destination, a report "
    "format left out, a file removed), so its findings are not in the summary.",
    analysis=ANALYSIS,
)


class FleetError(DbarchError, ValueError):
    """Input the fleet summary cannot use."""


def _host_finding(rule, severity, host, message, evidence=None):
    return fnd.Finding(
        rule,
        severity,
        host,
        message,
        why=fnd.registered_rule(rule).why,
        evidence=evidence or {},
        title=fnd.registered_rule(rule).title,
    ).to_dict()


def read_reports(dest, name, hosts):
    """{host: <dest>/<host>/<name>.json as a dict, or None when missing or unreadable}."""
    out = {}
    for host in hosts:
        path = os.path.join(str(dest), str(host), "%s.json" % name)
        try:
            with open(path, encoding="utf-8") as fh:
                report = json.load(fh)
        except (OSError, ValueError):
            report = None
        out[str(host)] = report if isinstance(report, dict) else None
    return out


def summarize(reports, hosts, failed=None, top=20, fields=None, name="report"):
    """reports: {host: the report's JSON (dict) or None when it could not be read};
    hosts: every host of the run; failed: {host: reason} of hosts that failed or were unreachable.

    Returns {"summary": ..., "findings": [...]}: the summary (hosts, answered, failed, missing,
    counts by severity across hosts, hosts with findings at each severity, each host's counts and
    chosen summary fields), and findings: one per host that did not answer or has no report, then
    the ``top`` worst findings across hosts (severity, then rule, then host), object prefixed with
    the host."""
    if not isinstance(reports, dict):
        raise FleetError(
            "fleet summary: reports must be a dict of host -> report, got %s" % type(reports).__name__
        )
    try:
        top = int(top)
    except (TypeError, ValueError):
        raise FleetError("fleet summary: top must be a number, got %r" % (top,)) from None
    failed = dict(failed or {})
    hosts = [str(h) for h in hosts]
    severities = list(reversed(fnd.SEVERITIES))
    totals = dict((s, 0) for s in severities)
    hosts_at = dict((s, []) for s in severities)
    per_host = {}
    problems = []
    every = []
    for host in hosts:
        if host in failed:
            problems.append(
                _host_finding(
                    NO_ANSWER,
                    "high",
                    host,
                    "%s failed or was unreachable in this run (%s); a report of it, if any, may be older"
                    % (host, failed[host] or "failed"),
                    {"reason": failed[host]},
                )
            )
            continue
        report = reports.get(host)
        if not isinstance(report, dict):
            problems.append(_host_finding(NO_REPORT, "medium", host, "%s has no %s report" % (host, name)))
            continue
        counts = dict((s, 0) for s in severities)
        for finding in report.get("findings") or []:
            if finding.get("suppressed"):
                continue
            severity = str(finding.get("severity", "info")).lower()
            fnd.severity_rank(severity)
            counts[severity] += 1
            item = dict(finding)
            item["object"] = "%s: %s" % (host, finding.get("object", "")) if finding.get("object") else host
            item["evidence"] = dict(finding.get("evidence") or {}, host=host)
            every.append((host, item))
        for severity in severities:
            totals[severity] += counts[severity]
            if counts[severity]:
                hosts_at[severity].append(host)
        entry = {"findings": counts}
        summary = report.get("summary") or {}
        for field in fields or ():
            if field in summary:
                entry[field] = summary[field]
        per_host[host] = entry
    every.sort(key=lambda pair: (-fnd.severity_rank(pair[1]["severity"]), pair[1].get("rule", ""), pair[0]))
    worst = [item for _host, item in every[: max(top, 0)]]
    return {
        "summary": {
            "report": name,
            "hosts": len(hosts),
            "answered": sorted(per_host),
            "failed": sorted(failed),
            "missing_reports": sorted(h for h in hosts if h not in failed and h not in per_host),
            "findings": totals,
            "hosts_with_findings": dict((s, hosts_at[s]) for s in severities if hosts_at[s]),
            "shown": len(worst),
            "per_host": per_host,
        },
        "findings": problems + worst,
    }
