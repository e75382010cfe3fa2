"""Issue 11: with the broker down a checkin answered 503 event_pending, and its retry 0.5 s
later answered 200 while the broker was still down. A retry answers 200 only once the broker
acknowledged the checkin. A private broker (stopped and started again), the shared Redis."""

from __future__ import annotations

import asyncio

import pytest

from lanyard.runtime.kafka import ensure_topics
from lanyard.runtime.testing import eventually, kafka_control, local_kafka
from lanyard.runtime.tokens import TestIssuer

from .conftest import Harness, fast_settings

pytestmark = pytest.mark.integration

CHECKED_IN = "session.device_checked_in.v1"


async def test_a_retried_checkin_with_the_broker_down_answers_only_after_the_ack(redis_client, tmp_path):
    data = tmp_path / "kafka"
    with local_kafka(data) as bootstrap:
        await ensure_topics(bootstrap)
        h = Harness(bootstrap, TestIssuer(fast_settings("x").public_base_url))
        await h.probe.start()
        try:
            async with h.stack:
                inst = await h.start(kafka_bootstrap_servers=bootstrap, publish_timeout_s=2)
                await h.enrol(inst)
                dsid = (await h.checkout(inst)).json()["device_session_id"]

                await asyncio.to_thread(kafka_control, "stop", data, bootstrap)
                key = {"Idempotency-Key": "checkin-1"}  # the Locker app retries with the same key
                first = await h.locker(inst, "POST", dsid, "/checkin", headers=key)
                assert first.status_code == 503 and first.json()["error"] == "event_pending"
                retried = await h.locker(inst, "POST", dsid, "/checkin", headers=key)
                assert retried.status_code == 503, "a retry must not answer success while the broker is down"
                assert (await inst.service.store.get_session(h.eid, dsid)).closed_reason == "user"  # saved

                await asyncio.to_thread(kafka_control, "start", data, bootstrap)

                async def answered() -> int | None:
                    r = await h.locker(inst, "POST", dsid, "/checkin", headers=key)
                    return r.status_code if r.status_code != 503 else None

                assert await eventually(answered, 60, interval=0.5, what="the retry answered once acked") == 200
                event = await h.probe.wait_for(CHECKED_IN, timeout=20, device_session_id=dsid)
                assert event.payload.reason == "user"
                assert await redis_client.zcard("session:outbox") == 0
        finally:
            await h.probe.stop()
