# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/switchover.yml with Debian's PgBouncer in the loop, under a pgbench write load through it.

A primary ``a`` and its standby ``b``, a PgBouncer (transaction pooling, SCRAM secrets of the roles in its
auth file, the write pool ``appdb`` in an included databases.ini) in front of ``a``, and pgbench writing
through it. The switchover PAUSEs the pool, stops ``a`` cleanly, promotes ``b``, rewrites the pool to ``b``,
RELOADs and RESUMEs: pgbench must see no failed transaction and every transaction it counted must be a row
on ``b``. PgBouncer 1.18 comes from Debian, so this runs on 15 only (the playbook itself runs on 15 and 18 in
test_switchover.py).
"""

import glob
import json
import os
import re
import secrets
import subprocess
import sys

import psycopg2
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import retry

pytestmark = pytest.mark.pg_versions(15)

PGBOUNCER = "/usr/sbin/pgbouncer"
ADMIN = "dbarch_pgbouncer"
APP = "sw_app"
DB = "appdb"
PGBENCH_SECONDS = 25
# A few milliseconds per transaction: without the PAUSE, the stop would catch transactions in flight.
PGBENCH_SCRIPT = "\\set v random(1, 1000000)\nBEGIN;\nINSERT INTO sw_load (v) VALUES (:v);\nCOMMIT;\n"
SETTINGS = {"wal_log_hints": "on", "full_page_writes": "on", "wal_keep_size": "64MB"}


class Bouncer:
    """A PgBouncer run as postgres from its own folder."""

    def __init__(self, folder, primary, secrets_by_role):
        self.folder = folder
        self.port = lc.free_port()
        self.databases = os.path.join(folder, "databases.ini")
        self.pidfile = os.path.join(folder, "pgbouncer.pid")
        self.ini = os.path.join(folder, "pgbouncer.ini")
        os.makedirs(folder)
        self._write(
            self.ini,
            "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir = %s\n"
            "auth_type = scram-sha-256\nauth_file = %s/userlist.txt\nadmin_users = %s\n"
            "pool_mode = transaction\ndefault_pool_size = 10\nquery_wait_timeout = 120\n"
            "server_login_retry = 1\npidfile = %s\nlogfile = %s/pgbouncer.log\n%%include %s\n"
            % (self.port, folder, folder, ADMIN, self.pidfile, folder, self.databases),
        )
        self._write(
            self.databases,
            "[databases]\n%s = host=127.0.0.1 port=%d dbname=%s\n" % (DB, primary.port, DB),
        )
        self._write(
            os.path.join(folder, "userlist.txt"),
            "".join('"%s" "%s"\n' % (role, secret) for role, secret in secrets_by_role.items()),
            mode=0o600,
        )
        subprocess.run(["chown", "-R", "postgres:postgres", folder], check=True)
        subprocess.run(["runuser", "-u", "postgres", "--", PGBOUNCER, "-d", self.ini], check=True)
        assert retry.poll(lambda: True if os.path.exists(self.pidfile) else None, 10), (
            "PgBouncer did not start"
        )

    @staticmethod
    def _write(path, text, mode=0o640):
        with open(path, "w") as out:
            out.write(text)
        os.chmod(path, mode)

    def stop(self):
        raw = lc.read_text(self.pidfile)
        if raw and raw.strip().isdigit():
            subprocess.run(["kill", "-TERM", raw.strip()], check=False)
            retry.poll(lambda: None if os.path.exists(self.pidfile) else True, 10)


def host_vars(node):
    return dict(
        ansible_connection="local",
        ansible_python_interpreter=sys.executable,
        dbarch_login_host=node.host,
        dbarch_login_port=node.port,
        dbarch_login_user=node.user,
        dbarch_login_password=node.password,
        dbarch_login_db="postgres",
        dbarch_data_dir=node.data_dir,
    )


@pytest.fixture(scope="module")
def loop(pg_major):
    workdir = harness.work_folder("dbarch-it-switchover-pgb-")
    nodes, bouncer = [], None
    try:
        a = harness.start_cluster(pg_major, workdir=workdir, name="a", settings=SETTINGS)
        nodes.append(a)
        nodes.append(harness.start_standby(a, "b", slot="b", settings=SETTINGS))
        passwords = {APP: secrets.token_urlsafe(18), ADMIN: secrets.token_urlsafe(18)}
        with a.connect() as conn, conn.cursor() as cur:
            cur.execute("SET password_encryption = 'scram-sha-256'")
            for role, password in passwords.items():
                cur.execute("CREATE ROLE %s LOGIN PASSWORD %%s" % role, (password,))
            cur.execute("SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN (%s, %s)", (APP, ADMIN))
            secrets_by_role = dict(cur.fetchall())
        a.createdb(DB)
        a.query("ALTER DATABASE %s OWNER TO %s" % (DB, APP))
        a.query("CREATE TABLE sw_load (id bigserial PRIMARY KEY, v int)", dbname=DB)
        a.query("ALTER TABLE sw_load OWNER TO %s" % APP, dbname=DB)
        bouncer = Bouncer(os.path.join(workdir, "pgbouncer"), a, secrets_by_role)
        yield workdir, nodes[0], nodes[1], bouncer, passwords
    finally:
        if bouncer is not None:
            bouncer.stop()
        for node in reversed(nodes):
            node.stop()
        harness.remove_folder(workdir)


def start_pgbench(node, bouncer, password, folder):
    os.makedirs(folder)
    script = os.path.join(folder, "insert.sql")
    with open(script, "w") as out:
        out.write(PGBENCH_SCRIPT)
    env = lc.library_env(node.bindir)
    env.update(os.environ, PGPASSWORD=password)
    argv = [os.path.join(node.bindir, "pgbench"), "-n", "-f", script, "-c", "4", "-j", "2"]
    argv += ["-T", str(PGBENCH_SECONDS), "--failures-detailed", "-l"]
    argv += ["--log-prefix", os.path.join(folder, "pgbench_log"), "-h", "127.0.0.1", "-p", str(bouncer.port)]
    argv += ["-U", APP, DB]
    return subprocess.Popen(
        argv, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def rows(node):
    return node.query("SELECT count(*) FROM sw_load", dbname=DB)[0][0]


def test_switchover_through_pgbouncer_under_pgbench_fails_no_transaction(loop):
    workdir, a, b, bouncer, passwords = loop
    before = rows(a)
    bench = start_pgbench(a, bouncer, passwords[APP], os.path.join(workdir, "pgbench"))
    try:
        assert retry.poll(lambda: True if rows(a) >= before + 50 else None, 30), "pgbench wrote nothing"
        inventory = dict(
            all=dict(
                children=dict(
                    primary=dict(hosts={"a": host_vars(a)}), replicas=dict(hosts={"b": host_vars(b)})
                )
            )
        )
        pgbouncer = [
            dict(
                config_file=bouncer.databases,
                admin_host="127.0.0.1",
                admin_port=bouncer.port,
                admin_user=ADMIN,
                admin_password=passwords[ADMIN],
                pools={DB: {"dbname": DB}},
            )
        ]
        dest = os.path.join(workdir, "reports")
        run = harness.run_playbook(
            harness.REPO_ROOT / "playbooks" / "switchover.yml",
            inventory=inventory,
            extra_vars=dict(switchover_target="b", switchover_report_dest=dest, dbarch_pgbouncer=pgbouncer),
        )
        out, err = bench.communicate(timeout=PGBENCH_SECONDS + 120)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
    run.assert_ok()
    assert passwords[ADMIN] not in run.stdout + run.stderr and a.password not in run.stdout + run.stderr

    # pgbench: exit 0, no client aborted, no failed transaction (its summary and its per-transaction log).
    assert bench.returncode == 0, "pgbench failed (exit %s):\n%s\n%s" % (bench.returncode, out, err)
    assert "aborted" not in out + err, out + err
    assert re.search(r"^number of failed transactions: 0 \(", out, re.M), out
    processed = int(re.search(r"^number of transactions actually processed: (\d+)", out, re.M).group(1))
    logged = []
    for path in glob.glob(os.path.join(workdir, "pgbench", "pgbench_log*")):
        with open(path) as handle:
            logged += handle.read().splitlines()
    assert len(logged) == processed

    # Every transaction pgbench counted is a row on b; the pool now reaches b.
    with open(os.path.join(dest, "b", "switchover.json"), encoding="utf-8") as fh:
        summary = json.load(fh)["summary"]
    assert summary["status"] == "switched" and summary["pgbouncer"] == [DB]
    assert [p["phase"] for p in summary["phases"]][2:4] == ["pause", "stop"]
    assert rows(b) - before == processed
    assert "port=%d" % b.port in lc.read_text(bouncer.databases)
    conn = psycopg2.connect(
        host="127.0.0.1", port=bouncer.port, dbname=DB, user=APP, password=passwords[APP], connect_timeout=10
    )
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_is_in_recovery(), inet_server_port()")
            assert cur.fetchall() == [(False, b.port)]
    finally:
        conn.close()
