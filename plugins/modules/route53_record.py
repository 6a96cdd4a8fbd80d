#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: route53_record
short_description: Point a Route 53 DNS record at a server (the primary's name after a failover)
version_added: "0.3.0"
description:
  - Sets one Route 53 record set (O(record), O(type)) of a hosted zone to O(value) with O(ttl), in one
    C(UPSERT) change, or deletes it with O(state=absent).
  - Idempotent. The record set is read first, and one that already has the values and TTL is left
    alone (changed=false).
  - A small module of its own so that the collection needs only boto3, not the C(amazon.aws)
    collection (C(amazon.aws.route53) does the same and more where that collection is installed).
  - Runs wherever boto3 is, usually the controller (C(delegate_to=localhost)).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  zone:
    description:
      - The hosted zone, by id (C(Z0123456789ABC)) or by name (C(example.com); it must be the only zone
        of that name).
    type: str
    required: true
  record:
    description: The record's name, such as C(db.example.com) (a final dot is optional).
    type: str
    required: true
  type:
    description: The record type.
    type: str
    choices: [A, AAAA, CNAME, TXT]
    default: A
  value:
    description:
      - The value(s), such as the new primary's address (C(A)) or host name (C(CNAME), one value).
      - Required with O(state=present).
    type: list
    elements: str
  ttl:
    description:
      - Seconds resolvers may cache the answer. Keep it short for a name clients follow across failovers.
    type: int
    default: 60
  state:
    description: V(present) sets the record set, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  comment:
    description: Comment of the change batch.
    type: str
  wait:
    description: Wait until Route 53 reports the change C(INSYNC) (propagated to its name servers).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: int
    default: 300
extends_documentation_fragment:
  - dbarch.postgresql.aws
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Reads the record set and reports the change it would make; changes nothing.
  diff_mode:
    support: full
    description: The record set (TTL and values) before and after.
notes:
  - The connection options of the collection are accepted and not used, so that one C(module_defaults)
    block for C(group/dbarch.postgresql.all) serves this module too.
  - Alias records are refused (they point at AWS resources, not at a server's address).
  - Route 53 is a global service. The client signs for C(us-east-1) unless O(region) is given;
    E(AWS_REGION) is not read for it.
requirements:
  - boto3 (C(python3-boto3) on Debian/Ubuntu)
seealso:
  - name: amazon.aws.route53
    description: The amazon.aws collection's Route 53 module.
    link: https://docs.ansible.com/ansible/latest/collections/amazon/aws/route53_module.html
"""

EXAMPLES = r"""
- name: Point db.example.com at the new primary
  dbarch.postgresql.route53_record:
    zone: example.com
    record: db.example.com
    type: A
    value: ["10.0.0.12"]
    ttl: 30
  delegate_to: localhost

- name: The same against moto's server (tests)
  dbarch.postgresql.route53_record:
    zone: Z0123456789ABC
    record: db.example.com
    type: CNAME
    value: [db2.example.com]
    endpoint_url: http://127.0.0.1:5000
  delegate_to: localhost
"""

RETURN = r"""
zone_id:
  description: The hosted zone's id.
  returned: always
  type: str
before:
  description: The record set before the run (C(name), C(type), C(ttl), C(values)), or null.
  returned: always
  type: dict
after:
  description: The record set after the run, or null (deleted).
  returned: always
  type: dict
change_id:
  description: Route 53's change id, or null when nothing changed (or in check mode).
  returned: always
  type: str
status:
  description: The change's status (C(PENDING) or C(INSYNC)), or null.
  returned: always
  type: str
msg:
  description: What was done.
  returned: always
  type: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.dns import route53

ARGUMENT_SPEC = dict(
    zone=dict(type="str", required=True),
    record=dict(type="str", required=True),
    type=dict(type="str", choices=list(route53.TYPES), default="A"),
    value=dict(type="list", elements="str"),
    ttl=dict(type="int", default=60),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    comment=dict(type="str"),
    wait=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=300),
)


def _text(record):
    if not record:
        return ""
    return "%s %s %s\n" % (record["name"], record["ttl"], " ".join(record["values"]))


def main():
    module = DbarchModule(
        argument_spec=ARGUMENT_SPEC,
        aws_options=True,
        supports_check_mode=True,
        required_if=[("state", "present", ("value",))],
    )
    p = module.params
    try:
        api = module.aws_client("route53", **route53.client_options(p["region"]))
        result = route53.ensure(
            api,
            p["zone"],
            p["record"],
            rtype=p["type"],
            values=p["value"],
            ttl=p["ttl"],
            state=p["state"],
            comment=p["comment"],
            wait=p["wait"],
            wait_timeout=p["wait_timeout"],
            check_mode=module.check_mode,
        )
    except DbarchError as exc:
        module.fail_from(exc)
    if module._diff and result["changed"]:
        name = "%s %s" % (route53.fqdn(p["record"]), p["type"])
        result["diff"] = dict(
            before_header="%s (before)" % name,
            after_header="%s (after)" % name,
            before=_text(result["before"]),
            after=_text(result["after"]),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
