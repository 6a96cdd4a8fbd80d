# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restore drill's SQL side: markers, a consistent fingerprint of tables at a restore point.

On the source (``create_restore_point``): a marker row committed before, then ONE transaction
that locks the chosen tables IN SHARE MODE, reads their row count and checksum, creates the
restore point and commits, then a marker committed after, a WAL switch and a wait until the
segment holding the restore point is archived.

Why the numbers match the restored copy under concurrent writes: SHARE mode conflicts with
ROW EXCLUSIVE, the lock every INSERT/UPDATE/DELETE takes. Acquiring it waits for every
transaction that already wrote to the tables to end, and holding it blocks every new writer.
So while the lock is held the tables cannot change: every commit that touched them is before
the lock (and before the restore point record in the WAL, so it is replayed), and every
writer that comes later commits after our COMMIT (after the restore point, so it is not).

On the restored copy (``fingerprint`` and ``markers``) the same queries run read-only.

The checksum: ``sum`` over all rows of the first 64 bits of ``md5(row::text)`` (as numeric, so
it never overflows), plus ``count(*)``. It is independent of row order and needs no primary
key. The text form of a row depends on session settings, so both sides set the same
DateStyle, IntervalStyle, TimeZone and extra_float_digits first.

Plain Python: no Ansible import.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg

MARKER_SCHEMA = "dbarch_drill"
MARKER_TABLE = "marker"
# Settings that decide the text form of a row (and so the checksum).
TEXT_SETTINGS = (
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
)
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,63}$")


class DrillError(DbarchError):
    """A drill step failed; the message says what, where and how to fix it."""


def split_table(name):
    """'schema.table' (or '"My Schema"."T"') -> (schema, table); no schema -> public."""
    text = str(name).strip()
    parts = []
    buf = ""
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == '"':
            if quoted and i + 1 < len(text) and text[i + 1] == '"':
                buf += '"'
                i += 2
                continue
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(buf)
            buf = ""
        else:
            buf += ch
        i += 1
    parts.append(buf)
    if quoted or len(parts) > 2 or not all(parts):
        raise DrillError(
            "Table %r: give it as schema.table (quote a name with dots or capitals with double quotes)."
            % name
        )
    return ("public", parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def check_name(name):
    if not _NAME.match(str(name or "")):
        raise DrillError(
            "Restore point name %r: use 1-63 characters among letters, digits, '_', '.', ':' and '-'." % name
        )
    return name


def _set_text_settings(session):
    for setting, value in TEXT_SETTINGS:
        session.execute("SELECT set_config(%s, %s, true)", (setting, value))


def existing_tables(session, tables):
    """[(schema, table)] -> the same list; fails naming the tables that do not exist."""
    missing = []
    for schema, table in tables:
        found = session.scalar(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
            (schema, table),
        )
        if found is None:
            missing.append("%s.%s" % (schema, table))
    if missing:
        raise DrillError(
            "Table(s) %s not found in database %s on %s; fix restore_drill_tables."
            % (", ".join(missing), session.scalar("SELECT current_database()"), session.target)
        )
    return tables


def _fingerprint_one(session, schema, table):
    query = pg.pgsql.SQL(
        "SELECT count(*) AS rows,"
        " coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0)::text AS checksum"
        " FROM {} AS t"
    ).format(pg.ident(schema, table))
    row = session.fetchone(query)
    return {"rows": int(row["rows"]), "checksum": row["checksum"]}


def fingerprint(session, tables):
    """{schema.table: {rows, checksum}} read in one transaction (the session must not autocommit)."""
    pairs = existing_tables(session, [split_table(t) for t in tables])
    _set_text_settings(session)
    return {"%s.%s" % (s, t): _fingerprint_one(session, s, t) for s, t in pairs}


def _marker_ident(schema, table):
    return pg.ident(schema, table)


def ensure_marker_table(session, schema=MARKER_SCHEMA, table=MARKER_TABLE):
    """Create the marker schema and table when missing. Returns True when something was created."""
    exists = session.scalar(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, table),
    )
    if exists:
        return False
    session.execute(pg.pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pg.ident(schema)))
    session.execute(
        pg.pgsql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " drill_id text NOT NULL, kind text NOT NULL CHECK (kind IN ('before', 'after')),"
            " at timestamptz NOT NULL DEFAULT clock_timestamp())"
        ).format(_marker_ident(schema, table))
    )
    return True


def insert_marker(session, drill_id, kind, schema=MARKER_SCHEMA, table=MARKER_TABLE):
    """Insert and commit one marker row (autocommit session); returns its id and time."""
    row = session.fetchone(
        pg.pgsql.SQL("INSERT INTO {} (drill_id, kind) VALUES (%s, %s) RETURNING id, at").format(
            _marker_ident(schema, table)
        ),
        (drill_id, kind),
    )
    return {"id": int(row["id"]), "at": row["at"].isoformat()}


def markers(session, drill_id, schema=MARKER_SCHEMA, table=MARKER_TABLE):
    """Kinds of the marker rows of drill_id present in this (restored) database: sorted list."""
    exists = session.scalar(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = %s",
        (schema, table),
    )
    if not exists:
        return []
    rows = session.fetchall(
        pg.pgsql.SQL("SELECT kind FROM {} WHERE drill_id = %s ORDER BY id").format(
            _marker_ident(schema, table)
        ),
        (drill_id,),
    )
    return [r["kind"] for r in rows]


def locked_restore_point(session, name, tables, lock_timeout="10s"):
    """In one transaction: LOCK tables IN SHARE MODE, fingerprint them, create the restore point.

    ``session`` must not autocommit. Returns {lsn, wal_file, time, tables}.
    """
    pairs = existing_tables(session, [split_table(t) for t in tables])
    try:
        session.execute("SELECT set_config('lock_timeout', %s, true)", (str(lock_timeout),))
        if pairs:
            session.execute(
                pg.pgsql.SQL("LOCK TABLE {} IN SHARE MODE").format(
                    pg.pgsql.SQL(", ").join(pg.ident(s, t) for s, t in pairs)
                )
            )
        _set_text_settings(session)
        sums = {"%s.%s" % (s, t): _fingerprint_one(session, s, t) for s, t in pairs}
        row = session.fetchone(
            "SELECT lsn::text AS lsn, pg_walfile_name(lsn) AS wal_file, clock_timestamp() AS at"
            " FROM pg_create_restore_point(%s) AS lsn",
            (name,),
        )
        session.conn.commit()
    except pg.PgError as exc:
        session.conn.rollback()
        if exc.sqlstate == "55P03":
            raise DrillError(
                "Could not lock %s IN SHARE MODE within lock_timeout %s on %s: a long transaction writes "
                "to them. Run the drill at a quieter time or raise restore_drill_lock_timeout. (%s)"
                % (", ".join("%s.%s" % p for p in pairs), lock_timeout, session.target, exc)
            ) from None
        raise
    return {"lsn": row["lsn"], "wal_file": row["wal_file"], "time": row["at"].isoformat(), "tables": sums}


def wait_archived(session, wal_file, timeout=120, interval=0.5, clock=time.monotonic, sleep=time.sleep):
    """Switch WAL, then wait until pg_stat_archiver shows wal_file (or a later one) archived.

    Raises DrillError naming the last archived and the last failed segment after ``timeout``.
    """
    switched = session.scalar("SELECT pg_walfile_name(pg_switch_wal())")
    deadline = clock() + timeout
    while True:
        row = session.fetchone(
            "SELECT last_archived_wal, last_failed_wal, last_failed_time::text AS last_failed_time,"
            " failed_count, current_setting('archive_mode') AS archive_mode FROM pg_stat_archiver",
            record=False,
        )
        last = row["last_archived_wal"]
        if last is not None and last[8:] >= wal_file[8:] and last[:8] >= wal_file[:8]:
            return {"switched_from": switched, "last_archived_wal": last}
        if row["archive_mode"] == "off":
            raise DrillError(
                "archive_mode is off on %s: the restore point in %s will never reach the repository. Turn "
                "WAL archiving on (roles/backup, backup_wal_archiving: true)." % (session.target, wal_file)
            )
        if clock() >= deadline:
            raise DrillError(
                "WAL segment %s (holding the restore point) was not archived within %ss on %s: "
                "last archived %s, last failed %s at %s (%s failures). "
                "Check archive_command and the server log."
                % (
                    wal_file,
                    timeout,
                    session.target,
                    last,
                    row["last_failed_wal"],
                    row["last_failed_time"],
                    row["failed_count"],
                )
            )
        sleep(interval)


def seconds_between(later, earlier):
    """Seconds from ``earlier`` to ``later`` (datetimes or ISO text); None when one is missing."""
    if later in (None, "") or earlier in (None, ""):
        return None
    return round((br.parse_time(later) - br.parse_time(earlier)).total_seconds(), 3)


def compare(found_markers, tables, expected):
    """Differences between a restored copy and the source at the restore point, one sentence each.

    found_markers: kinds found (None: not checked); tables/expected: {name: {rows, checksum}}.
    """
    out = []
    if found_markers is not None:
        if "before" not in found_markers:
            out.append("marker 'before' is missing: the restore stopped before the restore point")
        if "after" in found_markers:
            out.append("marker 'after' is present: the restore went past the restore point")
    for name in sorted(expected or {}):
        want = expected[name] or {}
        got = (tables or {}).get(name)
        if got is None:
            out.append("%s: not checked on the restored copy" % name)
            continue
        if int(got["rows"]) != int(want.get("rows", -1)):
            out.append(
                "%s: %s rows restored, %s at the restore point" % (name, got["rows"], want.get("rows"))
            )
        if str(got["checksum"]) != str(want.get("checksum")):
            out.append(
                "%s: checksum %s restored, %s at the restore point"
                % (name, got["checksum"], want.get("checksum"))
            )
    return out
