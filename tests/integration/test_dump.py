"""dump: pg_dump -Fc and pg_restore through the shared connection options, on every major."""

import grp
import os

import pytest

import harness

# pg_dump and pg_restore of the server's own major (binaries found per major): every major.
pytestmark = pytest.mark.all_versions

DATA = """
CREATE TABLE accounts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, owner text NOT NULL, balance numeric
);
INSERT INTO accounts (owner, balance) SELECT 'owner ' || i, i * 10 FROM generate_series(1, 500) i;
CREATE VIEW rich AS SELECT * FROM accounts WHERE balance > 4000;
"""


def _task(pg, db, name, check=False, ignore_errors=False, **options):
    task = dict(name=name, **{"dbarch.postgresql.dump": dict(pg.conn_params, login_db=db, **options)})
    if check:
        task["check_mode"] = True
    if ignore_errors:
        task["ignore_errors"] = True
    return task


def _state(pg, db):
    return pg.query(
        "SELECT count(*), sum(balance), (SELECT count(*) FROM rich) FROM accounts UNION ALL"
        " SELECT count(*), NULL, NULL FROM pg_class WHERE relname = 'extra'",
        dbname=db,
    )


def test_dump_and_restore_round_trip(pg, run_playbook, workdir):
    db = "dump_src"
    pg.createdb(db)
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute(DATA)
    before = _state(pg, db)
    path = os.path.join(workdir, "src.dump")
    tasks = [
        _task(pg, db, "would dump", check=True, path=path),
        _task(pg, db, "dump", path=path),
        _task(pg, db, "dump again", path=path),
    ]
    res = run_playbook([dict(hosts="localhost", gather_facts=False, tasks=tasks)])
    res.assert_ok()
    would = res.task("would dump")["result"]
    assert would["changed"] is True and "Would write" in would["msg"]
    first = res.task("dump")["result"]
    assert first["changed"] is True and first["entries"] >= 3 and first["bytes"] == os.path.getsize(path)
    assert first["command"].startswith(first["bindir"]) and pg.password not in res.stdout
    assert not os.path.exists(path + ".partial")
    again = res.task("dump again")["result"]
    assert again["changed"] is False and again["sha256"] == first["sha256"]

    # Damage the database, then restore onto itself.
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM accounts WHERE id % 2 = 0; CREATE TABLE extra (x int)")
    assert _state(pg, db) != before
    tasks = [
        _task(pg, db, "would restore", check=True, command="restore", path=path, clean=True),
        _task(pg, db, "restore", command="restore", path=path, clean=True),
    ]
    res = run_playbook([dict(hosts="localhost", gather_facts=False, tasks=tasks)])
    res.assert_ok()
    assert res.task("would restore")["result"]["msg"].startswith("Would restore")
    after = _state(pg, db)
    # The dump's objects are back as they were; objects created after the dump are not its business.
    assert after[0] == before[0]
    assert res.task("restore")["result"]["changed"] is True


def test_failures_are_clear_and_change_nothing(pg, run_playbook, workdir):
    db = "dump_fail"
    pg.createdb(db)
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute(DATA)
    before = _state(pg, db)
    path = os.path.join(workdir, "fail.dump")
    tasks = [
        _task(pg, db, "no folder", ignore_errors=True, path=os.path.join(workdir, "nope", "x.dump")),
        _task(pg, db, "no dump", ignore_errors=True, command="restore", path=path),
        _task(pg, db, "dump", path=path),
        # Restoring without clean into the same database collides on the first object: nothing changes.
        _task(pg, db, "collide", ignore_errors=True, command="restore", path=path),
        _task(
            pg, db, "bad password", ignore_errors=True, path=path + "2", login_password="wrong-" + pg.password
        ),
    ]
    res = run_playbook([dict(hosts="localhost", gather_facts=False, tasks=tasks)])
    assert "create " in res.task("no folder")["result"]["msg"]
    assert res.task("no dump")["result"]["msg"].startswith("No dump at ")
    collide = res.task("collide")
    assert collide["status"] == "failed" and "pg_restore of" in collide["result"]["msg"]
    assert "already exists" in collide["result"]["msg"]
    bad = res.task("bad password")
    assert bad["status"] == "failed" and "password authentication failed" in bad["result"]["msg"]
    assert pg.password not in res.stdout
    assert _state(pg, db) == before
    assert harness is not None


def test_dump_file_is_private_and_paths_must_be_absolute(pg, run_playbook, workdir):
    """A dump holds all the data: 0600 whatever the umask (0644 under umask 022 before), 0640 with group."""
    db = "dump_mode"
    pg.createdb(db)
    with pg.connect(db) as conn, conn.cursor() as cur:
        cur.execute(DATA)
    private = os.path.join(workdir, "private.dump")
    shared = os.path.join(workdir, "shared.dump")
    tasks = [
        _task(pg, db, "private", path=private),
        _task(pg, db, "shared", path=shared, group="postgres"),
        _task(pg, db, "relative", ignore_errors=True, path="relative.dump"),
    ]
    play = dict(hosts="localhost", gather_facts=False, tasks=tasks)
    res = run_playbook([play])
    st = os.stat(private)
    assert oct(st.st_mode & 0o777) == oct(0o600)
    assert res.task("private")["result"]["mode"] == "0600"
    st = os.stat(shared)
    assert oct(st.st_mode & 0o777) == oct(0o640) and st.st_gid == grp.getgrnam("postgres").gr_gid
    relative = res.task("relative")["result"]
    assert relative["failed"] is True and "must be an absolute path" in relative["msg"]
