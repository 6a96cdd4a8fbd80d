# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shard map: one sharded table (columns, shard key, range or hash), and its shards (one
database each, with the range or the hash remainder it holds). Validation only: the backends
(fdw.py today; a Citus backend would read the same map) build from it.

Plain Python, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

STRATEGIES = ("range", "hash")
BACKENDS = ("fdw",)
NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
# A column type as written in DDL: words, digits, (precision, scale), [] and dots; checked again
# against the coordinator's catalog (::regtype) before any DDL.
TYPE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .]*(\(\s*\d+(\s*,\s*\d+)?\s*\))?(\s*\[\])*$")
UNBOUNDED = ("MINVALUE", "MAXVALUE")


class ShardMapError(DbarchError):
    """The shard map is wrong; the message says where and how to fix it."""


def validate(table, columns, shard_key, strategy, shards, modulus=None, primary_key=None):
    """Check the map; return (columns, shards) normalized (names, bounds as text)."""
    if strategy not in STRATEGIES:
        raise ShardMapError("strategy must be range or hash, not %r" % strategy)
    if not columns:
        raise ShardMapError("columns: give the table's columns ({name, type}), the same on every shard")
    cols = []
    for col in columns:
        name, ctype = str(col.get("name") or ""), str(col.get("type") or "").strip()
        if not name or not TYPE_RE.match(ctype):
            raise ShardMapError(
                "column %r: give a name and a plain type such as bigint, numeric(12,2), text[]" % col
            )
        cols.append(dict(name=name, type=ctype, not_null=bool(col.get("not_null"))))
    names = [c["name"] for c in cols]
    if shard_key not in names:
        raise ShardMapError("shard_key %r is not one of the columns %s" % (shard_key, names))
    for key in primary_key or []:
        if key not in names:
            raise ShardMapError("primary_key column %r is not one of the columns" % key)
    if primary_key and shard_key not in primary_key:
        raise ShardMapError(
            "primary_key must include the shard key %s (uniqueness holds per shard only)" % shard_key
        )
    if not shards:
        raise ShardMapError("shards: give at least one shard")
    if strategy == "hash" and (not modulus or modulus < 1):
        raise ShardMapError(
            "modulus: hash sharding needs the number of hash buckets (fixed for the table's life)"
        )
    out, seen = [], set()
    for shard in shards:
        name = str(shard.get("name") or "")
        if not NAME_RE.match(name):
            raise ShardMapError(
                "shard name %r: lower-case letters, digits and _ (it names the foreign server)" % name
            )
        if name in seen:
            raise ShardMapError("shard %s appears twice in the map" % name)
        seen.add(name)
        item = dict(shard)
        if strategy == "range":
            if shard.get("from") is None or shard.get("to") is None:
                raise ShardMapError(
                    "shard %s: a range shard needs from and to (MINVALUE/MAXVALUE allowed)" % name
                )
            item["from"], item["to"] = str(shard["from"]), str(shard["to"])
        else:
            rem = shard.get("remainder")
            if rem is None or not 0 <= int(rem) < modulus:
                raise ShardMapError(
                    "shard %s: a hash shard needs a remainder from 0 to %d" % (name, modulus - 1)
                )
            item["remainder"] = int(rem)
        out.append(item)
    if strategy == "hash":
        rems = [s["remainder"] for s in out]
        if len(set(rems)) != len(rems):
            raise ShardMapError("two shards hold the same hash remainder %s" % rems)
    return cols, out


def skew(values):
    """max / mean of the values (1.0 = perfectly even; None when there is nothing)."""
    values = [v for v in values if v is not None]
    if not values or not sum(values):
        return None
    mean = float(sum(values)) / len(values)
    return round(max(values) / mean, 3)


# The module options of the table and its shards (doc fragment dbarch.postgresql.shard_map).
SHARD_ARGSPEC = dict(
    table=dict(type="str", required=True),
    schema=dict(type="str", default="public"),
    backend=dict(type="str", choices=list(BACKENDS), default="fdw"),
    shards=dict(
        type="list",
        elements="dict",
        required=True,
        options={
            "name": dict(type="str", required=True),
            "host": dict(type="str", required=True),
            "port": dict(type="int", default=5432),
            "dbname": dict(type="str", required=True),
            "user": dict(type="str", required=True),
            "password": dict(type="str", no_log=True),
            "server": dict(type="str"),
            "from": dict(type="raw"),
            "to": dict(type="raw"),
            "remainder": dict(type="int"),
        },
    ),
)
