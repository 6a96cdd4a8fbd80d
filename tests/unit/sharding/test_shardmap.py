"""sharding/shardmap.py: the map's checks (the DDL itself is tested on real clusters in
tests/integration/test_shard.py)."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.sharding import fdw, shardmap

COLS = [{"name": "id", "type": "bigint", "not_null": True}, {"name": "amount", "type": "numeric(12, 2)"}]


def shard(name, **extra):
    return dict(name=name, host="h", port=5432, dbname="d", user="u", **extra)


def test_a_range_map_is_normalized():
    cols, shards = shardmap.validate("t", COLS, "id", "range", [shard("a", **{"from": 0, "to": "MAXVALUE"})])
    assert shards[0]["from"] == "0" and shards[0]["to"] == "MAXVALUE"
    assert cols[1] == {"name": "amount", "type": "numeric(12, 2)", "not_null": False}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(columns=[{"name": "id", "type": "bigint; DROP TABLE x"}]), "plain type"),
        (dict(shard_key="nope"), "not one of the columns"),
        (dict(primary_key=["amount"]), "must include the shard key"),
        (dict(shards=[shard("A", **{"from": 0, "to": 1})]), "lower-case"),
        (dict(shards=[shard("a", **{"from": 0})]), "needs from and to"),
        (dict(shards=[shard("a", **{"from": 0, "to": 1}), shard("a", **{"from": 1, "to": 2})]), "twice"),
        (dict(strategy="hash", shards=[shard("a", remainder=0)]), "modulus"),
        (dict(strategy="hash", modulus=2, shards=[shard("a", remainder=2)]), "remainder from 0 to 1"),
        (
            dict(strategy="hash", modulus=2, shards=[shard("a", remainder=1), shard("b", remainder=1)]),
            "same hash",
        ),
        (dict(strategy="list"), "range or hash"),
    ],
)
def test_bad_maps_are_refused_with_the_reason(kwargs, message):
    args = dict(
        table="t", columns=COLS, shard_key="id", strategy="range", shards=[shard("a", **{"from": 0, "to": 1})]
    )
    args.update(kwargs)
    with pytest.raises(shardmap.ShardMapError, match=message):
        shardmap.validate(**args)


def test_skew_and_its_finding():
    assert shardmap.skew([100, 100]) == 1.0
    assert shardmap.skew([300, 100]) == 1.5
    assert shardmap.skew([0, 0]) is None and shardmap.skew([]) is None
    report = dict(
        table="events",
        shards=[
            dict(shard="a", partition="events_a", rows=900, bytes=10),
            dict(shard="b", partition="events_b", rows=100, bytes=10),
        ],
        skew=dict(rows=1.8, bytes=1.0),
    )
    found = fdw.skew_findings(report, 1.5)
    assert [(f.rule, f.object) for f in found] == [("SHARD-SKEW-001", "events rows")]
    assert "events_a" in found[0].evidence["per_shard"] and "shard a" in found[0].message
    assert fdw.skew_findings(report, 2.0) == []
    assert issubclass(fdw.ShardError, DbarchError) and issubclass(shardmap.ShardMapError, DbarchError)
