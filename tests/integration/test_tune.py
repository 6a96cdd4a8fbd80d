"""dbarch.postgresql.tune on a real cluster: advice, check mode, apply (reload, pending_restart),
idempotent second run, restart through server_control's engine."""

import pytest

import harness

OPTIONS = dict(memory="1GB", cpus=4, storage="ssd", workload="web")


@pytest.fixture(scope="module")
def cluster(pg_major):
    handle = harness.start_cluster(pg_major, name="tune")
    try:
        yield handle
    finally:
        handle.stop()


def tune(run_playbook, cluster, check=False, **more):
    task = harness.task("tune", "Tune", **dict(OPTIONS, **more))
    return run_playbook(harness.play(task, pg=cluster), check=check).assert_ok().task("Tune")["result"]


def auto_conf(cluster):
    rows = cluster.query(
        "SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%%postgresql.auto.conf'"
    )
    return dict(rows)


def test_advice_apply_idempotent_restart(cluster, run_playbook):
    max_conn = int(cluster.query("SELECT current_setting('max_connections')")[0][0])
    advice = tune(run_playbook, cluster)
    rec = advice["recommended"]
    # pgtune for 1GB, 4 cores, web, ssd, the server's max_connections kept
    assert rec["shared_buffers"] == "256MB" and rec["effective_cache_size"] == "768MB"
    assert rec["maintenance_work_mem"] == "64MB" and rec["random_page_cost"] == "1.1"
    assert rec["max_connections"] == str(max_conn) and rec["max_worker_processes"] == "4"
    work_mem_kb = max((1048576 - 262144) // ((max_conn + 4) * 3), 4096)
    assert rec["work_mem"] == ("4MB" if work_mem_kb == 4096 else "%dkB" % work_mem_kb)
    assert advice["changed"] is False and advice["changed_settings"] == []
    assert advice["diff"]["settings"]["shared_buffers"]["recommended"] == "256MB"
    assert "max_connections" not in advice["diff"]["settings"]
    assert all(advice["explained"][name] for name in rec)
    assert [s["node"] for s in advice["restart_plan"]] == ["primary"]
    assert auto_conf(cluster) == {}

    check = tune(run_playbook, cluster, check=True, apply=True)
    assert check["changed"] is True and "shared_buffers" in check["changed_settings"]
    assert "shared_buffers" in check["pending_restart"]
    assert auto_conf(cluster) == {}, "check mode wrote settings"

    first = tune(run_playbook, cluster, apply=True)
    assert first["changed"] is True and "shared_buffers" in first["pending_restart"]
    assert auto_conf(cluster)["shared_buffers"] == "256MB"
    assert cluster.query("SELECT current_setting('random_page_cost')")[0][0] == "1.1"  # reloaded
    assert cluster.query("SELECT current_setting('shared_buffers')")[0][0] == "128MB"  # waits for a restart

    second = tune(run_playbook, cluster, apply=True)
    assert second["changed"] is False and second["changed_settings"] == []
    assert "shared_buffers" in second["pending_restart"]

    restarted = tune(run_playbook, cluster, apply=True, restart=True)
    assert restarted["restarted"] is True and restarted["pending_restart"] == []
    assert cluster.query("SELECT current_setting('shared_buffers')")[0][0] == "256MB"
    assert cluster.query("SELECT count(*) FROM pg_settings WHERE pending_restart")[0][0] == 0

    last = tune(run_playbook, cluster, apply=True, restart=True)
    assert last["changed"] is False and last["restarted"] is False


def test_bad_input_fails_clearly(cluster, run_playbook):
    task = harness.task("tune", "Tune", memory="lots", ignore_errors=True)
    res = run_playbook(harness.play(task, pg=cluster)).task("Tune")["result"]
    assert res["failed"] and "memory='lots' is not a size" in res["msg"]
