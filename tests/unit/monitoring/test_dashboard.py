# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The committed Grafana dashboard is the one scripts/monitoring-dashboard generates, it passes a schema
check (the fields Grafana needs to import it), and its four health panels carry the rules' thresholds."""

import json
import os
import subprocess
import sys

import jsonschema

from monitoring_helpers import FILES, ROOT, alerts

DASHBOARD = os.path.join(FILES, "dashboards", "database-health.json")
SCRIPT = os.path.join(ROOT, "scripts", "monitoring-dashboard")

DATASOURCE = {
    "type": "object",
    "required": ["type", "uid"],
    "properties": {"type": {"const": "prometheus"}, "uid": {"const": "${datasource}"}},
}
SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 30},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "contains": {
                        "type": "object",
                        "required": ["name", "type", "query"],
                        "properties": {
                            "name": {"const": "datasource"},
                            "type": {"const": "datasource"},
                            "query": {"const": "prometheus"},
                        },
                    },
                }
            },
        },
        "panels": {
            "type": "array",
            "minItems": 10,
            "items": {
                "type": "object",
                "required": ["id", "title", "type", "datasource", "gridPos", "targets", "fieldConfig"],
                "properties": {
                    "id": {"type": "integer"},
                    "type": {"enum": ["stat", "gauge", "timeseries"]},
                    "datasource": DATASOURCE,
                    "gridPos": {
                        "type": "object",
                        "required": ["h", "w", "x", "y"],
                        "properties": {
                            "w": {"type": "integer", "minimum": 1, "maximum": 24},
                            "x": {"type": "integer", "minimum": 0, "maximum": 23},
                        },
                    },
                    "targets": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["refId", "expr", "datasource"],
                            "properties": {
                                "expr": {"type": "string", "minLength": 1},
                                "datasource": DATASOURCE,
                            },
                        },
                    },
                },
            },
        },
    },
}


def load():
    with open(DASHBOARD, encoding="utf-8") as handle:
        return json.load(handle)


def test_the_committed_dashboard_is_the_generated_one():
    result = subprocess.run(
        [sys.executable, SCRIPT, "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_dashboard_passes_the_schema_check():
    dashboard = load()
    jsonschema.validate(dashboard, SCHEMA)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]


def test_the_health_panels_carry_the_rules_thresholds():
    panels = {p["title"]: p for p in load()["panels"]}
    rules = alerts()
    for title, warning, critical, scale in (
        (
            "Query latency p95 (estimate)",
            "PostgresqlQueryLatencyP95Warning",
            "PostgresqlQueryLatencyP95Critical",
            1,
        ),
        (
            "Connection utilization",
            "PostgresqlConnectionUtilizationWarning",
            "PostgresqlConnectionUtilizationCritical",
            1,
        ),
        ("Replication lag", "PostgresqlReplicationLagWarning", "PostgresqlReplicationLagCritical", 1),
        ("Disk usage", "HostDiskUsageWarning", "HostDiskUsageCritical", 1),
    ):
        steps = panels[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        values = [s["value"] for s in steps[1:]]
        wanted = [float(rules[name]["expr"].rsplit(">", 1)[1]) * scale for name in (warning, critical)]
        assert values == wanted, title


def test_the_detail_panels_are_there():
    titles = {p["title"] for p in load()["panels"]}
    for wanted in (
        "Connections by state",
        "Transactions per second",
        "Cache hit ratio",
        "Replication lag per standby",
        "WAL",
        "Archive status",
    ):
        assert wanted in titles
