"""diagnose.classify / p95_estimate / criteria: pure functions on hand-made samples."""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features
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


def test_p95_estimate_and_criteria():
    rows = [dict(calls=90, mean=1.0, stddev=0.0), dict(calls=10, mean=50.0, stddev=10.0)]
    # 95 % of the calls are reached in the second statement: 50 + 1.645 * 10
    assert dg.p95_estimate(rows) == 66.45
    assert dg.p95_estimate([]) is None
    met = dg.criteria(dict(cpu=0.5, p95_ms_estimate=66.45, connection_use=0.2, replication_lag_seconds=0))
    assert met["all_met"] is True and met["p95_latency"]["met"] is True
    missed = dg.criteria(dict(cpu=0.9, p95_ms_estimate=None, connection_use=0.7, replication_lag_seconds=2))
    assert missed["all_met"] is False and missed["p95_latency"]["met"] is None
    assert [k for k in ("cpu", "pool_use", "replication_lag") if missed[k]["met"] is False] == [
        "cpu",
        "pool_use",
        "replication_lag",
    ]
