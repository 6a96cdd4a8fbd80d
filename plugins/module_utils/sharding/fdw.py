# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``fdw`` sharding backend: PostgreSQL's declarative partitioning on the coordinator, each
partition a postgres_fdw foreign table on one shard database.

- on each shard: the table itself (same columns; primary key per shard);
- on the coordinator: the postgres_fdw extension, one foreign server per shard, the user mapping
  (the password never reaches ``queries`` nor a message), the partitioned table, and one foreign
  partition per shard (``<table>_<shard>``) for its range or hash remainder.

Everything is created only when missing: a run with one more shard in the map adds that shard's
table, server, mapping and partition and touches nothing else. Existing ranges are never changed
(no rebalancing). Plain Python over core/pg.py sessions, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.sharding import shardmap
from ansible_collections.dbarch.postgresql.plugins.module_utils.sharding.shardmap import ShardMapError

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - pg.connect reports the missing driver
    sql = None

MASK = "********"
SERVER_KEYS = ("host", "port", "dbname")


class ShardError(ShardMapError):
    """A shard or the coordinator is not in the state the map needs; the message says which."""


def server_name(shard):
    return str(shard.get("server") or "shard_%s" % shard["name"])


def partition_name(table, shard):
    return "%s_%s" % (table, shard["name"])


def shard_params(shard, connect_timeout=10):
    """Connection options (core/pg.py names) of a shard entry."""
    return dict(
        login_host=shard.get("host"),
        login_port=shard.get("port"),
        login_user=shard.get("user"),
        login_password=shard.get("password"),
        login_db=shard.get("dbname"),
        connect_timeout=connect_timeout,
    )


def _check_types(coord, cols):
    for col in cols:
        try:
            coord.scalar("SELECT %s::regtype::text", (col["type"],), record=False)
        except pg.PgError:
            raise ShardError(
                "column %s: type %r is unknown to the coordinator" % (col["name"], col["type"])
            ) from None


def _columns_sql(cols, primary_key=None):
    parts = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c["name"]), sql.SQL(c["type"]), sql.SQL(" NOT NULL" if c["not_null"] else "")
        )
        for c in cols
    ]
    if primary_key:
        parts.append(
            sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(sql.Identifier(k) for k in primary_key))
        )
    return sql.SQL(", ").join(parts)


def _existing_columns(session, schema, table):
    rows = session.fetchall(
        "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) "
        "AND a.attnum > 0 AND NOT a.attisdropped",
        (pg.qualified_text(schema, table),),
    )
    return [r["attname"] for r in rows]


def ensure_schema(session, schema, check_mode):
    if schema == "public" or session.scalar("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)):
        return []
    if not check_mode:
        session.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return ["create schema %s" % schema]


def ensure_shard_table(session, schema, table, cols, primary_key, check_mode):
    """The table on one shard; [actions]."""
    actions = ensure_schema(session, schema, check_mode)
    present = _existing_columns(session, schema, table)
    if present:
        missing = [c["name"] for c in cols if c["name"] not in present]
        if missing:
            raise ShardError(
                "the shard's %s.%s lacks the columns %s: add them on that shard first (ALTER TABLE ... ADD "
                "COLUMN), the map is never applied over existing data" % (schema, table, missing)
            )
        return actions
    if not check_mode:
        session.execute(
            sql.SQL("CREATE TABLE {} ({})").format(
                sql.Identifier(schema, table), _columns_sql(cols, primary_key)
            )
        )
    return actions + ["create table %s.%s" % (schema, table)]


def _options_sql(options, verb=""):
    return sql.SQL(", ").join(
        sql.SQL("{}{} {}").format(sql.SQL(verb), sql.Identifier(k), sql.Literal(str(v)))
        for k, v in sorted(options.items())
    )


def _options_dict(array):
    return dict(item.split("=", 1) for item in array or [])


def ensure_server(coord, shard, fdw_options, check_mode):
    """The foreign server of one shard (created, or its options set to the map's); [actions]."""
    name = server_name(shard)
    wanted = {k: str(shard[k]) for k in SERVER_KEYS if shard.get(k) not in (None, "")}
    wanted.update({k: str(v) for k, v in (fdw_options or {}).items()})
    row = coord.fetchone(
        "SELECT s.srvoptions, w.fdwname FROM pg_foreign_server s "
        "JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw "
        "WHERE s.srvname = %s",
        (name,),
    )
    if row is None:
        if not check_mode:
            coord.execute(
                sql.SQL("CREATE SERVER {} FOREIGN DATA WRAPPER postgres_fdw OPTIONS ({})").format(
                    sql.Identifier(name), _options_sql(wanted)
                )
            )
        return ["create server %s (%s)" % (name, ", ".join("%s=%s" % kv for kv in sorted(wanted.items())))]
    if row["fdwname"] != "postgres_fdw":
        raise ShardError(
            "server %s exists with the %s wrapper, not postgres_fdw: give the shard a server name"
            % (name, row["fdwname"])
        )
    have = _options_dict(row["srvoptions"])
    add = {k: v for k, v in wanted.items() if k not in have}
    change = {k: v for k, v in wanted.items() if k in have and have[k] != v}
    if not add and not change:
        return []
    if not check_mode:
        parts = [
            p
            for p in (
                _options_sql(add, "ADD ") if add else None,
                _options_sql(change, "SET ") if change else None,
            )
            if p
        ]
        coord.execute(
            sql.SQL("ALTER SERVER {} OPTIONS ({})").format(sql.Identifier(name), sql.SQL(", ").join(parts))
        )
    return ["set options of server %s: %s" % (name, ", ".join(sorted(list(add) + list(change))))]


def ensure_mapping(coord, shard, local_user, check_mode):
    """The user mapping ``local_user`` -> the shard's user/password; [actions]. The statement is
    recorded with the password masked."""
    name = server_name(shard)
    local = local_user or coord.scalar("SELECT current_user")
    wanted = {"user": str(shard.get("user") or "")}
    if shard.get("password"):
        wanted["password"] = str(shard["password"])
    rows = coord.fetchall(
        "SELECT umoptions FROM pg_user_mappings WHERE srvname = %s AND usename = %s",
        (name, "public" if local.lower() == "public" else local),
        record=True,
    )
    role = sql.SQL("PUBLIC") if local.lower() == "public" else sql.Identifier(local)
    if rows and _options_dict(rows[0]["umoptions"]) == wanted:
        return []
    verb = "create" if not rows else "replace"
    if not check_mode:
        if rows:
            coord.execute(sql.SQL("DROP USER MAPPING FOR {} SERVER {}").format(role, sql.Identifier(name)))
        statement = sql.SQL("CREATE USER MAPPING FOR {} SERVER {} OPTIONS ({})")
        coord.execute(statement.format(role, sql.Identifier(name), _options_sql(wanted)), record=False)
        masked = dict(wanted, password=MASK) if "password" in wanted else wanted
        coord.queries.append(
            coord._as_text(statement.format(role, sql.Identifier(name), _options_sql(masked)))
        )
    return ["%s user mapping for %s on server %s (user %s)" % (verb, local, name, wanted["user"])]


def parent_state(coord, schema, table):
    """(relkind, partition strategy, key columns) of the coordinator's table, or None."""
    return coord.fetchone(
        "SELECT c.relkind::text AS relkind, p.partstrat::text AS strategy, "
        "(SELECT array_agg(a.attname::text ORDER BY k.ord) "
        " FROM unnest(p.partattrs) WITH ORDINALITY AS k(attnum, ord) "
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) AS key "
        "FROM pg_class c LEFT JOIN pg_partitioned_table p ON p.partrelid = c.oid "
        "WHERE c.oid = to_regclass(%s)",
        (pg.qualified_text(schema, table),),
    )


def ensure_parent(coord, schema, table, cols, shard_key, strategy, check_mode):
    actions = ensure_schema(coord, schema, check_mode)
    state = parent_state(coord, schema, table)
    if state is not None:
        want = {"range": "r", "hash": "h"}[strategy]
        if state["relkind"] != "p" or state["strategy"] != want or list(state["key"] or []) != [shard_key]:
            raise ShardError(
                "%s.%s exists on the coordinator but is not partitioned by %s (%s): a sharded table is made "
                "from scratch; move the data in through it, or choose another name"
                % (schema, table, strategy, shard_key)
            )
        return actions
    if not check_mode:
        coord.execute(
            sql.SQL("CREATE TABLE {} ({}) PARTITION BY {} ({})").format(
                sql.Identifier(schema, table),
                _columns_sql(cols),
                sql.SQL(strategy.upper()),
                sql.Identifier(shard_key),
            )
        )
    return actions + [
        "create partitioned table %s.%s (partition by %s (%s))" % (schema, table, strategy, shard_key)
    ]


def _bound(value):
    return sql.SQL(value.upper()) if value.upper() in shardmap.UNBOUNDED else sql.Literal(value)


def partitions(coord, schema, table):
    """The coordinator's partitions of the table: name -> {server, bound, foreign}."""
    rows = coord.fetchall(
        "SELECT c.relname::text AS name, s.srvname::text AS server, "
        "pg_get_expr(c.relpartbound, c.oid) AS bound, "
        "c.relkind = 'f' AS foreign "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "LEFT JOIN pg_foreign_table ft ON ft.ftrelid = c.oid "
        "LEFT JOIN pg_foreign_server s ON s.oid = ft.ftserver "
        "WHERE i.inhparent = to_regclass(%s) ORDER BY 1",
        (pg.qualified_text(schema, table),),
    )
    return {r["name"]: r for r in rows}


_RANGE_RE = re.compile(r"^FOR VALUES FROM \((.*)\) TO \((.*)\)$", re.S)
_HASH_RE = re.compile(r"^FOR VALUES WITH \(modulus (\d+), remainder (\d+)\)$", re.I)
_VALUE_RE = re.compile(r"^'((?:[^']|'')*)'(::[\w .\[\]()\"]+)?$")


def _bound_value(text):
    """One bound of pg_get_expr(relpartbound) as text: MINVALUE/MAXVALUE, a quoted literal, or a number."""
    text = text.strip()
    found = _VALUE_RE.match(text)
    return found.group(1).replace("''", "'") if found else text


def _bound_matches(coord, schema, table, bound, shard, strategy, modulus):
    """Whether an existing partition's bound (PostgreSQL's text) is the map's, compared as values of
    the key's type (so '0' and 0, or two spellings of one timestamp, agree)."""
    if strategy == "hash":
        found = _HASH_RE.match(bound or "")
        return bool(found) and (int(found.group(1)), int(found.group(2))) == (
            int(modulus),
            int(shard["remainder"]),
        )
    found = _RANGE_RE.match(bound or "")
    if not found:
        return False
    key_type = coord.scalar(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_partitioned_table p "
        "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
        "WHERE p.partrelid = to_regclass(%s)",
        (pg.qualified_text(schema, table),),
    )
    for text, want in ((found.group(1), shard["from"]), (found.group(2), shard["to"])):
        have = _bound_value(text)
        if have.upper() in shardmap.UNBOUNDED or want.upper() in shardmap.UNBOUNDED:
            if have.upper() != want.upper():
                return False
            continue
        # key_type comes from the catalog (format_type), not from the user
        same = coord.scalar(
            sql.SQL("SELECT CAST(%s AS {0}) = CAST(%s AS {0})").format(sql.SQL(key_type)), (have, want)
        )
        if not same:
            return False
    return True


def ensure_partition(coord, schema, table, shard, strategy, modulus, existing, check_mode):
    name = partition_name(table, shard)
    server = server_name(shard)
    if name in existing:
        part = existing[name]
        if not part["foreign"] or part["server"] != server:
            raise ShardError(
                "partition %s exists but is not a foreign table on server %s: rename it, or detach it first"
                % (name, server)
            )
        if not _bound_matches(coord, schema, table, part["bound"], shard, strategy, modulus):
            wanted = (
                "from %s to %s" % (shard["from"], shard["to"])
                if strategy == "range"
                else "modulus %s remainder %s" % (modulus, shard["remainder"])
            )
            raise ShardError(
                "shard %s: its partition %s holds %s, the map now says %s. An existing shard's range "
                "is never changed (no rebalancing): put the old bounds back, and give new keys a new shard"
                % (shard["name"], name, part["bound"], wanted)
            )
        return []
    if coord.scalar("SELECT to_regclass(%s) IS NOT NULL", (pg.qualified_text(schema, name),)):
        raise ShardError("%s.%s exists and is not a partition of %s: rename it first" % (schema, name, table))
    if strategy == "range":
        bound = sql.SQL("FROM ({}) TO ({})").format(_bound(shard["from"]), _bound(shard["to"]))
        text = "from %s to %s" % (shard["from"], shard["to"])
    else:
        bound = sql.SQL("WITH (MODULUS {}, REMAINDER {})").format(
            sql.Literal(int(modulus)), sql.Literal(shard["remainder"])
        )
        text = "modulus %s remainder %s" % (modulus, shard["remainder"])
    if not check_mode:
        coord.execute(
            sql.SQL(
                "CREATE FOREIGN TABLE {} PARTITION OF {} FOR VALUES {} SERVER {} "
                "OPTIONS (schema_name {}, table_name {})"
            ).format(
                sql.Identifier(schema, name),
                sql.Identifier(schema, table),
                bound,
                sql.Identifier(server),
                sql.Literal(schema),
                sql.Literal(table),
            )
        )
    return ["create foreign partition %s.%s (%s) on server %s" % (schema, name, text, server)]


def apply(
    coord,
    connect_shard,
    table,
    columns,
    shard_key,
    strategy,
    shards,
    schema="public",
    modulus=None,
    primary_key=None,
    fdw_options=None,
    local_user=None,
    check_mode=False,
):
    """Build (or extend) the sharded table. ``connect_shard(shard)`` opens a pg.Session on a shard.
    Returns {changed, actions (per shard and coordinator), partitions}."""
    cols, shards = shardmap.validate(
        table, columns, shard_key, strategy, shards, modulus=modulus, primary_key=primary_key
    )
    _check_types(coord, cols)
    per_shard = {}
    for shard in shards:
        session = connect_shard(shard)
        try:
            per_shard[shard["name"]] = ensure_shard_table(
                session, schema, table, cols, primary_key, check_mode
            )
        finally:
            session.close()
    coordinator = []
    if not coord.scalar("SELECT 1 FROM pg_extension WHERE extname = 'postgres_fdw'"):
        if not check_mode:
            coord.execute("CREATE EXTENSION postgres_fdw")
        coordinator.append("create extension postgres_fdw")
    for shard in shards:
        per_shard[shard["name"]] += ensure_server(coord, shard, fdw_options, check_mode)
        per_shard[shard["name"]] += ensure_mapping(coord, shard, local_user, check_mode)
    coordinator += ensure_parent(coord, schema, table, cols, shard_key, strategy, check_mode)
    existing = partitions(coord, schema, table)
    for shard in shards:
        per_shard[shard["name"]] += ensure_partition(
            coord, schema, table, shard, strategy, modulus, existing, check_mode
        )
    changed = bool(coordinator) or any(per_shard.values())
    return dict(
        changed=changed,
        table="%s.%s" % (schema, table),
        backend="fdw",
        coordinator_actions=coordinator,
        shard_actions=per_shard,
        partitions=sorted(partitions(coord, schema, table).values(), key=lambda p: p["name"]),
    )


def info(coord, connect_shard, table, shards, schema="public", exact=True):
    """Rows and bytes per shard, the skew. Shards of the map are read directly (rows: count(*) with
    ``exact``, else the planner's estimate; bytes: pg_total_relation_size); a partition with no
    map entry is counted through the coordinator (bytes unknown)."""
    state = parent_state(coord, schema, table)
    if state is None:
        raise ShardError("%s.%s does not exist on the coordinator" % (schema, table))
    if state["relkind"] != "p":
        raise ShardError(
            "%s.%s is not partitioned: not a sharded table (make one with shard_table)" % (schema, table)
        )
    parts = partitions(coord, schema, table)
    qualified = pg.qualified_text(schema, table)
    out, mapped = [], set()
    for shard in shards:
        session = connect_shard(shard)
        try:
            if exact:
                rows = session.scalar(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
                )
            else:
                rows = session.scalar(
                    "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                    (qualified,),
                )
            size = session.scalar("SELECT pg_total_relation_size(to_regclass(%s))", (qualified,))
        finally:
            session.close()
        name = partition_name(table, shard)
        mapped.add(name)
        part = parts.get(name) or {}
        out.append(
            dict(
                shard=shard["name"],
                partition=name,
                server=part.get("server"),
                bound=part.get("bound"),
                rows=int(rows or 0),
                bytes=size,
            )
        )
    for name, part in sorted(parts.items()):
        if name in mapped:
            continue
        rows = coord.scalar(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name)))
        out.append(
            dict(
                shard=None,
                partition=name,
                server=part["server"],
                bound=part["bound"],
                rows=int(rows),
                bytes=None,
            )
        )
    total_rows = sum(s["rows"] for s in out)
    total_bytes = sum(s["bytes"] or 0 for s in out)
    return dict(
        table=qualified,
        shards=out,
        total_rows=total_rows,
        total_bytes=total_bytes,
        skew=dict(
            rows=shardmap.skew([s["rows"] for s in out]), bytes=shardmap.skew([s["bytes"] for s in out])
        ),
    )


# -- findings --------------------------------------------------------------------------------------
SKEW_RULE = "SHARD-SKEW-001"
fnd.register_rule(
    SKEW_RULE,
    "Shards unevenly loaded",
    "medium",
    why="The busiest shard sets the pace: with most rows on one shard its server carries most of the "
    "reads, writes and storage, and adding servers does not spread the load.",
    analysis="shard_info",
)


def skew_findings(report, threshold):
    """One finding when rows or bytes per shard go over ``threshold`` times the mean."""
    found = []
    for what in ("rows", "bytes"):
        value = report["skew"][what]
        if value is None or value <= threshold:
            continue
        top = max(report["shards"], key=lambda s: s[what] or 0)
        found.append(
            fnd.Finding(
                SKEW_RULE,
                "medium",
                "%s %s" % (report["table"], what),
                "%s: the shard %s holds %s %s, %.2f times the mean per shard (threshold %s)"
                % (report["table"], top["shard"] or top["partition"], top[what], what, value, threshold),
                why=fnd.registered_rule(SKEW_RULE).why,
                fix="Split the hot range: add a shard for the newest range (shard_table), or choose a "
                "shard key "
                "with more spread (hash sharding). Moving existing rows between shards is not automatic "
                "(docs/sharding.md).",
                evidence={
                    "skew": value,
                    "threshold": threshold,
                    "per_shard": {s["partition"]: s[what] for s in report["shards"]},
                },
                title=fnd.registered_rule(SKEW_RULE).title,
            )
        )
    return found
