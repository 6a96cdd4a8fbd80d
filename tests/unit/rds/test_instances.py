"""rds/instances.py with botocore's Stubber on a real boto3 RDS client: the states moto's server
never shows (a change pending for the maintenance window, ``modifying`` before ``available``,
``storage-optimization``), each call checked against the RDS API model."""

import boto3
import pytest
from botocore.stub import Stubber

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import aws
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.rds import instances


def instance(cls="db.t3.micro", storage=20, status="available", pending=None, multi_az=False, **extra):
    out = dict(
        DBInstanceIdentifier="shop",
        DBInstanceClass=cls,
        AllocatedStorage=storage,
        StorageType="gp3",
        Iops=3000,
        DBInstanceStatus=status,
        MultiAZ=multi_az,
        Engine="postgres",
        DBInstanceArn="arn:aws:rds:us-east-1:123456789012:db:shop",
        PendingModifiedValues=pending or {},
        PreferredMaintenanceWindow="sun:03:00-sun:03:30",
    )
    out.update(extra)
    return out


@pytest.fixture
def stub():
    api = boto3.client("rds", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    with Stubber(api) as stubber:
        yield api, stubber
        stubber.assert_no_pending_responses()


def describe(stubber, inst):
    stubber.add_response("describe_db_instances", {"DBInstances": [inst]}, {"DBInstanceIdentifier": "shop"})


class Clock:
    def __init__(self):
        self.now = 1_700_000_000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_maintenance_window_returns_pending_values_and_does_not_wait(stub):
    api, stubber = stub
    clock = Clock()
    describe(stubber, instance())
    stubber.add_response(
        "create_db_snapshot",
        {"DBSnapshot": {"DBSnapshotIdentifier": "snap1"}},
        {"DBInstanceIdentifier": "shop", "DBSnapshotIdentifier": "snap1"},
    )
    stubber.add_response(
        "describe_db_snapshots", {"DBSnapshots": [{"Status": "creating"}]}, {"DBSnapshotIdentifier": "snap1"}
    )
    stubber.add_response(
        "describe_db_snapshots", {"DBSnapshots": [{"Status": "available"}]}, {"DBSnapshotIdentifier": "snap1"}
    )
    stubber.add_response(
        "modify_db_instance",
        {"DBInstance": instance(pending={"DBInstanceClass": "db.m5.large"})},
        {"DBInstanceIdentifier": "shop", "ApplyImmediately": False, "DBInstanceClass": "db.m5.large"},
    )
    result = instances.resize(
        api,
        "shop",
        {"db_instance_class": "db.m5.large"},
        apply_immediately=False,
        snapshot_id="snap1",
        sleep=clock.sleep,
        clock=clock,
    )
    assert result["changed"] and result["snapshot_id"] == "snap1"
    assert result["pending_modified_values"] == {"db_instance_class": "db.m5.large"}
    assert result["after"]["db_instance_class"] == "db.t3.micro"
    assert any("maintenance window" in step for step in result["plan"])
    assert any("Single-AZ" in step for step in result["plan"])


def test_same_change_pending_is_not_a_change(stub):
    api, stubber = stub
    describe(stubber, instance(pending={"DBInstanceClass": "db.m5.large"}))
    result = instances.resize(api, "shop", {"db_instance_class": "db.m5.large"}, apply_immediately=False)
    assert result["changed"] is False and result["snapshot_id"] is None
    assert result["pending_modified_values"] == {"db_instance_class": "db.m5.large"}
    assert "already pending" in result["msg"]


def test_modifying_then_available_is_waited_for_and_verified(stub):
    api, stubber = stub
    clock = Clock()
    describe(stubber, instance(multi_az=True))
    stubber.add_response(
        "modify_db_instance",
        {"DBInstance": instance(status="modifying", pending={"DBInstanceClass": "db.m5.large"})},
        {"DBInstanceIdentifier": "shop", "ApplyImmediately": True, "DBInstanceClass": "db.m5.large"},
    )
    describe(stubber, instance(status="modifying", pending={"DBInstanceClass": "db.m5.large"}, multi_az=True))
    describe(stubber, instance(cls="db.m5.large", status="available", multi_az=True))
    result = instances.resize(
        api, "shop", {"db_instance_class": "db.m5.large"}, take_snapshot=False, sleep=clock.sleep, clock=clock
    )
    assert result["after"]["db_instance_class"] == "db.m5.large" and result["after"]["status"] == "available"
    assert any("Multi-AZ" in step and "fail" in step for step in result["plan"])
    assert result["snapshot_id"] is None


def test_wait_timeout_says_where_rds_is(stub):
    api, stubber = stub
    clock = Clock()
    describe(stubber, instance())
    stubber.add_response(
        "modify_db_instance",
        {"DBInstance": instance(status="modifying")},
        {"DBInstanceIdentifier": "shop", "ApplyImmediately": True, "DBInstanceClass": "db.m5.large"},
    )
    for status in ("modifying", "modifying", "modifying"):
        describe(stubber, instance(status=status, pending={"DBInstanceClass": "db.m5.large"}))
    with pytest.raises(instances.RdsError, match="status modifying"):
        instances.resize(
            api,
            "shop",
            {"db_instance_class": "db.m5.large"},
            take_snapshot=False,
            wait_timeout=30,
            delay=15,
            sleep=clock.sleep,
            clock=clock,
        )


def test_storage_optimization_refuses_a_storage_change_but_takes_a_class_change(stub):
    api, stubber = stub
    clock = Clock()
    describe(stubber, instance(status="storage-optimization"))
    with pytest.raises(instances.RdsError, match="storage-optimization"):
        instances.resize(api, "shop", {"allocated_storage": 100}, sleep=clock.sleep, clock=clock)
    describe(stubber, instance(status="storage-optimization"))
    stubber.add_response(
        "modify_db_instance",
        {"DBInstance": instance(cls="db.m5.large", status="modifying")},
        {"DBInstanceIdentifier": "shop", "ApplyImmediately": True, "DBInstanceClass": "db.m5.large"},
    )
    describe(stubber, instance(cls="db.m5.large"))
    result = instances.resize(
        api, "shop", {"db_instance_class": "db.m5.large"}, take_snapshot=False, sleep=clock.sleep, clock=clock
    )
    assert result["changed"] and result["after"]["db_instance_class"] == "db.m5.large"


def test_storage_never_shrinks_and_check_mode_calls_only_describe(stub):
    api, stubber = stub
    describe(stubber, instance(storage=100))
    with pytest.raises(instances.RdsError, match="cannot shrink"):
        instances.resize(api, "shop", {"allocated_storage": 50})
    describe(stubber, instance())
    result = instances.resize(api, "shop", {"allocated_storage": 40, "iops": 4000}, check_mode=True)
    assert (
        result["changed"] and result["after"]["allocated_storage"] == 40 and result["after"]["iops"] == 4000
    )


def test_missing_instance_and_errors_are_dbarch_errors(stub):
    api, stubber = stub
    stubber.add_client_error("describe_db_instances", "DBInstanceNotFound", "not found", 404)
    assert instances.describe(api, "shop") is None
    stubber.add_client_error("describe_db_instances", "AccessDenied", "no", 403)
    with pytest.raises(DbarchError, match="AccessDenied"):
        instances.describe(api, "shop")


def test_aws_options_take_the_environment_as_defaults():
    env = {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_PROFILE": "p",
    }
    opts = aws.resolve(environ=env, region=None, aws_access_key_id=None)
    assert opts["region"] == "eu-west-1" and opts["aws_access_key_id"] == "k" and opts["profile"] == "p"
    assert aws.resolve(environ=env, region="us-east-2")["region"] == "us-east-2"
    with pytest.raises(aws.AwsError, match="both"):
        aws.resolve(environ={}, aws_access_key_id="only-the-key")
    assert issubclass(instances.RdsError, DbarchError)


def test_same_change_being_applied_is_waited_for_without_a_second_modify(stub):
    api, stubber = stub
    clock = Clock()
    describe(stubber, instance(status="modifying", pending={"DBInstanceClass": "db.m5.large"}))
    describe(stubber, instance(status="modifying", pending={"DBInstanceClass": "db.m5.large"}))
    describe(stubber, instance(cls="db.m5.large"))
    result = instances.resize(
        api, "shop", {"db_instance_class": "db.m5.large"}, sleep=clock.sleep, clock=clock
    )
    assert result["changed"] is False and result["snapshot_id"] is None and "being applied" in result["msg"]
    assert result["after"]["db_instance_class"] == "db.m5.large" and result["pending_modified_values"] == {}


def test_apply_immediately_applies_a_change_waiting_for_the_window(stub):
    api, stubber = stub
    clock = Clock()
    describe(stubber, instance(pending={"DBInstanceClass": "db.m5.large"}))
    stubber.add_response(
        "modify_db_instance",
        {"DBInstance": instance(status="modifying", pending={"DBInstanceClass": "db.m5.large"})},
        {"DBInstanceIdentifier": "shop", "ApplyImmediately": True, "DBInstanceClass": "db.m5.large"},
    )
    describe(stubber, instance(cls="db.m5.large"))
    result = instances.resize(
        api, "shop", {"db_instance_class": "db.m5.large"}, take_snapshot=False, sleep=clock.sleep, clock=clock
    )
    assert result["changed"] and any("applies it now" in step for step in result["plan"])
