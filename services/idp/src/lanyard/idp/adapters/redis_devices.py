"""The device-session read model in Redis (implements `devices.ports.DeviceStore`).

One hash per (enterprise, device session): `idp:{eid}:devsess:{dsid}`, holding `model.to_fields`.
Facts from the two topics may be applied concurrently by different consumers (even different
instances) for one session, so every change is an optimistic compare-and-set (WATCH/MULTI) of
the pure `model.apply`. Revocation is therefore one constant-cost write whatever the number of
live sessions, and `state` is the single field introspection and refresh depend on.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import WatchError

from lanyard.idp.devices import domain as model
from lanyard.idp.devices.domain import Fact, Outcome, SessionView

RETENTION_S = 8 * 24 * 3600
"""Kept a day beyond the topics' 7-day retention: a replayed late grant still meets its CLOSED view."""


def session_key(enterprise_id: str, device_session_id: str) -> str:
    """The Redis key of one device session's view."""
    return f"idp:{enterprise_id}:devsess:{device_session_id}"


class SessionStore:
    """Reads and compare-and-set writes of device-session views."""

    def __init__(self, redis: Redis, max_cas_attempts: int = 50) -> None:
        self._redis = redis
        self._attempts = max_cas_attempts

    async def load(self, enterprise_id: str, device_session_id: str) -> SessionView | None:
        """The view, or None when nothing is known about this session."""
        return model.from_fields(await self._redis.hgetall(session_key(enterprise_id, device_session_id)))

    async def state(self, enterprise_id: str, device_session_id: str) -> tuple[str | None, bool]:
        """(state, checked out) with one small read: the introspection fast path."""
        state, jkt = await self._redis.hmget(session_key(enterprise_id, device_session_id), ["state", "device_jkt"])
        return state, jkt is not None

    async def apply(self, enterprise_id: str, device_session_id: str, fact: Fact) -> Outcome:
        """Apply `fact` atomically against concurrent writers; returns what changed."""
        key = session_key(enterprise_id, device_session_id)
        for _ in range(self._attempts):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    current = model.from_fields(await pipe.hgetall(key))
                    outcome = model.apply(current, fact)
                    if not outcome.changed:
                        await pipe.unwatch()
                        return outcome
                    pipe.multi()
                    pipe.delete(key)
                    pipe.hset(key, mapping=model.to_fields(outcome.view))
                    pipe.expire(key, RETENTION_S)
                    await pipe.execute()
                    return outcome
                except WatchError:
                    continue
        raise RuntimeError("device-session view kept changing under a concurrent writer")

    async def mark_revocation_done(self, enterprise_id: str, device_session_id: str) -> None:
        """Record that the OIDC sessions of a CLOSED device session were revoked and logouts queued."""
        await self._redis.hset(session_key(enterprise_id, device_session_id), "revocation_done", "1")
