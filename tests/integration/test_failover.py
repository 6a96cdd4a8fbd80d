# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/failover.yml through ansible-playbook on three real clusters (PostgreSQL 15 and 18).

One group per major (module-scoped fixture ``group``): n1 the primary, n2 and n3 its standbys (slots
n2 and n3, application_name = the host's name), every node rewindable. The tests run in file order and
each starts from the state the previous one left (``group.primary`` says which node is the primary):

1. guards: while n1 is up the playbook refuses and changes nothing; a server that answers but refuses
   the login is alive too;
2. synchronous replication (``ANY 1 (n2, n3)``, synchronous_commit on): a client commits rows with known
   ids, n1 is killed (SIGSTOP then SIGKILL of every process) mid-load, the playbook promotes the most
   advanced standby, the other follows it, the Route 53 record in moto and PgBouncer's write pool point at
   it: every acknowledged id is on the new primary. n1 is then rejoined (playbooks/rejoin.yml), and streams;
3. asynchronous replication: the standbys stop receiving, rows are committed on the primary only, the
   replication-lag runbook records the primary's LSN, the primary is killed; the playbook (the inventory
   is stale now) promotes another node and reports WAL lost past the promoted LSN; the killed node,
   rejoined, reports as lost exactly the transactions of the missing rows (by xid).
"""

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time

import boto3
import psycopg2
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

PLAYBOOK = harness.REPO_ROOT / "playbooks" / "failover.yml"
RUNBOOK = harness.REPO_ROOT / "playbooks" / "runbook_replication_lag.yml"
REJOIN = harness.REPO_ROOT / "playbooks" / "rejoin.yml"
REWINDABLE = {"wal_log_hints": "on", "full_page_writes": "on", "wal_keep_size": "64MB"}
NAMES = ("n1", "n2", "n3")
ZONE = "example.com"
RECORD = "db.example.com"
PGBOUNCER = "/usr/sbin/pgbouncer"
BOUNCER_ROLE = "dbarch_pgbouncer"


class Group:
    def __init__(self, workdir, nodes):
        self.workdir = workdir
        self.nodes = nodes
        self.primary = "n1"
        self.reports = os.path.join(workdir, "reports")

    def node(self, name):
        return self.nodes[name]

    def standbys(self):
        return [n for n in NAMES if n != self.primary]


@pytest.fixture(scope="module")
def group(pg_major):
    workdir = harness.work_folder("dbarch-it-failover-")
    try:
        n1 = harness.start_cluster(
            pg_major, workdir=workdir, name="n1", settings=dict(REWINDABLE, cluster_name="n1")
        )
        nodes = {"n1": n1}
        for name in ("n2", "n3"):
            nodes[name] = harness.start_standby(
                n1, name, slot=name, settings=dict(REWINDABLE, cluster_name=name)
            )
        n1.query("CREATE TABLE acked (id int PRIMARY KEY, xid text)")
        yield Group(workdir, nodes)
    finally:
        harness.remove_folder(workdir)


@pytest.fixture
def zone(moto):
    """A new hosted zone in moto's server with db.example.com pointing at n1 (10.0.0.1)."""
    client = boto3.client("route53", endpoint_url=moto, **_aws())
    zone_id = client.create_hosted_zone(Name=ZONE, CallerReference=str(time.time()))["HostedZone"]["Id"]
    client.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": RECORD,
                        "Type": "A",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": "10.0.0.1"}],
                    },
                }
            ]
        },
    )
    return client, zone_id.split("/")[-1], moto


def _aws():
    return dict(
        aws_access_key_id=harness.S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=harness.S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=harness.S3_CREDENTIALS["AWS_DEFAULT_REGION"],
    )


class Bouncer:
    """Debian's PgBouncer run as postgres in front of ``node``: the write pool ``postgres``, SCRAM secrets
    in its auth file, ``BOUNCER_ROLE`` its admin (and the client of the test)."""

    def __init__(self, folder, node):
        self.password = secrets.token_urlsafe(18)
        with node.connect() as conn, conn.cursor() as cur:
            cur.execute("SET password_encryption = 'scram-sha-256'")
            cur.execute("CREATE ROLE %s LOGIN PASSWORD %%s" % BOUNCER_ROLE, (self.password,))
            cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (BOUNCER_ROLE,))
            secret = cur.fetchone()[0]
        self.folder, self.port = folder, lc.free_port()
        self.databases = os.path.join(folder, "databases.ini")
        self.pidfile = os.path.join(folder, "pgbouncer.pid")
        os.makedirs(folder)
        files = {
            "pgbouncer.ini": "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir = %s\n"
            "auth_type = scram-sha-256\nauth_file = %s/userlist.txt\nadmin_users = %s\n"
            "pool_mode = transaction\n"
            "server_login_retry = 1\npidfile = %s\nlogfile = %s/pgbouncer.log\n%%include %s\n"
            % (self.port, folder, folder, BOUNCER_ROLE, self.pidfile, folder, self.databases),
            "databases.ini": "[databases]\npostgres = host=127.0.0.1 port=%d dbname=postgres\n" % node.port,
            "userlist.txt": '"%s" "%s"\n' % (BOUNCER_ROLE, secret),
        }
        for name, text in files.items():
            with open(os.path.join(folder, name), "w") as out:
                out.write(text)
            os.chmod(os.path.join(folder, name), 0o600)
        subprocess.run(["chown", "-R", "postgres:postgres", folder], check=True)
        subprocess.run(
            ["runuser", "-u", "postgres", "--", PGBOUNCER, "-d", os.path.join(folder, "pgbouncer.ini")],
            check=True,
        )
        wait_until(lambda: os.path.exists(self.pidfile), "PgBouncer to start", 10)

    def server(self):
        """(in recovery, port) of the server a query through the pool reaches."""
        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, dbname="postgres", user=BOUNCER_ROLE, password=self.password
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_is_in_recovery(), current_setting('port')::int")
                return cur.fetchone()
        finally:
            conn.close()

    def stop(self):
        with open(self.pidfile) as handle:
            os.kill(int(handle.read().strip()), signal.SIGTERM)


# -- helpers -------------------------------------------------------------------------------------
def inventory(group, primary="n1", password=None):
    """The playbooks' inventory: ``primary`` in group primary, the others in replicas."""

    def host(name, index):
        node = group.node(name)
        return dict(
            ansible_connection="local",
            ansible_python_interpreter=sys.executable,
            dbarch_login_host=node.host,
            dbarch_login_port=node.port,
            dbarch_login_user=node.user,
            dbarch_login_password=(password or {}).get(name, node.password),
            dbarch_login_db="postgres",
            dbarch_data_dir=node.data_dir,
            dbarch_bindir=node.bindir,
            dbarch_become=False,
            dbarch_dns_value="10.0.0.%d" % index,
        )

    hosts = {name: host(name, i) for i, name in enumerate(NAMES, 1)}
    return dict(
        all=dict(
            children=dict(
                primary=dict(hosts={primary: hosts[primary]}),
                replicas=dict(hosts={n: v for n, v in hosts.items() if n != primary}),
            )
        )
    )


def failover(group, primary="n1", password=None, check=False, **extra):
    extra_vars = dict(failover_report_dest=group.reports, failover_check_interval=0.5)
    extra_vars.update(extra)
    return harness.run_playbook(
        PLAYBOOK,
        inventory=inventory(group, primary, password),
        extra_vars=extra_vars,
        env=harness.S3_CREDENTIALS,
        check=check,
    )


def report(group, host, name="failover"):
    with open(os.path.join(group.reports, host, name + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


def in_recovery(node):
    return node.query("SELECT pg_is_in_recovery()")[0][0]


def receiver(node):
    rows = node.query("SELECT status, sender_port FROM pg_stat_wal_receiver")
    return rows[0] if rows else None


def wait_until(check, what, seconds=60):
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.1)


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def kill(node):
    """A crash: every process of the server stopped at once (SIGSTOP), then SIGKILL."""
    pid = node.cluster.pid()
    assert pid, "%s is not running" % node
    procs = [pid] + _children(pid)
    for proc in procs:
        os.kill(proc, signal.SIGSTOP)
    procs = [pid] + _children(pid)
    for proc in procs:
        os.kill(proc, signal.SIGKILL)
    wait_until(lambda: not any(os.path.exists("/proc/%d" % p) for p in procs), "the killed processes to go")


def rejoin(group, name):
    """playbooks/rejoin.yml -e rejoin_host=<name> (the inventory as stale as it is after the failovers);
    returns the standby module's result (action, upstream, lost_transactions)."""
    run = harness.run_playbook(
        REJOIN,
        inventory=inventory(group),
        extra_vars=dict(rejoin_host=name, rejoin_report_dest=group.reports),
    )
    run.assert_ok()
    return run.task(
        "Make the node a streaming standby of the primary (rewound if its history left the primary's)"
    )["result"]


class Writer(threading.Thread):
    """Commits one row per transaction (ids from ``first``) on ``node`` until the server goes; keeps the
    ids (and xids) whose COMMIT returned."""

    def __init__(self, node, first, settings=None, limit=None):
        super().__init__(daemon=True)
        self.node, self.next_id, self.settings, self.limit = node, first, settings or {}, limit
        self.acked = {}
        self.error = None
        self.stop = threading.Event()

    def run(self):
        try:
            conn = psycopg2.connect(connect_timeout=5, **self.node.dsn())
            conn.autocommit = True
            with conn.cursor() as cur:
                for name, value in self.settings.items():
                    cur.execute("SELECT set_config(%s, %s, false)", (name, value))
                while not self.stop.is_set() and len(self.acked) < (self.limit or float("inf")):
                    cur.execute("BEGIN")
                    cur.execute(
                        "INSERT INTO acked VALUES (%s, pg_current_xact_id()::text) RETURNING xid",
                        (self.next_id,),
                    )
                    xid = cur.fetchone()[0]
                    cur.execute("COMMIT")
                    self.acked[self.next_id] = xid
                    self.next_id += 1
        except psycopg2.Error as exc:
            self.error = exc


def ids_on(node, ids):
    rows = node.query("SELECT id FROM acked WHERE id = ANY(%s)", (list(ids),))
    return {r[0] for r in rows}


# -- 1. guards -------------------------------------------------------------------------------------
def test_refuses_while_the_primary_answers_and_changes_nothing(group):
    n1 = group.node("n1")
    run = failover(group)
    assert run.rc != 0
    failed = [r["result"].get("msg", "") for r in run.failed()]
    assert any(
        "Failover refused, nothing was changed" in m and "n1 is out of recovery" in m for m in failed
    ), failed
    assert [in_recovery(group.node(n)) for n in NAMES] == [False, True, True]
    assert all(receiver(group.node(n)) == ("streaming", n1.port) for n in ("n2", "n3"))
    refused = report(group, "n1", "failover_refused")["summary"]
    assert refused["status"] == "refused" and refused["changed"] == "nothing"
    assert refused["primary_lsn"]  # what a later failover reports its RPO against

    # A scheduled "fail over if needed" job: the same state is no failure, nothing changes, and the
    # refusal report above is left as it was.
    before = report(group, "n1", "failover_refused")
    quiet = failover(group, failover_fail_when_not_needed=False)
    quiet.assert_ok()
    assert quiet.changed_count() == 0, [r["task"] for r in quiet.results if r["result"].get("changed")]
    assert "Nothing to fail over: n1 is out of recovery" in quiet.stdout
    assert report(group, "n1", "failover_refused") == before
    assert [in_recovery(group.node(n)) for n in NAMES] == [False, True, True]

    # A server that answers but refuses the login is alive: failover_info's checks stop at the first.
    run = failover(group, password={"n1": "not-the-password"})
    assert run.rc != 0
    found = run.task("Confirm that the old primary is down, and choose the most advanced standby")["result"]
    assert not found["ready"] and not found["old_primary"]["down"]
    assert len(found["old_primary"]["checks"]) == 1 and found["old_primary"]["checks"][0]["answered"]
    assert "a server answers at the old primary n1" in found["refusal"]
    assert [in_recovery(group.node(n)) for n in NAMES] == [False, True, True]
    assert n1.password not in run.stdout + run.stderr


# -- 2. synchronous replication ----------------------------------------------------------------------
def test_sync_failover_keeps_every_acknowledged_commit(group, zone):
    client, zone_id, endpoint = zone
    n1 = group.node("n1")
    bouncer = Bouncer(os.path.join(group.workdir, "pgbouncer"), n1)
    assert bouncer.server() == (False, n1.port)
    n1.query("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (n2, n3)'")
    n1.query("ALTER SYSTEM SET synchronous_commit = 'on'")
    n1.query("SELECT pg_reload_conf()")
    wait_until(
        lambda: (
            sorted(n1.query("SELECT application_name, sync_state FROM pg_stat_replication"))
            == [("n2", "quorum"), ("n3", "quorum")]
        ),
        "n2 and n3 as quorum standbys",
    )
    writer = Writer(n1, 1, settings={"synchronous_commit": "on"})
    writer.start()
    wait_until(lambda: len(writer.acked) >= 200 or writer.error, "200 acknowledged commits")
    kill(n1)
    writer.join(30)
    assert not writer.is_alive() and writer.error is not None
    acked = dict(writer.acked)

    # Check mode: the detection and the promotion's guards run, nothing changes, and the run ends cleanly.
    dry = failover(group, check=True)
    dry.assert_ok()
    assert "Check mode, nothing changed" in dry.stdout
    # The one change reported is the promote task's "would promote" (check mode's changed).
    changed = [r["task"] for r in dry.results if r["result"].get("changed")]
    assert dry.changed_count() == 1 and changed == ["Promote it (guards, then pg_promote)"], changed
    assert [in_recovery(group.node(n)) for n in ("n2", "n3")] == [True, True]

    try:
        run = failover(
            group,
            failover_dns_record=RECORD,
            failover_dns_zone=zone_id,
            failover_dns_endpoint_url=endpoint,
            failover_pgbouncer_hosts=["n2"],
            failover_pgbouncer_databases=["postgres"],
            failover_pgbouncer_config_file=bouncer.databases,
            failover_pgbouncer_admin_host="127.0.0.1",
            failover_pgbouncer_admin_port=bouncer.port,
            failover_pgbouncer_admin_password=bouncer.password,
        )
        run.assert_ok()
        found = run.task("Confirm that the old primary is down, and choose the most advanced standby")[
            "result"
        ]
        # PgBouncer's write pool reaches the new primary.
        assert bouncer.server() == (False, group.node(found["candidate"]).port)
    finally:
        bouncer.stop()
    assert bouncer.password not in run.stdout + run.stderr
    found = run.task("Confirm that the old primary is down, and choose the most advanced standby")["result"]
    assert found["ready"] and found["old_primary"]["down"] and len(found["old_primary"]["checks"]) == 3
    new = found["candidate"]
    other = "n3" if new == "n2" else "n2"
    group.primary = new
    new_node, other_node = group.node(new), group.node(other)

    # Every acknowledged commit is on the new primary; the other standby streams from it and has them too.
    assert not in_recovery(new_node)
    assert ids_on(new_node, acked) == set(acked)
    assert receiver(other_node) == ("streaming", new_node.port)
    wait_until(lambda: ids_on(other_node, acked) == set(acked), "the follower to replay every row")

    # Route 53 (moto) points at the new primary.
    rrsets = client.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    record = [r for r in rrsets if r["Name"] == RECORD + "." and r["Type"] == "A"]
    assert record[0]["ResourceRecords"] == [{"Value": "10.0.0.%d" % (NAMES.index(new) + 1)}]

    summary = report(group, new)["summary"]
    assert summary["status"] == "done" and summary["old_primary"] == "n1" and summary["new_primary"] == new
    assert set(summary["rto_seconds"]) == {
        "detection",
        "promotion",
        "followers",
        "pool_dns",
        "checks",
        "total",
    }
    assert summary["followers"] == [
        dict(
            host=other,
            ok=True,
            action="repointed",
            upstream=summary["followers"][0]["upstream"],
            slot=other,
            lost_transactions=0,
        )
    ]
    assert summary["write_check"]["xid"] and summary["replication_check"][other]["caught_up"]
    # n1's LSN was recorded by the refused run: it is behind the promoted LSN, so no loss is known.
    assert (
        summary["rpo"]["source"].endswith("/n1/failover_refused.json") and summary["rpo"]["lost_bytes"] == 0
    )
    assert summary["dns"].startswith("set db.example.com. A")
    print("sync failover RTO phases:", summary["rto_seconds"])

    # The old primary, rejoined, streams from the new one.
    rejoined = rejoin(group, "n1")
    assert rejoined["upstream"]["status"] == "streaming" and rejoined["upstream"]["port"] == new_node.port
    assert in_recovery(n1) and receiver(n1) == ("streaming", new_node.port)
    # What n1 discarded was never acknowledged to the client.
    lost = {t["xid"] for t in rejoined["lost_transactions"]}
    assert not lost & {int(x) for x in acked.values()}


# -- 3. asynchronous replication -------------------------------------------------------------------
def test_async_failover_lost_rows_are_the_lost_transactions_of_the_rejoin(group):
    primary = group.node(group.primary)
    standbys = [group.node(n) for n in group.standbys()]
    primary.query("ALTER SYSTEM SET synchronous_standby_names = ''")
    primary.query("SELECT pg_reload_conf()")
    wait_until(
        lambda: all(receiver(s) and receiver(s)[0] == "streaming" for s in standbys),
        "both standbys streaming",
    )
    base = primary.query("SELECT coalesce(max(id), 0) FROM acked")[0][0] + 1000
    primary.query("INSERT INTO acked SELECT g, NULL FROM generate_series(%s, %s) g", (base, base + 9))
    # The insert position: past the commit record even when synchronous_commit is off.
    lsn = primary.query("SELECT pg_current_wal_insert_lsn()::text")[0][0]
    wait_until(
        lambda: all(s.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0] for s in standbys),
        "the standbys to replay the first rows",
    )
    # The standbys stop receiving (a network cut); the primary goes on committing alone.
    saved = {}
    for node in standbys:
        saved[node] = node.query("SHOW primary_conninfo")[0][0]
        node.query("ALTER SYSTEM SET primary_conninfo = ''")
        node.query("SELECT pg_reload_conf()")
    wait_until(lambda: all(receiver(s) is None for s in standbys), "the WAL receivers to stop")
    writer = Writer(primary, base + 100, limit=40)
    writer.start()
    writer.join(60)
    assert len(writer.acked) == 40, writer.error
    acked = dict(writer.acked)
    # The runbook records the primary's LSN (the failover's RPO is judged against it).
    runbook = harness.run_playbook(
        RUNBOOK,
        inventory=inventory(group, group.primary),
        extra_vars=dict(replication_report_dest=group.reports),
    )
    runbook.assert_ok()
    killed = group.primary
    kill(primary)
    for node in standbys:
        node.query("ALTER SYSTEM SET primary_conninfo = %s", (saved[node],))
        node.query("SELECT pg_reload_conf()")

    # The inventory still names n1 as the primary (stale since the first failover): the playbook
    # finds the failed primary as the one server it cannot read.
    run = failover(group, primary="n1")
    run.assert_ok()
    found = run.task("Confirm that the old primary is down, and choose the most advanced standby")["result"]
    new = found["candidate"]
    group.primary = new
    new_node = group.node(new)
    summary = report(group, new)["summary"]
    assert summary["old_primary"] == killed and summary["status"] == "done"
    rpo = summary["rpo"]
    assert rpo["source"].endswith("/%s/replication_lag.json" % killed) and rpo["lost_bytes"] > 0
    findings = {f["rule"] for f in report(group, new)["findings"]}
    assert "FAILOVER-RPO-001" in findings

    # Rows missing on the new primary = the transactions the rejoin of the killed node discards.
    missing = set(acked) - ids_on(new_node, acked)
    assert missing and ids_on(new_node, range(base, base + 10)) == set(range(base, base + 10))
    rejoined = rejoin(group, killed)
    lost_on_table = {t["xid"] for t in rejoined["lost_transactions"] if "public.acked" in t["relations"]}
    assert lost_on_table == {int(acked[i]) for i in missing}
    assert rejoined["upstream"]["status"] == "streaming"
    for name in group.standbys():
        assert receiver(group.node(name)) == ("streaming", new_node.port), name
