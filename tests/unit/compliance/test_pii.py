# -*- coding: utf-8 -*-
"""PII matchers: names in several languages, value patterns with their checksums."""

import datetime

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.compliance import pii


@pytest.mark.parametrize(
    "name, category",
    [
        ("email", "email"),
        ("customerEmail", "email"),
        ("geburtsdatum", "birth_date"),
        ("date_de_naissance", "birth_date"),
        ("fecha_nacimiento", "birth_date"),
        ("telefoonnummer", "phone"),
        ("kundentelefonnummer", "phone"),
        ("nachname", "person_name"),
        ("prenom", "person_name"),
        ("apellidos", "person_name"),
        ("achternaam", "person_name"),
        ("Straße", "address"),
        ("code_postal", "address"),
        ("iban", "bank_account"),
        ("burgerservicenummer", "national_id"),
        ("client_ip", "ip_address"),
    ],
)
def test_names(name, category):
    hit = pii.match_name(name)
    assert hit and hit[0] == category and hit[1] >= 0.5, hit


@pytest.mark.parametrize("name", ["status", "quantity", "created_at", "product_code", "description", "total"])
def test_plain_names(name):
    assert pii.match_name(name) is None


def test_weak_name_counts_in_a_table_of_people():
    assert pii.match_name("name", "products")[1] < 0.5
    assert pii.match_name("name", "customers")[1] >= 0.5


def test_checksums():
    assert pii.is_iban("DE89 3704 0044 0532 0130 00") and not pii.is_iban("DE88370400440532013000")
    assert pii.is_card("4111 1111 1111 1111") and not pii.is_card("4111111111111112")
    assert pii.is_bsn("111222333") and not pii.is_bsn("111222334")
    assert pii.is_dni("12345678Z") and not pii.is_dni("12345678A")
    assert pii.is_national_id("123-45-6789") and not pii.is_national_id("000-45-6789")


def test_values_need_a_majority_and_never_quote_them():
    cards = [
        "4111111111111111",
        "4012888888881881",
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
    ]
    hit = pii.match_values(cards)
    assert hit[0] == "payment_card" and "4111" not in hit[2]
    assert pii.match_values(["12", "13", "14", "15", "16"]) is None
    today = datetime.date(2025, 1, 1)
    assert (
        pii.match_values(["1980-05-01", "1975-12-31", "2001-01-09", "1966-07-04", "1990-02-02"], today)[0]
        == "birth_date"
    )
    assert (
        pii.match_values(["2024-05-01", "2024-12-31", "2023-01-09", "2024-07-04", "2024-02-02"], today)
        is None
    )
