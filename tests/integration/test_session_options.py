"""session_settings reach the server as libpq ``-c`` options: a value can never add another option."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg as pgmod


@pytest.mark.parametrize("blank", [" ", "\t", "\n", "\r", "\x0b", "\x0c"], ids=repr)
def test_a_blank_in_a_value_cannot_add_an_option(pg, blank):
    value = "probe%s-c%swork_mem=777MB%s\\%s" % (blank, blank, blank, blank)
    params = dict(pg.conn_params, session_settings={"dbarch.probe": value})
    session = pgmod.connect(params, "test")
    try:
        assert session.scalar("SELECT current_setting('dbarch.probe')") == value
        assert session.scalar("SELECT current_setting('work_mem')") != "777MB"
    finally:
        session.close()


@pytest.mark.parametrize("name", ["work_mem -c x", "a\tb", "x=y", "1abc", ""])
def test_session_setting_names_are_checked(pg, name):
    with pytest.raises(pgmod.PgError, match="not a valid setting name"):
        pgmod.connect(dict(pg.conn_params, session_settings={name: "1"}), "test")
