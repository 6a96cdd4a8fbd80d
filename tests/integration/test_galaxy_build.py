"""`ansible-galaxy collection build` makes a tarball that installs and works outside the checkout."""

import json
import os
import subprocess
import sys
import tarfile

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
