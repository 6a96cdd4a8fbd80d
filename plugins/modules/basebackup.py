#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: basebackup
short_description: Take a verified PostgreSQL base backup into a repository (folder or S3)
version_added: "0.2.0"
description:
  - Takes a base backup with C(pg_basebackup) (WAL streamed with the backup, a backup manifest
    with SHA-256 checksums, a label) into a backup repository, one folder per backup named by its
    id, the UTC start time (C(20261125T221500Z)), so ids sort in time order.
  - Reads the start and stop LSN and the timeline from the backup's own C(backup_manifest)
    (C(WAL-Ranges)) and C(backup_label), and the system identifier and WAL segment size from its
    C(pg_control) (C(pg_controldata)); the system identifier must equal the server's.
  - Verifies the backup with C(pg_verifybackup) (O(verify)). Before PostgreSQL 18
    C(pg_verifybackup) reads plain backups only, so a tar backup is extracted to a temporary
    folder beside it and verified there; on 18 the tar files are verified as well.
  - Records C(backup.json) (id, label, system identifier, timeline, start and stop LSN and time,
    version, sizes, SHA-256 of every stored file, format, compression) LAST and atomically, so an
    interrupted backup is never listed as complete. A backup that fails verification is recorded
    with status C(invalid), is never used, and the task fails.
  - For an S3 repository the backup is staged in a local folder, verified, uploaded (multipart
    within S3's limits, every object's SHA-256 stored as metadata and checked after upload), then
    C(backup.json) is uploaded last and the staging folder removed.
  - With O(retain_count) or O(retain_days) it then applies retention (see there).
  - Works against a standby. There, the backup starts at the standby's next restartpoint;
    O(checkpoint=fast) cannot force one, so the backup may wait up to C(checkpoint_timeout)
    unless the primary is busy. PostgreSQL refuses a backup on a standby that replayed WAL
    written with C(full_page_writes=off) since its last restartpoint; the module reports that error.
  - Every run takes a new backup, so it always reports a change.
  - With O(engine=pgbackrest) it writes the pgBackRest configuration of O(stanza) (repository,
    C(pg1-path), port and socket read from the server, O(compression), retention from
    O(retain_count) or O(retain_days), C(start-fast) for O(checkpoint=fast)), creates the stanza
    when it is missing and takes a full backup with C(pgbackrest backup --type=full). WAL must
    already be archived with RV(archive_command). O(format), O(compression_site), O(verify),
    O(bindir), O(staging_dir) and O(max_rate) do not apply (pgBackRest checksums every file).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  label:
    description:
      - Backup label (C(pg_basebackup --label)). Default C(dbarch <backup_id>).
    type: str
  format:
    description:
      - V(tar) (one tar file per tablespace and C(pg_wal.tar)) or V(plain) (a data folder).
    type: str
    choices: [tar, plain]
    default: tar
  compression:
    description:
      - Compression method. PostgreSQL 14 offers V(gzip) only (tar format, client side);
        15 and later add V(lz4) and V(zstd) and server-side compression.
    type: str
    choices: [none, gzip, lz4, zstd]
    default: none
  compression_site:
    description:
      - Where to compress, V(client) (tar format only) or V(server) (PostgreSQL 15+; with plain
        format the data is compressed in transit and stored uncompressed).
    type: str
    choices: [client, server]
    default: client
  checkpoint:
    description:
      - V(fast) requests an immediate checkpoint; V(spread) waits for a spread one (less I/O,
        slower start).
    type: str
    choices: [fast, spread]
    default: fast
  verify:
    description:
      - Verify the backup with C(pg_verifybackup) before recording it as valid.
      - With V(false) it is recorded as C(unverified); C(backup_info) can still check its checksums.
    type: bool
    default: true
  bindir:
    description:
      - Folder holding C(pg_basebackup), C(pg_verifybackup) and C(pg_controldata) of the server's
        major version. Default, looked up by the server's major version (C($DBARCH_PG_BINDIR_<major>),
        C(/usr/lib/postgresql/<major>/bin), the dbarch binaries cache).
    type: path
  staging_dir:
    description:
      - For S3 repositories, the local folder under which the backup is staged before upload.
        It needs room for one backup. Default the system temporary folder.
    type: path
  max_rate:
    description:
      - C(pg_basebackup --max-rate), for example V(100M); limits the read rate on the server.
    type: str
  timeout:
    description:
      - Seconds to let C(pg_basebackup) run before giving up. Default no limit.
    type: int
  retain_count:
    description:
      - After a successful backup keep the newest O(retain_count) usable backups (at least 1).
    type: int
  retain_days:
    description:
      - After a successful backup keep every backup that finished in the last O(retain_days)
        days and the newest one that finished before that window (a restore to the window's
        start needs it).
      - With O(retain_count) too, a backup is kept when either rule keeps it.
      - WAL older than the start of the oldest kept backup is removed; history files are kept;
        incomplete and invalid backups are never removed by retention (see C(backup_info)).
    type: float
  configure_only:
    description:
      - Only with O(engine=pgbackrest), write the configuration, create the repository and work
        folders and the stanza, return RV(archive_command), and take no backup. Reports a change
        only when something was written. WAL archiving need not work yet (set C(archive_command)
        next, then take the backup).
    type: bool
    default: false
extends_documentation_fragment:
  - dbarch.postgresql.backup_repository
  - dbarch.postgresql.connection
  - dbarch.postgresql.pgbackrest
attributes:
  check_mode:
    support: full
    description: Connects only to read the server's version; reports the command it would run and
      what retention would delete; runs nothing and writes nothing.
  diff_mode:
    support: partial
    description: A backup has no before/after; with O(engine=pgbackrest) the configuration file
      written has one (secrets masked).
notes:
  - Run it as the OS user that owns the repository, usually C(postgres) (C(become_user)), with the
    host's system Python. The login role needs the C(REPLICATION) attribute; reading the system
    identifier needs C(pg_monitor) or superuser.
  - Archive WAL to the same repository's C(wal/) folder with the C(dbarch-wal) command of the
    C(backup) role for point-in-time recovery; the streamed WAL in each backup only makes the
    backup itself consistent.
seealso:
  - module: dbarch.postgresql.backup_info
"""

EXAMPLES = r"""
- name: Nightly compressed backup into a local repository, keep 7 days
  dbarch.postgresql.basebackup:
    repository: /var/backups/postgresql/main
    compression: zstd
    compression_site: server
    retain_days: 7
    login_unix_socket: /var/run/postgresql
  become: true
  become_user: postgres
  register: backup

- name: Show the new backup
  ansible.builtin.debug:
    msg: "{{ backup.backup_id }}: {{ backup.metadata.start_lsn }} - {{ backup.metadata.stop_lsn }}"

- name: Backup of a standby to S3 with KMS encryption, keep the newest 14
  dbarch.postgresql.basebackup:
    repository: s3://acme-pg-backups/prod/main
    region: eu-west-1
    sse: aws:kms
    sse_kms_key_id: alias/pg-backups
    storage_class: STANDARD_IA
    compression: gzip
    retain_count: 14
    login_host: replica1.example.com
    login_user: backup
    login_password: "{{ vault_backup_password }}"
"""

RETURN = r"""
backup_id:
  description: Id of the backup (the UTC start time); in check mode the id it would get.
  returned: always
  type: str
  sample: 20261125T221500Z
metadata:
  description:
    - The content of C(backup.json) without the per-file checksums, for example C(status)
      (C(valid) or C(unverified)), C(label), C(system_identifier), C(timeline), C(start_lsn),
      C(stop_lsn), C(start_time), C(stop_time), C(pg_version), C(wal_segment_size), C(format),
      C(compression), C(database_bytes), C(stored_bytes), C(verification) and C(file_count).
  returned: success, not in check mode
  type: dict
actions:
  description: What the module did or, in check mode, would do.
  returned: always
  type: list
  elements: str
command:
  description: The C(pg_basebackup) command line (no password; it goes through the environment).
  returned: always
  type: list
  elements: str
retention:
  description:
    - With O(retain_count) or O(retain_days), the retention plan, C(keep), C(delete_backups),
      C(delete_wal), C(window_start) and C(reason) (why each backup is kept); carried out unless in
      check mode.
  returned: when retention is configured
  type: dict
archive_command:
  description: With O(engine=pgbackrest), the C(archive_command) that archives WAL to the stanza
    (C(pgbackrest --config <file> --stanza=<stanza> archive-push %p)); also in check mode.
  returned: engine pgbackrest
  type: str
config:
  description: With O(engine=pgbackrest), the configuration written, secrets masked.
  returned: engine pgbackrest
  type: str
archive_command_set:
  description: With O(engine=pgbackrest), whether the server already archives with RV(archive_command).
  returned: engine pgbackrest
  type: bool
pgbackrest_config:
  description: With O(engine=pgbackrest), the path of the configuration file.
  returned: engine pgbackrest
  type: str
commands:
  description: With O(engine=pgbackrest), every pgbackrest command run (no secret is ever on them).
  returned: engine pgbackrest, not in check mode
  type: list
  elements: list
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

import re

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup as bk
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import pgbackrest as pgbr
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

ARGUMENT_SPEC = dict(br.REPOSITORY_ARGSPEC)
ARGUMENT_SPEC.update(
    label=dict(type="str"),
    format=dict(type="str", default="tar", choices=list(bk.FORMATS)),
    compression=dict(type="str", default="none", choices=list(bk.COMPRESSIONS)),
    compression_site=dict(type="str", default="client", choices=list(bk.COMPRESSION_SITES)),
    checkpoint=dict(type="str", default="fast", choices=list(bk.CHECKPOINTS)),
    verify=dict(type="bool", default=True),
    bindir=dict(type="path"),
    staging_dir=dict(type="path"),
    max_rate=dict(type="str"),
    timeout=dict(type="int"),
    retain_count=dict(type="int"),
    retain_days=dict(type="float"),
    configure_only=dict(type="bool", default=False),
)
ARGUMENT_SPEC.update(pgbr.ARGSPEC)


def retention(module, repo, apply):
    p = module.params
    if p["retain_count"] is None and p["retain_days"] is None:
        return None
    backups = br.list_backups(repo)
    plan = br.plan_retention(
        backups, repo.list_wal(), retain_count=p["retain_count"], retain_days=p["retain_days"]
    )
    if apply:
        br.apply_retention(repo, plan)
    return plan


def run_pgbackrest(module):
    """engine: pgbackrest (module_utils/pgbackrest.py does the work)."""
    session = module.connect()
    try:
        result = pgbr.basebackup(module.params, session, check_mode=module.check_mode)
    except (DbarchError, OSError) as exc:
        module.fail_from(exc)
    finally:
        session.close()
    diff = result.pop("diff")
    if module._diff and diff["before"] != diff["after"]:
        result["diff"] = diff
    module.exit_json(queries=session.queries, **result)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.require_absolute("repository", "staging_dir", "bindir")
    label = module.params["label"]
    if label is not None and re.search(r"[\x00-\x1f\x7f]", label):
        module.fail_json(
            msg="label=%r holds a control character (newline, tab...): pg_basebackup writes the label as a "
            "line of backup_label; give a label on one line without control characters." % label
        )
    p = module.params
    if p["engine"] == "pgbackrest":
        run_pgbackrest(module)
    if p["retain_count"] is not None and p["retain_count"] < 1:
        module.fail_json(msg="retain_count must be at least 1 (the newest backup is always kept)")
    try:
        repo = br.repository_from_params(p)
    except br.RepositoryError as exc:
        module.fail_from(exc)
    session = module.connect()
    result = dict(changed=True, actions=[])
    # what pg_basebackup is run with, planned (check mode) or taken
    how = dict(fmt=p["format"], compression=p["compression"], site=p["compression_site"])
    how.update(checkpoint=p["checkpoint"], label=p["label"], bindir=p["bindir"])
    try:
        facts = bk.server_facts(session)
        if module.check_mode:
            planned = bk.plan(facts, repo, **how)
            result.update(backup_id=planned["backup_id"], command=planned["argv"], actions=planned["actions"])
            if p["verify"]:
                result["actions"].append("verify it with pg_verifybackup")
            result["actions"].append("write %s/backups/%s/backup.json" % (repo.url, planned["backup_id"]))
            plan = retention(module, repo, apply=False)
        else:
            metadata = bk.take(
                session,
                pg.resolve_params(p),
                repo,
                do_verify=p["verify"],
                staging_root=p["staging_dir"],
                max_rate=p["max_rate"],
                timeout=p["timeout"],
                **how
            )
            result.update(
                backup_id=metadata["id"],
                metadata=bk.summary_of(metadata),
                command=metadata["command"],
            )
            result["actions"].append(
                "took backup %s (%s, %s) into %s, %s"
                % (metadata["id"], p["format"], p["compression"], repo.url, metadata["status"])
            )
            plan = retention(module, repo, apply=True)
        if plan is not None:
            result["retention"] = plan
            verb = "would delete" if module.check_mode else "deleted"
            result["actions"].append(
                "retention %s %d backup(s) and %d WAL file(s)"
                % (verb, len(plan["delete_backups"]), len(plan["delete_wal"]))
            )
    except bk.BackupError as exc:
        # what was done before it failed, and the backup it was taking
        result.pop("changed")
        result["backup_id"] = exc.backup_id
        module.fail_from(exc, **result)
    except DbarchError as exc:
        module.fail_from(exc)
    except OSError as exc:
        module.fail_from(exc, msg_prefix="file system error in repository %s" % repo.url)
    finally:
        session.close()
    module.exit_json(queries=session.queries, **result)


if __name__ == "__main__":
    main()
