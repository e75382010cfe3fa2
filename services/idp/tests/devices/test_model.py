"""The pure device-session rules: monotonic, idempotent, order-independent, CLOSED terminal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanyard.idp.devices import domain as model
from lanyard.idp.devices.domain import (
    Allow,
    CheckedIn,
    CheckedOut,
    Denied,
    FaceVerified,
    Granted,
    Locked,
    Refuse,
    Revoked,
    SessionView,
    Wait,
    apply,
    apply_all,
    decide,
)

OUT = CheckedOut(1, "u1", "d1", "jkt-1", ("pwd", "otp"), 1_700_000_000)


def grant(version=1, apps=("rover",), mode="passcode", recency=300):
    return Granted(version, apps, mode, recency, "u1", "d1")


# ------------------------------------------------------------------------ single transitions


def test_checkout_makes_an_active_session_with_its_identity():
    view = apply(None, OUT).view
    assert view.state == "ACTIVE" and view.sequence == 1
    assert (view.user_id, view.device_id, view.device_jkt, view.amr) == ("u1", "d1", "jkt-1", ("pwd", "otp"))
    assert view.auth_time == 1_700_000_000


def test_lock_then_face_verification_unlocks_and_records_the_time():
    view = apply_all(None, [OUT, Locked(2)])
    assert view.state == "LOCKED"
    view = apply(view, FaceVerified(3, 1_700_000_100.5)).view
    assert view.state == "ACTIVE" and view.face_verified_at == 1_700_000_100.5


def test_lower_or_equal_sequence_is_ignored():
    view = apply_all(None, [OUT, Locked(3)])
    assert apply(view, FaceVerified(2, 5.0)).view.state == "LOCKED"
    assert apply(view, FaceVerified(3, 5.0)).view.state == "LOCKED"


def test_face_time_only_grows():
    view = apply_all(None, [OUT, FaceVerified(2, 100.0)])
    assert apply(view, FaceVerified(3, 50.0)).view.face_verified_at == 100.0


def test_grant_applies_only_with_a_higher_version():
    view = apply_all(None, [OUT, grant(2, ("a", "b"))])
    assert apply(view, grant(1, ("c",))).view.apps == ("a", "b")
    assert apply(view, grant(3, ("c",))).view.apps == ("c",)


@pytest.mark.parametrize(
    ("closing", "reason", "denial"),
    [
        (CheckedIn(2, "user"), "checked_in:user", None),
        (Revoked("app_undeployed"), "entitlement_revoked:app_undeployed", None),
        (Denied("no_sso_licence"), "entitlement_denied:no_sso_licence", "no_sso_licence"),
    ],
)
def test_closing_facts_close_and_flag_the_revocation(closing, reason, denial):
    outcome = apply(apply_all(None, [OUT, grant()]), closing)
    assert outcome.closed and outcome.changed
    assert outcome.view.state == "CLOSED" and outcome.view.closed_reason == reason
    assert outcome.view.denial == denial and not outcome.view.revocation_done


@pytest.mark.parametrize(
    "late",
    [OUT, Locked(9), FaceVerified(9, 1e10), grant(9, ("x",)), CheckedIn(9, "admin"), Revoked("x"), Denied("x")],
)
def test_closed_is_terminal(late):
    closed = apply_all(None, [OUT, grant(), CheckedIn(2, "user")])
    outcome = apply(closed, late)
    assert outcome.view == closed and not outcome.changed and not outcome.closed


def test_a_grant_before_the_checkout_is_kept_and_the_checkout_fills_in_identity():
    view = apply_all(None, [grant(1, ("rover",)), OUT])
    assert view.state == "ACTIVE" and view.apps == ("rover",) and view.device_jkt == "jkt-1"


def test_a_checkin_before_anything_else_leaves_a_closed_record_that_refuses_the_rest():
    view = apply_all(None, [CheckedIn(3, "user"), OUT, grant()])
    assert view.state == "CLOSED" and not view.granted and not view.checked_out


def test_duplicate_fact_changes_nothing():
    view = apply_all(None, [OUT, grant(), Locked(2)])
    for fact in (OUT, grant(), Locked(2)):
        assert not apply(view, fact).changed


def test_storage_round_trip_and_unreadable_state_is_closed():
    view = apply_all(None, [OUT, grant(2, ("a", "b c")), Locked(2), FaceVerified(3, 12.25)])
    assert model.from_fields(model.to_fields(view)) == view
    assert model.from_fields({}) is None
    assert model.from_fields({"state": "BOGUS"}).state == "CLOSED"


def test_sid_is_stable_per_device_session_and_does_not_reveal_the_handle():
    a = model.sid_for("e1", "ds-1")
    assert a == model.sid_for("e1", "ds-1")
    assert a != model.sid_for("e1", "ds-2") and a != model.sid_for("e2", "ds-1")
    assert "ds-1" not in a and a.startswith("ds_")


# ------------------------------------------------------------------------------- decisions

NOW = 1_700_001_000.0


@pytest.mark.parametrize(
    ("facts", "client", "expected"),
    [
        ([], "rover", Wait("device session not known yet")),
        ([grant()], "rover", Wait("device session not known yet")),
        ([OUT], "rover", Wait("entitlement not known yet")),
        ([OUT, grant()], "rover", Allow()),
        ([OUT, grant()], "other", Refuse("access_denied", "this app is not deployed to the user")),
        (
            [OUT, grant(), Locked(2)],
            "rover",
            Refuse("interaction_required", "device session is locked", "face_verification"),
        ),
        (
            [OUT, grant(), CheckedIn(2, "user")],
            "rover",
            Refuse("login_required", "device session has ended", "checkout"),
        ),
        ([CheckedIn(2, "user")], "rover", Refuse("login_required", "device session has ended", "checkout")),
        (
            [OUT, Denied("no_policy")],
            "rover",
            Refuse("access_denied", "single sign-on is not entitled on this device session"),
        ),
        (
            [OUT, grant(mode="face")],
            "rover",
            Refuse("interaction_required", "a recent face verification is required", "face_verification"),
        ),
        (
            [OUT, grant(mode="face", recency=300), FaceVerified(2, NOW - 301)],
            "rover",
            Refuse("interaction_required", "a recent face verification is required", "face_verification"),
        ),
        ([OUT, grant(mode="face", recency=300), FaceVerified(2, NOW - 299)], "rover", Allow()),
    ],
)
def test_decide(facts, client, expected):
    assert decide(apply_all(None, facts), client, NOW) == expected


def test_after_wait_turns_waiting_into_refusals():
    for caught_up in (True, False):
        assert model.after_wait(Wait("entitlement not known yet"), caught_up).error == "temporarily_unavailable"
        assert model.after_wait(Allow(), caught_up) == Allow()
    # Shown caught up since the request arrived: a session not seen was never checked out.
    unknown = model.after_wait(Wait("device session not known yet"), caught_up=True)
    assert (unknown.error, unknown.description, unknown.action) == (
        "login_required",
        "unknown device session",
        "checkout",
    )


def test_a_session_not_seen_while_the_consumer_is_behind_is_a_retry_not_a_new_checkout():
    """Finding 9: the checkout may be on the broker, not yet applied; never send the clinician
    to check out again for that, and mint nothing."""
    behind = model.after_wait(Wait("device session not known yet"), caught_up=False)
    assert behind.error == "temporarily_unavailable" and behind.action is None


def test_refresh_and_activity_rules():
    active = apply_all(None, [OUT, grant()])
    locked = apply(active, Locked(2)).view
    closed = apply(active, CheckedIn(2, "user")).view
    assert model.may_refresh(active, "rover") and not model.may_refresh(active, "other")
    assert not model.may_refresh(locked, "rover") and not model.may_refresh(closed, "rover")
    assert not model.may_refresh(None, "rover")
    assert model.is_active(active) and model.is_active(locked)
    assert not model.is_active(closed) and not model.is_active(None) and not model.is_active(SessionView())


# ------------------------------------------------------------------- order independence


@st.composite
def histories(draw):
    """An ordered history of one device session, as the producers would publish it."""
    facts: list[model.Fact] = [OUT]
    seq, version, t = 1, 0, 1_700_000_000.0
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["lock", "face", "grant"]))
        t += draw(st.floats(1, 100))
        if kind == "grant":
            version += 1
            apps = tuple(draw(st.lists(st.sampled_from(["a", "b", "c"]), max_size=3, unique=True)))
            facts.append(Granted(version, apps, draw(st.sampled_from(["passcode", "face"])), 300, "u1", "d1"))
        else:
            seq += 1
            facts.append(Locked(seq) if kind == "lock" else FaceVerified(seq, t))
    closing = draw(st.sampled_from([None, "checkin", "revoked", "denied"]))
    if closing == "checkin":
        facts.append(CheckedIn(seq + 1, "user"))
    elif closing == "revoked":
        facts.append(Revoked("policy_changed"))
    elif closing == "denied":
        facts.append(Denied("no_policy"))
    return facts, closing is not None


@st.composite
def shuffled_with_duplicates(draw):
    facts, closes = draw(histories())
    extra = draw(st.lists(st.sampled_from(facts), max_size=len(facts)))
    delivered = draw(st.permutations(facts + extra))
    return facts, closes, delivered


@settings(max_examples=400, deadline=None)
@given(shuffled_with_duplicates())
def test_any_order_and_duplication_ends_in_the_ordered_state(case):
    ordered, closes, delivered = case
    expected = apply_all(None, ordered)
    got = apply_all(None, delivered)
    if closes:
        assert expected.state == "CLOSED" and got.state == "CLOSED"
    else:
        assert got == expected


@settings(max_examples=300, deadline=None)
@given(shuffled_with_duplicates())
def test_nothing_ever_resurrects_a_closed_session(case):
    _, _, delivered = case
    view, closed_seen = None, False
    for fact in delivered:
        view = apply(view, fact).view
        closed_seen = closed_seen or view.state == "CLOSED"
        if closed_seen:
            assert view.state == "CLOSED"
            assert decide(view, "a", NOW).__class__ is Refuse


@settings(max_examples=200, deadline=None)
@given(shuffled_with_duplicates())
def test_applying_any_fact_twice_is_the_same_as_once(case):
    _, _, delivered = case
    view = None
    for fact in delivered:
        once = apply(view, fact).view
        assert apply(once, fact).view == once
        view = once
