"""Fail closed: with its broker gone, the IdP refuses device SSO and refresh within the bound,
and serves again by itself once the broker is back (a private broker: the shared one stays up)."""

from __future__ import annotations

import asyncio
import time

import pytest

from lanyard.idp.adapters.freshness import FreshnessMonitor
from lanyard.idp.devices.domain import DeviceSsoError, TemporarilyUnavailable
from lanyard.runtime.consumer import ConsumerState, Hold
from lanyard.runtime.testing import eventually, kafka_control, local_kafka

pytestmark = pytest.mark.integration


async def test_refuses_within_the_bound_when_the_broker_stops_and_recovers_after_restart(
    redis_client, tmp_path, kit, keys
):
    data_dir = tmp_path / "kafka"
    bound = 2.0
    with local_kafka(data_dir) as bootstrap:
        ports = kit.Ports(keys=keys)
        settings = kit.fast_settings(max_staleness_s=bound, freshness_tick_s=0.1)
        async with kit.running_idp(ports, settings, kafka_bootstrap_servers=bootstrap) as app:
            devices = app.state.devices
            sessions = devices.sessions
            d, gone = kit.Device.new(), kit.Device.new()
            await app.state.runtime.publisher.publish_all(
                [d.checked_out(), d.granted("rover"), gone.checked_out(), gone.checked_in()]
            )

            async def granted():
                view = await devices.store.load(d.eid, d.dsid)
                return bool(view and view.granted)

            await eventually(granted, 15)
            await eventually(lambda: _closed(devices, gone), 15)
            assert (await sessions.authenticate(d.eid, "rover", d.dsid, d.proof(), "GET", d.url)).user_id == d.user_id

            await asyncio.to_thread(kafka_control, "stop", data_dir, bootstrap)
            stopped = time.monotonic()
            await eventually(lambda: not devices.freshness.fresh, bound + 3, what="stale after the bound")
            assert time.monotonic() - stopped <= bound + 3
            with pytest.raises(TemporarilyUnavailable):
                await sessions.authenticate(d.eid, "rover", d.dsid, d.proof(), "GET", d.url)
            with pytest.raises(TemporarilyUnavailable):
                await sessions.is_active(d.eid, d.dsid)
            with pytest.raises(TemporarilyUnavailable):
                await sessions.may_refresh(d.eid, d.dsid, "rover")
            # A closed session stays closed without needing freshness: never an error, never active.
            assert not await sessions.is_active(gone.eid, gone.dsid)
            assert not await sessions.may_refresh(gone.eid, gone.dsid, "rover")

            await asyncio.to_thread(kafka_control, "start", data_dir, bootstrap)
            await eventually(lambda: devices.freshness.fresh, 90, what="fresh again after restart")
            login = await sessions.authenticate(d.eid, "rover", d.dsid, d.proof(), "GET", d.url)
            assert login.device_session_id == d.dsid
            assert await sessions.is_active(d.eid, d.dsid)

            # And what happened while it was down is applied once it is back.
            await app.state.runtime.publisher.publish(d.checked_in())
            await eventually(lambda: _closed(devices, d), 15)
            with pytest.raises(DeviceSsoError):
                await sessions.authenticate(d.eid, "rover", d.dsid, d.proof(), "GET", d.url)


async def _closed(devices, d) -> bool:
    view = await devices.store.load(d.eid, d.dsid)
    return bool(view and view.state == "CLOSED")


class _Consumer:
    """Stands in for aiokafka's consumer: the four calls the monitor uses."""

    def __init__(self, parts):
        self.parts = parts  # tp -> (position, highwater, last poll ms)

    def assignment(self):
        return set(self.parts)

    async def position(self, tp):
        return self.parts[tp][0]

    def highwater(self, tp):
        return self.parts[tp][1]

    def last_poll_timestamp(self, tp):
        return self.parts[tp][2]


async def test_lag_that_does_not_drain_or_a_stuck_handler_makes_the_view_stale(redis_client):
    from aiokafka import TopicPartition

    from lanyard.contracts import Topic

    topic = Topic("t.v1", "k", 2, "delete", None, "test")
    now = [1_000_000.0]
    tp0, tp1 = TopicPartition("t.v1", 0), TopicPartition("t.v1", 1)
    consumer = _Consumer({tp0: (5, 5, (now[0] - 1) * 1000), tp1: (7, 7, (now[0] - 1) * 1000)})
    state = ConsumerState("g-unit")
    monitor = FreshnessMonitor(
        redis_client, "g-unit", [topic], lambda: consumer, 5.0, clock=lambda: now[0], state=lambda: state
    )
    assert not await monitor.tick(), "one poll seen: nothing vouched for yet"
    consumer.parts = {tp: (p, h, now[0] * 1000) for tp, (p, h, _) in consumer.parts.items()}
    assert await monitor.tick()

    # Partition 1 falls behind and stays behind although fetches keep succeeding.
    for _ in range(7):
        now[0] += 1
        consumer.parts[tp0] = (5, 5, now[0] * 1000)
        consumer.parts[tp1] = (7, 9, now[0] * 1000)
        await monitor.tick()
    assert not monitor.fresh and monitor.stale_partitions == ["t.v1:1"]
    with pytest.raises(TemporarilyUnavailable):
        monitor.check()

    # It catches up: fresh again at once.
    consumer.parts[tp1] = (9, 9, now[0] * 1000)
    assert await monitor.tick()

    # A record held by a failing dependency: stale at once (it may be a pending checkin), and
    # fresh again as soon as it is applied.
    state.holds[("t.v1", 0)] = Hold("t.v1", 0, 5, 0.0, 2, "ConnectionError: refused")
    assert await monitor.tick() and not monitor.fresh
    with pytest.raises(TemporarilyUnavailable):
        monitor.check()
    del state.holds[("t.v1", 0)]
    assert monitor.fresh

    # A batch whose handling hangs: the watermarks stop at its start.
    now[0] = time.time()
    for moment in (now[0] - 0.5, now[0]):
        consumer.parts = {tp: (p, h, moment * 1000) for tp, (p, h, _) in consumer.parts.items()}
        await monitor.tick()
    assert monitor.fresh
    with state.busy():
        for _ in range(7):
            now[0] += 1
            consumer.parts = {tp: (p, h, now[0] * 1000) for tp, (p, h, _) in consumer.parts.items()}
            await monitor.tick()
        assert not monitor.fresh
    now[0] += 0.1
    consumer.parts = {tp: (p, h, now[0] * 1000) for tp, (p, h, _) in consumer.parts.items()}
    assert await monitor.tick()

    # No consumer, or no assignment: nothing is shown, so staleness follows after the bound.
    consumer.parts = {}
    now[0] += 6
    assert not await monitor.tick()


async def test_a_batch_being_applied_never_vouches_for_its_own_records(redis_client):
    """The finding-10 hole: a batch is fetched before it is handed to the handler, so capping
    the watermark at the handover vouched for the batch's own records while they were still
    being applied (an SSO for a checkout in that batch was told "unknown device session")."""
    from aiokafka import TopicPartition

    from lanyard.contracts import Topic

    topic = Topic("t.v1", "k", 1, "delete", None, "test")
    tp = TopicPartition("t.v1", 0)
    start = time.time() - 1.0  # the handover below happens now, a second after these moments
    now = [start]
    consumer = _Consumer({tp: (5, 5, (start - 0.1) * 1000)})
    state = ConsumerState("g-cap")
    monitor = FreshnessMonitor(
        redis_client, "g-cap", [topic], lambda: consumer, 5.0, clock=lambda: now[0], state=lambda: state
    )
    await monitor.tick()
    consumer.parts[tp] = (5, 5, start * 1000)
    assert await monitor.tick()
    # A checkout is created at +0.2 s, the device asks at +0.3 s, the consumer fetches the
    # checkout at +0.4 s and is still applying it when the monitor looks at +0.5 s.
    created_ms, asked_at = (start + 0.2) * 1000, start + 0.3
    consumer.parts[tp] = (6, 6, (start + 0.4) * 1000)
    now[0] = start + 0.5
    with state.busy(created_ms):
        await monitor.tick()
        assert monitor.caught_up_at is not None and monitor.caught_up_at < asked_at
    await monitor.tick()
    assert monitor.caught_up_at < asked_at, "the +0.4 s response vouches from before its request"
    consumer.parts[tp] = (6, 6, (start + 0.6) * 1000)
    await monitor.tick()
    assert monitor.caught_up_at >= asked_at, "applied, and a later response vouches for it"


async def test_a_response_vouches_from_before_its_request_not_from_its_arrival(redis_client):
    """Found by `make soak` (finding 10): a checkout acknowledged while a fetch was in flight is
    not below the high-water mark that fetch brings back, but the response's arrival time
    claimed it, and a broker cut right after kept that claim for the whole bound: the SSO of
    the new session was told "unknown device session"."""
    from aiokafka import TopicPartition

    from lanyard.contracts import Topic

    topic = Topic("t.v1", "k", 1, "delete", None, "test")
    tp = TopicPartition("t.v1", 0)
    start = time.time() - 1.0
    now = [start]
    consumer = _Consumer({tp: (5, 5, start * 1000)})
    monitor = FreshnessMonitor(redis_client, "g-flight", [topic], lambda: consumer, 5.0, clock=lambda: now[0])
    await monitor.tick()
    # A fetch sent at +0.1 s; the checkout (offset 5) acknowledged at +0.2 s; the device asks at
    # +0.3 s; the fetch's answer, computed before the checkout (high-water 5), arrives at +0.4 s.
    asked_at = start + 0.3
    consumer.parts[tp] = (5, 5, (start + 0.4) * 1000)
    now[0] = start + 0.5
    await monitor.tick()
    assert monitor.caught_up_at is not None and monitor.caught_up_at < asked_at
    # The broker is cut: no response arrives, and nothing ever vouches for the request.
    for _ in range(3):
        now[0] += 1
        await monitor.tick()
        assert monitor.caught_up_at < asked_at
    # Back: the next response has the checkout; applied, the one after vouches for it.
    consumer.parts[tp] = (6, 6, now[0] * 1000)
    await monitor.tick()
    consumer.parts[tp] = (6, 6, (now[0] + 0.5) * 1000)
    await monitor.tick()
    assert monitor.caught_up_at >= asked_at
