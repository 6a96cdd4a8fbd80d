#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: credential_rotate
short_description: Rotate a login role's password (SCRAM verifier made locally), stored in Secrets Manager
version_added: "0.3.0"
description:
  - Sets a new password for a login role as a SCRAM-SHA-256 verifier computed where the module runs
    (C(ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$...')), so the plaintext never reaches the server,
    its logs or C(pg_stat_statements).
  - The password is given (O(password)) or generated (O(generate)); it is stored in AWS Secrets Manager
    under O(secret_id) as the JSON document RDS rotation uses (C(engine), C(host), C(port), C(dbname),
    C(username), C(password)), after a login with it has been verified. A failed login leaves the
    secret as it was.
  - Two-phase rotation with O(alternate_role) (a second login role with the same rights), the role the secret
    does not name gets the new password and the secret then names it; the other role keeps working, for the
    clients that still hold its password, until O(revoke_old) sets its password to NULL.
  - Idempotent for a given O(password) (the secret holds it and the role's verifier matches it; reading the
    verifier needs a superuser). With O(generate) every run rotates, which is its purpose.
  - The password never appears in the result, the C(queries) or a failure message.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  role:
    description: The login role whose password is rotated.
    type: str
    required: true
  alternate_role:
    description:
      - A second login role for two-phase rotation (members of the same group role as O(role)). The role not
        named in the secret is rotated.
    type: str
  password:
    description: The new password. Give this or O(generate).
    type: str
  generate:
    description: Generate a random password of O(password_length) characters (letters, digits, C(-_.~)).
    type: bool
    default: false
  password_length:
    description: Length of a generated password (16 or more).
    type: int
    default: 32
  secret_id:
    description: The Secrets Manager secret (name or ARN); created when missing.
    type: str
    required: true
  revoke_old:
    description:
      - In two-phase rotation, set the password of the role that was in use before to NULL (its logins with a
        password stop). With a single role the old password stops working at once anyway.
    type: bool
    default: false
extends_documentation_fragment:
  - dbarch.postgresql.aws
  - dbarch.postgresql.connection.no_aliases
attributes:
  check_mode:
    support: full
    description: Reports RV(actions); sets no password and writes no secret.
  diff_mode:
    support: none
    description: Nothing has a before and after to show.
notes:
  - Needs C(CREATEROLE) (or a superuser) on the server; boto3 where the module runs (usually the controller,
    C(delegate_to=localhost)).
  - The connection options have no short aliases here (O(password) is the new password, not
    O(login_password)).
  - The verified login goes to the same O(login_host) and O(login_port) as the module's connection;
    pg_hba.conf must accept a C(scram-sha-256) login of the role from there.
requirements:
  - boto3
seealso:
  - module: dbarch.postgresql.pgbouncer_auth
"""

EXAMPLES = r"""
- name: Quarterly rotation of the application's login, stored in Secrets Manager
  dbarch.postgresql.credential_rotate:
    role: app
    generate: true
    secret_id: prod/db/app
    region: eu-west-1
  delegate_to: localhost

- name: Two-phase rotation (app_blue / app_green), the previous one revoked
  dbarch.postgresql.credential_rotate:
    role: app_blue
    alternate_role: app_green
    generate: true
    secret_id: prod/db/app
    revoke_old: true
  delegate_to: localhost
"""

RETURN = r"""
role:
  description: The role that got the new password (the one the secret names now).
  returned: always
  type: str
previous_role:
  description: In two-phase rotation, the role that was in use before; otherwise null.
  returned: always
  type: str
revoked:
  description: The role whose password was set to NULL, or null.
  returned: always
  type: str
verified:
  description: Whether a login with the new password succeeded (null when nothing was rotated).
  returned: always
  type: bool
secret_arn:
  description: The secret's ARN.
  returned: when rotated
  type: str
secret_version:
  description: The new secret version's id.
  returned: when rotated
  type: str
actions:
  description: What was (check mode, would be) done.
  returned: always
  type: list
  elements: str
queries:
  description: The SQL the module ran (the verifier shown as a placeholder).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.security import credentials

ARGUMENT_SPEC = dict(
    role=dict(type="str", required=True),
    alternate_role=dict(type="str"),
    password=dict(type="str", no_log=True),
    generate=dict(type="bool", default=False),
    password_length=dict(type="int", default=32, no_log=False),
    secret_id=dict(type="str", required=True),
    revoke_old=dict(type="bool", default=False),
)


def main():
    module = DbarchModule(
        argument_spec=ARGUMENT_SPEC,
        aws_options=True,
        supports_check_mode=True,
        connection_aliases=False,
        mutually_exclusive=[("password", "generate")],
    )
    p = module.params
    session = module.connect()
    try:
        client = module.aws_client("secretsmanager")
        result = credentials.rotate(
            session,
            client,
            p,
            role=p["role"],
            secret_id=p["secret_id"],
            password=p["password"],
            generate=p["generate"],
            length=p["password_length"],
            alternate_role=p["alternate_role"],
            revoke_old=p["revoke_old"],
            check_mode=module.check_mode,
        )
    except DbarchError as exc:
        module.fail_from(exc, session)
    finally:
        session.close()
    result["queries"] = session.queries
    module.exit_json(**result)


if __name__ == "__main__":
    main()
