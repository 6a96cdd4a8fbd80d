# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The server a standby follows (its upstream, usually the primary), seen from the standby module.

Plain Python, no Ansible imports. Two connections, both opened on first use:

- a replication connection (what the standby's own walreceiver opens, so the REPLICATION
  attribute is all it needs): ``IDENTIFY_SYSTEM`` (system identifier, current timeline and WAL
  position, also on a cascading standby) and ``TIMELINE_HISTORY`` (the history file of a
  timeline, the switch points a rewind is judged by);
- an SQL connection to the ``dbname`` of the primary option: replication slots, the settings
  pg_rewind needs, and relation names of lost transactions (one connection per database,
  ``pg_filenode_relation``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg, proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import waldump as wd

try:
    import psycopg2
    import psycopg2.extras
except ImportError:  # pragma: no cover - pg.connect reports the missing driver
    psycopg2 = None

# Functions pg_rewind calls on its source when the role is not a superuser (its documentation).
REWIND_FUNCTIONS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)

# Relations of lost transactions, named the way a DBA reads them: an index or a TOAST table
# is reported as the table it belongs to. $1/$2: tablespaces and relfilenodes (as WAL has them).
RELATION_NAMES_SQL = """
SELECT f.spc, f.node, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name
FROM unnest(%s::oid[], %s::oid[]) AS f(spc, node)
CROSS JOIN LATERAL (
  SELECT pg_catalog.pg_filenode_relation(
           CASE WHEN f.spc = d.dattablespace THEN 0 ELSE f.spc END, f.node) AS rel
  FROM pg_catalog.pg_database d WHERE d.datname = current_database()) r
LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = r.rel
LEFT JOIN pg_catalog.pg_class t ON t.reltoastrelid = coalesce(i.indrelid, r.rel)
LEFT JOIN pg_catalog.pg_class c ON c.oid = coalesce(t.oid, i.indrelid, r.rel)
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
"""


def _reason(exc):
    """The first line of a driver error (libpq's or the server's words)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else exc.__class__.__name__


class UpstreamError(DbarchError):
    """The upstream cannot be reached or refuses what the standby needs."""


class Upstream:
    """The primary option (a checked dict from conninfo.check_primary) as a server to ask."""

    def __init__(self, primary, module_name="standby", connect_timeout=10):
        self.primary = primary
        self.module_name = module_name
        self.connect_timeout = connect_timeout
        self._sql = None
        self._identity = None

    @property
    def where(self):
        return "%s:%s" % (self.primary["host"], self.primary["port"])

    def params(self, dbname=None):
        """Connection options in the names core/pg.py takes."""
        return {
            "login_host": self.primary["host"],
            "login_port": self.primary["port"],
            "login_user": self.primary["user"],
            "login_password": self.primary.get("password"),
            "login_db": dbname or self.primary["dbname"],
            "ssl_mode": self.primary.get("sslmode"),
            "connect_timeout": self.connect_timeout,
        }

    # -- SQL -----------------------------------------------------------------------------
    @property
    def sql(self):
        if self._sql is None:
            try:
                self._sql = pg.connect(self.params(), self.module_name)
            except pg.PgError as exc:
                raise UpstreamError(
                    "cannot open an SQL session on the primary %s (database %s) as %s: %s. The standby "
                    "module reads replication slots and pg_rewind's settings there: allow the user to "
                    "connect to that database in the primary's pg_hba.conf, or give another primary.dbname"
                    % (self.where, self.primary["dbname"], self.primary["user"], exc)
                ) from None
        return self._sql

    @property
    def queries(self):
        return list(self._sql.queries) if self._sql is not None else []

    @property
    def version_num(self):
        return self.sql.server_version_num

    def in_recovery(self):
        return bool(self.sql.scalar("SELECT pg_catalog.pg_is_in_recovery()"))

    def slot(self, name):
        """None, or {slot_type, active, active_pid, restart_lsn, wal_status} of slot ``name``."""
        return self.sql.fetchone(
            "SELECT slot_type, active, active_pid, restart_lsn::text AS restart_lsn, wal_status "
            "FROM pg_catalog.pg_replication_slots WHERE slot_name = %s",
            (name,),
        )

    def create_slot(self, name):
        """A physical slot that reserves WAL from now on."""
        self.sql.execute("SELECT pg_catalog.pg_create_physical_replication_slot(%s, true)", (name,))

    def drop_slot(self, name):
        """Drop slot ``name`` when it exists and nobody uses it; True when dropped."""
        row = self.slot(name)
        if not row or row["active"]:
            return False
        self.sql.execute("SELECT pg_catalog.pg_drop_replication_slot(%s)", (name,))
        return True

    def setting(self, name):
        return self.sql.scalar("SELECT pg_catalog.current_setting(%s)", (name,))

    def rewind_source_problems(self):
        """What keeps pg_rewind from using this server as its source: [] when nothing does."""
        problems = []
        if self.setting("full_page_writes") != "on":
            problems.append(
                "full_page_writes is off on the primary %s; pg_rewind needs it on (ALTER SYSTEM SET "
                "full_page_writes = on; SELECT pg_reload_conf();)" % self.where
            )
        if not self.sql.scalar("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"):
            missing = [
                fn
                for fn in REWIND_FUNCTIONS
                if not self.sql.scalar("SELECT pg_catalog.has_function_privilege(%s, 'EXECUTE')", (fn,))
            ]
            if missing:
                problems.append(
                    "%s may not run %s on the primary %s, which pg_rewind calls; as a superuser there run "
                    "GRANT EXECUTE ON FUNCTION <each> TO %s"
                    % (self.primary["user"], ", ".join(missing), self.where, self.primary["user"])
                )
        return problems

    # -- replication protocol ------------------------------------------------------------
    def _replication(self, command):
        if psycopg2 is None:  # pragma: no cover
            raise UpstreamError(pg.MISSING_DRIVER_MESSAGE)
        kw = pg.resolve_params(self.params())
        kw["application_name"] = "dbarch.%s" % self.module_name
        try:
            conn = psycopg2.connect(connection_factory=psycopg2.extras.PhysicalReplicationConnection, **kw)
        except psycopg2.Error as exc:
            reason = proc.mask(_reason(exc), [self.primary.get("password")])
            raise UpstreamError(
                "cannot open a replication connection to the primary %s as %s: %s. The standby streams "
                "over such a connection: the user needs the REPLICATION attribute and a 'replication' "
                "line in the primary's pg_hba.conf" % (self.where, self.primary["user"], reason)
            ) from None
        try:
            cur = conn.cursor()
            cur.execute(command)
            return cur.fetchall()
        except psycopg2.Error as exc:
            raise UpstreamError(
                "%s on the primary %s failed: %s" % (command, self.where, _reason(exc))
            ) from None
        finally:
            conn.close()

    def identify(self, fresh=False):
        """{system_identifier, timeline, wal_position} from IDENTIFY_SYSTEM (cached; ``fresh``: read
        again, for a position that must not be older than another one read since)."""
        if self._identity is None or fresh:
            row = self._replication("IDENTIFY_SYSTEM")[0]
            self._identity = {
                "system_identifier": str(row[0]),
                "timeline": int(row[1]),
                "wal_position": str(row[2]),
            }
        return self._identity

    def history(self, timeline):
        """The text of the history file of ``timeline`` ('' for timeline 1, which has none)."""
        if int(timeline) <= 1:
            return ""
        rows = self._replication("TIMELINE_HISTORY %d" % int(timeline))
        content = rows[0][1]
        if isinstance(content, memoryview):
            content = content.tobytes()
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        return content

    # -- names of relations ---------------------------------------------------------------
    def relation_names(self, refs):
        """{(spc, db, node): "schema.table" or None} for relation files of lost transactions,
        asked in each database (one session per database; a database that cannot be reached
        leaves its relations unnamed). Relations of shared catalogs are asked in dbname."""
        names = dict.fromkeys(refs)
        if not refs:
            return names
        databases = {
            row["oid"]: row
            for row in self.sql.fetchall(
                "SELECT oid::bigint AS oid, datname, datallowconn FROM pg_catalog.pg_database"
            )
        }
        by_db = {}
        for ref in refs:
            by_db.setdefault(ref[1], []).append(ref)
        for db_oid, group in sorted(by_db.items()):
            if db_oid == 0:
                session, own = self.sql, False
            else:
                row = databases.get(db_oid)
                if not row or not row["datallowconn"]:
                    continue
                try:
                    session, own = pg.connect(self.params(row["datname"]), self.module_name), True
                except pg.PgError:
                    continue
            try:
                rows = session.fetchall(
                    RELATION_NAMES_SQL, ([ref[0] for ref in group], [ref[2] for ref in group]), record=False
                )
            except pg.PgError:
                rows = []
            finally:
                if own:
                    session.close()
            for row in rows:
                if row["name"]:
                    names[(int(row["spc"]), db_oid, int(row["node"]))] = row["name"]
        return names

    def close(self):
        if self._sql is not None:
            self._sql.close()


def describe_relations(refs, names):
    """Sorted unique names for a transaction's relation files: the name on the primary, else
    the file's path (the relation is gone there, or its file was rewritten since)."""
    return sorted({names.get(ref) or wd.rel_path(ref) for ref in refs})
