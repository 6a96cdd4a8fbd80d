"""The promote guards' decisions (replication/promote.py), without a database."""

import itertools

import pytest

from ansible_collections.dbarch.postgresql.plugins.module_utils.core.pg import PgError
from ansible_collections.dbarch.postgresql.plugins.module_utils.replication import promote as pm


_STARTS = itertools.count()


def node(receive, replay=None, timeline=1, in_recovery=True, start=None, pause="not paused"):
    """A server state; each one another server (its own postmaster start) unless ``start`` is given."""
    start = start or "2026-01-01 10:%02d:00+00" % (next(_STARTS) % 60)
    return dict(
        in_recovery=in_recovery,
        system_identifier="7000000000000000001",
        postmaster_start_time=start,
        receive_lsn=receive,
        replay_lsn=replay or receive,
        timeline=timeline,
        current_lsn=None if in_recovery else receive,
        replay_pause_state=pause if in_recovery else None,
    )


def seen(state=None, status="reachable", answered=True):
    out = dict(name="db3:5432", reachable=state is not None, answered=answered, status=status)
    if state is not None:
        out["state"] = state
    return out


TARGET = node("0/5000000", start="2026-01-01 09:00:00+00")


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (node("0/5000000"), "equal"),
        (node("0/4000000"), "behind"),
        (node("0/6000000"), "ahead"),
        # Same WAL received, less replayed: behind; more replayed: ahead.
        (node("0/5000000", replay="0/4000000"), "behind"),
        (node("0/5000000", replay="0/5000000"), "equal"),
        # A newer timeline is ahead whatever the LSN.
        (node("0/1000000", timeline=2), "ahead"),
        # Replayed from the archive beyond what streaming received: holds the replayed WAL.
        (node("0/4000000", replay="0/6000000"), "ahead"),
        (node(None, replay="0/5000000"), "equal"),
    ],
)
def test_compare(candidate, expected):
    assert pm.compare(TARGET, candidate) == expected


def test_candidate_ahead_refuses_unless_allow_behind():
    ahead = seen(node("0/6000000"))
    entry, refusal = pm.judge_candidate(TARGET, ahead, allow_behind=False)
    assert entry["verdict"] == "refused" and entry["compared"] == "ahead"
    assert (
        "has received WAL up to 0/6000000, the target only up to 0/5000000 (16777216 bytes more)" in refusal
    )
    assert "allow_behind: true" in refusal and "Promote db3:5432 instead" in refusal
    entry, refusal = pm.judge_candidate(TARGET, ahead, allow_behind=True)
    assert refusal is None and entry["verdict"] == "overridden (allow_behind)"


def test_candidate_replayed_more_and_newer_timeline_messages():
    _entry, refusal = pm.judge_candidate(
        node("0/5000000", replay="0/4000000"), seen(node("0/5000000")), allow_behind=False
    )
    assert "has replayed WAL up to 0/5000000, the target only up to 0/4000000" in refusal
    _entry, refusal = pm.judge_candidate(TARGET, seen(node("0/100", timeline=3)), allow_behind=False)
    assert "is on timeline 3, newer than the target's 1" in refusal


def test_candidate_behind_equal_unreachable_self():
    assert pm.judge_candidate(TARGET, seen(node("0/4000000")), False) == (
        dict(
            name="db3:5432",
            status="reachable",
            in_recovery=True,
            timeline=1,
            receive_lsn="0/4000000",
            replay_lsn="0/4000000",
            replay_pause_state="not paused",
            compared="behind",
            verdict="ok (behind the target)",
        ),
        None,
    )
    entry, refusal = pm.judge_candidate(
        TARGET, seen(status="unreachable: Connection refused", answered=False), False
    )
    assert refusal is None and entry == dict(
        name="db3:5432", status="unreachable: Connection refused", verdict="skipped (unreachable)"
    )
    entry, refusal = pm.judge_candidate(TARGET, seen(dict(TARGET)), False)
    assert refusal is None and entry["verdict"] == "skipped (the target itself)"


def test_candidate_that_answers_but_cannot_be_read_refuses():
    refused = seen(status="answered but not readable: password authentication failed", answered=True)
    entry, refusal = pm.judge_candidate(TARGET, refused, False)
    assert entry["verdict"] == "refused" and "could not be read" in refusal
    assert pm.judge_candidate(TARGET, refused, True)[1] is None


def test_candidate_that_is_a_primary_refuses_even_with_allow_behind():
    entry, refusal = pm.judge_candidate(TARGET, seen(node("0/9000000", in_recovery=False)), True)
    assert entry["verdict"] == "refused" and "writable primary" in refusal


def test_target_already_primary_checks_candidates_for_another_primary_or_newer_timeline():
    target = node("0/7000000", in_recovery=False, timeline=2)
    assert pm.judge_candidate(target, seen(node("0/9000000")), False, target_is_primary=True)[1] is None
    _e, refusal = pm.judge_candidate(target, seen(node("0/100", timeline=3)), False, target_is_primary=True)
    assert "another server was promoted after the target" in refusal


@pytest.mark.parametrize(
    ("observed", "force", "verdict", "refused"),
    [
        (
            seen(status="unreachable: Connection refused", answered=False),
            False,
            "ok (does not accept connections)",
            False,
        ),
        (seen(node("0/5000000")), False, "ok (in recovery: not writable)", False),
        (seen(node("0/5000000", in_recovery=False)), False, "refused", True),
        (seen(node("0/5000000", in_recovery=False)), True, "overridden (force)", False),
        (seen(status="answered but not readable: password authentication failed"), False, "refused", True),
        (
            seen(status="answered but not readable: password authentication failed"),
            True,
            "overridden (force)",
            False,
        ),
    ],
)
def test_old_primary(observed, force, verdict, refused):
    entry, refusal = pm.judge_old_primary(TARGET, observed, force)
    assert entry["verdict"] == verdict
    assert (refusal is not None) is refused
    if refusal:
        assert "force: true" in refusal


def test_old_primary_that_is_the_target_refuses_even_with_force():
    entry, refusal = pm.judge_old_primary(TARGET, seen(dict(TARGET)), force=True)
    assert entry["verdict"] == "refused" and "the target server itself" in refusal


def test_split_brain_message_says_how_to_stop_it():
    _e, refusal = pm.judge_old_primary(TARGET, seen(node("0/9000000", in_recovery=False)), False)
    assert "second writable primary" in refusal and "pg_ctl stop" in refusal


@pytest.mark.parametrize(
    ("reason", "down"),
    [
        ("Connection refused Is the server running on that host and accepting TCP/IP connections?", True),
        ("timeout expired", True),
        ('could not translate host name "db9" to address: Name or service not known', True),
        ("No route to host", True),
        ('password authentication failed for user "postgres"', False),
        ("the database system is starting up", False),
        ("the database system is shutting down", False),
        ('no pg_hba.conf entry for host "10.0.0.9"', False),
        ("sorry, too many clients already", False),
    ],
)
def test_unreachable_only_when_no_server_answered(reason, down):
    assert pm.unreachable(reason) is down


def test_probe_classifies_connection_failures():
    def refuse(reason):
        def connect(params):
            raise PgError(
                "Cannot connect to PostgreSQL (host=db1 port=5432 user=postgres db=postgres): %s" % reason
            )

        return connect

    params = dict(login_host="db1", login_port=5432)
    out = pm.probe(params, refuse("Connection refused"))
    assert out == dict(
        name="db1:5432", reachable=False, answered=False, status="unreachable: Connection refused"
    )
    out = pm.probe(params, refuse("password authentication failed"))
    assert (
        out["answered"] is True
        and out["status"] == "answered but not readable: password authentication failed"
    )


def test_replay_refusal_and_pending_bytes():
    assert pm.replay_refusal(node("0/5000000")) is None
    assert "pg_wal_replay_resume()" in pm.replay_refusal(node("0/5000000", pause="paused"))
    assert "pause requested" in pm.replay_refusal(node("0/5000000", pause="pause requested"))
    assert pm.pending_bytes(node("0/5000000", replay="0/4000000")) == 16 * 1024 * 1024
    assert pm.pending_bytes(node("0/4000000", replay="0/5000000")) == 0
    assert pm.pending_bytes(node(None, replay="0/5000000")) == 0


class FakeSession:
    """Answers node_state with scripted states (the last one repeats) and records pg_promote."""

    def __init__(self, states, promote_result=True, after=None, startup_wait=None, may_promote=True):
        self.states = list(states)
        self.may_promote = may_promote
        self.startup_wait = startup_wait
        self.promote_result = promote_result
        self.after = after
        self.promoted = False
        self.queries = []

    def fetchone(self, query, params=None, record=True):
        if "may_promote" in query:
            return dict(login_role="ops", may_promote=self.may_promote)
        if self.promoted and self.after is not None:
            state = self.after
        else:
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        row = dict(state)
        row.setdefault("current_walfile", None)
        row.setdefault("received_tli", state.get("timeline"))
        row.setdefault("checkpoint_timeline", state.get("timeline"))
        row.setdefault("recovery_min_apply_delay", "0")
        return row

    def close(self):
        pass

    def scalar(self, query, params=None, record=True):
        if "pg_stat_activity" in query:
            return self.startup_wait
        assert "pg_promote" in query
        self.promoted = True
        return self.promote_result


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_a_login_role_that_may_not_promote_is_refused_before_any_candidate_is_probed():
    probed = []
    session = FakeSession([node("0/5000000", start="s")], may_promote=False)
    with pytest.raises(pm.PromoteError, match="may not run pg_promote on db2") as err:
        pm.run(session, "db2", candidates=[dict(login_port=1)], connect=probed.append)
    assert err.value.guard == "privilege" and "TO ops" in str(err.value)
    assert err.value.result["guards"]["privilege"] == dict(
        login_role="ops", may_promote=False, verdict="refused"
    )
    assert probed == [] and not session.promoted
    # A primary needs no promotion, so the privilege is not asked for there.
    primary = FakeSession([node("0/5000000", in_recovery=False, start="s")], may_promote=False)
    assert pm.run(primary, "db1")["changed"] is False


def test_replay_that_does_not_catch_up_in_time_refuses_and_changes_nothing():
    behind = node("0/5000000", replay="0/4000000", start="s")
    session = FakeSession([behind])
    clock = Clock()
    with pytest.raises(
        pm.PromoteError, match="replay guard: the target replayed 0/4000000 of the 0/5000000"
    ) as err:
        pm.run(session, "db2:5432", wait_timeout=3, clock=clock, sleep=clock.sleep)
    assert err.value.guard == "replay" and err.value.result["changed"] is False
    assert err.value.result["guards"]["replay"]["verdict"] == "refused (timeout)"
    assert session.promoted is False and 3 <= clock.now < 4


def test_an_incomplete_last_record_counts_as_caught_up_once_the_startup_process_waits_for_wal():
    # The old primary died writing a record: the standby received 760 bytes it can never replay.
    cut = node("0/5000000", replay="0/4FFFD08", start="s")
    after = dict(
        node("0/4FFFD08", in_recovery=False, timeline=2, start="s"),
        current_walfile="000000020000000000000004",
    )
    for wait, promoted in (
        ("RecoveryWalStream", True),
        ("RecoveryRetrieveRetryInterval", True),
        (None, False),
    ):
        session = FakeSession([cut], after=after, startup_wait=wait)
        clock = Clock()
        if not promoted:
            # Still replaying (or the wait event cannot be seen): the replay guard times out.
            with pytest.raises(pm.PromoteError, match="replay guard"):
                pm.run(session, "db2:5432", wait_timeout=2, clock=clock, sleep=clock.sleep)
            assert session.promoted is False
            continue
        result = pm.run(session, "db2:5432", wait_timeout=30, clock=clock, sleep=clock.sleep)
        assert session.promoted is True and result["promoted"] is True
        replay = result["guards"]["replay"]
        assert replay["incomplete_bytes"] == 760 and "incomplete record" in replay["verdict"]


def test_replay_catches_up_then_promotes_and_reads_the_new_timeline():
    states = [node("0/5000000", replay="0/4000000", start="s"), node("0/5000000", start="s")]
    after = dict(
        node("0/5000000", in_recovery=False, timeline=2, start="s"),
        current_walfile="000000020000000000000005",
    )
    session = FakeSession(states, after=after)
    clock = Clock()
    result = pm.run(session, "db2:5432", wait_timeout=30, clock=clock, sleep=clock.sleep)
    assert session.promoted is True
    assert result["changed"] is True and result["promoted"] is True
    assert result["timeline"] == 2 and result["promoted_lsn"] == "0/5000000"
    assert result["guards"]["old_primary"] == dict(status="not given", verdict="not checked")
    assert result["guards"]["promote"]["timeline_before"] == 1


def test_check_mode_and_pg_promote_that_does_not_finish():
    session = FakeSession([node("0/5000000", start="s")])
    result = pm.run(session, "db2:5432", check_mode=True)
    assert (
        result["changed"] is True and session.promoted is False and result["msg"].startswith("would promote")
    )
    session = FakeSession([node("0/5000000", start="s")], promote_result=False)
    with pytest.raises(pm.PromoteError, match="did not finish within 60 s") as err:
        pm.run(session, "db2:5432", clock=Clock(), sleep=lambda s: None)
    assert err.value.guard == "promote"


def test_target_behind_in_replay_only_gets_time_to_replay_before_the_candidates_are_judged():
    candidate = FakeSession([node("0/5000000", start="c")])
    target = FakeSession(
        [node("0/5000000", replay="0/4000000", start="t")] * 3 + [node("0/5000000", start="t")]
    )
    clock = Clock()
    result = pm.run(
        target,
        "db2:5432",
        candidates=[dict(login_host="db3", login_port=5432)],
        check_mode=True,
        connect=lambda params: candidate,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result["changed"] is True
    assert result["guards"]["candidates"][0]["verdict"] == "ok (equal to the target)"
    assert result["guards"]["target"]["replay_lsn"] == "0/5000000" and clock.now > 0


def test_paused_target_behind_in_replay_is_refused_at_once():
    candidate = FakeSession([node("0/5000000", start="c")])
    target = FakeSession([node("0/5000000", replay="0/4000000", start="t", pause="paused")])
    clock = Clock()
    with pytest.raises(pm.PromoteError, match="candidates guard: candidate db3:5432 has replayed WAL up to"):
        pm.run(
            target,
            "db2:5432",
            candidates=[dict(login_host="db3", login_port=5432)],
            connect=lambda params: candidate,
            clock=clock,
            sleep=clock.sleep,
        )
    assert clock.now == 0
