# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PgBouncer's files: the ``[databases]`` section of an ini file and the auth file (userlist).

Plain Python (standard library only), no Ansible imports.

- ``read_targets(text)``: the pools a file defines (alias -> {key: value}), as PgBouncer reads them.
- ``rewrite_databases(text, changes)``: the same text with some pool lines set, merged or removed;
  every other line (comments, blank lines, other sections, ``%include``) stays byte for byte, and a
  pool line that is not changed keeps its exact text.
- ``validate_changes(changes)``: aliases, keys and values checked before anything is written (no
  ``password=`` or ``user=``: no secret goes into a PgBouncer file; no character that could end the
  line or start another key).
- ``userlist_text`` / ``parse_userlist``: PgBouncer's auth file, one ``"name" "secret"`` line each.

PgBouncer's ini format (1.18): ``[section]`` headers, ``key = value`` lines, comments on their own
line starting with ``;`` or ``#``, ``%include file``. A pool line is ``alias = key=value key=value``;
a value may be single-quoted, with ``''`` for a quote inside.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


class PgBouncerConfigError(DbarchError, ValueError):
    """A PgBouncer file that cannot be read safely, or a change that cannot be written."""


# A pool name (PgBouncer "database" alias): what clients put in dbname.
ALIAS_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
# Values the module writes: host names and addresses, host lists, socket folders, numbers, names.
VALUE_RE = re.compile(r"^[A-Za-z0-9_.,:/@%+-]{1,255}$")
# Keys of a pool line the module may set (PgBouncer 1.18's [databases] keys, less user/password and
# connect_query, whose values do not fit VALUE_RE).
SETTABLE_KEYS = frozenset(
    (
        "dbname",
        "host",
        "port",
        "auth_user",
        "pool_size",
        "min_pool_size",
        "reserve_pool",
        "pool_mode",
        "max_db_connections",
        "client_encoding",
        "datestyle",
        "timezone",
    )
)
FORBIDDEN_KEYS = {
    "password": (
        "a password in a PgBouncer file is a plaintext secret: clients log in with SCRAM through auth_query "
        "and PgBouncer reaches the server with the client's SCRAM keys, so no password is needed here"
    ),
    "user": (
        "user= forces every client onto one server login, whose password would have to be stored in "
        "plaintext; leave it out so each client logs in as itself"
    ),
}
# The keys that say where a pool goes (compared to decide whether a pool is repointed).
TARGET_KEYS = ("host", "port", "dbname")
POOL_MODES = ("session", "transaction", "statement")

_SECTION_RE = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*$")
_KEY_LINE_RE = re.compile(r"^\s*([^=\s;#%][^=]*?)\s*=\s*(.*?)\s*$")
_PAIR_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^']|'')*'|[^\s']*)")


def _is_comment(line):
    stripped = line.strip()
    return not stripped or stripped[0] in ";#"


def parse_connstr(value, where="value"):
    """[(key, raw value text)] of a pool line's value, in order. Raises on text PgBouncer would
    not read the same way."""
    pairs = []
    pos = 0
    text = value.rstrip()
    while pos < len(text):
        match = _PAIR_RE.match(text, pos)
        if not match or match.end() == pos:
            raise PgBouncerConfigError(
                "%s: cannot read %r as PgBouncer key=value pairs (from %r); fix the line by hand"
                % (where, text[pos:], text)
            )
        pairs.append((match.group(1).lower(), match.group(2)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return pairs


def unquote(raw):
    """The value PgBouncer reads from a raw value text ('...' with '' for a quote)."""
    if len(raw) >= 2 and raw[0] == "'" and raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    return raw


def format_value(value):
    """A value as written on a pool line (quoted when it holds anything but the plain set)."""
    text = str(value)
    if VALUE_RE.match(text):
        return text
    return "'%s'" % text.replace("'", "''")


def _target(pairs):
    return {key: unquote(raw) for key, raw in pairs}


def _section_of(lines):
    """[(index, section name or None)] for every line."""
    out = []
    section = None
    for index, line in enumerate(lines):
        match = _SECTION_RE.match(line)
        if match:
            section = match.group(1).strip().lower()
        out.append((index, section))
    return out


def _pool_lines(lines, path="the file"):
    """{alias: (line index, [(key, raw)])} of the [databases] section(s); raises on a duplicate."""
    pools = {}
    for index, section in _section_of(lines):
        line = lines[index]
        if section != "databases" or _is_comment(line) or _SECTION_RE.match(line):
            continue
        if line.lstrip().startswith("%"):
            continue
        match = _KEY_LINE_RE.match(line)
        if not match:
            raise PgBouncerConfigError(
                "%s line %d: %r is not an 'alias = key=value ...' line; fix it by hand"
                % (path, index + 1, line)
            )
        alias = match.group(1).strip().strip('"')
        if alias in pools:
            raise PgBouncerConfigError(
                "%s defines pool %s twice (lines %d and %d): PgBouncer would use one of them; remove one"
                % (path, alias, pools[alias][0] + 1, index + 1)
            )
        pools[alias] = (index, parse_connstr(match.group(2), "%s line %d" % (path, index + 1)))
    return pools


def split_lines(text):
    """Lines without their line ends (a final line end does not make an empty last line)."""
    lines = (text or "").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_targets(text, path="the file"):
    """alias -> {key: value} of every pool in the [databases] section(s) of ``text``."""
    return {alias: _target(pairs) for alias, (_i, pairs) in _pool_lines(split_lines(text), path).items()}


def validate_changes(changes):
    """Check the wanted pools before anything is written; returns them normalised
    (alias -> {key: str value or None} or None for a pool to remove)."""
    if not isinstance(changes, dict) or not changes:
        raise PgBouncerConfigError("databases: give at least one pool (alias: {host, port, dbname})")
    out = {}
    for name, spec in changes.items():
        alias = str(name)
        if not ALIAS_RE.match(alias):
            raise PgBouncerConfigError(
                "databases: pool name %r: use 1-63 letters, digits, '_', '.' or '-' (it is the dbname "
                "clients ask PgBouncer for)" % alias
            )
        if spec is None:
            out[alias] = None
            continue
        if not isinstance(spec, dict) or not spec:
            raise PgBouncerConfigError(
                "databases.%s: give a dict of PgBouncer keys such as host, port and dbname (or null to "
                "remove the pool)" % alias
            )
        clean = {}
        for name_of_key, value in spec.items():
            key = str(name_of_key).lower()
            if key in FORBIDDEN_KEYS:
                raise PgBouncerConfigError(
                    "databases.%s.%s is not accepted: %s." % (alias, key, FORBIDDEN_KEYS[key])
                )
            if key not in SETTABLE_KEYS:
                raise PgBouncerConfigError(
                    "databases.%s.%s: unknown key; use %s" % (alias, key, ", ".join(sorted(SETTABLE_KEYS)))
                )
            if value is None:
                clean[key] = None
                continue
            text = str(value).strip()
            if not VALUE_RE.match(text):
                raise PgBouncerConfigError(
                    "databases.%s.%s=%r: use letters, digits and . , : / @ %% + - _ only (no spaces, quotes "
                    "or line breaks)" % (alias, key, text)
                )
            if key in ("port", "pool_size", "min_pool_size", "reserve_pool", "max_db_connections"):
                if not text.isdigit() or (key == "port" and not 0 < int(text) < 65536):
                    raise PgBouncerConfigError(
                        "databases.%s.%s=%r must be a whole number" % (alias, key, text)
                    )
                text = str(int(text))
            if key == "pool_mode" and text not in POOL_MODES:
                raise PgBouncerConfigError(
                    "databases.%s.pool_mode=%r: use %s" % (alias, text, ", ".join(POOL_MODES))
                )
            clean[key] = text
        out[alias] = clean
    return out


def _merged_pairs(pairs, spec):
    """The pool's pairs with ``spec`` applied: given keys set in place (or removed for None),
    new keys appended, untouched pairs kept as written."""
    out = []
    seen = set()
    for key, raw in pairs:
        if key in spec:
            seen.add(key)
            if spec[key] is not None:
                out.append((key, raw if unquote(raw) == spec[key] else format_value(spec[key])))
        else:
            out.append((key, raw))
    for key in _ordered_keys(spec):
        if key not in seen and spec[key] is not None:
            out.append((key, format_value(spec[key])))
    return out


def _ordered_keys(spec):
    """host, port, dbname first (the way people read a pool line), then the rest sorted."""
    first = [k for k in TARGET_KEYS if k in spec]
    return first + sorted(k for k in spec if k not in TARGET_KEYS)


def pool_line(alias, pairs):
    return "%s = %s" % (alias, " ".join("%s=%s" % (k, v) for k, v in pairs))


def rewrite_databases(text, changes, path="the file"):
    """(new text, before, after): ``text`` with the pools of ``changes`` (validated by
    validate_changes) written. ``before``/``after``: alias -> target dict for the pools named in
    ``changes`` (None where the pool does not exist). Lines of other pools, comments, blank lines and
    other sections are kept as they are. A file without a [databases] section gets one at the end."""
    lines = split_lines(text)
    pools = _pool_lines(lines, path)
    before = {alias: (_target(pools[alias][1]) if alias in pools else None) for alias in changes}
    after = {}
    replace = {}
    remove = set()
    append = []
    for alias, spec in changes.items():
        if spec is None:
            after[alias] = None
            if alias in pools:
                remove.add(pools[alias][0])
            continue
        current = pools[alias][1] if alias in pools else []
        merged = _merged_pairs(current, spec)
        after[alias] = _target(merged)
        if alias in pools:
            if merged != current:
                replace[pools[alias][0]] = pool_line(alias, merged)
        else:
            append.append(pool_line(alias, merged))
    out = []
    for index, line in enumerate(lines):
        if index in remove:
            continue
        out.append(replace.get(index, line))
    if append:
        out = _append_pools(out, append)
    new_text = "\n".join(out) + "\n" if out else ""
    if new_text == _normal(text):
        new_text = text
    return new_text, before, after


def _normal(text):
    text = text or ""
    return text if text.endswith("\n") or not text else text + "\n"


def _append_pools(lines, new_lines):
    """Insert ``new_lines`` after the last pool line of the last [databases] section (or after its
    header; never after an ``%include``, whose file may switch sections), or add a [databases]
    section at the end."""
    sections = _section_of(lines)
    header = None
    last = None
    for index, section in sections:
        if _SECTION_RE.match(lines[index]) and section == "databases":
            header = index
            last = index
        elif (
            section == "databases"
            and header is not None
            and not _is_comment(lines[index])
            and not lines[index].lstrip().startswith("%")
        ):
            last = index
    if header is None:
        tail = list(lines)
        if tail and tail[-1].strip():
            tail.append("")
        return tail + ["[databases]"] + new_lines
    return lines[: last + 1] + new_lines + lines[last + 1 :]


def targets_equal(wanted, actual):
    """Whether a pool's live or written target (``actual``) matches ``wanted`` on the keys wanted
    names (ports compared as numbers)."""
    if wanted is None or actual is None:
        return wanted is None and actual is None
    for key, value in wanted.items():
        have = actual.get(key)
        if value is None:
            if have not in (None, ""):
                return False
            continue
        if key == "port":
            if str(have or "5432") != str(value):
                return False
        elif str(have) != str(value):
            return False
    return True


def new_file_text(comment_lines=()):
    """The text of a new pools file: a comment and the [databases] header."""
    lines = ["; %s" % c for c in comment_lines] + ["[databases]"]
    return "\n".join(lines) + "\n"


# -- auth file (userlist) ------------------------------------------------------------

_USERLIST_RE = re.compile(r'^\s*"((?:[^"]|"")*)"\s+"((?:[^"]|"")*)"')


def _quote_userlist(text):
    return '"%s"' % str(text).replace('"', '""')


def userlist_text(entries, comment_lines=()):
    """PgBouncer's auth file for (name, secret) entries."""
    lines = ["; %s" % c for c in comment_lines]
    for name, secret in entries:
        for value, what in ((name, "name"), (secret, "secret")):
            if any(ch in str(value) for ch in "\r\n\x00"):
                raise PgBouncerConfigError("auth file: the %s holds a line break or NUL byte" % what)
        lines.append("%s %s" % (_quote_userlist(name), _quote_userlist(secret)))
    return "\n".join(lines) + "\n"


def parse_userlist(text):
    """[(name, secret)] of an auth file (comments and blank lines skipped)."""
    out = []
    for line in split_lines(text):
        if _is_comment(line):
            continue
        match = _USERLIST_RE.match(line)
        if match:
            out.append((match.group(1).replace('""', '"'), match.group(2).replace('""', '"')))
    return out
