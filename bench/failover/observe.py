# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The outside view of a switchover or failover: the same for every tool under test.

One thread per node polls its server every 50 ms over TCP as the superuser:
``pg_is_in_recovery()``, the upstream port of a streaming ``pg_stat_wal_receiver``, and, when the
server is out of recovery, one INSERT into ``failbench_probe`` (the write probe). Every sample is
kept with its wall-clock time, so a milestone is "the first sample after t0 where ...".

The server logs (``log_line_prefix = '%m [%p] '``, ``log_timezone = 'UTC'`` on every side) give
what polling cannot see: when the old primary was asked to shut down and when it was down, and
when the new one was asked to promote (``received promote request``: ``pg_ctl promote`` and
``pg_promote()`` both log it).
"""

import calendar
import re
import threading
import time

import psycopg2

POLL_SECONDS = 0.05
PROBE_TABLE = "failbench_probe"
PROBE_DDL = (
    "CREATE TABLE IF NOT EXISTS %s "
    "(id bigserial PRIMARY KEY, node text, at timestamptz DEFAULT clock_timestamp())" % PROBE_TABLE
)

_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)? UTC \[\d+\] (?:\w+:  )?(.*)$")
LOG_EVENTS = {
    "shutdown_requested": ("received fast shutdown request", "received smart shutdown request"),
    "shut_down": ("database system is shut down",),
    "promote_requested": ("received promote request",),
    "streaming_started": ("started streaming WAL from primary",),
}


class Node:
    """One PostgreSQL server of a side: name, TCP port, data folder and server log."""

    def __init__(self, name, port, data_dir, log_file):
        self.name = name
        self.port = int(port)
        self.data_dir = data_dir
        self.log_file = log_file

    def postmaster_pid(self):
        try:
            with open("%s/postmaster.pid" % self.data_dir) as handle:
                first = handle.readline().strip()
        except OSError:
            return None
        return int(first) if first.isdigit() else None

    def as_dict(self):
        return dict(name=self.name, port=self.port, data_dir=self.data_dir, log_file=self.log_file)


class Sample:
    __slots__ = ("t", "up", "recovery", "writable", "upstream", "error")

    def __init__(self, t, up, recovery=None, writable=False, upstream=None, error=None):
        self.t = t
        self.up = up
        self.recovery = recovery
        self.writable = writable
        self.upstream = upstream
        self.error = error


class Observer:
    """Poll every node until ``stop()``; ``samples[name]`` is the list of Sample of that node."""

    def __init__(self, nodes, password, user="postgres", interval=POLL_SECONDS):
        self.nodes = list(nodes)
        self.password = password
        self.user = user
        self.interval = interval
        self.samples = dict((n.name, []) for n in self.nodes)
        self._stop = threading.Event()
        self._threads = []
        self._lock = threading.Lock()

    def start(self):
        for node in self.nodes:
            thread = threading.Thread(
                target=self._poll, args=(node,), name="poll-%s" % node.name, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _connect(self, node):
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=node.port,
            user=self.user,
            password=self.password,
            dbname="postgres",
            connect_timeout=2,
            application_name="failbench-probe",
            options="-c statement_timeout=2000",
        )
        conn.autocommit = True
        return conn

    def _poll(self, node):
        conn = None
        while not self._stop.is_set():
            started = time.time()
            try:
                if conn is None:
                    conn = self._connect(node)
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT pg_is_in_recovery(), "
                        "(SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming')"
                    )
                    recovery, upstream = cur.fetchone()
                    writable = False
                    error = None
                    if not recovery:
                        try:
                            cur.execute("INSERT INTO %s (node) VALUES (%%s)" % PROBE_TABLE, (node.name,))
                            writable = True
                        except psycopg2.Error as exc:
                            error = (
                                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                            )
                sample = Sample(time.time(), True, recovery, writable, upstream, error)
            except psycopg2.Error as exc:
                if conn is not None:
                    try:
                        conn.close()
                    except psycopg2.Error:
                        pass
                conn = None
                text = str(exc).strip()
                sample = Sample(
                    time.time(), False, error=text.splitlines()[0] if text else type(exc).__name__
                )
            with self._lock:
                self.samples[node.name].append(sample)
            self._stop.wait(max(0.0, self.interval - (time.time() - started)))
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass

    # -- reading the samples -----------------------------------------------------------------
    def latest(self, name):
        with self._lock:
            samples = self.samples[name]
            return samples[-1] if samples else None

    def first(self, name, after, pred):
        """Time of the first sample of ``name`` taken after ``after`` that satisfies ``pred``."""
        with self._lock:
            samples = list(self.samples[name])
        for sample in samples:
            if sample.t >= after and pred(sample):
                return sample.t
        return None

    def wait_for(self, name, after, pred, timeout):
        """Wait until a sample after ``after`` satisfies ``pred``; its time, or None at the deadline."""
        deadline = time.time() + timeout
        while True:
            found = self.first(name, after, pred)
            if found is not None or time.time() > deadline:
                return found
            time.sleep(self.interval)

    def wait_healthy(self, primary, standbys, timeout):
        """Wait until ``primary`` takes writes and every standby streams from it; True when so."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            now = time.time()
            top = self.latest(primary.name)
            good = top is not None and top.t >= now - 1 and top.writable
            for node in standbys:
                last = self.latest(node.name)
                good = good and last is not None and last.t >= now - 1 and last.upstream == primary.port
            if good:
                return True
            time.sleep(self.interval)
        return False

    def writable_nodes(self):
        return [n for n in self.nodes if (self.latest(n.name) or Sample(0, False)).writable]

    def summary(self, name, after):
        """The state changes of one node after ``after`` (for the JSON)."""
        with self._lock:
            samples = [s for s in self.samples[name] if s.t >= after]
        changes = []
        last = None
        for sample in samples:
            state = (sample.up, sample.recovery, sample.writable, sample.upstream)
            if state != last:
                changes.append(
                    dict(
                        t=round(sample.t - after, 3),
                        up=sample.up,
                        in_recovery=sample.recovery,
                        writable=sample.writable,
                        upstream_port=sample.upstream,
                        error=sample.error,
                    )
                )
                last = state
        return changes


# -- server logs ---------------------------------------------------------------------------------


def log_event(path, event, after):
    """Wall-clock time of the first ``event`` (a key of LOG_EVENTS) in a server log at or after
    ``after`` (10 ms of slack for the log's millisecond stamps); None when not there."""
    needles = LOG_EVENTS[event]
    try:
        with open(path, errors="replace") as handle:
            lines = handle.readlines()
    except OSError:
        return None
    for line in lines:
        if not any(needle in line for needle in needles):
            continue
        match = _LOG_LINE.match(line)
        if not match:
            continue
        stamp = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
        stamp += float(match.group(2) or 0.0)
        if stamp >= after - 0.01:
            return stamp
    return None


# -- milestones and phases -------------------------------------------------------------------------


def _since(t, t0):
    return round(t - t0, 3) if t is not None else None


def switchover_milestones(obs, t0, old, new, sibling, tool_done=None):
    """Seconds after t0 of each milestone of a switchover from ``old`` to ``new``."""
    return dict(
        shutdown_requested=_since(log_event(old.log_file, "shutdown_requested", t0), t0),
        old_refuses_writes=_since(obs.first(old.name, t0, lambda s: not s.writable), t0),
        old_shut_down=_since(log_event(old.log_file, "shut_down", t0), t0),
        promote_requested=_since(log_event(new.log_file, "promote_requested", t0), t0),
        new_out_of_recovery=_since(obs.first(new.name, t0, lambda s: s.up and s.recovery is False), t0),
        new_accepts_writes=_since(obs.first(new.name, t0, lambda s: s.writable), t0),
        old_streams_from_new=_since(
            obs.first(old.name, t0, lambda s: s.recovery and s.upstream == new.port), t0
        ),
        sibling_streams_from_new=_since(
            obs.first(sibling.name, t0, lambda s: s.recovery and s.upstream == new.port), t0
        ),
        tool_returned=_since(tool_done, t0),
    )


def failover_milestones(obs, t0, new, sibling, tool_done=None):
    """Seconds after the kill (t0) of each milestone of a failover to ``new``."""
    return dict(
        promote_requested=_since(log_event(new.log_file, "promote_requested", t0), t0),
        new_out_of_recovery=_since(obs.first(new.name, t0, lambda s: s.up and s.recovery is False), t0),
        new_accepts_writes=_since(obs.first(new.name, t0, lambda s: s.writable), t0),
        sibling_streams_from_new=_since(
            obs.first(sibling.name, t0, lambda s: s.recovery and s.upstream == new.port), t0
        ),
        tool_returned=_since(tool_done, t0),
    )


# (phase, the milestone that ends it): each phase runs from the end of the one before.
SWITCHOVER_PHASES = [
    ("prepare", "shutdown_requested"),
    ("stop_old", "old_shut_down"),
    ("handover", "promote_requested"),
    ("promote", "new_out_of_recovery"),
    ("first_write", "new_accepts_writes"),
    ("rejoin_old", "old_streams_from_new"),
]
FAILOVER_PHASES = [
    ("detect", "promote_requested"),
    ("promote", "new_out_of_recovery"),
    ("first_write", "new_accepts_writes"),
]


def phases(milestones, table):
    """{phase: seconds}: each phase from the latest milestone seen so far to its own (a missing
    milestone gives None and the next phase runs from the last one seen)."""
    out = {}
    mark = 0.0
    for name, milestone in table:
        at = milestones.get(milestone)
        if at is None:
            out[name] = None
            continue
        out[name] = round(max(0.0, at - mark), 3)
        mark = max(mark, at)
    return out


def switchover_total(milestones):
    """The new primary accepts writes AND the old primary streams from it."""
    writes, streams = milestones.get("new_accepts_writes"), milestones.get("old_streams_from_new")
    if writes is None or streams is None:
        return None
    return max(writes, streams)


def failover_total(milestones):
    return milestones.get("new_accepts_writes")
