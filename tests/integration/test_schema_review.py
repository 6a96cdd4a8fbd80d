"""schema_review against real databases of every supported major, and the role's playbook."""

import json

import harness
import pytest

ECOMMERCE = """
CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text NOT NULL UNIQUE,
    full_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE products (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sku text NOT NULL UNIQUE,
    name text NOT NULL,
    price numeric(12,2) NOT NULL CHECK (price >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user_id_idx ON orders (user_id);
CREATE INDEX orders_status_idx ON orders (status);
CREATE INDEX orders_created_at_idx ON orders (created_at);
CREATE TABLE order_items (
    order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id uuid NOT NULL REFERENCES products (id),
    quantity integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(12,2) NOT NULL,
    subtotal numeric(14,2) GENERATED ALWAYS AS (quantity * unit_price) STORED,
    PRIMARY KEY (order_id, product_id)
);
"""

# The one thing the e-commerce design misses: order_items.product_id has no index of its
# own (the primary key leads with order_id), so deleting a product scans order_items.
ECOMMERCE_EXPECTED = [("SR-KEY-002", "public.order_items.product_id")]

# One planted defect per rule (and nothing else wrong in the tables that carry them).
PLANTED = """
CREATE TABLE customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL);
CREATE TABLE audit_log (at timestamptz NOT NULL, what text);                       -- SR-KEY-001
CREATE TABLE invoices (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),                        -- SR-KEY-002, SR-KEY-003
    amount double precision NOT NULL,                                              -- SR-TYPE-007
    issued_at timestamp NOT NULL,                                                  -- SR-TYPE-001
    currency character(3) NOT NULL,                                                -- SR-TYPE-002
    fee money,                                                                     -- SR-TYPE-003
    payload json,                                                                  -- SR-TYPE-005
    note varchar(255)                                                              -- SR-TYPE-006
);
CREATE TABLE tickets (id serial PRIMARY KEY, customer_id bigint NOT NULL);        -- SR-TYPE-004, SR-KEY-004
CREATE INDEX tickets_customer_id_idx ON tickets (customer_id);
CREATE INDEX tickets_customer_id_dup ON tickets (customer_id);                     -- SR-IDX-001
CREATE TABLE visits (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customerid bigint NOT NULL REFERENCES customers (id),                          -- SR-NAME-004
    page text NOT NULL,
    "Referrer" text,                                                               -- SR-NAME-001
    "user" text,                                                                   -- SR-NAME-002
    phone1 text, phone2 text, phone3 text,                                         -- SR-NORM-001
    tag_ids integer[]                                                              -- SR-NORM-002
);
CREATE INDEX visits_customerid_page_idx ON visits (customerid, page);
CREATE INDEX visits_customerid_idx ON visits (customerid);                         -- SR-IDX-002
CREATE UNIQUE INDEX visits_page_uidx ON visits (page, id);                         -- SR-IDX-004
CREATE TABLE sessions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id)
);
CREATE INDEX sessions_customer_id_idx ON sessions (customer_id);
CREATE TABLE page_views (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY);  -- SR-TYPE-008
"""

PLANTED_EXPECTED = {
    ("SR-KEY-001", "public.audit_log"),
    ("SR-KEY-002", "public.invoices.customer_id"),
    ("SR-KEY-003", "public.invoices.customer_id"),
    ("SR-KEY-004", "public.tickets.customer_id"),
    ("SR-IDX-001", "public.tickets"),
    ("SR-IDX-002", "public.visits"),
    ("SR-IDX-003", "public.visits"),
    ("SR-IDX-004", "public.visits"),
    ("SR-TYPE-001", "public.invoices.issued_at"),
    ("SR-TYPE-002", "public.invoices.currency"),
    ("SR-TYPE-003", "public.invoices.fee"),
    ("SR-TYPE-004", "public.tickets.id"),
    ("SR-TYPE-005", "public.invoices.payload"),
    ("SR-TYPE-006", "public.invoices.note"),
    ("SR-TYPE-007", "public.invoices.amount"),
    ("SR-TYPE-008", "public.page_views.id"),
    ("SR-NAME-001", "public.visits.Referrer"),
    ("SR-NAME-002", "public.visits.user"),
    ("SR-NAME-004", "public.visits.customerid"),
    ("SR-NORM-001", "public.visits"),
    ("SR-NORM-002", "public.visits.tag_ids"),
}


def _load(pg, name, ddl):
    pg.createdb(name)
    with pg.connect(name) as conn, conn.cursor() as cur:
        cur.execute(ddl)
    return name


def _review(pg, run_playbook, db, name="review", ignore_errors=False, **options):
    args = dict(pg.conn_params, login_db=db, **options)
    task = dict(name=name, **{"dbarch.postgresql.schema_review": args})
    if ignore_errors:
        task["ignore_errors"] = True
    res = run_playbook([dict(hosts="localhost", gather_facts=False, tasks=[task])])
    return res, res.task(name)["result"]


def _pairs(result, active=True):
    return sorted((f["rule"], f["object"]) for f in result["findings"] if not (active and f["suppressed"]))


@pytest.mark.all_versions
def test_ecommerce_schema_live_pins_the_findings(pg, run_playbook):
    db = _load(pg, "sr_shop", ECOMMERCE)
    res, r = _review(pg, run_playbook, db)
    assert res.rc == 0, res.stdout
    assert r["changed"] is False
    assert _pairs(r) == ECOMMERCE_EXPECTED
    f = r["findings"][0]
    assert f["fix"] == "CREATE INDEX CONCURRENTLY order_items_product_id_idx ON order_items (product_id);"
    assert (
        f["why"]
        and f["severity"] == "medium"
        and f["evidence"]["constraint"] == "order_items_product_id_fkey"
    )
    s = r["summary"]
    assert s["source"] == "database" and s["database"] == db
    assert s["tables_reviewed"] == 4
    assert s["counts"]["medium"] == 1 and s["counts"]["total"] == 1
    assert "SR-KEY-001" in s["rules_run"]
    assert r["queries"], "the module returns the SQL it ran"
    assert pg.password not in res.stdout
    # The fix works and the review is then clean.
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute(f["fix"])
    res, r = _review(pg, run_playbook, db)
    assert _pairs(r) == []


@pytest.mark.all_versions
def test_planted_defects_are_each_found(pg, run_playbook):
    db = _load(pg, "sr_planted", PLANTED)
    # An invalid index: a unique index whose build failed on duplicate rows.
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO customers (email) VALUES ('a@x'), ('b@x')")
        cur.execute("INSERT INTO visits (customerid, page) VALUES (1, 'home'), (1, 'home')")
        try:
            cur.execute("CREATE UNIQUE INDEX CONCURRENTLY visits_invalid_uidx ON visits (customerid, page)")
        except Exception:  # noqa: S110 - the failure is the point: it leaves an invalid index
            pass
    res, r = _review(pg, run_playbook, db, expected_rows={"page_views": 3000000000})
    assert res.rc == 0, res.stdout
    found = set(_pairs(r))
    missing = PLANTED_EXPECTED - found
    assert not missing, "missed: %s; found: %s" % (sorted(missing), sorted(found))
    extra = found - PLANTED_EXPECTED
    assert not extra, "unexpected findings: %s" % sorted(extra)
    # Every fix is SQL that runs: apply the single-statement ones in a transaction and roll back.
    with pg.connect(db, autocommit=False) as conn, conn.cursor() as cur:
        for f in r["findings"]:
            if f["rule"] in (
                "SR-TYPE-001",
                "SR-TYPE-002",
                "SR-TYPE-003",
                "SR-TYPE-005",
                "SR-KEY-003",
                "SR-NAME-002",
            ):
                cur.execute(f["fix"])
        conn.rollback()


def test_decisions_suppressions_and_fail_on(pg, run_playbook):
    db = _load(pg, "sr_gate", PLANTED)
    decisions = [
        dict(
            table="visits",
            columns=["phone1", "phone2", "phone3"],
            reason="three numbers max",
            trade_off="no index",
        ),
    ]
    res, r = _review(
        pg,
        run_playbook,
        db,
        ignore_errors=True,
        denormalization_decisions=decisions,
        suppressions=[dict(rule="SR-KEY-001", object="public.audit_log", reason="append-only log")],
        fail_on="high",
    )
    task = res.task("review")
    assert task["status"] == "failed"
    msg = r["msg"]
    assert msg.startswith("2 finding(s) at or above fail_on=high (worst: high): "), msg
    assert "SR-KEY-003 public.invoices.customer_id" in msg and "SR-TYPE-007 public.invoices.amount" in msg
    assert "SR-KEY-001" not in msg
    sup = {f["rule"]: f["suppression_reason"] for f in r["findings"] if f["suppressed"]}
    assert sup == {
        "SR-KEY-001": "append-only log",
        "SR-NORM-001": "denormalization decision: three numbers max (trade-off: no index)",
    }
    assert r["summary"]["denormalization_decisions"][0]["suppressed"] == ["SR-NORM-001 public.visits"]
    assert r["changed"] is False


def test_bad_policy_fails_with_a_clear_message(pg, run_playbook):
    db = _load(pg, "sr_bad", ECOMMERCE)
    res, r = _review(pg, run_playbook, db, ignore_errors=True, policy=dict(naming=dict(tabel="x")))
    assert res.task("review")["status"] == "failed"
    assert r["msg"].startswith("policy.naming.tabel: kinds are column, constraint, index, table, view")


def test_check_mode_and_schemas_option(pg, run_playbook):
    db = _load(pg, "sr_schemas", ECOMMERCE + "CREATE SCHEMA legacy; CREATE TABLE legacy.t (a int);")
    play = dict(
        hosts="localhost",
        gather_facts=False,
        tasks=[
            dict(name="all", **{"dbarch.postgresql.schema_review": dict(pg.conn_params, login_db=db)}),
            dict(
                name="legacy",
                **{"dbarch.postgresql.schema_review": dict(pg.conn_params, login_db=db, schemas=["legacy"])},
            ),
        ],
    )
    res = run_playbook([play], check=True)
    assert res.rc == 0, res.stdout
    assert ("SR-KEY-001", "legacy.t") in _pairs(res.task("all")["result"])
    legacy = res.task("legacy")["result"]
    assert _pairs(legacy) == [("SR-KEY-001", "legacy.t")]
    assert legacy["summary"]["tables_reviewed"] == 1


@pytest.mark.pg_versions(15)  # the playbook's report and gate; the live review runs on every major above
def test_playbook_writes_the_report_and_gates(pg, tmp_path):
    db = _load(pg, "sr_play", ECOMMERCE)
    extra = dict(
        schema_review_database=db,
        schema_review_dest=str(tmp_path),
    )
    res = harness.run_site_playbook("schema_review", pg, **extra)
    res.assert_ok()
    folder = tmp_path / "localhost"
    assert sorted(p.name for p in folder.iterdir()) == [
        "data_dictionary",
        "schema_review.json",
        "schema_review.md",
        "schema_review.sarif",
        "schema_review.xml",
    ]
    assert (folder / "data_dictionary" / "data_dictionary.dbml").exists()
    report = json.loads((folder / "schema_review.json").read_text())
    assert [(f["rule"], f["object"]) for f in report["findings"]] == ECOMMERCE_EXPECTED
    assert "CREATE INDEX CONCURRENTLY order_items_product_id_idx" in (folder / "schema_review.md").read_text()
    # Second run: nothing changes.
    again = harness.run_site_playbook("schema_review", pg, **extra)
    again.assert_ok()
    assert again.changed_count() == 0
    # fail_on=medium fails the play after writing the report, naming the finding.
    gated = harness.run_site_playbook("schema_review", pg, **dict(extra, schema_review_fail_on="medium"))
    assert gated.rc != 0
    failed = gated.failed()
    assert len(failed) == 1
    assert failed[0]["result"]["msg"].startswith(
        "1 finding(s) at or above fail_on=medium: SR-KEY-002 public.order_items.product_id."
    ), failed[0]["result"]["msg"]


def test_ddl_files_get_the_same_review_as_the_live_database(run_playbook, tmp_path):
    pytest.importorskip("ansible_collections.dbarch.postgresql.plugins.module_utils.schema.ddl")
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "001_shop.sql").write_text(ECOMMERCE)
    planted = tmp_path / "planted.sql"
    planted.write_text(PLANTED)
    tasks = [
        dict(name="shop", **{"dbarch.postgresql.schema_review": dict(src=[str(shop)])}),
        dict(
            name="planted",
            **{
                "dbarch.postgresql.schema_review": dict(
                    src=[str(planted)], expected_rows={"page_views": 3000000000}
                )
            },
        ),
        dict(
            name="missing",
            ignore_errors=True,
            **{"dbarch.postgresql.schema_review": dict(src=[str(tmp_path / "nope.sql")])},
        ),
    ]
    res = run_playbook([dict(hosts="localhost", gather_facts=False, tasks=tasks)])
    shop_result = res.task("shop")["result"]
    assert _pairs(shop_result) == ECOMMERCE_EXPECTED
    assert shop_result["summary"]["source"] == "ddl" and shop_result["queries"] == []
    # Invalid indexes exist only in a live database; everything else is found in the DDL.
    assert set(_pairs(res.task("planted")["result"])) == PLANTED_EXPECTED - {("SR-IDX-003", "public.visits")}
    missing = res.task("missing")
    assert missing["status"] == "failed" and "nope.sql" in missing["result"]["msg"]
