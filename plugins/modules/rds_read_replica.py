#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: rds_read_replica
short_description: Create, promote or delete an AWS RDS read replica (scale reads out)
version_added: "0.4.0"
description:
  - O(state=present) creates the read replica O(db_instance_identifier) of O(source) and, with
    O(wait), waits until it is C(available). An existing replica of the same source is left alone.
  - O(state=promoted) promotes the replica to a standalone instance. One that is no longer a
    replica gives changed=false. The module tags what it promoted
    (C(dbarch:promoted-from=<source>)). That tag is how a second run knows the instance was
    promoted on a stand-in (moto) that keeps the source field after a promotion.
  - O(state=absent) deletes the replica (without a final snapshot, since a replica's data is its
    primary's) and, with O(wait), waits until it is gone. It refuses to delete an instance that is not a read
    replica.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  db_instance_identifier:
    description: The read replica's identifier.
    type: str
    required: true
  source:
    description: The primary's identifier or ARN (required to create).
    type: str
  state:
    description: V(present), V(promoted) or V(absent).
    type: str
    choices: [present, promoted, absent]
    default: present
  db_instance_class:
    description: The replica's class when it is created. Default is the source's class.
    type: str
  availability_zone:
    description: Availability zone of a new replica.
    type: str
  multi_az:
    description: Whether a new replica is Multi-AZ.
    type: bool
  backup_retention_period:
    description: Days of automated backups of the promoted instance (O(state=promoted)).
    type: int
  tags:
    description: Tags of a new replica.
    type: dict
  wait:
    description: Wait until the replica is C(available) (created, promoted) or gone (deleted).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 1800
extends_documentation_fragment:
  - dbarch.postgresql.aws
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Reads the instance and says what it would do; calls nothing that changes.
  diff_mode:
    support: none
    description: The result has RV(before) and RV(after) instead.
notes:
  - The connection options of the collection are accepted and not used, so that one C(module_defaults)
    block for C(group/dbarch.postgresql.all) serves this module too.
requirements:
  - boto3 (C(python3-boto3) on Debian/Ubuntu)
seealso:
  - module: dbarch.postgresql.rds_instance_resize
"""

EXAMPLES = r"""
- name: Add a read replica of the primary
  dbarch.postgresql.rds_read_replica:
    db_instance_identifier: shop-prod-ro1
    source: shop-prod
    db_instance_class: db.r6g.large
  delegate_to: localhost

- name: Promote it (disaster recovery, or a split)
  dbarch.postgresql.rds_read_replica:
    db_instance_identifier: shop-prod-ro1
    state: promoted
  delegate_to: localhost

- name: Remove a replica
  dbarch.postgresql.rds_read_replica:
    db_instance_identifier: shop-prod-ro2
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
before:
  description: The instance before (C(db_instance_class), C(status), C(read_replica_source), ...), or null.
  returned: always
  type: dict
after:
  description: The instance after, or null once deleted.
  returned: always
  type: dict
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
    source=dict(type="str"),
    state=dict(type="str", choices=["present", "promoted", "absent"], default="present"),
    db_instance_class=dict(type="str"),
    availability_zone=dict(type="str"),
    multi_az=dict(type="bool"),
    backup_retention_period=dict(type="int"),
    tags=dict(type="dict"),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=1800),
)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, aws_options=True, supports_check_mode=True)
    p = module.params
    try:
        api = module.aws_client("rds")
        result = instances.replica(
            api,
            p["db_instance_identifier"],
            state=p["state"],
            source=p["source"],
            db_instance_class=p["db_instance_class"],
            availability_zone=p["availability_zone"],
            multi_az=p["multi_az"],
            backup_retention_period=p["backup_retention_period"],
            tags=p["tags"],
            wait=p["wait"],
            wait_timeout=p["wait_timeout"],
            check_mode=module.check_mode,
        )
    except DbarchError as exc:
        module.fail_from(exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
