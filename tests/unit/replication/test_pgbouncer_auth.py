"""The auth file: one SCRAM secret, kept while the password matches, 0600 (no database)."""

import os
import pwd
import stat

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.localcluster import scram_verifier
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer_auth as auth
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import pgbouncer_config as cfg

ME = pwd.getpwuid(os.geteuid()).pw_name


def test_secret_matches_only_its_password():
    secret = scram_verifier("correct horse")
    assert auth.secret_matches(secret, "correct horse")
    assert not auth.secret_matches(secret, "correct horse ")
    assert not auth.secret_matches("md5abcdef", "correct horse")
    assert not auth.secret_matches("correct horse", "correct horse")  # a plaintext entry never "matches"


def test_userlist_written_once_then_left_alone(tmp_path):
    path = str(tmp_path / "userlist.txt")
    changed, text, facts = auth.plan_userlist(path, "dbarch_pgbouncer", "s3cret pass", ME)
    assert changed and facts["existed"] is False
    assert "s3cret pass" not in text
    [(name, secret)] = cfg.parse_userlist(text)
    assert name == "dbarch_pgbouncer" and secret.startswith("SCRAM-SHA-256$4096:")
    auth.write_userlist(path, text, ME)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    changed, text, facts = auth.plan_userlist(path, "dbarch_pgbouncer", "s3cret pass", ME)
    assert (changed, text, facts["password_changed"]) == (False, None, False)
    # a new password: a new secret with a fresh salt
    changed, text, facts = auth.plan_userlist(path, "dbarch_pgbouncer", "another", ME)
    assert changed and facts["password_changed"]
    assert cfg.parse_userlist(text)[0][1] != secret


def test_plaintext_entries_are_replaced_and_masked_in_diffs(tmp_path):
    path = tmp_path / "userlist.txt"
    path.write_text('"dbarch_pgbouncer" "s3cret"\n"app" "apppassword"\n')
    os.chmod(path, 0o644)
    changed, text, facts = auth.plan_userlist(str(path), "dbarch_pgbouncer", "s3cret", ME)
    assert changed and facts["entries_before"] == ["dbarch_pgbouncer", "app"]
    assert [n for n, _s in cfg.parse_userlist(text)] == ["dbarch_pgbouncer"]
    assert "apppassword" not in text and '"s3cret"' not in text
    masked = auth.masked_userlist(path.read_text())
    assert "apppassword" not in masked and "s3cret" not in masked


def test_mode_alone_is_fixed(tmp_path):
    path = str(tmp_path / "userlist.txt")
    _c, text, _f = auth.plan_userlist(path, "u", "pw", ME)
    auth.write_userlist(path, text, ME)
    os.chmod(path, 0o644)
    changed, text, _f = auth.plan_userlist(path, "u", "pw", ME)
    assert changed and text is None
    auth.write_userlist(path, text, ME)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_names_and_password_checked():
    with pytest.raises(auth.PgBouncerAuthError, match="empty"):
        auth.plan_userlist("/nonexistent/userlist.txt", "u", "", ME)
    with pytest.raises(auth.PgBouncerAuthError, match="does not exist"):
        auth.plan_userlist("/nonexistent/userlist.txt", "u", "pw", "no_such_os_user_dbarch")
    with pytest.raises(auth.PgBouncerAuthError, match="lower-case"):
        auth.auth_query("Bad-Schema")
    assert auth.auth_query("pgbouncer") == "SELECT uname, phash FROM pgbouncer.user_lookup($1)"
