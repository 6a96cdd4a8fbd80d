"""AWX/Tower as code, without AWX: playbooks/awx/configure.yml's objects checked against the awx.awx
modules' own argument specs, job templates run through ansible-runner (AWX's runner) from a private
data directory made the way AWX makes it (the job template's extra vars, the survey's defaults, the
credential type's injectors) against the sandbox, fleets' summaries, and the example inventory."""

import importlib
import json
import os
import subprocess
from unittest import mock

import ansible_runner
import jinja2
import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.utils.yaml import from_yaml

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.awx import jobs
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

REPO = harness.REPO_ROOT
AWX_DIR = REPO / "playbooks" / "awx"
SANDBOX_INVENTORY = REPO / "inventories" / "sandbox" / "hosts.yml"
EXAMPLE_INVENTORY = REPO / "inventories" / "example"
BIN = harness.VENV_BIN
SECRETS = {
    "vault_dbarch_login_password": "not-a-real-password",
    "vault_aws_access_key_id": "AKIAEXAMPLE",
    "vault_aws_secret_access_key": "not-a-real-secret",
}


class _Captured(Exception):
    pass


def _awx_module_spec(name):
    """The argument spec and the constraints an awx.awx module builds in main(), as it hands them to
    ControllerAPIModule (which adds the controller connection options)."""
    module = importlib.import_module("ansible_collections.awx.awx.plugins.modules." + name)
    captured = {}

    def capture(argument_spec=None, **kwargs):
        captured.update(kwargs, argument_spec=argument_spec)
        raise _Captured

    with mock.patch.object(module, "ControllerAPIModule", side_effect=capture), pytest.raises(_Captured):
        module.main()
    spec = dict(captured.pop("argument_spec"))
    spec.update(module.ControllerAPIModule.AUTH_ARGSPEC)
    return spec, captured


def _render_configure(tmp_path):
    out = tmp_path / "awx_objects.json"
    harness.run_playbook(
        AWX_DIR / "configure.yml", extra_vars=dict(SECRETS, awx_render_to=str(out))
    ).assert_ok()
    return json.loads(out.read_text())


def _definitions():
    return from_yaml((AWX_DIR / "vars" / "job_templates.yml").read_text())["awx_job_templates"]


def test_configure_objects_pass_the_awx_modules_argument_specs(tmp_path):
    objects = _render_configure(tmp_path)
    assert set(objects) == {
        "execution_environment",
        "project",
        "credential_type",
        "credential",
        "inventory",
        "inventory_source",
        "notification_template",
        "job_template",
        "schedule",
    }
    for module_name, items in objects.items():
        if not items:
            continue
        spec, constraints = _awx_module_spec(module_name)
        validator = ArgumentSpecValidator(
            spec,
            **{
                k: v
                for k, v in constraints.items()
                if k
                in (
                    "mutually_exclusive",
                    "required_together",
                    "required_one_of",
                    "required_if",
                    "required_by",
                )
            },
        )
        for params in items:
            result = validator.validate(dict(params))
            assert not result.error_messages, (module_name, params["name"], result.error_messages)
            assert not result.unsupported_parameters, (module_name, result.unsupported_parameters)
    # Every configure.yml task passes one of those objects to its module whole.
    plays = yaml.safe_load((AWX_DIR / "configure.yml").read_text())
    modules = [k.split(".")[-1] for t in plays[0]["tasks"] for k in t if k.startswith("awx.awx.")]
    assert sorted(modules) == sorted(objects)
    # One job template per workflow playbook present, each with its survey; secrets only where they belong.
    templates = {t["playbook"]: t for t in objects["job_template"]}
    assert sorted(templates) == jobs.workflow_playbooks(str(REPO))
    assert all(t["survey_enabled"] and t["survey_spec"]["spec"] for t in templates.values())
    text = json.dumps({k: v for k, v in objects.items() if k != "credential"})
    assert not [s for s in SECRETS.values() if s in text]
    assert {c["inputs"]["password"] for c in objects["credential"]} == {
        SECRETS["vault_dbarch_login_password"],
        SECRETS["vault_aws_secret_access_key"],
    }
    assert {s["name"] for s in objects["schedule"]} >= {
        "dbarch nightly backup",
        "dbarch monthly restore drill",
    }


@pytest.fixture(scope="module")
def sandbox():
    folder = os.path.join(harness.work_folder("dbarch-it-awx-"), "sandbox")
    env = {"DBARCH_SANDBOX_DIR": folder}
    ports = {name: lc.free_port() for name in ("primary", "replica", "replica2", "scratch")}
    harness.run_playbook(
        REPO / "playbooks" / "sandbox.yml", extra_vars={"sandbox_ports": ports}, env=env
    ).assert_ok()
    with open(os.path.join(folder, "credentials.yml"), encoding="utf-8") as fh:
        credentials = yaml.safe_load(fh)
    yield dict(env=env, folder=folder, credentials=credentials)
    # The clusters are all under the folder (work_folder is traversable by postgres): stopping them
    # there is enough, without a sandbox_state=absent run.
    harness.remove_folder(os.path.dirname(folder))


def _run_job_template(name, sandbox, tmp_path, extra=None, inventory=None):
    """Run one job template the way AWX does: a private data directory with the project, the
    inventory, the job's extra vars (job template's, then the survey's defaults) and the extra vars the
    PostgreSQL credential type injects, run by ansible-runner."""
    (definition,) = [d for d in _definitions() if d["name"] == name]
    params = jobs.job_template_params(
        definition,
        dict(
            organization="Default",
            project="p",
            inventory="i",
            execution_environment="ee",
            credential_names={"postgresql": "pg", "aws": "aws"},
            fleet_forks=50,
            rolling_forks=5,
            job_slice_count=4,
        ),
    )
    private = tmp_path / "private"
    (private / "env").mkdir(parents=True)
    os.symlink(REPO, private / "project")
    extravars = jobs.job_extra_vars(definition)
    # The credential: AWX renders the credential type's injectors with the credential's inputs.
    (ctype,) = from_yaml((AWX_DIR / "vars" / "credential_types.yml").read_text())["awx_credential_types"]
    inputs = {
        "username": sandbox["credentials"]["superuser"],
        "password": sandbox["credentials"]["superuser_password"],
    }
    for var, template in ctype["injectors"]["extra_vars"].items():
        extravars[var] = jinja2.Template(str(template)).render(**inputs)
    extravars.update(extra or {})
    (private / "env" / "extravars").write_text(json.dumps(extravars))
    (private / "env" / "envvars").write_text(
        yaml.safe_dump(
            dict(
                sandbox["env"],
                ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                PATH=str(BIN) + os.pathsep + os.environ["PATH"],
            )
        )
    )
    (private / "env" / "settings").write_text(yaml.safe_dump({"suppress_ansible_output": True}))
    run = ansible_runner.run(
        private_data_dir=str(private),
        playbook=params["playbook"],
        inventory=inventory or [str(SANDBOX_INVENTORY)],
        forks=params["forks"],
        quiet=True,
    )
    return params, run


def test_server_report_job_template_runs_through_ansible_runner(sandbox, tmp_path):
    dest = tmp_path / "reports"
    params, run = _run_job_template(
        "dbarch server report", sandbox, tmp_path, {"server_report_dest": str(dest)}
    )
    events = list(run.events)
    assert run.status == "successful" and run.rc == 0, [
        e.get("stdout") for e in events if e["event"] == "runner_on_failed"
    ]
    assert params["forks"] == 50 and params["job_slice_count"] == 4
    kinds = [e["event"] for e in events if e["event"] != "verbose"]  # verbose: warnings printed
    assert kinds[0] == "playbook_on_start" and kinds[-1] == "playbook_on_stats"
    assert "playbook_on_task_start" in kinds
    hosts = ("pg-primary", "pg-replica", "pg-replica2", "pg-scratch")
    ok = {e["event_data"]["host"] for e in events if e["event"] == "runner_on_ok"}
    assert set(hosts) <= ok
    assert not [e for e in events if e["event"] in ("runner_on_failed", "runner_on_unreachable")]
    assert run.stats["failures"] == {} and set(run.stats["ok"]) == set(hosts)
    for host in hosts:
        summary = json.loads((dest / host / "server.json").read_text())["summary"]
        assert summary["role"] in ("primary", "standby")
    fleet = json.loads((dest / "fleet" / "server_fleet.json").read_text())
    assert fleet["summary"]["answered"] == sorted(hosts) and fleet["summary"]["failed"] == []
    assert fleet["summary"]["per_host"]["pg-primary"]["standbys"] == 2


def test_fleet_run_with_a_host_that_does_not_answer_fails_with_the_reports_written(sandbox, tmp_path):
    """A schema review over the sandbox's primary and a host whose server is gone: the job fails
    (non-zero), the primary's report and the fleet summary are written, the summary names the host
    that did not answer and carries the worst findings of the others."""
    dest = tmp_path / "reports"
    gone = tmp_path / "gone.yml"
    gone.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "primary": {
                            "hosts": {
                                "pg-gone": {
                                    "sandbox_cluster": "primary",
                                    "dbarch_login_port": lc.free_port(),
                                    "schema_review_database": "demo",
                                }
                            }
                        }
                    }
                }
            }
        )
    )
    _params, run = _run_job_template(
        "dbarch schema review",
        sandbox,
        tmp_path,
        {"schema_review_dest": str(dest)},
        inventory=[str(SANDBOX_INVENTORY), str(gone)],
    )
    assert run.status == "failed" and run.rc != 0
    failed = {e["event_data"]["host"] for e in run.events if e["event"] == "runner_on_failed"}
    assert failed == {"pg-gone"}
    assert (dest / "pg-primary" / "schema_review.json").is_file()
    fleet = json.loads((dest / "fleet" / "schema_review_fleet.json").read_text())
    assert fleet["summary"]["failed"] == ["pg-gone"] and fleet["summary"]["answered"] == ["pg-primary"]
    rules = [(f["rule"], f["object"]) for f in fleet["findings"]]
    assert rules[0] == ("FLEET-HOST-001", "pg-gone")
    primary = json.loads((dest / "pg-primary" / "schema_review.json").read_text())
    assert len(fleet["findings"]) == 1 + min(
        20, len([f for f in primary["findings"] if not f.get("suppressed")])
    )
    assert ("SR-KEY-002", "pg-primary: shop.orders.customer_id") in rules
    ranks = ["info", "low", "medium", "high", "critical"]
    severities = [ranks.index(f["severity"]) for f in fleet["findings"][1:]]
    assert severities == sorted(severities, reverse=True)


def test_example_inventory_graph_and_every_playbook_syntax(tmp_path):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    graph = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(EXAMPLE_INVENTORY), "--graph"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=str(REPO),
    ).stdout
    for group in ("primary", "replicas", "rds", "production", "staging", "dev", "scratch"):
        assert "@%s:" % group in graph
    listed = json.loads(
        subprocess.run(
            [str(BIN / "ansible-inventory"), "-i", str(EXAMPLE_INVENTORY), "--list"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=str(REPO),
        ).stdout
    )
    rds = listed["_meta"]["hostvars"]["orders-prod.abcdefghijkl.eu-west-1.rds.amazonaws.com"]
    assert (
        rds["ansible_connection"] == "local"
        and rds["dbarch_login_password"] == "{{ vault_rds_master_password }}"
    )
    playbooks = [str(REPO / p) for p in jobs.workflow_playbooks(str(REPO))] + [
        str(REPO / "playbooks" / "site.yml"),
        str(AWX_DIR / "configure.yml"),
    ]
    check = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(EXAMPLE_INVENTORY), "--syntax-check", *playbooks],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
    )
    assert check.returncode == 0, check.stdout + check.stderr
