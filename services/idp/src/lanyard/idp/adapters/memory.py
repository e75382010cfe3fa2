"""In-memory implementations of the IdP's ports, for unit tests (here and on the OIDC and
devices sides). They honour the same Protocols and pass the same adapter suite as the Redis
adapters (services/idp/tests/unit/test_adapters.py), so a test that passes on them means the
same thing on Redis.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from joserfc.jwk import KeySet

from lanyard.contracts import Event
from lanyard.idp.adapters.redis_clients import digest_matches, secret_digest
from lanyard.idp.adapters.redis_keys import LoadedKeys, build, generate_keys
from lanyard.idp.directory.domain import (
    SIGNING_ALGS,
    AppProfile,
    BrowserSession,
    Client,
    Enterprise,
    FailureState,
    Group,
    KeyRing,
    LockoutPolicy,
    OrgSettings,
    User,
    new_ring,
    rotate_ring,
)
from lanyard.idp.directory.ports import Conflict


class MemoryPublisher:
    """Records published events (in order)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.events.append(event)


class MemoryEnterprises:
    def __init__(self) -> None:
        self.items: dict[str, Enterprise] = {}

    async def get(self, enterprise_id: str) -> Enterprise | None:
        return self.items.get(enterprise_id)

    async def create(self, enterprise: Enterprise) -> None:
        if enterprise.enterprise_id in self.items:
            raise Conflict(f"enterprise {enterprise.enterprise_id} exists")
        self.items[enterprise.enterprise_id] = enterprise


class MemoryDirectory:
    def __init__(self) -> None:
        self.users: dict[tuple[str, str], User] = {}
        self.groups: dict[tuple[str, str], Group] = {}
        self.creds: dict[tuple[str, str], dict[str, Any]] = {}

    async def get(self, enterprise_id: str, user_id: str) -> User | None:
        return self.users.get((enterprise_id, user_id))

    async def by_username(self, enterprise_id: str, username: str) -> User | None:
        return next(
            (u for (e, _), u in self.users.items() if e == enterprise_id and u.username.lower() == username.lower()),
            None,
        )

    async def by_badge(self, enterprise_id: str, badge_id: str) -> User | None:
        return next((u for (e, _), u in self.users.items() if e == enterprise_id and u.badge_id == badge_id), None)

    async def list_users(self, enterprise_id: str) -> list[User]:
        return sorted((u for (e, _), u in self.users.items() if e == enterprise_id), key=lambda u: u.user_id)

    async def save_user(self, user: User, event: Event | None) -> None:
        named = await self.by_username(user.enterprise_id, user.username)
        if named and named.user_id != user.user_id:
            raise Conflict("username is taken")
        if user.badge_id:
            badged = await self.by_badge(user.enterprise_id, user.badge_id)
            if badged and badged.user_id != user.user_id:
                raise Conflict("badge id is taken")
        self.users[(user.enterprise_id, user.user_id)] = user

    async def delete_user(self, enterprise_id: str, user_id: str, event: Event | None) -> bool:
        self.creds.pop((enterprise_id, user_id), None)
        return self.users.pop((enterprise_id, user_id), None) is not None

    async def get_group(self, enterprise_id: str, group_id: str) -> Group | None:
        return self.groups.get((enterprise_id, group_id))

    async def list_groups(self, enterprise_id: str) -> list[Group]:
        return sorted((g for (e, _), g in self.groups.items() if e == enterprise_id), key=lambda g: g.group_id)

    async def save_group(self, group: Group, event: Event | None) -> None:
        self.groups[(group.enterprise_id, group.group_id)] = group

    async def delete_group(self, enterprise_id: str, group_id: str, event: Event | None) -> bool:
        return self.groups.pop((enterprise_id, group_id), None) is not None

    async def password_hash(self, enterprise_id: str, user_id: str) -> str | None:
        return self.creds.get((enterprise_id, user_id), {}).get("pwd")

    async def set_password_hash(self, enterprise_id: str, user_id: str, password_hash: str) -> None:
        self.creds.setdefault((enterprise_id, user_id), {})["pwd"] = password_hash

    async def totp(self, enterprise_id: str, user_id: str) -> tuple[bytes, int | None] | None:
        c = self.creds.get((enterprise_id, user_id), {})
        return (c["totp"], c.get("totp_step")) if "totp" in c else None

    async def set_totp(self, enterprise_id: str, user_id: str, secret: bytes | None) -> None:
        c = self.creds.setdefault((enterprise_id, user_id), {})
        c.pop("totp_step", None)
        if secret is None:
            c.pop("totp", None)
        else:
            c["totp"] = secret

    async def consume_totp_step(self, enterprise_id: str, user_id: str, step: int) -> bool:
        c = self.creds.setdefault((enterprise_id, user_id), {})
        if c.get("totp_step") is not None and c["totp_step"] >= step:
            return False
        c["totp_step"] = step
        return True


class MemoryLockouts:
    def __init__(self, policy: LockoutPolicy) -> None:
        self._policy = policy
        self.items: dict[tuple[str, str], FailureState] = {}

    async def state(self, enterprise_id: str, subject: str) -> FailureState:
        return self.items.get((enterprise_id, subject), FailureState())

    async def record_failure(self, enterprise_id: str, subject: str, now: float) -> FailureState:
        updated = (await self.state(enterprise_id, subject)).after_failure(now, self._policy)
        self.items[(enterprise_id, subject)] = updated
        return updated

    async def clear(self, enterprise_id: str, subject: str) -> None:
        self.items.pop((enterprise_id, subject), None)


class MemoryClients:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.profiles: dict[tuple[str, str], AppProfile] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self._clock = clock

    async def get_profile(self, enterprise_id: str, client_id: str) -> AppProfile | None:
        return self.profiles.get((enterprise_id, client_id))

    async def get(self, enterprise_id: str, client_id: str) -> Client | None:
        p = self.profiles.get((enterprise_id, client_id))
        return p.client if p else None

    async def list_profiles(self, enterprise_id: str) -> list[AppProfile]:
        found = (p for (e, _), p in self.profiles.items() if e == enterprise_id)
        return sorted(found, key=lambda p: p.client.client_id)

    async def save_profile(self, profile: AppProfile, event: Event | None) -> None:
        self.profiles[(profile.client.enterprise_id, profile.client.client_id)] = profile

    async def create_profile(self, profile: AppProfile, secret: str, event: Event | None) -> None:
        key = (profile.client.enterprise_id, profile.client.client_id)
        if key in self.profiles:
            raise Conflict(f"client id {key[1]} is already registered in this enterprise")
        self.profiles[key] = replace(profile, has_secret=True)
        self.secrets[key] = {"current": secret_digest(secret)}

    async def delete_profile(self, enterprise_id: str, client_id: str, event: Event | None) -> bool:
        self.secrets.pop((enterprise_id, client_id), None)
        return self.profiles.pop((enterprise_id, client_id), None) is not None

    async def set_secret(
        self, enterprise_id: str, client_id: str, secret: str, previous_valid_until: float | None, event: Event | None
    ) -> None:
        old = self.secrets.get((enterprise_id, client_id), {})
        entry: dict[str, Any] = {"current": secret_digest(secret)}
        if old.get("current") and previous_valid_until is not None:
            entry.update(previous=old["current"], previous_until=previous_valid_until)
        self.secrets[(enterprise_id, client_id)] = entry
        p = self.profiles.get((enterprise_id, client_id))
        if p:
            self.profiles[(enterprise_id, client_id)] = replace(p, has_secret=True)

    async def verify_secret(self, enterprise_id: str, client_id: str, secret: str) -> bool:
        if not isinstance(secret, str) or not secret or len(secret) > 512:
            return False
        e = self.secrets.get((enterprise_id, client_id), {})
        ok_prev = "previous" in e and self._clock() < e["previous_until"] and digest_matches(e["previous"], secret)
        return digest_matches(e.get("current"), secret) or ok_prev


class MemoryKeys:
    """Keys in memory: the same ring rules and JWKS building as `RedisKeys`."""

    def __init__(self, max_token_lifetime_s: float, clock: Callable[[], float] = time.time) -> None:
        self._max_lifetime = max_token_lifetime_s
        self._clock = clock
        self.rings: dict[str, KeyRing] = {}
        self.private: dict[str, dict[str, dict[str, Any]]] = {}
        self._cache: dict[str, LoadedKeys] = {}

    def _loaded(self, eid: str) -> LoadedKeys:
        if eid not in self.rings:
            raise LookupError(f"no signing keys for enterprise {eid}")
        cached = self._cache.get(eid)
        if cached is None or cached.version != self.rings[eid].version or self._clock() >= cached.valid_until:
            cached = self._cache[eid] = build(self.rings[eid], self.private[eid], self._clock())
        return cached

    async def signing_key(self, enterprise_id: str, alg: str = "RS256") -> Any:
        if alg not in SIGNING_ALGS:
            raise ValueError(f"unsupported alg {alg}")
        return self._loaded(enterprise_id).signing[alg]

    async def jwks(self, enterprise_id: str) -> dict[str, Any]:
        try:
            return self._loaded(enterprise_id).jwks
        except LookupError:
            return {"keys": []}

    async def verification_keys(self, enterprise_id: str) -> KeySet:
        return self._loaded(enterprise_id).keyset

    async def ring(self, enterprise_id: str) -> KeyRing | None:
        return self.rings.get(enterprise_id)

    async def create(self, enterprise_id: str) -> KeyRing:
        if enterprise_id in self.rings:
            raise Conflict(f"enterprise {enterprise_id} already has keys")
        made = await generate_keys(2)
        self.private[enterprise_id] = {kid: jwk for alg in SIGNING_ALGS for kid, jwk in made[alg]}
        kids = {alg: (made[alg][0][0], made[alg][1][0]) for alg in SIGNING_ALGS}
        self.rings[enterprise_id] = new_ring(kids, self._clock())
        return self.rings[enterprise_id]

    async def rotate(self, enterprise_id: str) -> KeyRing:
        if enterprise_id not in self.rings:
            raise LookupError(f"no signing keys for enterprise {enterprise_id}")
        made = await generate_keys(1)
        ring = rotate_ring(
            self.rings[enterprise_id], {alg: made[alg][0][0] for alg in SIGNING_ALGS}, self._clock(), self._max_lifetime
        )
        private = {**self.private[enterprise_id], **{kid: jwk for alg in SIGNING_ALGS for kid, jwk in made[alg]}}
        self.private[enterprise_id] = {e.kid: private[e.kid] for e in ring.entries}
        self.rings[enterprise_id] = ring
        return ring


class MemoryOrgSettings:
    def __init__(self) -> None:
        self.items: dict[str, tuple[tuple[float, str], OrgSettings]] = {}

    async def get(self, enterprise_id: str) -> OrgSettings:
        hit = self.items.get(enterprise_id)
        return hit[1] if hit else OrgSettings()

    async def apply(self, enterprise_id: str, settings: OrgSettings, event_id: str, occurred_at: float) -> bool:
        hit = self.items.get(enterprise_id)
        if hit and hit[0] >= (occurred_at, event_id):
            return False
        self.items[enterprise_id] = ((occurred_at, event_id), settings)
        return True


class MemoryBrowserSessions:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.items: dict[tuple[str, str], BrowserSession] = {}

    async def create(self, enterprise_id: str, user_id: str, amr: tuple[str, ...]) -> tuple[str, BrowserSession]:
        cookie = secrets.token_urlsafe(32)
        session = BrowserSession(enterprise_id, secrets.token_urlsafe(16), user_id, int(self._clock()), tuple(amr))
        self.items[(enterprise_id, hashlib.sha256(cookie.encode()).hexdigest())] = session
        return cookie, session

    async def get(self, enterprise_id: str, cookie: str | None) -> BrowserSession | None:
        if not cookie:
            return None
        return self.items.get((enterprise_id, hashlib.sha256(cookie.encode()).hexdigest()))

    async def end(self, enterprise_id: str, sid: str) -> None:
        for key, s in list(self.items.items()):
            if key[0] == enterprise_id and s.sid == sid:
                del self.items[key]
