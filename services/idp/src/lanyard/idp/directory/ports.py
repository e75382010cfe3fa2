"""The directory part's ports: what its use cases need from storage and the bus, and what it
offers the other parts of the IdP.

Read ports (`Enterprises`, `Users`, `Clients`, `Keys`, `OrgSettingsView`, `BrowserSessions`) are
what the oidc and devices parts consume; the write ports below them are the directory's own.
The Redis adapters in `lanyard.idp.adapters` implement both; fakes in tests do too. The records
the other parts need are re-exported here, so they talk to the directory through this module only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from lanyard.contracts import Event
from lanyard.idp.directory.domain import (
    ADMIN_SCOPE,
    CONSOLE_CLIENT_ID,
    DEFAULT_CLAIMS,
    DEFAULT_ID_TOKEN_ALG,
    AppProfile,
    BrowserSession,
    ClaimMapping,
    Client,
    Enterprise,
    FailureState,
    Group,
    KeyRing,
    OrgSettings,
    ServicesPrincipalRecord,
    User,
    admin_roles,
    console_client,
)
from lanyard.runtime.caches import LruCache


class Enterprises(Protocol):
    """Tenants and their issuers."""

    async def get(self, enterprise_id: str) -> Enterprise | None: ...


class Users(Protocol):
    """The directory, read side."""

    async def get(self, enterprise_id: str, user_id: str) -> User | None: ...

    async def by_username(self, enterprise_id: str, username: str) -> User | None: ...


class Clients(Protocol):
    """SSO application profiles, read side, plus client authentication."""

    async def get(self, enterprise_id: str, client_id: str) -> Client | None: ...

    async def verify_secret(self, enterprise_id: str, client_id: str, secret: str) -> bool:
        """Constant-time check of a confidential client's secret against its stored hash."""
        ...


class CachedClients:
    """A `Clients` whose registrations (and unknown ids) are remembered for `ttl_s`, at most
    `max_entries` of them: the token endpoints and the back-channel queue read a client on every
    request, and an edit reaches them within `ttl_s`. Secrets are always checked by `inner`."""

    def __init__(
        self, inner: Clients, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.inner = inner
        # The value is a 1-tuple so that "no such client" is remembered too (made-up ids are bounded
        # by the LRU, issue 12).
        self._cache: LruCache[tuple[str, str], tuple[Client | None]] = LruCache(max_entries, ttl_s, clock)

    async def get(self, enterprise_id: str, client_id: str) -> Client | None:
        """The registration, from the cache when it is younger than `ttl_s`."""
        hit = self._cache.get((enterprise_id, client_id))
        if hit is not None:
            return hit[0]
        found = await self.inner.get(enterprise_id, client_id)
        self._cache.put((enterprise_id, client_id), (found,))
        return found

    async def verify_secret(self, enterprise_id: str, client_id: str, secret: str) -> bool:
        """Delegated: the cache holds no secrets."""
        return await self.inner.verify_secret(enterprise_id, client_id, secret)

    def clear(self) -> None:
        """Forget every remembered registration."""
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)


class Keys(Protocol):
    """Signing keys per enterprise (joserfc keys), with rotation that publishes before use."""

    async def signing_key(self, enterprise_id: str, alg: str = "RS256") -> Any:
        """The active private key for `alg` (RS256 or ES256); its `kid` is always set."""
        ...

    async def jwks(self, enterprise_id: str) -> dict[str, Any]:
        """Public JWKS: active, next (published before use) and retired-but-unexpired keys."""
        ...

    async def verification_keys(self, enterprise_id: str) -> Any:
        """A joserfc KeySet of every public key a token of ours may still be signed with."""
        ...


class Publisher(Protocol):
    """The bus: returns after the broker acknowledged."""

    async def publish(self, event: Event) -> None: ...


class OrgSettingsView(Protocol):
    """Org settings per enterprise, as last seen on lanyard.policy-config.v1 (kept by the
    directory part's policy-config handler)."""

    async def get(self, enterprise_id: str) -> OrgSettings: ...


class BrowserSessions(Protocol):
    """Interactive login sessions (the login page sets a cookie; authorize reads it)."""

    async def create(self, enterprise_id: str, user_id: str, amr: tuple[str, ...]) -> tuple[str, BrowserSession]:
        """A new login; returns (cookie value, session)."""
        ...

    async def get(self, enterprise_id: str, cookie: str | None) -> BrowserSession | None: ...

    async def end(self, enterprise_id: str, sid: str) -> None: ...


# ------------------------------------------------------------------- the directory's own
# Every write that changes something other services see takes the event announcing it: the
# adapter stores the change and stages the event in an outbox in one Redis transaction, and the
# use case then publishes it (so a crash between the two never loses the event; see adapters/outbox).


class Conflict(Exception):
    """A write that would break uniqueness (username, badge id, existing enterprise...)."""


class EnterpriseStore(Enterprises, Protocol):
    """Tenants, write side."""

    async def create(self, enterprise: Enterprise) -> None:
        """Store a new enterprise; raises Conflict when it exists (never overwrites)."""
        ...


class Directory(Users, Protocol):
    """Users, groups and their credentials. Credentials never leave this port."""

    async def by_badge(self, enterprise_id: str, badge_id: str) -> User | None: ...

    async def list_users(self, enterprise_id: str) -> list[User]: ...

    async def save_user(self, user: User, event: Event | None) -> None:
        """Insert or replace; raises Conflict when username or badge id belongs to another user."""
        ...

    async def delete_user(self, enterprise_id: str, user_id: str, event: Event | None) -> bool: ...

    async def get_group(self, enterprise_id: str, group_id: str) -> Group | None: ...

    async def list_groups(self, enterprise_id: str) -> list[Group]: ...

    async def save_group(self, group: Group, event: Event | None) -> None: ...

    async def delete_group(self, enterprise_id: str, group_id: str, event: Event | None) -> bool: ...

    async def password_hash(self, enterprise_id: str, user_id: str) -> str | None: ...

    async def set_password_hash(self, enterprise_id: str, user_id: str, password_hash: str) -> None: ...

    async def totp(self, enterprise_id: str, user_id: str) -> tuple[bytes, int | None] | None:
        """(secret, last accepted step) or None when not enrolled."""
        ...

    async def set_totp(self, enterprise_id: str, user_id: str, secret: bytes | None) -> None: ...

    async def consume_totp_step(self, enterprise_id: str, user_id: str, step: int) -> bool:
        """Atomically record `step` as used; False when it (or a later one) was used already."""
        ...


class Lockouts(Protocol):
    """Failed-attempt counters per account (username or badge), for rate limits and lockout."""

    async def state(self, enterprise_id: str, subject: str) -> FailureState: ...

    async def record_failure(self, enterprise_id: str, subject: str, now: float) -> FailureState: ...

    async def clear(self, enterprise_id: str, subject: str) -> None: ...


class ProfileStore(Clients, Protocol):
    """SSO application profiles, write side, and client secrets (hashes only)."""

    async def get_profile(self, enterprise_id: str, client_id: str) -> AppProfile | None: ...

    async def list_profiles(self, enterprise_id: str) -> list[AppProfile]: ...

    async def save_profile(self, profile: AppProfile, event: Event | None) -> None: ...

    async def create_profile(self, profile: AppProfile, secret: str, event: Event | None) -> None:
        """Register a profile with its (RP-supplied) secret, stored as a hash, only if the client
        id is free in the enterprise; raises Conflict when it is taken."""
        ...

    async def delete_profile(self, enterprise_id: str, client_id: str, event: Event | None) -> bool: ...

    async def set_secret(
        self,
        enterprise_id: str,
        client_id: str,
        secret: str,
        previous_valid_until: float | None,
        event: Event | None,
    ) -> None:
        """Store the hash of a new secret; keep the previous hash until `previous_valid_until`
        (None: the previous secret stops working now)."""
        ...


class KeyStore(Keys, Protocol):
    """Signing keys, write side."""

    async def ring(self, enterprise_id: str) -> KeyRing | None: ...

    async def create(self, enterprise_id: str) -> KeyRing:
        """A new ring (active + next per alg); raises Conflict when one exists."""
        ...

    async def rotate(self, enterprise_id: str) -> KeyRing:
        """next → active, active → retired, new next; raises LookupError without a ring."""
        ...


class OrgSettingsStore(OrgSettingsView, Protocol):
    """Org settings, write side (the policy-config handler)."""

    async def apply(self, enterprise_id: str, settings: OrgSettings, event_id: str, occurred_at: float) -> bool:
        """Store `settings` unless a newer (or the same) event was applied already; True if stored."""
        ...


class PendingLogins(Protocol):
    """Logins that passed the password and wait for the second factor (login page)."""

    async def create(self, enterprise_id: str, user_id: str, next_path: str | None) -> str:
        """A new pending login; returns its (cookie) token."""
        ...

    async def get(self, enterprise_id: str, token: str | None) -> dict[str, Any] | None:
        """{"user_id", "next"} or None when unknown or expired."""
        ...

    async def drop(self, enterprise_id: str, token: str | None) -> None: ...


class ServicesPrincipals(Protocol):
    """The vendor's services principals (the services realm) and their secret digests."""

    async def get(self, principal_id: str) -> ServicesPrincipalRecord | None: ...

    async def list(self) -> list[ServicesPrincipalRecord]: ...

    async def save(self, record: ServicesPrincipalRecord, secret: str | None, event: Event | None) -> None:
        """Store the record (and the digest of a new secret) with its event in the outbox."""
        ...

    async def verify(self, principal_id: str, secret: str) -> bool:
        """Constant-time check of a principal's secret (False for unknown or revoked ones)."""
        ...


__all__ = [
    "ADMIN_SCOPE",
    "CONSOLE_CLIENT_ID",
    "DEFAULT_CLAIMS",
    "DEFAULT_ID_TOKEN_ALG",
    "AppProfile",
    "BrowserSession",
    "BrowserSessions",
    "CachedClients",
    "ClaimMapping",
    "Client",
    "Clients",
    "Conflict",
    "Directory",
    "Enterprise",
    "EnterpriseStore",
    "Enterprises",
    "Group",
    "KeyStore",
    "Keys",
    "Lockouts",
    "OrgSettings",
    "OrgSettingsStore",
    "OrgSettingsView",
    "PendingLogins",
    "ProfileStore",
    "Publisher",
    "User",
    "Users",
    "admin_roles",
    "console_client",
]
