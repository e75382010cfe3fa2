"""Issue 11: the IdP's own Redis killed while checkins are in flight, and down far longer than
the old retry budget (~0.35 s). The device-session consumer holds the records instead of
dead-lettering them, the IdP is not ready and refuses SSO meanwhile, and once Redis is back
every session is revoked and every back-channel logout delivered.

A private Redis (killed with SIGKILL, restarted on the same port and AOF), the shared broker."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from lanyard.contracts import topics
from lanyard.idp.devices.domain import TemporarilyUnavailable
from lanyard.runtime.consumer import consumer_state
from lanyard.runtime.testing import TopicProbe, eventually, kill_redis, local_redis, restart_redis

pytestmark = pytest.mark.integration


async def test_redis_killed_while_checkins_are_in_flight_loses_no_revocation_and_no_logout(
    kafka_bootstrap, tmp_path, receiver, kit, keys
):
    data = tmp_path / "redis"
    with local_redis(data) as url:
        ports = kit.Ports(keys=keys)
        dlq = await TopicProbe(kafka_bootstrap, topics.DEVICE_SESSIONS.dlq, topics.ENTITLEMENTS.dlq).start()
        try:
            async with kit.running_idp(ports, redis_url=url) as app:
                devices_side = app.state.devices
                publisher = app.state.runtime.publisher
                first = kit.Device.new()
                devices = [first] + [kit.Device.new(first.eid) for _ in range(7)]
                for d in devices:
                    ports.clients.add(d.eid, f"portal-{d.dsid}", f"{receiver.base}/logout/{d.dsid}")
                    await publisher.publish_all([d.checked_out(), d.granted(f"portal-{d.dsid}")])
                    ports.revoker.signed_in(d.eid, d.dsid, d.user_id, f"portal-{d.dsid}")

                async def all_granted() -> bool:
                    views = [await devices_side.store.load(d.eid, d.dsid) for d in devices]
                    return all(v is not None and v.granted for v in views)

                await eventually(all_granted, 15, what="every session granted")

                # Checkins in flight: half published just before the crash, half during it.
                await publisher.publish_all([d.checked_in() for d in devices[:4]])
                await asyncio.to_thread(kill_redis, data)
                await publisher.publish_all([d.checked_in() for d in devices[4:]])
                state = consumer_state(devices_side.subscriber)
                await eventually(lambda: state.holding, 15, what="the consumer holds a checkin")
                # Fail closed while a revocation may be pending: no device SSO (before any I/O).
                with pytest.raises(TemporarilyUnavailable):
                    await devices_side.sessions.authenticate(
                        first.eid, "rover", first.dsid, first.proof(), "GET", first.url
                    )
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://idp") as client:
                    ready = await client.get("/health/ready")
                    assert ready.status_code == 503 and ready.json()["checks"]["handlers"] is False
                    await asyncio.sleep(3)  # the outage lasts: ten times the old retry budget
                    assert state.holding and not devices_side.freshness.fresh

                    await asyncio.to_thread(restart_redis, data, url)

                    async def revoked() -> bool:
                        try:
                            views = [await devices_side.store.load(d.eid, d.dsid) for d in devices]
                        except RedisConnectionError:  # the test's own reads meet a stale connection too
                            return False
                        return all(v is not None and v.state == "CLOSED" and v.revocation_done for v in views)

                    await eventually(revoked, 30, what="every checked-in session revoked")
                    for d in devices:
                        await eventually(lambda d=d: receiver.to(f"/logout/{d.dsid}"), 30, what="logout delivered")
                    # (a revocation interrupted after the revoker ran is run again: resumed, not lost)
                    mine = {dsid for eid, dsid, _ in ports.revoker.calls if eid == first.eid}
                    assert mine == {d.dsid for d in devices}
                    await eventually(lambda: _ready(client), 30, what="ready again once the held records are applied")
                    assert not state.holding
        finally:
            await dlq.stop()
    for d in devices:
        # At least once (checked above), and a repeat only where a crash cut a send short: the
        # back-channel queue is at-least-once across a Redis crash, and RPs dedupe by the token's jti.
        assert 1 <= len(receiver.to(f"/logout/{d.dsid}")) <= 2, "each app is told, at most once again"
    assert [r for r in dlq.raw if first.eid.encode() in (r.value or b"")] == [], "nothing dead-lettered"


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/health/ready")).status_code == 200
