# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One latency model: the monitoring role's exporter query pg_statements (SQL, in
roles/monitoring/files/queries.yaml) and health/latency.py (Python, used by health_info and
diagnose_info) give the same p95 on the same pg_stat_statements snapshot.

The exporter's SQL is read from the YAML and run as postgres_exporter would run it. Both readers
connect with pg_stat_statements.track = none, so that reading the view adds nothing to it: they
see the same rows. Every major, 14-18: the SQL names pg_stat_statements columns, and it must run
unchanged on each.
"""

import os
import random

import pytest
import yaml

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod
from ansible_collections.dbarch.postgresql.plugins.module_utils.health import latency

pytestmark = pytest.mark.all_versions

QUERIES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "roles",
    "monitoring",
    "files",
    "queries.yaml",
)
DB = "latency_model"
TOLERANCE = 0.02  # the same model: only the SQL's erfc fit and the bisection's stopping point differ


def exporter_query():
    with open(QUERIES) as handle:
        return yaml.safe_load(handle)["pg_statements"]["query"]


def exporter_p95_ms(conn):
    with conn.cursor() as cur:
        cur.execute(exporter_query())
        method, seconds, calls = cur.fetchone()
    assert method == "estimate"
    return seconds * 1000.0, calls


@pytest.fixture
def database(pg):
    pg.createdb(DB)
    try:
        pg.query("CREATE EXTENSION pg_stat_statements", dbname=DB)
        yield DB
    finally:
        pg.dropdb(DB)


def quiet_conn(pg, dbname):
    """A psycopg2 connection whose own statements pg_stat_statements does not record."""
    conn = pg.connect(dbname)
    with conn.cursor() as cur:
        cur.execute("SET pg_stat_statements.track = 'none'")
    return conn


def run_workload(pg, dbname):
    """Statements of different shapes: skewed sleeps, a slow minority, CPU-bound scans of random size,
    one-off statements (no spread), constant ones."""
    rng = random.Random(20261206)  # noqa: S311 - seeded workload, not secrets
    conn = pg.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_statements_reset()")
            cur.execute("CREATE TABLE t AS SELECT i, md5(i::text) AS pad FROM generate_series(1, 20000) i")
            for i in range(240):
                cur.execute("SELECT pg_sleep(%s)", (min(0.02, rng.expovariate(1 / 0.0015)),))
                cur.execute("SELECT count(*) FROM t WHERE i < %s", (rng.randint(1, 20000),))
                cur.execute("SELECT 1")
                if i % 12 == 0:
                    cur.execute("SELECT pg_sleep(%s), 1", (rng.uniform(0.01, 0.04),))
                if i % 40 == 0:
                    cur.execute("SELECT count(DISTINCT pad) FROM t WHERE i %% %s = 0" % (i // 40 + 1))
    finally:
        conn.close()


def test_exporter_sql_and_latency_py_agree_on_one_snapshot(pg, database):
    run_workload(pg, database)
    session = pgmod.connect(
        dict(pg.conn_params, login_db=database, session_settings={"pg_stat_statements.track": "none"}),
        "tests.latency_model",
    )
    conn = quiet_conn(pg, database)
    try:
        engine = latency.from_pg_stat_statements(session)
        sql_ms, sql_calls = exporter_p95_ms(conn)
        again = latency.from_pg_stat_statements(session)
    finally:
        session.close()
        conn.close()
    assert engine == again, "pg_stat_statements changed while it was read: not one snapshot"
    assert engine["statements"] >= 5 and engine["calls"] >= 700
    assert sql_calls == engine["calls"]
    assert sql_ms == pytest.approx(engine["value_ms"], rel=TOLERANCE), (sql_ms, engine)


def test_exporter_sql_and_latency_py_agree_on_edge_cases(pg, database):
    """The corners of statement_cdf: no spread, a mean of 0, a cut far in a tail, min = max, one call.
    The rows shadow the view: a temporary table named pg_stat_statements comes first in the path."""
    rows = [
        # calls, mean, stddev, min, max (ms)
        (500, 0.8, 0.5, 0.05, 12.0),
        (60, 35.0, 20.0, 4.0, 160.0),
        (30, 3.0, 0.0, 3.0, 3.0),
        (5, 0.0, 0.0, 0.0, 0.0),
        (1, 900.0, 0.0, 900.0, 900.0),
        (40, 10.0, 1.0, 25.0, 30.0),  # a cut where the log-normal keeps (almost) nothing
        (25, 60.0, 300.0, 1.0, 2000.0),  # very skewed
    ]
    conn = quiet_conn(pg, database)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE pg_stat_statements (calls bigint, mean_exec_time float8, "
                "stddev_exec_time float8, min_exec_time float8, max_exec_time float8, toplevel bool)"
            )
            for sample in (rows, rows[:2], rows[2:5], rows[5:]):
                cur.execute("TRUNCATE pg_stat_statements")
                cur.executemany("INSERT INTO pg_stat_statements VALUES (%s, %s, %s, %s, %s, true)", sample)
                sql_ms, _calls = exporter_p95_ms(conn)
                expected = latency.estimate_percentile(
                    [
                        dict(calls=c, mean_time=m, stddev_time=s, min_time=lo, max_time=hi)
                        for c, m, s, lo, hi in sample
                    ]
                )
                assert sql_ms == pytest.approx(expected, rel=TOLERANCE, abs=1e-6), (sample, sql_ms)
            cur.execute("TRUNCATE pg_stat_statements")
            assert exporter_p95_ms(conn) == (0.0, 0)
    finally:
        conn.close()
