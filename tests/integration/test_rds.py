# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_instance_resize and rds_read_replica end to end, through ansible-playbook, against moto's
RDS server (a real HTTP endpoint). moto's modify_db_instance applies at once and never leaves
pending values: the pending / modifying / storage-optimization paths are unit tests
(tests/unit/rds/test_instances.py, botocore Stubber)."""

import json
import os
import time

import boto3
import pytest


from harness import play, task

SECRET = "moto-secret-that-must-stay-out-of-output"


@pytest.fixture
def rds(moto, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    api = boto3.client(
        "rds", endpoint_url=moto, aws_access_key_id="moto-test-key", aws_secret_access_key=SECRET
    )
    name = "shop-%d" % int(time.time() * 1000)
    api.create_db_instance(
        DBInstanceIdentifier=name,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="dba",
        MasterUserPassword="not-used-here",
        MultiAZ=True,
    )
    return api, name


def aws_options(moto):
    # keys as options (no_log) and the region from the environment, as a user would mix them
    return dict(endpoint_url=moto, aws_access_key_id="moto-test-key", aws_secret_access_key=SECRET)


def one(api, name):
    return api.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]


def test_resize_snapshot_first_then_class_and_storage(rds, moto, run_playbook):
    api, name = rds
    opts = aws_options(moto)
    resize = dict(db_instance_identifier=name, db_instance_class="db.m5.large", allocated_storage=50, **opts)
    env = {"AWS_DEFAULT_REGION": "us-east-1"}

    check = run_playbook(
        play(task("rds_instance_resize", "resize", register="r", **resize)), check=True, diff=True, env=env
    )
    check.assert_ok()
    result = check.task("resize")["result"]
    assert result["changed"] and result["snapshot_id"].startswith(name + "-pre-resize-")
    assert result["after"]["db_instance_class"] == "db.m5.large"
    assert any("Multi-AZ" in step for step in result["plan"])
    assert "db.m5.large" in result["diff"]["after"]
    # check mode changed nothing: no snapshot, same class
    assert api.describe_db_snapshots(DBInstanceIdentifier=name, SnapshotType="manual")["DBSnapshots"] == []
    assert one(api, name)["DBInstanceClass"] == "db.t3.micro"

    run = run_playbook(play(task("rds_instance_resize", "resize", **resize)), env=env, verbosity=3)
    run.assert_ok()
    assert SECRET not in run.stdout and SECRET not in run.stderr
    result = run.task("resize")["result"]
    assert result["changed"]
    assert (
        result["before"]["db_instance_class"] == "db.t3.micro" and result["before"]["allocated_storage"] == 20
    )
    assert (
        result["after"]["db_instance_class"] == "db.m5.large" and result["after"]["allocated_storage"] == 50
    )
    snaps = api.describe_db_snapshots(DBInstanceIdentifier=name, SnapshotType="manual")["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"] for s in snaps] == [result["snapshot_id"]]
    # the snapshot holds the instance as it was before the modification
    assert snaps[0]["AllocatedStorage"] == 20 and snaps[0]["Status"] == "available"
    assert one(api, name)["DBInstanceClass"] == "db.m5.large"

    again = run_playbook(play(task("rds_instance_resize", "resize", **resize)), env=env)
    again.assert_ok()
    assert again.task("resize")["result"]["changed"] is False
    assert (
        len(api.describe_db_snapshots(DBInstanceIdentifier=name, SnapshotType="manual")["DBSnapshots"]) == 1
    )


def test_read_replica_create_promote_delete(rds, moto, run_playbook):
    api, name = rds
    opts = aws_options(moto)
    env = {"AWS_DEFAULT_REGION": "us-east-1"}
    ro1, ro2 = name + "-ro1", name + "-ro2"

    def replica(state, ident, **extra):
        return task(
            "rds_read_replica",
            "%s %s" % (state, ident),
            db_instance_identifier=ident,
            state=state,
            **dict(opts, **extra),
        )

    check = run_playbook(play(replica("present", ro1, source=name)), check=True, env=env)
    check.assert_ok()
    assert check.task("present %s" % ro1)["result"]["changed"]
    assert name + "-ro1" not in [
        i["DBInstanceIdentifier"] for i in api.describe_db_instances()["DBInstances"]
    ]

    tasks = [
        replica("present", ro1, source=name),
        replica("present", ro2, source=name),
        replica("promoted", ro2),
        replica("absent", ro1),
    ]
    first = run_playbook(play(*tasks), env=env)
    first.assert_ok()
    assert [first.task(t["name"])["result"]["changed"] for t in tasks] == [True, True, True, True]
    assert first.task("present %s" % ro1)["result"]["after"]["read_replica_source"] == name
    assert first.task("present %s" % ro1)["result"]["after"]["status"] == "available"
    names = [i["DBInstanceIdentifier"] for i in api.describe_db_instances()["DBInstances"]]
    assert ro1 not in names and ro2 in names
    tags = api.list_tags_for_resource(ResourceName=one(api, ro2)["DBInstanceArn"])["TagList"]
    assert {"Key": "dbarch:promoted-from", "Value": name} in tags

    second = run_playbook(play(*tasks[1:]), env=env)
    # ro2 is promoted now: "present" refuses to call a standalone instance a replica
    assert second.task("present %s" % ro2)["result"]["failed"]
    third = run_playbook(play(*tasks[2:]), env=env)
    third.assert_ok()
    assert third.changed_count() == 0
    # a promoted replica is not deleted by this module
    refused = run_playbook(play(replica("absent", ro2)), env=env)
    assert "not a read replica" in refused.task("absent %s" % ro2)["result"]["msg"]


def test_scale_up_through_the_rds_resize_role(rds, moto, run_playbook, tmp_path):
    """The role the scaling workflow's rds_resize remedy runs: snapshot, new class, report; again: nothing."""
    api, name = rds
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "moto-test-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
    }
    dest = str(tmp_path / "reports")
    plays = play(
        task(
            "ansible.builtin.include_role",
            "resize",
            name="dbarch.postgresql.rds_resize",
        ),
        vars=dict(
            rds_resize_db_instance_identifier=name,
            rds_resize_db_instance_class="db.m5.xlarge",
            rds_resize_endpoint_url=moto,
            rds_resize_dest=dest,
        ),
    )
    first = run_playbook(plays, env=env, verbosity=2)
    first.assert_ok()
    assert SECRET not in first.stdout and SECRET not in first.stderr
    assert one(api, name)["DBInstanceClass"] == "db.m5.xlarge"
    with open(os.path.join(dest, "localhost", "rds_resize.json"), encoding="utf-8") as fh:
        summary = json.load(fh)["summary"]
    assert summary["before"]["db_instance_class"] == "db.t3.micro"
    assert summary["after"]["db_instance_class"] == "db.m5.xlarge" and summary["snapshot_id"]
    again = run_playbook(plays, env=env)
    again.assert_ok()
    step = "Resize the RDS instance (snapshot first)"
    resized = [r for r in again.results if r["full_name"].endswith(step)]
    assert resized and resized[0]["status"] == "ok"
    snaps = api.describe_db_snapshots(DBInstanceIdentifier=name, SnapshotType="manual")["DBSnapshots"]
    assert len(snaps) == 1
    # the run that found nothing to do left the resize's report (its snapshot, the values before) alone
    with open(os.path.join(dest, "localhost", "rds_resize.json"), encoding="utf-8") as fh:
        assert json.load(fh)["summary"] == summary
    assert summary["snapshot_id"] == snaps[0]["DBSnapshotIdentifier"]
