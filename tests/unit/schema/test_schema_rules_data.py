"""Schema review rules that read sampled rows or query plans, and the newer naming/key/type rules.

The sampled rows and plan results are built by hand here; tests/integration reads them from
real databases.
"""

import random

import pytest
from test_schema_rules import clean_catalog, one, rules_of, table

from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import profiling
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import schema_rules as sr
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.catalog import Constraint


def profile_of(tables):
    """{qualified: (columns, rows)} -> the dict profiling.sample returns."""
    out = dict(tables={}, skipped=[], sample_rows=10000, statement_timeout="30s")
    for name, (columns, rows) in tables.items():
        out["tables"][name] = dict(columns=list(columns), rows=[tuple(r) for r in rows], sampled=len(rows))
    return out


def customers_catalog():
    cat = clean_catalog()
    table(
        cat,
        "customers",
        [
            ("id", "bigint", True, None, "a"),
            ("name", "text", True),
            ("nickname", "text"),
            ("city", "text"),
            ("zip", "text"),
            ("tags", "text"),
        ],
        pk=["id"],
        rows=400,
    )
    return cat


def customer_rows(n=400, seed=7):
    rnd = random.Random(seed)  # noqa: S311 - test data, not secrets
    cities = ["Paris", "Lyon", "Nantes", "Lille", "Nice", "Metz", "Brest", "Dijon"]
    zips = {c: "%05d" % (10000 + i * 1111) for i, c in enumerate(cities)}
    rows = []
    for i in range(1, n + 1):
        city = rnd.choice(cities)
        tags = ",".join(rnd.sample(["vip", "b2b", "new", "eu", "promo"], rnd.randint(2, 3)))
        rows.append((str(i), "Customer %d" % i, "nick%d" % i, city, zips[city], tags))
    return rows


COLUMNS = ["id", "name", "nickname", "city", "zip", "tags"]


def test_profile_rules_find_planted_defects():
    cat = customers_catalog()
    prof = profile_of({"public.customers": (COLUMNS, customer_rows())})
    findings, summary = sr.review(cat, profile=prof)
    by = {(f.rule, f.object): f for f in findings}
    # nickname and city and zip and tags are nullable but always filled
    assert ("SR-CONS-001", "public.customers.nickname") in by
    nn = by[("SR-CONS-001", "public.customers.nickname")]
    assert nn.evidence["sampled_rows"] == 400 and "SET NOT NULL" in nn.fix
    assert "no NULL in a random sample of 400 rows" in nn.evidence["evidence"]
    assert nn.evidence["exact"] is False and "sample" in nn.message
    assert nn.fix.startswith("-- Sampled, not proven") and "VALIDATE CONSTRAINT" in nn.fix
    # tags holds comma-separated lists
    lists = by[("SR-NORM-003", "public.customers.tags")]
    assert lists.evidence["share"] == 1.0 and "string_to_table" in lists.fix
    # city <-> zip: one finding for the pair, both ways
    fds = [f for f in findings if f.rule == "SR-NORM-004"]
    assert [(f.evidence["determinant"], f.evidence["dependent"]) for f in fds] == [("city", "zip")]
    assert fds[0].evidence["both_ways"] is True and fds[0].evidence["normal_form"] == "3NF"
    assert fds[0].evidence["evidence"] == "city <-> zip holds on 100% of 400 sampled rows"
    assert "CREATE TABLE city_info" in fds[0].fix
    assert summary["profile"]["tables_sampled"] == 1 and summary["profile"]["rows_sampled"] == 400
    assert summary["rules_not_run"] == {"SR-QUERY-001": sr._NOT_RUN["query_patterns"]}


def test_not_null_is_certain_only_when_the_whole_table_was_checked():
    cat = customers_catalog()
    rows = customer_rows()
    # the whole table read (fewer rows than asked for): exact, plain SET NOT NULL first
    prof = profile_of({"public.customers": (COLUMNS, rows)})
    prof["tables"]["public.customers"].update(complete=True, method="full")
    nn = {f.object: f for f in sr.review(cat, profile=prof)[0] if f.rule == "SR-CONS-001"}
    hit = nn["public.customers.nickname"]
    assert hit.evidence["exact"] is True and "whole table" in hit.message
    assert (
        hit.fix.startswith("-- SET NOT NULL takes")
        and "\nALTER TABLE customers ALTER COLUMN nickname SET NOT NULL;" in hit.fix
    )
    # sampled, but the NULLs were counted on the whole (small) table: they exist, so nothing is proposed
    prof = profile_of({"public.customers": (COLUMNS, rows)})
    prof["tables"]["public.customers"].update(
        complete=False,
        method="bernoulli",
        row_estimate=600,
        exact_nulls=dict(total=600, nulls=dict(nickname=3, city=0, zip=0, tags=0)),
    )
    nn = {f.object: f for f in sr.review(cat, profile=prof)[0] if f.rule == "SR-CONS-001"}
    assert "public.customers.nickname" not in nn
    assert nn["public.customers.city"].evidence["exact"] is True
    assert "counted on the whole table" in nn["public.customers.city"].evidence["evidence"]
    # a big table, only sampled: worded as sampled, with the precheck and the safe sequence
    prof["tables"]["public.customers"].update(exact_nulls=None, row_estimate=5000000, method="system")
    nn = {f.object: f for f in sr.review(cat, profile=prof)[0] if f.rule == "SR-CONS-001"}
    hit = nn["public.customers.nickname"]
    assert "random sample of 400 of ~5,000,000 rows" in hit.message and hit.evidence["exact"] is False
    lines = hit.fix.splitlines()
    assert lines[1] == "SELECT count(*) FROM customers WHERE nickname IS NULL;"
    set_nn = [n for n, line in enumerate(lines) if "ALTER COLUMN nickname SET NOT NULL;" in line]
    assert len(set_nn) == 1 and set_nn[0] > lines.index(next(x for x in lines if "VALIDATE" in x))


def test_profile_rules_stay_quiet_on_clean_data():
    cat = customers_catalog()
    rnd = random.Random(3)  # noqa: S311 - test data, not secrets
    rows = []
    for i in range(1, 401):
        rows.append(
            (
                str(i),
                "Customer %d" % i,
                None if i % 10 == 0 else "n%d" % i,  # some NULLs
                "City %d" % rnd.randint(1, 50),
                "%05d" % rnd.randint(10000, 99999),  # zip independent of city
                "one tag" if i % 2 else None,
            )
        )
    for c in cat.get("public", "customers").columns:
        c.not_null = c.name in ("id", "name", "city", "zip")
    findings, _summary = sr.review(cat, profile=profile_of({"public.customers": (COLUMNS, rows)}))
    assert findings == []


def test_too_few_sampled_rows_say_nothing():
    cat = customers_catalog()
    prof = profile_of({"public.customers": (COLUMNS, customer_rows(n=profiling.MIN_ROWS - 1))})
    assert sr.review(cat, profile=prof)[0] == []


def test_second_normal_form_on_a_composite_key():
    cat = clean_catalog()
    table(
        cat,
        "enrolments",
        [("student_id", "bigint", True), ("course_id", "bigint", True), ("course_title", "text", True)],
        pk=["student_id", "course_id"],
        rows=300,
    )
    rows = [(str(s), str(c), "Course %d" % c) for s in range(1, 31) for c in range(1, 11)]
    prof = profile_of({"public.enrolments": (["student_id", "course_id", "course_title"], rows)})
    hits = [f for f in sr.review(cat, profile=prof)[0] if f.rule == "SR-NORM-004"]
    assert [(f.evidence["normal_form"], f.evidence["determinant"], f.object) for f in hits] == [
        ("2NF", "course_id", "public.enrolments.course_title")
    ]


def test_a_decision_suppresses_profile_findings():
    cat = customers_catalog()
    prof = profile_of({"public.customers": (COLUMNS, customer_rows())})
    decision = dict(
        table="customers", columns=["city", "zip"], reason="address as printed", trade_off="copies"
    )
    findings, summary = sr.review(cat, profile=prof, denormalization_decisions=[decision])
    fd = [f for f in findings if f.rule == "SR-NORM-004"]
    assert len(fd) == 1 and fd[0].suppressed
    assert "address as printed" in fd[0].suppression_reason
    # the other profile findings on the table are not covered by this decision's columns
    assert any(f.rule == "SR-NORM-003" and not f.suppressed for f in findings)
    assert summary["denormalization_decisions"][0]["reason"] == "address as printed"


def test_dependency_functions():
    rows = [(str(i % 10), str(i % 10 * 2), str(i)) for i in range(200)]
    ok, ratio, distinct, counted = profiling.dependency_holds(rows, 0, 1)
    assert ok and ratio == 1.0 and distinct == 10 and counted == 200
    # a key (all distinct) determines everything and says nothing
    assert profiling.dependency_holds(rows, 2, 0)[0] is False
    # a constant dependent says nothing either
    const = [(str(i % 10), "x") for i in range(200)]
    assert profiling.dependency_holds(const, 0, 1)[0] is False
    # 98% agreement is under the 99% bar
    noisy = [(str(i % 10), "bad" if i < 4 else str(i % 10)) for i in range(200)]
    ok, ratio, _d, _c = profiling.dependency_holds(noisy, 0, 1)
    assert not ok and ratio == pytest.approx(0.98)
    assert profiling.percent(0.9999) == "99.9%" and profiling.percent(1.0) == "100%"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("red,green, blue", True),
        ("a@x.org, b@y.org", True),
        ("Paris", False),
        ("Hello, how are you today?", False),
        (None, False),
        ("", False),
    ],
)
def test_looks_like_list(value, expected):
    assert profiling.looks_like_list(value) is expected


def query_result(**kw):
    base = dict(
        name="orders by status",
        sql="SELECT * FROM orders WHERE status = 'new'",
        table="public.orders",
        columns=["status"],
        filter="(status = 'new'::text)",
        row_estimate=50000,
        cost_before=1000.0,
        cost_after=None,
        hypopg=False,
        uses_index=None,
    )
    base.update(kw)
    return base


def test_query_pattern_without_index():
    cat = clean_catalog()
    hits, findings = one(cat, "SR-QUERY-001", query_results=[query_result()])
    assert hits[0].object == "public.orders"
    assert hits[0].fix == "CREATE INDEX CONCURRENTLY orders_status_idx ON orders (status);"
    assert hits[0].evidence["gain"].startswith("not proven")
    assert rules_of(findings) == ["SR-QUERY-001"]


def test_query_pattern_proven_or_refuted_by_hypopg():
    cat = clean_catalog()
    proven = query_result(hypopg=True, uses_index=True, cost_after=8.3)
    hits = one(cat, "SR-QUERY-001", query_results=[proven])[0]
    assert hits[0].evidence["gain"] == "estimated cost 1000.00 -> 8.30 with a hypothetical index (hypopg)"
    refuted = query_result(hypopg=True, uses_index=False, cost_after=1000.0)
    assert sr.review(cat, query_results=[refuted])[0] == []
    errors = [dict(name="broken", sql="SELECT nope", error="column nope does not exist")]
    findings, summary = sr.review(cat, query_results=errors)
    assert findings == [] and summary["query_patterns"]["errors"][0]["name"] == "broken"


@pytest.mark.parametrize(
    "word, plural",
    [
        ("order", "orders"),
        ("category", "categories"),
        ("box", "boxes"),
        ("person", "people"),
        ("day", "days"),
    ],
)
def test_plural_and_singular(word, plural):
    assert sr.plural_of(word) == plural
    assert sr.singular_of(plural) == word


def test_table_name_number_policy():
    cat = clean_catalog()
    assert sr.review(cat, policy=dict(table_names="plural"))[0] == []
    table(cat, "invoice", [("id", "bigint", True, None, "a")], pk=["id"])
    hits, findings = one(cat, "SR-NAME-005", policy=dict(table_names="plural"))
    assert [f.object for f in hits] == ["public.invoice"]
    assert hits[0].fix == "ALTER TABLE invoice RENAME TO invoices;"
    assert rules_of(findings) == ["SR-NAME-005"]
    singular = {f.object for f in sr.review(cat, policy=dict(table_names="singular"))[0]}
    assert "public.users" in singular and "public.invoice" not in singular
    with pytest.raises(sr.SchemaRuleError, match="table_names"):
        sr.review(cat, policy=dict(table_names="some"))


def test_composition_child_without_on_delete():
    cat = clean_catalog()
    cat.get("public", "order_items").foreign_keys[0].on_delete = "NO ACTION"
    hits, findings = one(cat, "SR-KEY-005")
    assert hits[0].object == "public.order_items"
    assert "ON DELETE CASCADE" in hits[0].fix and hits[0].evidence["references"] == "public.orders"
    assert rules_of(findings) == ["SR-KEY-005"]
    cat.get("public", "order_items").foreign_keys[0].on_delete = "RESTRICT"
    assert sr.review(cat)[0] == []


def test_enum_like_text_column():
    cat = clean_catalog()
    orders = cat.get("public", "orders")
    orders.constraints = [c for c in orders.constraints if c.type != "c"]
    hits, findings = one(cat, "SR-TYPE-009")
    assert [f.object for f in hits] == ["public.orders.status"]
    assert rules_of(findings) == ["SR-TYPE-009"]
    # a CHECK written on the table (not on the column) also counts
    orders.constraints.append(
        Constraint("orders_check", "c", [], definition="CHECK ((status = ANY (ARRAY['a'::text])))")
    )
    assert sr.review(cat)[0] == []


PROVINCES = [
    "Ontario",
    "Quebec",
    "British Columbia",
    "Alberta",
    "Manitoba",
    "Saskatchewan",
    "Nova Scotia",
    "New Brunswick",
    "Newfoundland and Labrador",
    "Prince Edward Island",
]
MIME_TYPES = ["application/pdf", "image/png", "image/jpeg", "text/plain", "text/csv", "application/zip"]


def _spread(values, n=600, seed=5):
    rnd = random.Random(seed)  # noqa: S311 - test data, not secrets
    return [rnd.choice(values) for _i in range(n)]


def test_enum_evidence_needs_codes_from_a_closed_set():
    ok, facts = profiling.enum_evidence(_spread(["new", "paid", "shipped"]))
    assert ok and facts["codes"] == ["new", "paid", "shipped"]
    assert profiling.enum_evidence(_spread(["NEW", "IN_TRANSIT", "DONE"]))[0]
    assert "code_like" in profiling.enum_evidence(_spread(PROVINCES))[1]["failed"]
    assert "code_like" in profiling.enum_evidence(_spread(MIME_TYPES))[1]["failed"]
    # single-word place names are names, not codes
    assert not profiling.enum_evidence(_spread(["Ontario", "Quebec", "Alberta"]))[0]
    # too few values, or a set still growing in the second half of the sample
    assert "enough_values" in profiling.enum_evidence(_spread(["a", "b"], n=40))[1]["failed"]
    growing = _spread(["a", "b"], n=300) + _spread(["c", "d", "e"], n=300)
    assert "stable" in profiling.enum_evidence(growing)[1]["failed"]


def test_enum_suggestion_on_sampled_values():
    cat = clean_catalog()
    table(
        cat,
        "shipments",
        [
            ("id", "bigint", True, None, "a"),
            ("state", "text"),  # provinces
            ("mime_type", "text"),
            ("status", "text"),
        ],
        pk=["id"],
        rows=600,
    )
    cols = (_spread(PROVINCES), _spread(MIME_TYPES, seed=6), _spread(["new", "paid", "shipped"]))
    rows = [(str(n), cols[0][n], cols[1][n], cols[2][n]) for n in range(600)]
    prof = profile_of({"public.shipments": (["id", "state", "mime_type", "status"], rows)})
    hits, _findings = one(cat, "SR-TYPE-009", profile=prof)
    by = {f.object: f for f in hits}
    assert "public.shipments.state" not in by and "public.shipments.mime_type" not in by
    status = by["public.shipments.status"]
    assert "Consider" in status.message and "3 distinct short codes (new, paid, shipped)" in status.message
    assert "CHECK (status IN ('new', 'paid', 'shipped')) NOT VALID" in status.fix
    assert status.severity == "low"
    # without sampled rows only the name speaks: an info-level suggestion that says so
    hits, _findings = one(cat, "SR-TYPE-009")
    by = {f.object: f for f in hits}
    assert by["public.shipments.mime_type"].severity == "info"
    assert "only the name was checked" in by["public.shipments.mime_type"].message
