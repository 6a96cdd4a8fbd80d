"""docs/replication.md lists exactly the registered rules of replication_info, of the runbook and of
the rejoin, with their titles and default severities."""

import os
import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import diagnosis, lag, outcome

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "replication.md")


def doc_rows():
    with open(DOCS, encoding="utf-8") as fh:
        page = fh.read()
    rows = {}
    for line in page.splitlines():
        m = re.match(r"^\| (REPL-[A-Z]+-\d{3}) \| (.+?) \| (?:.+ \| )?(\w+) \|$", line)
        if m:
            assert m.group(1) not in rows, "%s listed twice" % m.group(1)
            rows[m.group(1)] = (m.group(2), m.group(3))
    return rows


def test_docs_list_every_replication_rule():
    registered = {
        r.id: (r.title, r.severity)
        for analysis in (lag.ANALYSIS, diagnosis.ANALYSIS, outcome.ANALYSIS)
        for r in fnd.registered_rules(analysis)
    }
    assert len(registered) == 21
    assert doc_rows() == registered
