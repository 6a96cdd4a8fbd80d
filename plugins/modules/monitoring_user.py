#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: monitoring_user
short_description: The least-privilege login role a metrics exporter connects as
version_added: "0.4.0"
description:
  - Creates the login role O(name) as a member of C(pg_monitor) and nothing else (C(NOSUPERUSER NOCREATEDB
    NOCREATEROLE NOREPLICATION NOBYPASSRLS)) with a connection limit, or brings an existing one there (LOGIN,
    the connection limit, membership of C(pg_monitor), and the password).
  - A role that is a superuser or has CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS is refused, not altered.
  - The password is sent as a SCRAM-SHA-256 verifier computed on the managed host, never as plaintext; the
    statements returned show it masked.
  - Used by the C(dbarch.postgresql.monitoring) role for prometheus-postgres-exporter.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  name:
    description: The role name (plain lower-case letters, digits and C(_)).
    type: str
    default: dbarch_monitor
  password:
    description:
      - The role's password. Omitted or empty, the password is left as it is (a new role has none; use peer or
        certificate authentication).
    type: str
  update_password:
    description:
      - V(always) sets the password of an existing role when it differs from O(password) (checked against
        the stored verifier, which only a superuser can read; otherwise left alone and RV(password_checked)
        is false).
      - V(on_create) sets it only when the role is created.
    type: str
    choices: [always, on_create]
    default: always
  connection_limit:
    description: The role's CONNECTION LIMIT (the exporter keeps one connection per database it scrapes).
    type: int
    default: 3
extends_documentation_fragment:
  - dbarch.postgresql.connection.no_aliases
attributes:
  check_mode:
    support: full
    description: Reads the role and returns the statements it would run; changes nothing.
  diff_mode:
    support: full
    description: The role (login, connection limit, memberships) before and after.
notes:
  - Needs a role with CREATEROLE (and, to check a password, a superuser); C(pg_monitor) exists from
    PostgreSQL 10.
seealso:
  - module: dbarch.postgresql.server_info
"""

EXAMPLES = r"""
- name: The login role of prometheus-postgres-exporter
  dbarch.postgresql.monitoring_user:
    name: dbarch_monitor
    password: "{{ vault_monitoring_password }}"
"""

RETURN = r"""
why:
  description: What differed from the wanted state (or that nothing did).
  returned: always
  type: list
  elements: str
before:
  description: The role before (C(name), C(login), C(connection_limit), C(member_of)); null when missing.
  returned: always
  type: dict
after:
  description: The role after (in check mode, as it would be).
  returned: always
  type: dict
password_checked:
  description: Whether the stored password could be compared with O(password) (needs a superuser).
  returned: always
  type: bool
statements:
  description: The statements run (or, in check mode, that would run), password verifiers masked.
  returned: always
  type: list
  elements: str
queries:
  description: The SQL the module ran, password verifiers masked.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.monitoring import monitoring_user as mu


def main():
    module = DbarchModule(
        argument_spec=dict(
            name=dict(type="str", default="dbarch_monitor"),
            password=dict(type="str", no_log=True),
            update_password=dict(
                type="str", default="always", choices=list(mu.UPDATE_PASSWORD), no_log=False
            ),
            connection_limit=dict(type="int", default=3),
        ),
        supports_check_mode=True,
        connection_aliases=False,
    )
    params = module.params

    def work(session):
        return mu.converge(
            session,
            params["name"],
            password=params["password"] or None,
            connection_limit=params["connection_limit"],
            update_password=params["update_password"],
            check_mode=module.check_mode,
        )

    result, queries = module.run(work)
    if module._diff and result["changed"]:
        result["diff"] = dict(before=result["before"] or {}, after=result["after"] or {})
    module.exit_json(queries=queries, **result)


if __name__ == "__main__":
    main()
