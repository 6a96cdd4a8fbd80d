# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Security audit on real clusters (15 and 18, the majors of harness.CORE_MAJORS): a deliberately
weak instance where every planted problem must be found, with no password text anywhere in the
output or the reports; a least-privilege run; and an instance hardened by the tls role plus
settings, where the audit finds nothing high or critical (the play gates on fail_on: high)."""

import json
import os
import secrets
import socket

import psycopg2
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod
from ansible_collections.dbarch.postgresql.plugins.module_utils.security import audit


def _ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


# Two client addresses for the shared-credentials check: 127.0.0.1 and ::1 (where the host has IPv6).
IPV6 = _ipv6_loopback()
WEAK_SETTINGS = {
    "listen_addresses": "127.0.0.1,::1" if IPV6 else "127.0.0.1",
    "password_encryption": "md5",
    "log_connections": "off",
    "log_disconnections": "off",
    "log_statement": "none",
}
WEAK_HBA = [
    "host all all 10.0.0.0/8 trust",
    "host all all 192.168.0.0/16 md5",
]
HARDENED_SETTINGS = {
    "log_connections": "on",
    "log_disconnections": "on",
    "log_statement": "ddl",
    "log_line_prefix": "%m [%p] %q%u@%d from %h app=%a ",
    "logging_collector": "on",
    "log_min_duration_statement": "5s",
}


def _weak_instance(major, workdir, strong, words_file):
    cluster = harness.start_cluster(
        major, workdir=workdir, name="weak", settings=WEAK_SETTINGS, hba_extra=WEAK_HBA
    )
    with cluster.connect() as conn, conn.cursor() as cur:
        cur.execute("SET password_encryption = 'md5'")
        cur.execute("CREATE ROLE legacy LOGIN PASSWORD 'welcome1'")  # md5 verifier, dictionary word
        cur.execute("SET password_encryption = 'scram-sha-256'")
        cur.execute("CREATE ROLE app_weak LOGIN PASSWORD 'password123'")
        cur.execute("CREATE ROLE alice LOGIN PASSWORD 'alice'")
        cur.execute("CREATE ROLE svc LOGIN PASSWORD 'Zebra-Kangaroo-42'")  # in the user's dictionary
        cur.execute("CREATE ROLE strong LOGIN PASSWORD %s", (strong,))
        cur.execute("CREATE ROLE shared LOGIN PASSWORD %s", (strong,))
        cur.execute("CREATE ROLE boss SUPERUSER LOGIN PASSWORD %s", (strong,))
        cur.execute("CREATE ROLE helper NOLOGIN IN ROLE boss")
        cur.execute("CREATE ROLE sneaky LOGIN IN ROLE helper")  # no password; reaches boss through helper
        cur.execute("CREATE ROLE creator NOLOGIN CREATEROLE CREATEDB BYPASSRLS")
        cur.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")  # the default before 15
        cur.execute("CREATE TABLE public.t (id int)")
        cur.execute("GRANT SELECT, UPDATE ON public.t TO PUBLIC")
        cur.execute("CREATE TABLE public.customers (id int, email text)")
        cur.execute("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO PUBLIC")
        cur.execute(
            "CREATE FUNCTION public.grant_bonus(i int) RETURNS int LANGUAGE sql SECURITY DEFINER "
            "AS 'SELECT i + 1'"
        )
    with open(os.path.join(cluster.data_dir, "pg_hba.conf"), "a") as hba:
        hba.write("host all all 1.2.3.4/99 scram-sha-256\n")  # on disk only: not reloaded
    with open(words_file, "w") as out:
        out.write("Zebra-Kangaroo-42\n")
    return cluster


def _sessions(cluster, password):
    """Two sessions of role 'shared' from two addresses with two application names."""
    return [
        psycopg2.connect(
            host=addr,
            port=cluster.port,
            user="shared",
            password=password,
            dbname="postgres",
            application_name=app,
        )
        for addr, app in (("127.0.0.1", "billing"), ("::1" if IPV6 else "127.0.0.1", "crm"))
    ]


def _found(findings):
    return {(f["rule"], f["object"]) for f in findings if not f.get("suppressed")}


def test_weak_instance(pg_major, workdir):
    strong = secrets.token_urlsafe(18)
    words_file = os.path.join(workdir, "words.txt")
    cluster = _weak_instance(pg_major, workdir, strong, words_file)
    try:
        _audit_weak(cluster, strong, words_file, os.path.join(workdir, "reports"))
    finally:
        cluster.stop()


def _audit_weak(cluster, strong, words_file, dest):
    sessions = _sessions(cluster, strong)
    try:
        run = harness.run_site_playbook(
            "security_audit",
            cluster,
            security_audit_dest=dest,
            security_audit_password_dictionary=[words_file],
            security_audit_sensitive_tables=["public.customers"],
            security_audit_activity_samples=1,
            security_audit_expected_superusers=["postgres"],
        )
        run.assert_ok()
        result = run.task("Audit the cluster")["result"]
    finally:
        for conn in sessions:
            conn.close()
    found = _found(result["findings"])
    planted = {
        ("SEC001", "boss"),  # extra superuser
        ("SEC002", "creator"),
        ("SEC003", "creator"),
        ("SEC004", "creator"),
        ("SEC006", "sneaky"),  # login without password
        ("SEC007", "legacy"),  # md5 verifier
        ("SEC009", "legacy"),  # dictionary word behind an md5 verifier
        ("SEC009", "app_weak"),  # password123
        ("SEC009", "svc"),  # the user's dictionary file
        ("SEC010", "alice"),  # password = role name
        ("SEC011", "sneaky"),  # sneaky -> helper -> boss
        ("SEC012", "postgres schema public"),
        ("SEC013", "public.t"),
        ("SEC014", "grant_bonus(integer)"),
        ("SEC015", "default privileges of postgres in public on tables"),
        ("SEC016", "grant_bonus(integer)"),
        ("SEC017", "public.customers"),
        ("SEC028", "password_encryption"),
        ("SEC030", "ssl"),
        ("SEC050", "log_connections"),
        ("SEC051", "log_disconnections"),
        ("SEC053", "log_statement"),
        ("SEC055", "shared_preload_libraries"),
    }
    if IPV6:
        planted.add(("SEC018", "shared"))  # one login, two addresses, two applications
    missing = planted - found
    assert not missing, "planted problems not found: %s" % sorted(missing)
    by_rule = {}
    for f in result["findings"]:
        by_rule.setdefault(f["rule"], []).append(f)
    # pg_hba.conf: trust over TCP, md5, wide ranges, remote superusers, all/all, the error line
    hba_rules = {f["rule"] for f in result["findings"] if f["object"].startswith("pg_hba.conf")}
    assert {"SEC020", "SEC023", "SEC024", "SEC025", "SEC026", "SEC027", "SEC033"} <= hba_rules
    assert any("10.0.0.0" in f["message"] for f in by_rule["SEC020"])
    assert by_rule["SEC020"][0]["severity"] == "critical"
    # No weak-password finding for a strong password (nor for a superuser's strong one).
    weak_roles = {f["object"] for f in by_rule["SEC009"] + by_rule["SEC010"]}
    assert weak_roles == {"legacy", "app_weak", "svc", "alice"}
    assert {f["evidence"]["result"] for f in by_rule["SEC009"]} == {"weak (dictionary)"}
    assert by_rule["SEC010"][0]["evidence"]["result"] == "equals role name"
    # Every finding: CIS section, SOC 2, HIPAA and GDPR references, a fix.
    for f in result["findings"]:
        refs = " ".join(f["references"])
        assert all(fw in refs for fw in ("CIS PostgreSQL", "SOC 2", "HIPAA", "GDPR")), f
        assert f["fix"], f
    # Superuser on the host: nothing skipped for lack of rights; the summary per framework.
    skipped = {s["check"] for s in result["checks_skipped"]}
    assert skipped == {
        "access.never_logged_in",
        "tls.client_certificates",
        "rest.disk_encryption",
        "rest.backup_encryption",
    }
    assert "host.files" in result["checks_run"] and "access.weak_passwords" in result["checks_run"]
    frameworks = result["summary"]["frameworks"]
    assert set(frameworks) == {"CIS", "SOC 2", "HIPAA", "GDPR"}
    assert frameworks["CIS"]["controls"]["5.3"]["status"] == "fail"
    assert frameworks["HIPAA"]["controls"]["164.312(e)(1)"]["status"] == "fail"
    statuses = {row["item"]: row["status"] for row in result["checklist"]["encryption"]}
    assert statuses["TLS on, minimum TLSv1.2, strong ciphers"] == "fail"
    assert statuses["Disk encryption at rest"] == "manual"
    # Reports in every format, with the compliance summary.
    folder = os.path.join(dest, "localhost")
    assert sorted(os.listdir(folder)) == sorted("security_audit." + e for e in ("md", "json", "xml", "sarif"))
    with open(os.path.join(folder, "security_audit.md")) as handle:
        markdown = handle.read()
    assert "HIPAA controls" in markdown and "encryption: Disk encryption at rest | MANUAL" in markdown
    with open(os.path.join(folder, "security_audit.sarif")) as handle:
        sarif = json.load(handle)
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= {"SEC009", "SEC010", "SEC020"}
    # No password text anywhere: module output, play output, reports.
    texts = [
        json.dumps(result),
        run.stdout,
        run.stderr,
        json.dumps([r["result"] for r in run.results], default=str),
    ]
    for name in os.listdir(folder):
        with open(os.path.join(folder, name)) as handle:
            texts.append(handle.read())
    for secret in ("password123", "welcome1", "Zebra-Kangaroo-42", strong, cluster.password):
        assert not any(secret in text for text in texts), "password text in the output"


def test_least_privilege(pg):
    """pg_monitor + pg_read_all_settings: what needs superuser is skipped with the reason, not failed."""
    password = secrets.token_urlsafe(18)
    pg.query("DROP ROLE IF EXISTS sec_auditor")
    pg.query("CREATE ROLE sec_auditor LOGIN PASSWORD %s IN ROLE pg_monitor", (password,))
    try:
        params = dict(pg.conn_params, login_user="sec_auditor", login_password=password)
        session = pgmod.connect(params, "security_audit_info")
        try:
            result = audit.audit(session, activity_samples=1)
        finally:
            session.close()
    finally:
        pg.query("DROP ROLE sec_auditor")
    skipped = {s["check"]: s["reason"] for s in result["checks_skipped"]}
    for check in ("access.passwords", "access.weak_passwords", "auth.hba", "tls.hba"):
        assert "superuser" in skipped[check], skipped
    assert {"access.superusers", "access.public_privileges", "tls.settings", "logging.connections"} <= set(
        result["checks_run"]
    )
    assert result["login"]["superuser"] is False


def test_hardened_instance(pg_major, workdir):
    cluster = harness.start_cluster(pg_major, name="hardened", settings=HARDENED_SETTINGS)
    dest = os.path.join(workdir, "reports")
    connection = dict(cluster.conn_params)
    plays = [
        {
            "name": "TLS",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/dbarch.postgresql.all": connection},
            "roles": [
                {
                    "role": "dbarch.postgresql.tls",
                    "vars": {
                        "tls_data_dir": cluster.data_dir,
                        "tls_private_ca_dir": os.path.join(workdir, "ca"),
                        "tls_hba_rules": [{"database": "all", "user": "all", "address": "127.0.0.1/32"}],
                    },
                }
            ],
        },
        {
            "name": "Audit",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/dbarch.postgresql.all": connection},
            "roles": [
                {
                    "role": "dbarch.postgresql.security_audit",
                    "vars": {
                        "security_audit_dest": dest,
                        "security_audit_fail_on": "high",
                        "security_audit_activity_samples": 1,
                    },
                }
            ],
        },
    ]
    # The tls play twice (the second run must change nothing), then the audit: one ansible-playbook run.
    plays.insert(1, dict(plays[0], name="TLS again"))
    try:
        run = harness.run_playbook(plays)
        run.assert_ok()
        result = run.task("Audit the cluster")["result"]
        severities = {f["severity"] for f in result["findings"]}
        assert not severities & {"high", "critical"}, result["findings"]
        assert "tls.certificate" in result["checks_run"]
        assert result["facts"]["certificate"]["days_left"] >= 360
        assert not [
            f for f in result["findings"] if f["rule"] in ("SEC030", "SEC031", "SEC033", "SEC034", "SEC072")
        ]
        # TLS is on and non-TLS TCP connections are refused.
        with cluster.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone()[0] is True
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(sslmode="disable", connect_timeout=5, **cluster.dsn()).close()
        # Idempotent: the second run of the tls role changed nothing.
        again = [r for r in run.results if r["play"] == "TLS again"]
        assert again and not [r["task"] for r in again if r["status"] == "changed"]
    finally:
        cluster.stop()
