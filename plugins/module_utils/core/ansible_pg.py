# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The thin Ansible side of the engine's connection: open a pg.Session for a module.

Modules reach it through ``ansible_module.DbarchModule.connect()``; ``connect(module, params=...)``
opens a second session (another database) for a module that needs one. The argument specs and
the failure handling live in ansible_module.py.

This is the only module_utils file (with its siblings named ansible_*) that imports
Ansible. Engine files stay plain Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import sys

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg


def module_name(module):
    name = getattr(module, "_name", "") or "module"
    return name.rsplit(".", 1)[-1]


def check_driver(module):
    if not pg.HAS_PSYCOPG2:
        module.fail_json(msg=pg.MISSING_DRIVER_MESSAGE.format(python=sys.executable))


def connect(module, autocommit=True, params=None):
    """Open a pg.Session for a module, or fail_json with the engine's one-line message."""
    check_driver(module)
    try:
        return pg.connect(params or module.params, module_name(module), autocommit=autocommit)
    except pg.PgError as exc:
        module.fail_json(msg=str(exc), sqlstate=exc.sqlstate)
