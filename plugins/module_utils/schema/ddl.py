# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalog model (``catalog.Catalog``, source ``ddl``) built from DDL text.

Schema review, the data dictionary and the ER diagrams read one model; this file
builds it from SQL files (a migration, a schema folder, a ``pg_dump --schema-only``)
parsed with pglast, the PostgreSQL parser, so that a schema that exists in no database
yet is reviewed exactly like a live one.

What PostgreSQL would add on its own is added here too, with the names it would choose:
serial columns become integer/bigint NOT NULL with ``nextval('<table>_<col>_seq'::regclass)``,
PRIMARY KEY and UNIQUE constraints get their backing index (``<table>_pkey``,
``<table>_<cols>_key``), unnamed constraints and indexes get ``<table>_<cols>_fkey``,
``_check``, ``_idx``, and partitions inherit their parent's columns, CHECK and
FOREIGN KEY constraints and indexes. Types are rendered as ``format_type()`` renders
them (``character varying(255)``, ``timestamp with time zone``, ``integer[]``).

Expressions (defaults, CHECK, index predicates) are deparsed text; PostgreSQL's own
text of an analysed expression adds casts and parentheses, so compare expressions from
the two sources with ``canonical_expr()``.

Plain Python: no Ansible imports. pglast is imported when first needed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import catalog as cat
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import is_reserved

MISSING_PGLAST_MESSAGE = (
    "Reading DDL files needs the Python package pglast (the PostgreSQL parser) for the "
    "interpreter that runs this code: pip install pglast (it is in the collection's "
    "requirements.txt). Or read a live database instead of DDL files."
)

NAMEDATALEN = 64

_pglast = None


def _lib():
    """pglast, imported on first use, with an error that names the package."""
    global _pglast  # noqa: PLW0603 - a lazily imported module
    if _pglast is None:
        try:  # pglast is imported when first needed, so the collection loads without it
            import pglast  # noqa: PLC0415
            import pglast.ast  # noqa: PLC0415
            import pglast.enums  # noqa: PLC0415
            import pglast.stream  # noqa: PLC0415
            import pglast.visitors  # noqa: PLC0415
        except ImportError as exc:
            raise ImportError("%s (%s)" % (MISSING_PGLAST_MESSAGE, exc)) from None
        _pglast = pglast
    return _pglast


class DdlError(DbarchError, ValueError):
    """A DDL file that does not parse, or a statement that cannot be applied."""


# -- types as format_type() renders them ---------------------------------------------------
_TYPE_NAMES = {
    "int2": "smallint",
    "smallint": "smallint",
    "int4": "integer",
    "int": "integer",
    "integer": "integer",
    "int8": "bigint",
    "bigint": "bigint",
    "float4": "real",
    "real": "real",
    "float8": "double precision",
    "bool": "boolean",
    "boolean": "boolean",
    "numeric": "numeric",
    "decimal": "numeric",
    "varchar": "character varying",
    "bpchar": "character",
    "char": '"char"',
    "text": "text",
    "bytea": "bytea",
    "date": "date",
    "time": "time without time zone",
    "timetz": "time with time zone",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "interval": "interval",
    "bit": "bit",
    "varbit": "bit varying",
    "serial": "integer",
    "serial4": "integer",
    "bigserial": "bigint",
    "serial8": "bigint",
    "smallserial": "smallint",
    "serial2": "smallint",
}
SERIAL_TYPES = ("serial", "serial4", "bigserial", "serial8", "smallserial", "serial2")
_TIME_TYPES = {
    "time": ("time", "without time zone"),
    "timetz": ("time", "with time zone"),
    "timestamp": ("timestamp", "without time zone"),
    "timestamptz": ("timestamp", "with time zone"),
}
_SAFE_IDENT = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote_ident(name):
    """An identifier as PostgreSQL prints it (quoted only when it must be)."""
    if _SAFE_IDENT.match(name) and not is_reserved(name):
        return name
    return '"%s"' % name.replace('"', '""')


def _strings(nodes):
    return [n.sval for n in nodes or ()]


def _int_value(node):
    val = getattr(node, "val", None)
    if val is not None and hasattr(val, "ival"):
        return int(val.ival)
    if val is not None and hasattr(val, "fval"):
        return val.fval
    if val is not None and hasattr(val, "sval"):
        return val.sval
    return None


# -- names PostgreSQL chooses (makeObjectName / ChooseRelationName) -----------------------
def make_object_name(name1, name2, label):
    """makeObjectName(): name1[_name2][_label], shortened to fit in 63 bytes."""
    overhead = (len(label) + 1) if label else 0
    if name2:
        overhead += 1
    avail = NAMEDATALEN - 1 - overhead
    n1 = name1.encode("utf-8")
    n2 = (name2 or "").encode("utf-8")
    l1, l2 = len(n1), len(n2)
    while l1 + l2 > avail:
        if l1 > l2:
            l1 -= 1
        else:
            l2 -= 1
    out = n1[:l1].decode("utf-8", "ignore")
    if name2:
        out += "_" + n2[:l2].decode("utf-8", "ignore")
    if label:
        out += "_" + label
    return out


def _choose(used, name1, name2, label):
    """ChooseRelationName()/ChooseConstraintName(): add a number to the label on collision."""
    n = 0
    while True:
        suffix = label if n == 0 else "%s%d" % (label, n)
        name = make_object_name(name1, name2, suffix)
        if name not in used:
            used.add(name)
            return name
        n += 1


def _join_names(names):
    """ChooseIndexNameAddition / ChooseForeignKeyConstraintNameAddition."""
    out = ""
    for name in names:
        if out:
            out += "_"
        out += name
        if len(out.encode("utf-8")) >= NAMEDATALEN:
            break
    return out


# -- expressions ---------------------------------------------------------------------------
def _deparse(node):
    return _lib().stream.RawStream()(node)


def _const_text(node):
    """(kind, text) of an A_Const: ('string', raw), ('number', '1'), ('bool', 'true'), ('null', ...)."""
    if getattr(node, "isnull", False):
        return "null", "NULL"
    val = node.val
    cls = type(val).__name__
    if cls == "String":
        return "string", val.sval
    if cls == "Integer":
        return "number", str(val.ival)
    if cls == "Float":
        return "number", str(val.fval)
    if cls == "Boolean":
        return "bool", "true" if val.boolval else "false"
    if cls == "BitString":
        return "string", val.bsval
    return "other", _deparse(node)


def _cast_type(type_text):
    """The type a constant is cast to in PostgreSQL's text: length modifiers are applied apart."""
    if type_text is None:
        return None
    base = re.sub(r"\(\d+(,\d+)?\)", "", type_text)
    if base.startswith("character") and not base.startswith("character varying"):
        base = base.replace("character", "bpchar", 1)
    return base


def _literal(text):
    return "'%s'" % text.replace("'", "''")


class _Ctx:
    """Parsing state: the catalog being built, the search_path, names already taken."""

    def __init__(self, catalog):
        self.catalog = catalog
        self.search_path = ["public"]
        self.relnames = {}  # schema -> set of relation names (tables, indexes, sequences)
        self.connames = {}  # schema -> set of constraint names
        self.enum_schema = {}  # enum name -> schema (for unqualified references)
        self.sequences = set()  # (schema, name) of CREATE SEQUENCE
        self.current_table = None  # table whose columns unqualified names in expressions refer to
        self.file = None

    @property
    def default_schema(self):
        return self.search_path[0] if self.search_path else "public"

    def used_rel(self, schema):
        return self.relnames.setdefault(schema, set())

    def used_con(self, schema):
        return self.connames.setdefault(schema, set())

    def qualify(self, rangevar):
        return (rangevar.schemaname or self.default_schema, rangevar.relname)

    def find_table(self, rangevar):
        if rangevar.schemaname:
            return self.catalog.get(rangevar.schemaname, rangevar.relname)
        for schema in self.search_path or ["public"]:
            t = self.catalog.get(schema, rangevar.relname)
            if t is not None:
                return t
        return None

    def visible(self, schema):
        """Whether a live session with the default search_path sees the schema unqualified."""
        return schema in ("public", "pg_catalog")

    def type_name(self, tn):
        """format_type() text of a pglast TypeName."""
        names = _strings(tn.names)
        schema = names[-2] if len(names) > 1 else None
        base = names[-1]
        mods = [_int_value(m) for m in tn.typmods or ()]
        if schema in (None, "pg_catalog") and base in _TYPE_NAMES:
            if base in _TIME_TYPES:
                word, zone = _TIME_TYPES[base]
                text = "%s(%s) %s" % (word, mods[0], zone) if mods else "%s %s" % (word, zone)
            elif base == "bpchar" and not mods and schema == "pg_catalog":
                text = "character(1)"
            elif base == "numeric" and len(mods) == 1:
                text = "numeric(%s,0)" % mods[0]
            elif mods and base not in ("interval",):
                text = "%s(%s)" % (_TYPE_NAMES[base], ",".join(str(m) for m in mods))
            else:
                text = _TYPE_NAMES[base]
        else:
            if schema is None:
                schema = self.enum_schema.get(base)
            if schema and not self.visible(schema):
                text = "%s.%s" % (quote_ident(schema), quote_ident(base))
            else:
                text = quote_ident(base)
            if mods:
                text += "(%s)" % ",".join(str(m) for m in mods)
        if tn.arrayBounds:
            text += "[]"
        return text

    def expr(self, node, col_type=None):
        """Deparse an expression close to pg_get_expr() for the common default forms."""
        cls = type(node).__name__
        if cls == "A_Const":
            kind, text = _const_text(node)
            if kind == "string":
                return "%s::%s" % (_literal(text), _cast_type(col_type)) if col_type else _literal(text)
            if kind == "number" and text.startswith("-"):
                return "'%s'::%s" % (text, col_type) if col_type and "." not in text else text
            return text
        if cls == "TypeCast":
            target = self.type_name(node.typeName)
            arg = node.arg
            if type(arg).__name__ == "A_Const":
                kind, text = _const_text(arg)
                if kind == "string":
                    if target == "regclass":
                        text = self.regclass_text(text)
                    return "%s::%s" % (_literal(text), target)
            inner = self.expr(arg)
            if type(arg).__name__ not in ("ColumnRef", "FuncCall", "A_Const"):
                inner = "(%s)" % inner
            return "%s::%s" % (inner, target)
        if cls == "FuncCall":
            names = _strings(node.funcname)
            if names and names[0] == "pg_catalog":
                names = names[1:]
            args = "*" if node.agg_star else ", ".join(self.expr(a) for a in node.args or ())
            return "%s(%s)" % (".".join(quote_ident(n) for n in names), args)
        if cls == "ColumnRef":
            return ".".join(quote_ident(f.sval) if hasattr(f, "sval") else "*" for f in node.fields)
        if cls == "A_Expr" and node.kind.name == "AEXPR_OP" and node.lexpr is not None:
            op = _strings(node.name)[-1]
            right_type = None
            table = self.current_table
            if type(node.lexpr).__name__ == "ColumnRef" and table is not None:
                col = table.column(getattr(node.lexpr.fields[-1], "sval", None))
                right_type = col.type if col is not None else None
            return "(%s %s %s)" % (self.expr(node.lexpr), op, self.expr(node.rexpr, right_type))
        return _deparse(node)

    def regclass_text(self, text):
        """'public.seq'::regclass prints as 'seq'::regclass in a session whose search_path has public."""
        if "." in text and not text.startswith('"'):
            schema, _dot, name = text.partition(".")
            if self.visible(schema):
                return name
        return text


_CANON_CAST = re.compile(
    r"::(?:[a-z_][\w.]*|\"[^\"]+\")"
    r"(?:\s+(?:varying|precision|with(?:out)? time zone))*(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])*"
)


def canonical_expr(text):
    """A comparison key for an expression whatever produced its text (DDL or pg_get_expr).

    Casts, redundant parentheses, schema ``public.``, letter case and spaces do not count:
    ``(status <> 'shipped'::order_status)`` and ``status <> 'shipped'`` give the same key.
    """
    if text is None:
        return None
    try:
        lib = _lib()
        tree = lib.parse_sql("SELECT %s" % text)[0].stmt.targetList[0].val
        text = _deparse(_strip_casts(tree))
    except Exception:  # noqa: BLE001 - fall back to a textual key
        text = _CANON_CAST.sub("", text)
    text = re.sub(r"\bpublic\.", "", text)
    text = re.sub(r"[()\s]+", " ", text).strip().lower()
    return text


def _strip_casts(node):
    """Remove TypeCast nodes and turn `x = ANY (ARRAY[...])` into `x IN (...)`."""
    lib = _lib()
    ast = lib.ast

    class _Strip(lib.visitors.Visitor):
        def visit_TypeCast(self, ancestors, node):
            return node.arg

        def visit_A_Expr(self, ancestors, node):
            if node.kind.name == "AEXPR_OP_ANY" and type(node.rexpr).__name__ == "A_ArrayExpr":
                return ast.A_Expr(
                    kind=lib.enums.A_Expr_Kind.AEXPR_IN,
                    name=(ast.String(sval="="),),
                    lexpr=node.lexpr,
                    rexpr=tuple(node.rexpr.elements or ()),
                )
            return None

    holder = ast.ResTarget(val=node)
    _Strip()(holder)
    # casts may wrap casts: run until stable
    for _round in range(3):
        _Strip()(holder)
    return holder.val


# -- statements ----------------------------------------------------------------------------
_FK_ACTION = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_CONSTR = None


def _contype(constraint):
    return constraint.contype.name.replace("CONSTR_", "")


def _columns_in(node):
    """Column names an expression references, in order of appearance, without repeats."""
    lib = _lib()
    out = []

    class _Cols(lib.visitors.Visitor):
        def visit_ColumnRef(self, ancestors, ref):
            fields = [f.sval for f in ref.fields if hasattr(f, "sval")]
            if fields and fields[-1] not in out:
                out.append(fields[-1])

    _Cols()(lib.ast.ResTarget(val=node))
    return out


def _figure_colname(node):
    """FigureColname(): the name PostgreSQL derives from an expression ('expr' when none)."""
    cls = type(node).__name__
    if cls == "ColumnRef":
        field = node.fields[-1]
        return field.sval if hasattr(field, "sval") else "expr"
    if cls == "FuncCall":
        return _strings(node.funcname)[-1]
    if cls == "TypeCast":
        inner = _figure_colname(node.arg)
        return inner if inner != "expr" else _strings(node.typeName.names)[-1]
    if cls == "CoalesceExpr":
        return "coalesce"
    return "expr"


def _name_for_index_text(text):
    """The naming word of an index column given as text (a column name or an expression)."""
    if _SAFE_IDENT.match(text):
        return text
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    try:
        tree = _lib().parse_sql("SELECT %s" % text)[0].stmt.targetList[0].val
    except Exception:  # noqa: BLE001
        return "expr"
    return _figure_colname(tree)


def _index_elem(ctx, elem):
    """(text, name-for-naming) of an IndexElem."""
    if elem.name:
        return quote_ident(elem.name), elem.name
    text = _deparse(elem.expr)
    if type(elem.expr).__name__ not in ("FuncCall",):
        text = "(%s)" % text
    return text, _figure_colname(elem.expr)


# ALTER TABLE commands that do not change the model (pg_dump runs them on sequences too).
_HARMLESS_ALTER = (
    "AT_ChangeOwner",
    "AT_SetRelOptions",
    "AT_ResetRelOptions",
    "AT_ReplicaIdentity",
    "AT_EnableRowSecurity",
    "AT_DisableRowSecurity",
    "AT_ForceRowSecurity",
    "AT_SetTableSpace",
    "AT_SetLogged",
    "AT_SetUnLogged",
)


class _Builder:
    def __init__(self, ctx):
        self.ctx = ctx
        self.catalog = ctx.catalog
        self.pending_fks = []

    # tables
    def create_table(self, stmt):
        ctx = self.ctx
        schema, name = ctx.qualify(stmt.relation)
        kind = "p" if stmt.partspec is not None else "r"
        persistence = stmt.relation.relpersistence or "p"
        table = cat.Table(schema, name, kind=kind, persistence=persistence)
        if stmt.partspec is not None:
            table.partition_key = self._partition_key(stmt.partspec)
        ctx.used_rel(schema).add(name)
        self.catalog.add(table)
        if stmt.partbound is not None and stmt.inhRelations:
            parent = ctx.find_table(stmt.inhRelations[0])
            if parent is None:
                raise DdlError(
                    "%s: partition %s.%s refers to table %s, which is not defined before it"
                    % (ctx.file, schema, name, stmt.inhRelations[0].relname)
                )
            self._inherit(parent, table)
            table.partition_of = parent.qualified
            table.partition_bound = self._bound(stmt.partbound)
        for elt in stmt.tableElts or ():
            tname = type(elt).__name__
            if tname == "ColumnDef":
                self.add_column(table, elt)
            elif tname == "Constraint":
                self.add_constraint(table, elt)
        if table.partition_of:
            self._clone_parent_objects(self.catalog.get(*table.partition_of.split(".", 1)), table)
        return table

    def _partition_key(self, spec):
        strategy = spec.strategy
        value = getattr(strategy, "value", strategy)
        word = {"r": "RANGE", "l": "LIST", "h": "HASH"}.get(value, str(value).upper())
        parts = []
        for p in spec.partParams or ():
            if p.name:
                parts.append(quote_ident(p.name))
            else:
                parts.append(
                    "(%s)" % _deparse(p.expr) if type(p.expr).__name__ != "FuncCall" else _deparse(p.expr)
                )
        return "%s (%s)" % (word, ", ".join(parts))

    def _bound(self, bound):
        if bound.is_default:
            return "DEFAULT"
        strategy = bound.strategy
        if strategy == "h":
            return "FOR VALUES WITH (modulus %d, remainder %d)" % (bound.modulus, bound.remainder)
        if strategy == "l":
            return "FOR VALUES IN (%s)" % ", ".join(_deparse(d) for d in bound.listdatums or ())
        return "FOR VALUES FROM (%s) TO (%s)" % (
            ", ".join(_deparse(d) for d in bound.lowerdatums or ()),
            ", ".join(_deparse(d) for d in bound.upperdatums or ()),
        )

    def _inherit(self, parent, table):
        for col in parent.columns:
            if table.column(col.name) is None:
                table.columns.append(
                    cat.Column(
                        col.name,
                        len(table.columns) + 1,
                        col.type,
                        not_null=col.not_null,
                        default=col.default,
                        identity=col.identity,
                        generated=col.generated,
                    )
                )

    def _clone_parent_objects(self, parent, table):
        """What a partition gets from its parent: CHECK and FK constraints, one index per index."""
        if parent is None:
            return
        for con in parent.constraints:
            if con.type not in ("c", "f"):
                continue
            same = [c for c in table.constraints if c.name == con.name]
            for c in same:
                c.inherited = True  # merged with the parent's on ATTACH
            if not same:
                clone = cat.Constraint(**{k: getattr(con, k) for k in cat.Constraint.__slots__})
                clone.inherited = True
                table.constraints.append(clone)
        for idx in parent.indexes:
            self._clone_index(parent, idx, table)

    def _clone_index(self, parent, idx, table):
        ctx = self.ctx
        con = None
        if idx.constraint:
            con = next((c for c in parent.constraints if c.name == idx.constraint), None)
        # An index the partition already has on the same columns is attached, not created.
        for mine in table.indexes:
            if mine.columns == idx.columns and mine.predicate == idx.predicate and mine.unique == idx.unique:
                mine.parent_index = idx.name
                return
        names = [_name_for_index_text(c) for c in idx.columns + idx.include]
        label = "pkey" if idx.primary else ("key" if con is not None else "idx")
        name = _choose(
            ctx.used_rel(table.schema), table.name, None if idx.primary else _join_names(names), label
        )
        clone = cat.Index(
            name,
            idx.columns,
            unique=idx.unique,
            primary=idx.primary,
            method=idx.method,
            predicate=idx.predicate,
            include=idx.include,
            nulls_not_distinct=idx.nulls_not_distinct,
            constraint=name if con is not None else None,
            parent_index=idx.name,
        )
        clone.definition = self._index_definition(table, clone)
        table.indexes.append(clone)
        if con is not None:
            ctx.used_con(table.schema).add(name)
            table.constraints.append(
                cat.Constraint(
                    name, con.type, con.columns, definition=con.definition, index=name, inherited=True
                )
            )

    def add_column(self, table, coldef):
        ctx = self.ctx
        tn = coldef.typeName
        base = _strings(tn.names)[-1] if tn is not None else None
        col_type = ctx.type_name(tn) if tn is not None else None
        existing = table.column(coldef.colname)
        if existing is not None and table.partition_of:
            col = existing  # a partition restating an inherited column (WITH OPTIONS ...)
        else:
            col = cat.Column(coldef.colname, len(table.columns) + 1, col_type)
            table.columns.append(col)
        if coldef.is_not_null:
            col.not_null = True
        if tn is not None and base in SERIAL_TYPES and len(tn.names) == 1 and not tn.arrayBounds:
            seq = _choose(ctx.used_rel(table.schema), table.name, coldef.colname, "seq")
            seq_text = seq if ctx.visible(table.schema) else "%s.%s" % (table.schema, seq)
            col.default = "nextval(%s::regclass)" % _literal(seq_text)
            col.not_null = True
        for con in coldef.constraints or ():
            kind = _contype(con)
            if kind == "NOTNULL":
                col.not_null = True
            elif kind == "NULL":
                col.not_null = False
            elif kind == "DEFAULT":
                col.default = ctx.expr(con.raw_expr, col.type)
            elif kind == "IDENTITY":
                col.identity = con.generated_when or "a"
                col.not_null = True
                _choose(ctx.used_rel(table.schema), table.name, coldef.colname, "seq")
            elif kind == "GENERATED":
                col.generated = "s" if con.generated_kind in ("s", "\x00", "", None) else con.generated_kind
                col.default = ctx.expr(con.raw_expr)
            elif kind in ("PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUSION"):
                self.add_constraint(table, con, column=coldef.colname)
        if coldef.collClause is not None:
            col.collation = _strings(coldef.collClause.collname)[-1]
        return col

    def add_constraint(self, table, con, column=None, recurse=True):
        """Add a constraint (and the index behind PRIMARY KEY / UNIQUE); ``recurse``: to partitions too."""
        ctx = self.ctx
        kind = _contype(con)
        used = ctx.used_con(table.schema)
        if kind in ("PRIMARY", "UNIQUE"):
            cols = [column] if column else _strings(con.keys)
            include = _strings(con.including)
            primary = kind == "PRIMARY"
            if con.indexname:  # UNIQUE USING INDEX / PRIMARY KEY USING INDEX
                idx = next((i for i in table.indexes if i.name == con.indexname), None)
                name = con.conname or con.indexname
                if idx is not None:
                    idx.name = name
                    idx.primary = primary
                    idx.unique = True
                    idx.constraint = name
                    cols = [c.strip('"') for c in idx.columns]
            elif con.conname:
                name = con.conname
                ctx.used_rel(table.schema).add(name)
            elif primary:
                name = _choose(ctx.used_rel(table.schema), table.name, None, "pkey")
            else:
                name = _choose(ctx.used_rel(table.schema), table.name, _join_names(cols + include), "key")
            used.add(name)
            if primary:
                for c in cols:
                    col = table.column(c)
                    if col is not None:
                        col.not_null = True
            definition = "%s (%s)" % (
                "PRIMARY KEY" if primary else "UNIQUE",
                ", ".join(quote_ident(c) for c in cols),
            )
            if kind == "UNIQUE" and con.nulls_not_distinct:
                definition = "UNIQUE NULLS NOT DISTINCT (%s)" % ", ".join(quote_ident(c) for c in cols)
            if include:
                definition += " INCLUDE (%s)" % ", ".join(quote_ident(c) for c in include)
            constraint = cat.Constraint(
                name,
                "p" if primary else "u",
                cols,
                definition=definition,
                deferrable=con.deferrable,
                index=name,
            )
            table.constraints.append(constraint)
            if not con.indexname:
                idx = cat.Index(
                    name,
                    [quote_ident(c) for c in cols],
                    unique=True,
                    primary=primary,
                    method=con.access_method or "btree",
                    include=[quote_ident(c) for c in include],
                    nulls_not_distinct=bool(con.nulls_not_distinct),
                    constraint=name,
                )
                idx.definition = self._index_definition(table, idx)
                table.indexes.append(idx)
                if recurse:
                    self._propagate_index(table, idx)
            return constraint
        if kind == "CHECK":
            expr_cols = _columns_in(con.raw_expr)
            if con.conname:
                name = con.conname
                used.add(name)
            else:
                one = column or (expr_cols[0] if len(expr_cols) == 1 else None)
                name = _choose(used, table.name, one, "check")
            constraint = cat.Constraint(
                name,
                "c",
                expr_cols,
                definition="CHECK (%s)" % _deparse(con.raw_expr)
                + (" NOT VALID" if con.skip_validation else ""),
                validated=not con.skip_validation,
            )
            table.constraints.append(constraint)
            if recurse:
                self._propagate_constraint(table, constraint)
            return constraint
        if kind == "FOREIGN":
            cols = [column] if column else _strings(con.fk_attrs)
            if con.conname:
                name = con.conname
                used.add(name)
            else:
                name = _choose(used, table.name, _join_names(cols), "fkey")
            ref_schema, ref_table = ctx.qualify(con.pktable)
            ref = ctx.find_table(con.pktable)
            if ref is not None:
                ref_schema, ref_table = ref.schema, ref.name
            constraint = cat.Constraint(
                name,
                "f",
                cols,
                validated=not con.skip_validation,
                deferrable=con.deferrable,
                ref_schema=ref_schema,
                ref_table=ref_table,
                ref_columns=_strings(con.pk_attrs),
                on_delete=_FK_ACTION.get(con.fk_del_action or "a", "NO ACTION"),
                on_update=_FK_ACTION.get(con.fk_upd_action or "a", "NO ACTION"),
            )
            table.constraints.append(constraint)
            self.pending_fks.append((table, constraint))
            if recurse:
                self._propagate_constraint(table, constraint)
            return constraint
        if kind == "EXCLUSION":
            name = con.conname or _choose(ctx.used_rel(table.schema), table.name, None, "excl")
            cols = [_index_elem(ctx, pair[0])[1] for pair in con.exclusions or ()]
            constraint = cat.Constraint(name, "x", cols, definition=_deparse(con), index=name)
            table.constraints.append(constraint)
            idx = cat.Index(name, cols, method=con.access_method or "gist", constraint=name)
            table.indexes.append(idx)
            return constraint
        return None

    def _propagate_constraint(self, table, constraint):
        for child in self._partitions(table):
            if not any(c.name == constraint.name for c in child.constraints):
                clone = cat.Constraint(**{k: getattr(constraint, k) for k in cat.Constraint.__slots__})
                clone.inherited = True
                child.constraints.append(clone)
                self._propagate_constraint(child, constraint)

    def _propagate_index(self, table, idx):
        for child in self._partitions(table):
            self._clone_index(table, idx, child)
            self._propagate_index(child, child.indexes[-1])

    def _partitions(self, table):
        return [t for t in self.catalog.tables.values() if t.partition_of == table.qualified]

    def _finish_fk(self, table, constraint):
        ref = self.catalog.get(constraint.ref_schema, constraint.ref_table)
        if not constraint.ref_columns and ref is not None and ref.primary_key is not None:
            constraint.ref_columns = list(ref.primary_key.columns)
        text = "FOREIGN KEY (%s) REFERENCES %s(%s)" % (
            ", ".join(quote_ident(c) for c in constraint.columns),
            constraint.ref_table
            if self.ctx.visible(constraint.ref_schema)
            else "%s.%s" % (quote_ident(constraint.ref_schema), quote_ident(constraint.ref_table)),
            ", ".join(quote_ident(c) for c in constraint.ref_columns),
        )
        if constraint.on_update != "NO ACTION":
            text += " ON UPDATE %s" % constraint.on_update
        if constraint.on_delete != "NO ACTION":
            text += " ON DELETE %s" % constraint.on_delete
        if constraint.deferrable:
            text += " DEFERRABLE"
        if not constraint.validated:
            text += " NOT VALID"
        constraint.definition = text

    def _index_definition(self, table, idx):
        return "CREATE %sINDEX %s ON %s%s USING %s (%s)%s%s" % (
            "UNIQUE " if idx.unique else "",
            quote_ident(idx.name),
            "ONLY " if table.kind == "p" else "",
            "%s.%s" % (quote_ident(table.schema), quote_ident(table.name)),
            idx.method,
            ", ".join(idx.columns),
            " INCLUDE (%s)" % ", ".join(idx.include) if idx.include else "",
            " WHERE %s" % idx.predicate if idx.predicate else "",
        )

    def create_index(self, stmt):
        ctx = self.ctx
        table = ctx.find_table(stmt.relation)
        if table is None:
            raise DdlError(
                "%s: CREATE INDEX on %s, which is not defined before it" % (ctx.file, stmt.relation.relname)
            )
        keys = [_index_elem(ctx, e) for e in stmt.indexParams or ()]
        include = [_index_elem(ctx, e) for e in stmt.indexIncludingParams or ()]
        columns = []
        opclasses = []
        for pos, elem in enumerate(stmt.indexParams or ()):
            text = keys[pos][0]
            extra = ""
            if elem.opclass:
                opclasses.append(_strings(elem.opclass)[-1])
            if elem.ordering is not None and elem.ordering.name == "SORTBY_DESC":
                extra = " DESC"
            columns.append(text + extra)
        if stmt.idxname:
            name = stmt.idxname
            ctx.used_rel(table.schema).add(name)
        else:
            name = _choose(
                ctx.used_rel(table.schema), table.name, _join_names([n for _t, n in keys + include]), "idx"
            )
        ctx.current_table = table
        idx = cat.Index(
            name,
            columns,
            unique=stmt.unique,
            method=stmt.accessMethod or "btree",
            predicate=ctx.expr(stmt.whereClause) if stmt.whereClause is not None else None,
            include=[t for t, _n in include],
            opclasses=opclasses,
            nulls_not_distinct=bool(getattr(stmt, "nulls_not_distinct", False)),
        )
        idx.definition = self._index_definition(table, idx)
        table.indexes.append(idx)
        if stmt.relation.inh:
            self._propagate_index(table, idx)
        return idx

    # ALTER TABLE
    def _find_index(self, rangevar):
        """(table, index) of an index by (optionally qualified) name, or (None, None)."""
        schemas = [rangevar.schemaname] if rangevar.schemaname else (self.ctx.search_path or ["public"])
        for schema in schemas:
            for t in self.catalog.tables.values():
                if t.schema != schema:
                    continue
                for i in t.indexes:
                    if i.name == rangevar.relname:
                        return t, i
        return None, None

    def alter_index(self, stmt):
        """ALTER INDEX parent_idx ATTACH PARTITION child_idx (as pg_dump writes partitioned indexes)."""
        _pt, parent = self._find_index(stmt.relation)
        for cmd in stmt.cmds or ():
            if cmd.subtype.name != "AT_AttachPartition" or parent is None:
                continue
            table, child = self._find_index(cmd.def_.name)
            if child is None:
                continue
            child.parent_index = parent.name
            for c in table.constraints:
                if child.constraint and c.name == child.constraint:
                    c.inherited = True

    def alter_table(self, stmt):
        ctx = self.ctx
        if stmt.objtype.name == "OBJECT_INDEX":
            self.alter_index(stmt)
            return
        if stmt.objtype.name not in ("OBJECT_TABLE", "OBJECT_FOREIGN_TABLE"):
            return
        table = ctx.find_table(stmt.relation)
        if table is None:
            harmless = all(cmd.subtype.name in _HARMLESS_ALTER for cmd in stmt.cmds or ())
            if stmt.missing_ok or harmless or ctx.qualify(stmt.relation) in ctx.sequences:
                return
            raise DdlError(
                "%s: ALTER TABLE %s, which is not defined before it" % (ctx.file, stmt.relation.relname)
            )
        for cmd in stmt.cmds or ():
            sub = cmd.subtype.name
            if sub == "AT_AddConstraint":
                self.add_constraint(table, cmd.def_, recurse=stmt.relation.inh)
            elif sub == "AT_AddColumn":
                if cmd.missing_ok and table.column(cmd.def_.colname) is not None:
                    continue
                col = self.add_column(table, cmd.def_)
                for child in self._partitions(table):
                    if child.column(col.name) is None:
                        child.columns.append(
                            cat.Column(
                                col.name,
                                len(child.columns) + 1,
                                col.type,
                                not_null=col.not_null,
                                default=col.default,
                                identity=col.identity,
                                generated=col.generated,
                            )
                        )
            elif sub in ("AT_SetNotNull", "AT_DropNotNull"):
                for t in [table] + (self._partitions(table) if stmt.relation.inh else []):
                    col = t.column(cmd.name)
                    if col is not None:
                        col.not_null = sub == "AT_SetNotNull"
            elif sub == "AT_ColumnDefault":
                col = table.column(cmd.name)
                if col is not None:
                    col.default = ctx.expr(cmd.def_, col.type) if cmd.def_ is not None else None
            elif sub == "AT_AddIdentity":
                col = table.column(cmd.name)
                if col is not None:
                    col.identity = getattr(cmd.def_, "generated_when", "a") or "a"
                    col.not_null = True
            elif sub == "AT_AttachPartition":
                self.attach(table, cmd.def_)
            elif sub == "AT_DropConstraint":
                table.constraints = [c for c in table.constraints if c.name != cmd.name]
                table.indexes = [i for i in table.indexes if i.constraint != cmd.name]
            elif sub == "AT_DropColumn":
                table.columns = [c for c in table.columns if c.name != cmd.name]
            elif sub == "AT_AlterColumnType":
                col = table.column(cmd.name)
                if col is not None and cmd.def_.typeName is not None:
                    col.type = ctx.type_name(cmd.def_.typeName)
            elif sub == "AT_ValidateConstraint":
                for c in table.constraints:
                    if c.name == cmd.name:
                        c.validated = True
            # OWNER TO, SET (storage options), REPLICA IDENTITY, ENABLE TRIGGER...: no model change

    def attach(self, parent, partcmd):
        child = self.ctx.find_table(partcmd.name)
        if child is None:
            raise DdlError(
                "%s: ATTACH PARTITION %s, which is not defined before it"
                % (self.ctx.file, partcmd.name.relname)
            )
        child.partition_of = parent.qualified
        child.partition_bound = self._bound(partcmd.bound)
        self._clone_parent_objects(parent, child)

    # other statements
    def comment(self, stmt):
        objtype = stmt.objtype.name
        names = _strings(stmt.object) if isinstance(stmt.object, tuple) else None
        if objtype in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_FOREIGN_TABLE"):
            schema, name = (names[-2], names[-1]) if len(names) > 1 else (None, names[-1])
            table = self._lookup(schema, name)
            if table is not None:
                table.comment = stmt.comment
        elif objtype == "OBJECT_COLUMN":
            schema = names[-3] if len(names) > 2 else None
            table = self._lookup(schema, names[-2])
            col = table.column(names[-1]) if table is not None else None
            if col is not None:
                col.comment = stmt.comment

    def _lookup(self, schema, name):
        if schema:
            return self.catalog.get(schema, name)
        for s in self.ctx.search_path or ["public"]:
            t = self.catalog.get(s, name)
            if t is not None:
                return t
        return None

    def create_enum(self, stmt):
        names = _strings(stmt.typeName)
        schema = names[-2] if len(names) > 1 else self.ctx.default_schema
        self.ctx.enum_schema[names[-1]] = schema
        self.catalog.enums["%s.%s" % (schema, names[-1])] = [v.sval for v in stmt.vals or ()]

    def create_view(self, stmt, materialized=False):
        ctx = self.ctx
        rel = stmt.into.rel if materialized else stmt.view
        schema, name = ctx.qualify(rel)
        query = stmt.query if materialized else stmt.query
        table = cat.Table(schema, name, kind="m" if materialized else "v", view_definition=_deparse(query))
        ctx.used_rel(schema).add(name)
        colnames = _strings(stmt.into.colNames) if materialized else _strings(stmt.aliases)
        targets = getattr(query, "targetList", None) or ()
        for pos, target in enumerate(targets, 1):
            if pos <= len(colnames):
                cname = colnames[pos - 1]
            elif target.name:
                cname = target.name
            elif type(target.val).__name__ == "ColumnRef":
                fields = target.val.fields
                cname = fields[-1].sval if hasattr(fields[-1], "sval") else "?column?"
            elif type(target.val).__name__ == "FuncCall":
                cname = _strings(target.val.funcname)[-1]
            else:
                cname = "?column?"
            if cname == "?column?" and type(target.val).__name__ == "ColumnRef":
                continue  # SELECT *: the columns are not known without the database
            table.columns.append(cat.Column(cname, pos, self._view_column_type(query, target.val)))
        self.catalog.add(table)

    def _view_column_type(self, query, val):
        """The type of a view column when the DDL alone tells it (a column of the one table it reads)."""
        sources = getattr(query, "fromClause", None) or ()
        if len(sources) != 1 or type(sources[0]).__name__ != "RangeVar" or type(val).__name__ != "ColumnRef":
            return None
        table = self.ctx.find_table(sources[0])
        field = val.fields[-1]
        col = table.column(field.sval) if table is not None and hasattr(field, "sval") else None
        return col.type if col is not None else None

    def create_extension(self, stmt):
        schema = None
        version = None
        for opt in stmt.options or ():
            if opt.defname == "schema":
                schema = opt.arg.sval
            elif opt.defname == "new_version":
                version = opt.arg.sval
        if any(e["name"] == stmt.extname for e in self.catalog.extensions):
            return
        self.catalog.extensions.append(
            dict(name=stmt.extname, version=version, schema=schema or self.ctx.default_schema)
        )

    def set_search_path(self, values):
        path = [v for v in values if v and v not in ("pg_catalog", "$user", '"$user"')]
        self.ctx.search_path = path or ["public"]

    def finish(self):
        for table, constraint in self.pending_fks:
            self._finish_fk(table, constraint)
        # clones made before the FK was finished share its fields: refresh them
        for table in self.catalog.tables.values():
            for c in table.constraints:
                if c.type == "f" and not c.definition:
                    self._finish_fk(table, c)
        schemas = set(self.catalog.schemas)
        schemas.update(t.schema for t in self.catalog.tables.values())
        self.catalog.schemas = sorted(schemas)
        self.catalog.extensions.sort(key=lambda e: e["name"])
        for table in self.catalog.tables.values():
            table.constraints.sort(key=lambda c: c.name)
            table.indexes.sort(key=lambda i: i.name)


def _line_of(text, offset):
    return text.count("\n", 0, max(0, offset)) + 1


def _set_search_path(builder, stmt):
    """SET search_path = a, b / SELECT pg_catalog.set_config('search_path', 'a, b', false)."""
    tname = type(stmt).__name__
    if tname == "VariableSetStmt" and (stmt.name or "").lower() == "search_path":
        values = []
        for arg in stmt.args or ():
            kind, text = _const_text(arg) if type(arg).__name__ == "A_Const" else ("other", "")
            values.append(text)
        builder.set_search_path(values)
        return True
    if tname == "SelectStmt" and stmt.targetList and len(stmt.targetList) == 1:
        val = stmt.targetList[0].val
        if type(val).__name__ == "FuncCall" and _strings(val.funcname)[-1] == "set_config":
            args = val.args or ()
            consts = len(args) >= 2 and all(type(a).__name__ == "A_Const" for a in args[:2])
            if consts and _const_text(args[0])[1] == "search_path":
                builder.set_search_path([v.strip() for v in _const_text(args[1])[1].split(",")])
                return True
    return False


def _apply(builder, stmt):
    tname = type(stmt).__name__
    if tname == "CreateSchemaStmt":
        if stmt.schemaname and stmt.schemaname not in builder.catalog.schemas:
            builder.catalog.schemas.append(stmt.schemaname)
        for elt in stmt.schemaElts or ():
            _apply(builder, elt)
    elif tname == "CreateStmt":
        if stmt.if_not_exists and builder.ctx.find_table(stmt.relation) is not None:
            return
        builder.create_table(stmt)
    elif tname == "IndexStmt":
        builder.create_index(stmt)
    elif tname == "AlterTableStmt":
        builder.alter_table(stmt)
    elif tname == "CommentStmt":
        builder.comment(stmt)
    elif tname == "CreateEnumStmt":
        builder.create_enum(stmt)
    elif tname == "ViewStmt":
        builder.create_view(stmt)
    elif tname == "CreateTableAsStmt" and stmt.objtype.name == "OBJECT_MATVIEW":
        builder.create_view(stmt, materialized=True)
    elif tname == "CreateSeqStmt":
        builder.ctx.sequences.add(builder.ctx.qualify(stmt.sequence))
        builder.ctx.used_rel(builder.ctx.qualify(stmt.sequence)[0]).add(stmt.sequence.relname)
    elif tname == "CreateExtensionStmt":
        builder.create_extension(stmt)
    elif tname in ("VariableSetStmt", "SelectStmt"):
        _set_search_path(builder, stmt)
    # Everything else a schema dump holds (functions, sequences, triggers, grants, ALTER
    # SEQUENCE OWNED BY, ALTER INDEX ATTACH PARTITION, publications...) changes nothing here.


_META_COMMAND = re.compile(r"^\s*\\[A-Za-z!?]")
_COPY_FROM_STDIN = re.compile(r"^\s*COPY\b.*\bFROM\s+stdin\b.*;\s*$", re.IGNORECASE)


def strip_psql(text):
    """Blank psql meta-commands (``\\connect``, pg_dump's ``\\restrict``) and COPY data.

    Lines keep their numbers so parse errors point at the right line.
    """
    out = []
    in_copy = False
    for line in text.split("\n"):
        if in_copy:
            in_copy = line.rstrip("\r") != "\\."
            out.append("")
        elif _META_COMMAND.match(line):
            out.append("")
        elif _COPY_FROM_STDIN.match(line):
            in_copy = True
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def _parse(text, source_name):
    lib = _lib()
    try:
        return lib.parse_sql(text)
    except lib.parser.ParseError as exc:
        location = getattr(exc, "location", None)
        if location is None and len(exc.args) > 1:
            location = exc.args[1]
        line = _line_of(text, location or 0)
        raise DdlError("%s:%d: %s" % (source_name, line, exc.args[0] if exc.args else exc)) from None


def _load(builder, text, source_name):
    builder.ctx.file = source_name
    text = strip_psql(text)
    for raw in _parse(text, source_name):
        try:
            _apply(builder, raw.stmt)
        except DdlError:
            raise
        except Exception as exc:  # noqa: BLE001 - name the statement that could not be read
            line = _line_of(text, raw.stmt_location or 0)
            raise DdlError(
                "%s:%d: cannot read this statement (%s: %s)"
                % (source_name, line, exc.__class__.__name__, exc)
            ) from None


def catalog_from_sql(text, source_name="ddl"):
    """The Catalog (source 'ddl') described by the SQL ``text``."""
    catalog = cat.Catalog(database=None, source="ddl")
    builder = _Builder(_Ctx(catalog))
    _load(builder, text, source_name)
    builder.finish()
    catalog.meta = dict(files=[source_name])
    return catalog


def expand_paths(paths):
    """Files in the order they are read: each file as given, each folder's *.sql sorted by name."""
    if isinstance(paths, str):
        paths = [paths]
    out = []
    for path in paths:
        if os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.endswith(".sql"))
            out.extend(os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n)))
        elif os.path.isfile(path):
            out.append(path)
        else:
            raise DdlError("%s: no such file or folder" % path)
    return out


def catalog_from_paths(paths):
    """One Catalog from DDL files and folders, read in order as if they were one script."""
    files = expand_paths(paths)
    if not files:
        raise DdlError(
            "No .sql file found in %s" % ", ".join(paths if not isinstance(paths, str) else [paths])
        )
    catalog = cat.Catalog(database=None, source="ddl")
    builder = _Builder(_Ctx(catalog))
    for path in files:
        with open(path, encoding="utf-8") as fh:
            _load(builder, fh.read(), path)
    builder.finish()
    catalog.meta = dict(files=files)
    return catalog
