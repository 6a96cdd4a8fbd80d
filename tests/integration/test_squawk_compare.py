"""squawk (npm squawk-cli) and migration_lint on the same corpus, finding by finding.

The corpus is tests/data/migrations_lint/. squawk is run with its JSON reporter; each of its
findings is placed on the statement that holds its line, and compared with ours on that
statement for the rules both implement (the squawk names in migration_lint.RULES). squawk
reports require-lock-timeout / require-statement-timeout once per file, so those two are
compared per file. Every disagreement must be one of KNOWN_DIFFERENCES, each with the
reason; everything else must agree. The figures are printed (pytest -s) and written to
tests/output/squawk_compare.json.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import harness
import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import migration_lint as ml

SQUAWK_VERSION = "2.66.0"
NPM_PREFIX = harness.REPO_ROOT / ".cache" / "npm"
SQUAWK = NPM_PREFIX / "node_modules" / ".bin" / "squawk"
CORPUS = harness.REPO_ROOT / "tests" / "data" / "migrations_lint"
OUTPUT = harness.REPO_ROOT / "tests" / "output" / "squawk_compare.json"
PER_FILE = ("require-lock-timeout", "require-statement-timeout")

# squawk rules we deliberately do not implement, with the reason.
NOT_IMPLEMENTED = {
    "prefer-robust-stmts": "IF NOT EXISTS / re-runnable statements: a migration runner records what ran",
    "require-enum-value-ordering": "style of ADD VALUE (BEFORE/AFTER); ML-030 covers its transaction problem",
}

# (file, line, squawk rule or our rule, side that reports it alone): reason.
KNOWN_DIFFERENCES = {
    ("V001__create_tables.sql", None, "require-lock-timeout", "squawk"): (
        "the only lock is on accounts (REFERENCES), created earlier in the same file: nobody else holds it"
    ),
    ("V001__create_tables.sql", None, "require-statement-timeout", "squawk"): (
        "no statement in the file locks a table that existed before it"
    ),
    ("V002__add_columns.sql", 6, "prefer-bigint-over-int", "squawk"): (
        "ML-016 is about primary keys; squawk reports every int column"
    ),
    ("V003__constraints.sql", 14, "ML-005", "ours"): (
        "squawk 2.66 stays silent on SET NOT NULL once any constraint of the table was validated "
        "earlier in the file (here orders_total_check, another column)"
    ),
    ("V003__constraints.sql", 8, "ML-003", "ours"): (
        "the runner wraps the file in one transaction, so the ADD ... NOT VALID of line 6 keeps its "
        "lock through this VALIDATE; squawk reports the same with --assume-in-transaction"
    ),
    ("V003__constraints.sql", 12, "ML-004", "ours"): (
        "the runner wraps the file in one transaction, so the CHECK ... NOT VALID of line 11 keeps its "
        "lock through this VALIDATE; squawk reports the same with --assume-in-transaction"
    ),
    ("V003__constraints.sql", 16, "constraint-missing-not-valid", "squawk"): (
        "UNIQUE cannot be NOT VALID; the lock is ML-010 (disallowed-unique-constraint), which both report"
    ),
    ("V003__constraints.sql", 18, "constraint-missing-not-valid", "squawk"): (
        "PRIMARY KEY cannot be NOT VALID; the lock is ML-010, which both report"
    ),
    ("V004__indexes.sql", 9, "ML-023", "ours"): (
        "the file mixes transactional statements with CREATE INDEX CONCURRENTLY, so a runner that wraps "
        "the file fails it; squawk assumes no transaction unless told (--assume-in-transaction)"
    ),
    ("V006__transactions.sql", None, "require-statement-timeout", "squawk"): (
        "ADD COLUMN without default is instant; ML-022 asks for statement_timeout only before long statements"
    ),
    ("V013__uncommitted.sql", 5, "prefer-bigint-over-smallint", "squawk"): (
        "orders.tag_id is a foreign key column, not a primary key"
    ),
    ("V012__drop_database.sql", None, "require-lock-timeout", "squawk"): (
        "DROP DATABASE takes no table lock; lock_timeout does not bound it"
    ),
    ("V012__drop_database.sql", None, "require-statement-timeout", "squawk"): (
        "no table is locked or scanned; the statement is reported as ML-015 (critical) instead"
    ),
}


def squawk_binary():
    if SQUAWK.exists():
        return str(SQUAWK)
    if shutil.which("npm") is None:
        pytest.fail("npm is missing: make system-deps-test (or apt-get install npm), then make integration")
    proc = subprocess.run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--prefix",
            str(NPM_PREFIX),
            "squawk-cli@%s" % SQUAWK_VERSION,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0 or not SQUAWK.exists():
        pytest.fail(
            "npm install --prefix .cache/npm squawk-cli@%s failed: %s" % (SQUAWK_VERSION, proc.stderr[-800:])
        )
    return str(SQUAWK)


def run_squawk(files):
    proc = subprocess.run(
        [squawk_binary(), "--reporter", "json"] + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # exit status 1 means "violations found"
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout or "[]")


def statement_at(spans, line):
    for i, span in enumerate(spans):
        if span["line"] <= line <= span["end_line"]:
            return i
    raise AssertionError("line %d is in no statement" % line)


def test_squawk_and_migration_lint_agree_on_the_shared_rules():
    files = sorted(CORPUS.glob("*.sql"))
    assert len(files) >= 10
    version = subprocess.run(
        [squawk_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert SQUAWK_VERSION in version

    shared = {}  # squawk rule -> our rules
    for rid, _title, _sev, _scales, names in ml.rule_table():
        for name in names:
            shared.setdefault(name, set()).add(rid)
    ours_to_squawk = {}
    for name, rids in shared.items():
        for rid in rids:
            ours_to_squawk.setdefault(rid, set()).add(name)

    spans = {f.name: ml.statement_spans(f.read_text()) for f in files}
    squawk_hits = set()  # (file, stmt index or None, squawk rule)
    seen_rules = set()
    for v in run_squawk(files):
        name = os.path.basename(v["file"])
        rule = v["rule_name"]
        seen_rules.add(rule)
        if rule in NOT_IMPLEMENTED:
            continue
        assert rule in shared, "squawk rule %s is neither mapped nor listed as not implemented" % rule
        idx = None if rule in PER_FILE else statement_at(spans[name], v["line"] + 1)
        squawk_hits.add((name, idx, rule))

    our_hits = set()  # (file, stmt index or None, our rule)
    for f in ml.lint_paths([str(CORPUS)]):
        if f.rule not in ours_to_squawk:
            continue
        name = os.path.basename(f.location["file"])
        per_file = any(n in PER_FILE for n in ours_to_squawk[f.rule])
        idx = None if per_file else statement_at(spans[name], f.location["line"])
        our_hits.add((name, idx, f.rule))

    def line(name, idx):
        return None if idx is None else spans[name][idx]["line"]

    agree, squawk_only, ours_only = [], [], []
    for name, idx, rule in sorted(squawk_hits, key=str):
        if any((name, idx, rid) in our_hits for rid in shared[rule]):
            agree.append((name, line(name, idx), rule))
        else:
            squawk_only.append((name, line(name, idx), rule, "squawk"))
    for name, idx, rid in sorted(our_hits, key=str):
        if not any((name, idx, n) in squawk_hits for n in ours_to_squawk[rid]):
            ours_only.append((name, line(name, idx), rid, "ours"))

    agreed_rules = sorted({r for _n, _l, r in agree})
    report = dict(
        squawk_version=SQUAWK_VERSION,
        files=len(files),
        statements=sum(len(s) for s in spans.values()),
        shared_rules={k: sorted(v) for k, v in sorted(shared.items())},
        squawk_rules_seen=sorted(seen_rules),
        not_implemented=NOT_IMPLEMENTED,
        agree=len(agree),
        agreed_rules=agreed_rules,
        squawk_findings_on_shared_rules=len(squawk_hits),
        our_findings_on_shared_rules=len(our_hits),
        squawk_only=[list(d) + [KNOWN_DIFFERENCES.get(d)] for d in squawk_only],
        ours_only=[list(d) + [KNOWN_DIFFERENCES.get(d)] for d in ours_only],
    )
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))

    unexplained = [d for d in squawk_only + ours_only if d not in KNOWN_DIFFERENCES]
    assert not unexplained, "disagreements without a known reason: %s" % unexplained
    stale = [k for k in KNOWN_DIFFERENCES if k not in squawk_only + ours_only]
    assert not stale, "listed differences that no longer occur: %s" % stale
    # every rule both implement agrees on at least one statement of the corpus
    assert set(agreed_rules) == set(shared), sorted(set(shared) - set(agreed_rules))


def test_squawk_binary_comes_from_the_npm_registry_package():
    path = Path(squawk_binary()).resolve()
    assert "node_modules" in str(path)
    pkg = json.loads((NPM_PREFIX / "node_modules" / "squawk-cli" / "package.json").read_text())
    assert pkg["version"] == SQUAWK_VERSION
