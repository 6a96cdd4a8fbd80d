"""dbarch.postgresql.index against real clusters of every supported major.

Builds, idempotence, check and diff mode, replace, INVALID leftovers, lock_timeout retries
(locks held from this process and released from a thread), verify_query, absent, and a
build under a concurrent write load (Python writer threads, and the server's own pgbench).
"""

import os
import subprocess
import threading
import time

import psycopg2
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

DB = "idxdb"

SCHEMA = """
CREATE TABLE items (
    id int PRIMARY KEY,
    customer_id int NOT NULL,
    email text NOT NULL,
    status text NOT NULL,
    note text NOT NULL
);
INSERT INTO items
SELECT g, g % 500, 'User' || g || '@Example.com', CASE WHEN g % 10 = 0 THEN 'active' ELSE 'closed' END,
       md5(g::text)
FROM generate_series(1, 20000) g;
ANALYZE items;
CREATE TABLE dups (v int NOT NULL);
INSERT INTO dups VALUES (1), (2), (2), (3);
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id));
"""


@pytest.fixture(scope="module")
def db(pg):
    pg.createdb(DB)
    with pg.connect(DB) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
    return pg


def play(pg, tasks):
    return harness.play(*tasks, pg=pg, db=DB)


def index_task(task_name, ignore_errors=False, **options):
    if ignore_errors:
        options["ignore_errors"] = True
    return harness.task("index", task_name, register=task_name, **options)


def index_rows(pg, name):
    """[(valid, definition)] of every index called ``name``."""
    return pg.query(
        "SELECT x.indisvalid, pg_get_indexdef(c.oid) FROM pg_class c JOIN pg_index x ON x.indexrelid = c.oid "
        "WHERE c.relname = %s",
        (name,),
        dbname=DB,
    )


def invalid_indexes(pg):
    return pg.query(
        "SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE NOT x.indisvalid",
        dbname=DB,
    )


def drop(pg, *names):
    for name in names:
        pg.query("DROP INDEX IF EXISTS %s" % name, dbname=DB)


def test_create_check_mode_diff_idempotence_and_verify(db, run_playbook):
    spec = dict(name="items_customer_idx", table="public.items", columns=["customer_id"])
    check = run_playbook(play(db, [index_task("check", **spec)]), check=True, diff=True)
    check.assert_ok()
    res = check.task("check")["result"]
    assert res["changed"] is True and res["before"] is None
    assert res["planned"] == [
        'CREATE INDEX CONCURRENTLY "items_customer_idx" ON "public"."items" USING btree ("customer_id")'
    ]
    assert res["definition"] == "CREATE INDEX items_customer_idx ON public.items USING btree (customer_id)"
    assert res["diff"]["before"] == "" and "USING btree (customer_id)" in res["diff"]["after"]
    assert not any("CONCURRENTLY" in q for q in res["queries"])
    assert index_rows(db, "items_customer_idx") == [], "check mode must not build the index"

    verify = dict(verify_query="SELECT * FROM items WHERE customer_id = $1", verify_params=[7])
    run = run_playbook(
        play(
            db,
            [
                index_task("first", log_progress=True, **spec, **verify),
                index_task("second", **spec, **verify),
            ],
        ),
        diff=True,
    )
    run.assert_ok()
    first, second = run.task("first")["result"], run.task("second")["result"]
    try:
        assert first["changed"] is True and first["invalid_dropped"] is False and first["retries"] == 0
        assert first["build"]["duration_ms"] >= 0 and first["attempts"] == [dict(attempt=1, outcome="built")]
        assert isinstance(first["progress"]["phases"], list) and "samples" in first["progress"]
        assert first["verify"]["used"] is True
        assert first["verify"]["plan_node"]["Index Name"] == "items_customer_idx"
        assert first["verify"]["plan_node"]["Node Type"] in (
            "Index Scan",
            "Bitmap Index Scan",
            "Index Only Scan",
        )
        assert "CREATE INDEX CONCURRENTLY" in " ".join(first["queries"])
        assert second["changed"] is False and second["planned"] == [] and "diff" not in second
        assert second["before"] == second["definition"] and second["verify"]["used"] is True
        assert index_rows(db, "items_customer_idx") == [(True, first["definition"])]
    finally:
        drop(db, "items_customer_idx")


def test_equivalent_expression_is_unchanged_and_bad_input_is_refused(db, run_playbook):
    spec = dict(name="items_email_active", table="items", columns=["lower(email)"], unique=True)
    run = run_playbook(
        play(
            db,
            [
                index_task("create", where="status = 'active'", **spec),
                index_task("same", where="(status = 'active'::text)", **spec),
                index_task("inject", True, name="bad1", table="items", columns=["id) WITH (fillfactor=10"]),
                index_task(
                    "two", True, name="bad2", table="items", columns=["id"], where="true; DROP TABLE items"
                ),
                index_task("sub", True, name="bad3", table="items", columns=["(SELECT 1)"]),
                index_task("nocol", True, name="bad4", table="items", columns=["missing"]),
                index_task("notable", True, name="bad5", table="nope", columns=["id"]),
            ],
        )
    )
    try:
        assert run.task("create")["result"]["changed"] is True, run.task("create")["result"]
        same = run.task("same")["result"]
        assert same["changed"] is False and "WHERE (status = 'active'::text)" in same["definition"]
        assert (
            "one" in run.task("inject")["result"]["msg"]
            and "expression" in run.task("inject")["result"]["msg"]
        )
        assert "expression" in run.task("two")["result"]["msg"]
        assert "no subquery" in run.task("sub")["result"]["msg"]
        assert "column 'missing' does not exist" in run.task("nocol")["result"]["msg"]
        assert "table 'nope' does not exist" in run.task("notable")["result"]["msg"]
        assert db.query("SELECT count(*) FROM items", dbname=DB) == [(20000,)]
        assert all(index_rows(db, "bad%d" % i) == [] for i in range(1, 6))
    finally:
        drop(db, "items_email_active")


def test_other_definition_is_refused_then_replaced(db, run_playbook):
    base = dict(name="items_status_idx", table="items")
    run = run_playbook(
        play(
            db,
            [
                index_task("create", columns=["status"], **base),
                index_task("other", True, columns=["status", "customer_id"], **base),
                index_task(
                    "replace", columns=["status", "customer_id"], include=["note"], replace=True, **base
                ),
                index_task(
                    "again", columns=["status", "customer_id"], include=["note"], replace=True, **base
                ),
            ],
        ),
        diff=True,
    )
    try:
        other = run.task("other")["result"]
        assert (
            other["failed"]
            and "exists with another definition" in other["msg"]
            and "replace=true" in other["msg"]
        )
        rep = run.task("replace")["result"]
        assert rep["changed"] is True and rep["replaced"] is True, rep
        assert rep["before"].endswith("USING btree (status)")
        assert rep["planned"][0].startswith('CREATE INDEX CONCURRENTLY "items_status_idx_dbarch_new"')
        assert rep["planned"][1] == 'DROP INDEX CONCURRENTLY IF EXISTS "public"."items_status_idx"'
        assert rep["diff"]["before"] != rep["diff"]["after"]
        assert run.task("again")["result"]["changed"] is False
        assert index_rows(db, "items_status_idx") == [
            (
                True,
                "CREATE INDEX items_status_idx ON public.items USING btree (status, customer_id) "
                "INCLUDE (note)",
            )
        ]
        assert index_rows(db, "items_status_idx_dbarch_new") == []
    finally:
        drop(db, "items_status_idx", "items_status_idx_dbarch_new")


def test_a_replace_interrupted_after_its_build_is_finished_by_the_next_run(db, run_playbook):
    """A replace that failed after building <name>_dbarch_new (old index not dropped, or dropped but
    not renamed) leaves a valid spare; the next run reuses it instead of failing on the name, and a
    spare of another definition is dropped and rebuilt."""
    wanted = dict(table="items", columns=["status", "customer_id"], replace=True)
    db.query("CREATE INDEX items_a ON items (status)", dbname=DB)
    # Interrupted before the old index was dropped: both exist.
    db.query("CREATE INDEX items_a_dbarch_new ON items (status, customer_id)", dbname=DB)
    # Interrupted after the drop, before the rename: only the spare exists.
    db.query("CREATE INDEX items_b_dbarch_new ON items (status, customer_id)", dbname=DB)
    # A spare of another definition (the wanted one changed since).
    db.query("CREATE INDEX items_c ON items (status)", dbname=DB)
    db.query("CREATE INDEX items_c_dbarch_new ON items (email)", dbname=DB)
    spare_oid = db.query("SELECT 'items_a_dbarch_new'::regclass::oid", dbname=DB)[0][0]
    run = run_playbook(
        play(
            db,
            [
                index_task("a", name="items_a", **wanted),
                index_task("b", name="items_b", **wanted),
                index_task("c", name="items_c", **wanted),
                index_task("again", name="items_a", **wanted),
            ],
        ),
        check=False,
    )
    try:
        a = run.task("a")["result"]
        assert a["changed"] and a["replaced"], a
        assert a["actions"] == ["drop the old index", "rename items_a_dbarch_new to items_a"], a["actions"]
        # The spare was reused, not rebuilt: same relation, now under the wanted name.
        assert db.query("SELECT 'items_a'::regclass::oid", dbname=DB)[0][0] == spare_oid
        b = run.task("b")["result"]
        assert b["actions"] == ["rename items_b_dbarch_new (left by an earlier replace) to items_b"], b
        c = run.task("c")["result"]
        assert c["actions"][0] == "drop the leftover items_c_dbarch_new of an earlier replace", c
        assert c["actions"][1].startswith("create the new definition"), c
        assert run.task("again")["result"]["changed"] is False
        for name in ("items_a", "items_b", "items_c"):
            assert index_rows(db, name) == [
                (True, "CREATE INDEX %s ON public.items USING btree (status, customer_id)" % name)
            ]
            assert index_rows(db, name + "_dbarch_new") == []
    finally:
        drop(db, *["items_%s%s" % (n, s) for n in "abc" for s in ("", "_dbarch_new")])


def make_invalid_unique_index(pg, name):
    with pg.connect(DB) as conn, conn.cursor() as cur, pytest.raises(psycopg2.errors.UniqueViolation):
        cur.execute("CREATE UNIQUE INDEX CONCURRENTLY %s ON dups (v)" % name)
    assert index_rows(pg, name)[0][0] is False


def test_invalid_leftover_is_rebuilt_and_a_failing_build_leaves_nothing(db, run_playbook):
    make_invalid_unique_index(db, "dups_v_key")
    spec = dict(name="dups_v_key", table="dups", columns=["v"], unique=True)
    try:
        failing = run_playbook(play(db, [index_task("dup", True, **spec)]))
        res = failing.task("dup")["result"]
        assert res["failed"] and "23505" in res["msg"] and "dropped" in res["msg"], res["msg"]
        assert res["invalid_dropped"] is True
        assert index_rows(db, "dups_v_key") == [], "a failed build must leave no INVALID index"
        # the same failure again, with no leftover to start from
        failing = run_playbook(play(db, [index_task("dup", True, **spec)]))
        assert "23505" in failing.task("dup")["result"]["msg"] and index_rows(db, "dups_v_key") == []

        make_invalid_unique_index(db, "dups_v_key")
        db.query(
            "DELETE FROM dups WHERE ctid IN (SELECT max(ctid) FROM dups GROUP BY v HAVING count(*) > 1)",
            dbname=DB,
        )
        run = run_playbook(play(db, [index_task("rebuild", **spec)]))
        run.assert_ok()
        rebuilt = run.task("rebuild")["result"]
        assert rebuilt["changed"] is True and rebuilt["invalid_dropped"] is True
        assert rebuilt["actions"][0].startswith("drop the INVALID index")
        assert index_rows(db, "dups_v_key") == [
            (True, "CREATE UNIQUE INDEX dups_v_key ON public.dups USING btree (v)")
        ]
    finally:
        drop(db, "dups_v_key")
    assert invalid_indexes(db) == []


def waiting_dbarch_backends(pg):
    return pg.query(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = 'dbarch.index' AND wait_event_type = 'Lock'",
        dbname=DB,
    )[0][0]


def release_after_first_timeout(pg, conn, done, seen):
    """Commit ``conn`` once a dbarch.index backend waited on a lock and gave up (deterministic)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not done.is_set():
        waiting = waiting_dbarch_backends(pg)
        if waiting:
            seen.append(waiting)
        elif seen:
            break
        time.sleep(0.02)
    conn.commit()


def test_lock_timeout_retry_until_the_writer_commits(db, run_playbook):
    holder = db.connect(DB, autocommit=False)
    done, seen = threading.Event(), []
    try:
        with holder.cursor() as cur:
            cur.execute("UPDATE items SET note = note WHERE id = 1")  # an open write transaction
        releaser = threading.Thread(target=release_after_first_timeout, args=(db, holder, done, seen))
        releaser.start()
        spec = dict(
            name="items_note_idx", table="items", columns=["note"], lock_timeout="300ms", retry_delay=0.2
        )
        run = run_playbook(play(db, [index_task("build", **spec)]))
        done.set()
        releaser.join()
        run.assert_ok()
        res = run.task("build")["result"]
        assert seen, "the build never waited on the open write transaction"
        assert res["changed"] is True and res["retries"] >= 1, res["attempts"]
        assert res["attempts"][0]["sqlstate"] == "55P03" and res["attempts"][-1]["outcome"] == "built"
        assert "waiting for writers before build" in res["progress"]["phases"]
        assert index_rows(db, "items_note_idx")[0][0] is True
        assert invalid_indexes(db) == []
    finally:
        done.set()
        holder.close()
        drop(db, "items_note_idx")


def test_lock_that_never_goes_away_fails_cleanly(db, run_playbook):
    holder = db.connect(DB, autocommit=False)
    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE items IN SHARE ROW EXCLUSIVE MODE")
        spec = dict(
            name="items_never_idx",
            table="items",
            columns=["note"],
            lock_timeout="200ms",
            retries=2,
            retry_delay=0.1,
        )
        run = run_playbook(play(db, [index_task("build", True, **spec)]))
        res = run.task("build")["result"]
        assert res["failed"] and "55P03" in res["msg"] and "after 3 attempt(s)" in res["msg"], res["msg"]
        assert [a["sqlstate"] for a in res["attempts"]] == ["55P03"] * 3
        assert index_rows(db, "items_never_idx") == []
    finally:
        holder.close()
        drop(db, "items_never_idx")
    assert invalid_indexes(db) == []


def test_open_writer_that_never_commits_is_reported(db, run_playbook):
    holder = db.connect(DB, autocommit=False)
    try:
        with holder.cursor() as cur:
            cur.execute("UPDATE items SET note = note WHERE id = 2")
        spec = dict(
            name="items_stuck_idx",
            table="items",
            columns=["note"],
            lock_timeout="200ms",
            retries=1,
            retry_delay=0.1,
        )
        run = run_playbook(play(db, [index_task("build", True, **spec)]))
        res = run.task("build")["result"]
        assert res["failed"] and "55P03" in res["msg"]
        assert "could not be dropped" in res["msg"] and "next run" in res["msg"], res["msg"]
    finally:
        holder.close()
    # the writer is gone: the next run drops the INVALID leftover and builds the index
    run = run_playbook(play(db, [index_task("build", **spec)]))
    try:
        run.assert_ok()
        assert run.task("build")["result"]["invalid_dropped"] is True
        assert index_rows(db, "items_stuck_idx")[0][0] is True
    finally:
        drop(db, "items_stuck_idx")


def test_verify_query_not_using_the_index_rolls_back(db, run_playbook):
    spec = dict(name="items_note_unused", table="items", columns=["note"])
    run = run_playbook(
        play(
            db,
            [
                index_task(
                    "unused",
                    True,
                    verify_query="SELECT * FROM items WHERE customer_id = 3",
                    rollback_unused=True,
                    **spec,
                ),
                index_task("badquery", True, verify_query="DROP TABLE items", **spec),
            ],
        )
    )
    res = run.task("unused")["result"]
    assert res["failed"] and "does not use index public.items_note_unused" in res["msg"]
    assert (
        res["rolled_back"] is True and res["verify"]["used"] is False and res["verify"]["plan_node"] is None
    )
    assert index_rows(db, "items_note_unused") == []
    assert "verify_query" in run.task("badquery")["result"]["msg"]
    assert index_rows(db, "items_note_unused") == []


def test_absent_and_constraint_indexes(db, run_playbook):
    db.query("CREATE INDEX items_drop_me ON items (status)", dbname=DB)
    run = run_playbook(
        play(
            db,
            [
                dict(
                    index_task("check", name="items_drop_me", table="items", state="absent"), check_mode=True
                ),
                index_task("pk", True, name="items_pkey", table="items", state="absent"),
                index_task("fk_target", True, name="parent_pkey", table="parent", state="absent"),
                index_task("drop", name="items_drop_me", table="items", state="absent"),
                index_task("again", name="items_drop_me", table="items", state="absent"),
            ],
        ),
        diff=True,
    )
    check = run.task("check")["result"]
    assert check["changed"] is True and check["planned"] == [
        'DROP INDEX CONCURRENTLY IF EXISTS "public"."items_drop_me"'
    ]
    pk = run.task("pk")["result"]
    assert pk["failed"] and "backs constraint items_pkey (PRIMARY KEY)" in pk["msg"]
    assert run.task("fk_target")["result"]["failed"]
    drop_res = run.task("drop")["result"]
    assert drop_res["changed"] is True and drop_res["diff"]["after"] == ""
    assert run.task("again")["result"]["changed"] is False
    assert index_rows(db, "items_drop_me") == [] and index_rows(db, "items_pkey")[0][0] is True


class WriteLoad:
    """Threads writing to items in short transactions until stopped; records commits and errors."""

    def __init__(self, pg, threads=2):
        self.pg = pg
        self.stop = threading.Event()
        self.commits = []
        self.errors = []
        self.threads = [threading.Thread(target=self.work, args=(n,)) for n in range(threads)]

    def work(self, n):
        conn = self.pg.connect(DB, autocommit=False)
        key = 1000000 + n * 100000
        try:
            while not self.stop.is_set():
                key += 1
                try:
                    with conn.cursor() as cur:
                        cur.execute("INSERT INTO items VALUES (%s, 1, 'load', 'load', 'load')", (key,))
                        cur.execute("UPDATE items SET note = md5(note) WHERE id = %s", (key % 20000 + 1,))
                        cur.execute("SELECT pg_sleep(0.005)")
                    conn.commit()
                    self.commits.append(time.time())
                except psycopg2.Error as exc:
                    conn.rollback()
                    self.errors.append("%s %s" % (exc.pgcode, exc))
        finally:
            conn.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()
        return False


def test_build_under_concurrent_writes(db, run_playbook):
    spec = dict(name="items_load_idx", table="items", columns=["customer_id", "status"])
    try:
        with WriteLoad(db) as load:
            while len(load.commits) < 20:
                time.sleep(0.05)
            run = run_playbook(play(db, [index_task("build", **spec)]))
            after = len(load.commits)
            while len(load.commits) < after + 20:
                time.sleep(0.05)
        run.assert_ok()
        build = run.task("build")["result"]["build"]
        during = [t for t in load.commits if build["started_at"] <= t <= build["finished_at"]]
        assert load.errors == [], load.errors[:5]
        assert during, "no write committed while the index was being built"
        assert index_rows(db, "items_load_idx")[0][0] is True
    finally:
        drop(db, "items_load_idx")
        db.query("DELETE FROM items WHERE id > 20000", dbname=DB)


PGBENCH_SCRIPT = """\\set k random(2000001, 2999999)
\\set u random(1, 20000)
INSERT INTO items VALUES (:k, 1, 'bench', 'bench', 'bench') ON CONFLICT (id) DO NOTHING;
UPDATE items SET note = md5(note) WHERE id = :u;
"""


@pytest.mark.pg_versions(18)  # a fixed 20 s load; the Python writers above run on 15 and 18
def test_build_under_pgbench_write_load(db, run_playbook, tmp_path):
    """pgbench (the server's own, two clients, a bounded run) writes while the index builds concurrently."""
    bindir = lc.find_bindir(db.major)
    script = tmp_path / "load.sql"
    script.write_text(PGBENCH_SCRIPT)
    env = dict(os.environ, PGPASSWORD=db.password, **lc.library_env(bindir))
    argv = [os.path.join(bindir, "pgbench"), "-n", "-c", "2", "-T", "20", "-f", str(script), "-l"]
    argv += ["--log-prefix", str(tmp_path / "tx"), "-h", db.host, "-p", str(db.port), "-U", db.user, DB]
    spec = dict(name="items_bench_idx", table="items", columns=["status", "customer_id"])
    bench = subprocess.Popen(
        argv, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        time.sleep(2)  # let the load start before the build
        run = run_playbook(play(db, [index_task("build", **spec)]))
        output = bench.communicate(timeout=120)[0].decode()
        run.assert_ok()
        assert bench.returncode == 0, output
        build = run.task("build")["result"]["build"]
        ends = []
        for log in tmp_path.glob("tx*"):
            for line in log.read_text().splitlines():
                fields = line.split()
                ends.append(int(fields[4]) + int(fields[5]) / 1e6)  # time_epoch, time_us of the commit
        during = [t for t in ends if build["started_at"] <= t <= build["finished_at"]]
        assert ends and during, "pgbench committed %d transactions, none while the index was built" % len(
            ends
        )
        assert "failed" not in output or "number of failed transactions: 0" in output, output
        assert index_rows(db, "items_bench_idx")[0][0] is True and invalid_indexes(db) == []
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        drop(db, "items_bench_idx")
        db.query("DELETE FROM items WHERE id > 20000", dbname=DB)
