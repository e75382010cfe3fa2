"""Redis adapters for browser sessions (the login page's cookie) and org settings.

Browser sessions: `idp:{eid}:bsess:{sha256(cookie)}` (JSON, expiring) and `idp:{eid}:bsid:{sid}`
(→ the cookie digest, so logout by `sid` can end it). Only the cookie's digest is stored, so a
Redis dump does not hand out live cookies. Org settings: `idp:{eid}:org-settings` with the
occurred_at of the event that set them (applied only if newer: idempotent and monotonic).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import WatchError

from lanyard.idp.adapters.codec import dump_org_settings, load_org_settings
from lanyard.idp.directory.domain import BrowserSession, OrgSettings


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


class RedisBrowserSessions:
    """Implements `BrowserSessions`."""

    def __init__(self, redis: Redis, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self._r = redis
        self._ttl = ttl_s
        self._clock = clock

    async def create(self, enterprise_id: str, user_id: str, amr: tuple[str, ...]) -> tuple[str, BrowserSession]:
        cookie = secrets.token_urlsafe(32)
        session = BrowserSession(enterprise_id, secrets.token_urlsafe(16), user_id, int(self._clock()), tuple(amr))
        digest = _digest(cookie)
        body = json.dumps({"sid": session.sid, "user_id": user_id, "auth_time": session.auth_time, "amr": list(amr)})
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(f"idp:{enterprise_id}:bsess:{digest}", body, ex=self._ttl)
            pipe.set(f"idp:{enterprise_id}:bsid:{session.sid}", digest, ex=self._ttl)
            await pipe.execute()
        return cookie, session

    async def get(self, enterprise_id: str, cookie: str | None) -> BrowserSession | None:
        if not cookie or len(cookie) > 256:
            return None
        raw = await self._r.get(f"idp:{enterprise_id}:bsess:{_digest(cookie)}")
        if not raw:
            return None
        d = json.loads(raw)
        return BrowserSession(enterprise_id, d["sid"], d["user_id"], int(d["auth_time"]), tuple(d["amr"]))

    async def end(self, enterprise_id: str, sid: str) -> None:
        digest = await self._r.getdel(f"idp:{enterprise_id}:bsid:{sid}")
        if digest:
            await self._r.delete(f"idp:{enterprise_id}:bsess:{digest}")


class RedisOrgSettings:
    """Implements `OrgSettingsView` and `OrgSettingsStore`, with a short in-process cache."""

    def __init__(self, redis: Redis, cache_s: float = 1.0) -> None:
        self._r = redis
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, OrgSettings]] = {}

    async def get(self, enterprise_id: str) -> OrgSettings:
        hit = self._cache.get(enterprise_id)
        now = time.monotonic()
        if hit and now - hit[0] < self._cache_s:
            return hit[1]
        raw = await self._r.get(f"idp:{enterprise_id}:org-settings")
        settings = load_org_settings(json.loads(raw)["settings"]) if raw else OrgSettings()
        self._cache[enterprise_id] = (now, settings)
        return settings

    async def apply(self, enterprise_id: str, settings: OrgSettings, event_id: str, occurred_at: float) -> bool:
        key = f"idp:{enterprise_id}:org-settings"
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw:
                        old = json.loads(raw)
                        if (old["occurred_at"], old["event_id"]) >= (occurred_at, event_id):
                            await pipe.unwatch()
                            return False
                    pipe.multi()
                    body = {"settings": dump_org_settings(settings), "occurred_at": occurred_at, "event_id": event_id}
                    pipe.set(key, json.dumps(body))
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        self._cache.pop(enterprise_id, None)
        return True


class RedisPendingLogins:
    """Implements `PendingLogins`: `idp:{eid}:pending:{sha256(token)}`, expiring."""

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self._r = redis
        self._ttl = ttl_s

    async def create(self, enterprise_id: str, user_id: str, next_path: str | None) -> str:
        token = secrets.token_urlsafe(32)
        body = json.dumps({"user_id": user_id, "next": next_path})
        await self._r.set(f"idp:{enterprise_id}:pending:{_digest(token)}", body, ex=self._ttl)
        return token

    async def get(self, enterprise_id: str, token: str | None) -> dict | None:
        if not token or len(token) > 256:
            return None
        raw = await self._r.get(f"idp:{enterprise_id}:pending:{_digest(token)}")
        return json.loads(raw) if raw else None

    async def drop(self, enterprise_id: str, token: str | None) -> None:
        if token:
            await self._r.delete(f"idp:{enterprise_id}:pending:{_digest(token)}")
