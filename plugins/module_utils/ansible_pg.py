# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The thin Ansible side of the engine: argument specs and failure handling.

This is the only module_utils file (with its siblings named ansible_*) that imports
Ansible. Engine files stay plain Python.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import sys
import traceback

from ansible_collections.dbarch.postgresql.plugins.module_utils import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.findings import FAIL_ON_CHOICES


def connection_argument_spec():
    """A fresh copy of the shared connection options."""
    return copy.deepcopy(pg.CONNECTION_ARGSPEC)


def findings_argument_spec():
    """Options every analysis module shares."""
    return dict(
        fail_on=dict(type="str", default="never", choices=FAIL_ON_CHOICES),
        suppressions=dict(type="list", elements="dict", default=[]),
    )


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


def fail(module, exc, session=None, **extra):
    """fail_json for an engine error: message, SQLSTATE and the queries that ran."""
    if isinstance(exc, pg.PgError):
        extra.setdefault("sqlstate", exc.sqlstate)
        msg = str(exc)
    else:
        msg = "%s: %s" % (exc.__class__.__name__, exc)
        extra.setdefault("exception", traceback.format_exc())
    if session is not None:
        extra.setdefault("queries", session.queries)
        session.close()
    module.fail_json(msg=msg, **extra)


def run_with_session(module, work, autocommit=True):
    """Connect, run ``work(session)``, close. Returns (result, queries).

    An engine PgError becomes fail_json with the queries that ran; the session is
    closed whatever happens.
    """
    session = connect(module, autocommit=autocommit)
    try:
        result = work(session)
    except pg.PgError as exc:
        fail(module, exc, session)
    finally:
        session.close()
    return result, session.queries
