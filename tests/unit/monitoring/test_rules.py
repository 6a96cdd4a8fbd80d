# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The alert rules shipped by roles/monitoring: promtool checks them and runs their unit tests, every
alert has a test that fires it at the right moment and series that do not fire it, and the dashboard's
thresholds are the ones written into the rules."""

import os
import re

import pytest

from monitoring_helpers import RULE_FILES, TEST_FILES, alerts, load_yaml, run, tool


def test_promtool_check_rules_accepts_every_rule_file():
    promtool = tool("promtool")
    result = run([promtool, "check", "rules", *RULE_FILES])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


def test_promtool_unit_tests_pass():
    promtool = tool("promtool")
    result = run([promtool, "test", "rules", *TEST_FILES], cwd=os.path.dirname(TEST_FILES[0]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES), result.stdout


def _tests_by_alert():
    """{alert: [(eval_time, [expected alert label sets])]} over every promtool test file."""
    found = {}
    for path in TEST_FILES:
        for group in load_yaml(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                found.setdefault(case["alertname"], []).append(
                    (case["eval_time"], [a["exp_labels"] for a in case.get("exp_alerts") or []])
                )
    return found


def test_every_alert_has_a_firing_and_a_quiet_unit_test():
    tests = _tests_by_alert()
    for name in alerts():
        cases = tests.get(name)
        assert cases, "alert %s has no promtool test" % name
        firing = [labels for _at, labels in cases if labels]
        assert firing, "alert %s is never expected to fire in its tests" % name
        assert any(not labels for _at, labels in cases), (
            "alert %s has no evaluation where it must stay quiet" % name
        )


def test_every_test_group_has_a_series_that_does_not_fire():
    """Each group feeds at least one series (instance) that is never among the expected alerts."""
    for path in TEST_FILES:
        for group in load_yaml(path)["tests"]:
            instances = {
                re.search(r'instance="([^"]+)"', s["series"]).group(1) for s in group["input_series"]
            }
            fired = {
                a["exp_labels"]["instance"]
                for case in group["alert_rule_test"]
                for a in case.get("exp_alerts") or []
            }
            assert instances - fired, "%s: every series of %s fires" % (os.path.basename(path), group["name"])


@pytest.mark.parametrize(
    "alert, threshold",
    [
        ("PostgresqlQueryLatencyP95Warning", "> 0.1"),
        ("PostgresqlQueryLatencyP95Critical", "> 0.5"),
        ("PostgresqlConnectionUtilizationWarning", "> 70"),
        ("PostgresqlConnectionUtilizationCritical", "> 90"),
        ("PostgresqlReplicationLagWarning", "> 5"),
        ("PostgresqlReplicationLagCritical", "> 30"),
        ("HostDiskUsageWarning", "> 80"),
        ("HostDiskUsageCritical", "> 90"),
    ],
)
def test_the_dashboard_thresholds_are_written_into_the_rules(alert, threshold):
    rule = alerts()[alert]
    assert rule["expr"].rstrip().endswith(threshold), rule["expr"]
    assert rule["labels"]["severity"] == ("critical" if alert.endswith("Critical") else "warning")


def test_the_common_failures_have_rules():
    names = set(alerts())
    for wanted in (
        "PostgresqlDown",
        "PostgresqlRestarted",
        "PostgresqlTooManyConnections",
        "PostgresqlDeadlocks",
        "PostgresqlHighRollbackRatio",
        "PostgresqlInactiveSlotRetainingWal",
        "PostgresqlHighDeadTuples",
        "PostgresqlXidWraparoundCritical",
        "PostgresqlLongTransaction",
        "PostgresqlWalArchivingFailing",
        "PostgresqlBackupTooOld",
    ):
        assert wanted in names


def test_every_alert_has_a_severity_and_a_summary():
    for name, rule in alerts().items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
