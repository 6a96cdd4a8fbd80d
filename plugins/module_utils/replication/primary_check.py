# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Is this server a primary that takes writes, and do its standbys replicate them? (the
``primary_check`` module, run after a failover or a switchover).

1. ``role``: the server is out of recovery and new transactions are not read-only
   (``default_transaction_read_only``), as clients will see it.
2. ``write``: one transaction that gets an xid (``pg_current_xact_id()``) commits, under the server's
   own ``synchronous_commit`` and ``synchronous_standby_names``, within ``timeout`` seconds. A commit
   that waits longer for a synchronous standby is cancelled by ``statement_timeout``; PostgreSQL then
   warns that it committed locally only, and the check fails saying so: clients' commits would hang.
   No table is touched; the commit record is the write.
3. ``replication``: after the commit, a WAL marker (``pg_logical_emit_message``, not transactional:
   it needs no wal_level=logical and returns the end of its own record) gives an LSN past the commit
   record; every standby named in ``standbys`` must stream (``pg_stat_replication``) and replay past
   that LSN within ``timeout`` seconds.

Plain Python, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import retry
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

MARKER_PREFIX = "dbarch.primary_check"
SYNC_CANCELLED = "canceling wait for synchronous replication"

_Q_ROLE = """
SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('default_transaction_read_only') AS default_transaction_read_only,
       current_setting('synchronous_commit') AS synchronous_commit,
       current_setting('synchronous_standby_names') AS synchronous_standby_names
"""
_Q_STANDBYS = """
SELECT application_name, state, sync_state, replay_lsn::text AS replay_lsn,
       client_addr::text AS client_addr
  FROM pg_stat_replication
"""


class PrimaryCheckError(DbarchError):
    """A check failed; ``result`` holds what every check saw (returned with the failure)."""

    def __init__(self, message, result=None):
        super(PrimaryCheckError, self).__init__(message)
        self.result = result or {}


def _ms(seconds):
    return "%dms" % max(1, int(float(seconds) * 1000))


def check_role(session):
    """(facts, problem or None) of the role check."""
    row = session.fetchone(_Q_ROLE)
    facts = dict(row)
    if row["in_recovery"]:
        return facts, "the server is in recovery (a standby): it takes no writes"
    if row["default_transaction_read_only"] == "on":
        return facts, (
            "default_transaction_read_only is on: clients get read-only transactions. Set it off "
            "(ALTER SYSTEM SET default_transaction_read_only = off; SELECT pg_reload_conf();)"
        )
    return facts, None


def write(session, timeout, clock=time.monotonic):
    """Commit one transaction with an xid. Returns (facts, problem or None)."""
    conn = session.conn
    del conn.notices[:]
    session.execute("SET statement_timeout = %s", (_ms(timeout),))
    started = clock()
    try:
        session.execute("BEGIN")
        xid = session.scalar("SELECT pg_current_xact_id()::text")
        session.execute("COMMIT")
    except DbarchError as exc:
        try:
            session.execute("ROLLBACK", record=False)
        except DbarchError:
            pass
        return dict(seconds=round(clock() - started, 3)), "the write failed: %s" % exc
    seconds = round(clock() - started, 3)
    notices = [str(n).strip() for n in conn.notices]
    facts = dict(xid=xid, seconds=seconds)
    cancelled = [n for n in notices if SYNC_CANCELLED in n]
    if cancelled:
        facts["warning"] = cancelled[0]
        return facts, (
            "the commit of xid %s waited %s s for a synchronous standby and was cancelled: it is committed "
            "on this server only, and clients' commits would hang. Make a standby named in "
            "synchronous_standby_names stream from this server, or change synchronous_standby_names"
            % (xid, timeout)
        )
    facts["marker_lsn"] = session.scalar(
        "SELECT pg_logical_emit_message(false, %s, %s)::text", (MARKER_PREFIX, "xid %s committed" % xid)
    )
    session.execute("RESET statement_timeout")
    return facts, None


def _lsn(text):
    return wal.parse_lsn(text) if text else None


def standby_rows(session):
    return dict((r["application_name"], r) for r in session.fetchall(_Q_STANDBYS))


def judge_standbys(rows, names, marker_lsn):
    """{name: entry} and the names not yet streaming and past ``marker_lsn``."""
    goal = _lsn(marker_lsn)
    out, waiting = {}, []
    for name in names:
        row = rows.get(name)
        if not row:
            out[name] = dict(state="not connected", caught_up=False)
            waiting.append(name)
            continue
        replay = _lsn(row.get("replay_lsn"))
        caught_up = row["state"] == "streaming" and replay is not None and goal is not None and replay >= goal
        out[name] = dict(
            state=row["state"],
            sync_state=row["sync_state"],
            replay_lsn=row["replay_lsn"],
            caught_up=caught_up,
        )
        if not caught_up:
            waiting.append(name)
    return out, waiting


def wait_standbys(session, names, marker_lsn, timeout, clock=time.monotonic, sleep=time.sleep):
    """Poll pg_stat_replication until every standby of ``names`` streams and replayed ``marker_lsn``.
    Returns (entries, names still waiting, seconds)."""
    started = clock()
    seen = {}

    def done():
        entries, waiting = judge_standbys(standby_rows(session), names, marker_lsn)
        seen["last"] = (entries, waiting)
        return entries if not waiting else None

    retry.poll(done, timeout=timeout, interval=0.2, clock=clock, sleep=sleep)
    entries, waiting = seen["last"]
    return entries, waiting, round(clock() - started, 3)


def run(session, standbys=(), timeout=30, check_mode=False, clock=time.monotonic, sleep=time.sleep):
    """Every check in order. Returns {role, write, standbys, seconds, msg}; raises PrimaryCheckError
    naming the first check that failed."""
    if float(timeout) <= 0:
        raise PrimaryCheckError("timeout=%s: give a number of seconds above 0" % timeout)
    started = clock()
    facts, problem = check_role(session)
    result = dict(role=facts, write=None, standbys={}, seconds=None)
    if problem:
        raise PrimaryCheckError("primary check failed on %s: %s" % (session.target, problem), result)
    if check_mode:
        result["seconds"] = round(clock() - started, 3)
        result["msg"] = "%s is out of recovery; would commit a transaction and wait for %s" % (
            session.target,
            ", ".join(standbys) or "no standby",
        )
        return result
    written, problem = write(session, timeout, clock)
    result["write"] = written
    if problem:
        raise PrimaryCheckError("primary check failed on %s: %s" % (session.target, problem), result)
    entries, waiting, _waited = wait_standbys(
        session, list(standbys), written["marker_lsn"], timeout, clock, sleep
    )
    result["standbys"] = entries
    result["seconds"] = round(clock() - started, 3)
    if waiting:
        raise PrimaryCheckError(
            "primary check failed on %s: %s did not stream and replay the check's commit (past %s) within "
            "%s s: %s. Look at the standby's server log and its primary_conninfo"
            % (
                session.target,
                ", ".join(waiting),
                written["marker_lsn"],
                timeout,
                "; ".join("%s: %s" % (n, entries[n]["state"]) for n in waiting),
            ),
            result,
        )
    result["msg"] = "%s takes writes (xid %s committed in %s s)%s" % (
        session.target,
        written["xid"],
        written["seconds"],
        "; %s replayed it" % ", ".join(standbys) if standbys else "",
    )
    return result
