# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Password verifiers as PostgreSQL stores them in pg_authid.rolpassword.

Two uses, both on the controller so that a password never reaches the server in clear:
- compute a SCRAM-SHA-256 verifier for ``ALTER ROLE ... PASSWORD '<verifier>'``
  (PostgreSQL stores a verifier given in this form as is);
- test a stored verifier against a candidate password offline (weak-password audit),
  by recomputing it from the stored salt and iteration count.

Format (RFC 5802/7677, PostgreSQL's src/common/scram-common.c):
``SCRAM-SHA-256$<iterations>:<salt base64>$<StoredKey base64>:<ServerKey base64>``;
md5 verifiers are ``md5`` + hex(md5(password || role name)).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import hmac
import os
import re
import stringprep
import unicodedata

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

DEFAULT_ITERATIONS = 4096  # scram_iterations' default (settable from PostgreSQL 16)
SALT_BYTES = 16

_SCRAM_RE = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")
_MD5_RE = re.compile(r"^md5[0-9a-f]{32}$")


class VerifierError(DbarchError, ValueError):
    """A stored verifier that is neither SCRAM-SHA-256 nor md5."""


def saslprep(password):
    """SASLprep (RFC 4013) as PostgreSQL applies it: on failure, use the raw bytes.

    PostgreSQL normalizes a password with SASLprep when it is valid UTF-8 and the
    profile accepts it; otherwise it uses the password as given. Doing the same here
    keeps locally computed verifiers identical to the server's.
    """
    if not password or all(ord(c) < 128 for c in password):
        return password
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in password if not stringprep.in_table_b1(c)
    )
    normalized = unicodedata.normalize("NFKC", mapped)
    if not normalized:
        return password
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
        stringprep.in_table_a1,
    )
    for c in normalized:
        if any(test(c) for test in prohibited):
            return password
    has_ral = any(stringprep.in_table_d1(c) for c in normalized)
    if has_ral:
        if any(stringprep.in_table_d2(c) for c in normalized):
            return password
        if not (stringprep.in_table_d1(normalized[0]) and stringprep.in_table_d1(normalized[-1])):
            return password
    return normalized


def _keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def scram_verifier(password, salt=None, iterations=DEFAULT_ITERATIONS):
    """The SCRAM-SHA-256 verifier of ``password`` (a new random salt unless given)."""
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    stored_key, server_key = _keys(password, salt, iterations)
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, _b64(salt), _b64(stored_key), _b64(server_key))


def _b64(raw):
    return base64.b64encode(raw).decode("ascii")


def md5_verifier(password, role):
    return "md5" + hashlib.md5((password + role).encode("utf-8")).hexdigest()  # noqa: S324 (PostgreSQL's format)


def verifier_kind(stored):
    """'scram-sha-256', 'md5', or None for a value that is no verifier (no password)."""
    if not stored:
        return None
    if _SCRAM_RE.match(stored):
        return "scram-sha-256"
    if _MD5_RE.match(stored):
        return "md5"
    raise VerifierError("not a SCRAM-SHA-256 or md5 verifier")


def parse_scram(stored):
    """(iterations, salt bytes, stored_key bytes, server_key bytes)."""
    match = _SCRAM_RE.match(stored or "")
    if not match:
        raise VerifierError("not a SCRAM-SHA-256 verifier")
    iterations, salt, stored_key, server_key = match.groups()
    return int(iterations), base64.b64decode(salt), base64.b64decode(stored_key), base64.b64decode(server_key)


def matches(stored, password, role):
    """True when ``password`` is the one behind the stored verifier of ``role``.

    Offline: nothing is sent anywhere. Comparison in constant time.
    """
    kind = verifier_kind(stored)
    if kind == "md5":
        return hmac.compare_digest(stored, md5_verifier(password, role))
    if kind == "scram-sha-256":
        iterations, salt, stored_key, server_key = parse_scram(stored)
        got_stored, got_server = _keys(password, salt, iterations)
        return hmac.compare_digest(got_stored, stored_key) and hmac.compare_digest(got_server, server_key)
    return False
