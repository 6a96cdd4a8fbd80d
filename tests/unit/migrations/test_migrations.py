# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""migrations.py without a database: names, versions, placeholders, checksums, statements."""

import zlib

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.migrations import migrations as mg


def signed(value):
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= (1 << 31) else value


def reference_checksum(lines):
    """Independent computation: CRC-32 over the lines joined with no terminator."""
    return signed(zlib.crc32("".join(lines).encode("utf-8")))


# -- names and versions ------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, prefix, version, description",
    [
        ("V1__init.sql", "V", "1", "init"),
        ("V1_2__add_users_table.sql", "V", "1.2", "add users table"),
        ("V1.10__x.sql", "V", "1.10", "x"),
        ("V2024_05_01_1200__orders.sql", "V", "2024.05.01.1200", "orders"),
        ("U3__drop_it.sql", "U", "3", "drop it"),
        ("R__views.sql", "R", None, "views"),
        ("R__refresh_the_views.sql", "R", None, "refresh the views"),
        ("sub/V7__nested.sql", "V", "7", "nested"),
    ],
)
def test_parse_name(name, prefix, version, description):
    got_prefix, got_version, got_description = mg.parse_name(name)
    assert (got_prefix, got_description) == (prefix, description)
    assert (got_version.text if got_version else None) == version


@pytest.mark.parametrize("name", ["README.md", "notes.sql", "init.sql", "X1__a.sql"])
def test_non_migrations_are_ignored(name):
    assert mg.parse_name(name) is None


@pytest.mark.parametrize("name", ["V1_init.sql", "Vx__a.sql", "R1__a.sql", "V__a.sql"])
def test_malformed_names_are_refused(name):
    with pytest.raises(mg.MigrationError, match=name.replace(".", r"\.")):
        mg.parse_name(name)


def test_versions_compare_numerically():
    v = mg.Version
    assert v("1.10") > v("1.9")
    assert v("1_2") == v("1.2")
    assert v("1.0") == v("1")
    assert v("2") > v("1.999")
    assert sorted([v("1.10"), v("1.2"), v("1.9"), v("1")]) == [v("1"), v("1.2"), v("1.9"), v("1.10")]
    assert v("010").text == "010" and v("010") == v("10")
    assert v("1_2").text == "1.2"


def test_migration_set_orders_and_rejects_duplicates():
    files = [
        ("V1.10__c.sql", "SELECT 1;"),
        ("R__b_view.sql", "SELECT 1;"),
        ("V1.9__b.sql", "SELECT 1;"),
        ("R__a_view.sql", "SELECT 1;"),
        ("V1__a.sql", "SELECT 1;"),
        ("U1.10__c.sql", "SELECT 1;"),
        ("README.md", "hi"),
    ]
    s = mg.MigrationSet(files)
    assert [m.script for m in s.versioned] == ["V1__a.sql", "V1.9__b.sql", "V1.10__c.sql"]
    assert [m.description for m in s.repeatable] == ["a view", "b view"]
    assert list(s.undo) == [mg.Version("1.10")]
    assert s.ignored == ["README.md"]
    with pytest.raises(mg.MigrationError, match=r"V1_0__a\.sql"):
        mg.MigrationSet([("V1__a.sql", ""), ("V1_0__a.sql", "")])


# -- checksums -----------------------------------------------------------------------------
def test_checksum_public_vector():
    # flyway/flyway issue #2474 (Flyway 6.0.0 command line) prints "Resolved locally:
    # -1039259818" for V1_1__add_column_location_history_valid_until.sql whose whole
    # content is the one line below.
    text = "alter table location_history add column valid_until timestamp with time zone;"
    assert mg.checksum(text) == -1039259818
    assert mg.checksum(text + "\n") == -1039259818


def test_checksum_of_empty_file_is_zero():
    assert mg.checksum("") == 0


@pytest.mark.parametrize(
    "lines",
    [
        ["CREATE TABLE t (id int);", "INSERT INTO t VALUES (1);"],
        ["-- comment", "", "SELECT 'é€ü';", "  indented  "],
        ["a" * 5000, "b"],
    ],
)
def test_checksum_ignores_line_terminators_and_bom(lines):
    expected = reference_checksum(lines)
    for sep in ("\n", "\r\n", "\r"):
        text = sep.join(lines)
        assert mg.checksum(text) == expected
        assert mg.checksum(text + sep) == expected
        assert mg.checksum("\ufeff" + text) == expected
    # A BOM that is not at the very start is content.
    assert mg.checksum(lines[0] + "\n\ufeff" + "\n".join(lines[1:])) != expected


def test_checksum_is_signed_and_content_sensitive():
    values = [mg.checksum("SELECT %d;" % i) for i in range(200)]
    assert any(v < 0 for v in values) and any(v > 0 for v in values)
    assert len(set(values)) == 200
    assert mg.checksum("SELECT 1;") != mg.checksum("SELECT 1; ")


def test_checksum_is_over_raw_text_before_placeholders():
    mig = mg.Migration("V1__p.sql", "CREATE SCHEMA ${app};\n")
    assert mig.checksum == reference_checksum(["CREATE SCHEMA ${app};"])


# -- placeholders ------------------------------------------------------------------------
def test_placeholders_replaced():
    out = mg.substitute(
        "CREATE ROLE ${owner};\r\nGRANT ${Perm} TO ${owner};", {"owner": "app", "perm": "x"}, "V1__a.sql"
    )
    assert out == "CREATE ROLE app;\r\nGRANT x TO app;"


def test_unknown_placeholder_names_file_and_line():
    with pytest.raises(mg.MigrationError) as err:
        mg.substitute("SELECT 1;\n\nSELECT ${nope};", {"owner": "app"}, "V2__b.sql")
    assert "V2__b.sql line 3" in str(err.value)
    assert "${nope}" in str(err.value)
    assert err.value.line == 3


def test_builtin_placeholders():
    mig = mg.Migration("V1__a.sql", "SELECT '${flyway:filename}', '${flyway:defaultSchema}';")
    statements, tx = mg.prepare(mig, {}, {"flyway:defaultSchema": "app"})
    assert tx is True
    assert statements[0].sql == "SELECT 'V1__a.sql', 'app'"


# -- statements --------------------------------------------------------------------------
def test_statements_and_lines():
    text = (
        "-- header\nCREATE TABLE t (id int);\n\n/* c */ INSERT INTO t\nVALUES (1);\n"
        "DO $$ BEGIN PERFORM 1; END $$;\n"
    )
    stmts = mg.split_statements(text, "V1__a.sql")
    assert [s.line for s in stmts] == [2, 4, 6]
    assert stmts[1].sql.startswith("INSERT INTO t")
    assert all(s.transactional for s in stmts)


@pytest.mark.parametrize(
    "sql, kind",
    [
        ("CREATE INDEX CONCURRENTLY i ON t (a)", "CREATE INDEX CONCURRENTLY"),
        ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)", "CREATE INDEX CONCURRENTLY"),
        ("DROP INDEX CONCURRENTLY i", "DROP INDEX CONCURRENTLY"),
        ("REINDEX INDEX CONCURRENTLY i", "REINDEX CONCURRENTLY"),
        ("REINDEX TABLE CONCURRENTLY t", "REINDEX CONCURRENTLY"),
        ("VACUUM (ANALYZE) t", "VACUUM"),
        ("ALTER SYSTEM SET work_mem = '8MB'", "ALTER SYSTEM"),
        ("CREATE DATABASE d", "CREATE DATABASE"),
        ("DROP DATABASE d", "DROP DATABASE"),
        ("CREATE TABLESPACE ts LOCATION '/srv/ts'", "CREATE TABLESPACE"),
        ("DROP TABLESPACE ts", "DROP TABLESPACE"),
    ],
)
def test_non_transactional_detection(sql, kind):
    (stmt,) = mg.split_statements(sql + ";", "V1__a.sql")
    assert stmt.transactional is False
    assert stmt.kind == kind


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX i ON t (a)",
        "DROP INDEX i",
        "REINDEX INDEX i",
        "ANALYZE t",
        "ALTER TYPE mood ADD VALUE 'meh'",
        "CREATE TABLE t (id int)",
    ],
)
def test_transactional_statements(sql):
    (stmt,) = mg.split_statements(sql + ";", "V1__a.sql")
    assert stmt.transactional is True


def test_all_non_transactional_file_runs_outside():
    stmts = mg.split_statements(
        "CREATE INDEX CONCURRENTLY a ON t (x);\nCREATE INDEX CONCURRENTLY b ON t (y);", "V2__i.sql"
    )
    assert mg.execution_mode(stmts, "V2__i.sql") is False


def test_mixing_is_refused_naming_file_and_lines():
    text = "CREATE TABLE t (x int);\n\nCREATE INDEX CONCURRENTLY a ON t (x);\n"
    stmts = mg.split_statements(text, "V3__mix.sql")
    with pytest.raises(mg.MigrationError) as err:
        mg.execution_mode(stmts, "V3__mix.sql")
    msg = str(err.value)
    assert "V3__mix.sql" in msg and "line 3" in msg and "lines 1" in msg


def test_transaction_control_refused():
    with pytest.raises(mg.MigrationError, match=r"V1__a\.sql line 2: transaction control \(COMMIT\)"):
        mg.split_statements("SELECT 1;\nCOMMIT;", "V1__a.sql")


def test_syntax_error_names_file_and_line():
    with pytest.raises(mg.MigrationError, match=r"V9__bad\.sql line 3: SQL syntax error"):
        mg.split_statements("SELECT 1;\n\nSELEC 2;", "V9__bad.sql")


def test_advisory_key_is_stable_and_distinct():
    a = mg.advisory_key("public", "flyway_schema_history")
    assert a == mg.advisory_key("public", "flyway_schema_history")
    assert a != mg.advisory_key("app", "flyway_schema_history")
    assert -(2**63) <= a < 2**63


def test_history_state_follows_undo_and_failures():
    def row(rank, version, typ, success=True, desc="d", checksum=1):
        return dict(
            installed_rank=rank,
            version=version,
            description=desc,
            type=typ,
            script="s",
            checksum=checksum,
            success=success,
        )

    state = mg.HistoryState(
        [
            row(1, "1", "BASELINE"),
            row(2, "2", "SQL"),
            row(3, "3", "SQL"),
            row(4, "3", "UNDO_SQL"),
            row(5, None, "SQL", desc="views", checksum=7),
            row(6, "4", "SQL", success=False),
        ]
    )
    assert state.current == mg.Version("2")
    assert state.baseline_version == mg.Version("1")
    assert state.repeatable["views"]["checksum"] == 7
    assert [r["installed_rank"] for r in state.failed] == [6]


def test_byte_order_mark_is_not_sql():
    mig = mg.Migration("V1__bom.sql", "\ufeffCREATE TABLE t (id int);\r\n")
    statements, transactional = mg.prepare(mig, {})
    assert statements[0].sql == "CREATE TABLE t (id int)" and transactional
    assert mig.checksum == mg.checksum("CREATE TABLE t (id int);")


# -- secrets and identifiers -------------------------------------------------------------
@pytest.mark.parametrize(
    "name, secret",
    [
        ("app_password", True),
        ("DB_PASSWD", True),
        ("client_secret", True),
        ("api_token", True),
        ("aws_credentials", True),
        ("api_key", True),
        ("app_role", False),
        ("keyspace", False),
        ("schema", False),
    ],
)
def test_secret_placeholder_names(name, secret):
    assert mg.is_secret_name(name) is secret


def test_listed_placeholders_are_secret_and_masked_everywhere():
    placeholders = {"app_role": "shop_app", "vault_ref": "v-123", "app_password": "pw-9", "empty_token": ""}
    secrets = mg.secret_values(placeholders, ["VAULT_REF"])
    assert secrets == ["v-123", "pw-9"]
    value = {"msg": "GRANT ... 'pw-9' v-123 shop_app", "list": ["pw-9", 3], "n": None}
    assert mg.mask(value, secrets) == {
        "msg": "GRANT ... '********' ******** shop_app",
        "list": ["********", 3],
        "n": None,
    }
    err = mg.MigrationError("failed: pw-9", statement="SELECT 'pw-9'")
    mg.mask_error(err, secrets)
    assert str(err) == "failed: ********" and err.statement == "SELECT '********'"


def test_identifiers_postgresql_would_truncate_are_refused():
    mg.check_identifier("history table", "t" * 63)
    mg.check_identifier("history table", "t" * 57, mg.HISTORY_SUFFIXES)
    with pytest.raises(mg.MigrationError, match="64 bytes"):
        mg.check_identifier("history table", "t" * 64)
    with pytest.raises(mg.MigrationError, match="at most 57 bytes"):
        mg.check_identifier("history table", "t" * 58, mg.HISTORY_SUFFIXES)
    with pytest.raises(mg.MigrationError, match="64 bytes"):
        mg.check_identifier("schema", "ü" * 32)


def test_mask_leaves_words_that_contain_a_short_secret():
    masked = mg.mask({"msg": ["ALTER ROLE about PASSWORD 'ab'; -- ab"]}, ["ab"])
    assert masked == {"msg": ["ALTER ROLE about PASSWORD '%s'; -- %s" % (mg.MASK, mg.MASK)]}
