# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration fixtures: ``pg`` (one real cluster per PostgreSQL major) and ``run_playbook``.

Majors come from $DBARCH_PG_VERSIONS (default "14 15 16 17 18"). A missing major fails
with the command that fetches it (scripts/fetch-pg-binaries) instead of being skipped.
"""

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
