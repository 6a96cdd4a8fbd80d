"""Schema review rules on hand-built catalogs: each planted defect is caught, a clean schema is not."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import schema_rules as sr
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.catalog import (
    Catalog,
    Column,
    Constraint,
    Index,
    Table,
)


def table(cat, name, cols, pk=None, schema="public", kind="r", rows=None, fks=(), indexes=(), uniques=()):
    """cols: [(name, type, not_null, default)] ; pk: column list ; fks: [(cols, ref_table, ref_cols)]."""
    t = Table(schema, name, kind=kind, row_estimate=rows)
    for pos, spec in enumerate(cols, 1):
        cname, ctype = spec[0], spec[1]
        not_null = spec[2] if len(spec) > 2 else False
        default = spec[3] if len(spec) > 3 else None
        identity = spec[4] if len(spec) > 4 else ""
        t.columns.append(Column(cname, pos, ctype, not_null=not_null, default=default, identity=identity))
    if pk:
        t.constraints.append(Constraint("%s_pkey" % name, "p", pk, index="%s_pkey" % name))
        t.indexes.append(Index("%s_pkey" % name, pk, unique=True, primary=True, constraint="%s_pkey" % name))
    for ucols in uniques:
        cname = "%s_%s_key" % (name, "_".join(ucols))
        t.constraints.append(Constraint(cname, "u", ucols, index=cname))
        t.indexes.append(Index(cname, ucols, unique=True, constraint=cname))
    for fcols, ref, rcols in fks:
        t.constraints.append(
            Constraint(
                "%s_%s_fkey" % (name, "_".join(fcols)),
                "f",
                fcols,
                ref_schema=schema,
                ref_table=ref,
                ref_columns=rcols,
                on_delete="NO ACTION",
            )
        )
    for idx in indexes:
        t.indexes.append(idx)
    cat.add(t)
    return t


def clean_catalog():
    cat = Catalog(database="shop", source="ddl")
    table(
        cat,
        "users",
        [
            ("id", "bigint", True, None, "a"),
            ("email", "text", True),
            ("created_at", "timestamp with time zone", True),
        ],
        pk=["id"],
        uniques=[["email"]],
    )
    table(
        cat,
        "products",
        [("id", "uuid", True, "gen_random_uuid()"), ("name", "text", True), ("price", "numeric(12,2)", True)],
        pk=["id"],
    )
    table(
        cat,
        "orders",
        [
            ("id", "uuid", True, "gen_random_uuid()"),
            ("user_id", "bigint", True),
            ("status", "text", True),
            ("total", "numeric(12,2)", True),
            ("attributes", "jsonb"),
        ],
        pk=["id"],
        fks=[(["user_id"], "users", ["id"])],
        indexes=[
            Index("orders_user_id_created_idx", ["user_id", "status"]),
        ],
    )
    orders = cat.get("public", "orders")
    orders.constraints.append(
        Constraint(
            "orders_status_check", "c", ["status"], definition="CHECK (status = ANY (ARRAY['new', 'paid']))"
        )
    )
    items = table(
        cat,
        "order_items",
        [("order_id", "uuid", True), ("product_id", "uuid", True), ("quantity", "integer", True)],
        pk=["order_id", "product_id"],
        fks=[(["order_id"], "orders", ["id"]), (["product_id"], "products", ["id"])],
        indexes=[Index("order_items_product_id_idx", ['"product_id"'])],
    )
    # A composition child: the items go with their order.
    items.foreign_keys[0].on_delete = "CASCADE"
    return cat


def rules_of(findings, active_only=True):
    return sorted({f.rule for f in findings if not (active_only and f.suppressed)})


def test_clean_schema_has_no_finding():
    findings, summary = sr.review(clean_catalog())
    assert [f.to_dict() for f in findings] == []
    assert summary["tables_reviewed"] == 4
    assert summary["rules_run"] == [r for r, meta in sr.RULES.items() if not meta["needs"]]
    assert set(summary["rules_not_run"]) == {r for r, meta in sr.RULES.items() if meta["needs"]}
    assert summary["counts"]["total"] == 0
    # with a profile and query results (both empty) every rule runs, and still finds nothing
    findings, summary = sr.review(clean_catalog(), profile=dict(tables={}), query_results=[])
    assert findings == [] and summary["rules_run"] == list(sr.RULES) and summary["rules_not_run"] == {}


def test_clean_schema_without_statistics_has_no_finding():
    cat = clean_catalog()
    for t in cat.relations():
        t.row_estimate = None
    assert sr.review(cat, expected_rows={"orders": 1000})[0] == []


def one(cat, rule_id, **kw):
    findings, _summary = sr.review(cat, **kw)
    hits = [f for f in findings if f.rule == rule_id]
    assert hits, "rule %s missed; got %s" % (rule_id, findings)
    for f in hits:
        assert (
            f.message and f.why and f.object and f.severity in ("info", "low", "medium", "high", "critical")
        )
    return hits, findings


def test_no_primary_key():
    cat = clean_catalog()
    table(cat, "audit_log", [("at", "timestamp with time zone", True), ("what", "text")])
    hits, findings = one(cat, "SR-KEY-001")
    assert [f.object for f in hits] == ["public.audit_log"]
    assert hits[0].severity == "high"
    assert "GENERATED ALWAYS AS IDENTITY PRIMARY KEY" in hits[0].fix
    assert rules_of(findings) == ["SR-KEY-001"]


def test_no_primary_key_proposes_the_unique_not_null_index():
    cat = clean_catalog()
    table(
        cat,
        "settings",
        [("name", "text", True), ("value", "text")],
        uniques=[["name"]],
    )
    hits = one(cat, "SR-KEY-001")[0]
    assert (
        hits[0].fix
        == "ALTER TABLE settings ADD CONSTRAINT settings_pkey PRIMARY KEY USING INDEX settings_name_key;"
    )


def test_partitions_are_not_reviewed_twice():
    cat = clean_catalog()
    part = table(cat, "events_2024", [("at", "timestamp with time zone")])
    part.partition_of = "public.events"
    assert sr.review(cat)[0] == []


def test_fk_without_index():
    cat = clean_catalog()
    cat.get("public", "order_items").indexes = [
        i for i in cat.get("public", "order_items").indexes if i.name != "order_items_product_id_idx"
    ]
    hits, findings = one(cat, "SR-KEY-002")
    assert [f.object for f in hits] == ["public.order_items.product_id"]
    assert hits[0].fix == (
        "CREATE INDEX CONCURRENTLY order_items_product_id_idx ON order_items (product_id);"
    )
    assert rules_of(findings) == ["SR-KEY-002"]


def test_fk_index_must_be_a_leading_prefix_valid_and_unconditional():
    cat = clean_catalog()
    orders = cat.get("public", "orders")
    orders.indexes = [
        Index("orders_status_user_idx", ["status", "user_id"]),
        Index("orders_user_partial_idx", ["user_id"], predicate="(status = 'open'::text)"),
    ]
    hits = one(cat, "SR-KEY-002")[0]
    assert [f.object for f in hits] == ["public.orders.user_id"]


def test_fk_type_mismatch():
    cat = clean_catalog()
    cat.get("public", "orders").column("user_id").type = "integer"
    hits, findings = one(cat, "SR-KEY-003")
    assert [f.object for f in hits] == ["public.orders.user_id"]
    assert hits[0].fix == "ALTER TABLE orders ALTER COLUMN user_id TYPE bigint;"
    assert hits[0].evidence["referenced_type"] == "bigint"
    assert rules_of(findings) == ["SR-KEY-003"]


def test_fk_type_aliases_from_ddl_are_the_same_type():
    cat = clean_catalog()
    cat.get("public", "orders").column("user_id").type = "int8"
    assert sr.review(cat)[0] == []


def test_id_column_without_fk():
    cat = clean_catalog()
    table(
        cat,
        "reviews",
        [("id", "bigint", True, None, "a"), ("product_id", "uuid", True), ("stripe_charge_id", "text")],
        pk=["id"],
    )
    hits, findings = one(cat, "SR-KEY-004")
    by = {f.object: f for f in hits}
    assert by["public.reviews.product_id"].evidence["confidence"] == "high"
    assert by["public.reviews.product_id"].evidence["candidate_table"] == "public.products"
    assert "REFERENCES products (id) NOT VALID" in by["public.reviews.product_id"].fix
    assert by["public.reviews.stripe_charge_id"].evidence["confidence"] == "low"
    assert by["public.reviews.stripe_charge_id"].severity == "info"
    assert by["public.reviews.product_id"].severity == "low"
    assert rules_of(findings) == ["SR-KEY-004"]


def test_ordinal_id_columns_are_not_missing_fks():
    """sequence_id, position_id, line_id, sort_id, version_id count positions; they are no reference."""
    cat = clean_catalog()
    table(
        cat,
        "steps",
        [
            ("id", "bigint", True, None, "a"),
            ("sequence_id", "integer", True),
            ("position_id", "smallint"),
            ("line_id", "integer"),
            ("sort_id", "integer"),
            ("version_id", "integer"),
            ("seq_id", "integer"),
            ("product_id", "uuid", True),  # a real missing FK next to them
            ("stripe_charge_id", "text"),  # an external id: still reported (info)
        ],
        pk=["id"],
    )
    hits, _findings = one(cat, "SR-KEY-004")
    assert sorted(f.object for f in hits) == ["public.steps.product_id", "public.steps.stripe_charge_id"]
    # a table of that name exists: version_id is a reference after all
    table(cat, "versions", [("id", "bigint", True, None, "a")], pk=["id"])
    hits, _findings = one(cat, "SR-KEY-004")
    assert "public.steps.version_id" in {f.object for f in hits}
    # the policy can turn the ordinal exception off
    hits, _findings = one(cat, "SR-KEY-004", policy=dict(ordinal_name_pattern=None))
    assert "public.steps.sequence_id" in {f.object for f in hits}


def test_words_ending_in_id_are_not_keys():
    cat = clean_catalog()
    for n, name in enumerate(("paid", "valid", "uuid", "android_id_hash")):
        cat.get("public", "orders").columns.append(Column(name, 10 + n, "boolean"))
    assert sr.review(cat)[0] == []


def test_duplicate_index_keeps_the_constraint():
    cat = clean_catalog()
    users = cat.get("public", "users")
    users.indexes.append(Index("users_email_idx", ["email"]))
    hits, findings = one(cat, "SR-IDX-001")
    assert len(hits) == 1
    assert hits[0].evidence["kept"] == "users_email_key"
    assert hits[0].fix == "DROP INDEX CONCURRENTLY users_email_idx;"
    # the plain one is also a "prefix" of nothing; no other rule fires
    assert rules_of(findings) == ["SR-IDX-001"]


def test_redundant_prefix_index():
    cat = clean_catalog()
    cat.get("public", "orders").indexes.append(Index("orders_user_id_idx", ["user_id"]))
    hits, findings = one(cat, "SR-IDX-002")
    assert hits[0].evidence == dict(
        redundant="orders_user_id_idx",
        covered_by="orders_user_id_created_idx",
        columns=["user_id"],
        covering_columns=["user_id", "status"],
        bytes=None,
        table="public.orders",
    )
    assert hits[0].fix == "DROP INDEX CONCURRENTLY orders_user_id_idx;"
    assert rules_of(findings) == ["SR-IDX-002"]


def test_unique_or_partial_prefix_is_not_redundant():
    cat = clean_catalog()
    orders = cat.get("public", "orders")
    orders.indexes.append(Index("orders_user_open_idx", ["user_id"], predicate="(status = 'open'::text)"))
    orders.indexes.append(Index("orders_user_gin", ["user_id"], method="gin"))
    assert rules_of(sr.review(cat)[0]) == []


def test_invalid_index():
    cat = clean_catalog()
    cat.get("public", "orders").indexes.append(Index("orders_status_idx", ["status"], valid=False))
    hits, findings = one(cat, "SR-IDX-003")
    assert hits[0].fix.startswith("REINDEX INDEX CONCURRENTLY orders_status_idx;")
    assert rules_of(findings) == ["SR-IDX-003"]


def test_unique_index_standing_in_for_a_constraint():
    cat = clean_catalog()
    cat.get("public", "products").indexes.append(Index("products_name_uidx", ["name"], unique=True))
    hits, findings = one(cat, "SR-IDX-004")
    assert (
        hits[0].fix
        == "ALTER TABLE products ADD CONSTRAINT products_name_uidx UNIQUE USING INDEX products_name_uidx;"
    )
    assert rules_of(findings) == ["SR-IDX-004"]


@pytest.mark.parametrize(
    ("rule_id", "column", "ctype", "fix_part"),
    [
        (
            "SR-TYPE-001",
            "shipped_at",
            "timestamp without time zone",
            "TYPE timestamptz USING shipped_at AT TIME ZONE",
        ),
        ("SR-TYPE-001", "shipped_at", "timestamp", "TYPE timestamptz"),
        ("SR-TYPE-002", "country", "character(2)", "CHECK (char_length(country) = 2)"),
        ("SR-TYPE-003", "discount", "money", "TYPE numeric(19,4) USING discount::numeric"),
        ("SR-TYPE-005", "payload", "json", "TYPE jsonb USING payload::jsonb"),
        ("SR-TYPE-006", "note", "character varying(255)", "CHECK (char_length(note) <= 255)"),
        ("SR-TYPE-007", "unit_price", "double precision", "TYPE numeric(19,4)"),
        ("SR-TYPE-007", "balance", "real", "TYPE numeric(19,4)"),
    ],
)
def test_type_rules(rule_id, column, ctype, fix_part):
    cat = clean_catalog()
    cat.get("public", "orders").columns.append(Column(column, 9, ctype))
    hits, findings = one(cat, rule_id)
    assert [f.object for f in hits] == ["public.orders.%s" % column]
    assert fix_part in hits[0].fix
    assert rules_of(findings) == [rule_id]


def test_float_without_money_name_is_fine():
    cat = clean_catalog()
    cat.get("public", "orders").columns.append(Column("weight_kg", 9, "double precision"))
    assert sr.review(cat)[0] == []


def test_serial_instead_of_identity():
    cat = clean_catalog()
    table(
        cat,
        "tickets",
        [("id", "integer", True, "nextval('tickets_id_seq'::regclass)"), ("title", "text", True)],
        pk=["id"],
    )
    hits, findings = one(cat, "SR-TYPE-004")
    assert [f.object for f in hits] == ["public.tickets.id"]
    assert "DROP SEQUENCE tickets_id_seq;" in hits[0].fix
    assert "ADD GENERATED BY DEFAULT AS IDENTITY" in hits[0].fix
    assert rules_of(findings) == ["SR-TYPE-004"]


def test_int4_pk_on_a_growing_table():
    cat = clean_catalog()
    table(cat, "events", [("id", "integer", True, None, "a"), ("title", "text", True)], pk=["id"], rows=5000)
    table(
        cat,
        "event_tags",
        [("id", "bigint", True, None, "a"), ("event_id", "integer", True)],
        pk=["id"],
        fks=[(["event_id"], "events", ["id"])],
        indexes=[Index("event_tags_event_id_idx", ["event_id"])],
    )
    assert sr.review(cat)[0] == []  # small today and no expectation given
    hits, findings = one(cat, "SR-TYPE-008", expected_rows={"public.events": 500000000})
    assert hits[0].object == "public.events.id"
    assert "ALTER TABLE event_tags ALTER COLUMN event_id TYPE bigint;" in hits[0].fix
    assert hits[0].evidence["expected_rows"] == 500000000
    assert rules_of(findings) == ["SR-TYPE-008"]
    # the live estimate alone is enough too
    cat.get("public", "events").row_estimate = 150000000
    assert rules_of(sr.review(cat)[0]) == ["SR-TYPE-008"]


def test_naming_convention_per_kind():
    cat = clean_catalog()
    table(cat, "OrderNotes", [("id", "bigint", True, None, "a"), ("noteText", "text")], pk=["id"])
    hits, findings = one(cat, "SR-NAME-001")
    by = {f.object: f for f in hits}
    assert by["public.OrderNotes"].fix == 'ALTER TABLE "OrderNotes" RENAME TO order_notes;'
    assert (
        by["public.OrderNotes.noteText"].fix
        == 'ALTER TABLE "OrderNotes" RENAME COLUMN "noteText" TO note_text;'
    )
    assert "public.OrderNotes.OrderNotes_pkey" in by
    # a policy that allows PascalCase tables silences the table (not the column)
    relaxed = dict(naming=dict(table=r"[A-Za-z][A-Za-z0-9_]*", constraint=None))
    objs = {f.object for f in sr.review(cat, policy=relaxed)[0]}
    assert objs == {"public.OrderNotes.noteText"}


def test_reserved_words():
    cat = clean_catalog()
    table(cat, "order", [("id", "bigint", True, None, "a"), ("user", "text"), ("desc", "text")], pk=["id"])
    hits, findings = one(cat, "SR-NAME-002")
    by = {f.object: f for f in hits}
    assert set(by) == {"public.order", "public.order.user", "public.order.desc"}
    assert by["public.order"].fix.startswith('ALTER TABLE "order" RENAME TO orders;')
    assert rules_of(findings) == ["SR-NAME-002"]


def test_identifier_over_63_bytes():
    cat = clean_catalog()
    long_name = "customer_" + "x" * 60
    cat.get("public", "users").columns.append(Column(long_name, 9, "text"))
    hits, findings = one(cat, "SR-NAME-003")
    assert hits[0].object == "public.users.%s" % long_name
    assert hits[0].evidence["bytes"] == len(long_name)
    assert rules_of(findings) == ["SR-NAME-003"]


def test_inconsistent_fk_column_names():
    cat = clean_catalog()
    table(
        cat,
        "sessions",
        [("id", "bigint", True, None, "a"), ("user_id", "bigint", True)],
        pk=["id"],
        fks=[(["user_id"], "users", ["id"])],
        indexes=[Index("sessions_user_id_idx", ["user_id"])],
    )
    table(
        cat,
        "carts",
        [("id", "bigint", True, None, "a"), ("userid", "bigint", True)],
        pk=["id"],
        fks=[(["userid"], "users", ["id"])],
        indexes=[Index("carts_userid_idx", ["userid"])],
    )
    hits, findings = one(cat, "SR-NAME-004")
    assert [f.object for f in hits] == ["public.carts.userid"]
    assert hits[0].fix == "ALTER TABLE carts RENAME COLUMN userid TO user_id;"
    assert rules_of(findings) == ["SR-NAME-004"]


def test_repeating_group():
    cat = clean_catalog()
    for n in (1, 2, 3):
        cat.get("public", "users").columns.append(Column("phone%d" % n, 9 + n, "text"))
    cat.get("public", "users").columns.append(Column("address_line1", 20, "text"))
    cat.get("public", "users").columns.append(Column("address_line2", 21, "text"))
    hits, findings = one(cat, "SR-NORM-001")
    assert [f.object for f in hits] == ["public.users"]
    assert hits[0].evidence["columns"] == ["phone1", "phone2", "phone3"]
    assert "CREATE TABLE users_phones" in hits[0].fix
    assert "DROP COLUMN phone1, DROP COLUMN phone2, DROP COLUMN phone3" in hits[0].fix
    assert rules_of(findings) == ["SR-NORM-001"]


def test_array_of_keys():
    cat = clean_catalog()
    cat.get("public", "products").columns.append(Column("tag_ids", 9, "integer[]"))
    hits, findings = one(cat, "SR-NORM-002")
    assert hits[0].object == "public.products.tag_ids"
    assert rules_of(findings) == ["SR-NORM-002"]


def test_denormalization_decision_suppresses_with_its_reason():
    cat = clean_catalog()
    for n in (1, 2, 3):
        cat.get("public", "users").columns.append(Column("phone%d" % n, 9 + n, "text"))
    cat.get("public", "orders").columns.append(Column("legacy_ref", 9, "character(8)"))
    decisions = [
        dict(
            table="users",
            columns=["phone1", "phone2"],
            reason="At most 3 numbers by contract",
            trade_off="no index",
        ),
        dict(table="public.orders", columns=["legacy_ref"], reason="Fixed-width code from the ERP"),
        dict(table="products", columns=["name"], reason="unused decision"),
    ]
    findings, summary = sr.review(cat, denormalization_decisions=decisions)
    assert rules_of(findings) == []
    sup = {f.rule: f for f in findings if f.suppressed}
    assert set(sup) == {"SR-NORM-001", "SR-TYPE-002"}
    assert sup["SR-NORM-001"].suppression_reason == (
        "denormalization decision: At most 3 numbers by contract (trade-off: no index)"
    )
    applied = summary["denormalization_decisions"]
    assert applied[0]["suppressed"] == ["SR-NORM-001 public.users"]
    assert applied[2]["suppressed"] == []
    assert summary["counts"]["suppressed"] == 2


def test_decisions_do_not_hide_key_findings():
    cat = clean_catalog()
    table(cat, "audit_log", [("at", "timestamp with time zone", True)])
    findings = sr.review(cat, denormalization_decisions=[dict(table="audit_log", reason="append only")])[0]
    assert rules_of(findings) == ["SR-KEY-001"]


def test_suppressions_disabled_rules_and_severity_overrides():
    cat = clean_catalog()
    table(cat, "audit_log", [("at", "timestamp without time zone", True)])
    findings, summary = sr.review(
        cat,
        policy=dict(disabled_rules=["SR-TYPE-*"], severities={"SR-KEY-001": "critical"}),
        suppressions=[dict(rule="SR-NAME-*", reason="legacy")],
    )
    assert [(f.rule, f.severity) for f in findings] == [("SR-KEY-001", "critical")]
    assert "SR-TYPE-001" in summary["rules_disabled"]
    assert summary["unused_suppressions"] == [dict(rule="SR-NAME-*", reason="legacy")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(policy=dict(nope=1)), "policy.nope is not a schema review setting"),
        (
            dict(policy=dict(naming=dict(table="[a-"))),
            "policy.naming.table='[a-' is not a valid regular expression",
        ),
        (dict(policy=dict(naming=dict(sequence="x"))), "policy.naming.sequence: kinds are"),
        (dict(policy=dict(severities={"SR-KEY-001": "huge"})), "Unknown severity"),
        (dict(policy=dict(severities={"SR-XXX": "low"})), "no such rule"),
        (dict(policy=dict(int4_pk_max_rows="many")), "must be a whole number"),
        (dict(denormalization_decisions=[dict(table="users")]), "has no reason"),
        (dict(denormalization_decisions=["users"]), "needs at least table and reason"),
        (dict(suppressions=[dict(rule="SR-KEY-001")]), "has no reason"),
        (dict(expected_rows={"users": "lots"}), "is not a number of rows"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(sr.SchemaRuleError, match=None) as exc:
        sr.review(clean_catalog(), **kwargs)
    assert message in str(exc.value)


def test_fix_sql_quotes_identifiers_and_schema():
    cat = clean_catalog()
    table(cat, "Audit Log", [("at", "timestamp with time zone", True)], schema="ops")
    findings = sr.review(cat, policy=dict(disabled_rules=["SR-NAME-*"]))[0]
    assert (
        findings[0].fix
        == 'ALTER TABLE ops."Audit Log" ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;'
    )


def test_every_rule_has_a_unique_stable_id():
    ids = [r["id"] for r in sr.rule_catalog()]
    assert len(ids) == len(set(ids)) >= 18
    assert all(i.startswith("SR-") for i in ids)


def test_type_info_resolves_aliases():
    assert sr.type_info("character varying(255)") == ("character varying", "255", False)
    assert sr.type_info("varchar(20)") == ("character varying", "20", False)
    assert sr.type_info("pg_catalog.int4") == ("integer", None, False)
    assert sr.type_info("numeric(12, 2)[]") == ("numeric", "12,2", True)
    assert sr.type_info("timestamp(3) without time zone") == ("timestamp without time zone", "3", False)


def test_partial_index_predicates_the_fk_check_can_use():
    ok = sr.predicate_implied_by_fk
    assert ok(None, ["user_id"]) and ok("(user_id IS NOT NULL)", ["user_id"])
    assert ok("user_id IS NOT NULL", ["user_id"])  # as pglast deparses it from DDL
    assert ok("((a IS NOT NULL) AND (b IS NOT NULL))", ["a", "b"])
    assert ok("((a IS NOT NULL) OR (status = 'x'::text))", ["a", "b"])
    assert ok('("User Id" IS NOT NULL)', ["User Id"])
    assert not ok("(status = 'open'::text)", ["user_id"])
    assert not ok("((user_id IS NOT NULL) AND (status <> 'gone'::text))", ["user_id"])
    assert not ok("(other_id IS NOT NULL)", ["user_id"])
    assert not ok("(status = 'a AND user_id IS NOT NULL')", ["user_id"])


def test_fk_covered_by_partial_not_null_index():
    cat = clean_catalog()
    orders = cat.get("public", "orders")
    orders.indexes = [i for i in orders.indexes if "user_id" not in i.columns]
    orders.indexes.append(Index("orders_user_nn_idx", ["user_id"], predicate="(user_id IS NOT NULL)"))
    assert "SR-KEY-002" not in rules_of(sr.review(cat)[0])
    orders.indexes[-1].predicate = "(status = 'open'::text)"
    assert "SR-KEY-002" in rules_of(sr.review(cat)[0])


PARTITIONED_DDL = """
CREATE TABLE tenants (id bigint PRIMARY KEY);
CREATE TABLE plans (id bigint PRIMARY KEY);
CREATE TABLE usage (tenant_id bigint NOT NULL REFERENCES tenants, plan_id bigint, at date NOT NULL)
    PARTITION BY RANGE (at);
CREATE TABLE usage_a PARTITION OF usage FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE usage_b PARTITION OF usage FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE usage_c PARTITION OF usage FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
ALTER TABLE usage_a ADD FOREIGN KEY (plan_id) REFERENCES plans;
ALTER TABLE usage_b ADD FOREIGN KEY (plan_id) REFERENCES plans;
CREATE INDEX usage_b_plan_idx ON usage_b (plan_id);
"""


def test_partitions_grouped_on_parent_and_partition_specific_kept():
    from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import ddl  # noqa: PLC0415

    cat = ddl.catalog_from_sql(PARTITIONED_DDL, "p.sql")
    findings, summary = sr.review(cat)
    fk = {f.object: f for f in findings if f.rule == "SR-KEY-002"}
    assert sorted(fk) == ["public.usage.tenant_id", "public.usage_a.plan_id"]
    assert fk["public.usage.tenant_id"].evidence["partitions"] == 3
    assert [f.object for f in findings if f.rule == "SR-PART-001"] == ["public.usage_c"]
    assert summary["partitions_reviewed"] == 3
    # pure grouping: a finding on only 2 of 3 partitions is not folded
    ctx = sr.Context(cat, sr.merge_policy(None), None)
    only_two = [f for f in findings if f.object == "public.usage_a.plan_id"]
    assert sr.group_partition_findings(ctx, only_two) == only_two
