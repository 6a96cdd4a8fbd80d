# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Recurring jobs on a host: cron fields, their systemd OnCalendar form, and the files that
install them (a systemd .service and .timer, or a cron.d file).

- cron fields (minute, hour, day of month, month, weekday) are validated: numbers, lists,
  ranges, ``*/n`` and ``a-b/n``; weekdays also as names (Mon..Sun, 0 and 7 both Sunday);
- OnCalendar is computed from the set of values each field allows; when both the day of
  month and the weekday are restricted, cron runs when EITHER matches, so the timer gets one
  OnCalendar= line for each;
- argv is never given to a shell by systemd: each element is quoted for systemd (``"..."``
  with C escapes, ``%`` doubled, ``$`` doubled); the cron line quotes each element with
  shlex.quote for /bin/sh and escapes ``%`` and ``\\`` the way cron un-escapes them.
Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shlex

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.fsutil import atomic_write

HEADER = "# Managed by dbarch.postgresql (scheduled_job %s): changes made here are overwritten."
CRON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*\$?$")
DAY_NAMES = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

# name: (low, high, names or None)
FIELDS = {
    "minute": (0, 59, None),
    "hour": (0, 23, None),
    "day": (1, 31, None),
    "month": (1, 12, MONTH_NAMES),
    "weekday": (0, 7, DAY_NAMES),
}


class ScheduleError(DbarchError):
    pass


def _number(field, token, text):
    low, high, names = FIELDS[field]
    if names:
        for i, n in enumerate(names):
            if token.lower() in (n.lower(), _long_name(n).lower()):
                return i if field == "weekday" else i + 1
    if not re.match(r"^[0-9]+$", token):
        allowed = "a number %d-%d" % (low, high)
        if names:
            allowed += (
                " or a name %s..%s" % (names[0], names[-1]) if field == "month" else " or a name Mon..Sun"
            )
        raise ScheduleError("%s=%r: %r is not %s." % (field, text, token, allowed))
    value = int(token)
    if not low <= value <= high:
        raise ScheduleError(
            "%s=%r: %d is out of range %d-%d%s."
            % (field, text, value, low, high, " (0 and 7 are both Sunday)" if field == "weekday" else "")
        )
    return value


def _long_name(short):
    full = {
        "Mon": "Monday",
        "Tue": "Tuesday",
        "Wed": "Wednesday",
        "Thu": "Thursday",
        "Fri": "Friday",
        "Sat": "Saturday",
        "Sun": "Sunday",
    }
    return full.get(short, short)


def parse_field(field, text):
    """{'values': sorted list, 'any': bool (the field is *), 'step': n or None (the field is */n),
    'cron': the field in cron syntax with numbers only}."""
    low, high, _names = FIELDS[field]
    text = str(text if text is not None else "*").strip()
    if not text:
        raise ScheduleError("%s is empty: give * or a value in cron syntax." % field)
    if re.search(r"\s", text):
        raise ScheduleError("%s=%r: no spaces inside a field; separate values with commas." % (field, text))
    values = set()
    cron_items = []
    whole_step = None
    items = text.split(",")
    for item in items:
        if not item:
            raise ScheduleError(
                "%s=%r: empty item in the list (two commas, or a comma at an end)." % (field, text)
            )
        base, _slash, step_text = item.partition("/")
        step = None
        if "/" in item:
            if not re.match(r"^[0-9]+$", step_text) or int(step_text) == 0:
                raise ScheduleError(
                    "%s=%r: the step after / must be a positive number, not %r." % (field, text, step_text)
                )
            step = int(step_text)
        if base == "*":
            start, end = low, high if field != "weekday" else 6
            if step is not None and len(items) == 1:
                whole_step = step
            cron_items.append("*" if step is None else "*/%d" % step)
        elif "-" in base:
            a, _dash, b = base.partition("-")
            start, end = _number(field, a, text), _number(field, b, text)
            if field == "weekday" and end == 0:
                end = 7  # Fri-Sun
            if start > end:
                raise ScheduleError(
                    "%s=%r: range %s goes backwards; write it as a list (e.g. 5-7,0-1 for weekdays)."
                    % (field, text, base)
                )
            cron_items.append("%d-%d%s" % (start, end, "" if step is None else "/%d" % step))
        else:
            if step is not None:
                raise ScheduleError(
                    "%s=%r: %s: cron takes a step only after * or a range (write */%d or a-b/%d)."
                    % (field, text, item, step, step)
                )
            start = end = _number(field, base, text)
            cron_items.append("%d" % start)
        values.update(range(start, end + 1, step or 1))
    if field == "weekday" and 7 in values:
        values.discard(7)
        values.add(0)
    full = set(range(low, (6 if field == "weekday" else high) + 1))
    return dict(
        values=sorted(values),
        any=values == full and whole_step in (None, 1),
        step=whole_step,
        cron=",".join(cron_items),
        restricted=text != "*",
    )


def _runs(values):
    """Consecutive runs [(a, b)] of sorted values."""
    runs = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return runs


def _calendar_part(field, parsed, width=2):
    if parsed["any"]:
        return "*"
    low = FIELDS[field][0]
    fmt = "%0" + str(width) + "d"
    if parsed["step"]:
        return (fmt % low) + "/%d" % parsed["step"]
    out = []
    for a, b in _runs(parsed["values"]):
        if a == b:
            out.append(fmt % a)
        elif b == a + 1:
            out.extend([fmt % a, fmt % b])
        else:
            out.append((fmt % a) + ".." + (fmt % b))
    return ",".join(out)


def _weekday_part(parsed):
    if parsed["any"]:
        return ""
    order = [1, 2, 3, 4, 5, 6, 0]  # systemd weeks run Mon..Sun
    positions = sorted(order.index(v) for v in parsed["values"])
    out = []
    for a, b in _runs(positions):
        if a == b:
            out.append(DAY_NAMES[order[a]])
        elif b == a + 1:
            out.extend([DAY_NAMES[order[a]], DAY_NAMES[order[b]]])
        else:
            out.append("%s..%s" % (DAY_NAMES[order[a]], DAY_NAMES[order[b]]))
    return ",".join(out) + " "


def schedule(minute="0", hour="*", day="*", month="*", weekday="*"):
    """Validate the five cron fields; return {'cron': 'm h dom mon dow', 'on_calendar': [expr, ...]}."""
    f = dict(
        minute=parse_field("minute", minute),
        hour=parse_field("hour", hour),
        day=parse_field("day", day),
        month=parse_field("month", month),
        weekday=parse_field("weekday", weekday),
    )
    time_part = "%s:%s:00" % (_calendar_part("hour", f["hour"]), _calendar_part("minute", f["minute"]))
    month_part = _calendar_part("month", f["month"])
    day_part = _calendar_part("day", f["day"])
    if f["day"]["restricted"] and f["weekday"]["restricted"]:
        # cron: either the day of month or the weekday matches; systemd: both must, so two lines.
        calendars = [
            "*-%s-%s %s" % (month_part, day_part, time_part),
            "%s*-%s-* %s" % (_weekday_part(f["weekday"]), month_part, time_part),
        ]
    else:
        calendars = ["%s*-%s-%s %s" % (_weekday_part(f["weekday"]), month_part, day_part, time_part)]
    cron = " ".join(f[k]["cron"] for k in ("minute", "hour", "day", "month", "weekday"))
    return dict(cron=cron, on_calendar=calendars)


# -- quoting ------------------------------------------------------------------------------

_C_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def systemd_quote(value, dollar=True):
    """One word for ExecStart=/Environment=: double-quoted, C escapes, % doubled (specifiers),
    $ doubled (variable expansion in ExecStart=)."""
    out = []
    for ch in str(value):
        if ch in _C_ESCAPES:
            out.append(_C_ESCAPES[ch])
        elif ch == "%":
            out.append("%%")
        elif ch == "$" and dollar:
            out.append("$$")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return '"%s"' % "".join(out)


def cron_escape(command):
    """Escape a /bin/sh command for the command field of a crontab line: cron turns an unescaped %
    into a newline (the rest becomes stdin) and un-escapes \\% and \\\\."""
    return command.replace("\\", "\\\\").replace("%", "\\%")


def cron_unescape(field):
    """What cron gives /bin/sh -c for a command field (Vixie/Debian cron do_command.c): \\% -> %,
    \\\\ -> \\, the first unescaped % ends the command (the rest is stdin)."""
    out = []
    escaped = False
    for ch in field:
        if escaped:
            if ch in "%\\":
                out[-1] = ch
            else:
                out.append(ch)
            escaped = False
            continue
        if ch == "\\":
            escaped = True
            out.append(ch)
            continue
        if ch == "%":
            break
        out.append(ch)
    return "".join(out)


def shell_command(argv, log_file=None):
    command = " ".join(shlex.quote(str(a)) for a in argv)
    if log_file:
        command += " >> %s 2>&1" % shlex.quote(log_file)
    return command


# -- rendering ----------------------------------------------------------------------------


def environment(job):
    """environment and secret_environment together (values as strings)."""
    env = {}
    for source in ("environment", "secret_environment"):
        for key, value in (job.get(source) or {}).items():
            env[str(key)] = "" if value is None else str(value)
    return env


def file_mode_for(job, method="cron"):
    """Mode of the cron file or unit files: 0600 for a cron file with environment values (cron reads it
    as root; the values may be secrets), else 0644. systemd units never hold the values (they go to the
    0600 EnvironmentFile=, see environment_file), so they are 0644."""
    return 0o600 if method == "cron" and environment(job) else 0o644


# Characters that end a line of a cron or unit file (or a C string): never allowed in any field that
# reaches one, or a value could add a cron line (a root job) or a systemd directive.
LINE_BREAKS_RE = re.compile(r"[\r\n\x00]")
SCHEDULE_FIELDS = ("minute", "hour", "day", "month", "weekday")


def _no_line_breaks(label, value):
    if value is not None and LINE_BREAKS_RE.search(str(value)):
        raise ScheduleError(
            "%s holds a carriage return, newline or NUL byte, which would end the line of the cron or "
            "unit file it is written to: remove it." % label
        )


def check_job(job):
    """Validate a job dict (name, description, argv, user, environment, log_file, random_delay, the five
    schedule fields, systemd_dir). No field that reaches a cron or unit file may hold CR, LF or NUL."""
    name = str(job.get("name") or "")
    _no_line_breaks("name", name)
    if not NAME_RE.match(name) or name in (".", ".."):
        raise ScheduleError(
            "name=%r: use letters, digits, '_', '.' and '-' only (it becomes the unit and cron file name)."
            % name
        )
    argv = job.get("argv") or []
    if not argv or not all(isinstance(a, str) for a in argv) or not argv[0]:
        raise ScheduleError("argv must be a non-empty list of strings: the program and its arguments.")
    for index, a in enumerate(argv):
        _no_line_breaks("argv[%d] (%r)" % (index, a), a)
    user = str(job.get("user") or "")
    _no_line_breaks("user", user)
    if not USER_RE.match(user):
        raise ScheduleError("user=%r is not a valid user name." % user)
    for source in ("environment", "secret_environment"):
        for key, value in (job.get(source) or {}).items():
            _no_line_breaks("%s: the variable name %r" % (source, key), key)
            if not ENV_NAME_RE.match(str(key)):
                raise ScheduleError(
                    "%s: %r is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)." % (source, key)
                )
            # the value itself is never named: it may be a secret
            _no_line_breaks("%s: the value of %s" % (source, key), value)
    for key, value in environment(job).items():
        if '"' in str(value) and "'" in str(value):
            raise ScheduleError(
                "environment: the value of %s holds both ' and \", which a crontab variable line "
                "cannot carry." % key
            )
    description = job.get("description")
    _no_line_breaks("description", description)
    log_file = job.get("log_file")
    _no_line_breaks("log_file", log_file)
    if log_file and not os.path.isabs(log_file):
        raise ScheduleError("log_file=%r must be an absolute path." % log_file)
    for field in SCHEDULE_FIELDS:
        _no_line_breaks(field, job.get(field))
    for folder in ("systemd_dir", "cron_dir"):
        _no_line_breaks(folder, job.get(folder))
    delay = job.get("random_delay") or 0
    if int(delay) < 0:
        raise ScheduleError("random_delay must be 0 or more seconds.")


def environment_file(job):
    """Path of the systemd EnvironmentFile= of a job (beside its units), or None without environment."""
    if not environment(job):
        return None
    return os.path.join(job.get("systemd_dir") or "/etc/systemd/system", job["name"] + ".env")


def env_file_quote(value):
    """A value for a KEY="..." line of a systemd EnvironmentFile= (and of a /bin/sh script): double
    quotes; \\, \", ` and $ escaped with a backslash (systemd's parse_env_file un-escapes exactly
    those inside double quotes and expands no variables in an EnvironmentFile)."""
    out = []
    for ch in str(value):
        if ch in '\\"`$':
            out.append("\\")
        out.append(ch)
    return '"%s"' % "".join(out)


def render_environment_file(job):
    lines = [HEADER % job["name"]]
    for key, value in sorted(environment(job).items()):
        lines.append("%s=%s" % (key, env_file_quote(value)))
    return "\n".join(lines) + "\n"


def render_service(job):
    lines = [
        HEADER % job["name"],
        "[Unit]",
        "Description=%s" % (job.get("description") or job["name"]).replace("%", "%%"),
        "",
        "[Service]",
        "Type=oneshot",
        "User=%s" % job["user"],
    ]
    env_file = environment_file(job)
    if env_file:
        # not Environment= lines: unprivileged users can read those over D-Bus (systemctl show);
        # the file is root's, mode 0600, and systemd (PID 1) reads it before dropping privileges.
        lines.append("EnvironmentFile=%s" % env_file.replace("%", "%%"))
    lines.append("ExecStart=%s" % " ".join(systemd_quote(a) for a in job["argv"]))
    return "\n".join(lines) + "\n"


def render_timer(job, calendars):
    lines = [
        HEADER % job["name"],
        "[Unit]",
        "Description=Timer of %s" % (job.get("description") or job["name"]).replace("%", "%%"),
        "",
        "[Timer]",
    ]
    lines += ["OnCalendar=%s" % c for c in calendars]
    lines.append("Persistent=true")
    if job.get("random_delay"):
        lines.append("RandomizedDelaySec=%d" % int(job["random_delay"]))
    lines += ["", "[Install]", "WantedBy=timers.target"]
    return "\n".join(lines) + "\n"


def cron_env_value(value):
    """A value for a NAME=VALUE line of a crontab. cron (load_env) reads a value that starts with a
    quote up to the next same quote and then only blanks, so the value is wrapped in the quote it
    does not contain; blanks at either end are kept that way."""
    if '"' not in value:
        return '"%s"' % value
    if "'" not in value:
        return "'%s'" % value
    raise ScheduleError(
        "environment value %r holds both ' and \", which a crontab variable line cannot carry." % value
    )


def render_cron(job, cron_fields):
    lines = [HEADER % job["name"]]
    if job.get("description"):
        lines.append("# %s" % job["description"])
    lines += ["SHELL=/bin/sh", "PATH=%s" % CRON_PATH]
    for key, value in sorted(environment(job).items()):
        lines.append("%s=%s" % (key, cron_env_value(value)))
    command = cron_escape(shell_command(job["argv"], job.get("log_file")))
    line = "%s %s %s" % (cron_fields, job["user"], command)
    lines.append(line)
    return "\n".join(lines) + "\n", line


def plan(job, method=None):
    """Validate and render: {'cron_line', 'cron_text', 'on_calendar', 'service_text', 'timer_text',
    'env_file', 'env_text'} (env_*: the systemd EnvironmentFile=, None without environment)."""
    check_job(job)
    if method == "cron" and "." in job["name"]:
        # Debian cron takes only run-parts names in /etc/cron.d: letters, digits, '_' and '-'.
        raise ScheduleError(
            "name=%r: cron ignores files in cron.d whose name contains '.'; use '-' or '_' instead."
            % job["name"]
        )
    sched = schedule(
        job.get("minute", "0"),
        job.get("hour", "*"),
        job.get("day", "*"),
        job.get("month", "*"),
        job.get("weekday", "*"),
    )
    cron_text, cron_line = render_cron(job, sched["cron"])
    return dict(
        cron_line=cron_line,
        cron_text=cron_text,
        on_calendar=sched["on_calendar"],
        service_text=render_service(job),
        timer_text=render_timer(job, sched["on_calendar"]),
        env_file=environment_file(job),
        env_text=render_environment_file(job) if environment(job) else None,
    )


# -- files --------------------------------------------------------------------------------


def read_text(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def file_mode(path):
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return None


def write_atomic(path, text, mode):
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise ScheduleError("folder %s does not exist (is cron / systemd installed?)." % folder)
    atomic_write(path, text, mode)


def job_files(name, method, cron_dir, systemd_dir):
    if method == "cron":
        return [os.path.join(cron_dir, name)]
    return [os.path.join(systemd_dir, name + ".service"), os.path.join(systemd_dir, name + ".timer")]


def choose_method(method, systemd_probe="/run/systemd/system"):
    if method in ("systemd", "cron"):
        return method
    return "systemd" if os.path.isdir(systemd_probe) else "cron"


CRON_DAEMONS = ("cron", "crond", "cronie", "busybox-crond")


def cron_daemon_running(proc="/proc"):
    """True when a process named like a cron daemon runs (read from /proc/<pid>/comm)."""
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return True  # cannot tell: say nothing
    for pid in pids:
        try:
            with open(os.path.join(proc, pid, "comm")) as handle:
                if handle.read().strip() in CRON_DAEMONS:
                    return True
        except OSError:
            continue
    return False
