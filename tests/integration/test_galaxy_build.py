"""`ansible-galaxy collection build` makes a tarball that installs and works outside the checkout."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def _galaxy(*args, cwd):
    return subprocess.run(
        [os.path.join(BIN, "ansible-galaxy"), "collection", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )


def test_built_collection_installs_and_runs(pg, tmp_path):
    _galaxy("build", "--force", "--output-path", str(tmp_path), REPO, cwd=str(tmp_path))
    (tarball,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tar.gz")]
    assert tarball.name == "dbarch-postgresql-0.1.0.tar.gz"
    with tarfile.open(tarball) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("MANIFEST.json"))
    assert manifest["collection_info"]["license"] == ["GPL-3.0-or-later"]
    assert manifest["collection_info"]["dependencies"] == {}
    assert "plugins/modules/server_info.py" in names and "meta/runtime.yml" in names
    assert not [n for n in names if n.startswith((".collections", ".venv", ".sandbox", ".ansible", ".git/"))]

    dest = tmp_path / "collections"
    _galaxy("install", "--force", "-p", str(dest), str(tarball), cwd=str(tmp_path))
    play = tmp_path / "play.yml"
    play.write_text(
        yaml.safe_dump(
            [
                dict(
                    hosts="localhost",
                    gather_facts=False,
                    module_defaults={"group/dbarch.postgresql.all": pg.conn_params},
                    tasks=[
                        dict(name="facts", register="f", **{"dbarch.postgresql.server_info": {}}),
                        dict(
                            name="show", **{"ansible.builtin.debug": {"msg": "major={{ f.version.major }}"}}
                        ),
                    ],
                )
            ]
        )
    )
    # Only the installed copy may resolve: no ansible.cfg of the checkout, no .collections link.
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(dest), ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"))
    run = subprocess.run(
        [
            os.path.join(BIN, "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "ansible_python_interpreter=%s" % sys.executable,
            str(play),
        ],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "major=%d" % pg.major in run.stdout
    assert (
        str(dest)
        in subprocess.run(
            [os.path.join(BIN, "ansible-doc"), "-t", "module", "dbarch.postgresql.server_info"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=str(tmp_path),
        ).stdout
    )


@pytest.mark.pg_versions(15)
def test_installed_collection_in_a_clean_venv_runs_its_playbooks_by_fqcn(pg, tmp_path):
    """The execution environment's way: a clean virtualenv with only the collection's own Python
    requirements (requirements.txt, what meta/execution-environment.yml hands ansible-builder), the
    tarball installed with ansible-galaxy into a clean folder, every module importable there, and the
    playbook shipped in the collection run by its FQCN (ansible-playbook dbarch.postgresql.server_report)."""
    _galaxy("build", "--force", "--output-path", str(tmp_path), REPO, cwd=str(tmp_path))
    (tarball,) = [p for p in tmp_path.iterdir() if p.name.endswith(".tar.gz")]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    vbin = venv / "bin"
    subprocess.run(
        [
            str(vbin / "pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            os.path.join(REPO, "requirements.txt"),
        ],
        check=True,
        capture_output=True,
    )
    dest = tmp_path / "collections"
    subprocess.run(
        [str(vbin / "ansible-galaxy"), "collection", "install", "--force", "-p", str(dest), str(tarball)],
        check=True,
        capture_output=True,
        cwd=str(tmp_path),
        # Not the checkout's ansible.cfg (make exports ANSIBLE_CONFIG): its collections_path already
        # holds the collection, and ansible-galaxy would then install nothing into the clean folder.
        env={k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
    )
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = dict(
        {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHON"))},
        ANSIBLE_COLLECTIONS_PATH=str(dest),
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
    )
    # Every module and its engine import with the requirements alone (psycopg2, boto3, jmespath, pglast).
    root = dest / "ansible_collections" / "dbarch" / "postgresql"
    modules = sorted(p.stem for p in (root / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    imported = subprocess.run(
        [
            str(vbin / "python"),
            "-c",
            "import importlib, sys\n"
            "for m in sys.argv[1:]:\n"
            "    importlib.import_module('ansible_collections.dbarch.postgresql.plugins.modules.' + m)\n"
            "import psycopg2, boto3, jmespath, pglast\n"
            "print(len(sys.argv) - 1)",
            *modules,
        ],
        env=dict(env, PYTHONPATH=str(dest)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    assert (
        int(imported.stdout)
        == len(modules)
        == len(list((Path(REPO) / "plugins" / "modules").glob("[!_]*.py")))
    )
    inventory = tmp_path / "hosts.yml"
    login = {"dbarch_" + k: v for k, v in pg.conn_params.items()}
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "primary": {
                            "hosts": {
                                "db1": dict(
                                    login,
                                    ansible_connection="local",
                                    ansible_python_interpreter=str(vbin / "python"),
                                )
                            }
                        }
                    }
                }
            }
        )
    )
    reports = tmp_path / "reports"
    run = subprocess.run(
        [
            str(vbin / "ansible-playbook"),
            "-i",
            str(inventory),
            "dbarch.postgresql.server_report",
            "-e",
            "server_report_dest=%s" % reports,
        ],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    with open(reports / "db1" / "server.json", encoding="utf-8") as fh:
        assert json.load(fh)["summary"]["version"].startswith("%d." % pg.major)
    with open(reports / "fleet" / "server_fleet.json", encoding="utf-8") as fh:
        assert json.load(fh)["summary"]["answered"] == ["db1"]
