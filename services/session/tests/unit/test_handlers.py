"""Each consumed message, through SessionHandlers, over fakes: effect, idempotence, CLOSED ignored."""

from datetime import UTC, datetime

import pytest

from lanyard.contracts import events as ev
from lanyard.session.domain import State
from lanyard.session.handlers import SessionHandlers


def ids(s):
    return {"device_session_id": s.device_session_id, "device_id": s.device_id, "user_id": s.user_id}


def granted(s, version=1, **kw):
    payload = {**ids(s), "version": version, "apps": ["rover"], "auth_mode": "passcode", "inactivity_timeout_s": 60,
               "max_session_s": 600, "face_allowed": False, "policy_id": "p-1", **kw}  # fmt: skip
    return ev.EntitlementGranted(
        enterprise_id=s.enterprise_id, producer="policy", payload=ev.EntitlementGrantedPayload(**payload)
    )


def revoked(s):
    return ev.EntitlementRevoked(
        enterprise_id=s.enterprise_id, producer="policy",
        payload=ev.EntitlementRevokedPayload(**ids(s), reason="policy_changed"),
    )  # fmt: skip


def denied(s):
    return ev.EntitlementDenied(
        enterprise_id=s.enterprise_id, producer="policy",
        payload=ev.EntitlementDeniedPayload(**ids(s), reason="no_sso_licence"),
    )  # fmt: skip


def authorization(s, at):
    return ev.AuthorizationGranted(
        enterprise_id=s.enterprise_id, producer="idp", occurred_at=at,
        payload=ev.AuthorizationGrantedPayload(
            client_id="rover", user_id=s.user_id, sid="sid-1", via="sso_extension",
            device_session_id=s.device_session_id,
        ),
    )  # fmt: skip


def refreshed(s, at):
    return ev.TokensRefreshed(
        enterprise_id=s.enterprise_id, producer="idp", occurred_at=at,
        payload=ev.TokensIssuedPayload(
            client_id="rover", user_id=s.user_id, sid="sid-1", grant_id="g-1", grant_type="refresh_token",
            device_session_id=s.device_session_id,
        ),
    )  # fmt: skip


def at(world, offset):
    return datetime.fromtimestamp(world.clock.now() + offset, UTC)


@pytest.fixture
def handlers(world):
    return SessionHandlers(world.service)


async def test_granted_stores_the_entitlement_and_schedules_inactivity(world, handlers):
    s = await world.checkout()
    event = granted(s, inactivity_timeout_s=45, max_session_s=900, auth_mode="face", face_allowed=True)
    await handlers.handle(event)
    await handlers.handle(event)  # redelivered
    stored = await world.session(s.device_session_id)
    assert stored.entitlement.inactivity_timeout_s == 45 and stored.entitlement.auth_mode == "face"
    assert world.store.timers[f"ent-1|{s.device_session_id}|inactivity"] == s.checked_out_at + 45
    assert world.store.timers[f"ent-1|{s.device_session_id}|max_session"] == s.checked_out_at + 900


async def test_an_older_grant_arriving_late_loses(world, handlers):
    s = await world.checkout()
    await handlers.handle(granted(s, version=2, inactivity_timeout_s=30))
    await handlers.handle(granted(s, version=1, inactivity_timeout_s=999))
    assert (await world.session(s.device_session_id)).entitlement.version == 2


@pytest.mark.parametrize("make", [revoked, denied])
async def test_revoked_and_denied_check_the_session_in(world, handlers, make):
    s = await world.checkout()
    event = make(s)
    await handlers.handle(event)
    await handlers.handle(event)  # redelivered
    checkins = [e for e in world.publisher.events if e.type == "session.device_checked_in.v1"]
    assert len(checkins) == 1 and checkins[0].payload.reason == "entitlement_revoked"
    assert checkins[0].payload.sequence == 2
    assert (await world.session(s.device_session_id)).state is State.CLOSED


async def test_events_for_a_closed_session_are_ignored(world, handlers):
    s = await world.checkout()
    await world.service.check_in(s, "user")
    published = len(world.publisher.events)
    await handlers.handle(granted(s, version=5))
    await handlers.handle(revoked(s))
    await handlers.handle(authorization(s, at(world, 1)))
    stored = await world.session(s.device_session_id)
    assert stored.entitlement is None and stored.closed_reason == "user"
    assert len(world.publisher.events) == published


async def test_events_for_an_unknown_session_are_ignored(world, handlers):
    s = await world.checkout()
    other = type("S", (), {**ids(s), "device_session_id": "unknown-session-id", "enterprise_id": "ent-1"})
    await handlers.handle(granted(other))
    await handlers.handle(revoked(other))
    assert (await world.session(s.device_session_id)).state is State.ACTIVE


@pytest.mark.parametrize("make", [authorization, refreshed])
async def test_sso_activity_resets_the_inactivity_timer(world, handlers, make):
    s = await world.checkout()
    await handlers.handle(granted(s, inactivity_timeout_s=60))
    world.clock.advance(50)
    await handlers.handle(make(s, at(world, 0)))
    world.clock.advance(50)
    assert await world.service.fire_due_timers() == 0
    world.clock.advance(11)
    assert await world.service.fire_due_timers() == 1
    assert world.publisher.events[-1].payload.reason == "inactivity"


async def test_sso_activity_is_kept_to_the_resolution_and_costs_one_update_per_burst(world, handlers):
    s = await world.checkout()
    await handlers.handle(granted(s, inactivity_timeout_s=60))
    world.clock.advance(10)
    base = world.clock.now()
    writes = []
    real_mutate = world.store.mutate

    async def counting_mutate(*args, **kw):
        writes.append(args[1])
        return await real_mutate(*args, **kw)

    world.store.mutate = counting_mutate
    for offset in (0.0, 0.2, 0.5, 0.9):  # one burst: an app signing in and refreshing
        await handlers.handle(refreshed(s, datetime.fromtimestamp(base + offset, UTC)))
    assert len(writes) == 1 and (await world.session(s.device_session_id)).last_activity_at == base
    world.clock.advance(2)
    await handlers.handle(refreshed(s, datetime.fromtimestamp(base + 1.0, UTC)))  # a resolution later: applied
    assert len(writes) == 2 and (await world.session(s.device_session_id)).last_activity_at == base + 1.0


async def test_sso_activity_without_a_device_session_is_ignored(world, handlers):
    s = await world.checkout()
    event = ev.AuthorizationGranted(
        enterprise_id="ent-1", producer="idp",
        payload=ev.AuthorizationGrantedPayload(client_id="rover", user_id="u-1", sid="sid", via="interactive"),
    )  # fmt: skip
    await handlers.handle(event)
    assert (await world.session(s.device_session_id)).last_activity_at == s.last_activity_at


async def test_org_settings_are_kept_per_enterprise(world, handlers):
    event = ev.OrgSettingsChanged(
        enterprise_id="ent-1", producer="policy",
        payload=ev.OrgSettingsChangedPayload(
            password_autofill_and_sso=True, require_second_factor=False, checkin_previous_on_checkout=True,
            face_match_threshold=0.7, face_max_failures=2,
        ),
    )  # fmt: skip
    await handlers.handle(event)
    org = await world.service.org_settings("ent-1")
    assert org.password_autofill_and_sso and not org.require_second_factor and org.checkin_previous_on_checkout
    assert org.face_match_threshold == 0.7 and org.face_max_failures == 2
    assert (await world.service.org_settings("ent-2")).require_second_factor is True
    s = await world.checkout(amr=("pwd",))  # second factor no longer required in ent-1
    assert s.state is State.ACTIVE


async def test_other_event_types_change_nothing(world, handlers):
    s = await world.checkout()
    published = len(world.publisher.events)
    await handlers.handle(world.publisher.events[-1])  # our own checked_out, read back
    assert len(world.publisher.events) == published
    assert (await world.session(s.device_session_id)).sequence == 1


async def test_a_batch_applies_grants_together_and_everything_in_its_order(world, handlers):
    a, b = await world.checkout(device_id="dev-a"), await world.checkout(device_id="dev-b")
    batch = [granted(a, version=1), granted(b, version=1), revoked(a), granted(a, version=2), granted(b, version=3)]
    await handlers.handle_batch([(event, None) for event in batch])
    stored_a, stored_b = await world.session(a.device_session_id), await world.session(b.device_session_id)
    # a's revocation came between its grants: it is checked in and the later grant is ignored.
    assert stored_a.state is State.CLOSED and stored_a.entitlement.version == 1
    assert stored_b.state is State.ACTIVE and stored_b.entitlement.version == 3
    await handlers.handle_batch([(event, None) for event in batch])  # redelivered
    checkins = [e for e in world.publisher.events if e.type == "session.device_checked_in.v1"]
    assert [e.payload.device_session_id for e in checkins] == [a.device_session_id]


async def test_a_batch_of_sso_activity_is_one_write_that_keeps_each_session_s_latest(world, handlers):
    a, b = await world.checkout(device_id="dev-a"), await world.checkout(device_id="dev-b")
    await handlers.handle_batch([(granted(a), None), (granted(b), None)])
    world.clock.advance(10)
    base = world.clock.now()
    writes = []
    real = world.store.mutate_many

    async def counting(items):
        writes.append(sorted({dsid for _, dsid, _ in items}))
        return await real(items)

    world.store.mutate_many = counting
    burst = [refreshed(a, at(world, 0)), authorization(b, at(world, 0.5)), refreshed(a, at(world, 0.4))]
    world.clock.advance(1)  # the records arrive a moment after the sign-ins
    await handlers.handle_batch([(event, None) for event in burst])
    # One write for the batch; a's second refresh is within the resolution of its first.
    assert writes == [sorted([a.device_session_id, b.device_session_id])]
    assert (await world.session(a.device_session_id)).last_activity_at == base
    assert (await world.session(b.device_session_id)).last_activity_at == base + 0.5
    await handlers.handle_batch([(event, None) for event in burst])  # redelivered: nothing to write
    assert len(writes) == 1
