"""diagnose.classify / p95_estimate / criteria: pure functions on hand-made samples."""

import math
import statistics

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features
from ansible_collections.dbarch.postgresql.plugins.module_utils.health import latency
from ansible_collections.dbarch.postgresql.plugins.module_utils.scaling import diagnose as dg


def counters(at, **values):
    base = dict(blks_read=0, blks_hit=0, blk_read_time=0, temp_files=0, temp_bytes=0, deadlocks=0, at=at)
    base.update(values)
    base["checkpoints"] = dict(timed=5, requested=1)
    return base


def sample(clients=1, active=0, on_cpu=0, io_wait=0, lock_wait=0):
    return dict(
        clients=clients,
        active=active,
        on_cpu=on_cpu,
        io_wait=io_wait,
        lock_wait=lock_wait,
        idle_in_transaction=0,
        waits=[],
        blocked=[],
    )


SETTINGS = {"max_connections": "100", "superuser_reserved_connections": "3", "track_io_timing": "on"}


def run(first, second, seen, cpus=4):
    return dg.classify(first, second, seen, SETTINGS, features=Features(150000), cpus=cpus)


def test_idle_has_no_class_and_each_rule_alone():
    assert run(counters(0), counters(10), [sample()] * 4)["classes"] == []
    # memory: 100 MB of temporary files in 10 s
    assert run(counters(0), counters(10, temp_files=3, temp_bytes=100 * 2**20), [sample()] * 4)[
        "classes"
    ] == ["memory"]
    # io: hit ratio 0.5 at 1000 blocks/s
    io = run(counters(0), counters(10, blks_read=10000, blks_hit=10000), [sample(active=1, on_cpu=1)] * 4)
    assert io["classes"] == ["io"] and io["evidence"]["io"]["cache_hit_ratio"] == 0.5
    # cpu: 4 backends on CPU for 4 cores
    assert run(counters(0), counters(10), [sample(clients=5, active=4, on_cpu=4)] * 4)["classes"] == ["cpu"]
    # connections: 80 of 97 usable slots (this session is the 81st)
    assert run(counters(0), counters(10), [sample(clients=80)] * 4)["classes"] == ["connections"]
    # locks: waiters in half the samples
    res = run(counters(0), counters(10), [sample(active=2, lock_wait=2), sample()])
    assert res["classes"] == ["locks"]
    assert [f["rule"] for f in (f.to_dict() for f in res["findings"])] == ["scaling.locks_bound"]


def test_cpu_unknown_without_core_count():
    assert run(counters(0), counters(10), [sample(active=8, on_cpu=8)] * 4, cpus=None)["classes"] == []


def test_p95_estimate_is_the_health_latency_model():
    # 94 calls of 2 ms and 6 of 50 ms, no spread: the p95 is in the slow statement, at its 50 ms.
    rows = [
        dict(calls=94, mean_time=2.0, stddev_time=0.0, min_time=2.0, max_time=2.0),
        dict(calls=6, mean_time=50.0, stddev_time=0.0, min_time=50.0, max_time=50.0),
    ]
    assert dg.p95_estimate(rows) == 50.0
    # With spread: the log-normal mixture cut to [min, max] (the old mean + 1.645 stddev of the slow
    # statement, 66.45 ms, was over its own max of 60 ms).
    rows = [
        dict(calls=90, mean_time=1.0, stddev_time=0.0, min_time=1.0, max_time=1.0),
        dict(calls=10, mean_time=50.0, stddev_time=10.0, min_time=30.0, max_time=60.0),
    ]
    value = dg.p95_estimate(rows)
    assert value == round(latency.estimate_percentile(rows), 3)
    assert 30.0 < value < 60.0
    # 90 % fast and 10 % slow calls: the p95 is the slow statement's median, here in closed form: the
    # log-normal (sigma^2 = ln(1 + cv^2), mu = ln(mean) - sigma^2 / 2) cut to [30, 60] reaches a half of
    # its kept mass at exp(mu + sigma * Phi^-1(Phi(z_min) + (Phi(z_max) - Phi(z_min)) / 2)).
    sigma = math.sqrt(math.log(1 + (10.0 / 50.0) ** 2))
    mu = math.log(50.0) - sigma**2 / 2
    unit = statistics.NormalDist()
    low, high = (unit.cdf((math.log(v) - mu) / sigma) for v in (30.0, 60.0))
    assert value == pytest.approx(math.exp(mu + sigma * unit.inv_cdf(low + (high - low) / 2)), rel=1e-4)
    assert dg.p95_estimate([]) is None
    assert dg.p95_estimate([dict(calls=0, mean_time=1.0, stddev_time=0.0)]) is None


def test_p95_metric_labels_the_estimate_and_says_why_there_is_none(monkeypatch):
    def fake(value, reason=None):
        return lambda session: dict(value_ms=value, reason=reason, statements=3, calls=120)

    monkeypatch.setattr(latency, "from_pg_stat_statements", fake(12.5))
    value, source = dg.p95_metric(None)
    assert value == 12.5 and source.startswith("ESTIMATE") and latency.METHOD in source
    monkeypatch.setattr(
        latency, "from_pg_stat_statements", fake(None, "pg_stat_statements has recorded no call yet")
    )
    assert dg.p95_metric(None) == (
        None,
        "no estimate from pg_stat_statements here: pg_stat_statements has recorded no call yet",
    )


def test_criteria():
    met = dg.criteria(dict(cpu=0.5, p95_ms_estimate=66.45, connection_use=0.2, replication_lag_seconds=0))
    assert met["all_met"] is True and met["p95_latency"]["met"] is True
    missed = dg.criteria(dict(cpu=0.9, p95_ms_estimate=None, connection_use=0.7, replication_lag_seconds=2))
    assert missed["all_met"] is False and missed["p95_latency"]["met"] is None
    assert [k for k in ("cpu", "pool_use", "replication_lag") if missed[k]["met"] is False] == [
        "cpu",
        "pool_use",
        "replication_lag",
    ]


@pytest.mark.parametrize(
    "num, stem", [(140000, "BufFile"), (160004, "BufFile"), (170000, "Buffile"), (180001, "Buffile")]
)
def test_waits_on_temporary_files_are_spills_not_storage_io(num, stem):
    # 17 renamed the temporary file wait events (BufFileWrite -> BuffileWrite)
    features = Features(num)
    row = dict(wait_event_type="IO", wait_event=stem + "Write")
    assert not dg.is_storage_wait(row, features)
    assert not dg.is_storage_wait(dict(row, wait_event=stem + "Read"), features)
    assert dg.is_storage_wait(dict(row, wait_event="DataFileRead"), features)
    assert not dg.is_storage_wait(dict(wait_event_type="Lock", wait_event="relation"), features)
