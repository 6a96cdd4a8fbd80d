# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Problems that both the migration lint and the schema review judge, defined once.

A migration that declares ``timestamp`` and a schema whose column is ``timestamp`` show the
same problem: the lint rule (ML-0NN, on the migration) and the schema review rule
(SR-TYPE-NNN, on the catalog) register with the same problem key in the findings registry,
so they take one severity, one "why" and one set of references from here.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.findings import define_problem

_DATATYPE_DOC = "https://www.postgresql.org/docs/current/datatype.html"
_IDENT_DOC = "https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS"

TIMESTAMP_WITHOUT_TZ = define_problem(
    "timestamp-without-time-zone",
    "medium",
    "timestamp without time zone",
    "It stores wall-clock time with no zone: the same instant written from sessions with different "
    "TimeZone settings reads back differently, and DST changes make values ambiguous.",
    ("https://www.postgresql.org/docs/current/datatype-datetime.html",),
)
CHAR_N = define_problem(
    "char-n",
    "low",
    "char(n) column",
    "char(n) pads with spaces, which leak into comparisons with text and into the application; it is "
    "no faster than text in PostgreSQL.",
    ("https://www.postgresql.org/docs/current/datatype-character.html",),
)
VARCHAR_N = define_problem(
    "varchar-n",
    "low",
    "varchar(n) instead of text",
    "varchar(n) and text are stored the same way; the limit in the type can only be changed by ALTER "
    "TABLE (lowering it rewrites the table), while a CHECK constraint states a real business limit and "
    "can be replaced with NOT VALID + VALIDATE without a long lock.",
    ("https://www.postgresql.org/docs/current/datatype-character.html",),
)
SERIAL_NOT_IDENTITY = define_problem(
    "serial-not-identity",
    "low",
    "serial column instead of identity",
    "serial creates a sequence owned separately (grants, dumps and ownership go wrong) and does not "
    "stop writes that bypass it; an identity column owns its sequence in the standard way.",
    ("https://www.postgresql.org/docs/current/sql-createtable.html",),
)
INT4_KEY_OVERFLOW = define_problem(
    "int4-key-overflow",
    "medium",
    "32-bit (or smaller) integer key that runs out",
    "When the key's sequence reaches 2^31-1 (32,767 for smallint) every INSERT fails, and the change "
    "to bigint then rewrites the table and every referencing table under ACCESS EXCLUSIVE locks.",
    (_DATATYPE_DOC,),
)
LONG_IDENTIFIER = define_problem(
    "identifier-too-long",
    "medium",
    "Identifier longer than 63 bytes",
    "PostgreSQL silently truncates the name to 63 bytes, so two long names that share their first 63 "
    "bytes collide, and code that uses the full name no longer matches the catalog.",
    (_IDENT_DOC,),
)
