# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Finding type for every analysis, with suppressions, fail_on gating and renderers.

A finding says what is wrong (``message``), why it matters (``why``), where
(``object``), what was seen (``evidence``) and the SQL that fixes it (``fix``).
Renderers: JSON, Markdown, JUnit XML (CI), SARIF 2.1.0 (code scanning).

The rule registry (``register_rule``) holds one definition per rule id (title, default
severity, why, references) for every analysis that registers there (migration lint, schema
review): the documentation and SARIF's rule list read it. A problem that two analyses judge
(``define_problem``: a type or naming choice seen in a migration and in the schema) has one
definition, so both report it at the same severity.
Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

import fnmatch
import hashlib
import json
import re
from collections import OrderedDict
from xml.sax.saxutils import escape as _xml_escape
from xml.sax.saxutils import quoteattr as _xml_attr

SEVERITIES = ("info", "low", "medium", "high", "critical")
_RANK = dict((s, i) for i, s in enumerate(SEVERITIES))
FAIL_ON_CHOICES = ["never"] + list(SEVERITIES)

TOOL_NAME = "dbarch.postgresql"
TOOL_URI = "https://galaxy.ansible.com/ui/repo/published/dbarch/postgresql/"
TOOL_VERSION = "0.1.0"


class FindingError(DbarchError, ValueError):
    pass


def severity_rank(severity):
    try:
        return _RANK[str(severity).lower()]
    except KeyError:
        raise FindingError(
            "Unknown severity %r: use one of %s." % (severity, ", ".join(SEVERITIES))
        ) from None


# -- rule registry ------------------------------------------------------------------------------
class Rule:
    """One registered rule: what the documentation and SARIF's rule list say about it."""

    __slots__ = ("id", "title", "severity", "why", "references", "analysis", "problem")

    def __init__(self, rule_id, title, severity, why, references, analysis, problem):
        self.id = rule_id
        self.title = title
        self.severity = severity
        self.why = why
        self.references = tuple(references)
        self.analysis = analysis
        self.problem = problem

    def to_dict(self):
        return dict(
            id=self.id,
            title=self.title,
            severity=self.severity,
            why=self.why,
            references=list(self.references),
            analysis=self.analysis,
            problem=self.problem,
        )

    def __eq__(self, other):
        return isinstance(other, Rule) and self.to_dict() == other.to_dict()

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return "Rule(%s %s)" % (self.id, self.severity)


RULE_REGISTRY = OrderedDict()  # rule id -> Rule
PROBLEMS = OrderedDict()  # problem key -> dict(severity, title, why, references)


def define_problem(key, severity, title, why, references=()):
    """One problem that several analyses judge: its severity, title, why and references."""
    severity_rank(severity)
    entry = dict(severity=str(severity).lower(), title=title, why=why, references=tuple(references))
    if key in PROBLEMS and PROBLEMS[key] != entry:
        raise FindingError("Problem %r is defined twice, differently." % key)
    PROBLEMS[key] = entry
    return key


def register_rule(rule_id, title, severity=None, why="", references=(), analysis="", problem=None):
    """Register (or re-register identically) one rule; returns its Rule.

    With ``problem`` (a key of define_problem) the rule takes the problem's severity, and its
    why and references unless given: every analysis that judges the problem agrees. A
    severity that differs from the problem's is refused.
    """
    if problem is not None:
        if problem not in PROBLEMS:
            raise FindingError("Rule %s: unknown problem %r (define_problem first)." % (rule_id, problem))
        shared = PROBLEMS[problem]
        if severity is not None and str(severity).lower() != shared["severity"]:
            raise FindingError(
                "Rule %s has severity %s, but problem %r is %s: the analyses that judge one problem "
                "must agree." % (rule_id, severity, problem, shared["severity"])
            )
        severity = shared["severity"]
        why = why or shared["why"]
        references = tuple(references) or shared["references"]
    if severity is None:
        raise FindingError("Rule %s needs a severity (or a problem)." % rule_id)
    severity_rank(severity)
    entry = Rule(rule_id, title, str(severity).lower(), why or "", references, analysis, problem)
    old = RULE_REGISTRY.get(rule_id)
    if old is not None and old != entry:
        raise FindingError(
            "Rule %s is registered twice, differently (%s, then %s)." % (rule_id, old.analysis, analysis)
        )
    RULE_REGISTRY[rule_id] = entry
    return entry


def registered_rule(rule_id):
    """The Rule registered under ``rule_id``, or None."""
    return RULE_REGISTRY.get(rule_id)


def from_registered_rule(rule_id, severity, obj, message, fix, evidence):
    """A Finding of the registered rule ``rule_id``: its title and why, its severity unless
    ``severity`` is given."""
    reg = registered_rule(rule_id)
    return Finding(
        rule_id,
        severity or reg.severity,
        obj,
        message,
        fix=fix,
        why=reg.why,
        evidence=evidence,
        title=reg.title,
    )


def registered_rules(analysis=None):
    """The registered rules (of one analysis) in id order."""
    return [RULE_REGISTRY[k] for k in sorted(RULE_REGISTRY) if analysis in (None, RULE_REGISTRY[k].analysis)]


class Finding:
    """One problem (or fact) found by an analysis.

    rule:      stable id, e.g. ``SCHEMA001`` or ``keys.no_primary_key``
    severity:  info | low | medium | high | critical
    object:    what it is about (``public.orders``, ``public.orders.user_id``, a file:line)
    message:   what is wrong, one sentence
    why:       why it matters
    fix:       the SQL (or step) that fixes it; may be empty for info findings
    evidence:  dict of observed facts (sizes, counts, plan nodes, ...)
    references: list of strings ("CIS PostgreSQL 16 3.1.2", "GDPR Art. 32", a URL)
    location:  optional {"file": ..., "line": ...} for file-based findings (SARIF, JUnit)
    """

    __slots__ = (
        "rule",
        "severity",
        "object",
        "message",
        "why",
        "fix",
        "evidence",
        "references",
        "location",
        "suppressed",
        "suppression_reason",
        "title",
    )

    def __init__(
        self,
        rule,
        severity,
        object,
        message,
        fix="",
        why="",
        evidence=None,
        references=None,
        location=None,
        title=None,
        suppressed=False,
        suppression_reason=None,
    ):
        if not rule:
            raise FindingError("A finding needs a rule id.")
        severity_rank(severity)
        self.rule = str(rule)
        self.severity = str(severity).lower()
        self.object = "" if object is None else str(object)
        self.message = str(message)
        self.why = why or ""
        self.fix = fix or ""
        self.evidence = dict(evidence or {})
        self.references = list(references or [])
        self.location = dict(location) if location else None
        self.title = title or self.rule
        self.suppressed = bool(suppressed)
        self.suppression_reason = suppression_reason

    # -- conversion ---------------------------------------------------------------
    def to_dict(self):
        d = dict(
            rule=self.rule,
            title=self.title,
            severity=self.severity,
            object=self.object,
            message=self.message,
            why=self.why,
            fix=self.fix,
            evidence=self.evidence,
            references=self.references,
            suppressed=self.suppressed,
        )
        if self.location:
            d["location"] = self.location
        if self.suppressed:
            d["suppression_reason"] = self.suppression_reason
        return d

    @classmethod
    def from_dict(cls, d):
        if isinstance(d, Finding):
            return d
        if not isinstance(d, dict):
            raise FindingError("A finding must be a dict, got %s." % type(d).__name__)
        missing = [k for k in ("rule", "severity", "message") if not d.get(k)]
        if missing:
            raise FindingError("Finding %r lacks %s." % (d.get("rule") or d, ", ".join(missing)))
        return cls(
            rule=d["rule"],
            severity=d["severity"],
            object=d.get("object", ""),
            message=d["message"],
            fix=d.get("fix", ""),
            why=d.get("why", ""),
            evidence=d.get("evidence"),
            references=d.get("references"),
            location=d.get("location"),
            title=d.get("title"),
            suppressed=d.get("suppressed", False),
            suppression_reason=d.get("suppression_reason"),
        )

    @property
    def fingerprint(self):
        """Stable id for a finding across runs (rule + object), for SARIF and diffs."""
        return hashlib.sha256(("%s|%s" % (self.rule, self.object)).encode("utf-8")).hexdigest()[:16]

    def sort_key(self):
        return (-_RANK[self.severity], self.rule, self.object)

    def __repr__(self):
        return "Finding(%s %s %s)" % (self.rule, self.severity, self.object)


# -- collections of findings ------------------------------------------------------------
def normalize(findings):
    """A list of Finding from dicts or Findings, sorted most severe first."""
    out = [Finding.from_dict(f) for f in (findings or [])]
    out.sort(key=lambda f: f.sort_key())
    return out


def apply_suppressions(findings, suppressions):
    """Mark findings suppressed. Each suppression: {rule, object (glob), reason}.

    A suppression without a reason is refused: a silenced finding must say why.
    Returns the findings (same objects) and the list of suppressions never used.
    """
    rules = []
    for i, s in enumerate(suppressions or []):
        if not isinstance(s, dict):
            raise FindingError("suppressions[%d] must be a dict with rule, object, reason." % i)
        reason = (s.get("reason") or "").strip()
        if not reason:
            raise FindingError(
                "suppressions[%d] (rule %s) has no reason: record why the finding is accepted."
                % (i, s.get("rule", "*"))
            )
        rules.append((s.get("rule") or "*", s.get("object") or "*", reason, i))
    used = set()
    for f in findings:
        for rule, obj, reason, i in rules:
            if fnmatch.fnmatchcase(f.rule, rule) and fnmatch.fnmatchcase(f.object, obj):
                f.suppressed = True
                f.suppression_reason = reason
                used.add(i)
                break
    unused = [suppressions[i] for _r, _o, _why, i in rules if i not in used]
    return findings, unused


def active(findings):
    return [f for f in findings if not f.suppressed]


def gate(findings, fail_on):
    """Findings (not suppressed) at or above ``fail_on``; empty when fail_on is never."""
    if fail_on in (None, "", "never"):
        return []
    threshold = severity_rank(fail_on)
    return [f for f in active(findings) if _RANK[f.severity] >= threshold]


def gate_message(failing, fail_on):
    worst = failing[0] if failing else None
    parts = ", ".join("%s %s" % (f.rule, f.object) for f in failing[:5])
    more = "" if len(failing) <= 5 else " and %d more" % (len(failing) - 5)
    return (
        "%d finding(s) at or above fail_on=%s (worst: %s): %s%s. Fix them, or suppress each "
        "with a recorded reason." % (len(failing), fail_on, worst.severity if worst else "-", parts, more)
    )


def counts(findings):
    c = dict((s, 0) for s in SEVERITIES)
    c["suppressed"] = 0
    for f in findings:
        if f.suppressed:
            c["suppressed"] += 1
        else:
            c[f.severity] += 1
    c["total"] = sum(c[s] for s in SEVERITIES)
    return c


# -- renderers -------------------------------------------------------------------------------
def render_json(findings, title="", summary=None, meta=None):
    doc = dict(
        tool=TOOL_NAME,
        version=TOOL_VERSION,
        title=title,
        meta=meta or {},
        summary=summary or {},
        counts=counts(findings),
        findings=[f.to_dict() for f in findings],
    )
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"


def _md_cell(value):
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _md_value(value):
    if isinstance(value, (dict, list)):
        return "`%s`" % json.dumps(value, sort_keys=True, default=str)
    return _md_cell(value)


def render_markdown(findings, title="", summary=None, meta=None):
    lines = ["# %s" % (title or "dbarch.postgresql report"), ""]
    for k, v in sorted((meta or {}).items()):
        lines.append("- **%s**: %s" % (k, _md_value(v)))
    if meta:
        lines.append("")
    if summary:
        lines += ["## Summary", "", "| item | value |", "| --- | --- |"]
        for k, v in summary.items():
            lines.append("| %s | %s |" % (_md_cell(k), _md_value(v)))
        lines.append("")
    c = counts(findings)
    lines += [
        "## Findings",
        "",
        "%d finding(s): %s; %d suppressed."
        % (
            c["total"],
            ", ".join("%d %s" % (c[s], s) for s in reversed(SEVERITIES) if c[s]) or "none",
            c["suppressed"],
        ),
        "",
    ]
    shown = active(findings)
    if shown:
        lines += ["| severity | rule | object | message |", "| --- | --- | --- | --- |"]
        for f in shown:
            lines.append(
                "| %s | %s | %s | %s |"
                % (f.severity, _md_cell(f.rule), _md_cell(f.object), _md_cell(f.message))
            )
        lines.append("")
        for f in shown:
            lines += ["### %s: %s" % (f.rule, f.object or f.title), ""]
            lines.append("**%s** %s" % (f.severity.upper(), f.message))
            lines.append("")
            if f.why:
                lines += ["Why it matters: %s" % f.why, ""]
            if f.evidence:
                lines.append("Evidence:")
                for k, v in sorted(f.evidence.items()):
                    lines.append("- %s: %s" % (k, _md_value(v)))
                lines.append("")
            if f.fix:
                lines += ["Fix:", "", "```sql", f.fix.rstrip(), "```", ""]
            if f.references:
                lines += ["References: %s" % "; ".join(f.references), ""]
    sup = [f for f in findings if f.suppressed]
    if sup:
        lines += ["## Suppressed", "", "| rule | object | reason |", "| --- | --- | --- |"]
        for f in sup:
            lines.append(
                "| %s | %s | %s |" % (_md_cell(f.rule), _md_cell(f.object), _md_cell(f.suppression_reason))
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_junit(findings, title="", fail_on="medium", summary=None):
    """One testsuite; one testcase per finding (failure at or above fail_on, else passed
    with the message in system-out; suppressed ones skipped). With no finding, one
    passing testcase so CI shows the check ran."""
    name = title or TOOL_NAME
    threshold = None if fail_on in (None, "", "never") else severity_rank(fail_on)
    cases = []
    failures = skipped = 0
    for f in findings:
        case_name = "%s %s" % (f.rule, f.object)
        body = ""
        if f.suppressed:
            skipped += 1
            body = "<skipped message=%s/>" % _xml_attr("suppressed: %s" % (f.suppression_reason or ""))
        elif threshold is not None and _RANK[f.severity] >= threshold:
            failures += 1
            text = f.message
            if f.why:
                text += "\nWhy: " + f.why
            if f.fix:
                text += "\nFix:\n" + f.fix
            body = "<failure message=%s type=%s>%s</failure>" % (
                _xml_attr(f.message),
                _xml_attr(f.severity),
                _xml_escape(text),
            )
        else:
            body = "<system-out>%s</system-out>" % _xml_escape("[%s] %s" % (f.severity, f.message))
        cases.append(
            '    <testcase classname=%s name=%s time="0">%s</testcase>'
            % (_xml_attr("%s.%s" % (TOOL_NAME, f.rule)), _xml_attr(case_name), body)
        )
    if not cases:
        cases.append(
            '    <testcase classname=%s name=%s time="0"/>' % (_xml_attr(TOOL_NAME), _xml_attr("no findings"))
        )
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<testsuites name=%s tests="%d" failures="%d" errors="0" skipped="%d">'
        % (_xml_attr(name), len(cases), failures, skipped),
        '  <testsuite name=%s tests="%d" failures="%d" errors="0" skipped="%d" time="0">'
        % (_xml_attr(name), len(cases), failures, skipped),
    ]
    out += cases
    out += ["  </testsuite>", "</testsuites>"]
    return "\n".join(out) + "\n"


_SARIF_LEVEL = {"info": "note", "low": "note", "medium": "warning", "high": "error", "critical": "error"}
# GitHub code scanning reads security-severity (0-10) from rule properties.
_SARIF_SECURITY = {"info": "0.0", "low": "3.0", "medium": "5.0", "high": "7.5", "critical": "9.5"}


def _sarif_name(title, rule_id):
    """A SARIF rule name: the title's words run together in CamelCase."""
    words = re.findall(r"[A-Za-z0-9]+", title or "")
    return "".join(w[:1].upper() + w[1:] for w in words) or rule_id


def _sarif_rule(f):
    """SARIF reportingDescriptor of a finding's rule: from the registry when the rule is
    registered (default severity, why, references), else from the finding itself."""
    reg = RULE_REGISTRY.get(f.rule)
    if reg is None:
        return dict(
            id=f.rule,
            name=_sarif_name(f.title, f.rule),
            shortDescription=dict(text=f.title or f.rule),
            fullDescription=dict(text=f.why or f.message),
            defaultConfiguration=dict(level=_SARIF_LEVEL[f.severity]),
            properties={"security-severity": _SARIF_SECURITY[f.severity], "tags": list(f.references)},
        )
    refs = list(reg.references)
    help_text = reg.why or reg.title
    if refs:
        help_text += "\nReferences: " + "; ".join(refs)
    out = dict(
        id=reg.id,
        name=_sarif_name(reg.title, reg.id),
        shortDescription=dict(text=reg.title),
        fullDescription=dict(text=reg.why or reg.title),
        help=dict(text=help_text),
        defaultConfiguration=dict(level=_SARIF_LEVEL[reg.severity]),
        properties={
            "security-severity": _SARIF_SECURITY[reg.severity],
            "tags": [t for t in [reg.analysis, reg.problem] if t] + refs,
        },
    )
    uri = next((r for r in refs if r.startswith(("http://", "https://"))), None)
    if uri:
        out["helpUri"] = uri
    return out


def render_sarif(findings, title="", default_uri="database"):
    rules = {}
    results = []
    for f in findings:
        if f.rule not in rules:
            rules[f.rule] = _sarif_rule(f)
        loc = f.location or {}
        physical = dict(artifactLocation=dict(uri=loc.get("file") or default_uri))
        if loc.get("line"):
            physical["region"] = dict(startLine=int(loc["line"]))
        text = f.message
        if f.fix:
            text += " Fix: " + " ".join(f.fix.split())
        result = dict(
            ruleId=f.rule,
            level=_SARIF_LEVEL[f.severity],
            message=dict(text=text),
            locations=[
                dict(
                    physicalLocation=physical,
                    logicalLocations=[dict(fullyQualifiedName=f.object or default_uri, kind="object")],
                )
            ],
            partialFingerprints={"dbarchFinding/v1": f.fingerprint},
            properties=dict(severity=f.severity, evidence=f.evidence),
        )
        if f.suppressed:
            result["suppressions"] = [dict(kind="external", justification=f.suppression_reason or "")]
        results.append(result)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            dict(
                tool=dict(
                    driver=dict(
                        name=TOOL_NAME,
                        version=TOOL_VERSION,
                        informationUri=TOOL_URI,
                        rules=[rules[k] for k in sorted(rules)],
                    )
                ),
                automationDetails=dict(id=title or TOOL_NAME),
                results=results,
            )
        ],
    }
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"


RENDERERS = {
    "json": ("json", lambda fs, title, summary, meta, fail_on: render_json(fs, title, summary, meta)),
    "markdown": ("md", lambda fs, title, summary, meta, fail_on: render_markdown(fs, title, summary, meta)),
    "junit": ("xml", lambda fs, title, summary, meta, fail_on: render_junit(fs, title, fail_on, summary)),
    "sarif": ("sarif", lambda fs, title, summary, meta, fail_on: render_sarif(fs, title)),
}
FORMATS = list(RENDERERS)


def render_all(findings, formats=None, title="", summary=None, meta=None, fail_on="medium"):
    """{extension: text} for each requested format."""
    out = {}
    for fmt in formats or FORMATS:
        if fmt not in RENDERERS:
            raise FindingError("Unknown report format %r: use %s." % (fmt, ", ".join(FORMATS)))
        ext, fn = RENDERERS[fmt]
        out[ext] = fn(findings, title, summary, meta, fail_on)
    return out
