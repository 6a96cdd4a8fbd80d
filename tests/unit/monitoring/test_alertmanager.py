# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Alertmanager configuration the role writes: amtool accepts it, and routes by severity."""

import pytest
import yaml

from monitoring_helpers import render_template, run, tool

EXAMPLE = {
    "monitoring_alertmanager_receivers": [
        {
            "name": "ops-mail",
            "email_configs": [
                {"to": "ops@example.com", "from": "am@example.com", "smarthost": "localhost:25"}
            ],
        },
        {"name": "pager", "webhook_configs": [{"url": "http://127.0.0.1:9095/hook"}]},
        {"name": "chat", "webhook_configs": [{"url": "http://127.0.0.1:9096/hook"}]},
    ],
    "monitoring_alertmanager_default_receiver": "ops-mail",
    "monitoring_alertmanager_critical_receiver": "pager",
    "monitoring_alertmanager_warning_receiver": "chat",
}


@pytest.fixture(params=["defaults", "example receivers"])
def config(request, tmp_path):
    overrides = EXAMPLE if request.param == "example receivers" else {}
    text = render_template("alertmanager.yml.j2", **overrides)
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    return path, overrides


def test_amtool_check_config_accepts_it(config):
    amtool = tool("amtool")
    path = config[0]
    result = run([amtool, "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    "labels, which",
    [
        (["severity=critical", "alertname=PostgresqlDown"], "critical"),
        (["severity=warning", "alertname=PostgresqlDeadlocks"], "warning"),
        (["alertname=Other"], "default"),
    ],
)
def test_alerts_are_routed_by_severity(config, labels, which):
    amtool = tool("amtool")
    path, overrides = config
    receiver = overrides.get("monitoring_alertmanager_%s_receiver" % which, which)
    result = run([amtool, "config", "routes", "test", "--config.file", str(path), *labels])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_receivers_come_from_the_variable(config):
    path, overrides = config
    loaded = yaml.safe_load(path.read_text())
    wanted = overrides.get("monitoring_alertmanager_receivers") or [
        {"name": "default"},
        {"name": "critical"},
        {"name": "warning"},
    ]
    assert loaded["receivers"] == wanted
