# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts about a running server: version, role, settings, databases, extensions, replication.

Read-only, a fixed number of queries, and least privilege: what the role may not read
is reported in ``checks_skipped`` instead of failing. Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from decimal import Decimal

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features, version_text

# The settings a DBA looks at first; callers may ask for more.
KEY_SETTINGS = (
    "max_connections",
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "wal_level",
    "max_wal_size",
    "min_wal_size",
    "checkpoint_timeout",
    "archive_mode",
    "archive_command",
    "max_wal_senders",
    "max_replication_slots",
    "hot_standby",
    "synchronous_commit",
    "synchronous_standby_names",
    "shared_preload_libraries",
    "random_page_cost",
    "effective_io_concurrency",
    "autovacuum",
    "log_min_duration_statement",
    "ssl",
    "password_encryption",
    "listen_addresses",
    "port",
    "data_checksums",
    "server_encoding",
    "timezone",
)

_Q_SERVER = """
SELECT current_setting('server_version') AS version,
       current_setting('server_version_num')::int AS version_num,
       version() AS version_full,
       pg_is_in_recovery() AS in_recovery,
       pg_postmaster_start_time() AS started_at,
       extract(epoch FROM now() - pg_postmaster_start_time())::bigint AS uptime_seconds,
       current_database() AS current_database,
       current_user AS current_user,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS is_superuser,
       pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') AS can_read_all_settings,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_all_stats,
       (SELECT system_identifier FROM pg_control_system()) AS system_identifier,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_wal_lsn,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text END AS replay_lsn,
       CASE WHEN pg_is_in_recovery()
            THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
       END AS replay_delay_seconds,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline
"""

_Q_SETTINGS = """
SELECT name, setting, unit, current_setting(name) AS value, source, context, vartype,
       pending_restart, boot_val, reset_val
FROM pg_settings
WHERE %(all)s OR name = ANY (%(names)s)
ORDER BY name
"""

_Q_DATABASES = """
SELECT d.datname AS name, pg_get_userbyid(d.datdba) AS owner, pg_encoding_to_char(d.encoding) AS encoding,
       d.datcollate AS collate, d.datallowconn AS allow_connections, d.datconnlimit AS connection_limit,
       CASE WHEN has_database_privilege(d.datname, 'CONNECT') THEN pg_database_size(d.oid) END AS size_bytes,
       age(d.datfrozenxid) AS xid_age
FROM pg_database d
WHERE NOT d.datistemplate
ORDER BY d.datname
"""

_Q_EXTENSIONS = """
SELECT a.name, a.default_version, a.installed_version,
       -- pg_settings hides what the role may not read instead of raising an error
       (a.name = ANY (string_to_array(replace(
           (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'), ' ', ''), ',')))
         AS preloaded
FROM pg_available_extensions a
ORDER BY a.name
"""

_Q_REPLICATION_PRIMARY = """
SELECT r.application_name, r.client_addr::text AS client_addr, r.state, r.sync_state,
       r.sent_lsn::text AS sent_lsn, r.replay_lsn::text AS replay_lsn,
       pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint AS replay_lag_bytes,
       extract(epoch FROM r.replay_lag)::float8 AS replay_lag_seconds
FROM pg_stat_replication r
ORDER BY r.application_name
"""

_Q_SLOTS = """
SELECT slot_name, slot_type, active, restart_lsn::text AS restart_lsn,
       CASE WHEN restart_lsn IS NOT NULL AND NOT pg_is_in_recovery()
            THEN pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint END AS retained_bytes,
       wal_status
FROM pg_replication_slots
ORDER BY slot_name
"""

_Q_WAL_RECEIVER = """
SELECT status, sender_host, sender_port, slot_name, written_lsn::text AS written_lsn,
       flushed_lsn::text AS flushed_lsn, latest_end_time
FROM pg_stat_wal_receiver
"""


def _iso(v):
    """JSON-safe value: timestamps as ISO text, numerics as numbers."""
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def _clean(row):
    return dict((k, _iso(v)) for k, v in row.items())


def gather(session, settings=None, all_settings=False):
    """Server facts as a plain dict. ``settings``: extra setting names to include."""
    facts = {"checks_skipped": []}
    s = _clean(session.fetchone(_Q_SERVER))
    feats = Features(s["version_num"])
    facts["version"] = dict(
        full=s["version_full"],
        text=s["version"],
        num=s["version_num"],
        major=feats.major,
        supported=feats.supported,
        short=version_text(s["version_num"]),
    )
    facts["in_recovery"] = bool(s["in_recovery"])
    facts["role"] = "standby" if s["in_recovery"] else "primary"
    for k in (
        "started_at",
        "uptime_seconds",
        "current_database",
        "current_user",
        "system_identifier",
        "current_wal_lsn",
        "replay_lsn",
        "replay_delay_seconds",
        "timeline",
    ):
        facts[k] = s[k]
    facts["system_identifier"] = str(s["system_identifier"]) if s["system_identifier"] is not None else None
    facts["privileges"] = dict(
        superuser=bool(s["is_superuser"]),
        read_all_settings=bool(s["is_superuser"] or s["can_read_all_settings"]),
        read_all_stats=bool(s["is_superuser"] or s["can_read_all_stats"]),
    )
    names = sorted(set(KEY_SETTINGS) | set(settings or []))
    rows = session.fetchall(_Q_SETTINGS, dict(all=bool(all_settings), names=names))
    facts["settings"] = dict((r["name"], _clean(r)) for r in rows)
    facts["pending_restart"] = sorted(r["name"] for r in rows if r["pending_restart"])
    unknown = [n for n in (settings or []) if n not in facts["settings"]]
    if unknown:
        facts["checks_skipped"].append(
            dict(check="settings", reason="not visible to this role or unknown: %s" % ", ".join(unknown))
        )
    facts["databases"] = [_clean(r) for r in session.fetchall(_Q_DATABASES)]
    ext = session.fetchall(_Q_EXTENSIONS)
    facts["extensions"] = dict(
        installed=dict((r["name"], r["installed_version"]) for r in ext if r["installed_version"]),
        available=sorted(r["name"] for r in ext),
        preloaded=sorted(r["name"] for r in ext if r["preloaded"]),
    )
    facts["replication"] = dict(role=facts["role"])
    if not facts["privileges"]["read_all_stats"]:
        facts["checks_skipped"].append(
            dict(
                check="replication details",
                reason="client addresses and LSNs of other sessions need pg_read_all_stats or pg_monitor",
            )
        )
    if facts["in_recovery"]:
        recv = session.fetchone(_Q_WAL_RECEIVER)
        facts["replication"]["wal_receiver"] = _clean(recv) if recv else None
    else:
        facts["replication"]["standbys"] = [_clean(r) for r in session.fetchall(_Q_REPLICATION_PRIMARY)]
    facts["replication"]["slots"] = [_clean(r) for r in session.fetchall(_Q_SLOTS)]
    return facts
