#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: scheduled_job
short_description: Install a recurring job on the host as a systemd timer or a cron.d file
version_added: "0.1.0"
description:
  - Runs O(argv) (a program and its arguments, never through a shell of yours) as O(user) on a schedule
    written in cron syntax (O(minute), O(hour), O(day), O(month), O(weekday)).
  - "O(method=systemd): writes C(<systemd_dir>/<name>.service) (C(Type=oneshot), C(User=), C(EnvironmentFile=)
    when there are environment variables, C(ExecStart=) with each element quoted for systemd, so C(%), C($),
    quotes and blanks reach the program as written) and C(<name>.timer) (C(OnCalendar=)
    computed from the cron fields,
    C(Persistent=true), optional C(RandomizedDelaySec=)). When systemd runs on the host it runs
    C(systemctl daemon-reload) after a change and C(systemctl enable --now <name>.timer)."
  - "O(method=cron): writes C(<cron_dir>/<name>) with a header saying it is managed by dbarch.postgresql,
    C(SHELL=/bin/sh), C(PATH), one line per environment variable and C(m h dom mon dow user command), where
    each element of O(argv) is quoted with shlex.quote for /bin/sh and every C(%) and C(\\) is escaped the way
    cron un-escapes them (an unescaped C(%) would end the command)."
  - "O(method=auto) picks systemd when C(/run/systemd/system) exists (systemd is running) and cron otherwise.
    Switching method removes the files of the other one (and disables its timer)."
  - "Files are written atomically, mode C(0644). With O(environment) or O(secret_environment) the values
    (which may be secrets) never reach a file other users can read: for systemd they go to
    C(<systemd_dir>/<name>.env), mode C(0600), read by systemd itself through C(EnvironmentFile=) (not
    C(Environment=) lines, which any local user can read over D-Bus with C(systemctl show)); for cron the
    cron file, which holds them as variable lines, is written C(0600) (cron reads it as root)."
  - "No field that reaches a cron or unit file (O(name), O(description), each element of O(argv), O(user),
    environment names and values, O(log_file), the schedule fields, O(systemd_dir)) may hold a carriage
    return, newline or NUL byte: the module fails instead, since one would add a cron line or a systemd
    directive."
  - O(state=absent) disables the timer (when systemd runs) and removes the files of both methods.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  name:
    description:
      - Name of the unit (C(<name>.service), C(<name>.timer)) or of the cron file; letters, digits, C(_), C(.)
        and C(-). Cron ignores files in C(/etc/cron.d) whose name has a C(.), so the module refuses one with
        O(method=cron).
    type: str
    required: true
  description:
    description: One line describing the job (unit C(Description=), comment in the cron file).
    type: str
  argv:
    description:
      - The program and its arguments. No shell is involved for systemd; for cron each element is quoted, so
        blanks, quotes, C($) and C(%) are passed as written. An absolute program path is safest (cron searches
        its C(PATH), systemd its fixed search path).
      - Required with O(state=present).
    type: list
    elements: str
  user:
    description: OS user the job runs as.
    type: str
    default: postgres
  environment:
    description:
      - Environment variables of the job. They are written to a file only root can read (mode C(0600)),
        C(<systemd_dir>/<name>.env) for systemd and the cron file itself for cron.
    type: dict
    default: {}
  secret_environment:
    description:
      - Environment variables whose values are secrets (for example C(PGPASSWORD)); like O(environment) but
        never shown in output or diff.
    type: dict
    default: {}
  minute:
    description: Minute in cron syntax (0-59; numbers, lists, ranges, C(*), C(*/n), C(a-b/n)).
    type: str
    default: "0"
  hour:
    description: Hour in cron syntax (0-23).
    type: str
    default: "*"
  day:
    description:
      - Day of month in cron syntax (1-31). When both O(day) and O(weekday) are restricted, the job runs when
        either matches (cron's rule); the timer then gets one C(OnCalendar=) line for each.
    type: str
    default: "*"
  month:
    description: Month in cron syntax (1-12 or Jan..Dec).
    type: str
    default: "*"
  weekday:
    description: Day of week in cron syntax (0-7, 0 and 7 both Sunday, or Mon..Sun; ranges like C(Mon-Fri)).
    type: str
    default: "*"
  random_delay:
    description: systemd only, C(RandomizedDelaySec=) in seconds (0 for none).
    type: int
    default: 0
  log_file:
    description:
      - Cron only, an absolute path the job's output (stdout and stderr) is appended to. systemd sends the
        output to the journal (C(journalctl -u <name>)).
    type: path
  method:
    description: V(systemd), V(cron), or V(auto) (systemd when C(/run/systemd/system) exists, else cron).
    type: str
    default: auto
    choices: [auto, systemd, cron]
  cron_dir:
    description: Folder of the cron file.
    type: path
    default: /etc/cron.d
  systemd_dir:
    description:
      - Folder of the unit files. With a running systemd the timer is enabled, so it must be one of systemd's
        unit folders (the default is); another folder is for building or testing unit files.
    type: path
    default: /etc/systemd/system
  state:
    description: V(present) installs the job, V(absent) disables it and removes its files.
    type: str
    default: present
    choices: [present, absent]
extends_documentation_fragment:
  - dbarch.postgresql.connection.no_aliases
notes:
  - The connection options of the collection's other modules (C(login_host), C(login_port), ...) are accepted
    and ignored, so that C(module_defaults) for C(group/dbarch.postgresql.all) apply to this module too. They
    take no aliases here (C(user) is the OS user of the job).
  - C(systemctl) is only run when systemd is running on the host (C(/run/systemd/system) exists); otherwise
    the unit files are written and take effect once systemd runs.
attributes:
  check_mode:
    support: full
    description: Computes the files and reports what would change; writes nothing and runs no systemctl.
  diff_mode:
    support: full
    description: The text of each file before and after (values of O(secret_environment) masked).
"""

EXAMPLES = r"""
- name: Nightly base backup at 02:30 as postgres
  dbarch.postgresql.scheduled_job:
    name: dbarch-basebackup
    description: Nightly base backup of the main cluster
    argv: [/usr/local/bin/dbarch-backup, --repository, /var/backups/pg]
    hour: "2"
    minute: "30"

- name: Refresh a materialized view every 15 minutes on weekdays, through cron, logging to a file
  dbarch.postgresql.scheduled_job:
    name: refresh-daily-revenue
    argv: [psql, -X, -v, ON_ERROR_STOP=1, -d, shop, -c, REFRESH MATERIALIZED VIEW reporting.daily_revenue]
    minute: "*/15"
    weekday: Mon-Fri
    method: cron
    log_file: /var/log/postgresql/refresh-daily-revenue.log

- name: Remove it
  dbarch.postgresql.scheduled_job:
    name: refresh-daily-revenue
    state: absent
"""

RETURN = r"""
method:
  description: The method used (V(systemd) or V(cron)); with O(state=absent) the one O(method) resolves to.
  returned: always
  type: str
files:
  description: The files of the job written or kept (O(state=present)) or removed (O(state=absent)).
  returned: always
  type: list
  elements: str
on_calendar:
  description: The schedule in systemd C(OnCalendar=) form; two expressions separated by C(; ) when both
    O(day) and O(weekday) are restricted.
  returned: when state is present
  type: str
  sample: "*-*-* 02:30:00"
on_calendars:
  description: The C(OnCalendar=) expressions of the timer, one per line.
  returned: when state is present
  type: list
  elements: str
cron_line:
  description: The job line of the cron file (C(m h dom mon dow user command)).
  returned: when state is present
  type: str
mode:
  description: Mode of the cron file or unit files written (C(0644), or C(0600) for a cron file with
    environment variables). The systemd environment file is always C(0600).
  returned: when state is present
  type: str
environment_file:
  description: The systemd C(EnvironmentFile=) of the job (mode C(0600)).
  returned: when state is present, the method is systemd and the job has environment variables
  type: str
systemctl:
  description: The systemctl commands run (or that would run in check mode).
  returned: always
  type: list
  elements: str
"""

import os

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import schedule as sch
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule

SYSTEMD_RUNNING = "/run/systemd/system"


def main():
    spec = dict(
        name=dict(type="str", required=True),
        description=dict(type="str"),
        argv=dict(type="list", elements="str"),
        user=dict(type="str", default="postgres"),
        environment=dict(type="dict", default={}),
        secret_environment=dict(type="dict", default={}, no_log=True),
        minute=dict(type="str", default="0"),
        hour=dict(type="str", default="*"),
        day=dict(type="str", default="*"),
        month=dict(type="str", default="*"),
        weekday=dict(type="str", default="*"),
        random_delay=dict(type="int", default=0),
        log_file=dict(type="path"),
        method=dict(type="str", default="auto", choices=["auto", "systemd", "cron"]),
        cron_dir=dict(type="path", default="/etc/cron.d"),
        systemd_dir=dict(type="path", default="/etc/systemd/system"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    module = DbarchModule(
        argument_spec=spec,
        connection_aliases=False,
        supports_check_mode=True,
        required_if=[("state", "present", ["argv"])],
    )
    p = module.params
    method = sch.choose_method(p["method"], SYSTEMD_RUNNING)
    systemd_running = os.path.isdir(SYSTEMD_RUNNING)
    name = p["name"]
    if not sch.NAME_RE.match(name) or name in (".", ".."):
        module.fail_json(
            msg="name=%r: use letters, digits, '_', '.' and '-' only (it becomes the unit and cron file "
            "name)." % name
        )
    cron_files = sch.job_files(name, "cron", p["cron_dir"], p["systemd_dir"])
    unit_files = sch.job_files(name, "systemd", p["cron_dir"], p["systemd_dir"])
    timer = name + ".timer"
    secrets = [str(v) for v in (p["secret_environment"] or {}).values()]
    result = dict(changed=False, method=method, files=[], systemctl=[])

    wanted = {}  # path -> (text, mode)
    env_files = [os.path.join(p["systemd_dir"], name + ".env")]
    if p["state"] == "present":
        job = dict(p)
        try:
            planned = sch.plan(job, method)
        except sch.ScheduleError as exc:
            module.fail_from(exc, msg_prefix="scheduled_job %s" % name, method=method)
        mode = sch.file_mode_for(job, method)
        result.update(
            on_calendar="; ".join(planned["on_calendar"]),
            on_calendars=planned["on_calendar"],
            cron_line=proc.mask(planned["cron_line"], secrets),
            mode="%04o" % mode,
        )
        if method == "cron":
            wanted[cron_files[0]] = (planned["cron_text"], mode)
        else:
            wanted[unit_files[0]] = (planned["service_text"], mode)
            wanted[unit_files[1]] = (planned["timer_text"], mode)
            if planned["env_file"]:
                wanted[planned["env_file"]] = (planned["env_text"], 0o600)
                result["environment_file"] = planned["env_file"]
        other = unit_files + env_files if method == "cron" else cron_files + env_files
        remove = [f for f in other if f not in wanted and os.path.exists(f)]
        result["files"] = sorted(wanted)
        if method == "cron" and not sch.cron_daemon_running():
            module.warn(
                "scheduled_job %s: no cron daemon runs on this host, so %s will not run until one does "
                "(Debian: apt-get install cron, then start it: systemctl enable --now cron, or service cron "
                "start)." % (name, cron_files[0])
            )
    else:
        remove = [f for f in cron_files + unit_files + env_files if os.path.exists(f)]
        result["files"] = remove

    diffs = []
    to_write = []
    for path, (text, file_mode) in sorted(wanted.items()):
        before = sch.read_text(path)
        if before != text or sch.file_mode(path) != file_mode:
            to_write.append((path, text, file_mode))
            diffs.append(
                dict(
                    before_header=path,
                    after_header=path,
                    before=proc.mask(before or "", secrets),
                    after=proc.mask(text, secrets),
                )
            )
    for path in remove:
        diffs.append(
            dict(
                before_header=path,
                after_header=path,
                before=proc.mask(sch.read_text(path) or "", secrets),
                after="",
            )
        )

    commands = []
    units_removed = any(f in unit_files for f in remove)
    if systemd_running:
        if units_removed:
            commands.append(["systemctl", "disable", "--now", timer])
        if method == "systemd" and p["state"] == "present":
            if to_write or units_removed:
                commands.append(["systemctl", "daemon-reload"])
            enabled = module.run_command(["systemctl", "is-enabled", timer])[0] == 0
            active = module.run_command(["systemctl", "is-active", timer])[0] == 0
            if to_write or not (enabled and active):
                commands.append(["systemctl", "enable", "--now", timer])
        elif units_removed:
            commands.append(["systemctl", "daemon-reload"])
    result["systemctl"] = [" ".join(c) for c in commands]
    result["changed"] = bool(to_write or remove or commands)
    if module._diff and diffs:
        result["diff"] = diffs

    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    disable = [c for c in commands if c[1] == "disable"]
    for command in disable:
        # A unit systemd no longer knows is fine: we are removing it.
        module.run_command(command)
    try:
        for path in remove:
            os.unlink(path)
        for path, text, file_mode in to_write:
            sch.write_atomic(path, text, file_mode)
    except (OSError, sch.ScheduleError) as exc:
        module.fail_json(
            msg="scheduled_job %s: writing the job's files failed: %s. Check that the folder exists and is "
            "writable by the connecting user (become: true for /etc)." % (name, exc),
            **result,
        )
    for command in commands:
        if command in disable:
            continue
        rc, out, err = module.run_command(command)
        if rc != 0:
            module.fail_json(
                msg="scheduled_job %s: %s failed (rc=%s): %s. See systemctl status %s and journalctl -u %s."
                % (name, " ".join(command), rc, (err or out).strip(), timer, name),
                **result,
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
