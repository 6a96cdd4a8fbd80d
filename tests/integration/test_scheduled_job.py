"""dbarch.postgresql.scheduled_job through ansible-playbook, into temporary cron and systemd folders.

The cron line is proven by running it the way cron does: the command field un-escaped like cron's
do_command.c, the variable lines parsed like its load_env, then ``/bin/sh -c`` as the job's user.
The systemd units are checked with ``systemd-analyze verify``, which works without a running systemd.
"""

import os
import pwd
import re
import shutil
import subprocess

import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import schedule

ARG = 'it\'s 50% done, "quoted" and $HOME \\ kept'


@pytest.fixture
def folders():
    root = harness.work_folder("dbarch-sched-")
    paths = {k: os.path.join(root, k) for k in ("cron", "systemd", "out")}
    for path in paths.values():
        os.mkdir(path)
    postgres = pwd.getpwnam("postgres")
    os.chown(paths["out"], postgres.pw_uid, postgres.pw_gid)
    yield paths
    shutil.rmtree(root, ignore_errors=True)


def job_task(task_name, folders, check_mode=None, **options):
    out_file = os.path.join(folders["out"], "result 50% file.txt")
    args = dict(
        name="dbarch-test-job",
        description="Test job writing 100% of its argument",
        argv=["/bin/sh", "-c", 'printf "%s|%s" "$1" "$DBARCH_GREETING" > "$2"', "sh", ARG, out_file],
        environment={"DBARCH_GREETING": "hello 100% world"},
        minute="*/15",
        hour="2-4",
        weekday="Mon-Fri",
        method="cron",
        cron_dir=folders["cron"],
        systemd_dir=folders["systemd"],
    )
    args.update(options)
    task = dict(name=task_name, register=task_name, **{"dbarch.postgresql.scheduled_job": args})
    if check_mode is not None:
        task["check_mode"] = check_mode
    return task


def cron_environment(lines):
    """NAME=VALUE lines of a crontab, read like cron's load_env (one pair of quotes stripped)."""
    env = {}
    for line in lines:
        m = re.match(r"""^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|(.*?))\s*$""", line)
        if m:
            env[m.group(1)] = next(g for g in m.groups()[1:] if g is not None)
    return env


def run_like_cron(path):
    """Run the job line of a cron.d file as cron would; return the CompletedProcess."""
    with open(path) as fh:
        lines = [line for line in fh.read().splitlines() if line and not line.startswith("#")]
    job_lines = [line for line in lines if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", line)]
    assert len(job_lines) == 1, lines
    fields = job_lines[0].split(None, 6)
    user, command = fields[5], schedule.cron_unescape(fields[6])
    env = dict(cron_environment(lines), HOME=pwd.getpwnam(user).pw_dir, LOGNAME=user)
    argv = ["runuser", "-u", user, "--", "env", "-i"] + ["%s=%s" % kv for kv in sorted(env.items())]
    return subprocess.run(argv + ["/bin/sh", "-c", command], capture_output=True, text=True, check=False)


def test_cron_present_idempotent_check_diff_runs_and_absent(folders, run_playbook):
    cron_file = os.path.join(folders["cron"], "dbarch-test-job")
    run = run_playbook(
        [
            dict(
                hosts="localhost",
                gather_facts=False,
                tasks=[
                    job_task("check", folders, check_mode=True),
                    job_task("create", folders),
                    job_task("again", folders),
                    job_task("change_check", folders, check_mode=True, hour="5"),
                    job_task("bad_field", folders, hour="25"),
                ],
            )
        ],
        diff=True,
    )
    check = run.task("check")["result"]
    assert check["changed"] is True and check["method"] == "cron"
    assert check["files"] == [cron_file]
    assert check["diff"][0]["before"] == "" and "postgres /bin/sh -c" in check["diff"][0]["after"]
    create = run.task("create")["result"]
    assert create["changed"] is True and create["mode"] == "0600"
    assert create["on_calendar"] == "Mon..Fri *-*-* 02..04:00/15:00"
    assert create["cron_line"].startswith("*/15 2-4 * * 1-5 postgres /bin/sh -c ")
    assert run.task("again")["result"]["changed"] is False
    change = run.task("change_check")["result"]
    assert change["changed"] is True
    assert (
        "*/15 2-4 * * 1-5" in change["diff"][0]["before"] and "*/15 5 * * 1-5" in change["diff"][0]["after"]
    )
    bad = run.task("bad_field")
    assert bad["status"] == "failed"
    assert "hour='25': 25 is out of range 0-23" in bad["result"]["msg"]

    # what the play left: the file of the create task, 0600 (it has environment values), owned by root
    st = os.stat(cron_file)
    assert oct(st.st_mode & 0o777) == oct(0o600) and st.st_uid == 0
    with open(cron_file) as fh:
        text = fh.read()
    assert text.startswith("# Managed by dbarch.postgresql")
    assert "SHELL=/bin/sh\n" in text and 'DBARCH_GREETING="hello 100% world"\n' in text
    assert create["cron_line"] in text.splitlines()
    assert not os.listdir(folders["systemd"])

    # run it as cron would, as postgres: the file it writes proves every argument arrived unchanged
    proc = run_like_cron(cron_file)
    assert proc.returncode == 0, proc.stderr
    out_file = os.path.join(folders["out"], "result 50% file.txt")
    with open(out_file) as fh:
        assert fh.read() == ARG + "|hello 100% world"
    assert os.stat(out_file).st_uid == pwd.getpwnam("postgres").pw_uid

    # remove it: check mode first, then for real, then again (no change)
    run = run_playbook(
        [
            dict(
                hosts="localhost",
                gather_facts=False,
                tasks=[
                    job_task("absent_check", folders, check_mode=True, state="absent"),
                    job_task("absent", folders, state="absent"),
                    job_task("absent_again", folders, state="absent"),
                ],
            )
        ],
        diff=True,
    )
    run.assert_ok()
    assert run.task("absent_check")["result"]["changed"] is True
    assert run.task("absent")["result"]["files"] == [cron_file]
    assert run.task("absent_again")["result"]["changed"] is False
    assert not os.path.exists(cron_file)


def test_log_file_gets_the_output(folders, run_playbook):
    log = os.path.join(folders["out"], "job 100%.log")
    run = run_playbook(
        dict(
            hosts="localhost",
            gather_facts=False,
            # the connection options of the collection's group reach this module too, and are ignored
            module_defaults={
                "group/dbarch.postgresql.all": dict(login_db="x", login_port=5999, login_password="secret")
            },
            tasks=[
                job_task("create", folders, argv=["/bin/echo", "out 5% put"], environment={}, log_file=log),
            ],
        )
    )
    run.assert_ok()
    cron_file = os.path.join(folders["cron"], "dbarch-test-job")
    assert oct(os.stat(cron_file).st_mode & 0o777) == oct(0o644)
    for _run in range(2):
        proc = run_like_cron(cron_file)
        assert proc.returncode == 0, proc.stderr
    with open(log) as fh:
        assert fh.read() == "out 5% put\nout 5% put\n"


def test_systemd_units_and_switch_of_method(folders, run_playbook):
    cron_file = os.path.join(folders["cron"], "dbarch-test-job")
    service = os.path.join(folders["systemd"], "dbarch-test-job.service")
    timer = os.path.join(folders["systemd"], "dbarch-test-job.timer")
    run = run_playbook(
        dict(
            hosts="localhost",
            gather_facts=False,
            tasks=[
                job_task("cron", folders),
                job_task("systemd_check", folders, method="systemd", check_mode=True),
                job_task("systemd", folders, method="systemd", random_delay=300),
                job_task("systemd_again", folders, method="systemd", random_delay=300),
            ],
        ),
        diff=True,
    )
    run.assert_ok()
    check = run.task("systemd_check")["result"]
    env_file = os.path.join(folders["systemd"], "dbarch-test-job.env")
    assert check["changed"] is True and [d["before_header"] for d in check["diff"]] == [
        env_file,
        service,
        timer,
        cron_file,
    ]
    result = run.task("systemd")["result"]
    assert result["method"] == "systemd" and result["files"] == [env_file, service, timer]
    assert result["environment_file"] == env_file
    # no running systemd here: nothing to tell systemctl
    if not os.path.isdir("/run/systemd/system"):
        assert result["systemctl"] == []
    assert run.task("systemd_again")["result"]["changed"] is False
    assert not os.path.exists(cron_file)
    with open(service) as fh:
        service_text = fh.read()
    with open(timer) as fh:
        timer_text = fh.read()
    assert "Type=oneshot\nUser=postgres\n" in service_text
    # the values are in a root-only EnvironmentFile=, not in Environment= lines (readable over D-Bus)
    assert "EnvironmentFile=%s\n" % env_file in service_text and "\nEnvironment=" not in service_text
    with open(env_file) as fh:
        assert 'DBARCH_GREETING="hello 100% world"\n' in fh.read()
    st = os.stat(env_file)
    assert oct(st.st_mode & 0o777) == oct(0o600) and st.st_uid == 0
    assert '"it\'s 50%% done, \\"quoted\\" and $$HOME \\\\ kept"' in service_text
    assert (
        "OnCalendar=Mon..Fri *-*-* 02..04:00/15:00\nPersistent=true\nRandomizedDelaySec=300\n" in timer_text
    )
    assert oct(os.stat(service).st_mode & 0o777) == oct(0o644)

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the rendered text was checked above")
    proc = subprocess.run([analyze, "verify", timer, service], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "dbarch-test-job" not in proc.stderr, proc.stderr  # no warning about our units

    run = run_playbook(
        dict(hosts="localhost", gather_facts=False, tasks=[job_task("absent", folders, state="absent")])
    )
    run.assert_ok()
    assert sorted(run.task("absent")["result"]["files"]) == [env_file, service, timer]
    assert not os.listdir(folders["systemd"]) and not os.listdir(folders["cron"])


def test_line_breaks_cannot_add_a_cron_line_or_a_unit_directive(folders, run_playbook):
    """A newline in log_file would add a cron line (a root job), a CR in description a systemd directive."""
    evil = "/tmp/dbarch-evil-ran"
    run = run_playbook(
        dict(
            hosts="localhost",
            gather_facts=False,
            tasks=[
                dict(
                    job_task("cron_log_file", folders, log_file="/tmp/x.log\n* * * * * root touch " + evil),
                    ignore_errors=True,
                ),
                dict(
                    job_task(
                        "unit_description",
                        folders,
                        method="systemd",
                        description="nightly\rExecStartPre=/bin/touch " + evil,
                    ),
                    ignore_errors=True,
                ),
                dict(
                    job_task(
                        "secret_value",
                        folders,
                        method="systemd",
                        environment={},
                        secret_environment={"PGPASSWORD": "s3cr3t-value\nExecStartPre=/bin/true"},
                    ),
                    ignore_errors=True,
                ),
            ],
        )
    )
    for name, field in (
        ("cron_log_file", "log_file"),
        ("unit_description", "description"),
        ("secret_value", "secret_environment"),
    ):
        result = run.task(name)["result"]
        assert result.get("failed") is True, result
        assert field in result["msg"] and "carriage return, newline or NUL" in result["msg"], result["msg"]
    assert "s3cr3t-value" not in run.stdout
    assert not os.listdir(folders["cron"]) and not os.listdir(folders["systemd"])
