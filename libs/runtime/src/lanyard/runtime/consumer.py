"""Lanyard's consumer rules on top of faststream (DESIGN §4).

- Records are fetched in batches; each partition's records are handled in order, different
  partitions concurrently (a partition is the unit of ordering: DESIGN §7 keys one device or one
  device session to one partition).
- The offsets are committed once the whole batch has been handled (commit after the effect).
  If a record can neither be handled nor dead-lettered, faststream (`NACK_ON_ERROR`) rewinds each
  partition of the batch to its first record, so nothing is lost; handlers are idempotent, so
  the records handled a second time change nothing.
- A handler that raises is retried a bounded number of times with backoff, in place.
- A record that still fails, or cannot be decoded, goes to `<topic>.dlq` with the reason in a
  header, and the partition moves on.
- A record of a type this version does not know is skipped (a newer producer, additive change).

Handlers receive the decoded contracts event; `current_record()` gives the Kafka record behind
it (topic, partition, offset, the exact bytes) to the few handlers that need it (audit).

A service may also pass a `batch_handler`: it receives one partition's decodable records of a
fetched batch at once (in order, with their `RecordInfo`) so it can apply them in one write. If
it raises, the same records go through the per-record path (retries, then the dead-letter
topic), so a poison record still only stops itself; handlers are idempotent, so records the
failed batch already applied change nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from lanyard.contracts import CORRELATION_HEADER, Event, Topic, UnknownEventType, decode_event
from lanyard.runtime import metrics
from lanyard.runtime.logging import bind_correlation, get_logger

log = get_logger("lanyard.consumer")

Handler = Callable[[Event], Awaitable[None]]
BatchHandler = Callable[[Sequence[tuple[Event, "RecordInfo"]]], Awaitable[None]]

DLQ_REASON = "lanyard-dlq-reason"
DLQ_SOURCE = "lanyard-dlq-source"
DLQ_GROUP = "lanyard-dlq-group"


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing handler is tried before its record is dead-lettered."""

    attempts: int = 3
    backoff_s: float = 0.05

    def delay(self, attempt: int) -> float:
        """Exponential backoff before attempt number `attempt + 1`."""
        return self.backoff_s * (2 ** (attempt - 1))


@dataclass(frozen=True)
class RecordInfo:
    """The Kafka record behind the event a handler is processing."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


_CURRENT: contextvars.ContextVar[RecordInfo | None] = contextvars.ContextVar("lanyard_record", default=None)


def current_record() -> RecordInfo | None:
    """The record being handled in this task, or None outside a handler."""
    return _CURRENT.get()


def subscribe(
    broker: KafkaBroker,
    topics: Topic | list[Topic],
    group_id: str,
    handler: Handler,
    *,
    batch_handler: BatchHandler | None = None,
    retry: RetryPolicy = RetryPolicy(),
    max_batch: int = 500,
    poll_ms: int = 5,
    **subscriber_options: Any,
) -> Any:
    """Subscribe `handler` to `topics` in consumer group `group_id` with Lanyard's delivery rules.

    `poll_ms` bounds how long an idle fetch waits (faststream also sleeps that long after an
    empty poll), so it is the latency a record can pick up before its handler runs.
    `batch_handler` (optional) takes a partition's records of one fetch together (module docstring).
    Returns the faststream subscriber (`subscriber_ready` tells whether partitions are assigned).
    """
    topic_list = topics if isinstance(topics, list) else [topics]
    by_name = {t.name: t for t in topic_list}
    options: dict[str, Any] = {"auto_offset_reset": "earliest", "max_poll_interval_ms": 300_000}
    options.update(subscriber_options)
    subscriber = broker.subscriber(
        *by_name,
        group_id=group_id,
        batch=True,
        max_records=max_batch,
        batch_timeout_ms=poll_ms,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        **options,
    )

    async def prepare(record: Any) -> tuple[Event, RecordInfo] | None:
        """Decode one record; None when it was skipped (unknown type) or dead-lettered (undecodable)."""
        topic = by_name[record.topic]
        info = RecordInfo(
            record.topic, record.partition, record.offset, record.key, record.value,
            tuple(record.headers or ()), record.timestamp,
        )  # fmt: skip
        if record.timestamp:
            metrics.RECORD_AGE_SECONDS.labels(topic.name, group_id).observe(
                max(0.0, time.time() - record.timestamp / 1000)
            )
        try:
            return decode_event(record.value), info
        except UnknownEventType as unknown:
            log.info("skipped event of unknown type", topic=topic.name, type=str(unknown))
            metrics.CONSUMED.labels(topic.name, group_id, "skipped").inc()
        except ValidationError as invalid:
            await _dead_letter(broker, topic, info, group_id, f"undecodable: {invalid.error_count()} errors")
        return None

    async def deliver(event: Event, info: RecordInfo) -> None:
        """The per-record path: the handler with bounded retries, then the dead-letter topic."""
        topic = by_name[info.topic]
        _CURRENT.set(info)
        bind_correlation(_header(info, CORRELATION_HEADER))
        last: Exception | None = None
        for attempt in range(1, retry.attempts + 1):
            started = time.perf_counter()
            try:
                await handler(event)
                metrics.HANDLER_SECONDS.labels(topic.name).observe(time.perf_counter() - started)
                metrics.CONSUMED.labels(topic.name, group_id, "ok").inc()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "handler failed",
                    topic=topic.name,
                    type=event.type,
                    event_id=event.event_id,
                    attempt=attempt,
                    error=type(exc).__name__,
                )
                last = exc
                if attempt < retry.attempts:
                    await asyncio.sleep(retry.delay(attempt))
        await _dead_letter(broker, topic, info, group_id, f"{type(last).__name__}: {last}"[:500])

    async def deliver_together(items: list[tuple[Event, RecordInfo]]) -> bool:
        """The batch path; False when the batch handler failed (the caller falls back)."""
        assert batch_handler is not None
        topic = items[0][1].topic
        started = time.perf_counter()
        try:
            await batch_handler(items)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "batch handler failed; handling one by one", topic=topic, records=len(items), error=type(exc).__name__
            )
            return False
        metrics.HANDLER_SECONDS.labels(topic).observe((time.perf_counter() - started) / len(items))
        metrics.CONSUMED.labels(topic, group_id, "ok").inc(len(items))
        return True

    async def handle_partition(records: Sequence[Any]) -> None:
        items = [item for record in records if (item := await prepare(record)) is not None]
        if batch_handler is not None and len(items) > 1 and await deliver_together(items):
            return
        for event, info in items:
            await deliver(event, info)

    async def on_batch(msg: KafkaMessage) -> None:
        partitions: dict[tuple[str, int], list[Any]] = {}
        for record in msg.raw_message:
            partitions.setdefault((record.topic, record.partition), []).append(record)
        if len(partitions) == 1:
            await handle_partition(next(iter(partitions.values())))
            return
        results = await asyncio.gather(*(handle_partition(r) for r in partitions.values()), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]  # faststream rewinds every partition of the batch: nothing lost

    subscriber(on_batch)
    return subscriber


def _header(info: RecordInfo, name: str) -> str | None:
    for key, value in info.headers:
        if key == name:
            return value.decode(errors="replace")
    return None


async def _dead_letter(broker: KafkaBroker, topic: Topic, record: RecordInfo, group_id: str, reason: str) -> None:
    source = f"{record.topic}:{record.partition}:{record.offset}"
    headers = {k: v.decode(errors="replace") for k, v in record.headers}
    headers.update({DLQ_REASON: reason, DLQ_SOURCE: source, DLQ_GROUP: group_id})
    # If this raises, the batch is rewound: the record is read again, never lost.
    await broker.publish(record.value, topic=topic.dlq.name, key=record.key, headers=headers)
    metrics.CONSUMED.labels(topic.name, group_id, "dead_lettered").inc()
    log.error("dead-lettered record", topic=topic.name, source=source, reason=reason)


def subscriber_ready(subscriber: Any) -> bool:
    """True once the subscriber's consumer has partitions assigned (or is running unassigned)."""
    consumer = getattr(subscriber, "consumer", None)
    if consumer is None:
        return False
    try:
        return bool(consumer.assignment())
    except Exception:
        return False


logging.getLogger("faststream").setLevel(logging.WARNING)
