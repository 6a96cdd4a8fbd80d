"""What `make demo` does, in a sandbox folder of its own: bring up the sandbox, run
playbooks/site.yml against it, find the reports, and a second run changes nothing."""

import json
import os

import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

SANDBOX_PLAYBOOK = harness.REPO_ROOT / "playbooks" / "sandbox.yml"
SITE_PLAYBOOK = harness.REPO_ROOT / "playbooks" / "site.yml"
INVENTORY = harness.REPO_ROOT / "inventories" / "sandbox" / "hosts.yml"
HOSTS = ("pg-primary", "pg-replica", "pg-replica2", "pg-scratch")


@pytest.fixture(scope="module")
def sandbox_env():
    folder = os.path.join(harness.work_folder("dbarch-it-site-"), "sandbox")
    env = {"DBARCH_SANDBOX_DIR": folder}
    # Ports the kernel hands out, not the sandbox's defaults, so a parallel test run never races
    # another sandbox (or a developer's own `make demo`) for them.
    ports = {name: lc.free_port() for name in ("primary", "replica", "replica2", "scratch")}
    harness.run_playbook(SANDBOX_PLAYBOOK, extra_vars={"sandbox_ports": ports}, env=env).assert_ok()
    yield env
    harness.run_playbook(SANDBOX_PLAYBOOK, extra_vars={"sandbox_state": "absent"}, env=env)
    harness.remove_folder(os.path.dirname(folder))


def test_site_writes_reports_for_every_host_and_is_idempotent(sandbox_env, tmp_path):
    dest = str(tmp_path / "reports")
    extra = {
        "server_report_dest": dest,
        "schema_review_dest": dest,
        "migrations_report_dest": dest,
        "query_tuning_dest": dest,
        "restore_drill_report_dest": dest,
        # Like the sandbox's ports, the drill's scratch instance takes a port the kernel hands out.
        "restore_drill_port": lc.free_port(),
        "backup_report_dest": dest,
        "replication_report_dest": dest,
        "connections_report_dest": dest,
        "scale_report_dest": dest,
        "security_audit_dest": dest,
    }
    first = harness.run_playbook(SITE_PLAYBOOK, extra_vars=extra, env=sandbox_env, inventory=str(INVENTORY))
    first.assert_ok()
    for host in HOSTS:
        for name in ("server", "catalog"):
            for ext in ("md", "json", "xml", "sarif"):
                assert os.path.exists(os.path.join(dest, host, "%s.%s" % (name, ext))), (host, name, ext)
    assert _summary(dest, "pg-replica", "server")["role"] == "standby"
    assert _summary(dest, "pg-replica2", "server")["role"] == "standby"
    assert int(_summary(dest, "pg-primary", "server")["standbys"]) == 2
    # The demo shop schema is reviewed on the primary, with its data dictionary beside it.
    with open(os.path.join(dest, "pg-primary", "schema_review.json"), encoding="utf-8") as fh:
        review = json.load(fh)
    found = {(f["rule"], f["object"]) for f in review["findings"]}
    assert ("SR-KEY-001", "shop.events") in found
    assert ("SR-KEY-002", "shop.orders.customer_id") in found
    # The shop's requirements file: its query pattern has no index, its sizes feed the growth rules,
    # and profiling sees that phone1 is always filled.
    assert ("SR-QUERY-001", "shop.orders") in found
    assert ("SR-TYPE-008", "shop.products.id") not in found  # products has no expectation
    assert ("SR-CONS-001", "shop.customers.phone1") in found
    assert review["summary"]["requirements"]["pii"] == ["shop.customers"]
    # The demo migrations were applied to the primary's demo database (the dev stage).
    migrations = _summary(dest, "pg-primary", "migrations")
    assert migrations["version"] == "4" and migrations["pending"] == []
    assert migrations["history"][-1] == "R__customer_balance_view.sql success=True"
    for ext in ("md", "mmd", "dbml", "dot", "svg"):
        assert os.path.exists(os.path.join(dest, "pg-primary", "data_dictionary", "data_dictionary." + ext))
    # Query tuning of the demo workload: the foreign key without an index it joins on is seen by
    # EXPLAIN ANALYZE and by the index advice, which proposes the index.
    with open(os.path.join(dest, "pg-primary", "query_tuning.json"), encoding="utf-8") as fh:
        tuning = json.load(fh)
    found = {(f["rule"], f["object"]) for f in tuning["findings"]}
    assert ("IA-FK-001", "shop.orders.customer_id") in found
    assert ("IA-INDEX-001", "shop.orders") in found
    assert ("QP-SCAN-001", "shop.orders") in found
    assert tuning["summary"]["workload"] == "pg_stat_statements"
    assert any(p.endswith("ON shop.orders (customer_id);") for p in tuning["summary"]["proposals"])
    assert tuning["summary"]["explained"] == ["orders of a customer"]
    assert not os.path.exists(os.path.join(dest, "pg-replica", "query_tuning.json"))
    # The replication report: both standbys stream from the primary, no lag on the idle sandbox, and
    # the state-only summaries carry no reading (so the second run below changes nothing).
    primary_lag = _summary(dest, "pg-primary", "replication_lag")
    assert primary_lag["role"] == "primary"
    assert len(primary_lag["standbys_connected"]) == 2, primary_lag
    assert "current_lsn" not in primary_lag and "lag_by_standby" not in primary_lag
    for host in ("pg-replica", "pg-replica2"):
        lag_summary = _summary(dest, host, "replication_lag")
        assert lag_summary["role"] == "standby" and lag_summary["level"] == "ok", lag_summary
        assert lag_summary["primary"] == "pg-primary" and "replay_lsn" not in lag_summary
    # Backups of the primary: archiving into the repository, a verified backup, the daily job.
    backup = _summary(dest, "pg-primary", "backup")
    assert int(backup["usable_backups"]) == 1 and int(backup["gaps"]) == 0
    assert "dbarch-wal" in backup["archive_command"] and "dbarch-backup" in backup["schedule"]
    # The restore drill on pg-scratch restored the primary's backup to its restore point, matched it, and
    # left no scratch instance behind.
    drill = _summary(dest, "pg-scratch", "restore_drill")
    assert drill["ok"] is True and drill["markers_restored"] == ["before"], drill
    assert drill["tables_restored"] == drill["tables_source"]
    assert set(drill["tables_source"]) == {"shop.customers", "shop.orders"}
    assert drill["rto_seconds"] > 0 and "drill_verify" in drill["phases"]
    with open(os.path.join(dest, "restore_drill_history.jsonl"), encoding="utf-8") as fh:
        assert [json.loads(line)["drill_id"] for line in fh] == [drill["drill_id"]]
    # Health panels and connection report of every server, read-only: nobody terminated.
    for host in ("pg-primary", "pg-replica", "pg-replica2"):
        conns = _summary(dest, host, "connections")
        assert conns["terminated"] == [] and conns["issue"] == "none", (host, conns)
        assert conns["panels"]["connections"] == "ok" and conns["panels"]["disk"] != "unknown", (host, conns)
        assert set(conns["panels"]) == {"query_latency_p95", "connections", "replication_lag", "disk"}
    second = harness.run_playbook(SITE_PLAYBOOK, extra_vars=extra, env=sandbox_env, inventory=str(INVENTORY))
    second.assert_ok()
    # Every run takes a new backup and the backup report lists it; the drill makes a new restore point and
    # a new restore each run. Nothing else changes.
    changed = sorted(
        {
            r["full_name"]
            for r in second.results
            if r["status"] == "changed"
            # The drill restores anew each run; the connection report shows live sessions and the
            # scaling report measured values, which differ from run to run.
            and not r["play"].startswith(("Restore drill", "Connection runbook", "Scaling"))
        }
    )
    assert changed == [
        "dbarch.postgresql.backup : Take a base backup now",
        "dbarch.postgresql.backup : Write the backup report",
    ], second.stdout
    # Scaling: the bottleneck diagnosis and the tuning advice on the primary, nothing applied (its report
    # holds measured metrics, so it is rewritten on every run: the Scaling plays are left out above).
    scale = _summary(dest, "pg-primary", "scale")
    assert scale["remedy"] == "none" and scale["tuned"] == [] and scale["pending_restart"] == []
    assert set(scale["classes_before"]) <= {"cpu", "memory", "io", "connections", "locks"}
    assert scale["tuning_advice"]["checkpoint_completion_target"] == "0.9"
    assert set(scale["success_criteria"]) >= {"cpu", "p95_latency", "pool_use", "replication_lag", "all_met"}
    assert "ESTIMATE" in scale["p95_note"] and scale["metrics_after"]["replication_lag_seconds"] is not None
    assert not any(
        r["status"] == "changed"
        for r in second.results
        if r["full_name"].startswith("dbarch.postgresql.tune")
    )
    # The security audit (read-only, last in site.yml) of the primary and the standbys: reports in every
    # format, a summary per framework and the checklists; the sandbox runs without TLS, which it reports;
    # no password text in the reports.
    for audited in ("pg-primary", "pg-replica", "pg-replica2"):
        for ext in ("md", "json", "xml", "sarif"):
            assert os.path.exists(os.path.join(dest, audited, "security_audit." + ext)), (audited, ext)
    assert not os.path.exists(os.path.join(dest, "pg-scratch", "security_audit.json"))
    with open(os.path.join(dest, "pg-primary", "security_audit.json"), encoding="utf-8") as fh:
        audit_report = json.load(fh)
    assert ("SEC030", "ssl") in {(f["rule"], f["object"]) for f in audit_report["findings"]}
    frameworks = {"CIS controls", "SOC 2 controls", "HIPAA controls", "GDPR controls"}
    assert frameworks <= set(audit_report["summary"])
    assert audit_report["summary"]["encryption: TLS on, minimum TLSv1.2, strong ciphers"].startswith("FAIL")
    with open(os.path.join(sandbox_env["DBARCH_SANDBOX_DIR"], "credentials.yml"), encoding="utf-8") as fh:
        credentials = harness.yaml.safe_load(fh)
    secrets_text = [v for k, v in credentials.items() if k.endswith("password") and v]
    assert secrets_text
    for audited in ("pg-primary", "pg-replica"):
        for ext in ("md", "json", "xml", "sarif"):
            with open(os.path.join(dest, audited, "security_audit." + ext), encoding="utf-8") as fh:
                text = fh.read()
            assert not any(s in text for s in secrets_text), (audited, ext)


def _summary(dest, host, name):
    with open(os.path.join(dest, host, name + ".json"), encoding="utf-8") as fh:
        return json.load(fh)["summary"]
