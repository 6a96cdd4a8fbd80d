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
- has check-mode helpers (``would()``, ``exit_planned()``) and ``definition_diff()`` for a
  module whose before and after are one SQL definition;
- with ``findings=True``, adds the options every analysis module shares (``fail_on``,
  ``suppressions``) and ends the run with ``exit_findings(found, ...)``: exit, or fail when a
  finding reaches ``fail_on``;
- with ``aws_options=True`` (the AWS modules), adds the shared AWS options (aws.AWS_ARGSPEC:
  region, endpoint_url, keys and session token no_log, profile; doc fragment
  ``dbarch.postgresql.aws``) and builds the boto3 client from them (``aws_client(service)``);
- with ``user_statements=True`` (modules that plan the user's SQL statements: explain,
  index_advice_info), adds the options of the role they run as (``explain_role``,
  ``allow_superuser_statements``) and masks password literals (redact.statement) in a failure
  and in the ``queries`` returned by ``run()``;
- turns any engine error (``errors.DbarchError``) into ``fail_json`` in one place
  (``fail_from(exc)``): the message, the SQLSTATE where known, what the engine had done
  (an error's ``result`` dict), the queries that ran, never a traceback for a DbarchError
  (nor for an OSError: a missing file or a full disk is the host's, not a bug), never a
  secret.

This file (like ansible_pg.py) is one of the only module_utils files that import Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import ansible_pg, pg, proc, redact
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


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


# The options every analysis module shares (modules built with findings=True).
FINDINGS_SPEC = dict(
    fail_on=dict(type="str", default="never", choices=fnd.FAIL_ON_CHOICES),
    suppressions=dict(type="list", elements="dict", default=[]),
)

# The role that runs the user's statements (modules built with user_statements=True).
STATEMENT_ROLE_SPEC = dict(
    explain_role=dict(type="str"),
    allow_superuser_statements=dict(type="bool", default=False),
)


def _aws():
    """core/aws.py, imported only by the AWS modules: it imports boto3 (0.2 s and more), which the
    PostgreSQL modules never need."""
    from ansible_collections.dbarch.postgresql.plugins.module_utils.core import aws  # noqa: PLC0415

    return aws


def definition_diff(label, before, after):
    """The ``diff`` of an object whose state is one definition (an index, a materialized view):
    ``label`` names it (``index "public"."ix"``); ``before``/``after`` are None where it does not
    exist."""
    return dict(
        before_header="%s (before)" % label,
        after_header="%s (after)" % label,
        before=before + "\n" if before else "",
        after=after + "\n" if after else "",
    )


class DbarchModule(AnsibleModule):
    """AnsibleModule with the collection's connection options, connect(), check-mode helpers and
    fail_from(exc)."""

    def __init__(
        self,
        argument_spec=None,
        connection_aliases=True,
        findings=False,
        user_statements=False,
        aws_options=False,
        **kwargs,
    ):
        own = copy.deepcopy(FINDINGS_SPEC) if findings else {}
        if user_statements:
            own.update(copy.deepcopy(STATEMENT_ROLE_SPEC))
        if aws_options:
            own.update(copy.deepcopy(_aws().AWS_ARGSPEC))
        own.update(argument_spec or {})
        taken = set(own)
        for option in own.values():
            taken.update(option.get("aliases", []))
        spec = connection_spec(taken=taken, aliases=connection_aliases)
        for name in own:
            spec.pop(name, None)
        spec.update(own)
        self.session = None
        self.redact_statements = user_statements
        super(DbarchModule, self).__init__(argument_spec=spec, **kwargs)

    # -- connection --------------------------------------------------------------------
    def connect(self, autocommit=True, params=None):
        """A pg.Session (fail_json with the engine's one-line message when it cannot connect)."""
        self.session = ansible_pg.connect(self, autocommit=autocommit, params=params)
        return self.session

    def close(self):
        if self.session is not None:
            self.session.close()

    # -- AWS -----------------------------------------------------------------------------
    def aws_client(self, service, **kwargs):
        """A boto3 client of ``service`` from the shared AWS options (a module built with
        ``aws_options=True``); raises aws.AwsError (a DbarchError) when it cannot be built."""
        aws = _aws()
        options = aws.options_of(self.params)
        options.update(kwargs)
        return aws.client(service, what=ansible_pg.module_name(self), **options)

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
        """fail_json for an exception: its message, SQLSTATE where known, what the engine had done
        before it failed (the error's ``result`` dict, as IndexError_ and MatviewError carry), the
        queries that ran.

        A DbarchError never gets a traceback (its message is what the DBA acts on), nor does an
        OSError (a file or folder of the host: ``msg_prefix`` says which); anything else is a bug:
        its class name and traceback go with it. Secrets are scrubbed from the message.
        """
        session = session if session is not None else self.session
        if isinstance(exc, OSError):
            msg = str(exc)
        elif isinstance(exc, DbarchError):
            msg = str(exc)
            for key, value in exc.details().items():
                extra.setdefault(key, value)
            done = getattr(exc, "result", None)
            for key, value in (done if isinstance(done, dict) else {}).items():
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
        if self.redact_statements:
            msg, extra = redact.statement(msg), redact.walk(extra)
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
        return result, self.queries()

    def queries(self):
        """The queries of the session (password literals masked with ``redact_statements``)."""
        queries = self.session.queries if self.session is not None else []
        return redact.walk(queries) if self.redact_statements else queries

    # -- findings (modules built with findings=True) -------------------------------------
    def suppress(self, findings, **extra):
        """The findings left once the ``suppressions`` option is applied, and the suppressions
        that matched none (a bad suppression is fail_from: ``extra`` goes with it)."""
        try:
            return fnd.apply_suppressions(findings, self.params["suppressions"])
        except fnd.FindingError as exc:
            self.fail_from(exc, **extra)

    def exit_findings(self, found, **result):
        """Exit with ``found`` (as dicts in ``findings``) and changed=false, or fail_json with the
        same result, ``msg`` saying why, when a finding reaches the ``fail_on`` option."""
        result.update(changed=False, findings=[f.to_dict() for f in found])
        failing = fnd.gate(found, self.params["fail_on"])
        if failing:
            result["msg"] = fnd.gate_message(failing, self.params["fail_on"])
            self.fail_json(**result)
        self.exit_json(**result)
