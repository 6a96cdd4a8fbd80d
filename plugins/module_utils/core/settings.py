# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server settings through ALTER SYSTEM, and the WAL archiver's state.

Plain Python, no Ansible imports. The ``setting`` module is a thin adapter over ``plan()``
and ``apply()``; the ``archive_check`` module over ``archiver_state()`` and ``switch_and_wait()``.

How a wanted value is compared with what the server has (so a second run changes nothing):

- the "before" value is the one ALTER SYSTEM wrote into postgresql.auto.conf
  (``pg_file_settings``; it re-reads the files, so it is right before a reload too);
  a setting that postgresql.auto.conf does not hold is compared with the value in effect
  (``pg_settings.setting``);
- both sides are normalised the way PostgreSQL reads them: booleans (on/off/true/yes/1...),
  numbers with units (``1GB`` = ``1048576`` for a setting in kB, ``5min`` = ``300`` for one in
  s), enums case-insensitively, lists (shared_preload_libraries, search_path...) element by
  element; strings as they are.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg

SETTINGS_SQL = (
    "SELECT name, setting, unit, vartype, context, enumvals, min_val, max_val, pending_restart, "
    "current_setting(name) AS current FROM pg_settings WHERE lower(name) = ANY (%s)"
)
AUTO_CONF_SQL = (
    "SELECT name, setting FROM pg_file_settings "
    "WHERE sourcefile LIKE '%%/postgresql.auto.conf' AND lower(name) = ANY (%s) ORDER BY seqno"
)
PENDING_SQL = "SELECT name FROM pg_settings WHERE pending_restart AND name = ANY (%s) ORDER BY 1"
ARCHIVER_SQL = (
    "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, "
    "last_failed_time, stats_reset, current_setting('archive_mode') AS archive_mode, "
    "current_setting('archive_command') AS archive_command, pg_is_in_recovery() AS in_recovery, "
    "current_setting('data_directory', true) AS data_directory, "
    "current_setting('logging_collector') AS logging_collector, "
    "(SELECT pg_current_logfile()) AS current_logfile FROM pg_stat_archiver"
)

# Settings whose list elements PostgreSQL quotes one by one (GUC_LIST_QUOTE): a single
# literal 'a,b' would become one element "a,b".
LIST_QUOTE_SETTINGS = frozenset(
    (
        "shared_preload_libraries",
        "local_preload_libraries",
        "session_preload_libraries",
        "search_path",
        "temp_tablespaces",
        "unix_socket_directories",
    )
)
_TRUE = ("on", "true", "yes", "1", "t", "y")
_FALSE = ("off", "false", "no", "0", "f", "n")
_MEMORY = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_TIME = {"us": 0.001, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


class SettingError(DbarchError):
    """A setting that cannot be applied, with a message that says why and how to fix it."""

    def __init__(self, message, sqlstate=None):
        super(SettingError, self).__init__(message)
        self.sqlstate = sqlstate


# --------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------


def value_text(value):
    """A module value (str, bool, number, list) -> the text ALTER SYSTEM would store."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def list_elements(value):
    items = [str(v) for v in value] if isinstance(value, (list, tuple)) else str(value).split(",")
    return [i.strip().strip('"').strip() for i in items if i.strip().strip('"').strip()]


def _unit_base(unit):
    """pg_settings.unit ('8kB', 'ms', 'min', '16MB') -> (kind, size of one unit in the base)."""
    match = re.match(r"^(\d*)\s*(B|kB|MB|GB|TB|us|ms|s|min|h|d)$", unit or "")
    if not match:
        return None, 1
    factor = int(match.group(1) or 1)
    name = match.group(2)
    if name in _MEMORY:
        return "memory", factor * _MEMORY[name]
    return "time", factor * _TIME[name]


def parse_number(text, unit, vartype):
    """A value such as '1GB', '250ms', '64' -> a number in the setting's own unit.

    Raises SettingError for text PostgreSQL would refuse.
    """
    raw = str(text).strip()
    match = re.match(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]*)$", raw)
    if not match:
        raise SettingError("%r is not a number" % (text,))
    number = float(match.group(1))
    suffix = match.group(2)
    if suffix:
        kind, base = _unit_base(unit)
        table = _MEMORY if kind == "memory" else _TIME if kind == "time" else {}
        if suffix not in table:
            valid = ", ".join(table) if table else "none (this setting has no unit)"
            raise SettingError("unit %r is not valid here; valid units: %s" % (suffix, valid))
        number = number * table[suffix] / base
    if vartype == "integer":
        return int(round(number))
    return number


def normalise(value, row):
    """The comparable form of a value for the setting described by a pg_settings row."""
    if value is None:
        return None
    vartype = row["vartype"]
    if vartype == "bool":
        text = value_text(value).strip().lower()
        if text in _TRUE or (len(text) > 1 and any(t.startswith(text) for t in ("true", "yes"))):
            return True
        if text in _FALSE or (len(text) > 1 and any(t.startswith(text) for t in ("false",))):
            return False
        raise SettingError("%r is not a boolean (on/off, true/false, yes/no, 1/0)" % (value,))
    if vartype in ("integer", "real"):
        return parse_number(value_text(value), row.get("unit"), vartype)
    if vartype == "enum":
        text = value_text(value).strip().lower()
        allowed = [str(v).lower() for v in row.get("enumvals") or []]
        if allowed and text not in allowed:
            raise SettingError("%r is not one of %s" % (value, ", ".join(row.get("enumvals") or [])))
        return text
    if row["name"] in LIST_QUOTE_SETTINGS:
        return tuple(list_elements(value))
    return value_text(value)


def check_bounds(number, row):
    low, high = row.get("min_val"), row.get("max_val")
    try:
        if low is not None and number < float(low):
            raise SettingError("%s is below the minimum %s" % (number, low))
        if high is not None and number > float(high):
            raise SettingError("%s is above the maximum %s" % (number, high))
    except (TypeError, ValueError):
        return


# --------------------------------------------------------------------------------------
# Reading the server
# --------------------------------------------------------------------------------------


def read_rows(session, names):
    """pg_settings rows by name; names are matched case-insensitively (as PostgreSQL does), the keys
    are the server's own spelling (TimeZone, DateStyle, work_mem)."""
    rows = session.fetchall(SETTINGS_SQL, (sorted({str(n).lower() for n in names}),))
    return {r["name"]: r for r in rows}


def read_auto_conf(session, names):
    """{name: value} in postgresql.auto.conf (keys spelled as in ``names``, matched
    case-insensitively), or None when this role may not read it."""
    by_lower = {str(n).lower(): n for n in names}
    try:
        rows = session.fetchall(AUTO_CONF_SQL, (sorted(by_lower),))
    except pg.PgError as exc:
        if exc.sqlstate == "42501":
            return None
        raise
    return {by_lower.get(r["name"].lower(), r["name"]): r["setting"] for r in rows}


UNKNOWN_HINT = (
    "the server has no such setting (see pg_settings); a setting of an extension exists only once the "
    "extension's library is loaded (shared_preload_libraries)"
)


def validate_names(names, rows):
    """Raise SettingError for names that are not setting names or that the server does not know
    (case-insensitively)."""
    problems = name_problems(names, rows)
    if problems:
        raise SettingError("; ".join(problems))


def name_problems(names, rows):
    known = {str(n).lower() for n in rows}
    bad = [n for n in names if not _NAME.match(str(n))]
    problems = []
    if bad:
        problems.append("not a setting name: %s" % ", ".join(repr(n) for n in bad))
    unknown = sorted(n for n in names if _NAME.match(str(n)) and str(n).lower() not in known)
    if unknown:
        problems.append("unknown setting(s): %s (%s)" % (", ".join(unknown), UNKNOWN_HINT))
    lowered = {}
    for n in names:
        lowered.setdefault(str(n).lower(), []).append(n)
    twice = sorted(", ".join(sorted(v)) for v in lowered.values() if len(v) > 1)
    if twice:
        problems.append("the same setting given twice (names are case-insensitive): %s" % "; ".join(twice))
    return problems


def canonical_names(wanted, rows):
    """{given name: the server's spelling} for the names the server knows."""
    by_lower = {n.lower(): n for n in rows}
    return {n: by_lower[str(n).lower()] for n in wanted if str(n).lower() in by_lower}


# Contexts in which a session may SET a setting: there a value is tried with SET LOCAL in a
# transaction that is rolled back, which runs the server's own checks without writing anything.
SET_LOCAL_CONTEXTS = ("user", "superuser")


def set_local_problems(session, names, rows, wanted):
    """{name: the server's reason} for values SET LOCAL refuses (class 22, data exception).

    Each try runs in its own transaction, always rolled back. A refusal for another reason (no
    privilege) proves nothing about the value and is ignored; ALTER SYSTEM judges it later.
    """
    problems = {}
    for name in names:
        if wanted[name] is None or rows[name]["context"] not in SET_LOCAL_CONTEXTS:
            continue
        session.execute("BEGIN")
        try:
            session.execute(statement(name, wanted[name], verb="SET LOCAL"))
        except pg.PgError as exc:
            if (exc.sqlstate or "").startswith("22") or exc.sqlstate == "42704":
                problems[name] = _reason(exc)
        finally:
            session.execute("ROLLBACK")
    return problems


def _reason(exc):
    """The server's reason from a PgError message, without the target and the statement."""
    text = str(exc)
    text = text.split("]: ", 1)[-1] if "]: " in text else text
    return text.split(" (statement: ", 1)[0]


# --------------------------------------------------------------------------------------
# Plan and apply
# --------------------------------------------------------------------------------------


def plan(session, wanted):
    """What ALTER SYSTEM has to change. Returns a dict with per-setting details.

    ``wanted``: {name: value or None (RESET)}. Raises SettingError for unknown names and for
    values that cannot be read (the checks PostgreSQL does are repeated by ALTER SYSTEM).
    """
    given = sorted(wanted)
    rows = read_rows(session, given)
    problems = name_problems(given, rows)
    canonical = canonical_names(wanted, rows)
    wanted = {canonical[n]: v for n, v in wanted.items() if n in canonical}
    names = sorted(wanted)
    auto = read_auto_conf(session, names)
    details = {}
    changes = []
    for name in names:
        row = rows[name]
        value = wanted[name]
        in_auto = auto is not None and name in auto
        try:
            want = normalise(value, row)
            if row["vartype"] in ("integer", "real") and want is not None:
                check_bounds(want, row)
        except SettingError as exc:
            problems.append("%s = %r: %s" % (name, value, exc))
            continue
        if value is None:
            before = auto.get(name) if auto else None
            change = in_auto if auto is not None else True
            after = None
        else:
            if in_auto:
                before = auto[name]
                try:
                    have = normalise(before, row)
                except SettingError:
                    have = None
            else:
                before = row["setting"] if row["vartype"] != "string" else row["current"]
                try:
                    have = normalise(before, row)
                except SettingError:
                    have = None
            change = have != want
            after = value_text(value)
        details[name] = {
            "before": before,
            "after": after,
            "in_auto_conf": in_auto if auto is not None else None,
            "context": row["context"],
            "current": row["current"],
            "changed": change,
            "unit": row["unit"],
        }
        if change:
            changes.append(name)
    if not problems:
        tried = set_local_problems(session, changes, rows, wanted)
        problems += ["%s = %r: %s" % (n, wanted[n], tried[n]) for n in sorted(tried)]
    if problems:
        raise SettingError(
            "invalid setting(s), nothing was written: %s. Fix or remove them and run again."
            % "; ".join(problems)
        )
    return {
        "names": names,
        "rows": rows,
        "details": details,
        "changes": changes,
        "auto_readable": auto is not None,
        "wanted": wanted,
    }


def statement(name, value, verb="ALTER SYSTEM SET"):
    """ALTER SYSTEM SET/RESET (or ``verb``, e.g. SET LOCAL) as a psycopg2.sql Composable (name as
    identifier, value as literal)."""
    ident = pg.ident(*str(name).split("."))
    set_sql = pg.pgsql.SQL(verb + " {} = {}")
    if value is None:
        return pg.pgsql.SQL("ALTER SYSTEM RESET {}").format(ident)
    listed = str(name).lower() in LIST_QUOTE_SETTINGS
    if listed or isinstance(value, (list, tuple)):
        items = list_elements(value) if listed else [str(v) for v in value]
        if not items:
            return set_sql.format(ident, pg.literal(""))
        return set_sql.format(ident, pg.pgsql.SQL(", ").join(pg.literal(i) for i in items))
    return set_sql.format(ident, pg.literal(value_text(value)))


def predicted_restart(planned, wanted):
    """Changed postmaster settings whose new value differs from the one in effect."""
    wanted = planned.get("wanted", wanted)
    out = []
    for name in planned["changes"]:
        row = planned["rows"][name]
        if row["context"] != "postmaster":
            continue
        if wanted[name] is None:
            out.append(name)
            continue
        try:
            effective = normalise(row["setting"] if row["vartype"] != "string" else row["current"], row)
        except SettingError:
            effective = None
        if effective != normalise(wanted[name], row):
            out.append(name)
    return out


def apply(session, planned, wanted, wait_seconds=5.0):
    """ALTER SYSTEM for each change, pg_reload_conf(), then the settings waiting for a restart.

    When ALTER SYSTEM refuses a value (one only the server can judge, e.g. of a setting a session
    cannot SET), the settings written before it are put back as they were in postgresql.auto.conf,
    so the run writes nothing; nothing is reloaded.
    """
    wanted = planned.get("wanted", wanted)
    done = []
    for name in planned["changes"]:
        try:
            session.execute(statement(name, wanted[name]))
        except pg.PgError as exc:
            not_undone = _undo(session, planned, done)
            msg = "invalid setting, nothing was written: %s = %r: %s." % (name, wanted[name], _reason(exc))
            if not_undone:
                msg += (
                    " These settings were written before it and could not be put back (fix them by hand "
                    "in postgresql.auto.conf with ALTER SYSTEM): %s." % ", ".join(not_undone)
                )
            raise SettingError(msg, sqlstate=exc.sqlstate) from None
        done.append(name)
    if planned["changes"]:
        session.execute("SELECT pg_reload_conf()")
        _wait_for_reload(session, planned, wanted, wait_seconds)
    return pending_restart(session, planned, wanted)


def _undo(session, planned, done):
    """Put the settings in ``done`` back as postgresql.auto.conf had them. Returns those it could not."""
    failed = []
    for name in done:
        detail = planned["details"][name]
        if not planned["auto_readable"]:
            failed.append(name)
            continue
        before = detail["before"] if detail["in_auto_conf"] else None
        try:
            session.execute(statement(name, before))
        except pg.PgError:
            failed.append(name)
    return failed


def _wait_for_reload(session, planned, wanted, wait_seconds):
    """The reload is a signal: wait (briefly) until reloadable changes show in pg_settings."""
    reloadable = [
        n
        for n in planned["changes"]
        if planned["rows"][n]["context"] != "postmaster" and wanted[n] is not None
    ]
    deadline = time.time() + wait_seconds
    while reloadable and time.time() < deadline:
        rows = read_rows_quiet(session, reloadable)
        pending = []
        for name in reloadable:
            row = rows[name]
            try:
                now = normalise(row["setting"] if row["vartype"] != "string" else row["current"], row)
            except SettingError:
                now = None
            if now != normalise(wanted[name], row):
                pending.append(name)
        if not pending:
            return
        time.sleep(0.1)


def read_rows_quiet(session, names):
    rows = session.fetchall(SETTINGS_SQL, (list(names),), record=False)
    return {r["name"]: r for r in rows}


def pending_restart(session, planned, wanted):
    flagged = [r["name"] for r in session.fetchall(PENDING_SQL, (planned["names"],))]
    return sorted(set(flagged) | set(predicted_restart(planned, wanted)))


def diff(planned):
    """before/after text of the settings (postgresql.auto.conf lines; '-' where absent)."""

    def lines(key):
        out = []
        for name in planned["names"]:
            value = planned["details"][name][key]
            out.append("%s = %s" % (name, "(not set)" if value is None else "'%s'" % value))
        return "\n".join(out) + "\n"

    return {
        "before": lines("before"),
        "after": lines("after"),
        "before_header": "settings",
        "after_header": "settings",
    }


# --------------------------------------------------------------------------------------
# WAL archiver
# --------------------------------------------------------------------------------------


def archiver_state(session, record=True):
    row = session.fetchone(ARCHIVER_SQL, record=record)
    out = dict(row)
    for key in ("last_archived_time", "last_failed_time", "stats_reset"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    out["failing"] = _failing(row)
    return out


def _failing(row):
    """True when the last attempt failed (a failure newer than the last success)."""
    if row.get("last_failed_time") is None:
        return False
    if row.get("last_archived_time") is None:
        return True
    return row["last_failed_time"] > row["last_archived_time"]


def log_candidates(state):
    """Where the server's log may be: pg_current_logfile(), else the dbarch local cluster layout."""
    data_dir = state.get("data_directory") or ""
    out = []
    current = state.get("current_logfile")
    if current:
        out.append(current if current.startswith("/") else os.path.join(data_dir, current))
    if data_dir:
        out.append(os.path.join(os.path.dirname(data_dir.rstrip("/")), "log", "postgresql.log"))
    return out


def log_lines(path, limit=4, tail_bytes=256 * 1024):
    """The last lines of the log about the archiver (the command's own error and PostgreSQL's line)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - tail_bytes))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    wanted = [
        ln.strip()
        for ln in text.splitlines()
        if "archive command failed" in ln or "dbarch-wal" in ln or "archiving write-ahead log" in ln
    ]
    return wanted[-limit:]


def log_hint(state):
    for path in log_candidates(state):
        lines = log_lines(path)
        if lines is not None:
            shown = " | ".join(lines) if lines else "no archiver lines in its last 256 kB"
            return "server log %s (lines 'archive command failed'): %s" % (path, shown)
    return (
        "the archive_command's own error is in the server's log (lines 'archive command failed'; for a "
        "Debian cluster /var/log/postgresql/, else log_directory when logging_collector is on)"
    )


def failure_message(state, waited_for=None):
    msg = "WAL archiving fails: archive_command %r " % (state.get("archive_command"),)
    if state.get("last_failed_wal"):
        msg += "last failed on %s at %s (%d failure(s))" % (
            state["last_failed_wal"],
            state.get("last_failed_time"),
            int(state.get("failed_count") or 0),
        )
    else:
        msg += "did not archive %s in time" % waited_for
    msg += (
        "; last archived: %s. %s. Fix the command or the repository's permissions (the command runs as "
        % (
            state.get("last_archived_wal") or "none",
            log_hint(state),
        )
    )
    msg += "the server's OS user); PostgreSQL keeps the WAL in pg_wal and retries until it succeeds."
    return msg


def switch_and_wait(session, timeout=60):
    """pg_switch_wal(), then wait until the archiver archived that segment or failed on it.

    Returns (segment name, archiver state, ok).
    """
    row = session.fetchone("SELECT pg_walfile_name(pg_switch_wal()) AS segment")
    segment = row["segment"]
    deadline = time.time() + timeout
    state = archiver_state(session)
    while time.time() < deadline:
        state = archiver_state(session, record=False)
        if (state.get("last_archived_wal") or "") >= segment:
            return segment, state, True
        if (state.get("last_failed_wal") or "") >= segment and state["failing"]:
            return segment, state, False
        time.sleep(0.2)
    return segment, state, False
