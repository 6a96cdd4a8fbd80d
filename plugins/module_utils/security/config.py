# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Settings checks: data checksums (at rest), logging and pgaudit, listen_addresses (exposure).

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.security.rules import finding

# log_line_prefix escapes an audit needs: (alternatives, what they give).
PREFIX_FIELDS = (
    (("%m", "%t", "%n"), "time"),
    (("%u",), "user"),
    (("%d",), "database"),
    (("%h", "%r"), "client address"),
    (("%p", "%c"), "process or session id"),
)
PGAUDIT_CLASSES = ("ddl", "role")


def _reload(name, value):
    return "ALTER SYSTEM SET %s = '%s'; SELECT pg_reload_conf();" % (name, value)


def check_checksums(ctx):
    if ctx.setting("data_checksums") == "on":
        return []
    return [
        finding(
            "SEC040",
            "data_checksums",
            "Data checksums are off.",
            "Stop the server and run pg_checksums --enable -D <data directory> (or enable them on a new "
            "standby and switch over).",
        )
    ]


def check_connections(ctx):
    out = []
    if not ctx.features.log_connections_enabled(ctx.setting("log_connections")):
        value = "'receipt,authentication,authorization'" if ctx.features.log_connections_is_list else "on"
        out.append(
            finding(
                "SEC050",
                "log_connections",
                "log_connections is %s." % (ctx.setting("log_connections") or "empty"),
                _reload("log_connections", value.strip("'")),
            )
        )
    if ctx.setting("log_disconnections") != "on":
        out.append(
            finding(
                "SEC051",
                "log_disconnections",
                "log_disconnections is off.",
                _reload("log_disconnections", "on"),
            )
        )
    return out


def check_line_prefix(ctx):
    prefix = ctx.setting("log_line_prefix") or ""
    missing = [label for escapes, label in PREFIX_FIELDS if not any(e in prefix for e in escapes)]
    if not missing:
        return []
    return [
        finding(
            "SEC052",
            "log_line_prefix",
            "log_line_prefix '%s' lacks %s." % (prefix, ", ".join(missing)),
            _reload("log_line_prefix", "%m [%p] %q%u@%d from %h app=%a "),
            evidence=dict(missing=missing),
        )
    ]


def check_statements(ctx):
    if ctx.setting("log_statement") in ("ddl", "mod", "all"):
        return []
    return [
        finding(
            "SEC053",
            "log_statement",
            "log_statement is %s." % ctx.setting("log_statement"),
            _reload("log_statement", "ddl"),
        )
    ]


def check_collector(ctx):
    destinations = (ctx.setting("log_destination") or "").split(",")
    if ctx.setting("logging_collector") == "on" or "syslog" in destinations or "eventlog" in destinations:
        return []
    return [
        finding(
            "SEC054",
            "logging_collector",
            "logging_collector is off and log_destination is %s." % ctx.setting("log_destination"),
            "ALTER SYSTEM SET logging_collector = on;  -- takes effect at the next restart",
        )
    ]


def check_slow_statements(ctx):
    if ctx.setting_int("log_min_duration_statement") not in (None, -1):
        return []
    return [
        finding(
            "SEC057",
            "log_min_duration_statement",
            "log_min_duration_statement is -1 (off).",
            _reload("log_min_duration_statement", "5s"),
        )
    ]


def check_pgaudit(ctx):
    libraries = [x.strip() for x in (ctx.setting("shared_preload_libraries") or "").split(",")]
    if "pgaudit" not in libraries:
        return [
            finding(
                "SEC055",
                "shared_preload_libraries",
                "pgaudit is not in shared_preload_libraries (%s)."
                % (", ".join(x for x in libraries if x) or "empty"),
                "Install pgaudit, add it to shared_preload_libraries, restart, CREATE EXTENSION pgaudit; "
                "(dbarch.postgresql.audit_logging does it)",
            )
        ]
    classes = [c.strip().lower() for c in (ctx.setting("pgaudit.log") or "").split(",")]
    if "all" in classes:
        return []
    missing = [c for c in PGAUDIT_CLASSES if c not in classes]
    if not missing:
        return []
    return [
        finding(
            "SEC056",
            "pgaudit.log",
            "pgaudit.log (%s) lacks %s." % (ctx.setting("pgaudit.log") or "none", ", ".join(missing)),
            _reload("pgaudit.log", "ddl, role"),
            evidence=dict(missing=missing),
        )
    ]


def check_listen_addresses(ctx):
    value = ctx.setting("listen_addresses") or ""
    addresses = [a.strip() for a in value.split(",")]
    everywhere = ("*", "0.0.0.0", "::")  # noqa: S104 - judging the setting, not binding
    if not any(a in everywhere for a in addresses):
        return []
    return [
        finding(
            "SEC060",
            "listen_addresses",
            "listen_addresses is '%s'." % value,
            "ALTER SYSTEM SET listen_addresses = 'localhost, <the interface applications use>';  -- restart",
        )
    ]
