# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make a node a streaming standby of a given primary, and keep it so (the ``standby`` module's
engine).

Plain Python, no Ansible imports. What the node is decides what happens (``action``):

- no data yet (data folder missing or empty): ``cloned``, by pg_basebackup into a folder beside
  the data folder, renamed into place once complete (a failed copy never leaves a data folder
  that looks usable), with the replication slot created by pg_basebackup -C when missing;
- a running standby: following the primary already (``none``), or ``repointed`` with ALTER SYSTEM
  (primary_conninfo, primary_slot_name) and a reload: no restart;
- a node whose history left the primary's (a former primary, or a standby that replayed WAL the
  new primary never had): stopped cleanly if running, its WAL after the fork point read with
  pg_waldump (``lost_transactions``), then ``rewound`` with pg_rewind and started as a standby;
- a stopped node that never went past the fork point: configured as a standby and started
  (``repointed``).

Every path ends by checking pg_stat_wal_receiver: streaming, from the primary's host and port.
Check mode runs every read (pg_waldump included) and changes nothing. Before anything changes,
every precondition is checked (binaries of the primary's major, the same system identifier,
the slot not used by another standby, wal_log_hints or checksums and full_page_writes for a
rewind), so a refusal leaves the node as it was.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg, retry
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import clone as cl
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import conninfo as ci
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import node as nd
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import rewind as rw
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import upstream as upm
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication.node import StandbyError

ACTIONS = ("cloned", "repointed", "rewound", "none")
SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
SLOT_NAME_HINT = "1-63 lower-case letters, digits or _"

RECEIVER_SQL = (
    "SELECT pg_catalog.pg_is_in_recovery() AS in_recovery, r.status, r.sender_host, r.sender_port, "
    "r.received_tli, r.slot_name, pg_catalog.pg_postmaster_start_time()::text AS started "
    "FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_stat_wal_receiver r ON true"
)
STANDBY_SQL = (
    "SELECT pg_catalog.pg_last_wal_replay_lsn()::text AS replay_lsn, "
    "pg_catalog.current_setting('primary_conninfo') AS conninfo, "
    "pg_catalog.current_setting('primary_slot_name') AS slot, "
    "(SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()) AS checkpoint_tli, "
    "(SELECT min_recovery_end_timeline FROM pg_catalog.pg_control_recovery()) AS min_recovery_tli"
)
SERVER_SQL = (
    "SELECT pg_catalog.pg_postmaster_start_time()::text AS started, "
    "pg_catalog.current_setting('port') AS port"
)
PRIMARY_SQL = (
    "SELECT pg_catalog.pg_current_wal_lsn()::text AS lsn, "
    "('x' || substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tli"
)


class Request:
    """What the module was asked (checked values)."""

    def __init__(
        self,
        primary,
        data_dir,
        local,
        bindir=None,
        slot_name=None,
        rewind=True,
        service=nd.PG_CTL,
        wait_timeout=300,
        lost_limit=1000,
        check_mode=False,
        module_name="standby",
    ):
        self.primary = ci.check_primary(primary)
        self.data_dir = os.path.abspath(data_dir)
        self.local = dict(local or {})
        self.bindir = bindir
        self.slot_name = slot_name or None
        self.rewind = bool(rewind)
        self.service = nd.check_service(service)
        self.wait_timeout = int(wait_timeout)
        self.lost_limit = int(lost_limit)
        self.check_mode = bool(check_mode)
        self.module_name = module_name
        if self.slot_name and not SLOT_NAME.match(self.slot_name):
            raise StandbyError("slot_name=%r: use %s" % (self.slot_name, SLOT_NAME_HINT))
        if self.wait_timeout < 1:
            raise StandbyError("wait_timeout must be at least 1 second")

    @property
    def secrets(self):
        return [s for s in (self.primary.get("password"), self.local.get("login_password")) if s]


class Run:
    """One run of the module: inspect, plan, apply, verify."""

    def __init__(self, request, upstream=None):
        self.req = request
        self.up = upstream or upm.Upstream(request.primary, request.module_name)
        self.node = None
        self.passfile = ci.passfile_path(request.data_dir)
        self.wanted = ci.wanted(request.primary, self.passfile)
        self.result = {
            "changed": False,
            "action": "none",
            "steps": [],
            "upstream": None,
            "timeline": None,
            "lost_transactions": [],
            "lost_summary": None,
            "primary_conninfo": ci.build(self.wanted),
            "data_dir": request.data_dir,
            "notes": [],
        }
        self.slot_created = False

    # -- helpers ------------------------------------------------------------------------------
    def plan(self, text):
        """In check mode: record what would be done (``would <text>``)."""
        if self.req.check_mode:
            self.result["steps"].append("would " + text)

    def done(self, text):
        """Record a step once it is done."""
        self.result["steps"].append(text)

    def note(self, text):
        self.result["notes"].append(text)

    def fail(self, message, **extra):
        done = dict(self.result)
        done.update(extra)
        raise StandbyError(message, result=done)

    def local_session(self):
        try:
            return pg.connect(self.req.local, self.req.module_name)
        except pg.PgError as exc:
            raise StandbyError(
                "the server on %s runs but the module cannot connect to it with its connection options: %s"
                % (self.req.data_dir, exc)
            ) from None

    def standby_settings(self):
        return [
            ("primary_conninfo", ci.build(self.wanted)),
            ("primary_slot_name", self.req.slot_name or ""),
        ]

    def write_passfile(self):
        if not self.req.primary.get("password"):
            return
        if self.node.write_passfile(self.passfile, ci.passfile_text(self.req.primary)):
            self.done("wrote the password file %s (0600)" % self.passfile)

    def source_conninfo(self):
        """How pg_rewind reaches the primary (SQL): the password comes from the password file."""
        keywords = dict(self.wanted, dbname=self.req.primary["dbname"])
        keywords["application_name"] = "dbarch.%s" % self.req.module_name
        return ci.build(keywords)

    # -- the run --------------------------------------------------------------------------------
    def run(self):
        try:
            return self._run()
        finally:
            self.up.close()

    def _run(self):
        req = self.req
        contents = nd.Node(req.data_dir, req.bindir or "/nonexistent", req.service).contents()
        if contents == "foreign":
            self.fail(
                "%s is not empty but holds no PostgreSQL data folder (no PG_VERSION): the module does not "
                "touch it. Give the right data_dir, or empty that folder yourself" % req.data_dir
            )
        ident = self.up.identify()
        up_major = self.up.version_num // 10000
        debian = nd.lsclusters_entry(req.data_dir)
        bindir, found = nd.resolve_bindir(req.data_dir, req.bindir, up_major, debian)
        bin_major = lc.binary_major(bindir)
        if bin_major != up_major:
            self.fail(
                "the primary %s runs PostgreSQL %d but the binaries in %s (%s) are %d: a standby needs the "
                "primary's major; give the bindir of PostgreSQL %d"
                % (self.up.where, up_major, bindir, found, bin_major, up_major)
            )
        self.node = nd.Node(req.data_dir, bindir, req.service)
        self.result["bindir"] = bindir
        self.node.check_startable(debian)
        if contents in ("missing", "empty"):
            return self.clone()
        if self.node.major() != up_major:
            self.fail(
                "%s holds PostgreSQL %s data but the primary %s runs %d: a standby must be of the same "
                "major; rebuild the node (remove its data folder, run the module again)"
                % (req.data_dir, self.node.major(), self.up.where, up_major)
            )
        control = self.node.controldata()
        if control["system_identifier"] != ident["system_identifier"]:
            self.fail(
                "%s belongs to another cluster (system identifier %s) than the primary %s (%s): it cannot "
                "stream from it nor be rewound onto it. Remove the data folder to clone it afresh, if its "
                "data is no longer wanted"
                % (req.data_dir, control["system_identifier"], self.up.where, ident["system_identifier"])
            )
        if self.node.running():
            session = self.local_session()
            try:
                self.check_same_server(session)
                if session.scalar("SELECT pg_catalog.pg_is_in_recovery()"):
                    return self.running_standby(session, control)
                return self.running_primary(session, control)
            finally:
                session.close()
        return self.stopped(control)

    def check_same_server(self, session):
        """The local connection must reach the server of data_dir, and the primary another one."""
        try:
            where = session.scalar("SELECT pg_catalog.current_setting('data_directory')")
        except pg.PgError:
            where = None
        if where and os.path.realpath(where) != os.path.realpath(self.req.data_dir):
            self.fail(
                "the connection options reach the server of %s, not the one of data_dir %s: give the local "
                "server's login_host/login_port" % (where, self.req.data_dir)
            )
        mine = session.fetchone(SERVER_SQL)
        theirs = self.up.sql.fetchone(SERVER_SQL)
        if mine == theirs:
            self.fail(
                "the primary option names this node's own server (%s): give the server to follow"
                % self.up.where
            )

    # -- the source's and the node's histories ---------------------------------------------------
    def fork(self, node_tli):
        ident = self.up.identify()
        source = rw.chain(ident["timeline"], self.up.history(ident["timeline"]))
        target = rw.chain(node_tli, self.node.history_text(node_tli))
        point = rw.fork_point(source, target)
        self.result["fork"] = {
            "timeline": point["timeline"],
            "lsn": wal.format_lsn(point["lsn"]) if point["lsn"] is not None else None,
            "primary_history": rw.describe(source),
            "node_history": rw.describe(target),
        }
        return point, target

    def ahead_check(self, position):
        # The primary's position read after the node's: a cached one may be older than what a running
        # standby has replayed since.
        upstream_pos = wal.parse_lsn(self.up.identify(fresh=True)["wal_position"])
        if position > upstream_pos:
            self.fail(
                "%s is on the primary's timeline but its WAL reaches %s, past the primary's %s: it cannot "
                "follow a server that is behind it. Was the primary given the right one (the promoted one)?"
                % (self.req.data_dir, wal.format_lsn(position), wal.format_lsn(upstream_pos))
            )

    # -- a node without data: clone (clone.py) ---------------------------------------------------------
    def clone(self):
        return cl.clone(self)

    # -- the replication slot -------------------------------------------------------------------------
    def check_slot(self, streaming_here):
        """The slot row on the primary (None: missing); StandbyError when another standby uses it."""
        name = self.req.slot_name
        if not name:
            return None
        row = self.up.slot(name)
        if row is None:
            return None
        if row["slot_type"] != "physical":
            self.fail(
                "the slot %s on %s is a %s slot; a standby needs a physical one: choose another slot_name"
                % (name, self.up.where, row["slot_type"])
            )
        if row["active"] and not streaming_here:
            self.fail(
                "the replication slot %s on %s is in use by another standby (walsender pid %s): two standbys "
                "cannot share a slot; choose another slot_name" % (name, self.up.where, row["active_pid"])
            )
        return row

    def ensure_slot(self, row):
        """Create the slot on the primary when it is missing (check mode: plan it). True when it
        is (or would be) created."""
        if not self.req.slot_name or row is not None:
            return False
        self.plan("create the physical replication slot %s on %s" % (self.req.slot_name, self.up.where))
        if not self.req.check_mode:
            self.up.create_slot(self.req.slot_name)
            self.slot_created = True
            self.done("created the physical replication slot %s on %s" % (self.req.slot_name, self.up.where))
        return True

    # -- a running standby -------------------------------------------------------------------------------
    def running_standby(self, session, control):
        state = session.fetchone(STANDBY_SQL)
        receiver = session.fetchone(RECEIVER_SQL)
        position = wal.parse_lsn(state["replay_lsn"]) if state["replay_lsn"] else 0
        node_tli = max(
            state["checkpoint_tli"] or 0,
            state["min_recovery_tli"] or 0,
            receiver["received_tli"] or 0,
            self.node.replay_timeline(position, control["segment_size"]),
        )
        point, target = self.fork(node_tli)
        if point["lsn"] is None:
            self.ahead_check(position)
        elif position > point["lsn"]:
            self.note(
                "the standby replayed WAL up to %s, past the point %s where the primary's history left "
                "its own" % (wal.format_lsn(position), wal.format_lsn(point["lsn"]))
            )
            return self.rejoin(point, target, control, running="standby")
        return self.repoint_running(session, state, receiver)

    def streams_from_upstream(self, receiver):
        return bool(
            receiver
            and receiver["status"] == "streaming"
            and (receiver["sender_host"] or "").lower() == str(self.req.primary["host"]).lower()
            and receiver["sender_port"] == self.req.primary["port"]
        )

    def repoint_running(self, session, state, receiver):
        req = self.req
        changed_keys = ci.differences(state["conninfo"], self.wanted)
        slot_now = state["slot"] or None
        slot_differs = slot_now != req.slot_name
        here = self.streams_from_upstream(receiver) and (receiver["slot_name"] or None) == req.slot_name
        row = self.check_slot(streaming_here=here)
        passfile_differs = bool(req.primary.get("password")) and (
            lc.read_text(self.passfile) != ci.passfile_text(req.primary)
        )
        if not changed_keys and not slot_differs:
            # Configured as wanted already: at most the password file or the slot to put right.
            if passfile_differs:
                self.result["changed"] = True
                self.plan("update the password file %s" % self.passfile)
                if not req.check_mode:
                    self.write_passfile()
            if self.ensure_slot(row):
                self.result["changed"] = True
            if here:
                self.fill_upstream(receiver)
                return self.result
            if req.check_mode:
                self.fill_upstream(receiver)
                self.note(
                    "the standby is configured for %s but its WAL receiver is not streaming now (%s)"
                    % (self.up.where, receiver["status"] or "not running")
                )
                return self.result
            return self.verify()
        before = ci.masked(state["conninfo"], req.secrets)
        after = ci.build(self.wanted)
        self.result.update(action="repointed", changed=True, previous_conninfo=before)
        self.result["diff"] = {
            "before_header": "primary_conninfo / primary_slot_name (before)",
            "after_header": "primary_conninfo / primary_slot_name (after)",
            "before": "primary_conninfo = %s\nprimary_slot_name = %s\n" % (before, slot_now or ""),
            "after": "primary_conninfo = %s\nprimary_slot_name = %s\n" % (after, req.slot_name or ""),
        }
        self.ensure_slot(row)
        if passfile_differs:
            self.plan("write the password file %s (0600)" % self.passfile)
        what = "primary_conninfo%s" % (" and primary_slot_name" if slot_differs else "")
        self.plan("set %s with ALTER SYSTEM and reload the configuration (no restart)" % what)
        if req.check_mode:
            return self.result
        self.write_passfile()
        for name, value in self.standby_settings():
            session.execute(
                pg.pgsql.SQL("ALTER SYSTEM SET {} = {}").format(pg.ident(name), pg.literal(value))
            )
        session.execute("SELECT pg_catalog.pg_reload_conf()")
        self.done("set %s with ALTER SYSTEM and reloaded the configuration (no restart)" % what)
        self.result["queries"] = list(session.queries)
        return self.verify()

    # -- a running primary ---------------------------------------------------------------------------------
    def running_primary(self, session, control):
        row = session.fetchone(PRIMARY_SQL)
        point, target = self.fork(int(row["tli"]))
        if point["lsn"] is None:
            self.fail(
                "%s runs as a primary on timeline %d and the server given as primary (%s) is on the same "
                "timeline: it was not promoted away from this node, so making this node a standby would "
                "leave no primary. Promote the other server first (dbarch.postgresql.promote)"
                % (self.req.data_dir, int(row["tli"]), self.up.where)
            )
        self.note(
            "%s still runs as a primary (a second writable primary since %s was promoted): it must be stopped"
            % (self.req.data_dir, self.up.where)
        )
        return self.rejoin(point, target, control, running="primary")

    # -- a stopped node -------------------------------------------------------------------------------------
    def stopped(self, control):
        node_tli = max(control["checkpoint_timeline"], control["min_recovery_timeline"])
        point, target = self.fork(node_tli)
        if point["lsn"] is None:
            was_primary = control["state"] in ("shut down", "in production")
            if was_primary and self.up.in_recovery():
                self.fail(
                    "%s was stopped as a primary (%s) and the server given as primary (%s) is a standby on "
                    "the same timeline, not promoted away from it: making this node its standby would leave "
                    "no primary. Start this node as it was, or promote the other server first"
                    % (self.req.data_dir, control["state"], self.up.where)
                )
            self.ahead_check(max(control["checkpoint_lsn"], control["min_recovery_lsn"]))
            return self.start_as_standby()
        scan, notes = rw.scan_after_fork(self.node, target, point)
        reasons = rw.stopped_divergence(control, point["lsn"], scan.records)
        if reasons:
            self.note(
                "the node went past the fork point %s: %s"
                % (wal.format_lsn(point["lsn"]), "; ".join(reasons))
            )
            return self.rejoin(point, target, control, running=None, scan=(scan, notes))
        return self.start_as_standby()

    def start_as_standby(self):
        """A stopped node that need not be rewound: configure it to follow, start it, verify."""
        req = self.req
        auto = lc.read_text(self.node.path(nd.AUTO_CONF), "")
        wanted_text = self.node.standby_settings_text(self.standby_settings(), auto)
        configured = auto == wanted_text and os.path.exists(self.node.path("standby.signal"))
        row = self.check_slot(streaming_here=False)
        self.result["changed"] = True
        if not configured:
            self.result["action"] = "repointed"
            self.result["diff"] = {
                "before_header": "%s/postgresql.auto.conf (before)" % req.data_dir,
                "after_header": "%s/postgresql.auto.conf (after)" % req.data_dir,
                "before": ci.masked(auto, req.secrets),
                "after": ci.masked(wanted_text, req.secrets),
            }
            self.plan(
                "configure %s as a standby of %s (standby.signal, primary_conninfo)"
                % (req.data_dir, self.up.where)
            )
        self.ensure_slot(row)
        self.plan("start the server and check that it streams")
        if req.check_mode:
            return self.result
        self.write_passfile()
        if not configured:
            self.node.configure_standby(self.standby_settings())
            self.done(
                "configured %s as a standby of %s (standby.signal, primary_conninfo)"
                % (req.data_dir, self.up.where)
            )
        self.start_and_verify()
        return self.result

    # -- rejoin with pg_rewind ------------------------------------------------------------------------
    def rejoin(self, point, target, control, running, scan=None):
        req, node = self.req, self.node
        if scan is None:
            scan = rw.scan_after_fork(node, target, point)
        self.report_lost(*scan)
        fork_text = "%s on timeline %d" % (wal.format_lsn(point["lsn"]), point["timeline"])
        if not req.rewind:
            self.fail(
                "%s diverged from %s at %s and rewind is false, so nothing was changed. Its %d committed "
                "transaction(s) after that point are in lost_transactions. Set rewind: true to discard them "
                "with pg_rewind, or rebuild the node (remove its data folder and run the module to clone it)"
                % (req.data_dir, self.up.where, fork_text, self.result["lost_summary"]["committed"])
            )
        problems = rw.rewind_blockers(control) + self.up.rewind_source_problems()
        if not os.access(os.path.join(node.bindir, "pg_rewind"), os.X_OK):
            problems.append("pg_rewind is missing from %s" % node.bindir)
        if problems:
            self.fail("cannot rewind %s, nothing was changed: %s" % (req.data_dir, "; ".join(problems)))
        row = self.check_slot(streaming_here=False)
        self.result["action"] = "rewound"
        self.result["changed"] = True
        if running:
            self.plan("stop the server on %s (fast shutdown; it runs as a %s)" % (req.data_dir, running))
        self.ensure_slot(row)
        self.plan("pg_rewind %s from %s (it diverged at %s)" % (req.data_dir, self.up.where, fork_text))
        self.plan("configure it as a standby, start it and check that it streams")
        if req.check_mode:
            if running == "primary":
                self.note(
                    "lost_transactions is read from the running server's WAL: what it writes until it "
                    "stops adds to it"
                )
            return self.result
        if running:
            node.stop(req.wait_timeout)
            self.done("stopped the server on %s (fast shutdown; it ran as a %s)" % (req.data_dir, running))
            # The shutdown wrote a checkpoint (and the server may have committed more): read again.
            self.report_lost(*rw.scan_after_fork(node, target, point))
        self.write_passfile()
        saved = node.save_config()
        env = {"PGPASSFILE": self.passfile} if req.primary.get("password") else {}
        restore = bool(node.config_value("restore_command"))
        try:
            outcome = rw.run_pg_rewind(
                node, self.source_conninfo(), env_extra=env, restore_target_wal=restore
            )
        except StandbyError as exc:
            self.after_failed_rewind(saved)
            if getattr(exc, "touched", True):
                state = (
                    "pg_rewind had begun to change the data folder, which may now be unusable: remove %s "
                    "and run "
                    "the module to clone it afresh" % req.data_dir
                )
            else:
                state = "pg_rewind changed nothing in the data folder: fix the cause and run the module again"
            self.fail(
                "%s The node is stopped and configured as a standby (standby.signal, its own "
                "configuration files "
                "back in place), so it cannot start as a second primary. %s" % (exc, state)
            )
        node.restore_config(saved)
        self.done(
            "rewound %s with pg_rewind from %s (%s)"
            % (
                req.data_dir,
                self.up.where,
                "diverged at %s" % outcome["diverged_at"] if outcome["rewound"] else "nothing to rewind",
            )
        )
        self.result["pg_rewind"] = outcome
        if not outcome["rewound"]:
            self.result["action"] = "repointed"
            self.note(
                "pg_rewind found nothing to rewind: the node's data was already part of the primary's history"
            )
        node.configure_standby(self.standby_settings())
        self.done("configured it as a standby of %s (its own configuration files kept)" % self.up.where)
        self.start_and_verify()
        return self.result

    def after_failed_rewind(self, saved):
        try:
            self.node.restore_config(saved)
            self.node.configure_standby(self.standby_settings())
        except (DbarchError, OSError) as exc:
            self.note(
                "could not put the node's configuration back after the failure (%s): copies are in %s"
                % (exc, self.node.saved_dir)
            )

    def report_lost(self, scan, notes):
        names = self.up.relation_names(rw.refs_of(scan, self.req.lost_limit))
        listed, summary = rw.lost_report(scan, names, self.req.lost_limit)
        summary["complete"] = not notes
        self.result["lost_transactions"] = listed
        self.result["lost_summary"] = summary
        for text in notes:
            self.note(text)

    # -- start and verify ------------------------------------------------------------------------------------
    def start_and_verify(self):
        self.node.start(self.req.wait_timeout)
        self.done("started the server")
        return self.verify()

    def verify(self):
        """Wait (wait_timeout) until the node streams from the primary's host and port."""
        seen = {}

        def check():
            try:
                session = pg.connect(self.req.local, self.req.module_name)
            except pg.PgError as exc:
                seen["error"] = str(exc)
                return None
            try:
                row = session.fetchone(RECEIVER_SQL, record=False)
            except pg.PgError as exc:
                seen["error"] = str(exc)
                return None
            finally:
                session.close()
            seen["row"] = row
            return row if row["in_recovery"] and self.streams_from_upstream(row) else None

        row = retry.poll(check, self.req.wait_timeout, interval=0.3)
        if row is None:
            last = seen.get("row") or {}
            found = (
                "in recovery: %s, WAL receiver: %s from %s:%s"
                % (
                    last.get("in_recovery"),
                    last.get("status") or "not running",
                    last.get("sender_host"),
                    last.get("sender_port"),
                )
                if last
                else seen.get("error", "no answer")
            )
            raise StandbyError(
                "%s does not stream from %s after %ss (%s). Check that the primary accepts its replication "
                "connection (pg_hba.conf, the password file %s, the slot) and read the server log%s"
                % (
                    self.req.data_dir,
                    self.up.where,
                    self.req.wait_timeout,
                    found,
                    self.passfile,
                    " (%s)" % self.node.log_file if self.req.service == nd.PG_CTL else "",
                ),
                result=dict(self.result),
                log_tail=self.node.log_tail(),
            )
        self.fill_upstream(row)
        return self.result

    def fill_upstream(self, row):
        if row and row.get("sender_host"):
            self.result["upstream"] = {
                "host": row["sender_host"],
                "port": row["sender_port"],
                "status": row["status"],
            }
        self.result["timeline"] = row.get("received_tli") if row else None


def converge(request, upstream=None):
    """Run the module's work for ``request``; returns the result dict, raises StandbyError."""
    return Run(request, upstream).run()
