import json
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd


def sample():
    return [
        dict(
            rule="KEY001",
            severity="high",
            object="public.orders",
            message="No primary key.",
            why="Rows cannot be addressed.",
            fix="ALTER TABLE orders ADD PRIMARY KEY (id);",
        ),
        dict(
            rule="TYPE003",
            severity="low",
            object="public.orders.note",
            message="varchar(255) limit.",
            location=dict(file="ddl/orders.sql", line=7),
        ),
        dict(
            rule="IDX002",
            severity="critical",
            object="public.users",
            message="Invalid index.",
            evidence=dict(index="users_email_idx"),
        ),
    ]


def test_normalize_sorts_most_severe_first_and_validates():
    items = fnd.normalize(sample())
    assert [f.rule for f in items] == ["IDX002", "KEY001", "TYPE003"]
    with pytest.raises(fnd.FindingError, match="Unknown severity 'urgent'"):
        fnd.normalize([dict(rule="X", severity="urgent", message="m")])
    with pytest.raises(fnd.FindingError, match="lacks message"):
        fnd.normalize([dict(rule="X", severity="low")])


def test_suppression_needs_a_reason_and_is_applied_by_glob():
    items = fnd.normalize(sample())
    with pytest.raises(fnd.FindingError, match="has no reason"):
        fnd.apply_suppressions(items, [dict(rule="KEY001", object="*")])
    items, unused = fnd.apply_suppressions(
        items,
        [
            dict(rule="KEY*", object="public.orders", reason="append-only log, keyed by a view"),
            dict(rule="NOPE", object="*", reason="never matches"),
        ],
    )
    key = [f for f in items if f.rule == "KEY001"][0]
    assert key.suppressed and key.suppression_reason == "append-only log, keyed by a view"
    assert unused == [dict(rule="NOPE", object="*", reason="never matches")]
    assert fnd.counts(items)["suppressed"] == 1
    assert fnd.counts(items)["total"] == 2


def test_gate_respects_threshold_and_suppressions():
    items = fnd.normalize(sample())
    assert [f.rule for f in fnd.gate(items, "high")] == ["IDX002", "KEY001"]
    assert fnd.gate(items, "never") == []
    fnd.apply_suppressions(items, [dict(rule="IDX002", reason="rebuilt tonight")])
    failing = fnd.gate(items, "high")
    assert [f.rule for f in failing] == ["KEY001"]
    assert "fail_on=high" in fnd.gate_message(failing, "high")


def test_json_round_trip():
    items = fnd.normalize(sample())
    doc = json.loads(fnd.render_json(items, title="t", summary=dict(tables=3)))
    assert doc["counts"]["critical"] == 1 and doc["summary"] == {"tables": 3}
    again = fnd.normalize(doc["findings"])
    assert [f.to_dict() for f in again] == [f.to_dict() for f in items]


def test_markdown_has_table_fix_sql_and_suppressed_section():
    items = fnd.normalize(sample())
    fnd.apply_suppressions(items, [dict(rule="TYPE003", reason="legacy column, frozen")])
    md = fnd.render_markdown(items, title="Review", summary=dict(tables=2))
    assert md.startswith("# Review\n")
    assert "| critical | IDX002 | public.users | Invalid index. |" in md
    assert "```sql\nALTER TABLE orders ADD PRIMARY KEY (id);\n```" in md
    assert "## Suppressed" in md and "legacy column, frozen" in md


def test_markdown_escapes_pipes():
    md = fnd.render_markdown(fnd.normalize([dict(rule="R", severity="low", object="a|b", message="x|y")]))
    assert "a\\|b" in md and "x\\|y" in md


def test_junit_failures_follow_threshold():
    items = fnd.normalize(sample())
    root = ET.fromstring(fnd.render_junit(items, title="review", fail_on="high"))
    suite = root.find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "2"
    failed = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert failed == ["IDX002 public.users", "KEY001 public.orders"]
    empty = ET.fromstring(fnd.render_junit([], title="review"))
    assert empty.find("testsuite").get("tests") == "1"


def test_sarif_is_2_1_0_with_rules_levels_and_locations():
    items = fnd.normalize(sample())
    fnd.apply_suppressions(items, [dict(rule="TYPE003", reason="legacy")])
    doc = json.loads(fnd.render_sarif(items, title="review"))
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["IDX002", "KEY001", "TYPE003"]
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert by_rule["IDX002"]["level"] == "error" and by_rule["TYPE003"]["level"] == "note"
    loc = by_rule["TYPE003"]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "ddl/orders.sql" and loc["region"]["startLine"] == 7
    assert by_rule["TYPE003"]["suppressions"][0]["justification"] == "legacy"
    assert "Fix: ALTER TABLE orders ADD PRIMARY KEY (id);" in by_rule["KEY001"]["message"]["text"]


def test_render_all_rejects_unknown_format():
    assert set(fnd.render_all([], formats=["json", "sarif"])) == {"json", "sarif"}
    with pytest.raises(fnd.FindingError, match="Unknown report format 'pdf'"):
        fnd.render_all([], formats=["pdf"])
