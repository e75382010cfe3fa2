"""Handlers for the events the idp service consumes (the directory side's; the devices side
has its own in `lanyard.idp.devices`)."""

from __future__ import annotations

from redis.asyncio import Redis

from lanyard.contracts import Event
from lanyard.contracts.events import OrgSettingsChanged
from lanyard.idp.ports import OrgSettingsStore
from lanyard.idp.service import apply_org_settings


class IdpHandlers:
    """Routes each consumed event to its use case."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def handle(self, event: Event) -> None:
        """Record the last event seen per type (idempotent: a redelivery writes the same value)."""
        await self._redis.hset("idp:last-seen", event.type, event.event_id)


class OrgSettingsHandler:
    """Consumes lanyard.policy-config.v1 in its own group (`{group_id}-config`) and keeps the org
    settings the IdP honours (second factor, Password Autofill and SSO) in Redis. Other
    policy-config events are not the directory side's concern and are skipped. Idempotent: an
    event is applied only if newer than the one already stored."""

    def __init__(self, store: OrgSettingsStore) -> None:
        self._store = store

    async def handle(self, event: Event) -> None:
        """Apply OrgSettingsChanged; ignore everything else."""
        if isinstance(event, OrgSettingsChanged):
            await apply_org_settings(self._store, event)
