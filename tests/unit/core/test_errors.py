"""Every engine error class derives from the one DbarchError base (ValueError ones keep ValueError)."""

import importlib
import inspect
import pathlib

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.schema import ddl
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings, pg, reports
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

UTILS = pathlib.Path(__file__).resolve().parents[3] / "plugins" / "module_utils"
ENGINE_FILES = sorted(
    ".".join(p.relative_to(UTILS).with_suffix("").parts)
    for p in UTILS.rglob("*.py")
    if not p.name.startswith(("ansible_", "__"))
)


def engine_error_classes():
    found = []
    for stem in ENGINE_FILES:
        mod = importlib.import_module("ansible_collections.dbarch.postgresql.plugins.module_utils." + stem)
        for name, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ == mod.__name__ and issubclass(cls, Exception):
                found.append((stem, name, cls))
    return found


def test_there_are_engine_errors():
    assert len(engine_error_classes()) >= 25


@pytest.mark.parametrize("stem, name, cls", engine_error_classes(), ids=lambda v: getattr(v, "__name__", v))
def test_engine_error_derives_from_dbarch_error(stem, name, cls):
    assert issubclass(cls, DbarchError), "%s.%s does not derive from DbarchError" % (stem, name)


def test_value_error_ones_are_still_value_errors():
    for cls in (ddl.DdlError, findings.FindingError, reports.ReportError):
        assert issubclass(cls, ValueError) and issubclass(cls, DbarchError)


def test_details_carry_only_what_is_set():
    assert pg.PgError("boom", sqlstate="42P01").details() == {"sqlstate": "42P01"}
    assert DbarchError("plain").details() == {}
