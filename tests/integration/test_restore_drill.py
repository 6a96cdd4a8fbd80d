# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/restore_drill and playbooks/pitr.yml on a real source archiving into a real repository.

The drill runs through ansible-playbook while a background writer keeps inserting into one of the
compared tables; the restored copy must match the source exactly at the restore point.
"""

import json
import os
import subprocess
import sys
import threading
import time

import psycopg2
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

WAL_SCRIPT = harness.WAL_SCRIPT
DRILL = harness.REPO_ROOT / "playbooks" / "restore_drill.yml"
PITR = harness.REPO_ROOT / "playbooks" / "pitr.yml"
DB = "drilldb"
TABLES = ["shop.customers", "shop.orders"]


MDB = "postgres"  # the role's default restore_drill_marker_database


@pytest.fixture(scope="module")
def source(pg_major):
    """A source cluster archiving with dbarch-wal into a repository with one base backup."""
    workdir = harness.work_folder("dbarch-it-drill-")
    repo_dir = harness.repo_folder(workdir)
    settings = harness.archive_settings(repo_dir)
    cluster = harness.start_cluster(pg_major, workdir=workdir, name="source", settings=settings)
    try:
        cluster.createdb(DB)
        with cluster.connect(DB) as conn, conn.cursor() as cur:
            cur.execute("CREATE SCHEMA shop")
            cur.execute("CREATE TABLE shop.customers (id int PRIMARY KEY, name text, since timestamptz)")
            cur.execute(
                "CREATE TABLE shop.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                " customer_id int REFERENCES shop.customers, amount numeric(10, 2), note text)"
            )
            cur.execute(
                "INSERT INTO shop.customers SELECT i, 'c' || i, now() - i * interval '1 day'"
                " FROM generate_series(1, 200) i"
            )
            cur.execute(
                "INSERT INTO shop.orders (customer_id, amount, note)"
                " SELECT 1 + i % 200, i * 1.5, NULL FROM generate_series(1, 2000) i"
            )
            cur.execute("CREATE INDEX ON shop.orders (customer_id)")
        harness.take_backup(cluster, repo_dir)
        # Archiving goes on after the backup: a commit in an archived segment is the RPO's reference.
        cluster.query("INSERT INTO shop.customers VALUES (201, 'c201', now())", dbname=DB)
        last = cluster.query("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        _wait_archived(cluster, last)
        # On a host the backup runs as the postgres OS user (roles/backup); here it ran as root.
        subprocess.run(["chown", "-R", "postgres:postgres", repo_dir], check=True)
        yield {"cluster": cluster, "repo": repo_dir, "workdir": workdir}
    finally:
        harness.remove_folder(workdir)


def _wait_archived(cluster, segment, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        last = cluster.query("SELECT last_archived_wal FROM pg_stat_archiver")[0][0]
        if last is not None and last >= segment:
            return
        time.sleep(0.2)
    raise AssertionError("segment %s not archived within %ss" % (segment, timeout))


class Writer(threading.Thread):
    """Inserts orders one commit at a time until stopped (at most ``limit`` rows)."""

    def __init__(self, cluster, limit=20000):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.limit = limit
        self.stop = threading.Event()
        self.inserted = 0
        self.error = None

    def run(self):
        try:
            with self.cluster.connect(DB) as conn, conn.cursor() as cur:
                while not self.stop.is_set() and self.inserted < self.limit:
                    cur.execute("INSERT INTO shop.orders (customer_id, amount, note) VALUES (7, 1.25, 'bg')")
                    self.inserted += 1
                    self.stop.wait(0.005)
        except psycopg2.Error as exc:  # pragma: no cover - reported by the test
            self.error = exc


def _inventory(cluster, python=sys.executable):
    return {
        "all": {
            "children": {
                "sources": {
                    "hosts": {
                        "source-db": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": python,
                            "dbarch_login_host": cluster.host,
                            "dbarch_login_port": cluster.port,
                            "dbarch_login_user": cluster.user,
                            "dbarch_login_password": cluster.password,
                            "dbarch_login_db": "postgres",
                        }
                    }
                },
                "scratch": {
                    "hosts": {
                        "scratch-db": {"ansible_connection": "local", "ansible_python_interpreter": python}
                    }
                },
                "production": {
                    "hosts": {
                        "prod-db": {"ansible_connection": "local", "ansible_python_interpreter": python}
                    }
                },
            }
        }
    }


def _drill_vars(source, tmp_path, repo=None, **more):
    extra = {
        "restore_drill_source_host": "source-db",
        "restore_drill_database": DB,
        "restore_drill_repository": repo or source["repo"],
        "restore_drill_dir": os.path.join(source["workdir"], "drill-%s" % tmp_path.name),
        "restore_drill_port": lc.free_port(),
        "restore_drill_tables": TABLES,
        "restore_drill_wal_script": WAL_SCRIPT,
        "restore_drill_report_dest": str(tmp_path / "reports"),
        "restore_drill_history_file": str(tmp_path / "history" / "drills.jsonl"),
        "restore_drill_archive_timeout": 120,
        "restore_drill_restore_timeout": 300,
    }
    extra.update(more)
    return extra


def _history(tmp_path):
    with open(tmp_path / "history" / "drills.jsonl") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _report(tmp_path):
    with open(tmp_path / "reports" / "scratch-db" / "restore_drill.json") as handle:
        return json.load(handle)


def test_drill_under_writes_matches_the_source_and_cleans_up(source, tmp_path):
    cluster = source["cluster"]
    extra = _drill_vars(source, tmp_path)
    writer = Writer(cluster)
    writer.start()
    try:
        run = harness.run_playbook(DRILL, extra_vars=extra, inventory=_inventory(cluster))
    finally:
        writer.stop.set()
        writer.join()
    assert writer.error is None, writer.error
    run.assert_ok()
    assert writer.inserted > 0

    point = run.task("Restore point with markers and table fingerprints on the source")["result"]
    check = run.task("Compare markers, row counts and checksums with the source at the restore point")[
        "result"
    ]
    assert check["mismatches"] == [] and check["ok"] is True
    assert check["markers"] == ["before"]
    assert check["tables"] == point["tables"]
    assert set(point["tables"]) == set(TABLES)
    assert point["tables"]["shop.customers"]["rows"] == 201
    # The writer kept going: the restore point holds some of its rows, the source now holds at least as many.
    final = cluster.query("SELECT count(*) FROM shop.orders", dbname=DB)[0][0]
    assert 2000 <= point["tables"]["shop.orders"]["rows"] <= final
    # Both markers were committed on the source, only 'before' made it into the restore.
    # They live in the postgres database (restore_drill_marker_database), not in the application's schema.
    kinds = cluster.query(
        "SELECT kind FROM dbarch_drill.marker WHERE drill_id = %s ORDER BY id",
        (point["drill_id"],),
        dbname="postgres",
    )
    assert [k[0] for k in kinds] == ["before", "after"]
    assert cluster.query("SELECT to_regnamespace('dbarch_drill') IS NULL", dbname=DB) == [(True,)]

    amcheck = run.task("Check every database with pg_amcheck")["result"]
    assert amcheck["rc"] == 0, amcheck

    report = _report(tmp_path)
    summary = report["summary"]
    assert summary["ok"] is True and summary["problems"] == []
    assert summary["drill_id"] == point["drill_id"]
    assert {"wal_replay", "promotion", "first_query", "drill_verify"} <= set(summary["phases"])
    assert summary["rto_seconds"] > 0 and summary["total_seconds"] >= summary["rto_seconds"]
    assert summary["rpo_seconds"] is not None and summary["rpo_seconds"] >= 0
    assert summary["rpo_basis"] == "latest_commit_time"
    assert os.path.exists(tmp_path / "reports" / "scratch-db" / "restore_drill.md")
    (line,) = _history(tmp_path)
    assert line["drill_id"] == point["drill_id"] and line["ok"] is True
    assert line["phases"] == summary["phases"] and line["rpo_seconds"] == summary["rpo_seconds"]
    assert line["tables_restored"] == line["tables_source"]

    # The scratch instance is gone: no server, no folder.
    assert not os.path.exists(extra["restore_drill_dir"])
    assert not lc.port_in_use(extra["restore_drill_port"])


def test_drill_without_a_backup_fails_clearly_and_removes_the_scratch_folder(source, tmp_path):
    empty = harness.repo_folder(source["workdir"], "empty-repo-%s" % tmp_path.name)
    extra = _drill_vars(source, tmp_path, repo=empty)
    run = harness.run_playbook(DRILL, extra_vars=extra, inventory=_inventory(source["cluster"]))
    assert run.rc != 0
    assert "No usable backup in %s" % empty in run.stdout
    assert not os.path.exists(extra["restore_drill_dir"])
    report = _report(tmp_path)
    assert report["summary"]["ok"] is False
    assert any("No usable backup" in p for p in report["summary"]["problems"])
    (line,) = _history(tmp_path)
    assert line["ok"] is False and line["backup_id"] is None


def test_pitr_playbook_guards_production_and_check_mode_writes_nothing(source, tmp_path):
    inventory = _inventory(source["cluster"])
    data_dir = os.path.join(source["workdir"], "pitr-%s" % tmp_path.name, "data")
    extra = {
        "pitr_repository": source["repo"],
        "pitr_data_dir": data_dir,
        "pitr_port": lc.free_port(),
        "pitr_target": "latest",
        "pitr_wal_script": WAL_SCRIPT,
    }
    refused = harness.run_playbook(PITR, extra_vars=dict(extra, pitr_host="prod-db"), inventory=inventory)
    assert refused.rc != 0
    assert "prod-db is in production" in refused.stdout and "pitr_confirm=prod-db" in refused.stdout
    assert "Restore" not in refused.task_names()
    assert not os.path.exists(os.path.dirname(data_dir))

    wrong = harness.run_playbook(
        PITR, extra_vars=dict(extra, pitr_host="prod-db", pitr_confirm="scratch-db"), inventory=inventory
    )
    assert wrong.rc != 0 and "pitr_confirm=prod-db" in wrong.stdout

    planned = harness.run_playbook(
        PITR,
        extra_vars=dict(extra, pitr_host="prod-db", pitr_confirm="prod-db"),
        inventory=inventory,
        check=True,
    )
    planned.assert_ok()
    result = planned.task("Restore", host="prod-db")["result"]
    assert result["backup_id"] and result["recovery_settings"]["recovery_target_timeline"] == "latest"
    assert any(a.startswith("would restore backup") for a in result["actions"])
    assert not os.path.exists(os.path.dirname(data_dir))

    missing = harness.run_playbook(PITR, extra_vars=dict(extra, pitr_host="nowhere"), inventory=inventory)
    assert missing.rc != 0 and "nowhere is not in the inventory" in missing.stdout


def test_modules_check_mode_writes_nothing_and_a_difference_is_named(source):
    cluster = source["cluster"]
    conn = dict(cluster.conn_params, login_db=DB)
    rows = cluster.query("SELECT count(*) FROM shop.customers", dbname=DB)[0][0]
    plays = [
        {
            "name": "drill modules",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Plan",
                    "dbarch.postgresql.restore_point": dict(
                        conn, name="never_created", tables=["shop.customers"], marker_schema="drill_check"
                    ),
                    "check_mode": True,
                },
                {
                    "name": "Missing table",
                    "dbarch.postgresql.restore_point": dict(conn, name="never_created", tables=["shop.nope"]),
                    "check_mode": True,
                    "ignore_errors": True,
                },
                {
                    "name": "Compare",
                    "dbarch.postgresql.restore_check_info": dict(
                        conn,
                        drill_id="no_such_drill",
                        tables=["shop.customers"],
                        expected={"shop.customers": {"rows": rows + 1, "checksum": "0"}},
                        fail_on_mismatch=True,
                    ),
                    "ignore_errors": True,
                },
            ],
        }
    ]
    run = harness.run_playbook(plays)
    plan = run.task("Plan")["result"]
    assert plan["changed"] is True and "lsn" not in plan
    assert any("IN SHARE MODE" in step for step in plan["planned"])
    assert cluster.query("SELECT to_regnamespace('drill_check') IS NULL")[0][0] is True
    assert cluster.query("SELECT to_regnamespace('drill_check') IS NULL", dbname=DB)[0][0] is True
    missing = run.task("Missing table")["result"]
    assert missing["failed"] and "shop.nope not found in database %s" % DB in missing["msg"]
    compare = run.task("Compare")["result"]
    assert compare["failed"] and compare["ok"] is False
    assert compare["mismatches"] == [
        "marker 'before' is missing: the restore stopped before the restore point",
        "shop.customers: %d rows restored, %d at the restore point" % (rows, rows + 1),
        "shop.customers: checksum %s restored, 0 at the restore point"
        % compare["tables"]["shop.customers"]["checksum"],
    ]
    assert "The restored copy differs" in compare["msg"]


def test_drill_in_check_mode_writes_nothing(source, tmp_path):
    cluster = source["cluster"]
    markers_before = cluster.query("SELECT to_regclass('dbarch_drill.marker') IS NOT NULL", dbname=MDB)[0][0]
    count = (
        cluster.query("SELECT count(*) FROM dbarch_drill.marker", dbname=MDB)[0][0] if markers_before else 0
    )
    extra = _drill_vars(source, tmp_path, restore_drill_name="drill_check_mode")
    run = harness.run_playbook(DRILL, extra_vars=extra, inventory=_inventory(cluster), check=True)
    run.assert_ok()
    plan = run.task("Restore onto the scratch instance up to the restore point")["result"]
    assert plan["backup_id"] and any(a.startswith("would restore backup") for a in plan["actions"])
    assert not os.path.exists(extra["restore_drill_dir"])
    assert not os.path.exists(tmp_path / "history") and not os.path.exists(tmp_path / "reports")
    if markers_before:
        assert cluster.query("SELECT count(*) FROM dbarch_drill.marker", dbname=MDB)[0][0] == count
    else:
        assert cluster.query("SELECT to_regclass('dbarch_drill.marker') IS NULL", dbname=MDB)[0][0] is True


def test_restore_point_with_a_missing_table_creates_nothing(pg):
    """Not in check mode: the tables are checked before the marker schema, table and row are created."""
    run = harness.run_playbook(
        {
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Missing table",
                    "dbarch.postgresql.restore_point": dict(
                        pg.conn_params,
                        name="rp_missing_table",
                        tables=["public.no_such_table_for_rp"],
                        marker_schema="drill_missing_tbl",
                        wait_archived=False,
                    ),
                    "ignore_errors": True,
                }
            ],
        }
    )
    result = run.task("Missing table")["result"]
    assert result["failed"] and "public.no_such_table_for_rp not found" in result["msg"], result["msg"]
    assert pg.query("SELECT to_regnamespace('drill_missing_tbl') IS NULL")[0][0] is True
