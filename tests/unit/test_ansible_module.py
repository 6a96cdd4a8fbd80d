"""DbarchModule: the shared connection options, and fail_from(exc) for engine errors."""

import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.dbarch.postgresql.plugins.module_utils import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.ansible_module import (
    DbarchModule,
    connection_spec,
)
from ansible_collections.dbarch.postgresql.plugins.module_utils.errors import DbarchError
from ansible_collections.dbarch.postgresql.plugins.module_utils.settings import SettingError

SECRET = "Sup3r-Secret-pw"


class Exited(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


@pytest.fixture
def module(monkeypatch):
    def make(args, **kw):
        payload = {"ANSIBLE_MODULE_ARGS": dict(args)}
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps(payload)))
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
        mod = DbarchModule(**kw)

        def fail_json(**result):
            raise Exited(result)

        monkeypatch.setattr(mod, "fail_json", fail_json)
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
    try:
        raise KeyError("missing")
    except KeyError as exc:
        with pytest.raises(Exited) as out:
            mod.fail_from(exc)
    assert out.value.result["msg"].startswith("KeyError") and "Traceback" in out.value.result["exception"]


def test_require_absolute(module):
    mod = module({"data_dir": "rel/data"}, argument_spec={"data_dir": {"type": "path"}})
    with pytest.raises(Exited) as out:
        mod.require_absolute("data_dir")
    assert "data_dir='rel/data' must be an absolute path" in out.value.result["msg"]
    ok = module({"data_dir": "s3://bucket/x"}, argument_spec={"data_dir": {"type": "str"}})
    ok.require_absolute("data_dir")
