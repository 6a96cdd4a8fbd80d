# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host checks: permissions of the data directory, the configuration files and the TLS key,
when the module runs on the database host (else the check is skipped, e.g. on RDS).

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.security.rules import finding


class NotOnHost(DbarchError):
    """The server's files are not visible where the module runs."""


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def data_directory(ctx):
    data_dir = ctx.setting("data_directory")
    if not data_dir:
        raise NotOnHost(
            "data_directory is not readable with the login role's rights (needs pg_read_all_settings)"
        )
    if not os.path.isfile(os.path.join(data_dir, "PG_VERSION")):
        raise NotOnHost(
            "the data directory %s is not visible where the module runs (not on the database host)" % data_dir
        )
    return data_dir


def check_files(ctx):
    data_dir = data_directory(ctx)
    out = []
    mode = _mode(data_dir)
    if mode & 0o027:
        out.append(
            finding(
                "SEC070",
                data_dir,
                "Data directory %s has mode %04o (group write or any access by others)." % (data_dir, mode),
                "chmod 0700 %s" % data_dir,
                evidence=dict(mode="%04o" % mode),
            )
        )
    for name in ("hba_file", "config_file", "ident_file"):
        path = ctx.setting(name)
        if not path or not os.path.exists(path):
            continue
        mode = _mode(path)
        if mode & 0o037:
            out.append(
                finding(
                    "SEC071",
                    path,
                    "%s (%s) has mode %04o." % (path, name, mode),
                    "chmod 0600 %s" % path,
                    evidence=dict(mode="%04o" % mode),
                )
            )
    if ctx.setting("ssl") == "on":
        key = ctx.data_path(ctx.setting("ssl_key_file") or "server.key")
        if key and os.path.exists(key):
            mode = _mode(key)
            if mode & 0o037:
                out.append(
                    finding(
                        "SEC072",
                        key,
                        "TLS private key %s has mode %04o." % (key, mode),
                        "chmod 0600 %s" % key,
                        evidence=dict(mode="%04o" % mode),
                    )
                )
    return out
