# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbarch.postgresql.local_cluster through real ansible-playbook runs on real clusters."""

import json
import os
import secrets
import socket
import stat
import time

import psycopg2
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

NEWEST = harness.versions_under_test()[-1]
FAST = {"fsync": False, "shared_preload_libraries": "pg_stat_statements"}


play = harness.play


def lc_task(name, **options):
    return harness.task("local_cluster", name, **options)


def run_full(run_playbook, options, check=False, diff=False, name="Cluster"):
    """Run one local_cluster task; returns (task record, PlaybookRun)."""
    run = run_playbook(play(lc_task(name, **options)), check=check, diff=diff)
    return run.task(name), run


def run_one(run_playbook, options, check=False, diff=False):
    """Run one local_cluster task; returns its task record."""
    return run_full(run_playbook, options, check=check, diff=diff)[0]


def connect(port, password, dbname="postgres"):
    conn = psycopg2.connect(
        host="127.0.0.1", port=port, user="postgres", password=password, dbname=dbname, connect_timeout=10
    )
    conn.autocommit = True
    return conn


def scalar(port, password, query, dbname="postgres"):
    """First column of the first row, or None for a statement without rows."""
    conn = connect(port, password, dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchone()[0] if cur.description else None
    finally:
        conn.close()


@pytest.fixture
def password():
    return secrets.token_urlsafe(18)


@pytest.mark.parametrize("major", harness.versions_under_test(), ids=lambda m: "pg%d" % m)
def test_lifecycle_check_mode_idempotence_stop_and_remove(run_playbook, workdir, password, major):
    data_dir = os.path.join(workdir, "c", "data")
    opts = dict(
        data_dir=data_dir, version=major, superuser_password=password, settings=FAST, databases=["demo"]
    )

    planned = run_one(run_playbook, opts, check=True)
    assert planned["status"] == "changed"
    assert planned["result"]["actions"][0].startswith("initdb (PostgreSQL %d" % major)
    assert "create database demo" in planned["result"]["actions"]
    assert not os.path.exists(os.path.dirname(data_dir)), "check mode must not create anything"

    created, run = run_full(run_playbook, opts)
    assert created["status"] == "changed", run.stdout
    res = created["result"]
    assert res["running"] is True and res["role"] == "primary" and res["version"] == major
    assert res["socket_dir"] == os.path.join(workdir, "c", "run")
    assert scalar(res["port"], password, "SHOW server_version_num").startswith(str(major))
    assert scalar(res["port"], password, "SELECT count(*) FROM pg_database WHERE datname = 'demo'") == 1
    assert password not in run.stdout

    again = run_one(run_playbook, dict(opts, port=res["port"]))
    assert again["status"] == "ok", again["result"]["actions"]
    assert again["result"]["port"] == res["port"]

    stopped = run_one(run_playbook, dict(opts, state="stopped"))
    assert stopped["status"] == "changed" and stopped["result"]["actions"] == ["stop"]
    assert stopped["result"]["running"] is False
    with pytest.raises(psycopg2.OperationalError):
        connect(res["port"], password)
    assert run_one(run_playbook, dict(opts, state="stopped"))["status"] == "ok"

    removed = run_one(run_playbook, {"data_dir": data_dir, "state": "absent"})
    assert removed["status"] == "changed"
    assert not os.path.exists(os.path.join(workdir, "c"))
    assert run_one(run_playbook, {"data_dir": data_dir, "state": "absent"})["status"] == "ok"


@pytest.fixture
def cluster(run_playbook, workdir, password):
    """A running NEWEST cluster made by the module; returns (options, result)."""
    opts = dict(
        data_dir=os.path.join(workdir, "main", "data"),
        version=NEWEST,
        superuser_password=password,
        settings=dict(FAST),
    )
    record, run = run_full(run_playbook, opts)
    run.assert_ok()
    return opts, record["result"]


def test_settings_change_reloads_and_check_mode_shows_restart(run_playbook, cluster, password):
    opts, first = cluster
    port = first["port"]
    conf = os.path.join(opts["data_dir"], "dbarch.conf")
    with open(conf) as handle:
        before = handle.read()

    planned = run_one(
        run_playbook, dict(opts, settings=dict(FAST, shared_preload_libraries="")), check=True, diff=True
    )
    assert planned["status"] == "changed"
    assert "restart (for shared_preload_libraries)" in planned["result"]["actions"]
    conf_diff = planned["result"]["diff"][0]
    assert conf_diff["before_header"] == conf and conf_diff["before"] == before
    assert "shared_preload_libraries = ''" in conf_diff["after"]
    with open(conf) as handle:
        assert handle.read() == before, "check mode must not write dbarch.conf"
    assert scalar(port, password, "SHOW shared_preload_libraries") == "pg_stat_statements"

    reloaded = run_one(run_playbook, dict(opts, settings=dict(FAST, work_mem="12MB")))
    assert reloaded["status"] == "changed"
    assert reloaded["result"]["actions"][-1] == "reload"
    assert reloaded["result"]["restarted_for"] == []
    assert scalar(port, password, "SHOW work_mem") == "12MB"

    restarted = run_one(run_playbook, dict(opts, settings=dict(FAST, work_mem="12MB", max_connections=42)))
    assert restarted["result"]["restarted_for"] == ["max_connections"]
    assert scalar(port, password, "SHOW max_connections") == "42"
    steady = run_one(run_playbook, dict(opts, settings=dict(FAST, work_mem="12MB", max_connections=42)))
    assert steady["status"] == "ok"


def test_new_password_is_set_and_never_shown(run_playbook, cluster, password):
    opts, first = cluster
    new_password = "N3w-" + secrets.token_urlsafe(12)
    changed, run = run_full(run_playbook, dict(opts, superuser_password=new_password), diff=True)
    assert changed["status"] == "changed"
    assert changed["result"]["actions"] == ["set the password of postgres"]
    assert scalar(first["port"], new_password, "SELECT 1") == 1
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect(first["port"], password)
    assert new_password not in run.stdout and new_password not in json.dumps(run.results)
    assert run_one(run_playbook, dict(opts, superuser_password=new_password))["status"] == "ok"


def test_busy_preferred_port_gets_another_port(run_playbook, workdir, password):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        opts = dict(
            data_dir=os.path.join(workdir, "p", "data"),
            version=NEWEST,
            port=taken,
            superuser_password=password,
            settings=FAST,
        )
        first = run_one(run_playbook, opts)
        assert first["status"] == "changed"
        port = first["result"]["port"]
        assert port != taken
        assert first["result"]["port_note"] == (
            "port %d is in use by another process; using free port %d instead" % (taken, port)
        )
        assert scalar(port, password, "SELECT 1") == 1
        again = run_one(run_playbook, opts)
        assert again["status"] == "ok"
        assert again["result"]["port"] == port
        assert again["result"]["port_note"] == (
            "preferred port %d is in use by another process; keeping port %d" % (taken, port)
        )


def test_absent_refuses_a_folder_dbarch_did_not_create(run_playbook, workdir):
    data_dir = os.path.join(workdir, "theirs", "data")
    os.makedirs(data_dir)
    precious = os.path.join(data_dir, "PG_VERSION")
    with open(precious, "w") as out:
        out.write("15\n")
    refused, run = run_full(run_playbook, {"data_dir": data_dir, "state": "absent"})
    assert refused["status"] == "failed"
    assert "Refusing to delete %s" % data_dir in refused["result"]["msg"]
    assert "carries no dbarch marker" in refused["result"]["msg"]
    assert os.path.exists(precious)
    present = run_one(run_playbook, {"data_dir": data_dir, "version": NEWEST, "superuser_password": "x"})
    assert (
        present["status"] == "failed"
        and "dbarch only manages clusters it created" in present["result"]["msg"]
    )
    assert os.path.exists(precious)


def test_half_created_cluster_is_rebuilt(run_playbook, workdir, password):
    cluster_dir = os.path.join(workdir, "half")
    data_dir = os.path.join(cluster_dir, "data")
    os.makedirs(os.path.join(data_dir, "global"))
    with open(os.path.join(data_dir, "PG_VERSION"), "w") as out:
        out.write("%d\n" % NEWEST)
    with open(os.path.join(cluster_dir, lc.MARKER_NAME), "w") as out:
        json.dump({"created_by": lc.CREATED_BY, "data_dir": data_dir, "state": "initializing"}, out)
    rebuilt, run = run_full(
        run_playbook, dict(data_dir=data_dir, version=NEWEST, superuser_password=password, settings=FAST)
    )
    assert rebuilt["status"] == "changed", run.stdout
    assert rebuilt["result"]["actions"][0] == "remove the half-created cluster left by an interrupted run"
    assert scalar(rebuilt["result"]["port"], password, "SELECT 1") == 1


def test_version_rules(run_playbook, cluster, workdir):
    opts = cluster[0]
    other = 15 if NEWEST != 15 else 16
    wrong = run_one(run_playbook, dict(opts, version=other))
    assert wrong["status"] == "failed"
    assert "holds a PostgreSQL %d cluster but version=%d" % (NEWEST, other) in wrong["result"]["msg"]
    missing = run_one(
        run_playbook, {"data_dir": os.path.join(workdir, "nov", "data"), "superuser_password": "x"}
    )
    assert missing["status"] == "failed" and "version is required" in missing["result"]["msg"]


def wait_for(predicate, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    return predicate()


def test_standby_streams_through_its_slot_and_reuses_an_existing_slot(
    run_playbook, cluster, workdir, password
):
    opts, primary = cluster
    port = primary["port"]
    conn = connect(port, password)
    with conn.cursor() as cur:
        # A slot left behind by an interrupted earlier attempt: the module must reuse it.
        cur.execute("SELECT pg_create_physical_replication_slot('standby_one')")
    conn.close()
    standby_opts = dict(
        data_dir=os.path.join(workdir, "standby", "data"),
        version=NEWEST,
        settings=FAST,
        primary={"port": port, "user": "postgres", "password": password, "slot": "standby_one"},
    )
    made, run = run_full(run_playbook, standby_opts)
    assert made["status"] == "changed", run.stdout
    assert made["result"]["role"] == "standby"
    assert made["result"]["actions"][0] == "pg_basebackup from 127.0.0.1:%d using slot standby_one" % port
    assert password not in run.stdout
    sport = made["result"]["port"]
    assert scalar(sport, password, "SELECT pg_is_in_recovery()") is True
    streaming = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
    assert wait_for(lambda: scalar(port, password, streaming) == 1)
    assert scalar(port, password, "SELECT active FROM pg_replication_slots WHERE slot_name = 'standby_one'")
    scalar(port, password, "CREATE TABLE replicated AS SELECT 7 AS v")
    assert wait_for(
        lambda: scalar(sport, password, "SELECT count(*) FROM pg_class WHERE relname = 'replicated'")
    )
    # The password is not in primary_conninfo (pg_monitor members read it with SHOW) nor anywhere in the
    # data folder's configuration: it is in the standby's password file beside the data folder, 0600.
    conninfo = scalar(sport, password, "SHOW primary_conninfo")
    passfile = os.path.join(workdir, "standby", ".dbarch-data.pgpass")
    assert "password=" not in conninfo and "passfile=%s" % passfile in conninfo, conninfo
    with open(os.path.join(standby_opts["data_dir"], "postgresql.auto.conf"), encoding="utf-8") as fh:
        assert password not in fh.read()
    assert stat.S_IMODE(os.stat(passfile).st_mode) == 0o600
    with open(passfile, encoding="utf-8") as fh:
        assert fh.read() == "127.0.0.1:%d:*:postgres:%s\n" % (port, password)

    assert run_one(run_playbook, dict(standby_opts, port=sport))["status"] == "ok"
    refused = run_one(run_playbook, dict(opts, primary=standby_opts["primary"]))
    assert refused["status"] == "failed" and "is not turned into a standby" in refused["result"]["msg"]

    removed = run_one(
        run_playbook,
        {"data_dir": standby_opts["data_dir"], "state": "absent", "primary": standby_opts["primary"]},
    )
    assert removed["status"] == "changed"
    assert "dropped slot standby_one on 127.0.0.1:%d" % port in removed["result"]["actions"]
    assert not os.path.exists(passfile)
    assert scalar(port, password, "SELECT count(*) FROM pg_replication_slots") == 0


def test_bad_input_is_refused_before_anything_is_created(run_playbook, workdir, password):
    """A newline in a setting value, a reserved superuser name and a relative data_dir fail first."""
    data_dir = os.path.join(workdir, "bad", "data")
    # The password comes as an extra var, as a user would give it: ansible-core quotes the lines of
    # the playbook around a failed task, so a literal in the playbook would show in its own error.
    base = dict(data_dir=data_dir, version=NEWEST, superuser_password="{{ test_password }}")
    run = run_playbook(
        play(
            dict(
                lc_task("newline", **dict(base, settings={"application_name": "x\nlisten_addresses = '*'"})),
                ignore_errors=True,
            ),
            dict(lc_task("superuser", **dict(base, superuser="pg_admin")), ignore_errors=True),
            dict(lc_task("relative", **{**base, "data_dir": "relative/data"}), ignore_errors=True),
            {
                "name": "info relative",
                "dbarch.postgresql.local_cluster_info": {"data_dir": "relative/data"},
                "ignore_errors": True,
            },
        ),
        extra_vars={"test_password": password},
    )
    assert "carriage return, newline or NUL" in run.task("newline")["result"]["msg"]
    assert "not a usable superuser name" in run.task("superuser")["result"]["msg"]
    for name in ("relative", "info relative"):
        result = run.task(name)["result"]
        assert result["failed"] and "data_dir='relative/data' must be an absolute path" in result["msg"]
    assert not os.path.exists(os.path.join(workdir, "bad"))
    assert password not in run.stdout


def test_failed_initdb_leaves_no_initializing_folder(workdir, password):
    """initdb fails (a locale that does not exist): the folder it created and its marker are removed."""
    fresh = lc.LocalCluster(os.path.join(workdir, "fresh", "data"), bindir=lc.find_bindir(NEWEST))
    with pytest.raises(lc.LocalClusterError, match="initdb"):
        fresh.initdb(password=password, locale="xx_NO.SUCH-LOCALE", settings=FAST)
    assert not os.path.exists(os.path.join(workdir, "fresh"))

    # in a folder that was there before, only the data folder and the marker go
    kept = os.path.join(workdir, "kept")
    os.makedirs(kept)
    with open(os.path.join(kept, "notes.txt"), "w") as out:
        out.write("mine\n")
    again = lc.LocalCluster(os.path.join(kept, "data"), bindir=lc.find_bindir(NEWEST))
    with pytest.raises(lc.LocalClusterError, match="initdb"):
        again.initdb(password=password, locale="xx_NO.SUCH-LOCALE", settings=FAST)
    assert not os.path.exists(os.path.join(kept, "data"))
    assert not os.path.exists(os.path.join(kept, lc.MARKER_NAME))
    assert os.path.exists(os.path.join(kept, "notes.txt"))
