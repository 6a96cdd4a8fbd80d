#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pgbouncer_auth
short_description: PgBouncer auth_query set-up - auth role, SECURITY DEFINER lookup, no plaintext userlist
version_added: "0.2.0"
description:
  - Sets up what PgBouncer's C(auth_user) and C(auth_query) need, so that PgBouncer checks every client's
    password against PostgreSQL and no userlist of passwords exists.
  - In PostgreSQL (the primary; standbys get it by replication) - the role O(auth_user), C(LOGIN) and
    without a password, created when missing (a superuser is refused); in each database of O(databases) the
    schema O(schema) and the function C(<schema>.user_lookup(text)), C(SECURITY DEFINER) with a fixed
    C(search_path), which returns the SCRAM secret of a login role and answers nothing for a superuser, a
    replication role, the auth role itself or a role past its C(VALID UNTIL); C(EXECUTE) revoked from
    C(PUBLIC) and granted to O(auth_user) only, C(USAGE) on the schema and C(CONNECT) on the database for
    it. A function whose definition differs is replaced.
  - On the PgBouncer host, with O(auth_file) - PgBouncer's auth file with one line, O(auth_user) with the
    SCRAM secret of O(admin_password) (mode 0600, owned by O(auth_file_owner)). The secret already there is
    kept while the password matches it, so a second run changes nothing. This is the password for
    PgBouncer's admin console, where O(auth_user) is the only admin.
  - Returns RV(auth_query), the line for C(pgbouncer.ini).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  auth_user:
    description:
      - PgBouncer's C(auth_user), the role that runs the lookup function, and PgBouncer's admin.
    type: str
    default: dbarch_pgbouncer
  databases:
    description:
      - Databases (on the server of the connection options) that PgBouncer pools, each of which gets the
        lookup function. PgBouncer runs C(auth_query) in the database a client asks for. Empty to only write
        O(auth_file).
    type: list
    elements: str
    default: []
  schema:
    description:
      - Schema of the lookup function, created when missing (lower-case name; C(auth_query) names it
        unquoted).
    type: str
    default: pgbouncer
  auth_file:
    description:
      - PgBouncer's C(auth_file) on this host, an absolute path; not written when omitted.
    type: path
  auth_file_owner:
    description:
      - OS user PgBouncer runs as (Debian's package runs it as C(postgres)); owns O(auth_file).
    type: str
    default: postgres
  admin_password:
    description:
      - Password of O(auth_user) on PgBouncer (its admin console), stored in O(auth_file) only as a SCRAM
        secret. Required with O(auth_file). Never shown in output or logs.
    type: str
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description:
      - Reads the catalogs and the auth file; returns the statements it would run in RV(queries) and changes
        nothing.
  diff_mode:
    support: full
    description:
      - The auth file before and after, with every secret masked.
notes:
  - Connect as a superuser - the function reads C(pg_authid) with its owner's rights, so its owner must be
    one. On managed services without C(pg_authid) (RDS) C(auth_query) cannot read SCRAM secrets this way.
  - PgBouncer 1.18 cannot log in to PostgreSQL as O(auth_user) with a SCRAM secret alone (it needs the
    plaintext password, which this module never stores). Let O(auth_user) in without a password, by a TLS
    client certificate (C(hostssl all dbarch_pgbouncer <PgBouncer address>/32 cert) in C(pg_hba.conf), and
    C(server_tls_cert_file) / C(server_tls_key_file) in C(pgbouncer.ini), as the
    M(dbarch.postgresql.pgbouncer) role writes it). See docs/pgbouncer.md.
seealso:
  - module: dbarch.postgresql.pgbouncer
  - module: dbarch.postgresql.pgbouncer_info
  - name: PgBouncer authentication settings
    description: auth_user, auth_query and the auth file format.
    link: https://www.pgbouncer.org/config.html#authentication-settings
"""

EXAMPLES = r"""
- name: Lookup function in the pooled databases, auth file on the PgBouncer host
  dbarch.postgresql.pgbouncer_auth:
    databases: [shop, billing]
    auth_file: /etc/pgbouncer/userlist.txt
    admin_password: "{{ vault_pgbouncer_admin_password }}"
  register: pgbouncer_auth

- name: Show the auth_query line
  ansible.builtin.debug:
    msg: "auth_query = {{ pgbouncer_auth.auth_query }}"
"""

RETURN = r"""
auth_query:
  description: The C(auth_query) setting that calls the lookup function.
  returned: always
  type: str
  sample: SELECT uname, phash FROM pgbouncer.user_lookup($1)
role_created:
  description: Whether O(auth_user) was (in check mode, would be) created.
  returned: always
  type: bool
databases:
  description:
    - Per database, C(changed), C(function) and C(other_grantees) (roles other than O(auth_user) and the
      owner that may run the function, so may read SCRAM secrets; the module leaves their grants alone and
      reports them).
  returned: always
  type: dict
auth_file:
  description: C(path), C(existed), C(entries_before) (names), C(password_changed), C(rewritten), C(changed).
  returned: when O(auth_file) is given
  type: dict
queries:
  description: The SQL the module ran (in check mode, would run).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import ansible_pg, fsutil
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer_auth as eng


def database_work(module, result):
    """Role and lookup function in every database; returns whether anything changed."""
    params = module.params
    changed = False
    role_exists = True
    for index, dbname in enumerate(params["databases"]):
        session = ansible_pg.connect(module, params=dict(params, login_db=dbname))
        module.session = session
        try:
            statements = []
            if index == 0:
                statements, facts = eng.plan_role(session, params["auth_user"])
                role_exists = facts["exists"]
                result["role_created"] = not role_exists
            db_statements, facts = eng.plan_database(
                session, params["schema"], params["auth_user"], role_exists=role_exists
            )
            statements += db_statements
            facts["changed"] = bool(statements)
            result["databases"][dbname] = facts
            texts = [s.as_string(session.conn) for s in statements]
            if statements and not module.check_mode:
                if not eng.current_is_superuser(session):
                    raise eng.PgBouncerAuthError(
                        "%s: creating the lookup function needs a superuser (the SECURITY DEFINER function "
                        "reads pg_authid with its owner's rights); connect as one. Statements needed: %s"
                        % (session.target, "; ".join(texts))
                    )
                eng.apply(session, statements)
            result["queries"] += texts
            changed = changed or bool(statements)
            role_exists = True if not module.check_mode else role_exists
        finally:
            session.close()
    module.session = None
    return changed


def auth_file_work(module, result):
    params = module.params
    path = params["auth_file"]
    changed, text, facts = eng.plan_userlist(
        path, params["auth_user"], params["admin_password"], params["auth_file_owner"]
    )
    facts["changed"] = changed
    result["auth_file"] = facts
    if changed and module._diff:
        raw = fsutil.read_bytes(path)
        before = raw.decode("utf-8", "replace") if raw is not None else None
        result["diff"] = dict(
            before_header=path,
            after_header=path,
            before=eng.masked_userlist(before),
            after=eng.masked_userlist(text if text is not None else before),
        )
    if changed and not module.check_mode:
        eng.write_userlist(path, text, params["auth_file_owner"])
    return changed


def main():
    module = DbarchModule(
        argument_spec=dict(
            auth_user=dict(type="str", default="dbarch_pgbouncer"),
            databases=dict(type="list", elements="str", default=[]),
            schema=dict(type="str", default="pgbouncer"),
            auth_file=dict(type="path"),
            auth_file_owner=dict(type="str", default="postgres"),
            admin_password=dict(type="str", no_log=True),
        ),
        required_by={"auth_file": "admin_password"},
        supports_check_mode=True,
    )
    module.require_absolute("auth_file")
    params = module.params
    result = dict(changed=False, role_created=False, databases={}, queries=[])
    try:
        eng.check_name("auth_user", params["auth_user"])
        result["auth_query"] = eng.auth_query(params["schema"])
        changed = database_work(module, result)
        if params["auth_file"]:
            changed = auth_file_work(module, result) or changed
    except (DbarchError, OSError) as exc:
        module.fail_from(exc, queries=result["queries"])
    result["changed"] = changed
    module.exit_json(**result)


if __name__ == "__main__":
    main()
