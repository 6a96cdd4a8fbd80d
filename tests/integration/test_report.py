"""The report action plugin through a real ansible-playbook run."""

import json
import xml.etree.ElementTree as ET

FINDINGS = [
    dict(
        rule="KEY001",
        severity="high",
        object="public.orders",
        message="Table has no primary key.",
        fix="ALTER TABLE public.orders ADD PRIMARY KEY (id);",
    ),
    dict(rule="TYPE010", severity="low", object="public.orders.total", message="float for money."),
]


def _report(run_playbook, dest, **kw):
    args = dict(name="review", hostname="pg-x", dest=str(dest), findings=FINDINGS, summary=dict(tables=1))
    args.update(kw.pop("args", {}))
    return run_playbook(
        [
            dict(
                hosts="localhost",
                gather_facts=False,
                tasks=[
                    dict(name="report", **{"dbarch.postgresql.report": args}),
                ],
            )
        ],
        **kw,
    )


def test_writes_every_format_then_is_idempotent(run_playbook, tmp_path):
    res = _report(run_playbook, tmp_path)
    r = res.task("report")["result"]
    assert res.rc == 0 and r["changed"] is True
    folder = tmp_path / "pg-x"
    assert sorted(p.name for p in folder.iterdir()) == [
        "review.json",
        "review.md",
        "review.sarif",
        "review.xml",
    ]
    assert json.loads((folder / "review.json").read_text())["counts"]["high"] == 1
    assert ET.parse(folder / "review.xml").getroot().find("testsuite").get("failures") == "1"
    assert json.loads((folder / "review.sarif").read_text())["version"] == "2.1.0"
    again = _report(run_playbook, tmp_path)
    assert again.task("report")["result"]["changed"] is False


def test_check_mode_writes_nothing_and_diff_shows_markdown(run_playbook, tmp_path):
    res = _report(run_playbook, tmp_path, check=True, diff=True)
    r = res.task("report")["result"]
    assert r["changed"] is True and not (tmp_path / "pg-x").exists()
    assert "KEY001" in r["diff"][0]["after"]


def test_fail_on_fails_after_writing(run_playbook, tmp_path):
    res = _report(run_playbook, tmp_path, args=dict(fail_on="high"))
    r = res.task("report")["result"]
    assert res.rc != 0 and r["failed"] is True
    assert "fail_on=high" in r["msg"] and "KEY001 public.orders" in r["msg"]
    assert (tmp_path / "pg-x" / "review.md").exists()


def test_suppressed_finding_does_not_fail(run_playbook, tmp_path):
    res = _report(
        run_playbook,
        tmp_path,
        args=dict(
            fail_on="high",
            suppressions=[dict(rule="KEY001", object="public.orders", reason="event log, no key")],
        ),
    )
    assert res.rc == 0
    assert "event log, no key" in (tmp_path / "pg-x" / "review.md").read_text()


def test_bad_finding_is_explained(run_playbook, tmp_path):
    res = _report(
        run_playbook, tmp_path, args=dict(findings=[dict(rule="X", severity="urgent", message="m")])
    )
    assert res.rc != 0
    assert "Unknown severity 'urgent'" in res.task("report")["result"]["msg"]
