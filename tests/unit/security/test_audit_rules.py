# -*- coding: utf-8 -*-
"""The security audit's pieces that need no server: every rule's references, pg_hba judgements,
the release table, version differences, the dictionary, the summary and checklists."""

import datetime

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features
from ansible_collections.dbarch.postgresql.plugins.module_utils.security import (
    access,
    audit,
    auth,
    dictionary,
    releases,
    rules,
    scram,
)


def test_every_rule_has_cis_and_the_three_frameworks_and_a_check():
    for rule_id, rule in rules.RULES.items():
        names = {rules.framework_of(ref)[0] for ref in rule["references"]}
        assert names == {"CIS", "SOC 2", "HIPAA", "GDPR"}, rule_id
        assert rule["check"] in audit.CHECKS, rule_id
        assert fnd.registered_rule(rule_id).references == rule["references"]
        assert rule["why"]


def test_every_check_is_reachable_from_a_checklist_or_a_rule():
    in_lists = {c for items in audit.CHECKLISTS.values() for _title, checks in items for c in checks}
    with_rules = {r["check"] for r in rules.RULES.values()}
    assert set(audit.CHECKS) <= in_lists | with_rules | {"host.files"}


@pytest.mark.parametrize(
    "rule, loopback, wide",
    [
        ({"type": "host", "address": "127.0.0.1", "netmask": "255.255.255.255"}, True, False),
        ({"type": "host", "address": "::1", "netmask": ":".join(["ffff"] * 8)}, True, False),
        ({"type": "host", "address": "10.0.0.0", "netmask": "255.0.0.0"}, False, True),
        ({"type": "host", "address": "10.1.2.0", "netmask": "255.255.255.0"}, False, False),
        ({"type": "hostssl", "address": "all"}, False, True),
        ({"type": "host", "address": "samehost"}, True, False),
        ({"type": "local"}, True, False),
        ({"type": "host", "address": "db.example.com"}, False, False),
    ],
)
def test_hba_address_judgements(rule, loopback, wide):
    assert auth.is_loopback(rule) is loopback
    assert auth.is_wide(rule) is wide


def test_superuser_paths_walk_membership_recursively():
    roles = [
        {"oid": 1, "rolname": "boss", "rolsuper": True},
        {"oid": 2, "rolname": "helper", "rolsuper": False},
        {"oid": 3, "rolname": "sneaky", "rolsuper": False},
        {"oid": 4, "rolname": "app", "rolsuper": False},
    ]
    members = [{"roleid": 1, "member": 2}, {"roleid": 2, "member": 3}, {"roleid": 3, "member": 2}]
    paths = access.superuser_paths(roles, members)
    assert paths == {2: ["helper", "boss"], 3: ["sneaky", "helper", "boss"]}


def test_release_table_judgement_and_date():
    assert releases.TABLE_DATE
    behind = releases.judge(150002, today=datetime.date(2026, 12, 1))
    assert behind["behind"] == releases.RELEASES[15]["latest"] - 2 and not behind["out_of_support"]
    assert behind["cves"] == []  # the table lists no CVE id it could not verify
    assert releases.judge(140023, today=datetime.date(2026, 12, 1))["out_of_support"] is True
    assert releases.judge(189999)["newer_than_table"] is True


def test_version_differences():
    assert Features(140010).public_schema_create_by_default
    assert not Features(150004).public_schema_create_by_default
    assert Features(170000).log_connections_enabled("on")
    assert not Features(170000).log_connections_enabled("off")
    assert not Features(180000).log_connections_enabled("")
    assert Features(180000).log_connections_enabled("receipt,authentication")
    assert not Features(180000).log_connections_enabled("setup_durations")


def test_dictionary_words_and_user_files(tmp_path):
    words = dictionary.words()
    assert "password123" in words and len(words) == len(set(words))
    extra = tmp_path / "words.txt"
    extra.write_text("Zebra-Kangaroo-42\n\npassword\n")
    more = dictionary.words([str(extra), "inline-word"])
    assert more[-2:] == ["Zebra-Kangaroo-42", "inline-word"]
    with pytest.raises(dictionary.DictionaryError):
        dictionary.words([str(tmp_path / "missing.txt")])


class _Ctx:
    def __init__(self, verifiers, extra=()):
        self._v = verifiers
        self.password_dictionary = list(extra)

    def verifiers(self):
        return self._v


def test_weak_passwords_offline_and_no_password_text():
    verifiers = {
        "alice": scram.scram_verifier("alice"),
        "weak": scram.scram_verifier("password123"),
        "legacy": scram.md5_verifier("welcome1", "legacy"),
        "strong": scram.scram_verifier("vT9#qL2!mZ8@rW4$"),
        "nologin": None,
    }
    found = access.check_weak_passwords(_Ctx(verifiers))
    by_role = {f.object: f for f in found}
    assert set(by_role) == {"alice", "weak", "legacy"}
    assert by_role["alice"].rule == "SEC010" and by_role["weak"].rule == "SEC009"
    text = repr([f.to_dict() for f in found])
    for secret in ("password123", "welcome1", "vT9#qL2!mZ8@rW4$"):
        assert secret not in text


def test_summary_and_checklist():
    found = [rules.finding("SEC030", "ssl", "ssl is off.", "ALTER SYSTEM SET ssl = on;")]
    run = ["tls.settings", "tls.hba", "rest.checksums", "access.superusers"]
    skipped = [{"check": "rest.disk_encryption", "reason": "by hand"}]
    summary = audit.summarize(found, run, skipped)
    assert summary["frameworks"]["SOC 2"]["controls"]["CC6.7"]["status"] == "fail"
    assert summary["frameworks"]["CIS"]["controls"]["1.3.3"]["status"] == "pass"
    checklist = audit.checklist(found, run, skipped)
    status = {row["item"]: row["status"] for row in checklist["encryption"]}
    assert status["TLS on, minimum TLSv1.2, strong ciphers"] == "fail"
    assert status["Data checksums on"] == "pass"
    assert status["Disk encryption at rest"] == "manual"
    flat = audit.report_summary(summary, checklist, skipped)
    assert flat["SOC 2 controls"].endswith("CC6.7") or "CC6.7" in flat["SOC 2 controls"]
    assert flat["release table date"] == releases.TABLE_DATE


def test_checks_skip_must_name_a_check():
    with pytest.raises(audit.AuditError):
        audit.audit(None, checks_skip=["no.such.check"])
