"""dbarch.postgresql.data_retention on a real cluster: check mode counts, batches delete or
anonymize only the rows past the policy, newer rows untouched (checksums), a second run changes
nothing."""

import pytest

import harness

DB = "retention_it"
SCHEMA = """
CREATE TABLE web_log (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, ip inet, path text);
INSERT INTO web_log (created_at, ip, path)
  SELECT now() - g * interval '1 day', '10.0.0.1', '/p/' || g FROM generate_series(1, 100) g;
CREATE TABLE orders (id int PRIMARY KEY, placed date NOT NULL, customer_name text, email text, total numeric);
INSERT INTO orders SELECT g, current_date - g * 40, 'Name ' || g, 'e' || g || '@example.com', g
  FROM generate_series(1, 50) g;
"""
POLICIES = [
    {"table": "web_log", "column": "created_at", "older_than": "30 days"},
    {
        "table": "public.orders",
        "column": "placed",
        "older_than": "1 year",
        "action": "anonymize",
        "columns": {"customer_name": "redact", "email": "null"},
    },
]


@pytest.fixture
def db(pg):
    pg.createdb(DB)
    pg.query(SCHEMA, dbname=DB)
    yield DB
    pg.dropdb(DB)


def checksums(pg, table, where):
    return dict(pg.query("SELECT id, md5(t::text) FROM %s t WHERE %s" % (table, where), dbname=DB))


def test_batches_check_mode_and_idempotence(pg, db, run_playbook):
    old_logs = pg.query(
        "SELECT count(*) FROM web_log WHERE created_at < now() - interval '30 days'", dbname=DB
    )[0][0]
    old_orders = pg.query("SELECT count(*) FROM orders WHERE placed < now() - interval '1 year'", dbname=DB)[
        0
    ][0]
    recent_logs = checksums(pg, "web_log", "created_at > now() - interval '29 days'")
    recent_orders = checksums(pg, "orders", "placed > now() - interval '11 months'")

    def task(name, **kw):
        return harness.task("data_retention", name, policies=POLICIES, batch_size=7, **kw)

    run = run_playbook(
        harness.play(task("Check", check_mode=True), task("Apply"), task("Again"), pg=pg, db=DB)
    )
    run.assert_ok()
    check = run.task("Check")["result"]
    assert check["changed"] and check["tables"]["public.web_log"]["rows"] == old_logs
    assert check["tables"]["public.orders"]["rows"] == old_orders
    apply = run.task("Apply")["result"]["tables"]
    assert apply["public.web_log"]["rows"] == old_logs and apply["public.web_log"]["batches"] == -(
        -old_logs // 7
    )
    assert apply["public.orders"]["rows"] == old_orders
    again = run.task("Again")["result"]
    assert again["changed"] is False and all(t["rows"] == 0 for t in again["tables"].values())
    # Past the policy: gone or anonymized; newer rows exactly as they were.
    assert pg.query(
        "SELECT count(*) FROM web_log WHERE created_at < now() - interval '30 days'", dbname=DB
    ) == [(0,)]
    assert pg.query(
        "SELECT count(*) FROM orders WHERE placed < now() - interval '1 year' "
        "AND (customer_name <> 'redacted' OR email IS NOT NULL)",
        dbname=DB,
    ) == [(0,)]
    assert checksums(pg, "web_log", "created_at > now() - interval '29 days'") == recent_logs
    assert checksums(pg, "orders", "placed > now() - interval '11 months'") == recent_orders
