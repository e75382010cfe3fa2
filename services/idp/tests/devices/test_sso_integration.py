"""Device-session SSO on the real broker and Redis: events in, read model, authenticate, revocation."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from lanyard.idp.devices.domain import DeviceSsoError, SessionLocked, sid_for
from lanyard.runtime.testing import eventually

pytestmark = pytest.mark.integration


async def _state(app, device):
    view = await app.state.devices.store.load(device.eid, device.dsid)
    return view.state if view else None


def _calls(ports, d):
    """Revocations of this device session (a new consumer group also replays earlier tests' events)."""
    return [c for c in ports.revoker.calls if c[1] == d.dsid]


async def _publish(app, *events) -> None:
    await app.state.runtime.publisher.publish_all(events)


async def _auth(app, device, client: str = "rover", proof: str | None = None, method: str = "GET", url=None):
    sessions = app.state.devices.sessions
    return await sessions.authenticate(
        device.eid, client, device.dsid, proof or device.proof(method, url), method, url or device.url
    )


async def _refused(app, device, client: str = "rover", **kw) -> DeviceSsoError:
    with pytest.raises(DeviceSsoError) as info:
        await _auth(app, device, client, **kw)
    return info.value


async def test_checkout_and_grant_give_sso_into_every_granted_app_with_one_sid(
    kafka_bootstrap, redis_client, kit, keys
):
    ports = kit.Ports(keys=keys)
    async with kit.running_idp(ports) as app:
        d = kit.Device.new()
        await _publish(app, d.checked_out(), d.granted("rover", "haiku"))
        await eventually(lambda: _granted(app, d), 10, what="grant applied")
        view = await app.state.devices.store.load(d.eid, d.dsid)
        assert view.state == "ACTIVE" and view.device_jkt == d.jkt and view.apps == ("rover", "haiku")
        rover = await _auth(app, d, "rover")
        haiku = await _auth(app, d, "haiku", method="POST")
        assert rover.sid == haiku.sid == sid_for(d.eid, d.dsid)
        assert (rover.user_id, rover.device_id, rover.device_session_id) == (d.user_id, d.device_id, d.dsid)
        assert rover.amr == ("pwd", "otp") and abs(rover.auth_time - time.time()) < 60
        sessions = app.state.devices.sessions
        assert await sessions.is_active(d.eid, d.dsid)
        assert await sessions.may_refresh(d.eid, d.dsid, "rover")
        assert not await sessions.may_refresh(d.eid, d.dsid, "epic-other")


async def _granted(app, d) -> bool:
    view = await app.state.devices.store.load(d.eid, d.dsid)
    return bool(view and view.granted and view.checked_out)


async def test_every_refusal_of_authenticate(kafka_bootstrap, redis_client, kit, keys):
    ports = kit.Ports(keys=keys)
    # The production wait bound: an idle consumer shows itself caught up about every fetch wait
    # (0.5 s), which an unknown handle's answer needs (below).
    async with kit.running_idp(ports, kit.fast_settings(grant_wait_s=2.0)) as app:
        d = kit.Device.new()
        await _publish(app, d.checked_out(), d.granted("rover"))
        await eventually(lambda: _granted(app, d), 10)

        # The org setting is off.
        ports.org.sso[d.eid] = False
        assert (await _refused(app, d)).error == "access_denied"
        ports.org.sso[d.eid] = True

        # Proofs: another key, replay, another URL, another method, another handle, stale, garbage.
        thief = kit.Device.new(d.eid)
        err = await _refused(app, d, proof=thief.proof(handle=d.dsid))
        assert err.error == "invalid_request" and "device key" in err.description
        replayed = d.proof()
        await _auth(app, d, proof=replayed)
        assert "replayed" in (await _refused(app, d, proof=replayed)).description
        # The replay mark is set with the view's read, but only for a proof whose signature held:
        # a tampered copy is refused and marks nothing, so the genuine proof is still its first use.
        genuine = d.proof()
        tampered = genuine[:-6] + ("AAAAAA" if not genuine.endswith("AAAAAA") else "BBBBBB")
        assert "signature" in (await _refused(app, d, proof=tampered)).description
        assert (await _auth(app, d, proof=genuine)).user_id == d.user_id
        other_url = d.proof(url=f"http://127.0.0.1:8480/e/{d.eid}/token")
        assert "URL" in (await _refused(app, d, proof=other_url)).description
        assert "method" in (await _refused(app, d, proof=d.proof("POST"))).description
        assert "device session" in (await _refused(app, d, proof=d.proof(handle="ds-other"))).description
        assert "stale" in (await _refused(app, d, proof=d.proof(iat=time.time() - 3600))).description
        assert (await _refused(app, d, proof="not-a-jwt")).error == "invalid_request"
        with pytest.raises(DeviceSsoError) as bad_handle:
            await app.state.devices.sessions.authenticate(d.eid, "rover", "../etc", d.proof(), "GET", d.url)
        assert bad_handle.value.error == "invalid_request"

        # The client is not in the grant.
        assert (await _refused(app, d, "not-deployed")).error == "access_denied"

        # Unknown handle: once the consumer is shown caught up since the request (no checkout of
        # it can be in flight), asks for a checkout — without waiting out the bound.
        ghost = kit.Device.new(d.eid)
        asked = time.monotonic()
        err = await _refused(app, ghost)
        assert (err.error, err.description, err.action) == ("login_required", "unknown device session", "checkout")
        assert time.monotonic() - asked < 2.0

        # Locked: face verification needed; refresh refused until then (not for good); tokens stay valid.
        await _publish(app, d.locked())
        await eventually(lambda: _is(app, d, "LOCKED"), 10)
        err = await _refused(app, d)
        assert (err.error, err.action) == ("interaction_required", "face_verification")
        sessions = app.state.devices.sessions
        assert await sessions.is_active(d.eid, d.dsid)
        with pytest.raises(SessionLocked):
            await sessions.may_refresh(d.eid, d.dsid, "rover")
        assert not await sessions.may_refresh(d.eid, d.dsid, "epic-other")  # never granted: refused, not locked

        # Face verification unlocks.
        await _publish(app, d.face_verified())
        await eventually(lambda: _is(app, d, "ACTIVE"), 10)
        assert (await _auth(app, d)).user_id == d.user_id
        assert await sessions.may_refresh(d.eid, d.dsid, "rover")

        # Checked in: a new checkout is needed.
        await _publish(app, d.checked_in())
        await eventually(lambda: _is(app, d, "CLOSED"), 10)
        err = await _refused(app, d)
        assert (err.error, err.action) == ("login_required", "checkout")


async def _is(app, d, state: str) -> bool:
    return await _state(app, d) == state


async def test_a_checkout_the_held_consumer_has_not_applied_is_a_retry_then_signs_in(
    kafka_bootstrap, redis_client, kit, keys
):
    """Finding 9: with the device consumer held (paused: as when it is down or restarting), the
    view is still within its staleness bound, yet a checkout published meanwhile is not in it.
    The IdP cannot show it caught up since the SSO arrived: a retry, never "check out again";
    once the consumer moves on, the same SSO signs in."""
    ports = kit.Ports(keys=keys)
    async with kit.running_idp(ports, kit.fast_settings(max_staleness_s=30.0)) as app:
        devices = app.state.devices
        consumer = devices.subscriber.consumer
        d = kit.Device.new()
        held = list(consumer.assignment())
        consumer.pause(*held)
        try:
            await _publish(app, d.checked_out(), d.granted("rover"))
            assert devices.freshness.fresh  # not the stale-view refusal: the view vouches for itself
            err = await _refused(app, d)
            assert (err.error, err.action) == ("temporarily_unavailable", None)
            assert await devices.store.load(d.eid, d.dsid) is None  # nothing applied: nothing minted
        finally:
            consumer.resume(*held)
        login = await eventually(lambda: _auth_or_none(app, d), 15, what="the same SSO signs in")
        assert (login.user_id, login.device_session_id) == (d.user_id, d.dsid)


async def _auth_or_none(app, d):
    try:
        return await _auth(app, d)
    except DeviceSsoError as err:
        assert err.error == "temporarily_unavailable", err  # only ever a retry meanwhile
        return None


async def test_face_mode_needs_a_recent_face_verification(kafka_bootstrap, redis_client, kit, keys):
    ports = kit.Ports(keys=keys)
    async with kit.running_idp(ports) as app:
        d = kit.Device.new()
        old = datetime.now(UTC) - timedelta(seconds=120)
        await _publish(app, d.checked_out(), d.granted("rover", mode="face", face_recency_s=60), d.face_verified(old))
        await eventually(lambda: _face_seen(app, d), 10)
        err = await _refused(app, d)
        assert (err.error, err.action) == ("interaction_required", "face_verification")
        await _publish(app, d.face_verified())
        await eventually(lambda: _face_recent(app, d), 10)
        assert (await _auth(app, d)).device_session_id == d.dsid


async def _face_seen(app, d):
    view = await app.state.devices.store.load(d.eid, d.dsid)
    return bool(view and view.granted and view.face_verified_at)


async def _face_recent(app, d):
    view = await app.state.devices.store.load(d.eid, d.dsid)
    return bool(view and view.face_verified_at and time.time() - view.face_verified_at < 30)


async def test_a_grant_in_flight_right_after_checkout_is_waited_for(kafka_bootstrap, redis_client, kit, keys):
    ports = kit.Ports(keys=keys)
    async with kit.running_idp(ports, kit.fast_settings(grant_wait_s=5.0)) as app:
        d = kit.Device.new()
        # The SSO request arrives before the IdP has seen either the checkout or the grant.
        attempt = asyncio.create_task(_auth(app, d))
        await asyncio.sleep(0.2)
        assert not attempt.done()
        await _publish(app, d.checked_out())
        await asyncio.sleep(0.2)
        await _publish(app, d.granted("rover"))
        login = await asyncio.wait_for(attempt, 10)
        assert login.user_id == d.user_id

        # Without a grant, the wait is bounded and the answer says to retry.
    async with kit.running_idp(ports, kit.fast_settings(grant_wait_s=0.3)) as app:
        e = kit.Device.new()
        await _publish(app, e.checked_out())
        await eventually(lambda: _is(app, e, "ACTIVE"), 10)
        assert (await _refused(app, e)).error == "temporarily_unavailable"


async def test_checkin_revokes_in_one_hop_and_queues_back_channel_logouts(kafka_bootstrap, redis_client, kit, keys):
    ports = kit.Ports(keys=keys)
    async with kit.running_idp(ports, kit.fast_settings(bcl_poll_s=60)) as app:
        d = kit.Device.new()
        ports.clients.add(d.eid, "rover")  # public native app: no back-channel URI
        ports.clients.add(d.eid, "portal", "http://127.0.0.1:9/bcl")
        await _publish(app, d.checked_out(), d.granted("rover", "portal"))
        await eventually(lambda: _granted(app, d), 10)
        ports.revoker.signed_in(d.eid, d.dsid, d.user_id, "rover", "portal")

        await _publish(app, d.checked_in())
        await eventually(lambda: _calls(ports, d), 10, what="revoker called")
        assert _calls(ports, d) == [(d.eid, d.dsid, "checked_in:user")]
        sessions = app.state.devices.sessions
        assert not await sessions.is_active(d.eid, d.dsid)
        assert not await sessions.may_refresh(d.eid, d.dsid, "rover")
        sid = sid_for(d.eid, d.dsid)
        queued = await redis_client.hgetall(f"idp:{{bcl}}:d:{d.eid}:portal:{sid}")
        assert queued["uri"] == "http://127.0.0.1:9/bcl" and queued["user_id"] == d.user_id
        assert not await redis_client.exists(f"idp:{{bcl}}:d:{d.eid}:rover:{sid}")
        assert (await app.state.devices.store.load(d.eid, d.dsid)).revocation_done


async def test_entitlement_revoked_and_denied_close_the_session(kafka_bootstrap, redis_client, kit, keys):
    ports = kit.Ports(keys=keys)
    async with kit.running_idp(ports) as app:
        a, b = kit.Device.new(), kit.Device.new()
        await _publish(app, a.checked_out(), a.granted("rover"), b.checked_out())
        await eventually(lambda: _granted(app, a), 10)
        await _publish(app, a.revoked("app_undeployed"), b.denied("no_sso_licence"))
        await eventually(lambda: _is(app, a, "CLOSED"), 10)
        await eventually(lambda: _is(app, b, "CLOSED"), 10)
        assert (await _refused(app, a)).action == "checkout"
        assert (await _refused(app, b)).error == "access_denied"
        await eventually(lambda: _calls(ports, a) and _calls(ports, b), 10)


async def test_late_duplicated_and_reordered_events_never_resurrect(kafka_bootstrap, redis_client, kit, keys):
    ports = kit.Ports(keys=keys)
    async with kit.running_idp(ports) as app:
        d = kit.Device.new()
        out, grant, lock, face = d.checked_out(), d.granted("rover"), d.locked(), d.face_verified()
        checkin = d.checked_in()
        late_grant = d.granted("rover", "haiku")
        # The checkin arrives first; everything else late, twice, in reverse.
        await _publish(app, checkin)
        await eventually(lambda: _is(app, d, "CLOSED"), 10)
        await _publish(app, late_grant, face, lock, grant, out, late_grant, out, checkin)
        marker = kit.Device.new(d.eid)  # published last on both topics: once seen, the rest was applied
        await _publish(app, marker.checked_out(), marker.granted("rover"))
        await eventually(lambda: _granted(app, marker), 10)
        view = await app.state.devices.store.load(d.eid, d.dsid)
        assert view.state == "CLOSED" and not view.granted and not view.checked_out
        assert (await _refused(app, d)).error == "login_required"
        assert not await app.state.devices.sessions.is_active(d.eid, d.dsid)
        # The revocation ran once, not once per duplicate.
        assert _calls(ports, d) == [(d.eid, d.dsid, "checked_in:user")]


async def test_an_interrupted_revocation_is_finished_on_redelivery(kafka_bootstrap, redis_client, kit, keys):
    ports = kit.Ports(keys=keys)
    async with kit.running_idp(ports) as app:
        d = kit.Device.new()
        await _publish(app, d.checked_out(), d.granted("rover"))
        await eventually(lambda: _granted(app, d), 10)
        ports.revoker.fail_times = 1  # the first attempt fails after CLOSED was written
        await _publish(app, d.checked_in())
        await eventually(lambda: _calls(ports, d), 10, what="revocation retried")
        assert await _state(app, d) == "CLOSED"
        await eventually(lambda: _revocation_done(app, d), 10)


async def test_a_revocation_an_earlier_delivery_began_is_finished(kafka_bootstrap, redis_client, kit, keys):
    # The grants were revoked (the marker is there) but the view never recorded the revocation
    # done: the consumer died in between. The redelivered checkin finishes it.
    ports = kit.Ports(keys=keys)
    async with kit.running_idp(ports) as app:
        d = kit.Device.new()
        await _publish(app, d.checked_out(), d.granted("rover"))
        await eventually(lambda: _granted(app, d), 10)
        ports.revoker.revoked.add((d.eid, d.dsid))
        await _publish(app, d.checked_in())
        await eventually(lambda: _revocation_done(app, d), 10, what="revocation finished")
        assert _calls(ports, d) == [(d.eid, d.dsid, "checked_in:user")]


async def _revocation_done(app, d):
    return (await app.state.devices.store.load(d.eid, d.dsid)).revocation_done
