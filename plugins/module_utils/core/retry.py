# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one retry helper: call again on chosen SQLSTATEs, with bounded attempts and backoff.

Plain Python (standard library only), no Ansible imports. The SQLSTATE of an exception is
read from ``exc.sqlstate`` (pg.PgError), ``exc.pgcode`` (psycopg2) or ``exc.diag.sqlstate``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

LOCK_NOT_AVAILABLE = "55P03"
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
CANNOT_CONNECT_NOW = "57P03"
TRANSIENT = (LOCK_NOT_AVAILABLE, SERIALIZATION_FAILURE, DEADLOCK_DETECTED)


def sqlstate_of(exc):
    """The SQLSTATE an exception carries, or None."""
    for name in ("sqlstate", "pgcode"):
        value = getattr(exc, name, None)
        if value:
            return str(value)
    diag = getattr(exc, "diag", None)
    value = getattr(diag, "sqlstate", None) if diag is not None else None
    return str(value) if value else None


def backoff_delays(attempts, base=0.5, factor=2.0, cap=30.0):
    """Seconds to wait before attempt 2, 3, ... (``attempts - 1`` values, at most ``cap``;
    ``cap=None``: not capped)."""
    out = []
    delay = float(base)
    for _n in range(max(0, int(attempts) - 1)):
        out.append(delay if cap is None else min(delay, float(cap)))
        delay *= float(factor)
    return out


def doubling(retries, delay):
    """Keyword arguments of ``call`` for ``retries`` more attempts after the first one, waiting
    ``delay``, twice that, four times that, ... seconds (no cap)."""
    return dict(attempts=int(retries) + 1, base=float(delay), factor=2.0, cap=None)


class Retried:
    """What a retried call did: ``attempts`` made and the SQLSTATE of each failed one."""

    def __init__(self):
        self.attempts = 0
        self.failures = []

    def as_dict(self):
        return {"attempts": self.attempts, "retried_on": list(self.failures)}


def call(
    fn,
    sqlstates=TRANSIENT,
    attempts=5,
    base=0.5,
    factor=2.0,
    cap=30.0,
    sleep=time.sleep,
    on_retry=None,
    report=None,
    retry_if=None,
):
    """``fn()``, called again (up to ``attempts`` times in all) when it raises an exception
    whose SQLSTATE is in ``sqlstates`` (or for which ``retry_if(exc)`` is true).

    Waits ``base``, ``base*factor``, ... seconds (at most ``cap``, None: no cap) between attempts and calls
    ``on_retry(attempt, exc, delay)`` before each wait. ``report``: a Retried that is filled
    in (attempts made, SQLSTATEs retried on). The last exception is raised as it was.
    """
    if int(attempts) < 1:
        raise ValueError("attempts must be at least 1")
    report = report if report is not None else Retried()
    delays = backoff_delays(attempts, base, factor, cap)
    wanted = set(sqlstates or ())
    for attempt in range(1, int(attempts) + 1):
        report.attempts = attempt
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised when not retryable
            state = sqlstate_of(exc)
            retryable = (state in wanted) or bool(retry_if and retry_if(exc))
            if not retryable or attempt == int(attempts):
                raise
            report.failures.append(state)
            delay = delays[attempt - 1]
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def poll(check, timeout, interval=0.2, clock=time.monotonic, sleep=time.sleep):
    """Call ``check()`` every ``interval`` seconds until it returns a value other than None,
    or ``timeout`` seconds (monotonic clock) passed; returns that value, or None on timeout."""
    deadline = clock() + float(timeout)
    while True:
        value = check()
        if value is not None:
            return value
        if clock() >= deadline:
            return None
        sleep(interval)
