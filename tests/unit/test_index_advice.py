"""index_advice without a database: reading plan expressions and ordering index columns."""

from ansible_collections.dbarch.postgresql.plugins.module_utils import index_advice as ia
from ansible_collections.dbarch.postgresql.plugins.module_utils.catalog import Column, Table
from ansible_collections.dbarch.postgresql.plugins.module_utils.versions import Features


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
    mcv = {("shop", "orders", "status"): (["paid", "shipped", "new"], [0.6, 0.35, 0.04])}
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
