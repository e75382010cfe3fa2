"""The session service end to end on the real Kafka and Redis: checkout, face, timers, checkin,
restart with timers pending, two instances side by side."""

from datetime import UTC, datetime, timedelta

import pytest

from lanyard.contracts import events as ev
from lanyard.runtime.testing import eventually

pytestmark = pytest.mark.integration

CHECKED_OUT = "session.device_checked_out.v1"
CHECKED_IN = "session.device_checked_in.v1"


def grant(h, dsid, device_id="dev-1", version=1, **kw):
    payload = {"device_session_id": dsid, "device_id": device_id, "user_id": "u-1", "version": version,
               "apps": ["rover"], "auth_mode": "passcode", "inactivity_timeout_s": 600, "max_session_s": 3600,
               "face_allowed": False, "policy_id": "p-1", **kw}  # fmt: skip
    return ev.EntitlementGranted(
        enterprise_id=h.eid, producer="policy", payload=ev.EntitlementGrantedPayload(**payload)
    )


def at(view, field):
    """A timestamp of the Locker's session view."""
    return datetime.fromisoformat(view[field])


async def granted(h, inst, dsid, **kw):
    """Publish a grant on Kafka and wait until the service has stored it."""
    event = grant(h, dsid, **kw)
    await h.publish(event)

    async def stored():
        s = await inst.service.store.get_session(h.eid, dsid)
        return s.entitlement and s.entitlement.version == event.payload.version

    await eventually(stored, 20, what="grant consumed")


async def test_checkout_view_and_checkin(harness):
    h = harness
    inst = await h.start()
    device = await h.enrol(inst)
    r = await h.checkout(inst)
    assert r.status_code == 201, r.text
    dsid = r.json()["device_session_id"]
    assert r.json()["handle"] == dsid
    out = await h.probe.wait_for(CHECKED_OUT, device_session_id=dsid)
    assert out.payload.sequence == 1 and out.payload.device_jkt == device["jkt"] and out.key().startswith(h.eid)

    view = await h.locker(inst, "GET", dsid)
    assert view.status_code == 200 and view.json()["state"] == "ACTIVE"

    stale = h.proof("dev-1", "GET", h.path(f"/device-sessions/{dsid}"), dsid)
    assert (await inst.client.get(h.path(f"/device-sessions/{dsid}"), headers=stale)).status_code == 200
    replay = await inst.client.get(h.path(f"/device-sessions/{dsid}"), headers=stale)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_proof"

    live = await inst.client.get(h.path("/device-sessions"), headers=h.admin())
    assert [s["device_session_id"] for s in live.json()["device_sessions"]] == [dsid]

    r = await h.locker(inst, "POST", dsid, "/checkin", headers={"Idempotency-Key": "k-1"})
    assert r.status_code == 200 and r.json()["state"] == "CLOSED" and r.json()["closed_reason"] == "user"
    again = await h.locker(inst, "POST", dsid, "/checkin", headers={"Idempotency-Key": "k-1"})
    assert again.json() == r.json() and again.headers["Idempotent-Replayed"] == "true"
    closed = await h.probe.wait_for(CHECKED_IN, device_session_id=dsid)
    assert closed.payload.reason == "user" and closed.payload.sequence == 2
    live = await inst.client.get(h.path("/device-sessions"), headers=h.admin())
    assert live.json()["device_sessions"] == []


async def test_second_checkout_conflicts_then_replaces_by_org_setting(harness):
    h = harness
    inst = await h.start()
    await h.enrol(inst)
    first = (await h.checkout(inst)).json()["device_session_id"]
    r = await h.checkout(inst, user="u-2")
    assert r.status_code == 409 and r.json()["error"] == "device_checked_out"

    await h.publish(
        ev.OrgSettingsChanged(
            enterprise_id=h.eid,
            producer="policy",
            payload=ev.OrgSettingsChangedPayload(checkin_previous_on_checkout=True),
        )
    )

    async def setting_applied():
        return (await inst.service.org_settings(h.eid)).checkin_previous_on_checkout

    await eventually(setting_applied, 20, what="org settings consumed")
    r = await h.checkout(inst, user="u-2")
    assert r.status_code == 201, r.text
    second = r.json()["device_session_id"]
    replaced = await h.probe.wait_for(CHECKED_IN, device_session_id=first)
    assert replaced.payload.reason == "replaced"
    await h.probe.wait_for(CHECKED_OUT, device_session_id=second, user_id="u-2")
    order = [e.payload.device_session_id for e in h.probe.events if e.type in (CHECKED_IN, CHECKED_OUT)]
    assert order.index(first, 1) < order.index(second)


async def test_face_lock_and_unlock(harness):
    h = harness
    inst = await h.start()
    await h.enrol(inst)
    dsid = (await h.checkout(inst)).json()["device_session_id"]
    await granted(h, inst, dsid, auth_mode="face", face_allowed=True, inactivity_timeout_s=1)
    locked = await h.probe.wait_for("session.device_locked.v1", device_session_id=dsid)
    assert locked.payload.reason == "inactivity" and locked.payload.sequence == 2
    assert (await h.locker(inst, "GET", dsid)).json()["state"] == "LOCKED"

    challenge = await h.locker(inst, "POST", dsid, "/face/challenge")
    assert challenge.status_code == 201
    result = h.face_result("dev-1", challenge.json()["challenge"])
    r = await h.locker(inst, "POST", dsid, "/face/result", json={"result": result})
    assert r.status_code == 200 and r.json()["verified"] and r.json()["unlocked"], r.text
    verified = await h.probe.wait_for("session.face_verified.v1", device_session_id=dsid)
    assert verified.payload.unlocked is True and verified.payload.sequence == 3
    view = (await h.locker(inst, "GET", dsid)).json()
    assert view["last_face_verification_at"] is not None and view["face_allowed"] is True

    challenge = (await h.locker(inst, "POST", dsid, "/face/challenge")).json()["challenge"]
    forged = h.face_result("dev-1", challenge, match=0.2)
    r = await h.locker(inst, "POST", dsid, "/face/result", json={"result": forged})
    assert r.json()["verified"] is False and r.json()["reason"] == "no_match"
    failed = await h.probe.wait_for("session.face_verification_failed.v1", device_session_id=dsid)
    assert failed.payload.failures == 1


async def test_inactivity_and_max_session_expiry(harness):
    h = harness
    inst = await h.start()
    await h.enrol(inst, "dev-a")
    await h.enrol(inst, "dev-b")
    idle = (await h.checkout(inst, "dev-a")).json()["device_session_id"]
    busy = (await h.checkout(inst, "dev-b")).json()["device_session_id"]
    await granted(h, inst, idle, device_id="dev-a", inactivity_timeout_s=1)
    await granted(h, inst, busy, device_id="dev-b", inactivity_timeout_s=600, max_session_s=2)
    expired = await h.probe.wait_for(CHECKED_IN, device_session_id=idle)
    assert expired.payload.reason == "inactivity"
    ended = await h.probe.wait_for(CHECKED_IN, device_session_id=busy)
    assert ended.payload.reason == "max_session"


async def test_sso_activity_from_the_idp_postpones_inactivity(harness):
    # A long timeout keeps the timer out of the race: what is observed is the deadline moving.
    h = harness
    inst = await h.start()
    await h.enrol(inst)
    dsid = (await h.checkout(inst)).json()["device_session_id"]
    await granted(h, inst, dsid, inactivity_timeout_s=60)
    before = (await h.locker(inst, "GET", dsid)).json()
    await h.publish(
        ev.AuthorizationGranted(
            enterprise_id=h.eid, producer="idp",
            payload=ev.AuthorizationGrantedPayload(
                client_id="rover", user_id="u-1", sid="sid-1", via="sso_extension", device_session_id=dsid
            ),
        )
    )  # fmt: skip

    async def postponed():
        view = (await h.locker(inst, "GET", dsid)).json()
        return view if at(view, "inactivity_deadline") > at(before, "inactivity_deadline") else None

    after = await eventually(postponed, 20, what="SSO activity consumed")
    assert after["state"] == "ACTIVE" and at(after, "last_activity_at") > at(before, "last_activity_at")
    assert at(after, "inactivity_deadline") - at(after, "last_activity_at") == timedelta(seconds=60)


async def test_revoked_entitlement_and_admin_force_checkin(harness):
    h = harness
    inst = await h.start()
    await h.enrol(inst, "dev-a")
    await h.enrol(inst, "dev-b")
    a = (await h.checkout(inst, "dev-a")).json()["device_session_id"]
    b = (await h.checkout(inst, "dev-b")).json()["device_session_id"]
    await h.publish(
        ev.EntitlementRevoked(
            enterprise_id=h.eid, producer="policy",
            payload=ev.EntitlementRevokedPayload(device_session_id=a, device_id="dev-a", user_id="u-1",
                                                 reason="policy_changed"),
        )
    )  # fmt: skip
    assert (await h.probe.wait_for(CHECKED_IN, device_session_id=a)).payload.reason == "entitlement_revoked"

    refused = await inst.client.post(h.path(f"/device-sessions/{b}/force-checkin"), headers=h.admin("auditor"))
    assert refused.status_code == 403
    anonymous = await inst.client.post(h.path(f"/device-sessions/{b}/force-checkin"))
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    r = await inst.client.post(h.path(f"/device-sessions/{b}/force-checkin"), headers=h.admin("superadmin"))
    assert r.status_code == 200 and r.json()["closed_reason"] == "admin"
    forced = await h.probe.wait_for(CHECKED_IN, device_session_id=b)
    assert forced.payload.reason == "admin" and forced.actor == "admin-1"


async def test_restart_with_timers_pending(harness):
    h = harness
    first = await h.start()
    await h.enrol(first)
    dsid = (await h.checkout(first)).json()["device_session_id"]
    # Long enough that the first instance stops well before the timer is due, even on a busy machine.
    await granted(h, first, dsid, inactivity_timeout_s=6)

    await h.stop(first)
    assert not h.probe.of_type(CHECKED_IN, device_session_id=dsid)

    restarted_at = datetime.now(UTC)
    second = await h.start()
    ended = await h.probe.wait_for(CHECKED_IN, timeout=30, device_session_id=dsid)
    assert ended.payload.reason == "inactivity" and ended.occurred_at >= restarted_at
    assert (await h.locker(second, "GET", dsid)).json()["state"] == "CLOSED"


async def test_an_event_left_in_the_outbox_is_published_after_a_restart(harness):
    h = harness
    first = await h.start()
    await h.enrol(first)
    dsid = (await h.checkout(first)).json()["device_session_id"]

    class BrokerDown:
        async def publish(self, event):
            raise ConnectionError("broker unreachable")

    first.service.publisher = BrokerDown()
    r = await h.locker(first, "POST", dsid, "/checkin")
    assert r.status_code == 503 and r.json()["error"] == "event_pending"
    await h.stop(first)
    assert not h.probe.of_type(CHECKED_IN, device_session_id=dsid)

    await h.start()
    relayed = await h.probe.wait_for(CHECKED_IN, timeout=20, device_session_id=dsid)
    assert relayed.payload.reason == "user"


async def test_two_instances_fire_each_timer_exactly_once(harness, redis_client):
    h = harness
    a = await h.start()
    b = await h.start()
    offsets = await h.partition_ends()
    sessions = []
    for i in range(8):
        inst = a if i % 2 else b
        device = f"dev-{i}"
        await h.enrol(inst, device)
        r = await h.checkout(inst, device)
        assert r.status_code == 201, r.text
        sessions.append((device, r.json()["device_session_id"]))
    for device, dsid in sessions:
        await h.publish(grant(h, dsid, device_id=device, inactivity_timeout_s=1))
    for _, dsid in sessions:
        await h.probe.wait_for(CHECKED_IN, timeout=20, device_session_id=dsid)

    async def settled():
        return await redis_client.zcard("session:timers") == 0 and await redis_client.zcard("session:outbox") == 0

    await eventually(settled, 10, what="timers and outbox drained")
    await h.probe_caught_up(offsets)  # everything published so far has reached the probe
    checkins = h.probe.of_type(CHECKED_IN)
    mine = [e for e in checkins if e.enterprise_id == h.eid]
    assert sorted(e.payload.device_session_id for e in mine) == sorted(d for _, d in sessions)
    assert all(e.payload.reason == "inactivity" and e.payload.sequence == 2 for e in mine)
