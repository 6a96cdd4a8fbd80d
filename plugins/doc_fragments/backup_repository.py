# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The backup repository: a local folder or s3://bucket/prefix, and the S3 options.
    DOCUMENTATION = r"""
options:
  repository:
    description:
      - The backup repository, an absolute folder on the managed host or V(s3://bucket/prefix).
      - Layout, the same in both, C(backups/<backup_id>/backup.json) (written last, so a backup
        without it is never listed as complete), C(backups/<backup_id>/data/) (what
        C(pg_basebackup) wrote) and C(wal/) (archived WAL, as the C(dbarch-wal) archive
        command of the collection writes it).
    type: str
    required: true
  endpoint_url:
    description:
      - S3 endpoint, for S3-compatible stores (MinIO, Ceph RGW, ...). Default is AWS.
    type: str
  region:
    description:
      - AWS region of the bucket. Default from the AWS configuration of the OS user.
    type: str
  aws_access_key_id:
    description:
      - AWS access key. Default from the standard AWS credential chain (environment,
        C(~/.aws/credentials), instance profile).
    type: str
  aws_secret_access_key:
    description:
      - AWS secret key, with O(aws_access_key_id). Never shown in output or logs.
    type: str
  aws_session_token:
    description:
      - AWS session token of temporary credentials, with O(aws_access_key_id) and
        O(aws_secret_access_key). Never shown in output or logs.
    type: str
  storage_class:
    description:
      - S3 storage class of uploaded objects, for example V(STANDARD_IA).
    type: str
  sse:
    description:
      - Server-side encryption of uploaded objects, V(AES256) (S3-managed keys) or
        V(aws:kms) (KMS, key from O(sse_kms_key_id) or the account's default key).
    type: str
    choices: [AES256, aws:kms]
  sse_kms_key_id:
    description:
      - KMS key id or ARN, with O(sse=aws:kms).
    type: str
  bandwidth_limit:
    description:
      - Upload rate cap in bytes per second (average over the backup). Default no cap.
    type: int
requirements:
  - boto3 for S3 repositories (C(python3-boto3) on Debian/Ubuntu managed hosts)
"""
