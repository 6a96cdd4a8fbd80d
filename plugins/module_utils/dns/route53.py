# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Route 53 record set pointed at a server (the ``route53_record`` module): read it, compare,
UPSERT (or DELETE) it in one change batch, wait for INSYNC when asked.

boto3 only (the client from core/aws.py); ``endpoint_url`` reaches a stand-in such as moto's
server. Plain Python, no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.aws import BotoCoreError, ClientError

TYPES = ("A", "AAAA", "CNAME", "TXT")


class Route53Error(DbarchError):
    """A Route 53 call failed or the input is wrong; the message says which and how to fix it."""


def fqdn(name):
    """A record name as Route 53 returns it: lower case, with the final dot, ``*`` as ``\\052``."""
    text = str(name or "").strip().lower()
    if not text:
        raise Route53Error("record: give the record's name, such as db.example.com")
    if not text.endswith("."):
        text += "."
    return text.replace("*", "\\052")


def record_value(value, rtype):
    """One value as Route 53 keeps it (a CNAME target gets its final dot; TXT its quotes)."""
    text = str(value).strip()
    if rtype == "CNAME" and not text.endswith("."):
        text += "."
    if rtype == "TXT" and not (text.startswith('"') and text.endswith('"')):
        text = '"%s"' % text.replace('"', '\\"')
    return text


# The client's settings (module: DbarchModule.aws_client("route53", **client_options(region))): Route 53
# is global, so the client signs for us-east-1 unless a region is given, whatever AWS_REGION says.
def client_options(region=None):
    return dict(region=region or "us-east-1", max_attempts=3)


def _aws(what, exc):
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return Route53Error("Route 53 %s failed: %s: %s" % (what, err.get("Code"), err.get("Message")))
    return Route53Error("Route 53 %s failed: %s" % (what, exc))


def find_zone(api, zone):
    """The hosted zone id for ``zone`` (an id such as Z123 or /hostedzone/Z123, or a zone name)."""
    text = str(zone or "").strip()
    if not text:
        raise Route53Error("zone: give the hosted zone's id (Z...) or its name (example.com)")
    if "." not in text.rstrip("."):
        return text.rsplit("/", maxsplit=1)[-1]
    name = fqdn(text)
    try:
        found = api.list_hosted_zones_by_name(DNSName=name, MaxItems="10").get("HostedZones", [])
    except (BotoCoreError, ClientError) as exc:
        raise _aws("list_hosted_zones_by_name", exc) from None
    matches = [z for z in found if z.get("Name", "").lower() == name]
    if len(matches) != 1:
        raise Route53Error(
            "zone %s: %s hosted zones have that name; give the zone id (Z...) instead"
            % (text, len(matches) or "no")
        )
    return matches[0]["Id"].rsplit("/", maxsplit=1)[-1]


def current(api, zone_id, name, rtype):
    """The record set {name, type, ttl, values} or None."""
    try:
        page = api.list_resource_record_sets(
            HostedZoneId=zone_id, StartRecordName=name, StartRecordType=rtype, MaxItems="1"
        )
    except (BotoCoreError, ClientError) as exc:
        raise _aws("list_resource_record_sets in zone %s" % zone_id, exc) from None
    for rrset in page.get("ResourceRecordSets", []):
        if rrset.get("Name", "").lower() == name and rrset.get("Type") == rtype:
            if "AliasTarget" in rrset:
                raise Route53Error(
                    "%s %s in zone %s is an alias record; this module manages plain records only"
                    % (name, rtype, zone_id)
                )
            return dict(
                name=name,
                type=rtype,
                ttl=rrset.get("TTL"),
                values=sorted(r["Value"] for r in rrset.get("ResourceRecords", [])),
            )
    return None


def wanted(name, rtype, values, ttl):
    if rtype not in TYPES:
        raise Route53Error("type %s: use one of %s" % (rtype, ", ".join(TYPES)))
    values = [v for v in (values or []) if str(v).strip()]
    if not values:
        raise Route53Error("value: give at least one value (the new primary's address)")
    if rtype == "CNAME" and len(values) != 1:
        raise Route53Error("a CNAME record has exactly one value, not %d" % len(values))
    if int(ttl) < 0:
        raise Route53Error("ttl %s: give 0 or more seconds" % ttl)
    return dict(name=name, type=rtype, ttl=int(ttl), values=sorted(record_value(v, rtype) for v in values))


def _rrset(record):
    return {
        "Name": record["name"],
        "Type": record["type"],
        "TTL": record["ttl"],
        "ResourceRecords": [{"Value": v} for v in record["values"]],
    }


def wait_insync(api, change_id, timeout, clock=time.monotonic, sleep=time.sleep):
    """Poll get_change until INSYNC; returns the last status."""
    deadline = clock() + float(timeout)
    while True:
        try:
            status = api.get_change(Id=change_id)["ChangeInfo"]["Status"]
        except (BotoCoreError, ClientError) as exc:
            raise _aws("get_change %s" % change_id, exc) from None
        if status == "INSYNC" or clock() >= deadline:
            return status
        sleep(2)


def ensure(
    api,
    zone,
    record,
    rtype="A",
    values=(),
    ttl=60,
    state="present",
    comment=None,
    wait=False,
    wait_timeout=300,
    check_mode=False,
):
    """Bring one record set to ``state``.

    Returns {changed, zone_id, before, after, change_id, status, msg}."""
    zone_id = find_zone(api, zone)
    name = fqdn(record)
    before = current(api, zone_id, name, rtype)
    after = wanted(name, rtype, values, ttl) if state == "present" else None
    out = dict(changed=False, zone_id=zone_id, before=before, after=after, change_id=None, status=None)
    if before == after:
        out["msg"] = "%s %s in zone %s is already %s" % (
            name,
            rtype,
            zone_id,
            ", ".join(after["values"]) if after else "absent",
        )
        return out
    out["changed"] = True
    action = "UPSERT" if after else "DELETE"
    what = ", ".join(after["values"]) if after else "absent"
    if check_mode:
        out["msg"] = "would set %s %s in zone %s to %s" % (name, rtype, zone_id, what)
        return out
    batch = {"Changes": [{"Action": action, "ResourceRecordSet": _rrset(after or before)}]}
    if comment:
        batch["Comment"] = comment
    try:
        info = api.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch=batch)["ChangeInfo"]
    except (BotoCoreError, ClientError) as exc:
        raise _aws(
            "change_resource_record_sets (%s %s %s) in zone %s" % (action, name, rtype, zone_id), exc
        ) from None
    out["change_id"] = info["Id"].rsplit("/", maxsplit=1)[-1]
    out["status"] = info.get("Status")
    if wait and out["status"] != "INSYNC":
        out["status"] = wait_insync(api, info["Id"], wait_timeout)
        if out["status"] != "INSYNC":
            raise Route53Error(
                "%s %s in zone %s was changed (change %s) but is still %s after %s s: Route 53 is slow to "
                "propagate; check the change with aws route53 get-change"
                % (name, rtype, zone_id, out["change_id"], out["status"], wait_timeout)
            )
    out["msg"] = "set %s %s in zone %s to %s (change %s, %s)" % (
        name,
        rtype,
        zone_id,
        what,
        out["change_id"],
        out["status"],
    )
    return out
