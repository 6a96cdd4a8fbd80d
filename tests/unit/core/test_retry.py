# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one retry helper keyed by SQLSTATE (retry.py)."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import retry


class StateError(Exception):
    def __init__(self, sqlstate):
        super().__init__("state %s" % sqlstate)
        self.sqlstate = sqlstate


def _flaky(states):
    calls = []

    def fn():
        calls.append(1)
        if states:
            raise StateError(states.pop(0))
        return "done"

    return fn, calls


def test_retries_listed_sqlstates_with_backoff_and_reports_attempts():
    fn, calls = _flaky(["55P03", "40P01"])
    waits = []
    report = retry.Retried()
    assert retry.call(fn, attempts=4, base=0.1, factor=3, sleep=waits.append, report=report) == "done"
    assert len(calls) == 3 and waits == [0.1, pytest.approx(0.3)]
    assert report.as_dict() == {"attempts": 3, "retried_on": ["55P03", "40P01"]}


def test_other_sqlstates_and_the_last_attempt_raise_as_they_were():
    fn, calls = _flaky(["42P01"])
    with pytest.raises(StateError, match="42P01"):
        retry.call(fn, sleep=lambda _s: None)
    assert len(calls) == 1
    fn, calls = _flaky(["40001"] * 5)
    with pytest.raises(StateError, match="40001"):
        retry.call(fn, attempts=3, sleep=lambda _s: None)
    assert len(calls) == 3


def test_delays_are_capped_and_sqlstate_read_from_psycopg2_style_errors():
    assert retry.backoff_delays(5, base=1, factor=10, cap=20) == [1, 10, 20, 20]

    class Diag:
        sqlstate = "40P01"

    class DriverError(Exception):
        pgcode = None
        diag = Diag()

    assert retry.sqlstate_of(DriverError()) == "40P01"
    with pytest.raises(ValueError):
        retry.call(lambda: None, attempts=0)


def test_poll_returns_the_first_value_or_none_at_the_deadline():
    now = [0.0]
    values = iter([None, None, 7])
    assert retry.poll(lambda: next(values), timeout=10, clock=lambda: now[0], sleep=lambda s: None) == 7
    ticks = iter([0.0, 0.0, 1.0, 2.5])
    assert retry.poll(lambda: None, timeout=2, clock=lambda: next(ticks), sleep=lambda s: None) is None


def test_doubling_waits_twice_as_long_each_time_without_a_cap():
    fn, calls = _flaky(["55P03"] * 4)
    waits = []
    assert retry.call(fn, sleep=waits.append, **retry.doubling(4, 10.0)) == "done"
    assert len(calls) == 5 and waits == [10.0, 20.0, 40.0, 80.0]
