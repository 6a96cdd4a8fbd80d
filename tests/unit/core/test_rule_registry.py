"""One rule registry (findings.register_rule) for the migration lint and the schema review:
the docs' rule table, SARIF's rule list, and one severity per problem both analyses judge."""

import json
import os
import re

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import ddl
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import migration_lint as ml
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import schema_rules as sr
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.catalog import Catalog, Column, Table

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "migration_lint.md")


def doc_rule_rows():
    """{id: (title, default severity)} of the rule table of docs/migration_lint.md."""
    with open(DOCS) as fh:
        page = fh.read()
    table = page.split("## Rules", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        m = re.match(r"^\| (ML-\d{3}) \| (.+?) \| (\w+) \|", line)
        if m:
            assert m.group(1) not in rows, "%s listed twice" % m.group(1)
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def test_doc_rule_table_lists_exactly_the_registered_lint_rules():
    registered = {r.id: (r.title, r.severity) for r in fnd.registered_rules("migration_lint")}
    assert len(registered) == 33
    assert doc_rule_rows() == registered


def test_lint_rules_and_schema_review_rules_are_all_in_the_registry():
    for rid, title, severity, _scales, _squawk in ml.rule_table():
        reg = fnd.registered_rule(rid)
        assert (reg.title, reg.severity, reg.analysis) == (title, severity, "migration_lint")
        assert reg.why and reg.references, rid
    for entry in sr.rule_catalog():
        reg = fnd.registered_rule(entry["id"])
        assert (reg.title, reg.severity, reg.analysis) == (entry["title"], entry["severity"], "schema_review")


# ML rule -> SR rule judging the same problem
PAIRS = [
    ("ML-016", "SR-TYPE-008"),
    ("ML-017", "SR-TYPE-004"),
    ("ML-018", "SR-TYPE-006"),
    ("ML-019", "SR-TYPE-001"),
    ("ML-020", "SR-TYPE-002"),
    ("ML-025", "SR-NAME-003"),
]
LEDGER = (
    "CREATE TABLE ledger (\n"
    "  id serial PRIMARY KEY,\n"
    "  code varchar(12),\n"
    "  booked_at timestamp,\n"
    "  currency char(3)\n"
    ");\n"
)


def test_same_problem_gets_the_same_severity_from_the_lint_and_the_schema_review():
    lint = {f.rule: f for f in ml.lint_sql(LEDGER, source="V1__ledger.sql")}
    catalog = ddl.catalog_from_sql(LEDGER)
    found, _summary = sr.review(catalog, expected_rows={"public.ledger": 500000000})
    review = {f.rule: f for f in found}
    # a name over 63 bytes: in a migration (raw tokens) and in a catalog model
    long_name = "ledger_" + "x" * 60
    lint.update(
        {
            f.rule: f
            for f in ml.lint_sql("ALTER TABLE ledger ADD COLUMN %s int;" % long_name)
            if f.rule == "ML-025"
        }
    )
    cat = Catalog(database="shop", source="ddl")
    t = Table("public", "ledger2")
    t.columns.append(Column(long_name, 1, "integer"))
    cat.add(t)
    review.update({f.rule: f for f in sr.review(cat)[0] if f.rule == "SR-NAME-003"})
    for ml_rule, sr_rule in PAIRS:
        assert ml_rule in lint and sr_rule in review, (ml_rule, sr_rule, sorted(lint), sorted(review))
        assert lint[ml_rule].severity == review[sr_rule].severity, (ml_rule, sr_rule)
        a, b = fnd.registered_rule(ml_rule), fnd.registered_rule(sr_rule)
        assert a.problem and a.problem == b.problem and a.severity == b.severity and a.why == b.why


def test_a_rule_that_disagrees_with_its_problem_or_redefines_an_id_is_refused():
    with pytest.raises(fnd.FindingError, match="must agree"):
        fnd.register_rule("TEST-REG-1", "t", "critical", problem="char-n")
    with pytest.raises(fnd.FindingError, match="unknown problem"):
        fnd.register_rule("TEST-REG-1", "t", problem="no-such-problem")
    with pytest.raises(fnd.FindingError, match="registered twice"):
        fnd.register_rule("ML-006", "another title", "low", analysis="migration_lint")
    assert "TEST-REG-1" not in fnd.RULE_REGISTRY


def test_sarif_rule_list_comes_from_the_registry():
    # ML-006 on a table created in the file is scaled down to info; its rule keeps the default
    found = ml.lint_sql(
        "CREATE TABLE box (id bigint, label text);\nCREATE INDEX box_label_idx ON box (label);\n"
    )
    ml006 = [f for f in found if f.rule == "ML-006"]
    assert ml006 and ml006[0].severity == "info"
    doc = json.loads(fnd.render_sarif(found))
    rules = {r["id"]: r for r in doc["runs"][0]["tool"]["driver"]["rules"]}
    assert set(rules) == {f.rule for f in found}
    reg = fnd.registered_rule("ML-006")
    r = rules["ML-006"]
    assert r["name"] == "CREATEINDEXWithoutCONCURRENTLY"
    assert r["shortDescription"]["text"] == reg.title and r["fullDescription"]["text"] == reg.why
    assert reg.why in r["help"]["text"] and r["helpUri"] == ml.REFERENCES
    assert r["defaultConfiguration"]["level"] == "warning"  # medium, the registered default
    result = [x for x in doc["runs"][0]["results"] if x["ruleId"] == "ML-006"][0]
    assert result["level"] == "note"  # the finding itself stays info
    # a rule nobody registered keeps the old behaviour
    other = fnd.Finding(rule="X-1", severity="high", object="o", message="m", title="Some title")
    rule = json.loads(fnd.render_sarif([other]))["runs"][0]["tool"]["driver"]["rules"][0]
    assert rule["name"] == "SomeTitle" and rule["defaultConfiguration"]["level"] == "error"


def test_findings_carry_the_references_of_their_registered_rule():
    found = ml.lint_sql(
        "CREATE TABLE stamp (id bigint PRIMARY KEY, at timestamp);\nDROP INDEX stamp_at_idx;\n"
    )
    by_rule = {f.rule: f for f in found}
    assert by_rule["ML-019"].references == list(fnd.registered_rule("SR-TYPE-001").references)
    assert by_rule["ML-007"].references == [ml.REFERENCES]
