# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/backup/tasks/pgbackrest.yml on a real cluster with the real pgBackRest.

The role (backup_engine: pgbackrest) uses dbarch.postgresql.setting and
dbarch.postgresql.scheduled_job; the test runs once both modules and the role's main tasks are in
the collection. The schedule is exercised with state absent only, so
the test never installs a job on the machine.
"""

import os

import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

ROLE = harness.REPO_ROOT / "roles" / "backup"

# One major that Debian 12's pgBackRest (2.45) supports: the role's flow does not depend on it.
pytestmark = pytest.mark.pg_versions(15)


@pytest.fixture(scope="module")
def cluster(pg_major):
    workdir = harness.work_folder("dbarch-it-pgbr-role-")
    settings = {"archive_mode": "on", "wal_level": "replica"}
    try:
        pg = harness.start_cluster(pg_major, workdir=workdir, name="source", settings=settings)
    except lc.LocalClusterError as exc:
        harness.remove_folder(workdir)
        pytest.fail("Could not bring up PostgreSQL %s: %s" % (pg_major, exc), pytrace=False)
    yield pg, workdir
    harness.remove_folder(workdir)


def _play(pg, workdir):
    return [
        {
            "name": "backup role, engine pgbackrest",
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/dbarch.postgresql.all": pg.conn_params},
            "vars": {
                "backup_engine": "pgbackrest",
                "backup_repository": os.path.join(workdir, "repo"),
                "backup_stanza": "main",
                "backup_wal_archiving": True,
                "backup_schedule": False,
                "backup_hour": "1",
                "backup_minute": "30",
                "backup_retain_count": 2,
                "backup_retain_days": None,
                "backup_now": True,
                "backup_pgbackrest_config": os.path.join(workdir, "etc", "dbarch-main.conf"),
                "backup_pgbackrest_work_dir": os.path.join(workdir, "pgbr"),
                "backup_report_dest": os.path.join(workdir, "reports"),
                "backup_socket_dir": pg.socket_dir,
                "backup_port": pg.port,
            },
            "tasks": [
                {"name": "Backup role", "ansible.builtin.include_role": {"name": "dbarch.postgresql.backup"}}
            ],
        }
    ]


def test_role_tasks_configure_archive_back_up_and_list(cluster, run_playbook):
    pg, workdir = cluster
    run = run_playbook(_play(pg, workdir)).assert_ok()
    command = run.task("Write the pgBackRest configuration and create the stanza")["result"][
        "archive_command"
    ]
    assert pg.query("SHOW archive_command")[0][0] == command
    backup = run.task("Take a full backup now")["result"]
    info = run.task("Backups and WAL window of the stanza")["result"]
    assert [b["id"] for b in info["backups"]] == [backup["backup_id"]]
    assert info["findings"] == [], info["findings"]

    # A second run changes nothing but takes another backup.
    again = run_playbook(_play(pg, workdir)).assert_ok()
    assert again.task("Write the pgBackRest configuration and create the stanza")["status"] == "ok"
    assert again.task("Archive WAL to pgBackRest")["status"] == "ok"
    listed = again.task("Backups and WAL window of the stanza")["result"]["backups"]
    assert len(listed) == 2
