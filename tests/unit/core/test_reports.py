import json
import os

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import reports


def params(tmp_path, **kw):
    p = dict(
        name="review",
        hostname="pg-primary",
        dest=str(tmp_path),
        formats=["json", "markdown", "junit", "sarif"],
        findings=[dict(rule="R1", severity="high", object="public.t", message="m", fix="SELECT 1;")],
        summary=dict(tables=1),
        meta={},
        suppressions=[],
        junit_failure_severity="medium",
        title=None,
    )
    p.update(kw)
    return p


def test_build_writes_four_formats_and_second_plan_is_empty(tmp_path):
    _items, files = reports.build(params(tmp_path))
    assert sorted(files) == ["json", "md", "sarif", "xml"]
    changes = reports.plan(files)
    assert len(changes) == 4
    for _ext, path, _before, after in changes:
        reports.write_atomic(path, after)
    assert os.path.exists(tmp_path / "pg-primary" / "review.md")
    assert json.loads((tmp_path / "pg-primary" / "review.json").read_text())["counts"]["high"] == 1
    _items, files = reports.build(params(tmp_path))
    assert reports.plan(files) == []


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden"])
def test_names_that_escape_the_folder_are_refused(tmp_path, bad):
    with pytest.raises(reports.ReportError, match="cannot be used as a file name"):
        reports.build(params(tmp_path, name=bad))


def test_unused_suppressions_are_recorded(tmp_path):
    _items, files = reports.build(params(tmp_path, suppressions=[dict(rule="ZZZ", reason="old")]))
    doc = json.loads(files["json"][1])
    assert doc["meta"]["unused_suppressions"] == [dict(rule="ZZZ", reason="old")]
