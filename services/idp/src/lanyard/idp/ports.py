"""The IdP's ports: what its use cases need from storage, keys and the bus.

The directory/profiles side implements `Enterprises`, `Users`, `Clients`, `Keys` (Redis adapters
in `adapters/`); the OIDC side (`lanyard.idp.oidc`) consumes them. Fakes in tests implement the
same Protocols.
"""

from __future__ import annotations

from typing import Any, Protocol

from lanyard.contracts import Event
from lanyard.idp.domain import Client, Enterprise, User


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
