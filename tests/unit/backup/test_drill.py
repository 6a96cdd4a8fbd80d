"""The restore drill's engine without a database: table names, comparison, the archiver wait."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import drill


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("shop.orders", ("shop", "orders")),
        ("orders", ("public", "orders")),
        ('"My Schema"."Order.Items"', ("My Schema", "Order.Items")),
        ('s."a""b"', ("s", 'a"b')),
    ],
)
def test_split_table(text, want):
    assert drill.split_table(text) == want


@pytest.mark.parametrize("bad", ["a.b.c", "", ".x", '"open.x', "x."])
def test_split_table_refuses_unclear_names(bad):
    with pytest.raises(drill.DrillError, match="schema.table"):
        drill.split_table(bad)


def test_check_name():
    assert drill.check_name("dbarch_drill_20261126T020000Z") == "dbarch_drill_20261126T020000Z"
    with pytest.raises(drill.DrillError, match="Restore point name"):
        drill.check_name("x'; DROP TABLE t; --")


def test_compare_names_every_difference():
    expected = {"s.a": {"rows": 3, "checksum": "10"}, "s.b": {"rows": 1, "checksum": "5"}}
    assert (
        drill.compare(
            ["before"], {"s.a": {"rows": 3, "checksum": "10"}, "s.b": dict(expected["s.b"])}, expected
        )
        == []
    )
    found = drill.compare(["before", "after"], {"s.a": {"rows": 2, "checksum": "9"}}, expected)
    assert found == [
        "marker 'after' is present: the restore went past the restore point",
        "s.a: 2 rows restored, 3 at the restore point",
        "s.a: checksum 9 restored, 10 at the restore point",
        "s.b: not checked on the restored copy",
    ]
    assert drill.compare([], {}, {}) == [
        "marker 'before' is missing: the restore stopped before the restore point"
    ]
    assert drill.compare(None, {}, {}) == []


def test_seconds_between():
    assert drill.seconds_between("2026-11-26T02:00:10+00:00", "2026-11-26T02:00:00Z") == 10.0
    assert drill.seconds_between("2026-11-26T02:00:10+00:00", None) is None


class FakeSession:
    target = "db:5432"

    def __init__(self, archived):
        self.archived = list(archived)

    def scalar(self, query, params=None, record=True):
        return "000000010000000000000005"

    def fetchone(self, query, params=None, record=True):
        last = self.archived.pop(0) if len(self.archived) > 1 else self.archived[0]
        return {
            "last_archived_wal": last,
            "last_failed_wal": "000000010000000000000005",
            "last_failed_time": "2026-11-26 02:00:00+00",
            "failed_count": 4,
            "archive_mode": "on",
        }


def test_wait_archived_returns_once_the_segment_is_archived():
    ticks = iter(range(100))
    session = FakeSession(["000000010000000000000004", None, "000000010000000000000005"])
    out = drill.wait_archived(
        session, "000000010000000000000005", clock=lambda: next(ticks), sleep=lambda s: None
    )
    assert out == {
        "switched_from": "000000010000000000000005",
        "last_archived_wal": "000000010000000000000005",
    }


def test_wait_archived_times_out_with_the_archiver_state():
    ticks = iter(range(100))
    session = FakeSession(["000000010000000000000004"])
    with pytest.raises(drill.DrillError) as err:
        drill.wait_archived(
            session, "000000010000000000000005", timeout=3, clock=lambda: next(ticks), sleep=lambda s: None
        )
    assert "000000010000000000000005 (holding the restore point) was not archived within 3s" in str(err.value)
    assert "last failed 000000010000000000000005" in str(err.value) and "(4 failures)" in str(err.value)
