# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/monitoring on real clusters (a primary and a streaming standby): the role starts the real
prometheus-postgres-exporter and prometheus-node-exporter (as processes: no systemd here), a real
Prometheus (Debian's) scrapes them with the role's rule files loaded, and:

- every metric name used by the rules and by the dashboard is in the real scrape;
- the replication lag expression is 0 on the idle primary and on the caught-up standby, and the lag alert's
  expression is true once replay is paused on the standby while the primary writes;
- with about 90 % of the connection slots held open, the connection alert's expression is true (and the
  alert pending) on the real scrape;
- a second run of the role changes nothing.
"""

import glob
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import harness
import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FILES = os.path.join(ROOT, "roles", "monitoring", "files")
PLAYBOOK = Path(ROOT, "playbooks", "monitoring.yml")
DASHBOARD = os.path.join(FILES, "dashboards", "database-health.json")
BINARIES = ("prometheus-postgres-exporter", "prometheus-node-exporter", "prometheus")
METRIC_RE = re.compile(r"\b((?:pg|node|dbarch)_[a-z0-9_]+)")
MAX_CONNECTIONS = 30


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local servers only
        return response.read().decode("utf-8")


def _wait_for(predicate, what, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError("timed out waiting for %s" % what)


def scraped_names(text):
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def rule_metric_names():
    names = set()
    for path in glob.glob(os.path.join(FILES, "rules", "*.yml")):
        with open(path) as handle:
            for group in yaml.safe_load(handle)["groups"]:
                for rule in group["rules"]:
                    names.update(METRIC_RE.findall(rule["expr"]))
    return names


def dashboard_metric_names():
    with open(DASHBOARD) as handle:
        dashboard = json.load(handle)
    names = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            names.update(METRIC_RE.findall(target["expr"]))
    return names


class Prometheus:
    """Debian's Prometheus scraping the exporters every second, with the role's rule files."""

    def __init__(self, folder, targets, rules):
        self.port = _free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": rules,
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": hosts}]} for job, hosts in targets.items()
            ],
        }
        path = os.path.join(folder, "prometheus.yml")
        with open(path, "w") as handle:
            yaml.safe_dump(config, handle)
        self.log = open(os.path.join(folder, "prometheus.log"), "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(  # noqa: S603
            [
                shutil.which("prometheus"),
                "--config.file=" + path,
                "--storage.tsdb.path=" + os.path.join(folder, "tsdb"),
                "--web.listen-address=127.0.0.1:%d" % self.port,
            ],
            stdout=self.log,
            stderr=self.log,
        )
        _wait_for(self._ready, "Prometheus to start", 60)

    def _ready(self):
        try:
            return _get(self.url + "/-/ready", 2).strip() != ""
        except OSError:
            return False

    def query(self, expr):
        body = json.loads(_get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def alerts(self):
        return json.loads(_get(self.url + "/api/v1/alerts"))["data"]["alerts"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture(scope="module")
def stack(pg_major, tmp_path_factory):
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        pytest.skip("not installed: %s (apt-get install %s)" % (", ".join(missing), " ".join(missing)))
    folder = harness.work_folder("dbarch-it-mon-")
    os.chmod(folder, 0o755)  # noqa: S103 - the prometheus user reads its files under it
    primary = harness.start_cluster(
        pg_major, workdir=folder, name="primary", settings={"max_connections": MAX_CONNECTIONS}
    )
    standby = None
    prometheus = None
    host = os.path.join(folder, "host")
    try:
        standby = harness.start_standby(primary, "standby", slot="standby")
        primary.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        primary.query("CREATE TABLE churn (id int)")
        primary.query("INSERT INTO churn SELECT generate_series(1, 1000); DELETE FROM churn WHERE id <= 600")
        primary.query("SELECT pg_create_physical_replication_slot('idle_slot', true)")
        state = os.path.join(host, "backup-state")
        os.makedirs(state)
        finished = "2026-01-01T01:30:00+00:00"
        with open(os.path.join(state, "backup-db1.status.json"), "w") as handle:
            json.dump(
                {"last_run": {"ok": True, "finished": finished}, "last_success": {"finished": finished}},
                handle,
            )
        ports = dict(primary=_free_port(), standby=_free_port(), node=_free_port())
        names = dict(
            monitoring_install_packages=False,
            monitoring_service="process",
            monitoring_clusters=[
                {"name": "primary", "port": primary.port, "exporter_port": ports["primary"]},
                {"name": "standby", "port": standby.port, "exporter_port": ports["standby"]},
            ],
            monitoring_node_exporter_port=ports["node"],
            monitoring_config_dir=os.path.join(host, "etc"),
            monitoring_state_dir=os.path.join(host, "state"),
            monitoring_textfile_dir=os.path.join(host, "textfile"),
            monitoring_bin_dir=os.path.join(host, "bin"),
            monitoring_rules_dir=os.path.join(host, "rules"),
            monitoring_cron_dir=os.path.join(host, "cron.d"),
            monitoring_schedule_method="cron",
            monitoring_backup_status_glob=os.path.join(state, "backup-*.status.json"),
        )
        for sub in ("bin", "cron.d"):
            os.makedirs(os.path.join(host, sub), exist_ok=True)
        os.chmod(host, 0o755)  # noqa: S103
        inventory = {
            "all": {
                "hosts": {
                    "db1": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": sys.executable,
                        "dbarch_login_host": primary.host,
                        "dbarch_login_port": primary.port,
                        "dbarch_login_user": primary.user,
                        "dbarch_login_password": primary.password,
                        "dbarch_login_db": "postgres",
                    }
                }
            }
        }
        first = harness.run_playbook(PLAYBOOK, extra_vars=names, inventory=inventory).assert_ok()
        targets = {
            "postgres": ["127.0.0.1:%d" % ports["primary"], "127.0.0.1:%d" % ports["standby"]],
            "node": ["127.0.0.1:%d" % ports["node"]],
        }
        prometheus = Prometheus(folder, targets, sorted(glob.glob(os.path.join(host, "rules", "*.yml"))))
        yield dict(
            primary=primary,
            standby=standby,
            ports=ports,
            names=names,
            inventory=inventory,
            first=first,
            prometheus=prometheus,
            host=host,
        )
    finally:
        if prometheus is not None:
            prometheus.stop()
        for pidfile in glob.glob(os.path.join(host, "state", "*.pid")):
            subprocess.run(  # noqa: S603
                [sys.executable, os.path.join(FILES, "dbarch-exporter-ctl"), "stop", "--pidfile", pidfile],
                check=False,
                capture_output=True,
            )
        if standby is not None:
            standby.stop()
        primary.stop()
        harness.remove_folder(folder)


def scrape(stack, which):
    return _get("http://127.0.0.1:%d/metrics" % stack["ports"][which], timeout=30)


def test_the_role_started_the_exporters_as_a_least_privilege_role(stack):
    primary = stack["primary"]
    rows = primary.query(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolconnlimit, "
        "ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "WHERE m.member = r.oid) FROM pg_roles r WHERE rolname = 'dbarch_monitor'"
    )
    assert rows == [(False, False, False, False, 10, ["pg_monitor"])]
    assert "pg_up 1" in scrape(stack, "primary")
    sessions = primary.query("SELECT count(*) FROM pg_stat_activity WHERE usename = 'dbarch_monitor'")
    assert sessions[0][0] >= 1, "the exporter does not connect as dbarch_monitor"
    for name in ("primary", "standby"):
        env = Path(stack["host"], "etc", name + ".env").read_text()
        assert stack["primary"].password not in env and "PASS_FILE" in env
    assert oct(os.stat(os.path.join(stack["host"], "etc", "dbarch_monitor.pass")).st_mode & 0o777) == "0o600"


def test_every_metric_of_the_rules_and_the_dashboard_is_in_the_real_scrape(stack):
    # The textfile collector's file was written by the role; the node exporter reads it on each scrape.
    scraped = scraped_names(scrape(stack, "primary")) | scraped_names(scrape(stack, "node"))
    scraped |= scraped_names(scrape(stack, "standby"))
    used = rule_metric_names() | dashboard_metric_names()
    assert used, "no metric name found in the rules"
    missing = sorted(used - scraped)
    assert not missing, "metrics used but not emitted by the installed exporters: %s" % missing


def test_lag_is_zero_on_the_idle_primary_then_the_alert_expression_fires_on_paused_replay(stack):
    prom = stack["prometheus"]
    primary, standby = stack["primary"], stack["standby"]
    primary_target = "127.0.0.1:%d" % stack["ports"]["primary"]
    standby_target = "127.0.0.1:%d" % stack["ports"]["standby"]

    def lag(target):
        rows = prom.query('pg_replication_lag_seconds{instance="%s"}' % target)
        return float(rows[0]["value"][1]) if rows else None

    _wait_for(lambda: lag(primary_target) is not None and lag(standby_target) is not None, "the lag series")
    assert lag(primary_target) == 0.0
    _wait_for(lambda: lag(standby_target) == 0.0, "the caught-up standby to read 0")
    assert prom.query('pg_replication_lag_seconds{instance="%s"} > 5' % primary_target) == []
    standby.query("SELECT pg_wal_replay_pause()")
    try:
        primary.query("CREATE TABLE lag_probe (t timestamptz)")

        def fires():
            primary.query("INSERT INTO lag_probe VALUES (now())")
            return prom.query("pg_replication_lag_seconds > 5")

        fired = _wait_for(fires, "the lag expression to fire on the paused standby", 60)
        assert [row["metric"]["instance"] for row in fired] == [standby_target]
        assert prom.query("pg_standby_replay_lag_bytes"), "the primary shows no standby"
    finally:
        standby.query("SELECT pg_wal_replay_resume()")
        primary.query("DROP TABLE IF EXISTS lag_probe")


def test_ninety_percent_of_connections_held_makes_the_connection_alert_expression_true(stack):
    prom = stack["prometheus"]
    primary = stack["primary"]
    target = "127.0.0.1:%d" % stack["ports"]["primary"]
    groups = yaml.safe_load(Path(FILES, "rules", "postgresql.rules.yml").read_text())["groups"]
    rule = {r["alert"]: r for g in groups for r in g["rules"]}["PostgresqlConnectionUtilizationCritical"]
    usable, used = primary.query(
        "SELECT current_setting('max_connections')::int "
        "- current_setting('superuser_reserved_connections')::int "
        "- COALESCE(NULLIF(current_setting('reserved_connections', true), ''), '0')::int, "
        "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
    )[0]
    assert prom.query(rule["expr"]) == [], "the alert expression is true before any connection is held"
    # Client backends wanted: just over 90 % of the usable slots (``used`` counted this query's session).
    held = [primary.connect() for _slot in range(math.floor(0.9 * usable) + 1 - (used - 1))]
    try:
        try:
            fired = _wait_for(lambda: prom.query(rule["expr"]), "the connection alert expression", 30)
        except AssertionError:
            raise AssertionError(
                "%s held=%d usable=%d used=%d %s %s"
                % (
                    prom.query("up"),
                    len(held),
                    usable,
                    used,
                    prom.query("pg_connections_used"),
                    prom.query("pg_up"),
                )
            ) from None
        assert [row["metric"]["instance"] for row in fired] == [target]
        assert float(fired[0]["value"][1]) > 90
        alerts = _wait_for(
            lambda: [
                a
                for a in prom.alerts()
                if a["labels"]["alertname"] == "PostgresqlConnectionUtilizationCritical"
            ],
            "the alert to be pending",
            30,
        )
        assert alerts[0]["state"] in ("pending", "firing") and alerts[0]["labels"]["severity"] == "critical"
    finally:
        for conn in held:
            conn.close()


def test_a_second_run_of_the_role_changes_nothing(stack):
    again = harness.run_playbook(
        PLAYBOOK, extra_vars=stack["names"], inventory=stack["inventory"]
    ).assert_ok()
    assert again.changed_count() == 0, [t for t in again.records if t.get("changed")]
