"""dbarch.postgresql.pii_inventory_info on a real cluster: planted PII columns (names in several
languages, values with checksums under neutral names) are found, plain columns are not, and no
sampled value shows in the result."""

import json

import pytest

import harness

DB = "pii_it"
SCHEMA = """
CREATE TABLE kunden (id int PRIMARY KEY, nachname text, geburtsdatum date, telefonnummer text, status text);
CREATE TABLE clients (id int PRIMARY KEY, prenom text, courriel text, code_postal text,
                      created_at timestamptz);
CREATE TABLE klanten (id int PRIMARY KEY, achternaam text, ref_a text, ref_b text, quantity int);
CREATE TABLE pagos (id int PRIMARY KEY, ref_c text, ref_d text, ref_e text, seen date, apellidos text,
                    total numeric);
CREATE TABLE products (id int PRIMARY KEY, name text, product_code text, description text);
INSERT INTO kunden SELECT g, 'Muller', date '1960-01-01' + g * 97,
  '+49 30 1234' || lpad(g::text, 4, '0'), 'active'
  FROM generate_series(1, 200) g;
INSERT INTO clients SELECT g, 'Jean', 'x', '75001', now() FROM generate_series(1, 200) g;
-- ref_a: e-mail addresses, ref_b: IBANs (valid mod 97) under neutral names
INSERT INTO klanten SELECT g, 'Jansen', 'user' || g || '@example.nl',
  (ARRAY['DE89370400440532013000', 'GB82WEST12345698765432', 'NL91ABNA0417164300'])[1 + g % 3], g
  FROM generate_series(1, 200) g;
-- ref_c: cards (Luhn), ref_d: client IPs, ref_e: Dutch BSNs (eleven-test), seen: birth dates
INSERT INTO pagos SELECT g, (ARRAY['4111111111111111', '5555555555554444', '4012888888881881'])[1 + g % 3],
  '10.0.' || (g % 250) || '.' || (g % 200), (ARRAY['111222333', '123456782'])[1 + g % 2],
  date '1950-01-01' + g * 101, 'Garcia', g FROM generate_series(1, 200) g;
INSERT INTO products SELECT g, 'Widget ' || g, 'P-' || g, 'a product' FROM generate_series(1, 200) g;
ANALYZE;
"""
PLANTED = {
    ("public.kunden", "nachname"): "person_name",
    ("public.kunden", "geburtsdatum"): "birth_date",
    ("public.kunden", "telefonnummer"): "phone",
    ("public.clients", "prenom"): "person_name",
    ("public.clients", "courriel"): "email",
    ("public.clients", "code_postal"): "address",
    ("public.klanten", "achternaam"): "person_name",
    ("public.klanten", "ref_a"): "email",
    ("public.klanten", "ref_b"): "bank_account",
    ("public.pagos", "ref_c"): "payment_card",
    ("public.pagos", "ref_d"): "ip_address",
    ("public.pagos", "ref_e"): "national_id",
    ("public.pagos", "seen"): "birth_date",
    ("public.pagos", "apellidos"): "person_name",
}
BY_VALUE = {k for k in PLANTED if k[1].startswith("ref_") or k[1] == "seen"}


@pytest.fixture
def db(pg):
    pg.createdb(DB)
    pg.query(SCHEMA, dbname=DB)
    yield DB
    pg.dropdb(DB)


def test_planted_pii_found_plain_columns_not(pg, db, run_playbook):
    run = run_playbook(
        harness.play(
            harness.task("pii_inventory_info", "Names"),
            harness.task("pii_inventory_info", "Sampled", sample=True, sample_rows=100),
            pg=pg,
            db=DB,
        )
    ).assert_ok()
    names = {(c["table"], c["column"]): c for c in run.task("Names")["result"]["columns"]}
    assert set(names) == set(PLANTED) - BY_VALUE, sorted(names)
    sampled = run.task("Sampled")["result"]
    found = {(c["table"], c["column"]): c for c in sampled["columns"]}
    assert {k: v["category"] for k, v in found.items()} == PLANTED
    for key in BY_VALUE:
        assert found[key]["by"] == ["values"] and found[key]["evidence"], found[key]
    # The name and the values agree on the phone numbers and the birth dates: more confidence.
    assert (
        found[("public.kunden", "telefonnummer")]["confidence"]
        > names[("public.kunden", "telefonnummer")]["confidence"]
    )
    assert sampled["sampled"] and not sampled["tables_skipped"]
    text = json.dumps(sampled)
    for value in ("4111111111111111", "DE89370400440532013000", "111222333", "@example.nl"):
        assert value not in text
