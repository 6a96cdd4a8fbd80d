"""server_info against real clusters of every supported major version."""


def test_facts_on_a_primary(pg, run_playbook):
    res = run_playbook(
        [
            dict(
                hosts="localhost",
                gather_facts=False,
                tasks=[
                    dict(
                        name="facts",
                        **{"dbarch.postgresql.server_info": dict(pg.conn_params, settings=["jit"])},
                    ),
                ],
            )
        ]
    )
    assert res.rc == 0, res.stdout
    r = res.task("facts")
    assert r["status"] == "ok" and r["result"]["changed"] is False
    facts = r["result"]
    assert facts["version"]["major"] == pg.major
    assert facts["role"] == "primary" and facts["in_recovery"] is False
    assert "pg_stat_statements" in facts["extensions"]["preloaded"]
    assert "pg_stat_statements" in facts["extensions"]["available"]
    assert "jit" in facts["settings"] and "shared_buffers" in facts["settings"]
    assert facts["privileges"]["superuser"] is True
    assert any(d["name"] == "postgres" and d["size_bytes"] > 0 for d in facts["databases"])
    assert facts["queries"], "the module returns the SQL it ran"
    assert pg.password not in res.stdout


def test_pending_restart_is_reported(pg, run_playbook):
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute("ALTER SYSTEM SET max_connections = 123")
        cur.execute("SELECT pg_reload_conf()")
    try:
        res = run_playbook(
            [
                dict(
                    hosts="localhost",
                    gather_facts=False,
                    tasks=[
                        dict(name="facts", **{"dbarch.postgresql.server_info": pg.conn_params}),
                    ],
                )
            ]
        )
        assert "max_connections" in res.task("facts")["result"]["pending_restart"]
    finally:
        with pg.connect() as conn, conn.cursor() as cur:
            cur.execute("ALTER SYSTEM RESET max_connections")
            cur.execute("SELECT pg_reload_conf()")


def test_least_privilege_role_reports_skipped_checks(pg, run_playbook):
    with pg.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS dbarch_plain")
        cur.execute("CREATE ROLE dbarch_plain LOGIN PASSWORD 'plain-pw-1'")
    params = dict(pg.conn_params, login_user="dbarch_plain", login_password="plain-pw-1")
    res = run_playbook(
        [
            dict(
                hosts="localhost",
                gather_facts=False,
                tasks=[
                    dict(name="facts", **{"dbarch.postgresql.server_info": params}),
                ],
            )
        ]
    )
    facts = res.task("facts")["result"]
    assert res.rc == 0, res.stdout
    assert facts["privileges"] == dict(superuser=False, read_all_settings=False, read_all_stats=False)
    assert any(s["check"] == "replication details" for s in facts["checks_skipped"])


def test_module_defaults_group_sets_connection_for_every_module(pg, run_playbook, tmp_path):
    play = dict(
        hosts="localhost",
        gather_facts=False,
        module_defaults={"group/dbarch.postgresql.all": pg.conn_params},
        tasks=[
            dict(name="facts", **{"dbarch.postgresql.server_info": {}}),
            dict(name="catalog", **{"dbarch.postgresql.catalog_info": {}}),
            dict(
                name="report",
                **{"dbarch.postgresql.report": dict(name="s", dest=str(tmp_path), summary={"k": "v"})},
            ),
        ],
    )
    res = run_playbook([play])
    assert res.rc == 0, res.stdout
    assert res.task("facts")["result"]["version"]["major"] == pg.major
    assert res.task("catalog")["result"]["query_count"] > 0
    assert (tmp_path / "localhost" / "s.md").exists()
