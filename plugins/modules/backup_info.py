#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: backup_info
short_description: List the backups of a repository and the point-in-time window its WAL covers
version_added: "0.2.0"
description:
  - Reads a backup repository written by M(dbarch.postgresql.basebackup) and the C(dbarch-wal)
    archive command, a local folder or V(s3://bucket/prefix).
  - Lists the complete backups (those with a C(backup.json)); C(status) C(valid), C(unverified)
    or C(invalid) (failed verification, never usable). With O(include_incomplete), interrupted
    backups too.
  - Reports WAL coverage, the earliest restorable point (the end of the oldest usable backup) and
    the latest one (the end of the last segment archived without a gap after the newest usable
    backup, following timeline switches recorded in C(.history) files), and every gap in the
    archived WAL (missing segments between two archived ones of the same timeline), with the
    names of the missing segments.
  - With O(verify), reads every stored file and compares it with the size and SHA-256 recorded in
    C(backup.json); a mismatch names the file and makes the backup unusable in the output.
  - Read-only; never reports a change. Does not connect to PostgreSQL.
  - With O(engine=pgbackrest) it reads the stanza with C(pgbackrest info --output=json) and
    C(repo-ls) (the archived WAL per timeline) and returns the same shapes, C(id) being the
    pgBackRest label; findings add C(PGBACKREST-STATUS) (the stanza's status is not ok).
    O(verify), O(read_commits) and O(include_incomplete) do not apply. When
    O(pgbackrest_config) does not exist a temporary one is built from O(repository).
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  include_incomplete:
    description:
      - Also list backups without C(backup.json) (interrupted, or still running).
    type: bool
    default: false
  verify:
    description:
      - Read every file of every complete backup and check its size and SHA-256 against
        C(backup.json). Reads the whole repository (downloads it, for S3).
    type: bool
    default: false
  read_commits:
    description:
      - Read the last archived segments after the newest backup with C(pg_waldump) to find the time
        of the last archived commit (RV(wal) C(latest_commit_time)). A time target after it cannot be
        reached; PostgreSQL 14 and later stop with a FATAL error when recovery ends before a time
        target.
      - Reads at most 8 segments (downloads them, for S3).
    type: bool
    default: true
  bindir:
    description:
      - Folder with C(pg_waldump) of the backups' major version. Default, looked up by the major
        version of the newest backup, like M(dbarch.postgresql.basebackup) does.
    type: path
  max_age_hours:
    description:
      - Report a finding when the newest usable backup finished longer ago than this.
    type: float
    default: 26
extends_documentation_fragment:
  - dbarch.postgresql.backup_repository
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
  - dbarch.postgresql.attributes.read_only
  - dbarch.postgresql.pgbackrest
notes:
  - The latest restorable time is the archive time of the last contiguous segment (file
    modification time, or S3 C(LastModified)); recovery can reach the commits in that segment, and
    none after it. The exact LSN is in C(wal.latest_lsn).
  - The connection options are accepted, so C(module_defaults) for the group
    C(group/dbarch.postgresql.all) apply, and ignored.
  - Options O(bandwidth_limit), O(storage_class), O(sse) and O(sse_kms_key_id) are accepted for
    use with C(module_defaults) and ignored (nothing is uploaded).
seealso:
  - module: dbarch.postgresql.basebackup
"""

EXAMPLES = r"""
- name: Backups and WAL coverage of a local repository
  dbarch.postgresql.backup_info:
    repository: /var/backups/postgresql/main
  become: true
  become_user: postgres
  register: repo

- name: Show the restorable window
  ansible.builtin.debug:
    msg: "Restorable from {{ repo.wal.earliest_time }} to {{ repo.wal.latest_time }}"

- name: Check every file of every backup in S3 and fail on a gap or a corrupt backup
  dbarch.postgresql.backup_info:
    repository: s3://acme-pg-backups/prod/main
    region: eu-west-1
    verify: true
    fail_on: high
"""

RETURN = r"""
backups:
  description:
    - Backups in id (time) order, each the content of its C(backup.json) without per-file
      checksums, plus C(usable) and C(file_count). C(status) is C(valid), C(unverified),
      C(invalid), C(corrupt) (O(verify) found a mismatch) or C(incomplete).
  returned: always
  type: list
  elements: dict
wal:
  description:
    - WAL coverage, C(earliest_time), C(earliest_lsn), C(earliest_backup), C(latest_time),
      C(latest_lsn), C(latest_timeline), C(latest_backup), C(first_missing_segment) (the segment
      recovery would need next), C(latest_commit_time) and C(latest_commit_segment) (with
      O(read_commits); C(latest_commit_note) says why it is missing), C(segments) (count),
      C(first_segment), C(last_segment), C(timelines), C(history), C(partial), C(other_files),
      C(segment_size), C(gaps) and C(gaps_in_window) (gaps after the start of the oldest usable backup).
  returned: always
  type: dict
gaps:
  description:
    - Every gap in the archived WAL, each with C(timeline), C(after), C(before) (the archived
      segments around it), C(missing_count) and C(missing) (names, at most 50).
  returned: always
  type: list
  elements: dict
file_checks:
  description: With O(verify), the problems found per backup id (empty list when intact).
  returned: always
  type: dict
findings:
  description:
    - Findings, most severe first. Rules C(BACKUP-NONE), C(BACKUP-INVALID), C(BACKUP-CORRUPT),
      C(BACKUP-INCOMPLETE), C(BACKUP-STALE), C(WAL-GAP), C(WAL-NOT-ARCHIVED), C(WAL-UNKNOWN-FILE).
  returned: always
  type: list
  elements: dict
summary:
  description: C(repository), C(backups), C(usable_backups) and C(counts) of findings by severity.
  returned: always
  type: dict
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup as bk
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import pgbackrest as pgbr
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

# The connection options (added by DbarchModule) are accepted and ignored, so module_defaults of
# the group apply.
ARGUMENT_SPEC = dict(br.REPOSITORY_ARGSPEC)
ARGUMENT_SPEC.update(
    include_incomplete=dict(type="bool", default=False),
    verify=dict(type="bool", default=False),
    max_age_hours=dict(type="float", default=26),
    read_commits=dict(type="bool", default=True),
    bindir=dict(type="path"),
)
ARGUMENT_SPEC.update(pgbr.ARGSPEC)


def inspect(p):
    """(repository URL, report) of the native or the pgbackrest engine."""
    if p["engine"] == "pgbackrest":
        with pgbr.runner_for(p) as runner:
            return p["repository"], pgbr.inspect(runner, max_age_hours=p["max_age_hours"])
    repo = br.repository_from_params(p)
    # the options of the same name in bk.inspect
    same = dict((name, p[name]) for name in ("include_incomplete", "max_age_hours", "read_commits", "bindir"))
    return repo.url, bk.inspect(repo, check_files=p["verify"], **same)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, findings=True, supports_check_mode=True)
    module.require_absolute("repository")
    try:
        repo_url, report = inspect(module.params)
    except DbarchError as exc:
        module.fail_from(exc)
    except OSError as exc:
        module.fail_from(exc, msg_prefix="cannot read repository %s" % module.params["repository"])
    found, unused = module.suppress(report["findings"])
    summary = {
        "repository": repo_url,
        "backups": len(report["backups"]),
        "usable_backups": len([b for b in report["backups"] if b.get("usable")]),
        "counts": fnd.counts(found),
        "unused_suppressions": unused,
    }
    module.exit_findings(
        found,
        backups=report["backups"],
        wal=report["wal"],
        gaps=report["gaps"],
        file_checks=report["file_checks"],
        summary=summary,
    )


if __name__ == "__main__":
    main()
