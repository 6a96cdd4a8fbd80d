# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: every task result as one JSON line, for tests/integration/harness.py."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = """
name: dbarch_results
type: aggregate
short_description: Write task results as JSON lines for the integration tests
description:
  - Appends one JSON object per task result (play, task, full_name, host, status,
    result; task is the bare name, full_name has the role prefix) and one for the play
    recap to the file named by the environment variable DBARCH_TEST_RESULTS.
  - Leaves the stdout callback alone. Results of no_log tasks arrive censored.
requirements:
  - enabled through ANSIBLE_CALLBACK_PLUGINS and ANSIBLE_CALLBACKS_ENABLED
"""

import json
import os

from collections.abc import Mapping, Set

from ansible.plugins.callback import CallbackBase


def _plain(value):
    """JSON fallback for values the encoder does not know (mappings, sets, objects)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Set):
        return sorted(value, key=str)
    return str(value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dbarch_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._path = os.environ.get("DBARCH_TEST_RESULTS")
        self._play = None

    def _write(self, record):
        if not self._path:
            return
        with open(self._path, "a") as out:
            out.write(json.dumps(record, default=_plain) + "\n")

    def _task_record(self, result, status):
        data = dict(result.result)
        if status == "ok" and data.get("changed"):
            status = "changed"
        # As in a registered variable (ansible-core 2.19 leaves it out of callback results).
        data["failed"] = status in ("failed", "unreachable")
        self._write(
            {
                "kind": "task",
                "play": self._play,
                "task": result.task.name or result.task.get_name(),
                "full_name": result.task.get_name(),
                "action": result.task.action,
                "host": result.host.get_name(),
                "status": status,
                "ignored": bool(status == "failed" and result.task.ignore_errors),
                "result": data,
            }
        )

    def v2_playbook_on_play_start(self, play):
        self._play = play.get_name()

    def v2_runner_on_ok(self, result):
        self._task_record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._task_record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._task_record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._task_record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        self._write({"kind": "stats", "stats": summary})
