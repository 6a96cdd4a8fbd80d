"""Pure helpers of replication/status.py and the version differences it reads through versions.py."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import status

CONNINFO = (
    "user=postgres password=******** channel_binding=prefer dbname=replication host=10.0.0.1 port=5432 "
    "fallback_application_name=db2 sslmode=prefer"
)


@pytest.mark.parametrize(
    ("pending", "since", "has_receive", "expected"),
    [
        (0, 3600.0, True, 0.0),  # idle primary: last commit an hour ago, nothing to replay
        (-8192, 3600.0, True, 0.0),  # receiver restarted at a segment start before the replay point
        (1024, 12.5, True, 12.5),
        (1024, None, True, None),  # nothing replayed yet: unknown
        (None, 10.0, False, None),  # no WAL received by streaming: cannot tell
    ],
)
def test_replay_delay_reads_zero_when_everything_received_is_replayed(pending, since, has_receive, expected):
    assert status.replay_delay(pending, since, has_receive) == expected


def test_application_name_the_primary_sees():
    assert status.standby_application_name(dict(conninfo=CONNINFO), {}) == "db2"
    explicit = CONNINFO + " application_name='db 2'"
    assert status.standby_application_name(dict(conninfo=explicit), {}) == "db 2"
    settings = dict(cluster_name=dict(setting="main"))
    assert status.standby_application_name(dict(conninfo="host=a"), settings) == "main"
    assert status.standby_application_name(None, {}) == "walreceiver"


def test_conninfo_password_masked():
    assert "s3cret" not in status.mask_conninfo("host=a password=s3cret user=b")
    assert status.mask_conninfo(CONNINFO) == CONNINFO
    assert status.mask_conninfo(None) is None


def test_timeline_of_walfile():
    assert status.timeline_of_walfile("000000030000000000000005") == 3
    assert status.timeline_of_walfile(None) is None


def test_zero_lag_seconds_when_caught_up():
    row = dict(
        write_lag_bytes=0,
        flush_lag_bytes=10,
        replay_lag_bytes=0,
        replay_lag_seconds=None,
        flush_lag_seconds=0.4,
    )
    out = status._zero_when_caught_up(row)
    assert (
        out["replay_lag_seconds"] == 0.0
        and out["write_lag_seconds"] == 0.0
        and out["flush_lag_seconds"] == 0.4
    )


def test_slot_and_conflict_columns_per_major():
    assert Features(140000).replication_slot_columns == ()
    assert Features(160000).replication_slot_columns == ("conflicting",)
    assert Features(170000).replication_slot_columns == (
        "conflicting",
        "inactive_since",
        "invalidation_reason",
        "failover",
        "synced",
    )
    assert Features(180000).replication_slot_columns[-1] == "two_phase_at"
    assert "confl_active_logicalslot" not in Features(150000).recovery_conflict_columns
    assert Features(160000).recovery_conflict_columns[-1] == "confl_active_logicalslot"


def test_milliseconds_of_a_time_setting():
    assert status._milliseconds(dict(setting="5", unit="min")) == 300000
    assert status._milliseconds(dict(setting="0", unit="ms")) == 0
    assert status._milliseconds(None) is None
