# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Logical dumps with pg_dump -Fc and their restore with pg_restore.

Used by the migrations role for its pre-migration backup and its rollback. The client
binaries are those of the server's major (a pg_dump older than the server refuses to
run), found through ``localcluster.find_bindir`` or given as ``bindir``.

- The connection comes from the same options as every module (``pg.resolve_params``) and
  reaches pg_dump through libpq's environment; the password never appears on a command
  line, in the returned command or in a message.
- A dump is written to ``<path>.partial``, fsynced, checked with ``pg_restore --list``
  and only then renamed to ``path``: a file at ``path`` is always a complete dump.
- A restore runs ``pg_restore --exit-on-error --single-transaction`` by default, so a
  failure part way leaves the database as it was.

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import hashlib
import os
import shutil
import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import fsutil
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc


class DumpError(DbarchError):
    """What failed, where, and how to fix it; never holds a password."""


def libpq_environment(params, module_name="dump"):
    """The environment that points pg_dump/pg_restore at the same server as the modules."""
    kw = pg.resolve_params(params)
    ours = pg.libpq_environment(kw)
    # The PG* variables the options map to come from the options alone (a stale one in the
    # environment must not win); others (PGPASSFILE, PGSERVICE...) stay as they are.
    env = dict((k, v) for k, v in os.environ.items() if k not in pg.LIBPQ_ENV_NAMES)
    env.update(ours)
    env["PGAPPNAME"] = "dbarch.%s" % module_name
    return env, kw.get("password")


def client_bindir(major, bindir=None):
    """The folder holding pg_dump/pg_restore for ``major`` (or ``bindir`` when given)."""
    if bindir:
        if not os.path.isfile(os.path.join(bindir, "pg_dump")):
            raise DumpError(
                "bindir %s holds no pg_dump; give the bin folder of PostgreSQL %s." % (bindir, major)
            )
        return bindir
    try:
        return lc.find_bindir(major)
    except lc.LocalClusterError as exc:
        found = shutil.which("pg_dump")
        if found:
            return os.path.dirname(found)
        raise DumpError(
            "No pg_dump for PostgreSQL %s on this host: %s (or give bindir)." % (major, exc)
        ) from None


def _run(argv, env, password, what, timeout=None):
    try:
        res = proc.run(argv, env=env, timeout=timeout, check=False, secrets=[password], what=what)
    except proc.ProcError as exc:
        if exc.timed_out:
            raise DumpError("%s did not finish within %s seconds." % (what, timeout)) from None
        raise DumpError("%s could not start %s: %s" % (what, argv[0], exc)) from None
    if res.returncode != 0:
        lines = [x.strip() for x in (res.stderr or res.stdout or "").strip().splitlines() if x.strip()]
        # The program's own error lines say what went wrong; the SQL it echoes after them does not.
        errors = [x for x in lines if "error:" in x or "FATAL" in x or x.startswith("DETAIL")]
        shown = " | ".join((errors or lines)[-5:]) or "no output"
        raise DumpError("%s failed (exit %d): %s" % (what, res.returncode, shown))
    return res


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def archive_entries(path, bindir, env=None, password=None):
    """Number of entries ``pg_restore --list`` reads from a custom-format dump (it is readable)."""
    res = _run(
        [os.path.join(bindir, "pg_restore"), "--list", path],
        env or dict(os.environ),
        password,
        "Reading the dump %s" % path,
    )
    return len([x for x in res.stdout.splitlines() if x.strip() and not x.startswith(";")])


def dump_mode(group=None):
    """Mode of a dump file: 0600 (it holds all the data), 0640 when a group may read it."""
    return 0o640 if group else 0o600


def group_id(group):
    """The gid of a group name or number, or DumpError."""
    if group is None:
        return None
    try:
        return grp.getgrnam(str(group)).gr_gid
    except KeyError:
        if str(group).isdigit():
            return int(group)
        raise DumpError("group=%r: no such group on this host." % (group,)) from None


def _private_file(path, mode, gid=None):
    """Create ``path`` empty with ``mode`` (never readable by others, whatever the umask)."""
    if os.path.lexists(path):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        if gid is not None:
            os.fchown(fd, -1, gid)
    finally:
        os.close(fd)


def dump(
    params,
    path,
    major,
    bindir=None,
    schemas=None,
    exclude_schemas=None,
    compress=None,
    timeout=None,
    group=None,
):
    """pg_dump -Fc of the connected database to ``path``. Returns facts about the dump.

    The file is written 0600 (0640 and owned by ``group`` when given): it holds all the data.
    """
    if not os.path.isabs(path):
        raise DumpError("path=%r must be an absolute path." % (path,))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise DumpError("The folder of %s does not exist: create %s first." % (path, folder))
    mode = dump_mode(group)
    gid = group_id(group)
    bindir = client_bindir(major, bindir)
    env, password = libpq_environment(params)
    partial = path + ".partial"
    _private_file(partial, mode, gid)
    argv = [os.path.join(bindir, "pg_dump"), "--format=custom", "--no-password", "--file", partial]
    if compress is not None:
        argv.append("--compress=%s" % compress)
    for s in schemas or ():
        argv += ["--schema", s]
    for s in exclude_schemas or ():
        argv += ["--exclude-schema", s]
    started = time.monotonic()
    try:
        _run(argv, env, password, "pg_dump of %s" % env.get("PGDATABASE", "the database"), timeout)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        entries = archive_entries(partial, bindir, env, password)
        os.chmod(partial, mode)  # pg_dump keeps the mode of the file it truncates; make sure
        os.replace(partial, path)
        fsutil.fsync_dir(folder)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return dict(
        path=path,
        mode="%04o" % mode,
        bytes=os.path.getsize(path),
        sha256=sha256_of(path),
        entries=entries,
        seconds=round(time.monotonic() - started, 3),
        command=" ".join(argv).replace(partial, path),
        bindir=bindir,
    )


def restore(params, path, major, bindir=None, clean=False, single_transaction=True, timeout=None):
    """pg_restore of a custom-format dump into the connected database."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise DumpError("No dump at %s: nothing to restore." % path)
    bindir = client_bindir(major, bindir)
    env, password = libpq_environment(params)
    entries = archive_entries(path, bindir, env, password)
    db = env.get("PGDATABASE")
    if not db:
        raise DumpError("Restore needs the target database: set login_db.")
    argv = [os.path.join(bindir, "pg_restore"), "--exit-on-error", "--no-password", "--dbname", db]
    if single_transaction:
        argv.append("--single-transaction")
    if clean:
        argv += ["--clean", "--if-exists"]
    argv.append(path)
    started = time.monotonic()
    _run(argv, env, password, "pg_restore of %s into %s" % (path, db), timeout)
    return dict(
        path=path,
        entries=entries,
        seconds=round(time.monotonic() - started, 3),
        command=" ".join(argv),
        bindir=bindir,
    )
