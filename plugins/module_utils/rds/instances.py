# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDS instances: read one, wait for a state with an explicit timeout, take a snapshot and wait
for it, resize (class and storage) judged against current AND pending values, read replicas
(create, promote, delete).

Engines of the ``rds_instance_resize`` and ``rds_read_replica`` modules. Plain Python over a
boto3 RDS client (core/aws.py makes it), no Ansible imports. Every wait takes ``timeout`` and a
``sleep`` function (unit tests pass one that does not sleep).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.aws import AwsError, call

# option name -> the RDS API's field name (the same in DBInstance and PendingModifiedValues)
RESIZE_FIELDS = (
    ("db_instance_class", "DBInstanceClass"),
    ("allocated_storage", "AllocatedStorage"),
    ("iops", "Iops"),
    ("storage_type", "StorageType"),
)
PROMOTED_TAG = "dbarch:promoted-from"
STORAGE_BUSY = ("storage-optimization",)


class RdsError(AwsError):
    """An RDS precondition or wait failed; the message says what and how to go on."""


def describe(api, identifier):
    """The DBInstance dict, or None when there is no such instance."""
    try:
        found = call(
            api,
            "describe_db_instances",
            "describe_db_instances %s" % identifier,
            DBInstanceIdentifier=identifier,
        )
    except AwsError as exc:
        if exc.code in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
            return None
        raise
    instances = found.get("DBInstances", [])
    return instances[0] if instances else None


def summary(instance):
    """The fields a plan shows: class, storage, status, Multi-AZ, replica source, pending values."""
    if instance is None:
        return None
    out = {name: instance.get(field) for name, field in RESIZE_FIELDS}
    out.update(
        status=instance.get("DBInstanceStatus"),
        multi_az=bool(instance.get("MultiAZ")),
        engine=instance.get("Engine"),
        engine_version=instance.get("EngineVersion"),
        read_replica_source=instance.get("ReadReplicaSourceDBInstanceIdentifier"),
        read_replicas=list(instance.get("ReadReplicaDBInstanceIdentifiers") or []),
        pending_modified_values=pending_values(instance),
    )
    return out


def pending_values(instance):
    """PendingModifiedValues of the resize fields, by option name."""
    pending = (instance or {}).get("PendingModifiedValues") or {}
    return {name: pending[field] for name, field in RESIZE_FIELDS if pending.get(field) is not None}


def wait_for(api, identifier, done, what, timeout, sleep=time.sleep, delay=5, clock=time.time):
    """Poll the instance until ``done(instance)`` (instance is None once it is gone); the last
    instance. RdsError after ``timeout`` seconds, saying what it waited for and the last status."""
    deadline = clock() + timeout
    while True:
        instance = describe(api, identifier)
        if done(instance):
            return instance
        if clock() >= deadline:
            status = instance.get("DBInstanceStatus") if instance else "gone"
            raise RdsError(
                "%s: still not %s after %d s (status %s); raise wait_timeout, or run again later: "
                "the module picks up where RDS is" % (identifier, what, timeout, status)
            )
        sleep(delay)


def available(instance):
    return instance is not None and instance.get("DBInstanceStatus") == "available"


def snapshot(api, identifier, snapshot_id, timeout, sleep=time.sleep, clock=time.time, delay=5):
    """Create a manual snapshot and wait until it is ``available``; its id."""
    call(
        api,
        "create_db_snapshot",
        "create_db_snapshot %s of %s" % (snapshot_id, identifier),
        DBInstanceIdentifier=identifier,
        DBSnapshotIdentifier=snapshot_id,
    )
    deadline = clock() + timeout
    while True:
        found = call(
            api,
            "describe_db_snapshots",
            "describe_db_snapshots %s" % snapshot_id,
            DBSnapshotIdentifier=snapshot_id,
        )
        snaps = found.get("DBSnapshots", [])
        status = snaps[0].get("Status") if snaps else "missing"
        if status == "available":
            return snapshot_id
        if status in ("failed", "missing") or clock() >= deadline:
            raise RdsError(
                "snapshot %s of %s is %s after %d s: nothing was modified; check the snapshot in the "
                "console, or raise wait_timeout" % (snapshot_id, identifier, status, timeout)
            )
        sleep(delay)


# -- resize ---------------------------------------------------------------------------------------
def target_of(db_instance_class=None, allocated_storage=None, iops=None, storage_type=None):
    target = dict(
        db_instance_class=db_instance_class,
        allocated_storage=allocated_storage,
        iops=iops,
        storage_type=storage_type,
    )
    target = {k: v for k, v in target.items() if v is not None}
    if not target:
        raise RdsError(
            "give db_instance_class and/or allocated_storage, iops, storage_type: the size to reach"
        )
    return target


def at_target(instance, target):
    return instance is not None and all(instance.get(dict(RESIZE_FIELDS)[k]) == v for k, v in target.items())


def plan_resize(instance, target, apply_immediately):
    """(changes, pending_same, plan): the fields to modify, whether that exact change is already
    pending, and the plan in words."""
    if instance is None:
        raise RdsError("no RDS instance of that identifier: check db_instance_identifier and region")
    ident = instance["DBInstanceIdentifier"]
    current = {name: instance.get(field) for name, field in RESIZE_FIELDS}
    changes = {k: v for k, v in target.items() if current.get(k) != v}
    pending = pending_values(instance)
    plan = []
    if not changes:
        return changes, False, ["%s is already at %s: nothing to do" % (ident, _fmt(target))]
    if (
        "allocated_storage" in changes
        and current.get("allocated_storage")
        and changes["allocated_storage"] < current["allocated_storage"]
    ):
        raise RdsError(
            "%s: allocated_storage cannot shrink (%s GiB now, %s asked); RDS grows storage only: "
            "dump and restore into a smaller instance instead"
            % (ident, current["allocated_storage"], changes["allocated_storage"])
        )
    pending_same = all(pending.get(k) == v for k, v in changes.items())
    status = instance.get("DBInstanceStatus")
    if pending_same and not apply_immediately:
        return (
            changes,
            True,
            [
                "%s: the change %s is already pending (maintenance window): nothing to do"
                % (ident, _fmt(changes))
            ],
        )
    if pending_same and status != "available":
        return (
            changes,
            True,
            [
                "%s: the change %s is being applied (status %s): nothing to do"
                % (ident, _fmt(changes), status)
            ],
        )
    if pending_same:
        plan.append(
            "the change %s waits for the maintenance window: apply_immediately applies it now" % _fmt(changes)
        )
    storage = [k for k in changes if k != "db_instance_class"]
    if storage and instance.get("DBInstanceStatus") in STORAGE_BUSY:
        raise RdsError(
            "%s is in storage-optimization after an earlier storage change: RDS takes no new storage "
            "change until it ends (up to 6 hours after the last one); run again later" % ident
        )
    plan.append("snapshot %s first and wait for it" % ident)
    plan.append(
        "modify %s: %s"
        % (ident, ", ".join("%s %s -> %s" % (k, current.get(k), v) for k, v in sorted(changes.items())))
    )
    if apply_immediately:
        plan.append("apply immediately, then wait for status available with the new values")
    else:
        plan.append(
            "apply in the next maintenance window (%s); nothing waits"
            % instance.get("PreferredMaintenanceWindow", "?")
        )
    if "db_instance_class" in changes:
        if instance.get("MultiAZ"):
            plan.append(
                "Multi-AZ: the standby is resized first, then RDS fails over to it (about 5 minutes of "
                "modification; connections drop at the failover, typically 1-2 minutes)"
            )
        else:
            plan.append("Single-AZ: the instance restarts on the new class (downtime for the modification)")
    if storage:
        plan.append("storage change: the instance stays up; it enters storage-optimization afterwards")
    return changes, False, plan


def _applied(instance, target, changes):
    """Available, at the target, and none of the changed fields still pending."""
    return (
        available(instance)
        and at_target(instance, target)
        and not (set(pending_values(instance)) & set(changes))
    )


def _fmt(values):
    return ", ".join("%s=%s" % kv for kv in sorted(values.items()))


def resize(
    api,
    identifier,
    target,
    apply_immediately=True,
    take_snapshot=True,
    snapshot_id=None,
    wait=True,
    wait_timeout=1800,
    check_mode=False,
    sleep=time.sleep,
    clock=time.time,
    delay=15,
):
    """Resize ``identifier`` to ``target`` (see target_of). The result dict of the module."""
    instance = describe(api, identifier)
    changes, pending_same, plan = plan_resize(instance, target, apply_immediately)
    before = summary(instance)
    result = dict(
        changed=False,
        db_instance_identifier=identifier,
        before=before,
        after=before,
        plan=plan,
        snapshot_id=None,
        pending_modified_values=before["pending_modified_values"],
        changes=changes,
    )
    if not changes or pending_same:
        result["msg"] = plan[0]
        if changes and apply_immediately and wait and not check_mode:
            # the same change is being applied (a run before this one): wait for it, as promised
            final = wait_for(
                api,
                identifier,
                lambda inst: _applied(inst, target, changes),
                "available with %s" % _fmt(changes),
                wait_timeout,
                sleep,
                delay,
                clock,
            )
            result.update(after=summary(final), pending_modified_values=pending_values(final))
        return result
    if take_snapshot:
        snapshot_id = snapshot_id or "%s-pre-resize-%s" % (
            identifier,
            time.strftime("%Y%m%d%H%M%S", time.gmtime(clock())),
        )
    else:
        snapshot_id = None
    result.update(changed=True, snapshot_id=snapshot_id)
    if check_mode:
        projected = dict(before)
        if apply_immediately:
            projected.update(changes)
        else:
            projected["pending_modified_values"] = dict(before["pending_modified_values"], **changes)
        result.update(after=projected, pending_modified_values=projected["pending_modified_values"])
        result["msg"] = "would resize %s: %s" % (identifier, _fmt(changes))
        return result
    if before["status"] != "available":
        if before["status"] in STORAGE_BUSY and "allocated_storage" not in changes:
            pass  # a class change is accepted during storage-optimization
        elif wait:
            wait_for(
                api, identifier, available, "available (before the resize)", wait_timeout, sleep, delay, clock
            )
        else:
            raise RdsError(
                "%s is %s: RDS takes a modification once it is available; run with wait=true or later"
                % (identifier, before["status"])
            )
    if snapshot_id:
        snapshot(api, identifier, snapshot_id, wait_timeout, sleep=sleep, clock=clock, delay=delay)
    kwargs = dict(DBInstanceIdentifier=identifier, ApplyImmediately=bool(apply_immediately))
    fields = dict(RESIZE_FIELDS)
    for name, value in changes.items():
        kwargs[fields[name]] = value
    if "iops" in changes and "allocated_storage" not in changes and instance.get("AllocatedStorage"):
        kwargs["AllocatedStorage"] = instance["AllocatedStorage"]  # RDS wants both for io1/gp3 changes
    modified = call(api, "modify_db_instance", "modify_db_instance %s" % identifier, **kwargs)["DBInstance"]
    if not apply_immediately or not wait:
        after = summary(modified)
        result.update(after=after, pending_modified_values=after["pending_modified_values"])
        result["msg"] = (
            "%s: %s pending until the maintenance window" % (identifier, _fmt(changes))
            if not apply_immediately
            else "%s: %s applying (not waited for)" % (identifier, _fmt(changes))
        )
        return result

    final = wait_for(
        api,
        identifier,
        lambda inst: _applied(inst, target, changes),
        "available with %s" % _fmt(changes),
        wait_timeout,
        sleep,
        delay,
        clock,
    )
    after = summary(final)
    if not at_target(final, target):  # verification (done() already demanded it; kept explicit)
        raise RdsError(
            "%s: after the modification the instance reports %s, not %s" % (identifier, after, _fmt(target))
        )
    result.update(after=after, pending_modified_values=after["pending_modified_values"])
    result["msg"] = "%s resized: %s (snapshot %s)" % (identifier, _fmt(changes), snapshot_id or "not taken")
    return result


# -- read replicas -----------------------------------------------------------------------------------
def is_replica(instance):
    """A read replica that was not promoted (moto keeps the source field after a promotion; the
    tag this module sets on promotion says so)."""
    if not instance or not instance.get("ReadReplicaSourceDBInstanceIdentifier"):
        return False
    tags = {t.get("Key"): t.get("Value") for t in instance.get("TagList") or []}
    return PROMOTED_TAG not in tags


def replica(
    api,
    identifier,
    state="present",
    source=None,
    db_instance_class=None,
    availability_zone=None,
    multi_az=None,
    backup_retention_period=None,
    tags=None,
    wait=True,
    wait_timeout=1800,
    check_mode=False,
    sleep=time.sleep,
    clock=time.time,
    delay=15,
):
    """present (create), promoted, absent (delete) for the read replica ``identifier``."""
    instance = describe(api, identifier)
    before = summary(instance)
    result = dict(changed=False, db_instance_identifier=identifier, state=state, before=before, after=before)
    if state == "present":
        if instance is not None:
            src = instance.get("ReadReplicaSourceDBInstanceIdentifier")
            if source and src and src.split(":")[-1] != source.split(":")[-1]:
                raise RdsError("%s exists as a read replica of %s, not of %s" % (identifier, src, source))
            if not is_replica(instance):
                raise RdsError(
                    "%s exists and is not a read replica (a primary, or a promoted replica): choose another "
                    "db_instance_identifier" % identifier
                )
            if wait and not available(instance) and not check_mode:
                instance = wait_for(
                    api, identifier, available, "available", wait_timeout, sleep, delay, clock
                )
                result["after"] = summary(instance)
            result["msg"] = "%s is a read replica of %s" % (identifier, src)
            return result
        if not source:
            raise RdsError(
                "source: give the primary's DB instance identifier (or ARN) to create %s" % identifier
            )
        result.update(
            changed=True,
            msg="%s %s as a read replica of %s"
            % ("would create" if check_mode else "created", identifier, source),
        )
        if check_mode:
            return result
        kwargs = dict(DBInstanceIdentifier=identifier, SourceDBInstanceIdentifier=source)
        if db_instance_class:
            kwargs["DBInstanceClass"] = db_instance_class
        if availability_zone:
            kwargs["AvailabilityZone"] = availability_zone
        if multi_az is not None:
            kwargs["MultiAZ"] = bool(multi_az)
        if tags:
            kwargs["Tags"] = [dict(Key=k, Value=str(v)) for k, v in sorted(tags.items())]
        created = call(
            api,
            "create_db_instance_read_replica",
            "create_db_instance_read_replica %s" % identifier,
            **kwargs,
        )
        instance = created["DBInstance"]
        if wait:
            instance = wait_for(api, identifier, available, "available", wait_timeout, sleep, delay, clock)
        result["after"] = summary(instance)
        return result

    if state == "promoted":
        if instance is None:
            raise RdsError("%s: no such instance to promote" % identifier)
        if not is_replica(instance):
            result["msg"] = (
                "%s is not a read replica (already promoted or a primary): nothing to do" % identifier
            )
            return result
        src = instance.get("ReadReplicaSourceDBInstanceIdentifier")
        result.update(
            changed=True,
            msg="%s %s (was a read replica of %s)"
            % ("would promote" if check_mode else "promoted", identifier, src),
        )
        if check_mode:
            return result
        kwargs = dict(DBInstanceIdentifier=identifier)
        if backup_retention_period is not None:
            kwargs["BackupRetentionPeriod"] = backup_retention_period
        call(api, "promote_read_replica", "promote_read_replica %s" % identifier, **kwargs)
        call(
            api,
            "add_tags_to_resource",
            "add_tags_to_resource %s" % identifier,
            ResourceName=instance["DBInstanceArn"],
            Tags=[dict(Key=PROMOTED_TAG, Value=str(src))],
        )
        if wait:
            instance = wait_for(
                api, identifier, available, "available (promoted)", wait_timeout, sleep, delay, clock
            )
        else:
            instance = describe(api, identifier)
        result["after"] = summary(instance)
        return result

    if state == "absent":
        if instance is None:
            result["msg"] = "%s does not exist: nothing to do" % identifier
            return result
        if instance.get("DBInstanceStatus") == "deleting":
            if wait and not check_mode:
                wait_for(
                    api, identifier, lambda inst: inst is None, "deleted", wait_timeout, sleep, delay, clock
                )
            result.update(after=None, msg="%s is being deleted already" % identifier)
            return result
        if not is_replica(instance):
            raise RdsError(
                "%s is not a read replica (a primary, or a promoted replica): this module deletes read "
                "replicas only" % identifier
            )
        result.update(
            changed=True,
            after=None,
            msg="%s read replica %s" % ("would delete" if check_mode else "deleted", identifier),
        )
        if check_mode:
            return result
        call(
            api,
            "delete_db_instance",
            "delete_db_instance %s" % identifier,
            DBInstanceIdentifier=identifier,
            SkipFinalSnapshot=True,
        )
        if wait:
            wait_for(api, identifier, lambda inst: inst is None, "deleted", wait_timeout, sleep, delay, clock)
        return result
    raise RdsError("state must be present, promoted or absent, not %r" % state)
