"""dbarch.postgresql.data_subject on a real cluster: a schema with three levels of foreign keys under
the root; export against hand-written queries, legal hold, erase (delete + anonymize) leaving no
row of the subject and every other row as it was (row checksums), rectify."""

import csv
import json
import os

import pytest

import harness

DB = "gdpr_subject_it"
SCHEMA = """
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL UNIQUE, full_name text);
CREATE TABLE addresses (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, street text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, placed date);
CREATE TABLE order_items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders,
                          product_id int NOT NULL REFERENCES products, qty int);
CREATE TABLE item_events (id serial PRIMARY KEY, item_id int NOT NULL REFERENCES order_items, note text);
CREATE TABLE invoices (id serial PRIMARY KEY, order_id int REFERENCES orders, billing_name text,
                       amount numeric);
INSERT INTO products SELECT g, 'product ' || g FROM generate_series(1, 5) g;
INSERT INTO customers SELECT g, 'c' || g || '@example.com', 'Customer ' || g FROM generate_series(1, 4) g;
INSERT INTO addresses (customer_id, street) SELECT 1 + g % 4, g || ' Main St' FROM generate_series(1, 10) g;
INSERT INTO orders SELECT g, 1 + g % 4, date '2024-01-01' + g FROM generate_series(1, 20) g;
INSERT INTO order_items SELECT g, 1 + g % 20, 1 + g % 5, g FROM generate_series(1, 60) g;
INSERT INTO item_events (item_id, note) SELECT 1 + g % 60, 'event ' || g FROM generate_series(1, 120) g;
INSERT INTO invoices (order_id, billing_name, amount)
  SELECT g, 'Name ' || g, g * 10 FROM generate_series(1, 20) g;
"""
TABLES = ("products", "customers", "addresses", "orders", "order_items", "item_events", "invoices")
# Hand-written: the ids of each table's rows that belong to customer %(c)s.
BELONGS = {
    "customers": "SELECT id FROM customers WHERE id = %(c)s",
    "addresses": "SELECT id FROM addresses WHERE customer_id = %(c)s",
    "orders": "SELECT id FROM orders WHERE customer_id = %(c)s",
    "order_items": "SELECT i.id FROM order_items i JOIN orders o ON o.id = i.order_id "
    "WHERE o.customer_id = %(c)s",
    "item_events": "SELECT e.id FROM item_events e JOIN order_items i ON i.id = e.item_id "
    "JOIN orders o ON o.id = i.order_id WHERE o.customer_id = %(c)s",
    "invoices": "SELECT v.id FROM invoices v JOIN orders o ON o.id = v.order_id WHERE o.customer_id = %(c)s",
}


@pytest.fixture
def shop(pg):
    pg.createdb(DB)
    pg.query(SCHEMA, dbname=DB)
    yield DB
    pg.dropdb(DB)


def ids(pg, table, customer):
    return sorted(r[0] for r in pg.query(BELONGS[table], {"c": customer}, dbname=DB))


def checksums(pg):
    """{(table, id): md5 of the whole row}, every row of every table."""
    out = {}
    for table in TABLES:
        for rid, digest in pg.query("SELECT id, md5(t::text) FROM %s t" % table, dbname=DB):
            out[(table, rid)] = digest
    return out


def subject_task(name, **options):
    return harness.task("data_subject", name, table="public.customers", key="id", value=2, **options)


def test_export_hold_erase_rectify(pg, shop, run_playbook, workdir):
    subject_rows = {t: ids(pg, t, 2) for t in BELONGS}
    assert all(subject_rows.values()) and subject_rows["item_events"], subject_rows
    before = checksums(pg)
    run = run_playbook(
        harness.play(
            subject_task("Export", action="export", dest=workdir),
            subject_task("Dry", action="erase"),
            subject_task("Hold", action="erase", legal_hold=True, dry_run=False, ignore_errors=True),
            pg=pg,
            db=DB,
        )
    ).assert_ok()
    export = run.task("Export")["result"]
    for table, expected in subject_rows.items():
        assert export["tables"]["public." + table]["rows"] == len(expected), table
    assert "public.products" not in export["tables"]
    with open(export["files"][0]) as fh:
        document = json.load(fh)
    for table, expected in subject_rows.items():
        assert sorted(r["id"] for r in document["tables"]["public." + table]) == expected, table
    with open(os.path.join(os.path.dirname(export["files"][0]), "public.item_events.csv")) as fh:
        assert sorted(int(r["id"]) for r in csv.DictReader(fh)) == subject_rows["item_events"]
    dry = run.task("Dry")["result"]
    assert dry["changed"] is False and dry["dry_run"] is True
    assert {t: dry["tables"]["public." + t]["rows"] for t in BELONGS} == {
        t: len(v) for t, v in subject_rows.items()
    }
    hold = run.task("Hold")
    assert hold["status"] == "failed" and "legal_hold" in hold["result"]["msg"]
    assert checksums(pg) == before, "export, dry run or legal hold changed a row"

    policies = {
        "public.invoices": {"action": "anonymize", "columns": {"billing_name": "redact", "amount": "keep"}}
    }
    run = run_playbook(
        harness.play(
            subject_task("Erase", action="erase", dry_run=False, policies=policies),
            harness.task(
                "data_subject",
                "Rectify",
                table="customers",
                key="id",
                value=3,
                action="rectify",
                dry_run=False,
                changes={"customers": {"full_name": "Corrected Name"}},
            ),
            pg=pg,
            db=DB,
        )
    ).assert_ok()
    erase = run.task("Erase")["result"]
    assert erase["changed"] and erase["tables"]["public.item_events"]["rows"] == len(
        subject_rows["item_events"]
    )
    # No row refers to customer 2 any more; the anonymized invoices lost their link and their name.
    assert all(ids(pg, t, 2) == [] for t in BELONGS)
    kept = pg.query(
        "SELECT order_id, billing_name FROM invoices WHERE id = ANY(%s)",
        (subject_rows["invoices"],),
        dbname=DB,
    )
    assert len(kept) == len(subject_rows["invoices"]) and all(r == (None, "redacted") for r in kept)
    # Every other row is exactly as it was (the rectified customer 3 aside).
    after = checksums(pg)
    touched = {(t, i) for t, v in subject_rows.items() for i in v} | {("customers", 3)}
    assert {k: v for k, v in before.items() if k not in touched} == {
        k: v for k, v in after.items() if k not in touched
    }
    assert pg.query("SELECT full_name FROM customers WHERE id = 3", dbname=DB) == [("Corrected Name",)]
    assert run.task("Rectify")["result"]["tables"] == {
        "public.customers": {"action": "rectify", "rows": 1, "depth": 0}
    }
    # Foreign keys hold: validating every one finds nothing wrong.
    for name, table in pg.query(
        "SELECT conname, conrelid::regclass::text FROM pg_constraint WHERE contype = 'f'", dbname=DB
    ):
        pg.query(
            "ALTER TABLE %s DROP CONSTRAINT %s, ADD CONSTRAINT %s %s"
            % (
                table,
                name,
                name,
                pg.query(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = %s",
                    (name,),
                    dbname=DB,
                )[0][0],
            ),
            dbname=DB,
        )


def test_gdpr_subject_request_playbook(pg, shop, run_playbook, workdir):
    reports = os.path.join(workdir, "reports")
    extra = dict(
        dbarch_target="localhost",
        dbarch_login_host=pg.host,
        dbarch_login_port=pg.port,
        dbarch_login_user=pg.user,
        dbarch_login_password=pg.password,
        gdpr_db=DB,
        gdpr_action="export",
        gdpr_table="customers",
        gdpr_key="id",
        gdpr_value=1,
        gdpr_dest=workdir,
        gdpr_reports_dir=reports,
    )
    run = run_playbook(
        harness.REPO_ROOT / "playbooks" / "gdpr_subject_request.yml", extra_vars=extra
    ).assert_ok()
    files = run.task("Carry out the request")["result"]["files"]
    assert files and all(os.path.exists(f) for f in files)
    folder = os.path.join(reports, "localhost", "gdpr")
    (receipt,) = os.listdir(folder)
    with open(os.path.join(folder, receipt)) as fh:
        data = json.load(fh)
    assert data["tables"]["public.orders"]["rows"] == len(ids(pg, "orders", 1)) and "value" not in data
