# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Password literals out of SQL text, before any statement text leaves the engine.

pg_stat_statements keeps the text of utility statements as they were sent (on 15 and
before, ``ALTER ROLE app PASSWORD 'secret'`` is recorded verbatim), and a SELECT may carry
a connection string (dblink, postgres_fdw) with ``password=...``. ``statement(text)``
replaces:

- the literal after ``PASSWORD`` (``[ENCRYPTED | UNENCRYPTED] PASSWORD '...'`` of
  CREATE/ALTER ROLE/USER/GROUP, ``OPTIONS (password '...')`` of CREATE/ALTER USER MAPPING
  and SERVER);
- ``password=...`` inside connection strings (``'host=db password=s3cret'``) and the
  password of a ``postgresql://user:secret@host`` URI;

with ``MASK``. ``walk(obj)`` applies it to every string of a JSON-like document (a plan).
Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.proc import MASK

# A SQL string literal: '...' with '' inside, E'...' with \' too, or $tag$...$tag$.
_LITERAL = r"(?:[EeNn]?'(?:[^'\\]|''|\\.)*'|\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)"
# PASSWORD '...' (optionally ENCRYPTED/UNENCRYPTED, optionally the quoted "password" key of OPTIONS).
_PASSWORD_LITERAL = re.compile(r"(?P<key>\b(?:PASSWORD|\"password\")\s*)" + _LITERAL, re.I | re.S)
# password=value inside a conninfo string (value quoted with '' or \' inside a literal, or bare).
_CONNINFO = re.compile(
    r"(?P<key>\bpassword\s*=\s*)(?:\\'(?:[^'\\]|\\.)*\\'|''(?:[^']|'''')*?''|[^\s'\"]+)", re.I
)
# postgresql://user:secret@host
_URI = re.compile(r"(?P<key>\bpostgres(?:ql)?://[^:/@\s'\"]*:)[^@\s'\"]+(?=@)", re.I)


def statement(text):
    """``text`` with every password literal replaced by MASK; None and non-strings as they are."""
    if not isinstance(text, str) or not text:
        return text
    if "assword" not in text and "ASSWORD" not in text and "://" not in text:
        return text
    out = _PASSWORD_LITERAL.sub(lambda m: m.group("key") + "'" + MASK + "'", text)
    out = _CONNINFO.sub(lambda m: m.group("key") + MASK, out)
    return _URI.sub(lambda m: m.group("key") + MASK, out)


def walk(obj):
    """A copy of a JSON-like value with ``statement`` applied to every string in it."""
    if isinstance(obj, str):
        return statement(obj)
    if isinstance(obj, dict):
        return dict((k, walk(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return [walk(v) for v in obj]
    return obj
