"""The migrations role and the staged playbooks/migrate.yml on a real cluster.

Three databases of one cluster stand for the dev, staging and production hosts of an inventory.
"""

import json
import os
import sys
import threading
import time
from pathlib import Path

import harness
import pytest

PLAYBOOK = Path(harness.REPO_ROOT) / "playbooks" / "migrate.yml"

FILES = {
    "V1__accounts.sql": (
        "CREATE TABLE ${schema}.accounts (\n"
        "    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, owner text NOT NULL\n);\n"
        "INSERT INTO ${schema}.accounts (owner) SELECT 'o' || i FROM generate_series(1, 50) i;\n"
    ),
    "U1__accounts.sql": "DROP TABLE ${schema}.accounts;\n",
    "V2__account_email.sql": (
        "SET lock_timeout = '5s';\nALTER TABLE ${schema}.accounts ADD COLUMN email text;\n"
    ),
    "U2__account_email.sql": "ALTER TABLE ${schema}.accounts DROP COLUMN email;\n",
    "R__account_view.sql": (
        "CREATE OR REPLACE VIEW ${schema}.account_names AS SELECT id, owner FROM ${schema}.accounts;\n"
    ),
}


def _write(folder, files):
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        Path(folder, name).write_text(text)
    return folder


def _inventory(pg, stages):
    """{stage: database}: one host per stage, all on this machine."""
    groups = {}
    for stage, db in stages.items():
        groups[stage] = dict(
            hosts={
                "%s-db" % stage: dict(
                    ansible_connection="local",
                    ansible_python_interpreter=sys.executable,
                    dbarch_login_host=pg.host,
                    dbarch_login_port=pg.port,
                    dbarch_login_user=pg.user,
                    dbarch_login_password=pg.password,
                    dbarch_login_db=db,
                    migrations_database=db,
                )
            }
        )
    return dict(all=dict(children=groups))


def _extra(tmp_path, folder, **more):
    extra = dict(
        migrations_path=str(folder),
        migrations_placeholders=dict(schema="public"),
        migrations_report_dest=str(tmp_path / "reports"),
        migrations_min_free_bytes=1,
        migrate_confirm_production="yes",
    )
    extra.update(more)
    return extra


def _tables(pg, db):
    rows = pg.query(
        "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE nspname = 'public' AND relkind IN ('r', 'v')",
        dbname=db,
    )
    return rows[0][0] or ""


def _history(pg, db):
    if "flyway_schema_history" not in _tables(pg, db):
        return []
    return [
        r[0] for r in pg.query("SELECT script FROM flyway_schema_history ORDER BY installed_rank", dbname=db)
    ]


@pytest.fixture
def stages(pg):
    names = {}
    for stage in ("dev", "staging", "production"):
        db = "mig_%s_%d" % (stage, os.getpid() % 100000)
        pg.createdb(db)
        names[stage] = db
    return names


@pytest.mark.pg_versions(15)  # the role's flow does not depend on the server version
def test_staged_rollout_applies_every_stage_then_changes_nothing(pg, stages, tmp_path):
    folder = _write(str(tmp_path / "migrations"), FILES)
    inv = _inventory(pg, stages)
    check = harness.run_playbook(PLAYBOOK, extra_vars=_extra(tmp_path, folder), inventory=inv, check=True)
    check.assert_ok()
    assert all(_history(pg, db) == [] for db in stages.values()), "check mode created the history"
    res = harness.run_playbook(PLAYBOOK, extra_vars=_extra(tmp_path, folder), inventory=inv)
    res.assert_ok()
    for db in stages.values():
        assert _history(pg, db) == ["V1__accounts.sql", "V2__account_email.sql", "R__account_view.sql"]
        assert _tables(pg, db) == "account_names,accounts,flyway_schema_history"
    report = json.loads((tmp_path / "reports" / "production-db" / "migrations.json").read_text())
    assert report["summary"]["history"] == [
        "V1__accounts.sql success=True",
        "V2__account_email.sql success=True",
        "R__account_view.sql success=True",
    ]
    assert report["summary"]["version"] == "2" and report["summary"]["pending"] == []
    applied = res.task("Apply the pending migrations", host="production-db")["result"]["applied"]
    assert [m["script"] for m in applied] == [
        "V1__accounts.sql",
        "V2__account_email.sql",
        "R__account_view.sql",
    ]
    again = harness.run_playbook(PLAYBOOK, extra_vars=_extra(tmp_path, folder), inventory=inv)
    again.assert_ok()
    assert again.changed_count() == 0, again.stdout


@pytest.mark.pg_versions(18)  # the role's flow does not depend on the server version
def test_a_failure_in_staging_rolls_back_and_never_reaches_production(pg, stages, tmp_path):
    folder = _write(str(tmp_path / "migrations"), FILES)
    inv = _inventory(pg, stages)
    harness.run_playbook(PLAYBOOK, extra_vars=_extra(tmp_path, folder), inventory=inv).assert_ok()
    # V3 fails in staging only (the table it writes to exists only in dev).
    _write(
        folder,
        {
            "V3__needs_sentinel.sql": "ALTER TABLE ${schema}.accounts ADD COLUMN code text;\n"
            "INSERT INTO ${schema}.sentinel_missing_in_dev VALUES (1);\n",
            "U3__needs_sentinel.sql": "ALTER TABLE ${schema}.accounts DROP COLUMN code;\n",
        },
    )
    with pg.connect(stages["dev"]) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE sentinel_missing_in_dev (x int)")
    res = harness.run_playbook(PLAYBOOK, extra_vars=_extra(tmp_path, folder), inventory=inv)
    assert res.rc != 0
    failed = res.failed()
    assert {f["host"] for f in failed} == {"staging-db"}, failed
    msg = failed[-1]["result"]["msg"]
    assert "V3__needs_sentinel.sql" in msg and "does not exist" in msg, msg
    assert _history(pg, stages["dev"])[-1] == "V3__needs_sentinel.sql"
    # staging: V3 ran in one transaction and failed, so nothing of it is left
    assert "V3__needs_sentinel.sql" not in _history(pg, stages["staging"])
    cols = pg.query(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts' "
        "AND column_name = 'code'",
        dbname=stages["staging"],
    )
    assert cols[0][0] == 0
    # production was never touched
    assert "V3__needs_sentinel.sql" not in _history(pg, stages["production"])


@pytest.mark.pg_versions(18)  # the lint gate does not depend on the server version
def test_lint_gate_stops_before_anything_runs(pg, stages, tmp_path):
    # A table created by an earlier pending migration of the same run is new and empty, so indexing
    # it is fine; the gate stops an index built without CONCURRENTLY on a table that holds rows.
    with pg.connect(stages["dev"]) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE legacy (id bigint PRIMARY KEY, owner text)")
        cur.execute("INSERT INTO legacy SELECT i, 'o' || i FROM generate_series(1, 50000) i")
        cur.execute("ANALYZE legacy")
    files = dict(FILES)
    files["V3__index.sql"] = "CREATE INDEX legacy_owner_idx ON ${schema}.legacy (owner);\n"
    folder = _write(str(tmp_path / "migrations"), files)
    inv = _inventory(pg, {"dev": stages["dev"]})
    res = harness.run_playbook(
        PLAYBOOK, extra_vars=_extra(tmp_path, folder, migrations_lint_fail_on="medium"), inventory=inv
    )
    assert res.rc != 0
    msg = res.failed()[0]["result"]["msg"]
    assert (
        msg.startswith("Lint of the pending migrations") and "ML-006" in msg and "Nothing was applied" in msg
    ), msg
    assert _history(pg, stages["dev"]) == []


@pytest.mark.pg_versions(15)  # the dump and restore path runs on 15 (its client binaries are Debian's)
def test_backup_and_restore_rollback(pg, stages, tmp_path):
    folder = _write(str(tmp_path / "migrations"), {k: v for k, v in FILES.items() if k.startswith("V1")})
    inv = _inventory(pg, {"dev": stages["dev"]})
    harness.run_playbook(PLAYBOOK, extra_vars=_extra(tmp_path, folder), inventory=inv).assert_ok()
    before = pg.query("SELECT count(*) FROM accounts", dbname=stages["dev"])
    # V2 writes, then fails: restore must bring back the rows V2 deleted before failing... V2 runs in
    # one transaction, so also here nothing is left; the restore proves the dump is usable.
    _write(folder, {"V2__bad.sql": "DELETE FROM ${schema}.accounts;\nSELECT 1/0;\n"})
    backups = tmp_path / "backups"
    backups.mkdir()
    extra = _extra(
        tmp_path,
        folder,
        migrations_backup=True,
        migrations_backup_dir=str(backups),
        migrations_rollback="restore",
    )
    res = harness.run_playbook(PLAYBOOK, extra_vars=extra, inventory=inv)
    assert res.rc != 0
    msg = res.failed()[-1]["result"]["msg"]
    assert "division by zero" in msg and "restore of" in msg and msg.rstrip(".").endswith("done"), msg
    dumps = list(backups.iterdir())
    assert len(dumps) == 1 and dumps[0].name.startswith(stages["dev"] + "-before-1-to-latest")
    assert pg.query("SELECT count(*) FROM accounts", dbname=stages["dev"]) == before
    assert _history(pg, stages["dev"]) == ["V1__accounts.sql"]


@pytest.mark.pg_versions(15, 18)  # pg_stat_statements' columns differ between majors (versions.py)
def test_a_migration_that_slows_a_statement_is_reported_and_the_record_survives_a_quiet_run(
    pg, stages, tmp_path
):
    # A point lookup served by an index; the migration drops the index, so the lookup reads the whole
    # table. Traffic runs throughout (a thread), as an application's would.
    db = stages["dev"]
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION pg_stat_statements")
        cur.execute("CREATE TABLE items (id bigint PRIMARY KEY, code text NOT NULL, pad text)")
        cur.execute(
            "INSERT INTO items SELECT i, 'c' || i, repeat('x', 100) FROM generate_series(1, 100000) i"
        )
        cur.execute("CREATE INDEX items_code_idx ON items (code)")
        cur.execute("ANALYZE items")
    folder = _write(
        str(tmp_path / "migrations"),
        {
            "V1__drop_code_index.sql": "DROP INDEX ${schema}.items_code_idx;\n",
            "U1__drop_code_index.sql": "CREATE INDEX items_code_idx ON ${schema}.items (code);\n",
        },
    )
    stop = threading.Event()

    def traffic():
        with pg.connect(db) as conn, conn.cursor() as cur:
            i = 0
            while not stop.is_set():
                i += 1
                cur.execute("SELECT pad FROM items WHERE code = %s", ("c%d" % (i % 100000 + 1),))
                cur.fetchall()
                conn.commit()

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        time.sleep(2)  # calls before, on the index
        inv = _inventory(pg, {"dev": db})
        extra = _extra(tmp_path, folder, migrations_latency_window=3)
        first = harness.run_playbook(PLAYBOOK, extra_vars=extra, inventory=inv)
        first.assert_ok()
        state_first = (tmp_path / "reports" / "dev-db" / "migrations.json").read_text()
        second = harness.run_playbook(PLAYBOOK, extra_vars=extra, inventory=inv)
        second.assert_ok()
    finally:
        stop.set()
        thread.join(30)
    reports = tmp_path / "reports" / "dev-db"
    applied = json.loads((reports / "migrations_applied.json").read_text())
    slower = [f for f in applied["findings"] if f["rule"] == "QS-LAT-001"]
    assert any("WHERE code = $1" in f["message"] for f in slower), applied
    assert applied["summary"]["version_after"] == "1"
    assert applied["summary"]["applied"] == ["V1__drop_code_index.sql"]
    assert applied["summary"]["latency_compared"] is True
    assert " ms a call (x" in applied["summary"]["most_grown"][0], applied["summary"]
    # the lint of the file applied (DROP INDEX without CONCURRENTLY) belongs to the record of the change
    assert any(
        f["rule"].startswith("ML-") and f["location"]["file"] == "V1__drop_code_index.sql"
        for f in applied["findings"]
    ), applied["findings"]
    # the state report carries no latency finding; the quiet second run changed nothing, and the record
    # of the change is still there
    state = json.loads((reports / "migrations.json").read_text())
    assert state["findings"] == [] and state["summary"]["pending"] == []
    assert json.loads((reports / "migrations.json").read_text()) == json.loads(state_first)
    assert second.changed_count() == 0, second.stdout
    assert json.loads((reports / "migrations_applied.json").read_text()) == applied
