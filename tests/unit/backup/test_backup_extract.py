# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore extraction keeps the file modes stored in the backup's tar files."""

import io
import os
import stat
import tarfile

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup as bk


def _tar(path, entries, compress=""):
    with tarfile.open(path, "w" + (":" + compress if compress else "")) as tar:
        for name, mode, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("compress", ["", "gz"])
def test_extracted_files_and_folders_keep_the_modes_of_the_tar(tmp_path, compress):
    path = str(tmp_path / ("base.tar" + (".gz" if compress else "")))
    _tar(
        path,
        [
            ("global", 0o700, None),
            ("global/pg_control", 0o600, b"control"),
            ("base", 0o750, None),
            ("base/1", 0o750, None),
            ("base/1/1259", 0o640, b"pages"),
            ("PG_VERSION", 0o600, b"15\n"),
            ("wal-script.sh", 0o4777, b"#!/bin/sh\n"),
        ],
        compress,
    )
    dest = tmp_path / "data"
    dest.mkdir()
    old = os.umask(0o022)
    try:
        bk.extract_tar(path, str(dest))
    finally:
        os.umask(old)

    def mode(rel):
        return stat.S_IMODE(os.stat(dest / rel).st_mode)

    assert mode("global") == 0o700 and mode("base") == 0o750 and mode("base/1") == 0o750
    assert mode("global/pg_control") == 0o600
    assert mode("base/1/1259") == 0o640
    assert mode("PG_VERSION") == 0o600
    # No set-id bit and no write for group or others, whatever the tar says.
    assert mode("wal-script.sh") == 0o755
