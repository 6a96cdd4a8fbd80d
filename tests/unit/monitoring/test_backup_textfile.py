# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbarch-backup-textfile: the backup role's status files as node-exporter textfile metrics, checked by
promtool's own parser (promtool check metrics)."""

import importlib.machinery
import importlib.util
import json
import os

from monitoring_helpers import FILES, run, tool


def _load():
    path = os.path.join(FILES, "dbarch-backup-textfile")
    loader = importlib.machinery.SourceFileLoader("dbarch_backup_textfile", path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


textfile = _load()


def _status(folder, name, status):
    path = folder / ("backup-%s.status.json" % name)
    path.write_text(json.dumps(status) if not isinstance(status, str) else status)
    return path


def _values(text):
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_metrics_from_status_files(tmp_path):
    ok = {"finished": "2026-12-05T01:30:42.5+00:00", "ok": True}
    failed = {"finished": "2026-12-06T01:31:00+00:00", "ok": False, "error": "disk full"}
    _status(tmp_path, "db1", {"last_run": ok, "last_success": ok})
    _status(tmp_path, "db2", {"last_run": failed, "last_success": ok, "last_failure": failed})
    _status(tmp_path, "db3", {"last_run": failed, "last_failure": failed})
    _status(tmp_path, "db4", "{not json")
    out = tmp_path / "out"
    out.mkdir()
    code = textfile.main(
        [
            "--status-glob",
            str(tmp_path / "backup-*.status.json"),
            "--textfile-dir",
            str(out),
            "--max-age-hours",
            "26",
        ]
    )
    assert code == 0
    text = (out / "dbarch_backup.prom").read_text()
    values = _values(text)
    assert values['dbarch_backup_last_success_timestamp_seconds{name="db1"}'] == 1796434242.5
    assert values['dbarch_backup_last_run_success{name="db1"}'] == 1
    assert values['dbarch_backup_last_run_success{name="db2"}'] == 0
    assert values['dbarch_backup_last_run_timestamp_seconds{name="db2"}'] == 1796520660.0
    assert values['dbarch_backup_last_success_timestamp_seconds{name="db3"}'] == 0
    assert values['dbarch_backup_status_file_readable{name="db4"}'] == 0
    assert values['dbarch_backup_status_file_readable{name="db1"}'] == 1
    assert values['dbarch_backup_max_age_seconds{name="db1"}'] == 26 * 3600
    assert not [p for p in os.listdir(out) if p != "dbarch_backup.prom"], "temporary file left behind"
    promtool = tool("promtool")
    checked = run([promtool, "check", "metrics"], input=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_no_status_file_writes_only_the_help(tmp_path):
    code = textfile.main(["--status-glob", str(tmp_path / "none-*.json"), "--textfile-dir", str(tmp_path)])
    assert code == 0
    assert _values((tmp_path / "dbarch_backup.prom").read_text()) == {}


def test_an_unwritable_folder_fails_with_a_message(tmp_path, capsys):
    code = textfile.main(["--status-glob", str(tmp_path / "x"), "--textfile-dir", str(tmp_path / "missing")])
    assert code == 1
    assert "cannot write" in capsys.readouterr().err
