"""Small-input hardening through the modules: relative paths and control characters are refused
with a clear message before anything is read or written."""

import os


def test_relative_paths_and_a_label_with_a_newline_are_refused(pg, run_playbook, workdir):
    repo = os.path.join(workdir, "repo")
    os.makedirs(repo)
    tasks = [
        ("basebackup", {"repository": "backups/main"}, "repository='backups/main' must be an absolute path"),
        (
            "basebackup",
            {"repository": repo, "staging_dir": "stage"},
            "staging_dir='stage' must be an absolute",
        ),
        ("backup_info", {"repository": "backups/main"}, "repository='backups/main' must be an absolute path"),
        (
            "pitr_restore",
            {"repository": repo, "data_dir": "restore/data", "port": 1, "target": "latest"},
            "data_dir='restore/data' must be an absolute path",
        ),
        (
            "basebackup",
            {"repository": repo, "label": "nightly\nSTART WAL LOCATION: 0/0"},
            "label='nightly\\nSTART WAL LOCATION: 0/0' holds a control character",
        ),
        ("dump", {"path": "shop.dump"}, "path='shop.dump' must be an absolute path"),
    ]
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {
                "name": "case %d" % i,
                "dbarch.postgresql.%s" % module: dict(pg.conn_params, **args),
                "ignore_errors": True,
            }
            for i, (module, args, _msg) in enumerate(tasks)
        ],
    }
    run = run_playbook(play)
    for i, (module, _args, msg) in enumerate(tasks):
        result = run.task("case %d" % i)["result"]
        assert result.get("failed") and msg in result["msg"], (module, result.get("msg"))
    assert os.listdir(repo) == []
    assert pg.password not in run.stdout
