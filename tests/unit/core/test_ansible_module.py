"""DbarchModule: the shared connection options, and fail_from(exc) for engine errors."""

import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import (
    DbarchModule,
    connection_spec,
    definition_diff,
)
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.findings import Finding
from ansible_collections.dbarch.postgresql.plugins.module_utils.query.indexes import IndexError_
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.settings import SettingError

SECRET = "Sup3r-Secret-pw"


class Exited(Exception):
    def __init__(self, result, failed=True):
        super().__init__(result)
        self.result = result
        self.failed = failed


@pytest.fixture
def module(monkeypatch):
    def make(args, **kw):
        payload = {"ANSIBLE_MODULE_ARGS": dict(args)}
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps(payload)))
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
        mod = DbarchModule(**kw)

        def fail_json(**result):
            raise Exited(result)

        def exit_json(**result):
            raise Exited(result, failed=False)

        monkeypatch.setattr(mod, "fail_json", fail_json)
        monkeypatch.setattr(mod, "exit_json", exit_json)
        return mod

    return make


class FakeSession:
    def __init__(self):
        self.queries = ["SELECT 1", "ALTER SYSTEM SET work_mem = '1GB'"]
        self.closed = False

    def close(self):
        self.closed = True


def test_connection_options_are_added_with_password_no_log(module):
    mod = module({"login_password": SECRET, "port": 5433}, argument_spec={}, supports_check_mode=True)
    assert mod.params["login_port"] == 5433 and mod.params["login_password"] == SECRET
    assert SECRET in mod.no_log_values


def test_an_alias_that_is_an_own_option_is_left_out():
    spec = connection_spec(taken={"port", "user"})
    assert "aliases" not in spec["login_port"] and "aliases" not in spec["login_user"]
    assert spec["login_host"]["aliases"] == ["host"]
    assert all("aliases" not in o for o in connection_spec(aliases=False).values())


def test_fail_from_an_engine_error_has_message_sqlstate_queries_and_no_traceback(module):
    mod = module({"login_password": SECRET}, argument_spec={})
    session = FakeSession()
    with pytest.raises(Exited) as out:
        mod.fail_from(pg.PgError("permission denied (password was %s)" % SECRET, sqlstate="42501"), session)
    result = out.value.result
    assert result["sqlstate"] == "42501" and result["queries"] == session.queries and session.closed
    assert "exception" not in result and SECRET not in json.dumps(result)
    assert result["msg"].startswith("permission denied")


def test_fail_from_any_engine_error_class(module):
    mod = module({}, argument_spec={})
    with pytest.raises(Exited) as out:
        mod.fail_from(SettingError("work_mem = 'lots': not a number"), msg_prefix="setting")
    assert out.value.result["msg"] == "setting: work_mem = 'lots': not a number"
    assert "exception" not in out.value.result
    assert isinstance(SettingError("x"), DbarchError)


def test_fail_from_a_bug_keeps_its_traceback(module):
    mod = module({}, argument_spec={})
    with pytest.raises(Exited) as out:
        try:
            raise KeyError("missing")
        except KeyError as exc:
            mod.fail_from(exc)
    assert out.value.result["msg"].startswith("KeyError") and "Traceback" in out.value.result["exception"]


def test_fail_from_a_file_system_error_names_where_without_traceback(module):
    mod = module({}, argument_spec={})
    session = FakeSession()
    mod.session = session
    with pytest.raises(Exited) as out:
        try:
            with open("/nonexistent-dbarch-dir/backup.json"):
                pass
        except OSError as exc:
            mod.fail_from(exc, msg_prefix="file system error in repository /srv/backups", actions=["a"])
    result = out.value.result
    assert result["msg"].startswith("file system error in repository /srv/backups: [Errno 2]")
    assert "/nonexistent-dbarch-dir/backup.json" in result["msg"] and "exception" not in result
    assert result["actions"] == ["a"] and result["queries"] == session.queries and session.closed


def test_require_absolute(module):
    mod = module({"data_dir": "rel/data"}, argument_spec={"data_dir": {"type": "path"}})
    with pytest.raises(Exited) as out:
        mod.require_absolute("data_dir")
    assert "data_dir='rel/data' must be an absolute path" in out.value.result["msg"]
    ok = module({"data_dir": "s3://bucket/x"}, argument_spec={"data_dir": {"type": "str"}})
    ok.require_absolute("data_dir")


def test_fail_from_returns_what_the_engine_had_done(module):
    mod = module({}, argument_spec={})
    session = FakeSession()
    done = dict(changed=True, attempts=3, actions=["CREATE INDEX CONCURRENTLY ix ON t (a)"])
    with pytest.raises(Exited) as out:
        mod.fail_from(IndexError_("the build failed: the INVALID index was dropped.", done), session)
    result = out.value.result
    assert result["attempts"] == 3 and result["changed"] is True and result["actions"] == done["actions"]
    assert result["queries"] == session.queries and result["msg"].startswith("the build failed")


def test_user_statements_adds_the_role_options_and_masks_password_literals(module):
    mod = module({"explain_role": "reader"}, argument_spec={}, user_statements=True)
    assert mod.params["explain_role"] == "reader" and mod.params["allow_superuser_statements"] is False
    session = FakeSession()
    session.queries = ["ALTER ROLE app PASSWORD 'hunter2-secret'"]
    mod.session = session
    assert "hunter2-secret" not in json.dumps(mod.queries())
    with pytest.raises(Exited) as out:
        mod.fail_from(pg.PgError("error: CREATE USER x PASSWORD 'hunter2-secret'", sqlstate="42601"))
    result = out.value.result
    assert "hunter2-secret" not in json.dumps(result) and result["sqlstate"] == "42601"
    assert result["msg"].startswith("error: CREATE USER x PASSWORD") and len(result["queries"]) == 1
    plain = module({}, argument_spec={})
    plain.session = session
    assert plain.queries() == session.queries, "without user_statements the queries are as sent"


def _finding(severity, obj="public.t"):
    return Finding(rule="T-001", severity=severity, object=obj, message="something on %s" % obj)


def test_exit_findings_exits_or_fails_on_fail_on(module):
    found = [_finding("high"), _finding("low", "public.u")]
    mod = module({"fail_on": "medium"}, argument_spec={}, findings=True)
    with pytest.raises(Exited) as out:
        mod.exit_findings(found, summary={"n": 2}, queries=["SELECT 1"])
    assert out.value.failed and "1 finding(s) at or above fail_on=medium" in out.value.result["msg"]
    assert out.value.result["findings"][0]["rule"] == "T-001" and out.value.result["summary"] == {"n": 2}
    quiet = module({}, argument_spec={}, findings=True)
    assert quiet.params["fail_on"] == "never" and quiet.params["suppressions"] == []
    with pytest.raises(Exited) as out:
        quiet.exit_findings(found, msg="two findings", queries=[])
    assert not out.value.failed and out.value.result["changed"] is False
    assert out.value.result["msg"] == "two findings" and len(out.value.result["findings"]) == 2


def test_suppress_applies_suppressions_and_refuses_one_without_reason(module):
    rule = {"rule": "T-001", "object": "public.t", "reason": "accepted: small table"}
    unused_rule = {"rule": "X-*", "reason": "nothing matches"}
    mod = module({"suppressions": [rule, unused_rule]}, argument_spec={}, findings=True)
    found, unused = mod.suppress([_finding("high"), _finding("high", "public.u")])
    assert [f.suppressed for f in found] == [True, False] and unused == [unused_rule]
    bad = module({"suppressions": [{"rule": "T-001"}]}, argument_spec={}, findings=True)
    with pytest.raises(Exited) as out:
        bad.suppress([], queries=[])
    assert "has no reason" in out.value.result["msg"] and out.value.result["queries"] == []


def test_definition_diff():
    diff = definition_diff('index "ix"', None, "CREATE INDEX ix ON t (a)")
    assert diff == dict(
        before_header='index "ix" (before)',
        after_header='index "ix" (after)',
        before="",
        after="CREATE INDEX ix ON t (a)\n",
    )
    assert definition_diff("x", "A", None)["before"] == "A\n"


def test_aws_options_are_added_with_keys_no_log_and_build_the_client(module):
    mod = module(
        {
            "aws_region": "eu-west-1",
            "endpoint_url": "http://127.0.0.1:1",
            "access_key": "AKIA",
            "secret_key": SECRET,
        },
        argument_spec={},
        aws_options=True,
        supports_check_mode=True,
    )
    assert mod.params["region"] == "eu-west-1" and mod.params["aws_secret_access_key"] == SECRET
    assert SECRET in mod.no_log_values
    api = mod.aws_client("rds")
    assert api.meta.region_name == "eu-west-1" and api.meta.endpoint_url == "http://127.0.0.1:1"
    # a service's own setting wins over the option (route53 signs for us-east-1)
    assert mod.aws_client("route53", region="us-east-1").meta.region_name == "us-east-1"


def test_without_aws_options_no_aws_option_is_accepted(module):
    mod = module({}, argument_spec={}, supports_check_mode=True)
    assert "endpoint_url" not in mod.argument_spec and "aws_secret_access_key" not in mod.argument_spec
