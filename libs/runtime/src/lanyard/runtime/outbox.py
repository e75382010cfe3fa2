"""The transactional outbox every service shares: staging, the relay, and its Redis layout.

A state change and the events announcing it are written in one Redis transaction (`stage`,
inside the caller's MULTI); the request path then publishes them and clears each one only after
the broker acknowledged it (`publish_staged`). An event whose acknowledgement is not recorded —
the publish failed or timed out, the process died, the HTTP answer was lost, the clearing write
failed — stays in the outbox, and the relay (`relay_once`, run every `outbox_interval_s` by
`OutboxRelay`) publishes it again once its grace period is over. Consumers deduplicate by event
id, so publishing an event twice is harmless; publishing it never is the failure this prevents.

Layout under a service prefix `p` (one Redis server; not Redis Cluster ready, like the stores
that stage into it):

    p:outbox                         sorted set: event id → staging time (s), pushed ahead by a
                                     claim's lease; the relay's queue
    p:outbox:events                  hash: event id → event JSON
    p:outbox:subject:<eid>:<subject> sorted set: event id → staging time, per subject (a device), so
                                     a retried call can publish what an earlier attempt left

The relay claims due events by pushing their due time a lease ahead (one Lua step), so with
several instances each event is handed to one of them and a claim lost in a crash comes due
again after the lease. It publishes in due order and stops at the first failure, putting that
event and the rest back a little later: events of one subject keep their order, and a broker
outage costs one retry interval once it ends, not a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis

from lanyard.contracts import Event, decode_event
from lanyard.runtime.logging import get_logger
from lanyard.runtime.redis import LuaScript

log = get_logger("lanyard.outbox")

_CLAIM = """
-- KEYS: due set; ARGV: now, new due (now + lease), limit
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[2], member)
end
return due
"""


class Publisher(Protocol):
    async def publish(self, event: Event) -> None: ...


class OutboxStore(Protocol):
    """What the relay needs of an outbox (a service's store may implement it by delegation)."""

    async def claim_outbox(self, now: float, lease_s: float, limit: int) -> list[Event]: ...

    async def outbox_done(self, event: Event) -> None: ...

    async def outbox_later(self, events: Sequence[Event], due: float) -> None: ...


class OutboxKeys:
    """The outbox layout of one service (key prefix `prefix`); `stage` needs no connection, so
    adapters can stage inside their own transactions.

    `subject_of` names the subject an event is indexed under for `RedisOutbox.pending` (None:
    not indexed). Scores are staging times; the grace period is applied when claiming."""

    def __init__(
        self,
        prefix: str,
        subject_of: Callable[[Event], str | None] = lambda _: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.due_key = f"{prefix}:outbox"
        self.events_key = f"{prefix}:outbox:events"
        self._subject_prefix = f"{prefix}:outbox:subject:"
        self.subject_of = subject_of
        self._clock = clock

    def subject_key(self, enterprise_id: str, subject: str) -> str:
        """The per-subject index of one enterprise's subject."""
        return f"{self._subject_prefix}{enterprise_id}:{subject}"

    def stage(self, pipe: Any, events: Sequence[Event | None]) -> None:
        """Add `events` (None entries are skipped) to the outbox inside the caller's open
        transaction, in this order."""
        staged = [e for e in events if e is not None]
        if not staged:
            return
        now = self._clock()
        pipe.hset(self.events_key, mapping={e.event_id: e.model_dump_json() for e in staged})
        # Later events of one change come due a little later, so the relay keeps their order.
        scores = {e.event_id: now + i * 1e-3 for i, e in enumerate(staged)}
        pipe.zadd(self.due_key, scores)
        for e in staged:
            subject = self.subject_of(e)
            if subject:
                pipe.zadd(self.subject_key(e.enterprise_id, subject), {e.event_id: scores[e.event_id]})


class RedisOutbox:
    """The outbox of one service on its Redis: what the request path and the relay need.

    An event is first due `grace_s` after it was staged: the request path publishes it itself,
    and the relay only takes what that path did not finish."""

    def __init__(self, redis: Redis, keys: OutboxKeys, grace_s: float = 5.0) -> None:
        self._redis = redis
        self.keys = keys
        self._grace = grace_s
        self._claim = LuaScript(redis, _CLAIM)

    def stage(self, pipe: Any, events: Sequence[Event | None]) -> None:
        """See `OutboxKeys.stage`."""
        self.keys.stage(pipe, events)

    async def claim(self, now: float, lease_s: float, limit: int) -> list[Event]:
        """Events due at `now`, leased to the caller for `lease_s`, in due order."""
        ids = await self._claim(keys=[self.keys.due_key], args=[now - self._grace, now + lease_s - self._grace, limit])
        if not ids:
            return []
        raws = await self._redis.hmget(self.keys.events_key, list(ids))
        found = []
        for event_id, raw in zip(ids, raws, strict=True):
            if raw is None:  # cleared meanwhile (acknowledged on the request path)
                await self._redis.zrem(self.keys.due_key, event_id)
                continue
            try:
                found.append(decode_event(raw))
            except Exception:  # written by this service: cannot happen, and must not stop the relay
                log.error("undecodable outbox entry dropped", event_id=event_id)
                await self._drop(event_id, None)
        return found

    async def done(self, event: Event) -> None:
        """The broker acknowledged `event`: forget it."""
        await self._drop(event.event_id, event)

    async def _drop(self, event_id: str, event: Event | None) -> None:
        subject = self.keys.subject_of(event) if event is not None else None
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.events_key, event_id)
            pipe.zrem(self.keys.due_key, event_id)
            if event is not None and subject:
                pipe.zrem(self.keys.subject_key(event.enterprise_id, subject), event_id)
            await pipe.execute()

    async def later(self, events: Sequence[Event], due: float) -> None:
        """Put claimed events back, due at `due` (in this order), after a failed publish."""
        if events:
            scores = {e.event_id: due - self._grace + i * 1e-3 for i, e in enumerate(events)}
            await self._redis.zadd(self.keys.due_key, scores, xx=True)

    async def pending(self, enterprise_id: str, subject: str) -> list[Event]:
        """Events of this subject not yet acknowledged, oldest first."""
        key = self.keys.subject_key(enterprise_id, subject)
        ids = await self._redis.zrange(key, 0, -1)
        if not ids:
            return []
        raws = await self._redis.hmget(self.keys.events_key, ids)
        found = []
        for event_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                await self._redis.zrem(key, event_id)
            else:
                found.append(decode_event(raw))
        return found

    async def size(self) -> int:
        """Events not yet acknowledged (due or leased)."""
        return int(await self._redis.zcard(self.keys.due_key))

    # The relay's names for the same operations (`OutboxStore`).
    async def claim_outbox(self, now: float, lease_s: float, limit: int) -> list[Event]:
        return await self.claim(now, lease_s, limit)

    async def outbox_done(self, event: Event) -> None:
        await self.done(event)

    async def outbox_later(self, events: Sequence[Event], due: float) -> None:
        await self.later(events, due)


async def publish_staged(
    publisher: Publisher, events: Sequence[Event], timeout_s: float, clear: Callable[[Event], Awaitable[None]]
) -> None:
    """Publish staged events in order, each acknowledged (bounded by `timeout_s`: a caller gets an
    answer even when the broker stalls) before the next, and `clear` each after its ack. Raises
    on the first failure; what is left stays in the outbox for the relay."""
    for event in events:
        async with asyncio.timeout(timeout_s):  # bounds it in this task: wait_for adds one per call
            await publisher.publish(event)
        await clear(event)


async def relay_once(
    store: OutboxStore,
    publisher: Publisher,
    now: float,
    *,
    lease_s: float,
    timeout_s: float,
    retry_s: float,
    limit: int = 200,
) -> int:
    """Publish every due event (see the module docstring); returns how many were acknowledged.

    On the first failure the event and those after it are put back at `now + retry_s` and the
    error is raised."""
    events = await store.claim_outbox(now, lease_s, limit)
    for i, event in enumerate(events):
        try:
            async with asyncio.timeout(timeout_s):
                await publisher.publish(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            with contextlib.suppress(Exception):  # if this fails too, the lease brings them back
                await store.outbox_later(events[i:], now + retry_s)
            raise
        await store.outbox_done(event)
    return len(events)
