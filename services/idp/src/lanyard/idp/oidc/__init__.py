"""The OpenID Connect protocol side of the IdP: one module per spec concern.

- `discovery`: metadata and JWKS        - `authorize`: the authorization endpoint and resume
- `token` / `grants`: the token endpoint - `userinfo`, `introspection`, `revocation`, `logout`
- `revoker`: `SessionRevoker` for check-in and logout
- `storage`: the Redis layout            - `jwt`, `bearer`, `claims`, `errors`, `http`, `config`

`build_oidc(ports, redis, config)` returns the provider, its router and its revoker; the
composition root (`lanyard.idp.app.create_app`) mounts the router.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter
from redis.asyncio import Redis

from lanyard.idp.oidc.config import OidcConfig
from lanyard.idp.oidc.provider import OidcProvider, Ports
from lanyard.idp.oidc.revoker import OidcSessionRevoker
from lanyard.idp.oidc.router import oidc_router
from lanyard.idp.oidc.storage import OidcStore


@dataclass(frozen=True)
class Oidc:
    """The assembled protocol side."""

    provider: OidcProvider
    router: APIRouter
    revoker: OidcSessionRevoker


def build_oidc(ports: Ports, redis: Redis, config: OidcConfig) -> Oidc:
    """Wire storage, provider, routes and revoker over the given ports."""
    provider = OidcProvider(ports, OidcStore(redis, config.code_replay_window_s), config)
    return Oidc(provider=provider, router=oidc_router(provider), revoker=OidcSessionRevoker(provider))


__all__ = ["Oidc", "OidcConfig", "OidcProvider", "OidcSessionRevoker", "Ports", "build_oidc"]
