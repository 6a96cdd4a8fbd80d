"""playbooks/awx: a job template for every workflow playbook, surveys AWX takes, schedules whose rrules
parse and fire when their names say; the engine refuses definitions AWX would refuse."""

import datetime
import re
from pathlib import Path

import pytest
import yaml
from ansible.parsing.utils.yaml import from_yaml
from dateutil import rrule as dr

from ansible_collections.dbarch.postgresql.plugins.module_utils.awx import jobs

REPO = Path(__file__).resolve().parents[3]
DEFINITIONS = REPO / "playbooks" / "awx" / "vars" / "job_templates.yml"
SETTINGS = dict(
    organization="Default",
    project="p",
    inventory="i",
    execution_environment="ee",
    ee_image="img",
    scm_url="https://example.invalid/x.git",
    inventory_source_path="inventories/example/hosts.yml",
    credential_names={"postgresql": "pg", "aws": "aws"},
    fleet_forks=50,
    rolling_forks=5,
    job_slice_count=4,
    postgresql_credential_type="dbarch PostgreSQL login",
)


def _definitions():
    return from_yaml(DEFINITIONS.read_text(encoding="utf-8"))["awx_job_templates"]


def _rrule(text):
    return dr.rrulestr(text.replace(" RRULE:", "\nRRULE:"))


def test_every_workflow_playbook_has_a_job_template():
    playbooks = jobs.workflow_playbooks(str(REPO))
    assert "playbooks/server_report.yml" in playbooks and "playbooks/site.yml" not in playbooks
    defined = [d["playbook"] for d in _definitions()]
    assert len(defined) == len(set(defined))
    assert [p for p in playbooks if p not in defined] == []


def test_every_workflow_playbook_runs_unattended():
    for playbook in jobs.workflow_playbooks(str(REPO)):
        text = (REPO / playbook).read_text(encoding="utf-8")
        plays = yaml.safe_load(text)
        tasks = [
            t for play in plays for key in ("pre_tasks", "tasks", "post_tasks") for t in play.get(key) or []
        ]
        modules = {k for t in tasks for k in t} | {k for t in tasks for b in t.get("block") or [] for k in b}
        assert not modules & {"ansible.builtin.pause", "pause"}, playbook
        assert not any(play.get("vars_prompt") for play in plays), playbook


def test_job_templates_fleet_settings_and_surveys():
    params = jobs.awx_objects(_definitions(), dict(SETTINGS, project_dir=str(REPO)))
    by_name = {p["name"]: p for p in params["job_template"]}
    report = by_name["dbarch server report"]
    assert report["forks"] == 50 and report["job_slice_count"] == 4 and report["survey_enabled"]
    assert report["credentials"] == ["pg"]
    backup = by_name["dbarch backup"]
    assert backup["job_slice_count"] == 1 and backup["credentials"] == ["pg", "aws"]
    assert backup["extra_vars"]["backup_schedule"] is False
    migrate = by_name["dbarch migrate"]
    confirm = [q for q in migrate["survey_spec"]["spec"] if q["variable"] == "migrate_confirm_production"]
    assert confirm[0]["choices"] == "no\nyes" and confirm[0]["default"] == "no"
    # Launched with the survey's defaults, production is never confirmed; empty optional answers are left out.
    (mig_def,) = [d for d in _definitions() if d["name"] == "dbarch migrate"]
    assert jobs.job_extra_vars(mig_def)["migrate_confirm_production"] == "no"
    (review_def,) = [d for d in _definitions() if d["name"] == "dbarch schema review"]
    assert "schema_review_fail_on" not in jobs.job_extra_vars(review_def)
    # Job templates whose playbook is not in the project are left out with their schedules.
    present = {d["playbook"] for d in _definitions() if (REPO / d["playbook"]).is_file()}
    assert {p["playbook"] for p in params["job_template"]} == present
    assert {s["unified_job_template"] for s in params["schedule"]} <= set(by_name)


def test_schedules_parse_and_fire_when_their_names_say():
    schedules = {s["name"]: s["rrule"] for d in _definitions() for s in d.get("schedules") or []}
    after = datetime.datetime(2026, 12, 6, 0, 0, tzinfo=datetime.UTC)
    nxt = {name: _rrule(text).after(after) for name, text in schedules.items()}
    backup = _rrule(schedules["dbarch nightly backup"])
    assert nxt["dbarch nightly backup"] == after.replace(hour=2)
    assert backup.after(nxt["dbarch nightly backup"]) - nxt["dbarch nightly backup"] == datetime.timedelta(
        days=1
    )
    drill = list(
        _rrule(schedules["dbarch monthly restore drill"]).between(after, after.replace(year=2027, month=3))
    )
    # 2026-12-06 is the first Sunday of December.
    assert [(d.month, d.day) for d in drill] == [(12, 6), (1, 3), (2, 7)]
    assert all(d.weekday() == 6 and d.day <= 7 and d.hour == 3 for d in drill)
    audit = list(
        _rrule(schedules["dbarch quarterly security audit"]).between(
            after, after.replace(year=2027, month=12)
        )
    )
    assert [(d.month, d.day) for d in audit] == [(1, 1), (4, 1), (7, 1), (10, 1)]
    for weekly in ("dbarch weekly schema review", "dbarch weekly query review"):
        first = nxt[weekly]
        assert first.weekday() == 0 and _rrule(schedules[weekly]).after(first) - first == datetime.timedelta(
            days=7
        )
    assert all(t.tzinfo is not None and t.utcoffset() == datetime.timedelta(0) for t in nxt.values())


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {
                "survey": [
                    {
                        "question_name": "q",
                        "variable": "v",
                        "type": "multiplechoice",
                        "choices": ["a"],
                        "default": "b",
                    }
                ]
            },
            "not one of its choices",
        ),
        ({"survey": [{"question_name": "q", "variable": "v", "type": "checkbox"}]}, "has type 'checkbox'"),
        (
            {"survey": [{"question_name": "q", "variable": "v"}, {"question_name": "r", "variable": "v"}]},
            "twice",
        ),
        ({"credentials": ["vault"]}, "uses credential 'vault'"),
        ({"schedules": [{"name": "s", "rrule": "FREQ=DAILY"}]}, "DTSTART and RRULE"),
    ],
)
def test_definitions_awx_would_refuse(change, message):
    definition = dict(name="jt", playbook="playbooks/x.yml", **change)
    with pytest.raises(jobs.AwxDefinitionError, match=message):
        jobs.awx_objects([definition], SETTINGS)


def test_duplicate_job_templates_and_missing_secrets_are_refused():
    with pytest.raises(jobs.AwxDefinitionError, match="defined twice: jt"):
        jobs.awx_objects([dict(name="jt", playbook="a.yml")] * 2, SETTINGS)
    with pytest.raises(jobs.AwxDefinitionError, match="has no password"):
        jobs.awx_objects(
            [], dict(SETTINGS, postgresql_credentials=[{"name": "pg", "username": "u", "password": ""}])
        )


def _playbook_texts(path, seen=None):
    """The text of a playbook, of the playbooks it imports and of every file of the roles it names."""
    seen = set() if seen is None else seen
    if path in seen:
        return []
    seen.add(path)
    text = path.read_text(encoding="utf-8")
    texts = [text]
    for plays in yaml.safe_load(text) or []:
        imported = plays.get("ansible.builtin.import_playbook") or plays.get("import_playbook")
        if imported:
            texts += _playbook_texts(path.parent / imported, seen)
    roles = set()
    pending = [text]
    while pending:
        for role in re.findall(r"dbarch\.postgresql\.([a-z_]+)", pending.pop()):
            folder = REPO / "roles" / role
            if role in roles or not folder.is_dir():
                continue
            roles.add(role)
            for file in sorted(folder.rglob("*.yml")):
                texts.append(file.read_text(encoding="utf-8"))
                pending.append(texts[-1])
    return texts


@pytest.mark.parametrize("definition", _definitions(), ids=lambda d: d["name"])
def test_every_survey_and_extra_var_is_used_by_the_playbook(definition):
    """A survey answer or extra var that the playbook (its imports, its roles) never reads does nothing in
    AWX: the operator answers it for nothing."""
    texts = "\n".join(_playbook_texts(REPO / definition["playbook"]))
    names = [q["variable"] for q in definition.get("survey") or []] + list(definition.get("extra_vars") or {})
    unused = [name for name in names if not re.search(r"\b%s\b" % re.escape(name), texts)]
    assert not unused, (definition["name"], unused)
