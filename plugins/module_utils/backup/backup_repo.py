# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup repositories (a local folder or S3), WAL names, coverage and retention.

Plain Python (standard library; boto3 only for S3 repositories, its client from core/aws.py), no
Ansible imports.

Layout of a repository (the same on disk and under an S3 prefix)::

    <repo>/backups/<backup_id>/backup.json   metadata, written LAST (atomically): its
                                             presence is what makes a backup complete
    <repo>/backups/<backup_id>/data/...      what pg_basebackup wrote (tar files or PGDATA)
    <repo>/wal/<segment>[.gz|.zst|.lz4]      archived WAL (dbarch-wal archive), .history,
                                             .partial and .backup files

``backup_id`` is the UTC start time, ``YYYYMMDDTHHMMSSZ``, so names sort in time order.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

import base64
import datetime
import gzip
import hashlib
import json
import os
import re
import shutil
import tempfile
import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import wal as wn
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import aws
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.aws import BotoCoreError, ClientError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.fsutil import atomic_write, fsync_dir

METADATA_NAME = "backup.json"
DATA_FOLDER = "data"
BACKUP_ID = re.compile(r"^\d{8}T\d{6}Z$")
UTC = datetime.timezone.utc  # noqa: UP017 - datetime.UTC needs Python 3.11
DEFAULT_SEGMENT_SIZE = wn.DEFAULT_SEGMENT_SIZE
COMPRESSED_SUFFIXES = wn.COMPRESSED_SUFFIXES
USABLE_STATUSES = ("valid", "unverified")
CHUNK = 1024 * 1024

# S3 multipart limits.
S3_MIN_PART = 5 * 1024 * 1024
S3_MAX_PART = 5 * 1024 * 1024 * 1024
S3_MAX_PARTS = 10000
S3_DEFAULT_PART = 16 * 1024 * 1024
S3_MAX_OBJECT = 5 * 1024 * 1024 * 1024 * 1024
SSE_CHOICES = ("AES256", "aws:kms")


class RepositoryError(DbarchError):
    """A repository problem with a message that says what, where and how to fix it."""


# --------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------


def utcnow():
    return datetime.datetime.now(UTC)


def new_backup_id(now=None):
    return (now or utcnow()).strftime("%Y%m%dT%H%M%SZ")


def parse_time(text):
    """ISO 8601 (as written in backup.json) -> aware datetime; None stays None."""
    if text in (None, ""):
        return None
    if isinstance(text, datetime.datetime):
        return text if text.tzinfo else text.replace(tzinfo=UTC)
    value = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def format_time(value):
    if value is None:
        return None
    return parse_time(value).astimezone(UTC).isoformat()


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_files(top):
    """{relative path: absolute path} of the regular files under ``top`` (sorted)."""
    found = {}
    for root, dirs, files in os.walk(top):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found[os.path.relpath(path, top)] = path
    return found


def checksum_tree(top):
    """{relative path: {size, sha256}} for every file under ``top``."""
    return {
        rel: {"size": os.path.getsize(path), "sha256": sha256_file(path)}
        for rel, path in tree_files(top).items()
    }


# --------------------------------------------------------------------------------------
# Repositories
# --------------------------------------------------------------------------------------


def is_s3(url):
    return str(url or "").startswith("s3://")


def open_repository(url, s3_options=None):
    if is_s3(url):
        return S3Repository(url, **(s3_options or {}))
    return LocalRepository(url)


class LocalRepository:
    """A repository in a local (or mounted) folder."""

    kind = "local"

    def __init__(self, path):
        if not path or not os.path.isabs(str(path)):
            raise RepositoryError("repository %r: give an absolute folder or s3://bucket/prefix" % (path,))
        self.root = os.path.normpath(str(path))
        self.url = self.root
        self.backups_dir = os.path.join(self.root, "backups")
        self.wal_dir = os.path.join(self.root, "wal")

    def __repr__(self):
        return "LocalRepository(%s)" % self.root

    def exists(self):
        return os.path.isdir(self.root)

    def ensure(self):
        for folder in (self.root, self.backups_dir, self.wal_dir):
            if not os.path.isdir(folder):
                try:
                    os.makedirs(folder, mode=0o750, exist_ok=True)
                except OSError as exc:
                    raise RepositoryError(
                        "cannot create %s as OS user uid %d: %s; create the repository folder for the "
                        "user that runs the task (become_user) first" % (folder, os.geteuid(), exc)
                    ) from None
        if not os.access(self.backups_dir, os.W_OK | os.X_OK):
            raise RepositoryError(
                "%s is not writable by this OS user (uid %d); run the task as the repository's owner "
                "(become_user) or fix the folder's permissions" % (self.backups_dir, os.geteuid())
            )

    def backup_dir(self, backup_id):
        return os.path.join(self.backups_dir, backup_id)

    def list_ids(self):
        try:
            names = os.listdir(self.backups_dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if BACKUP_ID.match(n) and os.path.isdir(self.backup_dir(n)))

    def id_taken(self, backup_id):
        return os.path.exists(self.backup_dir(backup_id))

    def read_metadata(self, backup_id):
        path = os.path.join(self.backup_dir(backup_id), METADATA_NAME)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise RepositoryError("%s is not valid JSON (%s)" % (path, exc)) from None

    def write_metadata(self, backup_id, metadata):
        data = (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode("utf-8")
        atomic_write(os.path.join(self.backup_dir(backup_id), METADATA_NAME), data)

    def staging_dir(self, backup_id, staging_root=None):
        """Where pg_basebackup writes: straight into the backup's data folder."""
        folder = self.backup_dir(backup_id)
        os.mkdir(folder, 0o750)
        return os.path.join(folder, DATA_FOLDER)

    def store(self, backup_id, staged, files, progress=None):
        """Nothing to upload for a local repository: make the data durable."""
        for root, _dirs, _files in os.walk(staged):
            fsync_dir(root)
        fsync_dir(self.backup_dir(backup_id))
        fsync_dir(self.backups_dir)
        return {}

    def discard_staging(self, staged):
        """Nothing to remove: the staging folder is the backup."""

    def abandon(self, backup_id, staged):
        """Remove a backup that never got its backup.json (pg_basebackup failed)."""
        if self.read_metadata(backup_id) is None:
            shutil.rmtree(self.backup_dir(backup_id), ignore_errors=True)

    def data_files(self, backup_id):
        """{relative path under data/: size} as stored."""
        top = os.path.join(self.backup_dir(backup_id), DATA_FOLDER)
        return {rel: os.path.getsize(path) for rel, path in tree_files(top).items()}

    def file_sha256(self, backup_id, rel):
        return sha256_file(os.path.join(self.backup_dir(backup_id), DATA_FOLDER, rel))

    def fetch_backup(self, backup_id, dest=None):
        """Local path of the backup's data folder (no copy needed)."""
        return os.path.join(self.backup_dir(backup_id), DATA_FOLDER)

    def delete_backup(self, backup_id):
        """Remove backup.json first (the backup stops being complete), then the data."""
        folder = self.backup_dir(backup_id)
        meta = os.path.join(folder, METADATA_NAME)
        if os.path.exists(meta):
            os.unlink(meta)
            fsync_dir(folder)
        shutil.rmtree(folder)
        fsync_dir(self.backups_dir)

    def list_wal(self):
        """[{name, size, mtime}] of the WAL folder."""
        try:
            entries = list(os.scandir(self.wal_dir))
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            if entry.is_file() and not entry.name.startswith("."):
                st = entry.stat()
                out.append({"name": entry.name, "size": st.st_size, "mtime": st.st_mtime})
        return sorted(out, key=lambda e: e["name"])

    def read_wal_text(self, name):
        with open(os.path.join(self.wal_dir, name), "rb") as handle:
            return decompress_wal(name, handle.read()).decode("utf-8", "replace")

    def wal_path(self, name, scratch):
        """A local, uncompressed copy (or the file itself) of WAL file ``name``."""
        path = os.path.join(self.wal_dir, name)
        if not name.endswith(COMPRESSED_SUFFIXES):
            return path
        with open(path, "rb") as handle:
            data = handle.read()
        return write_plain_wal(scratch, name, data)

    def delete_wal(self, names):
        for name in names:
            os.unlink(os.path.join(self.wal_dir, name))
        if names:
            fsync_dir(self.wal_dir)


def write_plain_wal(scratch, name, data):
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    elif name.endswith(COMPRESSED_SUFFIXES):
        raise RepositoryError("%s: only gzip-compressed WAL can be read here" % name)
    path = os.path.join(scratch, name.split(".")[0])
    with open(path, "wb") as out:
        out.write(data)
    return path


def decompress_wal(name, data):
    if name.endswith(".gz"):
        return gzip.decompress(data)
    return data


# --------------------------------------------------------------------------------------
# S3
# --------------------------------------------------------------------------------------


def choose_part_size(size, preferred=S3_DEFAULT_PART):
    """A part size that keeps ``size`` within 10,000 parts of at least 5 MiB (MiB-aligned)."""
    size = int(size)
    if size > S3_MAX_OBJECT:
        raise RepositoryError("a %d-byte file exceeds S3's 5 TiB object limit" % size)
    part = max(int(preferred), S3_MIN_PART)
    needed = -(-size // S3_MAX_PARTS)
    if needed > part:
        mib = 1024 * 1024
        part = -(-needed // mib) * mib
    return min(part, S3_MAX_PART)


def multipart_etag(part_md5s):
    """ETag S3 gives a multipart upload (not SSE-KMS): md5 of the part md5s, '-', count."""
    joined = hashlib.md5(b"".join(part_md5s), usedforsecurity=False).hexdigest()
    return '"%s-%d"' % (joined, len(part_md5s))


class _Throttle:
    """Keeps the average rate under ``limit`` bytes per second (None: no cap)."""

    def __init__(self, limit):
        self.limit = int(limit) if limit else None
        self.start = time.monotonic()
        self.sent = 0

    def account(self, count):
        if not self.limit:
            return
        self.sent += count
        ahead = self.sent / float(self.limit) - (time.monotonic() - self.start)
        if ahead > 0:
            time.sleep(ahead)


class S3Repository:
    """A repository under s3://bucket/prefix (boto3)."""

    kind = "s3"

    def __init__(
        self,
        url,
        endpoint_url=None,
        region=None,
        aws_access_key_id=None,
        aws_secret_access_key=None,
        aws_session_token=None,
        storage_class=None,
        sse=None,
        sse_kms_key_id=None,
        bandwidth_limit=None,
        part_size=None,
        client=None,
    ):
        match = re.match(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?$", str(url or ""))
        if not match:
            raise RepositoryError("repository %r: expected s3://bucket[/prefix]" % (url,))
        if sse and sse not in SSE_CHOICES:
            raise RepositoryError("sse must be one of %s, not %r" % (", ".join(SSE_CHOICES), sse))
        if sse_kms_key_id and sse != "aws:kms":
            raise RepositoryError("sse_kms_key_id needs sse=aws:kms")
        self.bucket = match.group(1)
        self.prefix = (match.group(2) or "").strip("/")
        self.url = "s3://%s%s" % (self.bucket, "/" + self.prefix if self.prefix else "")
        self.storage_class = storage_class
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        self.bandwidth_limit = bandwidth_limit
        self.part_size = part_size or S3_DEFAULT_PART
        self.endpoint_url = endpoint_url
        self.region = region
        # Given credentials, as the AWS_* environment of a process that reads this repository
        # (the restore_command of a restored server); empty: the standard AWS chain.
        self.credentials_env = {
            env: value
            for env, value in (
                ("AWS_ACCESS_KEY_ID", aws_access_key_id),
                ("AWS_SECRET_ACCESS_KEY", aws_secret_access_key),
                ("AWS_SESSION_TOKEN", aws_session_token),
            )
            if value
        }
        if client is None:
            try:
                # no region given or in the environment: boto3's own (the profile's; S3 finds the bucket's)
                client = aws.client(
                    "s3",
                    what="An S3 repository",
                    default_region=None,
                    endpoint_url=endpoint_url,
                    region=region,
                    aws_access_key_id=aws_access_key_id,
                    aws_secret_access_key=aws_secret_access_key,
                    aws_session_token=aws_session_token,
                )
            except aws.AwsError as exc:
                raise RepositoryError(str(exc)) from None
        self.client = client

    def __repr__(self):
        return "S3Repository(%s)" % self.url

    def key(self, *parts):
        return "/".join([p for p in [self.prefix] + list(parts) if p])

    def _error(self, what, exc):
        return RepositoryError("S3 %s failed for %s: %s" % (what, self.url, exc))

    def exists(self):
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("HEAD bucket", exc) from None
        return True

    def ensure(self):
        self.exists()

    def _list(self, prefix, delimiter=None):
        kwargs = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        objects, prefixes = [], []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                objects.extend(page.get("Contents", []))
                prefixes.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
        except (ClientError, BotoCoreError) as exc:
            raise self._error("list", exc) from None
        return objects, prefixes

    def _objects(self, prefix):
        return self._list(prefix)[0]

    def list_ids(self):
        base = self.key("backups") + "/"
        prefixes = self._list(base, delimiter="/")[1]
        ids = [p[len(base) :].strip("/") for p in prefixes]
        return sorted(i for i in ids if BACKUP_ID.match(i))

    def id_taken(self, backup_id):
        objects = self._objects(self.key("backups", backup_id) + "/")
        return bool(objects)

    def _get(self, key):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._error("GET %s" % key, exc) from None

    def read_metadata(self, backup_id):
        raw = self._get(self.key("backups", backup_id, METADATA_NAME))
        if raw is None:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError as exc:
            raise RepositoryError(
                "%s/backups/%s/%s is not valid JSON (%s)" % (self.url, backup_id, METADATA_NAME, exc)
            ) from None

    def _extra_args(self, sha256):
        extra = {"Metadata": {"sha256": sha256}}
        if self.storage_class:
            extra["StorageClass"] = self.storage_class
        if self.sse:
            extra["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            extra["SSEKMSKeyId"] = self.sse_kms_key_id
        return extra

    def upload_file(self, path, key, sha256=None, throttle=None):
        """Upload one file (single PUT or multipart), then check it with HEAD.

        Every part carries Content-MD5 (S3 rejects a corrupted part); the object carries
        its SHA-256 as metadata; the HEAD afterwards must show the same size, SHA-256
        and (without SSE-KMS) the ETag computed here from the bytes read.
        """
        size = os.path.getsize(path)
        sha256 = sha256 or sha256_file(path)
        extra = self._extra_args(sha256)
        part_size = choose_part_size(size, self.part_size)
        throttle = throttle or _Throttle(self.bandwidth_limit)
        md5s = []
        try:
            with open(path, "rb") as handle:
                if size <= part_size:
                    body = handle.read()
                    md5 = hashlib.md5(body, usedforsecurity=False).digest()
                    md5s.append(md5)
                    throttle.account(len(body))
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=body,
                        ContentMD5=base64.b64encode(md5).decode("ascii"),
                        **extra,
                    )
                    expected_etag = '"%s"' % md5.hex()
                else:
                    upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)
                    upload_id = upload["UploadId"]
                    parts = []
                    try:
                        number = 1
                        while True:
                            body = handle.read(part_size)
                            if not body:
                                break
                            md5 = hashlib.md5(body, usedforsecurity=False).digest()
                            md5s.append(md5)
                            throttle.account(len(body))
                            res = self.client.upload_part(
                                Bucket=self.bucket,
                                Key=key,
                                UploadId=upload_id,
                                PartNumber=number,
                                Body=body,
                                ContentMD5=base64.b64encode(md5).decode("ascii"),
                            )
                            parts.append({"ETag": res["ETag"], "PartNumber": number})
                            number += 1
                        self.client.complete_multipart_upload(
                            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                        )
                    except BaseException:
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                        raise
                    expected_etag = multipart_etag(md5s)
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("upload of %s to %s" % (path, key), exc) from None
        problems = []
        if head.get("ContentLength") != size:
            problems.append("size %s, expected %d" % (head.get("ContentLength"), size))
        if head.get("Metadata", {}).get("sha256") != sha256:
            problems.append(
                "sha256 metadata %r, expected %s" % (head.get("Metadata", {}).get("sha256"), sha256)
            )
        if self.sse != "aws:kms" and head.get("ETag") != expected_etag:
            problems.append("ETag %s, expected %s" % (head.get("ETag"), expected_etag))
        if problems:
            raise RepositoryError(
                "S3 object %s does not match %s after upload: %s" % (key, path, "; ".join(problems))
            )
        return {"key": key, "size": size, "sha256": sha256, "parts": len(md5s), "part_size": part_size}

    def write_metadata(self, backup_id, metadata):
        data = (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode("utf-8")
        handle, tmp = tempfile.mkstemp(prefix="dbarch-meta-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            self.upload_file(tmp, self.key("backups", backup_id, METADATA_NAME))
        finally:
            os.unlink(tmp)

    def staging_dir(self, backup_id, staging_root=None):
        root = tempfile.mkdtemp(prefix="dbarch-backup-%s-" % backup_id, dir=staging_root)
        return os.path.join(root, DATA_FOLDER)

    def store(self, backup_id, staged, files, progress=None):
        """Upload every file of ``staged`` (with the SHA-256 from ``files``)."""
        throttle = _Throttle(self.bandwidth_limit)
        uploads = {}
        for rel, path in tree_files(staged).items():
            key = self.key("backups", backup_id, DATA_FOLDER, *rel.split(os.sep))
            uploads[rel] = self.upload_file(path, key, sha256=files[rel]["sha256"], throttle=throttle)
        return uploads

    def discard_staging(self, staged):
        shutil.rmtree(os.path.dirname(staged), ignore_errors=True)

    def abandon(self, backup_id, staged):
        self.discard_staging(staged)

    def data_files(self, backup_id):
        base = self.key("backups", backup_id, DATA_FOLDER) + "/"
        objects = self._objects(base)
        return {o["Key"][len(base) :]: o["Size"] for o in objects}

    def file_sha256(self, backup_id, rel):
        key = self.key("backups", backup_id, DATA_FOLDER, rel)
        digest = hashlib.sha256()
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            for block in iter(lambda: body.read(CHUNK), b""):
                digest.update(block)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("GET %s" % key, exc) from None
        return digest.hexdigest()

    def delete_keys(self, keys):
        keys = list(keys)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            try:
                res = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except (ClientError, BotoCoreError) as exc:
                raise self._error("delete", exc) from None
            if res.get("Errors"):
                raise RepositoryError("S3 delete failed for %s: %s" % (self.url, res["Errors"][:3]))

    def delete_backup(self, backup_id):
        """backup.json first (the backup stops being complete), then the data objects."""
        self.delete_keys([self.key("backups", backup_id, METADATA_NAME)])
        objects = self._objects(self.key("backups", backup_id) + "/")
        self.delete_keys(o["Key"] for o in objects)

    def list_wal(self):
        base = self.key("wal") + "/"
        objects = self._objects(base)
        out = []
        for obj in objects:
            name = obj["Key"][len(base) :]
            if name and "/" not in name:
                out.append({"name": name, "size": obj["Size"], "mtime": obj["LastModified"].timestamp()})
        return sorted(out, key=lambda e: e["name"])

    def read_wal_text(self, name):
        raw = self._get(self.key("wal", name)) or b""
        return decompress_wal(name, raw).decode("utf-8", "replace")

    def wal_path(self, name, scratch):
        """Download WAL file ``name`` (checked against its sha256 metadata) into ``scratch``."""
        key = self.key("wal", name)
        try:
            res = self.client.get_object(Bucket=self.bucket, Key=key)
            raw = res["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise RepositoryError("%s/wal/%s disappeared while reading" % (self.url, name)) from None
            raise self._error("GET %s" % key, exc) from None
        want = (res.get("Metadata") or {}).get("sha256")
        if want and want != hashlib.sha256(raw).hexdigest():
            raise RepositoryError(
                "%s/wal/%s does not match its sha256 metadata (%s): the object is corrupt"
                % (self.url, name, want)
            )
        return write_plain_wal(scratch, name, raw)

    def download_backup(self, backup_id, expected, dest, progress=None):
        """Download the backup's data objects into ``dest``, checking each against ``expected``.

        ``expected`` is backup.json's ``files`` ({rel: {size, sha256}}). The SHA-256 is computed
        while the bytes are written. Returns the problems as verify_files() does ([] when every
        file matches); stops at the first corrupt or missing file.
        """
        stored = self.data_files(backup_id)
        problems = []
        for rel in sorted(set(stored) - set(expected)):
            problems.append(
                {"file": rel, "problem": "not in backup.json", "expected": None, "found": stored[rel]}
            )
        for rel in sorted(expected):
            want = expected[rel]
            if rel not in stored:
                problems.append(
                    {"file": rel, "problem": "missing", "expected": want["sha256"], "found": None}
                )
                continue
            if stored[rel] != want["size"]:
                problems.append(
                    {"file": rel, "problem": "size differs", "expected": want["size"], "found": stored[rel]}
                )
        if problems:
            return problems
        for rel in sorted(expected):
            want = expected[rel]
            key = self.key("backups", backup_id, DATA_FOLDER, rel)
            path = os.path.join(dest, *rel.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            digest = hashlib.sha256()
            size = 0
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
                with open(path, "wb") as out:
                    while True:
                        block = body.read(CHUNK)
                        if not block:
                            break
                        digest.update(block)
                        size += len(block)
                        out.write(block)
            except (ClientError, BotoCoreError) as exc:
                raise self._error("GET %s" % key, exc) from None
            if size != want["size"]:
                return [{"file": rel, "problem": "size differs", "expected": want["size"], "found": size}]
            if digest.hexdigest() != want["sha256"]:
                return [
                    {
                        "file": rel,
                        "problem": "checksum differs",
                        "expected": want["sha256"],
                        "found": digest.hexdigest(),
                    }
                ]
            if progress:
                progress(rel, size)
        return []

    def delete_wal(self, names):
        self.delete_keys(self.key("wal", n) for n in names)


# --------------------------------------------------------------------------------------
# Listing, coverage, retention
# --------------------------------------------------------------------------------------


def list_backups(repo, include_incomplete=False):
    """Backups in id order: complete ones (with backup.json); incomplete ones when asked."""
    out = []
    for backup_id in repo.list_ids():
        meta = repo.read_metadata(backup_id)
        if meta is None:
            if include_incomplete:
                out.append({"id": backup_id, "status": "incomplete", "usable": False})
            continue
        entry = dict(meta)
        entry["id"] = backup_id
        entry["usable"] = meta.get("status") in USABLE_STATUSES
        out.append(entry)
    return out


def verify_files(repo, backup_id, metadata):
    """Compare the stored files with the SHA-256 and sizes of backup.json.

    Returns a list of problems, each {file, problem, expected, found}; [] when intact.
    """
    expected = metadata.get("files") or {}
    if not expected:
        return [{"file": None, "problem": "backup.json lists no files", "expected": None, "found": None}]
    stored = repo.data_files(backup_id)
    problems = []
    for rel in sorted(expected):
        want = expected[rel]
        if rel not in stored:
            problems.append({"file": rel, "problem": "missing", "expected": want["sha256"], "found": None})
            continue
        if stored[rel] != want["size"]:
            problems.append(
                {"file": rel, "problem": "size differs", "expected": want["size"], "found": stored[rel]}
            )
            continue
        found = repo.file_sha256(backup_id, rel)
        if found != want["sha256"]:
            problems.append(
                {"file": rel, "problem": "checksum differs", "expected": want["sha256"], "found": found}
            )
    for rel in sorted(set(stored) - set(expected)):
        problems.append(
            {"file": rel, "problem": "not in backup.json", "expected": None, "found": stored[rel]}
        )
    return problems


def wal_inventory(entries, segment_size):
    """Split a WAL folder listing by kind; unknown names are reported as ``other``."""
    inv = {"segments": {}, "partial": [], "history": {}, "backup_history": [], "other": []}
    for entry in entries:
        info = wn.parse_wal_name(entry["name"], segment_size)
        if info is None:
            inv["other"].append(entry["name"])
        elif info["kind"] == "segment":
            inv["segments"].setdefault((info["timeline"], info["segno"]), dict(entry, **info))
        elif info["kind"] == "history":
            inv["history"][info["timeline"]] = entry["name"]
        else:
            inv[info["kind"]].append(entry["name"])
    return inv


def find_gaps(segments, segment_size, limit=50):
    """Missing segments between two archived ones on the same timeline.

    Returns [{timeline, after, before, missing_count, missing: [names (at most limit)]}].
    """
    by_tli = {}
    for tli, segno in segments:
        by_tli.setdefault(tli, []).append(segno)
    gaps = []
    for tli in sorted(by_tli):
        numbers = sorted(by_tli[tli])
        for low, high in zip(numbers, numbers[1:]):  # noqa: B905 - older Pythons lack strict=
            if high - low > 1:
                missing = [
                    wn.segment_name(tli, s, segment_size) for s in range(low + 1, min(high, low + 1 + limit))
                ]
                gaps.append(
                    {
                        "timeline": tli,
                        "after": wn.segment_name(tli, low, segment_size),
                        "before": wn.segment_name(tli, high, segment_size),
                        "missing_count": high - low - 1,
                        "missing": missing,
                    }
                )
    return gaps


def replay_end(start_lsn, start_tli, segments, histories, segment_size):
    """How far WAL replay from ``start_lsn`` can go with the archived segments.

    Follows the newest timeline whose history contains ``start_tli`` (what
    recovery_target_timeline=latest does). For each segment it takes the file of the
    newest timeline of that chain that began at or before the segment. Returns
    (end_lsn, timeline of the last segment, name of the first missing segment or None).
    """
    targets = [
        t
        for t in sorted({start_tli} | set(histories))
        if t == start_tli or any(p == start_tli for p, _s in histories.get(t, []))
    ]
    target = max(targets)
    chain = wn.timeline_chain(target, histories)
    segno = wn.segno_of(start_lsn, segment_size)
    end = start_lsn
    last_tli = start_tli
    while True:
        found = None
        for tli, begin, stop in reversed(chain):
            if wn.segno_of(begin, segment_size) > segno:
                continue
            if stop is not None and wn.segno_of(stop, segment_size) < segno:
                continue
            if (tli, segno) in segments:
                found = tli
                break
        if found is None:
            candidates = [t for t, b, _s in chain if wn.segno_of(b, segment_size) <= segno]
            return (
                end,
                last_tli,
                wn.segment_name(max(candidates) if candidates else start_tli, segno, segment_size),
            )
        end = (segno + 1) * segment_size
        last_tli = found
        segno += 1


def coverage(backups, wal_entries, histories_text, segment_size=None):
    """Earliest and latest restorable points, gaps, and what the WAL archive holds.

    backups: list_backups() output; wal_entries: repo.list_wal(); histories_text:
    {timeline: history file text}. Times of the latest point come from the archive's
    modification time of the last contiguous segment (an upper bound: recovery can reach
    every commit in it, none after it).
    """
    usable = [b for b in backups if b.get("usable")]
    if segment_size is None:
        sizes = [b.get("wal_segment_size") for b in usable if b.get("wal_segment_size")]
        segment_size = sizes[-1] if sizes else DEFAULT_SEGMENT_SIZE
    inv = wal_inventory(wal_entries, segment_size)
    histories = {tli: wn.parse_history(text) for tli, text in histories_text.items()}
    segments = inv["segments"]
    gaps = find_gaps(segments.keys(), segment_size)
    result = {
        "segment_size": segment_size,
        "segments": len(segments),
        "partial": sorted(inv["partial"]),
        "history": sorted(inv["history"].values()),
        "other_files": sorted(inv["other"]),
        "timelines": sorted({tli for tli, _s in segments} | set(inv["history"])),
        "first_segment": None,
        "last_segment": None,
        "gaps": gaps,
        "earliest_lsn": None,
        "earliest_time": None,
        "earliest_backup": None,
        "latest_lsn": None,
        "latest_time": None,
        "latest_timeline": None,
        "latest_backup": None,
        "first_missing_segment": None,
        "gaps_in_window": [],
    }
    if segments:
        ordered = sorted(segments, key=lambda k: (k[1], k[0]))
        result["first_segment"] = wn.segment_name(ordered[0][0], ordered[0][1], segment_size)
        result["last_segment"] = wn.segment_name(ordered[-1][0], ordered[-1][1], segment_size)
    if not usable:
        return result
    oldest, newest = usable[0], usable[-1]
    result["earliest_backup"] = oldest["id"]
    result["earliest_lsn"] = oldest.get("stop_lsn")
    result["earliest_time"] = oldest.get("stop_time")
    end, tli, missing = replay_end(
        wn.parse_lsn(newest["stop_lsn"]), int(newest["timeline"]), segments, histories, segment_size
    )
    result["latest_backup"] = newest["id"]
    result["latest_timeline"] = tli
    result["first_missing_segment"] = missing
    stop = wn.parse_lsn(newest["stop_lsn"])
    if end > stop:
        result["latest_lsn"] = wn.format_lsn(end)
        last = segments[(tli, wn.segno_of(end - 1, segment_size))]
        result["latest_time"] = format_time(datetime.datetime.fromtimestamp(last["mtime"], UTC))
    else:
        result["latest_lsn"] = newest["stop_lsn"]
        result["latest_time"] = newest.get("stop_time")
    oldest_start = wn.segno_of(wn.parse_lsn(oldest["start_lsn"]), segment_size)
    result["gaps_in_window"] = [
        g for g in gaps if wn.parse_wal_name(g["before"], segment_size)["segno"] > oldest_start
    ]
    return result


def plan_retention(backups, wal_entries, now=None, retain_count=None, retain_days=None, segment_size=None):
    """Which backups and WAL files retention removes, never what the window needs.

    Kept backups (usable ones only: incomplete and invalid backups are left for the
    operator and reported): the newest ``retain_count``; with ``retain_days``, every
    backup that stopped inside the window plus the newest one that stopped before the
    window start (restoring to the window start needs it). Both options: the union.
    The newest usable backup is always kept. WAL files that end at or before the start
    LSN of the oldest kept backup are removed; history files never are. With no usable
    backup nothing is removed.
    """
    now = parse_time(now) if now else utcnow()
    usable = sorted((b for b in backups if b.get("usable")), key=lambda b: (b["stop_time"], b["id"]))
    plan = {"keep": [], "delete_backups": [], "delete_wal": [], "window_start": None, "reason": {}}
    if not usable:
        plan["keep"] = []
        return plan
    if retain_count is not None and int(retain_count) < 1:
        raise RepositoryError("retain_count must be at least 1")
    if retain_days is not None and float(retain_days) < 0:
        raise RepositoryError("retain_days must not be negative")
    keep = {usable[-1]["id"]: "newest backup"}
    if retain_count is None and retain_days is None:
        keep.update({b["id"]: "no retention configured" for b in usable})
    if retain_count is not None:
        for b in usable[-int(retain_count) :]:
            keep.setdefault(b["id"], "one of the newest %d" % int(retain_count))
    if retain_days is not None:
        start = now - datetime.timedelta(days=float(retain_days))
        plan["window_start"] = format_time(start)
        before = [b for b in usable if parse_time(b["stop_time"]) <= start]
        for b in usable:
            if parse_time(b["stop_time"]) > start:
                keep.setdefault(b["id"], "stopped inside the %s-day window" % retain_days)
        if before:
            keep.setdefault(before[-1]["id"], "restores to the window start")
    plan["keep"] = [b["id"] for b in usable if b["id"] in keep]
    plan["reason"] = keep
    plan["delete_backups"] = [b["id"] for b in usable if b["id"] not in keep]
    if segment_size is None:
        segment_size = usable[-1].get("wal_segment_size") or DEFAULT_SEGMENT_SIZE
    oldest_start = min(wn.parse_lsn(b["start_lsn"]) for b in usable if b["id"] in keep)
    for entry in wal_entries:
        info = wn.parse_wal_name(entry["name"], segment_size)
        if info is None:
            continue
        end = wn.wal_file_end(info, segment_size)
        if end is not None and end <= oldest_start:
            plan["delete_wal"].append(entry["name"])
    return plan


def apply_retention(repo, plan):
    """Delete what plan_retention chose: backups first (newest WAL stays until last)."""
    for backup_id in plan["delete_backups"]:
        repo.delete_backup(backup_id)
    repo.delete_wal(plan["delete_wal"])


# Options every module with a repository takes (Ansible argument_spec format; plain data).
REPOSITORY_ARGSPEC = dict(
    repository=dict(type="str", required=True),
    endpoint_url=dict(type="str"),
    region=dict(type="str"),
    aws_access_key_id=dict(type="str", no_log=True),
    aws_secret_access_key=dict(type="str", no_log=True),
    aws_session_token=dict(type="str", no_log=True),
    storage_class=dict(type="str"),
    sse=dict(type="str", choices=list(SSE_CHOICES)),
    sse_kms_key_id=dict(type="str", no_log=False),
    bandwidth_limit=dict(type="int"),
)
S3_OPTION_NAMES = (
    "endpoint_url",
    "region",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "storage_class",
    "sse",
    "sse_kms_key_id",
    "bandwidth_limit",
)


def repository_from_params(params):
    """open_repository() from module parameters."""
    s3 = {name: params.get(name) for name in S3_OPTION_NAMES if params.get(name) is not None}
    if s3 and not is_s3(params["repository"]):
        raise RepositoryError(
            "%s apply to S3 repositories only; repository %s is a folder"
            % (", ".join(sorted(s3)), params["repository"])
        )
    return open_repository(params["repository"], s3)
