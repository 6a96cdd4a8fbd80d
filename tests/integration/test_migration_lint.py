"""migration_lint against real databases: sizes move severities, the claimed locks and rewrites are
the ones PostgreSQL takes, and the module through ansible-playbook (check mode, fail_on)."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import migration_lint as ml
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgu

SCHEMA = """
CREATE TABLE users (id bigint PRIMARY KEY, email text);
CREATE TABLE big_orders (id bigint PRIMARY KEY, user_id bigint, qty integer, note text);
CREATE TABLE empty_orders (id bigint PRIMARY KEY, user_id bigint, qty integer, note text);
CREATE UNLOGGED TABLE scratch (id bigint PRIMARY KEY, qty integer);
INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 1000) g;
INSERT INTO big_orders SELECT g, 1 + g % 1000, g % 7, 'n' FROM generate_series(1, 300000) g;
INSERT INTO scratch SELECT g, g FROM generate_series(1, 100) g;
CREATE INDEX big_orders_qty_idx ON big_orders (qty);
CREATE INDEX empty_orders_qty_idx ON empty_orders (qty);
ANALYZE;
"""

_PG_LOCK = {
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
    "ExclusiveLock": "EXCLUSIVE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "RowShareLock": "ROW SHARE",
    "AccessShareLock": "ACCESS SHARE",
}
_ORDER = [
    "ACCESS SHARE",
    "ROW SHARE",
    "ROW EXCLUSIVE",
    "SHARE UPDATE EXCLUSIVE",
    "SHARE",
    "SHARE ROW EXCLUSIVE",
    "EXCLUSIVE",
    "ACCESS EXCLUSIVE",
]


@pytest.fixture(scope="module")
def shop(pg):
    db = pg.createdb("ml_shop")
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
    return db


def _sizes(pg, db):
    session = pgu.connect(dict(pg.conn_params, login_db=db), "tests")
    try:
        return ml.table_sizes(session), session.queries
    finally:
        session.close()


def test_sizes_are_read_with_one_query_and_empty_tables_are_known(pg, shop):
    sizes, queries = _sizes(pg, shop)
    assert len(queries) == 1
    assert sizes["public.empty_orders"]["rows"] == 0
    big = sizes["public.big_orders"]
    assert 250000 <= big["rows"] <= 350000 and big["bytes"] > 10 * 1024 * 1024


@pytest.mark.parametrize(
    "statement,rule",
    [
        ("ALTER TABLE {t} ADD CONSTRAINT qty_pos CHECK (qty >= 0);", "ML-004"),
        ("ALTER TABLE {t} ALTER COLUMN qty TYPE bigint;", "ML-009"),
        ("ALTER TABLE {t} ADD COLUMN token uuid DEFAULT gen_random_uuid();", "ML-001"),
        ("ALTER TABLE {t} ADD CONSTRAINT {t}_user_fk FOREIGN KEY (user_id) REFERENCES users (id);", "ML-003"),
        ("CREATE INDEX {t}_note_idx ON {t} (note);", "ML-006"),
    ],
)
def test_same_alter_on_big_and_empty_table_gets_different_severities(pg, shop, statement, rule):
    sizes, _q = _sizes(pg, shop)
    by_table = {}
    for table in ("big_orders", "empty_orders"):
        found = [f for f in ml.lint_sql(statement.format(t=table), table_sizes=sizes) if f.rule == rule]
        assert len(found) == 1, (table, statement)
        by_table[table] = found[0]
    empty, big = by_table["empty_orders"], by_table["big_orders"]
    assert empty.severity == "info" and "empty" in empty.evidence["size_note"]
    assert big.severity == ml.RULES[rule][1]  # 300k rows, ~15 MB: between small and large
    assert big.evidence["table_rows"] == sizes["public.big_orders"]["rows"]
    # with a lower bar for "large" the big table is large: scans become high, rewrites critical
    tight = dict(large_table_rows=100000)
    found = ml.lint_sql(statement.format(t="big_orders"), table_sizes=sizes, thresholds=tight)
    upgraded = [f for f in found if f.rule == rule][0]
    assert upgraded.severity == ("critical" if upgraded.evidence["rewrites_table"] else "high")
    assert (
        fnd.severity_rank(upgraded.severity)
        > fnd.severity_rank(big.severity)
        > fnd.severity_rank(empty.severity)
    )


# Each statement is run in a transaction that is rolled back; the strongest lock the
# session holds on the table and whether the table got a new relfilenode are compared
# with what the finding claims.
LOCK_CASES = [
    ("ALTER TABLE big_orders ADD CONSTRAINT c CHECK (qty >= 0)", "ML-004", "big_orders"),
    (
        "ALTER TABLE big_orders ADD CONSTRAINT f FOREIGN KEY (user_id) REFERENCES users (id)",
        "ML-003",
        "big_orders",
    ),
    (
        "ALTER TABLE big_orders ADD CONSTRAINT f FOREIGN KEY (user_id) REFERENCES users (id)",
        "ML-003",
        "users",
    ),
    ("ALTER TABLE big_orders ALTER COLUMN qty SET NOT NULL", "ML-005", "big_orders"),
    ("ALTER TABLE big_orders ALTER COLUMN qty TYPE bigint", "ML-009", "big_orders"),
    ("ALTER TABLE big_orders ADD COLUMN r float8 DEFAULT random()", "ML-001", "big_orders"),
    ("ALTER TABLE big_orders ADD COLUMN s bigserial", "ML-026", "big_orders"),
    (
        "ALTER TABLE big_orders ADD COLUMN n int NOT NULL DEFAULT 0, ADD COLUMN m int NOT NULL",
        "ML-002",
        "big_orders",
    ),
    ("CREATE INDEX i ON big_orders (note)", "ML-006", "big_orders"),
    ("DROP INDEX big_orders_qty_idx", "ML-007", "big_orders"),
    ("REINDEX TABLE big_orders", "ML-008", "big_orders"),
    ("ALTER TABLE big_orders ADD CONSTRAINT u UNIQUE (id, qty)", "ML-010", "big_orders"),
    ("ALTER TABLE big_orders RENAME COLUMN note TO remark", "ML-011", "big_orders"),
    ("ALTER TABLE big_orders RENAME TO orders2", "ML-012", "big_orders"),
    ("ALTER TABLE big_orders DROP COLUMN note", "ML-013", "big_orders"),
    ("DROP TABLE scratch", "ML-014", "scratch"),
    ("ALTER TABLE scratch SET LOGGED", "ML-027", "scratch"),
    ("CLUSTER scratch USING scratch_pkey", "ML-028", "scratch"),
    ("TRUNCATE scratch", "ML-029", "scratch"),
    ("ALTER TABLE big_orders ALTER COLUMN note DROP NOT NULL", "ML-032", "big_orders"),
]


def _held(cur, table):
    cur.execute(
        "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' "
        "AND relation = %s::regclass",
        (table,),
    )
    modes = [_PG_LOCK[r[0]] for r in cur.fetchall()]
    return max(modes, key=_ORDER.index) if modes else None


@pytest.mark.all_versions
@pytest.mark.parametrize("statement,rule,table", LOCK_CASES, ids=["%s-%s" % (c[1], c[2]) for c in LOCK_CASES])
def test_claimed_lock_and_rewrite_match_postgresql(pg, shop, statement, rule, table):
    found = [f for f in ml.lint_sql(statement + ";") if f.rule == rule]
    assert found, "%s not reported for %s" % (rule, statement)
    claim = found[0].evidence
    conn = pg.connect(shop, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT oid, relfilenode FROM pg_class WHERE relname = %s", (table,))
            oid, before = cur.fetchone()
            if rule == "ML-002":
                # fails on a table with rows: exactly what the finding says
                with pytest.raises(Exception, match="contains null values"):
                    cur.execute(statement)
                return
            cur.execute(statement)
            cur.execute("SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND relation = %s", (oid,))
            modes = [_PG_LOCK[r[0]] for r in cur.fetchall()]
            held = max(modes, key=_ORDER.index) if modes else None
            cur.execute("SELECT relfilenode FROM pg_class WHERE oid = %s", (oid,))
            row = cur.fetchone()
            rewritten = row is not None and row[0] != before
    finally:
        conn.rollback()
        conn.close()
    assert held == claim["lock"], (statement, table, held, claim["lock"])
    # a dropped table has no relfilenode; TRUNCATE swaps in an empty file without copying rows
    if rule not in ("ML-014", "ML-029"):
        assert rewritten == claim["rewrites_table"], (statement, rewritten)


@pytest.mark.all_versions
def test_safe_forms_take_the_weak_locks_they_promise(pg, shop):
    safe = [
        ("ALTER TABLE big_orders ADD CONSTRAINT c CHECK (qty >= 0) NOT VALID", "ACCESS EXCLUSIVE"),
        ("ALTER TABLE big_orders ADD COLUMN at timestamptz DEFAULT now()", "ACCESS EXCLUSIVE"),
    ]
    for statement, lock in safe:
        assert not [f for f in ml.lint_sql(statement + ";") if f.rule not in ("ML-021", "ML-022")], statement
        conn = pg.connect(shop, autocommit=False)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT relfilenode FROM pg_class WHERE relname = 'big_orders'")
                before = cur.fetchone()[0]
                cur.execute(statement)
                assert _held(cur, "big_orders") == lock
                cur.execute("SELECT relfilenode FROM pg_class WHERE relname = 'big_orders'")
                assert cur.fetchone()[0] == before, "no rewrite for %s" % statement
        finally:
            conn.rollback()
            conn.close()
    # VALIDATE CONSTRAINT, the second step of every NOT VALID fix, takes SHARE UPDATE EXCLUSIVE
    conn = pg.connect(shop, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE big_orders ADD CONSTRAINT c CHECK (qty >= 0) NOT VALID")
            conn.commit()
            cur.execute("ALTER TABLE big_orders VALIDATE CONSTRAINT c")
            assert _held(cur, "big_orders") == "SHARE UPDATE EXCLUSIVE"
            conn.rollback()
            cur.execute("ALTER TABLE big_orders DROP CONSTRAINT c")
            conn.commit()
    finally:
        conn.close()


def test_concurrently_in_a_wrapped_file_fails_in_postgresql_as_reported(pg, shop):
    sql = "ALTER TABLE empty_orders ADD COLUMN a text;\nCREATE INDEX CONCURRENTLY e_a ON empty_orders (a);"
    found = [f for f in ml.lint_sql(sql) if f.rule == "ML-023"]
    assert [f.location["line"] for f in found] == [2]
    conn = pg.connect(shop, autocommit=False)  # what a runner does: the file in one transaction
    try:
        with conn.cursor() as cur, pytest.raises(Exception, match="cannot run inside a transaction block"):
            cur.execute(sql)
    finally:
        conn.rollback()
        conn.close()


MIGRATIONS = {
    "V1__users_email.sql": "SET lock_timeout = '5s';\nSET statement_timeout = '1min';\n"
    "ALTER TABLE big_orders ADD CONSTRAINT qty_pos CHECK (qty >= 0);\n",
    "V2__empty.sql": "SET lock_timeout = '5s';\nSET statement_timeout = '1min';\n"
    "-- migration_lint: ignore ML-009 reason: the table is empty until the launch\n"
    "ALTER TABLE empty_orders ALTER COLUMN qty TYPE bigint;\n"
    "ALTER TABLE empty_orders ADD CONSTRAINT e_qty CHECK (qty >= 0);\n",
}


def _module(pg, run_playbook, db, folder, check=False, **options):
    args = dict(pg.conn_params, login_db=db, src=[str(folder)], use_connection=True, **options)
    tasks = [dict(name="lint", ignore_errors=True, **{"dbarch.postgresql.migration_lint": args})]
    res = run_playbook([dict(hosts="localhost", gather_facts=False, tasks=tasks)], check=check)
    return res, res.task("lint")


def test_module_check_mode_sizes_and_fail_on(pg, shop, run_playbook, tmp_path):
    for name, text in MIGRATIONS.items():
        (tmp_path / name).write_text(text)
    res, task = _module(pg, run_playbook, shop, tmp_path, check=True, large_table_rows=100000)
    assert res.rc == 0 and task["status"] == "ok", res.stdout
    r = task["result"]
    assert r["changed"] is False
    assert len(r["queries"]) == 2 and "pg_class" in r["queries"][0] and "pg_constraint" in r["queries"][1]
    got = sorted(
        (
            f["location"]["file"].rsplit("/", 1)[-1],
            f["location"]["line"],
            f["rule"],
            f["severity"],
            f["suppressed"],
        )
        for f in r["findings"]
    )
    assert got == [
        ("V1__users_email.sql", 3, "ML-004", "high", False),
        ("V2__empty.sql", 4, "ML-009", "info", True),
        ("V2__empty.sql", 5, "ML-004", "info", False),
    ]
    sup = [f for f in r["findings"] if f["suppressed"]][0]
    assert sup["suppression_reason"] == "the table is empty until the launch"
    assert r["summary"]["file_count"] == 2 and r["summary"]["statements"] == 7
    assert r["summary"]["table_sizes"] == "database"
    assert r["summary"]["counts"]["high"] == 1 and r["summary"]["counts"]["suppressed"] == 1
    assert pg.password not in res.stdout

    res, task = _module(pg, run_playbook, shop, tmp_path, check=True, large_table_rows=100000, fail_on="high")
    assert task["status"] == "failed"
    assert task["result"]["msg"].startswith(
        "1 finding(s) at or above fail_on=high (worst: high): ML-004 public.big_orders"
    )
    assert len(task["result"]["findings"]) == 3

    # suppressions option (rule, object, reason) lets the gate pass
    res, task = _module(
        pg,
        run_playbook,
        shop,
        tmp_path,
        large_table_rows=100000,
        fail_on="high",
        suppressions=[dict(rule="ML-004", object="public.big_orders", reason="maintenance window booked")],
    )
    assert task["status"] == "ok", task["result"].get("msg")

    # without the connection: default severities, no query
    args = dict(src=[str(tmp_path)], exclude_rules=["ML-02*"])
    tasks = [dict(name="lint", **{"dbarch.postgresql.migration_lint": args})]
    res = run_playbook([dict(hosts="localhost", gather_facts=False, tasks=tasks)], check=True)
    r = res.task("lint")["result"]
    assert r["queries"] == [] and r["summary"]["table_sizes"] == "none"
    assert sorted(f["severity"] for f in r["findings"] if f["rule"] == "ML-004") == ["medium", "medium"]


def test_module_rejects_bad_input(pg, run_playbook, tmp_path):
    tasks = [
        dict(
            name="nothing", ignore_errors=True, **{"dbarch.postgresql.migration_lint": dict(fail_on="high")}
        ),
        dict(
            name="missing",
            ignore_errors=True,
            **{"dbarch.postgresql.migration_lint": dict(src=[str(tmp_path / "nope.sql")])},
        ),
        dict(
            name="bad rule",
            ignore_errors=True,
            **{"dbarch.postgresql.migration_lint": dict(sql="SELECT 1;", exclude_rules=["ML-9*"])},
        ),
    ]
    res = run_playbook([dict(hosts="localhost", gather_facts=False, tasks=tasks)])
    assert "one of the following is required: src, sql" in res.task("nothing")["result"]["msg"]
    assert "nope.sql: no such file or folder" in res.task("missing")["result"]["msg"]
    assert "matches no rule" in res.task("bad rule")["result"]["msg"]


FIX_SCHEMA = """
CREATE TABLE users (id bigint PRIMARY KEY);
CREATE TABLE items (id bigint NOT NULL, qty integer, ref text, user_id bigint, note text);
INSERT INTO users SELECT g FROM generate_series(1, 50) g;
INSERT INTO items SELECT g, g % 9, 'r' || g, 1 + g % 50, 'n' FROM generate_series(1, 2000) g;
CREATE INDEX items_note_idx ON items (note);
"""

# (statement, rule, query that must return true once the fix has run)
FIX_CASES = [
    (
        "ALTER TABLE items ADD COLUMN token uuid DEFAULT gen_random_uuid()",
        "ML-001",
        "SELECT count(*) = 1 FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid "
        "AND a.attnum = d.adnum WHERE d.adrelid = 'items'::regclass AND a.attname = 'token'",
    ),
    (
        "ALTER TABLE items ADD CONSTRAINT items_user_fk FOREIGN KEY (user_id) REFERENCES users (id)",
        "ML-003",
        "SELECT convalidated FROM pg_constraint WHERE conname = 'items_user_fk'",
    ),
    (
        "ALTER TABLE items ADD CONSTRAINT items_qty_check CHECK (qty >= 0)",
        "ML-004",
        "SELECT convalidated FROM pg_constraint WHERE conname = 'items_qty_check'",
    ),
    (
        "ALTER TABLE items ALTER COLUMN qty SET NOT NULL",
        "ML-005",
        "SELECT attnotnull AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'items_qty_not_null' "
        "AND contype = 'c') FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'qty'",
    ),
    (
        "CREATE INDEX items_qty_idx ON items (qty)",
        "ML-006",
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_qty_idx'::regclass",
    ),
    ("DROP INDEX items_note_idx", "ML-007", "SELECT to_regclass('items_note_idx') IS NULL"),
    (
        "REINDEX INDEX items_note_idx",
        "ML-008",
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_note_idx'::regclass",
    ),
    (
        "ALTER TABLE items ALTER COLUMN qty TYPE bigint",
        "ML-009",
        "SELECT format_type(atttypid, atttypmod) = 'bigint' FROM pg_attribute "
        "WHERE attrelid = 'items'::regclass AND attname = 'qty'",
    ),
    (
        "ALTER TABLE items ADD CONSTRAINT items_ref_key UNIQUE (ref)",
        "ML-010",
        "SELECT contype = 'u' FROM pg_constraint WHERE conname = 'items_ref_key'",
    ),
    (
        "ALTER TABLE items ADD PRIMARY KEY (id)",
        "ML-010",
        "SELECT contype = 'p' FROM pg_constraint WHERE conname = 'items_pkey'",
    ),
]


@pytest.mark.all_versions
@pytest.mark.parametrize(
    "statement,rule,check", FIX_CASES, ids=["%s-%d" % (c[1], i) for i, c in enumerate(FIX_CASES)]
)
def test_the_fix_sql_runs_on_postgresql_and_does_the_job(pg, statement, rule, check):
    db = pg.createdb("ml_fix")
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute(FIX_SCHEMA)
    found = [f for f in ml.lint_sql(statement + ";") if f.rule == rule]
    assert found, statement
    steps = ml.statement_spans(found[0].fix)
    assert len(steps) >= 1
    with pg.connect(db) as conn, conn.cursor() as cur:  # autocommit: CONCURRENTLY steps need it
        for step in steps:
            cur.execute(step["text"])
        cur.execute(check)
        assert cur.fetchone()[0] is True, (found[0].fix, check)


# -- the migrate gate lints a run's pending migrations with what earlier ones created ----------
GATE_V1 = "CREATE TABLE crate (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, shelf int);\n"
GATE_V2 = (
    "SET lock_timeout = '3s';\n"
    "CREATE INDEX crate_shelf_idx ON crate (shelf);\n"
    "ALTER TABLE crate ADD COLUMN label uuid DEFAULT gen_random_uuid();\n"
)


def _migrate(pg, run_playbook, db, folder, name):
    args = dict(pg.conn_params, login_db=db, path=str(folder), lint_fail_on="high")
    tasks = [dict(name=name, ignore_errors=True, **{"dbarch.postgresql.migrate": args})]
    return run_playbook([dict(hosts="localhost", gather_facts=False, tasks=tasks)]).task(name)


def test_migrate_gate_lets_a_first_run_through_and_stops_the_same_change_on_a_full_table(
    pg, run_playbook, tmp_path
):
    # empty database, V1 and V2 pending in one run: crate is new when V2 indexes it
    db = pg.createdb("ml_gate_run")
    run = tmp_path / "run"
    run.mkdir()
    (run / "V1__crate.sql").write_text(GATE_V1)
    (run / "V2__crate_more.sql").write_text(GATE_V2)
    task = _migrate(pg, run_playbook, db, run, "first run")
    assert task["status"] != "failed", task["result"].get("msg")
    v2 = [f for f in task["result"]["findings"] if f["location"]["file"] == "V2__crate_more.sql"]
    assert {"ML-001", "ML-006"} <= {f["rule"] for f in v2}
    assert all(f["severity"] == "info" for f in v2), v2
    assert pg.query("SELECT count(*) FROM pg_indexes WHERE indexname = 'crate_shelf_idx'", dbname=db) == [
        (1,)
    ]

    # V1 applied earlier and crate holds rows: the same V2 is stopped, nothing applied
    db = pg.createdb("ml_gate_full")
    only_v1 = tmp_path / "only_v1"
    only_v1.mkdir()
    (only_v1 / "V1__crate.sql").write_text(GATE_V1)
    assert _migrate(pg, run_playbook, db, only_v1, "v1")["status"] != "failed"
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO crate (shelf) SELECT g % 40 FROM generate_series(1, 50000) g; ANALYZE crate")
    task = _migrate(pg, run_playbook, db, run, "second run")
    assert task["status"] == "failed"
    assert "ML-001" in task["result"]["msg"] and task["result"]["msg"].endswith("Nothing was applied.")
    assert pg.query("SELECT count(*) FROM pg_indexes WHERE indexname = 'crate_shelf_idx'", dbname=db) == [
        (0,)
    ]


# -- NOT VALID + VALIDATE in one transaction keeps the ADD's lock through the scan -------------
@pytest.mark.parametrize(
    "add,rule,table",
    [
        (
            "ALTER TABLE big_orders ADD CONSTRAINT bo_user_fk FOREIGN KEY (user_id) "
            "REFERENCES users (id) NOT VALID",
            "ML-003",
            "users",
        ),
        (
            "ALTER TABLE big_orders ADD CONSTRAINT bo_user_fk CHECK (qty < 100) NOT VALID",
            "ML-004",
            "big_orders",
        ),
    ],
)
def test_not_valid_and_validate_in_one_transaction_hold_the_strong_lock(pg, shop, add, rule, table):
    validate = "ALTER TABLE big_orders VALIDATE CONSTRAINT bo_user_fk"
    found = [f for f in ml.lint_sql("%s;\n%s;" % (add, validate)) if f.rule == rule]
    assert len(found) == 1 and found[0].location["line"] == 2
    conn = pg.connect(shop, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(add)
            cur.execute(validate)
            held_together = _held(cur, table)
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute(add)
        conn.commit()
        with conn.cursor() as cur:
            cur.execute(validate)
            held_alone = _held(cur, "big_orders")
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("ALTER TABLE big_orders DROP CONSTRAINT bo_user_fk")
        conn.commit()
    finally:
        conn.rollback()
        conn.close()
    # in one transaction the validation ran under the ADD's lock, which blocks writes
    assert held_together == found[0].evidence["lock"]
    assert held_together in ml.BLOCKING_LOCKS
    # in a transaction of its own VALIDATE takes only SHARE UPDATE EXCLUSIVE: writes go on
    assert held_alone == "SHARE UPDATE EXCLUSIVE"


# -- SET NOT NULL proven by a valid CHECK (column IS NOT NULL) in the live catalog -------------
def test_set_not_null_with_a_valid_not_null_check_in_the_catalog_is_not_reported(pg, shop):
    with pg.connect(shop) as conn, conn.cursor() as cur:
        cur.execute(
            'DROP TABLE IF EXISTS nn_parcel; CREATE TABLE nn_parcel (id bigint, "Weight" int, depot int);'
            "INSERT INTO nn_parcel SELECT g, g, g FROM generate_series(1, 20000) g;"
            'ALTER TABLE nn_parcel ADD CONSTRAINT nn_parcel_w CHECK ("Weight" IS NOT NULL);'
            "ALTER TABLE nn_parcel ADD CONSTRAINT nn_parcel_d CHECK (depot IS NOT NULL) NOT VALID;"
            "ANALYZE nn_parcel"
        )
    session = pgu.connect(dict(pg.conn_params, login_db=shop), "tests")
    try:
        sizes, checks = ml.database_facts(session)
    finally:
        session.close()
    assert {"name": "nn_parcel_w", "column": "Weight", "valid": True} in checks["public.nn_parcel"]
    assert {"name": "nn_parcel_d", "column": "depot", "valid": False} in checks["public.nn_parcel"]
    weight = 'ALTER TABLE nn_parcel ALTER COLUMN "Weight" SET NOT NULL;'
    depot = "ALTER TABLE nn_parcel ALTER COLUMN depot SET NOT NULL;"

    def ml005(sql):
        found = ml.lint_run(migrations=[("V9.sql", sql)], table_sizes=sizes, not_null_checks=checks)
        return [f for f in found if f.rule == "ML-005"]

    assert not ml005(weight)
    assert ml005(depot)  # the check is not valid yet: SET NOT NULL scans
    # PostgreSQL agrees: with the valid check it proves the column instead of scanning it
    conn = pg.connect(shop, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL client_min_messages = debug1")
            del conn.notices[:]
            cur.execute(weight)
            proved_weight = [n for n in conn.notices if "sufficient to prove" in n]
            del conn.notices[:]
            cur.execute(depot)
            proved_depot = [n for n in conn.notices if "sufficient to prove" in n]
    finally:
        conn.rollback()
        conn.close()
    assert proved_weight and not proved_depot


def test_relative_paths_are_refused_by_the_modules_that_read_files(run_playbook, tmp_path):
    """A relative src or dest would be taken from the module's working directory on the host: the
    modules that read DDL files (and write the data dictionary) refuse it before reading anything."""
    tasks = [
        dict(
            name=module,
            ignore_errors=True,
            **{"dbarch.postgresql." + module: args},
        )
        for module, args in (
            ("migration_lint", dict(src=["migrations/V1__init.sql"])),
            ("schema_review", dict(src=["ddl/schema.sql"])),
            ("data_dictionary", dict(src=["ddl/schema.sql"], dest=str(tmp_path / "out"))),
            ("data_dictionary", dict(src=[str(tmp_path)], dest="reports/dictionary")),
        )
    ]
    tasks[-1]["name"] = "data_dictionary dest"
    res = run_playbook([dict(hosts="localhost", gather_facts=False, tasks=tasks)])
    for name, option in (
        ("migration_lint", "src='migrations/V1__init.sql'"),
        ("schema_review", "src='ddl/schema.sql'"),
        ("data_dictionary", "src='ddl/schema.sql'"),
        ("data_dictionary dest", "dest='reports/dictionary'"),
    ):
        result = res.task(name)["result"]
        assert result["failed"] is True, name
        assert "%s must be an absolute path" % option in result["msg"], (name, result["msg"])
    assert not (tmp_path / "out").exists()
