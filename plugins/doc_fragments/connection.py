# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options shared by every module that talks to PostgreSQL.
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - Defaults to the E(PGHOST) environment variable, then to the local socket.
    type: str
    aliases: [host]
  login_port:
    description:
      - Port of the PostgreSQL server. Defaults to E(PGPORT), then 5432.
    type: int
    aliases: [port]
  login_user:
    description:
      - Role to connect as. Defaults to E(PGUSER), then to the OS user name.
    type: str
    aliases: [user]
  login_password:
    description:
      - Password of O(login_user). Defaults to E(PGPASSWORD); C(~/.pgpass) is honoured by libpq.
      - Never shown in output or logs.
    type: str
    aliases: [password]
  login_db:
    description:
      - Database to connect to. Defaults to E(PGDATABASE), then to the user name.
    type: str
    aliases: [db, database]
  login_unix_socket:
    description:
      - Directory of the server's Unix socket, used when O(login_host) is not set.
    type: str
    aliases: [unix_socket]
  ssl_mode:
    description:
      - libpq sslmode. Defaults to E(PGSSLMODE), then to libpq's C(prefer).
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - CA certificate file to verify the server with (libpq sslrootcert).
    type: path
    aliases: [ssl_rootcert]
  connect_timeout:
    description:
      - Seconds to wait for the connection before failing.
    type: int
    default: 10
  lock_timeout:
    description:
      - Session C(lock_timeout), a PostgreSQL duration such as C(5s) or C(250ms).
      - Bounds how long a statement waits for a lock, so it never stalls traffic queued behind it.
    type: str
  statement_timeout:
    description:
      - Session C(statement_timeout), a PostgreSQL duration such as C(30s).
    type: str
  session_settings:
    description:
      - Further settings applied to the session at connect time (C(SET name = value)).
    type: dict
    default: {}
notes:
  - The connection reports C(application_name) as C(dbarch.<module>), so the module's sessions
    are easy to spot in C(pg_stat_activity).
  - All connection options can be set once for every module of the collection with
    C(module_defaults) and the action group C(group/dbarch.postgresql.all).
requirements:
  - psycopg2 (C(python3-psycopg2) on Debian/Ubuntu managed hosts, C(psycopg2-binary) in a virtualenv)
"""

    # The same options without aliases, for modules that have an option of their own named like one of
    # them (local_cluster and pitr_restore have port, scheduled_job has user).
    # A literal (ansible-test reads fragments without running them); tests/unit/core/test_doc_fragments.py
    # checks that it is DOCUMENTATION without its aliases lines.
    NO_ALIASES = r"""
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - Defaults to the E(PGHOST) environment variable, then to the local socket.
    type: str
  login_port:
    description:
      - Port of the PostgreSQL server. Defaults to E(PGPORT), then 5432.
    type: int
  login_user:
    description:
      - Role to connect as. Defaults to E(PGUSER), then to the OS user name.
    type: str
  login_password:
    description:
      - Password of O(login_user). Defaults to E(PGPASSWORD); C(~/.pgpass) is honoured by libpq.
      - Never shown in output or logs.
    type: str
  login_db:
    description:
      - Database to connect to. Defaults to E(PGDATABASE), then to the user name.
    type: str
  login_unix_socket:
    description:
      - Directory of the server's Unix socket, used when O(login_host) is not set.
    type: str
  ssl_mode:
    description:
      - libpq sslmode. Defaults to E(PGSSLMODE), then to libpq's C(prefer).
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - CA certificate file to verify the server with (libpq sslrootcert).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection before failing.
    type: int
    default: 10
  lock_timeout:
    description:
      - Session C(lock_timeout), a PostgreSQL duration such as C(5s) or C(250ms).
      - Bounds how long a statement waits for a lock, so it never stalls traffic queued behind it.
    type: str
  statement_timeout:
    description:
      - Session C(statement_timeout), a PostgreSQL duration such as C(30s).
    type: str
  session_settings:
    description:
      - Further settings applied to the session at connect time (C(SET name = value)).
    type: dict
    default: {}
notes:
  - The connection reports C(application_name) as C(dbarch.<module>), so the module's sessions
    are easy to spot in C(pg_stat_activity).
  - All connection options can be set once for every module of the collection with
    C(module_defaults) and the action group C(group/dbarch.postgresql.all).
requirements:
  - psycopg2 (C(python3-psycopg2) on Debian/Ubuntu managed hosts, C(psycopg2-binary) in a virtualenv)
"""

    FINDINGS = r"""
options:
  fail_on:
    description:
      - Fail the task when a finding that is not suppressed has this severity or a higher one.
      - V(never) only reports.
    type: str
    default: never
    choices: [never, info, low, medium, high, critical]
  suppressions:
    description:
      - Accepted findings. Each item has C(rule) and C(object) (shell-style patterns) and a
        C(reason), which is required and shown in reports.
    type: list
    elements: dict
    default: []
"""
