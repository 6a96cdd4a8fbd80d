"""redact: password literals out of statement text (no database)."""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import redact


def test_password_literals_of_roles_mappings_and_connection_strings_are_masked():
    cases = {
        "ALTER ROLE app PASSWORD 'se''cret'": "ALTER ROLE app PASSWORD '********'",
        "CREATE USER u WITH ENCRYPTED PASSWORD 'x y' LOGIN": (
            "CREATE USER u WITH ENCRYPTED PASSWORD '********' LOGIN"
        ),
        "alter role a password $$p$$": "alter role a password '********'",
        "alter role a password $q$p$q$ valid until 'infinity'": (
            "alter role a password '********' valid until 'infinity'"
        ),
        "ALTER ROLE a PASSWORD E'x\\'y'": "ALTER ROLE a PASSWORD '********'",
        "create user mapping for u server s options (user 'u', password 'pw')": (
            "create user mapping for u server s options (user 'u', password '********')"
        ),
        "ALTER SERVER s OPTIONS (SET password 'z')": "ALTER SERVER s OPTIONS (SET password '********')",
        "SELECT * FROM dblink('host=h password=s3cret dbname=d', 'select 1') AS t(a int)": (
            "SELECT * FROM dblink('host=h password=******** dbname=d', 'select 1') AS t(a int)"
        ),
        "SELECT 'host=h password=''a b'' port=1'": "SELECT 'host=h password=******** port=1'",
        "SELECT dblink_connect('postgresql://bob:pa55@h/db')": "SELECT dblink_connect('postgresql://bob:********@h/db')",
    }
    for text, want in cases.items():
        assert redact.statement(text) == want, text
    assert "s3cret" not in redact.statement("SELECT 'password = s3cret'")


def test_what_holds_no_password_is_left_alone():
    for text in (
        "ALTER ROLE a PASSWORD $1",
        "ALTER ROLE a PASSWORD NULL",
        "SELECT password_required, 1 FROM t WHERE id = $1",
        "SELECT 'postgresql://h/db'",
        None,
        "",
    ):
        assert redact.statement(text) == text
    doc = {"Plan": {"Filter": "(note = 'password=x'::text)", "Plans": [{"Output": ["a", 1]}]}}
    assert redact.walk(doc) == {
        "Plan": {"Filter": "(note = 'password=********'::text)", "Plans": [{"Output": ["a", 1]}]}
    }
