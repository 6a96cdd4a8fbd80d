"""dbarch.postgresql.diagnose_info on induced workloads, each on a real cluster: the class induced is
found, and only it; an idle server has none (the confusion matrix of docs/scaling.md)."""

import os
import threading
import time

import psycopg2
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features

MAX_CONNECTIONS = 30
INTERVAL = 2


@pytest.fixture(scope="module")
def busy(pg_major):
    """A cluster with few connection slots and small shared_buffers, and a table 20 times larger."""
    cluster = harness.start_cluster(
        pg_major,
        name="diag",
        settings={"max_connections": MAX_CONNECTIONS, "shared_buffers": "1MB", "track_io_timing": True},
    )
    try:
        cluster.query(
            "CREATE TABLE big AS SELECT i, repeat('x', 200) AS pad FROM generate_series(1, 80000) i; "
            "ANALYZE big"
        )
        yield cluster
    finally:
        cluster.stop()


def diagnose(cluster, run_playbook, interval=INTERVAL):
    run = run_playbook(
        harness.play(harness.task("diagnose_info", "Diagnose", interval=interval, register="d"), pg=cluster)
    ).assert_ok()
    return run.task("Diagnose")["result"]


class Load:
    """Sessions running ``statement`` in a loop (or once, when it blocks) in threads until stopped."""

    def __init__(self, cluster, statement, sessions, loop=True):
        self.stop_flag = threading.Event()
        self.conns = [cluster.connect() for _index in range(sessions)]
        self.threads = [threading.Thread(target=self._run, args=(c, statement, loop)) for c in self.conns]
        for thread in self.threads:
            thread.start()

    def _run(self, conn, statement, loop):
        try:
            with conn.cursor() as cur:
                while not self.stop_flag.is_set():
                    cur.execute(statement)
                    if not loop:
                        return
        except psycopg2.Error:
            return

    def stop(self):
        self.stop_flag.set()
        for conn in self.conns:
            conn.cancel()
        for thread in self.threads:
            thread.join(30)
        for conn in self.conns:
            conn.close()


def test_idle_server_has_no_class(busy, run_playbook):
    res = diagnose(busy, run_playbook)
    assert res["classes"] == [], res["evidence"]
    assert res["changed"] is False and res["remedies"] == {}
    assert res["evidence"]["connections"]["usable"] == MAX_CONNECTIONS - 3
    metrics = res["metrics"]
    # the harness preloads pg_stat_statements; the extension is not created: no estimate, and why
    assert metrics["p95_ms_estimate"] is None and "pg_stat_statements" in metrics["p95_source"]
    assert metrics["replication_lag_seconds"] == 0 and metrics["connection_use"] < 0.6
    assert res["criteria"]["pool_use"]["met"] is True and res["criteria"]["p95_latency"]["met"] is None


def test_p95_estimate_from_pg_stat_statements(busy, run_playbook):
    busy.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    busy.query("SELECT pg_sleep(0.01) FROM generate_series(1, 3)")
    try:
        metrics = diagnose(busy, run_playbook)["metrics"]
    finally:
        busy.query("DROP EXTENSION pg_stat_statements")
    assert metrics["p95_ms_estimate"] is not None and metrics["p95_ms_estimate"] >= 0
    assert metrics["p95_source"].startswith("ESTIMATE")
    # the collection's one latency model (health/latency.py), as health_info and the exporter
    assert "log-normal mixture" in metrics["p95_source"]


def test_connections(busy, run_playbook):
    held = [busy.connect() for _index in range(int(MAX_CONNECTIONS * 0.9))]
    try:
        res = diagnose(busy, run_playbook)
    finally:
        for conn in held:
            conn.close()
    assert res["classes"] == ["connections"], res["evidence"]
    assert res["evidence"]["connections"]["use"] >= 0.8
    assert any(r["playbook"].endswith("scale_remedy=pooling") for r in res["remedies"]["connections"])
    assert [f["rule"] for f in res["findings"] if f["rule"].endswith("_bound")] == [
        "scaling.connections_bound"
    ]


def test_locks(busy, run_playbook):
    holder = busy.connect(autocommit=False)
    holder.cursor().execute("LOCK TABLE big IN ACCESS EXCLUSIVE MODE")
    holder_pid = holder.get_backend_pid()
    waiters = Load(busy, "SELECT count(*) FROM big", 3, loop=False)
    try:
        time.sleep(0.5)
        res = diagnose(busy, run_playbook)
    finally:
        holder.rollback()
        holder.close()
        waiters.stop()
    assert res["classes"] == ["locks"], res["evidence"]
    chains = res["evidence"]["locks"]["blocking_chains"]
    assert len(chains) == 3 and all(holder_pid in c["blocked_by"] for c in chains)
    assert res["evidence"]["wait_events"].get("Lock:relation", 0) >= 3


def test_io(busy, run_playbook):
    load = Load(busy, "SELECT count(*) FROM big", 1)
    try:
        res = diagnose(busy, run_playbook)
    finally:
        load.stop()
    assert res["classes"] == ["io"], res["evidence"]
    io = res["evidence"]["io"]
    assert io["cache_hit_ratio"] < 0.9 and io["blks_read_per_second"] >= 500
    assert io["track_io_timing"] == "on"
    if busy.major >= 16:
        assert io["pg_stat_io"]["reads"] > 0
    else:
        assert "pg_stat_io" not in io


def test_memory(busy, run_playbook):
    # sorts and tuplestores past a small work_mem spill to temporary files; no table is read
    spill = (
        "SET work_mem = '64kB'; "
        "SELECT count(*) FROM (SELECT i FROM generate_series(1, 200000) i ORDER BY i DESC) s"
    )
    load = Load(busy, spill, 1)
    try:
        # Temporary bytes are counted when a statement ends: a longer window holds several whole
        # statements even when a loaded machine (CI) makes each one slow.
        res = diagnose(busy, run_playbook, interval=5)
    finally:
        load.stop()
    assert res["classes"] == ["memory"], res["evidence"]
    assert res["evidence"]["memory"]["temp_files"] > 0
    assert any(r["playbook"].endswith("scale_remedy=tune") for r in res["remedies"]["memory"])


def test_temporary_file_wait_names_are_the_servers(busy):
    # 17 renamed the wait events of temporary files; 17+ lists its wait events in pg_wait_events
    features = Features(int(busy.query("SHOW server_version_num")[0][0]))
    if busy.major < 17:
        pytest.skip("pg_wait_events exists from 17 (test_memory covers the names before)")
    names = {r[0] for r in busy.query("SELECT name FROM pg_wait_events WHERE type = 'IO'")}
    assert features.temp_file_wait_events <= names, sorted(names)


def test_cpu(busy, run_playbook):
    spin = "DO $$ DECLARE x float8 := 0; BEGIN FOR i IN 1..400000000 LOOP x := x + sqrt(i); END LOOP; END $$"
    load = Load(busy, spin, 3 * (os.cpu_count() or 1), loop=False)
    try:
        time.sleep(0.5)
        res = diagnose(busy, run_playbook)
    finally:
        load.stop()
    assert res["classes"] == ["cpu"], res["evidence"]
    assert res["evidence"]["cpu"]["on_cpu_backends_avg"] >= res["evidence"]["cpu"]["cpu_count"]
    assert "host" in res["evidence"]  # local connection: /proc was read
    assert any("add_replica" in r["playbook"] for r in res["remedies"]["cpu"])
