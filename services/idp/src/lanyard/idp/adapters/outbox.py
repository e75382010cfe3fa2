"""The transactional outbox: a state change and the event announcing it are written to Redis in
one MULTI/EXEC; the event is then published and removed from the outbox once the broker acked.

If the process dies between the two, `OutboxPublisher.relay()` (run at start-up) publishes what
was left. Consumers deduplicate by `event_id`, so a re-published event is harmless.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from lanyard.contracts import Event, decode_event
from lanyard.idp.ports import Publisher
from lanyard.runtime.logging import get_logger

log = get_logger("lanyard.idp.outbox")

ENTERPRISES = "idp:enterprises"


def outbox_key(enterprise_id: str) -> str:
    return f"idp:{enterprise_id}:outbox"


def stage(pipe: Any, event: Event | None) -> None:
    """Add `event` to the outbox inside an open Redis transaction (no-op for None)."""
    if event is not None:
        pipe.hset(outbox_key(event.enterprise_id), event.event_id, event.to_json().decode())


class OutboxPublisher:
    """A Publisher that clears an event's outbox entry after the broker acknowledged it."""

    def __init__(self, redis: Redis, publisher: Publisher) -> None:
        self._redis = redis
        self._publisher = publisher

    async def publish(self, event: Event) -> None:
        """Publish (waits for the ack), then forget the staged copy."""
        await self._publisher.publish(event)
        await self._redis.hdel(outbox_key(event.enterprise_id), event.event_id)

    async def relay(self, *also: str) -> int:
        """Publish every event left in an outbox by an earlier crash (every enterprise's, and the
        outboxes of the realms in `also`, such as the services realm); returns how many."""
        sent = 0
        for eid in {*await self._redis.smembers(ENTERPRISES), *also}:
            for event_id, raw in (await self._redis.hgetall(outbox_key(eid))).items():
                try:
                    event = decode_event(raw)
                except Exception:
                    log.error("undecodable outbox entry dropped", enterprise_id=eid, event_id=event_id)
                    await self._redis.hdel(outbox_key(eid), event_id)
                    continue
                await self.publish(event)
                sent += 1
        if sent:
            log.info("relayed outbox events", count=sent)
        return sent
