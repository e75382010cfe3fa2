"""Issue 11 on the whole stack: Redis killed (SIGKILL) while checkins are in flight and kept
down for seconds, far beyond the old retry budget. Every checked-in session ends up revoked —
introspection inactive, refresh refused — every app with a back-channel logout URI is told,
and no event of the run is dead-lettered.

The stack runs on a Redis of its own (the test kills it) and the shared broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from lanyard.contracts import ALL_TOPICS
from lanyard.harness.admin import ApiError, open_enterprise
from lanyard.harness.device import Device, introspect, redeem, refresh
from lanyard.harness.rp import unverified_claims
from lanyard.harness.stack import Stack, local_stack
from lanyard.runtime.testing import TopicProbe, eventually, kill_redis, local_redis, restart_redis

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture(scope="module")
def crash_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, object, str]]:
    redis_dir = tmp_path_factory.mktemp("redis")
    with local_redis(redis_dir) as url, local_stack(kafka_bootstrap, url, tmp_path_factory.mktemp("stack")) as stack:
        yield stack, redis_dir, url


async def test_redis_crash_during_checkins_revokes_every_session_and_tells_every_app(
    crash_stack, http, kafka_bootstrap, logout_receiver
):
    stack, redis_dir, url = crash_stack
    dlq = await TopicProbe(kafka_bootstrap, *(t.dlq for t in ALL_TOPICS)).start()
    try:
        ent = await open_enterprise(stack.base_url, stack.env, http)
        app = await ent.add_app(
            name="Charts",
            client_type="confidential",
            redirect_uri="https://charts.example/callback",
            backchannel_logout_uri=logout_receiver.url,
        )
        people = [await ent.add_user(f"nurse{i}") for i in range(6)]
        await ent.make_ready(people, [app])
        devices, tokens = [], []
        for person in people:
            device = Device(stack.base_url, ent.enterprise_id, http)
            await ent.enrol_device(device.device_id, device.public_jwk)
            await device.check_out(person)

            async def code(device=device):
                auth = await device.sso(app)
                return auth if auth.code else None

            tokens.append(await redeem(http, ent.issuer, app, await eventually(code, 15, what="SSO")))
            devices.append(device)
        sids = {unverified_claims(t["id_token"])["sid"] for t in tokens}

        async def check_in(device: Device) -> None:
            """The Locker app: retries until its checkin is answered 200."""
            while True:
                try:
                    await device.check_in()
                    return
                except (ApiError, httpx.HTTPError):
                    await asyncio.sleep(0.1)

        # Three checkins answered, and Redis killed at once: their events are reaching the IdP
        # and policy, whose handlers meet Redis gone. Three more are sent while it is down.
        await asyncio.gather(*(check_in(d) for d in devices[:3]))
        await asyncio.to_thread(kill_redis, redis_dir)
        in_flight = [asyncio.create_task(check_in(d)) for d in devices[3:]]
        await asyncio.sleep(2.5)  # the outage lasts: several times the old retry budget
        await asyncio.to_thread(restart_redis, redis_dir, url)
        await asyncio.wait_for(asyncio.gather(*in_flight), 60)

        # The logouts are the revocation's last step: once every app was told, every token must
        # be dead for good (refresh refused with 400, not merely failing closed with 503).
        await eventually(lambda: sids <= set(logout_receiver.sids()), 30, what="every app told")
        for t in tokens:
            assert (await refresh(http, ent.issuer, app, t["refresh_token"])).status_code == 400
            assert (await introspect(http, ent.issuer, app, t["access_token"]))["active"] is False
    finally:
        await dlq.stop()
    assert [r for r in dlq.raw if ent.enterprise_id.encode() in (r.value or b"")] == [], "nothing dead-lettered"
