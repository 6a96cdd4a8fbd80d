"""Lag classification and the findings of replication_info (replication/lag.py), without a database."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import lag

MIB = 1024 * 1024
LIMITS = lag.thresholds()


def standby_row(**over):
    row = dict(
        application_name="db2",
        client_addr="10.0.0.2",
        state="streaming",
        sync_state="async",
        sent_lsn="0/5000000",
        flush_lsn="0/5000000",
        replay_lsn="0/5000000",
        replay_lag_bytes=0,
        replay_lag_seconds=0.0,
        slot_name="db2",
    )
    row.update(over)
    return row


def primary(*rows, slots=()):
    return dict(role="primary", current_lsn="0/5000000", standbys=list(rows), slots=list(slots))


def standby(**receiver):
    rec = dict(
        application_name="db2",
        status="streaming",
        receive_lsn="0/5000000",
        replay_lsn="0/5000000",
        replay_pending_bytes=0,
        replay_delay_seconds=0.0,
        replay_pause_state="not paused",
        replay_paused=False,
    )
    rec.update(receiver)
    return dict(role="standby", receiver=rec, slots=[], conflicts=[])


def rules(found):
    return [(f.rule, f.severity, f.object) for f in found]


def test_defaults_and_validation():
    assert lag.thresholds() == dict(
        lag_warning_seconds=5.0,
        lag_critical_seconds=30.0,
        lag_warning_bytes=16 * MIB,
        lag_critical_bytes=1024 * MIB,
    )
    assert lag.thresholds(lag_warning_bytes="1024")["lag_warning_bytes"] == 1024
    with pytest.raises(lag.LagError, match="warning threshold must be the lower one"):
        lag.thresholds(lag_warning_seconds=60)
    with pytest.raises(lag.LagError, match="must not be negative"):
        lag.thresholds(lag_warning_bytes=-1)
    with pytest.raises(lag.LagError, match="not a number"):
        lag.thresholds(lag_critical_seconds="soon")
    with pytest.raises(lag.LagError, match="Unknown threshold"):
        lag.thresholds(lag_seconds=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (0, None),
        (4.99, None),
        (5, "warning"),
        (29.9, "warning"),
        (30, "critical"),
        (600, "critical"),
    ],
)
def test_level(value, expected):
    assert lag.level(value, 5, 30) == expected


def test_idle_primary_and_caught_up_standby_have_no_findings():
    assert lag.findings(primary(standby_row()), LIMITS) == []
    assert lag.findings(standby(), LIMITS) == []


def test_primary_lag_in_seconds_and_bytes_at_each_level():
    row = standby_row(replay_lag_bytes=20 * MIB, replay_lag_seconds=45.0)
    found = lag.findings(primary(row), LIMITS)
    assert rules(found) == [
        ("REPL-LAG-001", "high", "standby db2 (10.0.0.2)"),
        ("REPL-LAG-002", "medium", "standby db2 (10.0.0.2)"),
    ]
    seconds = found[0]
    assert "45.0 s behind" in seconds.message and "critical threshold 30.0 s" in seconds.message
    assert seconds.why and seconds.fix and seconds.evidence["level"] == "critical"
    assert "20.0 MiB" in found[1].message and found[1].evidence["lag_bytes"] == 20 * MIB


def test_unknown_lag_seconds_is_no_finding():
    row = standby_row(replay_lag_bytes=100, replay_lag_seconds=None)
    assert lag.findings(primary(row), LIMITS) == []


def test_expected_standbys_missing_and_not_streaming():
    found = lag.findings(primary(standby_row(state="catchup")), LIMITS, expected_standbys=["db2", "db3"])
    assert rules(found) == [
        ("REPL-STANDBY-001", "high", "standby db3"),
        ("REPL-STANDBY-002", "medium", "standby db2 (10.0.0.2)"),
    ]
    assert found[0].evidence["connected"] == ["db2"]


def test_slots_inactive_lost_unreserved():
    slots = [
        dict(
            slot_name="old",
            slot_type="physical",
            active=False,
            wal_status="extended",
            retained_bytes=2048 * MIB,
        ),
        dict(
            slot_name="small", slot_type="physical", active=False, wal_status="reserved", retained_bytes=MIB
        ),
        dict(slot_name="gone", slot_type="physical", active=False, wal_status="lost", retained_bytes=None),
        dict(
            slot_name="edge",
            slot_type="physical",
            active=True,
            wal_status="unreserved",
            retained_bytes=3 * MIB,
        ),
        dict(
            slot_name="busy", slot_type="physical", active=True, wal_status="reserved", retained_bytes=5 * MIB
        ),
        dict(
            slot_name="nothing", slot_type="physical", active=False, wal_status="reserved", retained_bytes=0
        ),
        dict(
            slot_name="sub",
            slot_type="logical",
            active=False,
            wal_status="lost",
            retained_bytes=None,
            invalidation_reason="wal_removed",
        ),
    ]
    found = lag.findings(primary(slots=slots), LIMITS)
    assert rules(found) == [
        ("REPL-SLOT-001", "high", "slot old"),
        ("REPL-SLOT-002", "high", "slot gone"),
        ("REPL-SLOT-002", "high", "slot sub"),
        ("REPL-SLOT-003", "high", "slot edge"),
        ("REPL-SLOT-001", "medium", "slot small"),
    ]
    by_object = {f.object: f for f in found}
    assert "SELECT pg_drop_replication_slot('old');" in by_object["slot old"].fix
    assert "wal_removed" in by_object["slot sub"].message
    assert by_object["slot sub"].evidence["invalidation_reason"] == "wal_removed"


def test_standby_findings_paused_receiver_conflicts():
    facts = standby(
        status="waiting",
        replay_paused=True,
        replay_pause_state="paused",
        replay_pending_bytes=32 * MIB,
        replay_delay_seconds=7.5,
    )
    facts["conflicts"] = [
        dict(database="app", total=3, counts=dict(snapshot=3, lock=0), stats_reset=None),
    ]
    found = lag.findings(facts, LIMITS)
    assert rules(found) == [
        ("REPL-RECV-001", "high", "standby db2"),
        ("REPL-LAG-001", "medium", "standby db2"),
        ("REPL-LAG-002", "medium", "standby db2"),
        ("REPL-REPLAY-001", "medium", "standby db2"),
        ("REPL-CONFLICT-001", "low", "database app"),
    ]
    by_rule = {f.rule: f for f in found}
    assert by_rule["REPL-REPLAY-001"].fix.endswith("SELECT pg_wal_replay_resume();")
    assert "3 queries" in by_rule["REPL-CONFLICT-001"].message
    assert "hot_standby_feedback" in by_rule["REPL-CONFLICT-001"].fix


def test_every_rule_is_registered_with_why():
    for rule in fnd.registered_rules("replication_info"):
        assert rule.why and rule.title and rule.severity in fnd.SEVERITIES
    assert {r.id for r in fnd.registered_rules("replication_info")} == {
        "REPL-LAG-001",
        "REPL-LAG-002",
        "REPL-STANDBY-001",
        "REPL-STANDBY-002",
        "REPL-SLOT-001",
        "REPL-SLOT-002",
        "REPL-SLOT-003",
        "REPL-RECV-001",
        "REPL-REPLAY-001",
        "REPL-CONFLICT-001",
    }


def test_size_text():
    assert lag.size_text(None) == "unknown"
    assert lag.size_text(512) == "512 bytes"
    assert lag.size_text(16 * MIB) == "16.0 MiB"
    assert lag.size_text(1536 * MIB) == "1.5 GiB"
