"""Every module of action_groups.all (meta/runtime.yml) under one module_defaults block.

docs/design.md promises that ``module_defaults: {group/dbarch.postgresql.all: {login_*...}}`` sets
the connection of every module. Each module runs once with minimal, harmless arguments (check mode
where it would change something), through a real ansible-playbook with -vvv, against a real cluster:
none may fail with "Unsupported parameters", and the password never appears in the output.
The module list comes from meta/runtime.yml, so a new module cannot be forgotten here.
"""

import os

import yaml


RUNTIME = os.path.join(os.path.dirname(__file__), "..", "..", "meta", "runtime.yml")


def group_modules():
    with open(RUNTIME) as fh:
        return list(yaml.safe_load(fh)["action_groups"]["all"])


_MD_SHARD = {"name": "md", "host": "127.0.0.1", "port": 1, "dbname": "md", "user": "md", "password": "md-pw"}


def minimal_arguments(folder):
    """Harmless arguments per module (check mode is set on every task)."""
    return {
        "archive_check": {},
        # No such log file: fails after taking the options.
        "audit_log_info": {"log_file": os.path.join(folder, "missing.log")},
        "audit_logging": {},
        "backup_info": {"repository": os.path.join(folder, "repo")},
        "basebackup": {"repository": os.path.join(folder, "repo")},
        "catalog_info": {},
        # Check mode: lists the sessions idle for a day (none), signals nobody.
        "connections": {"states": ["idle"], "min_idle_seconds": 86400},
        "connections_info": {},
        "data_dictionary": {"dest": os.path.join(folder, "dictionary")},
        "diagnose_info": {"interval": 0.5},
        # Check mode: reads the (missing) secret from a dead endpoint and fails after taking the options.
        "credential_rotate": {
            "role": "postgres",
            "generate": True,
            "secret_id": "md-probe",
            "endpoint_url": "http://127.0.0.1:1",
        },
        "data_retention": {
            "policies": [{"table": "md_probe_retention", "column": "at", "older_than": "1 day"}],
        },
        "data_subject": {"action": "erase", "table": "md_probe", "key": "id", "value": 1},
        "dump": {"path": os.path.join(folder, "shop.dump")},
        "explain": {"query": "SELECT 1"},
        # Nothing listens on port 1: the old primary is down after one check; no standby to choose.
        "failover_info": {
            "old_primary": {"host": "127.0.0.1", "port": 1},
            "standbys": [],
            "checks": 1,
            "check_interval": 0,
        },
        "health_info": {},
        "index": {"name": "md_probe_idx", "table": "md_probe", "columns": ["id"]},
        "index_advice_info": {},
        "local_cluster": {"data_dir": os.path.join(folder, "lc", "data"), "state": "absent"},
        "local_cluster_info": {},
        "materialized_view": {"name": "md_probe_mv", "state": "absent"},
        "migrate": {"path": os.path.join(folder, "migrations")},
        "migration_lint": {"sql": "SELECT 1;"},
        "monitoring_user": {"name": "md_probe_monitor"},
        "pgbouncer": {
            "config_file": os.path.join(folder, "pgbouncer", "databases.ini"),
            "databases": {"md_probe": {"host": "127.0.0.1", "port": 5432, "dbname": "postgres"}},
            "apply": "file",
        },
        "pgbouncer_auth": {"databases": ["postgres"]},
        "pgbouncer_info": {"pid_file": os.path.join(folder, "pgbouncer", "pgbouncer.pid")},
        "pii_inventory_info": {},
        "pitr_restore": {
            "repository": os.path.join(folder, "repo"),
            "data_dir": os.path.join(folder, "restore", "data"),
            "port": 1,
            "target": "latest",
        },
        # Check mode: the role check only (the shared cluster is a primary), nothing committed.
        "primary_check": {},
        # The shared cluster is a primary: promote finds nothing to do (its guards still run).
        "promote": {},
        "query_stats": {},
        "query_stats_info": {},
        # Nothing listens on port 1: the RDS call fails, after the options were taken.
        "rds_instance_resize": {
            "db_instance_identifier": "md-probe",
            "db_instance_class": "db.m5.large",
            "endpoint_url": "http://127.0.0.1:1",
        },
        "rds_read_replica": {"db_instance_identifier": "md-probe-ro", "endpoint_url": "http://127.0.0.1:1"},
        "replication_info": {},
        "replication_slot": {"name": "md_probe_slot", "state": "absent"},
        "report": {"name": "md_probe", "findings": [], "dest": os.path.join(folder, "reports")},
        "restore_check_info": {},
        "restore_point": {"name": "md-probe"},
        "scheduled_job": {
            "name": "md-probe",
            "argv": ["/bin/true"],
            "method": "cron",
            "cron_dir": os.path.join(folder, "cron"),
            "systemd_dir": os.path.join(folder, "systemd"),
        },
        # Nothing listens on port 1: the Route 53 call fails, after the options were taken.
        "route53_record": {
            "zone": "Z0000000000000",
            "record": "md-probe.example.com",
            "value": ["127.0.0.1"],
            "endpoint_url": "http://127.0.0.1:1",
        },
        "schema_review": {},
        "security_audit_info": {"activity_samples": 1},
        # Read-only without state: finds the shared cluster's data folder from data_directory.
        "server_control": {},
        "server_info": {},
        "setting": {"settings": {"work_mem": "4MB"}},
        # Nothing listens on port 1: the shard cannot be reached (shard_table, after checking the map
        # and the types on the coordinator); md_probe is not a sharded table (shard_info).
        "shard_info": {"table": "md_probe", "shards": [_MD_SHARD]},
        "shard_table": {
            "table": "md_probe_sharded",
            "columns": [{"name": "id", "type": "bigint"}],
            "shard_key": "id",
            "shards": [dict(_MD_SHARD, **{"from": 0, "to": 10})],
        },
        "standby": {
            "primary": {"host": "127.0.0.1", "port": 1, "user": "md_probe"},
            "data_dir": os.path.join(folder, "standby", "data"),
        },
        # Advice only (no apply): reads the server's settings.
        "tune": {"memory": "1GB", "cpus": 2},
    }


def test_every_module_takes_the_group_connection_defaults(pg, run_playbook, workdir):
    modules = group_modules()
    args = minimal_arguments(workdir)
    assert sorted(args) == sorted(modules), "give minimal arguments to every module of the group"
    for sub in ("repo", "migrations", "cron", "systemd", "pgbouncer"):
        os.makedirs(os.path.join(workdir, sub))
    pg.query("CREATE TABLE IF NOT EXISTS md_probe (id int)")
    pg.query("CREATE TABLE IF NOT EXISTS md_probe_retention (id int PRIMARY KEY, at timestamptz)")
    tasks = [
        {
            "name": name,
            "dbarch.postgresql.%s" % name: args[name],
            "check_mode": True,
            "ignore_errors": True,
        }
        for name in modules
    ]
    run = run_playbook(
        {
            "hosts": "localhost",
            "gather_facts": False,
            "module_defaults": {"group/dbarch.postgresql.all": pg.conn_params},
            "tasks": tasks,
        },
        verbosity=3,
    )
    assert pg.password and len(pg.password) > 8
    assert pg.password not in run.stdout and pg.password not in run.stderr
    unsupported = []
    failed = {}
    for name in modules:
        result = run.task(name)["result"]
        msg = str(result.get("msg", ""))
        if "nsupported parameters" in msg:
            unsupported.append("%s: %s" % (name, msg))
        elif result.get("failed"):
            failed[name] = msg
        assert pg.password not in str(result), name
    assert unsupported == []
    # what the test cluster lacks makes these fail for that reason only (never a parameter)
    expected_reasons = {
        "archive_check": "archive_mode is off",
        "query_stats": "pg_stat_statements",
        "pitr_restore": "backup",
        "backup_info": "backup",
        "standby": "cannot open a replication connection to the primary 127.0.0.1:1",
        "rds_instance_resize": "describe_db_instances md-probe failed",
        "rds_read_replica": "describe_db_instances md-probe-ro failed",
        "route53_record": "Route 53 list_resource_record_sets in zone Z0000000000000 failed",
        "shard_info": "is not partitioned",
        "shard_table": "Cannot connect to PostgreSQL (host=127.0.0.1 port=1",
        "audit_log_info": "missing.log does not exist",
        "credential_rotate": "Secrets Manager GetSecretValue(md-probe) failed",
    }
    for name, msg in failed.items():
        assert name in expected_reasons and expected_reasons[name] in msg, (name, msg)
