"""Redis adapter for the vendor's services principals (they belong to no enterprise).

Keys under `idp:_services:` (the services realm; enterprise ids never start with `_`):
`principal:{id}` (JSON record), `principals` (set), `principal-secret:{id}` (SHA-256 digest of a
256-bit random secret we generated, so a fast hash is the right tool, as for client secrets).
The realm's signing keys are an ordinary key ring under the same prefix (`RedisKeys`).
"""

from __future__ import annotations

import json
from dataclasses import asdict

from redis.asyncio import Redis

from lanyard.contracts import Event
from lanyard.contracts.events import SERVICES_REALM
from lanyard.idp.adapters.outbox import stage
from lanyard.idp.adapters.redis_clients import digest_matches, secret_digest
from lanyard.idp.directory.domain import ServicesPrincipalRecord


def _k(*parts: str) -> str:
    return ":".join(("idp", SERVICES_REALM, *parts))


class RedisServicesPrincipals:
    """Implements `directory.ports.ServicesPrincipals`: principals and their secret digests."""

    def __init__(self, redis: Redis) -> None:
        self._r = redis

    async def get(self, principal_id: str) -> ServicesPrincipalRecord | None:
        raw = await self._r.get(_k("principal", principal_id))
        if not raw:
            return None
        d = json.loads(raw)
        return ServicesPrincipalRecord(**{**d, "scopes": tuple(d["scopes"])})

    async def list(self) -> list[ServicesPrincipalRecord]:
        found = [await self.get(i) for i in sorted(await self._r.smembers(_k("principals")))]
        return [p for p in found if p is not None]

    async def save(self, record: ServicesPrincipalRecord, secret: str | None, event: Event | None) -> None:
        """Store the record (and the digest of a new secret) with its event in the outbox."""
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.set(_k("principal", record.principal_id), json.dumps(asdict(record)))
            pipe.sadd(_k("principals"), record.principal_id)
            if secret is not None:
                pipe.set(_k("principal-secret", record.principal_id), secret_digest(secret))
            if record.status != "active":
                pipe.delete(_k("principal-secret", record.principal_id))
            stage(pipe, event)
            await pipe.execute()

    async def verify(self, principal_id: str, secret: str) -> bool:
        """Constant-time check of a principal's secret (False for unknown or revoked ones)."""
        if not isinstance(secret, str) or not secret or len(secret) > 512 or len(principal_id) > 128:
            return False
        return digest_matches(await self._r.get(_k("principal-secret", principal_id)), secret)
