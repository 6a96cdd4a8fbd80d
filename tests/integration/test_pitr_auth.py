# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pitr_restore of a cluster whose pg_hba.conf asks for a password on local connections
(``initdb -A scram-sha-256``, hardened hosts): the restore logs in without one while recovery
runs, puts pg_hba.conf back byte for byte, and an error that waiting cannot clear fails at once."""

import os

import psycopg2
import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import backup_repo as br
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc
from ansible_collections.dbarch.postgresql.plugins.module_utils.backup import pitr

WAL_SCRIPT = harness.WAL_SCRIPT
# What `initdb -A scram-sha-256` writes, in short: a password everywhere, the socket included.
SCRAM_HBA = (
    "# TYPE  DATABASE        USER            ADDRESS                 METHOD\n"
    "local   all             all                                     scram-sha-256\n"
    "host    all             all             127.0.0.1/32            scram-sha-256\n"
    "host    all             all             ::1/128                 scram-sha-256\n"
    "local   replication     all                                     scram-sha-256\n"
    "host    replication     all             127.0.0.1/32            scram-sha-256\n"
)


def _bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def scram_backup(pg):
    """A source whose pg_hba.conf asks for scram-sha-256 on the socket too, backed up with WAL."""
    workdir = harness.work_folder("dbarch-it-pitr-auth-")
    repo_dir = harness.repo_folder(workdir)
    settings = harness.archive_settings(repo_dir)
    source = harness.start_cluster(pg.major, workdir=workdir, name="source", settings=settings)
    try:
        hba = source.cluster.hba_path()
        with open(hba, "w") as handle:
            handle.write(SCRAM_HBA)
        source.cluster.reload()
        source.query("CREATE TABLE guarded (id int PRIMARY KEY, note text)")
        source.query("INSERT INTO guarded SELECT g, 'row ' || g FROM generate_series(1, 7) AS g")
        meta = harness.take_backup(source, repo_dir)
        source.query("INSERT INTO guarded VALUES (8, 'after the backup')")
        source.query("SELECT pg_switch_wal()")
        yield {
            "repo": repo_dir,
            "meta": meta,
            "workdir": workdir,
            "source": source,
            "hba": _bytes(hba),
            "ident": _bytes(os.path.join(source.data_dir, "pg_ident.conf")),
        }
    finally:
        harness.remove_folder(workdir)


def _play(**options):
    task = {"name": "Restore", "dbarch.postgresql.pitr_restore": options, "register": "out"}
    return [{"name": "pitr", "hosts": "localhost", "gather_facts": False, "tasks": [task]}]


def test_restore_of_a_password_protected_socket_succeeds_and_keeps_pg_hba(pg, scram_backup, run_playbook):
    data_dir = os.path.join(scram_backup["workdir"], "restored", "data")
    port = lc.free_port()
    options = {
        "repository": scram_backup["repo"],
        "data_dir": data_dir,
        "port": port,
        "target": "immediate",
        "wal_script": WAL_SCRIPT,
    }
    done = run_playbook(_play(**options)).assert_ok().task("Restore")["result"]
    assert done["changed"] is True and done["backup_id"] == scram_backup["meta"]["id"]
    assert done["reached_lsn"] and done["timeline"] == 2
    # The backed-up files again, byte for byte: nothing of the temporary access is left.
    assert _bytes(os.path.join(data_dir, "pg_hba.conf")) == scram_backup["hba"]
    assert _bytes(os.path.join(data_dir, "pg_ident.conf")) == scram_backup["ident"]
    cluster = lc.LocalCluster(data_dir, bindir=lc.find_bindir(pg.major))
    try:
        assert cluster.is_running()
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=port,
            user=scram_backup["source"].user,
            password=scram_backup["source"].password,
            dbname="postgres",
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*), max(id) FROM guarded")
                assert cur.fetchone() == (7, 7)
        finally:
            conn.close()
        # The server reads the restored pg_hba.conf: the socket asks for a password again.
        res = cluster.run(
            [
                "psql",
                "-X",
                "-w",
                "-h",
                cluster.socket_dir,
                "-p",
                str(port),
                "-U",
                "postgres",
                "-c",
                "SELECT 1",
            ],
            check=False,
        )
        assert res.returncode != 0 and "password" in res.stderr
    finally:
        cluster.destroy()


def test_an_error_waiting_cannot_clear_fails_at_once_with_its_cause(pg, scram_backup):
    data_dir = os.path.join(scram_backup["workdir"], "no-such-role", "data")
    repo = br.LocalRepository(scram_backup["repo"])
    planned = pitr.plan(
        repo, pitr.parse_target(target="immediate"), data_dir, lc.free_port(), wal_script=WAL_SCRIPT
    )
    with pytest.raises(pitr.PitrError) as err:
        # A superuser the backup does not have: no wait, however long the timeout.
        pitr.restore(repo, planned, timeout=3600, superuser="dbarch_nobody")
    message = str(err.value)
    assert 'role "dbarch_nobody" does not exist' in message
    assert "does not clear by waiting" in message and "superuser" in message
    cluster = lc.LocalCluster(data_dir, bindir=planned["bindir"])
    try:
        assert not cluster.is_running()
        assert _bytes(os.path.join(data_dir, "pg_hba.conf")) == scram_backup["hba"]
        assert _bytes(os.path.join(data_dir, "pg_ident.conf")) == scram_backup["ident"]
    finally:
        cluster.destroy()
