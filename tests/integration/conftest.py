# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration fixtures: ``pg`` (one real cluster per PostgreSQL major), ``run_playbook``,
``workdir``, and ``moto`` / ``bucket`` (moto's S3 server, a fresh bucket).

Majors come from $DBARCH_PG_VERSIONS (default "14 15 16 17 18"). A missing major fails
with the command that fetches it (scripts/fetch-pg-binaries) instead of being skipped.
"""

import os
import shutil
import socket
import subprocess
import sys
import time

import boto3
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils import localcluster as lc


@pytest.fixture(scope="session", params=harness.versions_under_test(), ids=lambda m: "pg%d" % m)
def pg(request):
    """A running cluster of one major, shared by the whole session, removed at its end."""
    try:
        cluster = harness.start_cluster(request.param)
    except lc.LocalClusterError as exc:
        pytest.fail("Could not bring up PostgreSQL %s: %s" % (request.param, exc), pytrace=False)
    yield cluster
    cluster.stop()


@pytest.fixture
def run_playbook():
    """harness.run_playbook: run a playbook with the venv's ansible-playbook, get results."""
    return harness.run_playbook


@pytest.fixture
def workdir():
    """A fresh folder (under /var/tmp) the postgres OS user can reach; removed afterwards."""
    folder = harness.work_folder()
    yield folder
    harness.remove_folder(folder)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def moto():
    """moto's S3 server on 127.0.0.1 (a real HTTP endpoint), stopped at the end."""
    port = _free_port()
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = "http://127.0.0.1:%d" % port
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto_server did not start on port %d" % port, pytrace=False)
            time.sleep(0.2)
    yield endpoint
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def bucket(moto, monkeypatch):
    """A new bucket in moto; harness.S3_CREDENTIALS set in this process's environment."""
    for key, value in harness.S3_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=moto)
    name = "dbarch-%d" % int(time.time() * 1000)
    client.create_bucket(Bucket=name)
    return client, name
