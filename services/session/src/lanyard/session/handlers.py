"""Handlers for the events the session service consumes."""

from __future__ import annotations

from redis.asyncio import Redis

from lanyard.contracts import Event


class SessionHandlers:
    """Routes each consumed event to its use case."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def handle(self, event: Event) -> None:
        """Record the last event seen per type (idempotent: a redelivery writes the same value)."""
        await self._redis.hset("session:last-seen", event.type, event.event_id)
