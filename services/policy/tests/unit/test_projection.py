"""The device sessions folded from their history: whatever the order between the two topics, the
fold gives back what the live path stores (checked in is terminal, ended beats granted, a higher
grant version beats a lower), and leaves out what the live consumer will still decide."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from lanyard.contracts import events as ev
from lanyard.policy.projection import SessionFold

E = "e-1"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
TTL = 8 * 24 * 3600


def checkout(dsid: str, user: str = "alice", at: datetime = NOW, device: str | None = None) -> ev.DeviceCheckedOut:
    payload = ev.DeviceCheckedOutPayload(device_session_id=dsid, device_id=device or f"dev-{dsid}", user_id=user,
                                         sequence=1, amr=("pwd", "otp"), checked_out_at=at, device_jkt="jkt",
                                         locker_version="0.1.0", sso_extension_installed=True)  # fmt: skip
    return ev.DeviceCheckedOut(enterprise_id=E, producer="session", payload=payload, occurred_at=at)


def granted(dsid: str, version: int, apps=("rover",), user: str = "alice") -> ev.EntitlementGranted:
    payload = ev.EntitlementGrantedPayload(device_session_id=dsid, device_id=f"dev-{dsid}", user_id=user,
                                           version=version, apps=apps, auth_mode="face", inactivity_timeout_s=60,
                                           max_session_s=3600, face_allowed=True, policy_id="p-1")  # fmt: skip
    return ev.EntitlementGranted(enterprise_id=E, producer="policy", payload=payload)


def revoked(dsid: str, reason: str = "policy_changed", user: str = "alice") -> ev.EntitlementRevoked:
    payload = ev.EntitlementRevokedPayload(device_session_id=dsid, device_id=f"dev-{dsid}", user_id=user,
                                           reason=reason)  # fmt: skip
    return ev.EntitlementRevoked(enterprise_id=E, producer="policy", payload=payload)


def checked_in(dsid: str, at: datetime, user: str = "alice") -> ev.DeviceCheckedIn:
    payload = ev.DeviceCheckedInPayload(device_session_id=dsid, device_id=f"dev-{dsid}", user_id=user, sequence=2,
                                        reason="user")  # fmt: skip
    return ev.DeviceCheckedIn(enterprise_id=E, producer="session", payload=payload, occurred_at=at)


def fold(events) -> SessionFold:
    f = SessionFold(TTL)
    for event in events:
        f.apply(event)
    return f


def test_the_latest_grant_stands_in_any_order_and_a_revocation_ends_it_for_good():
    for order in itertools.permutations([checkout("a"), granted("a", 1), granted("a", 2, apps=("rover", "haiku"))]):
        (s,) = fold(order).result(E, NOW).sessions
        assert (s.state, s.version, s.grant.apps, s.amr) == ("granted", 2, ("rover", "haiku"), ("pwd", "otp"))
        assert s.holds_apa_seat
    for order in itertools.permutations([checkout("a"), granted("a", 1), revoked("a"), granted("a", 2)]):
        (s,) = fold(order).result(E, NOW).sessions
        assert s.state == "ended" and not s.granted, order


def test_a_checked_in_session_leaves_a_tombstone_for_what_is_left_of_its_eight_days():
    result = fold([checkout("a"), granted("a", 1), checked_in("a", NOW - timedelta(days=1))]).result(E, NOW)
    assert result.sessions == () and result.closed == {"a": 7 * 24 * 3600}
    old = fold([checkout("b"), checked_in("b", NOW - timedelta(days=9))]).result(E, NOW)
    assert old.closed == {} and old.sessions == ()


def test_what_the_live_consumer_will_still_decide_or_cannot_know_is_left_out_and_counted():
    result = fold([checkout("undecided"), granted("orphan", 1)]).result(E, NOW)
    assert result.sessions == () and (result.undecided, result.orphaned) == (1, 1)


def test_each_device_keeps_its_latest_locker_report_and_other_enterprises_are_apart():
    earlier = checkout("a", at=NOW - timedelta(hours=1))
    later = checkout("b", at=NOW, device="dev-a")  # the same device, checked out again
    f = fold([later, earlier, earlier.model_copy(update={"enterprise_id": "e-2"})])
    (report,) = f.result(E, NOW).devices
    assert (report.device_id, report.at, report.locker_version) == ("dev-a", NOW, "0.1.0")
    assert f.enterprises() == {E, "e-2"}
