"""Lanyard's consumer rules on top of faststream (DESIGN §4).

- Records are fetched in batches; each partition's records are handled in order, different
  partitions concurrently (a partition is the unit of ordering: DESIGN §7 keys one device or one
  device session to one partition).
- The offsets are committed once the whole batch has been handled (commit after the effect).
- A fetch is handled the moment it arrives: the subscription waits for records inside aiokafka's
  `getmany`, never in a sleep (`_wake_on_records`). Batching, where a service wants it, is the
  broker's (`fetch_max_wait_ms` / `fetch_min_bytes`, `ServiceSettings.consumer_options`).
- A record of a type this version does not know is skipped (a newer producer, additive change).

**The failure rule: two kinds of failure, never mixed.**

1. *Poison* — a record that can never succeed: it does not decode (any error while decoding: no
   I/O is involved, so it fails the same way every time), it does not validate, its Kafka key is
   not its event's key (`Event.wrong_key`: keyed elsewhere, it sits in another partition than its
   subject's other events, so per-key order — a checkout before its checkin — is lost), or its
   handler refuses it by raising `RecordRefused`. It goes to `<topic>.dlq` at once (no retries) and the
   partition moves on.
2. *Everything else* — Redis or the broker away (ConnectionError, TimeoutError, KafkaError), a
   peer failing, and also **any exception a handler did not classify**. It is retried in place
   with capped exponential backoff (`RetryPolicy`) for as long as it lasts; the partition's
   offset does not move; the subscription reports that it holds a record (`consumer_state`), so
   the service's readiness says not ready (`ServiceRuntime.checks`) and the IdP fails closed.

Why an unclassified exception is *not* poison: the record is valid and of a known type, so the
failure is the handler's or a dependency's, not the record's. Dead-lettering it would silently
drop a checkin or a revocation — the very failure this rule exists to prevent — while holding
it is loud (not ready, a log line every few seconds, `lanyard_consumer_held_partitions`) and
loses nothing: once the dependency is back or the bug is fixed and deployed, the held record is
applied and the partition continues. The cost is that a handler bug stops that subscription
until it is fixed (fail closed). A handler that knows a record is bad says so with
`RecordRefused`.

**Long holds and the group.** aiokafka leaves the consumer group when the application has not
fetched for `max_poll_interval_ms`. A hold therefore never lasts that long in place: after
`RetryPolicy.hold_s` (capped well below the poll interval) the batch is rewound (faststream's
nack seeks each partition back to its first record of the batch) and fetched again, which keeps
the member in its group; the retry continues on the re-fetched record with the same backoff.
If the member is dropped anyway (a broker outage, a stop-the-world pause), its offsets were not
committed, so the new owner of the partition reads the record again: nothing is lost, and
handlers are idempotent.

**Dead-letter copies always fit.** A copy carries the reason, the source topic/partition/offset
and group, and the record's value only up to a budget that fits under the producer's request
size (`lanyard.runtime.kafka.MAX_REQUEST_BYTES`), with `lanyard-dlq-truncated` giving the original
size when it was cut. A copy the broker still refuses as too large is sent again smaller (value
cut to 64 KiB, then no value at all); other broker errors are retried like any dependency, so a
dead-letter write never wedges a partition and never drops the record.

Handlers receive the decoded contracts event; `current_record()` gives the Kafka record behind
it (topic, partition, offset, the exact bytes) to the few handlers that need it (audit).

A service may also pass a `batch_handler`: it receives one partition's decodable records of a
fetched batch at once (in order, with their `RecordInfo`) so it can apply them in one write. If
it raises, the same records go through the per-record path (the rule above), so a poison record
still only stops itself; handlers are idempotent, so records the failed batch already applied
change nothing the second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError
from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker

from lanyard.contracts import CORRELATION_HEADER, Event, Topic, UnknownEventType, decode_event
from lanyard.runtime import metrics
from lanyard.runtime.kafka import MAX_REQUEST_BYTES
from lanyard.runtime.logging import bind_correlation, get_logger
from lanyard.runtime.settle import run_all

log = get_logger("lanyard.consumer")

Handler = Callable[[Event], Awaitable[None]]
BatchHandler = Callable[[Sequence[tuple[Event, "RecordInfo"]]], Awaitable[None]]
T = TypeVar("T")

DLQ_REASON = "lanyard-dlq-reason"
DLQ_SOURCE = "lanyard-dlq-source"
DLQ_GROUP = "lanyard-dlq-group"
DLQ_TRUNCATED = "lanyard-dlq-truncated"
"""Set on a dead-letter copy whose value (or headers) was cut to fit: the original value's size."""

DLQ_HEADROOM_BYTES = 64 * 1024
"""Kept free under the request size for the key, the headers and the batch framing."""
DLQ_SMALL_VALUE_BYTES = 64 * 1024
"""The value budget of the second try when the broker refused the first copy as too large."""
_SIZE_ERRORS = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)


class RecordRefused(Exception):
    """Raised by a handler for a record that can never succeed (poison): it is dead-lettered at
    once, with this exception's message as the reason, and the partition moves on.

    Raise it only for something about the record itself (a value the handler can never apply);
    a failing dependency must raise anything else, so the record is held and retried."""


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff of a record whose handler fails for any reason but `RecordRefused`.

    Retries never stop; `hold_s` bounds how long one batch is retried in place before it is
    rewound and fetched again (module docstring: staying in the consumer group)."""

    backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    hold_s: float = 30.0

    def delay(self, attempt: int) -> float:
        """Capped exponential backoff before attempt number `attempt + 1`."""
        return min(self.max_backoff_s, self.backoff_s * (2 ** min(attempt - 1, 30)))


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


@dataclass
class Hold:
    """A record whose handling keeps failing: the partition waits at its offset."""

    topic: str
    partition: int
    offset: int
    since: float
    attempts: int
    error: str


class ConsumerState:
    """What one subscription is doing right now, for readiness and the IdP's freshness.

    - `busy_since_ms()`: for the batches fetched and not yet fully handled (retries included),
      the earliest of their handover times and their records' own timestamps (ms); None when
      idle. No record created at or after that moment is known applied — and neither is any
      record of a batch in hand, which is why the records' timestamps count, not only the
      handover: a batch is fetched before it is handed over, so its records are older than it.
    - `holds`: the partitions whose current record keeps failing (being retried).
    """

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.holds: dict[tuple[str, int], Hold] = {}
        self._busy: dict[object, float] = {}
        # A rewound hold's start, so its duration keeps counting when the record comes back.
        self._carried: dict[tuple[str, int, int], tuple[float, int]] = {}

    @property
    def holding(self) -> bool:
        """True while some record of this subscription is being retried."""
        return bool(self.holds)

    def busy_since_ms(self) -> float | None:
        """When the oldest batch still being handled was handed over (ms), or None."""
        return min(self._busy.values(), default=None)

    @contextlib.contextmanager
    def busy(self, oldest_record_ms: float | None = None) -> Iterator[None]:
        """Mark a batch as being handled for as long as the block runs; `oldest_record_ms` is
        the timestamp of its oldest record (see `busy_since_ms`)."""
        token = object()
        now_ms = time.time() * 1000
        self._busy[token] = now_ms if oldest_record_ms is None else min(now_ms, oldest_record_ms)
        try:
            yield
        finally:
            del self._busy[token]

    def describe(self) -> list[dict[str, Any]]:
        """The holds, for operators (readiness detail and logs)."""
        now = time.monotonic()
        return [
            {"partition": f"{h.topic}:{h.partition}", "offset": h.offset, "attempts": h.attempts,
             "seconds": round(now - h.since, 1), "error": h.error}
            for h in self.holds.values()
        ]  # fmt: skip


_STATES: weakref.WeakKeyDictionary[Any, ConsumerState] = weakref.WeakKeyDictionary()
_CURRENT: contextvars.ContextVar[RecordInfo | None] = contextvars.ContextVar("lanyard_record", default=None)


def current_record() -> RecordInfo | None:
    """The record being handled in this task, or None outside a handler."""
    return _CURRENT.get()


def consumer_state(subscriber: Any) -> ConsumerState | None:
    """The state of a subscription made with `subscribe`, or None for any other subscriber."""
    return _STATES.get(subscriber)


IDLE_WAIT_MS = 1_000
"""How long one idle `getmany` waits before the loop goes round (records end the wait at once)."""


def _wake_on_records(subscriber: Any, max_batch: int) -> None:
    """Make the batch subscription wait for records in `getmany` instead of sleeping.

    faststream's batch loop (0.7) polls with `batch_timeout_ms` and then *sleeps* as long after
    every empty poll, so a record arriving during the sleep waited for it (half the time, on an
    idle consumer: the first record of a checkin is such a record) and an idle consumer woke
    twice per timeout (the IdP's device consumer, at 1 ms, used ≈ 5 % of a core doing nothing).
    `getmany` returns as soon as the fetcher holds records, so waiting there costs no latency."""

    async def get_msg(consumer: Any) -> tuple[Any, ...]:
        fetched = await consumer.getmany(timeout_ms=IDLE_WAIT_MS, max_records=max_batch)
        return tuple(record for records in fetched.values() for record in records)

    if not callable(getattr(subscriber, "get_msg", None)):
        raise TypeError("this faststream subscriber has no get_msg to replace; see _wake_on_records")
    subscriber.get_msg = get_msg


async def _records_undecoded(message: Any) -> tuple[Any, ...]:
    """The batch subscription's decoder: the records as fetched.

    `prepare` decodes each record against its contract. faststream's own batch decoder built a
    message object for every record and JSON-parsed its value, and the handler never looked at
    the result: under the event benchmark's load that was 5–13 % of each consumer's CPU
    (py-spy, docs/performance.md)."""
    return tuple(message.raw_message)


def subscribe(
    broker: KafkaBroker,
    topics: Topic | list[Topic],
    group_id: str,
    handler: Handler,
    *,
    batch_handler: BatchHandler | None = None,
    retry: RetryPolicy = RetryPolicy(),
    max_batch: int = 500,
    **subscriber_options: Any,
) -> Any:
    """Subscribe `handler` to `topics` in consumer group `group_id` with Lanyard's delivery rules.

    `batch_handler` (optional) takes a partition's records of one fetch together (module docstring).
    Returns the faststream subscriber (`subscriber_ready` tells whether partitions are assigned,
    `consumer_state` whether a record is held).
    """
    topic_list = topics if isinstance(topics, list) else [topics]
    by_name = {t.name: t for t in topic_list}
    options: dict[str, Any] = {"auto_offset_reset": "earliest", "max_poll_interval_ms": 300_000}
    options.update(subscriber_options)
    # Rewind well before aiokafka would leave the group for not fetching (module docstring).
    hold_s = min(retry.hold_s, options["max_poll_interval_ms"] / 1000 / 4)
    subscriber = broker.subscriber(
        *by_name,
        group_id=group_id,
        batch=True,
        max_records=max_batch,
        batch_timeout_ms=IDLE_WAIT_MS,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_records_undecoded,
        **options,
    )
    _wake_on_records(subscriber, max_batch)
    state = ConsumerState(group_id)
    _STATES[subscriber] = state

    async def until_done(info: RecordInfo, what: str, op: Callable[[], Awaitable[T]]) -> T:
        """Run `op` until it succeeds; RecordRefused passes through, everything else is retried."""
        key = (info.topic, info.partition)
        in_place_since = time.monotonic()
        since, attempt = state._carried.pop((info.topic, info.partition, info.offset), (in_place_since, 0))
        logged_at = 0.0
        try:
            while True:
                attempt += 1
                try:
                    result = await op()
                except (RecordRefused, asyncio.CancelledError, NackMessage):
                    raise
                except Exception as exc:
                    now = time.monotonic()
                    error = type(exc).__name__  # not its message: it may quote a record's data
                    state.holds[key] = Hold(info.topic, info.partition, info.offset, since, attempt, error)
                    metrics.HELD_PARTITIONS.labels(group_id).set(len(state.holds))
                    metrics.RETRIES.labels(info.topic, group_id).inc()
                    if now - logged_at >= 5.0:  # one line per few seconds, however fast the retries
                        logged_at = now
                        log.warning(
                            f"{what} failed; holding the partition and retrying",
                            topic=info.topic,
                            partition=info.partition,
                            offset=info.offset,
                            group=group_id,
                            attempts=attempt,
                            held_s=round(now - since, 2),
                            error=error,
                        )
                    await asyncio.sleep(retry.delay(attempt))
                    if time.monotonic() - in_place_since >= hold_s:
                        # Fetch again instead of waiting in place (module docstring).
                        state._carried[(info.topic, info.partition, info.offset)] = (since, attempt)
                        raise NackMessage() from None
                    continue
                if attempt > 1:
                    log.info(
                        f"{what} succeeded after retries; partition moves on",
                        topic=info.topic,
                        partition=info.partition,
                        offset=info.offset,
                        group=group_id,
                        attempts=attempt,
                        held_s=round(time.monotonic() - since, 2),
                    )
                return result
        finally:
            state.holds.pop(key, None)
            metrics.HELD_PARTITIONS.labels(group_id).set(len(state.holds))

    async def dead_letter(info: RecordInfo, reason: str) -> None:
        topic = by_name[info.topic]
        await until_done(info, "dead-letter write", lambda: _dead_letter(broker, topic, info, group_id, reason))

    async def prepare(record: Any) -> tuple[Event, RecordInfo] | None:
        """Decode one record; None when it was skipped (unknown type) or dead-lettered (undecodable, wrong key)."""
        topic = by_name[record.topic]
        info = RecordInfo(
            record.topic, record.partition, record.offset, record.key, record.value or b"",
            tuple(record.headers or ()), record.timestamp,
        )  # fmt: skip
        if record.timestamp:
            metrics.labelled(metrics.RECORD_AGE_SECONDS, topic.name, group_id).observe(
                max(0.0, time.time() - record.timestamp / 1000)
            )
        try:
            event = decode_event(info.value)
        except UnknownEventType as unknown:
            log.info("skipped event of unknown type", topic=topic.name, type=str(unknown))
            metrics.CONSUMED.labels(topic.name, group_id, "skipped").inc()
            return None
        except Exception as invalid:  # decoding does no I/O: whatever fails here fails every time
            await dead_letter(info, f"undecodable: {_describe(invalid)}")
            return None
        if (wrong := event.wrong_key(info.key)) is not None:
            await dead_letter(info, wrong)  # out of its subject's partition: its order is lost
            return None
        return event, info

    async def deliver(event: Event, info: RecordInfo) -> None:
        """The per-record path: the handler until it succeeds, or the dead-letter topic if refused."""
        topic = by_name[info.topic]
        _CURRENT.set(info)
        bind_correlation(_header(info, CORRELATION_HEADER))

        async def attempt() -> None:
            started = time.perf_counter()
            await handler(event)
            metrics.labelled(metrics.HANDLER_SECONDS, topic.name).observe(time.perf_counter() - started)

        try:
            await until_done(info, f"handler of {event.type}", attempt)
        except RecordRefused as refused:
            log.warning("handler refused the record", topic=topic.name, type=event.type, event_id=event.event_id)
            await dead_letter(info, f"refused: {refused}"[:500])
            return
        metrics.labelled(metrics.CONSUMED, topic.name, group_id, "ok").inc()

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
        metrics.labelled(metrics.HANDLER_SECONDS, topic).observe((time.perf_counter() - started) / len(items))
        metrics.labelled(metrics.CONSUMED, topic, group_id, "ok").inc(len(items))
        return True

    async def handle_partition(records: Sequence[Any]) -> None:
        items = [item for record in records if (item := await prepare(record)) is not None]
        if batch_handler is not None and len(items) > 1 and await deliver_together(items):
            return
        for event, info in items:
            await deliver(event, info)

    async def on_batch(records: Any) -> None:
        # The fetched records arrive as the body (`_records_undecoded`), not through a
        # `KafkaMessage` parameter: faststream resolves that annotation as a context field whose
        # resolver is a plain function, and fast_depends runs such a resolver in a worker thread
        # (anyio's `to_thread.run_sync`): a thread hand-off, both ways, before every fetched batch
        # reached its handler (py-spy, docs/performance.md).
        partitions: dict[tuple[str, int], list[Any]] = {}
        for record in records:
            partitions.setdefault((record.topic, record.partition), []).append(record)
        # Capped at the oldest record's own time: a watermark must never vouch for a record
        # still being applied (the IdP's freshness answers "unknown device session" on it).
        stamps = [r.timestamp for r in records if isinstance(r.timestamp, int) and r.timestamp >= 0]
        with state.busy(min(stamps, default=None)):
            # A failure is raised once every partition has finished; faststream then rewinds
            # every partition of the batch: nothing lost.
            await run_all(handle_partition(r) for r in partitions.values())

    subscriber(on_batch)
    return subscriber


def _describe(exc: Exception) -> str:
    count = getattr(exc, "error_count", None)
    if callable(count):
        return f"{count()} errors"
    return type(exc).__name__


def _header(info: RecordInfo, name: str) -> str | None:
    for key, value in info.headers:
        if key == name:
            return value.decode(errors="replace")
    return None


def dead_letter_copy(
    record: RecordInfo, group_id: str, reason: str, value_budget: int
) -> tuple[bytes, bytes | None, dict[str, str]]:
    """(value, key, headers) of a dead-letter copy whose value is at most `value_budget` bytes.

    The record's own headers are kept when they are small; the copy's own headers (reason,
    source, group, truncation) always are."""
    source = f"{record.topic}:{record.partition}:{record.offset}"
    headers: dict[str, str] = {}
    keep_headers = sum(len(k) + len(v) for k, v in record.headers) <= DLQ_HEADROOM_BYTES // 4
    if keep_headers:
        headers.update({k: v.decode(errors="replace") for k, v in record.headers})
    headers.update({DLQ_REASON: reason[:500], DLQ_SOURCE: source, DLQ_GROUP: group_id})
    value = record.value[: max(0, value_budget)]
    if len(value) < len(record.value) or not keep_headers:
        headers[DLQ_TRUNCATED] = str(len(record.value))
    key = record.key if record.key is None or len(record.key) <= 1024 else record.key[:1024]
    return value, key, headers


async def _dead_letter(broker: KafkaBroker, topic: Topic, record: RecordInfo, group_id: str, reason: str) -> None:
    """Publish a copy that fits; a copy refused as too large is sent again smaller (docstring)."""
    budgets = (MAX_REQUEST_BYTES - DLQ_HEADROOM_BYTES, DLQ_SMALL_VALUE_BYTES, 0)
    for i, budget in enumerate(budgets):
        value, key, headers = dead_letter_copy(record, group_id, reason, budget)
        try:
            await broker.publish(value, topic=topic.dlq.name, key=key, headers=headers)
            break
        except _SIZE_ERRORS as too_large:
            if i == len(budgets) - 1:
                raise  # cannot happen with an empty value; retried like a broker error if it does
            log.warning(
                "dead-letter copy too large; sending a smaller one",
                topic=topic.name,
                bytes=len(value),
                error=type(too_large).__name__,
            )
    metrics.CONSUMED.labels(topic.name, group_id, "dead_lettered").inc()
    log.error(
        "dead-lettered record",
        topic=topic.name,
        source=f"{record.topic}:{record.partition}:{record.offset}",
        reason=reason[:200],
        truncated=DLQ_TRUNCATED in headers,
    )


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
