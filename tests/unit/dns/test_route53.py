"""dns/route53.py against a recording stand-in of the boto3 client (the module's integration test
runs against moto's server)."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.dns import route53


class Client:
    def __init__(self, zones=None, rrsets=None):
        self.zones = zones or [dict(Id="/hostedzone/Z1", Name="example.com.")]
        self.rrsets = rrsets or []
        self.changes = []

    def list_hosted_zones_by_name(self, DNSName, MaxItems):
        return dict(HostedZones=[z for z in self.zones if z["Name"] >= DNSName])

    def list_resource_record_sets(self, HostedZoneId, StartRecordName, StartRecordType, MaxItems):
        return dict(ResourceRecordSets=[r for r in self.rrsets if r["Name"] >= StartRecordName][:1])

    def change_resource_record_sets(self, HostedZoneId, ChangeBatch):
        self.changes.append((HostedZoneId, ChangeBatch))
        return dict(ChangeInfo=dict(Id="/change/C1", Status="PENDING"))

    def get_change(self, Id):
        return dict(ChangeInfo=dict(Id=Id, Status="INSYNC"))


def rrset(value, ttl=60, name="db.example.com.", rtype="A"):
    return dict(Name=name, Type=rtype, TTL=ttl, ResourceRecords=[dict(Value=value)])


def test_names_and_values_as_route53_keeps_them():
    assert route53.fqdn("DB.Example.com") == "db.example.com."
    assert route53.fqdn("*.example.com.") == "\\052.example.com."
    assert route53.record_value("db2.example.com", "CNAME") == "db2.example.com."
    assert route53.record_value("v=1", "TXT") == '"v=1"'


def test_upsert_when_the_value_differs_then_nothing_when_it_is_there():
    api = Client(rrsets=[rrset("10.0.0.1")])
    out = route53.ensure(api, "example.com", "db.example.com", "A", ["10.0.0.2"], ttl=60, wait=True)
    assert out["changed"] and out["zone_id"] == "Z1" and out["status"] == "INSYNC"
    assert out["before"]["values"] == ["10.0.0.1"] and out["after"]["values"] == ["10.0.0.2"]
    (zone, batch) = api.changes[0]
    assert zone == "Z1" and batch["Changes"][0]["Action"] == "UPSERT"
    assert batch["Changes"][0]["ResourceRecordSet"]["ResourceRecords"] == [{"Value": "10.0.0.2"}]

    api = Client(rrsets=[rrset("10.0.0.2")])
    out = route53.ensure(api, "Z1", "db.example.com", "A", ["10.0.0.2"], ttl=60)
    assert not out["changed"] and api.changes == [] and "is already 10.0.0.2" in out["msg"]


def test_check_mode_and_a_ttl_change_and_delete():
    api = Client(rrsets=[rrset("10.0.0.1", ttl=300)])
    out = route53.ensure(api, "Z1", "db.example.com", "A", ["10.0.0.1"], ttl=60, check_mode=True)
    assert out["changed"] and api.changes == [] and out["msg"].startswith("would set")
    out = route53.ensure(api, "Z1", "db.example.com", "A", state="absent")
    assert out["changed"] and api.changes[0][1]["Changes"][0]["Action"] == "DELETE"


def test_refusals():
    with pytest.raises(route53.Route53Error, match="exactly one value"):
        route53.wanted("db.example.com.", "CNAME", ["a", "b"], 60)
    with pytest.raises(route53.Route53Error, match="at least one value"):
        route53.wanted("db.example.com.", "A", [], 60)
    two = Client(
        zones=[dict(Id="/hostedzone/Z1", Name="example.com."), dict(Id="/hostedzone/Z2", Name="example.com.")]
    )
    with pytest.raises(route53.Route53Error, match="2 hosted zones have that name"):
        route53.find_zone(two, "example.com")
    alias = Client(rrsets=[dict(Name="db.example.com.", Type="A", AliasTarget={})])
    with pytest.raises(route53.Route53Error, match="alias record"):
        route53.ensure(alias, "Z1", "db.example.com", "A", ["10.0.0.1"])
