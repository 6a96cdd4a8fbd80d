# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one module base of the collection (in the spirit of amazon.aws's AnsibleAWSModule).

``DbarchModule`` is an AnsibleModule that

- adds the shared connection options (pg.CONNECTION_ARGSPEC, ``login_password`` no_log) to
  every module, so one ``module_defaults: {group/dbarch.postgresql.all: ...}`` block works
  for all of them; an alias that is also one of the module's own options (``port`` of
  local_cluster, ``user`` of scheduled_job) is left out;
- opens the connection (``connect()``), recording the session so its ``queries`` go with a
  failure;
- has check-mode helpers (``would()``, ``exit_planned()``);
- turns any engine error (``errors.DbarchError``) into ``fail_json`` in one place
  (``fail_from(exc)``): the message, the SQLSTATE where known, the queries that ran, never
  a traceback for a DbarchError, never a secret.

This file (like ansible_pg.py) is one of the only module_utils files that import Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dbarch.postgresql.plugins.module_utils import ansible_pg, pg, proc
from ansible_collections.dbarch.postgresql.plugins.module_utils.errors import DbarchError


def connection_spec(taken=(), aliases=True):
    """The shared connection options, minus aliases that clash with ``taken`` option names."""
    spec = copy.deepcopy(pg.CONNECTION_ARGSPEC)
    taken = set(taken)
    for option in spec.values():
        kept = [a for a in option.get("aliases", []) if aliases and a not in taken]
        if kept:
            option["aliases"] = kept
        else:
            option.pop("aliases", None)
    return spec


def require_absolute(module, *names):
    """fail_json when a path option (or an element of a list of paths) is relative: it would be taken
    from the module's working directory on the host, which nobody chooses on purpose. URLs
    (s3://bucket/prefix) are not paths and pass. Usable with any AnsibleModule."""
    for name in names:
        value = module.params.get(name)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item in (None, ""):
                continue
            text = str(item)
            if "://" in text or os.path.isabs(text):
                continue
            module.fail_json(
                msg="%s=%r must be an absolute path (a relative one would be taken from the module's "
                "working directory on the host): write it in full, e.g. /var/lib/postgresql/..."
                % (name, text)
            )


class DbarchModule(AnsibleModule):
    """AnsibleModule with the collection's connection options, connect(), check-mode helpers and
    fail_from(exc)."""

    def __init__(self, argument_spec=None, connection_aliases=True, **kwargs):
        own = dict(argument_spec or {})
        taken = set(own)
        for option in own.values():
            taken.update(option.get("aliases", []))
        spec = connection_spec(taken=taken, aliases=connection_aliases)
        for name in own:
            spec.pop(name, None)
        spec.update(own)
        self.session = None
        super(DbarchModule, self).__init__(argument_spec=spec, **kwargs)

    # -- connection --------------------------------------------------------------------
    def connect(self, autocommit=True, params=None):
        """A pg.Session (fail_json with the engine's one-line message when it cannot connect)."""
        self.session = ansible_pg.connect(self, autocommit=autocommit, params=params)
        return self.session

    def close(self):
        if self.session is not None:
            self.session.close()

    # -- check mode --------------------------------------------------------------------
    def would(self, action):
        """'would <action>' in check mode, '<action>' otherwise (for lists of planned actions)."""
        return ("would " + action) if self.check_mode else action

    def exit_planned(self, **result):
        """In check mode: exit with what would be done (nothing was changed). Otherwise return."""
        if self.check_mode:
            self.close()
            self.exit_json(**result)

    # -- input -------------------------------------------------------------------------
    def require_absolute(self, *names):
        require_absolute(self, *names)

    # -- failures ----------------------------------------------------------------------
    def _secrets(self):
        values = [self.params.get("login_password")] if isinstance(self.params, dict) else []
        values += list(getattr(self, "no_log_values", ()) or ())
        return [v for v in values if v and isinstance(v, str) and len(v) > 0]

    def fail_from(self, exc, session=None, msg_prefix=None, **extra):
        """fail_json for an exception: its message, SQLSTATE where known, the queries that ran.

        A DbarchError never gets a traceback (its message is what the DBA acts on); anything else
        is a bug: its class name and traceback go with it. Secrets are scrubbed from the message.
        """
        session = session if session is not None else self.session
        if isinstance(exc, DbarchError):
            msg = str(exc)
            for key, value in exc.details().items():
                extra.setdefault(key, value)
        else:
            msg = "%s: %s" % (exc.__class__.__name__, exc)
            extra.setdefault("exception", traceback.format_exc())
        if msg_prefix:
            msg = "%s: %s" % (msg_prefix, msg)
        msg = proc.mask(msg, self._secrets())
        if session is not None:
            extra.setdefault("queries", list(session.queries))
            session.close()
        self.fail_json(msg=msg, **extra)

    def run(self, work, autocommit=True):
        """Connect, run ``work(session)``, close; a DbarchError becomes fail_from. Returns
        (result, queries)."""
        session = self.connect(autocommit=autocommit)
        try:
            result = work(session)
        except DbarchError as exc:
            self.fail_from(exc, session)
        finally:
            session.close()
        return result, session.queries
