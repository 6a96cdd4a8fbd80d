"""The execution environment: `ansible-builder create` writes the build context of
execution-environment.yml (no container runtime needed), and the dependencies ansible-builder finds in
the installed collection (meta/execution-environment.yml -> requirements.txt, bindep.txt) are the
collection's: psycopg2, boto3, jmespath, pglast and the PostgreSQL client tools."""

import os
import shutil
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def _run(*argv, cwd):
    return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_ansible_builder_context_and_the_collections_own_dependencies(tmp_path):
    # The tarball where execution-environment.yml expects it (what `make ee` writes).
    shutil.copy(os.path.join(REPO, "execution-environment.yml"), tmp_path)
    built = tmp_path / ".cache" / "ee"
    _run(
        os.path.join(BIN, "ansible-galaxy"),
        "collection",
        "build",
        "--output-path",
        str(built),
        REPO,
        cwd=str(tmp_path),
    )
    context = tmp_path / "context"
    _run(
        os.path.join(BIN, "ansible-builder"),
        "create",
        "-f",
        str(tmp_path / "execution-environment.yml"),
        "-c",
        str(context),
        "--output-filename",
        "Containerfile",
        cwd=str(tmp_path),
    )
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="quay.io/ansible/awx-ee:' in containerfile
    assert "COPY _build/collections/ /build/collections/" in containerfile
    assert "ansible-galaxy collection install" in containerfile
    assert (context / "_build" / "collections" / "dbarch-postgresql-0.1.0.tar.gz").is_file()
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert requirements["collections"] == [
        {"name": "/build/collections/dbarch-postgresql-0.1.0.tar.gz", "type": "file"}
    ]
    # What the image build does next (builder stage): install the collection, then introspect it
    # with the context's own script for the Python and system packages to install.
    collections = tmp_path / "collections"
    _run(
        os.path.join(BIN, "ansible-galaxy"),
        "collection",
        "install",
        # --force: make exports ANSIBLE_CONFIG, whose collections_path already holds the collection
        # (ansible-galaxy would otherwise install nothing into the clean folder)
        "--force",
        "-p",
        str(collections),
        str(context / "_build" / "collections" / "dbarch-postgresql-0.1.0.tar.gz"),
        cwd=str(tmp_path),
    )
    pip_out, bindep_out = tmp_path / "pip.txt", tmp_path / "bindep.txt"
    _run(
        sys.executable,
        str(context / "_build" / "scripts" / "introspect.py"),
        "introspect",
        "--write-pip",
        str(pip_out),
        "--write-bindep",
        str(bindep_out),
        str(collections),
        cwd=str(tmp_path),
    )
    python = {line.split("#")[0].strip() for line in pip_out.read_text().splitlines() if line.strip()}
    names = {p.split(">")[0].split("=")[0].split("<")[0].strip().lower() for p in python}
    assert {"psycopg2-binary", "boto3", "jmespath", "pglast"} <= names
    assert "ansible-core" not in names  # the EE's own ansible-core, not the collection's pin
    system = bindep_out.read_text()
    assert "postgresql-client [platform:dpkg]" in system and "postgresql [platform:rpm]" in system
    assert "libpq" in system
    # The collection's bindep file is satisfied on this (Debian) controller: pg_dump & co. are there.
    check = subprocess.run(
        [os.path.join(BIN, "bindep"), "-b", "-f", os.path.join(REPO, "bindep.txt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, "missing: " + check.stdout
