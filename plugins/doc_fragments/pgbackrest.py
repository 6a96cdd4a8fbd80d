# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # engine: pgbackrest (basebackup, backup_info, pitr_restore).
    DOCUMENTATION = r"""
options:
  engine:
    description:
      - V(native) uses the collection's own repository (C(pg_basebackup), C(backup.json),
        C(dbarch-wal)).
      - V(pgbackrest) configures and drives pgBackRest (the Debian package) for the same task;
        O(repository) is then pgBackRest's C(repo1-path) (a folder) or an S3 bucket and prefix
        (V(s3://bucket/prefix), with O(endpoint_url), O(region) and the keys).
      - Options that only make sense for one engine are ignored by the other.
    type: str
    choices: [native, pgbackrest]
    default: native
  stanza:
    description:
      - pgBackRest stanza (one per cluster). Only with O(engine=pgbackrest).
    type: str
    default: main
  pgbackrest_config:
    description:
      - The pgBackRest configuration file for O(stanza); the collection always runs
        C(pgbackrest --config <this file>), never reading C(/etc/pgbackrest.conf).
      - Written (0600, owned by O(pgbackrest_user)) by M(dbarch.postgresql.basebackup); S3 keys go
        only into this file. Default C(/etc/pgbackrest/dbarch-<stanza>.conf).
    type: path
  pgbackrest_work_dir:
    description:
      - Folder owned by O(pgbackrest_user) for pgBackRest's C(log-path) (C(log/)), C(lock-path)
        (C(lock/)) and C(spool-path) (C(spool/)). Default C(/var/spool/pgbackrest/dbarch-<stanza>).
    type: path
  pgbackrest_options:
    description:
      - More C([global]) options of the configuration file, name to value (booleans become C(y)/C(n)),
        for example C(process-max), C(repo1-storage-ca-file), C(repo1-storage-verify-tls),
        C(repo1-cipher-type), C(repo1-bundle). They replace the options of the same name the module
        derives. C(pg1-*) options are read from the server and refused here.
      - Secret values (C(repo1-cipher-pass), C(repo1-s3-token)) are masked in results, but they are
        module arguments; prefer the environment (C(PGBACKREST_REPO1_CIPHER_PASS)).
    type: dict
    default: {}
  pgbackrest_user:
    description:
      - OS user that runs C(pgbackrest), the owner of the cluster's data directory. Default
        C(postgres) when the module runs as root, otherwise the user the module runs as.
    type: str
"""
