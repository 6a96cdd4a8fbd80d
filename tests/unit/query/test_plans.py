"""Plan rules on hand-written EXPLAIN (FORMAT JSON) fragments: each rule fires and stays quiet."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.query import plans


def doc(plan, **top):
    d = {"Plan": plan, "Planning Time": 0.2, "Execution Time": 10.0}
    d.update(top)
    return [d]


def node(kind, children=(), **fields):
    n = {"Node Type": kind, "Plan Rows": 1, "Actual Rows": 1, "Actual Loops": 1}
    n.update(fields)
    if children:
        n["Plans"] = list(children)
    return n


def seq(rows, removed, loops=1, **fields):
    return node(
        "Seq Scan",
        **dict(
            {
                "Relation Name": "orders",
                "Schema": "public",
                "Alias": "o",
                "Filter": "(o.customer_id = 42)",
                "Plan Rows": rows,
                "Actual Rows": rows,
                "Actual Loops": loops,
                "Rows Removed by Filter": removed,
            },
            **fields,
        ),
    )


def rules(plan_doc, **overrides):
    return [f.rule for f in plans.analyze(plan_doc, overrides)]


# -- QP-SCAN-001 --------------------------------------------------------------------------
def test_seq_scan_with_selective_filter():
    found = plans.analyze(doc(seq(100, 39900)))
    assert [f.rule for f in found] == ["QP-SCAN-001"]
    f = found[0]
    assert f.object == "public.orders"
    assert f.fix == "CREATE INDEX CONCURRENTLY ON public.orders (customer_id);"
    assert f.evidence["rows_removed_by_filter"] == 39900 and f.evidence["rows_returned"] == 100
    assert f.why and f.message


def test_seq_scan_counts_every_loop():
    f = plans.analyze(doc(seq(1, 400, loops=10)))[0]
    assert f.evidence["rows_removed_by_filter"] == 4000 and f.evidence["loops"] == 10


def test_seq_scan_not_selective_or_small_is_quiet():
    assert rules(doc(seq(30000, 10000))) == []  # most rows kept: an index would not help
    assert rules(doc(seq(2, 500))) == []  # small table
    assert rules(doc(node("Seq Scan", **{"Relation Name": "t", "Plan Rows": 10, "Actual Rows": 10}))) == []


def test_seq_scan_fix_names_quoted_columns():
    f = plans.analyze(doc(seq(1, 5000, Filter="((o.\"Customer\" = 1) AND (o.status = 'x'::text))")))[0]
    assert f.fix == 'CREATE INDEX CONCURRENTLY ON public.orders ("Customer", status);'


# -- QP-EST-001 ------------------------------------------------------------------------------
def test_estimate_error_over_10x_both_ways():
    under = plans.analyze(doc(node("Hash Join", **{"Plan Rows": 10, "Actual Rows": 5000})))
    assert [f.rule for f in under] == ["QP-EST-001"] and under[0].evidence["ratio"] == 500
    assert "underestimated" in under[0].message and under[0].severity == "medium"
    over = plans.analyze(doc(node("Index Scan", **{"Plan Rows": 2000, "Actual Rows": 100})))
    assert [f.rule for f in over] == ["QP-EST-001"] and "overestimated" in over[0].message


def test_estimate_within_10x_or_tiny_or_never_executed_is_quiet():
    assert rules(doc(node("Hash Join", **{"Plan Rows": 100, "Actual Rows": 900}))) == []
    assert rules(doc(node("Index Scan", **{"Plan Rows": 1, "Actual Rows": 50}))) == []  # under 100 rows
    assert rules(doc(node("Index Scan", **{"Plan Rows": 5000, "Actual Rows": 0, "Actual Loops": 0}))) == []


# -- QP-LOOP-001 ------------------------------------------------------------------------------
def nested(inner_loops, inner_kind="Index Scan"):
    outer = node("Seq Scan", **{"Relation Name": "a", "Parent Relationship": "Outer"})
    inner = node(
        inner_kind, **{"Relation Name": "b", "Parent Relationship": "Inner", "Actual Loops": inner_loops}
    )
    return doc(node("Nested Loop", [outer, inner]))


def test_nested_loop_many_inner_iterations():
    found = plans.analyze(doc(nested(5000, "Seq Scan")[0]["Plan"]))
    assert [f.rule for f in found] == ["QP-LOOP-001"]
    assert found[0].severity == "high" and found[0].evidence["inner_loops"] == 5000
    assert plans.analyze(nested(5000))[0].severity == "low"


def test_nested_loop_few_iterations_is_quiet():
    assert rules(nested(20)) == []


# -- QP-SUBPLAN-001 ---------------------------------------------------------------------------------
def test_correlated_subplan_per_row():
    sub = node(
        "Aggregate", **{"Parent Relationship": "SubPlan", "Subplan Name": "SubPlan 1", "Actual Loops": 150}
    )
    found = plans.analyze(doc(node("Seq Scan", [sub], **{"Relation Name": "customers"})))
    assert [f.rule for f in found] == ["QP-SUBPLAN-001"]
    assert found[0].evidence == {
        "node": "Aggregate [SubPlan 1] (node 2)",
        "subplan": "SubPlan 1",
        "loops": 150,
    }
    assert "LATERAL" in found[0].fix


def test_initplan_or_once_subplan_is_quiet():
    init = node("Aggregate", **{"Parent Relationship": "InitPlan", "Subplan Name": "InitPlan 1"})
    once = node(
        "Aggregate", **{"Parent Relationship": "SubPlan", "Subplan Name": "SubPlan 2", "Actual Loops": 1}
    )
    assert rules(doc(node("Result", [init, once]))) == []


# -- QP-SPILL-001/002 ---------------------------------------------------------------------------------
def test_sort_spill():
    s = node(
        "Sort",
        **{
            "Sort Method": "external merge",
            "Sort Space Used": 2600,
            "Sort Space Type": "Disk",
            "Sort Key": ["note"],
        },
    )
    found = plans.analyze(doc(s))
    assert [f.rule for f in found] == ["QP-SPILL-001"]
    assert "SET work_mem = '6MB'" in found[0].fix and "note" in found[0].fix


def test_sort_in_memory_is_quiet():
    s = node("Sort", **{"Sort Method": "quicksort", "Sort Space Used": 25, "Sort Space Type": "Memory"})
    assert rules(doc(s)) == []


def test_hash_spill_and_hashagg_disk():
    h = node("Hash", **{"Hash Batches": 8, "Original Hash Batches": 1, "Peak Memory Usage": 4000})
    assert rules(doc(node("Hash Join", [h]))) == ["QP-SPILL-002"]
    agg = node("Aggregate", **{"Strategy": "Hashed", "HashAgg Batches": 5, "Disk Usage": 1200})
    assert rules(doc(agg)) == ["QP-SPILL-002"]


def test_hash_in_memory_is_quiet():
    h = node("Hash", **{"Hash Batches": 1, "Original Hash Batches": 1, "Peak Memory Usage": 40})
    agg = node("Aggregate", **{"Strategy": "Hashed", "HashAgg Batches": 1, "Disk Usage": 0})
    assert rules(doc(node("Hash Join", [h, agg]))) == []


# -- QP-BITMAP-001 -------------------------------------------------------------------------------------
def test_lossy_bitmap_heap_scan():
    b = node(
        "Bitmap Heap Scan", **{"Relation Name": "events", "Lossy Heap Blocks": 300, "Exact Heap Blocks": 10}
    )
    found = plans.analyze(doc(b))
    assert [f.rule for f in found] == ["QP-BITMAP-001"] and found[0].evidence["lossy_heap_blocks"] == 300


def test_exact_bitmap_is_quiet():
    b = node("Bitmap Heap Scan", **{"Relation Name": "events", "Exact Heap Blocks": 310})
    assert rules(doc(b)) == []


# -- QP-VM-001 ----------------------------------------------------------------------------------------------
def test_heap_fetches_in_index_only_scan():
    i = node(
        "Index Only Scan",
        **{
            "Relation Name": "orders",
            "Schema": "public",
            "Index Name": "orders_pkey",
            "Actual Rows": 1000,
            "Plan Rows": 1000,
        },
        **{"Heap Fetches": 900},
    )
    found = plans.analyze(doc(i))
    assert [f.rule for f in found] == ["QP-VM-001"] and found[0].fix.startswith("VACUUM public.orders;")


def test_visibility_map_up_to_date_is_quiet():
    i = node(
        "Index Only Scan",
        **{"Relation Name": "orders", "Actual Rows": 1000, "Plan Rows": 900, "Heap Fetches": 0},
    )
    assert rules(doc(i)) == []


# -- QP-PAR-001 ---------------------------------------------------------------------
def test_fewer_workers_launched():
    g = node("Gather", **{"Workers Planned": 4, "Workers Launched": 1})
    found = plans.analyze(doc(g))
    assert [f.rule for f in found] == ["QP-PAR-001"]
    assert found[0].evidence["workers_planned"] == 4 and found[0].evidence["workers_launched"] == 1


def test_all_workers_launched_is_quiet():
    assert rules(doc(node("Gather Merge", **{"Workers Planned": 2, "Workers Launched": 2}))) == []


# -- QP-JIT-001 ---------------------------------------------------------------------
def test_jit_share_of_time():
    jit = {"Functions": 12, "Timing": {"Generation": 2.0, "Inlining": 20.0, "Emission": 30.0, "Total": 60.0}}
    found = plans.analyze(doc(node("Result"), **{"JIT": jit, "Execution Time": 100.0}))
    assert [f.rule for f in found] == ["QP-JIT-001"] and found[0].evidence["share"] == 0.6


def test_jit_timing_of_17_with_nested_generation():
    jit = {"Timing": {"Generation": {"Deform": 1.0, "Total": 3.0}, "Inlining": 0.0, "Total": {"Total": 50.0}}}
    assert plans.jit_ms(doc(node("Result"), JIT=jit)[0]) == 50.0
    no_total = {"Timing": {"Generation": {"Deform": 1.0, "Total": 3.0}, "Emission": 7.0}}
    assert plans.jit_ms(doc(node("Result"), JIT=no_total)[0]) == 10.0


def test_small_jit_share_is_quiet():
    jit = {"Timing": {"Total": 5.0}}
    assert rules(doc(node("Result"), **{"JIT": jit, "Execution Time": 2000.0})) == []


# -- without ANALYZE, summary, comparison ---------------------------------------------------------------
def planned_only(kind="Seq Scan", **fields):
    n = {"Node Type": kind, "Plan Rows": 100, "Total Cost": 800.0}
    n.update(fields)
    return [{"Plan": n, "Planning Time": 0.1}]


def test_without_analyze_only_static_rules_run():
    d = planned_only(**{"Relation Name": "orders", "Filter": "(a = 1)"})
    assert plans.analyze(d) == []
    assert set(plans.rules_not_run(d)) == set(plans.ANALYZE_RULES)
    assert plans.rules_not_run(doc(node("Result"))) == {}
    t = plans.timing(d)
    assert t["total_time_ms"] is None and t["planning_time_ms"] == 0.1 and t["total_cost"] == 800.0


def test_buffers_and_timing():
    top = node("Seq Scan", **{"Shared Hit Blocks": 90, "Shared Read Blocks": 10, "Temp Written Blocks": 4})
    b = plans.buffers(doc(top, Planning={"Shared Hit Blocks": 3}))
    assert b["shared_hit"] == 90 and b["shared_read"] == 10 and b["cache_hit_ratio"] == 0.9
    assert b["temp_written"] == 4 and b["planning_shared_hit"] == 3
    assert plans.timing(doc(top))["total_time_ms"] == 10.2


def test_compare_reports_time_ratio_and_shape_changes():
    before = {"plan": doc(seq(100, 39900, **{"Shared Hit Blocks": 400}))[0], "total_time_ms": 10.2}
    idx = node(
        "Bitmap Heap Scan",
        [node("Bitmap Index Scan", **{"Index Name": "orders_customer_id_idx"})],
        **{"Relation Name": "orders", "Schema": "public"},
    )
    after = doc(idx, **{"Execution Time": 1.0})
    c = plans.compare(before, after)
    assert c["basis"] == "total_time_ms" and c["ratio"] == 0.12 and c["faster"] is True
    assert c["shape_changed"] is True
    changes = dict((ch["relation"], ch) for ch in c["shape_changes"])
    assert changes["public.orders"] == {
        "relation": "public.orders",
        "before": ["Seq Scan"],
        "after": ["Bitmap Heap Scan", "Bitmap Index Scan using orders_customer_id_idx"],
    }
    same = plans.compare(before, before)
    assert same["shape_changed"] is False and same["ratio"] == 1.0


def test_compare_falls_back_to_cost_without_analyze():
    c = plans.compare(planned_only(), planned_only(**{"Total Cost": 200.0}))
    assert c["basis"] == "total_cost" and c["ratio"] == 0.25


def test_bad_input_and_thresholds():
    with pytest.raises(plans.PlanError, match="no 'Plan'"):
        plans.analyze({"nothing": 1})
    with pytest.raises(plans.PlanError, match="unknown key 'nope'"):
        plans.thresholds({"nope": 1})
    with pytest.raises(plans.PlanError, match="must be a number"):
        plans.thresholds({"subplan_loops": "many"})
    assert rules(doc(seq(100, 39900)), seq_scan_min_removed=100000) == []


def test_improved_counts_buffers_not_one_noisy_timing():
    """A slower single timing on a busy host does not undo an index that cut the pages read."""
    before = doc(seq(100, 39900, **{"Shared Hit Blocks": 400}), **{"Execution Time": 1.0})
    idx = node(
        "Index Scan",
        **{"Relation Name": "orders", "Schema": "public", "Index Name": "orders_customer_id_idx"},
        **{"Shared Hit Blocks": 4},
    )
    after = doc(idx, **{"Execution Time": 3.0})
    c = plans.compare(before, after)
    assert c["faster"] is False
    assert c["improved"] is True
    slow_plan, index_plan = before, after
    worse = plans.compare(index_plan, slow_plan)
    assert worse["improved"] is False
    no_buffers = plans.compare(
        doc(seq(100, 39900), **{"Execution Time": 2.0}), doc(idx, **{"Execution Time": 1.0})
    )
    assert no_buffers["buffers"]["before"]["shared_hit"] == 0
    assert no_buffers["improved"] is True
