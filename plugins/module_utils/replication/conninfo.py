# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A standby's ``primary_conninfo``: built, compared, and its password kept out of it.

Plain Python (standard library only), no Ansible imports.

The password never goes into ``primary_conninfo`` (which any role that may read settings sees,
and which ``postgresql.auto.conf`` keeps on disk): it goes into a password file of its own,
``<data folder's parent>/.dbarch-<data folder name>.pgpass`` (mode 0600, owned by the data
folder's owner, outside the data folder so that neither pg_basebackup nor pg_rewind copies or
removes it), named by ``passfile=`` in the conninfo. A conninfo read from a server may still
hold a password (pg_basebackup -R writes one): every conninfo text this returns goes through
``proc.mask``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc

try:
    from psycopg2.extensions import parse_dsn
except ImportError:  # pragma: no cover - the module checks for the driver first
    parse_dsn = None
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

# The keywords the module decides; anything else a conninfo holds (pg_basebackup -R writes
# channel_binding, gssencmode, target_session_attrs...) is left to libpq's defaults.
MANAGED = ("user", "passfile", "password", "host", "port", "sslmode", "application_name")
# Values libpq uses when the keyword is absent: absent and these compare equal.
LIBPQ_DEFAULTS = {"sslmode": "prefer", "port": "5432"}
PRIMARY_KEYS = ("host", "port", "user", "password", "dbname", "sslmode", "application_name")
_UNQUOTED = re.compile(r"^[A-Za-z0-9_.,:/@+-]+$")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class ConninfoError(DbarchError):
    """A conninfo that cannot be read, or a primary given with unusable fields."""


def quote(value):
    """A conninfo value: bare when safe, else single-quoted with \\ and ' escaped."""
    text = str(value)
    if text and _UNQUOTED.match(text):
        return text
    return "'%s'" % text.replace("\\", "\\\\").replace("'", "\\'")


def build(keywords):
    """``key=value ...`` in MANAGED order (then any other key, sorted); None values left out."""
    order = [k for k in MANAGED if keywords.get(k) not in (None, "")]
    order += sorted(k for k in keywords if k not in MANAGED and keywords[k] not in (None, ""))
    return " ".join("%s=%s" % (key, quote(keywords[key])) for key in order)


def parse(text):
    """A key/value conninfo -> dict (libpq's rules: spaces around =, '...' with \\ escapes).
    A URI conninfo (postgresql://) is parsed by libpq through psycopg2 when present."""
    text = (text or "").strip()
    if text.startswith(("postgresql://", "postgres://")):
        if parse_dsn is None:  # pragma: no cover - the module always has the driver
            raise ConninfoError("primary_conninfo is a URI and psycopg2 is not installed to read it")
        try:
            return dict(parse_dsn(text))
        except Exception as exc:  # noqa: BLE001 - psycopg2.ProgrammingError, reworded
            raise ConninfoError("primary_conninfo cannot be read: %s" % proc.mask(str(exc))) from None
    out = {}
    pos, size = 0, len(text)
    while pos < size:
        while pos < size and text[pos].isspace():
            pos += 1
        if pos >= size:
            break
        eq = text.find("=", pos)
        if eq < 0:
            raise ConninfoError(
                "primary_conninfo cannot be read: missing '=' after %r" % text[pos:].split()[0]
            )
        key = text[pos:eq].strip()
        pos = eq + 1
        while pos < size and text[pos].isspace():
            pos += 1
        value = []
        if pos < size and text[pos] == "'":
            pos += 1
            while pos < size and text[pos] != "'":
                if text[pos] == "\\" and pos + 1 < size:
                    pos += 1
                value.append(text[pos])
                pos += 1
            if pos >= size:
                raise ConninfoError("primary_conninfo cannot be read: unterminated quoted value of %s" % key)
            pos += 1
        else:
            while pos < size and not text[pos].isspace():
                if text[pos] == "\\" and pos + 1 < size:
                    pos += 1
                value.append(text[pos])
                pos += 1
        out[key] = "".join(value)
    return out


def differences(current_text, wanted):
    """Managed keywords whose value differs between the current conninfo text and ``wanted``
    (a dict), sorted; [] when the standby already connects as wanted."""
    current = parse(current_text)
    changed = []
    for key in MANAGED:
        have = current.get(key) or LIBPQ_DEFAULTS.get(key)
        want = wanted.get(key)
        want = str(want) if want not in (None, "") else LIBPQ_DEFAULTS.get(key)
        if (have or None) != (want or None):
            changed.append(key)
    return changed


def passfile_path(data_dir):
    """Where the standby's password file lives: beside the data folder, not in it."""
    data_dir = os.path.abspath(data_dir)
    return os.path.join(os.path.dirname(data_dir), ".dbarch-%s.pgpass" % os.path.basename(data_dir))


def _pgpass_field(value):
    return str(value).replace("\\", "\\\\").replace(":", "\\:")


def passfile_text(primary):
    """The one line of the password file: host:port:*:user:password (any database, so both the
    replication connections and pg_rewind's SQL connection find it)."""
    return "%s:%s:*:%s:%s\n" % (
        _pgpass_field(primary["host"]),
        _pgpass_field(primary["port"]),
        _pgpass_field(primary["user"]),
        _pgpass_field(primary["password"]),
    )


def check_primary(primary):
    """The ``primary`` option, checked and normalised: host, port (int), user required; password,
    dbname (default postgres), sslmode, application_name optional. No line break or NUL anywhere
    (the values end up in a configuration file)."""
    if not isinstance(primary, dict):
        raise ConninfoError("primary must be a dict with host, port, user (and password, dbname, sslmode)")
    unknown = sorted(set(primary) - set(PRIMARY_KEYS))
    if unknown:
        raise ConninfoError(
            "primary: unknown key(s) %s; use %s" % (", ".join(unknown), ", ".join(PRIMARY_KEYS))
        )
    missing = [k for k in ("host", "user") if not primary.get(k)]
    if missing:
        raise ConninfoError("primary: %s missing (give host, port, user, password)" % ", ".join(missing))
    out = {k: primary.get(k) for k in PRIMARY_KEYS}
    try:
        out["port"] = int(primary.get("port") or 5432)
    except (TypeError, ValueError):
        raise ConninfoError("primary.port=%r is not a port number" % (primary.get("port"),)) from None
    out["dbname"] = primary.get("dbname") or "postgres"
    if out["sslmode"] and out["sslmode"] not in SSL_MODES:
        raise ConninfoError("primary.sslmode=%r: use one of %s" % (out["sslmode"], ", ".join(SSL_MODES)))
    for key, value in out.items():
        if value is not None and re.search(r"[\r\n\x00]", str(value)):
            raise ConninfoError(
                "primary.%s holds a line break or NUL byte, which a conninfo cannot carry" % key
            )
    return out


def wanted(primary, passfile):
    """The conninfo keywords of a standby of ``primary`` (passfile when a password is given)."""
    return {
        "user": primary["user"],
        "passfile": passfile if primary.get("password") else None,
        "host": primary["host"],
        "port": str(primary["port"]),
        "sslmode": primary.get("sslmode"),
        "application_name": primary.get("application_name"),
    }


def masked(text, secrets=()):
    """A conninfo text fit for output: password= values and the given secrets masked."""
    return proc.mask(text, secrets) if text is not None else None
