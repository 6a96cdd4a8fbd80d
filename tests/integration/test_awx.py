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
import boto3
import jinja2
import psycopg2
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


def _run_job_template(name, sandbox, tmp_path, extra=None, inventory=None, job_type="run", env=None):
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
                **(env or {}),
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
        # AWX runs a job template of job_type check as ansible-playbook --check.
        cmdline="--check" if job_type == "check" else None,
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


# -- Every job template through ansible-runner against the sandbox --------------------------------------
# One sandbox for all of them (module scope), the tests in this order: the read-only ones, then the backup
# (the restore drill and the point-in-time restore use its repository), the restore drill, the migrations,
# then the ones that must change nothing: with the survey answers an operator gives when there is nothing to
# do, as a job of job_type check (ansible-playbook --check), or left without the input they need so that the
# playbook refuses. Each asserts the job's status and rc, its events and what the servers look like after.

SANDBOX_HOSTS = {
    "pg-primary": "primary",
    "pg-replica": "replica",
    "pg-replica2": "replica2",
    "pg-scratch": "scratch",
}


class _Earlier(dict):
    def __missing__(self, key):
        pytest.fail("%s comes from an earlier job template's test of this file: run the file whole" % key)


@pytest.fixture(scope="module")
def earlier():
    """What a job template's run leaves for a later one (the backup, the drill's restore point)."""
    return _Earlier()


def _sql(sandbox, host, statement, dbname="postgres"):
    with open(os.path.join(sandbox["folder"], "state.json"), encoding="utf-8") as fh:
        port = json.load(fh)["clusters"][SANDBOX_HOSTS[host]]["port"]
    conn = psycopg2.connect(
        host="127.0.0.1",
        port=port,
        user=sandbox["credentials"]["superuser"],
        password=sandbox["credentials"]["superuser_password"],
        dbname=dbname,
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall()
    finally:
        conn.close()


SERVER_STATE_SQL = (
    "SELECT pg_catalog.pg_postmaster_start_time()::text, pg_catalog.pg_is_in_recovery(), "
    "(SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()), "
    "(SELECT md5(string_agg(name || '=' || setting || pending_restart::text, ',' ORDER BY name)) "
    "FROM pg_catalog.pg_settings), "
    "(SELECT md5(coalesce(string_agg(sourcefile || ':' || name || '=' || coalesce(setting, ''), ',' "
    "ORDER BY sourcefile, seqno), '')) FROM pg_catalog.pg_file_settings), "
    "(SELECT md5(string_agg(rolname || ':' || coalesce(rolpassword, '') || rolcanlogin::text, ',' "
    "ORDER BY rolname)) FROM pg_catalog.pg_authid), "
    "(SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_catalog.pg_database)"
)
PRIMARY_STATE_SQL = (
    "SELECT (SELECT string_agg(application_name || ':' || state || ':' || coalesce(sync_state, ''), ',' "
    "ORDER BY application_name) FROM pg_catalog.pg_stat_replication), "
    "(SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_catalog.pg_replication_slots)"
)
DEMO_STATE_SQL = (
    "SELECT (SELECT md5(string_agg(c::text, ',' ORDER BY c.id)) FROM shop.customers c), "
    "(SELECT md5(string_agg(o::text, ',' ORDER BY o.id)) FROM shop.orders o), "
    "(SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_catalog.pg_namespace "
    "WHERE nspname !~ '^pg_(toast_)?temp_'), "  # a session's temporary schema stays once made
    "(SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_catalog.pg_extension), "
    "(SELECT count(*) FROM pg_catalog.pg_foreign_server)"
)


OTHER_SETTINGS_SQL = (
    "SELECT md5(string_agg(name || '=' || setting || pending_restart::text, ',' ORDER BY name)) "
    "FROM pg_catalog.pg_settings WHERE name <> 'primary_conninfo'"
)


def _servers(sandbox):
    """What a job that changes nothing leaves as it was: per server its start time (no restart), recovery
    and timeline, settings (live and in the files: ALTER SYSTEM without a reload shows there), roles and
    their passwords, databases; on the primary its standbys as pg_stat_replication shows them, the slots,
    and the demo database's shop tables, schemas, extensions and foreign servers."""
    state = {host: _sql(sandbox, host, SERVER_STATE_SQL)[0] for host in SANDBOX_HOSTS}
    state["primary"] = _sql(sandbox, "pg-primary", PRIMARY_STATE_SQL)[0]
    state["demo"] = _sql(sandbox, "pg-primary", DEMO_STATE_SQL, dbname="demo")[0]
    return state


def _hosts(run, kind):
    return {e["event_data"]["host"] for e in run.events if e["event"] == kind}


def _changed(run):
    """(host, task) of every runner_on_ok event that reported a change."""
    return {
        (e["event_data"]["host"], e["event_data"]["task"])
        for e in run.events
        if e["event"] == "runner_on_ok" and e["event_data"]["res"].get("changed")
    }


def _failures(run):
    return {
        e["event_data"]["host"]: (e["event_data"]["task"], e["event_data"]["res"].get("msg", ""))
        for e in run.events
        if e["event"] in ("runner_on_failed", "runner_on_unreachable")
    }


def _result(run, task, host):
    (res,) = [
        e["event_data"]["res"]
        for e in run.events
        if e["event"] == "runner_on_ok"
        and e["event_data"]["task"] == task
        and e["event_data"]["host"] == host
    ]
    return res


def _assert_successful(run, hosts):
    """The job succeeded on exactly these hosts, none failed or unreachable."""
    assert run.status == "successful" and run.rc == 0, _failures(run)
    assert not _failures(run) and run.stats["failures"] == {} and run.stats["dark"] == {}
    assert _hosts(run, "runner_on_ok") == set(hosts)


READ_ONLY = {
    # template: (the role's report folder variable, the hosts of the survey's default target, report name)
    "dbarch schema review": ("schema_review_dest", ["pg-primary"], "schema_review"),
    "dbarch query review": ("query_tuning_dest", ["pg-primary"], "query_tuning"),
    "dbarch security audit": ("security_audit_dest", list(SANDBOX_HOSTS), "security_audit"),
    "dbarch replication lag runbook": (
        "replication_report_dest",
        ["pg-primary", "pg-replica", "pg-replica2"],
        "replication_lag",
    ),
    "dbarch connections runbook": ("connections_report_dest", ["pg-primary"], "connections"),
}


@pytest.mark.parametrize("name", list(READ_ONLY))
def test_read_only_job_template(name, sandbox, tmp_path):
    """A read-only job template with its survey's defaults: successful on every host of its target, one
    report per host, and the only changes are the reports written on the controller."""
    variable, hosts, report = READ_ONLY[name]
    dest = tmp_path / "reports"
    before = _servers(sandbox)
    _params, run = _run_job_template(name, sandbox, tmp_path, {variable: str(dest)})
    _assert_successful(run, hosts)
    assert {task for _host, task in _changed(run)} and all(
        task.startswith("Write ") for _host, task in _changed(run)
    ), _changed(run)
    for host in hosts:
        written = json.loads((dest / host / (report + ".json")).read_text())
        assert isinstance(written["findings"], list) and written["summary"]
        assert (dest / host / (report + ".md")).is_file()
    # Fleets: every read-only workflow also joins its hosts' reports into one summary.
    fleet = json.loads((dest / "fleet" / (report + "_fleet.json")).read_text())["summary"]
    assert sorted(fleet["answered"]) == sorted(hosts) and fleet["failed"] == [], fleet
    assert fleet["missing_reports"] == [] and set(fleet["per_host"]) == set(hosts), fleet
    assert _servers(sandbox) == before


def test_backup_job_template_takes_a_verified_backup(sandbox, tmp_path, earlier):
    dest = tmp_path / "reports"
    _params, run = _run_job_template("dbarch backup", sandbox, tmp_path, {"backup_report_dest": str(dest)})
    _assert_successful(run, ["pg-primary"])
    assert ("pg-primary", "Take a base backup now") in _changed(run)
    summary = json.loads((dest / "pg-primary" / "backup.json").read_text())["summary"]
    assert summary["wal_archiving"] is True and summary["usable_backups"] >= 1 and summary["gaps"] == 0
    # The job template's extra var backup_schedule=false: AWX's schedule is the only one, no cron job.
    assert summary["schedule"].startswith("none")
    cron = os.path.join(sandbox["folder"], "backup-tools", "cron.d")
    assert not os.path.isdir(cron) or not os.listdir(cron)
    earlier["backup"] = summary


def test_restore_drill_job_template_restores_and_compares(sandbox, tmp_path, earlier):
    dest = tmp_path / "reports"
    _params, run = _run_job_template(
        "dbarch restore drill", sandbox, tmp_path, {"restore_drill_report_dest": str(dest)}
    )
    _assert_successful(run, ["pg-scratch"])
    summary = json.loads((dest / "pg-scratch" / "restore_drill.json").read_text())["summary"]
    assert summary["ok"] is True and summary["problems"] == [] and summary["amcheck_rc"] == 0
    assert summary["backup_id"] == earlier["backup"]["newest_backup"]
    assert summary["tables_restored"] == summary["tables_source"]
    assert summary["tables_restored"]["shop.orders"]["rows"] > 0
    # The scratch instance is gone after the drill.
    assert summary["kept"] is False and not os.path.exists(os.path.join(sandbox["folder"], "drill"))
    assert ("pg-scratch", "Stop and delete the restored instance") in _changed(run)
    earlier["restore_point_time"] = summary["restore_point_time"]


def test_migrate_job_template_applies_the_demo_migrations_then_changes_nothing(sandbox, tmp_path):
    """The survey's answers: the demo migrations' path, production not confirmed. The sandbox's primary is the
    dev stage (an inventory that groups hosts by stage, as AWX's would); no staging or production hosts."""
    stages = tmp_path / "stages.yml"
    stages.write_text(yaml.safe_dump({"all": {"children": {"dev": {"children": {"primary": {}}}}}}))
    inventory = [str(SANDBOX_INVENTORY), str(stages)]
    runs = []
    for attempt in ("first", "second"):
        dest = tmp_path / attempt
        _params, run = _run_job_template(
            "dbarch migrate",
            sandbox,
            tmp_path / ("private-" + attempt),
            {"migrations_path": "migrations/demo", "migrations_report_dest": str(dest)},
            inventory=inventory,
        )
        _assert_successful(run, ["pg-primary"])
        runs.append((run, json.loads((dest / "pg-primary" / "migrations.json").read_text())["summary"]))
    (first, first_summary), (second, second_summary) = runs
    assert ("pg-primary", "Apply the pending migrations") in _changed(first)
    assert first_summary["version"] == "4" and first_summary["pending"] == []
    assert _sql(
        sandbox, "pg-primary", "SELECT count(*) FROM pg_namespace WHERE nspname = 'billing'", "demo"
    ) == [(1,)]
    # The first run records what it applied; the second run: nothing pending, nothing applied; only its
    # state report is written (into a folder of its own), and no record of a change.
    applied = json.loads((tmp_path / "first" / "pg-primary" / "migrations_applied.json").read_text())
    assert applied["summary"]["applied"][-1] == "R__customer_balance_view.sql", applied["summary"]
    assert _changed(second) == {("pg-primary", "Write the migration report")}
    assert not (tmp_path / "second" / "pg-primary" / "migrations_applied.json").exists()
    assert second_summary["version"] == "4" and second_summary["pending"] == []


def test_switchover_job_template_to_the_current_primary_changes_nothing(sandbox, tmp_path):
    dest = tmp_path / "reports"
    before = _servers(sandbox)
    _params, run = _run_job_template(
        "dbarch switchover",
        sandbox,
        tmp_path,
        {"switchover_target": "pg-primary", "switchover_report_dest": str(dest)},
    )
    _assert_successful(run, ["pg-primary", "pg-replica", "pg-replica2"])
    assert run.stats["changed"] == {} and not _changed(run)
    said = [
        e["event_data"]["res"].get("msg", "")
        for e in run.events
        if e["event"] == "runner_on_ok" and e["event_data"]["host"] == "pg-primary"
    ]
    assert [m for m in said if "is the primary already" in str(m) and "nothing changed" in str(m)], said
    assert not dest.exists()  # the report of the run that did the work (none here) is kept
    assert _servers(sandbox) == before


def test_failover_job_template_with_a_primary_answering_ends_with_no_change(sandbox, tmp_path):
    """failover_fail_when_not_needed answered false: the primary answers, nothing to fail over, the job
    succeeds with no change (answered true, the role's default, it fails with the refusal)."""
    dest = tmp_path / "reports"
    before = _servers(sandbox)
    _params, run = _run_job_template(
        "dbarch failover",
        sandbox,
        tmp_path,
        {"failover_fail_when_not_needed": "false", "failover_report_dest": str(dest)},
    )
    _assert_successful(run, ["pg-primary", "pg-replica", "pg-replica2"])
    assert run.stats["changed"] == {} and not _changed(run)
    said = _result(run, "Say that there is nothing to fail over", "pg-primary")["msg"]
    assert said.startswith("Nothing to fail over: pg-primary is out of recovery")
    assert not dest.exists()
    assert _servers(sandbox) == before


def test_rejoin_job_template_of_a_streaming_standby(sandbox, tmp_path):
    """pg-replica2 streams from the primary already. It stays a streaming standby of the same primary on the
    same timeline, without a restart, a rewind or a lost transaction. The one change: the role names the
    standby by its host (application_name), which the sandbox's clone did not set, so primary_conninfo is
    rewritten once (ALTER SYSTEM + reload); the password stays in the password file."""
    dest = tmp_path / "reports"
    before = _servers(sandbox)
    settings_before = _sql(sandbox, "pg-replica2", OTHER_SETTINGS_SQL)
    _params, run = _run_job_template(
        "dbarch rejoin", sandbox, tmp_path, {"rejoin_host": "pg-replica2", "rejoin_report_dest": str(dest)}
    )
    _assert_successful(run, ["pg-primary", "pg-replica", "pg-replica2"])
    assert {host for host, _task in _changed(run)} == {"pg-replica2"}
    summary = json.loads((dest / "pg-replica2" / "rejoin.json").read_text())["summary"]
    assert summary["status"] == "rejoined" and summary["primary"] == "pg-primary"
    assert summary["upstream"]["status"] == "streaming" and summary["lost_transactions"] == []
    assert summary["action"] in ("none", "repointed")
    assert not [s for s in summary["steps"] if "rewind" in s or "restart" in s.replace("(no restart)", "")]
    after = _servers(sandbox)
    for host in ("pg-primary", "pg-replica", "pg-scratch"):
        assert after[host] == before[host]
    # replica2: same start time (no restart), still in recovery, same timeline, roles, databases; of its
    # settings only primary_conninfo differs (its application_name).
    assert after["pg-replica2"][:3] == before["pg-replica2"][:3]
    assert after["pg-replica2"][5:] == before["pg-replica2"][5:]
    assert _sql(sandbox, "pg-replica2", OTHER_SETTINGS_SQL) == settings_before
    (conninfo,) = _sql(sandbox, "pg-replica2", "SELECT current_setting('primary_conninfo')")[0]
    assert "passfile=" in conninfo and "password=" not in conninfo
    assert after["demo"] == before["demo"]
    assert [s.split(":")[1] for s in after["primary"][0].split(",")] == ["streaming", "streaming"]


def test_add_replica_job_template_as_a_check_job_changes_nothing(sandbox, tmp_path):
    dest = tmp_path / "reports"
    before = _servers(sandbox)
    _params, run = _run_job_template(
        "dbarch add replica",
        sandbox,
        tmp_path,
        {"replica_host": "pg-replica2", "replica_report_dest": str(dest)},
        job_type="check",
    )
    _assert_successful(run, ["pg-primary", "pg-replica", "pg-replica2"])
    assert {task for _host, task in _changed(run)} <= {"Write the add_replica report"}
    assert not dest.exists()  # check mode: the report is not written either
    assert _servers(sandbox) == before


def test_point_in_time_restore_job_template_as_a_check_job_plans_and_writes_nothing(
    sandbox, tmp_path, earlier
):
    """The survey's answers: pg-scratch, the backup's repository, a data directory, the drill's restore point
    time as the target; a job of job_type check reports the backup it would restore and writes nothing."""
    data_dir = os.path.join(sandbox["folder"], "pitr-check", "data")
    before = _servers(sandbox)
    _params, run = _run_job_template(
        "dbarch point-in-time restore",
        sandbox,
        tmp_path,
        {
            "pitr_host": "pg-scratch",
            "pitr_repository": earlier["backup"]["repository"],
            "pitr_data_dir": data_dir,
            "pitr_target_time": earlier["restore_point_time"],
        },
        job_type="check",
    )
    _assert_successful(run, ["localhost", "pg-scratch"])
    restore = _result(run, "Restore", "pg-scratch")
    assert restore["backup_id"] == earlier["backup"]["newest_backup"]
    assert not os.path.exists(os.path.dirname(data_dir))
    assert _servers(sandbox) == before


def test_scale_job_template_tune_as_a_check_job_changes_nothing(sandbox, tmp_path):
    dest = tmp_path / "reports"
    before = _servers(sandbox)
    _params, run = _run_job_template(
        "dbarch scale",
        sandbox,
        tmp_path,
        {"scale_remedy": "tune", "scale_report_dest": str(dest)},
        job_type="check",
    )
    _assert_successful(run, ["pg-primary", "pg-replica", "pg-replica2"])
    # What the tuning would change, on the standbys one at a time and on the primary; applied nowhere.
    assert {h for h, task in _changed(run) if task == "Apply the tuning advice (all)"} == {
        "pg-primary",
        "pg-replica",
        "pg-replica2",
    }
    assert _servers(sandbox) == before


def test_shard_job_template_without_a_shard_map_refuses(sandbox, tmp_path):
    """The shard map is the inventory's; the sandbox has none: the job fails at the input check, having
    made nothing."""
    before = _servers(sandbox)
    _params, run = _run_job_template(
        "dbarch shard", sandbox, tmp_path, {"dbarch_target": "pg-primary", "shard_report_dest": str(tmp_path)}
    )
    assert run.status == "failed" and run.rc != 0
    ((host, (task, msg)),) = _failures(run).items()
    assert host == "pg-primary" and task == "Check the shard map"
    assert msg.startswith("shard: give shard_table, shard_key, shard_columns and shard_map")
    assert _servers(sandbox) == before


def test_rotate_credentials_job_template_from_the_inventory_as_a_check_job(sandbox, tmp_path, moto):
    """The roles to rotate come from the inventory (the survey asks for the hosts only); AWS credentials from
    the environment, as AWX's AWS credential injects them. A check job: the plan, no password set, no
    secret written."""
    rotation = tmp_path / "rotation.yml"
    secret_id = "dbarch/awx-check/superuser"
    rotation.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "primary": {
                            "hosts": {
                                "pg-primary": {
                                    "rotate_credentials": [
                                        {"role": sandbox["credentials"]["superuser"], "secret_id": secret_id}
                                    ],
                                    "rotate_aws_region": harness.S3_CREDENTIALS["AWS_DEFAULT_REGION"],
                                    "rotate_aws_endpoint_url": moto,
                                }
                            }
                        }
                    }
                }
            }
        )
    )
    before = _servers(sandbox)
    _params, run = _run_job_template(
        "dbarch rotate credentials",
        sandbox,
        tmp_path,
        {"rotate_reports_dir": str(tmp_path / "reports")},
        inventory=[str(SANDBOX_INVENTORY), str(rotation)],
        job_type="check",
        env=harness.S3_CREDENTIALS,
    )
    _assert_successful(run, ["pg-primary"])
    (rotated,) = _result(
        run,
        "Rotate each login role (verifier computed here, secret stored after a verified login)",
        "pg-primary",
    )["results"]
    assert rotated["changed"] is True and rotated["role"] == sandbox["credentials"]["superuser"]
    assert rotated["actions"][-1] == "create secret " + secret_id
    assert _servers(sandbox) == before
    client = boto3.client("secretsmanager", endpoint_url=moto, **_aws())
    assert client.list_secrets()["SecretList"] == []


def _aws():
    return {
        "region_name": harness.S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        "aws_access_key_id": harness.S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": harness.S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def test_gdpr_subject_request_job_template_erase_dry_run_changes_nothing(sandbox, tmp_path):
    """Erase, the survey's default dry run: the receipt lists what would be erased, nothing is."""
    dest = tmp_path / "reports"
    before = _servers(sandbox)
    _params, run = _run_job_template(
        "dbarch GDPR subject request",
        sandbox,
        tmp_path,
        {
            "gdpr_action": "erase",
            "gdpr_db": "demo",
            "gdpr_table": "shop.customers",
            "gdpr_value": "42",
            "gdpr_reports_dir": str(dest),
        },
    )
    _assert_successful(run, ["pg-primary"])
    (receipt,) = (dest / "pg-primary" / "gdpr").glob("erase-*.json")
    receipt = json.loads(receipt.read_text())
    assert receipt["dry_run"] is True and receipt["legal_hold"] is False and "42" not in json.dumps(receipt)
    assert receipt["tables"]
    assert _servers(sandbox) == before


def test_monitoring_job_template_as_a_check_job_changes_nothing(sandbox, tmp_path):
    """The exporters' settings for the sandbox's primary come from the inventory (its port, folders of the
    test); a check job on pg-primary: every step planned, no folder, file or login role made."""
    folder = tmp_path / "monitoring"
    port = _sql(sandbox, "pg-primary", "SELECT current_setting('port')::int")[0][0]
    names = {
        "monitoring_install_packages": False,
        "monitoring_service": "process",
        "monitoring_clusters": [{"name": "primary", "port": port, "exporter_port": lc.free_port()}],
        "monitoring_node_exporter_port": lc.free_port(),
        "monitoring_schedule_method": "cron",
    }
    for key in ("config", "state", "textfile", "bin", "rules", "cron"):
        names["monitoring_%s_dir" % key] = str(folder / key)
    hosts = tmp_path / "monitoring.yml"
    hosts.write_text(yaml.safe_dump({"all": {"children": {"primary": {"hosts": {"pg-primary": names}}}}}))
    before = _servers(sandbox)
    _params, run = _run_job_template(
        "dbarch monitoring",
        sandbox,
        tmp_path,
        {"dbarch_target": "pg-primary"},
        inventory=[str(SANDBOX_INVENTORY), str(hosts)],
        job_type="check",
    )
    _assert_successful(run, ["pg-primary"])
    assert (
        "pg-primary",
        "Create the exporter's login role (pg_monitor, nothing else; primaries first)",
    ) in _changed(run)
    assert not folder.exists()
    assert _sql(sandbox, "pg-primary", "SELECT count(*) FROM pg_roles WHERE rolname = 'dbarch_monitor'") == [
        (0,)
    ]
    assert _servers(sandbox) == before
