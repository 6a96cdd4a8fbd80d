#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: local_cluster_info
short_description: Facts about local PostgreSQL clusters, server binaries and folders
version_added: "0.1.0"
description:
  - Read-only companion of M(dbarch.postgresql.local_cluster). Reports which OS user runs
    the server binaries, where the binaries of each PostgreSQL major are, the status of a
    local cluster, and whether that OS user can reach given folders (every ancestor
    traversable), which decides where local clusters can live.
  - Never changes anything and always reports C(changed=false).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  data_dir:
    description:
      - PGDATA of a local cluster to report on (see RV(cluster)), an absolute path.
    type: path
  versions:
    description:
      - PostgreSQL majors whose server binaries to locate (see RV(binaries)).
    type: list
    elements: int
    default: []
  paths:
    description:
      - Folders to check for reachability by O(run_as) (see RV(paths)). Absolute paths; they need not exist.
    type: list
    elements: path
    default: []
  run_as:
    description:
      - OS user that runs the server binaries. Default C(postgres) when the module runs as
        root, otherwise the current user.
    type: str
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.attributes.read_only
notes:
  - The connection options of the collection are accepted and not used, so that one C(module_defaults)
    block for C(group/dbarch.postgresql.all) serves this module too.
seealso:
  - module: dbarch.postgresql.local_cluster
"""

EXAMPLES = r"""
- name: Can the postgres user reach the sandbox folder, and is PostgreSQL 17 available?
  dbarch.postgresql.local_cluster_info:
    paths: ["{{ playbook_dir }}/../.sandbox"]
    versions: [17]
  register: local

- name: Explain what blocks it
  ansible.builtin.debug:
    msg: "{{ local.paths[0].hint }}"
  when: not local.paths[0].reachable

- name: Status of one cluster
  dbarch.postgresql.local_cluster_info:
    data_dir: /var/tmp/lab/primary/data
  register: primary
"""

RETURN = r"""
run_as:
  description: OS user that runs (or would run) the server binaries.
  returned: always
  type: str
  sample: postgres
binaries:
  description: For each requested major, its binaries folder and, when missing, how to get it.
  returned: always
  type: list
  elements: dict
  sample: [{version: 17, bindir: /var/tmp/dbarch-pg/17.11.0/bin, found: true, error: null}]
paths:
  description: Reachability of each requested folder for RV(run_as).
  returned: always
  type: list
  elements: dict
  sample: [{path: /root/work/.sandbox, user: postgres, reachable: false, blocked_by: /root,
            hint: "OS user 'postgres' cannot traverse /root (mode 0700, owner uid 0). ..."}]
cluster:
  description: Status of O(data_dir); null when O(data_dir) is not given.
  returned: always
  type: dict
  sample: {data_dir: /var/tmp/lab/primary/data, cluster_dir: /var/tmp/lab/primary, state: ready,
           version: 16, port: 55432, socket_dir: /var/tmp/lab/primary/run, running: true,
           role: primary, created_by_dbarch: true}
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.localcluster import (
    LocalCluster,
    LocalClusterError,
    default_run_as,
    find_bindir,
    reachability,
)


def binaries(versions):
    found = []
    for major in versions:
        try:
            found.append(dict(version=major, bindir=find_bindir(major), found=True, error=None))
        except LocalClusterError as exc:
            found.append(dict(version=major, bindir=None, found=False, error=str(exc)))
    return found


def cluster_status(data_dir, run_as):
    cluster = LocalCluster(data_dir, run_as=run_as)
    major = cluster.data_major() or (cluster.read_marker() or {}).get("major")
    if major:
        try:
            cluster.bindir = find_bindir(major)
        except LocalClusterError:
            cluster.bindir = None
    return cluster.status()


def main():
    module = DbarchModule(
        argument_spec=dict(
            data_dir=dict(type="path"),
            versions=dict(type="list", elements="int", default=[]),
            paths=dict(type="list", elements="path", default=[]),
            run_as=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    module.require_absolute("data_dir", "paths")
    run_as = params["run_as"] or default_run_as()
    try:
        result = dict(
            changed=False,
            run_as=run_as,
            binaries=binaries(params["versions"]),
            paths=[reachability(path, run_as) for path in params["paths"]],
            cluster=cluster_status(params["data_dir"], run_as) if params["data_dir"] else None,
        )
    except LocalClusterError as exc:
        module.fail_from(exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
