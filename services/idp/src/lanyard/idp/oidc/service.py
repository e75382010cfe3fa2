"""`OidcProvider`: the ports the protocol consumes, its storage, caches and shared steps.

Endpoints (one module per spec concern) take the provider and the request; `api.py` mounts
them under `/e/{enterprise_id}`. Nothing here reads `Host` or `X-Forwarded-*`: the issuer is
`issuer_for(public_base_url, enterprise_id)` from configuration (RFC 9700 §4.13).

In-process caches, each short and named in `OidcConfig`: enterprises (30 s; they are only ever
created), clients (5 s), signing/verification keys (5 s, see `jwt.py`) and successful client
secret checks (5 s, keyed by a hash of the presented secret). They keep the token and
introspection hot paths at one or two Redis round trips; the price is that disabling a client
or rotating its secret takes up to 5 s to bite in every process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from fastapi import Request

from lanyard.contracts import Event
from lanyard.contracts.envelope import Subject
from lanyard.contracts.events import TokensRevoked, TokensRevokedPayload
from lanyard.idp.directory.ports import CONSOLE_CLIENT_ID, CachedClients, Client, Enterprise, console_client
from lanyard.idp.oidc.domain import Grant
from lanyard.idp.oidc.errors import invalid_client, invalid_request
from lanyard.idp.oidc.http import FORM, Params, form_params
from lanyard.idp.oidc.jwt import TokenKeys
from lanyard.idp.oidc.ports import GrantStore, Ports
from lanyard.idp.settings import OidcConfig
from lanyard.runtime.caches import LruCache
from lanyard.runtime.logging import get_logger
from lanyard.runtime.tokens import issuer_for

log = get_logger("lanyard.idp.oidc")


class UnknownEnterprise(Exception):
    """The path names no enterprise of ours: 404."""


@dataclass(frozen=True)
class AuthenticatedClient:
    """A client that proved itself at a direct endpoint, and how."""

    client: Client
    method: str  # client_secret_basic | client_secret_post | none


class OidcProvider:
    """The OpenID Provider of every enterprise served by this process."""

    def __init__(self, ports: Ports, store: GrantStore, config: OidcConfig) -> None:
        self.ports = ports
        self.store = store
        self.config = config
        self.keys = TokenKeys(ports.keys, config.keys_cache_s)
        # Keyed by what requests name: bounded, so made-up client ids cannot grow them (issue 12).
        entries = config.cache_entries
        self._enterprises: LruCache[str, Enterprise] = LruCache(entries, config.enterprise_cache_s)
        self._clients = CachedClients(ports.clients, entries, config.client_cache_s)
        self._secrets: LruCache[tuple[str, str, str], bool] = LruCache(entries, config.client_cache_s)

    def issuer(self, eid: str) -> str:
        """The enterprise's issuer: one exact string everywhere (configuration, never headers)."""
        return issuer_for(self.config.public_base_url, eid)

    async def enterprise(self, eid: str) -> Enterprise:
        """The enterprise named in the path; raises UnknownEnterprise."""
        hit = self._enterprises.get(eid)
        if hit is not None:
            return hit
        found = await self.ports.enterprises.get(eid) if len(eid) <= 128 else None
        if found is None:
            raise UnknownEnterprise(eid)
        self._enterprises.put(eid, found)
        return found

    async def client(self, eid: str, client_id: str | None) -> Client | None:
        """An enabled client of this enterprise, or None."""
        if not client_id or len(client_id) > 256:
            return None
        if client_id == CONSOLE_CLIENT_ID:
            found = console_client(eid, self.config.public_base_url) if self.config.console_client else None
        else:
            found = await self._clients.get(eid, client_id)
        if found is None or not found.enabled or found.enterprise_id != eid:
            return None
        return found

    async def _secret_ok(self, eid: str, client_id: str, secret: str) -> bool:
        key = (eid, client_id, hashlib.sha256(secret.encode()).hexdigest())
        if self._secrets.get(key):
            return True
        if await self.ports.clients.verify_secret(eid, client_id, secret):
            self._secrets.put(key, True)
            return True
        return False

    async def client_form(self, eid: str, request: Request) -> tuple[Params, AuthenticatedClient]:
        """A client's form POST to a back-channel endpoint (token, revocation, introspection):
        POST only, form-encoded (RFC 6749 §3.2), bounded, UTF-8, no parameter twice (§3.1),
        then the client authenticated. Raises the OAuth error each rule calls for."""
        if request.method != "POST":
            raise invalid_request("this endpoint accepts POST only")
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
            raise invalid_request("the body must be application/x-www-form-urlencoded")
        params = await form_params(request)
        if params.repeated:
            raise invalid_request(f"repeated parameter: {sorted(params.repeated)[0]}")
        return params, await self.authenticate_client(eid, request, params)

    async def authenticate_client(self, eid: str, request: Request, params: Params) -> AuthenticatedClient:
        """RFC 6749 §2.3: client_secret_basic, client_secret_post, or none (public clients).
        Raises invalid_client (401, with `WWW-Authenticate` when the header was used) or
        invalid_request (more than one method at once)."""
        header = request.headers.get("authorization")
        basic = {"WWW-Authenticate": 'Basic realm="lanyard"'}
        if "client_secret" in params.repeated or "client_id" in params.repeated:
            raise invalid_request("repeated client credentials")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                raise invalid_client("unsupported authorization scheme", headers=basic)
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise invalid_client("malformed basic credentials", headers=basic) from None
            raw_id, sep, raw_secret = decoded.partition(":")
            if not sep:
                raise invalid_client("malformed basic credentials", headers=basic)
            client_id, secret = unquote(raw_id.replace("+", " ")), unquote(raw_secret.replace("+", " "))
            if params.get("client_secret") is not None:
                raise invalid_request("use one client authentication method")
            if params.get("client_id") not in (None, client_id):
                raise invalid_client("client_id does not match the credentials", headers=basic)
            method, headers = "client_secret_basic", basic
        else:
            client_id, secret = params.get("client_id") or "", params.get("client_secret")
            method, headers = ("client_secret_post" if secret is not None else "none"), {}
        client = await self.client(eid, client_id)
        if client is None:
            raise invalid_client("client authentication failed", headers=headers)
        if client.is_public:
            if secret:
                raise invalid_client("public clients have no secret", headers=headers)
            return AuthenticatedClient(client, "none")
        if not secret or not await self._secret_ok(eid, client_id, secret):
            raise invalid_client("client authentication failed", headers=headers)
        return AuthenticatedClient(client, method)

    def tokens_revoked(self, eid: str, grant: Grant, reason: str) -> Event:
        """The TokensRevoked announcement of one grant (by the revocation endpoint, reuse
        detection, a logout or a check-in)."""
        return self.event(
            TokensRevoked,
            eid,
            TokensRevokedPayload(
                client_id=grant.client_id,
                user_id=grant.user_id,
                grant_id=grant.gid,
                reason=reason,
                device_session_id=grant.dsid,
            ),
            user_id=grant.user_id,
            client_id=grant.client_id,
            device_session_id=grant.dsid,
        )

    def event(
        self,
        cls: type[Event],
        eid: str,
        payload: Any,
        *,
        user_id: str | None = None,
        client_id: str | None = None,
        device_session_id: str | None = None,
    ) -> Event:
        """An oidc-events envelope from this IdP."""
        return cls(
            enterprise_id=eid,
            producer="idp",
            subject=Subject(user_id=user_id, client_id=client_id, device_session_id=device_session_id),
            payload=payload,
        )
