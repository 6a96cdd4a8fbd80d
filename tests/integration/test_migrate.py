# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbarch.postgresql.migrate against real PostgreSQL: playbooks (action plugin + module) and the engine."""

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
import yaml

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import migrations as mg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod

CORPUS = Path(__file__).resolve().parents[1] / "data" / "migrations" / "shop"


# -- helpers -------------------------------------------------------------------------------
def copy_corpus(workdir, name="shop"):
    dest = os.path.join(workdir, name)
    shutil.copytree(str(CORPUS), dest)
    return dest


def write_files(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(folder, name), "w", newline="") as out:
            out.write(text)
    return folder


def play(pg, db, tasks):
    (built,) = harness.play(*tasks, pg=pg, db=db)
    return built


def task(name, **args):
    # These tests exercise the engine's own checks; the lint gate in front of it has its own test.
    args.setdefault("lint_fail_on", "never")
    return harness.task("migrate", name, **args)


def fingerprint(pg, db, table="flyway_schema_history"):
    """Catalog and history fingerprint: relations, columns, indexes, comments, history rows."""
    rows = pg.query(
        """
        SELECT n.nspname, c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod),
               obj_description(c.oid, 'pg_class'), (SELECT indisvalid FROM pg_index WHERE indexrelid = c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
        ORDER BY 1, 2, 4
        """,
        dbname=db,
    )
    exists = pg.query("SELECT to_regclass(%s) IS NOT NULL", (table,), dbname=db)[0][0]
    history = (
        pg.query(
            "SELECT installed_rank, version, description, type, script, checksum, success FROM %s ORDER BY 1"
            % table,
            dbname=db,
        )
        if exists
        else []
    )
    return hashlib.sha256(repr((rows, history)).encode()).hexdigest(), rows, history


def history(pg, db, table="flyway_schema_history"):
    return pg.query(
        "SELECT version, description, type, script, checksum, success FROM %s ORDER BY installed_rank"
        % table,
        dbname=db,
    )


def engine_session(pg, db, name="migrate"):
    return pgmod.connect(dict(pg.conn_params, login_db=db), name)


def engine_run(pg, db, files, **options):
    """mg.run(migrate) of ``files`` on a session of its own."""
    session = engine_session(pg, db)
    try:
        return mg.run(session, "migrate", files, **options)
    finally:
        session.close()


def files_of(folder):
    return [(n, Path(folder, n).read_text()) for n in sorted(os.listdir(folder)) if n.endswith(".sql")]


def result_of(run, name):
    return run.task(name)["result"]


# -- the corpus through playbooks ------------------------------------------------------------
def test_migrate_info_validate_undo_repair(pg, run_playbook, workdir):
    db = pg.createdb("mig_corpus")
    path = copy_corpus(workdir)
    placeholders = {"shop_name": "the demo shop"}
    before = fingerprint(pg, db)

    # Check mode: pending in order, the SQL as diff, nothing runs (not even the history table).
    run = run_playbook(
        play(pg, db, [task("plan", path=path, placeholders=placeholders, check_mode=True, diff=True)])
    ).assert_ok()
    res = result_of(run, "plan")
    assert res["changed"] is True
    assert [m["script"] for m in res["pending"]] == [
        "V1__create_customers.sql",
        "V1_9__add_orders.sql",
        "V1_10__orders_note.sql",
        "V2__orders_customer_idx.sql",
        "R__customer_orders_view.sql",
    ]
    assert res["diff"]["before"] == "version: none\n"
    assert res["diff"]["after"].startswith("version: 2\n")
    assert "Orders of the demo shop (V1_10__orders_note.sql)" in res["diff"]["after"]
    assert "outside a transaction" in res["diff"]["after"]
    assert fingerprint(pg, db) == before

    # Migrate, then again (nothing to do), info and validate.
    run = run_playbook(
        play(
            pg,
            db,
            [
                task("first", path=path, placeholders=placeholders),
                task("second", path=path, placeholders=placeholders),
                task("info", path=path, command="info"),
                task("validate", path=path, command="validate"),
            ],
        )
    ).assert_ok()
    first = result_of(run, "first")
    assert first["changed"] is True
    assert first["current_version"] == "2"
    assert [(m["version"], m["script"]) for m in first["applied"]] == [
        ("1", "V1__create_customers.sql"),
        ("1.9", "V1_9__add_orders.sql"),
        ("1.10", "V1_10__orders_note.sql"),
        ("2", "V2__orders_customer_idx.sql"),
        (None, "R__customer_orders_view.sql"),
    ]
    assert all(m["checksum"] == mg.checksum(Path(path, m["script"]).read_text()) for m in first["applied"])
    assert "_files" not in first.get("invocation", {}).get("module_args", {})
    second = result_of(run, "second")
    assert second["changed"] is False and second["applied"] == [] and second["current_version"] == "2"
    info = result_of(run, "info")
    assert info["changed"] is False and info["pending"] == [] and info["findings"] == []
    assert len(info["history"]) == 5
    assert result_of(run, "validate")["findings"] == []

    assert pg.query("SELECT obj_description('orders'::regclass, 'pg_class')", dbname=db) == [
        ("Orders of the demo shop (V1_10__orders_note.sql)",)
    ]
    assert pg.query(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_customer_id_idx'::regclass", dbname=db
    ) == [(True,)]
    assert pg.query("SELECT * FROM customer_orders", dbname=db) == [("first@example.com", 0)]
    hist = history(pg, db)
    assert [(h[0], h[1], h[2]) for h in hist] == [
        ("1", "create customers", "SQL"),
        ("1.9", "add orders", "SQL"),
        ("1.10", "orders note", "SQL"),
        ("2", "orders customer idx", "SQL"),
        (None, "customer orders view", "SQL"),
    ]
    assert all(h[5] for h in hist)
    # Flyway's table shape.
    cols = pg.query(
        "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = 'flyway_schema_history'::regclass AND attnum > 0 ORDER BY attnum",
        dbname=db,
    )
    assert cols == [
        ("installed_rank", "integer", True),
        ("version", "character varying(50)", False),
        ("description", "character varying(200)", True),
        ("type", "character varying(20)", True),
        ("script", "character varying(1000)", True),
        ("checksum", "integer", False),
        ("installed_by", "character varying(100)", True),
        ("installed_on", "timestamp without time zone", True),
        ("execution_time", "integer", True),
        ("success", "boolean", True),
    ]
    assert pg.query(
        "SELECT count(*) FROM pg_indexes "
        "WHERE indexname IN ('flyway_schema_history_pk', 'flyway_schema_history_s_idx')",
        dbname=db,
    ) == [(2,)]

    # Check mode on an up-to-date database leaves it byte for byte as it is.
    snap = fingerprint(pg, db)
    run = run_playbook(play(pg, db, [task("noop", path=path, placeholders=placeholders, check_mode=True)]))
    assert result_of(run.assert_ok(), "noop")["changed"] is False
    assert fingerprint(pg, db) == snap

    # Undo the latest version (an index dropped CONCURRENTLY), then apply it again.
    run = run_playbook(
        play(
            pg,
            db,
            [
                task("undo", path=path, command="undo", diff=True),
                task("redo", path=path, placeholders=placeholders),
            ],
        )
    ).assert_ok()
    undo = result_of(run, "undo")
    assert undo["changed"] is True and undo["current_version"] == "1.10"
    assert [(m["type"], m["script"]) for m in undo["applied"]] == [
        ("UNDO_SQL", "U2__drop_orders_customer_idx.sql")
    ]
    assert "DROP INDEX CONCURRENTLY" in undo["diff"]["after"]
    redo = result_of(run, "redo")
    assert [m["script"] for m in redo["applied"]] == ["V2__orders_customer_idx.sql"]
    assert redo["current_version"] == "2"
    assert [h[2] for h in history(pg, db)][-2:] == ["UNDO_SQL", "SQL"]

    # A changed repeatable migration is applied again; an edited versioned one fails validate.
    Path(path, "R__customer_orders_view.sql").write_text(
        "CREATE OR REPLACE VIEW customer_orders AS\nSELECT c.email, count(o.id) AS orders, 1 AS v2\n"
        "FROM customers c LEFT JOIN orders o ON o.customer_id = c.id\nGROUP BY c.email;\n"
    )
    with open(os.path.join(path, "V1_9__add_orders.sql"), "a") as out:
        out.write("-- edited after it was applied\n")
    run = run_playbook(
        play(
            pg,
            db,
            [
                task("validate", path=path, command="validate", ignore_errors=True),
                task("migrate", path=path, placeholders=placeholders, ignore_errors=True),
                task("repair", path=path, command="repair"),
                task("again", path=path, command="validate"),
                task("reapply", path=path, placeholders=placeholders),
            ],
        )
    ).assert_ok()
    validate = run.task("validate")
    assert validate["status"] == "failed"
    assert "V1_9__add_orders.sql was changed after it was applied" in validate["result"]["msg"]
    (finding,) = validate["result"]["findings"]
    assert finding["rule"] == "MG-001" and finding["object"] == "V1_9__add_orders.sql"
    assert finding["evidence"]["computed"] == mg.checksum(Path(path, "V1_9__add_orders.sql").read_text())
    assert run.task("migrate")["status"] == "failed"
    assert "nothing was applied" in run.task("migrate")["result"]["msg"]
    repair = result_of(run, "repair")
    assert repair["changed"] is True
    assert any("realigned V1_9__add_orders.sql" in r for r in repair["repairs"])
    assert result_of(run, "again")["findings"] == []
    reapply = result_of(run, "reapply")
    assert [m["script"] for m in reapply["applied"]] == ["R__customer_orders_view.sql"]
    assert pg.query("SELECT v2 FROM customer_orders", dbname=db) == [(1,)]


def test_failing_migrations(pg, run_playbook, workdir):
    db = pg.createdb("mig_fail")
    path = write_files(
        os.path.join(workdir, "fail"),
        {
            "V1__base.sql": "CREATE TABLE items (id int PRIMARY KEY, name text);\n",
            "V2__half.sql": "CREATE TABLE half (id int);\n\nINSERT INTO missing_table VALUES (1);\n",
        },
    )
    run = run_playbook(play(pg, db, [task("migrate", path=path, ignore_errors=True)]))
    record = run.task("migrate")
    assert record["status"] == "failed"
    msg = record["result"]["msg"]
    assert "V2__half.sql" in msg and "line 3" in msg and "42P01" in msg
    assert 'relation "missing_table" does not exist' in msg
    assert "INSERT INTO missing_table VALUES (1)" in msg
    assert "stays at version 1" in msg
    assert record["result"]["sqlstate"] == "42P01" and record["result"]["line"] == 3
    # Nothing half-applied: V2's first statement was rolled back with the rest.
    assert pg.query("SELECT to_regclass('half') IS NULL", dbname=db) == [(True,)]
    assert [h[0] for h in history(pg, db)] == ["1"]

    # A non-transactional migration failing part way: recorded as failed, runs refuse until repair.
    os.remove(os.path.join(path, "V2__half.sql"))
    write_files(
        path,
        {
            "V2__indexes.sql": "CREATE INDEX CONCURRENTLY items_name_idx ON items (name);\n"
            "CREATE INDEX CONCURRENTLY items_nope_idx ON items (nope);\n",
        },
    )
    mixed_db = pg.createdb("mig_mixed")
    mixed = write_files(
        os.path.join(workdir, "mixed"),
        {
            "V1__ok.sql": "CREATE TABLE ok (id int);\n",
            "V2__mixed.sql": "CREATE TABLE more (id int);\n"
            "CREATE INDEX CONCURRENTLY more_idx ON more (id);\n",
        },
    )
    run = run_playbook(
        play(
            pg,
            db,
            [
                task("partial", path=path, target="2", ignore_errors=True),
                task("blocked", path=path, target="2", ignore_errors=True),
                dict(task("mixed", path=mixed, ignore_errors=True, login_db=mixed_db)),
            ],
        )
    )
    partial = run.task("partial")["result"]
    assert run.task("partial")["status"] == "failed"
    assert "V2__indexes.sql failed at line 2 [SQLSTATE 42703]" in partial["msg"]
    assert "outside a transaction" in partial["msg"]
    assert history(pg, db)[-1][3:] == (
        "V2__indexes.sql",
        mg.checksum(Path(path, "V2__indexes.sql").read_text()),
        False,
    )
    blocked = run.task("blocked")["result"]
    assert run.task("blocked")["status"] == "failed"
    assert "V2__indexes.sql (version 2) failed part way" in blocked["msg"]
    assert "V2__mixed.sql mixes statements" in run.task("mixed")["result"]["msg"]
    assert "line 2" in run.task("mixed")["result"]["msg"]
    # Refused before anything ran: V1 was not applied either.
    assert pg.query("SELECT to_regclass('ok') IS NULL", dbname=mixed_db) == [(True,)]

    # Fix by hand, repair, continue.
    write_files(
        path, {"V2__indexes.sql": "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_name_idx ON items (name);\n"}
    )
    run = run_playbook(
        play(pg, db, [task("repair", path=path, command="repair"), task("migrate", path=path)])
    ).assert_ok()
    assert result_of(run, "repair")["repairs"][0].startswith("removed failed row")
    assert result_of(run, "migrate")["current_version"] == "2"
    assert [h[5] for h in history(pg, db)] == [True, True]


def test_baseline(pg, run_playbook, workdir):
    db = pg.createdb("mig_baseline")
    pg.query(
        "CREATE TABLE customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "email text NOT NULL UNIQUE, "
        "created_at timestamptz NOT NULL DEFAULT now())",
        dbname=db,
    )
    path = copy_corpus(workdir)
    run = run_playbook(
        play(
            pg,
            db,
            [
                task(
                    "baseline",
                    path=path,
                    command="baseline",
                    baseline_version="1",
                    baseline_description="existing",
                ),
                task("again", path=path, command="baseline", baseline_version="1"),
                task("other", path=path, command="baseline", baseline_version="1.9", ignore_errors=True),
                task("migrate", path=path, placeholders={"shop_name": "x"}),
            ],
        )
    ).assert_ok()
    assert result_of(run, "baseline")["changed"] is True
    assert result_of(run, "again")["changed"] is False
    assert "history is not empty" in run.task("other")["result"]["msg"]
    applied = [m["script"] for m in result_of(run, "migrate")["applied"]]
    assert "V1__create_customers.sql" not in applied and applied[0] == "V1_9__add_orders.sql"
    assert history(pg, db)[0][:4] == ("1", "existing", "BASELINE", "<< Flyway Baseline >>")


def test_custom_table_and_schema_and_relative_path(pg, run_playbook, workdir):
    db = pg.createdb("mig_table")
    # A CRLF file with a byte order mark: the checksum is Flyway's (terminators and BOM ignored).
    write_files(
        os.path.join(workdir, "project", "db", "sub"),
        {"V1__a.sql": "\ufeffCREATE TABLE a (id int);\r\nINSERT INTO a VALUES (1);\r\n"},
    )
    playbook = Path(workdir, "project", "play.yml")
    playbook.write_text(
        yaml.safe_dump([play(pg, db, [task("m", path="db", schema="Ops Schema", table="Schema History")])])
    )
    run = run_playbook(playbook).assert_ok()
    res = result_of(run, "m")
    assert res["current_version"] == "1"
    assert res["applied"][0]["script"] == "sub/V1__a.sql"
    assert res["applied"][0]["checksum"] == signed_crc("CREATE TABLE a (id int);INSERT INTO a VALUES (1);")
    assert pg.query('SELECT count(*), min(checksum) FROM "Ops Schema"."Schema History"', dbname=db) == [
        (1, res["applied"][0]["checksum"])
    ]
    assert pg.query("SELECT to_regclass('flyway_schema_history') IS NULL", dbname=db) == [(True,)]
    assert pg.query('SELECT to_regclass(\'"Ops Schema"."Schema History_s_idx"\') IS NOT NULL', dbname=db) == [
        (True,)
    ]


def signed_crc(text):
    value = zlib.crc32(text.encode("utf-8"))
    return value - (1 << 32) if value >= (1 << 31) else value


def test_continues_a_history_written_by_flyway(pg, run_playbook, workdir):
    """A database Flyway manages validates and continues without a new baseline.

    The history is the one Flyway 6 writes on PostgreSQL (its own DDL, a SCHEMA row, a SQL
    row); the checksum -1039259818 is the one Flyway printed for this file's content in
    flyway/flyway issue #2474.
    """
    db = pg.createdb("mig_flyway")
    pg.query(
        "CREATE TABLE location_history (id int);"
        "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL, version VARCHAR(50), "
        "description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, "
        "checksum INTEGER, installed_by VARCHAR(100) NOT NULL, "
        "installed_on TIMESTAMP NOT NULL DEFAULT now(), "
        "execution_time INTEGER NOT NULL, success BOOLEAN NOT NULL);"
        "ALTER TABLE flyway_schema_history ADD CONSTRAINT flyway_schema_history_pk "
        "PRIMARY KEY (installed_rank);"
        "CREATE INDEX flyway_schema_history_s_idx ON flyway_schema_history (success);"
        "INSERT INTO flyway_schema_history VALUES "
        "(0, NULL, '<< Flyway Schema Creation >>', 'SCHEMA', '\"public\"', NULL, 'app', now(), 0, true), "
        "(1, '1.1', 'add column location history valid until', 'SQL', "
        "'V1_1__add_column_location_history_valid_until.sql', -1039259818, 'app', now(), 12, true);"
        "ALTER TABLE location_history ADD COLUMN valid_until timestamp with time zone;",
        dbname=db,
    )
    path = write_files(
        os.path.join(workdir, "flyway"),
        {
            "V1_1__add_column_location_history_valid_until.sql": (
                "alter table location_history add column valid_until timestamp with time zone;\n"
            ),
            "V1_2__location_history_index.sql": (
                "CREATE INDEX lh_valid_until_idx ON location_history (valid_until);\n"
            ),
        },
    )
    run = run_playbook(
        play(pg, db, [task("validate", path=path, command="validate"), task("migrate", path=path)])
    ).assert_ok()
    assert result_of(run, "validate")["findings"] == []
    assert [p["script"] for p in result_of(run, "validate")["pending"]] == [
        "V1_2__location_history_index.sql"
    ]
    res = result_of(run, "migrate")
    assert [m["script"] for m in res["applied"]] == ["V1_2__location_history_index.sql"]
    assert res["current_version"] == "1.2"
    assert pg.query("SELECT max(installed_rank) FROM flyway_schema_history", dbname=db) == [(2,)]


def test_target_and_out_of_order(pg):
    db = pg.createdb("mig_order")
    files = [("V1__a.sql", "CREATE TABLE a (id int);\n"), ("V3__c.sql", "CREATE TABLE c (id int);\n")]
    session = engine_session(pg, db)
    try:
        # No files yet: creating the history table is the change (check mode says so, creates nothing).
        assert mg.run(session, "migrate", [], check_mode=True)["changed"] is True
        assert pg.query("SELECT to_regclass('flyway_schema_history') IS NULL", dbname=db) == [(True,)]
        assert mg.run(session, "migrate", [])["changed"] is True
        assert mg.run(session, "migrate", [])["changed"] is False
        assert mg.run(session, "migrate", [], check_mode=True)["changed"] is False
        assert mg.run(session, "migrate", files, target="1")["current_version"] == "1"
        assert mg.run(session, "migrate", files)["current_version"] == "3"
        files.append(("V2__b.sql", "CREATE TABLE b (id int);\n"))
        res = mg.run(session, "validate", files)
        assert [(f.rule, f.object) for f in res["findings"]] == [("MG-003", "V2__b.sql")]
        with pytest.raises(mg.MigrationError, match=r"V2__b\.sql \(version 2\) is pending but older"):
            mg.run(session, "migrate", files)
        assert pg.query("SELECT to_regclass('b') IS NULL", dbname=db) == [(True,)]
        res = mg.run(session, "migrate", files, out_of_order=True)
        assert [m["script"] for m in res["applied"]] == ["V2__b.sql"]
        assert res["current_version"] == "3"
        assert mg.run(session, "validate", files)["findings"] == []
    finally:
        session.close()


# -- concurrency and locks (the engine directly) --------------------------------------------------
def test_four_concurrent_runs_apply_each_migration_once(pg):
    db = pg.createdb("mig_concurrent")
    files = [
        (
            "V1__ledger.sql",
            "CREATE TABLE ledger (n int NOT NULL, pid int NOT NULL DEFAULT pg_backend_pid());\n",
        )
    ]
    files += [
        ("V%d__entry_%d.sql" % (i, i), "INSERT INTO ledger (n) VALUES (%d);\n" % i) for i in range(2, 101)
    ]
    results, errors = [], []
    start = threading.Barrier(4)

    def worker():
        session = engine_session(pg, db)
        try:
            start.wait()
            results.append(mg.run(session, "migrate", files, lock_wait_timeout=120))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=worker) for _worker in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 4
    assert sum(len(r["applied"]) for r in results) == 100
    assert pg.query("SELECT count(*), count(DISTINCT version) FROM flyway_schema_history", dbname=db) == [
        (100, 100)
    ]
    assert pg.query("SELECT count(*), count(DISTINCT n) FROM ledger", dbname=db) == [(99, 99)]
    assert all(r["current_version"] == "100" for r in results)


def test_lock_timeout_retries_then_succeeds_or_fails_cleanly(pg):
    db = pg.createdb("mig_locks")
    files = [
        ("V1__t.sql", "CREATE TABLE t (id int);\n"),
        ("V2__alter.sql", "INSERT INTO t VALUES (1);\nALTER TABLE t ADD COLUMN c int;\n"),
    ]
    engine_run(pg, db, files, target="1")

    # Fails cleanly after the retries while the lock is held.
    holder = pg.connect(db, autocommit=False)
    try:
        holder.cursor().execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(mg.MigrationError) as err:
            engine_run(pg, db, files, lock_timeout="100ms", lock_retries=2, lock_retry_delay=0.05)
        msg = str(err.value)
        assert "55P03" in msg and "V2__alter.sql" in msg and "Gave up after 2 retries" in msg
    finally:
        holder.rollback()
    assert history(pg, db)[-1][0] == "1"
    assert pg.query("SELECT count(*) FROM t", dbname=db) == [(0,)]

    # Waits, retries, and succeeds once the lock is released by a timer.
    holder.cursor().execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    released = threading.Event()

    def release():
        holder.rollback()
        released.set()

    timer = threading.Timer(0.6, release)
    timer.start()
    session = engine_session(pg, db)
    try:
        res = mg.run(session, "migrate", files, lock_timeout="100ms", lock_retries=8, lock_retry_delay=0.1)
    finally:
        session.close()
        timer.join()
        holder.close()
    assert released.is_set()
    assert res["retries"] >= 1
    assert res["current_version"] == "2"
    assert pg.query("SELECT count(*) FROM t", dbname=db) == [(1,)]
    assert pg.query("SELECT count(*) FROM flyway_schema_history WHERE version = '2'", dbname=db) == [(1,)]


def test_lock_wait_timeout(pg):
    db = pg.createdb("mig_wait")
    files = [("V1__t.sql", "CREATE TABLE t (id int);\n")]
    other = pg.connect(db)
    try:
        # Both signs of the 64-bit key: the default table's is positive, history_b's negative.
        for schema, table in (("public", "flyway_schema_history"), ("public", "history_b")):
            cur = other.cursor()
            cur.execute("SELECT pg_advisory_lock(%s), pg_backend_pid()", (mg.advisory_key(schema, table),))
            pid = cur.fetchone()[1]
            with pytest.raises(mg.MigrationError) as err:
                engine_run(pg, db, files, lock_wait_timeout=1, schema=schema, table=table)
            msg = str(err.value)
            assert "Another migration run holds the lock of history table %s.%s" % (schema, table) in msg
            assert "held by pid %d" % pid in msg
    finally:
        other.close()
    assert pg.query("SELECT to_regclass('t') IS NULL", dbname=db) == [(True,)]
    assert pg.query("SELECT to_regclass('flyway_schema_history') IS NULL", dbname=db) == [(True,)]


# -- SIGKILL at random points ---------------------------------------------------------------
KILL_SCRIPT = """
import json, sys
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import migrations as mg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
params, files = json.load(sys.stdin)
session = pg.connect(params, "migrate")
print(json.dumps(mg.run(session, "migrate", files, lock_wait_timeout=120)["current_version"]))
"""


def test_sigkill_at_random_points_leaves_history_and_schema_in_agreement(pg, workdir):
    import json  # noqa: PLC0415

    db = pg.createdb("mig_kill")
    files = [("V1__base.sql", "CREATE TABLE side (n int PRIMARY KEY);\n")]
    # pg_sleep makes each migration last at least 50 ms, so a trial killed within 1.5 s can
    # apply at most 30 of the 100: the first trials are always cut short.
    for i in range(2, 101):
        files.append(
            (
                "V%d__step_%d.sql" % (i, i),
                "CREATE TABLE step_%d (id int);\nINSERT INTO side VALUES (%d);\nSELECT pg_sleep(0.05);\n"
                % (i, i),
            )
        )
    payload = json.dumps([dict(pg.conn_params, login_db=db), files])
    rng = random.Random(20261125)  # noqa: S311 - kill points, not secrets
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    progress = []
    for _trial in range(10):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        proc.stdin.write(payload)
        proc.stdin.close()
        time.sleep(rng.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        # History and schema agree: every recorded version has its table and its side row, and
        # no table or row exists without its history row.
        session = engine_session(pg, db)
        try:
            session.execute(
                "SELECT pg_advisory_lock(%s)", (mg.advisory_key("public", "flyway_schema_history"),)
            )
            if pg.query("SELECT to_regclass('flyway_schema_history') IS NOT NULL", dbname=db)[0][0]:
                versions = {
                    int(v)
                    for (v,) in pg.query("SELECT version FROM flyway_schema_history WHERE success", dbname=db)
                }
                failed = pg.query("SELECT count(*) FROM flyway_schema_history WHERE NOT success", dbname=db)[
                    0
                ][0]
            else:
                versions, failed = set(), 0
            tables = {
                int(r[0][5:])
                for r in pg.query("SELECT relname FROM pg_class WHERE relname LIKE 'step\\_%%'", dbname=db)
            }
            sides = {n for (n,) in pg.query("SELECT n FROM side", dbname=db)} if 1 in versions else set()
            assert failed == 0
            assert tables == sides == versions - {1}
            assert versions == set(range(1, len(versions) + 1))
            progress.append(len(versions))
        finally:
            session.close()
    res = engine_run(pg, db, files)
    assert progress[0] < 100 and progress == sorted(progress)
    assert res["current_version"] == "100"
    assert pg.query("SELECT count(*) FROM side", dbname=db) == [(99,)]
    assert pg.query("SELECT count(*) FROM flyway_schema_history WHERE success", dbname=db) == [(100,)]


def test_lint_gate_stops_before_anything_and_check_mode_lists_findings(pg, run_playbook, workdir):
    db = "mig_lint_gate"
    pg.createdb(db)
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE big (id int); INSERT INTO big SELECT generate_series(1, 20000); ANALYZE big"
        )
    path = write_files(
        os.path.join(workdir, "lintgate"),
        {
            "V1__ok.sql": "CREATE TABLE ok (id int);\n",
            "V2__index.sql": "SET lock_timeout = '2s';\nCREATE INDEX big_id_idx ON big (id);\n",
        },
    )
    before = fingerprint(pg, db)
    run = run_playbook(
        play(
            pg,
            db,
            [
                task("preview", path=path, lint_fail_on="high", check_mode=True),
                task("gated", path=path, lint_fail_on="low", ignore_errors=True),
            ],
        )
    )
    preview = run.task("preview")["result"]
    assert [m["script"] for m in preview["pending"]] == ["V1__ok.sql", "V2__index.sql"]
    lint = [f for f in preview["findings"] if f["rule"] == "ML-006"]
    assert lint and lint[0]["location"] == {"file": "V2__index.sql", "line": 2}
    gated = run.task("gated")
    assert gated["status"] == "failed"
    assert gated["result"]["msg"].startswith("Lint of the pending migrations: ")
    assert "ML-006" in gated["result"]["msg"] and gated["result"]["msg"].endswith("Nothing was applied.")
    assert any(f["rule"] == "ML-006" for f in gated["result"]["findings"])
    # Nothing ran: not even the history table was created.
    assert fingerprint(pg, db) == before
    # lint: false skips the lint altogether (lint_fail_on=never would still lint and return findings).
    run = run_playbook(
        play(pg, db, [task("unlinted", path=path, lint=False, lint_fail_on="low")])
    ).assert_ok()
    unlinted = result_of(run, "unlinted")
    assert [m["script"] for m in unlinted["applied"]] == ["V1__ok.sql", "V2__index.sql"]
    assert unlinted["findings"] == [] and "history" not in unlinted


# -- Flyway compatibility and failure reporting (found against public Flyway sets) ----------------
def stored_repeatable(pg, db, description):
    return pg.query(
        "SELECT checksum FROM flyway_schema_history WHERE version IS NULL AND description = %s AND success "
        "ORDER BY installed_rank",
        (description,),
        dbname=db,
    )


def test_repeatable_checksum_is_taken_after_placeholder_replacement(pg):
    db = pg.createdb("mig_rep_ph")
    raw = "CREATE OR REPLACE VIEW tier_label AS SELECT '${tier}'::text AS tier, 7 AS seven;\n"
    files = [
        ("V1__base.sql", "CREATE TABLE tier_base (id int);\n-- ${tier} stays raw in a versioned checksum\n"),
        ("R__tier_view.sql", raw),
    ]
    session = engine_session(pg, db)
    try:
        first = mg.run(session, "migrate", files, placeholders={"tier": "gold"})
        assert [m["script"] for m in first["applied"]] == ["V1__base.sql", "R__tier_view.sql"]
        replaced = raw.replace("${tier}", "gold")
        # Flyway's checksum of a repeatable file: its text after the placeholders are replaced.
        assert stored_repeatable(pg, db, "tier view") == [(mg.checksum(replaced),)]
        assert first["applied"][1]["checksum"] == mg.checksum(replaced) != mg.checksum(raw)
        # Versioned files keep the checksum of the file as written.
        assert first["applied"][0]["checksum"] == mg.checksum(files[0][1])
        # Same value: nothing to do.
        again = mg.run(session, "migrate", files, placeholders={"tier": "gold"})
        assert again["applied"] == [] and again["changed"] is False
        assert mg.run(session, "validate", files, placeholders={"tier": "gold"})["findings"] == []
        # A new value re-runs the repeatable migration (only it).
        changed = mg.run(session, "migrate", files, placeholders={"tier": "platinum"})
        assert [m["script"] for m in changed["applied"]] == ["R__tier_view.sql"]
        assert pg.query("SELECT tier FROM tier_label", dbname=db) == [("platinum",)]
        assert stored_repeatable(pg, db, "tier view") == [
            (mg.checksum(replaced),),
            (mg.checksum(raw.replace("${tier}", "platinum")),),
        ]
    finally:
        session.close()


def test_repeatable_written_by_flyway_with_placeholders_does_not_run_again(pg):
    db = pg.createdb("mig_rep_flyway")
    raw = "CREATE OR REPLACE VIEW region_view AS SELECT '${region}'::text AS region;\n"
    # What Flyway leaves behind: the view, and the history row with the checksum of the replaced text.
    pg.query("CREATE VIEW region_view AS SELECT 'north'::text AS region", dbname=db)
    session = engine_session(pg, db)
    try:
        mg.run(session, "migrate", [])
        session.execute(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, "
            "checksum, installed_by, execution_time, success) "
            "VALUES (1, NULL, 'region view', 'SQL', 'R__region_view.sql', %s, 'flyway', 3, true)",
            (mg.checksum(raw.replace("${region}", "north")),),
        )
        res = mg.run(session, "migrate", [("R__region_view.sql", raw)], placeholders={"region": "north"})
        assert res["applied"] == [] and res["changed"] is False
    finally:
        session.close()


def test_flyway_builtin_placeholders(pg, workdir):
    db = pg.createdb("mig_builtins")
    files = [
        (
            "V1__facts.sql",
            "CREATE TABLE run_facts (k text PRIMARY KEY, v text);\n"
            "INSERT INTO run_facts VALUES ('ts', '${flyway:timestamp}'),\n"
            "  ('wd', '${flyway:workingDirectory}'), ('env', '${flyway:environment}'),\n"
            "  ('file', '${flyway:filename}'), ('tbl', '${flyway:table}'),\n"
            "  ('schema', '${flyway:defaultSchema}'), ('usr', '${flyway:user}'),\n"
            "  ('db', '${flyway:database}');\n",
        ),
        ("R__stamp.sql", "CREATE OR REPLACE VIEW stamped AS SELECT '${flyway:timestamp}'::text AS at;\n"),
    ]
    session = engine_session(pg, db)
    try:
        res = mg.run(session, "migrate", files, environment="staging", working_directory=workdir)
        facts = dict(pg.query("SELECT k, v FROM run_facts", dbname=db))
        assert facts["env"] == "staging" and facts["wd"] == workdir and facts["file"] == "V1__facts.sql"
        assert (facts["tbl"], facts["schema"], facts["db"]) == ("flyway_schema_history", "public", db)
        assert facts["usr"] == pg.conn_params["login_user"]
        # Flyway's format: yyyy-MM-dd HH:mm:ss.
        assert time.strptime(facts["ts"], "%Y-%m-%d %H:%M:%S")
        assert [m["script"] for m in res["applied"]] == ["V1__facts.sql", "R__stamp.sql"]
        # ${flyway:timestamp} in a repeatable migration changes its checksum at every run (as in Flyway),
        # once the second has changed.
        stamp = pg.query("SELECT at FROM stamped", dbname=db)[0][0]
        while time.strftime("%Y-%m-%d %H:%M:%S") == stamp:
            time.sleep(0.05)
        res = mg.run(session, "migrate", files, environment="staging", working_directory=workdir)
        assert [m["script"] for m in res["applied"]] == ["R__stamp.sql"]
        # The default environment is Flyway's: "default".
        assert mg.Migrator(session, files).builtins()["flyway:environment"] == "default"
    finally:
        session.close()


def test_target_that_no_migration_has_fails_unless_optional(pg):
    db = pg.createdb("mig_target_missing")
    files = [
        ("V1__a.sql", "CREATE TABLE ta (id int);\n"),
        ("V2__b.sql", "CREATE TABLE tb (id int);\n"),
        ("V4__d.sql", "CREATE TABLE td (id int);\n"),
    ]
    session = engine_session(pg, db)
    try:
        for check_mode in (True, False):
            with pytest.raises(mg.MigrationError) as err:
                mg.run(session, "migrate", files, target="3", check_mode=check_mode)
            assert "target 3: no migration has this version" in str(err.value)
            assert "below 1, 2; above 4" in str(err.value)
        # Nothing was written: not even the history table.
        assert pg.query("SELECT to_regclass('flyway_schema_history') IS NULL", dbname=db) == [(True,)]
        # "3?" (as in Flyway) or fail_on_missing_target=false: up to the highest version below it.
        assert mg.run(session, "migrate", files, target="3?")["current_version"] == "2"
        assert mg.run(session, "migrate", files, target="3", fail_on_missing_target=False)["changed"] is False
        # An applied version, or one that only the history has (here the current one), is a valid target.
        assert mg.run(session, "migrate", files, target="2")["changed"] is False
        assert mg.run(session, "migrate", files, target="4")["current_version"] == "4"
    finally:
        session.close()


def test_failure_after_applied_migrations_reports_them(pg, run_playbook, workdir):
    db = pg.createdb("mig_partial")
    files = {
        "V1__one.sql": "CREATE TABLE p1 (id int);\n",
        "V2__two.sql": "CREATE TABLE p2 (id int);\n",
        "V3__three.sql": "CREATE TABLE p3 (id int);\n",
        "V4__four.sql": "INSERT INTO p_missing VALUES (1);\n",
    }
    session = engine_session(pg, db)
    try:
        with pytest.raises(mg.MigrationError) as err:
            mg.run(session, "migrate", sorted(files.items()))
        partial = err.value.partial
        assert partial["changed"] is True and partial["current_version"] == "3"
        assert [m["script"] for m in partial["applied"]] == ["V1__one.sql", "V2__two.sql", "V3__three.sql"]
        assert (
            partial["failed_migration"]["script"] == "V4__four.sql"
            and partial["failed_migration"]["sqlstate"] == "42P01"
        )
    finally:
        session.close()

    # Through the module: failed, changed, V3 listed as applied and V4 as failed.
    db2 = pg.createdb("mig_partial_module")
    path = write_files(os.path.join(workdir, "partial"), files)
    run = run_playbook(play(pg, db2, [task("migrate", path=path, ignore_errors=True)]))
    record = run.task("migrate")
    res = record["result"]
    assert record["status"] == "failed" and res["changed"] is True
    assert [m["script"] for m in res["applied"]] == ["V1__one.sql", "V2__two.sql", "V3__three.sql"]
    assert res["failed_migration"]["script"] == "V4__four.sql" and res["failed_migration"]["version"] == "4"
    assert res["current_version"] == "3"
    assert [h[0] for h in history(pg, db2)] == ["1", "2", "3"]


def test_syntax_error_and_lint_stop_both_leave_nothing(pg, run_playbook, workdir):
    db = pg.createdb("mig_nothing")
    files = [
        ("V1__ok.sql", "CREATE TABLE n_ok (id int);\n"),
        ("V2__bad.sql", "CREATE TABLE n_bad (id int;\n"),
    ]
    with pytest.raises(mg.MigrationError, match=r"V2__bad\.sql line 1: SQL syntax error"):
        engine_run(pg, db, files)
    # Every check passes before anything is written: no history table, no V1.
    assert pg.query(
        "SELECT to_regclass('flyway_schema_history') IS NULL, to_regclass('n_ok') IS NULL", dbname=db
    ) == [(True, True)]


def test_secret_placeholders_never_show(pg, run_playbook, workdir):
    db = pg.createdb("mig_secret")
    secret, custom = "Zq9-hunter2-Xv", "custom-hidden-41"
    path = write_files(
        os.path.join(workdir, "secret"),
        {
            "V1__role.sql": "CREATE TABLE creds (who text, pw text, extra text);\n",
            "V2__fail.sql": "INSERT INTO creds_missing\n"
            "VALUES ('${owner}', '${app_password}', '${vault_ref}');\n",
        },
    )
    placeholders = {"owner": "visible_owner", "app_password": secret, "vault_ref": custom}
    run = run_playbook(
        play(
            pg,
            db,
            [
                task(
                    "preview",
                    path=path,
                    placeholders=placeholders,
                    secret_placeholders=["vault_ref"],
                    check_mode=True,
                    diff=True,
                ),
                task(
                    "migrate",
                    path=path,
                    placeholders=placeholders,
                    secret_placeholders=["vault_ref"],
                    ignore_errors=True,
                ),
            ],
        ),
        diff=True,
    )
    preview = run.task("preview")
    failed = run.task("migrate")
    assert failed["status"] == "failed"
    msg = failed["result"]["msg"]
    # The statement is in the message, with the secret values masked and the others readable.
    assert "visible_owner" in msg and "********" in msg and "creds_missing" in msg
    for record in (preview, failed):
        dumped = json.dumps(record["result"])
        assert secret not in dumped and custom not in dumped
    assert "visible_owner" in preview["result"]["diff"]["after"]
    assert "********" in preview["result"]["diff"]["after"]
    # The engine masks them too (for callers outside Ansible), in the message and the statement.
    session = engine_session(pg, db)
    try:
        with pytest.raises(mg.MigrationError) as err:
            mg.run(
                session,
                "migrate",
                files_of(path),
                placeholders=placeholders,
                secret_placeholders=["vault_ref"],
            )
        assert secret not in str(err.value) and custom not in str(err.value)
        assert secret not in err.value.statement and "visible_owner" in err.value.statement
    finally:
        session.close()


@pytest.mark.parametrize(
    "table, refused",
    [
        ("h" * 64, "64 bytes"),
        ("é" * 32, "64 bytes"),  # 32 characters, 64 bytes in UTF-8
        ("h" * 63, "at most 57 bytes"),  # fits, but "<table>_pk" would be truncated onto the table
        ("h" * 57, None),
    ],
)
def test_history_table_names_postgresql_would_truncate_are_refused(pg, table, refused):
    db = pg.createdb("mig_long_name")
    session = engine_session(pg, db)
    try:
        if refused:
            with pytest.raises(mg.MigrationError, match="too long") as err:
                mg.run(session, "migrate", [("V1__x.sql", "CREATE TABLE long_x (id int);\n")], table=table)
            assert refused in str(err.value) and "63" in str(err.value)
            assert pg.query("SELECT count(*) FROM pg_class WHERE relname LIKE 'long_x%%'", dbname=db) == [
                (0,)
            ]
        else:
            res = mg.run(session, "migrate", [("V1__x.sql", "CREATE TABLE long_x (id int);\n")], table=table)
            assert res["current_version"] == "1"
            assert history(pg, db, table='"%s"' % table)[0][3] == "V1__x.sql"
    finally:
        session.close()


def test_history_is_returned_only_on_request(pg):
    db = pg.createdb("mig_return_history")
    files = [("V1__a.sql", "CREATE TABLE rh (id int);\n")]
    session = engine_session(pg, db)
    try:
        assert "history" not in mg.run(session, "migrate", files)
        assert [h["script"] for h in mg.run(session, "migrate", files, return_history=True)["history"]] == [
            "V1__a.sql"
        ]
        assert len(mg.run(session, "info", files)["history"]) == 1
    finally:
        session.close()


def test_password_literals_never_show_in_the_preview_or_a_failure(pg):
    # A literal password (no placeholder) in a statement that fails: the role does not exist.
    altered = "ALTER ROLE mig_no_such_role PASSWORD '%s'"
    files = [("V1__roles.sql", "CREATE TABLE accounts (id int);\n"), ("V2__pw.sql", altered % "Lit3ral-pw")]
    db = pg.createdb("mig_password_literal")
    with contextlib.closing(engine_session(pg, db)) as session:
        preview = mg.run(session, "migrate", files, check_mode=True)["preview"]
        assert (altered % mg.MASK) + ";" in preview and "Lit3ral-pw" not in preview
        with pytest.raises(mg.MigrationError) as err:
            mg.run(session, "migrate", files)
    assert "V2__pw.sql failed at line 1" in str(err.value)
    assert "Statement: %s" % (altered % mg.MASK) in str(err.value)
    assert "Lit3ral-pw" not in str(err.value) + str(err.value.statement)
    assert [(h[3], h[5]) for h in history(pg, db)] == [("V1__roles.sql", True)]
