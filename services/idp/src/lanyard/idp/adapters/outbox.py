"""The IdP's transactional outbox (the runtime's, `lanyard.runtime.outbox`, under `idp:`).

A state change and the event announcing it are written to Redis in one MULTI/EXEC (`stage`,
called by the adapters inside their transactions); the use case then publishes the event and
clears it once the broker acked (`OutboxPublisher.publish`). Whatever is left — a failed or
timed-out publish, a crash between the two, a lost answer — is published again by the relay,
which every IdP process runs periodically (`OutboxPublisher.relay`, scheduled by
`app.build_directory`). Consumers deduplicate by `event_id`, so a re-published event
is harmless.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from lanyard.contracts import Event
from lanyard.idp.directory.ports import Publisher
from lanyard.runtime.outbox import OutboxKeys, RedisOutbox, publish_staged, relay_once

ENTERPRISES = "idp:enterprises"

KEYS = OutboxKeys("idp")


def stage(pipe: Any, event: Event | None) -> None:
    """Add `event` to the outbox inside an open Redis transaction (no-op for None)."""
    KEYS.stage(pipe, [event])


class OutboxPublisher:
    """A Publisher that clears an event's outbox entry after the broker acknowledged it, and the
    relay of what was not acknowledged."""

    def __init__(
        self,
        redis: Redis,
        publisher: Publisher,
        *,
        grace_s: float = 5.0,
        lease_s: float = 30.0,
        timeout_s: float = 15.0,
        retry_s: float = 1.0,
    ) -> None:
        self.outbox = RedisOutbox(redis, KEYS, grace_s)
        self._publisher = publisher
        self._lease_s = lease_s
        self._timeout_s = timeout_s
        self._retry_s = retry_s

    async def publish(self, event: Event) -> None:
        """Publish (waits for the ack, bounded), then forget the staged copy."""
        await publish_staged(self._publisher, [event], self._timeout_s, self.outbox.done)

    async def relay(self, now: float) -> int:
        """One round of the relay: publish what is due and unacknowledged; returns how many."""
        return await relay_once(
            self.outbox, self._publisher, now, lease_s=self._lease_s, timeout_s=self._timeout_s, retry_s=self._retry_s
        )
