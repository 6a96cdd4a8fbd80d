"""playbooks/scale.yml on a real cluster: diagnosis before, the tune remedy (applied, reload), the
diagnosis after, and the report with the before/after metrics and the success criteria."""

import json
import os
import sys

import pytest

import harness


@pytest.mark.pg_versions(18)
def test_scale_playbook_tune_remedy(pg_major, tmp_path):
    cluster = harness.start_cluster(pg_major, name="scale")
    try:
        dest = str(tmp_path / "reports")
        inventory = {
            "all": {
                "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                "children": {
                    "primary": {
                        "hosts": {
                            "pg-scale": {
                                "dbarch_login_host": cluster.host,
                                "dbarch_login_port": cluster.port,
                                "dbarch_login_user": cluster.user,
                                "dbarch_login_password": cluster.password,
                            }
                        }
                    },
                    "replicas": {"hosts": {}},
                },
            }
        }
        extra = dict(
            scale_remedy="tune",
            scale_interval=1,
            scale_tune_memory="1GB",
            scale_tune_cpus=4,
            scale_report_dest=dest,
        )
        run = harness.run_playbook(
            harness.REPO_ROOT / "playbooks" / "scale.yml", extra_vars=extra, inventory=inventory
        ).assert_ok()
        with open(os.path.join(dest, "pg-scale", "scale.json"), encoding="utf-8") as fh:
            summary = json.load(fh)["summary"]
        assert summary["remedy"] == "tune" and summary["classes_before"] == []
        assert "shared_buffers" in summary["tuned"] and "shared_buffers" in summary["pending_restart"]
        assert summary["tuning_advice"]["shared_buffers"] == "256MB"
        for key in ("cpu", "p95_ms_estimate", "connection_use", "replication_lag_seconds"):
            assert key in summary["metrics_before"] and key in summary["metrics_after"]
        assert "ESTIMATE" in summary["p95_note"]
        criteria = summary["success_criteria"]
        assert criteria["pool_use"]["below"] == 0.6 and criteria["pool_use"]["met"] is True
        assert criteria["replication_lag"]["met"] is True
        assert cluster.query("SELECT current_setting('random_page_cost')")[0][0] == "1.1"
        assert os.path.exists(os.path.join(dest, "pg-scale", "scale.md"))
        # the primary's first step lowered only the guarded setting the advice lowers (8 -> 4 workers)
        first = run.task("dbarch.postgresql.scale : Apply the tuning advice (lowered_guarded)")["result"]
        assert first["changed_settings"] == ["max_worker_processes"], first
    finally:
        cluster.stop()
