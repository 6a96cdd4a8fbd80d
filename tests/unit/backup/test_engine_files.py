# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine files roles install on hosts come from the entry points' imports (scripts/engine-files)."""

import importlib.machinery
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _tool():
    loader = importlib.machinery.SourceFileLoader(
        "engine_files", os.path.join(REPO, "scripts", "engine-files")
    )
    spec = importlib.util.spec_from_loader("engine_files", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_generated_role_lists_are_up_to_date():
    tool = _tool()
    for role, (entry_points, target) in tool.ROLES.items():
        with open(os.path.join(REPO, target), encoding="utf-8") as handle:
            current = handle.read()
        want = tool.vars_text(role, entry_points, tool.engine_files(entry_points))
        assert current == want, "%s is out of date: run scripts/engine-files" % target


def test_backup_role_installs_every_file_dbarch_backup_needs():
    files = _tool().engine_files(["roles/backup/files/dbarch-backup"])
    names = [os.path.basename(f) for f in files]
    for needed in (
        "backup.py",
        "backup_repo.py",
        "localcluster.py",
        "wal.py",
        "fsutil.py",
        "proc.py",
        "errors.py",
    ):
        assert needed in names


def _write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def test_imports_are_followed_into_sub_packages_and_a_missing_one_fails(tmp_path):
    root = str(tmp_path)
    mu = "ansible_collections.dbarch.postgresql.plugins.module_utils"
    _write(
        root, "entry", "def f():\n    from %s.backup import engine as e\n    from %s import wal\n" % (mu, mu)
    )
    _write(root, "plugins/module_utils/backup/__init__.py", "")
    _write(
        root,
        "plugins/module_utils/backup/engine.py",
        "import os\nfrom %s.common.fsutil import atomic_write\nimport %s.common.proc\n" % (mu, mu),
    )
    _write(root, "plugins/module_utils/common/fsutil.py", "from %s.wal import parse_lsn\n" % mu)
    _write(root, "plugins/module_utils/common/proc.py", "")
    _write(root, "plugins/module_utils/wal.py", "")
    tool = _tool()
    files = tool.engine_files(["entry"], root=root)
    assert files == [
        "backup/__init__.py",
        "backup/engine.py",
        "common/fsutil.py",
        "common/proc.py",
        "wal.py",
    ]
    assert tool.packages(files) == ["backup", "common"]
    _write(root, "plugins/module_utils/common/proc.py", "from %s.gone import x\n" % mu)
    with pytest.raises(ValueError, match="does not exist"):
        tool.engine_files(["entry"], root=root)
