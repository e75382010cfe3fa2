"""The vendor's services realm (the seed's "Imprivata Services"): principals that belong to no
enterprise, their bearer tokens, and the operator commands that issue them.

- An operator issues a principal with `python -m lanyard.idp services-principal create --name N`
  (its secret is printed once and kept only as a hash); `revoke` ends it. Both announce
  `directory.services_principal_changed.v1` (enterprise id SERVICES_REALM) through the outbox.
- `POST /idp/services/token` (client credentials: the principal id and its secret, HTTP Basic or
  form) answers an `at+jwt` with issuer `/idp/services`, audience `lanyard-services` and the
  principal's scopes (`establish_trust`, `read`); every attempt is announced on
  `lanyard.oidc-events.v1` (channel `services_api`), failures included, never the secret.
- `GET /idp/services/jwks` publishes the realm's keys (its own ring, rotated like an
  enterprise's: `python -m lanyard.idp keys rotate --enterprise-id _services`).

Such a token is never an admin token of an enterprise (other issuer, other audience): the policy
service accepts it only where a route allows a services principal (establishing trust, read-only
views).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from lanyard.contracts import Subject
from lanyard.contracts.events import (
    SERVICES_REALM,
    AuthenticationFailed,
    AuthenticationFailedPayload,
    ServicesPrincipalChanged,
    ServicesPrincipalChangedPayload,
    UserAuthenticated,
    UserAuthenticatedPayload,
)
from lanyard.idp.directory.domain import PRODUCER, ServicesPrincipalRecord
from lanyard.idp.directory.ports import Conflict, KeyStore, Publisher, ServicesPrincipals
from lanyard.idp.web import NO_STORE
from lanyard.runtime.errors import error_response
from lanyard.runtime.signing import JwtSigner
from lanyard.runtime.tokens import (
    ADMIN_TOKEN_TYP,
    SERVICES_AUDIENCE,
    SERVICES_PATH,
    SERVICES_SCOPES,
    services_issuer,
)

TOKEN_TTL_S = 900


class TokenRefused(Exception):
    """An OAuth token-endpoint error (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class ServicesRealm:
    """Issue, revoke and authenticate services principals."""

    def __init__(
        self,
        principals: ServicesPrincipals,
        keys: KeyStore,
        publisher: Publisher,
        public_base_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._principals = principals
        self._keys = keys
        self._signer = JwtSigner(keys)
        self._pub = publisher
        self._base = public_base_url
        self._clock = clock

    def _event(self, record: ServicesPrincipalRecord, actor: str) -> ServicesPrincipalChanged:
        payload = ServicesPrincipalChangedPayload(
            principal_id=record.principal_id,
            name=record.name,
            status=record.status,
            scopes=record.scopes,  # type: ignore[arg-type]
        )
        return ServicesPrincipalChanged(enterprise_id=SERVICES_REALM, producer=PRODUCER, actor=actor, payload=payload)

    async def create(self, name: str, scopes: tuple[str, ...], actor: str) -> tuple[ServicesPrincipalRecord, str]:
        """A new principal and its secret (shown once)."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError("a name of 1 to 200 characters is required")
        unknown = sorted(set(scopes) - set(SERVICES_SCOPES))
        if unknown or not scopes:
            raise ValueError(f"scopes must be among {', '.join(SERVICES_SCOPES)}")
        if await self._keys.ring(SERVICES_REALM) is None:
            try:
                await self._keys.create(SERVICES_REALM)
            except Conflict:
                pass  # created by a concurrent command
        record = ServicesPrincipalRecord(
            f"svc_{secrets.token_urlsafe(12)}", name, "active", tuple(dict.fromkeys(scopes)), self._clock()
        )
        secret = secrets.token_urlsafe(32)  # 256 bits
        event = self._event(record, actor)
        await self._principals.save(record, secret, event)
        await self._pub.publish(event)
        return record, secret

    async def revoke(self, principal_id: str, actor: str) -> ServicesPrincipalRecord:
        """End a principal: its secret stops working now (tokens it holds expire within minutes)."""
        record = await self._principals.get(principal_id)
        if record is None:
            raise LookupError("no such services principal")
        revoked = replace(record, status="revoked")
        event = self._event(revoked, actor)
        await self._principals.save(revoked, None, event)
        await self._pub.publish(event)
        return revoked

    async def token(self, principal_id: str, secret: str, requested: str | None) -> dict[str, Any]:
        """Client credentials → a services token; every attempt announced (never the secret)."""
        record = await self._principals.get(principal_id) if len(principal_id) <= 128 else None
        if record is None or record.status != "active" or not await self._principals.verify(principal_id, secret):
            await self._pub.publish(
                AuthenticationFailed(
                    enterprise_id=SERVICES_REALM, producer=PRODUCER,
                    payload=AuthenticationFailedPayload(
                        username=principal_id[:256], user_id=record.principal_id if record else None,
                        channel="services_api", factor="client_secret",
                    ),
                )
            )  # fmt: skip
            raise TokenRefused("invalid_client", "client authentication failed", 401)
        scopes = record.scopes
        if requested is not None:
            wanted = tuple(dict.fromkeys(requested.split()))
            if not wanted or set(wanted) - set(record.scopes):
                raise TokenRefused("invalid_scope", f"scope must be among {' '.join(record.scopes)}")
            scopes = wanted
        now = int(self._clock())
        claims = {
            "iss": services_issuer(self._base),
            "sub": record.principal_id,
            "aud": SERVICES_AUDIENCE,
            "iat": now,
            "exp": now + TOKEN_TTL_S,
            "jti": secrets.token_urlsafe(16),
            "scope": " ".join(scopes),
            "name": record.name,
        }
        token = await self._signer.sign(SERVICES_REALM, claims, alg="ES256", typ=ADMIN_TOKEN_TYP)
        await self._pub.publish(
            UserAuthenticated(
                enterprise_id=SERVICES_REALM, producer=PRODUCER, subject=Subject(user_id=record.principal_id),
                payload=UserAuthenticatedPayload(user_id=record.principal_id, channel="services_api", amr=("pwd",)),
            )
        )  # fmt: skip
        return {"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL_S, "scope": " ".join(scopes)}

    async def principals(self) -> list[ServicesPrincipalRecord]:
        """Every principal ever issued, revoked ones included."""
        return await self._principals.list()

    async def jwks(self) -> dict[str, Any]:
        """The realm's public keys (empty until the first principal was issued)."""
        if await self._keys.ring(SERVICES_REALM) is None:
            return {"keys": []}
        return await self._keys.jwks(SERVICES_REALM)


def _credentials(request: Request, form: dict[str, Any]) -> tuple[str, str]:
    """Client credentials from HTTP Basic (RFC 6749 §2.3.1, form-encoded parts) or the form."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        if form.get("client_secret") is not None:
            raise TokenRefused("invalid_request", "use one client authentication method")
        try:
            raw_id, sep, raw_secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise TokenRefused("invalid_client", "malformed basic credentials", 401) from None
        if not sep:
            raise TokenRefused("invalid_client", "malformed basic credentials", 401)
        return unquote(raw_id.replace("+", " ")), unquote(raw_secret.replace("+", " "))
    client_id, secret = form.get("client_id"), form.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(secret, str) or not client_id or not secret:
        raise TokenRefused("invalid_client", "client authentication is required", 401)
    return client_id, secret


def services_router() -> APIRouter:
    """The realm's token endpoint and JWKS."""
    r = APIRouter()

    def realm(request: Request) -> ServicesRealm:
        return request.app.state.services_realm

    @r.post(f"{SERVICES_PATH}/token")
    async def token(request: Request) -> JSONResponse:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return _oauth_error(TokenRefused("invalid_request", "send application/x-www-form-urlencoded"))
        form = dict(await request.form())
        try:
            if form.get("grant_type") != "client_credentials":
                raise TokenRefused("unsupported_grant_type", "only grant_type=client_credentials")
            principal_id, secret = _credentials(request, form)
            scope = form.get("scope")
            body = await realm(request).token(principal_id, secret, scope if isinstance(scope, str) else None)
        except TokenRefused as refused:
            return _oauth_error(refused)
        return JSONResponse(body, headers=NO_STORE)

    @r.get(f"{SERVICES_PATH}/jwks")
    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(await realm(request).jwks(), headers={"Cache-Control": "public, max-age=300"})

    return r


def _oauth_error(refused: TokenRefused) -> JSONResponse:
    headers = dict(NO_STORE)
    if refused.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="lanyard-services"'
    return error_response(refused.status, refused.error, refused.description, headers)


# ------------------------------------------------------------------------- operator commands


def add_commands(sub: Any) -> None:
    """`services-principal create|revoke|list` and `mdm-profile` on the IdP's command line."""
    sp = sub.add_parser("services-principal", help="vendor services principals (belong to no enterprise)")
    spsub = sp.add_subparsers(dest="services_command", required=True)
    c = spsub.add_parser("create", help="issue a principal; prints its id and secret once")
    c.add_argument("--name", required=True, help="who it is for, e.g. 'Imprivata Services (J. Doe)'")
    c.add_argument("--scope", action="append", choices=SERVICES_SCOPES, help="default: all")
    rv = spsub.add_parser("revoke", help="end a principal")
    rv.add_argument("--principal-id", required=True)
    spsub.add_parser("list", help="every principal and its status")
    sub.add_parser("mdm-profile", help="print the SSO-extension .mobileconfig for this host (all its enterprises)")


async def run_command(args: argparse.Namespace, realm: ServicesRealm) -> int:
    """Run a `services-principal` command against the realm; returns the exit status."""
    actor = f"operator:{getpass.getuser()}"
    if args.services_command == "create":
        try:
            record, secret = await realm.create(args.name, tuple(args.scope or SERVICES_SCOPES), actor)
        except ValueError as bad:
            print(bad, file=sys.stderr)
            return 2
        print(f"principal id: {record.principal_id}")
        print(f"secret: {secret}")
        print(f"scopes: {' '.join(record.scopes)}")
        print("the secret is shown once; it is kept only as a hash", file=sys.stderr)
        return 0
    if args.services_command == "revoke":
        try:
            await realm.revoke(args.principal_id, actor)
        except LookupError as missing:
            print(missing, file=sys.stderr)
            return 1
        print(f"revoked {args.principal_id}")
        return 0
    for p in await realm.principals():
        print(f"{p.principal_id}  {p.status:8}  {' '.join(p.scopes):24}  {p.name}")
    return 0
