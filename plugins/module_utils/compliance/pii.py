# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PII inventory (the ``pii_inventory_info`` module): which columns hold personal data.

Two kinds of evidence, each with a confidence between 0 and 1:
- the column's name (and comment) against dictionaries of PII terms in English, German, French,
  Spanish, Dutch, Italian and Portuguese, matched on the name's words (snake_case, camelCase)
  and, for longer terms, inside compound names (``kundentelefonnummer``);
- with sampling, the values of a random sample of rows (profiling's TABLESAMPLE /
  ORDER BY random() query, in a READ ONLY transaction) against value patterns with their
  checksums: e-mail, phone, IBAN (ISO 13616 mod 97), payment card (Luhn), national ids
  (US SSN, Dutch BSN eleven-test, Spanish DNI letter, French NIR key), IP address, date of
  birth (ages 14 to 110).

Evidence never quotes a value: only how many sampled values matched. Plain Python, no
Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import ipaddress
import re
import unicodedata

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import catalog, pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import profiling

# category -> (GDPR kind, terms). Terms are lower case, accents removed.
DICTIONARY = {
    "email": (
        "contact",
        "email e_mail mail emailaddress mailadresse courriel adresse_mail correo correo_electronico "
        "emailadres mailadres posta_elettronica",
    ),
    "phone": (
        "contact",
        "phone phonenumber telephone tel mobile cell cellphone msisdn fax telefon telefonnummer handy "
        "handynummer mobilnummer portable telefono movil celular telefoonnummer mobiel gsm cellulare "
        "telemovel",
    ),
    "person_name": (
        "identity",
        "name firstname first_name lastname last_name surname fullname full_name given_name family_name "
        "forename middle_name maiden_name vorname nachname familienname prenom nom nom_de_famille nombre "
        "apellido apellidos voornaam achternaam tussenvoegsel naam cognome nome sobrenome",
    ),
    "address": (
        "location",
        "address street street_address addr address_line city zip zipcode postcode postal_code postalcode "
        "adresse strasse anschrift hausnummer plz postleitzahl wohnort ort rue ville code_postal direccion "
        "calle ciudad codigo_postal adres straat huisnummer woonplaats postcode indirizzo via citta cap "
        "morada",
    ),
    "birth_date": (
        "identity",
        "dob birthdate birth_date date_of_birth birthday geburtsdatum geburtstag date_naissance "
        "date_de_naissance naissance fecha_nacimiento nacimiento geboortedatum data_nascita data_nascimento",
    ),
    "national_id": (
        "identifier",
        "ssn social_security social_security_number national_id nationalid national_insurance nino passport "
        "passport_number id_card personalausweis ausweisnummer steuer_id steueridentifikationsnummer "
        "sozialversicherungsnummer nir insee numero_securite_sociale secu dni nie nif cedula bsn "
        "burgerservicenummer "
        "sofinummer codice_fiscale tax_id taxid tin",
    ),
    "bank_account": (
        "financial",
        "iban bic swift bank_account account_number kontonummer bankverbindung rib compte_bancaire "
        "cuenta_bancaria rekeningnummer",
    ),
    "payment_card": (
        "financial",
        "card_number cardnumber credit_card creditcard cc_number pan kreditkarte kartennummer carte_bancaire "
        "numero_carte tarjeta tarjeta_credito creditcardnummer",
    ),
    "ip_address": ("online identifier", "ip ip_address ipaddress ip_addr remote_addr client_ip client_addr"),
    "gender": ("special", "gender sex geschlecht sexe genero sexo geslacht"),
    "health": (
        "special category (art. 9)",
        "diagnosis health medical blood_type krankheit diagnose sante salud",
    ),
    "nationality": (
        "identity",
        "nationality citizenship staatsangehorigkeit nationalite nacionalidad nationaliteit",
    ),
}
# Short or ambiguous terms: only as a whole word, and with a lower confidence.
WEAK_TERMS = frozenset(
    "name nom naam nome nombre tel ort via cap pan tin city zip ip sex mail nie nino secu cell handy "
    "portable mobile addr gsm fax".split()
)
# Table names that say the rows are people: a weak name match in them counts as a plain one.
PERSON_TABLES = re.compile(
    r"(customer|client|user|person|people|employee|staff|member|patient|contact|kunde|mitarbeiter|"
    r"benutzer|klant|gebruiker|medewerker|usuario|empleado|utilisateur|salarie|cliente|utente|account)"
)

NAME_CONFIDENCE = 0.7
WEAK_NAME_CONFIDENCE = 0.4
COMPOUND_CONFIDENCE = 0.6
MIN_COMPOUND_TERM = 6
# A value kind is reported when this share of the sampled non-empty values matches.
MIN_MATCH_SHARE = 0.6
MIN_VALUES = 5


class PiiError(DbarchError):
    """The inventory cannot be read as asked."""


def _fold(text):
    text = str(text).replace("ß", "ss")
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    return text.lower()


def words(name):
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name))
    return [w for w in re.split(r"[^a-z0-9]+", _fold(spaced)) if w]


_TERMS = {}
for _category, (_kind, _text) in DICTIONARY.items():
    for _term in _text.split():
        _TERMS.setdefault(_term, _category)


def match_name(name, table_name=None):
    """(category, confidence, evidence) of the best dictionary match of a column name, or None.

    ``table_name``: a weak term (``name``, ``tel``) in a table of people counts as a plain one."""
    person = bool(table_name) and bool(PERSON_TABLES.search(_fold(table_name)))
    parts = words(name)
    joined = "_".join(parts)
    flat = "".join(parts)
    best = None
    candidates = []
    for term, category in _TERMS.items():
        term_words = term.split("_")
        n = len(term_words)
        windows = ["_".join(parts[i : i + n]) for i in range(len(parts) - n + 1)]
        if term in windows or term == joined:
            weak = term in WEAK_TERMS
            conf = WEAK_NAME_CONFIDENCE if weak and not person else NAME_CONFIDENCE
            if term == joined and not weak:
                conf += 0.1
            candidates.append((conf, len(term), category, "name word %r" % term))
        elif len(term.replace("_", "")) >= MIN_COMPOUND_TERM and term.replace("_", "") in flat:
            candidates.append((COMPOUND_CONFIDENCE, len(term), category, "name contains %r" % term))
    if candidates:
        conf, _length, category, evidence = max(candidates)
        best = (category, round(conf, 2), evidence)
    return best


# -- value patterns ------------------------------------------------------------------------
_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^(\+|00)?[0-9][0-9 ()./-]{6,18}[0-9]$")
_SSN = re.compile(r"^(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}$")
_DNI = re.compile(r"^(\d{8})-?([A-Za-z])$")
_DATE_TEXT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$|^(\d{2})[./](\d{2})[./](\d{4})$")


def luhn(digits):
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_card(value):
    digits = re.sub(r"[ -]", "", value)
    return digits.isdigit() and 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn(digits)


def is_iban(value):
    text = re.sub(r"\s", "", value).upper()
    if not re.match(r"^[A-Z]{2}\d{2}[A-Z0-9]{10,30}$", text):
        return False
    moved = text[4:] + text[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def is_bsn(value):
    if not re.match(r"^\d{9}$", value) or value == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(value[:8], range(9, 1, -1))) - int(value[8])  # noqa: B905
    return total % 11 == 0


def is_dni(value):
    match = _DNI.match(value)
    return bool(match) and "TRWAGMYFPDXBNJZSQVHLCKE"[int(match.group(1)) % 23] == match.group(2).upper()


def is_nir(value):
    text = re.sub(r"\s", "", value)
    if not re.match(r"^[12]\d{12}\d{2}$", text):
        return False
    return 97 - int(text[:13]) % 97 == int(text[13:])


def is_national_id(value):
    return bool(_SSN.match(value)) or is_bsn(value) or is_dni(value) or is_nir(value)


def is_ip(value):
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        return False
    return True


def is_phone(value):
    digits = re.sub(r"\D", "", value)
    return (
        bool(_PHONE.match(value))
        and 8 <= len(digits) <= 15
        and not is_card(value)
        and not _DATE_TEXT.match(value)
    )


def _birth_age(value, today):
    match = _DATE_TEXT.match(value[:10])
    if not match:
        return None
    g = match.groups()
    try:
        if g[0]:
            born = datetime.date(int(g[0]), int(g[1]), int(g[2]))
        else:
            born = datetime.date(int(g[5]), int(g[4]), int(g[3]))
    except ValueError:
        return None
    return (today - born).days / 365.25


# kind -> (category, test on one value text)
VALUE_KINDS = (
    ("email", "email", lambda v: bool(_EMAIL.match(v))),
    ("iban", "bank_account", is_iban),
    ("payment_card", "payment_card", is_card),
    ("national_id", "national_id", is_national_id),
    ("ip_address", "ip_address", is_ip),
    ("phone", "phone", is_phone),
)


def match_values(values, today=None):
    """(category, confidence, evidence) for sampled value texts, or None."""
    values = [str(v).strip() for v in values if v is not None and str(v).strip()]
    if len(values) < MIN_VALUES:
        return None
    best, best_share = None, 0.0
    # In VALUE_KINDS order (checksummed kinds before phone): a tie keeps the earlier kind.
    for kind, category, test in VALUE_KINDS:
        hits = sum(1 for v in values if test(v))
        share = hits / float(len(values))
        if share >= MIN_MATCH_SHARE and share > best_share:
            best_share = share
            best = (
                category,
                round(min(0.95, 0.5 + share / 2), 2),
                "%d of %d sampled values are %s"
                % (hits, len(values), kind.replace("_", " ") + _check_word(kind)),
            )
    if best is None:
        today = today or datetime.date.today()
        ages = [_birth_age(v, today) for v in values]
        adult = sum(1 for a in ages if a is not None and 14 <= a <= 110)
        dated = sum(1 for a in ages if a is not None)
        if dated == len(values) and adult / float(len(values)) >= 0.9:
            best = (
                "birth_date",
                0.5,
                "%d of %d sampled dates are 14 to 110 years ago" % (adult, len(values)),
            )
    return best


def _check_word(kind):
    return {
        "iban": " (mod 97 valid)",
        "payment_card": " (Luhn valid)",
        "national_id": " (format and check digit)",
    }.get(kind, "")


# -- the inventory -------------------------------------------------------------------------
def inventory(session, schemas=None, sample=False, sample_rows=1000, min_confidence=0.5):
    """{'columns': [...], 'tables': {table: [columns]}, 'sampled': [...], 'skipped': [...]}."""
    cat = catalog.snapshot(session, schemas=schemas, column_stats=False)
    found = {}
    for table in cat.relations(("r", "p")):
        if table.partition_of:
            continue
        for column in table.columns:
            hit = match_name(column.name, table.name) or (
                match_name(column.comment, table.name) if column.comment else None
            )
            if hit:
                found[(table.qualified, column.name)] = dict(
                    table=table.qualified,
                    column=column.name,
                    type=column.type,
                    category=hit[0],
                    kind=DICTIONARY[hit[0]][0],
                    confidence=hit[1],
                    evidence=[hit[2]],
                    by=["name"],
                )
    sampled, skipped = [], []
    if sample:
        _sample(session, cat, found, sampled, skipped, sample_rows)
    columns = sorted(
        (c for c in found.values() if c["confidence"] >= min_confidence),
        key=lambda c: (c["table"], c["column"]),
    )
    tables = {}
    for c in columns:
        tables.setdefault(c["table"], []).append(c["column"])
    return dict(
        columns=columns, tables=tables, sampled=sampled, tables_skipped=skipped, database=cat.database
    )


def _sample(session, cat, found, sampled, skipped, sample_rows):
    conn = session.conn
    was = conn.autocommit
    conn.autocommit = False
    try:
        conn.set_session(readonly=True)
        session.execute("SET LOCAL statement_timeout = '30s'")
        for table in cat.relations(("r", "p")):
            if table.partition_of:
                continue
            cols = profiling.sampled_columns(table)
            if not cols:
                continue
            if (table.total_bytes or 0) > profiling.MAX_TABLE_BYTES:
                skipped.append(dict(table=table.qualified, reason="larger than the sampling bound"))
                continue
            query, method = profiling._sample_query(table, cols, sample_rows)
            session.execute("SAVEPOINT pii_sample")
            try:
                rows = session.execute(query).fetchall()
            except pg.PgError as exc:
                session.execute("ROLLBACK TO SAVEPOINT pii_sample")
                skipped.append(dict(table=table.qualified, reason=str(exc)))
                continue
            sampled.append(dict(table=table.qualified, rows=len(rows), method=method))
            for i, name in enumerate(cols):
                hit = match_values([r[i] for r in rows])
                if not hit:
                    continue
                column = table.column(name)
                key = (table.qualified, name)
                entry = found.get(key)
                if entry is None:
                    found[key] = dict(
                        table=table.qualified,
                        column=name,
                        type=column.type,
                        category=hit[0],
                        kind=DICTIONARY[hit[0]][0],
                        confidence=hit[1],
                        evidence=[hit[2]],
                        by=["values"],
                    )
                    continue
                entry["evidence"].append(hit[2])
                entry["by"].append("values")
                if entry["category"] == hit[0]:
                    entry["confidence"] = round(min(0.99, entry["confidence"] + hit[1] / 2), 2)
                elif hit[1] > entry["confidence"]:
                    entry.update(category=hit[0], kind=DICTIONARY[hit[0]][0], confidence=hit[1])
    finally:
        conn.rollback()
        conn.set_session(readonly="DEFAULT")
        conn.autocommit = was
