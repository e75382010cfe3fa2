"""Use cases over in-memory fakes and a fake clock: checkout, face, checkin, timers, outbox."""

from dataclasses import replace

import pytest

from lanyard.session.domain import OrgSettings, State
from lanyard.session.service import EnrolRequest, SessionError

# ------------------------------------------------------------------------------ enrolment


async def test_enrolment_stores_the_key_thumbprint_and_publishes(world):
    device = await world.enrol()
    assert device.jkt and device.public_jwk["kty"] == "EC" and "d" not in device.public_jwk
    assert world.publisher.types() == ["session.device_enrolled.v1"]
    assert world.publisher.events[0].payload.serial == "SN1"
    assert world.store.outbox == {}


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "RSA", "n": "abc", "e": "AQAB"},
        {"kty": "EC", "crv": "P-384", "x": "a", "y": "b"},
        {"kty": "EC", "crv": "P-256", "x": "not-a-point", "y": "nope"},
        "not a dict",
    ],
)
async def test_enrolment_refuses_other_keys(world, jwk):
    with pytest.raises(SessionError) as err:
        await world.service.enrol_device("ent-1", EnrolRequest("dev-1", jwk), "admin-1")
    assert err.value.status == 400 and err.value.code == "invalid_key"
    assert world.publisher.events == [] and await world.store.get_device("ent-1", "dev-1") is None


async def test_enrolment_refuses_a_private_key(world):
    from joserfc.jwk import ECKey

    private = ECKey.generate_key("P-256").as_dict(private=True)
    with pytest.raises(SessionError) as err:
        await world.service.enrol_device("ent-1", EnrolRequest("dev-1", private), "admin-1")
    assert err.value.code == "invalid_key"


async def test_re_enrolling_with_another_key_conflicts(world):
    await world.enrol()
    with pytest.raises(SessionError) as err:
        await world.enrol()
    assert err.value.status == 409


async def test_retire_checks_in_the_live_session_first(world):
    s = await world.checkout()
    await world.service.retire_device("ent-1", "dev-1", "admin-1")
    assert world.publisher.types()[-2:] == ["session.device_checked_in.v1", "session.device_retired.v1"]
    assert world.publisher.events[-2].payload.reason == "device_retired"
    assert (await world.session(s.device_session_id)).state is State.CLOSED
    device = await world.store.get_device("ent-1", "dev-1")
    with pytest.raises(SessionError) as err:
        await world.service.authenticate_device("ent-1", "dev-1", f"proof-for:{device.jkt}", "POST", "u")
    assert err.value.code == "device_retired"


# ------------------------------------------------------------------------------ checkout


async def test_checkout_publishes_checked_out_with_sequence_one_and_the_device_key(world):
    device = await world.enrol()
    s = await world.service.checkout(device, world.assertion(), report=world.report)
    event = world.publisher.events[-1]
    assert event.type == "session.device_checked_out.v1"
    assert event.payload.sequence == 1 and event.payload.device_jkt == device.jkt
    assert event.payload.amr == ("pwd", "otp") and event.payload.device_session_id == s.device_session_id
    assert len(s.device_session_id) >= 22  # ≥ 128 random bits, url-safe
    assert world.store.outbox == {}


async def test_second_checkout_of_a_checked_out_device_conflicts(world):
    first = await world.checkout()
    with pytest.raises(SessionError) as err:
        await world.checkout(user="u-2")
    assert err.value.status == 409 and err.value.code == "device_checked_out"
    assert (await world.session(first.device_session_id)).state is State.ACTIVE


async def test_org_setting_checks_the_previous_user_in_first(world):
    world.store.org["ent-1"] = OrgSettings(checkin_previous_on_checkout=True)
    first = await world.checkout()
    second = await world.checkout(user="u-2")
    tail = world.publisher.events[-2:]
    assert [e.type for e in tail] == ["session.device_checked_in.v1", "session.device_checked_out.v1"]
    assert tail[0].payload.reason == "replaced" and tail[0].payload.device_session_id == first.device_session_id
    assert tail[1].payload.user_id == "u-2"
    assert await world.store.current_session_id("ent-1", "dev-1") == second.device_session_id


async def test_checkout_after_checkin_is_allowed(world):
    first = await world.checkout()
    await world.service.check_in(first, "user")
    second = await world.checkout(user="u-2")
    assert second.state is State.ACTIVE


async def test_second_factor_required_by_default(world):
    with pytest.raises(SessionError) as err:
        await world.checkout(amr=("pwd",))
    assert err.value.status == 403 and err.value.code == "second_factor_required"
    assert "session.device_checked_out.v1" not in world.publisher.types()


async def test_a_badge_alone_is_not_a_second_factor(world):
    """A badge tap is the IdP's primary factor (amr `hwk`): alone, it never satisfies "Require a
    second factor"; a badge and a code do."""
    with pytest.raises(SessionError) as err:
        await world.checkout(amr=("hwk",))
    assert err.value.status == 403 and err.value.code == "second_factor_required"
    s = await world.checkout(amr=("hwk", "otp"))
    assert s.amr == ("hwk", "otp")


async def test_second_factor_not_required_when_the_org_turns_it_off(world):
    world.store.org["ent-1"] = OrgSettings(require_second_factor=False)
    s = await world.checkout(amr=("pwd",))
    assert s.amr == ("pwd",)


async def test_assertion_is_single_use(world):
    device = await world.enrol()
    token = world.assertion(jti="once")
    s = await world.service.checkout(device, token, report=world.report)
    await world.service.check_in(s, "user")
    with pytest.raises(SessionError) as err:
        await world.service.checkout(device, token, report=world.report)
    assert err.value.code == "assertion_replayed"


async def test_assertion_for_another_device_is_refused(world):
    device = await world.enrol()
    with pytest.raises(SessionError) as err:
        await world.service.checkout(device, world.assertion(device_id="dev-2"), report=world.report)
    assert err.value.status == 403 and err.value.code == "device_mismatch"


async def test_invalid_assertion_is_refused(world):
    device = await world.enrol()
    with pytest.raises(SessionError) as err:
        await world.service.checkout(device, "invalid", report=world.report)
    assert err.value.status == 401 and err.value.code == "invalid_assertion"


async def test_a_wrong_proof_is_refused(world):
    await world.enrol()
    with pytest.raises(SessionError) as err:
        await world.service.authenticate_device("ent-1", "dev-1", "proof-for:someone-else", "POST", "u")
    assert err.value.status == 401 and err.value.code == "invalid_proof"
    with pytest.raises(SessionError):
        await world.service.authenticate_device("ent-1", "dev-1", None, "POST", "u")


# ------------------------------------------------------------------------------ outbox


async def test_broker_failure_answers_503_and_the_relay_publishes_later(world):
    device = await world.enrol()
    world.publisher.fail = True
    with pytest.raises(SessionError) as err:
        await world.service.checkout(device, world.assertion(), report=world.report)
    assert err.value.status == 503
    assert len(world.store.outbox) == 1
    world.publisher.fail = False
    assert await world.service.relay_outbox() == 0  # still within the request path's grace period
    world.clock.advance(6)
    assert await world.service.relay_outbox() == 1
    assert world.publisher.types()[-1] == "session.device_checked_out.v1"
    assert world.store.outbox == {}


async def test_a_retried_checkin_answers_only_once_its_event_is_acknowledged(world):
    """Issue 11: with the broker down a checkin answered 503 event_pending, and its retry 0.5 s
    later answered 200 while the broker was still down (the session was already CLOSED)."""
    s = await world.checkout()
    world.publisher.fail = True
    with pytest.raises(SessionError) as first:
        await world.service.check_in(s, "user")
    assert first.value.status == 503 and first.value.code == "event_pending"
    with pytest.raises(SessionError) as retried:  # still down: not a success
        await world.service.check_in(s, "user")
    assert retried.value.code == "event_pending"
    assert "session.device_checked_in.v1" not in world.publisher.types()
    world.publisher.fail = False
    closed = await world.service.check_in(s, "user")  # the broker is back: the retry publishes it
    assert closed.state is State.CLOSED
    assert world.publisher.types()[-1] == "session.device_checked_in.v1" and world.store.outbox == {}
    again = await world.service.check_in(s, "user")
    assert again.state is State.CLOSED and world.publisher.types().count("session.device_checked_in.v1") == 1


async def test_a_retried_checkout_returns_its_session_once_acknowledged_and_a_replay_is_refused(world):
    device = await world.enrol()
    token = world.assertion(jti="retried")
    world.publisher.fail = True
    with pytest.raises(SessionError) as first:
        await world.service.checkout(device, token, report=world.report)
    assert first.value.code == "event_pending"
    with pytest.raises(SessionError) as retried:
        await world.service.checkout(device, token, report=world.report)
    assert retried.value.code == "event_pending"
    world.publisher.fail = False
    session = await world.service.checkout(device, token, report=world.report)
    assert world.publisher.types()[-1] == "session.device_checked_out.v1" and world.store.outbox == {}
    again = await world.service.checkout(device, token, report=world.report)
    assert again.device_session_id == session.device_session_id
    assert world.publisher.types().count("session.device_checked_out.v1") == 1
    await world.service.check_in(session, "user")
    with pytest.raises(SessionError) as replay:  # its session is over: the assertion is spent
        await world.service.checkout(device, token, report=world.report)
    assert replay.value.code == "assertion_replayed"


async def test_a_relay_that_meets_the_broker_down_puts_events_back_for_the_next_round(world):
    s = await world.checkout()
    world.publisher.fail = True
    with pytest.raises(SessionError):
        await world.service.check_in(s, "user")
    world.clock.advance(6)
    with pytest.raises(ConnectionError):
        await world.service.relay_outbox()
    world.publisher.fail = False
    world.clock.advance(world.service.settings.outbox_interval_s + 0.01)  # not the 30 s lease
    assert await world.service.relay_outbox() == 1
    assert world.publisher.types()[-1] == "session.device_checked_in.v1" and world.store.outbox == {}


# ------------------------------------------------------------------------------ timers


async def test_inactivity_in_passcode_mode_checks_in_when_due_and_not_before(world):
    s = await world.checkout()
    await world.grant(s, inactivity_timeout_s=60)
    world.clock.advance(59)
    assert await world.service.fire_due_timers() == 0
    world.clock.advance(1)
    assert await world.service.fire_due_timers() == 1
    last = world.publisher.events[-1]
    assert last.type == "session.device_checked_in.v1" and last.payload.reason == "inactivity"
    assert last.payload.sequence == 2
    assert world.store.timers == {}


async def test_heartbeat_postpones_inactivity(world):
    s = await world.checkout()
    await world.grant(s, inactivity_timeout_s=60)
    world.clock.advance(50)
    await world.service.heartbeat(s)
    world.clock.advance(50)
    assert await world.service.fire_due_timers() == 0
    assert (await world.session(s.device_session_id)).state is State.ACTIVE
    world.clock.advance(10)
    assert await world.service.fire_due_timers() == 1


async def test_inactivity_in_face_mode_locks_then_face_unlocks(world):
    s = await world.checkout()
    await world.grant(s, auth_mode="face", face_allowed=True, inactivity_timeout_s=60)
    world.clock.advance(61)
    assert await world.service.fire_due_timers() == 1
    locked = world.publisher.events[-1]
    assert locked.type == "session.device_locked.v1" and locked.payload.reason == "inactivity"
    session = await world.session(s.device_session_id)
    challenge, expires_at = await world.service.face_challenge(session)
    assert expires_at > world.clock.now()
    after, t = await world.service.face_result(session, world.face_result(challenge))
    assert after.state is State.ACTIVE and t.unlocked
    verified = world.publisher.events[-1]
    assert verified.type == "session.face_verified.v1" and verified.payload.unlocked is True
    assert verified.payload.sequence == 3


async def test_max_session_checks_in(world):
    s = await world.checkout()
    await world.grant(s, inactivity_timeout_s=10_000, max_session_s=600)
    world.clock.advance(600)
    assert await world.service.fire_due_timers() == 1
    assert world.publisher.events[-1].payload.reason == "max_session"


async def test_default_max_session_applies_until_a_grant_arrives(world):
    s = await world.checkout()
    world.clock.advance(3600)
    await world.service.fire_due_timers()
    assert (await world.session(s.device_session_id)).closed_reason == "max_session"


async def test_two_instances_fire_each_timer_once(world):
    sessions = []
    for i in range(5):
        s = await world.checkout(device_id=f"dev-{i}")
        await world.grant(s, inactivity_timeout_s=60)
        sessions.append(s)
    world.clock.advance(61)
    other = world.sibling()
    fired = (
        await world.service.fire_due_timers(limit=3)
        + await other.fire_due_timers()
        + await world.service.fire_due_timers()
    )
    assert fired == 5
    checkins = [e for e in world.publisher.events if e.type == "session.device_checked_in.v1"]
    assert sorted(e.payload.device_session_id for e in checkins) == sorted(s.device_session_id for s in sessions)


async def test_a_claimed_timer_lost_in_a_crash_fires_after_its_lease(world):
    s = await world.checkout()
    await world.grant(s, inactivity_timeout_s=60)
    world.clock.advance(61)
    claimed = await world.store.claim_due_timers(world.clock.now(), 30, 10)  # an instance dies here
    assert len(claimed) == 1
    assert await world.service.fire_due_timers() == 0
    world.clock.advance(31)
    assert await world.service.fire_due_timers() == 1
    assert world.publisher.events[-1].payload.reason == "inactivity"


# ------------------------------------------------------------------------------ face


async def test_face_needs_a_grant_that_allows_it(world):
    s = await world.checkout()
    with pytest.raises(SessionError) as err:
        await world.service.face_challenge(s)
    assert err.value.status == 403 and err.value.code == "face_not_allowed"
    await world.grant(s, auth_mode="face", face_allowed=False)
    with pytest.raises(SessionError):
        await world.service.face_challenge(await world.session(s.device_session_id))


async def face_session(world, **org):
    world.store.org["ent-1"] = replace(OrgSettings(), **org)
    s = await world.checkout()
    await world.grant(s, auth_mode="face", face_allowed=True)
    return await world.session(s.device_session_id)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda w, c: w.face_result(c, match=0.5), "no_match"),
        (lambda w, c: w.face_result(c, liveness=0.5), "not_live"),
        (lambda w, c: w.face_result(c, subject="someone-else"), "wrong_subject"),
        (lambda w, c: w.face_result("never-issued-challenge"), "stale_challenge"),
        (lambda w, c: "forged", "bad_signature"),
    ],
)
async def test_face_failures_are_published_with_their_reason(world, make, reason):
    s = await face_session(world)
    challenge, _ = await world.service.face_challenge(s)
    after, t = await world.service.face_result(s, make(world, challenge))
    assert t.kind == "face_failed" and t.reason == reason and after.state is State.ACTIVE
    event = world.publisher.events[-1]
    assert event.type == "session.face_verification_failed.v1"
    assert event.payload.reason == reason and event.payload.failures == 1


async def test_a_challenge_is_single_use(world):
    s = await face_session(world)
    challenge, _ = await world.service.face_challenge(s)
    await world.service.face_result(s, world.face_result(challenge))
    _, t = await world.service.face_result(s, world.face_result(challenge))
    assert t.reason == "stale_challenge"


async def test_thresholds_come_from_org_settings(world):
    s = await face_session(world, face_match_threshold=0.5, face_liveness_threshold=0.5)
    challenge, _ = await world.service.face_challenge(s)
    _, t = await world.service.face_result(s, world.face_result(challenge, match=0.6, liveness=0.6))
    assert t.kind == "face_verified"


async def test_face_failures_up_to_the_limit_check_the_user_in(world):
    s = await face_session(world, face_max_failures=3)
    for _ in range(3):
        challenge, _ = await world.service.face_challenge(s)
        after, t = await world.service.face_result(s, world.face_result(challenge, match=0.1))
    assert t.limit_reached and after.state is State.CLOSED
    assert world.publisher.types()[-2:] == ["session.face_verification_failed.v1", "session.device_checked_in.v1"]
    assert world.publisher.events[-1].payload.reason == "face_failures"
    with pytest.raises(SessionError) as err:
        await world.service.face_challenge(after)
    assert err.value.status == 409


# ------------------------------------------------------------------------------ checkin


async def test_user_checkin_is_idempotent(world):
    s = await world.checkout()
    closed = await world.service.check_in(s, "user")
    again = await world.service.check_in(s, "user")
    assert closed.state is again.state is State.CLOSED
    assert world.publisher.types().count("session.device_checked_in.v1") == 1
    assert await world.store.list_live("ent-1") == []


async def test_a_checkin_of_a_session_the_store_lost_meanwhile_is_a_retry_not_done(world):
    """Found by the soak (redis-flush:session): a checkin authenticated against the session, the
    store flushed, then the change found nothing and answered 200 "checked in" — with no event
    on the broker, so the clinician's apps stayed signed in. Now it is a 503 to retry (the
    restarted service rebuilds the session from Kafka and the retry checks it in)."""
    s = await world.checkout()
    lost = dict(world.store.sessions)
    world.store.sessions.clear()
    with pytest.raises(SessionError) as err:
        await world.service.check_in(s, "user")
    assert err.value.status == 503 and err.value.code == "temporarily_unavailable"
    assert "session.device_checked_in.v1" not in world.publisher.types()
    world.store.sessions.update(lost)  # rebuilt
    closed = await world.service.check_in(s, "user")
    assert closed.state is State.CLOSED and world.publisher.types()[-1] == "session.device_checked_in.v1"


async def test_admin_force_checkin(world):
    s = await world.checkout()
    await world.service.force_check_in("ent-1", s.device_session_id, "admin-7")
    event = world.publisher.events[-1]
    assert event.payload.reason == "admin" and event.actor == "admin-7"
    with pytest.raises(SessionError) as err:
        await world.service.force_check_in("ent-1", "no-such-session-id", "admin-7")
    assert err.value.status == 404


async def test_sessions_are_scoped_by_enterprise(world):
    s = await world.checkout()
    with pytest.raises(SessionError) as err:
        await world.service.force_check_in("ent-2", s.device_session_id, "admin-7")
    assert err.value.status == 404


# ------------------------------------------------------------------ Locker prerequisites


async def test_an_outdated_locker_is_refused_after_the_refusal_is_announced_and_spends_the_assertion(world):
    from lanyard.session.domain import ClientReport

    device = await world.enrol()
    token = world.assertion()
    with pytest.raises(SessionError) as err:
        await world.service.checkout(device, token, report=ClientReport("4.2", True))
    assert (err.value.status, err.value.code, err.value.extra) == (403, "locker_update_required",
                                                                   {"minimum_locker_version": "4.3"})  # fmt: skip
    refused = world.publisher.events[-1]
    assert refused.type == "session.checkout_refused.v1" and refused.payload.locker_version == "4.2"
    assert world.store.outbox == {} and world.store.current == {}
    with pytest.raises(SessionError) as again:
        await world.service.checkout(device, token, report=world.report)
    assert again.value.code == "assertion_replayed"


async def test_a_refusal_the_broker_did_not_acknowledge_stays_in_the_outbox(world):
    from lanyard.session.domain import ClientReport

    device = await world.enrol()
    world.publisher.fail = True
    with pytest.raises(SessionError) as err:
        await world.service.checkout(device, world.assertion(), report=ClientReport(None, None))
    assert err.value.status == 503
    world.publisher.fail = False
    world.clock.advance(6)
    assert await world.service.relay_outbox() == 1
    assert world.publisher.types()[-1] == "session.checkout_refused.v1"


async def test_the_checkout_carries_the_locker_report_and_the_view_the_options(world):
    from lanyard.contracts import events as ev

    s = await world.checkout()
    event = world.publisher.events[-1]
    assert (event.payload.locker_version, event.payload.sso_extension_installed) == ("4.3.0", True)
    for version, hide in ((2, True), (1, False)):
        payload = ev.LockerOptionsChangedPayload(version=version, hide_password_autofill_prompt=hide)
        await world.service.locker_options_changed(
            ev.LockerOptionsChanged(enterprise_id="ent-1", producer="policy", payload=payload)
        )
    view = await world.service.locker_view(s)
    assert view["locker_options"] == {"version": 2, "hide_password_autofill_prompt": True,
                                      "show_sso_status_at_checkout": True}  # fmt: skip
    assert view["locker_version"] == "4.3.0" and view["sso"]["status"] == "unavailable"  # org setting off by default


def test_a_handle_never_starts_with_a_dash_so_a_command_line_cannot_read_it_as_an_option(monkeypatch):
    from lanyard.session import service

    drawn = iter(["-eAbC", "--x", "AbC-d"])
    monkeypatch.setattr(service.secrets, "token_urlsafe", lambda n: next(drawn))
    assert service.new_handle() == "AbC-d"  # drawn again until the first character is not "-"


def test_a_real_handle_carries_192_random_bits_url_safe():
    from lanyard.session.service import new_handle

    handles = {new_handle() for _ in range(2000)}
    assert len(handles) == 2000
    assert not any(h.startswith("-") for h in handles)  # 2,000 draws: ≈ 31 would have, before
    assert all(len(h) == 32 and h.replace("-", "").replace("_", "").isalnum() for h in handles)
