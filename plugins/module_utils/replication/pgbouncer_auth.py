# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How PgBouncer authenticates clients without a plaintext userlist (``auth_query``).

Plain Python, no Ansible imports.

- In PostgreSQL: the auth role (LOGIN, never a superuser) and, in every pooled database, the
  SECURITY DEFINER lookup function ``<schema>.user_lookup(text)`` that PgBouncer's ``auth_query``
  calls as that role. The function returns the SCRAM secret of a login role; it never answers for
  a superuser, a replication role, the auth role itself or an expired role. EXECUTE is revoked
  from PUBLIC and granted to the auth role only. ``plan_role`` / ``plan_database`` read the
  catalogs and return the statements still needed; ``apply`` runs them in one transaction.
- On the PgBouncer host: the auth file holds one line, the auth role's SCRAM secret (never a
  password), written 0600 for PgBouncer's OS user. ``plan_userlist`` keeps the secret already there
  when the password still matches it, so a second run changes nothing.

Why PgBouncer 1.18 still needs a non-password way in for the auth role itself: a SCRAM secret
lets PgBouncer check a client's password, but not log in to PostgreSQL (that needs the password or
keys a client just proved). The auth role's own server login is therefore a TLS client certificate
(``hostssl ... cert`` in pg_hba.conf) or another method without a stored password; see
docs/pgbouncer.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hmac
import os
import pwd
import re
import stat

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import fsutil, pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.localcluster import scram_verifier
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer_config as cfg

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - the module reports the missing driver first
    sql = None


class PgBouncerAuthError(DbarchError):
    """The auth role, lookup function or auth file cannot be brought to the wanted state."""


FUNCTION_NAME = "user_lookup"
FUNCTION_ARGS = "i_username text"
# No row for a name the function does not answer for (a NULL row makes PgBouncer 1.18 drop the server
# connection and fail the login with "bouncer config error").
FUNCTION_RESULT = "TABLE(uname text, phash text)"
SEARCH_PATH = "search_path=pg_catalog, pg_temp"
# The body stored in pg_proc.prosrc (compared as is to decide whether to replace the function).
FUNCTION_BODY = """
SELECT a.rolname::text, a.rolpassword::text
FROM pg_catalog.pg_authid AS a
WHERE a.rolname = i_username
  AND a.rolcanlogin
  AND NOT a.rolsuper
  AND NOT a.rolreplication
  AND a.rolname <> session_user
  AND (a.rolvaliduntil IS NULL OR a.rolvaliduntil >= pg_catalog.now())
"""
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
SCRAM_RE = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")
MASKED_SECRET = "SCRAM-SHA-256$<secret>"  # noqa: S105 - a placeholder shown in diffs


def check_name(what, name):
    if not NAME_RE.match(str(name or "")):
        raise PgBouncerAuthError(
            "%s=%r: use a plain lower-case name (letters, digits, _; 63 bytes at most), as the auth query "
            "names it unquoted" % (what, name)
        )
    return name


def auth_query(schema):
    """PgBouncer's auth_query for the lookup function in ``schema``."""
    return "SELECT uname, phash FROM %s.%s($1)" % (check_name("schema", schema), FUNCTION_NAME)


# -- PostgreSQL side ------------------------------------------------------------------


def _role_row(session, role):
    return session.fetchone(
        "SELECT rolname, rolcanlogin, rolsuper, rolreplication FROM pg_catalog.pg_roles WHERE rolname = %s",
        (role,),
    )


def current_is_superuser(session):
    return bool(
        session.scalar("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user", record=False)
    )


def plan_role(session, role):
    """(statements, facts) for the auth role: created LOGIN without a password when missing, given
    LOGIN when it lacks it; a superuser auth role is refused."""
    row = _role_row(session, role)
    ident = pg.ident(role)
    if row is None:
        return [sql.SQL("CREATE ROLE {} LOGIN").format(ident)], {"exists": False}
    if row["rolsuper"]:
        raise PgBouncerAuthError(
            "auth_user %s is a superuser: PgBouncer's auth role only needs to run the lookup function. Use a "
            "dedicated role without SUPERUSER (the default dbarch_pgbouncer is created for you)" % role
        )
    statements = []
    if not row["rolcanlogin"]:
        statements.append(sql.SQL("ALTER ROLE {} LOGIN").format(ident))
    return statements, {"exists": True, "login": bool(row["rolcanlogin"])}


_ACL = "pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner)))"
_FUNCTION_QUERY = (
    """
SELECT p.oid, p.prosrc, p.prosecdef, p.proconfig, p.provolatile::text AS provolatile, l.lanname,
       pg_catalog.pg_get_function_arguments(p.oid) AS args,
       pg_catalog.pg_get_function_result(p.oid) AS result,
       o.rolname AS owner, o.rolsuper AS owner_super,
       EXISTS (SELECT 1 FROM ACL x WHERE x.grantee = 0 AND x.privilege_type = 'EXECUTE') AS public_execute,
       EXISTS (SELECT 1 FROM ACL x JOIN pg_catalog.pg_roles r ON r.oid = x.grantee
               WHERE r.rolname = %(role)s AND x.privilege_type = 'EXECUTE') AS role_execute,
       ARRAY(SELECT r.rolname::text FROM ACL x JOIN pg_catalog.pg_roles r ON r.oid = x.grantee
             WHERE x.privilege_type = 'EXECUTE' AND r.rolname <> %(role)s AND r.oid <> p.proowner
             ORDER BY 1) AS other_grantees
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
JOIN pg_catalog.pg_roles o ON o.oid = p.proowner
WHERE n.nspname = %(schema)s AND p.proname = %(name)s
"""
).replace("ACL", _ACL)


def _function_matches(row):
    return (
        row["prosrc"] == FUNCTION_BODY
        and row["prosecdef"]
        and list(row["proconfig"] or []) == [SEARCH_PATH]
        and row["provolatile"] == "s"
        and row["lanname"] == "sql"
    )


def _create_function(schema):
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {}.{}("
        + FUNCTION_ARGS
        + ") RETURNS "
        + FUNCTION_RESULT
        + " LANGUAGE sql STABLE "
        "SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {}"
    ).format(pg.ident(schema), pg.ident(FUNCTION_NAME), sql.Literal(FUNCTION_BODY))


def plan_database(session, schema, role, role_exists=True):
    """(statements, facts) for one database: the schema, the lookup function (replaced when its
    definition or owner is not the wanted one), EXECUTE for the auth role only, USAGE on the schema,
    CONNECT on the database. ``role_exists``: False when the role is created in this run."""
    statements = []
    facts = {"database": session.scalar("SELECT current_database()", record=False)}
    fn = pg.ident(schema, FUNCTION_NAME)
    signature = sql.SQL("{}(text)").format(fn)
    role_ident = pg.ident(role)
    schema_exists = session.scalar(
        "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,)
    )
    if not schema_exists:
        statements.append(sql.SQL("CREATE SCHEMA {}").format(pg.ident(schema)))
    row = session.fetchone(_FUNCTION_QUERY, {"schema": schema, "name": FUNCTION_NAME, "role": role})
    facts["function"] = "%s.%s(text)" % (schema, FUNCTION_NAME)
    if row is not None and (row["args"] != FUNCTION_ARGS or row["result"] != FUNCTION_RESULT):
        statements.append(sql.SQL("DROP FUNCTION {}").format(signature))
        row = None
    if row is None or not _function_matches(row):
        statements.append(_create_function(schema))
    if row is not None and not row["owner_super"]:
        # A SECURITY DEFINER function reads pg_authid with its owner's rights: the owner must be a superuser.
        statements.append(sql.SQL("ALTER FUNCTION {} OWNER TO CURRENT_USER").format(signature))
    if row is None or row["public_execute"]:
        statements.append(sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(signature))
    if row is None or not row["role_execute"]:
        statements.append(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(signature, role_ident))
    facts["other_grantees"] = list(row["other_grantees"]) if row is not None else []
    usage = (
        role_exists
        and schema_exists
        and session.scalar("SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, schema), record=False)
    )
    if not usage:
        statements.append(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(pg.ident(schema), role_ident))
    connect = role_exists and session.scalar(
        "SELECT has_database_privilege(%s, current_database(), 'CONNECT')", (role,), record=False
    )
    if not connect:
        statements.append(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(pg.ident(facts["database"]), role_ident)
        )
    return statements, facts


def apply(session, statements):
    """Run ``statements`` in one transaction on an autocommit ``session`` (nothing half-applied: a
    failure rolls all of them back)."""
    if not statements:
        return
    session.execute("BEGIN")
    try:
        for statement in statements:
            session.execute(statement)
        session.execute("COMMIT")
    except BaseException:
        if not session.conn.closed:
            try:
                session.execute("ROLLBACK", record=False)
            except DbarchError:
                pass
        raise


# -- the auth file ----------------------------------------------------------------------


def secret_matches(secret, password):
    """Whether the SCRAM-SHA-256 ``secret`` was made from ``password`` (recomputed with its salt
    and iteration count, compared in constant time)."""
    match = SCRAM_RE.match(secret or "")
    if not match:
        return False
    try:
        salt = base64.b64decode(match.group(2), validate=True)
    except (ValueError, TypeError):
        return False
    again = scram_verifier(password, salt=salt, iterations=int(match.group(1)))
    return hmac.compare_digest(again.encode("ascii"), secret.encode("ascii"))


def os_user_ids(user):
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PgBouncerAuthError(
            "OS user %s does not exist on this host: give the user PgBouncer runs as (Debian's pgbouncer "
            "package runs it as postgres)" % user
        ) from None
    return entry.pw_uid, entry.pw_gid


USERLIST_COMMENT = (
    "Managed by dbarch.postgresql (pgbouncer_auth). PgBouncer's auth_user and admin, as a SCRAM secret:",
    "every other role is looked up with auth_query. Do not add plaintext passwords here.",
)


def plan_userlist(path, user, password, owner, mode=0o600):
    """(changed, new text or None, facts) for the auth file: one line, ``user`` with a SCRAM secret
    of ``password``. The secret already there is kept when the password matches it (a second run
    changes nothing); a new one gets a fresh salt. Also changed when only mode or owner differ."""
    if not password:
        raise PgBouncerAuthError(
            "admin_password is empty: give the password of the PgBouncer admin/auth role"
        )
    uid, gid = os_user_ids(owner)
    raw = fsutil.read_bytes(path)
    current = raw.decode("utf-8", "replace") if raw is not None else None
    entries = cfg.parse_userlist(current or "")
    facts = {"path": path, "existed": current is not None, "entries_before": [name for name, _s in entries]}
    keep = [secret for name, secret in entries if name == user and secret_matches(secret, password)]
    content_ok = (
        len(entries) == 1 and bool(keep) and current == cfg.userlist_text([(user, keep[0])], USERLIST_COMMENT)
    )
    secret = keep[0] if keep else scram_verifier(password)
    text = None if content_ok else cfg.userlist_text([(user, secret)], USERLIST_COMMENT)
    meta_ok = False
    if current is not None:
        st = os.stat(path)
        meta_ok = stat.S_IMODE(st.st_mode) == mode and st.st_uid == uid and st.st_gid == gid
    facts["password_changed"] = not keep
    facts["rewritten"] = text is not None
    return (text is not None or not meta_ok), text, facts


def write_userlist(path, text, owner, mode=0o600):
    """Write the auth file (atomically), or only fix its mode and owner when ``text`` is None."""
    uid, gid = os_user_ids(owner)
    if text is None:
        os.chmod(path, mode)
        os.chown(path, uid, gid)
        return
    fsutil.atomic_write(path, text, mode=mode, owner=(uid, gid))


def masked_userlist(text):
    """The auth file's text with every secret replaced (for diffs)."""
    if text is None:
        return ""
    return cfg.userlist_text(
        [(name, MASKED_SECRET) for name, _s in cfg.parse_userlist(text)], USERLIST_COMMENT
    )
