"""tune.recommend against pgtune's published formulas (le0pard/pgtune), values computed by hand
from those formulas for a Linux server; tune.rolling_plan's safe order."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.scaling import tune

# (memory, workload, storage, cpus, max_connections, major) -> what pgtune gives (same names, same text).
# Expected work_mem by hand: (RAM kB - shared_buffers kB) / ((max_connections + workers) * 3) [/2 dw,
# mixed; /6 desktop], floored, at least 4MB; workers = cpus when cpus >= 4, else 8.
CASES = [
    (
        ("8GB", "web", "ssd", 4, None, 16),
        dict(
            max_connections="200",
            shared_buffers="2GB",
            effective_cache_size="6GB",
            maintenance_work_mem="512MB",
            checkpoint_completion_target="0.9",
            wal_buffers="16MB",
            default_statistics_target="100",
            random_page_cost="1.1",
            effective_io_concurrency="200",
            work_mem="10280kB",
            huge_pages="try",
            min_wal_size="1GB",
            max_wal_size="4GB",
            max_worker_processes="4",
            max_parallel_workers_per_gather="2",
            max_parallel_workers="4",
            max_parallel_maintenance_workers="2",
            jit="off",
            wal_compression="lz4",
        ),
    ),
    (
        ("2GB", "oltp", "hdd", 2, None, 15),
        dict(
            max_connections="300",
            shared_buffers="512MB",
            effective_cache_size="1536MB",
            maintenance_work_mem="128MB",
            checkpoint_completion_target="0.9",
            wal_buffers="16MB",
            default_statistics_target="100",
            random_page_cost="4",
            effective_io_concurrency="2",
            work_mem="4MB",
            huge_pages="off",
            min_wal_size="2GB",
            max_wal_size="8GB",
            jit="off",
            wal_compression="lz4",
        ),
    ),
    (
        ("64GB", "dw", "nvme", 16, None, 17),
        dict(
            max_connections="40",
            shared_buffers="16GB",
            effective_cache_size="48GB",
            maintenance_work_mem="8GB",
            checkpoint_completion_target="0.9",
            wal_buffers="16MB",
            default_statistics_target="500",
            random_page_cost="1.1",
            effective_io_concurrency="1000",
            work_mem="149796kB",
            huge_pages="try",
            min_wal_size="4GB",
            max_wal_size="16GB",
            max_worker_processes="16",
            max_parallel_workers_per_gather="8",
            max_parallel_workers="16",
            max_parallel_maintenance_workers="4",
            wal_compression="lz4",
            autovacuum_max_workers="4",
            autovacuum_work_mem="2GB",
        ),
    ),
    (
        ("1GB", "desktop", "hdd", None, None, 14),
        dict(
            max_connections="20",
            shared_buffers="64MB",
            effective_cache_size="256MB",
            maintenance_work_mem="64MB",
            checkpoint_completion_target="0.9",
            wal_buffers="1966kB",
            default_statistics_target="100",
            random_page_cost="4",
            effective_io_concurrency="2",
            work_mem="4MB",
            huge_pages="off",
            min_wal_size="100MB",
            max_wal_size="2GB",
            wal_compression="on",
        ),
    ),
    (
        ("16GB", "mixed", "san", 8, 150, 18),
        dict(
            max_connections="150",
            shared_buffers="4GB",
            effective_cache_size="12GB",
            maintenance_work_mem="1GB",
            checkpoint_completion_target="0.9",
            wal_buffers="16MB",
            default_statistics_target="100",
            random_page_cost="1.1",
            effective_io_concurrency="300",
            work_mem="13273kB",
            huge_pages="try",
            min_wal_size="1GB",
            max_wal_size="4GB",
            max_worker_processes="8",
            max_parallel_workers_per_gather="4",
            max_parallel_workers="8",
            max_parallel_maintenance_workers="4",
            jit="off",
            wal_compression="lz4",
        ),
    ),
    (
        ("32GB", "oltp", "ssd", 32, 500, 16),
        dict(
            max_connections="500",
            shared_buffers="8GB",
            effective_cache_size="24GB",
            maintenance_work_mem="2GB",
            checkpoint_completion_target="0.9",
            wal_buffers="16MB",
            default_statistics_target="100",
            random_page_cost="1.1",
            effective_io_concurrency="200",
            work_mem="15768kB",
            huge_pages="try",
            min_wal_size="2GB",
            max_wal_size="8GB",
            max_worker_processes="32",
            max_parallel_workers_per_gather="4",
            max_parallel_workers="32",
            max_parallel_maintenance_workers="4",
            jit="off",
            wal_compression="lz4",
            autovacuum_max_workers="5",
            autovacuum_work_mem="2GB",
        ),
    ),
    (
        ("4GB", "web", "hdd", 2, 100, 14),
        dict(
            max_connections="100",
            shared_buffers="1GB",
            effective_cache_size="3GB",
            maintenance_work_mem="256MB",
            checkpoint_completion_target="0.9",
            wal_buffers="16MB",
            default_statistics_target="100",
            random_page_cost="4",
            effective_io_concurrency="2",
            work_mem="9709kB",
            huge_pages="off",
            min_wal_size="1GB",
            max_wal_size="4GB",
            jit="off",
            wal_compression="on",
        ),
    ),
    (
        ("128GB", "dw", "ssd", 64, None, 18),
        dict(
            max_connections="40",
            shared_buffers="32GB",
            effective_cache_size="96GB",
            maintenance_work_mem="8GB",
            checkpoint_completion_target="0.9",
            wal_buffers="16MB",
            default_statistics_target="500",
            random_page_cost="1.1",
            effective_io_concurrency="200",
            work_mem="161319kB",
            huge_pages="try",
            min_wal_size="4GB",
            max_wal_size="16GB",
            max_worker_processes="64",
            max_parallel_workers_per_gather="32",
            max_parallel_workers="64",
            max_parallel_maintenance_workers="4",
            wal_compression="lz4",
            autovacuum_max_workers="5",
            autovacuum_work_mem="2GB",
        ),
    ),
    (
        ("512MB", "mixed", "nvme", 1, None, 15),
        dict(
            max_connections="100",
            shared_buffers="128MB",
            effective_cache_size="384MB",
            maintenance_work_mem="32MB",
            checkpoint_completion_target="0.9",
            wal_buffers="3932kB",
            default_statistics_target="100",
            random_page_cost="1.1",
            effective_io_concurrency="1000",
            work_mem="4MB",
            huge_pages="off",
            min_wal_size="1GB",
            max_wal_size="4GB",
            jit="off",
            wal_compression="lz4",
        ),
    ),
    (
        ("24GB", "web", "nvme", 6, None, 17),
        dict(
            max_connections="200",
            shared_buffers="6GB",
            effective_cache_size="18GB",
            maintenance_work_mem="1536MB",
            checkpoint_completion_target="0.9",
            wal_buffers="16MB",
            default_statistics_target="100",
            random_page_cost="1.1",
            effective_io_concurrency="1000",
            work_mem="30541kB",
            huge_pages="try",
            min_wal_size="1GB",
            max_wal_size="4GB",
            max_worker_processes="6",
            max_parallel_workers_per_gather="3",
            max_parallel_workers="6",
            max_parallel_maintenance_workers="3",
            jit="off",
            wal_compression="lz4",
        ),
    ),
    (
        ("3GB", "desktop", "ssd", 4, None, 16),
        dict(
            max_connections="20",
            shared_buffers="192MB",
            effective_cache_size="768MB",
            maintenance_work_mem="192MB",
            checkpoint_completion_target="0.9",
            wal_buffers="5898kB",
            default_statistics_target="100",
            random_page_cost="1.1",
            effective_io_concurrency="200",
            work_mem="6826kB",
            huge_pages="off",
            min_wal_size="100MB",
            max_wal_size="2GB",
            max_worker_processes="4",
            max_parallel_workers_per_gather="2",
            max_parallel_workers="4",
            max_parallel_maintenance_workers="2",
            wal_compression="lz4",
        ),
    ),
]


@pytest.mark.parametrize("given,expected", CASES, ids=["-".join(str(x) for x in c[0]) for c in CASES])
def test_pgtune_formulas(given, expected):
    memory, workload, storage, cpus, conns, major = given
    got = tune.recommend(
        memory, workload=workload, storage=storage, cpus=cpus, max_connections=conns, major=major
    )
    assert tune.as_dict(got) == expected
    assert all(r["why"] for r in got)


def test_deliberate_differences():
    # desktop: no wal_level = minimal / max_wal_senders = 0 (pgtune has them); no lz4 build: pglz.
    got = tune.as_dict(tune.recommend("8GB", workload="desktop", storage="ssd", major=16, lz4=False))
    assert "wal_level" not in got and "max_wal_senders" not in got
    assert got["wal_compression"] == "pglz"
    assert set(tune.DIFFERENCES) == {"max_connections", "wal_level", "wal_compression"}


def test_memory_parsing_and_bad_input():
    assert tune.parse_memory("8GB") == 8 * 1024 * 1024
    assert tune.parse_memory("1.5GB") == 1536 * 1024
    assert tune.parse_memory(2 * 1024**3) == 2 * 1024 * 1024
    assert tune.format_kb(1536 * 1024) == "1536MB" and tune.format_kb(20971) == "20971kB"
    for bad in ("lots", "100MB", ""):
        with pytest.raises(tune.TuneError):
            tune.parse_memory(bad)
    with pytest.raises(tune.TuneError, match="workload"):
        tune.recommend("8GB", workload="batch")
    with pytest.raises(tune.TuneError, match="storage"):
        tune.recommend("8GB", storage="tape")


def test_rolling_plan_raise_goes_to_standbys_first():
    steps = tune.rolling_plan(
        "p",
        ["s1", "s2"],
        {"max_connections": "100", "work_mem": "4MB"},
        {"max_connections": "200", "work_mem": "8MB"},
    )
    assert [s["node"] for s in steps] == ["s1", "s2", "p"]
    assert all(s["restart"] for s in steps)
    assert steps[-1]["settings"] == {"max_connections": "200", "work_mem": "8MB"}


def test_rolling_plan_lower_goes_to_primary_first():
    current = {"max_connections": "300", "max_worker_processes": "8", "shared_buffers": "128MB"}
    wanted = {"max_connections": "100", "max_worker_processes": "16", "shared_buffers": "1GB"}
    steps = tune.rolling_plan("p", ["s1"], current, wanted)
    assert [s["node"] for s in steps] == ["p", "s1", "p"]
    assert steps[0]["settings"] == {"max_connections": "100"}
    assert steps[1]["settings"] == wanted
    # raised guarded setting on the primary only after the standby holds it
    assert steps[2]["settings"] == {"max_worker_processes": "16", "shared_buffers": "1GB"}


def test_rolling_plan_units_nothing_to_do_and_no_standby():
    assert tune.rolling_plan("p", ["s"], {"work_mem": "4MB"}, {"work_mem": "4MB"}) == []
    steps = tune.rolling_plan("p", [], {"max_connections": "300"}, {"max_connections": "100"})
    assert steps == [dict(node="p", settings={"max_connections": "100"}, restart=True, why=steps[0]["why"])]
    # units compared as sizes: 1GB is more than 512MB
    assert tune._compare("1GB", "512MB") == 1 and tune._compare("on", "off") is None
