# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX/Tower as code: the job template definitions of playbooks/awx/vars/job_templates.yml turned into
the parameters of the awx.awx modules (execution_environment, project, inventory, inventory_source,
credential_type, credential, notification_template, job_template, schedule), the way
playbooks/awx/configure.yml passes them (filter dbarch.postgresql.awx_objects).

The same functions give what AWX hands ansible-runner for a job (``job_extra_vars``: the job
template's extra vars with the survey's defaults on top), so a test can run a job template the way
AWX would without AWX, and list the workflow playbooks a job template is owed (``workflow_playbooks``).

Plain Python: no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

# Playbooks of playbooks/ that are not workflows an operator schedules or launches: the sandbox
# (the embedded demo clusters) and site.yml (every workflow on the sandbox, for the demo).
NOT_WORKFLOWS = frozenset(("sandbox.yml", "site.yml"))
SURVEY_TYPES = frozenset(
    ("text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect")
)
CREDENTIAL_KEYS = ("postgresql", "aws")


class AwxDefinitionError(DbarchError, ValueError):
    """A job template definition AWX would refuse (or that would not do what it says)."""


def workflow_playbooks(project_dir):
    """The workflow playbooks of <project_dir>/playbooks (paths relative to the project), sorted:
    every playbook at the top of playbooks/ but the sandbox and site.yml. Sub-folders (awx/, files/)
    hold helpers, not workflows."""
    folder = os.path.join(project_dir, "playbooks")
    return sorted(
        "playbooks/" + name
        for name in os.listdir(folder)
        if name.endswith((".yml", ".yaml"))
        and name not in NOT_WORKFLOWS
        and os.path.isfile(os.path.join(folder, name))
    )


def _require(definition, key, kind):
    value = definition.get(key)
    if value in (None, ""):
        raise AwxDefinitionError("%s %r has no %s" % (kind, definition.get("name", "(no name)"), key))
    return value


def survey_questions(definition):
    """The AWX survey questions of a job template (question_name, variable, type, required, default,
    choices as AWX takes them: one per line; min/max for numbers)."""
    name = _require(definition, "name", "job template")
    questions = []
    seen = set()
    for question in definition.get("survey") or []:
        variable = _require(question, "variable", "survey question of %s:" % name)
        if variable in seen:
            raise AwxDefinitionError("job template %r asks for %s twice" % (name, variable))
        seen.add(variable)
        kind = question.get("type", "text")
        if kind not in SURVEY_TYPES:
            raise AwxDefinitionError(
                "job template %r: question %s has type %r; AWX knows %s"
                % (name, variable, kind, ", ".join(sorted(SURVEY_TYPES)))
            )
        out = {
            "question_name": _require(question, "question_name", "survey question of %s:" % name),
            "question_description": question.get("question_description", ""),
            "variable": variable,
            "type": kind,
            "required": bool(question.get("required", False)),
            "default": question.get("default", ""),
        }
        if kind in ("multiplechoice", "multiselect"):
            choices = [str(c) for c in question.get("choices") or []]
            if not choices:
                raise AwxDefinitionError("job template %r: question %s has no choices" % (name, variable))
            if out["default"] not in ("", None) and str(out["default"]) not in choices:
                raise AwxDefinitionError(
                    "job template %r: the default of %s (%r) is not one of its choices %s"
                    % (name, variable, out["default"], choices)
                )
            out["choices"] = "\n".join(choices)
        for bound in ("min", "max"):
            if bound in question:
                out[bound] = question[bound]
        questions.append(out)
    return questions


def job_extra_vars(definition, settings=None):
    """The extra vars of a job launched from this job template with the survey's defaults: the
    settings' extra vars, the job template's own, then each survey answer (AWX puts survey answers on
    top of the job template's extra vars). Empty defaults of questions not required are left out, as
    AWX leaves out unanswered optional questions."""
    out = dict((settings or {}).get("extra_vars") or {})
    out.update(definition.get("extra_vars") or {})
    for question in survey_questions(definition):
        default = question["default"]
        if default in ("", None) and not question["required"]:
            continue
        out[question["variable"]] = default
    return out


def job_template_params(definition, settings):
    """The parameters of awx.awx.job_template for one definition."""
    name = _require(definition, "name", "job template")
    playbook = _require(definition, "playbook", "job template")
    names = settings.get("credential_names") or {}
    credentials = []
    for key in definition.get("credentials") or []:
        if key not in names:
            raise AwxDefinitionError(
                "job template %r uses credential %r; known: %s" % (name, key, ", ".join(sorted(names)))
            )
        credentials.append(names[key])
    read_only = bool(definition.get("read_only", False))
    questions = survey_questions(definition)
    params = {
        "name": name,
        "description": definition.get("description", ""),
        "organization": settings["organization"],
        "job_type": "run",
        "project": settings["project"],
        "inventory": settings["inventory"],
        "playbook": playbook,
        "execution_environment": settings["execution_environment"],
        "credentials": credentials,
        # Fleets: read-only workflows fan out over many forks and AWX job slices; the ones that change
        # state keep few forks and one job, their plays batch hosts themselves (serial).
        "forks": int(settings["fleet_forks"] if read_only else settings["rolling_forks"]),
        "job_slice_count": int(settings["job_slice_count"]) if read_only else 1,
        "timeout": int(settings.get("timeout") or 0),
        "extra_vars": dict((settings.get("extra_vars") or {}), **(definition.get("extra_vars") or {})),
        "ask_limit_on_launch": True,
        "ask_variables_on_launch": False,
        "survey_enabled": bool(questions),
        "notification_templates_error": list(settings.get("notifications_error") or []),
        "notification_templates_success": list(settings.get("notifications_success") or []),
    }
    if questions:
        params["survey_spec"] = {
            "name": "%s survey" % name,
            "description": "Inputs of %s" % playbook,
            "spec": questions,
        }
    return params


def schedule_params(definition, settings):
    """The parameters of awx.awx.schedule for each schedule of one job template definition."""
    name = _require(definition, "name", "job template")
    out = []
    for schedule in definition.get("schedules") or []:
        rrule = _require(schedule, "rrule", "schedule of %s:" % name)
        if "DTSTART" not in rrule or "RRULE:" not in rrule:
            raise AwxDefinitionError(
                "schedule %r: AWX wants DTSTART and RRULE in its rrule, got %r"
                % (schedule.get("name"), rrule)
            )
        out.append(
            {
                "name": _require(schedule, "name", "schedule of %s:" % name),
                "description": schedule.get("description", ""),
                "organization": settings["organization"],
                "unified_job_template": name,
                "rrule": rrule,
                "enabled": bool(schedule.get("enabled", True)),
            }
        )
    return out


def credential_params(credential, credential_type, organization):
    """The parameters of awx.awx.credential for a PostgreSQL login (username, password) or AWS keys
    (access_key, secret_key) entry."""
    name = _require(credential, "name", "credential")
    if credential_type == "Amazon Web Services":
        inputs = {"username": credential.get("access_key"), "password": credential.get("secret_key")}
    else:
        inputs = {"username": credential.get("username"), "password": credential.get("password")}
    missing = [k for k, v in inputs.items() if v in (None, "")]
    if missing:
        raise AwxDefinitionError("credential %r has no %s" % (name, " or ".join(missing)))
    return {
        "name": name,
        "organization": organization,
        "credential_type": credential_type,
        "inputs": inputs,
    }


def awx_objects(job_templates, settings):
    """Every awx.awx module's parameters, keyed by module name, in the order configure.yml applies
    them. Job templates whose playbook is not in settings['project_dir'] are left out (with their
    schedules)."""
    organization = settings["organization"]
    project_dir = settings.get("project_dir")
    names = [d.get("name") for d in job_templates]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AwxDefinitionError("job templates defined twice: %s" % ", ".join(duplicates))
    present = [
        d
        for d in job_templates
        if not project_dir or os.path.isfile(os.path.join(project_dir, d.get("playbook", "")))
    ]
    credentials = [
        credential_params(c, settings["postgresql_credential_type"], organization)
        for c in settings.get("postgresql_credentials") or []
    ] + [
        credential_params(c, "Amazon Web Services", organization)
        for c in settings.get("aws_credentials") or []
    ]
    return {
        "execution_environment": [
            {
                "name": settings["execution_environment"],
                "image": settings["ee_image"],
                "pull": settings.get("ee_pull", "missing"),
                "organization": organization,
                "description": "dbarch.postgresql, its Python dependencies and the PostgreSQL client tools",
            }
        ],
        "project": [
            dict(
                {
                    "name": settings["project"],
                    "organization": organization,
                    "scm_type": "git",
                    "scm_url": settings["scm_url"],
                    "scm_branch": settings.get("scm_branch", "main"),
                    "scm_update_on_launch": True,
                    "default_environment": settings["execution_environment"],
                },
                **({"scm_credential": settings["scm_credential"]} if settings.get("scm_credential") else {}),
            )
        ],
        "credential_type": [dict(t) for t in settings.get("credential_types") or []],
        "credential": credentials,
        "inventory": [
            {
                "name": settings["inventory"],
                "organization": organization,
                "description": "The production-shaped inventory of the project (%s)"
                % settings["inventory_source_path"],
            }
        ],
        "inventory_source": [
            {
                "name": "%s from the project" % settings["inventory"],
                "inventory": settings["inventory"],
                "organization": organization,
                "source": "scm",
                "source_project": settings["project"],
                "source_path": settings["inventory_source_path"],
                "overwrite": True,
                "update_on_launch": True,
            }
        ],
        "notification_template": [
            dict(t, organization=organization) for t in settings.get("notification_templates") or []
        ],
        "job_template": [job_template_params(d, settings) for d in present],
        "schedule": [s for d in present for s in schedule_params(d, settings)],
    }
