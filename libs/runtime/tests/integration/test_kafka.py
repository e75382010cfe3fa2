"""The delivery rules of DESIGN §4 against the real broker: topics from the registry,
publish and consume in a group, commit after the effect, retry, and dead-lettering."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from faststream.kafka.parser import AioKafkaBatchParser

from lanyard.contracts import ALL_TOPICS, Event, Subject, Topic
from lanyard.contracts.events import DeviceCheckedIn, DeviceCheckedInPayload
from lanyard.runtime.consumer import (
    DLQ_REASON,
    DLQ_SOURCE,
    DLQ_TRUNCATED,
    IDLE_WAIT_MS,
    RecordRefused,
    RetryPolicy,
    consumer_state,
    subscribe,
)
from lanyard.runtime.kafka import EventPublisher, create_broker, ensure_topics
from lanyard.runtime.testing import eventually

pytestmark = pytest.mark.integration


def checkin(n: int, enterprise: str = "ent-test") -> DeviceCheckedIn:
    return DeviceCheckedIn(
        enterprise_id=enterprise,
        producer="test",
        subject=Subject(user_id=f"u{n}", device_id=f"d{n}", device_session_id=f"ds{n}"),
        payload=DeviceCheckedInPayload(
            device_session_id=f"ds{n}", device_id=f"d{n}", user_id=f"u{n}", sequence=2, reason="user"
        ),
    )


async def send(broker, topic: Topic, event: Event) -> None:
    """Publish `event` to a scratch topic keyed as every producer keys it (`Event.record_key`)."""
    await broker.publish(event.to_json(), topic=topic.name, key=event.record_key())


async def scratch_topic(bootstrap: str) -> Topic:
    """A topic of its own per test (one partition, so offsets are easy to reason about)."""
    topic = Topic(f"test.{uuid.uuid4().hex[:12]}", "device id", 1, "delete", 3_600_000, "test")
    await ensure_topics(bootstrap, [topic, topic.dlq])
    return topic


@contextlib.asynccontextmanager
async def dead_letter_rig(bootstrap: str, client_id: str, **dlq_options) -> AsyncIterator[SimpleNamespace]:
    """A scratch topic consumed by a group whose handler notes each device id (`handled`), and a
    reader of the topic's dead-letter topic (`dlq`), all started; stopped on exit."""
    topic = await scratch_topic(bootstrap)
    rig = SimpleNamespace(topic=topic, group=f"g-{uuid.uuid4().hex[:8]}", handled=[])

    async def handler(event):
        rig.handled.append(event.payload.device_id)

    rig.broker = create_broker(bootstrap, client_id)
    subscribe(rig.broker, topic, rig.group, handler)
    rig.dlq = AIOKafkaConsumer(topic.dlq.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest", **dlq_options)
    await rig.broker.start()
    await rig.dlq.start()
    try:
        yield rig
    finally:
        await rig.dlq.stop()
        await rig.broker.stop()


async def committed(bootstrap: str, group: str, topic: Topic) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        meta = offsets.get(TopicPartition(topic.name, 0))
        return meta.offset if meta else None
    finally:
        await admin.close()


async def test_topics_are_created_from_the_registry_with_their_configuration(kafka_bootstrap):
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        assert {t.name for t in ALL_TOPICS} <= existing
        described = {d["topic"]: d for d in await admin.describe_topics([t.name for t in ALL_TOPICS])}
        for t in ALL_TOPICS:
            assert len(described[t.name]["partitions"]) == t.partitions, t.name
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t.name) for t in ALL_TOPICS])
        seen = {}
        for response in configs:
            for resource in response.resources:
                name, entries = resource[3], {e[0]: e[1] for e in resource[4]}
                seen[name] = entries
        for t in ALL_TOPICS:
            assert seen[t.name]["cleanup.policy"] == t.cleanup, t.name
    finally:
        await admin.close()
    # Creating again is a no-op, not an error.
    assert await ensure_topics(kafka_bootstrap) == []


async def test_an_event_published_with_faststream_is_consumed_in_a_group(kafka_bootstrap):
    topic = await scratch_topic(kafka_bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    received = []

    async def handler(event):
        received.append(event)

    consumer_broker = create_broker(kafka_bootstrap, "test-consumer")
    subscribe(consumer_broker, topic, group, handler)
    producer_broker = create_broker(kafka_bootstrap, "test-producer")
    await consumer_broker.start()
    await producer_broker.start()
    try:
        sent = checkin(1)
        await producer_broker.publish(sent.to_json(), topic=topic.name, key=sent.key().encode(), headers=sent.headers())
        await eventually(lambda: received, 20, what="the event to arrive")
        assert received[0] == sent
        assert isinstance(received[0], DeviceCheckedIn)
        await eventually(lambda: committed(kafka_bootstrap, group, topic), 10)
        assert await committed(kafka_bootstrap, group, topic) == 1
    finally:
        await consumer_broker.stop()
        await producer_broker.stop()


async def test_publisher_sends_to_the_registered_topic_keyed_with_headers(kafka_bootstrap):
    broker = create_broker(kafka_bootstrap, "test-publisher")
    await broker.start()
    topic = DeviceCheckedIn.topic
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        parts = [TopicPartition(topic.name, p) for p in reader.partitions_for_topic(topic.name) or range(6)]
        reader.assign(parts)
        await reader.seek_to_end(*parts)
        for p in parts:
            await reader.position(p)
        event = checkin(2, enterprise=f"ent-{uuid.uuid4().hex[:6]}")
        await EventPublisher(broker).publish(event)  # returns after the broker's ack
        batch = await reader.getmany(timeout_ms=10_000)
        records = [r for rs in batch.values() for r in rs if r.key == event.key().encode()]
        assert len(records) == 1
        headers = {k: v.decode() for k, v in records[0].headers}
        assert headers["lanyard-type"] == "session.device_checked_in.v1"
        assert records[0].value == event.to_json()
        # The same record faststream's own publish makes: the same headers, key and value.
        await broker.publish(
            event.to_json(), topic=topic.name, key=event.record_key(), headers=event.headers(),
            correlation_id=event.event_id,
        )  # fmt: skip
        again = [r for rs in (await reader.getmany(timeout_ms=10_000)).values() for r in rs if r.key == records[0].key]
        assert [(r.value, r.headers) for r in again] == [(records[0].value, records[0].headers)]
    finally:
        await reader.stop()
        await broker.stop()


async def test_offset_is_committed_only_after_the_handler_succeeds(kafka_bootstrap):
    topic = await scratch_topic(kafka_bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    entered, release = asyncio.Event(), asyncio.Event()
    calls = []

    async def slow_then_fail_once(event):
        calls.append(event.event_id)
        entered.set()
        await release.wait()
        if len(calls) == 1:
            raise RuntimeError("transient: database briefly unreachable")

    broker = create_broker(kafka_bootstrap, "test-commit")
    subscribe(broker, topic, group, slow_then_fail_once, retry=RetryPolicy(backoff_s=0.01))
    await broker.start()
    try:
        await EventPublisher(broker).publish(checkin(3).model_copy())  # to the registry topic, not ours
        sent = checkin(4)
        await send(broker, topic, sent)
        await asyncio.wait_for(entered.wait(), 20)
        # The handler is still running: nothing may be committed yet.
        assert await committed(kafka_bootstrap, group, topic) in (None, -1)
        release.set()
        await eventually(lambda: len(calls) >= 2, 10, what="the failed handler to get the message again")
        assert calls[0] == calls[1] == sent.event_id
        assert await eventually(lambda: committed(kafka_bootstrap, group, topic), 10) == 1
    finally:
        await broker.stop()


async def test_an_uncommitted_message_is_redelivered_to_the_next_consumer_of_the_group(kafka_bootstrap):
    topic = await scratch_topic(kafka_bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    first_seen = asyncio.Event()

    async def never_finishes(event):
        first_seen.set()
        await asyncio.Event().wait()

    first = create_broker(kafka_bootstrap, "test-crash-1")
    first.config.broker_config.graceful_timeout = 0.5  # type: ignore[attr-defined]
    subscribe(first, topic, group, never_finishes)
    await first.start()
    sent = checkin(5)
    await send(first, topic, sent)
    await asyncio.wait_for(first_seen.wait(), 20)
    await first.stop()  # dies with the handler unfinished: no commit

    got = []

    async def record(event):
        got.append(event)

    second = create_broker(kafka_bootstrap, "test-crash-2")
    subscribe(second, topic, group, record)
    await second.start()
    try:
        await eventually(lambda: got, 30, what="redelivery to the second consumer")
        assert got[0].event_id == sent.event_id
    finally:
        await second.stop()


async def test_poison_message_goes_to_the_dead_letter_topic_and_the_partition_moves_on(kafka_bootstrap):
    topic = await scratch_topic(kafka_bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    handled, attempts = [], []

    async def handler(event):
        attempts.append(event.payload.device_id)
        if event.payload.device_id == "d6":
            raise RecordRefused("cannot apply: device unknown")
        handled.append(event.payload.device_id)

    broker = create_broker(kafka_bootstrap, "test-dlq")
    subscribe(broker, topic, group, handler, retry=RetryPolicy(backoff_s=0.01))
    dlq = AIOKafkaConsumer(topic.dlq.name, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    await broker.start()
    await dlq.start()
    try:
        await broker.publish(b"{not json", topic=topic.name, key=b"garbage")
        await send(broker, topic, checkin(6))
        await send(broker, topic, checkin(7))
        await eventually(lambda: handled == ["d7"], 20, what="the record after the poison one")
        assert attempts.count("d6") == 1  # refused: dead-lettered at once, never retried
        dead = []

        async def fetch():
            batch = await dlq.getmany(timeout_ms=500)
            dead.extend(r for rs in batch.values() for r in rs)
            return len(dead) >= 2

        await eventually(fetch, 20, what="two dead letters")
        reasons = [dict(r.headers)[DLQ_REASON].decode() for r in dead]
        assert reasons[0].startswith("undecodable")
        assert reasons[1] == "refused: cannot apply: device unknown"
        assert dict(dead[1].headers)[DLQ_SOURCE].decode() == f"{topic.name}:0:1"
        assert await eventually(lambda: committed(kafka_bootstrap, group, topic), 10) == 3
    finally:
        await dlq.stop()
        await broker.stop()


async def test_a_record_keyed_otherwise_than_its_event_is_dead_lettered_and_never_handled(kafka_bootstrap):
    """Issue 17: keyed elsewhere, a checkin can sit in another partition than its checkout and be
    applied first; the consumer refuses it as poison instead of applying it out of order."""
    async with dead_letter_rig(kafka_bootstrap, "test-wrong-key") as rig:
        topic, broker = rig.topic, rig.broker
        other = checkin(2)
        await broker.publish(checkin(1).to_json(), topic=topic.name, key=other.record_key())  # another session's
        await broker.publish(checkin(1).to_json(), topic=topic.name, key=b"d1")  # no enterprise in it
        await broker.publish(checkin(1).to_json(), topic=topic.name)  # no key at all
        await send(broker, topic, checkin(3))
        await eventually(lambda: rig.handled == ["d3"], 20, what="the record after the wrongly keyed ones")
        dead = []

        async def fetch():
            batch = await rig.dlq.getmany(timeout_ms=500)
            dead.extend(r for rs in batch.values() for r in rs)
            return len(dead) >= 3

        await eventually(fetch, 20, what="three dead letters")
        reasons = [dict(r.headers)[DLQ_REASON].decode() for r in dead]
        assert reasons[:2] == ["wrong key: session.device_checked_in.v1 record is not keyed by its enterprise id"
                               " and device_id"] * 2  # fmt: skip
        assert reasons[2].startswith("wrong key: session.device_checked_in.v1 record has no key")
        assert not any(v in r for r in reasons for v in ("d1", "d2", "ent-test"))  # no key echoed
        assert [dict(r.headers)[DLQ_SOURCE].decode() for r in dead] == [f"{topic.name}:0:{n}" for n in range(3)]
        assert rig.handled == ["d3"]
        assert await eventually(lambda: _at(kafka_bootstrap, rig.group, topic, 4), 10)


async def test_unknown_event_types_from_newer_producers_are_skipped(kafka_bootstrap):
    topic = await scratch_topic(kafka_bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    handled = []

    async def handler(event):
        handled.append(event)

    broker = create_broker(kafka_bootstrap, "test-unknown")
    subscribe(broker, topic, group, handler)
    await broker.start()
    try:
        future = b'{"type": "session.device_teleported.v1", "enterprise_id": "e", "at": "%s"}' % (
            datetime.now(UTC).isoformat().encode()
        )
        await broker.publish(future, topic=topic.name, key=b"k")
        await send(broker, topic, checkin(8))
        await eventually(lambda: handled, 20)
        assert [e.payload.device_id for e in handled] == ["d8"]
        assert await eventually(lambda: committed(kafka_bootstrap, group, topic), 10) == 2
    finally:
        await broker.stop()


async def test_a_batch_handler_gets_a_partition_s_records_together_and_falls_back_one_by_one(kafka_bootstrap):
    topic = await scratch_topic(kafka_bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    batches, one_by_one = [], []

    async def batch_handler(items):
        batches.append([(event.payload.device_id, info.offset) for event, info in items])
        if any(event.payload.device_id == "d3" for event, _ in items):
            raise ValueError("one record of the batch cannot be applied")

    async def handler(event):
        if event.payload.device_id == "d3":
            raise RecordRefused("cannot apply")
        one_by_one.append(event.payload.device_id)

    publisher = create_broker(kafka_bootstrap, "test-batch-pub")
    await publisher.start()
    for n in (1, 2):  # published before the consumer starts, so its first fetch holds them all
        await send(publisher, topic, checkin(n))
    broker = create_broker(kafka_bootstrap, "test-batch")
    subscribe(broker, topic, group, handler, batch_handler=batch_handler, retry=RetryPolicy(0.01))
    await broker.start()
    try:
        await eventually(lambda: committed(kafka_bootstrap, group, topic), 20, what="first batch committed")
        assert batches[0] == [("d1", 0), ("d2", 1)] and one_by_one == []  # applied together, once

        await broker.stop()
        for n in (3, 4, 5):
            await send(publisher, topic, checkin(n))
        broker = create_broker(kafka_bootstrap, "test-batch")
        subscribe(broker, topic, group, handler, batch_handler=batch_handler, retry=RetryPolicy(0.01))
        await broker.start()
        await eventually(lambda: one_by_one == ["d4", "d5"], 20, what="the fallback past the poison record")
        assert batches[-1] == [("d3", 2), ("d4", 3), ("d5", 4)]
        assert await eventually(lambda: _at(kafka_bootstrap, group, topic, 5), 10)
    finally:
        await broker.stop()
        await publisher.stop()


@contextlib.asynccontextmanager
async def device_ids_subscription(bootstrap: str, name: str) -> AsyncIterator[SimpleNamespace]:
    """A started batch subscription on a scratch topic that records each handled checkin's
    device id (`handled`), and a started publisher (`publisher`, `topic`, `subscriber`)."""
    topic = await scratch_topic(bootstrap)
    handled: list[str] = []

    async def handler(event):
        handled.append(event.payload.device_id)

    async def batch_handler(items):
        handled.extend(event.payload.device_id for event, _ in items)

    broker = create_broker(bootstrap, name)
    subscriber = subscribe(broker, topic, f"g-{uuid.uuid4().hex[:8]}", handler, batch_handler=batch_handler)
    publisher = create_broker(bootstrap, f"{name}-pub")
    await publisher.start()
    await broker.start()
    try:
        yield SimpleNamespace(topic=topic, handled=handled, subscriber=subscriber, publisher=publisher)
    finally:
        await broker.stop()
        await publisher.stop()


async def test_an_idle_subscription_waits_inside_the_fetch_and_never_sleeps_between_fetches(kafka_bootstrap):
    """The IdP's device consumer is idle most of the time, and a checkin's first record arrives
    at an idle consumer: it must not wait out a sleep, and waiting must not cost a core."""
    async with device_ids_subscription(kafka_bootstrap, "test-idle") as sub:
        await send(sub.publisher, sub.topic, checkin(1))
        await eventually(lambda: sub.handled == ["d1"], 30, what="the first record")  # assigned and fetching

        fetches: list[tuple[float, float, int]] = []  # (started, returned, records) per getmany
        consumer = sub.subscriber.consumer
        real_getmany = consumer.getmany

        async def counted_getmany(*args, **kwargs):
            started = asyncio.get_running_loop().time()
            fetched = await real_getmany(*args, **kwargs)
            fetches.append((started, asyncio.get_running_loop().time(), sum(map(len, fetched.values()))))
            return fetched

        consumer.getmany = counted_getmany
        await eventually(lambda: len(fetches) >= 3, 30, what="three idle fetches")
        idle = [f for f in fetches[:3] if f[2] == 0]
        assert len(idle) == 3
        # Each empty fetch waited for records in the fetch itself (no busy polling) ...
        assert all(returned - started >= IDLE_WAIT_MS / 2000 for started, returned, _ in idle)
        # ... and the next one began at once: there is no sleep in which a record would wait.
        assert all(later[0] - earlier[1] < 0.5 for earlier, later in itertools.pairwise(idle))

        await send(sub.publisher, sub.topic, checkin(2))
        await eventually(lambda: sub.handled == ["d1", "d2"], 30, what="a record sent to the idle subscription")


async def test_records_are_decoded_once_against_their_contract_not_also_by_faststream(kafka_bootstrap, monkeypatch):
    """faststream's batch decoder parsed every record's JSON again for nothing (5–13 % of a
    consumer's CPU under load); a subscription must hand records over without it."""

    async def refuse(*_args, **_kwargs):
        raise AssertionError("faststream's batch decoder ran")

    monkeypatch.setattr(AioKafkaBatchParser, "decode_batch", refuse)
    async with device_ids_subscription(kafka_bootstrap, "test-decode") as sub:
        for n in (1, 2, 3):
            await send(sub.publisher, sub.topic, checkin(n))
        await eventually(lambda: sorted(sub.handled) == ["d1", "d2", "d3"], 30, what="three records")


async def _at(bootstrap: str, group: str, topic: Topic, offset: int) -> bool:
    return await committed(bootstrap, group, topic) == offset


async def dlq_size(bootstrap: str, topic: Topic) -> int:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await reader.start()
    try:
        ends = await reader.end_offsets([TopicPartition(topic.dlq.name, 0)])
        return sum(ends.values())
    finally:
        await reader.stop()


async def test_a_dependency_down_longer_than_any_retry_budget_holds_the_partition_and_dead_letters_nothing(
    kafka_bootstrap,
):
    """Issue 11: Redis away for seconds used to dead-letter checkins after ~0.3 s of retries."""
    topic = await scratch_topic(kafka_bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    down = {"redis": True, "bug": True}
    applied, failures = [], {"d1": 0, "d2": 0}

    async def handler(event):
        device = event.payload.device_id
        if device == "d1" and down["redis"]:
            failures[device] += 1
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        if device == "d2" and down["bug"]:
            failures[device] += 1
            raise KeyError("a handler bug: not classified, so held too")
        applied.append(device)

    broker = create_broker(kafka_bootstrap, "test-hold")
    subscriber = subscribe(broker, topic, group, handler, retry=RetryPolicy(backoff_s=0.01, max_backoff_s=0.1))
    state = consumer_state(subscriber)
    await broker.start()
    try:
        for n in (1, 2, 3):
            await send(broker, topic, checkin(n))
        await eventually(lambda: state.holding, 20, what="the first record held")
        await asyncio.sleep(2.5)  # the outage lasts: far beyond the old three attempts (~0.35 s)
        assert state.holding and applied == [] and failures["d1"] > 3
        assert state.describe()[0]["offset"] == 0 and state.describe()[0]["error"] == "ConnectionError"
        assert await committed(kafka_bootstrap, group, topic) in (None, -1)
        down["redis"] = False
        await eventually(lambda: failures["d2"] > 3, 10, what="the second record held on its bug")
        assert applied == ["d1"] and state.holding
        down["bug"] = False
        await eventually(lambda: applied == ["d1", "d2", "d3"], 10, what="everything applied once back")
        assert not state.holding
        assert await eventually(lambda: _at(kafka_bootstrap, group, topic, 3), 10)
        assert await dlq_size(kafka_bootstrap, topic) == 0
    finally:
        await broker.stop()


async def test_a_long_hold_is_fetched_again_so_the_member_keeps_its_group(kafka_bootstrap):
    """Held in place beyond max_poll_interval_ms, aiokafka would leave the group; the runtime
    rewinds and fetches again first, so the record is applied exactly once, by this member."""
    topic = await scratch_topic(kafka_bootstrap)
    group = f"g-{uuid.uuid4().hex[:8]}"
    until = asyncio.get_running_loop().time() + 7
    successes = []

    async def handler(event):
        if asyncio.get_running_loop().time() < until:
            raise TimeoutError("Timeout reading from 127.0.0.1:6379")
        successes.append(event.event_id)

    broker = create_broker(kafka_bootstrap, "test-rewind")
    subscribe(
        broker, topic, group, handler, retry=RetryPolicy(backoff_s=0.05, max_backoff_s=0.2), max_poll_interval_ms=3000
    )
    await broker.start()
    try:
        sent = checkin(9)
        await send(broker, topic, sent)
        await eventually(lambda: successes, 30, what="applied once the dependency is back")
        assert await eventually(lambda: _at(kafka_bootstrap, group, topic, 1), 10)
        await asyncio.sleep(1)  # a member that had left would read it again from offset 0 now
        assert successes == [sent.event_id]
        assert await dlq_size(kafka_bootstrap, topic) == 0
    finally:
        await broker.stop()


async def test_a_record_just_under_the_request_size_is_dead_lettered_with_a_copy_that_fits(kafka_bootstrap):
    """Issue 11: a 1,048,424-byte record fits the producer, its dead-letter copy with the added
    headers did not, and every consumer group retried it forever. Now the copy is cut to fit."""
    async with dead_letter_rig(kafka_bootstrap, "test-oversized", fetch_max_bytes=4 * 2**20) as rig:
        topic = rig.topic
        huge = b"[" + b"0," * (1_048_424 // 2 - 1) + b"0"  # not an event: undecodable, so poison
        assert len(huge) == 1_048_424
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:  # the raw record as another producer would send it: no headers added
            await producer.send_and_wait(topic.name, huge, key=b"k")
        finally:
            await producer.stop()
        await send(rig.broker, topic, checkin(10))
        await eventually(lambda: rig.handled == ["d10"], 30, what="the record after the oversized one")
        assert await eventually(lambda: _at(kafka_bootstrap, rig.group, topic, 2), 10)
        batch = await rig.dlq.getmany(timeout_ms=10_000)
        [copy] = [r for rs in batch.values() for r in rs]
        headers = {k: v.decode() for k, v in copy.headers}
        assert headers[DLQ_SOURCE] == f"{topic.name}:0:0" and headers[DLQ_REASON].startswith("undecodable")
        assert headers[DLQ_TRUNCATED] == "1048424" and len(copy.value) < 1_048_424
        assert huge.startswith(copy.value)
