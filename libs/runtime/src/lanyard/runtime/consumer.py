"""Lanyard's consumer rules on top of faststream (DESIGN §4).

- The offset is committed only after the handler returned (faststream `NACK_ON_ERROR`: success
  commits; an exception rewinds the partition to the record, so it is read again).
- A handler that raises is retried a bounded number of times with backoff, in place.
- A record that still fails, or cannot be decoded, goes to `<topic>.dlq` with the reason in a
  header, and then the offset is committed: the partition moves on. Only if the dead-letter
  publish itself fails does the record stay uncommitted (so nothing is lost).
- A record of a type this version does not know is skipped (a newer producer, additive change).

Handlers receive the decoded contracts event and must be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
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


def subscribe(
    broker: KafkaBroker,
    topics: Topic | list[Topic],
    group_id: str,
    handler: Handler,
    *,
    retry: RetryPolicy = RetryPolicy(),
    **subscriber_options: Any,
) -> Any:
    """Subscribe `handler` to `topics` in consumer group `group_id` with Lanyard's delivery rules.

    Returns the faststream subscriber (its `.ready()` tells whether partitions are assigned).
    """
    topic_list = topics if isinstance(topics, list) else [topics]
    by_name = {t.name: t for t in topic_list}
    options: dict[str, Any] = {"auto_offset_reset": "earliest", "max_poll_interval_ms": 300_000}
    options.update(subscriber_options)
    subscriber = broker.subscriber(*by_name, group_id=group_id, ack_policy=AckPolicy.NACK_ON_ERROR, **options)

    async def on_record(msg: KafkaMessage) -> None:
        record = msg.raw_message
        topic = by_name[record.topic]
        headers = dict(msg.headers)
        bind_correlation(headers.get(CORRELATION_HEADER))
        try:
            event = decode_event(msg.body)
        except UnknownEventType as unknown:
            log.info("skipped event of unknown type", topic=topic.name, type=str(unknown))
            metrics.CONSUMED.labels(topic.name, group_id, "skipped").inc()
            return
        except ValidationError as invalid:
            await _dead_letter(broker, topic, msg, group_id, f"undecodable: {invalid.error_count()} errors")
            return
        for attempt in range(1, retry.attempts + 1):
            try:
                await handler(event)
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
                if attempt < retry.attempts:
                    await asyncio.sleep(retry.delay(attempt))
                last = exc
        await _dead_letter(broker, topic, msg, group_id, f"{type(last).__name__}: {last}"[:500])

    subscriber(on_record)
    return subscriber


async def _dead_letter(broker: KafkaBroker, topic: Topic, msg: Any, group_id: str, reason: str) -> None:
    record = msg.raw_message
    source = f"{record.topic}:{record.partition}:{record.offset}"
    headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in (record.headers or [])}
    headers.update({DLQ_REASON: reason, DLQ_SOURCE: source, DLQ_GROUP: group_id})
    # If this raises, faststream rewinds the partition: the record is read again, never lost.
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
