#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: standby
short_description: Make a PostgreSQL node a streaming standby of a given primary, and keep it so
version_added: "0.3.0"
description:
  - Runs on the node's host and brings the data folder O(data_dir) to a standby streaming from
    O(primary), whatever it holds now. RV(action) says what it took.
  - A node without data (O(data_dir) missing or empty) is cloned with C(pg_basebackup -X stream -c fast)
    (V(cloned)), with the replication slot O(slot_name) created on the primary (C(-C -S)) when it is
    missing. The copy goes into a folder beside O(data_dir) and is renamed into place once complete, so
    a failed copy never leaves a data folder that looks usable (when O(data_dir) is a mount point the copy
    goes straight in and is emptied again on failure).
  - A running standby that follows another server gets C(primary_conninfo) and C(primary_slot_name)
    with C(ALTER SYSTEM) and a configuration reload (V(repointed)); the server is not restarted. One that
    already streams from O(primary) is left alone (V(none), no change).
  - A node whose history left the primary's (the former primary after a failover, or a standby that
    replayed WAL the new primary never had) is rewound (V(rewound)). The fork point is found the way
    C(pg_rewind) finds it, from the primary's timeline history (replication command
    C(TIMELINE_HISTORY)) and the node's (its C(pg_wal) and C(pg_controldata)). A running former primary
    is stopped first (fast shutdown, as it is a second writable primary). Then the node's WAL after the
    fork point is read with C(pg_waldump) and the transactions about to be discarded are returned in
    RV(lost_transactions), C(pg_rewind --source-server) runs, and the node starts as a standby.
  - A stopped node that never went past the fork point (the old primary shut down before the switch)
    is only configured as a standby and started (V(repointed)).
  - Every run that changes the node ends by checking C(pg_stat_wal_receiver) on it within
    O(wait_timeout) seconds (streaming, from the host and port of O(primary)); RV(upstream) is what
    it showed.
  - "Before anything changes, every precondition is checked, and a refusal changes nothing: the binaries
    are of the primary's major; the node has the primary's system identifier; the slot is not used by
    another standby; for a rewind, O(rewind) is true, the node has C(wal_log_hints=on) or data checksums,
    the primary has C(full_page_writes=on) and the user may run the functions C(pg_rewind) calls."
  - The password of O(primary) never goes into C(primary_conninfo) nor into any output. It is written into
    a password file beside the data folder, C(<parent of data_dir>/.dbarch-<name of data_dir>.pgpass)
    (mode 0600, owned by the data folder's owner, outside the data folder so that neither pg_basebackup nor
    pg_rewind copies or removes it), named by C(passfile=) in C(primary_conninfo).
  - "Server binaries run as the data folder's owner (C(postgres) for a folder not created yet) through
    C(runuser) when the module runs as root."
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  primary:
    description:
      - The server to follow (usually the primary; a standby for cascading replication).
    type: dict
    required: true
    suboptions:
      host:
        description: Host name or address, as the standby connects to it (and as RV(upstream) shows it).
        type: str
        required: true
      port:
        description: Port.
        type: int
        default: 5432
      user:
        description:
          - Role with the C(REPLICATION) attribute. It must also be allowed to connect to O(primary.dbname)
            over SQL (the slot is read and created there) and, for a rewind, be a superuser or have the
            C(EXECUTE) grants C(pg_rewind) documents.
        type: str
        required: true
      password:
        description:
          - Its password. Written into the password file (see the description), never into the configuration
            nor the output.
        type: str
      dbname:
        description: Database for the SQL connection to the primary.
        type: str
        default: postgres
      sslmode:
        description: libpq C(sslmode) of the replication connection.
        type: str
        choices: [disable, allow, prefer, require, verify-ca, verify-full]
      application_name:
        description:
          - C(application_name) of the standby's replication connection (what the primary shows in
            C(pg_stat_replication) and matches against C(synchronous_standby_names)).
        type: str
  data_dir:
    description:
      - The node's data folder (PGDATA), an absolute path. Missing or empty means a node to clone.
      - A folder that is not empty and holds no C(PG_VERSION) is refused.
    type: path
    required: true
  bindir:
    description:
      - Folder of the server binaries (C(pg_ctl), C(pg_basebackup), C(pg_rewind), C(pg_waldump),
        C(pg_controldata)) of the primary's major.
      - Default, Debian's C(pg_lsclusters) entry of O(data_dir) when there is one, else the major in
        C(PG_VERSION) (or the primary's for a node without data) looked up in
        C($DBARCH_PG_BINDIR_<major>), C(/usr/lib/postgresql/<major>/bin) and the dbarch binaries cache.
    type: path
  slot_name:
    description:
      - Physical replication slot on the primary for this standby (C(primary_slot_name)); created when
        missing. The module refuses a slot another standby is streaming from.
      - Without it the standby streams without a slot (and C(primary_slot_name) is reset).
    type: str
  rewind:
    description:
      - Whether a node whose history left the primary's may be rewound with C(pg_rewind), discarding its
        transactions after the fork point (RV(lost_transactions)).
      - With V(false) such a node makes the module fail, having changed nothing, with
        RV(lost_transactions) filled in.
    type: bool
    default: true
  service:
    description:
      - How the server is started and stopped. V(pg_ctl) (C(pg_ctl start|stop -D data_dir), as the data
        folder's owner, server log in C(<parent>/log/postgresql.log) when that folder exists, else
        C(<parent>/<name>.log)), or the name of a systemd unit (C(systemctl start|stop <unit>), e.g.
        V(postgresql@15-main) for a Debian cluster, whose configuration lives in C(/etc/postgresql)).
      - A configuration reload is always done over SQL (C(pg_reload_conf())).
    type: str
    default: pg_ctl
  wait_timeout:
    description:
      - Seconds to wait for the server to start or stop, and for it to stream from O(primary) afterwards.
    type: int
    default: 300
  lost_transactions_limit:
    description:
      - At most this many entries in RV(lost_transactions) (the oldest first); RV(lost_summary) counts
        them all.
    type: int
    default: 1000
extends_documentation_fragment:
  - dbarch.postgresql.connection
attributes:
  check_mode:
    support: full
    description:
      - Reads everything it would read (the node's WAL with C(pg_waldump) too, so RV(lost_transactions) is
        filled in) and reports RV(action) and the RV(steps) it would take; changes nothing on the node or
        the primary.
  diff_mode:
    support: full
    description:
      - For a repoint, C(primary_conninfo) and C(primary_slot_name) before and after; for a stopped node,
        its C(postgresql.auto.conf). Passwords are masked.
notes:
  - The connection options reach the node's own server (to read it, repoint it and check that it streams);
    give its host and port, and a role that may run C(ALTER SYSTEM) and read C(pg_stat_wal_receiver)
    (a superuser). The module checks that they reach the server of O(data_dir).
  - On a clone with O(service=pg_ctl), the configuration copied from the primary may name the primary's port;
    when it differs from O(login_port), that port is written into C(postgresql.auto.conf) of the clone.
  - RV(lost_transactions) lists the transactions whose COMMIT record is in the node's WAL after the fork
    point. The relations are those their records after the fork point touched; a transaction that started
    before it may have touched others too. An index or TOAST table is reported as its table; a relation the
    primary no longer has (or whose file it rewrote since) as its file path.
  - C(pg_rewind) copies the primary's configuration files over the node's; the module keeps the node's own
    (every file at the top of the data folder that is not server state) aside and puts them back.
  - A node that was not shut down cleanly is brought to a consistent state by C(pg_rewind) itself (single-user
    mode), which needs C(postgresql.conf) in the data folder.
  - The replication slots a former primary held do not survive C(pg_rewind) (it does not keep C(pg_replslot)
    contents), so none of them keeps WAL on the rejoined node.
seealso:
  - module: dbarch.postgresql.local_cluster
  - name: pg_rewind
    description: PostgreSQL's pg_rewind documentation.
    link: https://www.postgresql.org/docs/current/app-pgrewind.html
"""

EXAMPLES = r"""
- name: Make db2 a streaming standby of db1 (clone, repoint or rejoin, as needed)
  dbarch.postgresql.standby:
    primary:
      host: db1.example.com
      user: replicator
      password: "{{ vault_replicator_password }}"
      application_name: db2
    data_dir: /var/lib/postgresql/16/main
    service: postgresql@16-main
    slot_name: db2
    login_unix_socket: /var/run/postgresql
    login_user: postgres
  become: true
  register: standby

- name: Show what a rejoin discarded
  ansible.builtin.debug:
    msg: "{{ standby.lost_summary.committed }} committed transaction(s) lost: {{ standby.lost_transactions }}"
  when: standby.action == 'rewound'

- name: See what a rejoin would do and discard, changing nothing
  dbarch.postgresql.standby:
    primary: {host: db2.example.com, user: replicator, password: "{{ vault_replicator_password }}"}
    data_dir: /var/lib/postgresql/16/main
    service: postgresql@16-main
    rewind: false
  check_mode: true
  register: plan
"""

RETURN = r"""
action:
  description:
    - What the node needed, V(cloned), V(repointed), V(rewound) or V(none) (in check mode, what it would
      need).
  returned: always
  type: str
  sample: rewound
upstream:
  description:
    - The server the node streams from, as its WAL receiver shows it (C(pg_stat_wal_receiver)), checked to be
      the host and port of O(primary); null in check mode for a node that is not streaming yet.
  returned: always
  type: dict
  sample: {host: db1.example.com, port: 5432, status: streaming}
timeline:
  description: The timeline the node streams on (C(received_tli)).
  returned: always
  type: int
  sample: 2
lost_transactions:
  description:
    - For a node past the fork point, the committed transactions in its WAL after that point, which the rewind
      discards (would discard, in check mode or with O(rewind=false)), oldest first, at most
      O(lost_transactions_limit). Each has C(xid), C(commit_time) (ISO 8601), C(lsn) of its commit record,
      C(relations) (C(schema.table) names resolved on the primary, else file paths) and C(prepared_gid) for a
      two-phase transaction. Empty otherwise.
  returned: always
  type: list
  elements: dict
  sample:
    - xid: 745
      commit_time: "2026-12-05T12:27:30.977816+00:00"
      lsn: 0/0192B9F8
      relations: [public.orders]
lost_summary:
  description:
    - Counts of what the node's WAL after the fork point holds, C(committed) (all, also those beyond the
      list), C(listed), C(aborted) (rolled-back transactions and savepoints, not lost data), C(in_progress)
      (no commit record, so never acknowledged to a client), C(prepared) (prepared and not finished there),
      C(records),
      C(first_lsn), C(last_lsn) and C(complete) (false when some of that WAL was no longer in C(pg_wal)).
      Null when nothing was read.
  returned: always
  type: dict
fork:
  description:
    - Where the node's history and the primary's part, C(timeline), C(lsn) (null on the same timeline),
      C(primary_history), C(node_history).
  returned: when the node holds data
  type: dict
steps:
  description: What was done, in order (in check mode, what would be done, each starting with C(would)).
  returned: always
  type: list
  elements: str
notes:
  description: What the module noticed on the way (a port written, a WAL file gone, a second primary stopped).
  returned: always
  type: list
  elements: str
primary_conninfo:
  description: The C(primary_conninfo) the node gets (no password in it; C(passfile) names the password file).
  returned: always
  type: str
  sample: user=replicator passfile=/var/lib/postgresql/16/.dbarch-main.pgpass host=db1.example.com port=5432
previous_conninfo:
  description: The node's C(primary_conninfo) before a repoint, passwords masked.
  returned: when the node was repointed
  type: str
pg_rewind:
  description:
    - What C(pg_rewind) reported, C(rewound), C(diverged_at), C(timeline), C(output) (its last lines).
  returned: when pg_rewind ran
  type: dict
bindir:
  description: The server binaries used.
  returned: when the primary was reached
  type: str
data_dir:
  description: The node's data folder.
  returned: always
  type: str
queries:
  description: The SQL run on the node for a repoint.
  returned: when the node was repointed
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import ansible_pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import standby as sb

PRIMARY_SPEC = dict(
    host=dict(type="str", required=True),
    port=dict(type="int", default=5432),
    user=dict(type="str", required=True),
    password=dict(type="str", no_log=True),
    dbname=dict(type="str", default="postgres"),
    sslmode=dict(type="str", choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]),
    application_name=dict(type="str"),
)


def main():
    module = DbarchModule(
        argument_spec=dict(
            primary=dict(type="dict", required=True, options=PRIMARY_SPEC),
            data_dir=dict(type="path", required=True),
            bindir=dict(type="path"),
            slot_name=dict(type="str"),
            rewind=dict(type="bool", default=True),
            service=dict(type="str", default="pg_ctl"),
            wait_timeout=dict(type="int", default=300),
            lost_transactions_limit=dict(type="int", default=1000),
        ),
        supports_check_mode=True,
    )
    module.require_absolute("data_dir", "bindir")
    ansible_pg.check_driver(module)
    params = module.params
    local = {name: params.get(name) for name in pg.CONNECTION_ARGSPEC}
    try:
        request = sb.Request(
            primary=params["primary"],
            data_dir=params["data_dir"],
            local=local,
            bindir=params["bindir"],
            slot_name=params["slot_name"],
            rewind=params["rewind"],
            service=params["service"],
            wait_timeout=params["wait_timeout"],
            lost_limit=params["lost_transactions_limit"],
            check_mode=module.check_mode,
            module_name=ansible_pg.module_name(module),
        )
        result = sb.converge(request)
    except (DbarchError, OSError) as exc:
        module.fail_from(
            exc, msg_prefix=None if isinstance(exc, DbarchError) else "standby on %s" % params["data_dir"]
        )
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
