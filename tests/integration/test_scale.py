"""playbooks/scale.yml on a real primary and its streaming standby: diagnosis before, the tune remedy in
the safe order (the primary's lowered guarded setting first, the standby, then the primary), restarts
through server_control's engine, the diagnosis after, and the report with the before/after metrics and
the success criteria."""

import json
import os
import sys

import pytest

import harness


def host(cluster):
    return {
        "dbarch_login_host": cluster.host,
        "dbarch_login_port": cluster.port,
        "dbarch_login_user": cluster.user,
        "dbarch_login_password": cluster.password,
    }


@pytest.mark.pg_versions(18)
def test_scale_playbook_tune_remedy_in_safe_order(pg_major, tmp_path):
    primary = harness.start_cluster(pg_major, name="scale")
    standby = None
    try:
        standby = harness.start_standby(primary, "scale-standby")
        dest = str(tmp_path / "reports")
        inventory = {
            "all": {
                "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                "children": {
                    "primary": {"hosts": {"pg-scale": host(primary)}},
                    "replicas": {"hosts": {"pg-standby": host(standby)}},
                },
            }
        }
        extra = dict(
            scale_remedy="tune",
            scale_interval=1,
            scale_tune_memory="1GB",
            scale_tune_cpus=4,
            scale_tune_restart=True,
            scale_report_dest=dest,
        )
        run = harness.run_playbook(
            harness.REPO_ROOT / "playbooks" / "scale.yml", extra_vars=extra, inventory=inventory
        ).assert_ok()
        tune_steps = [
            (r["host"], r["result"].get("changed_settings"), r["result"].get("restarted"))
            for r in run.results
            if r["full_name"].startswith("dbarch.postgresql.scale : Apply the tuning advice")
        ]
        # 1. the primary lowers max_worker_processes (8 -> 4) alone, and restarts: a standby may hold more;
        # 2. the standby takes every change; 3. the primary the rest.
        assert [(h, restarted) for h, _settings, restarted in tune_steps] == [
            ("pg-scale", True),
            ("pg-standby", True),
            ("pg-scale", True),
        ], tune_steps
        assert tune_steps[0][1] == ["max_worker_processes"]
        assert "shared_buffers" in tune_steps[1][1] and "max_worker_processes" in tune_steps[1][1]
        assert "shared_buffers" in tune_steps[2][1] and "max_worker_processes" not in tune_steps[2][1]
        for node in (primary, standby):
            assert node.query("SELECT current_setting('shared_buffers')")[0][0] == "256MB"
            assert node.query("SELECT current_setting('max_worker_processes')")[0][0] == "4"
        assert standby.query("SELECT pg_is_in_recovery()")[0][0] is True

        with open(os.path.join(dest, "pg-scale", "scale.json"), encoding="utf-8") as fh:
            summary = json.load(fh)["summary"]
        assert summary["remedy"] == "tune" and summary["classes_before"] == []
        assert summary["tuning_advice"]["shared_buffers"] == "256MB"
        # the plan the advice gave before anything changed: the same three steps
        plan = summary["restart_plan"]
        assert [s["node"] == "primary" for s in plan] == [True, False, True], plan
        assert list(plan[0]["settings"]) == ["max_worker_processes"] and all(s["restart"] for s in plan)
        for key in ("cpu", "p95_ms_estimate", "connection_use", "replication_lag_seconds"):
            assert key in summary["metrics_before"] and key in summary["metrics_after"]
        assert "ESTIMATE" in summary["p95_note"]
        criteria = summary["success_criteria"]
        assert criteria["pool_use"]["below"] == 0.6 and criteria["pool_use"]["met"] is True
        assert criteria["replication_lag"]["below"] == 1.0
        assert os.path.exists(os.path.join(dest, "pg-scale", "scale.md"))
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()
