# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logging and pgaudit configuration an audit expects (the ``audit_logging`` module).

Builds the wanted settings (connections, disconnections, a log_line_prefix with time, pid,
user, database, client address and application, DDL statements, lock waits, and pgaudit's
classes) and hands them to the one settings engine (core/settings.py: compare as PostgreSQL
reads values, ALTER SYSTEM, reload). pgaudit needs its library in shared_preload_libraries, so:

1. the logging settings and shared_preload_libraries (the current list plus pgaudit) first;
2. a restart only when asked (``restart``) and needed (pgaudit not loaded yet), through the
   replication engine's node control (pg_ctl or the systemd unit, as the data folder's owner);
3. once the library is loaded, the pgaudit.* settings and CREATE EXTENSION pgaudit. Until then
   they are reported as pending.

Plain Python, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import settings as st
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

# %m time with ms, %p pid, %q (what follows only for sessions), %u user, %d database, %h client
# host, %a application: what audit_log_info needs to attribute a line.
DEFAULT_PREFIX = "%m [%p] %q%u@%d %h %a: "
PGAUDIT_SETTINGS = ("pgaudit.log", "pgaudit.log_catalog", "pgaudit.log_parameter", "pgaudit.log_relation")


class AuditLoggingError(DbarchError):
    """The logging configuration cannot be applied; the message says why."""


def logging_settings(
    log_connections=True,
    log_disconnections=True,
    log_line_prefix=DEFAULT_PREFIX,
    log_statement="ddl",
    log_lock_waits=True,
    log_min_duration_statement=None,
    log_destination=None,
    extra=None,
):
    wanted = dict(
        log_connections=log_connections,
        log_disconnections=log_disconnections,
        log_line_prefix=log_line_prefix,
        log_statement=log_statement,
        log_lock_waits=log_lock_waits,
    )
    if log_min_duration_statement is not None:
        wanted["log_min_duration_statement"] = log_min_duration_statement
    if log_destination:
        wanted["log_destination"] = log_destination
    wanted.update(extra or {})
    return dict((k, v) for k, v in wanted.items() if v is not None)


def pgaudit_settings(classes=("ddl", "role"), log_catalog=False, log_parameter=False, log_relation=True):
    return {
        "pgaudit.log": ", ".join(classes) if not isinstance(classes, str) else classes,
        "pgaudit.log_catalog": log_catalog,
        "pgaudit.log_parameter": log_parameter,
        "pgaudit.log_relation": log_relation,
    }


def preload_list(session):
    """The shared_preload_libraries list as ALTER SYSTEM holds it (else as in effect)."""
    auto = st.read_auto_conf(session, ["shared_preload_libraries"]) or {}
    text = auto.get("shared_preload_libraries")
    if text is None:
        text = session.scalar("SELECT current_setting('shared_preload_libraries')")
    return [p.strip().strip('"') for p in (text or "").split(",") if p.strip().strip('"')]


def pgaudit_loaded(session):
    return bool(session.scalar("SELECT count(*) FROM pg_settings WHERE name = 'pgaudit.log'"))


def pgaudit_available(session):
    return bool(session.scalar("SELECT count(*) FROM pg_available_extensions WHERE name = 'pgaudit'"))


def _merge(into, planned):
    into["changes"].extend(planned["changes"])
    into["details"].update(planned["details"])
    into["plans"].append(planned)


def converge(
    session,
    wanted_logging,
    pgaudit=False,
    pgaudit_wanted=None,
    restart=False,
    restart_fn=None,
    reconnect=None,
    check_mode=False,
    reload_wait=5.0,
):
    """Returns the result dict: changed_settings, pending_restart, restarted, pgaudit state, diff plans.

    ``restart_fn()`` restarts the server; ``reconnect()`` returns a new session after it.
    """
    result = dict(
        changes=[],
        details={},
        plans=[],
        pending_restart=[],
        restarted=False,
        pgaudit=dict(enabled=pgaudit, loaded=None, extension=None, pending=[]),
        actions=[],
    )
    wanted = dict(wanted_logging)
    if pgaudit:
        if not pgaudit_available(session):
            raise AuditLoggingError(
                "pgaudit is not installed on the server (pg_available_extensions has no pgaudit): install it "
                "(Debian: apt-get install postgresql-%d-pgaudit) first" % session.major
            )
        libs = preload_list(session)
        if "pgaudit" not in libs:
            wanted["shared_preload_libraries"] = libs + ["pgaudit"]
    planned = st.plan(session, wanted)
    _merge(result, planned)
    if planned["changes"]:
        if check_mode:
            restart_names = st.predicted_restart(planned, wanted)
        else:
            restart_names = st.apply(session, planned, wanted, wait_seconds=reload_wait)
        result["pending_restart"] = sorted(set(restart_names))
    if pgaudit:
        loaded = pgaudit_loaded(session)
        if not loaded and restart and not check_mode:
            restart_fn()
            result["restarted"] = True
            result["actions"].append("restarted the server to load pgaudit")
            session = reconnect()
            loaded = pgaudit_loaded(session)
            result["pending_restart"] = []
        elif not loaded and restart:
            result["actions"].append("would restart the server to load pgaudit")
        result["pgaudit"]["loaded"] = loaded
        audit = pgaudit_wanted or pgaudit_settings()
        if loaded:
            planned = st.plan(session, audit)
            _merge(result, planned)
            if planned["changes"] and not check_mode:
                st.apply(session, planned, audit, wait_seconds=reload_wait)
            has_ext = bool(session.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pgaudit'"))
            if not has_ext:
                result["changes"].append("CREATE EXTENSION pgaudit")
                if not check_mode:
                    session.execute("CREATE EXTENSION IF NOT EXISTS pgaudit")
            result["pgaudit"]["extension"] = has_ext or not check_mode
        else:
            result["pgaudit"]["pending"] = sorted(audit)
    result["session"] = session
    return result


def diff(result):
    before, after = [], []
    for planned in result["plans"]:
        if planned["changes"]:
            text = st.diff(planned)
            before.append(text["before"])
            after.append(text["after"])
    return dict(before="".join(before), after="".join(after))
