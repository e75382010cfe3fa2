"""Signing keys per enterprise in Redis, cached in process.

`idp:{eid}:keys` holds the key ring (`KeyRing` metadata) and the private JWKs; private keys
live nowhere else. `idp:{eid}:keys:version` grows with every change. Each process keeps the
parsed keys and a ready JWKS dict in memory and re-reads the version at most every
`check_s` seconds: the token endpoint signs ~1,300 tokens/s and must not parse keys per request.
Staleness of a second is harmless because a key is published (as `next`) a whole rotation period
before it signs, and a retired key stays published until its tokens expire.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, KeySet, RSAKey, import_key
from redis.asyncio import Redis
from redis.exceptions import WatchError

from lanyard.idp.adapters.codec import dump_ring, load_ring
from lanyard.idp.directory.domain import SIGNING_ALGS, KeyRing, new_ring, rotate_ring
from lanyard.idp.directory.ports import Conflict


def generate_key(alg: str) -> tuple[str, dict[str, Any]]:
    """A new private key for `alg` as (kid, private JWK dict). RSA is 2048-bit, EC is P-256."""
    kid = f"{alg.lower()}-{secrets.token_hex(8)}"
    params = {"kid": kid, "alg": alg, "use": "sig"}
    key: Any = (
        RSAKey.generate_key(2048, parameters=params)
        if alg == "RS256"
        else ECKey.generate_key("P-256", parameters=params)
    )  # type: ignore[arg-type]
    return kid, key.as_dict(private=True)


async def generate_keys(n_per_alg: int) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """`n_per_alg` keys for each alg, generated off the event loop (RSA takes tens of ms)."""

    def make() -> dict[str, list[tuple[str, dict[str, Any]]]]:
        return {alg: [generate_key(alg) for _ in range(n_per_alg)] for alg in SIGNING_ALGS}

    return await asyncio.to_thread(make)


@dataclass
class LoadedKeys:
    """Parsed keys of one ring version, ready to use."""

    version: int
    ring: KeyRing
    signing: dict[str, Any]
    jwks: dict[str, Any]
    keyset: KeySet
    valid_until: float  # wall-clock time when a retired key drops out of the JWKS
    checked_at: float  # monotonic time of the last version check


def build(ring: KeyRing, private: dict[str, dict[str, Any]], now: float) -> LoadedKeys:
    """Parse a ring once: active private keys by alg, the public JWKS and its KeySet."""
    signing = {alg: import_key(private[ring.active(alg).kid]) for alg in SIGNING_ALGS}
    published = ring.published(now)
    public = [import_key(private[e.kid]).as_dict(private=False) for e in published]
    for jwk, entry in zip(public, published, strict=True):
        jwk.update(kid=entry.kid, alg=entry.alg, use="sig")
    jwks = {"keys": public}
    retire = [e.retire_after for e in published if e.retire_after is not None]
    return LoadedKeys(
        version=ring.version,
        ring=ring,
        signing=signing,
        jwks=jwks,
        keyset=KeySet.import_key_set(jwks),  # type: ignore[arg-type]
        valid_until=min(retire) if retire else float("inf"),
        checked_at=time.monotonic(),
    )


class RedisKeys:
    """Implements `Keys` and `KeyStore`."""

    def __init__(
        self,
        redis: Redis,
        max_token_lifetime_s: float,
        check_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._r = redis
        self._max_lifetime = max_token_lifetime_s
        self._check_s = check_s
        self._clock = clock
        self._cache: dict[str, LoadedKeys] = {}

    @staticmethod
    def _key(eid: str) -> str:
        return f"idp:{eid}:keys"

    async def _loaded(self, enterprise_id: str) -> LoadedKeys:
        cached = self._cache.get(enterprise_id)
        mono = time.monotonic()
        if cached is not None and mono - cached.checked_at < self._check_s and self._clock() < cached.valid_until:
            return cached
        version = await self._r.get(f"{self._key(enterprise_id)}:version")
        if cached is not None and version is not None and int(version) == cached.version:
            if self._clock() < cached.valid_until:
                cached.checked_at = mono
                return cached
        raw = await self._r.get(self._key(enterprise_id))
        if raw is None:
            raise LookupError(f"no signing keys for enterprise {enterprise_id}")
        data = json.loads(raw)
        loaded = build(load_ring(data["ring"]), data["private"], self._clock())
        self._cache[enterprise_id] = loaded
        return loaded

    async def signing_key(self, enterprise_id: str, alg: str = "RS256") -> Any:
        if alg not in SIGNING_ALGS:
            raise ValueError(f"unsupported alg {alg}")
        return (await self._loaded(enterprise_id)).signing[alg]

    async def jwks(self, enterprise_id: str) -> dict[str, Any]:
        """The public JWKS; the same dict object until the ring changes (verifiers cache by it)."""
        try:
            return (await self._loaded(enterprise_id)).jwks
        except LookupError:
            return {"keys": []}

    async def verification_keys(self, enterprise_id: str) -> KeySet:
        return (await self._loaded(enterprise_id)).keyset

    async def ring(self, enterprise_id: str) -> KeyRing | None:
        raw = await self._r.get(self._key(enterprise_id))
        return load_ring(json.loads(raw)["ring"]) if raw else None

    async def create(self, enterprise_id: str) -> KeyRing:
        made = await generate_keys(2)
        kids = {alg: (made[alg][0][0], made[alg][1][0]) for alg in SIGNING_ALGS}
        private = {kid: jwk for alg in SIGNING_ALGS for kid, jwk in made[alg]}
        ring = new_ring(kids, self._clock())
        stored = await self._r.set(
            self._key(enterprise_id), json.dumps({"ring": dump_ring(ring), "private": private}), nx=True
        )
        if not stored:
            raise Conflict(f"enterprise {enterprise_id} already has keys")
        await self._r.set(f"{self._key(enterprise_id)}:version", ring.version)
        self._cache.pop(enterprise_id, None)
        return ring

    async def rotate(self, enterprise_id: str) -> KeyRing:
        made = await generate_keys(1)
        key = self._key(enterprise_id)
        async with self._r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise LookupError(f"no signing keys for enterprise {enterprise_id}")
                    data = json.loads(raw)
                    ring = rotate_ring(
                        load_ring(data["ring"]),
                        {alg: made[alg][0][0] for alg in SIGNING_ALGS},
                        self._clock(),
                        self._max_lifetime,
                    )
                    private = {**data["private"], **{kid: jwk for alg in SIGNING_ALGS for kid, jwk in made[alg]}}
                    private = {e.kid: private[e.kid] for e in ring.entries}
                    pipe.multi()
                    pipe.set(key, json.dumps({"ring": dump_ring(ring), "private": private}))
                    pipe.set(f"{key}:version", ring.version)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        self._cache.pop(enterprise_id, None)
        return ring
