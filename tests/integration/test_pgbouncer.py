"""roles/pgbouncer and the pgbouncer modules with Debian's PgBouncer 1.18 in front of a real primary and
standby.

The role deploys an instance in the test's folder (pgbouncer_service user: `pgbouncer -d <ini>` as the
postgres OS user) in front of a primary P and its streaming standby S, both with TLS: PgBouncer logs in to
PostgreSQL as its auth user with a client certificate (pg_hba.conf `hostssl ... cert`), the only way
PgBouncer 1.18 has to keep that role's password out of its files. Then:

- a login role with a SCRAM password gets in through PgBouncer (auth_query), a wrong password does not, a
  superuser does not (the lookup function never answers for one);
- no password is in any file the role wrote, and the auth file holds one SCRAM secret (0600);
- the admin console answers the admin role only;
- a second run changes nothing, and neither does a check-mode run; check mode on a new instance writes
  nothing;
- the module repoints a pool with PAUSE, RELOAD, RESUME, does nothing for the same target, and when a PAUSE
  times out (a transaction in flight) resumes the pool and repoints nothing; pgbouncer_info reads the console;
- switchover under load: pgbench writes through the read-write pool in transaction mode while the module
  PAUSEs it, P stops cleanly, S is promoted, and the module repoints the pool, RELOADs and RESUMEs: pgbench
  reports no failed transaction, and every transaction it counted is a row on S.
"""

import glob
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess

import psycopg2
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import retry
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer as eng
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer_config as cfg

AUTH_USER = "dbarch_pgbouncer"
TLS_HBA = "hostssl all %s 127.0.0.1/32 cert" % AUTH_USER
DB = "appdb"
APP = "pgb_app"
PGBENCH_SECONDS = 15
# Each transaction holds its server connection a few milliseconds, so a stop of the primary without PAUSE
# catches transactions in flight (pgbench's clients abort); with PAUSE none is in flight.
PGBENCH_SCRIPT = (
    "\\set v random(1, 1000000)\n"
    "BEGIN;\n"
    "INSERT INTO pgb_load (v) VALUES (:v);\n"
    "SELECT pg_sleep(0.005);\n"
    "COMMIT;\n"
)


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_tls(folder):
    """A private CA, a server certificate for 127.0.0.1 and a client certificate for AUTH_USER (CN),
    readable by the postgres OS user only (PostgreSQL and PgBouncer both run as it)."""
    os.makedirs(folder)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_key, ca_crt = os.path.join(folder, "ca.key"), os.path.join(folder, "ca.crt")
    _openssl(
        "req", "-x509", *ec, "-days", "2", "-subj", "/CN=dbarch test CA", "-keyout", ca_key, "-out", ca_crt
    )
    for name, subject, extension in (
        ("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,IP:127.0.0.2\n"),
        ("client", "/CN=%s" % AUTH_USER, "basicConstraints=CA:FALSE\n"),
    ):
        key, csr, crt, ext = (
            os.path.join(folder, name + suffix) for suffix in (".key", ".csr", ".crt", ".ext")
        )
        with open(ext, "w") as out:
            out.write(extension)
        _openssl("req", *ec, "-subj", subject, "-keyout", key, "-out", csr)
        _openssl(
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca_crt,
            "-CAkey",
            ca_key,
            "-days",
            "2",
            "-out",
            crt,
            "-extfile",
            ext,
        )
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        shutil.chown(path, "postgres", "postgres")
        os.chmod(path, 0o600)
    shutil.chown(folder, "postgres", "postgres")
    return {
        "ca": ca_crt,
        "cert": os.path.join(folder, "client.crt"),
        "key": os.path.join(folder, "client.key"),
    }


class Topology:
    """P (primary) and S (its standby) with TLS, an app role and database, and the PgBouncer instance the role
    deployed in front of them."""

    def __init__(self, workdir, primary, standby, tls):
        self.workdir = workdir
        self.primary = primary
        self.standby = standby
        self.tls = tls
        self.admin_password = secrets.token_urlsafe(18)
        self.app_password = secrets.token_urlsafe(18)
        self.instance = os.path.join(workdir, "pgbouncer")
        self.port = lc.free_port()
        self.first_run = None

    @property
    def pidfile(self):
        return os.path.join(self.instance, "pgbouncer-it.pid")

    def role_vars(self, **overrides):
        return dict(self._role_vars(), **overrides)

    def _role_vars(self):
        return {
            "pgbouncer_service": "user",
            "pgbouncer_name": "it",
            "pgbouncer_config_dir": self.instance,
            "pgbouncer_listen_port": self.port,
            "pgbouncer_databases": [DB],
            "pgbouncer_primary": {"host": "127.0.0.1", "port": self.primary.port},
            # S twice, at two addresses on one port (with verify-full the read-only pool goes to the first)
            "pgbouncer_replicas": [
                {"name": "s", "host": "127.0.0.1", "port": self.standby.port},
                {"name": "s2", "host": "127.0.0.2", "port": self.standby.port},
            ],
            "pgbouncer_admin_password": self.admin_password,
            "pgbouncer_server_tls_ca_file": self.tls["ca"],
            "pgbouncer_server_tls_cert_file": self.tls["cert"],
            "pgbouncer_server_tls_key_file": self.tls["key"],
            "pgbouncer_install": False,
        }

    def role_play(self, name="PgBouncer role", check_mode=False, **overrides):
        keywords = {"check_mode": True} if check_mode else {}
        return harness.play(
            {
                "name": "PgBouncer role",
                "ansible.builtin.include_role": {"name": "dbarch.postgresql.pgbouncer"},
            },
            pg=self.primary,
            name=name,
            vars=self.role_vars(**overrides),
            **keywords,
        )

    def run_role(self, **overrides):
        return harness.run_playbook(self.role_play(**overrides))

    def connect(self, dbname=DB, user=APP, password=None, timeout=10):
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            dbname=dbname,
            user=user,
            password=self.app_password if password is None else password,
            connect_timeout=timeout,
            application_name="dbarch.tests",
        )
        conn.autocommit = True
        return conn

    def console(self):
        return eng.Console("127.0.0.1", self.port, AUTH_USER, self.admin_password)

    def stop_pgbouncer(self):
        raw = lc.read_text(self.pidfile)
        if raw and raw.strip().isdigit():
            subprocess.run(["kill", "-TERM", raw.strip()], check=False)
            retry.poll(lambda: None if os.path.exists(self.pidfile) else True, 10)


def _read(path):
    with open(path) as handle:
        return handle.read()


def _query(conn, statement, params=None):
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall()


@pytest.fixture(scope="module")
def topo(pg_major):
    workdir = harness.work_folder("dbarch-it-pgbouncer-")
    topology = None
    try:
        tls = make_tls(os.path.join(workdir, "tls"))
        settings = {
            "ssl": True,
            "ssl_cert_file": os.path.join(workdir, "tls", "server.crt"),
            "ssl_key_file": os.path.join(workdir, "tls", "server.key"),
            "ssl_ca_file": tls["ca"],
            "listen_addresses": "127.0.0.1,127.0.0.2",
        }
        primary = harness.start_cluster(
            pg_major, workdir=workdir, name="p", settings=settings, hba_extra=[TLS_HBA]
        )
        standby = harness.start_standby(primary, "s", slot="pgb_s", settings=settings)
        standby.cluster.write_hba([TLS_HBA])
        standby.cluster.reload()
        topology = Topology(workdir, primary, standby, tls)
        with primary.connect() as conn, conn.cursor() as cur:
            cur.execute("SET password_encryption = 'scram-sha-256'")
            cur.execute("CREATE ROLE %s LOGIN PASSWORD %%s" % APP, (topology.app_password,))
        primary.createdb(DB)
        primary.query("ALTER DATABASE %s OWNER TO %s" % (DB, APP))
        primary.query("CREATE TABLE pgb_load (id bigserial PRIMARY KEY, v int)", dbname=DB)
        primary.query("ALTER TABLE pgb_load OWNER TO %s" % APP, dbname=DB)
        topology.first_run = topology.run_role()
        topology.first_run.assert_ok()
        yield topology
    finally:
        if topology is not None:
            topology.stop_pgbouncer()
        harness.remove_folder(workdir)


# -- the role -------------------------------------------------------------------------------


def test_role_deploys_pools_that_reach_the_right_servers(topo):
    run = topo.first_run
    targets = cfg.read_targets(_read(os.path.join(topo.instance, "databases.ini")))
    assert targets == {
        DB: {"host": "127.0.0.1", "port": str(topo.primary.port), "dbname": DB},
        DB + "_ro": {"host": "127.0.0.1", "port": str(topo.standby.port), "dbname": DB},
        DB + "_ro_s": {"host": "127.0.0.1", "port": str(topo.standby.port), "dbname": DB},
        DB + "_ro_s2": {"host": "127.0.0.2", "port": str(topo.standby.port), "dbname": DB},
    }
    checks = run.task("Log in to every pool through PgBouncer")["result"]["checks"]
    assert checks == {
        DB: {"ok": True, "in_recovery": False},
        DB + "_ro": {"ok": True, "in_recovery": True},
        DB + "_ro_s": {"ok": True, "in_recovery": True},
        DB + "_ro_s2": {"ok": True, "in_recovery": True},
    }
    why = run.task("Say why the read-only pool does not spread over the replicas")["result"]["msg"]
    assert "verify-full" in why and "goes to s only" in why
    with topo.console() as console:
        config = {row["key"]: row["value"] for row in console.show("CONFIG")}
    assert config["pool_mode"] == "transaction"
    assert config["auth_type"] == "scram-sha-256"
    assert config["auth_user"] == AUTH_USER
    assert config["admin_users"] == AUTH_USER
    assert config["auth_query"] == "SELECT uname, phash FROM pgbouncer.user_lookup($1)"


def test_a_scram_login_role_gets_in_through_auth_query(topo):
    for alias, in_recovery in ((DB, False), (DB + "_ro", True), (DB + "_ro_s", True)):
        with topo.connect(alias) as conn:
            assert _query(conn, "SELECT current_user, pg_is_in_recovery()") == [(APP, in_recovery)]
    with pytest.raises(psycopg2.OperationalError, match="authentication failed"):
        topo.connect(password="not-" + topo.app_password)
    # the lookup function never answers for a superuser: the superuser's right password does not get in
    with pytest.raises(psycopg2.OperationalError, match="no such user"):
        topo.connect(user=topo.primary.user, password=topo.primary.password)
    # with auth_type scram-sha-256 a role whose password is stored as md5 cannot get in
    with topo.primary.connect() as conn, conn.cursor() as cur:
        cur.execute("SET password_encryption = 'md5'")
        cur.execute("DROP ROLE IF EXISTS pgb_md5")
        cur.execute("CREATE ROLE pgb_md5 LOGIN PASSWORD %s", (topo.app_password,))
    with pytest.raises(psycopg2.OperationalError, match="authentication failed"):
        topo.connect(user="pgb_md5")
    # nobody but the auth user may run the lookup function
    with topo.connect() as conn, pytest.raises(psycopg2.errors.InsufficientPrivilege):
        _query(conn, "SELECT * FROM pgbouncer.user_lookup(%s)", (APP,))


def test_no_password_in_any_file_the_role_wrote(topo):
    passwords = [topo.admin_password, topo.app_password, topo.primary.password]
    files = [p for p in glob.glob(os.path.join(topo.instance, "**"), recursive=True) if os.path.isfile(p)]
    assert {os.path.basename(p) for p in files} >= {"pgbouncer.ini", "databases.ini", "userlist.txt"}
    for path in files:
        with open(path, "rb") as handle:
            content = handle.read()
        for password in passwords:
            assert password.encode() not in content, "a password is in %s" % path
    userlist = os.path.join(topo.instance, "userlist.txt")
    entries = cfg.parse_userlist(_read(userlist))
    assert [name for name, _secret in entries] == [AUTH_USER]
    assert re.match(r"^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$", entries[0][1])
    st = os.stat(userlist)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert pwd.getpwuid(st.st_uid).pw_name == "postgres"
    # the role's output does not carry them either
    for password in passwords:
        assert password not in topo.first_run.stdout


def test_admin_console_answers_the_admin_role_only(topo):
    with topo.console() as console:
        assert console.version().startswith("PgBouncer 1.")
        assert any(row["database"] == DB for row in console.show("POOLS"))
    with pytest.raises(eng.PgBouncerError, match="authentication failed"):
        eng.Console("127.0.0.1", topo.port, AUTH_USER, "wrong-" + topo.admin_password).connect()
    # a login role that is not an admin gets no console (PgBouncer 1.18 never answers it: the login times out)
    with pytest.raises(psycopg2.OperationalError):
        topo.connect("pgbouncer", timeout=2)
    # and the admin is PgBouncer's admin only: its password is not a PostgreSQL password
    with pytest.raises(psycopg2.OperationalError, match="authentication failed"):
        psycopg2.connect(
            host="127.0.0.1", port=topo.primary.port, dbname=DB, user=AUTH_USER, password=topo.admin_password
        )


def test_connections_info_reads_the_pools_through_the_console(topo):
    """connections_info with pgbouncer=true: the server's sessions and PgBouncer's SHOW POOLS, summed per
    database (the console's only command)."""
    conn = topo.connect(DB)
    try:
        _query(conn, "SELECT 1")
        task = harness.task(
            "connections_info",
            "conns",
            pgbouncer=True,
            admin_port=topo.port,
            admin_user=AUTH_USER,
            admin_password=topo.admin_password,
        )
        run = harness.run_playbook(harness.play(task, pg=topo.primary)).assert_ok()
    finally:
        conn.close()
    result = run.task("conns")["result"]
    assert result["pgbouncer"]["commands"] == ["SHOW POOLS"]
    pool = result["pgbouncer"]["pools"][DB]
    assert {"cl_active", "cl_waiting", "sv_active", "sv_idle", "maxwait"} <= set(pool)
    # No client waits in this pool, so no finding names it (another test of the module may have left a
    # client waiting in another pool of the same PgBouncer: that one is reported, rightly).
    waiting = [f for f in result["findings"] if f["rule"] == "CONN-POOL-001"]
    assert pool["cl_waiting"] == 0 and "pgbouncer database %s" % DB not in [f["object"] for f in waiting]
    for finding in waiting:
        assert int(finding["evidence"]["cl_waiting"]) > 0, finding
    assert result["by_user"].get(AUTH_USER, 0) + result["by_user"].get(APP, 0) >= 1
    assert topo.admin_password not in run.stdout + run.stderr


def test_second_run_and_check_mode_change_nothing(topo):
    """One ansible-playbook run of three plays: the role again, the role in check mode, and the role in check
    mode for a new instance (another folder and port)."""
    names = ("again", "checked", "fresh")
    before = {name: _read(os.path.join(topo.instance, name)) for name in ("pgbouncer.ini", "userlist.txt")}
    pid = lc.read_text(topo.pidfile)
    fresh = Topology(topo.workdir, topo.primary, topo.standby, topo.tls)
    fresh.instance = os.path.join(topo.workdir, "pgbouncer-fresh")
    fresh.admin_password = topo.admin_password
    run = harness.run_playbook(
        topo.role_play("again")
        + topo.role_play("checked", check_mode=True)
        + fresh.role_play("fresh", check_mode=True)
    )
    run.assert_ok()
    changed = {
        name: [r["task"] for r in run.results if r["play"] == name and r["result"].get("changed")]
        for name in names
    }
    assert changed["again"] == [] and changed["checked"] == []
    assert {name: _read(os.path.join(topo.instance, name)) for name in before} == before
    assert lc.read_text(topo.pidfile) == pid, "PgBouncer was restarted"
    # the new instance: changes planned, nothing written
    assert "Write the pools" in changed["fresh"]
    assert not os.path.exists(fresh.instance)
    planned = [r["result"] for r in run.results if r["play"] == "fresh" and r["task"] == "Write the pools"][0]
    assert planned["file_changed"] and planned["after"][DB]["port"] == str(topo.primary.port)


# -- the modules ----------------------------------------------------------------------------------


def _module_task(topo, state, name=None, **options):
    options.update(state=state, admin_port=topo.port, admin_password=topo.admin_password)
    return harness.task("pgbouncer", name or "pgbouncer " + state, **options)


def _run_module(topo, state, **options):
    run = harness.run_playbook(harness.play(_module_task(topo, state, **options)))
    run.assert_ok()
    return run.task("pgbouncer " + state)["result"]


def test_repoint_pauses_reloads_resumes_and_is_idempotent(topo):
    """The read-only pool of S moved to P and back, one step each; check mode and a repeat change nothing."""
    pools_file = os.path.join(topo.instance, "databases.ini")
    alias = DB + "_ro_s"
    to_p = {alias: {"host": "127.0.0.1", "port": topo.primary.port, "dbname": DB}}
    to_s = {alias: {"host": "127.0.0.1", "port": topo.standby.port, "dbname": DB}}
    text_before = _read(pools_file)
    info = {"admin_port": topo.port, "admin_password": topo.admin_password}
    run = harness.run_playbook(
        harness.play(
            _module_task(topo, "present", "planned", config_file=pools_file, databases=to_p, check_mode=True),
            _module_task(topo, "present", "moved", config_file=pools_file, databases=to_p),
            _module_task(topo, "present", "again", config_file=pools_file, databases=to_p),
            harness.task("pgbouncer_info", "info", check_pools=[alias], pid_file=topo.pidfile, **info),
            _module_task(topo, "present", "back", config_file=pools_file, databases=to_s, pause=False),
            harness.task(
                "pgbouncer_info", "stopped?", pid_file=os.path.join(topo.workdir, "none.pid"), **info
            ),
        ),
        diff=True,
    )
    run.assert_ok()
    planned, moved, again, info, back, stopped = (
        run.task(n)["result"] for n in ("planned", "moved", "again", "info", "back", "stopped?")
    )
    # check mode: what would happen, only SHOW commands sent
    assert planned["changed"] and planned["paused"] == [alias] and planned["resumed"] == []
    assert planned["diff"]["after"] == "%s = host=127.0.0.1 port=%d dbname=%s\n" % (
        alias,
        topo.primary.port,
        DB,
    )
    assert all(c.startswith("SHOW") for c in planned["commands"]), planned["commands"]
    # the move: PAUSE, RELOAD, RESUME, and PgBouncer serves the new target
    assert (
        moved["changed"] and moved["paused"] == [alias] and moved["resumed"] == [alias] and moved["reloaded"]
    )
    assert [c for c in moved["commands"] if not c.startswith("SHOW")] == [
        "PAUSE %s" % alias,
        "RELOAD",
        "RESUME %s" % alias,
    ]
    assert moved["before"][alias]["port"] == str(topo.standby.port)
    assert moved["live_after"][alias]["port"] == str(topo.primary.port)
    # the same target again: nothing to do, nothing paused
    assert not again["changed"] and again["paused"] == [] and again["reloaded"] is False
    assert all(c.startswith("SHOW") for c in again["commands"])
    # pgbouncer_info: the pool now reaches the primary; running from the pid file
    assert info["running"] and info["pid"] == int(lc.read_text(topo.pidfile))
    assert info["checks"][alias] == {"ok": True, "in_recovery": False}
    assert info["version"].startswith("PgBouncer 1.")
    assert {row["name"] for row in info["databases"]} >= {DB, alias, "pgbouncer"}
    assert {"total_xact_count", "database"} <= set(info["stats"][0])
    assert info["config"]["pool_mode"] == "transaction"
    assert info["changed"] is False
    assert stopped["running"] is False and "version" not in stopped
    # back without a pause: RELOAD only
    assert back["changed"] and back["paused"] == [] and back["reloaded"]
    assert "PAUSE %s" % alias not in back["commands"]
    assert _read(pools_file) == text_before
    with topo.connect(alias) as conn:
        assert _query(conn, "SELECT pg_is_in_recovery()") == [(True,)]


def test_a_pause_that_times_out_resumes_and_repoints_nothing(topo):
    pools_file = os.path.join(topo.instance, "databases.ini")
    alias = DB + "_ro_s"
    text_before = _read(pools_file)
    held = topo.connect(alias)
    held.autocommit = False
    try:
        _query(held, "SELECT 1")  # a transaction in flight holds the pool's server connection
        run = harness.run_playbook(
            harness.play(
                _module_task(
                    topo,
                    "present",
                    "move",
                    config_file=pools_file,
                    databases={alias: {"host": "127.0.0.1", "port": topo.primary.port, "dbname": DB}},
                    pause_timeout=1,
                    ignore_errors=True,
                )
            )
        )
        result = run.task("move")["result"]
        assert result["failed"]
        assert "PAUSE %s did not finish within 1" % alias in result["msg"]
        assert "PgBouncer was resumed (RESUME %s)" % alias in result["msg"]
        assert result["resumed_after_failure"] == [alias]
        assert [c for c in result["commands"] if not c.startswith("SHOW")] == [
            "PAUSE %s" % alias,
            "RESUME %s" % alias,
        ]
        assert _read(pools_file) == text_before
        with topo.console() as console:
            row = console.databases()[alias]
        assert (row["paused"], row["port"]) == (0, topo.standby.port)
        held.commit()
        assert _query(held, "SELECT pg_is_in_recovery()") == [(True,)]
    finally:
        held.close()


def test_a_failure_after_the_pause_resumes_and_says_so(topo):
    """The pools file cannot be written (its folder is missing) after the PAUSE: the module resumes the pool,
    never reloads, and says so."""
    alias = DB + "_ro_s"
    run = harness.run_playbook(
        harness.play(
            _module_task(
                topo,
                "present",
                "move",
                config_file=os.path.join(topo.workdir, "missing", "databases.ini"),
                databases={alias: {"host": "127.0.0.1", "port": topo.primary.port, "dbname": DB}},
                ignore_errors=True,
            )
        )
    )
    result = run.task("move")["result"]
    assert result["failed"]
    assert "No such file or directory" in result["msg"]
    assert "PgBouncer was resumed (RESUME %s)" % alias in result["msg"]
    assert result["resumed"] == [alias]
    assert [c for c in result["commands"] if not c.startswith("SHOW")] == [
        "PAUSE %s" % alias,
        "RESUME %s" % alias,
    ]
    with topo.console() as console:
        row = console.databases()[alias]
    assert (row["paused"], row["port"]) == (0, topo.standby.port)
    with topo.connect(alias) as conn:
        assert _query(conn, "SELECT pg_is_in_recovery()") == [(True,)]


def _ro_addresses(topo, count=3):
    """The server addresses behind ``count`` concurrent transactions on the read-only pool."""
    conns = [topo.connect(DB + "_ro") for _attempt in range(count)]
    try:
        addresses = set()
        for conn in conns:
            conn.autocommit = False  # each holds its server connection until the end of its transaction
            addresses.add(_query(conn, "SELECT host(inet_server_addr())")[0][0])
        return addresses
    finally:
        for conn in conns:
            conn.close()


def test_read_only_pool_spreads_over_a_host_list_with_verify_ca(topo):
    """With verify-ca the role makes the read-only pool a host list, and PgBouncer 1.18 opens its new
    server connections to each host in turn; the role repoints the running PgBouncer (PAUSE, RELOAD, RESUME).
    It leaves the instance so: the tests after it do not use that pool."""
    spread = topo.run_role(pgbouncer_server_tls_sslmode="verify-ca")
    spread.assert_ok()
    pools = spread.task("Write the pools")["result"]
    assert pools["changed"] and pools["paused"] == [DB + "_ro"] and pools["resumed"] == [DB + "_ro"]
    assert pools["live_after"][DB + "_ro"]["host"] == "127.0.0.1,127.0.0.2"
    assert _ro_addresses(topo) == {"127.0.0.1", "127.0.0.2"}


# -- switchover under load -------------------------------------------------------------------------


def _start_pgbench(topo, folder):
    script = os.path.join(folder, "insert.sql")
    with open(script, "w") as out:
        out.write(PGBENCH_SCRIPT)
    env = lc.library_env(topo.primary.bindir)
    env.update(os.environ, PGPASSWORD=topo.app_password)
    argv = [
        os.path.join(topo.primary.bindir, "pgbench"),
        "-n",
        "-f",
        script,
        "-c",
        "4",
        "-j",
        "2",
        "-T",
        str(PGBENCH_SECONDS),
        "--failures-detailed",
        "-l",
        "--log-prefix",
        os.path.join(folder, "pgbench_log"),
        "-h",
        "127.0.0.1",
        "-p",
        str(topo.port),
        "-U",
        APP,
        DB,
    ]
    return subprocess.Popen(
        argv, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _count(cluster):
    return cluster.query("SELECT count(*) FROM pgb_load", dbname=DB)[0][0]


def test_switchover_under_load_fails_no_transaction(topo):
    primary, standby = topo.primary, topo.standby
    folder = os.path.join(topo.workdir, "pgbench")
    os.makedirs(folder)
    rows_before = _count(primary)
    bench = _start_pgbench(topo, folder)
    try:
        assert retry.poll(lambda: True if _count(primary) >= rows_before + 50 else None, 30), (
            "pgbench wrote nothing"
        )
        # 1. hold the writers: PAUSE waits for the transactions in flight, new ones queue in PgBouncer
        paused = _run_module(topo, "paused", aliases=[DB])
        assert paused["paused"] == [DB] and paused["changed"]
        # 2. the old primary stops cleanly (its last WAL goes to the standby), 3. the standby is promoted
        rows_on_p = _count(primary)
        primary.cluster.stop(mode="fast")
        assert retry.poll(lambda: True if _count(standby) == rows_on_p else None, 30), (
            "S did not replay P's WAL"
        )
        standby.query("SELECT pg_promote(wait => true)")
        # 4. repoint the read-write pool at S, RELOAD, RESUME
        resumed = _run_module(
            topo,
            "resumed",
            config_file=os.path.join(topo.instance, "databases.ini"),
            databases={DB: {"host": "127.0.0.1", "port": standby.port, "dbname": DB}},
            paused_at=paused["paused_at"],
        )
        out, err = bench.communicate(timeout=PGBENCH_SECONDS + 120)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
    assert resumed["resumed"] == [DB] and resumed["reloaded"]
    assert resumed["live_after"][DB]["port"] == str(standby.port)
    assert resumed["paused_seconds"] > 0

    # pgbench: exit 0, no client aborted, 0 failed transactions (per its summary and its per-transaction log)
    assert bench.returncode == 0, "pgbench failed (exit %s):\n%s\n%s" % (bench.returncode, out, err)
    assert "aborted" not in out + err, out + err
    assert re.search(r"^number of failed transactions: 0 \(", out, re.M), out
    processed = int(re.search(r"^number of transactions actually processed: (\d+)", out, re.M).group(1))
    logged = []
    for path in glob.glob(os.path.join(folder, "pgbench_log*")):
        with open(path) as handle:
            logged += handle.read().splitlines()
    assert len(logged) == processed
    assert not [line for line in logged if "failed" in line or "serialization" in line or "deadlock" in line]

    # every transaction pgbench counted is a row on S, and the writers went on after RESUME (on S)
    rows_on_s = _count(standby)
    assert rows_on_s - rows_before == processed
    assert rows_on_s > rows_on_p, (
        "pgbench ended before RESUME: nothing was written through the repointed pool"
    )
    with topo.connect() as conn:
        assert _query(conn, "SELECT pg_is_in_recovery(), inet_server_port()") == [(False, standby.port)]
