# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The p95 estimate from pg_stat_statements' per-statement calls, mean, stddev, min and max:
checked against the percentile of samples drawn from known distributions (seeded)."""

import math
import random
import statistics

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.health import latency


def stats_of(samples):
    """What pg_stat_statements keeps for one statement with these execution times."""
    return dict(
        calls=len(samples),
        mean_time=statistics.fmean(samples),
        stddev_time=statistics.pstdev(samples),
        min_time=min(samples),
        max_time=max(samples),
    )


def true_percentile(samples, q=0.95):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(math.ceil(q * len(ordered))) - 1)]


def test_one_lognormal_statement_is_recovered_closely():
    rng = random.Random(14)  # noqa: S311 - seeded samples, not secrets
    samples = [rng.lognormvariate(math.log(5.0), 0.6) for _i in range(20000)]
    est = latency.estimate_percentile([stats_of(samples)])
    assert est == pytest.approx(true_percentile(samples), rel=0.05)


def test_a_mixture_is_weighted_by_calls():
    rng = random.Random(15)  # noqa: S311 - seeded samples, not secrets
    fast = [rng.lognormvariate(math.log(1.0), 0.3) for _i in range(9000)]
    slow = [rng.lognormvariate(math.log(80.0), 0.3) for _i in range(1000)]
    est = latency.estimate_percentile([stats_of(fast), stats_of(slow)])
    # 10 % of the calls are slow: the p95 falls inside the slow statement's distribution.
    assert est == pytest.approx(true_percentile(fast + slow), rel=0.10)
    assert est > max(fast)
    # The same statements with the weights swapped put the p95 far higher: calls matter.
    fewer_fast = dict(stats_of(fast), calls=100)
    assert latency.estimate_percentile([fewer_fast, stats_of(slow)]) > est


def test_constant_statements_and_the_min_max_cut():
    # No spread: every call takes the mean; the p95 of 96 calls of 2 ms and 4 of 50 ms is 2 ms.
    rows = [
        dict(calls=96, mean_time=2.0, stddev_time=0.0, min_time=2.0, max_time=2.0),
        dict(calls=4, mean_time=50.0, stddev_time=0.0, min_time=50.0, max_time=50.0),
    ]
    assert latency.estimate_percentile(rows) == pytest.approx(2.0, rel=1e-3)
    # 94 and 6: the p95 is in the slow one.
    rows[0]["calls"], rows[1]["calls"] = 94, 6
    assert latency.estimate_percentile(rows) == pytest.approx(50.0, rel=1e-3)
    # A wide stddev never pushes the estimate over the statement's max.
    wide = dict(calls=10, mean_time=10.0, stddev_time=100.0, min_time=1.0, max_time=40.0)
    assert 1.0 <= latency.estimate_percentile([wide]) <= 40.0


def test_nothing_recorded_is_none_and_a_bad_quantile_is_refused():
    assert latency.estimate_percentile([]) is None
    assert latency.estimate_percentile([dict(calls=0, mean_time=1.0, stddev_time=0.0)]) is None
    with pytest.raises(latency.LatencyError):
        latency.estimate_percentile([dict(calls=1, mean_time=1.0)], quantile=1.5)


def test_the_cdf_of_one_statement_is_monotonic_and_bounded():
    values = [latency.statement_cdf(x / 10.0, 5.0, 3.0, 0.5, 30.0) for x in range(0, 400)]
    assert values[0] == 0.0 and values[-1] == 1.0
    assert all(a <= b for a, b in zip(values[:-1], values[1:], strict=True))
