# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the server log for an audit (the ``audit_log_info`` module).

Two formats: csvlog (PostgreSQL's fixed columns, multi-line values quoted) and stderr with the
server's own ``log_line_prefix`` (compiled here into a regular expression; continuation lines
start with a tab). Over a time window it finds:

- failed logins (FATAL with SQLSTATE class 28, or the messages that go with it) by role and address;
- DDL, from ``log_statement`` lines and from pgaudit's ``AUDIT:`` lines (class DDL or ROLE), with
  password literals masked;
- superuser sessions (``connection authorized`` of a superuser role) by role and address;
- connections from addresses outside ``expected_networks``.

Plain Python, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import csv
import datetime
import glob
import io
import ipaddress
import os
import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import redact
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

CSV_FIELDS = (
    "log_time user_name database_name process_id connection_from session_id session_line_num command_tag "
    "session_start_time virtual_transaction_id transaction_id error_severity sql_state_code message detail "
    "hint internal_query internal_query_pos context query query_pos location application_name backend_type "
    "leader_pid query_id"
).split()

_ESCAPES = {
    "m": r"(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)(?: [A-Za-z0-9+:_/-]+)?",
    "t": r"(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?: [A-Za-z0-9+:_/-]+)?",
    "n": r"\d+(?:\.\d+)?",
    "p": r"(?P<pid>\d+)",
    "P": r"\d*",
    "u": r"(?P<user>\[?[^\s@\[\]]*\]?|\[unknown\])",
    "d": r"(?P<db>\[?[^\s@\[\]]*\]?|\[unknown\])",
    "h": r"(?P<host>\[?[^\s\[\]]*\]?|\[local\])",
    "r": r"(?P<host>[^\s(]*)(?:\(\d+\))?",
    "a": r"(?P<app>.*?)",
    "b": r".*?",
    "c": r"[0-9a-f]+\.[0-9a-f]+",
    "l": r"\d+",
    "s": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: [A-Za-z0-9+:_/-]+)?",
    "v": r"\S*",
    "x": r"\d+",
    "e": r"[0-9A-Z]{5}",
    "i": r".*?",
    "Q": r"-?\d+",
    "%": "%",
}
_LINE_TAIL = (
    r"(?P<severity>DEBUG\d|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC|STATEMENT|DETAIL|HINT|CONTEXT):"
    r"\s+(?P<message>.*)$"
)
_DDL_RE = re.compile(
    r"^\s*(CREATE|ALTER|DROP|TRUNCATE|GRANT|REVOKE|COMMENT|SECURITY\s+LABEL|REASSIGN|IMPORT\s+FOREIGN)\b",
    re.I,
)
_FAILED = re.compile(
    r"(password authentication failed for user \"(?P<u1>[^\"]*)\""
    r"|no pg_hba\.conf entry for host \"(?P<h2>[^\"]*)\","
    r" user \"(?P<u2>[^\"]*)\"|role \"(?P<u3>[^\"]*)\" does not exist"
    r"|pg_hba\.conf rejects connection for host "
    r"\"(?P<h4>[^\"]*)\", user \"(?P<u4>[^\"]*)\"|authentication failed for user \"(?P<u5>[^\"]*)\")"
)
_AUTHORIZED = re.compile(r"^connection authorized: user=(?P<user>\S+)(?: database=(?P<db>\S+))?")
_RECEIVED = re.compile(r"^connection received: host=(?P<host>\S+)(?: port=\d+)?")
_AUDIT = re.compile(r"^AUDIT: (?:SESSION|OBJECT),\d+,\d+,(?P<class>[A-Z ]+),(?P<command>[^,]*),")


ONE_DAY = datetime.timedelta(days=1)


class AuditLogError(DbarchError):
    """The log cannot be read as asked."""


def prefix_regex(prefix):
    """A regular expression for a log line that starts with ``log_line_prefix``."""
    out, optional = [], False
    i = 0
    while i < len(prefix):
        ch = prefix[i]
        if ch == "%" and i + 1 < len(prefix):
            code = prefix[i + 1]
            i += 2
            while code.isdigit() or code == "-":  # padding such as %-10u
                code = prefix[i]
                i += 1
            if code == "q":
                out.append("(?:")
                optional = True
                continue
            pattern = _ESCAPES.get(code, r".*?")
            if any(pattern.count("(?P<%s>" % n) for n in ("time", "pid", "user", "db", "host", "app")):
                name = re.search(r"\(\?P<(\w+)>", pattern).group(1)
                if "(?P<%s>" % name in "".join(out):
                    pattern = pattern.replace("(?P<%s>" % name, "(?:")
            out.append(pattern)
        else:
            out.append(re.escape(ch))
            i += 1
    if optional:
        out.append(")?")
    return re.compile("^" + "".join(out) + _LINE_TAIL)


def parse_time(text):
    text = (text or "").strip()
    match = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)?", text)
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")


def _clean(value):
    value = (value or "").strip()
    return None if value in ("", "[unknown]", "[local]") else value


def stderr_entries(text, regex):
    """Entries {time, user, db, host, app, severity, message, sqlstate} of a stderr log."""
    entry = None
    for line in text.splitlines():
        if line.startswith("\t") and entry is not None:
            entry["message"] += "\n" + line[1:]
            continue
        match = regex.match(line)
        if not match:
            continue
        if entry is not None:
            yield entry
        g = match.groupdict()
        entry = dict(
            time=parse_time(g.get("time")),
            user=_clean(g.get("user")),
            db=_clean(g.get("db")),
            host=_clean(g.get("host")),
            app=_clean(g.get("app")),
            severity=g["severity"],
            message=g["message"],
            sqlstate=None,
        )
    if entry is not None:
        yield entry


def csv_entries(text):
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 14:
            continue
        r = dict(zip(CSV_FIELDS, row))  # noqa: B905 - older versions have fewer columns
        host = (r.get("connection_from") or "").rsplit(":", 1)[0] if r.get("connection_from") else None
        yield dict(
            time=parse_time(r["log_time"]),
            user=_clean(r["user_name"]),
            db=_clean(r["database_name"]),
            host=_clean(host),
            app=_clean(r.get("application_name")),
            severity=r["error_severity"],
            message=r["message"],
            sqlstate=r["sql_state_code"] or None,
        )


def _read(path):
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", "replace")


def log_files(current, since=None):
    """The current log file plus its rotated siblings (same folder and extension) modified since ``since``."""
    folder = os.path.dirname(current)
    ext = os.path.splitext(current)[1]
    files = []
    for path in sorted(glob.glob(os.path.join(folder, "*" + ext))):
        old = since is not None and datetime.datetime.fromtimestamp(os.path.getmtime(path)) < since - ONE_DAY
        if path != current and old:
            continue
        files.append(path)
    if current not in files:
        files.append(current)
    return files


def _in_networks(address, networks):
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address in ("local", "[local]")
    return any(ip in net for net in networks)


def parse_networks(values):
    """The ip_network of each of ``values`` (addresses or CIDR networks); AuditLogError names a bad one."""
    networks = []
    for value in values or []:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise AuditLogError(
                "expected_networks: %r is not an address or a network: %s" % (value, exc)
            ) from None
    return networks


def analyse(entries, since=None, until=None, superusers=(), expected_networks=None, max_items=200):
    """The audit summary of log entries in [since, until]."""
    networks = parse_networks(expected_networks)
    failed, ddl, supers, unexpected = {}, [], {}, {}
    counted = 0
    for e in entries:
        t = e["time"]
        if t is not None and ((since and t < since) or (until and t > until)):
            continue
        counted += 1
        msg = e["message"] or ""
        if e["severity"] == "FATAL" and ((e["sqlstate"] or "").startswith("28") or _FAILED.search(msg)):
            m = _FAILED.search(msg)
            groups = m.groupdict() if m else {}
            role = next((groups[k] for k in ("u1", "u2", "u3", "u4", "u5") if groups.get(k)), e["user"])
            host = groups.get("h2") or groups.get("h4") or e["host"] or "local"
            item = failed.setdefault(
                (role, host), dict(role=role, address=host, count=0, first=t, last=t, reasons=[])
            )
            item["count"] += 1
            item["last"] = t
            reason = msg.split(" for user")[0].split(" for host")[0]
            if reason not in item["reasons"]:
                item["reasons"].append(reason)
            continue
        received = _RECEIVED.match(msg)
        if received:
            host = received.group("host")
            if networks and not _in_networks(host, networks):
                item = unexpected.setdefault(host, dict(address=host, count=0, first=t, last=t, roles=[]))
                item["count"] += 1
                item["last"] = t
            continue
        authorized = _AUTHORIZED.match(msg)
        if authorized:
            user = authorized.group("user")
            host = e["host"] or "local"
            if networks and host in unexpected and user not in unexpected[host]["roles"]:
                unexpected[host]["roles"].append(user)
            if user in superusers:
                item = supers.setdefault(
                    (user, host), dict(role=user, address=host, count=0, first=t, last=t)
                )
                item["count"] += 1
                item["last"] = t
            continue
        audit = _AUDIT.match(msg)
        if audit and audit.group("class") in ("DDL", "ROLE"):
            ddl.append(_ddl(e, t, msg, "pgaudit", audit.group("command")))
            continue
        if msg.startswith("statement: ") and _DDL_RE.match(msg[len("statement: ") :]):
            statement = msg[len("statement: ") :]
            ddl.append(_ddl(e, t, statement, "log_statement", _DDL_RE.match(statement).group(1).upper()))
    return dict(
        entries=counted,
        failed_logins=_iso_all(_by_count(failed.values())[:max_items]),
        ddl=_iso_all(ddl[-max_items:]),
        ddl_count=len(ddl),
        superuser_sessions=_iso_all(_by_count(supers.values())[:max_items]),
        unexpected_connections=_iso_all(
            sorted(unexpected.values(), key=lambda i: (-i["count"], i["address"]))[:max_items]
        ),
    )


def _by_count(items):
    return sorted(items, key=lambda i: (-i["count"], str(i.get("role")), str(i["address"])))


def _ddl(e, t, text, source, command):
    text = redact.statement(" ".join(text.split()))
    if len(text) > 300:
        text = text[:297] + "..."
    return dict(
        time=t,
        user=e["user"],
        database=e["db"],
        address=e["host"],
        command=command,
        statement=text,
        source=source,
    )


def _iso_all(items):
    out = []
    for item in items:
        out.append(
            dict(
                (k, v.isoformat(sep=" ") if isinstance(v, datetime.datetime) else v) for k, v in item.items()
            )
        )
    return out


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d|w)\s*$")


def window_start(since, now):
    """``since``: None, a duration (30m, 24h, 7d) back from ``now``, or a timestamp."""
    if since in (None, ""):
        return None
    match = _DURATION.match(str(since))
    if match:
        n, unit = int(match.group(1)), match.group(2)
        seconds = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}[unit] * n
        return now - datetime.timedelta(seconds=seconds)
    parsed = parse_time(str(since).replace("T", " "))
    if parsed is None:
        raise AuditLogError(
            "since=%r: give a duration (30m, 24h, 7d) or a timestamp (2025-01-31 00:00:00)" % since
        )
    return parsed


def read(
    session, log_file=None, log_format=None, since="24h", until=None, expected_networks=None, superusers=None
):
    """Find the log, read it, analyse it. ``session`` gives the prefix, the log's time zone, the
    superusers and (when ``log_file`` is not given) the current log file."""
    parse_networks(expected_networks)  # a bad network fails before anything is read
    info = session.fetchone(
        "SELECT current_setting('log_line_prefix') AS prefix, current_setting('log_destination') AS dest, "
        "(now() AT TIME ZONE current_setting('log_timezone'))::timestamp(0) AS now"
    )
    if superusers is None:
        superusers = [r["rolname"] for r in session.fetchall("SELECT rolname FROM pg_roles WHERE rolsuper")]
    fmt = log_format or ("csvlog" if "csvlog" in info["dest"] else "stderr")
    if not log_file:
        try:
            log_file = session.scalar("SELECT pg_current_logfile(%s)", (fmt,))
        except DbarchError as exc:
            raise AuditLogError(
                "cannot ask the server for its log file (%s): give log_file, or grant EXECUTE on "
                "pg_current_logfile(text) to this role" % exc
            ) from None
        if not log_file:
            raise AuditLogError(
                "the server writes no %s log file (logging_collector off?): give log_file (the file "
                "pg_ctl -l or the service writes)" % fmt
            )
        if not os.path.isabs(log_file):
            log_file = os.path.join(session.scalar("SELECT current_setting('data_directory')"), log_file)
    now = info["now"]
    start = window_start(since, now)
    end = window_start(until, now) if until else None
    files = log_files(log_file, start) if os.path.exists(log_file) else []
    if not files:
        raise AuditLogError("log file %s does not exist (or cannot be read from here)" % log_file)
    regex = prefix_regex(info["prefix"]) if fmt == "stderr" else None

    def entries():
        for path in files:
            text = _read(path)
            yield from (csv_entries(text) if fmt == "csvlog" else stderr_entries(text, regex))

    result = analyse(
        entries(), since=start, until=end, superusers=set(superusers), expected_networks=expected_networks
    )
    result.update(
        files=files,
        format=fmt,
        log_line_prefix=info["prefix"] if fmt == "stderr" else None,
        window=dict(since=start.isoformat(sep=" ") if start else None, until=(end or now).isoformat(sep=" ")),
        checks_skipped=[] if expected_networks else ["unexpected_connections (give expected_networks)"],
    )
    return result
