# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/shard.yml (roles/shard: shard_table, shard_info, report) on real clusters: the shared
cluster is the coordinator, two more clusters are the shards. Rows inserted through the coordinator
land on the right shard, a query through it returns them all, a new range is added without touching
existing data (checksums), and a second run changes nothing."""

import json
import os

import pytest

import harness

CHECKSUM = "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) FROM events t"
COLUMNS = [
    {"name": "id", "type": "bigint", "not_null": True},
    {"name": "created", "type": "timestamptz"},
    {"name": "note", "type": "text"},
]


@pytest.fixture(scope="module")
def shard_servers(pg_major):
    started = []
    try:
        for name in ("shard_a", "shard_b"):
            started.append(harness.start_cluster(pg_major, name=name))
        yield started
    finally:
        for cluster in started:
            cluster.stop()


def entry(cluster, name, dbname, low, high):
    return dict(
        name=name,
        host=cluster.host,
        port=cluster.port,
        dbname=dbname,
        user=cluster.user,
        password=cluster.password,
        **{"from": low, "to": high},
    )


def shard_vars(shards, reports):
    return dict(
        shard_table="events",
        shard_columns=COLUMNS,
        shard_key="id",
        shard_primary_key=["id"],
        shard_map=shards,
        shard_report_dest=reports,
    )


def test_shard_map_rows_land_on_their_shard_and_a_new_range_touches_nothing(pg, shard_servers, workdir):
    a, b = shard_servers
    coordinator = pg.createdb("shard_coordinator")
    for cluster, db in ((a, "shard_a"), (a, "shard_c"), (b, "shard_b")):
        cluster.createdb(db)
    reports = os.path.join(workdir, "reports")
    shards = [entry(a, "a", "shard_a", 0, 1000), entry(b, "b", "shard_b", 1000, 2000)]

    def run(shard_list, **kw):
        return harness.run_site_playbook(
            "shard", pg, dbarch_login_db=coordinator, **shard_vars(shard_list, reports), **kw
        )

    check = harness.run_playbook(
        harness.REPO_ROOT / "playbooks" / "shard.yml",
        check=True,
        extra_vars=dict(
            dbarch_target="localhost",
            dbarch_login_host=pg.host,
            dbarch_login_port=pg.port,
            dbarch_login_user=pg.user,
            dbarch_login_password=pg.password,
            dbarch_login_db=coordinator,
            **shard_vars(shards, reports),
        ),
    )
    check.assert_ok()
    planned = check.task(
        "Create or extend the sharded table (shards, servers, user mappings, foreign partitions)"
    )
    assert planned["result"]["changed"] and len(planned["result"]["shard_actions"]["a"]) == 4
    assert pg.query("SELECT count(*) FROM pg_foreign_server", dbname=coordinator) == [(0,)]
    assert pg.query("SELECT to_regclass('events')", dbname=coordinator) == [(None,)]
    assert a.query("SELECT to_regclass('events')", dbname="shard_a") == [(None,)]

    first = run(shards)
    first.assert_ok()
    made = first.task(
        "Create or extend the sharded table (shards, servers, user mappings, foreign partitions)"
    )
    assert made["result"]["changed"]
    assert sorted(p["name"] for p in made["result"]["partitions"]) == ["events_a", "events_b"]
    for secret in (a.password, b.password, pg.password):
        assert secret not in first.stdout and secret not in first.stderr
        assert secret not in json.dumps(made["result"]["queries"])

    pg.query(
        "INSERT INTO events SELECT g, now(), 'n' || g FROM generate_series(1, 1999) g", dbname=coordinator
    )
    assert a.query("SELECT count(*), min(id), max(id) FROM events", dbname="shard_a") == [(999, 1, 999)]
    assert b.query("SELECT count(*), min(id), max(id) FROM events", dbname="shard_b") == [(1000, 1000, 1999)]
    assert pg.query("SELECT count(*), sum(id) FROM events", dbname=coordinator) == [(1999, 1999 * 2000 // 2)]

    second = run(shards)
    second.assert_ok()
    assert (
        second.task(
            "Create or extend the sharded table (shards, servers, user mappings, foreign partitions)"
        )["result"]["changed"]
        is False
    )
    info = second.task("Rows and bytes per shard, and the skew")["result"]
    assert [(s["shard"], s["rows"]) for s in info["shards"]] == [("a", 999), ("b", 1000)]
    assert info["total_rows"] == 1999 and all(s["bytes"] > 0 for s in info["shards"])
    assert info["skew"]["rows"] == round(1000 / 999.5, 3) and info["findings"] == []
    with open(os.path.join(reports, "localhost", "shard-events.json")) as fh:
        assert "1999" in fh.read()

    before = (a.query(CHECKSUM, dbname="shard_a"), b.query(CHECKSUM, dbname="shard_b"))
    grown = shards + [entry(a, "c", "shard_c", 2000, 3000)]
    third = run(grown)
    third.assert_ok()
    actions = third.task(
        "Create or extend the sharded table (shards, servers, user mappings, foreign partitions)"
    )["result"]
    assert actions["changed"] and actions["shard_actions"]["a"] == [] and actions["shard_actions"]["b"] == []
    assert len(actions["shard_actions"]["c"]) == 4  # table, server, user mapping, partition
    pg.query(
        "INSERT INTO events SELECT g, now(), 'n' || g FROM generate_series(2000, 2499) g", dbname=coordinator
    )
    assert (a.query(CHECKSUM, dbname="shard_a"), b.query(CHECKSUM, dbname="shard_b")) == before
    assert a.query("SELECT count(*), min(id) FROM events", dbname="shard_c") == [(500, 2000)]
    assert pg.query("SELECT count(*) FROM events", dbname=coordinator) == [(2499,)]
    # the key is pruned to one shard: the plan reaches only its foreign partition
    plan = "\n".join(
        r[0] for r in pg.query("EXPLAIN SELECT * FROM events WHERE id = 2100", dbname=coordinator)
    )
    assert "events_c" in plan and "events_a" not in plan and "events_b" not in plan

    check = harness.run_site_playbook("shard", pg, dbarch_login_db=coordinator, **shard_vars(grown, reports))
    check.assert_ok()
    assert (
        check.task("Create or extend the sharded table (shards, servers, user mappings, foreign partitions)")[
            "result"
        ]["changed"]
        is False
    )
    pg.dropdb(coordinator)


def test_hash_shards_spread_rows_by_the_key(pg, shard_servers):
    a, b = shard_servers
    coordinator = pg.createdb("hash_coordinator")
    for cluster in (a, b):
        cluster.createdb("hash_shard")
    shards = [
        dict(
            name=n,
            host=c.host,
            port=c.port,
            dbname="hash_shard",
            user=c.user,
            password=c.password,
            remainder=r,
        )
        for n, c, r in (("h0", a, 0), ("h1", b, 1))
    ]
    args = dict(table="tally", columns=COLUMNS[:1], shard_key="id", strategy="hash", modulus=2, shards=shards)
    run = harness.run_playbook(
        harness.play(
            harness.task("shard_table", "hash", **args),
            harness.task("shard_table", "again", **args),
            pg=pg,
            db=coordinator,
        )
    )
    run.assert_ok()
    assert run.task("hash")["result"]["changed"] and run.task("again")["result"]["changed"] is False
    # an existing shard's bounds are never changed: a map that moves them is refused, nothing altered
    moved = {**args, "shards": [dict(shards[0], remainder=1), dict(shards[1], remainder=0)]}
    refused = harness.run_playbook(
        harness.play(harness.task("shard_table", "moved", **moved), pg=pg, db=coordinator)
    )
    assert "never changed" in refused.task("moved")["result"]["msg"]
    pg.query("INSERT INTO tally SELECT g FROM generate_series(1, 200) g", dbname=coordinator)
    on_a = a.query("SELECT count(*) FROM tally", dbname="hash_shard")[0][0]
    on_b = b.query("SELECT count(*) FROM tally", dbname="hash_shard")[0][0]
    assert on_a + on_b == 200 and on_a > 0 and on_b > 0
    # each shard holds exactly the keys whose hash falls in its remainder (checked on the coordinator)
    for cluster, remainder in ((a, 0), (b, 1)):
        ids = [r[0] for r in cluster.query("SELECT id FROM tally", dbname="hash_shard")]
        held = pg.query(
            "SELECT bool_and(satisfies_hash_partition('tally'::regclass, 2, %s, x)) "
            "FROM unnest(%s::bigint[]) x",
            (remainder, ids),
            dbname=coordinator,
        )
        assert held == [(True,)]
    pg.dropdb(coordinator)
