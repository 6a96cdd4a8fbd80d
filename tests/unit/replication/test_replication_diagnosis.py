"""The replication-lag runbook's cause classification (replication/diagnosis.py), without a database."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import diagnosis as dg
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import lag

MIB = 1024 * 1024
LIMITS = lag.thresholds()


def row(name="db2", slot="db2", unsent=0, unflushed=0, unreplayed=0, seconds=0.0, **over):
    out = dict(
        application_name=name,
        client_addr="10.0.0.2",
        state="streaming",
        slot_name=slot,
        sent_lsn="0/9000000",
        flush_lsn="0/9000000",
        replay_lsn="0/9000000",
        unsent_bytes=unsent,
        unflushed_bytes=unflushed,
        unreplayed_bytes=unreplayed,
        replay_lag_bytes=unsent + unflushed + unreplayed,
        replay_lag_seconds=seconds,
        write_lag_seconds=0.0,
        flush_lag_seconds=0.0,
    )
    out.update(over)
    return out


def receiver(name="db2", slot="db2", pending=0, delay=0.0, **over):
    out = dict(
        application_name=name,
        slot_name=slot,
        status="streaming",
        sender_host="10.0.0.1",
        sender_port=5432,
        replay_pending_bytes=pending,
        replay_delay_seconds=delay,
        replay_pause_state="not paused",
        replay_paused=False,
        recovery_min_apply_delay_ms=0,
        startup_wait_event_type="Activity",
        startup_wait_event="RecoveryWalStream",
        oldest_transactions=[],
        settings=dict(max_standby_streaming_delay="30s", hot_standby_feedback="off"),
    )
    out.update(over)
    return out


def primary_info(*rows, slots=()):
    return dict(
        role="primary",
        timeline=1,
        current_lsn="0/9000000",
        standbys=list(rows),
        slots=list(slots),
        findings=[],
    )


def standby_info(rec):
    return dict(role="standby", timeline=1, receiver=rec, standbys=[], slots=[], conflicts=[], findings=[])


def causes(out, host):
    return [f["rule"] for f in out["hosts"][host]["findings"] if f["rule"].startswith("REPL-CAUSE-")]


def test_caught_up_standby_has_no_cause_and_reads_ok():
    out = dg.diagnose(
        dict(db1=primary_info(row()), db2=standby_info(receiver())), inventory_primaries=["db1"]
    )
    assert out["primary"] == "db1" and out["notes"] == []
    (entry,) = out["standbys"]
    assert entry["level"] == "ok" and entry["causes"] == [] and entry["matched_by"] == "slot db2"
    summary = out["hosts"]["db2"]["summary"]
    assert summary["causes"] == ["none: no lag over the thresholds"] and summary["lag_bytes"] == 0
    assert out["hosts"]["db2"]["findings"] == [] and out["hosts"]["db1"]["findings"] == []
    assert out["hosts"]["db1"]["summary"]["lag_by_standby"] == {"db2": "0 bytes, 0.0 s, ok"}


def test_state_detail_keeps_roles_levels_and_causes_and_drops_the_readings():
    def run(unreplayed, detail):
        infos = dict(
            db1=primary_info(row(unreplayed=unreplayed)), db2=standby_info(receiver(pending=unreplayed))
        )
        return dg.diagnose(infos, inventory_primaries=["db1"], detail=detail)

    full, state = run(4096, "full"), run(4096, "state")
    assert full["hosts"]["db2"]["summary"]["lag_bytes"] == 4096
    for host in ("db1", "db2"):
        kept = state["hosts"][host]["summary"]
        assert not set(kept) & dg.READINGS, kept
        assert kept == dict((k, v) for k, v in full["hosts"][host]["summary"].items() if k not in dg.READINGS)
        assert state["hosts"][host]["findings"] == full["hosts"][host]["findings"]
    # Two runs whose readings differ but whose state does not write the same state-only summary.
    assert run(8192, "state")["hosts"] == state["hosts"]
    with pytest.raises(lag.LagError, match="detail must be one of full, state"):
        run(0, "everything")


def test_paused_replay_is_the_cause_not_the_standby_hardware():
    out = dg.diagnose(
        dict(
            db1=primary_info(row(unreplayed=32 * MIB, seconds=20.0)),
            db2=standby_info(
                receiver(pending=32 * MIB, delay=21.0, replay_paused=True, replay_pause_state="paused")
            ),
        )
    )
    assert causes(out, "db2") == ["REPL-CAUSE-002"]
    paused = out["hosts"]["db2"]["findings"][0]
    assert paused["severity"] == "medium" and paused["evidence"]["replay_pause_state"] == "paused"
    assert paused["fix"].startswith("-- Short term:\n--   On the standby:\nSELECT pg_wal_replay_resume();\n")
    assert "\n-- Long term:\n--   Find who paused it" in paused["fix"]
    assert out["standbys"][0]["level"] == "warning" and out["standbys"][0]["lag_seconds"] == 21.0


def test_network_when_wal_is_sent_but_not_flushed():
    out = dg.diagnose(
        dict(
            db1=primary_info(row(unflushed=40 * MIB, unreplayed=MIB, seconds=45.0)),
            db2=standby_info(receiver()),
        )
    )
    assert causes(out, "db2") == ["REPL-CAUSE-005"]
    net = out["hosts"]["db2"]["findings"][0]
    assert net["severity"] == "high" and net["evidence"]["unflushed_bytes"] == 40 * MIB
    assert net["evidence"]["current_lsn"] == "0/9000000" and "wal_compression" in net["fix"]


def test_standby_io_or_cpu_when_nothing_else_explains_replay_lag():
    out = dg.diagnose(
        dict(
            db1=primary_info(row(unreplayed=50 * MIB, seconds=8.0)),
            db2=standby_info(receiver(pending=50 * MIB)),
        )
    )
    assert causes(out, "db2") == ["REPL-CAUSE-006"]
    assert "iostat" in out["hosts"]["db2"]["findings"][0]["fix"]


def test_queries_holding_replay_back():
    tx = dict(pid=4242, user="report", database="app", state="active", xact_seconds=90.0, query="SELECT ...")
    rec = receiver(
        pending=20 * MIB,
        delay=40.0,
        startup_wait_event_type="IPC",
        startup_wait_event="RecoveryConflictSnapshot",
        oldest_transactions=[tx, dict(tx, pid=1, xact_seconds=1.0)],
    )
    out = dg.diagnose(dict(db1=primary_info(row(unreplayed=20 * MIB, seconds=40.0)), db2=standby_info(rec)))
    assert causes(out, "db2") == ["REPL-CAUSE-004"]
    held = out["hosts"]["db2"]["findings"][0]
    assert [t["pid"] for t in held["evidence"]["oldest_transactions"]] == [4242]
    assert held["evidence"]["startup_wait_event"] == "RecoveryConflictSnapshot"
    assert "pg_cancel_backend" in held["fix"] and "hot_standby_feedback" in held["fix"]


def test_delayed_standby_is_intentional():
    rec = receiver(pending=30 * MIB, delay=3600.0, recovery_min_apply_delay_ms=3600000)
    out = dg.diagnose(dict(db1=primary_info(row(unreplayed=30 * MIB, seconds=3600.0)), db2=standby_info(rec)))
    assert causes(out, "db2") == ["REPL-CAUSE-003"]
    assert out["hosts"]["db2"]["findings"][0]["severity"] == "info"


def test_standby_not_seen_by_the_primary_and_an_unreadable_host():
    rec = receiver(status="waiting", name="walreceiver", slot=None)
    out = dg.diagnose(
        dict(db1=primary_info(), db2=standby_info(rec), db3=dict(failed=True, msg="Cannot connect: refused"))
    )
    assert causes(out, "db2") == ["REPL-CAUSE-001"]
    assert out["hosts"]["db2"]["summary"]["matched_by"] == "not seen by the primary"
    assert causes(out, "db3") == ["REPL-CAUSE-008"]
    assert out["hosts"]["db3"]["summary"] == dict(role="unknown", error="Cannot connect: refused")


def test_slot_retention_on_the_primary():
    slots = [
        dict(slot_name="gone", active=False, wal_status="extended", retained_bytes=2048 * MIB),
        dict(slot_name="db2", active=True, wal_status="reserved", retained_bytes=0),
    ]
    out = dg.diagnose(dict(db1=primary_info(row(), slots=slots), db2=standby_info(receiver())))
    (slot,) = [f for f in out["hosts"]["db1"]["findings"] if f["rule"] == "REPL-CAUSE-007"]
    assert slot["severity"] == "high" and "gone (2.0 GiB, inactive)" in slot["message"]
    assert [s["slot_name"] for s in slot["evidence"]["slots"]] == ["gone"]


def test_matching_by_application_name_and_by_the_only_pair():
    rows = [row(name="db2", slot=None), row(name="db3", slot=None, unreplayed=30 * MIB)]
    infos = dict(
        db1=primary_info(*rows),
        db2=standby_info(receiver(name="db2", slot=None)),
        db3=standby_info(receiver(name="db3", slot=None, pending=30 * MIB)),
    )
    out = dg.diagnose(infos)
    by_host = {s["host"]: s for s in out["standbys"]}
    assert by_host["db2"]["matched_by"] == "application_name db2" and by_host["db2"]["level"] == "ok"
    assert by_host["db3"]["level"] == "warning"
    lone = dg.match_standbys(
        [row(name="walreceiver", slot=None)], dict(db2=standby_info(receiver(name="x", slot=None)))
    )
    assert lone["db2"][1] == "the only standby left"


def test_stale_inventory_and_two_primaries():
    out = dg.diagnose(
        dict(db1=standby_info(receiver()), db2=primary_info(row())), inventory_primaries=["db1"]
    )
    assert out["primary"] == "db2"
    assert out["notes"] and "inventory calls db1 the primary" in out["notes"][0]
    assert out["hosts"]["db1"]["summary"]["notes"] == out["notes"]
    two = dg.diagnose(dict(db1=primary_info(), db2=primary_info()), inventory_primaries=["db2"])
    assert two["primary"] == "db2"
    assert [f["rule"] for f in two["hosts"]["db2"]["findings"]] == ["REPL-CAUSE-009"]
    assert two["hosts"]["db2"]["findings"][0]["severity"] == "critical"
