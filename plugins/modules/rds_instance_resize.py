#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rds_instance_resize
short_description: Scale an AWS RDS instance up (class, storage, IOPS), snapshot first
version_added: "0.4.0"
description:
  - Vertical scaling of one RDS instance, as the scaling workflow does it. A manual snapshot is
    taken first and waited for (O(snapshot)); then the instance class (O(db_instance_class)) and/or
    storage (O(allocated_storage), O(iops), O(storage_type)) are modified, either at once
    (O(apply_immediately=true)) or in the next maintenance window.
  - With O(apply_immediately=true) and O(wait=true), the module waits up to O(wait_timeout) seconds
    for the instance to be C(available) with the new values, and verifies them.
  - In the maintenance window (O(apply_immediately=false)) the module returns the
    RV(pending_modified_values) and does not wait.
  - Idempotent, judged against the current AND the pending values. An instance already at the
    target, or with the same change already pending, gives changed=false (no snapshot either).
  - With O(apply_immediately=true), the same change already being applied (status C(modifying)) is
    waited for (changed=false). The same change still waiting for the maintenance window on an
    C(available) instance is applied now (changed=true).
  - The plan (RV(plan)) notes the Multi-AZ behaviour. A Multi-AZ instance has its standby resized,
    then fails over to it (about 5 minutes); a Single-AZ instance restarts on the new class.
  - Tested against moto's server, whose C(modify_db_instance) applies at once and never has
    pending values. The pending, C(modifying) and C(storage-optimization) states are covered
    by unit tests with botocore's Stubber.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  db_instance_identifier:
    description: The RDS instance's identifier.
    type: str
    required: true
  db_instance_class:
    description: The instance class to reach, such as C(db.r6g.xlarge).
    type: str
  allocated_storage:
    description: Storage to reach, in GiB. RDS storage only grows.
    type: int
  iops:
    description: Provisioned IOPS to reach (C(io1), C(io2), C(gp3)).
    type: int
  storage_type:
    description: Storage type to reach.
    type: str
    choices: [gp2, gp3, io1, io2, standard]
  apply_immediately:
    description:
      - V(true) applies the change now. V(false) leaves it pending until the maintenance window;
        the module then returns RV(pending_modified_values) and does not wait.
    type: bool
    default: true
  snapshot:
    description: Take a manual snapshot first, and wait until it is C(available), before modifying.
    type: bool
    default: true
  snapshot_identifier:
    description: The snapshot's identifier. Default C(<db_instance_identifier>-pre-resize-<UTC time>).
    type: str
  wait:
    description:
      - Wait for the instance to be C(available) with the new values (with O(apply_immediately=true)).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait, for the snapshot and for the modification each.
    type: int
    default: 1800
extends_documentation_fragment:
  - dbarch.postgresql.aws
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description:
      - Reads the instance and returns the plan, the snapshot id and the values it would reach.
      - Calls nothing that changes.
  diff_mode:
    support: full
    description: The class and storage before and after (or pending).
notes:
  - The connection options of the collection are accepted and not used, so that one C(module_defaults)
    block for C(group/dbarch.postgresql.all) serves this module too.
  - Runs wherever boto3 is, usually the controller (C(delegate_to=localhost)).
requirements:
  - boto3 (C(python3-boto3) on Debian/Ubuntu)
seealso:
  - module: dbarch.postgresql.rds_read_replica
  - name: amazon.aws.rds_instance
    description: The amazon.aws collection's RDS instance module (no snapshot-first, no wait timeout).
    link: https://docs.ansible.com/ansible/latest/collections/amazon/aws/rds_instance_module.html
"""

EXAMPLES = r"""
- name: Scale the primary up now, snapshot first
  dbarch.postgresql.rds_instance_resize:
    db_instance_identifier: shop-prod
    db_instance_class: db.r6g.2xlarge
    wait_timeout: 3600
  delegate_to: localhost

- name: Grow storage in the next maintenance window
  dbarch.postgresql.rds_instance_resize:
    db_instance_identifier: shop-prod
    allocated_storage: 500
    storage_type: gp3
    iops: 12000
    apply_immediately: false
  delegate_to: localhost
  register: resize

- name: What is pending
  ansible.builtin.debug:
    var: resize.pending_modified_values
"""

RETURN = r"""
snapshot_id:
  description: The snapshot taken first (or that would be taken in check mode); null when none.
  returned: always
  type: str
before:
  description:
    - The instance before (C(db_instance_class), C(allocated_storage), C(iops), C(storage_type),
      C(status), C(multi_az), C(pending_modified_values), ...).
  returned: always
  type: dict
after:
  description: The instance after the run (in check mode, the values it would reach).
  returned: always
  type: dict
pending_modified_values:
  description:
    - Changes RDS holds for the maintenance window, by option name (C(db_instance_class),
      C(allocated_storage), C(iops), C(storage_type)).
  returned: always
  type: dict
changes:
  description: The fields that differ from the target (option name -> target value).
  returned: always
  type: dict
plan:
  description: The steps, in words, with the Multi-AZ or Single-AZ note.
  returned: always
  type: list
  elements: str
msg:
  description: What was done.
  returned: always
  type: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.rds import instances

ARGUMENT_SPEC = dict(
    db_instance_identifier=dict(type="str", required=True),
    db_instance_class=dict(type="str"),
    allocated_storage=dict(type="int"),
    iops=dict(type="int"),
    storage_type=dict(type="str", choices=["gp2", "gp3", "io1", "io2", "standard"]),
    apply_immediately=dict(type="bool", default=True),
    snapshot=dict(type="bool", default=True),
    snapshot_identifier=dict(type="str"),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=1800),
)


def _text(state):
    if not state:
        return ""
    lines = ["%s: %s" % (name, state.get(name)) for name, field in instances.RESIZE_FIELDS if field]
    lines += ["pending %s: %s" % kv for kv in sorted((state.get("pending_modified_values") or {}).items())]
    return "\n".join(lines) + "\n"


def main():
    module = DbarchModule(
        argument_spec=ARGUMENT_SPEC,
        aws_options=True,
        supports_check_mode=True,
        required_one_of=[("db_instance_class", "allocated_storage", "iops", "storage_type")],
    )
    p = module.params
    try:
        api = module.aws_client("rds")
        target = instances.target_of(
            db_instance_class=p["db_instance_class"],
            allocated_storage=p["allocated_storage"],
            iops=p["iops"],
            storage_type=p["storage_type"],
        )
        result = instances.resize(
            api,
            p["db_instance_identifier"],
            target,
            apply_immediately=p["apply_immediately"],
            take_snapshot=p["snapshot"],
            snapshot_id=p["snapshot_identifier"],
            wait=p["wait"],
            wait_timeout=p["wait_timeout"],
            check_mode=module.check_mode,
        )
    except DbarchError as exc:
        module.fail_from(exc)
    if module._diff and result["changed"]:
        name = "RDS instance %s" % p["db_instance_identifier"]
        result["diff"] = dict(
            before_header="%s (before)" % name,
            after_header="%s (after)" % name,
            before=_text(result["before"]),
            after=_text(result["after"]),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
