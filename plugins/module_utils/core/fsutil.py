# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small filesystem helpers: the collection's one atomic file writer.

Plain Python (standard library only), no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import tempfile


def fsync_dir(path):
    """fsync a folder, so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, data, mode=0o640, owner=None):
    """Write bytes (or text, as UTF-8) to a temp file beside ``path``, fsync it, rename it, fsync the
    folder: readers see the old file or the new one, never a part. ``owner``: (uid, gid) to give it.
    The collection's one such writer."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        if owner:
            os.chown(tmp, owner[0], owner[1])
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def read_bytes(path):
    """The bytes of ``path``, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
