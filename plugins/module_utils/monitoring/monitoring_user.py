# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The login role a metrics exporter connects as, the ``monitoring_user`` module's engine.

Least privilege: LOGIN, a member of ``pg_monitor`` (pg_read_all_settings, pg_read_all_stats,
pg_stat_scan_tables: every statistics view and pg_ls_waldir, no table data), a connection limit,
never SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS (a role that has one of them is
refused, not altered). The password goes to the server as a SCRAM-SHA-256 verifier computed here
(security/scram.py), so the plaintext is never in a statement, a server log or ``queries``.

Plain Python, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.security import scram

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - the module reports the missing driver first
    sql = None

MONITOR_GROUP = "pg_monitor"
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
UPDATE_PASSWORD = ("always", "on_create")  # noqa: S105 - choices
MASKED = "'<SCRAM-SHA-256 verifier>'"
ELEVATED = ("rolsuper", "rolcreatedb", "rolcreaterole", "rolreplication", "rolbypassrls")

READ = (
    "SELECT r.rolname, r.rolcanlogin, r.rolconnlimit, r.rolsuper, r.rolcreatedb, r.rolcreaterole, "
    "r.rolreplication, r.rolbypassrls, "
    "ARRAY(SELECT g.rolname::text FROM pg_catalog.pg_auth_members m "
    "      JOIN pg_catalog.pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid ORDER BY 1) AS member_of "
    "FROM pg_catalog.pg_roles r WHERE r.rolname = %s"
)
# Only a superuser reads pg_authid: the privilege is asked first (a query naming pg_authid fails for others).
CAN_READ_VERIFIER = "SELECT pg_catalog.has_table_privilege('pg_catalog.pg_authid', 'SELECT')"
READ_VERIFIER = "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = %s"  # noqa: S105 - a query


class MonitoringUserError(DbarchError):
    """The monitoring login role cannot be brought to the wanted state: what, where, how to fix."""


def check_name(name):
    if not NAME_RE.match(str(name or "")):
        raise MonitoringUserError(
            "name=%r: use a plain lower-case role name (letters, digits, _; 63 bytes at most)" % (name,)
        )
    return name


def _summary(row):
    if row is None:
        return None
    return dict(
        name=row["rolname"],
        login=bool(row["rolcanlogin"]),
        connection_limit=row["rolconnlimit"],
        member_of=list(row["member_of"] or []),
    )


CREATE = (
    "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {}"
)


def plan(row, name, verifier, connection_limit, password_matches, always):
    """(statements, reasons) to bring role ``name`` to the wanted state.

    ``verifier``: the SCRAM verifier of the wanted password (None: leave the password alone);
    ``password_matches``: True/False, or None when the stored verifier cannot be read; ``always``:
    set the password of an existing role when it differs."""
    ident = pg.ident(name)
    limit = sql.Literal(int(connection_limit))
    grant = sql.SQL("GRANT {} TO {}").format(pg.ident(MONITOR_GROUP), ident)
    if row is None:
        create = sql.SQL(CREATE).format(ident, limit)
        if verifier:
            create = create + sql.SQL(" PASSWORD {}").format(sql.Literal(verifier))
        return [create, grant], ["the role %s is missing" % name]
    elevated = [attr[3:] for attr in ELEVATED if row[attr]]
    if elevated:
        raise MonitoringUserError(
            "role %s has %s: a monitoring login needs none of these. Use another name, or remove them "
            "(ALTER ROLE %s NO%s)" % (name, ", ".join(a.upper() for a in elevated), name, elevated[0].upper())
        )
    steps, why = [], []
    if not row["rolcanlogin"]:
        steps.append(sql.SQL("ALTER ROLE {} LOGIN").format(ident))
        why.append("the role cannot log in")
    if row["rolconnlimit"] != int(connection_limit):
        steps.append(sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(ident, limit))
        why.append("connection limit %s, wanted %s" % (row["rolconnlimit"], connection_limit))
    if MONITOR_GROUP not in (row["member_of"] or []):
        steps.append(grant)
        why.append("not a member of %s" % MONITOR_GROUP)
    if verifier and always and password_matches is False:
        steps.append(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(verifier)))
        why.append("the password differs")
    return steps, why


def converge(session, name, password=None, connection_limit=3, update_password="always", check_mode=False):  # noqa: S107
    """Bring the monitoring role to the wanted state.

    Returns {changed, why, before, after, password_checked, statements} (password literals masked)."""
    check_name(name)
    if update_password not in UPDATE_PASSWORD:
        raise MonitoringUserError("update_password=%r: give always or on_create" % (update_password,))
    if int(connection_limit) < 1:
        raise MonitoringUserError(
            "connection_limit=%r: give 1 or more (the exporter keeps one connection per database)"
            % (connection_limit,)
        )
    row = session.fetchone(READ, (name,))
    matches = None
    if row is not None and password and session.scalar(CAN_READ_VERIFIER, record=False):
        stored = session.scalar(READ_VERIFIER, (name,), record=False)
        try:
            matches = bool(stored) and scram.matches(stored, password, name)
        except scram.VerifierError:
            matches = False
    verifier = scram.scram_verifier(password) if password else None
    steps, why = plan(row, name, verifier, connection_limit, matches, update_password == "always")  # noqa: S105
    before = _summary(row)
    shown = [re.sub(r"PASSWORD '[^']*'", "PASSWORD " + MASKED, s.as_string(session.conn)) for s in steps]
    result = dict(
        changed=bool(steps),
        why=why or ["the role %s is as wanted" % name],
        before=before,
        password_checked=matches is not None,
        statements=shown,
    )
    if check_mode or not steps:
        after = dict(before or {}, name=name, login=True, connection_limit=int(connection_limit))
        after["member_of"] = sorted(set((before or {}).get("member_of", [])) | {MONITOR_GROUP})
        result["after"] = after
        return result
    if session.scalar("SELECT pg_catalog.pg_is_in_recovery()", record=False):
        raise MonitoringUserError(
            "%s is a standby (read-only) and its role %s needs: %s. Roles come from the primary: run this on "
            "the primary first, with the same password" % (session.target, name, "; ".join(why))
        )
    session.execute("BEGIN", record=False)
    try:
        for statement, text in zip(steps, shown):  # noqa: B905 - Python 3.9 hosts
            try:
                session.execute(statement, record=False)
            except pg.PgError as exc:
                raise MonitoringUserError(
                    "%s failed on %s: %s"
                    % (text, session.target, re.sub(r"PASSWORD '[^']*'", "PASSWORD " + MASKED, str(exc)))
                ) from None
        session.execute("COMMIT", record=False)
    except BaseException:
        session.execute("ROLLBACK", record=False)
        raise
    session.queries.extend(shown)
    result["after"] = _summary(session.fetchone(READ, (name,)))
    return result
