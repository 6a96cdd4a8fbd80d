"""fleet/summary.py: per-host reports joined into one fleet summary."""

import json

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.fleet import summary as fleet


def _finding(rule, severity, obj, suppressed=False):
    return {"rule": rule, "severity": severity, "object": obj, "message": "m", "suppressed": suppressed}


def test_worst_findings_across_hosts_and_hosts_that_did_not_answer(tmp_path):
    reports = {
        "a": {
            "summary": {"role": "primary"},
            "findings": [_finding("R1", "low", "t1"), _finding("R2", "critical", "t2")],
        },
        "b": {
            "summary": {"role": "standby"},
            "findings": [_finding("R2", "critical", "t9"), _finding("R3", "high", "x", True)],
        },
    }
    for host, report in reports.items():
        (tmp_path / host).mkdir()
        (tmp_path / host / "schema_review.json").write_text(json.dumps(report))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "schema_review.json").write_text("{not json")
    hosts = ["a", "b", "c", "d"]
    read = fleet.read_reports(str(tmp_path), "schema_review", hosts)
    assert read["d"] is None and read["c"] is None
    out = fleet.summarize(
        read, hosts, failed={"c": "unreachable"}, top=2, fields=["role"], name="schema_review"
    )
    s = out["summary"]
    assert s["answered"] == ["a", "b"] and s["failed"] == ["c"] and s["missing_reports"] == ["d"]
    assert s["findings"]["critical"] == 2 and s["findings"]["high"] == 0  # suppressed left out
    assert s["hosts_with_findings"] == {"critical": ["a", "b"], "low": ["a"]}
    assert s["per_host"]["b"] == {
        "findings": {"critical": 1, "high": 0, "medium": 0, "low": 0, "info": 0},
        "role": "standby",
    }
    assert [(f["rule"], f["object"], f["severity"]) for f in out["findings"]] == [
        ("FLEET-HOST-001", "c", "high"),
        ("FLEET-HOST-002", "d", "medium"),
        ("R2", "a: t2", "critical"),
        ("R2", "b: t9", "critical"),
    ]
    assert out["findings"][2]["evidence"]["host"] == "a"


def test_bad_input_is_refused():
    with pytest.raises(fleet.FleetError):
        fleet.summarize([], ["a"])
    with pytest.raises(fleet.FleetError, match="top"):
        fleet.summarize({}, ["a"], top="many")
