"""A session service that lost its Redis rebuilds from Kafka (DESIGN §4), on the real broker and Redis:
devices, live and closed sessions, grants, org settings and timers come back; the handle still
works with the device's key; nothing is published again."""

import asyncio

import pytest

from lanyard.contracts import events as ev
from lanyard.runtime.testing import eventually

pytestmark = pytest.mark.integration

CHECKED_IN = "session.device_checked_in.v1"


def grant_event(eid, dsid, device_id, **kw) -> ev.EntitlementGranted:
    """A grant as policy publishes it."""
    payload = {"device_session_id": dsid, "device_id": device_id, "user_id": "u-1", "version": 1,
               "apps": ["rover"], "auth_mode": "passcode", "inactivity_timeout_s": 600, "max_session_s": 3600,
               "face_allowed": False, "policy_id": "p-1", **kw}  # fmt: skip
    return ev.EntitlementGranted(enterprise_id=eid, producer="policy", payload=ev.EntitlementGrantedPayload(**payload))


async def granted(h, inst, dsid, device_id, **kw):
    """Publish a grant as policy does and wait until the service stored it."""
    await h.publish(grant_event(h.eid, dsid, device_id, **kw))

    async def stored():
        s = await inst.service.store.get_session(h.eid, dsid)
        return s.entitlement is not None

    await eventually(stored, 20, what="grant consumed")


async def view(h, inst, dsid, device_id):
    r = await h.locker(inst, "GET", dsid, device_id=device_id)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_wiped_redis_is_rebuilt_from_kafka_at_startup(harness, redis_client):
    h = harness
    start = await h.partition_ends()
    inst = await h.start()
    await h.enrol(inst, "dev-1")
    await h.enrol(inst, "dev-2")
    await h.publish(
        ev.OrgSettingsChanged(
            enterprise_id=h.eid, producer="policy", payload=ev.OrgSettingsChangedPayload(password_autofill_and_sso=True)
        )
    )

    async def settings_applied():
        return (await inst.service.org_settings(h.eid)).password_autofill_and_sso

    await eventually(settings_applied, 20, what="org settings consumed")

    active = (await h.checkout(inst, "dev-1")).json()["device_session_id"]
    await granted(h, inst, active, "dev-1")
    checked_out = (await inst.service.store.get_session(h.eid, active)).checked_out_at
    sso = ev.AuthorizationGranted(
        enterprise_id=h.eid,
        producer="idp",
        payload=ev.AuthorizationGrantedPayload(
            client_id="rover", user_id="u-1", sid="sid-1", via="sso_extension", device_session_id=active
        ),
    )
    await h.publish(sso)  # SSO at the IdP is activity: the rebuild reads it back too

    async def sso_counted():
        return (await inst.service.store.get_session(h.eid, active)).last_activity_at > checked_out

    await eventually(sso_counted, 20, what="SSO activity consumed")
    closed = (await h.checkout(inst, "dev-2")).json()["device_session_id"]
    r = await h.locker(inst, "POST", closed, "/checkin", device_id="dev-2")
    assert r.status_code == 200 and r.json()["state"] == "CLOSED"
    locked = (await h.checkout(inst, "dev-2")).json()["device_session_id"]
    await granted(h, inst, locked, "dev-2", auth_mode="face", face_allowed=True, inactivity_timeout_s=1)
    await h.probe.wait_for("session.device_locked.v1", device_session_id=locked)

    before = {d: await view(h, inst, d, dev) for d, dev in ((active, "dev-1"), (closed, "dev-2"), (locked, "dev-2"))}
    devices_before = (await inst.client.get(h.path("/devices"), headers=h.admin())).json()
    assert before[active]["state"] == "ACTIVE" and before[locked]["state"] == "LOCKED"
    await h.stop(inst)

    ends = await h.partition_ends()
    await h.probe_caught_up(start)
    seen = {e.event_id for e in h.probe.events if e.enterprise_id == h.eid}
    assert len(seen) == 7  # 2 enrolled, 3 checked out, 1 checked in, 1 locked
    lost = [k async for k in redis_client.scan_iter(match="session:*")]
    assert lost and await redis_client.delete(*lost) == len(lost)

    # Two instances start together against the empty Redis: one rebuilds, the other waits for it.
    first, second = await asyncio.gather(h.start(rebuild_on_start=True), h.start(rebuild_on_start=True))
    reports = [i.app.state.rebuild.report for i in (first, second)]
    assert sum(r is not None for r in reports) == 1
    report = next(r for r in reports if r is not None)
    assert report.devices >= 2 and report.live >= 2 and report.written >= 5

    for dsid, dev in ((active, "dev-1"), (closed, "dev-2"), (locked, "dev-2")):
        assert await view(h, second, dsid, dev) == before[dsid]
    assert before[active]["inactivity_deadline"] and before[active]["entitlement_version"] == 1
    assert before[active]["last_activity_at"] > before[active]["checked_out_at"]
    assert before[active]["sso_enabled"] is True  # the org settings came back too
    assert (await second.client.get(h.path("/devices"), headers=h.admin())).json() == devices_before
    live = (await first.client.get(h.path("/device-sessions"), headers=h.admin())).json()["device_sessions"]
    assert sorted(s["device_session_id"] for s in live) == sorted([active, locked])

    # The handle is still bound to the device key: the Locker checks it in with a fresh proof.
    r = await h.locker(first, "POST", active, "/checkin", device_id="dev-1")
    assert r.status_code == 200 and r.json()["state"] == "CLOSED", r.text
    checked_in = await h.probe.wait_for(CHECKED_IN, device_session_id=active)
    assert checked_in.payload.sequence == before[active]["sequence"] + 1 == 2

    # The device's pointer to its live session came back: a second checkout still conflicts.
    busy = await h.checkout(first, "dev-2")
    assert busy.status_code == 409 and busy.json()["error"] == "device_checked_out"

    await h.probe_caught_up(ends)
    after = [e for e in h.probe.events if e.enterprise_id == h.eid and e.event_id not in seen]
    assert [(e.type, e.payload.device_session_id) for e in after] == [(CHECKED_IN, active)]  # nothing republished


async def test_an_intact_redis_is_not_rebuilt_and_a_lost_one_is_not_ready(harness, redis_client):
    h = harness
    inst = await h.start(rebuild_on_start=True)
    await h.enrol(inst, "dev-1")
    await h.stop(inst)
    again = await h.start(rebuild_on_start=True)
    assert again.app.state.rebuild.report is None
    listed = (await again.client.get(h.path("/devices"), headers=h.admin())).json()["devices"]
    assert [d["device_id"] for d in listed] == ["dev-1"]

    # Redis loses everything under a running instance: it says it is not ready (until restarted).
    await redis_client.flushdb()
    ready = await again.client.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["checks"]["state"] is False


async def test_the_rebuild_skips_a_record_the_live_consumer_refused_as_wrongly_keyed(kafka_bootstrap):
    """A grant keyed as another device's is dead-lettered by the live consumer; the rebuild's
    history read must not apply it either (it would grant a session the live path never did)."""
    import time
    import uuid

    from aiokafka import AIOKafkaProducer

    from lanyard.contracts import topics
    from lanyard.runtime.rebuild import KafkaHistory

    since = time.time() - 1
    eid = f"e-{uuid.uuid4().hex[:8]}"

    right, wrong = grant_event(eid, "ds-right", "dev-right"), grant_event(eid, "ds-wrong", "dev-wrong")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topics.ENTITLEMENTS.name, wrong.to_json(), key=right.record_key())
        await producer.send_and_wait(topics.ENTITLEMENTS.name, right.to_json(), key=right.record_key())
    finally:
        await producer.stop()
    history = KafkaHistory(kafka_bootstrap, "lanyard-session-rebuild")
    read = [e.event_id async for e in history.read(topics.ENTITLEMENTS.name, since=since) if e.enterprise_id == eid]
    assert read == [right.event_id]
    assert history.wrongly_keyed >= 1
