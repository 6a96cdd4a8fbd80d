"""query_stats (snapshot, delta, ordering, findings) and explain.classify without a database."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.query import explain as ex
from ansible_collections.dbarch.postgresql.plugins.module_utils.query import query_stats as qs


def row(key, calls, total, **extra):
    r = dict(
        key=key,
        queryid=key,
        query="q" + key,
        calls=calls,
        total_time=total,
        mean_time=total / calls,
        min_time=0.1,
        rows=calls,
        shared_blks_hit=10 * calls,
        shared_blks_read=calls,
        temp_blks_read=0,
        temp_blks_written=0,
        blk_read_time=0.0,
        blk_write_time=0.0,
        total_plan_time=0.0,
        wal_bytes=0,
        temp_blk_read_time=None,
        temp_blk_write_time=None,
        jit_time=None,
        toplevel=True,
        stats_since=None,
    )
    r.update(extra)
    return r


def data(rows, reset="2026-01-01T00:00:00+00:00", taken="2026-01-01T01:00:00+00:00"):
    return dict(statements=rows, stats_reset=reset, taken_at=taken)


ST = dict(database="shop")


def test_delta_subtracts_and_leaves_out_idle_statements():
    snap = qs.make_snapshot(data([row("a", 10, 100.0), row("b", 5, 50.0), row("gone", 1, 1.0)]), ST, 160000)
    now = data(
        [row("a", 15, 160.0), row("b", 5, 50.0), row("new", 2, 4.0)],
        taken="2026-01-01T02:00:00+00:00",
    )
    rows, info = qs.delta(now, snap)
    by = {r["key"]: r for r in rows}
    assert set(by) == {"a", "new"}
    assert by["a"]["calls"] == 5 and by["a"]["total_time"] == 60.0 and by["a"]["mean_time"] == 12.0
    assert by["a"]["min_time"] is None and by["a"]["temp_blk_read_time"] is None
    assert by["new"]["calls"] == 2
    assert info["disappeared"] == 1 and info["new"] == 1 and info["stats_reset_between"] is False


def test_delta_after_a_reset_takes_the_counters_since_the_reset():
    snap = qs.make_snapshot(data([row("a", 10, 100.0)]), ST, 160000)
    now = data([row("a", 3, 9.0)], reset="2026-01-01T01:30:00+00:00")
    rows, info = qs.delta(now, snap)
    assert info["stats_reset_between"] is True and info["disappeared"] == 0
    assert rows[0]["calls"] == 3 and rows[0]["total_time"] == 9.0


def test_delta_statement_evicted_and_recorded_again():
    snap = qs.make_snapshot(data([row("a", 10, 100.0), row("b", 10, 10.0)]), ST, 170000)
    now = data(
        [
            row("a", 4, 8.0),  # counters went down: evicted and re-entered
            # 17+: stats_since after the snapshot
            row("b", 12, 14.0, stats_since="2026-01-01T01:10:00+00:00"),
        ]
    )
    rows, info = qs.delta(now, snap)
    by = {r["key"]: r for r in rows}
    assert by["a"]["calls"] == 4 and by["b"]["calls"] == 12 and info["reentered"] == 2


def test_snapshot_is_checked():
    with pytest.raises(qs.QueryStatsError, match="register the task"):
        qs.check_snapshot({"statements": {}})
    with pytest.raises(qs.QueryStatsError, match="counters"):
        qs.check_snapshot(dict(format=qs.SNAPSHOT_FORMAT, statements={}, counters=["calls"]))


def test_shape_top_and_findings():
    shaped = [
        qs.shape(row("a", 10, 100.0)),
        qs.shape(row("b", 1, 500.0, shared_blks_hit=100, shared_blks_read=5000, temp_blks_written=4000)),
        qs.shape(row("c", 1000, 10.0, shared_blks_hit=0, shared_blks_read=0)),
    ]
    assert shaped[0]["cache_hit_ratio"] == round(100 / 110.0, 4) and shaped[2]["cache_hit_ratio"] is None
    assert shaped[0]["temp_blk_read_time_ms"] is None and shaped[0]["queryid"] == "a"
    assert [s["queryid"] for s in qs.top(shaped, "total_time", 2)] == ["b", "a"]
    assert [s["queryid"] for s in qs.top(shaped, "calls", 0)] == ["c", "a", "b"]
    assert [s["queryid"] for s in qs.top(shaped, "cache_hit_ratio", 5)] == ["b", "a"]
    assert qs.top(shaped, "temp_blocks", 1)[0]["queryid"] == "b"
    found = qs.findings(shaped)
    assert sorted(f.rule for f in found) == ["QS-CACHE-001", "QS-TEMP-001"]
    assert all(f.object == "queryid b" for f in found)
    assert qs.findings(shaped, {"temp_blocks": 5000, "cache_hit_ratio": 0.01}) == []
    with pytest.raises(qs.QueryStatsError, match="unknown key"):
        qs.thresholds({"nope": 1})


def test_every_order_by_has_a_metric():
    s = qs.shape(row("a", 1, 1.0))
    assert all(metric in s for metric in qs.ORDER_BY.values())


@pytest.mark.parametrize(
    "sql,kind,writes",
    [
        ("SELECT * FROM t WHERE a = $1", "SELECT", False),
        ("VALUES (1)", "SELECT", False),
        ("SELECT * FROM t FOR UPDATE", "SELECT", True),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "SELECT", True),
        ("UPDATE t SET a = 1;", "UPDATE", True),
        ("INSERT INTO t VALUES (1)", "INSERT", True),
        ("DELETE FROM t", "DELETE", True),
        ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "MERGE", True),
    ],
)
def test_classify(sql, kind, writes):
    info = ex.classify(sql)
    assert info["kind"] == kind and info["writes"] is writes
    assert not info["text"].endswith(";")


def test_classify_counts_parameters_and_rejects():
    assert ex.classify("SELECT $2::int + $1")["params"] == 2
    for sql, text in (
        ("SELECT 1; SELECT 2", "2 statements"),
        ("VACUUM t", "VACUUM statement"),
        ("SELECT * INTO x FROM t", "SELECT INTO"),
        ("SELEC 1", "not valid SQL"),
        ("  ", "empty"),
    ):
        with pytest.raises(ex.ExplainError, match=text):
            ex.classify(sql)
    info = ex.classify("SELECT $1")
    with pytest.raises(ex.ExplainError, match="1 parameter"):
        ex.check_params(info, [])
    with pytest.raises(ex.ExplainError, match="no \\$1"):
        ex.check_params(ex.classify("SELECT 1"), [1])


def test_explain_options_are_fixed_words():
    assert "ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON" in repr(ex.explain_sql(True))
    assert "ANALYZE false, VERBOSE, SETTINGS, FORMAT JSON" in repr(ex.explain_sql(False))


def test_compare_flags_statements_that_grew_past_the_ratio():
    before = [
        dict(queryid="1", query="SELECT a", mean_time_ms=2.0, calls=100),
        dict(queryid="2", query="SELECT b", mean_time_ms=1.0, calls=10),
        dict(queryid="3", query="SELECT c", mean_time_ms=0.0, calls=5),  # no mean: not compared
    ]
    after = [
        dict(queryid="1", query="SELECT a", mean_time_ms=6.0, calls=3),
        dict(queryid="2", query="SELECT b", mean_time_ms=1.2, calls=4),
        dict(queryid="3", query="SELECT c", mean_time_ms=5.0, calls=4),
        dict(queryid="4", query="SELECT new", mean_time_ms=50.0, calls=4),  # new: nothing to compare with
    ]
    rows, found = qs.compare(before, after)
    assert [(r["queryid"], r["ratio"]) for r in rows] == [("1", 3.0), ("2", 1.2)]
    assert [(f.rule, f.object) for f in found] == [("QS-LAT-001", "queryid 1")]
    assert "2.000 ms to 6.000 ms" in found[0].message and found[0].evidence["calls_after"] == 3
    # thresholds move the bar
    assert qs.compare(before, after, dict(latency_ratio=1.1))[1][1].object == "queryid 2"
    # 1.0 -> 1.2 ms is 0.2 ms: under a floor of 0.5 ms
    floor = qs.compare(before, after, dict(latency_ratio=1.1, latency_min_delta_ms=0.5))[1]
    assert [f.object for f in floor] == ["queryid 1"]
    assert qs.compare(before, after, dict(latency_min_calls=5))[1] == []


def test_compare_leaves_out_growth_within_the_noise():
    # A statement that scatters (stddev 4 ms around 2 ms) and was called 3 times after at 6 ms a call:
    # the difference (4 ms) is within 3 standard errors (4 * sqrt(1/100 + 1/3) = 2.34 ms; x3 = 7.03 ms).
    before = [dict(queryid="1", query="SELECT a", mean_time_ms=2.0, stddev_time_ms=4.0, calls=100)]
    after = [dict(queryid="1", query="SELECT a", mean_time_ms=6.0, calls=3)]
    rows, found = qs.compare(before, after)
    assert found == [] and rows[0]["standard_error_ms"] == pytest.approx(2.3438, abs=1e-3)
    # the same growth over 300 calls is far past the noise (0.34 ms)
    after[0]["calls"] = 300
    assert [f.object for f in qs.compare(before, after)[1]] == ["queryid 1"]
    # a tight statement (stddev 0.1 ms) growing 2 -> 6 ms in three calls is a regression
    before[0]["stddev_time_ms"], after[0]["calls"] = 0.1, 3
    assert [f.object for f in qs.compare(before, after)[1]] == ["queryid 1"]
    # a 0.01 ms statement growing to 0.05 ms (x5) is under the 0.1 ms floor
    tiny = [dict(queryid="9", query="SELECT 1", mean_time_ms=0.01, stddev_time_ms=0.0, calls=1000)]
    assert qs.compare(tiny, [dict(queryid="9", query="SELECT 1", mean_time_ms=0.05, calls=500)])[1] == []
    assert qs.compare(tiny, [dict(queryid="9", query="SELECT 1", mean_time_ms=0.5, calls=500)])[1] != []
