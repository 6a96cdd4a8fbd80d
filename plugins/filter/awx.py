# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWX/Tower as code: playbooks/awx/configure.yml's job template definitions as the awx.awx modules'
parameters (the engine is plugins/module_utils/awx/jobs.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.dbarch.postgresql.plugins.module_utils.awx import jobs


def awx_objects(job_templates, settings):
    """Job template definitions + settings -> {awx.awx module name: [parameters, ...]}."""
    if not isinstance(job_templates, list) or not isinstance(settings, dict):
        raise AnsibleFilterError(
            "awx_objects takes a list of job template definitions and a dict of settings"
        )
    try:
        return jobs.awx_objects([dict(d) for d in job_templates], dict(settings))
    except (jobs.AwxDefinitionError, KeyError) as exc:
        raise AnsibleFilterError("awx_objects: %s" % exc) from exc


class FilterModule(object):
    def filters(self):
        return {"awx_objects": awx_objects}
