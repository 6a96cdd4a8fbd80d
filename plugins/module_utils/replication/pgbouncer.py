# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PgBouncer's admin console and repointing its pools.

Plain Python, no Ansible imports.

- ``Console``: a session on the admin console (the ``pgbouncer`` database, autocommit, simple
  query protocol): ``show()`` for the SHOW commands, ``pause()`` with a timeout (PAUSE waits for the
  pool's transactions in flight; a PAUSE that does not finish in time is abandoned by closing its
  connection, which PgBouncer handles, never by a cancel request), ``resume()``, ``reload()``.
  Every command sent is recorded in ``commands``.
- ``repoint()``: the [databases] lines of a file rewritten (pgbouncer_config), then PAUSE of the
  pools whose target changes, RELOAD, a check that PgBouncer now shows the new targets, RESUME.
  Whatever fails after a PAUSE, the pools paused are resumed (``finally``) and the error says so;
  a file written but not taken by PgBouncer is put back as it was.
- ``pause_pools()`` / ``resume_pools()``: the same steps split in two calls, for a switchover that
  stops the old primary and promotes the new one while clients wait: PAUSE; (stop, promote);
  rewrite + RELOAD + RESUME.
- ``info()``: SHOW VERSION, DATABASES, POOLS (and a per-database summary), STATS, CONFIG;
  ``check_pools()``: a login through PgBouncer to each pool, which proves the auth role reaches the
  server and may run the lookup function, and says whether the server is in recovery.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import select
import time
from decimal import Decimal

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import fsutil, pg, proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer_config as cfg

try:
    import psycopg2
    import psycopg2.extensions as pgext
except ImportError:  # pragma: no cover - the module reports the missing driver first
    psycopg2 = None
    pgext = None


class PgBouncerError(DbarchError):
    """A console command that failed, or a repoint that could not complete. ``result``: what was
    done before the failure (pools paused and resumed, file restored), returned with the failure."""

    def __init__(self, message, result=None):
        super(PgBouncerError, self).__init__(message)
        self.result = result or {}


ADMIN_DB = "pgbouncer"
DEFAULT_ADMIN_USER = "dbarch_pgbouncer"
# The admin console options of the pgbouncer modules (Ansible argument_spec format; plain data).
CONSOLE_ARGSPEC = dict(
    admin_host=dict(type="str", default="127.0.0.1"),
    admin_port=dict(type="int", default=6432),
    admin_user=dict(type="str", default=DEFAULT_ADMIN_USER),
    admin_password=dict(type="str", no_log=True),
    admin_connect_timeout=dict(type="int", default=10),
)
_SIMPLE_NAME = re.compile(r"^[A-Za-z0-9_]+$")
POOL_COUNTERS = ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login")


def console_name(alias):
    """An alias as the console's command parser takes it (double-quoted unless plain)."""
    if _SIMPLE_NAME.match(alias):
        return alias
    if not cfg.ALIAS_RE.match(alias):
        raise PgBouncerError("pool name %r cannot be sent to the console" % alias)
    return '"%s"' % alias


def _reason(exc):
    diag = getattr(exc, "diag", None)
    text = getattr(diag, "message_primary", None) or str(exc)
    return (
        " ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())
        or type(exc).__name__
    )


class Console:
    """One session on PgBouncer's admin console."""

    def __init__(
        self, host, port, user, password=None, connect_timeout=10, application_name="dbarch.pgbouncer"
    ):
        self.params = dict(
            host=host,
            port=int(port),
            user=user,
            password=password,
            dbname=ADMIN_DB,
            connect_timeout=int(connect_timeout),
            application_name=application_name,
        )
        self.target = "PgBouncer admin console host=%s port=%s user=%s" % (host, port, user)
        self.commands = []
        self.conn = None

    # -- connection ------------------------------------------------------------------
    def _connect_kwargs(self):
        return {k: v for k, v in self.params.items() if v not in (None, "")}

    def _connect_error(self, exc):
        reason = proc.mask(_reason(exc), [self.params.get("password")])
        hint = ""
        if "timeout expired" in reason:
            hint = (
                " (PgBouncer 1.18 never answers a login to the admin console by a role that is not in its "
                "auth file: check the user name)"
            )
        return PgBouncerError("Cannot connect to the %s: %s%s" % (self.target, reason, hint))

    def connect(self):
        if psycopg2 is None:
            raise PgBouncerError(pg.MISSING_DRIVER_MESSAGE.format(python="this Python"))
        if self.conn is None or self.conn.closed:
            try:
                self.conn = psycopg2.connect(**self._connect_kwargs())
            except psycopg2.Error as exc:
                raise self._connect_error(exc) from None
            self.conn.autocommit = True
        return self

    def close(self):
        if self.conn is not None and not self.conn.closed:
            self.conn.close()

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()
        return False

    # -- commands --------------------------------------------------------------------
    def run(self, command):
        """Rows (dicts) of one console command."""
        self.connect()
        self.commands.append(command)
        cur = self.conn.cursor()
        try:
            cur.execute(command)
            if cur.description is None:
                return []
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]  # noqa: B905 - same lengths
        except psycopg2.Error as exc:
            raise PgBouncerError("%s failed on the %s: %s" % (command, self.target, _reason(exc))) from None
        finally:
            cur.close()

    def show(self, what):
        return self.run("SHOW %s" % what)

    def version(self):
        rows = self.show("VERSION")
        return list(rows[0].values())[0] if rows else None

    def databases(self):
        """alias -> SHOW DATABASES row."""
        return {row["name"]: row for row in self.show("DATABASES")}

    def reload(self):
        self.run("RELOAD")

    def resume(self, alias):
        self.run("RESUME %s" % console_name(alias))

    def pause(self, alias, timeout):
        """PAUSE one pool, waiting at most ``timeout`` seconds for its transactions in flight.

        Runs on a connection of its own (asynchronous), so a PAUSE that does not finish in time can
        be abandoned: closing that connection ends PgBouncer's wait for it (tested). A cancel request is
        not used: going by PgBouncer's source (admin.c, admin_handle_cancel), it answers the client but
        leaves the admin connection marked as waiting. The pool stays paused on PgBouncer's side until
        RESUME: the caller resumes it."""
        command = "PAUSE %s" % console_name(alias)
        self.commands.append(command)
        deadline = time.monotonic() + float(timeout)
        try:
            conn = psycopg2.connect(async_=True, **self._connect_kwargs())
        except psycopg2.Error as exc:
            raise self._connect_error(exc) from None
        try:
            if not _wait(conn, deadline):
                raise PgBouncerError(
                    "%s: no connection to the %s within %ss" % (command, self.target, timeout)
                )
            cur = conn.cursor()
            cur.execute(command)
            if not _wait(conn, deadline):
                raise PgBouncerError(
                    "%s did not finish within %ss: transactions were still running on pool %s (SHOW POOLS: "
                    "sv_active). Nothing was repointed; raise pause_timeout or find the long "
                    "transaction (pg_stat_activity on the server)" % (command, timeout, alias),
                    result={"pause_timed_out": alias},
                )
        except psycopg2.Error as exc:
            raise PgBouncerError("%s failed on the %s: %s" % (command, self.target, _reason(exc))) from None
        finally:
            conn.close()


def console_from(params, module_name):
    """A Console from the CONSOLE_ARGSPEC options."""
    return Console(
        params["admin_host"],
        params["admin_port"],
        params["admin_user"],
        params.get("admin_password"),
        connect_timeout=params["admin_connect_timeout"],
        application_name="dbarch.%s" % module_name,
    )


def _wait(conn, deadline):
    """Drive an asynchronous psycopg2 connection until its current step is done (True) or the
    monotonic ``deadline`` passed (False)."""
    while True:
        state = conn.poll()
        if state == pgext.POLL_OK:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if state == pgext.POLL_READ:
            select.select([conn.fileno()], [], [], remaining)
        elif state == pgext.POLL_WRITE:
            select.select([], [conn.fileno()], [], remaining)
        else:  # pragma: no cover - psycopg2 documents only the three states
            raise PgBouncerError("unexpected state %r of an asynchronous connection" % state)


# -- reading ------------------------------------------------------------------------------


def live_target(row):
    """A SHOW DATABASES row as the keys of a pool line."""
    if row is None:
        return None
    out = {
        "host": row.get("host") or "",
        "port": str(row.get("port") or ""),
        "dbname": row.get("database") or "",
    }
    for key in ("pool_size", "pool_mode"):
        if row.get(key) not in (None, ""):
            out[key] = str(row[key])
    return out


def pool_summary(pool_rows):
    """SHOW POOLS summed per database: the counters in POOL_COUNTERS and the longest wait."""
    out = {}
    for row in pool_rows:
        entry = out.setdefault(row["database"], dict(dict.fromkeys(POOL_COUNTERS, 0), maxwait=0.0, users=[]))
        for key in POOL_COUNTERS:
            entry[key] += int(row.get(key) or 0)
        wait = float(row.get("maxwait") or 0) + float(row.get("maxwait_us") or 0) / 1e6
        entry["maxwait"] = max(entry["maxwait"], wait)
        entry["users"].append(row.get("user"))
        entry["pool_mode"] = row.get("pool_mode")
    return out


def _plain(value):
    """A console value as JSON takes it (numeric columns come as Decimal)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _jsonable(rows):
    return [{k: _plain(v) for k, v in r.items()} for r in rows]


def info(console):
    """What the console shows: version, databases, pools (rows and per-database summary), stats,
    config (key -> value)."""
    pools = console.show("POOLS")
    config_rows = console.show("CONFIG")
    return {
        "version": console.version(),
        "databases": _jsonable(console.show("DATABASES")),
        "pools": pool_summary(pools),
        "pool_rows": _jsonable(pools),
        "stats": _jsonable(console.show("STATS")),
        "config": {row["key"]: row["value"] for row in config_rows},
    }


def check_pools(host, port, user, password, aliases, lookup_schema=None, connect_timeout=5):
    """alias -> {ok, in_recovery, error}: a login through PgBouncer to each pool as ``user`` (the
    admin and auth role), which proves PgBouncer reaches the server as that role, and a call of the
    lookup function in ``lookup_schema`` when given (EXECUTE and USAGE granted)."""
    out = {}
    for alias in aliases:
        entry = {"ok": False}
        try:
            conn = psycopg2.connect(
                host=host,
                port=int(port),
                user=user,
                password=password,
                dbname=alias,
                connect_timeout=int(connect_timeout),
                application_name="dbarch.pgbouncer_info",
            )
        except psycopg2.Error as exc:
            entry["error"] = proc.mask(_reason(exc), [password])
            out[alias] = entry
            continue
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT pg_catalog.pg_is_in_recovery()")
                entry["in_recovery"] = bool(cur.fetchone()[0])
                if lookup_schema:
                    cur.execute(
                        pg.pgsql.SQL("SELECT count(*) FROM {}(%s)").format(
                            pg.ident(lookup_schema, "user_lookup")
                        ),
                        ("",),
                    )
                    cur.fetchall()
            entry["ok"] = True
        except psycopg2.Error as exc:
            entry["error"] = proc.mask(_reason(exc), [password])
        finally:
            conn.close()
        out[alias] = entry
    return out


def pid_running(pid_file):
    """(running, pid) from a PgBouncer pid file: the process named there is alive."""
    raw = fsutil.read_bytes(pid_file)
    if not raw:
        return False, None
    try:
        pid = int(raw.decode("ascii", "replace").strip())
    except ValueError:
        return False, None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, pid
    except PermissionError:
        return True, pid
    return True, pid


# -- pausing and resuming ---------------------------------------------------------------


def _check_known(aliases, live):
    missing = [a for a in aliases if a not in live]
    if missing:
        raise PgBouncerError(
            "PgBouncer has no pool named %s (SHOW DATABASES lists %s)"
            % (", ".join(missing), ", ".join(sorted(live)) or "none")
        )


def _is_paused(row):
    return str(row.get("paused", 0)) in ("1", "t", "True", "true")


def pause_pools(console, aliases, timeout, check_mode=False):
    """PAUSE each pool not yet paused. Returns {paused, already_paused, changed}. When a PAUSE
    fails or times out, every pool this call paused (the failing one included) is resumed before
    the error is raised."""
    live = console.databases()
    _check_known(aliases, live)
    already = [a for a in aliases if _is_paused(live[a])]
    todo = [a for a in aliases if a not in already]
    result = {"paused": todo, "already_paused": already, "changed": bool(todo)}
    if check_mode or not todo:
        return result
    done = []
    try:
        for alias in todo:
            done.append(alias)
            console.pause(alias, timeout)
    except PgBouncerError as exc:
        resumed, resume_error = _resume_quietly(console, done)
        exc.result.update(paused=[], resumed_after_failure=resumed)
        raise PgBouncerError(_with_resume_note(str(exc), resumed, resume_error), exc.result) from None
    result["paused_at"] = time.time()
    return result


def _resume_quietly(console, aliases):
    """RESUME each alias that PgBouncer shows paused; (resumed, error text or None). Never raises."""
    resumed = []
    errors = []
    try:
        live = console.databases()
    except PgBouncerError as exc:
        return resumed, str(exc)
    for alias in aliases:
        if alias in live and not _is_paused(live[alias]):
            continue
        try:
            console.resume(alias)
            resumed.append(alias)
        except PgBouncerError as exc:
            errors.append(str(exc))
    return resumed, "; ".join(errors) or None


def _with_resume_note(message, resumed, resume_error):
    if resume_error:
        return (
            "%s. RESUME FAILED (%s): pools may still be paused and clients waiting: run RESUME <pool> on the "
            "admin console now" % (message, resume_error)
        )
    if resumed:
        return "%s. PgBouncer was resumed (RESUME %s), so clients are not left waiting" % (
            message,
            ", ".join(resumed),
        )
    return message


# -- the pools file ---------------------------------------------------------------------

NEW_FILE_COMMENT = (
    "PgBouncer pools, included from pgbouncer.ini. Written by dbarch.postgresql.pgbouncer: lines of pools",
    "it is told about are rewritten in place; other lines and comments stay as they are.",
)


class FilePlan:
    """The pools file now and as it would be: text, targets before/after of the pools changed."""

    def __init__(self, path, changes):
        self.path = path
        raw = fsutil.read_bytes(path)
        self.current = raw.decode("utf-8") if raw is not None else None
        base = self.current if self.current is not None else cfg.new_file_text(NEW_FILE_COMMENT)
        self.text, self.before, self.after = cfg.rewrite_databases(base, changes, path)
        self.changed = self.text != self.current

    def write(self, owner=None, mode=0o640):
        """Write the new text atomically; an existing file keeps its mode and owner."""
        if self.current is not None:
            st = os.stat(self.path)
            mode, owner = st.st_mode & 0o7777, (st.st_uid, st.st_gid)
        fsutil.atomic_write(self.path, self.text, mode=mode, owner=owner)

    def restore(self):
        """Put the file back as it was (remove it when it did not exist)."""
        if self.current is None:
            if os.path.exists(self.path):
                os.unlink(self.path)
            return
        st = os.stat(self.path)
        fsutil.atomic_write(self.path, self.current, mode=st.st_mode & 0o7777, owner=(st.st_uid, st.st_gid))

    def diff(self):
        return {
            "before_header": "%s (pools before)" % self.path,
            "after_header": "%s (pools after)" % self.path,
            "before": _targets_text(self.before),
            "after": _targets_text(self.after),
        }


def _targets_text(targets):
    lines = []
    for alias in sorted(targets):
        target = targets[alias]
        if target is None:
            continue
        lines.append(
            "%s = %s" % (alias, " ".join("%s=%s" % (k, target[k]) for k in cfg._ordered_keys(target)))
        )
    return "\n".join(lines) + ("\n" if lines else "")


def _live_matches(alias, wanted, row):
    """Whether PgBouncer serves pool ``alias`` at the host, port and dbname of ``wanted`` (the
    pool's keys as written; a removed pool (None) is judged by the file alone)."""
    if wanted is None:
        return True
    if row is None:
        return False
    live = live_target(row)
    expected = {
        "host": wanted.get("host", ""),
        "port": wanted.get("port", "5432"),
        "dbname": wanted.get("dbname", alias),
    }
    return all(str(live[k] or "") == str(expected[k] or "") for k in cfg.TARGET_KEYS)


def stale_pools(plan, live):
    """Pools whose live target (SHOW DATABASES) is not the one the file will hold."""
    return [a for a in sorted(plan.after) if not _live_matches(a, plan.after[a], live.get(a))]


def _reload_and_check(console, plan, owner, mode, result):
    """Write the file when it changes, RELOAD, check that PgBouncer shows the new targets. On any
    failure the file is put back and PgBouncer reloaded with it, then the error is raised."""
    wrote = False
    try:
        if plan.changed:
            plan.write(owner=owner, mode=mode)
            wrote = True
            result["file_written"] = True
        console.reload()
        result["reloaded"] = True
        live = console.databases()
        wrong = stale_pools(plan, live)
        if wrong:
            raise PgBouncerError(
                "after RELOAD PgBouncer does not serve %s at the new target (it shows %s); see its log file"
                % (", ".join(wrong), {a: live_target(live.get(a)) for a in wrong})
            )
        result["live_after"] = {a: live_target(live.get(a)) for a in sorted(plan.after)}
    except (PgBouncerError, OSError) as exc:
        if wrote:
            try:
                plan.restore()
                result["file_restored"] = True
                console.reload()
            except (PgBouncerError, OSError) as again:
                result["restore_error"] = str(again)
        message = str(exc)
        if result.get("file_restored"):
            message += ". The pools file was put back as it was"
        raise PgBouncerError(message, getattr(exc, "result", None) or {}) from None


def _finish(console, paused, result, failure, started):
    """RESUME what this call paused (always), time the pause, and raise the failure (if any) with
    a note saying whether PgBouncer was resumed."""
    resumed, resume_error = _resume_quietly(console, paused) if paused else ([], None)
    result["resumed"] = resumed
    if started is not None:
        result["paused_seconds"] = round(time.monotonic() - started, 3)
    if resume_error:
        result["resume_error"] = resume_error
    if failure is not None:
        if isinstance(failure, DbarchError):
            extra = dict(getattr(failure, "result", None) or {})
            extra.update(result)
            raise PgBouncerError(_with_resume_note(str(failure), resumed, resume_error), extra) from None
        raise failure
    if resume_error:
        raise PgBouncerError(_with_resume_note("the repoint itself succeeded", resumed, resume_error), result)


def repoint(console, path, changes, pause=True, pause_timeout=30.0, check_mode=False, owner=None, mode=0o640):
    """Point pools at new targets: rewrite ``path`` with ``changes`` (validated), then, through the
    console, PAUSE the pools whose target changes (``pause``), RELOAD, check, RESUME. With
    ``console`` None only the file is written (PgBouncer stopped: it reads the file when it starts).
    Idempotent: the same targets, written and served, change nothing and pause nothing."""
    changes = cfg.validate_changes(changes)
    plan = FilePlan(path, changes)
    result = {
        "before": plan.before,
        "after": plan.after,
        "file_changed": plan.changed,
        "paused": [],
        "resumed": [],
        "reloaded": False,
        "paused_seconds": 0.0,
        "changed": False,
        "diff": plan.diff(),
    }
    if console is None:
        result["changed"] = plan.changed
        if plan.changed and not check_mode:
            plan.write(owner=owner, mode=mode)
            result["file_written"] = True
        return result
    live = console.databases()
    result["live_before"] = {a: live_target(live.get(a)) for a in sorted(plan.after)}
    stale = stale_pools(plan, live)
    if not plan.changed and not stale:
        return result
    result["changed"] = True
    to_pause = [
        a for a in stale if pause and a in live and plan.after[a] is not None and not _is_paused(live[a])
    ]
    result["paused"] = to_pause
    if check_mode:
        return result
    paused = []
    started = None
    failure = None
    try:
        if to_pause:
            pause_pools(console, to_pause, pause_timeout)
            paused = list(to_pause)
            started = time.monotonic()
        _reload_and_check(console, plan, owner, mode, result)
    except BaseException as exc:  # noqa: BLE001 - whatever happens, the pools are resumed first
        failure = exc
    _finish(console, paused, result, failure, started)
    return result


def resume_pools(
    console, aliases=None, path=None, changes=None, check_mode=False, owner=None, mode=0o640, paused_at=None
):
    """The second half of a split switchover: with ``changes``, rewrite ``path``, RELOAD and check
    (no PAUSE: the pools were paused before); then RESUME ``aliases`` (default: the pools of
    ``changes``) that are paused. RESUME runs even when the rewrite or RELOAD failed."""
    plan = None
    if changes:
        changes = cfg.validate_changes(changes)
        plan = FilePlan(path, changes)
    aliases = list(aliases or (sorted(changes) if changes else []))
    if not aliases:
        raise PgBouncerError("state=resumed: name the pools to resume (aliases) or give databases")
    live = console.databases()
    _check_known(aliases, live)
    paused = [a for a in aliases if _is_paused(live[a])]
    stale = stale_pools(plan, live) if plan is not None else []
    result = {
        "before": plan.before if plan else {},
        "after": plan.after if plan else {},
        "file_changed": bool(plan and plan.changed),
        "paused": [],
        "resumed": paused if check_mode else [],
        "reloaded": False,
        "changed": bool(paused or stale or (plan and plan.changed)),
    }
    if plan is not None:
        result["diff"] = plan.diff()
        result["live_before"] = {a: live_target(live.get(a)) for a in sorted(plan.after)}
    if paused_at:
        result["paused_seconds"] = round(max(0.0, time.time() - float(paused_at)), 3)
    if check_mode or not result["changed"]:
        return result
    failure = None
    try:
        if plan is not None and (plan.changed or stale):
            _reload_and_check(console, plan, owner, mode, result)
    except BaseException as exc:  # noqa: BLE001 - whatever happens, the pools are resumed first
        failure = exc
    _finish(console, paused, result, failure, None)
    if paused_at:
        result["paused_seconds"] = round(max(0.0, time.time() - float(paused_at)), 3)
    return result
