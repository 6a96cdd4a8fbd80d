# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration fixtures: ``pg`` (one real cluster per PostgreSQL major), ``pg_major``,
``run_playbook``, ``workdir``, and ``moto`` / ``bucket`` (moto's S3 server, a fresh bucket).

Which majors a test runs on (``pg_major``, and so ``pg``, are parametrized here):
- by default harness.CORE_MAJORS (15 and 18): the test's behaviour does not depend on the major;
- ``@pytest.mark.all_versions`` (on a test, or ``pytestmark`` for a file): every major, 14-18,
  for what differs between majors (versions.py: pg_stat_statements columns, catalog shape,
  EXPLAIN, backup functions and formats, ...);
- ``@pytest.mark.pg_versions(15)``: exactly these majors (Debian-only extensions such as hypopg,
  pgBackRest's supported majors, or one major for a costly version-independent flow).
The marker closest to the test wins. $DBARCH_PG_VERSIONS (default "14 15 16 17 18") restricts all
of it; a test whose majors are all left out is skipped with the reason. A missing major fails
with the command that fetches it (scripts/fetch-pg-binaries) instead of being skipped.

Each xdist worker keeps one shared cluster per major for its whole session (started on first
use), so a file switching majors does not initdb a new cluster each time.
"""

import time

import boto3
import pytest

import harness
import motoserver
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc


VERSION_MARKERS = ("all_versions", "pg_versions")

# The longest files (--durations on the 2-core machine, each file's time over all its majors),
# longest first. `make integration` runs `--dist loadfile --no-loadscope-reorder`: each worker
# takes the next file when it is free, so the long ones start first and the short ones fill the
# end. Files not named keep their alphabetical order after these.
LONGEST_FILES = (
    "test_site.py",
    "test_switchover.py",
    "test_awx.py",
    "test_monitoring.py",
    "test_module_defaults.py",
    "test_diagnose.py",
    "test_failover.py",
    "test_pgbouncer.py",
    "test_standby.py",
    "test_pitr.py",
    "test_query_performance.py",
    "test_restore_drill.py",
    "test_index.py",
    "test_backup_role.py",
    "test_pgbackrest.py",
    "test_materialized_view.py",
    "test_index_advice.py",
    "test_backup.py",
    "test_pitr_s3.py",
    "test_scale.py",
    "test_tune.py",
    "test_security_audit.py",
    "test_connections_health.py",
    "test_migrations_role.py",
    "test_schema_review.py",
    "test_migration_lint.py",
    "test_sandbox.py",
    "test_promote.py",
    "test_replication_info.py",
    "test_switchover_pgbouncer.py",
)


def pytest_collection_modifyitems(items):
    """Longest files first (stable: the order within a file stays)."""
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def _majors_for(definition):
    """(majors to run on, what the test asked for) from the closest version marker."""
    for mark in definition.iter_markers():
        if mark.name == "all_versions":
            return harness.versions_under_test(), "every selected major"
        if mark.name == "pg_versions":
            wanted = [int(m) for m in mark.args]
            if not wanted:
                raise pytest.UsageError("%s: pg_versions needs at least one major" % definition.nodeid)
            return harness.select_versions(wanted), "PostgreSQL " + " or ".join(str(m) for m in wanted)
    return harness.default_versions(), "the default majors"


def pytest_generate_tests(metafunc):
    """Parametrize ``pg_major`` (and so ``pg``) per the test's version marker."""
    if "pg_major" not in metafunc.fixturenames:
        return
    majors, asked = _majors_for(metafunc.definition)
    if majors:
        params = [pytest.param(m, id="pg%d" % m) for m in majors]
    else:
        reason = "needs %s; DBARCH_PG_VERSIONS selects %s" % (
            asked,
            " ".join(str(m) for m in harness.versions_under_test()),
        )
        params = [pytest.param(None, id="pg-none", marks=pytest.mark.skip(reason=reason))]
    metafunc.parametrize("pg_major", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def pg_major(request):
    """The PostgreSQL major of this test (14-18), chosen by pytest_generate_tests."""
    return request.param


@pytest.fixture(scope="session")
def _pg_clusters():
    """This worker's running clusters by major, stopped and removed at the end of the session."""
    clusters = {}
    yield clusters
    for cluster in clusters.values():
        cluster.stop()


@pytest.fixture(scope="session")
def pg(pg_major, _pg_clusters):
    """A running cluster of ``pg_major``, shared by every test of the worker's session.

    (pytest tears a parametrized session fixture down whenever the parameter changes; the
    clusters live in _pg_clusters so that a switch of major costs no new initdb.)
    """
    if pg_major not in _pg_clusters:
        try:
            _pg_clusters[pg_major] = harness.start_cluster(pg_major)
        except lc.LocalClusterError as exc:
            pytest.fail("Could not bring up PostgreSQL %s: %s" % (pg_major, exc), pytrace=False)
    return _pg_clusters[pg_major]


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


@pytest.fixture(scope="module")
def moto():
    """moto's S3 server on 127.0.0.1 (a real HTTP endpoint), stopped at the end."""
    try:
        proc, endpoint = motoserver.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
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
