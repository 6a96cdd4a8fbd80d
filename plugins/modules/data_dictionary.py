#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: data_dictionary
short_description: Write a data dictionary and ER diagrams of a database or of DDL files
version_added: "0.2.0"
description:
  - Builds the schema model of a live database (a fixed number of catalog queries, no lock on
    user tables) or of DDL files that exist in no database yet (O(src), parsed with pglast),
    and writes it under O(dest) as a Markdown data dictionary and ER diagrams.
  - The Markdown has, per table, its columns (type, nullability, default, comment), keys,
    constraints, indexes, the foreign keys that reference it, and its row estimate and size
    when they are known (live database only). A partitioned table's size is the sum of its
    partitions'; a table never vacuumed nor analyzed shows its size as unknown.
  - Names and comments are escaped for each output (HTML and C(|) in Markdown, labels in Mermaid,
    DBML and DOT), so a comment or quoted identifier cannot inject markup.
  - Diagrams are written as Mermaid (C(erDiagram)), DBML (importable by dbdiagram.io),
    Graphviz DOT, and SVG rendered by Graphviz's C(dot).
  - Files are written atomically and only when their content changed; a second run over the
    same schema reports no change.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  src:
    description:
      - DDL files or folders (each folder's C(*.sql) files are read in name order) to read
        instead of a database. When set, no connection is made.
      - Absolute paths; a relative one is refused.
      - The output of C(pg_dump --schema-only) is accepted as is.
    type: list
    elements: path
  schemas:
    description:
      - Schemas to document. Default is every schema but the system ones.
    type: list
    elements: str
  dest:
    description:
      - Folder to write the files to, on the host where the module runs, an absolute path. Created if missing.
    type: path
    required: true
  formats:
    description:
      - Files to write, each named C(data_dictionary.<ext>).
      - V(markdown) (C(.md)), V(mermaid) (C(.mmd)), V(dbml) (C(.dbml)), V(dot) (C(.dot)) and
        V(svg) (C(.svg), needs Graphviz's C(dot) program on that host).
      - Default is all of them, V(svg) only when C(dot) is found.
    type: list
    elements: str
    choices: [markdown, mermaid, dbml, dot, svg]
  title:
    description:
      - Title of the Markdown document. Default names the database or the DDL files.
    type: str
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Writes nothing; reports which files would change.
  diff_mode:
    support: full
    description: Shows the change of the Markdown data dictionary.
notes:
  - Reading DDL files needs the Python package pglast on the host that runs the module.
  - The diagrams show tables and partitioned tables; partitions are listed in the Markdown only.
requirements:
  - pglast (when O(src) is used)
  - graphviz (for V(svg))
"""

EXAMPLES = r"""
- name: Document the live database
  dbarch.postgresql.data_dictionary:
    login_db: shop
    schemas: [public, billing]
    dest: "{{ playbook_dir }}/reports/{{ inventory_hostname }}/dictionary"

- name: Document a migration folder before it is applied, on the controller
  dbarch.postgresql.data_dictionary:
    src: ["{{ playbook_dir }}/db/migrations"]
    dest: "{{ playbook_dir }}/reports/ddl"
    formats: [markdown, dbml, mermaid]
  delegate_to: localhost
"""

RETURN = r"""
files:
  description: Path of each file, by format, whether or not it changed.
  returned: always
  type: dict
  sample: {markdown: /srv/reports/data_dictionary.md, dbml: /srv/reports/data_dictionary.dbml}
changed_files:
  description: Paths of the files that were written (in check mode, that would be written).
  returned: always
  type: list
  elements: str
summary:
  description: Counts of the model (tables, views, columns, indexes, foreign keys...) and its source.
  returned: always
  type: dict
  sample: {source: ddl, tables: 4, foreign_keys: 3, tables_without_primary_key: 0}
queries:
  description: The SQL the module ran (empty with O(src)).
  returned: always
  type: list
  elements: str
"""

import os

from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import ddl
from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import dictionary as dd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.catalog import snapshot
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.reports import read_text, write_atomic


def _model(module):
    p = module.params
    if p["src"]:
        try:
            return ddl.catalog_from_paths(p["src"]), []
        except ImportError as exc:
            module.fail_json(msg=str(exc))
        except ValueError as exc:
            module.fail_json(msg="Cannot read the DDL: %s" % exc)
    return module.run(lambda session: snapshot(session, schemas=p["schemas"], column_stats=False))


ARGUMENT_SPEC = dict(
    src=dict(type="list", elements="path"),
    schemas=dict(type="list", elements="str"),
    dest=dict(type="path", required=True),
    formats=dict(type="list", elements="str", choices=list(dd.FORMATS)),
    title=dict(type="str"),
)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    module.require_absolute("src", "dest")
    cat, queries = _model(module)
    try:
        texts = dd.render(cat, formats=p["formats"], schemas=p["schemas"], title=p["title"])
    except DbarchError as exc:
        module.fail_from(exc)
    files = dd.files_for(texts, p["dest"])
    changed_files = []
    diff = []
    for fmt, (path, text) in sorted(files.items()):
        before = read_text(path)
        if before == text:
            continue
        changed_files.append(path)
        if fmt == "markdown":
            diff.append(dict(before=before or "", after=text, before_header=path, after_header=path))
        if not module.check_mode:
            try:
                write_atomic(path, text)
            except OSError as exc:
                module.fail_json(msg="Cannot write %s: %s" % (path, exc), changed_files=changed_files)
    summary = cat.summary()
    if cat.source == "ddl":
        summary["files"] = [os.path.abspath(f) for f in cat.meta.get("files", [])]
    result = dict(
        changed=bool(changed_files),
        files=dict((fmt, path) for fmt, (path, _text) in files.items()),
        changed_files=changed_files,
        summary=summary,
        queries=queries,
    )
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
