"""Console sessions and pending sign-ins in Redis.

Keys (the console's own Redis database):

    console:session:{sha256(cookie)}   JSON of a ConsoleSession; TTL = the idle timeout, renewed on
                                       each request but never past the session's absolute end
    console:login:{state}              JSON of a PendingSignIn plus a hash of the browser binding
                                       cookie; TTL = login_ttl_s; read and deleted at once (GETDEL)

Only hashes of cookie values are stored, so a copy of the database opens no session.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis

from lanyard.console.adapters.identity import PendingSignIn, Tokens


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class ConsoleSession:
    """A signed-in admin in one browser."""

    enterprise_id: str
    user_id: str
    username: str
    name: str
    roles: tuple[str, ...]
    access_token: str
    access_expires_at: float
    refresh_token: str | None
    id_token: str
    csrf: str
    created_at: float
    ends_at: float
    flash: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    def has(self, *roles: str) -> bool:
        """Whether the admin holds one of `roles`."""
        return bool(set(self.roles) & set(roles))

    def with_tokens(self, tokens: Tokens) -> None:
        """Take refreshed tokens (and roles, which the IdP re-read)."""
        self.access_token, self.access_expires_at = tokens.access_token, tokens.access_expires_at
        self.refresh_token = tokens.refresh_token or self.refresh_token
        self.roles = tokens.roles


class SessionStore:
    """Sessions and pending sign-ins."""

    def __init__(self, redis: Redis, idle_timeout_s: int, session_max_s: int, login_ttl_s: int) -> None:
        self._r = redis
        self._idle = idle_timeout_s
        self._max = session_max_s
        self._login_ttl = login_ttl_s

    def _ttl(self, session: ConsoleSession) -> int:
        return max(1, int(min(self._idle, session.ends_at - time.time())))

    async def create(self, tokens: Tokens, enterprise_id: str) -> tuple[str, ConsoleSession]:
        """A new session; returns the cookie value (never stored) and the session."""
        cookie = secrets.token_urlsafe(32)
        now = time.time()
        session = ConsoleSession(
            enterprise_id=enterprise_id,
            user_id=tokens.user_id,
            username=tokens.username,
            name=tokens.name,
            roles=tokens.roles,
            access_token=tokens.access_token,
            access_expires_at=tokens.access_expires_at,
            refresh_token=tokens.refresh_token,
            id_token=tokens.id_token,
            csrf=secrets.token_urlsafe(24),
            created_at=now,
            ends_at=now + self._max,
            key=f"console:session:{_digest(cookie)}",
        )
        await self.save(session)
        return cookie, session

    async def get(self, cookie: str | None) -> ConsoleSession | None:
        """The live session of a cookie (its idle timer restarts), or None."""
        if not cookie or len(cookie) > 128:
            return None
        key = f"console:session:{_digest(cookie)}"
        raw = await self._r.get(key)
        if raw is None:
            return None
        data = json.loads(raw)
        data["roles"] = tuple(data["roles"])
        session = ConsoleSession(**{**data, "key": key})
        if session.ends_at <= time.time():
            await self._r.delete(key)
            return None
        await self._r.expire(key, self._ttl(session))
        return session

    async def save(self, session: ConsoleSession) -> None:
        data = asdict(session)
        data.pop("key")
        await self._r.set(session.key, json.dumps(data), ex=self._ttl(session))

    async def drop(self, session: ConsoleSession) -> None:
        await self._r.delete(session.key)

    async def park_sign_in(self, pending: PendingSignIn) -> str:
        """Remember a started sign-in; returns the browser-binding cookie value."""
        binding = secrets.token_urlsafe(24)
        data = {**asdict(pending), "binding": _digest(binding)}
        await self._r.set(f"console:login:{pending.state}", json.dumps(data), ex=self._login_ttl)
        return binding

    async def take_sign_in(self, state: str | None, binding: str | None) -> PendingSignIn | None:
        """The sign-in `state` names, once, and only in the browser that started it."""
        if not state or not binding or len(state) > 128:
            return None
        raw = await self._r.getdel(f"console:login:{state}")
        if raw is None:
            return None
        data = json.loads(raw)
        if not secrets.compare_digest(data.pop("binding"), _digest(binding)):
            return None
        return PendingSignIn(**data)
