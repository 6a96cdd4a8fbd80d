# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data dictionary (Markdown) and ER diagrams (Mermaid, DBML, Graphviz DOT, SVG) of a Catalog.

The input is the one catalog model, read from a live database or from DDL files. The
output is deterministic (objects sorted by name, no timestamps), so a second run over
the same schema produces the same bytes and the module reports no change.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc

import os
import re
import shutil

FORMATS = ("markdown", "mermaid", "dbml", "dot", "svg")
EXTENSIONS = {"markdown": "md", "mermaid": "mmd", "dbml": "dbml", "dot": "dot", "svg": "svg"}
BASENAME = "data_dictionary"


class DictionaryError(DbarchError, ValueError):
    pass


# -- helpers -----------------------------------------------------------------------------
def human_bytes(value):
    if value is None or value < 0:
        return None  # unknown (a negative relpages is "no statistics", never a size)
    size = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return ("%d %s" % (size, unit)) if unit == "B" else ("%.1f %s" % (size, unit))
        size /= 1024.0
    return None


_MD_ESCAPES = (
    ("\\", "\\\\"),
    ("&", "&amp;"),
    ("<", "&lt;"),
    (">", "&gt;"),
    ("|", "\\|"),
    ("`", "\\`"),
    ("[", "\\["),
    ("]", "\\]"),
)


def _one_line(text):
    return " ".join(str(text).replace("\r", "\n").split("\n"))


def _md(text):
    """Text from the database (names, comments) as inert Markdown: no HTML, no link, no table break.

    Names and comments are written by whoever may create objects; a data dictionary is read
    by others, often rendered to HTML: ``<script>``, ``[x](javascript:...)`` and ``|`` must
    come out as the characters they are.
    """
    if text is None or text == "":
        return ""
    text = _one_line(text)
    for raw, escaped in _MD_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def _code(text):
    """A code span (HTML is inert inside one); ``|`` escaped for table cells, one line."""
    if text is None or text == "":
        return ""
    return "`%s`" % _one_line(text).replace("`", "'").replace("|", "\\|")


def _fence(text):
    """A code fence longer than any run of backticks in ``text`` (so the text cannot close it)."""
    runs = [len(m) for m in re.findall(r"`+", text or "")]
    return "`" * max(3, max(runs or [0]) + 1)


def _anchor(table):
    return re.sub(r"[^a-z0-9_-]", "", ("%s.%s" % (table.schema, table.name)).lower().replace(".", ""))


def select(catalog, schemas=None):
    """Relations of the chosen schemas (all when None), sorted by schema and name."""
    rels = catalog.relations()
    if schemas:
        rels = [t for t in rels if t.schema in schemas]
    return rels


def _key_columns(table):
    pk = set(table.primary_key.columns) if table.primary_key is not None else set()
    fk = set()
    unique = set()
    for c in table.constraints:
        if c.type == "f":
            fk.update(c.columns)
        elif c.type == "u" and len(c.columns) == 1:
            unique.update(c.columns)
    return pk, fk, unique


# -- Markdown ------------------------------------------------------------------------------
def markdown(catalog, schemas=None, title=None):
    rels = select(catalog, schemas)
    source = catalog.source
    name = catalog.database or "DDL"
    lines = ["# %s" % (title or "Data dictionary: %s" % name), ""]
    if source == "ddl":
        files = (catalog.meta or {}).get("files") or []
        lines.append("Source: DDL (%s)." % ", ".join("`%s`" % os.path.basename(f) for f in files))
    else:
        lines.append("Source: database %s." % _code(name))
    lines.append("")
    summary = catalog.summary()
    lines.append(
        "%d tables, %d views, %d materialized views, %d foreign keys."
        % (
            len([t for t in rels if t.is_table]),
            len([t for t in rels if t.kind == "v"]),
            len([t for t in rels if t.kind == "m"]),
            sum(len(t.foreign_keys) for t in rels if t.is_table),
        )
    )
    if summary.get("extensions"):
        lines.append("")
        lines.append("Extensions: %s." % ", ".join(sorted(summary["extensions"])))
    lines.append("")
    lines.append("## Contents")
    lines.append("")
    for t in rels:
        lines.append("- [%s](#%s) (%s)" % (_md(t.qualified), _anchor(t), t.kind_name))
    lines.append("")
    enums = dict((k, v) for k, v in catalog.enums.items() if not schemas or k.split(".", 1)[0] in schemas)
    if enums:
        lines.append("## Enumerated types")
        lines.append("")
        lines.append("| type | values |")
        lines.append("| --- | --- |")
        for key in sorted(enums):
            lines.append("| %s | %s |" % (_code(key), ", ".join(_code(v) for v in enums[key])))
        lines.append("")
    for t in rels:
        lines.extend(_markdown_table(catalog, t))
    return "\n".join(lines).rstrip("\n") + "\n"


def _markdown_table(catalog, t):
    out = ['<a id="%s"></a>' % _anchor(t), "", "## %s" % _md(t.qualified), ""]
    facts = ["Kind: %s" % t.kind_name]
    if t.partition_of:
        facts.append("partition of %s %s" % (_code(t.partition_of), _code(t.partition_bound)))
    if t.partition_key:
        facts.append("partitioned by %s" % _code(t.partition_key))
    if t.row_estimate is not None and t.is_table:
        facts.append("about %s rows" % format(int(t.row_estimate), ","))
    if catalog.source != "ddl" and (t.is_table or t.kind == "m"):
        total, parts = catalog.size_of(t)
        if total is None:
            facts.append("size unknown (not yet vacuumed or analyzed)")
        elif parts:
            facts.append("size %s (sum of %d partitions)" % (human_bytes(total), parts))
        else:
            facts.append("size %s" % human_bytes(total))
    out.append("; ".join(facts) + ".")
    out.append("")
    if t.comment:
        out.append(_md(t.comment))
        out.append("")
    pk, fk, unique = _key_columns(t)
    out.append("| # | column | type | null | default | key | comment |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    for c in t.columns:
        keys = [k for k, cols in (("PK", pk), ("FK", fk), ("UQ", unique)) if c.name in cols]
        default = c.default
        if c.identity:
            default = "identity (%s)" % ("always" if c.identity == "a" else "by default")
        elif c.generated:
            default = "generated: %s" % c.default
        out.append(
            "| %d | %s | %s | %s | %s | %s | %s |"
            % (
                c.position,
                _code(c.name),
                _code(c.type),
                "no" if c.not_null else "yes",
                _code(default),
                " ".join(keys),
                _md(c.comment),
            )
        )
    out.append("")
    if t.constraints:
        out.append("Constraints:")
        out.append("")
        out.append("| name | kind | definition |")
        out.append("| --- | --- | --- |")
        for c in sorted(t.constraints, key=lambda c: c.name):
            definition = c.definition or ""
            if not c.validated and "NOT VALID" not in definition:
                definition += " NOT VALID"
            out.append("| %s | %s | %s |" % (_code(c.name), _md(c.kind), _code(definition)))
        out.append("")
    if t.indexes:
        out.append("Indexes:")
        out.append("")
        out.append("| name | columns | unique | method | where | size |")
        out.append("| --- | --- | --- | --- | --- | --- |")
        for i in sorted(t.indexes, key=lambda i: i.name):
            cols = ", ".join(i.columns)
            if i.include:
                cols += " INCLUDE (%s)" % ", ".join(i.include)
            flag = "primary" if i.primary else ("yes" if i.unique else "no")
            if not i.valid:
                flag += " (INVALID)"
            out.append(
                "| %s | %s | %s | %s | %s | %s |"
                % (
                    _code(i.name),
                    _code(cols),
                    flag,
                    _md(i.method),
                    _code(i.predicate),
                    human_bytes(i.bytes) or "",
                )
            )
        out.append("")
    refs = catalog.referenced_by(t) if t.is_table else []
    if refs:
        out.append("Referenced by:")
        out.append("")
        for child, fk in sorted(refs, key=lambda r: (r[0].qualified, r[1].name)):
            out.append(
                "- %s (%s) via %s, ON DELETE %s"
                % (
                    _code(child.qualified),
                    _md(", ".join(fk.columns)),
                    _code(fk.name),
                    fk.on_delete or "NO ACTION",
                )
            )
        out.append("")
    if t.view_definition:
        out.append("Definition:")
        out.append("")
        fence = _fence(t.view_definition)
        out.append(fence + "sql")
        out.append(t.view_definition.strip())
        out.append(fence)
        out.append("")
    return out


# -- ER diagrams -----------------------------------------------------------------------------
def _diagram_tables(catalog, schemas=None):
    """Tables shown in diagrams: plain and partitioned tables; partitions fold into their parent."""
    return [t for t in select(catalog, schemas) if t.is_table and not t.partition_of]


def _edges(tables):
    """(child, fk) for FKs between shown tables, sorted; FKs copied onto partitions are left out."""
    shown = {(t.schema, t.name) for t in tables}
    out = []
    for t in tables:
        for fk in sorted(t.foreign_keys, key=lambda f: f.name):
            if (fk.ref_schema, fk.ref_table) in shown:
                out.append((t, fk))
    return out


def _mermaid_name(table):
    return re.sub(
        r"[^A-Za-z0-9_]",
        "_",
        "%s__%s" % (table.schema, table.name) if table.schema != "public" else table.name,
    )


def _mermaid_type(text):
    t = re.sub(r"[^A-Za-z0-9_\[\]()]", "_", text or "unknown")
    t = t.replace("(", "_").replace(")", "").replace("[", "").replace("]", "_array")
    return t or "unknown"


def _mermaid_text(text):
    """A quoted Mermaid label: one line, no quote, and HTML made inert with Mermaid's entity codes."""
    text = _one_line(text)
    for raw, code in (("#", "#35;"), ("&", "#amp;"), ("<", "#lt;"), (">", "#gt;"), ('"', "#quot;")):
        text = text.replace(raw, code)
    return text


def mermaid(catalog, schemas=None):
    tables = _diagram_tables(catalog, schemas)
    lines = ["erDiagram"]
    for t in tables:
        pk, fk, unique = _key_columns(t)
        lines.append("    %s {" % _mermaid_name(t))
        for c in t.columns:
            keys = [k for k, cols in (("PK", pk), ("FK", fk), ("UK", unique)) if c.name in cols]
            line = "        %s %s" % (_mermaid_type(c.type), re.sub(r"[^A-Za-z0-9_]", "_", c.name))
            if keys:
                line += " %s" % ", ".join(keys)
            if c.comment:
                line += ' "%s"' % _mermaid_text(c.comment)
            lines.append(line)
        lines.append("    }")
    by_key = dict(((t.schema, t.name), t) for t in tables)
    for child, fk in _edges(tables):
        parent = by_key[(fk.ref_schema, fk.ref_table)]
        nullable = any(not (child.column(c) and child.column(c).not_null) for c in fk.columns)
        unique_child = any(
            c.type in ("p", "u") and sorted(c.columns) == sorted(fk.columns) for c in child.constraints
        )
        left = "|o" if nullable else "||"
        right = "o|" if unique_child else "o{"
        lines.append(
            '    %s %s--%s %s : "%s"'
            % (_mermaid_name(parent), left, right, _mermaid_name(child), _mermaid_text(fk.name))
        )
    return "\n".join(lines) + "\n"


def _dbml_ident(name):
    return '"%s"' % _one_line(name).replace("\\", "\\\\").replace('"', '\\"')


def _dbml_string(text):
    return "'%s'" % _one_line(text).replace("\\", "\\\\").replace("'", "\\'")


def _dbml_type(text):
    if not text:
        return '"unknown"'
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\(\d+(,\d+)?\))?$", text):
        return text
    return '"%s"' % _one_line(text).replace("\\", "/").replace('"', "'")


def _dbml_default(default):
    if re.match(r"^-?\d+(\.\d+)?$", default):
        return default
    if default in ("true", "false", "null", "NULL"):
        return default.lower()
    m = re.match(r"^'((?:[^']|'')*)'(::[\w .\"()\[\],]+)?$", default)
    if m:
        return _dbml_string(m.group(1).replace("''", "'"))
    return "`%s`" % _one_line(default).replace("`", "'")


def dbml(catalog, schemas=None):
    """dbdiagram.io's DBML: Enum, Table (columns, indexes, notes) and Ref."""
    tables = _diagram_tables(catalog, schemas)
    out = []
    for key in sorted(catalog.enums):
        schema, name = key.split(".", 1)
        if schemas and schema not in schemas:
            continue
        out.append("Enum %s.%s {" % (_dbml_ident(schema), _dbml_ident(name)))
        for v in catalog.enums[key]:
            out.append("  %s" % _dbml_ident(v))
        out.append("}")
        out.append("")
    enum_types = {}
    for key in catalog.enums:
        schema, name = key.split(".", 1)
        enum_types[name if schema == "public" else key] = "%s.%s" % (_dbml_ident(schema), _dbml_ident(name))
    for t in tables:
        pk = t.primary_key
        single_pk = pk.columns[0] if pk is not None and len(pk.columns) == 1 else None
        uniques = {c.columns[0] for c in t.constraints if c.type == "u" and len(c.columns) == 1}
        out.append("Table %s.%s {" % (_dbml_ident(t.schema), _dbml_ident(t.name)))
        for c in t.columns:
            settings = []
            if c.name == single_pk:
                settings.append("pk")
            if c.not_null and c.name != single_pk:
                settings.append("not null")
            if c.name in uniques:
                settings.append("unique")
            if c.identity:
                settings.append("increment")
            if c.default and not c.generated and not c.identity:
                settings.append("default: %s" % _dbml_default(c.default))
            if c.comment:
                settings.append("note: %s" % _dbml_string(c.comment))
            ctype = enum_types.get(c.type) or _dbml_type(c.type)
            line = "  %s %s" % (_dbml_ident(c.name), ctype)
            if settings:
                line += " [%s]" % ", ".join(settings)
            out.append(line)
        index_lines = []
        if pk is not None and len(pk.columns) > 1:
            index_lines.append("    (%s) [pk]" % ", ".join(_dbml_ident(c) for c in pk.columns))
        for i in sorted(t.indexes, key=lambda i: i.name):
            if i.primary:
                continue
            cols = []
            for col in i.columns:
                plain = col.strip('"')
                if t.column(plain) is not None and (col == plain or col.startswith('"')):
                    cols.append(_dbml_ident(plain))
                else:
                    cols.append("`%s`" % _one_line(col).replace("`", "'"))
            settings = ["name: %s" % _dbml_string(i.name)]
            if i.unique:
                settings.append("unique")
            if i.method and i.method != "btree":
                settings.append(
                    "type: %s" % (i.method if i.method in ("hash", "gin", "gist", "brin") else "btree")
                )
            if i.predicate:
                settings.append("note: %s" % _dbml_string("WHERE %s" % i.predicate))
            if len(cols) == 1:
                index_lines.append("    %s [%s]" % (cols[0], ", ".join(settings)))
            else:
                index_lines.append("    (%s) [%s]" % (", ".join(cols), ", ".join(settings)))
        if index_lines:
            out.append("")
            out.append("  indexes {")
            out.extend(index_lines)
            out.append("  }")
        if t.comment:
            out.append("")
            out.append("  Note: %s" % _dbml_string(t.comment))
        out.append("}")
        out.append("")
    for child, fk in _edges(tables):
        cols = fk.columns
        refs = fk.ref_columns
        if len(cols) == 1:
            left = "%s.%s.%s" % (_dbml_ident(child.schema), _dbml_ident(child.name), _dbml_ident(cols[0]))
            right = "%s.%s.%s" % (_dbml_ident(fk.ref_schema), _dbml_ident(fk.ref_table), _dbml_ident(refs[0]))
        else:
            left = "%s.%s.(%s)" % (
                _dbml_ident(child.schema),
                _dbml_ident(child.name),
                ", ".join(_dbml_ident(c) for c in cols),
            )
            right = "%s.%s.(%s)" % (
                _dbml_ident(fk.ref_schema),
                _dbml_ident(fk.ref_table),
                ", ".join(_dbml_ident(c) for c in refs),
            )
        settings = []
        if fk.on_delete and fk.on_delete != "NO ACTION":
            settings.append("delete: %s" % fk.on_delete.lower())
        if fk.on_update and fk.on_update != "NO ACTION":
            settings.append("update: %s" % fk.on_update.lower())
        line = "Ref %s: %s > %s" % (_dbml_ident(fk.name), left, right)
        if settings:
            line += " [%s]" % ", ".join(settings)
        out.append(line)
    return "\n".join(out).rstrip("\n") + "\n"


def _dot_string(text):
    """A DOT double-quoted string: backslash and quote escaped, one line."""
    return '"%s"' % _one_line(text).replace("\\", "\\\\").replace('"', '\\"')


def _dot_id(table):
    return _dot_string(table.qualified)


def _html(text):
    """Text inside a DOT HTML-like label (and HTML entities in plain labels)."""
    return (
        _one_line(text or "")
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


def dot(catalog, schemas=None):
    """Graphviz DOT: one HTML-like table node per table, one edge per foreign key."""
    tables = _diagram_tables(catalog, schemas)
    lines = [
        "digraph schema {",
        '  graph [rankdir=LR, fontname="Helvetica", concentrate=false];',
        '  node [shape=plaintext, fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8, arrowhead=crow, arrowtail=none];',
    ]
    for t in tables:
        pk, fk, unique = _key_columns(t)
        rows = [
            '<TR><TD BGCOLOR="#dbe7f5" COLSPAN="2"><B>%s</B></TD></TR>' % _html(t.qualified),
        ]
        for c in t.columns:
            mark = " ".join(k for k, cols in (("PK", pk), ("FK", fk), ("UQ", unique)) if c.name in cols)
            name = "<U>%s</U>" % _html(c.name) if c.name in pk else _html(c.name)
            rows.append(
                '<TR><TD ALIGN="LEFT" PORT="%s">%s%s</TD><TD ALIGN="LEFT">%s%s</TD></TR>'
                % (
                    _html(re.sub(r"[^A-Za-z0-9_]", "_", c.name)),
                    name,
                    (" <I>%s</I>" % mark) if mark else "",
                    _html(c.type),
                    "" if c.not_null else " (null)",
                )
            )
        lines.append(
            '  %s [label=<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="3">%s</TABLE>>];'
            % (_dot_id(t), "".join(rows))
        )
    by_key = dict(((t.schema, t.name), t) for t in tables)
    for child, fk in _edges(tables):
        parent = by_key[(fk.ref_schema, fk.ref_table)]
        lines.append(
            "  %s -> %s [label=%s, arrowhead=none, arrowtail=crow, dir=both];"
            % (_dot_id(parent), _dot_id(child), _dot_string(_html(fk.name)))
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def has_dot():
    return shutil.which("dot") is not None


def svg(dot_text, timeout=120):
    """Render DOT to SVG with Graphviz's ``dot``. Raises DictionaryError when it cannot."""
    exe = shutil.which("dot")
    if exe is None:
        raise DictionaryError(
            "The svg format needs Graphviz's dot program on the host that runs the module "
            "(apt-get install graphviz on Debian/Ubuntu); or leave svg out of formats."
        )
    try:
        res = proc.run([exe, "-Tsvg"], stdin_text=dot_text, timeout=timeout, check=False, mask_stdout=False)
    except proc.ProcError as exc:
        raise DictionaryError("dot -Tsvg could not render the diagram: %s" % exc) from None
    if res.returncode != 0:
        raise DictionaryError("dot -Tsvg failed (rc=%d): %s" % (res.returncode, res.stderr.strip()[:500]))
    # Graphviz writes its version in a comment; drop it so output is the same across versions.
    return re.sub(r"<!-- Generated by graphviz[^>]*-->\n?", "", res.stdout)


def render(catalog, formats=None, schemas=None, title=None):
    """{format: text} for the asked formats (default: all; svg only when dot is present)."""
    if formats is None:
        formats = [f for f in FORMATS if f != "svg" or has_dot()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise DictionaryError(
            "Unknown format(s) %s; choose from %s" % (", ".join(unknown), ", ".join(FORMATS))
        )
    out = {}
    dot_text = None
    for fmt in formats:
        if fmt == "markdown":
            out[fmt] = markdown(catalog, schemas, title=title)
        elif fmt == "mermaid":
            out[fmt] = mermaid(catalog, schemas)
        elif fmt == "dbml":
            out[fmt] = dbml(catalog, schemas)
        elif fmt in ("dot", "svg"):
            dot_text = dot_text or dot(catalog, schemas)
            out[fmt] = dot_text if fmt == "dot" else svg(dot_text)
    return out


def files_for(texts, dest, basename=BASENAME):
    """{format: (path, text)} under ``dest``."""
    return dict(
        (fmt, (os.path.join(dest, "%s.%s" % (basename, EXTENSIONS[fmt])), text))
        for fmt, text in texts.items()
    )
