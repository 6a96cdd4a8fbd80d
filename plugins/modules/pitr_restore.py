#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pitr_restore
short_description: Restore a base backup and replay archived WAL to a point in time
version_added: "0.2.0"
description:
  - Restores a cluster from a repository written by M(dbarch.postgresql.basebackup) and the
    C(dbarch-wal) archive command, to a time, a transaction id, an LSN, a named restore point,
    the end of the archive (V(latest)) or the end of the backup (V(immediate)).
  - Chooses the backup itself, the newest usable one (C(valid) or C(unverified)) that ends at or
    before the target. For O(target_xid) and O(target_name) it first finds the commit or restore
    point record in the archived WAL with C(pg_waldump).
  - Before anything is written it checks that the archived WAL reaches the target without a gap
    (following timeline switches as C(recovery_target_timeline=latest) does). A time target needs a
    commit after it in the archive; otherwise the task fails and says what is missing, rather than
    let PostgreSQL stop earlier.
  - From an S3 repository (V(s3://bucket/prefix)) it downloads the chosen backup's objects into a
    staging folder (O(staging_dir)), checking each one's SHA-256 and size against C(backup.json)
    while it is written, and removes the folder afterwards. The WAL checks download only the
    segments they read. The restored server's C(restore_command) is C(dbarch-wal restore) against the
    same S3 repository.
  - Extracts the backup's files (tar, compressed or not) or copies them (plain) into O(data_dir),
    checks them (a folder repository's files against the SHA-256 in C(backup.json); the extracted
    data against the backup's C(backup_manifest) with C(pg_verifybackup)), writes
    C(recovery.signal) and the recovery
    settings into C(postgresql.auto.conf) (never C(recovery.conf)), starts the server with
    C(pg_ctl) (as the C(postgres) OS user when run as root) and waits until recovery ended at the
    target.
  - Recovery that ends before the target (PostgreSQL's FATAL C(recovery ended before configured
    recovery target was reached)) fails the task with the server log's last lines.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  staging_dir:
    description:
      - S3 repositories only. Folder under which the backup's objects are downloaded (a new
        sub-folder, removed when the restore ends, whether it worked or not). Default, the parent
        folder of O(data_dir) (same file system, so it needs room for the backup once more).
      - The WAL the checks read before the restore (also in check mode) goes to a temporary folder
        under it when it exists, else under the system's temporary folder, removed at once.
    type: path
  wal_archive:
    description:
      - Folder of archived WAL segments as C(cp %p /archive/%f) writes them. Default, the
        repository's own C(wal/) folder, read with C(dbarch-wal restore) (O(wal_script)).
    type: path
  data_dir:
    description:
      - Data folder of the restored cluster. Its parent folder also gets C(run/) (socket),
        C(log/postgresql.log) and the dbarch cluster marker, as M(dbarch.postgresql.local_cluster)
        lays clusters out, so that module can stop or remove the restored cluster.
      - Must be empty or absent, unless O(force).
    type: path
    required: true
  port:
    description:
      - Port of the restored server.
    type: int
    required: true
  target_time:
    description:
      - Restore up to this time (ISO 8601, for example V(2026-01-31 12:00:00+00); without a zone,
        UTC). Needs a commit after it in the archive.
    type: str
  target_xid:
    description:
      - Restore up to the commit of this transaction id.
    type: str
  target_lsn:
    description:
      - Restore up to this WAL location, for example V(0/3000028).
    type: str
  target_name:
    description:
      - Restore up to the restore point of this name (C(pg_create_restore_point)).
    type: str
  target:
    description:
      - V(latest) replays all archived WAL; V(immediate) stops as soon as the backup is consistent.
      - Give exactly one of O(target_time), O(target_xid), O(target_lsn), O(target_name) and
        O(target).
    type: str
    choices: [latest, immediate]
  inclusive:
    description:
      - Whether recovery stops just after (V(true)) or just before (V(false)) the target for
        time, xid and LSN targets (C(recovery_target_inclusive)).
    type: bool
    default: true
  target_action:
    description:
      - What the server does at the target (C(recovery_target_action)). V(promote) opens it for
        writes on a new timeline; V(pause) keeps it read-only in recovery; V(shutdown) stops it.
    type: str
    choices: [promote, pause, shutdown]
    default: promote
  force:
    description:
      - Replace the content of a non-empty O(data_dir). A running server there is never touched;
        stop it first.
    type: bool
    default: false
  keep_archiving:
    description:
      - Keep the backup's C(archive_mode). Default, the restored cluster gets C(archive_mode = off)
        so it does not archive a new timeline into the repository it was restored from.
    type: bool
    default: false
  bindir:
    description:
      - Folder with C(pg_ctl), C(postgres), C(psql) and C(pg_waldump) of the backup's major version.
        Default, looked up like M(dbarch.postgresql.local_cluster) does.
    type: path
  wal_script:
    description:
      - Path of the C(dbarch-wal) script on the host (installed by the C(backup) role). When it is
        missing, WAL is copied from the repository's C(wal/) folder with C(cp), which cannot read
        compressed segments.
    type: path
    default: /usr/local/bin/dbarch-wal
  python:
    description:
      - Interpreter that runs O(wal_script) in C(restore_command).
    type: path
    default: /usr/bin/python3
  restore_command:
    description:
      - Use this C(restore_command) instead of the one built from O(wal_archive) or O(wal_script).
    type: str
  superuser:
    description:
      - Role the module connects as over the unix socket to follow recovery (peer authentication
        as the server's OS user).
      - While recovery runs, a temporary first line of C(pg_hba.conf) (C(local all all peer
        map=dbarch_recovery)) and a matching C(pg_ident.conf) line let that OS user in as this role
        without a password, whatever the backed-up C(pg_hba.conf) asks for (for example
        C(scram-sha-256) on the socket, as C(initdb -A scram-sha-256) writes). Both files are put back
        byte for byte (atomically, with their mode and owner) as soon as recovery ended, also when
        the restore fails, and the server reloads them.
      - An error that waiting cannot clear (authentication refused, a role or database that does not
        exist) fails the task at once with its cause instead of waiting for O(timeout).
    type: str
    default: postgres
  timeout:
    description:
      - Seconds to wait for recovery to reach the target.
    type: int
    default: 3600
  target_timeline:
    description:
      - Only with O(engine=pgbackrest) (C(--target-timeline)), V(latest) (default) or V(current) or a
        timeline number. The native engine always follows the latest timeline and refuses another value.
    type: str
    default: latest
extends_documentation_fragment:
  - dbarch.postgresql.connection.no_aliases
  - dbarch.postgresql.backup_repository
  - dbarch.postgresql.pgbackrest
attributes:
  check_mode:
    support: full
    description: Reads the repository and the archived WAL, reports the backup it would use and the
      settings it would write; writes nothing. From S3 it reads the listings, each backup's
      C(backup.json) and the timeline history files, and downloads only the WAL segments the
      checks read (into a temporary folder, removed before the task ends), never the backup's data.
  diff_mode:
    support: none
    description: A restore has no before/after.
notes:
  - The connection options of the collection (C(login_host), C(login_port), C(login_user),
    C(login_password), ...) are accepted and not used yet (a later version may
    check the restored server with them), so that one C(module_defaults) block for
    C(group/dbarch.postgresql.all) serves this module too. They take no aliases here (C(port) is an
    option of this module).
  - S3 credentials. The module reads S3 with O(aws_access_key_id), O(aws_secret_access_key) and
    O(aws_session_token) when given, else the standard AWS chain of the OS user that runs it. The
    restored server's C(restore_command) gets the same given credentials through the server's
    environment (the C(pg_ctl start) of this task), never through C(postgresql.auto.conf) or any
    file; without them it uses the AWS chain of the server's OS user (C(postgres)). A server
    restarted later by other means has no given credentials, but needs none once recovery ended.
  - O(endpoint_url) and O(region) are passed to C(dbarch-wal) in C(restore_command) as
    C(--endpoint-url) and C(--region).
  - With O(engine=pgbackrest), C(pgbackrest restore) (C(--type) time, xid, lsn, name, immediate or
    default for V(latest), C(--target), C(--target-action), C(--target-exclusive) when
    O(inclusive=false), C(--target-timeline), C(--delta) with O(force)) fills O(data_dir) and
    writes the recovery settings (its C(restore_command) is C(pgbackrest archive-get)); then the
    port, socket folder, C(hot_standby) and C(archive_mode=off) are set, and the server is started
    and followed exactly as with the native engine. pgBackRest chooses the backup; RV(backup_id) is
    its label. S3 repositories work with this engine.
  - Run it as root (the server runs as the C(postgres) OS user) or as the OS user that owns
    O(data_dir).
  - The recovery settings stay in C(postgresql.auto.conf) after the restore; PostgreSQL ignores them
    without C(recovery.signal).
  - Finding the record of an O(target_xid) or O(target_name) reads the archived WAL from the oldest
    usable backup on, one segment at a time.
seealso:
  - module: dbarch.postgresql.basebackup
  - module: dbarch.postgresql.backup_info
"""

EXAMPLES = r"""
- name: Restore to just before a bad deployment
  dbarch.postgresql.pitr_restore:
    repository: /var/backups/postgresql/main
    data_dir: /srv/restore/main/data
    port: 5440
    target_time: "2026-01-31 11:59:00+00"
  become: true
  register: restored

- name: Restore to a restore point and keep the server paused for inspection
  dbarch.postgresql.pitr_restore:
    repository: /var/backups/postgresql/main
    wal_archive: /mnt/wal-archive
    data_dir: /srv/restore/check/data
    port: 5441
    target_name: before_migration_42
    target_action: pause
  become: true

- name: Restore from S3 to the end of the archived WAL
  dbarch.postgresql.pitr_restore:
    repository: s3://acme-pg-backups/prod/main
    region: eu-west-1
    aws_access_key_id: "{{ vault_backup_key_id }}"
    aws_secret_access_key: "{{ vault_backup_secret }}"
    staging_dir: /srv/restore/staging
    data_dir: /srv/restore/main/data
    port: 5442
    target: latest
  become: true
"""

RETURN = r"""
backup_id:
  description: The backup restored (or, in check mode, that would be).
  returned: always
  type: str
  sample: 20261125T221500Z
restore_command:
  description: The C(restore_command) written.
  returned: always
  type: str
recovery_settings:
  description: Every setting written into C(postgresql.auto.conf), as name and value.
  returned: always
  type: dict
coverage:
  description: Where recovery will stop (C(stops_at)), as found in the archived WAL.
  returned: always
  type: dict
replay_end_lsn:
  description: End of the WAL archived without a gap after the chosen backup.
  returned: always
  type: str
reached_lsn:
  description: Last WAL location replayed (C(pg_last_wal_replay_lsn())).
  returned: success, not in check mode
  type: str
reached_time:
  description: Commit time of the last transaction replayed (C(pg_last_xact_replay_timestamp())), UTC.
  returned: success, not in check mode
  type: str
timeline:
  description: Timeline of the restored server (a new one after promotion).
  returned: success, not in check mode
  type: int
rto_seconds:
  description: Seconds from the start of the task until the restored server answered a query.
  returned: success, not in check mode
  type: float
phases:
  description:
    - Seconds per phase, in the order they happen. C(fetch) downloads the backup from S3 (checking
      every object's SHA-256; about 0 for a folder repository), C(extract) fills O(data_dir) and
      writes the recovery settings, C(verify) checks a folder repository's files against
      C(backup.json) and the extracted data with C(pg_verifybackup), C(wal_replay) runs from
      C(pg_ctl start) until recovery stopped, C(promotion) until the server left recovery (or
      paused), C(first_query) is the first query answered.
  returned: success, not in check mode
  type: dict
  sample: {"fetch": 1.2, "extract": 0.8, "verify": 0.6, "wal_replay": 2.1, "promotion": 0.4,
           "first_query": 0.01}
wal_downloaded:
  description: S3 only, the WAL files the checks downloaded before the restore (their names).
  returned: always
  type: list
  elements: str
log_tail:
  description: Last lines of the server log when recovery failed.
  returned: failure
  type: str
command:
  description: With O(engine=pgbackrest), the C(pgbackrest restore) command line.
  returned: engine pgbackrest
  type: list
  elements: str
pgbackrest_warnings:
  description: With O(engine=pgbackrest), the warnings pgBackRest printed during the restore.
  returned: engine pgbackrest, when there were any
  type: list
  elements: str
actions:
  description: What the module did or, in check mode, would do.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import pgbackrest as pgbr
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import pitr
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

# the recovery target options, in the order of pitr.parse_target's arguments
TARGETS = ("target_time", "target_xid", "target_lsn", "target_name", "target")


def run_pgbackrest(module):
    """engine: pgbackrest (module_utils/pgbackrest.py does the work)."""
    p = module.params
    result = dict(changed=False, engine="pgbackrest", actions=[])
    try:
        target = pitr.parse_target(*(p[name] for name in TARGETS))
        result = pgbr.restore(p, target, check_mode=module.check_mode)
    except DbarchError as exc:
        module.fail_from(exc, **result)
    except OSError as exc:
        module.fail_from(exc, msg_prefix="file system error", **result)
    module.exit_json(**result)


ARGUMENT_SPEC = dict(br.REPOSITORY_ARGSPEC)
# target_time, target_xid, target_lsn, target_name: strings (one target option is given)
ARGUMENT_SPEC.update((name, dict(type="str")) for name in TARGETS if name != "target")
ARGUMENT_SPEC.update(
    wal_archive=dict(type="path"),
    data_dir=dict(type="path", required=True),
    port=dict(type="int", required=True),
    target=dict(type="str", choices=["latest", "immediate"]),
    inclusive=dict(type="bool", default=True),
    target_action=dict(type="str", default="promote", choices=list(pitr.TARGET_ACTIONS)),
    force=dict(type="bool", default=False),
    keep_archiving=dict(type="bool", default=False),
    bindir=dict(type="path"),
    wal_script=dict(type="path", default=pitr.DEFAULT_WAL_SCRIPT),
    python=dict(type="path", default="/usr/bin/python3"),
    restore_command=dict(type="str"),
    staging_dir=dict(type="path"),
    superuser=dict(type="str", default="postgres"),
    timeout=dict(type="int", default=3600),
    target_timeline=dict(type="str", default="latest"),
)
ARGUMENT_SPEC.update(pgbr.ARGSPEC)


def main():
    module = DbarchModule(
        argument_spec=ARGUMENT_SPEC,
        connection_aliases=False,
        supports_check_mode=True,
        mutually_exclusive=[TARGETS],
        required_one_of=[TARGETS],
    )
    p = module.params
    module.require_absolute("data_dir", "repository", "wal_archive", "staging_dir", "bindir")
    if p["engine"] == "pgbackrest":
        run_pgbackrest(module)
    if p["target_timeline"] != "latest":
        module.fail_json(
            msg="target_timeline=%s: the native engine always follows the latest timeline (as "
            "recovery_target_timeline=latest does); leave it at latest, or use engine=pgbackrest."
            % p["target_timeline"]
        )
    result = dict(changed=False, actions=[])
    try:
        target = pitr.parse_target(*(p[name] for name in TARGETS))
        repo = br.repository_from_params(p)
        planned = pitr.plan(
            repo,
            target,
            p["data_dir"],
            p["port"],
            wal_archive=p["wal_archive"],
            inclusive=p["inclusive"],
            target_action=p["target_action"],
            bindir=p["bindir"],
            wal_script=p["wal_script"],
            python=p["python"],
            restore_command=p["restore_command"],
            keep_archiving=p["keep_archiving"],
            staging_dir=p["staging_dir"],
        )
        cluster = lc.LocalCluster(planned["data_dir"], port=p["port"], bindir=planned["bindir"])
        wipe = pitr.check_data_dir(cluster, p["force"])
        settings = pitr.server_settings(planned, cluster.socket_dir)
        result.update(
            backup_id=planned["backup_id"],
            restore_command=planned["restore_command"],
            recovery_settings=dict(settings),
            coverage=planned["coverage"],
            replay_end_lsn=planned["replay_end_lsn"],
            wal_downloaded=planned["wal_downloaded"],
        )
        verb = "would" if module.check_mode else ""
        if wipe:
            result["actions"].append(("%s %s" % (verb, wipe)).strip())
        restored = "%s restore backup %s into %s and write recovery.signal and %d settings" % (
            verb,
            planned["backup_id"],
            planned["data_dir"],
            len(settings),
        )
        result["actions"].append(restored.strip())
        stops = planned["coverage"]["stops_at"]
        starting = "%s start the server on port %s and stop %s" % (verb, p["port"], stops)
        result["actions"].append(starting.strip())
        if module.check_mode:
            result["changed"] = True
            module.exit_json(**result)
        result["changed"] = True
        reached = pitr.restore(
            repo, planned, force=p["force"], timeout=p["timeout"], superuser=p["superuser"]
        )
        result.update(reached)
    except DbarchError as exc:
        module.fail_from(exc, **result)
    except OSError as exc:
        module.fail_from(exc, msg_prefix="file system error", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
