"""The device-session state machine and its timers, pure, with explicit times."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanyard.contracts.factors import has_second_factor
from lanyard.session import domain
from lanyard.session.domain import Entitlement, OrgSettings, State

T0 = 1_800_000_000.0


def started(**kw):
    return domain.start(
        enterprise_id="ent-1",
        device_session_id="ds-1",
        device_id="dev-1",
        user_id="u-1",
        device_jkt="jkt",
        amr=("pwd", "otp"),
        now=kw.pop("now", T0),
        default_max_session_s=kw.pop("default_max_session_s", 3600),
    )


def grant(**kw):
    base = {
        "version": 1,
        "auth_mode": "passcode",
        "inactivity_timeout_s": 60,
        "max_session_s": 600,
        "face_allowed": False,
    }
    return Entitlement(**{**base, **kw})


def test_checkout_starts_active_at_sequence_one():
    step = started()
    assert step.session.state is State.ACTIVE
    assert [(t.kind, t.sequence) for t in step.transitions] == [("checked_out", 1)]


def test_lock_unlock_close_each_add_one_to_the_sequence():
    s = started().session
    locked = domain.lock(s, T0 + 10)
    assert locked.session.state is State.LOCKED and locked.transitions[0].sequence == 2
    unlocked = domain.face_verified(locked.session, T0 + 20)
    assert unlocked.session.state is State.ACTIVE
    assert unlocked.transitions[0].unlocked is True and unlocked.transitions[0].sequence == 3
    closed = domain.check_in(unlocked.session, T0 + 30, "user")
    assert closed.session.state is State.CLOSED and closed.transitions[0].sequence == 4
    assert closed.session.closed_reason == "user"


def test_closed_is_terminal():
    closed = domain.check_in(started().session, T0, "admin").session
    assert domain.check_in(closed, T0 + 1, "user") is None
    with pytest.raises(domain.InvalidTransition):
        domain.lock(closed, T0 + 1)
    with pytest.raises(domain.InvalidTransition):
        domain.face_verified(closed, T0 + 1)
    assert domain.apply_entitlement(closed, grant()) is None
    assert domain.touch(closed, T0 + 5, T0 + 5) is None
    assert domain.deadlines(closed) == {}


def test_only_an_active_session_locks():
    locked = domain.lock(started().session, T0).session
    with pytest.raises(domain.InvalidTransition):
        domain.lock(locked, T0 + 1)


def test_face_verification_on_an_active_session_does_not_unlock_but_records_the_time():
    step = domain.face_verified(started().session, T0 + 5)
    assert step.transitions[0].unlocked is False
    assert step.session.last_face_at == T0 + 5


def test_face_failures_are_counted_and_the_limit_checks_the_user_in():
    s = started().session
    one = domain.face_failed(s, T0 + 1, "no_match", max_failures=2)
    assert one.session.face_failures == 1 and one.session.state is State.ACTIVE
    assert [(t.kind, t.sequence, t.failures) for t in one.transitions] == [("face_failed", None, 1)]
    two = domain.face_failed(one.session, T0 + 2, "not_live", max_failures=2)
    assert [t.kind for t in two.transitions] == ["face_failed", "checked_in"]
    assert two.transitions[0].limit_reached is True
    assert two.session.state is State.CLOSED and two.session.closed_reason == "face_failures"
    assert two.transitions[1].sequence == 2


def test_success_resets_the_failure_count():
    s = domain.face_failed(started().session, T0 + 1, "no_match", 5).session
    assert domain.face_verified(s, T0 + 2).session.face_failures == 0


def test_judge_face_uses_both_thresholds():
    org = OrgSettings(face_match_threshold=0.8, face_liveness_threshold=0.7)
    assert domain.judge_face(0.8, 0.7, org) is None
    assert domain.judge_face(0.79, 0.9, org) == "no_match"
    assert domain.judge_face(0.95, 0.5, org) == "not_live"


def test_second_factor():
    # The rule is lanyard.contracts.factors (one for the IdP, session and policy). It used to
    # count `hwk` here, but `hwk` is the badge the IdP issues as a *primary* factor.
    assert has_second_factor(["pwd", "otp"])
    assert has_second_factor(["hwk", "otp"])
    assert not has_second_factor(["hwk"])
    assert not has_second_factor(["pwd"])
    assert not has_second_factor([])


def test_latest_entitlement_version_wins():
    s = domain.apply_entitlement(started().session, grant(version=2, inactivity_timeout_s=30))
    assert s is not None
    assert domain.apply_entitlement(s, grant(version=1, inactivity_timeout_s=999)) is None
    assert domain.apply_entitlement(s, grant(version=2, inactivity_timeout_s=999)) is None
    newer = domain.apply_entitlement(s, grant(version=3, inactivity_timeout_s=45))
    assert newer is not None and newer.entitlement.inactivity_timeout_s == 45


def test_activity_only_moves_forward_and_never_past_now():
    s = started().session
    later = domain.touch(s, T0 + 10, T0 + 10)
    assert later.last_activity_at == T0 + 10
    assert domain.touch(later, T0 + 5, T0 + 20) is None  # an older SSO event, redelivered
    future = domain.touch(later, T0 + 500, T0 + 30)  # a producer's clock ahead of ours
    assert future.last_activity_at == T0 + 30


# ------------------------------------------------------------------------------ timers


def test_before_a_grant_only_the_default_max_session_timer_runs():
    s = started(default_max_session_s=3600).session
    assert domain.deadlines(s) == {"max_session": T0 + 3600}


def test_deadlines_follow_the_grant_and_the_last_activity():
    s = domain.apply_entitlement(started().session, grant(inactivity_timeout_s=60, max_session_s=600))
    s = domain.touch(s, T0 + 30, T0 + 30)
    assert domain.deadlines(s) == {"inactivity": T0 + 90, "max_session": T0 + 600}


def test_locked_session_has_no_inactivity_timer_but_keeps_max_session():
    s = domain.apply_entitlement(started().session, grant(auth_mode="face", face_allowed=True))
    locked = domain.lock(s, T0 + 60).session
    assert domain.deadlines(locked) == {"max_session": T0 + 600}


def test_inactivity_in_passcode_mode_checks_in():
    s = domain.apply_entitlement(started().session, grant(inactivity_timeout_s=60))
    assert domain.on_timer(s, "inactivity", T0 + 59) is None
    step = domain.on_timer(s, "inactivity", T0 + 60)
    assert step.session.state is State.CLOSED and step.transitions[0].reason == "inactivity"


def test_inactivity_in_face_mode_locks():
    s = domain.apply_entitlement(started().session, grant(auth_mode="face", face_allowed=True))
    step = domain.on_timer(s, "inactivity", T0 + 61)
    assert step.session.state is State.LOCKED and step.transitions[0].kind == "locked"
    assert step.transitions[0].reason == "inactivity"


def test_face_mode_without_face_allowed_checks_in_on_inactivity():
    s = domain.apply_entitlement(started().session, grant(auth_mode="face", face_allowed=False))
    assert domain.on_timer(s, "inactivity", T0 + 61).session.state is State.CLOSED


def test_a_stale_inactivity_timer_does_nothing_after_activity():
    s = domain.apply_entitlement(started().session, grant(inactivity_timeout_s=60))
    s = domain.touch(s, T0 + 50, T0 + 50)
    assert domain.on_timer(s, "inactivity", T0 + 60) is None
    assert domain.deadlines(s)["inactivity"] == T0 + 110


def test_max_session_checks_in_even_when_locked():
    s = domain.apply_entitlement(started().session, grant(auth_mode="face", face_allowed=True, max_session_s=600))
    locked = domain.lock(s, T0 + 100).session
    assert domain.on_timer(locked, "max_session", T0 + 599) is None
    step = domain.on_timer(locked, "max_session", T0 + 600)
    assert step.session.closed_reason == "max_session"


def test_a_timer_that_fires_twice_acts_once():
    s = domain.apply_entitlement(started().session, grant(inactivity_timeout_s=60))
    first = domain.on_timer(s, "inactivity", T0 + 60)
    assert first is not None
    assert domain.on_timer(first.session, "inactivity", T0 + 61) is None
    assert domain.on_timer(first.session, "max_session", T0 + 9999) is None


def test_unlock_restarts_the_inactivity_clock():
    s = domain.apply_entitlement(started().session, grant(auth_mode="face", face_allowed=True))
    locked = domain.lock(s, T0 + 60).session
    unlocked = domain.face_verified(locked, T0 + 200).session
    assert domain.deadlines(unlocked)["inactivity"] == T0 + 260


ops = st.lists(
    st.tuples(
        st.sampled_from(["lock", "face_ok", "face_bad", "checkin", "touch", "grant", "timer_i", "timer_m"]),
        st.integers(min_value=0, max_value=400),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_any_history_keeps_sequences_contiguous_and_closed_terminal(history):
    s = started().session
    now = T0
    seqs = [1]
    version = 0
    closed_seen = False
    for op, dt in history:
        now += dt
        step = None
        try:
            if op == "lock":
                step = domain.lock(s, now)
            elif op == "face_ok":
                step = domain.face_verified(s, now)
            elif op == "face_bad":
                step = domain.face_failed(s, now, "no_match", 3)
            elif op == "checkin":
                step = domain.check_in(s, now, "user")
            elif op == "touch":
                s = domain.touch(s, now, now) or s
            elif op == "grant":
                version += 1
                mode = "face" if version % 2 else "passcode"
                s = domain.apply_entitlement(s, grant(version=version, auth_mode=mode, face_allowed=True)) or s
            else:
                step = domain.on_timer(s, "inactivity" if op == "timer_i" else "max_session", now)
        except domain.InvalidTransition:
            assert s.state is State.CLOSED or op == "lock"
            continue
        if step is not None:
            assert not closed_seen, "a CLOSED session changed"
            for t in step.transitions:
                if t.sequence is not None:
                    assert t.sequence == seqs[-1] + 1
                    seqs.append(t.sequence)
            assert step.session.sequence == seqs[-1]
            s = step.session
        if s.state is State.CLOSED:
            closed_seen = True
            assert domain.deadlines(s) == {}
    assert s.sequence == seqs[-1]


# ------------------------------------------------------------------------------ replay (rebuild)


def test_replay_follows_the_recorded_transitions_and_their_numbers():
    s = started().session
    locked = domain.replay(s, domain.Transition("locked", T0 + 60, 2, reason="inactivity"))
    assert locked.state is State.LOCKED and locked.sequence == 2
    verified = domain.replay(locked, domain.Transition("face_verified", T0 + 90, 3, unlocked=True))
    assert verified.state is State.ACTIVE and verified.last_face_at == T0 + 90 and verified.last_activity_at == T0 + 90
    failed = domain.replay(verified, domain.Transition("face_failed", T0 + 95, None, reason="no_match", failures=2))
    assert failed.face_failures == 2 and failed.sequence == 3 and failed.state is State.ACTIVE
    closed = domain.replay(failed, domain.Transition("checked_in", T0 + 100, 4, reason="admin"))
    assert closed.state is State.CLOSED and closed.closed_reason == "admin" and closed.closed_at == T0 + 100
    assert closed.sequence == 4 and domain.deadlines(closed) == {}


def test_replay_ignores_redeliveries_and_anything_after_closed():
    s = started().session
    locked = domain.replay(s, domain.Transition("locked", T0 + 60, 2))
    assert domain.replay(locked, domain.Transition("locked", T0 + 60, 2)) is None
    assert domain.replay(locked, domain.Transition("face_verified", T0 + 1, 1)) is None
    closed = domain.replay(locked, domain.Transition("checked_in", T0 + 70, 3, reason="user"))
    assert domain.replay(closed, domain.Transition("face_verified", T0 + 80, 4)) is None
    assert domain.replay(closed, domain.Transition("face_failed", T0 + 80, None, failures=1)) is None


def test_replay_over_a_lost_record_keeps_the_recorded_number():
    locked = domain.replay(started().session, domain.Transition("locked", T0 + 60, 2))
    # The unlock (3) is missing; a second lock (4) cannot apply as a transition, but its number
    # is kept so the next live transition continues at 5.
    again = domain.replay(locked, domain.Transition("locked", T0 + 200, 4))
    assert again.state is State.LOCKED and again.sequence == 4
    assert domain.check_in(again, T0 + 300, "user").transitions[0].sequence == 5


# ----------------------------------------------------------------- the seed's Locker prerequisites


@pytest.mark.parametrize(
    ("version", "minimum", "refused"),
    [("4.3", "4.3", False), ("4.3.0-beta", "4.3", True), ("4.2.9", "4.3", True), (None, "4.3", True),
     ("4.4.1", "4.5", True), ("5.0", "4.5", False)],
)  # fmt: skip
def test_locker_refusal_follows_the_enterprise_minimum(version, minimum, refused):
    why = domain.locker_refusal(domain.ClientReport(version, True), OrgSettings(minimum_locker_version=minimum))
    assert (why is not None) is refused
    if refused:
        assert why.startswith(f"Update Locker to version {minimum} or later")


def test_sso_availability_says_why_not():
    org_on, org_off = OrgSettings(password_autofill_and_sso=True), OrgSettings(password_autofill_and_sso=False)
    s = started().session
    assert domain.sso_availability(s, org_on)["status"] == "pending"
    granted = domain.apply_entitlement(s, grant())
    assert domain.sso_availability(granted, org_on) == {
        "available": True, "status": "available", "reasons": [], "denied_because": None,
    }  # fmt: skip
    off = domain.sso_availability(granted, org_off)
    assert (off["available"], [r["code"] for r in off["reasons"]]) == (False, ["sso_disabled_for_org"])
    no_extension = replace(s, sso_extension_installed=False)
    pending = domain.sso_availability(no_extension, org_on)
    assert (pending["status"], [r["code"] for r in pending["reasons"]]) == ("unavailable", ["sso_extension_missing"])
    ended = domain.end_entitlement(granted, T0 + 5, "no_apps_deployed")
    assert ended.session.state is State.CLOSED and ended.session.closed_reason == "entitlement_revoked"
    view = domain.sso_availability(ended.session, org_on)
    assert (view["denied_because"], view["reasons"][0]["code"]) == ("no_apps_deployed", "entitlement_ended")
    assert domain.end_entitlement(ended.session, T0 + 6, "again") is None  # CLOSED stays closed
    checked_in = domain.check_in(granted, T0 + 7, "user").session
    assert domain.sso_availability(checked_in, org_on)["reasons"][0]["code"] == "checked_in"
