# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sandbox role and inventory beyond what molecule/sandbox checks: ports chosen around
a busy port stay put, the inventory exposes them, and tear-down refuses what it did not
create. Runs in its own sandbox folder (DBARCH_SANDBOX_DIR), never the repository's."""

import json
import os
import socket

import pytest

import harness
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import localcluster as lc

SANDBOX_PLAYBOOK = harness.REPO_ROOT / "playbooks" / "sandbox.yml"
SANDBOX_INVENTORY = harness.REPO_ROOT / "inventories" / "sandbox" / "hosts.yml"

INVENTORY_PLAY = [
    {
        "name": "Read the sandbox inventory",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Connection variables",
                "ansible.builtin.debug": {
                    "msg": "{{ [dbarch_login_host, dbarch_login_port, dbarch_login_user, dbarch_login_db] }}"
                },
            },
            {
                "name": "Password is known",
                "ansible.builtin.assert": {"that": ["dbarch_login_password | length == 32"], "quiet": True},
            },
        ],
    }
]


@pytest.fixture(scope="module")
def sandbox():
    """A sandbox folder of its own for the file, torn down (clusters included) afterwards.

    Shared: the tear-down test brings the sandbox up first, which is quick (nothing to change)
    when the ports test left one running."""
    workdir = harness.work_folder()
    folder = os.path.join(workdir, "sandbox")
    yield folder, {"DBARCH_SANDBOX_DIR": folder}
    harness.run_playbook(
        SANDBOX_PLAYBOOK, extra_vars={"sandbox_state": "absent"}, env={"DBARCH_SANDBOX_DIR": folder}
    )
    harness.remove_folder(workdir)


def test_ports_around_a_busy_port_are_kept_and_published(sandbox, run_playbook):
    folder, env = sandbox
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        ports = {
            "primary": taken,
            "replica": lc.free_port(),
            "scratch": lc.free_port(),
            "replica2": lc.free_port(),
        }
        first = run_playbook(SANDBOX_PLAYBOOK, extra_vars={"sandbox_ports": ports}, env=env).assert_ok()
        assert first.changed_count() > 0
        primary = first.task("Build the primary")["result"]
        assert primary["port"] != taken and "port %d is in use" % taken in primary["port_note"]
        with open(os.path.join(folder, "state.json")) as handle:
            state = json.load(handle)
        assert state["clusters"]["primary"]["port"] == primary["port"]
        assert oct(os.stat(os.path.join(folder, "credentials.yml")).st_mode & 0o777) == "0o600"

        second = run_playbook(SANDBOX_PLAYBOOK, extra_vars={"sandbox_ports": ports}, env=env).assert_ok()
        assert second.changed_count() == 0, [r["task"] for r in second.results if r["status"] == "changed"]
        assert second.task("Build the primary")["result"]["port"] == primary["port"]

    seen = run_playbook(INVENTORY_PLAY, inventory=SANDBOX_INVENTORY, env=env).assert_ok()
    expected = {
        "pg-primary": primary["port"],
        "pg-replica": state["clusters"]["replica"]["port"],
        "pg-replica2": state["clusters"]["replica2"]["port"],
        "pg-scratch": state["clusters"]["scratch"]["port"],
    }
    for host, port in expected.items():
        assert seen.task("Connection variables", host=host)["result"]["msg"] == [
            "127.0.0.1",
            port,
            "postgres",
            "postgres",
        ]


def test_teardown_refuses_a_cluster_folder_it_did_not_create(sandbox, run_playbook):
    folder, env = sandbox
    run_playbook(SANDBOX_PLAYBOOK, env=env).assert_ok()
    with open(os.path.join(folder, "state.json")) as handle:
        scratch = json.load(handle)["clusters"]["scratch"]
    marker = os.path.join(scratch["cluster_dir"], lc.MARKER_NAME)
    os.rename(marker, marker + ".away")

    refused = run_playbook(SANDBOX_PLAYBOOK, extra_vars={"sandbox_state": "absent"}, env=env)
    assert refused.rc != 0
    failure = refused.failed()[0]
    assert (
        failure["task"] == "Remove the replicas, scratch and primary clusters (only folders dbarch created)"
    )
    assert "Refusing to delete %s" % scratch["data_dir"] in json.dumps(failure["result"])
    assert os.path.isfile(os.path.join(scratch["data_dir"], "PG_VERSION"))

    os.rename(marker + ".away", marker)
    done = run_playbook(SANDBOX_PLAYBOOK, extra_vars={"sandbox_state": "absent"}, env=env).assert_ok()
    assert done.changed_count() > 0
    assert not os.path.exists(scratch["cluster_dir"])
    assert sorted(os.listdir(folder)) == ["credentials.yml"]
    again = run_playbook(SANDBOX_PLAYBOOK, extra_vars={"sandbox_state": "absent"}, env=env).assert_ok()
    assert again.changed_count() == 0
