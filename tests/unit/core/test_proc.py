# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one runner and the one masker (proc.py)."""

import os
import sys

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import proc

M = proc.MASK


def test_short_password_inside_an_unrelated_word_stays():
    text = "about the absent table; abstract"
    assert proc.mask(text, ["ab"]) == text


def test_the_token_itself_is_masked():
    assert proc.mask("login as bob with ab then stop", ["ab"]) == "login as bob with %s then stop" % M


def test_masked_in_urls_key_value_and_quotes():
    secret = "ab"
    assert proc.mask("postgresql://alice:ab@db:5432/app", [secret]) == "postgresql://alice:%s@db:5432/app" % M
    assert proc.mask("user=alice password=ab host=db", [secret]) == "user=alice password=%s host=db" % M
    assert proc.mask("repo1-s3-key=ab", [secret]) == "repo1-s3-key=%s" % M
    assert proc.mask("PASSWORD 'ab' given", [secret]) == "PASSWORD '%s' given" % M
    assert proc.mask('set "ab" now', [secret]) == 'set "%s" now' % M


def test_url_encoded_secret_and_longest_first():
    assert proc.mask("s3://k:p%40ss@host/x", ["p@ss"]) == "s3://k:%s@host/x" % M
    assert proc.mask("secret abc and ab", ["ab", "abc"]) == "secret %s and %s" % (M, M)


def test_password_keys_and_url_passwords_masked_without_a_known_secret():
    assert proc.mask("host=db password=hunter2 dbname=x") == "host=db password=%s dbname=x" % M
    assert proc.mask("password='two words'") == "password='%s'" % M
    assert proc.mask("see postgres://u:zzz@h/db") == "see postgres://u:%s@h/db" % M
    # Not a key=value of a secret: left alone.
    assert proc.mask("passwordless login") == "passwordless login"


def test_run_masks_output_and_raises_one_error_with_the_tail_of_stderr():
    code = (
        "import sys; print('token', sys.argv[1], 'out'); sys.stderr.write('failed with ' + sys.argv[1]); "
        "sys.exit(3)"
    )
    res = proc.run([sys.executable, "-c", code, "s3cr3t"], check=False, secrets=["s3cr3t"])
    assert res.returncode == 3 and "s3cr3t" not in res.stdout + res.stderr and M in res.stderr
    with pytest.raises(proc.ProcError) as err:
        proc.run([sys.executable, "-c", code, "s3cr3t"], secrets=["s3cr3t"], what="demo")
    assert err.value.returncode == 3
    assert "demo failed (exit 3)" in str(err.value) and "s3cr3t" not in str(err.value)
    assert "failed with %s" % M in err.value.stderr_tail


def test_run_timeout_and_missing_binary_raise_proc_error():
    with pytest.raises(proc.ProcError) as err:
        proc.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3, what="sleeper")
    assert err.value.timed_out and "sleeper timed out" in str(err.value)
    with pytest.raises(proc.ProcError, match="could not run"):
        proc.run(["/nonexistent/dbarch-binary"])


def test_clean_env_drops_pg_variables(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "x")
    monkeypatch.setenv("PGBACKREST_REPO1_S3_KEY", "k")
    env = proc.clean_env({"A": "1"}, keep=("PGBACKREST_REPO1_S3_KEY",))
    assert "PGPASSWORD" not in env and env["PGBACKREST_REPO1_S3_KEY"] == "k" and env["A"] == "1"
    assert env["LC_ALL"] == "C.UTF-8" and env.get("PATH") == os.environ.get("PATH")


def test_run_can_keep_stdout_as_written_while_stderr_stays_masked():
    code = "import sys; print('password: text'); sys.stderr.write('password=zzz')"
    res = proc.run([sys.executable, "-c", code], check=False, mask_stdout=False)
    assert res.stdout == "password: text\n" and res.stderr == "password=%s" % M


def test_stream_hands_every_line_over_and_keeps_stderr_masked():
    seen = []
    script = "for i in 1 2 3; do echo line$i; done; echo 'password=hunter2 failed' >&2; exit 3"
    res = proc.stream(["/bin/sh", "-c", script], seen.append, secrets=["hunter2"])
    assert seen == ["line1", "line2", "line3"]
    assert res.returncode == 3
    assert res.stdout == ""
    assert "hunter2" not in res.stderr and "failed" in res.stderr


def test_stream_timeout_kills_and_raises():
    with pytest.raises(proc.ProcError) as info:
        proc.stream(["/bin/sh", "-c", "echo one; sleep 30"], lambda _line: None, timeout=0.5)
    assert info.value.timed_out


def test_stream_error_in_the_callback_stops_the_command():
    def boom(_line):
        raise ValueError("bad line")

    with pytest.raises(ValueError, match="bad line"):
        proc.stream(["/bin/sh", "-c", "while true; do echo x; done"], boom)


def test_stream_missing_program():
    with pytest.raises(proc.ProcError, match="could not run"):
        proc.stream(["/nonexistent/tool"], lambda _line: None)
