"""dbarch.postgresql.setting and archive_check on a real cluster: compare, ALTER SYSTEM, reload, restarts."""

import pytest

import harness

SETTINGS = ("work_mem", "log_checkpoints", "max_wal_senders", "search_path", "statement_timeout")


play = harness.play


def task(pg, name, settings, module="setting", **more):
    options = dict(pg.conn_params, **more)
    if module == "setting":
        options["settings"] = settings
    return harness.task(module, name, **options)


def auto_conf(pg):
    return dict(
        pg.query("SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%%postgresql.auto.conf'")
    )


@pytest.fixture
def clean(pg):
    yield
    with pg.connect() as conn, conn.cursor() as cur:
        for name in SETTINGS:
            cur.execute("ALTER SYSTEM RESET %s" % name)
        cur.execute("SELECT pg_reload_conf()")


@pytest.mark.all_versions
def test_set_compare_with_units_and_reset(pg, clean, run_playbook):
    first = {"work_mem": "64MB", "log_checkpoints": "yes", "search_path": ["app", "public"]}
    check = run_playbook(play(task(pg, "Set", first)), check=True, diff=True).assert_ok()
    res = check.task("Set")["result"]
    # log_checkpoints is on by default from PostgreSQL 15: "yes" is then no change.
    default_on = pg.query("SELECT boot_val FROM pg_settings WHERE name = 'log_checkpoints'")[0][0] == "on"
    expected = ["search_path", "work_mem"] if default_on else ["log_checkpoints", "search_path", "work_mem"]
    assert res["changed"] and sorted(res["changed_settings"]) == expected
    assert "work_mem" not in auto_conf(pg), "check mode ran ALTER SYSTEM"
    assert "work_mem = '64MB'" in res["diff"]["after"]

    run = run_playbook(play(task(pg, "Set", first))).assert_ok()
    res = run.task("Set")["result"]
    assert "work_mem" in res["changed_settings"] and res["pending_restart"] == []
    assert auto_conf(pg)["work_mem"] == "64MB"
    assert pg.query("SELECT current_setting('work_mem')")[0][0] == "64MB"
    assert pg.query("SELECT current_setting('search_path')")[0][0] == "app, public"

    # The same values written another way are the same setting: nothing changes.
    same = {"work_mem": "65536kB", "log_checkpoints": True, "search_path": "app, public"}
    again = run_playbook(play(task(pg, "Set", same))).assert_ok().task("Set")["result"]
    assert again["changed"] is False and again["changed_settings"] == [], again
    assert run_playbook(play(task(pg, "Set", {"work_mem": 65536}))).task("Set")["result"]["changed"] is False

    # null resets: removed from postgresql.auto.conf, then nothing left to reset.
    reset = run_playbook(play(task(pg, "Set", {"work_mem": None}))).assert_ok().task("Set")["result"]
    assert reset["changed_settings"] == ["work_mem"] and "work_mem" not in auto_conf(pg)
    assert run_playbook(play(task(pg, "Set", {"work_mem": None}))).task("Set")["result"]["changed"] is False


def test_a_postmaster_setting_is_reported_as_pending_restart(pg, clean, run_playbook):
    current = int(pg.query("SELECT setting FROM pg_settings WHERE name = 'max_wal_senders'")[0][0])
    wanted = {"max_wal_senders": current + 3}
    check = run_playbook(play(task(pg, "Set", wanted)), check=True).assert_ok().task("Set")["result"]
    assert check["pending_restart"] == ["max_wal_senders"] and check["changed"]
    res = run_playbook(play(task(pg, "Set", wanted))).assert_ok().task("Set")["result"]
    assert res["pending_restart"] == ["max_wal_senders"] and res["restart_required"] is True
    # Not restarted by the module: the old value is still in effect, and a second run changes
    # nothing but still says a restart is needed.
    assert int(pg.query("SELECT setting FROM pg_settings WHERE name = 'max_wal_senders'")[0][0]) == current
    again = run_playbook(play(task(pg, "Set", wanted))).assert_ok().task("Set")["result"]
    assert again["changed"] is False and again["pending_restart"] == ["max_wal_senders"]


def test_unknown_names_and_invalid_values_fail_clearly(pg, clean, run_playbook):
    res = run_playbook(play(task(pg, "Set", {"no_such_setting": "1"})))
    assert res.rc != 0
    assert "unknown setting(s): no_such_setting" in res.task("Set")["result"]["msg"]
    res = run_playbook(play(task(pg, "Set", {"work_mem": "lots"})))
    assert "work_mem = 'lots'" in res.task("Set")["result"]["msg"]
    res = run_playbook(play(task(pg, "Set", {"work_mem": "1parsec"})), check=True)
    assert "unit 'parsec' is not valid here" in res.task("Set")["result"]["msg"]
    # A value only the server can judge: ALTER SYSTEM's own error is passed on.
    res = run_playbook(play(task(pg, "Set", {"statement_timeout": "-5"})))
    msg = res.task("Set")["result"]["msg"]
    assert res.rc != 0 and "statement_timeout" in msg
    res = run_playbook(play(task(pg, "Set", {"log_checkpoints": "maybe"})))
    assert "is not a boolean" in res.task("Set")["result"]["msg"]
    assert "work_mem" not in auto_conf(pg)


def test_archive_check_refuses_a_server_without_archiving(pg, run_playbook):
    res = run_playbook(play(task(pg, "Check", None, module="archive_check")))
    if pg.query("SELECT current_setting('archive_mode')")[0][0] != "off":
        pytest.skip("the shared cluster archives")
    assert res.rc != 0 and "archive_mode is off" in res.task("Check")["result"]["msg"]


@pytest.mark.parametrize(
    "settings, bad",
    [
        # the second is refused by SET LOCAL (a session may set it): found before anything is written
        ({"check_function_bodies": "off", "client_encoding": "no-such-encoding"}, "client_encoding"),
        # the second only ALTER SYSTEM can judge (sighup): the first is put back, nothing stays written
        ({"log_min_duration_statement": "250ms", "log_timezone": "Mars/Olympus_Mons"}, "log_timezone"),
    ],
    ids=["set-local", "alter-system"],
)
def test_one_invalid_setting_writes_nothing_and_is_the_only_one_named(pg, run_playbook, settings, bad):
    before = auto_conf(pg)
    try:
        res = run_playbook(play(task(pg, "Set", settings)))
        msg = res.task("Set")["result"]["msg"]
        assert res.rc != 0 and bad in msg and "nothing was written" in msg, msg
        good = [n for n in settings if n != bad]
        assert not [n for n in good if n in msg], msg
        assert auto_conf(pg) == before
    finally:
        with pg.connect() as conn, conn.cursor() as cur:
            for name in settings:
                if name not in before:
                    cur.execute("ALTER SYSTEM RESET %s" % name)
            cur.execute("SELECT pg_reload_conf()")


def test_all_invalid_settings_are_named_at_once_and_names_are_case_insensitive(pg, clean, run_playbook):
    res = run_playbook(
        play(task(pg, "Set", {"work_mem": "lots", "statement_timeout": "-5", "Work_Mem2": "1"}))
    )
    msg = res.task("Set")["result"]["msg"]
    assert "work_mem = 'lots'" in msg and "statement_timeout = '-5'" in msg and "Work_Mem2" in msg, msg
    assert "work_mem" not in auto_conf(pg)
    # TimeZone is the server's spelling; timezone is the same setting
    res = run_playbook(play(task(pg, "Set", {"timezone": "UTC"})), check=True).assert_ok()
    assert list(res.task("Set")["result"]["settings"]) == ["TimeZone"]
