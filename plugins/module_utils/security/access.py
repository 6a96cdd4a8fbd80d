# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Access-control checks: roles and their attributes, passwords (kind, expiry, weak ones tested
offline), membership walked to superuser, PUBLIC and default privileges, SECURITY DEFINER
functions, row-level security on sensitive tables, shared credentials.

Each check takes the audit context (audit.Context) and returns a list of findings. Stored
verifiers are kept in memory only; no password text goes into a finding.
Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.security import dictionary, scram
from ansible_collections.dbarch.postgresql.plugins.module_utils.security.rules import finding

ROLES_SQL = (
    "SELECT oid, rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, "
    "rolreplication, rolbypassrls, rolvaliduntil FROM pg_catalog.pg_roles "
    "WHERE rolname !~ '^pg_' ORDER BY rolname"
)
MEMBERS_SQL = "SELECT roleid, member FROM pg_catalog.pg_auth_members"
VERIFIERS_SQL = "SELECT rolname, rolpassword FROM pg_catalog.pg_authid WHERE rolcanlogin"
PUBLIC_SCHEMA_SQL = (
    "SELECT n.nspname, a.privilege_type FROM pg_catalog.pg_namespace n, "
    "LATERAL aclexplode(COALESCE(n.nspacl, acldefault('n', n.nspowner))) a "
    "WHERE a.grantee = 0 AND a.privilege_type = 'CREATE' AND n.nspname !~ '^pg_' "
    "AND n.nspname <> 'information_schema'"
)
PUBLIC_TABLES_SQL = (
    "SELECT n.nspname, c.relname, string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type) AS privs "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace, "
    "LATERAL aclexplode(c.relacl) a WHERE a.grantee = 0 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
    "AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' GROUP BY 1, 2 ORDER BY 1, 2"
)
FUNCTIONS_SQL = (
    "SELECT p.oid::regprocedure::text AS signature, n.nspname, p.proname, p.proconfig, "
    "pg_catalog.pg_get_userbyid(p.proowner) AS owner, "
    "EXISTS (SELECT 1 FROM aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) a "
    "        WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_execute "
    "FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
    "WHERE p.prosecdef AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1"
)
DEFAULT_ACL_SQL = (
    "SELECT pg_catalog.pg_get_userbyid(d.defaclrole) AS owner, n.nspname, d.defaclobjtype, "
    "string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type) AS privs "
    "FROM pg_catalog.pg_default_acl d LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace, "
    "LATERAL aclexplode(d.defaclacl) a WHERE a.grantee = 0 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
RLS_SQL = (
    "SELECT n.nspname, c.relname, c.relrowsecurity FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')"
)
ACTIVITY_SQL = (
    "SELECT usename, host(client_addr) AS addr, application_name FROM pg_catalog.pg_stat_activity "
    "WHERE backend_type = 'client backend' AND usename IS NOT NULL AND pid <> pg_backend_pid()"
)

_OBJTYPES = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}


def q(name):
    """A role or object name quoted for a fix (text; the fix is shown, not run)."""
    return pg.quote_ident_text(name)


def _exempt(ctx, role, attribute):
    allowed = ctx.allowed_attributes.get(role["rolname"], [])
    return attribute in [a.lower() for a in allowed] or role["rolname"] in ctx.expected_superusers


def check_superusers(ctx):
    out = []
    for role in ctx.roles:
        if role["rolsuper"] and role["rolname"] not in ctx.expected_superusers:
            out.append(
                finding(
                    "SEC001",
                    role["rolname"],
                    "Role %s is a superuser; expected superusers: %s."
                    % (role["rolname"], ", ".join(ctx.expected_superusers) or "none"),
                    "ALTER ROLE %s NOSUPERUSER;  -- grant pg_monitor or object rights instead"
                    % q(role["rolname"]),
                    evidence=dict(can_login=role["rolcanlogin"]),
                )
            )
    return out


def check_attributes(ctx):
    out = []
    for role in ctx.roles:
        if role["rolsuper"]:
            continue  # a superuser has every right: SEC001 says it
        name = role["rolname"]
        if role["rolcreaterole"] and not _exempt(ctx, role, "createrole"):
            out.append(
                finding(
                    "SEC002", name, "Role %s has CREATEROLE." % name, "ALTER ROLE %s NOCREATEROLE;" % q(name)
                )
            )
        if role["rolcreatedb"] and not _exempt(ctx, role, "createdb"):
            out.append(
                finding("SEC003", name, "Role %s has CREATEDB." % name, "ALTER ROLE %s NOCREATEDB;" % q(name))
            )
        if role["rolbypassrls"] and not _exempt(ctx, role, "bypassrls"):
            out.append(
                finding(
                    "SEC004", name, "Role %s has BYPASSRLS." % name, "ALTER ROLE %s NOBYPASSRLS;" % q(name)
                )
            )
        if role["rolreplication"] and role["rolcanlogin"] and not _exempt(ctx, role, "replication"):
            owns = ctx.members_of_anything(role["oid"])
            if owns:
                out.append(
                    finding(
                        "SEC005",
                        name,
                        "Login role %s has REPLICATION and is also a member of other roles." % name,
                        "ALTER ROLE %s NOREPLICATION;  -- stream with a dedicated replication-only role"
                        % q(name),
                    )
                )
    return out


def superuser_paths(roles, members):
    """role oid -> the chain of role names through which it reaches a superuser role."""
    by_oid = dict((r["oid"], r) for r in roles)
    parents = {}
    for row in members:
        parents.setdefault(row["member"], []).append(row["roleid"])
    paths = {}
    for role in roles:
        if role["rolsuper"]:
            continue
        seen = {role["oid"]}
        queue = [(role["oid"], [role["rolname"]])]
        while queue:
            oid, path = queue.pop(0)
            hit = None
            for parent in parents.get(oid, []):
                if parent in seen:
                    continue
                seen.add(parent)
                prole = by_oid.get(parent)
                pname = prole["rolname"] if prole else str(parent)
                if prole and prole["rolsuper"]:
                    hit = path + [pname]
                    break
                queue.append((parent, path + [pname]))
            if hit:
                paths[role["oid"]] = hit
                break
    return paths


def check_membership(ctx):
    out = []
    by_oid = dict((r["oid"], r) for r in ctx.roles)
    for oid, path in sorted(superuser_paths(ctx.roles, ctx.members).items(), key=lambda kv: kv[1]):
        name = by_oid[oid]["rolname"]
        out.append(
            finding(
                "SEC011",
                name,
                "Role %s can become superuser %s through membership: %s."
                % (name, path[-1], " -> ".join(path)),
                "REVOKE %s FROM %s;" % (q(path[1]), q(name)),
                evidence=dict(path=path),
            )
        )
    return out


def check_passwords(ctx):
    """Login roles without a password, md5 verifiers, no expiry (pg_authid: superuser)."""
    out = []
    verifiers = ctx.verifiers()
    for role in ctx.roles:
        if not role["rolcanlogin"]:
            continue
        name = role["rolname"]
        stored = verifiers.get(name)
        try:
            kind = scram.verifier_kind(stored)
        except scram.VerifierError:
            kind = "unknown"
        if kind is None:
            out.append(
                finding(
                    "SEC006",
                    name,
                    "Login role %s has no password." % name,
                    "ALTER ROLE %s PASSWORD '<scram verifier>';  -- credential_rotate sets one "
                    "without sending it in clear; or ALTER ROLE %s NOLOGIN" % (q(name), q(name)),
                )
            )
            continue
        if kind == "md5":
            out.append(
                finding(
                    "SEC007",
                    name,
                    "Role %s has an md5 password verifier." % name,
                    "SET password_encryption = 'scram-sha-256'; ALTER ROLE %s PASSWORD '<new password>';"
                    % q(name),
                )
            )
        if role["rolvaliduntil"] is None and name not in ctx.expected_superusers:
            out.append(
                finding(
                    "SEC008",
                    name,
                    "Password of role %s never expires." % name,
                    "ALTER ROLE %s VALID UNTIL '<date of the next rotation>';" % q(name),
                )
            )
    return out


def _name_variants(name):
    base = [name, name.lower(), name.upper(), name.capitalize(), name[::-1]]
    out = []
    for b in base:
        for v in (b, b + "1", b + "123", b + "!", b + "2024", b + "2025", b + "2026"):
            if v and v not in out:
                out.append(v)
    return out


def check_weak_passwords(ctx):
    """Test each stored verifier offline against the dictionary and the role's own name."""
    out = []
    words = dictionary.words(ctx.password_dictionary)
    for name, stored in sorted(ctx.verifiers().items()):
        if not stored:
            continue
        try:
            if scram.verifier_kind(stored) is None:
                continue
        except scram.VerifierError:
            continue
        if any(scram.matches(stored, cand, name) for cand in _name_variants(name)):
            out.append(
                finding(
                    "SEC010",
                    name,
                    "Password of role %s equals role name (or a trivial variant of it)." % name,
                    "ALTER ROLE %s PASSWORD '<new strong password>';  -- or credential_rotate" % q(name),
                    evidence=dict(result="equals role name"),
                )
            )
            continue
        if any(scram.matches(stored, word, name) for word in words):
            out.append(
                finding(
                    "SEC009",
                    name,
                    "Password of role %s is weak (dictionary)." % name,
                    "ALTER ROLE %s PASSWORD '<new strong password>';  -- or credential_rotate" % q(name),
                    evidence=dict(result="weak (dictionary)", dictionary_size=len(words)),
                )
            )
    return out


def check_public_privileges(ctx):
    out = []
    for row in ctx.session.fetchall(PUBLIC_SCHEMA_SQL):
        out.append(
            finding(
                "SEC012",
                "%s schema %s" % (ctx.database, row["nspname"]),
                "PUBLIC has CREATE on schema %s in database %s%s."
                % (
                    row["nspname"],
                    ctx.database,
                    " (the default before PostgreSQL 15)"
                    if ctx.features.public_schema_create_by_default
                    else "",
                ),
                "REVOKE CREATE ON SCHEMA %s FROM PUBLIC;" % q(row["nspname"]),
            )
        )
    for row in ctx.session.fetchall(PUBLIC_TABLES_SQL):
        rel = pg.qualified_text(row["nspname"], row["relname"])
        out.append(
            finding(
                "SEC013",
                "%s.%s" % (row["nspname"], row["relname"]),
                "PUBLIC has %s on %s." % (row["privs"], rel),
                "REVOKE ALL ON %s FROM PUBLIC;  -- grant to the roles that need it" % rel,
                evidence=dict(privileges=row["privs"]),
            )
        )
    return out


def check_security_definer(ctx):
    out = []
    for row in ctx.session.fetchall(FUNCTIONS_SQL):
        config = row["proconfig"] or []
        if not any(str(c).startswith("search_path=") for c in config):
            out.append(
                finding(
                    "SEC016",
                    row["signature"],
                    "SECURITY DEFINER function %s (owner %s) has no fixed search_path."
                    % (row["signature"], row["owner"]),
                    "ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp;  -- qualify names in its body"
                    % row["signature"],
                )
            )
        if row["public_execute"]:
            out.append(
                finding(
                    "SEC014",
                    row["signature"],
                    "PUBLIC may execute SECURITY DEFINER function %s (owner %s)."
                    % (row["signature"], row["owner"]),
                    "REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC;  -- grant it to the roles that need it"
                    % row["signature"],
                )
            )
    return out


def check_default_privileges(ctx):
    out = []
    for row in ctx.session.fetchall(DEFAULT_ACL_SQL):
        kind = _OBJTYPES.get(row["defaclobjtype"], row["defaclobjtype"])
        where = (" IN SCHEMA %s" % q(row["nspname"])) if row["nspname"] else ""
        out.append(
            finding(
                "SEC015",
                "default privileges of %s%s on %s"
                % (row["owner"], (" in " + row["nspname"]) if row["nspname"] else "", kind.lower()),
                "Objects of type %s created by %s%s get %s for PUBLIC."
                % (kind.lower(), row["owner"], where, row["privs"]),
                "ALTER DEFAULT PRIVILEGES FOR ROLE %s%s REVOKE ALL ON %s FROM PUBLIC;"
                % (q(row["owner"]), where, kind),
            )
        )
    return out


def check_row_level_security(ctx):
    out = []
    wanted = set()
    for name in ctx.sensitive_tables:
        schema, _dot, table = name.rpartition(".")
        wanted.add((schema or "public", table))
    for row in ctx.session.fetchall(RLS_SQL):
        if (row["nspname"], row["relname"]) in wanted and not row["relrowsecurity"]:
            rel = pg.qualified_text(row["nspname"], row["relname"])
            out.append(
                finding(
                    "SEC017",
                    "%s.%s" % (row["nspname"], row["relname"]),
                    "Sensitive table %s has no row-level security." % rel,
                    "ALTER TABLE %s ENABLE ROW LEVEL SECURITY;  -- then CREATE POLICY per tenant" % rel,
                )
            )
    return out


def check_shared_credentials(ctx):
    seen = {}
    for sample in ctx.activity_samples():
        for row in sample:
            entry = seen.setdefault(row["usename"], (set(), set()))
            if row["addr"]:
                entry[0].add(row["addr"])
            if row["application_name"]:
                entry[1].add(row["application_name"])
    out = []
    for name, (addrs, apps) in sorted(seen.items()):
        if len(addrs) > 1 and len(apps) > 1 and name not in ctx.expected_superusers:
            out.append(
                finding(
                    "SEC018",
                    name,
                    "Login role %s is used from %d addresses by %d applications."
                    % (name, len(addrs), len(apps)),
                    "CREATE ROLE <app>_login LOGIN IN ROLE %s;  -- one login role per application" % q(name),
                    evidence=dict(addresses=sorted(addrs), applications=sorted(apps)),
                )
            )
    return out
