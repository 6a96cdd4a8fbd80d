# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One model of a database's schema and statistics.

``snapshot(session)`` reads it from pg_catalog with a FIXED number of queries whatever
the size of the schema (see ``SNAPSHOT_QUERIES``): one per kind of object, never one
per table. Sizes come from ``pg_class.relpages`` (as of the last VACUUM/ANALYZE), so
the snapshot takes no lock on any user relation: it is safe on a busy primary, and a
schema of thousands of tables does not fill the lock table.

The same model can be built from DDL files (schema review of a change that exists in
no database yet): the classes below take plain values, and nothing in them depends on
where the values came from.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.versions import Features

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

RELKINDS = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
}

CONSTRAINT_TYPES = {"p": "primary key", "u": "unique", "f": "foreign key", "c": "check", "x": "exclusion"}
FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


class Column:
    __slots__ = (
        "name",
        "position",
        "type",
        "type_oid",
        "not_null",
        "default",
        "identity",
        "generated",
        "comment",
        "collation",
        "null_frac",
        "n_distinct",
        "avg_width",
    )

    def __init__(
        self,
        name,
        position,
        type,
        not_null=False,
        default=None,
        identity="",
        generated="",
        comment=None,
        type_oid=None,
        collation=None,
        null_frac=None,
        n_distinct=None,
        avg_width=None,
    ):
        self.name = name
        self.position = position
        self.type = type
        self.type_oid = type_oid
        self.not_null = bool(not_null)
        self.default = default
        self.identity = identity or ""  # '', 'a' (ALWAYS), 'd' (BY DEFAULT)
        self.generated = generated or ""  # '', 's' (stored), 'v' (virtual, 18+)
        self.comment = comment
        self.collation = collation
        self.null_frac = null_frac
        self.n_distinct = n_distinct
        self.avg_width = avg_width

    @property
    def is_serial(self):
        d = self.default or ""
        return d.startswith("nextval(") and not self.identity

    def to_dict(self):
        return dict((k, getattr(self, k)) for k in self.__slots__)


class Constraint:
    __slots__ = (
        "name",
        "type",
        "columns",
        "definition",
        "validated",
        "deferrable",
        "ref_schema",
        "ref_table",
        "ref_columns",
        "on_delete",
        "on_update",
        "index",
        "inherited",
    )

    def __init__(
        self,
        name,
        type,
        columns,
        definition="",
        validated=True,
        deferrable=False,
        ref_schema=None,
        ref_table=None,
        ref_columns=None,
        on_delete=None,
        on_update=None,
        index=None,
        inherited=False,
    ):
        self.name = name
        self.type = type  # p u f c x
        self.columns = list(columns or [])
        self.definition = definition
        self.validated = bool(validated)
        self.deferrable = bool(deferrable)
        self.ref_schema = ref_schema
        self.ref_table = ref_table
        self.ref_columns = list(ref_columns or [])
        self.on_delete = on_delete
        self.on_update = on_update
        self.index = index  # name of the index that backs it (p, u, x)
        self.inherited = bool(inherited)  # a partition's copy of its parent's constraint

    @property
    def kind(self):
        return CONSTRAINT_TYPES.get(self.type, self.type)

    def to_dict(self):
        d = dict((k, getattr(self, k)) for k in self.__slots__)
        d["kind"] = self.kind
        return d


class Index:
    __slots__ = (
        "name",
        "columns",
        "include",
        "unique",
        "primary",
        "valid",
        "ready",
        "method",
        "predicate",
        "definition",
        "opclasses",
        "nulls_not_distinct",
        "constraint",
        "bytes",
        "idx_scan",
        "last_idx_scan",
        "idx_tup_read",
        "parent_index",
    )

    def __init__(
        self,
        name,
        columns,
        unique=False,
        primary=False,
        valid=True,
        ready=True,
        method="btree",
        predicate=None,
        definition="",
        include=None,
        opclasses=None,
        nulls_not_distinct=False,
        constraint=None,
        bytes=None,
        idx_scan=None,
        last_idx_scan=None,
        idx_tup_read=None,
        parent_index=None,
    ):
        self.name = name
        self.columns = list(columns or [])  # key columns or expressions, in order
        self.include = list(include or [])
        self.unique = bool(unique)
        self.primary = bool(primary)
        self.valid = bool(valid)
        self.ready = bool(ready)
        self.method = method
        self.predicate = predicate
        self.definition = definition
        self.opclasses = list(opclasses or [])
        self.nulls_not_distinct = bool(nulls_not_distinct)
        self.constraint = constraint
        self.bytes = bytes
        self.idx_scan = idx_scan
        self.last_idx_scan = last_idx_scan
        self.idx_tup_read = idx_tup_read
        # On a partition: the parent's (partitioned) index this one is attached to. It goes
        # with that index: it cannot be dropped on its own.
        self.parent_index = parent_index

    def to_dict(self):
        return dict((k, getattr(self, k)) for k in self.__slots__)


class Table:
    __slots__ = (
        "schema",
        "name",
        "kind",
        "oid",
        "comment",
        "owner",
        "persistence",
        "row_estimate",
        "analyzed",
        "table_bytes",
        "toast_bytes",
        "index_bytes",
        "partition_of",
        "partition_bound",
        "partition_key",
        "view_definition",
        "stats",
        "columns",
        "constraints",
        "indexes",
    )

    def __init__(
        self,
        schema,
        name,
        kind="r",
        oid=None,
        comment=None,
        owner=None,
        persistence="p",
        row_estimate=None,
        analyzed=True,
        table_bytes=None,
        toast_bytes=None,
        index_bytes=None,
        partition_of=None,
        partition_bound=None,
        partition_key=None,
        view_definition=None,
        stats=None,
    ):
        self.schema = schema
        self.name = name
        self.kind = kind
        self.oid = oid
        self.comment = comment
        self.owner = owner
        self.persistence = persistence
        self.row_estimate = row_estimate
        self.analyzed = analyzed
        self.table_bytes = table_bytes
        self.toast_bytes = toast_bytes
        self.index_bytes = index_bytes
        self.partition_of = partition_of
        self.partition_bound = partition_bound
        self.partition_key = partition_key
        self.view_definition = view_definition
        self.stats = dict(stats or {})
        self.columns = []
        self.constraints = []
        self.indexes = []

    @property
    def qualified(self):
        return "%s.%s" % (self.schema, self.name)

    @property
    def kind_name(self):
        return RELKINDS.get(self.kind, self.kind)

    @property
    def is_table(self):
        return self.kind in ("r", "p")

    @property
    def total_bytes(self):
        parts = [self.table_bytes, self.toast_bytes, self.index_bytes]
        if all(p is None for p in parts):
            return None
        return sum(p or 0 for p in parts)

    @property
    def primary_key(self):
        for c in self.constraints:
            if c.type == "p":
                return c
        return None

    @property
    def foreign_keys(self):
        return [c for c in self.constraints if c.type == "f"]

    def column(self, name):
        for c in self.columns:
            if c.name == name:
                return c
        return None

    def to_dict(self):
        d = dict(
            (k, getattr(self, k)) for k in self.__slots__ if k not in ("columns", "constraints", "indexes")
        )
        d["qualified"] = self.qualified
        d["kind_name"] = self.kind_name
        d["total_bytes"] = self.total_bytes
        d["columns"] = [c.to_dict() for c in self.columns]
        d["constraints"] = [c.to_dict() for c in self.constraints]
        d["indexes"] = [i.to_dict() for i in self.indexes]
        return d


class Catalog:
    """The model: tables (and views) by (schema, name), plus database-level facts."""

    def __init__(self, database=None, server_version_num=None, source="database"):
        self.database = database
        self.server_version_num = server_version_num
        self.source = source  # 'database' or 'ddl'
        self.tables = {}
        self.schemas = []
        self.extensions = []
        self.enums = {}
        self.meta = {}
        self.query_count = 0

    def add(self, table):
        self.tables[(table.schema, table.name)] = table
        return table

    def get(self, schema, name):
        return self.tables.get((schema, name))

    def relations(self, kinds=None):
        items = sorted(self.tables.values(), key=lambda t: (t.schema, t.name))
        if kinds:
            items = [t for t in items if t.kind in kinds]
        return items

    def partitions_of(self, table, recursive=False):
        """Partitions of ``table`` (direct ones; with ``recursive`` also sub-partitions), by name."""
        key = table.qualified
        direct = [t for t in self.relations() if t.partition_of == key]
        if not recursive:
            return direct
        out = []
        for p in direct:
            out.append(p)
            if p.kind == "p":
                out.extend(self.partitions_of(p, recursive=True))
        return out

    def size_of(self, table):
        """(total bytes or None when unknown, partitions counted) of a table.

        A partitioned table's size is the sum of its partitions' (recursively); it is
        unknown when any partition's is. Never negative.
        """
        if table.kind != "p":
            total = table.total_bytes
            if total is not None and table.table_bytes is None and table.is_table:
                total = None  # the heap's size is unknown (never analyzed)
            return total, 0
        leaves = [p for p in self.partitions_of(table, recursive=True) if p.kind != "p"]
        total = 0
        for p in leaves:
            size = self.size_of(p)[0]
            if size is None:
                return None, len(leaves)
            total += size
        for part in [table] + [p for p in self.partitions_of(table, recursive=True) if p.kind == "p"]:
            total += (part.index_bytes or 0) + (part.toast_bytes or 0)
        return total, len(leaves)

    def referenced_by(self, table):
        """Foreign keys elsewhere that point at ``table``: [(child table, constraint)]."""
        out = []
        for t in self.relations(("r", "p")):
            for fk in t.foreign_keys:
                if fk.ref_schema == table.schema and fk.ref_table == table.name:
                    out.append((t, fk))
        return out

    def summary(self):
        rel = self.relations()
        tables = [t for t in rel if t.is_table]
        return dict(
            database=self.database,
            source=self.source,
            server_version_num=self.server_version_num,
            schemas=len(self.schemas),
            tables=len(tables),
            partitioned_tables=len([t for t in rel if t.kind == "p"]),
            partitions=len([t for t in tables if t.partition_of]),
            views=len([t for t in rel if t.kind == "v"]),
            materialized_views=len([t for t in rel if t.kind == "m"]),
            foreign_tables=len([t for t in rel if t.kind == "f"]),
            columns=sum(len(t.columns) for t in rel),
            indexes=sum(len(t.indexes) for t in rel),
            invalid_indexes=sum(1 for t in rel for i in t.indexes if not i.valid),
            foreign_keys=sum(len(t.foreign_keys) for t in tables),
            tables_without_primary_key=len(
                [t for t in tables if t.primary_key is None and not t.partition_of]
            ),
            estimated_rows=int(sum(t.row_estimate or 0 for t in tables)),
            table_bytes=int(sum(t.table_bytes or 0 for t in rel)),
            index_bytes=int(sum(t.index_bytes or 0 for t in rel)),
            extensions=[e["name"] for e in self.extensions],
            query_count=self.query_count,
        )

    def to_dict(self):
        return dict(
            database=self.database,
            source=self.source,
            server_version_num=self.server_version_num,
            schemas=list(self.schemas),
            extensions=list(self.extensions),
            enums=dict(self.enums),
            meta=dict(self.meta),
            tables=[t.to_dict() for t in self.relations()],
        )


# -- reading a live database ---------------------------------------------------------------
# The filter every query shares: user schemas (or the chosen ones), no temp schemas, and
# by default no objects that belong to an extension (pg_stat_statements' view, ...).
_REL_FILTER = """
    c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND n.nspname <> ALL (%(system)s)
    AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'
    AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY (%(schemas)s::text[]))
    AND (%(with_ext)s OR NOT EXISTS (
        SELECT 1 FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'))
"""

_Q_DATABASE = """
SELECT current_database() AS database,
       current_setting('server_version_num')::int AS server_version_num,
       current_setting('block_size')::int AS block_size,
       current_user AS current_user,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS is_superuser,
       pg_database_size(current_database()) AS database_bytes,
       ARRAY(SELECT n.nspname::text FROM pg_namespace n
             WHERE n.nspname <> ALL (%(system)s) AND n.nspname NOT LIKE 'pg\\_%%'
               AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY (%(schemas)s::text[]))
             ORDER BY 1) AS schemas
"""

_Q_RELATIONS = """
SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind,
       c.relpersistence AS persistence, pg_get_userbyid(c.relowner) AS owner,
       dsc.description AS comment,
       c.reltuples::float8 AS reltuples, c.relpages::bigint AS relpages,
       GREATEST(COALESCE(t.relpages, 0), 0)::bigint AS toast_pages,
       COALESCE((SELECT sum(GREATEST(ic.relpages, 0))
                 FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid
                 WHERE x.indrelid = c.oid), 0)::bigint AS index_pages,
       c.relispartition AS is_partition,
       (SELECT pn.nspname || '.' || pc.relname FROM pg_inherits i
          JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
         WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1) AS partition_of,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END AS partition_bound,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) END AS view_definition,
       s.seq_scan, s.seq_tup_read, s.idx_scan, s.idx_tup_fetch, s.n_tup_ins, s.n_tup_upd, s.n_tup_del,
       s.n_tup_hot_upd, s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       s.vacuum_count, s.autovacuum_count {extra_table_stats}
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
LEFT JOIN pg_description dsc
       ON dsc.objoid = c.oid AND dsc.classoid = 'pg_class'::regclass AND dsc.objsubid = 0
WHERE {filter}
ORDER BY n.nspname, c.relname
"""

_Q_COLUMNS = """
SELECT a.attrelid AS oid, a.attname AS name, a.attnum AS position,
       format_type(a.atttypid, a.atttypmod) AS type, a.atttypid AS type_oid,
       a.attnotnull AS not_null, pg_get_expr(ad.adbin, ad.adrelid) AS default,
       a.attidentity AS identity, a.attgenerated AS generated,
       dsc.description AS comment,
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
            THEN (SELECT collname FROM pg_collation WHERE oid = a.attcollation) END AS collation
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_description dsc
       ON dsc.objoid = a.attrelid AND dsc.classoid = 'pg_class'::regclass AND dsc.objsubid = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND {filter}
"""
# (No ORDER BY: on 50,000 columns the server's sort spills to disk; snapshot() orders them.)

_Q_CONSTRAINTS = """
SELECT con.conrelid AS oid, con.conname AS name, con.contype AS type,
       pg_get_constraintdef(con.oid, true) AS definition,
       con.convalidated AS validated, con.condeferrable AS deferrable,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.ord) AS columns,
       rn.nspname AS ref_schema, rc.relname AS ref_table,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
             ORDER BY k.ord) AS ref_columns,
       con.confdeltype AS on_delete, con.confupdtype AS on_update,
       ic.relname AS index,
       (con.conparentid <> 0 OR con.coninhcount > 0) AS inherited
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
LEFT JOIN pg_class ic ON ic.oid = con.conindid AND con.contype IN ('p', 'u', 'x')
WHERE con.contype IN ('p', 'u', 'f', 'c', 'x') AND {filter}
  AND NOT EXISTS (SELECT 1 FROM pg_constraint parent
                  WHERE parent.oid = con.conparentid AND parent.conrelid = con.conrelid)
ORDER BY con.conrelid, con.conname
"""

_Q_INDEXES = """
SELECT x.indrelid AS oid, ic.relname AS name, x.indisunique AS unique, x.indisprimary AS primary,
       x.indisvalid AS valid, x.indisready AS ready, am.amname AS method,
       pg_get_expr(x.indpred, x.indrelid) AS predicate,
       pg_get_indexdef(x.indexrelid) AS definition,
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true)
             FROM generate_series(1, x.indnkeyatts) k ORDER BY k) AS columns,
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true)
             FROM generate_series(x.indnkeyatts + 1, x.indnatts) k ORDER BY k) AS include,
       ARRAY(SELECT (SELECT oc.opcname::text FROM pg_opclass oc WHERE oc.oid = k.opc)
             FROM unnest(x.indclass) WITH ORDINALITY k(opc, ord) ORDER BY k.ord) AS opclasses,
       {nulls_not_distinct} AS nulls_not_distinct,
       (SELECT con.conname FROM pg_constraint con
         WHERE con.conindid = x.indexrelid AND con.conrelid = x.indrelid
           AND con.contype IN ('p', 'u', 'x') LIMIT 1) AS constraint,
       ic.relpages::bigint AS relpages,
       (SELECT pic.relname FROM pg_inherits ih JOIN pg_class pic ON pic.oid = ih.inhparent
         WHERE ih.inhrelid = x.indexrelid LIMIT 1) AS parent_index,
       si.idx_scan, si.idx_tup_read {extra_index_stats}
FROM pg_index x
JOIN pg_class ic ON ic.oid = x.indexrelid
JOIN pg_am am ON am.oid = ic.relam
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_indexes si ON si.indexrelid = x.indexrelid
WHERE {filter}
ORDER BY x.indrelid, ic.relname
"""

# pg_stats shows only columns the current user may read: no error, fewer rows.
_Q_COLUMN_STATS = """
SELECT s.schemaname AS schema, s.tablename AS table, s.attname AS name,
       s.null_frac::float8 AS null_frac, s.n_distinct::float8 AS n_distinct, s.avg_width
FROM pg_stats s
WHERE s.schemaname <> ALL (%(system)s) AND NOT s.inherited
  AND (%(schemas)s::text[] IS NULL OR s.schemaname = ANY (%(schemas)s::text[]))
"""

_Q_TYPES = """
SELECT n.nspname AS schema, t.typname AS name,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
         AS labels
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype = 'e' AND n.nspname <> ALL (%(system)s)
  AND (%(schemas)s::text[] IS NULL OR n.nspname = ANY (%(schemas)s::text[]))
ORDER BY 1, 2
"""

_Q_EXTENSIONS = """
SELECT e.extname AS name, e.extversion AS version, n.nspname AS schema
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
ORDER BY 1
"""

SNAPSHOT_QUERIES = 8  # database, relations, columns, constraints, indexes, column stats, types, extensions


def _queries(features):
    """The snapshot's SQL for one server version; version differences come from Features."""
    extra_table = ", s.last_seq_scan, s.last_idx_scan" if features.has_last_idx_scan else ""
    extra_index = ", si.last_idx_scan" if features.has_last_idx_scan else ""
    nnd = "x.indnullsnotdistinct" if features.has_nulls_not_distinct else "false"
    filt = _REL_FILTER
    return dict(
        database=_Q_DATABASE,
        relations=_Q_RELATIONS.format(filter=filt, extra_table_stats=extra_table),
        columns=_Q_COLUMNS.format(filter=filt),
        constraints=_Q_CONSTRAINTS.format(filter=filt),
        indexes=_Q_INDEXES.format(filter=filt, extra_index_stats=extra_index, nulls_not_distinct=nnd),
        column_stats=_Q_COLUMN_STATS,
        types=_Q_TYPES,
        extensions=_Q_EXTENSIONS,
    )


_STAT_KEYS = (
    "seq_scan",
    "seq_tup_read",
    "idx_scan",
    "idx_tup_fetch",
    "n_tup_ins",
    "n_tup_upd",
    "n_tup_del",
    "n_tup_hot_upd",
    "n_live_tup",
    "n_dead_tup",
    "n_mod_since_analyze",
    "last_vacuum",
    "last_autovacuum",
    "last_analyze",
    "last_autoanalyze",
    "vacuum_count",
    "autovacuum_count",
    "last_seq_scan",
    "last_idx_scan",
)


def _iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def _pages_bytes(pages, block, kind=None, analyzed=True):
    """Bytes from a relpages count, or None when unknown.

    A partitioned table has no storage of its own (relpages -1 from PostgreSQL 14): its
    size is that of its partitions (``Catalog.size_of``). A table never vacuumed nor
    analyzed has relpages 0 (or -1): its size is unknown, not 0 and never negative.
    """
    if pages is None or kind == "p":
        return None
    pages = int(pages)
    if pages < 0 or (pages == 0 and not analyzed):
        return None
    return pages * int(block)


def snapshot(session, schemas=None, include_extension_objects=False, column_stats=True):
    """Read the Catalog of the connected database with SNAPSHOT_QUERIES queries.

    ``session`` is a pg.Session. ``schemas``: list of schema names (default: every user
    schema). The queries run in one REPEATABLE READ read-only transaction so the pieces
    agree with each other.
    """
    features = Features(session.server_version_num)
    q = _queries(features)
    params = dict(
        system=list(SYSTEM_SCHEMAS),
        schemas=list(schemas) if schemas else None,
        with_ext=bool(include_extension_objects),
    )
    start_count = session.query_count
    conn = session.conn
    was_autocommit = conn.autocommit
    conn.autocommit = False
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        db = session.fetchone(q["database"], params)
        rels = session.fetchall(q["relations"], params)
        cols = session.fetchall(q["columns"], params)
        cons = session.fetchall(q["constraints"], params)
        idxs = session.fetchall(q["indexes"], params)
        stats = session.fetchall(q["column_stats"], params) if column_stats else []
        types = session.fetchall(q["types"], params)
        exts = session.fetchall(q["extensions"], params)
    finally:
        # End the snapshot's transaction first (also after an error, so the caller sees
        # the PgError rather than psycopg2 refusing set_session inside a transaction).
        conn.rollback()
        conn.set_session(isolation_level="DEFAULT", readonly="DEFAULT")
        conn.autocommit = was_autocommit
    block = int(db["block_size"])
    cat = Catalog(database=db["database"], server_version_num=int(db["server_version_num"]))
    cat.schemas = list(db["schemas"] or [])
    cat.extensions = exts
    cat.enums = dict(("%s.%s" % (t["schema"], t["name"]), list(t["labels"])) for t in types)
    cat.meta = dict(
        current_user=db["current_user"],
        is_superuser=bool(db["is_superuser"]),
        database_bytes=db["database_bytes"],
        size_source="pg_class.relpages (as of the last VACUUM/ANALYZE)",
        column_stats=bool(column_stats),
    )
    by_oid = {}
    for r in rels:
        reltuples = r["reltuples"]
        analyzed = reltuples is not None and reltuples >= 0
        rows = reltuples if analyzed else r.get("n_live_tup")
        t = Table(
            schema=r["schema"],
            name=r["name"],
            kind=r["kind"],
            oid=int(r["oid"]),
            comment=r["comment"],
            owner=r["owner"],
            persistence=r["persistence"],
            row_estimate=int(rows) if rows is not None else None,
            analyzed=analyzed,
            table_bytes=_pages_bytes(r["relpages"], block, r["kind"], analyzed),
            toast_bytes=_pages_bytes(r["toast_pages"], block),
            index_bytes=_pages_bytes(r["index_pages"], block),
            partition_of=r["partition_of"],
            partition_bound=r["partition_bound"],
            partition_key=r["partition_key"],
            view_definition=r["view_definition"],
            stats=dict((k, _iso(r.get(k))) for k in _STAT_KEYS if k in r),
        )
        by_oid[t.oid] = t
        cat.add(t)
    cols.sort(key=lambda c: c["position"])  # per table in attnum order (the query does not sort)
    for c in cols:
        t = by_oid.get(int(c["oid"]))
        if t is not None:
            t.columns.append(
                Column(
                    name=c["name"],
                    position=int(c["position"]),
                    type=c["type"],
                    type_oid=int(c["type_oid"]),
                    not_null=c["not_null"],
                    default=c["default"],
                    identity=c["identity"],
                    generated=c["generated"],
                    comment=c["comment"],
                    collation=c["collation"],
                )
            )
    for c in cons:
        t = by_oid.get(int(c["oid"]))
        if t is not None:
            t.constraints.append(
                Constraint(
                    name=c["name"],
                    type=c["type"],
                    columns=c["columns"],
                    definition=c["definition"],
                    validated=c["validated"],
                    deferrable=c["deferrable"],
                    ref_schema=c["ref_schema"],
                    ref_table=c["ref_table"],
                    ref_columns=c["ref_columns"],
                    on_delete=FK_ACTIONS.get(c["on_delete"]) if c["type"] == "f" else None,
                    on_update=FK_ACTIONS.get(c["on_update"]) if c["type"] == "f" else None,
                    index=c["index"],
                    inherited=c["inherited"],
                )
            )
    for i in idxs:
        t = by_oid.get(int(i["oid"]))
        if t is not None:
            t.indexes.append(
                Index(
                    name=i["name"],
                    columns=i["columns"],
                    include=i["include"],
                    unique=i["unique"],
                    primary=i["primary"],
                    valid=i["valid"],
                    ready=i["ready"],
                    method=i["method"],
                    predicate=i["predicate"],
                    definition=i["definition"],
                    opclasses=i["opclasses"],
                    nulls_not_distinct=i["nulls_not_distinct"],
                    constraint=i["constraint"],
                    bytes=_pages_bytes(i["relpages"], block),
                    idx_scan=i["idx_scan"],
                    last_idx_scan=_iso(i.get("last_idx_scan")),
                    idx_tup_read=i["idx_tup_read"],
                    parent_index=i["parent_index"],
                )
            )
    for s in stats:
        t = cat.get(s["schema"], s["table"])
        col = t.column(s["name"]) if t is not None else None
        if col is not None:
            col.null_frac = s["null_frac"]
            col.n_distinct = s["n_distinct"]
            col.avg_width = s["avg_width"]
    cat.query_count = session.query_count - start_count
    return cat
