"""roles/query_tuning query_tuning_matview_schedules: scheduled refreshes of materialized views.

The schedules go into a temporary cron folder; each written cron line is then run the way cron runs
it (as postgres, /bin/sh -c after cron's un-escaping) against a real cluster, and the view's row
count proves the refresh happened.
"""

import os
import shlex
import shutil

import pytest
from test_scheduled_job import run_like_cron

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import schedule

DB = "mvsched"

SCHEMA = """
CREATE SCHEMA reporting;
CREATE TABLE sales (id int PRIMARY KEY, region text NOT NULL, amount numeric(10, 2) NOT NULL);
INSERT INTO sales SELECT g, 'region ' || (g % 5), g % 100 FROM generate_series(1, 500) g;
CREATE MATERIALIZED VIEW reporting."Sales by region" AS
    SELECT region, sum(amount) AS total FROM sales GROUP BY region;
CREATE UNIQUE INDEX sales_by_region_unique ON reporting."Sales by region" (region);
CREATE MATERIALIZED VIEW reporting.plain_totals AS
    SELECT region, count(*) AS n FROM sales GROUP BY region;
"""

UNIQUE_VIEW = 'reporting."Sales by region"'


@pytest.fixture(scope="module")
def db(pg):
    pg.createdb(DB)
    with pg.connect(DB) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
    return pg


@pytest.fixture
def cron_dir():
    folder = harness.work_folder("dbarch-mvsched-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def play(pg, cron_dir, schedules):
    return dict(
        hosts="localhost",
        gather_facts=False,
        module_defaults={"group/dbarch.postgresql.all": dict(pg.conn_params, login_db=DB)},
        tasks=[
            dict(
                name="Schedules",
                **{
                    "ansible.builtin.include_role": dict(
                        name="dbarch.postgresql.query_tuning", tasks_from="matview_schedules"
                    )
                },
                vars=dict(
                    query_tuning_database=DB,
                    query_tuning_matview_schedules=schedules,
                    query_tuning_matview_psql=os.path.join(pg.bindir, "psql"),
                    query_tuning_matview_socket_dir=pg.socket_dir,
                    query_tuning_matview_port=pg.port,
                    query_tuning_matview_method="cron",
                    query_tuning_matview_cron_dir=cron_dir,
                ),
            )
        ],
    )


def rows(pg, view):
    return pg.query("SELECT count(*) FROM %s" % view, dbname=DB)[0][0]


SCHEDULES = [
    dict(name=UNIQUE_VIEW, minute="*/30", concurrently="auto"),
    dict(name="reporting.plain_totals", minute="15", hour="3", weekday="Mon-Fri"),
]


def test_scheduled_refreshes_run_and_choose_concurrently(db, cron_dir, run_playbook):
    run = run_playbook(play(db, cron_dir, SCHEDULES))
    run.assert_ok()
    unique_file = os.path.join(cron_dir, "dbarch-refresh-mvsched-reporting-Sales-by-region")
    plain_file = os.path.join(cron_dir, "dbarch-refresh-mvsched-reporting-plain_totals")
    assert sorted(os.listdir(cron_dir)) == sorted(os.path.basename(f) for f in (unique_file, plain_file))

    def command(path):
        with open(path) as fh:
            line = fh.read().splitlines()[-1]
        fields = line.split(None, 6)
        return fields[:6], shlex.split(schedule.cron_unescape(fields[6]))

    fields, argv = command(unique_file)
    assert fields == ["*/30", "*", "*", "*", "*", "postgres"]
    assert argv[1:4] == ["-X", "-v", "ON_ERROR_STOP=1"]
    assert argv[-4:] == [
        "-d",
        DB,
        "-c",
        'REFRESH MATERIALIZED VIEW CONCURRENTLY "reporting"."Sales by region"',
    ]
    fields, argv = command(plain_file)
    assert fields == ["15", "3", "*", "*", "1-5", "postgres"]
    # no unique index: auto refreshes plainly
    assert argv[-1] == 'REFRESH MATERIALIZED VIEW "reporting"."plain_totals"'

    # new data in the base table: the views keep their old rows until the jobs run
    db.query("INSERT INTO sales VALUES (1001, 'region new', 5), (1002, 'region newer', 7)", dbname=DB)
    assert rows(db, UNIQUE_VIEW) == 5 and rows(db, "reporting.plain_totals") == 5
    for path in (unique_file, plain_file):
        proc = run_like_cron(path)
        assert proc.returncode == 0, (path, proc.stdout, proc.stderr)
        assert "REFRESH MATERIALIZED VIEW" in proc.stdout
    assert rows(db, UNIQUE_VIEW) == 7 and rows(db, "reporting.plain_totals") == 7

    # a second run changes nothing; concurrently=true on a view without a unique index fails and says why
    again = run_playbook(play(db, cron_dir, SCHEDULES))
    again.assert_ok()
    assert again.task("Install (or remove) the refresh schedule")["result"]["changed"] is False
    forced = run_playbook(play(db, cron_dir, [dict(name="reporting.plain_totals", concurrently=True)]))
    failed = forced.task("Decide each scheduled refresh (CONCURRENTLY only with the unique index it needs)")
    assert failed["status"] == "failed"
    assert "cannot refresh reporting.plain_totals concurrently: no unique index" in str(failed["result"])

    # state absent removes a job and leaves the other
    gone = run_playbook(play(db, cron_dir, [dict(name="reporting.plain_totals", state="absent")]))
    gone.assert_ok()
    assert os.listdir(cron_dir) == [os.path.basename(unique_file)]
