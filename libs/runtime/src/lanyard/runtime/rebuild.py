"""Rebuilding a service's Redis read model from Kafka when Redis lost it (DESIGN §4).

What every rebuilding service shares (the session and policy services use it; each folds its own
topics): the marker a service writes once its state is complete, the lock that lets one instance
rebuild while others wait for the marker, the bound past which startup fails loudly, and the read
of a topic's history up to its end offsets.

A Redis that lost its data lost the marker too, so "no marker" means "rebuild". A fresh system
rebuilds nothing and sets the marker. Records published after a read's end offsets are not lost:
the service's consumer groups resume from their committed offsets (at or before those ends), and
their handlers are idempotent, so a record read by both is applied once in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.asyncio import Redis

from lanyard.contracts import Event, decode_event
from lanyard.runtime.kafka import ensure_topics
from lanyard.runtime.logging import get_logger
from lanyard.runtime.redis import LuaScript

if TYPE_CHECKING:
    from fastapi import FastAPI

    from lanyard.runtime.service import ServiceRuntime
    from lanyard.runtime.settings import RebuildingServiceSettings

log = get_logger("lanyard.runtime.rebuild")
T = TypeVar("T")


class RebuildTimeout(RuntimeError):
    """The rebuild (or the wait for another instance's rebuild) took longer than its bound."""


class ProjectionMarker(Protocol):
    """Whether the store's state is complete (rebuilt or built live), and who may rebuild it."""

    async def complete(self) -> bool: ...

    async def acquire(self, owner: str, ttl_s: float) -> bool:
        """Take the rebuild lock for `ttl_s` (one holder at a time); False when another holds it."""
        ...

    async def mark_complete(self, summary: Mapping[str, Any]) -> None: ...

    async def release(self, owner: str) -> None:
        """Give the lock back if `owner` still holds it."""
        ...


class History(Protocol):
    """The records of a topic from its earliest offset up to its end when the read started."""

    def read(self, topic: str, since: float | None = None) -> AsyncIterator[Event]:
        """In order per partition; with `since` (epoch seconds), only records from that time on."""
        ...

    def read_positioned(self, topic: str, since: float | None = None) -> AsyncIterator[tuple[int, Event]]:
        """As `read`, each event with its record's offset in its partition."""
        ...


async def rebuild_once(
    marker: ProjectionMarker,
    rebuild: Callable[[], Awaitable[tuple[T, Mapping[str, Any]]]],
    *,
    timeout_s: float,
    wait_poll_s: float = 0.2,
    what: str = "state",
) -> T | None:
    """Run `rebuild` (which returns its result and the summary the marker keeps) unless the
    state is complete; None when it was (or another instance rebuilt it meanwhile). Raises
    `RebuildTimeout` past `timeout_s`, so a startup that cannot finish fails loudly."""
    owner = secrets.token_hex(8)

    async def attempt() -> T | None:
        while not await marker.complete():
            # The lock outlives the bound a little, so a holder that is still working keeps it.
            if await marker.acquire(owner, timeout_s + 5):
                try:
                    if await marker.complete():  # finished by another between our two looks
                        return None
                    result, summary = await rebuild()
                    await marker.mark_complete(summary)
                    return result
                finally:
                    await marker.release(owner)
            log.info("rebuild: another instance is rebuilding; waiting for it", what=what)
            await asyncio.sleep(wait_poll_s)
        return None

    try:
        async with asyncio.timeout(timeout_s):
            return await attempt()
    except TimeoutError:
        log.error("rebuild from Kafka did not finish in time; refusing to start", what=what, timeout_s=timeout_s)
        raise RebuildTimeout(f"rebuild from Kafka did not finish within {timeout_s}s") from None


def rebuilding_lifespan(
    runtime: ServiceRuntime, settings: RebuildingServiceSettings, rebuild: Callable[[], Awaitable[Any]]
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The service's lifespan: `rebuild` (when `rebuild_on_start`, after creating missing topics)
    before `runtime.lifespan` starts the consumers and loops, so nothing is decided or published
    on a state still being rebuilt. A failed rebuild closes the Redis client and fails startup."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.rebuild_on_start:
            try:
                if settings.create_topics:
                    await ensure_topics(settings.kafka_bootstrap_servers)
                await rebuild()
            except BaseException:
                await runtime.redis.aclose()
                raise
        async with runtime.lifespan(app):
            yield

    return lifespan


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisProjectionMarker:
    """`ProjectionMarker` on Redis under `<service>:projection`: the marker says the state is
    complete; the lock (SET NX with an expiry) lets one instance rebuild while others wait, and
    a crashed holder's lock lapses."""

    def __init__(self, redis: Redis, service: str) -> None:
        self._redis = redis
        self.key = f"{service}:projection"
        self.lock_key = f"{service}:projection:lock"
        self._release = LuaScript(redis, _RELEASE)

    async def complete(self) -> bool:
        return bool(await self._redis.exists(self.key))

    async def acquire(self, owner: str, ttl_s: float) -> bool:
        return bool(await self._redis.set(self.lock_key, owner, nx=True, px=max(int(ttl_s * 1000), 1)))

    async def mark_complete(self, summary: Mapping[str, Any]) -> None:
        await self._redis.set(self.key, json.dumps(dict(summary), separators=(",", ":")))

    async def release(self, owner: str) -> None:
        await self._release(keys=[self.lock_key], args=[owner])


class KafkaHistory:
    """`History` over the real broker: a plain consumer, no group, nothing committed.

    Every partition is assigned, read from its earliest offset and stopped at the end offset taken
    when the read started, so a rebuild reads a fixed snapshot while producers go on (or from the
    first offset at a given time, for topics of which only recent records matter). Records of one
    partition come in order (a topic keyed by device keeps one device's history in order);
    partitions are read one after another. Records that do not decode (a type this version does
    not know, a malformed one) are skipped and counted, and so are records keyed otherwise than
    their event (`Event.wrong_key`): the live consumer dead-lettered them, so the rebuild must not
    apply what the live path refused.
    """

    def __init__(self, bootstrap_servers: str, client_id: str, fetch_timeout_ms: int = 500) -> None:
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._fetch_timeout_ms = fetch_timeout_ms
        self.undecodable = 0
        self.wrongly_keyed = 0

    async def read(self, topic: str, since: float | None = None) -> AsyncIterator[Event]:
        """Every record of `topic` up to its end offsets at the start of the read, decoded; with
        `since` (seconds since the epoch), only records from that broker timestamp on."""
        async for _, event in self.read_positioned(topic, since):
            yield event

    async def read_positioned(self, topic: str, since: float | None = None) -> AsyncIterator[tuple[int, Event]]:
        """As `read`, each event with its record's offset (what orders one item's records)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id=self._client_id,
        )
        await consumer.start()
        try:
            ids = consumer.partitions_for_topic(topic)
            if not ids:
                await consumer._client.force_metadata_update()
                ids = consumer.partitions_for_topic(topic) or set()
            parts = [TopicPartition(topic, p) for p in sorted(ids)]
            if not parts:
                log.warning("rebuild: topic has no partitions", topic=topic)
                return
            ends = await consumer.end_offsets(parts)
            begins = await consumer.beginning_offsets(parts)
            if since is not None:
                found = await consumer.offsets_for_times({tp: int(since * 1000) for tp in parts})
                # No record at or after `since` in a partition: nothing to read there.
                begins = {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in parts}
            consumer.assign(parts)
            for tp in parts:
                if ends[tp] <= begins[tp]:
                    continue
                consumer.seek(tp, begins[tp])
                while await consumer.position(tp) < ends[tp]:
                    batch = await consumer.getmany(tp, timeout_ms=self._fetch_timeout_ms)
                    for record in batch.get(tp, []):
                        if record.offset >= ends[tp]:
                            break
                        try:
                            event = decode_event(record.value)
                        except Exception:
                            self.undecodable += 1
                            continue
                        if event.wrong_key(record.key) is not None:
                            self.wrongly_keyed += 1
                            continue
                        yield record.offset, event
        finally:
            await consumer.stop()
