import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc


def test_env_defaults_fill_unset_options(monkeypatch):
    monkeypatch.setenv("PGHOST", "db.example")
    monkeypatch.setenv("PGPORT", "6543")
    monkeypatch.setenv("PGPASSWORD", "from-env")
    monkeypatch.delenv("PGUSER", raising=False)
    kw = pg.resolve_params(dict(login_user="app", login_port=5433))
    assert kw == dict(host="db.example", port=5433, user="app", password="from-env")


def test_unix_socket_is_used_as_host_only_without_login_host(monkeypatch):
    for v in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE"):
        monkeypatch.delenv(v, raising=False)
    assert pg.resolve_params(dict(login_unix_socket="/run/pg"))["host"] == "/run/pg"
    assert pg.resolve_params(dict(login_unix_socket="/run/pg", login_host="h"))["host"] == "h"


def test_describe_target_never_shows_password():
    text = pg.describe_target(dict(host="h", port=1, user="u", dbname="d", password="s3cret"))
    assert text == "host=h port=1 user=u db=d"
    assert "s3cret" not in text


def test_mask_removes_secrets_and_dsn_passwords():
    text = proc.mask("failed for dsn host=h password=abc user=u; s3cret seen", ["s3cret"])
    assert "abc" not in text and "s3cret" not in text


def test_connect_error_masks_a_short_password_only_where_it_stands_alone(tmp_path, monkeypatch):
    # a real libpq failure (no server listens in an empty socket directory) whose message has the
    # password "on" as a word ("connections on that socket") and inside words ("running")
    for v in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE"):
        monkeypatch.delenv(v, raising=False)
    with pytest.raises(pg.PgError) as err:
        pg.connect(dict(login_unix_socket=str(tmp_path), login_port=5999, login_password="on"), "test")
    msg = str(err.value)
    assert "running locally" in msg and "connections %s that socket" % proc.MASK in msg
    assert " on " not in msg


@pytest.mark.parametrize("value", ["5s", "250ms", "1min", "0", " 10 s "])
def test_valid_timeouts(value):
    assert pg.validate_timeout("lock_timeout", value)


@pytest.mark.parametrize("value", ["5 seconds", "-1s", "1; DROP TABLE x", "abc"])
def test_invalid_timeouts_are_refused_with_guidance(value):
    with pytest.raises(pg.PgError, match="is not a PostgreSQL duration"):
        pg.validate_timeout("lock_timeout", value)


def test_quote_ident_text_matches_postgres_rules():
    assert pg.quote_ident_text("orders") == "orders"
    assert pg.quote_ident_text("Orders") == '"Orders"'
    assert pg.quote_ident_text("user") == '"user"'
    assert pg.quote_ident_text('we"ird') == '"we""ird"'
    assert pg.qualified_text("public", "t") == "t"
    assert pg.qualified_text("Billing", "t") == '"Billing".t'
    assert pg.is_reserved("select") and not pg.is_reserved("orders")


def test_connect_refuses_bad_setting_names():
    with pytest.raises(pg.PgError, match="not a valid setting name"):
        pg.connect(dict(session_settings={"work_mem; drop": "1"}, login_host="127.0.0.1"), "t")
