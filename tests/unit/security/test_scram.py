# -*- coding: utf-8 -*-
"""Verifiers recomputed offline match what PostgreSQL 15 itself stored.

The stored values below were produced by a real server (CREATE ROLE ... PASSWORD with
password_encryption scram-sha-256 and md5), not by this module.
"""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.security import scram

STORED = {
    # role: (stored verifier, password)
    "alice": (
        "SCRAM-SHA-256$4096:N50M2AxZin7aHSbK0fpJlQ==$AG/lSzg7Dplbjz8VxqssAosHlsjxVvK0MryykNBuo8s="
        ":HooD2ytVL7NPXE2lzwW6DSUhUcXibIZjzFzhCQeTTCk=",
        "correct horse",
    ),
    "bob": ("md55084196a44b964e4f23437318558fb73", "s3cr3t"),
    "carol": ("md5edfe131c72d592b593642a43cebeed4d", "pässwörd"),
    "dave": (
        "SCRAM-SHA-256$4096:NUMnL7Q8oawNVOZznMfhbg==$47PE1QDwlSDK6OUaGkTn4HvzZIDUddCcCnCvhVD2j+8="
        ":lTNcqIvSHyJgQlHdnDT/B42nKKTbk4cmkbV2CsQMrtk=",
        "pässwörd",
    ),
    # SASLprep maps the roman numeral and the fullwidth letter (NFKC): "IXAb"
    "erin": (
        "SCRAM-SHA-256$4096:kCooMPklG0F+GawIApllyg==$5ykT+TnVtv1TYt0COtq9MSkMMuOTNrXyVC9R0z3yWWY="
        ":PZgxYeo3Z8DtnVWgeWXnpsoxgSmwIUXen5DqkgHURiE=",
        "ⅨＡb",
    ),
}


@pytest.mark.parametrize("role", sorted(STORED))
def test_server_verifier_matches_its_password(role):
    stored, password = STORED[role]
    assert scram.matches(stored, password, role)


@pytest.mark.parametrize("role", sorted(STORED))
def test_server_verifier_rejects_other_passwords(role):
    stored, password = STORED[role]
    assert not scram.matches(stored, password + "x", role)
    assert not scram.matches(stored, role, role)


def test_erin_normalized_form_matches():
    stored = STORED["erin"][0]
    assert scram.matches(stored, "IXAb", "erin")


def test_md5_depends_on_role_name():
    stored, password = STORED["bob"]
    assert not scram.matches(stored, password, "robert")


def test_computed_verifier_reproduces_server_keys():
    stored, password = STORED["alice"]
    iterations, salt = scram.parse_scram(stored)[:2]
    assert scram.scram_verifier(password, salt=salt, iterations=iterations) == stored


def test_new_verifier_has_random_salt_and_round_trips():
    one = scram.scram_verifier("pw")
    two = scram.scram_verifier("pw")
    assert one != two
    assert scram.verifier_kind(one) == "scram-sha-256"
    assert scram.matches(one, "pw", "anyone")


def test_kinds():
    assert scram.verifier_kind(None) is None
    assert scram.verifier_kind("") is None
    assert scram.verifier_kind(STORED["bob"][0]) == "md5"
    with pytest.raises(scram.VerifierError):
        scram.verifier_kind("plain-text")
    assert not scram.matches(None, "x", "r")
