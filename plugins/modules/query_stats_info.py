#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: query_stats_info
short_description: Top statements from pg_stat_statements, with deltas between two runs
version_added: "0.1.0"
description:
  - Reads C(pg_stat_statements) and returns the top O(limit) statements of the connected database
    ordered by O(order_by), each with its times, calls, rows, buffers, cache hit ratio, temporary
    blocks and I/O time.
  - Column names differ between PostgreSQL versions (C(blk_read_time) became C(shared_blk_read_time)
    in 17, C(temp_blk_read_time) and the JIT times appeared in 15); the module picks them for the
    server and the installed extension version and returns them under one set of names.
  - Returns a RV(snapshot) of the counters. Register it and pass it back as O(since) on a later run
    to get what happened in between; a stats reset or statements evicted and recorded again between
    the two runs are handled and reported in RV(delta).
  - When the extension is not installed in the database, or the library is not in
    C(shared_preload_libraries), the module does not fail. It says so in RV(msg), in RV(checks_skipped)
    and as finding C(QS-EXT-001), with the SQL or setting that fixes it.
  - "Findings: C(QS-CACHE-001) statement with a low cache hit ratio, C(QS-TEMP-001) statement writing
    temporary files."
  - Statement text is returned with its password literals masked (C(PASSWORD '...'), C(password=...) of
    connection strings), see RV(statements).
  - Read-only; never reports a change. Needs C(pg_read_all_stats) (or C(pg_monitor)) to see the
    text of other roles' statements; without it they show as C(<insufficient privilege>) and
    RV(checks_skipped) says how many. M(dbarch.postgresql.query_stats) resets the statistics.
author:
  - dbarch.postgresql maintainers (@dbarch)
options:
  limit:
    description:
      - Number of statements to return. V(0) returns them all.
    type: int
    default: 20
  order_by:
    description:
      - The metric the statements are sorted by, highest first (V(cache_hit_ratio) lowest first).
      - V(io) and V(shared_blks_read) are blocks read from outside shared buffers; V(io_time) is the
        time spent reading and writing them (needs C(track_io_timing)).
      - V(temp_blocks) is temporary blocks read plus written.
    type: str
    default: total_time
    choices: [total_time, mean_time, calls, rows, temp_blocks, io, shared_blks_read, io_time, cache_hit_ratio]
  since:
    description:
      - RV(snapshot) of an earlier run of this module on the same database. The statements then hold
        the difference between that run and now; statements not called in between are left out.
    type: dict
  compare_to:
    description:
      - RV(statements) of an earlier run (for example before a migration). Each statement found in both
        gets its mean time before and now in RV(comparison), and a C(QS-LAT-001) finding when it grew by
        more than the C(latency_ratio) threshold (default 1.5) over at least C(latency_min_calls) calls
        (default 1), by at least C(latency_min_delta_ms) (default 0.1) and by more than
        C(latency_noise_sigmas) (default 3) standard errors of the difference, taken from the statement's
        stddev before, so that the scatter of a busy server is not reported as a regression. With O(since),
        "now" is the mean over the calls made since the snapshot.
    type: list
    elements: dict
  all_databases:
    description:
      - Statements of every database, not only the connected one. The extension must still be
        installed in the connected database.
    type: bool
    default: false
  min_calls:
    description:
      - Leave out statements called fewer times (in the delta, with O(since)).
    type: int
    default: 1
  thresholds:
    description:
      - Limits of the findings. C(cache_hit_ratio) (default 0.9) and C(cache_min_blocks) (default 1000)
        for C(QS-CACHE-001); C(temp_blocks) (default 1000 blocks written) for C(QS-TEMP-001);
        C(latency_ratio) (default 1.5), C(latency_min_calls) (default 1), C(latency_min_delta_ms) (default
        0.1) and C(latency_noise_sigmas) (default 3) for C(QS-LAT-001).
    type: dict
    default: {}
extends_documentation_fragment:
  - dbarch.postgresql.connection
  - dbarch.postgresql.connection.findings
  - dbarch.postgresql.attributes.read_only
seealso:
  - module: dbarch.postgresql.query_stats
  - module: dbarch.postgresql.explain
"""

EXAMPLES = r"""
- name: Top 10 statements by total time
  dbarch.postgresql.query_stats_info:
    login_db: shop
    limit: 10
  register: before

- name: Let the workload run
  ansible.builtin.pause:
    minutes: 10

- name: What ran in the last ten minutes, by mean time
  dbarch.postgresql.query_stats_info:
    login_db: shop
    order_by: mean_time
    since: "{{ before.snapshot }}"
  register: window

- name: Show the slowest statement
  ansible.builtin.debug:
    msg: "{{ window.statements[0].query }} ({{ window.statements[0].mean_time_ms }} ms)"
  when: window.statements | length > 0

- name: Least privilege, as a monitoring role
  dbarch.postgresql.query_stats_info:
    login_user: monitor  # GRANT pg_read_all_stats TO monitor
    order_by: temp_blocks
    fail_on: medium
"""

RETURN = r"""
statements:
  description:
    - The top statements, each with C(queryid) (text), C(query), C(user), C(user_superuser) (whether the role
      that ran it is a superuser), C(database), C(toplevel),
      C(calls), C(total_time_ms), C(mean_time_ms), C(min_time_ms), C(max_time_ms), C(stddev_time_ms),
      C(plan_time_ms), C(rows), C(shared_blks_hit), C(shared_blks_read), C(cache_hit_ratio)
      (null when no block was touched), C(temp_blks_read), C(temp_blks_written), C(temp_blks),
      C(blk_read_time_ms), C(blk_write_time_ms), C(io_time_ms), C(temp_blk_read_time_ms),
      C(temp_blk_write_time_ms), C(wal_bytes), C(jit_time_ms) and C(stats_since) (17 and later).
    - Password literals in C(query) (C(PASSWORD '...') of CREATE/ALTER ROLE/USER, C(password '...') of user
      mapping and server OPTIONS, C(password=...) of connection strings, the password of a C(postgresql://)
      URI) are replaced by C(********); C(pg_stat_statements) keeps utility statements as they were sent.
    - A value the server version does not record is null. With O(since), counters are the difference
      and C(min_time_ms), C(max_time_ms) and C(stddev_time_ms) are null.
  returned: always
  type: list
  elements: dict
  sample:
    - {queryid: "-6521931485723469318", query: "SELECT * FROM orders WHERE customer_id = $1", calls: 5000,
       total_time_ms: 812.5, mean_time_ms: 0.1625, rows: 5000, cache_hit_ratio: 0.9987}
snapshot:
  description:
    - The counters of every statement now, to pass back as O(since). Null when the extension cannot be read.
  returned: always
  type: dict
stats_reset:
  description: When the statistics were last reset (C(pg_stat_statements_info)), ISO 8601.
  returned: always
  type: str
delta:
  description:
    - With O(since) only. C(since), C(until), C(stats_reset_between) (the statistics were reset in between,
      so the counters are those since the reset), C(reentered) (statements evicted and recorded again),
      C(disappeared) (statements of the snapshot gone now) and C(new).
  returned: when since is set
  type: dict
extension:
  description:
    - C(installed), C(installed_version), C(available_version), C(schema), C(preloaded) (null when the role
      may not read C(shared_preload_libraries)), C(usable), C(problems) (each C(problem) and C(fix)),
      C(columns) (logical name to the column read) and C(missing_columns).
  returned: always
  type: dict
comparison:
  description:
    - With O(compare_to), one row per statement on both sides, most grown first, with C(queryid), C(query),
      C(mean_ms_before), C(mean_ms_after), C(calls_before), C(calls_after), C(ratio) and
      C(standard_error_ms) (the noise the growth is measured against; null when the stddev before is not
      known).
  returned: when compare_to is set
  type: list
  elements: dict
findings:
  description:
    - Findings in the shared format (C(QS-EXT-001), C(QS-CACHE-001), C(QS-TEMP-001), C(QS-LAT-001)), most
      severe first.
  returned: always
  type: list
  elements: dict
checks_skipped:
  description: What could not be read, each with C(check) and C(reason) (and the fix).
  returned: always
  type: list
  elements: dict
msg:
  description: A summary, or what is missing and how to fix it.
  returned: always
  type: str
queries:
  description: The SQL the module ran.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.dbarch.postgresql.plugins.module_utils.core import findings as fnd
from ansible_collections.dbarch.postgresql.plugins.module_utils.core import pg
from ansible_collections.dbarch.postgresql.plugins.module_utils.query import query_stats as qs
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.ansible_module import DbarchModule
from ansible_collections.dbarch.postgresql.plugins.module_utils.core.errors import DbarchError

NOT_PRELOADED_SQLSTATE = "55000"


def _missing_finding(st):
    return fnd.Finding(
        rule="QS-EXT-001",
        title="pg_stat_statements cannot be read",
        severity="medium",
        object="database %s" % st["database"],
        message=qs.message(st),
        why="Without pg_stat_statements there is no record of which statements take the time.",
        fix=" ".join(p["fix"] for p in st["problems"]),
        evidence={k: st[k] for k in ("installed", "installed_version", "preloaded", "available_version")},
    )


def collect(session, p):
    st = qs.status(session)
    result = dict(
        statements=[], snapshot=None, stats_reset=None, findings=[], checks_skipped=[], extension=st
    )
    if st["usable"]:
        try:
            data = qs.read(session, st, all_databases=p["all_databases"])
        except pg.PgError as exc:
            if exc.sqlstate != NOT_PRELOADED_SQLSTATE:
                raise
            st["preloaded"] = False
            st["problems"].append(
                dict(
                    problem="pg_stat_statements is installed but not loaded (%s)."
                    % exc.message.split(": ", 1)[-1],
                    fix="Add pg_stat_statements to shared_preload_libraries (ALTER SYSTEM SET "
                    "shared_preload_libraries = ..., keeping the libraries listed) and restart PostgreSQL.",
                )
            )
            st["usable"] = False
    if not st["usable"]:
        result["findings"] = [_missing_finding(st)]
        result["checks_skipped"].append(dict(check="pg_stat_statements", reason=qs.message(st)))
        result["msg"] = "pg_stat_statements cannot be read: " + qs.message(st)
        return result
    st["columns"] = data["columns"]
    st["missing_columns"] = data["missing_columns"]
    if data["missing_columns"]:
        result["checks_skipped"].append(
            dict(
                check="pg_stat_statements columns",
                reason="extension version %s lacks %s; ALTER EXTENSION pg_stat_statements UPDATE; adds them."
                % (st["installed_version"], ", ".join(data["missing_columns"])),
            )
        )
    result["snapshot"] = qs.make_snapshot(data, st, session.server_version_num)
    result["stats_reset"] = data["stats_reset"]
    rows = data["statements"]
    if p["since"] is not None:
        rows, result["delta"] = qs.delta(data, p["since"])
    shaped = [qs.shape(r) for r in rows if (r.get("calls") or 0) >= p["min_calls"]]
    hidden = len([s for s in shaped if s["query"] == qs.INSUFFICIENT])
    if hidden:
        result["checks_skipped"].append(
            dict(
                check="statement text",
                reason="%d statement(s) of other roles show as %s: the login role needs pg_read_all_stats "
                "(GRANT pg_read_all_stats TO <role>; or pg_monitor)." % (hidden, qs.INSUFFICIENT),
            )
        )
    result["statements"] = qs.top(shaped, p["order_by"], p["limit"])
    result["findings"] = qs.findings(result["statements"], p["thresholds"])
    if p["compare_to"] is not None:
        result["comparison"], slower = qs.compare(p["compare_to"], shaped, p["thresholds"])
        result["findings"] = sorted(result["findings"] + slower, key=lambda f: f.sort_key())
    result["msg"] = "%d statement(s) of %d, ordered by %s%s." % (
        len(result["statements"]),
        len(shaped),
        p["order_by"],
        " since %s" % result["delta"]["since"] if p["since"] is not None else "",
    )
    return result


ARGUMENT_SPEC = dict(
    limit=dict(type="int", default=20),
    order_by=dict(
        type="str",
        default="total_time",
        choices=[
            "total_time",
            "mean_time",
            "calls",
            "rows",
            "temp_blocks",
            "io",
            "shared_blks_read",
            "io_time",
            "cache_hit_ratio",
        ],
    ),
    since=dict(type="dict"),
    compare_to=dict(type="list", elements="dict"),
    all_databases=dict(type="bool", default=False),
    min_calls=dict(type="int", default=1),
    thresholds=dict(type="dict", default={}),
)


def main():
    module = DbarchModule(argument_spec=ARGUMENT_SPEC, findings=True, supports_check_mode=True)
    p = module.params
    if p["limit"] < 0:
        module.fail_json(msg="limit must be 0 (all) or more, got %d." % p["limit"])
    try:
        qs.thresholds(p["thresholds"])
        if p["since"] is not None:
            qs.check_snapshot(p["since"])
    except DbarchError as exc:
        module.fail_from(exc)
    result, queries = module.run(lambda session: collect(session, p))
    if (
        p["since"] is not None
        and result["snapshot"]
        and p["since"].get("database") != result["snapshot"]["database"]
    ):
        module.fail_json(
            msg="since is a snapshot of database %s, this run reads %s: "
            "compare snapshots of the same database."
            % (p["since"].get("database"), result["snapshot"]["database"]),
            queries=queries,
        )
    found, _unused = module.suppress(fnd.normalize(result["findings"]))
    result["queries"] = queries
    module.exit_findings(found, **result)


if __name__ == "__main__":
    main()
