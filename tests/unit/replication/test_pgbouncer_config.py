"""PgBouncer's [databases] section rewritten in place, and its auth file (no database, no PgBouncer)."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer_config as cfg

SAMPLE = """\
;; PgBouncer pools (hand-edited comments must survive)
# a hash comment too

[databases]
; the write pool
shop = host=10.0.0.11 port=5432 dbname=shop pool_size=40
shop_ro = host=10.0.0.21 port=5432 dbname=shop

; a pool nobody asks the module about, written oddly on purpose
legacy =   host='10.0.0.99'   dbname=legacy  connect_query='SELECT ''x'''

%include /etc/pgbouncer/extra.ini

[users]
app = pool_mode=session
"""


def test_repoint_rewrites_only_the_named_line():
    changes = cfg.validate_changes({"shop": {"host": "10.0.0.12", "port": 5432, "dbname": "shop"}})
    text, before, after = cfg.rewrite_databases(SAMPLE, changes)
    old_lines = SAMPLE.splitlines()
    new_lines = text.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]  # noqa: B905
    assert changed == [
        (
            "shop = host=10.0.0.11 port=5432 dbname=shop pool_size=40",
            "shop = host=10.0.0.12 port=5432 dbname=shop pool_size=40",
        )
    ]
    assert before["shop"]["host"] == "10.0.0.11"
    assert after["shop"] == {"host": "10.0.0.12", "port": "5432", "dbname": "shop", "pool_size": "40"}


def test_unchanged_targets_give_back_the_same_text():
    changes = cfg.validate_changes({"shop_ro": {"host": "10.0.0.21", "port": "5432", "dbname": "shop"}})
    text, before, after = cfg.rewrite_databases(SAMPLE, changes)
    assert text == SAMPLE
    assert before == after


def test_quoted_values_read_and_kept_byte_for_byte():
    targets = cfg.read_targets(SAMPLE)
    assert targets["legacy"] == {"host": "10.0.0.99", "dbname": "legacy", "connect_query": "SELECT 'x'"}
    # the same host given again: the quoted spelling stays
    changes = cfg.validate_changes({"legacy": {"host": "10.0.0.99"}})
    text, _before, _after = cfg.rewrite_databases(SAMPLE, changes)
    assert text == SAMPLE
    # another host: only that pair changes, the quoted connect_query keeps its quoting
    changes = cfg.validate_changes({"legacy": {"host": "10.0.0.98"}})
    text, _before, after = cfg.rewrite_databases(SAMPLE, changes)
    assert "legacy = host=10.0.0.98 dbname=legacy connect_query='SELECT ''x'''" in text.splitlines()
    assert after["legacy"]["connect_query"] == "SELECT 'x'"


def test_new_pool_goes_after_the_last_pool_line_of_the_section():
    changes = cfg.validate_changes({"shop_ro_b": {"host": "10.0.0.22", "port": 5432, "dbname": "shop"}})
    text, before, after = cfg.rewrite_databases(SAMPLE, changes)
    lines = text.splitlines()
    assert before == {"shop_ro_b": None}
    index = lines.index("shop_ro_b = host=10.0.0.22 port=5432 dbname=shop")
    assert lines[index - 1].startswith("legacy =")
    assert lines[index + 1] == ""
    assert "%include /etc/pgbouncer/extra.ini" in lines
    assert lines[-2:] == ["[users]", "app = pool_mode=session"]


def test_remove_a_pool_and_a_key():
    changes = cfg.validate_changes({"shop_ro": None, "shop": {"pool_size": None}})
    text, before, after = cfg.rewrite_databases(SAMPLE, changes)
    assert "shop_ro =" not in text
    assert "shop = host=10.0.0.11 port=5432 dbname=shop" in text.splitlines()
    assert after == {"shop_ro": None, "shop": {"host": "10.0.0.11", "port": "5432", "dbname": "shop"}}
    assert before["shop_ro"]["host"] == "10.0.0.21"


def test_file_without_databases_section_gets_one():
    text, _b, _a = cfg.rewrite_databases(
        "[pgbouncer]\nlisten_port = 6432\n", cfg.validate_changes({"a": {"host": "h"}})
    )
    assert text == "[pgbouncer]\nlisten_port = 6432\n\n[databases]\na = host=h\n"
    new = cfg.new_file_text(["comment"])
    text, _b, _a = cfg.rewrite_databases(new, cfg.validate_changes({"a": {"host": "h", "port": 1}}))
    assert text == "; comment\n[databases]\na = host=h port=1\n"


def test_file_without_final_newline_is_kept_when_nothing_changes():
    text = "[databases]\na = host=h"
    new, _b, _a = cfg.rewrite_databases(text, cfg.validate_changes({"a": {"host": "h"}}))
    assert new == text


def test_host_lists_and_socket_folders_are_values():
    changes = cfg.validate_changes(
        {"r": {"host": "10.0.0.21,10.0.0.22", "port": 5432}, "l": {"host": "/run/pg"}}
    )
    text, _b, after = cfg.rewrite_databases("[databases]\n", changes)
    assert after["r"]["host"] == "10.0.0.21,10.0.0.22"
    assert "l = host=/run/pg" in text


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"shop": {"host": "h", "password": "secret"}}, "plaintext secret"),
        ({"shop": {"user": "app"}}, "user= forces"),
        ({"shop": {"host": "h\nadmin_users = x"}}, "no spaces, quotes or line breaks"),
        ({"shop": {"host": "h dbname=other"}}, "no spaces"),
        ({"shop": {"port": "54x"}}, "whole number"),
        ({"shop": {"port": 70000}}, "whole number"),
        ({"shop": {"pool_mode": "sometimes"}}, "session, transaction, statement"),
        ({"shop": {"connect_query": "x"}}, "unknown key"),
        ({"bad name": {"host": "h"}}, "pool name"),
        ({"x=y": {"host": "h"}}, "pool name"),
        ({"shop": {}}, "dict of PgBouncer keys"),
        ({}, "at least one pool"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(changes, words):
    with pytest.raises(cfg.PgBouncerConfigError, match=words):
        cfg.validate_changes(changes)


def test_a_pool_defined_twice_is_refused():
    with pytest.raises(cfg.PgBouncerConfigError, match="twice"):
        cfg.read_targets("[databases]\na = host=x\na = host=y\n")


def test_a_line_pgbouncer_would_read_differently_is_refused():
    with pytest.raises(cfg.PgBouncerConfigError, match="fix it by hand"):
        cfg.read_targets("[databases]\nnot a pool line\n")
    with pytest.raises(cfg.PgBouncerConfigError, match="key=value"):
        cfg.read_targets("[databases]\na = host='unterminated\n")


def test_targets_equal_compares_ports_as_text_and_defaults():
    assert cfg.targets_equal({"host": "h", "port": "5432"}, {"host": "h"})
    assert not cfg.targets_equal({"host": "h", "port": "5433"}, {"host": "h"})
    assert cfg.targets_equal(None, None)
    assert not cfg.targets_equal({"host": "h"}, None)


def test_userlist_round_trip_quotes_and_comments():
    text = cfg.userlist_text([('we"ird', "SCRAM-SHA-256$4096:abc$def:ghi")], ["managed"])
    assert text == '; managed\n"we""ird" "SCRAM-SHA-256$4096:abc$def:ghi"\n'
    assert cfg.parse_userlist(text) == [('we"ird', "SCRAM-SHA-256$4096:abc$def:ghi")]
    with pytest.raises(cfg.PgBouncerConfigError):
        cfg.userlist_text([("a\nb", "x")])
