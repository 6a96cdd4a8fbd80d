#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: primary_check
short_description: Check that a PostgreSQL primary takes writes and that its standbys replicate them
version_added: "0.3.0"
description:
  - The check after a failover or a switchover, on the server the connection options reach. The checks
    run in this order and the first that fails fails the task, with what every check saw.
  - C(role). The server must be out of recovery, and C(default_transaction_read_only) must be off (else
    clients get read-only transactions).
  - C(write). One transaction that gets a transaction id (C(pg_current_xact_id())) commits within
    O(timeout) seconds, under the server's own C(synchronous_commit) and C(synchronous_standby_names).
    A commit that waits longer for a synchronous standby is cancelled (C(statement_timeout)). PostgreSQL
    then keeps it committed on this server only, and the check fails saying that clients' commits would
    hang. No table is read or written; the commit record is the write.
  - C(replication). After the commit, a WAL marker (C(pg_logical_emit_message), not transactional, so
    C(wal_level=replica) is enough) gives an LSN past the commit. Every standby named in O(standbys) must
    stream from this server (C(pg_stat_replication)) and replay past that LSN within O(timeout) seconds.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  standbys:
    description:
      - The C(application_name) of every standby that must stream from this server and replay the
        check's commit. Empty, only C(role) and C(write) are checked.
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds the commit may take, and seconds to wait for the standbys.
    type: float
    default: 30
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description: Runs the C(role) check only; commits nothing and waits for no standby.
  diff_mode:
    support: none
    description: Nothing changes.
notes:
  - The committed transaction and the WAL marker change no data; the module reports changed=false.
  - C(pg_stat_replication) shows every standby's state to a superuser or a member of C(pg_monitor);
    C(pg_current_xact_id()) and C(pg_logical_emit_message()) can be run by any role by default.
seealso:
  - module: dbarch.postgresql.promote
  - module: dbarch.postgresql.replication_info
"""

EXAMPLES = r"""
- name: The new primary takes writes and both standbys replay them
  dbarch.postgresql.primary_check:
    login_host: db2.example.com
    login_user: postgres
    login_password: "{{ vault_postgres_password }}"
    standbys: [db1, db3]
    timeout: 30
  register: checked

- name: Show when the commit went through
  ansible.builtin.debug:
    msg: "xid {{ checked.write.xid }} in {{ checked.write.seconds }} s"
"""

RETURN = r"""
role:
  description: C(in_recovery), C(default_transaction_read_only), C(synchronous_commit),
    C(synchronous_standby_names) as the server showed them.
  returned: always
  type: dict
write:
  description:
    - The write check, C(xid) (the committed transaction), C(seconds) (of the commit), C(marker_lsn) (the
      LSN the standbys must replay past), C(warning) (PostgreSQL's warning when the commit's wait for a
      synchronous standby was cancelled). Null in check mode.
  returned: always
  type: dict
standbys:
  description: Per name of O(standbys), C(state), C(sync_state), C(replay_lsn) and C(caught_up).
  returned: always
  type: dict
seconds:
  description: Seconds all the checks took.
  returned: success
  type: float
msg:
  description: What was checked, or which check failed and how to fix it.
  returned: always
  type: str
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import primary_check

ARGUMENT_SPEC = dict(
    standbys=dict(type="list", elements="str", default=[]),
    timeout=dict(type="float", default=30),
)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    session = module.connect()
    try:
        result = primary_check.run(
            session,
            standbys=module.params["standbys"],
            timeout=module.params["timeout"],
            check_mode=module.check_mode,
        )
    except DbarchError as exc:
        module.fail_from(exc, session)
    finally:
        session.close()
    module.exit_json(changed=False, queries=list(session.queries), **result)


if __name__ == "__main__":
    main()
