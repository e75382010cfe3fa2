"""Fail closed: device SSO and refresh are refused while the IdP cannot show its view is fresh.

Freshness is shown per partition of lanyard.device-sessions.v1 and lanyard.entitlements.v1 with
a *watermark*: the wall-clock time of the last fetch after which the consumer had handed out
everything up to that fetch's high-water mark (position ≥ highwater) and no handler was still
busy. Everything the broker held at that moment has been applied to the read model.

Each instance computes watermarks for the partitions the group gave it, merges them into one
Redis hash per consumer group (a partition's watermark only grows), and reads the whole hash
back: the read model is shared, so an instance vouches for it only when *every* partition of
both topics was caught up within `max_staleness_s` — whichever instance consumes it. A stalled
consumer, a lost broker, a rebalance that leaves partitions unowned, or a lag that does not
drain all stop the watermarks, and after the bound the IdP answers temporarily_unavailable.
It recovers by itself when the watermarks move again. At start the view is not vouched for
until the consumer has caught up once: the Redis copy may be arbitrarily old.

The shared consumer (`lanyard.runtime.consumer.subscribe`) fetches batches and handles
partitions concurrently; its `ConsumerState` says since when the oldest batch in hand is being
handled (retries included), and the watermarks stop at that moment. A consumer that *holds* a
record (it keeps failing on it: Redis away, a handler bug — the runtime retries, it never
dead-letters such a record) makes this instance stale at once, not only after the bound: the
record may be a checkin whose revocation is pending. Known gap: between a batch being fetched
(the position moves past it) and faststream handing it over, a tick could count those records
as applied; the window is faststream's in-memory parsing of the batch (no I/O), not measured.

aiokafka 0.14's consumer offers `assignment()`, `position(tp)`, `highwater(tp)` and
`last_poll_timestamp(tp)` (ms, updated by every successful fetch response, empty or not).

**A response vouches from before its request was sent, not from its arrival.** aiokafka stamps
`last_poll_timestamp` when a response is *received*; the high-water mark in it was computed by
the broker earlier, while the fetch was in flight. A checkout acknowledged in between is not
below that mark, yet the arrival time claimed it (found by the soak: a checkout acknowledged
just before a broker cut, its SSO told "unknown device session" — the last responses before
the cut vouched for it for the whole staleness bound). aiokafka keeps one fetch in flight per
broker and sends the next after handling the previous response, so a response's request left
no earlier than the previous response arrived: a partition's watermark is the poll time this
monitor saw *before* the latest one (at start, nothing is vouched for until a second poll).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError
from redis.asyncio import Redis

from lanyard.contracts import Topic
from lanyard.idp.devices.domain import TemporarilyUnavailable
from lanyard.runtime.consumer import ConsumerState
from lanyard.runtime.logging import get_logger
from lanyard.runtime.redis import LuaScript

log = get_logger("lanyard.idp.adapters.freshness")

_MERGE = """
-- KEYS: watermark hash; ARGV: ttl, then partition/watermark pairs. A watermark only grows.
for i = 2, #ARGV, 2 do
  local old = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > old then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


class FreshnessMonitor:
    """Watches one consumer and answers whether the device-session view may be trusted."""

    def __init__(
        self,
        redis: Redis,
        group_id: str,
        topics: list[Topic],
        consumer: Callable[[], Any],
        max_staleness_s: float,
        tick_s: float = 0.25,
        clock: Callable[[], float] = time.time,
        state: Callable[[], ConsumerState | None] = lambda: None,
    ) -> None:
        self._redis = redis
        self._key = f"idp:devices:freshness:{group_id}"
        self._expected = [f"{t.name}:{p}" for t in topics for p in range(t.partitions)]
        self._consumer = consumer
        self._max_staleness_ms = int(max_staleness_s * 1000)
        self._tick_s = tick_s
        self._clock = clock
        self._merge = LuaScript(redis, _MERGE)
        self._fresh = False
        self._state = state
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.watermarks: dict[str, int] = {}
        self._polls: dict[str, tuple[float, float | None]] = {}
        """Partition → (the latest poll time seen, the one seen before it: what it vouches from)."""
        self.stale_partitions: list[str] = list(self._expected)

    # ---------------------------------------------------------------- what callers use

    @property
    def fresh(self) -> bool:
        """True while every partition was shown caught up within the bound (as of the last tick)
        and this instance's consumer holds no record it keeps failing on."""
        return self._fresh and not self.holding

    @property
    def holding(self) -> bool:
        """The consumer is retrying a record (it may be a checkin not yet applied)."""
        state = self._state()
        return state is not None and state.holding

    def check(self) -> None:
        """Raise TemporarilyUnavailable unless the view is fresh (in-memory: costs nothing)."""
        if not self.fresh:
            raise TemporarilyUnavailable("device-session view may be stale; retry shortly")

    @property
    def caught_up_at(self) -> float | None:
        """The oldest partition's watermark (s) as of the last tick; None while one has none or
        this instance holds a record. A moment after it, a record the broker then held may not
        be applied yet: device SSO asks whether this passed the request's arrival (`after_wait`).
        Watermarks of other instances are their clocks: the rule assumes clocks in step."""
        if self.holding or any(p not in self.watermarks for p in self._expected):
            return None
        return min(self.watermarks[p] for p in self._expected) / 1000

    # ----------------------------------------------------------------------- the loop

    async def start(self) -> None:
        """Begin ticking in the background."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="idp-devices-freshness")

    async def stop(self) -> None:
        """Stop ticking after the tick in progress (never cancelled mid-command, which would
        leave a Redis connection unusable); the view is no longer vouched for."""
        self._stopping.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=10)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        self._fresh = False

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._set(False, list(self._expected))
                log.warning("freshness tick failed", error=type(exc).__name__)
            # While stale, look again soon: SSO and refresh resume as soon as the watermarks
            # move (at start, after an outage), instead of up to a whole tick later.
            interval = self._tick_s if self._fresh else min(self._tick_s, 0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval)

    async def tick(self) -> bool:
        """Measure this instance's partitions, merge them, and re-evaluate freshness."""
        local = await self._local_watermarks()
        now_ms = self._clock() * 1000
        if local:
            args: list[Any] = [max(60, int(self._max_staleness_ms / 1000) * 10)]
            for partition, wm in local.items():
                args += [partition, wm]
            await self._merge(keys=[self._key], args=args)
        merged = await self._redis.hgetall(self._key)
        self.watermarks = {k: int(float(v)) for k, v in merged.items()}
        stale = [p for p in self._expected if now_ms - self.watermarks.get(p, 0) > self._max_staleness_ms]
        self._set(not stale, stale)
        return self._fresh

    def _set(self, fresh: bool, stale: list[str]) -> None:
        if fresh != self._fresh:
            log.warning("device-session view fresh" if fresh else "device-session view stale", stale=stale[:12])
        self._fresh = fresh
        self.stale_partitions = stale

    async def _local_watermarks(self) -> dict[str, int]:
        consumer = self._consumer()
        if consumer is None:
            return {}
        try:
            assigned = list(consumer.assignment())
        except Exception:
            return {}
        out: dict[str, int] = {}
        state = self._state()
        busy_since = state.busy_since_ms() if state is not None else None
        for tp in assigned:
            try:
                polled = consumer.last_poll_timestamp(tp)
                highwater = consumer.highwater(tp)
                if polled is None or highwater is None:
                    continue
                # position() only waits when no position is known yet; that is "not caught up".
                position = await asyncio.wait_for(consumer.position(tp), 0.05)
            except (TimeoutError, AssertionError, KafkaError):  # unassigned meanwhile, or no position yet
                continue
            partition = f"{tp.topic}:{tp.partition}"
            vouched = self._vouched_from(partition, polled)
            if vouched is None or position < highwater:
                continue
            wm = vouched if busy_since is None else min(vouched, busy_since)
            out[partition] = int(wm)
        return out

    def _vouched_from(self, partition: str, polled: float) -> float | None:
        """The moment the latest response of `partition` vouches from (module docstring)."""
        latest, before = self._polls.get(partition, (None, None))
        if latest != polled:
            before = latest
            self._polls[partition] = (polled, before)
        return before
