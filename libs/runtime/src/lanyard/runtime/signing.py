"""The one JWT signer of Lanyard: every token the IdP issues (ID, access, admin, checkout, logout
and services tokens) is signed here, with the enterprise's active key for the algorithm asked.

The header always carries `alg`, `typ` and `kid` (RFC 8725 §3.11: the `typ` tells one kind of
token from another; `kid` lets verifiers pick the key without trying). Keys come from a
`SigningKeys` source; a signer may remember a key for `cache_s` seconds (the oidc part's hot
path does: rotation publishes the next key before it signs and keeps retired keys published
until their tokens expire, so a briefly stale key still verifies). `cache_s=0` asks every time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from joserfc import jwt


class SigningKeys(Protocol):
    """Where private keys come from (the IdP's `Keys` port)."""

    async def signing_key(self, enterprise_id: str, alg: str = "RS256") -> Any:
        """The active private key for `alg`; its `kid` is set."""
        ...


class JwtSigner:
    """Compact JWS over a `SigningKeys` source, with an optional short key cache."""

    def __init__(self, keys: SigningKeys, cache_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = keys
        self._cache_s = cache_s
        self._clock = clock
        self._cached: dict[tuple[str, str], tuple[float, Any]] = {}

    async def key(self, enterprise_id: str, alg: str) -> Any:
        """The key `sign` would use now."""
        if self._cache_s <= 0:
            return await self._keys.signing_key(enterprise_id, alg)
        now = self._clock()
        hit = self._cached.get((enterprise_id, alg))
        if hit and now - hit[0] < self._cache_s:
            return hit[1]
        key = await self._keys.signing_key(enterprise_id, alg)
        self._cached[(enterprise_id, alg)] = (now, key)
        return key

    async def sign(self, enterprise_id: str, claims: dict[str, Any], *, alg: str, typ: str) -> str:
        """A compact JWS of `claims` with `alg`, `typ` and `kid` set in the header."""
        key = await self.key(enterprise_id, alg)
        return jwt.encode({"alg": alg, "typ": typ, "kid": key.kid}, claims, key)
