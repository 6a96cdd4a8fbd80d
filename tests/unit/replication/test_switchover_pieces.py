"""The pieces the switchover, add_replica and rejoin playbooks share, without a database: the group
as the servers see it (topology.py), the rejoin's findings (outcome.py), where a node's data folder,
binaries and service come from (control.py), slot decisions (slots.py) and the filters."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.filter import replication as flt
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import control, outcome, slots
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import topology as tp


def primary_info(*names, lsn="0/9000000"):
    rows = [
        dict(application_name=n, slot_name=n, state="streaming", replay_lsn=lsn, sent_lsn=lsn, flush_lsn=lsn)
        for n in names
    ]
    return dict(role="primary", timeline=1, current_lsn=lsn, standbys=rows, slots=[], findings=[])


def standby_info(name, status="streaming", replay="0/9000000", **over):
    rec = dict(
        application_name=name,
        slot_name=name,
        status=status,
        sender_host="10.0.0.1",
        sender_port=5432,
        receive_lsn=replay,
        replay_lsn=replay,
        replay_paused=False,
        recovery_min_apply_delay_ms=0,
    )
    rec.update(over)
    return dict(role="standby", timeline=1, receiver=rec, standbys=[], slots=[], findings=[])


def test_the_primary_is_the_server_out_of_recovery_and_a_stale_inventory_is_said():
    infos = dict(db1=standby_info("db1"), db2=primary_info("db1", "db3"), db3=standby_info("db3"))
    out = tp.topology(infos, inventory_primaries=["db1"])
    assert out["primary"] == "db2" and out["primaries"] == ["db2"] and out["inventory_primary"] == "db1"
    assert out["stale"] is True
    assert out["notes"] == [
        "The inventory calls db1 the primary, but the server out of recovery is db2: the inventory is "
        "stale; following the servers."
    ]
    assert out["streaming_standbys"] == ["db1", "db3"]
    assert out["standbys"]["db1"]["follows_primary"] is True and out["standbys"]["db1"]["lag_bytes"] == 0
    assert out["standbys"]["db1"]["upstream"] == "10.0.0.1:5432" and out["unreadable"] == {}


def test_lag_unreadable_hosts_and_a_standby_the_primary_does_not_see():
    infos = dict(
        db1=primary_info("db2", lsn="0/9000000"),
        db2=standby_info("db2", replay="0/8FF0000", recovery_min_apply_delay_ms=60000),
        db3=standby_info("db3", status="not running"),
        db4=dict(failed=True, msg="Cannot connect"),
    )
    out = tp.topology(infos, inventory_primaries=["db1"])
    assert out["stale"] is False and out["notes"] == []
    assert (
        out["standbys"]["db2"]["lag_bytes"] == 0x10000 and out["standbys"]["db2"]["apply_delay_ms"] == 60000
    )
    assert out["standbys"]["db3"]["follows_primary"] is False and out["standbys"]["db3"]["streaming"] is False
    assert out["streaming_standbys"] == ["db2"] and out["unreadable"] == {"db4": "Cannot connect"}


def test_two_primaries_or_none():
    two = tp.topology(dict(db1=primary_info(), db2=primary_info()), inventory_primaries=["db1"])
    assert two["primaries"] == ["db1", "db2"] and two["primary"] == "db1"
    none = tp.topology(dict(db1=standby_info("db1")), inventory_primaries=["db1"])
    assert none["primary"] is None and none["primaries"] == [] and none["stale"] is False
    assert any("No server is out of recovery" in n for n in none["notes"])


def test_lost_transactions_become_high_findings_and_an_incomplete_list_is_said():
    result = dict(
        lost_transactions=[
            dict(
                xid=745, commit_time="2026-12-05T12:27:30+00:00", lsn="0/192B9F8", relations=["public.orders"]
            ),
            dict(xid=746, commit_time="2026-12-05T12:27:31+00:00", lsn="0/192BA40", relations=[]),
        ],
        lost_summary=dict(committed=3, listed=2, complete=True),
    )
    found = outcome.lost_transaction_findings("db1", "db2", result)
    rules = [f["rule"] for f in found]
    assert rules == ["REPL-REJOIN-001", "REPL-REJOIN-001", "REPL-REJOIN-002"]
    first = found[0]
    assert first["severity"] == "high" and first["object"] == "transaction 745 on db1"
    assert "public.orders" in first["message"] and "is not on db2" in first["message"]
    assert first["evidence"]["xid"] == 745
    assert found[2]["message"] == "3 committed transaction(s) lost, 2 listed."
    assert (
        outcome.lost_transaction_findings("db1", "db2", dict(lost_transactions=[], lost_summary=None)) == []
    )
    rule = fnd.registered_rule("REPL-REJOIN-001")
    assert rule.analysis == outcome.ANALYSIS and rule.severity == "high"


def test_filters_lsn_bytes_and_rejoin_findings():
    assert flt.lsn_bytes("0/3000148") == 0x3000148 and flt.lsn_bytes("1/0") == 1 << 32
    assert flt.lsn_bytes(None) is None and flt.lsn_bytes("") is None
    with pytest.raises(flt.AnsibleFilterError, match="not an LSN"):
        flt.lsn_bytes("nope")
    with pytest.raises(flt.AnsibleFilterError):
        flt.rejoin_findings(["x"], "db1")
    with pytest.raises(flt.AnsibleFilterError):
        flt.replication_topology(["x"])
    names = flt.FilterModule().filters()
    assert {"replication_diagnosis", "replication_topology", "lsn_bytes", "rejoin_findings"} <= set(names)


DEBIAN = [
    dict(version=16, cluster="main", configdir="/etc/postgresql/16/main", pgdata="/srv/pg16", port=5433)
]


def test_locate_prefers_options_then_debian_then_the_running_server(monkeypatch):
    monkeypatch.setattr(
        control.nd, "resolve_bindir", lambda data_dir, bindir, major, entry: (bindir or "/b", "x")
    )
    given = control.locate(data_dir="/srv/other", port=5433, debian=DEBIAN)
    assert given["data_dir"] == "/srv/other" and given["service"] == "pg_ctl"
    assert given["found"]["service"] == "the default (pg_ctl on the data folder)"
    by_port = control.locate(port=5433, debian=DEBIAN)
    assert by_port["data_dir"] == "/srv/pg16" and by_port["service"] == "postgresql@16-main"
    assert by_port["found"]["data_dir"].startswith("pg_lsclusters (cluster 16/main on port 5433)")
    asked = control.locate(port=5999, server_data_dir="/var/lib/pg/data", debian=DEBIAN, service="pg_ctl")
    assert (
        asked["data_dir"] == "/var/lib/pg/data"
        and asked["found"]["data_dir"] == "the running server's data_directory"
    )
    with pytest.raises(control.ControlError, match="dbarch_data_dir"):
        control.locate(port=5999, debian=[])
    with pytest.raises(control.nd.StandbyError, match="systemd unit"):
        control.locate(data_dir="/srv/x", service="bad unit;", debian=[])


def test_slot_plans():
    assert slots.plan(None, "db2", "present") == ("create", "the slot db2 is missing")
    assert slots.plan(dict(slot_type="physical", active=False), "db2", "present")[0] is None
    assert slots.plan(None, "db2", "absent")[0] is None
    assert slots.plan(dict(slot_type="physical", active=False, active_pid=None), "db2", "absent")[0] == "drop"
    with pytest.raises(slots.SlotError, match="in use"):
        slots.plan(dict(slot_type="physical", active=True, active_pid=42), "db2", "absent")
    with pytest.raises(slots.SlotError, match="logical slot"):
        slots.plan(dict(slot_type="logical", active=False), "db2", "present")
    with pytest.raises(slots.SlotError, match="lower-case"):
        slots.check_name("Db-2")
