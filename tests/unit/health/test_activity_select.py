# Copyright: dbarch.postgresql contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Choosing sessions to terminate, blocking chains, thresholds and the health panels' levels."""

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.health import activity, panels


def session(pid, state="idle", backend_type="client backend", idle=None, xact=None, own=False, **extra):
    row = dict(
        pid=pid,
        state=state,
        backend_type=backend_type,
        state_seconds=idle,
        xact_seconds=xact,
        own=own,
        user="app",
        database="shop",
        application_name="web",
        client_addr="10.0.0.1",
        blocked_by=[],
    )
    row.update(extra)
    row["idle_seconds"] = activity.idle_seconds(row)
    return row


def test_select_never_matches_walsenders_workers_or_the_own_session():
    rows = [
        session(1, idle=900),
        session(2, idle=900, own=True),
        session(3, state="active", backend_type="walsender"),
        session(4, state="active", backend_type="autovacuum worker"),
        session(5, state=None, backend_type="background worker"),
        session(6, idle=10),
        session(7, state="idle in transaction", idle=1200, xact=1300),
    ]
    assert [s["pid"] for s in activity.select(rows, states=["idle"], min_idle_seconds=600)] == [1]
    assert [s["pid"] for s in activity.select(rows, users=["app"])] == [7, 1, 6]
    assert [s["pid"] for s in activity.select(rows, min_xact_seconds=1000)] == [7]
    assert activity.select(rows, users=["app"], applications=["other"]) == []
    assert activity.select(rows, client_addrs=["10.0.0.2"]) == []


def test_a_filter_is_required_and_states_are_checked():
    with pytest.raises(activity.ActivityError, match="No filter given"):
        activity.check_filter()
    with pytest.raises(activity.ActivityError, match="Unknown state"):
        activity.check_filter(states=["sleeping"])
    activity.check_filter(states=["idle in transaction"], min_idle_seconds=60)


def test_blocking_chain_finds_the_root():
    rows = [
        session(10, state="idle in transaction", idle=50, xact=60),
        session(11, state="active", blocked_by=[10], idle=None, state_seconds=40),
        session(12, state="active", blocked_by=[11], state_seconds=30),
    ]
    chains = activity.blocking_chains(rows)
    assert [c["pid"] for c in chains] == [11, 12]
    assert [[r["pid"] for r in c["root_blockers"]] for c in chains] == [[10], [10]]


def test_summary_and_utilization_levels():
    rows = [session(i, idle=5) for i in range(9)] + [session(9, state="active", xact=1)]
    facts = activity.summarize(rows, 13, {"superuser_reserved_connections": 3})
    assert facts["usable"] == 10 and facts["utilization_percent"] == 100.0
    lim = activity.limits()
    assert activity.utilization_finding(facts, lim).severity == "high"
    facts = activity.summarize(rows[:7], 13, {"superuser_reserved_connections": 3})
    assert activity.utilization_finding(facts, lim).severity == "medium"
    facts = activity.summarize(rows[:6], 13, {"superuser_reserved_connections": 3})
    assert activity.utilization_finding(facts, lim) is None
    with pytest.raises(activity.ActivityError):
        activity.limits(utilization_warning_percent=95)


def test_panel_thresholds_default_to_the_dashboard_and_are_checked():
    lim = panels.thresholds()
    assert lim["query_latency_p95"] == {"warning": 100.0, "critical": 500.0}
    assert lim["connections"] == {"warning": 70.0, "critical": 90.0}
    assert lim["replication_lag"] == {"warning": 5.0, "critical": 30.0}
    assert lim["disk"] == {"warning": 80.0, "critical": 90.0}
    lim = panels.thresholds({"disk": {"warning": 60}})
    assert lim["disk"] == {"warning": 60.0, "critical": 90.0}
    assert panels.panel("disk", 70, lim, "os.statvfs")["status"] == "warning"
    assert panels.panel("disk", None, lim, "os.statvfs")["status"] == "unknown"
    for bad in ({"cpu": {}}, {"disk": {"warning": 95}}, {"disk": {"high": 1}}, {"disk": {"warning": "x"}}):
        with pytest.raises(panels.HealthError):
            panels.thresholds(bad)
