# -*- coding: utf-8 -*-
"""Server log reading: stderr lines with a log_line_prefix, csvlog rows, the audit summary."""

import datetime

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.security import audit_log
from ansible_collections.dbarch.postgresql.plugins.module_utils.security.audit_logging import DEFAULT_PREFIX

S = "2025-03-01 10:00:0"
APP = " UTC [11] app@shop 203.0.113.9 [unknown]: "
SU = " UTC [12] postgres@shop 10.0.0.5 "
STDERR = "\n".join(
    [
        S + "0.100 UTC [10] LOG:  database system is ready to accept connections",
        S + "1.000 UTC [11] LOG:  connection received: host=203.0.113.9 port=5555",
        S + "1.010" + APP + 'FATAL:  password authentication failed for user "app"',
        S + "1.011" + APP + 'DETAIL:  Connection matched file "pg_hba.conf" line 3',
        S + "2.000 UTC [12] LOG:  connection received: host=10.0.0.5 port=5556",
        S + "2.010" + SU + "[unknown]: LOG:  connection authorized: user=postgres database=shop",
        S + "3.000" + SU + "psql: LOG:  statement: CREATE TABLE t (id int,",
        "\tname text)",
        S + "4.000" + SU + "psql: LOG:  statement: ALTER ROLE app PASSWORD 'Secret-1'",
        S + "5.000" + SU + "psql: LOG:  AUDIT: SESSION,1,1,DDL,DROP TABLE,,,DROP TABLE t,<not logged>",
        "2025-02-01 10:00:05.000" + SU + "psql: LOG:  statement: DROP TABLE old",
    ]
)


def test_stderr_with_the_default_prefix():
    regex = audit_log.prefix_regex(DEFAULT_PREFIX)
    entries = list(audit_log.stderr_entries(STDERR, regex))
    assert (
        entries[2]["user"] == "app"
        and entries[2]["host"] == "203.0.113.9"
        and entries[2]["severity"] == "FATAL"
    )
    since = datetime.datetime(2025, 3, 1)
    out = audit_log.analyse(entries, since=since, superusers={"postgres"}, expected_networks=["10.0.0.0/8"])
    assert out["failed_logins"] == [
        dict(
            role="app",
            address="203.0.113.9",
            count=1,
            first="2025-03-01 10:00:01",
            last="2025-03-01 10:00:01",
            reasons=["password authentication failed"],
        )
    ]
    assert [d["command"] for d in out["ddl"]] == ["CREATE", "ALTER", "DROP TABLE"]
    assert "Secret-1" not in str(out) and "name text" in out["ddl"][0]["statement"]
    assert out["superuser_sessions"][0]["role"] == "postgres" and out["superuser_sessions"][0]["count"] == 1
    assert [u["address"] for u in out["unexpected_connections"]] == ["203.0.113.9"]


def test_csvlog():
    row = (
        '2025-03-01 10:00:01.010 UTC,"app","shop",11,"203.0.113.9:5555",abc.1,1,"authentication",'
        '2025-03-01 10:00:01 UTC,3/1,0,FATAL,28P01,"password authentication failed for user ""app""",'
        '"Connection matched",,,,,,,,"","client backend",,0\n'
    )
    out = audit_log.analyse(audit_log.csv_entries(row))
    assert out["failed_logins"][0]["role"] == "app" and out["failed_logins"][0]["address"] == "203.0.113.9"


def test_window():
    now = datetime.datetime(2025, 3, 2)
    assert audit_log.window_start("24h", now) == datetime.datetime(2025, 3, 1)
    assert audit_log.window_start("2025-01-31 00:00:00", now) == datetime.datetime(2025, 1, 31)


def test_a_bad_expected_network_is_an_audit_log_error_naming_it():
    with pytest.raises(audit_log.AuditLogError, match=r"expected_networks: '10\.0\.0\.0/33'"):
        audit_log.parse_networks(["192.168.0.0/16", "10.0.0.0/33"])
    assert [str(n) for n in audit_log.parse_networks(["10.1.2.3/8", "::1"])] == ["10.0.0.0/8", "::1/128"]
