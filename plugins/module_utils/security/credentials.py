# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Credential rotation for a login role (the ``credential_rotate`` module).

- The new password is turned into a SCRAM-SHA-256 verifier here, on the controller
  (security/scram.py), and only the verifier is sent: ``ALTER ROLE r PASSWORD 'SCRAM-SHA-256$...'``.
  The plaintext never reaches the server, its logs or pg_stat_statements.
- The password is given or generated (``secrets``), stored in AWS Secrets Manager as the JSON
  RDS rotation uses (engine, host, port, username, password, dbname), and a login with it is
  verified before the rotation is reported as done.
- Two-phase rotation: with an alternate login role (two roles with the same rights, the
  application switches between them through the secret), the role *not* named in the secret
  gets the new password, the secret then names it, and the old role keeps working until
  ``revoke_old`` (its password set to NULL).

Plain Python, no Ansible imports. The statements recorded for the module's ``queries`` never
hold the verifier.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import secrets
import string

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import aws, pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.security import scram

ALPHABET = string.ascii_letters + string.digits + "-_.~"
MIN_LENGTH = 16


class CredentialError(DbarchError):
    """The rotation cannot go on; the message says why and what to do."""


def generate_password(length=32):
    if length < MIN_LENGTH:
        raise CredentialError("password_length=%d is too short: use %d or more" % (length, MIN_LENGTH))
    return "".join(secrets.choice(ALPHABET) for _index in range(length))


# -- the database side -------------------------------------------------------------------
def role_state(session, role):
    """{'exists', 'login', 'verifier' (None when unreadable or unset), 'readable'}."""
    row = session.fetchone("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,))
    if row is None:
        return dict(exists=False, login=False, verifier=None, readable=False)
    readable = bool(session.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))
    verifier = None
    if readable:
        verifier = session.scalar(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,), record=False
        )
        session.queries.append("SELECT rolpassword FROM pg_authid WHERE rolname = %s")
    return dict(exists=True, login=bool(row["rolcanlogin"]), verifier=verifier, readable=readable)


def password_matches(state, role, password):
    """True when the stored verifier is the one of ``password`` (offline; False when unknown)."""
    if not state.get("verifier"):
        return False
    try:
        return scram.matches(state["verifier"], password, role)
    except scram.VerifierError:
        return False


def set_password(session, role, password, iterations=scram.DEFAULT_ITERATIONS):
    """ALTER ROLE ... PASSWORD '<SCRAM verifier computed here>' (the verifier is not recorded)."""
    verifier = scram.scram_verifier(password, iterations=iterations)
    query = pg.pgsql.SQL("ALTER ROLE {} PASSWORD {}").format(pg.ident(role), pg.literal(verifier))
    session.execute(query, record=False)
    session.queries.append(
        "ALTER ROLE %s PASSWORD '<SCRAM-SHA-256 verifier computed on the controller>'" % role
    )


def revoke_password(session, role):
    query = pg.pgsql.SQL("ALTER ROLE {} PASSWORD NULL").format(pg.ident(role))
    session.execute(query)


def verify_login(params, role, password, module_name="credential_rotate"):
    """Open a session as ``role`` with ``password`` on the same server; CredentialError if refused."""
    probe = dict(
        (k, v) for k, v in (params or {}).items() if k.startswith("login_") or k in ("ssl_mode", "ca_cert")
    )
    probe.update(login_user=role, login_password=password)
    probe.pop("login_unix_socket", None) if probe.get("login_host") else None
    try:
        session = pg.connect(probe, module_name)
    except pg.PgError as exc:
        raise CredentialError(
            "the new password was set but a login as %s with it failed (%s); the secret was not "
            "updated: check pg_hba.conf for %s (scram-sha-256 over the address used here)"
            % (role, str(exc).replace(password, "********"), role)
        ) from None
    try:
        return session.scalar("SELECT current_user") == role
    finally:
        session.close()


# -- Secrets Manager ---------------------------------------------------------------------
def read_secret(client, secret_id):
    """The secret's JSON as a dict, {} when it holds none, None when the secret does not exist."""
    try:
        value = client.get_secret_value(SecretId=secret_id)
    except (aws.ClientError, aws.BotoCoreError) as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            return None
        raise CredentialError(aws.describe("Secrets Manager GetSecretValue(%s)" % secret_id, exc)) from None
    try:
        data = json.loads(value.get("SecretString") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def write_secret(client, secret_id, document, exists, description=None):
    """Create or put a new version; returns (arn, version_id)."""
    text = json.dumps(document, sort_keys=True)
    try:
        if exists:
            out = client.put_secret_value(SecretId=secret_id, SecretString=text)
        else:
            kwargs = dict(Name=secret_id, SecretString=text)
            if description:
                kwargs["Description"] = description
            out = client.create_secret(**kwargs)
    except (aws.ClientError, aws.BotoCoreError) as exc:
        raise CredentialError(aws.describe("Secrets Manager write of %s" % secret_id, exc)) from None
    return out.get("ARN"), out.get("VersionId")


def secret_document(params, role, password, previous=None):
    doc = dict(previous or {})
    doc.update(
        engine="postgres",
        host=params.get("login_host") or doc.get("host"),
        port=params.get("login_port") or doc.get("port") or 5432,
        dbname=params.get("login_db") or doc.get("dbname") or "postgres",
        username=role,
        password=password,
    )
    return doc


# -- the rotation ------------------------------------------------------------------------
def plan(session, role, alternate_role, secret):
    """Which role gets the new password (``target``) and which one is the old (``old``)."""
    roles = [role] + ([alternate_role] if alternate_role else [])
    states = {}
    for name in roles:
        states[name] = role_state(session, name)
        if not states[name]["exists"]:
            raise CredentialError(
                "role %s does not exist: create it (CREATE ROLE %s LOGIN%s) first"
                % (name, name, " IN ROLE <the group role of %s>" % role if name == alternate_role else "")
            )
        if not states[name]["login"]:
            raise CredentialError("role %s cannot log in (NOLOGIN): nothing to rotate" % name)
    active = (secret or {}).get("username")
    if alternate_role:
        if active == role:
            target, old = alternate_role, role
        elif active == alternate_role:
            target, old = role, alternate_role
        else:
            target, old = role, None
    else:
        target, old = role, None
    return dict(target=target, old=old, states=states, active=active)


def rotate(
    session,
    sm_client,
    params,
    role,
    secret_id,
    password=None,
    generate=False,
    length=32,
    alternate_role=None,
    revoke_old=False,
    check_mode=False,
):
    """Rotate; returns the result dict (no password in it). ``params``: connection options."""
    if bool(password) == bool(generate):
        raise CredentialError("give exactly one of password and generate: true")
    if alternate_role and alternate_role == role:
        raise CredentialError("alternate_role must be another role than role")
    secret = read_secret(sm_client, secret_id)
    planned = plan(session, role, alternate_role, secret)
    target, old = planned["target"], planned["old"]
    result = dict(
        role=target,
        previous_role=old,
        secret_id=secret_id,
        two_phase=bool(alternate_role),
        revoked=None,
        verified=False,
        changed=False,
        actions=[],
    )
    # Idempotence for a given password: the secret already names the role with this
    # password and the role's verifier matches it -> nothing to do.
    if password and not generate and secret and secret.get("password") == password:
        active = secret.get("username")
        if active in planned["states"] and password_matches(planned["states"][active], active, password):
            result.update(role=active, previous_role=None, verified=None)
            if revoke_old and alternate_role:
                other = alternate_role if active == role else role
                if planned["states"][other]["verifier"] or not planned["states"][other]["readable"]:
                    result["actions"].append("revoke the password of %s" % other)
                    result.update(changed=True, revoked=other)
                    if not check_mode:
                        revoke_password(session, other)
            return result
    new = password or generate_password(length)
    result["changed"] = True
    result["actions"] = [
        "set a new SCRAM-SHA-256 verifier for %s" % target,
        "verify a login as %s" % target,
        "%s secret %s" % ("update" if secret is not None else "create", secret_id),
    ]
    if revoke_old and old:
        result["actions"].append("revoke the password of %s" % old)
    if check_mode:
        return result
    set_password(session, target, new)
    result["verified"] = verify_login(params, target, new)
    if not result["verified"]:
        raise CredentialError("a login as %s did not report itself as %s" % (target, target))
    arn, version = write_secret(
        sm_client,
        secret_id,
        secret_document(params, target, new, secret),
        exists=secret is not None,
        description="PostgreSQL login for %s (dbarch.postgresql.credential_rotate)" % role,
    )
    result.update(secret_arn=arn, secret_version=version)
    if revoke_old and old:
        revoke_password(session, old)
        result["revoked"] = old
    return result
