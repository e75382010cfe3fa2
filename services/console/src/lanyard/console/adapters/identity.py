"""The console as an OIDC relying party of Lanyard's IdP (authorization code + PKCE, public
client `lanyard-console`, scope `lanyard:admin`).

The ID token is validated as OIDC Core §3.1.3.7 asks (signature with the enterprise's JWKS,
`iss`, `aud`, `exp`, `nonce`); the access token is verified exactly as every admin API verifies
it (`typ` at+jwt, `aud` lanyard-admin), and its `roles` decide which pages the console offers.
The servers decide what the admin may do; the console only avoids offering what they refuse.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

import httpx

from lanyard.runtime.tokens import (
    ADMIN_AUDIENCE,
    ADMIN_TOKEN_TYP,
    HttpJwks,
    InvalidToken,
    TokenVerifier,
    issuer_for,
)

CLIENT_ID = "lanyard-console"
SCOPE = "openid profile lanyard:admin"
ID_TOKEN_TYP = "JWT"


class SignInFailed(Exception):
    """The IdP refused, or answered something we must not trust. `reason` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PendingSignIn:
    """What the callback needs to finish one sign-in (kept server-side, keyed by `state`)."""

    enterprise_id: str
    state: str
    nonce: str
    verifier: str
    next_path: str


@dataclass(frozen=True)
class Tokens:
    """A signed-in admin's tokens and who they are."""

    access_token: str
    access_expires_at: float
    refresh_token: str | None
    id_token: str
    user_id: str
    username: str
    name: str
    roles: tuple[str, ...]


def pkce_pair() -> tuple[str, str]:
    """RFC 7636: a random verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Identity:
    """Authorization URLs, code redemption, refresh and revocation at an enterprise's IdP."""

    def __init__(
        self,
        public_base_url: str,
        api_base: str,
        console_base: str,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._public = public_base_url.rstrip("/")
        self._api = api_base.rstrip("/")
        self._console = console_base.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self._jwks = HttpJwks(self._api)
        self._verifier = TokenVerifier(self._public, self._jwks)

    def issuer(self, eid: str) -> str:
        return issuer_for(self._public, eid)

    def redirect_uri(self, eid: str) -> str:
        return f"{self._console}/e/{eid}/callback"

    def start(self, eid: str, next_path: str) -> tuple[PendingSignIn, str]:
        """A new sign-in and the authorization URL to send the browser to."""
        verifier, challenge = pkce_pair()
        pending = PendingSignIn(eid, secrets.token_urlsafe(24), secrets.token_urlsafe(24), verifier, next_path)
        query = {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": self.redirect_uri(eid),
            "scope": SCOPE,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return pending, f"{self.issuer(eid)}/authorize?{urlencode(query)}"

    def _server_side(self, eid: str, endpoint: str) -> str:
        return f"{self._api}/e/{eid}/{endpoint}"

    async def _token_call(self, eid: str, form: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self._http.post(self._server_side(eid, "token"), data={**form, "client_id": CLIENT_ID})
        except httpx.HTTPError:
            raise SignInFailed("the sign-in service did not answer; try again") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if response.status_code != 200:
            if body.get("error") == "invalid_grant" and "admin role" in str(body.get("error_description", "")):
                raise SignInFailed("this account holds no admin role")
            raise SignInFailed("the sign-in was refused; please sign in again")
        return body

    async def redeem(self, pending: PendingSignIn, code: str, iss: str | None) -> Tokens:
        """Exchange the code (with the PKCE verifier) and validate what comes back."""
        if iss is not None and iss != self.issuer(pending.enterprise_id):  # RFC 9207 mix-up defence
            raise SignInFailed("the answer came from another issuer")
        body = await self._token_call(
            pending.enterprise_id,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri(pending.enterprise_id),
                "code_verifier": pending.verifier,
            },
        )
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("the sign-in answer had no ID token")
        try:
            claims = await self._verifier.verify(
                id_token, enterprise_id=pending.enterprise_id, audience=CLIENT_ID, typ=ID_TOKEN_TYP
            )
        except InvalidToken as exc:
            raise SignInFailed(f"the ID token is not valid ({exc.reason})") from None
        if not secrets.compare_digest(str(claims.get("nonce", "")), pending.nonce):
            raise SignInFailed("the ID token does not belong to this sign-in")
        tokens = await self._tokens(pending.enterprise_id, body, id_token, claims)
        profile = await self._userinfo(pending.enterprise_id, tokens.access_token)
        if profile.get("sub") != tokens.user_id:
            return tokens
        username = str(profile.get("preferred_username") or tokens.username)
        return replace(tokens, username=username, name=str(profile.get("name") or username))

    async def _userinfo(self, eid: str, access_token: str) -> dict[str, Any]:
        """Who signed in, for the page header (the ID token carries only `sub` unless asked)."""
        try:
            response = await self._http.get(
                self._server_side(eid, "userinfo"), headers={"Authorization": f"Bearer {access_token}"}
            )
            body = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            body = {}
        return body if isinstance(body, dict) else {}

    async def refresh(self, eid: str, refresh_token: str, id_token: str) -> Tokens:
        """New tokens from the refresh token (roles re-read by the IdP)."""
        body = await self._token_call(eid, {"grant_type": "refresh_token", "refresh_token": refresh_token})
        try:
            claims = await self._verifier.verify(id_token, enterprise_id=eid, audience=CLIENT_ID, typ=ID_TOKEN_TYP)
        except InvalidToken:
            claims = {}
        return await self._tokens(eid, body, id_token, claims)

    async def _tokens(self, eid: str, body: dict[str, Any], id_token: str, id_claims: dict[str, Any]) -> Tokens:
        access = body.get("access_token")
        if not isinstance(access, str):
            raise SignInFailed("the sign-in answer had no access token")
        try:
            claims = await self._verifier.verify(
                access, enterprise_id=eid, audience=ADMIN_AUDIENCE, typ=ADMIN_TOKEN_TYP
            )
        except InvalidToken as exc:
            raise SignInFailed(f"the access token is not an admin token ({exc.reason})") from None
        if id_claims and id_claims.get("sub") != claims["sub"]:
            raise SignInFailed("the tokens name different users")
        roles = tuple(r for r in claims.get("roles", []) if isinstance(r, str))
        refresh = body.get("refresh_token")
        return Tokens(
            access_token=access,
            access_expires_at=float(claims["exp"]),
            refresh_token=refresh if isinstance(refresh, str) else None,
            id_token=id_token,
            user_id=claims["sub"],
            username=str(id_claims.get("preferred_username") or claims["sub"]),
            name=str(id_claims.get("name") or id_claims.get("preferred_username") or claims["sub"]),
            roles=roles,
        )

    async def revoke(self, eid: str, refresh_token: str) -> None:
        """RFC 7009: end the grant (best effort: the session is dropped whatever happens)."""
        try:
            await self._http.post(
                self._server_side(eid, "revoke"),
                data={"token": refresh_token, "token_type_hint": "refresh_token", "client_id": CLIENT_ID},
            )
        except httpx.HTTPError:
            pass

    def logout_url(self, eid: str, id_token: str) -> str:
        """RP-initiated logout at the IdP, back to the console's front page."""
        query = {"id_token_hint": id_token, "post_logout_redirect_uri": f"{self._console}/", "client_id": CLIENT_ID}
        return f"{self.issuer(eid)}/logout?{urlencode(query)}"

    def expires_soon(self, tokens_expire_at: float, margin_s: float = 30) -> bool:
        return tokens_expire_at - time.time() < margin_s

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._jwks.aclose()
