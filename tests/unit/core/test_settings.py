"""settings without a database: how values are normalised and compared, and the SQL built."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import settings as st


def row(name, vartype, unit=None, enumvals=None, min_val=None, max_val=None):
    return dict(name=name, vartype=vartype, unit=unit, enumvals=enumvals, min_val=min_val, max_val=max_val)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        ("64MB", "kB", 65536),
        ("65536kB", "kB", 65536),
        (65536, "kB", 65536),
        ("1GB", "8kB", 131072),
        ("128MB", "8kB", 16384),
        ("5min", "s", 300),
        ("300s", "s", 300),
        ("250ms", "ms", 250),
        ("1h", "min", 60),
        ("1TB", "MB", 1048576),
    ],
)
def test_numbers_with_units(value, unit, expected):
    assert st.normalise(value, row("x", "integer", unit)) == expected


def test_booleans_enums_lists_strings():
    b = row("log_checkpoints", "bool")
    assert {st.normalise(v, b) for v in ("on", "true", "yes", "1", True, "ON", "tr")} == {True}
    assert {st.normalise(v, b) for v in ("off", "false", "no", "0", False, "fa")} == {False}
    with pytest.raises(st.SettingError, match="not a boolean"):
        st.normalise("maybe", b)
    e = row("wal_level", "enum", enumvals=["minimal", "replica", "logical"])
    assert st.normalise("Replica", e) == "replica"
    with pytest.raises(st.SettingError, match="is not one of minimal, replica, logical"):
        st.normalise("archive", e)
    lst = row("shared_preload_libraries", "string")
    assert (
        st.normalise(["a", "b"], lst) == st.normalise('"a", b', lst) == st.normalise("a,b", lst) == ("a", "b")
    )
    assert st.normalise("cp %p /x/%f", row("archive_command", "string")) == "cp %p /x/%f"


def test_bad_numbers_and_units():
    with pytest.raises(st.SettingError, match="not a number"):
        st.normalise("lots", row("work_mem", "integer", "kB"))
    with pytest.raises(st.SettingError, match="unit 'min' is not valid here; valid units: B, kB"):
        st.normalise("5min", row("work_mem", "integer", "kB"))
    with pytest.raises(st.SettingError, match="has no unit"):
        st.normalise("5MB", row("max_connections", "integer"))
    with pytest.raises(st.SettingError, match="below the minimum"):
        st.check_bounds(-5, row("statement_timeout", "integer", "ms", min_val="0"))


def test_value_text_and_diff():
    assert st.value_text(True) == "on" and st.value_text(["a", "b"]) == "a, b" and st.value_text(5) == "5"
    planned = {
        "names": ["archive_mode", "work_mem"],
        "details": {
            "archive_mode": {"before": "off", "after": "on"},
            "work_mem": {"before": None, "after": "64MB"},
        },
    }
    d = st.diff(planned)
    assert d["before"] == "archive_mode = 'off'\nwork_mem = (not set)\n"
    assert d["after"] == "archive_mode = 'on'\nwork_mem = '64MB'\n"


def test_archiver_failing_and_log_candidates():
    import datetime  # noqa: PLC0415

    t1 = datetime.datetime(2026, 1, 1, 0, 0, 0)
    t2 = t1 + datetime.timedelta(seconds=5)
    assert st._failing({"last_failed_time": None, "last_archived_time": t1}) is False
    assert st._failing({"last_failed_time": t2, "last_archived_time": t1}) is True
    assert st._failing({"last_failed_time": t1, "last_archived_time": t2}) is False
    assert st._failing({"last_failed_time": t1, "last_archived_time": None}) is True
    paths = st.log_candidates({"data_directory": "/srv/pg/main/data", "current_logfile": "log/pg.log"})
    assert paths == ["/srv/pg/main/data/log/pg.log", "/srv/pg/main/log/postgresql.log"]
