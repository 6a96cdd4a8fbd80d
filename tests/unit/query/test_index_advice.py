"""index_advice without a database: reading plan expressions and ordering index columns."""

from ansible_collections.dbarch.postgresql.plugins.module_utils.query import index_advice as ia
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.catalog import Column, Table
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features


def orders():
    t = Table("shop", "orders", row_estimate=100000)
    for name, nd in (("id", -1.0), ("customer_id", 5000.0), ("status", 4.0), ("created_at", -0.9)):
        c = Column(name=name, position=len(t.columns) + 1, type="text")
        c.n_distinct = nd
        c.null_frac = 0.0
        t.columns.append(c)
    return t


def test_predicates_of_a_verbose_filter():
    text = (
        "((o.customer_id = $1) AND ((o.status)::text = 'new'::text) "
        "AND (o.created_at > (now() - '7 days'::interval)))"
    )
    assert ia.predicates(text, "o") == [
        dict(column="customer_id", kind="eq", value_kind="param", value="$1"),
        dict(column="status", kind="eq", value_kind="constant", value="'new'::text"),
        dict(column="created_at", kind="range", value_kind="expression", value="now() - '7 days'::interval"),
    ]
    # another alias, OR-ed conditions and <> give nothing
    assert ia.predicates("(c.id = 3)", "o") == []
    assert ia.predicates("((o.id = 1) OR (o.id = 2))", "o") == []
    assert ia.predicates("(o.status <> 'x'::text)", "o") == []
    # a join key and a constant written first
    assert ia.predicates("(o.customer_id = c.id)", "o")[0]["value_kind"] == "join"
    assert ia.predicates("(42 < o.id)", "o") == [
        dict(column="id", kind="range", value_kind="constant", value="42")
    ]


def test_column_order_equality_then_range_and_a_partial_index_for_a_rare_value():
    t = orders()
    preds = ia.predicates("((o.created_at > $2) AND (o.status = 'new'::text) AND (o.customer_id = $1))", "o")
    mcv = {("shop", "orders", "status"): (["paid", "shipped", "new"], [0.6, 0.385, 0.015])}
    columns, where, include = ia._compose(t, preds, [], None, False, mcv)
    assert columns == [("customer_id", False), ("created_at", False)]
    assert where == "status = 'new'" and include == []
    # a common value stays a key column
    mcv = {("shop", "orders", "status"): (["new", "paid"], [0.7, 0.3])}
    columns, where, _include = ia._compose(t, preds, [], None, False, mcv)
    assert columns == [("customer_id", False), ("status", False), ("created_at", False)] and where is None
    # sort keys follow the equality columns when there is no range
    columns, _w, include = ia._compose(
        t, ia.predicates("(o.customer_id = $1)", "o"), [("created_at", True)], ["o.id", "o.status"], True, {}
    )
    assert columns == [("customer_id", False), ("created_at", True)] and include == ["id", "status"]


def test_a_partial_index_needs_a_rare_value_or_the_workloads_only_value():
    """Regression: 10% (an ordinary value) made a partial index, and each literal its own."""
    t = orders()
    preds = ia.predicates("((o.status = 'hold'::text) AND (o.customer_id = $1))", "o")
    mcv = {("shop", "orders", "status"): (["paid", "shipped", "hold"], [0.5, 0.4, 0.1])}
    columns, where, _i = ia._compose(t, preds, [], None, False, mcv)
    assert where is None and ("status", False) in columns
    # the one value the whole workload compares status with: a partial index is right
    only = {("shop", "orders", "status"): {"'hold'"}}
    columns, where, _i = ia._compose(t, preds, [], None, False, mcv, only)
    assert where == "status = 'hold'" and columns == [("customer_id", False)]
    # a parameter elsewhere in the workload: 'hold' is not the only value any more
    mixed = {("shop", "orders", "status"): {"'hold'", ia.PARAM_VALUE}}
    assert ia._compose(t, preds, [], None, False, mcv, mixed)[1] is None
    # two rare literals in the workload: no partial index per literal, status stays a key
    rare = {("shop", "orders", "status"): (["paid", "shipped", "hold", "new"], [0.5, 0.48, 0.01, 0.01])}
    two = {("shop", "orders", "status"): {"'hold'", "'new'"}}
    columns, where, _i = ia._compose(t, preds, [], None, False, rare, two)
    assert where is None and ("status", False) in columns
    # the literals the workload uses, read from plans
    plan = {
        "Plan": {
            "Node Type": "Seq Scan",
            "Schema": "shop",
            "Relation Name": "orders",
            "Alias": "o",
            "Filter": "((o.status = 'new'::text) AND (o.customer_id = $1))",
        }
    }
    assert ia.workload_literals([(None, plan)]) == {
        ("shop", "orders", "status"): {"'new'"},
        ("shop", "orders", "customer_id"): {ia.PARAM_VALUE},
    }


def test_covering_includes_unqualified_output_columns_and_caps_at_32():
    """Regression: VERBOSE output of a one-table scan is not qualified, so INCLUDE stayed empty."""
    t = orders()
    for i in range(40):
        c = Column(name="c%d" % i, position=len(t.columns) + 1, type="int")
        c.n_distinct = -1.0
        c.null_frac = 0.0
        t.columns.append(c)
    preds = ia.predicates("(customer_id = $1)", None)
    columns, _w, include = ia._compose(t, preds, [], ["id", "customer_id", "created_at"], True, {})
    assert columns == [("customer_id", False)] and include == ["id", "created_at"]
    # an expression or another relation's column is not a column of the table
    _c, _w, include = ia._compose(t, preds, [], ["(id + 1)", "c.name", "o.id"], True, {}, alias="o")
    assert include == ["id"]
    # never more than INDEX_MAX_KEYS (32) columns reach hypopg
    many = ia.predicates(" AND ".join("(c%d = $%d)" % (i, i + 1) for i in range(40)), None)
    columns, _w, include = ia._compose(t, many, [], ["id"], True, {})
    assert len(columns) == 32 and include == []


def test_saving_messages_never_round_up_to_the_threshold():
    assert ia.percent_below(0.9955) == "99.5" and ia.percent(1.0) == "100"
    assert ia.percent_below(0.29999) == "29.9" and ia.percent(0.3) == "30"
    assert ia.percent(0.12345) == "12.345"
    assert ia.check_min_cost_saving(1.0) == 1.0
    for bad in (0, 1.01, -0.1, "x"):
        try:
            ia.check_min_cost_saving(bad)
        except ia.IndexAdviceError as exc:
            assert "at most 1" in str(exc)
        else:
            raise AssertionError(bad)


def test_generic_plans_differ_before_16():
    assert [Features(v * 10000).has_explain_generic_plan for v in (14, 15, 16, 17, 18)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_write_cost_of_an_updated_column_halves_the_score():
    t = orders()
    t.stats = dict(n_tup_upd=5000, n_tup_hot_upd=4000, n_live_tup=100000)
    note, factor, write = ia.write_cost(t, ["status"], {("shop", "orders"): {"status"}})
    assert factor == 0.5 and "non-HOT" not in note and "HOT" in note and write["hot_share"] == 0.8
    note, factor, _w = ia.write_cost(t, ["customer_id"], {("shop", "orders"): {"status"}})
    assert factor == 1.0 and note is None


def test_an_index_that_is_a_prefix_of_another_is_merged_into_it():
    t = orders()
    short = ia.Candidate(t, [("customer_id", False)], None, [], "filter", 0.01)
    long_ = ia.Candidate(t, [("customer_id", False), ("created_at", True)], None, [], "sort", 0.0)
    other = ia.Candidate(t, [("status", False)], None, [], "filter", 0.2)
    short.queries, long_.queries, other.queries = [("q1", 10.0)], [("q2", 20.0)], [("q3", 5.0)]
    kept = ia.merge_prefixes([short, long_, other])
    assert kept == [long_, other]
    assert long_.absorbed == [short] and [q for q, _c in long_.queries] == ["q2", "q1"]
    # a partial index, or another direction, is not the same index
    partial = ia.Candidate(t, [("customer_id", False)], "status = 'new'", [], "filter", 0.01)
    assert not long_.serves(partial)
    # apart again: each with its own statements
    assert long_.split() == [long_, short]
    assert long_.queries == [("q2", 20.0)] and long_.absorbed == []
