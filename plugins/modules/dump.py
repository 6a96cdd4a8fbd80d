#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: dump
short_description: Dump a PostgreSQL database with pg_dump -Fc, or restore such a dump
version_added: "0.1.0"
description:
  - With O(command=dump), writes a custom-format dump (C(pg_dump -Fc)) of the connected database
    to O(path) on the host that runs the module. The file appears only when complete; it is
    written to C(<path>.partial), flushed to disk, read back with C(pg_restore --list) and then
    renamed.
  - With O(command=restore), restores such a dump into the connected database with
    C(pg_restore --exit-on-error), in one transaction by default, so a failure part way leaves
    the database as it was.
  - The client programs of the server's major version are used (found where
    M(dbarch.postgresql.local_cluster) finds binaries, then on E(PATH)), or those of O(bindir).
  - The connection options are those of every module and reach the programs through libpq's
    environment; the password is never on a command line or in the output.
  - The pre-migration backup and the restore rollback of the C(migrations) role use this module.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  command:
    description:
      - V(dump) writes O(path); V(restore) reads it into the database.
    type: str
    choices: [dump, restore]
    default: dump
  path:
    description:
      - The dump file on the host that runs the module, an absolute path. Its folder must exist.
      - With O(command=dump) it is written with mode C(0600) (it holds all the data of the database), or
        C(0640) with O(group).
    type: path
    required: true
  group:
    description:
      - With O(command=dump), a group (name or number) that may read the dump; the file gets this group
        and mode C(0640) instead of C(0600).
    type: str
  force:
    description:
      - With O(command=dump), write a new dump even when O(path) already exists. Without it, an
        existing O(path) is left alone and the task reports no change (a second run of the same
        task changes nothing).
    type: bool
    default: false
  schemas:
    description: With O(command=dump), dump only these schemas (C(--schema)).
    type: list
    elements: str
    default: []
  exclude_schemas:
    description: With O(command=dump), leave these schemas out (C(--exclude-schema)).
    type: list
    elements: str
    default: []
  compress:
    description: With O(command=dump), the C(--compress) level or method (such as C(6) or C(zstd) on 16+).
    type: str
  clean:
    description:
      - With O(command=restore), drop each object before creating it again (C(--clean --if-exists)).
        Needed to roll a database back onto itself.
    type: bool
    default: false
  single_transaction:
    description: With O(command=restore), restore in one transaction (C(--single-transaction)).
    type: bool
    default: true
  bindir:
    description: Folder of C(pg_dump) and C(pg_restore). Default the server's major version's.
    type: path
  timeout:
    description: Seconds the program may run before the task fails.
    type: int
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description:
      - A dump is not written; a restore checks that the dump is readable (C(pg_restore --list))
        and says what it would run.
  diff_mode:
    support: none
    description: A dump has no before and after to show.
notes:
  - The OS user that runs the module needs write access to the folder of O(path) (dump) and read
    access to O(path) (restore).
"""

EXAMPLES = r"""
- name: Dump the shop database before a migration
  dbarch.postgresql.dump:
    login_db: shop
    path: /var/backups/shop-before-V42.dump
  register: shop_dump

- name: Put the database back as it was in the dump
  dbarch.postgresql.dump:
    command: restore
    login_db: shop
    path: /var/backups/shop-before-V42.dump
    clean: true
"""

RETURN = r"""
path:
  description: The dump file.
  returned: always
  type: str
bytes:
  description: Size of the dump in bytes.
  returned: when a dump was written or found
  type: int
mode:
  description: Mode of the dump file written (C(0600), or C(0640) with O(group)).
  returned: when a dump was written
  type: str
sha256:
  description: SHA-256 of the dump file.
  returned: when a dump was written or found
  type: str
entries:
  description: Entries in the dump's table of contents (C(pg_restore --list)).
  returned: when a dump was written or restored
  type: int
seconds:
  description: Time the program took.
  returned: when a program ran
  type: float
command:
  description: The command that ran (or would run in check mode), without any password.
  returned: when a program ran or would run
  type: str
server_version:
  description: C(server_version_num) of the connected server.
  returned: always
  type: int
msg:
  description: What happened.
  returned: always
  type: str
"""

import os

from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import dump as dmp
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError


def main():
    module = DbarchModule(
        argument_spec=dict(
            command=dict(type="str", choices=["dump", "restore"], default="dump"),
            path=dict(type="path", required=True),
            force=dict(type="bool", default=False),
            schemas=dict(type="list", elements="str", default=[]),
            exclude_schemas=dict(type="list", elements="str", default=[]),
            compress=dict(type="str"),
            clean=dict(type="bool", default=False),
            single_transaction=dict(type="bool", default=True),
            bindir=dict(type="path"),
            timeout=dict(type="int"),
            group=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"]
    if not os.path.isabs(path):
        module.fail_json(
            msg="path=%r must be an absolute path (a relative one would be taken from the module's working "
            "directory on the host): write it in full, e.g. /var/backups/pg/shop.dump." % path
        )
    version, _queries = module.run(lambda session: session.server_version_num)
    major = version // 10000
    result = dict(changed=False, path=path, server_version=version)
    try:
        if p["command"] == "dump":
            if os.path.exists(path) and not p["force"]:
                result.update(bytes=os.path.getsize(path), sha256=dmp.sha256_of(path))
                msg = "%s exists; left as it is (force=true writes a new dump)." % path
                module.exit_json(msg=msg, **result)
            if module.check_mode:
                result["changed"] = True
                module.exit_json(msg="Would write a custom-format dump to %s." % path, **result)
            facts = dmp.dump(
                p,
                path,
                major,
                bindir=p["bindir"],
                schemas=p["schemas"],
                exclude_schemas=p["exclude_schemas"],
                compress=p["compress"],
                timeout=p["timeout"],
                group=p["group"],
            )
            result.update(facts)
            result["changed"] = True
            msg = "Dumped %d entries to %s (%d bytes)." % (facts["entries"], path, facts["bytes"])
            module.exit_json(msg=msg, **result)
        bindir = dmp.client_bindir(major, p["bindir"])
        if module.check_mode:
            if not os.path.isfile(path):
                raise dmp.DumpError("No dump at %s: nothing to restore." % path)
            env, password = dmp.libpq_environment(p)
            entries = dmp.archive_entries(path, bindir, env, password)
            result.update(changed=True, entries=entries)
            module.exit_json(msg="Would restore %d entries from %s." % (entries, path), **result)
        facts = dmp.restore(
            p,
            path,
            major,
            bindir=bindir,
            clean=p["clean"],
            single_transaction=p["single_transaction"],
            timeout=p["timeout"],
        )
        result.update(facts, changed=True)
        module.exit_json(msg="Restored %d entries from %s." % (facts["entries"], path), **result)
    except DbarchError as exc:
        module.fail_from(exc, **result)


if __name__ == "__main__":
    main()
