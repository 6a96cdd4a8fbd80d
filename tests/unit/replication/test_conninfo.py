# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""primary_conninfo: built without a password, compared on what the module decides, masked."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import conninfo as ci

BASEBACKUP_R = (
    "user=postgres password='s3cr et' channel_binding=prefer host=127.0.0.1 port=5433 sslmode=prefer "
    "sslcompression=0 sslsni=1 ssl_min_protocol_version=TLSv1.2 gssencmode=prefer krbsrvname=postgres "
    "target_session_attrs=any"
)


def primary(**extra):
    base = {"host": "db1.example.com", "port": 5432, "user": "replicator", "password": "pw"}
    base.update(extra)
    return ci.check_primary(base)


def test_wanted_conninfo_names_the_passfile_never_the_password():
    text = ci.build(ci.wanted(primary(), "/srv/pg/.dbarch-main.pgpass"))
    assert text == "user=replicator passfile=/srv/pg/.dbarch-main.pgpass host=db1.example.com port=5432"
    assert "pw" not in text.split()
    no_password = ci.build(ci.wanted(primary(password=None), "/x/.pgpass"))
    assert "passfile" not in no_password


def test_parse_round_trips_quotes_and_escapes():
    keywords = {
        "user": "o'neil",
        "passfile": "/path with space/.pgpass",
        "host": "h",
        "application_name": "a\\b",
    }
    assert ci.parse(ci.build(keywords)) == keywords
    assert ci.parse("host = h  port=5  user='a b'") == {"host": "h", "port": "5", "user": "a b"}
    assert ci.parse(BASEBACKUP_R)["password"] == "s3cr et"
    with pytest.raises(ci.ConninfoError):
        ci.parse("host")
    with pytest.raises(ci.ConninfoError):
        ci.parse("user='unterminated")


def test_uri_conninfo_is_read_by_libpq():
    assert ci.parse("postgresql://rep@db:5433/?sslmode=require") == {
        "user": "rep",
        "host": "db",
        "port": "5433",
        "sslmode": "require",
    }


def test_differences_ignore_libpq_defaults_and_extras():
    wanted = ci.wanted(ci.check_primary({"host": "127.0.0.1", "port": 5433, "user": "postgres"}), "/p")
    # what pg_basebackup -R wrote, without a password: same upstream
    assert ci.differences(BASEBACKUP_R.replace("password='s3cr et' ", ""), wanted) == []
    # a password in the conninfo is replaced by the password file
    with_password = ci.wanted(
        ci.check_primary({"host": "127.0.0.1", "port": 5433, "user": "postgres", "password": "x"}), "/p"
    )
    assert ci.differences(BASEBACKUP_R, with_password) == ["passfile", "password"]
    assert ci.differences("host=127.0.0.1 port=5434 user=postgres", wanted) == ["port"]
    assert ci.differences("", wanted) == ["user", "host", "port"]


def test_passfile_line_escapes_and_path():
    line = ci.passfile_text({"host": "db:1", "port": 5432, "user": "u\\x", "password": "p:w"})
    assert line == "db\\:1:5432:*:u\\\\x:p\\:w\n"
    assert ci.passfile_path("/var/lib/postgresql/16/main") == "/var/lib/postgresql/16/.dbarch-main.pgpass"
    assert ci.passfile_path("/srv/pg/data/") == "/srv/pg/.dbarch-data.pgpass"


def test_check_primary():
    assert primary()["dbname"] == "postgres"
    assert ci.check_primary({"host": "h", "user": "u"})["port"] == 5432
    with pytest.raises(ci.ConninfoError, match="host"):
        ci.check_primary({"user": "u"})
    with pytest.raises(ci.ConninfoError, match="unknown"):
        ci.check_primary({"host": "h", "user": "u", "pasword": "typo"})
    with pytest.raises(ci.ConninfoError, match="line break"):
        ci.check_primary({"host": "h", "user": "u", "application_name": "a\nb"})
    with pytest.raises(ci.ConninfoError, match="port"):
        ci.check_primary({"host": "h", "user": "u", "port": "x"})


def test_masked():
    assert "s3cr" not in ci.masked(BASEBACKUP_R)
    assert ci.masked(None) is None
