"""Engine of dbarch.postgresql.scheduled_job: cron fields, OnCalendar, quoting, rendering."""

import shlex
import shutil
import subprocess

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import schedule as s


@pytest.mark.parametrize(
    "fields, cron, calendars",
    [
        (dict(minute="30", hour="2"), "30 2 * * *", ["*-*-* 02:30:00"]),
        (dict(minute="*/15"), "*/15 * * * *", ["*-*-* *:00/15:00"]),
        (dict(minute="0", hour="*/6"), "0 */6 * * *", ["*-*-* 00/6:00:00"]),
        (dict(minute="5", hour="3", weekday="Mon-Fri"), "5 3 * * 1-5", ["Mon..Fri *-*-* 03:05:00"]),
        (dict(minute="0", hour="1", weekday="5-7"), "0 1 * * 5-7", ["Fri..Sun *-*-* 01:00:00"]),
        (dict(minute="0", hour="1", weekday="sat,sun"), "0 1 * * 6,0", ["Sat,Sun *-*-* 01:00:00"]),
        (dict(minute="0", hour="1", weekday="0-6"), "0 1 * * 0-6", ["*-*-* 01:00:00"]),
        (dict(minute="0", hour="1", weekday="7"), "0 1 * * 7", ["Sun *-*-* 01:00:00"]),
        (dict(minute="0", hour="1", weekday="Sunday"), "0 1 * * 0", ["Sun *-*-* 01:00:00"]),
        (dict(minute="0-30/10", hour="1-5"), "0-30/10 1-5 * * *", ["*-*-* 01..05:00,10,20,30:00"]),
        (dict(minute="0", hour="4", day="1", month="Jan,Jul"), "0 4 1 1,7 *", ["*-01,07-01 04:00:00"]),
        (dict(minute="0", hour="4", day="*/10"), "0 4 */10 * *", ["*-*-01/10 04:00:00"]),
        (dict(minute="15,45", hour="8-17"), "15,45 8-17 * * *", ["*-*-* 08..17:15,45:00"]),
        # cron runs when the day OR the weekday matches: two OnCalendar lines
        (
            dict(minute="0", hour="2", day="1,15", weekday="Sun"),
            "0 2 1,15 * 0",
            ["*-*-01,15 02:00:00", "Sun *-*-* 02:00:00"],
        ),
    ],
)
def test_cron_fields_and_on_calendar(fields, cron, calendars):
    got = s.schedule(**fields)
    assert got["cron"] == cron
    assert got["on_calendar"] == calendars


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_on_calendar_expressions_are_accepted_by_systemd():
    for fields in (
        dict(minute="30", hour="2"),
        dict(minute="*/15"),
        dict(minute="0-30/10", hour="1-5", weekday="Mon-Fri"),
        dict(minute="0", hour="4", day="*/10", month="Jan,Jul"),
        dict(minute="0", hour="1", weekday="5-7"),
    ):
        for expr in s.schedule(**fields)["on_calendar"]:
            proc = subprocess.run(
                ["systemd-analyze", "calendar", expr], capture_output=True, text=True, check=False
            )
            assert proc.returncode == 0, (expr, proc.stderr)
            assert "Normalized form:" in proc.stdout


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("minute", "60", "minute='60': 60 is out of range 0-59"),
        ("hour", "24", "hour='24': 24 is out of range 0-23"),
        ("day", "0", "day='0': 0 is out of range 1-31"),
        ("weekday", "8", "weekday='8': 8 is out of range 0-7 (0 and 7 are both Sunday)"),
        ("weekday", "Funday", "weekday='Funday': 'Funday' is not a number 0-7 or a name Mon..Sun"),
        ("minute", "*/0", "the step after / must be a positive number, not '0'"),
        ("minute", "5/10", "cron takes a step only after * or a range"),
        ("hour", "5-2", "range 5-2 goes backwards"),
        ("minute", "1,,2", "empty item in the list"),
        ("minute", "1 2", "no spaces inside a field"),
        ("minute", "", "minute is empty"),
        ("hour", "x", "hour='x': 'x' is not a number 0-23"),
    ],
)
def test_field_errors_say_what_and_where(field, value, message):
    with pytest.raises(s.ScheduleError) as exc:
        s.parse_field(field, value)
    assert message in str(exc.value)


def job(**kw):
    j = dict(name="job-x", description="A job", argv=["/bin/true"], user="postgres", environment={})
    j.update(kw)
    return j


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(name="a/b"), "name='a/b': use letters"),
        (dict(argv=[]), "argv must be a non-empty list"),
        (dict(argv=["/bin/echo", "a\nb"]), "newline or NUL"),
        (dict(description="a\rExecStartPre=/bin/evil"), "description holds a carriage return"),
        (dict(log_file="/tmp/x\n* * * * * root /bin/evil"), "log_file holds a carriage return"),
        (dict(user="bad user"), "user='bad user' is not a valid user name"),
        (dict(environment={"1X": "v"}), "'1X' is not a valid variable name"),
        (dict(environment={"X": "a'b\"c"}), "both ' and"),
        (dict(log_file="rel/log"), "must be an absolute path"),
    ],
)
def test_job_errors(kw, message):
    with pytest.raises(s.ScheduleError) as exc:
        s.plan(job(**kw))
    assert message in str(exc.value)


def test_dot_in_name_only_refused_for_cron():
    s.plan(job(name="a.b"), "systemd")
    with pytest.raises(s.ScheduleError, match="cron ignores files"):
        s.plan(job(name="a.b"), "cron")


def test_cron_escapes_percent_and_backslash_and_cron_unescape_gives_the_shell_command_back():
    argv = ["/usr/bin/printf", "%s\\n", '50% of it\'s "x" $HOME', "a b"]
    command = s.shell_command(argv)
    escaped = s.cron_escape(command)
    assert "%" not in escaped.replace("\\%", "")
    assert s.cron_unescape(escaped) == command
    assert shlex.split(command) == argv
    # an unescaped % ends the command in cron
    assert s.cron_unescape("echo a%b") == "echo a"
    # a backslash before another character stays
    assert s.cron_unescape("echo a\\nb") == "echo a\\nb"


def test_cron_file():
    text, line = s.render_cron(
        job(
            argv=["/bin/echo", "it's 50%"],
            environment={"PGAPPNAME": "dbarch job", "Q": 'say "hi"'},
            log_file="/var/log/x y.log",
        ),
        "30 2 * * *",
    )
    lines = text.splitlines()
    assert lines[0].startswith("# Managed by dbarch.postgresql")
    assert lines[1] == "# A job"
    assert lines[2:4] == ["SHELL=/bin/sh", "PATH=%s" % s.CRON_PATH]
    assert lines[4:6] == ['PGAPPNAME="dbarch job"', "Q='say \"hi\"'"]
    assert lines[6] == line
    assert line == "30 2 * * * postgres /bin/echo 'it'\"'\"'s 50\\%' >> '/var/log/x y.log' 2>&1"


def test_service_and_timer():
    j = job(
        argv=["/usr/bin/psql", "-c", 'SELECT 1 -- 50% "q" \\ $x'],
        environment={"PGOPTIONS": "-c statement_timeout=5%"},
        random_delay=120,
    )
    plan = s.plan(dict(j, minute="30", hour="2"))
    service = plan["service_text"].splitlines()
    assert "Type=oneshot" in service and "User=postgres" in service
    # the values go to a 0600 EnvironmentFile=, never to Environment= lines (readable over D-Bus)
    assert "EnvironmentFile=/etc/systemd/system/job-x.env" in service
    assert not [line for line in service if line.startswith("Environment=")]
    assert plan["env_file"] == "/etc/systemd/system/job-x.env"
    assert 'PGOPTIONS="-c statement_timeout=5%"' in plan["env_text"].splitlines()
    assert 'ExecStart="/usr/bin/psql" "-c" "SELECT 1 -- 50%% \\"q\\" \\\\ $$x"' in service
    timer = plan["timer_text"].splitlines()
    assert "OnCalendar=*-*-* 02:30:00" in timer
    assert "Persistent=true" in timer and "RandomizedDelaySec=120" in timer
    assert "WantedBy=timers.target" in timer


def test_mode_is_0600_with_environment():
    assert s.file_mode_for(job()) == 0o644
    assert s.file_mode_for(job(environment={"A": "1"})) == 0o600
    assert s.file_mode_for(job(secret_environment={"PGPASSWORD": "x"})) == 0o600
    # systemd units never hold the values: the EnvironmentFile= does
    assert s.file_mode_for(job(secret_environment={"PGPASSWORD": "x"}), "systemd") == 0o644


# Every field that reaches a cron or unit file, and how to put a value into it.
_LINE_FIELDS = {
    "name": lambda v: dict(name="job" + v + "x"),
    "description": lambda v: dict(description="nightly" + v + "ExecStartPre=/bin/evil"),
    "argv[0]": lambda v: dict(argv=["/bin/true" + v]),
    "argv[1]": lambda v: dict(argv=["/bin/echo", "a" + v + "* * * * * root /bin/evil"]),
    "user": lambda v: dict(user="postgres" + v),
    "environment name": lambda v: dict(environment={"A" + v + "B": "1"}),
    "environment value": lambda v: dict(environment={"A": "1" + v + "B=2"}),
    "secret_environment name": lambda v: dict(secret_environment={"S" + v: "1"}),
    "secret_environment value": lambda v: dict(secret_environment={"PGPASSWORD": "pw" + v + "X"}),
    "log_file": lambda v: dict(log_file="/tmp/log" + v + "* * * * * root /bin/evil"),
    "minute": lambda v: dict(minute="5" + v),
    "hour": lambda v: dict(hour="2" + v),
    "day": lambda v: dict(day="1" + v),
    "month": lambda v: dict(month="1" + v),
    "weekday": lambda v: dict(weekday="Mon" + v),
    "systemd_dir": lambda v: dict(systemd_dir="/etc/systemd" + v + "/system", environment={"A": "1"}),
}


@pytest.mark.parametrize("char", ["\r", "\n", "\x00"], ids=["CR", "LF", "NUL"])
@pytest.mark.parametrize("field", sorted(_LINE_FIELDS))
@pytest.mark.parametrize("method", ["cron", "systemd"])
def test_no_line_break_in_any_field_that_reaches_a_file(field, char, method):
    with pytest.raises(s.ScheduleError) as exc:
        s.plan(job(**_LINE_FIELDS[field](char)), method)
    message = str(exc.value)
    assert (
        "carriage return, newline or NUL" in message or "not a valid" in message or "use letters" in message
    )
    # a secret value is never echoed in the message
    assert "pw" not in message


def test_environment_file_round_trips_through_sh():
    """The EnvironmentFile= quoting is /bin/sh double-quote quoting: sourcing it gives the values back."""
    values = {"A": "x \"q\" $HOME `id` \\ 50% 's'", "B": " lead and trail ", "C": ""}
    text = s.render_environment_file(job(environment=values))
    out = subprocess.run(
        ["/bin/sh", "-c", 'eval "$1"; printf "%s\\0" "$A" "$B" "$C"', "sh", text],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split("\0")[:3] == [values["A"], values["B"], values["C"]]


def test_choose_method(tmp_path):
    assert s.choose_method("cron") == "cron"
    assert s.choose_method("systemd") == "systemd"
    assert s.choose_method("auto", str(tmp_path)) == "systemd"
    assert s.choose_method("auto", str(tmp_path / "missing")) == "cron"


def test_cron_daemon_is_found_by_process_name(tmp_path):
    (tmp_path / "12").mkdir()
    (tmp_path / "12" / "comm").write_text("bash\n")
    (tmp_path / "self").mkdir()
    assert s.cron_daemon_running(str(tmp_path)) is False
    (tmp_path / "40").mkdir()
    (tmp_path / "40" / "comm").write_text("cron\n")
    assert s.cron_daemon_running(str(tmp_path)) is True
