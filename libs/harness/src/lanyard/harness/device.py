"""A shared iPhone: the Locker app (checkout, heartbeats, face verification, checkin) and its
SSO extension (completing apps' authorization requests with the device session)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from lanyard.harness.admin import ApiError, App, Person, _ok, totp_now
from lanyard.runtime.proofs import sign_device_proof, sign_device_result


@dataclass
class Authorization:
    """What an authorization request came back with (code or error, and the echoed state)."""

    status: int
    location: str | None
    params: dict[str, str]
    verifier: str
    nonce: str

    @property
    def code(self) -> str | None:
        """The authorization code, if one was issued."""
        return self.params.get("code")


def pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


LOCKER_VERSION = "4.3.0"
"""The Locker release the simulator reports (the seed's minimum: 4.3 or later)."""


class Device:
    """One enrolled device with its private key, checked out by at most one user at a time. Its
    Locker app reports `locker_version` and whether the MDM installed its SSO extension."""

    def __init__(
        self,
        base_url: str,
        enterprise_id: str,
        http: httpx.AsyncClient,
        device_id: str | None = None,
        key: ECKey | None = None,
        handle: str | None = None,
        locker_version: str | None = LOCKER_VERSION,
        sso_extension_installed: bool | None = True,
    ) -> None:
        self.base_url = base_url
        self.enterprise_id = enterprise_id
        self.http = http
        self.device_id = device_id or f"iphone-{uuid.uuid4().hex[:10]}"
        self.key = key or ECKey.generate_key("P-256", private=True)
        self.handle = handle
        self.user_id: str | None = None
        self.locker_version = locker_version
        self.sso_extension_installed = sso_extension_installed
        self.checkout_answer: dict[str, Any] | None = None

    def state(self) -> dict[str, Any]:
        """What a Locker app keeps on the device (the private key included): see `from_state`."""
        return {
            "base_url": self.base_url,
            "enterprise_id": self.enterprise_id,
            "device_id": self.device_id,
            "private_jwk": self.key.as_dict(private=True),
            "handle": self.handle,
            "user_id": self.user_id,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], http: httpx.AsyncClient) -> Device:
        """The device again, from what `state()` returned."""
        key = ECKey.import_key(state["private_jwk"])
        device = cls(state["base_url"], state["enterprise_id"], http, state["device_id"], key, state.get("handle"))
        device.user_id = state.get("user_id")
        return device

    @property
    def public_jwk(self) -> dict[str, Any]:
        """What the MDM enrols."""
        return self.key.as_dict(private=False)

    def _locker(self, path: str) -> str:
        return f"{self.base_url}/session/e/{self.enterprise_id}{path}"

    async def _proved(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        proof = sign_device_proof(self.key, method, url, handle=self.handle)
        return await self.http.request(method, url, headers={"Device-Proof": proof}, **kwargs)

    async def sign_in(
        self, person: Person, *, with_totp: bool = True, totp: str | None = None, badge: bool = False
    ) -> str:
        """The Locker app's first-party authn: password (or badge tap) plus second factor →
        checkout assertion. `totp` is a code typed by the user; else one from the person's secret.
        The app says its release (`locker_version`)."""
        body: dict[str, Any] = {"device_id": self.device_id}
        if badge:
            body["badge_id"] = person.badge_id
        else:
            body.update(username=person.username, password=person.password)
        if totp or with_totp:
            body["totp"] = totp or person.totp()
        if self.locker_version:
            body["locker_version"] = self.locker_version
        response = await self.http.post(f"{self.base_url}/e/{self.enterprise_id}/locker/authn", json=body)
        return _ok(response)["assertion"]

    async def try_check_out(
        self,
        person: Person,
        *,
        totp: str | None = None,
        badge: bool = False,
        with_totp: bool = True,
        next_code_if_spent: bool = False,
    ) -> httpx.Response:
        """Sign in and ask to check the device out, reporting the Locker's release and SSO
        extension; the raw answer (callers look at refusals too).

        A TOTP code is single-use (RFC 6238 §5.2): when the person's current code was already
        spent (a checkout on another device within the same 30 s), a user waits for the next
        one. The IdP accepts the next step's code too (±1 step), so with `next_code_if_spent`
        a refusal of a code made from the person's secret is retried with the next code; when
        that one was spent too (a third checkout within the step), it waits for the step to turn
        (≤ 30 s) and sends the code after it. A success clears the failures those refusals
        counted, so this never walks a person into the lockout."""
        try:
            assertion = await self.sign_in(person, totp=totp, badge=badge, with_totp=with_totp)
        except ApiError as refused:
            if not (next_code_if_spent and totp is None and with_totp and person.totp_secret):
                raise
            if refused.error != "invalid_grant":
                raise
            try:
                assertion = await self.sign_in(person, totp=totp_now(person.totp_secret, time.time() + 30), badge=badge)
            except ApiError as again:
                if again.error != "invalid_grant":
                    raise
                await asyncio.sleep(30 - time.time() % 30 + 0.5)  # the step turns: a new next code
                assertion = await self.sign_in(person, totp=totp_now(person.totp_secret, time.time() + 30), badge=badge)
        body: dict[str, Any] = {"assertion": assertion}
        if self.locker_version is not None:
            body["locker_version"] = self.locker_version
        if self.sso_extension_installed is not None:
            body["sso_extension_installed"] = self.sso_extension_installed
        return await self._proved("POST", self._locker(f"/devices/{self.device_id}/checkout"), json=body)

    async def check_out(
        self,
        person: Person,
        *,
        totp: str | None = None,
        badge: bool = False,
        with_totp: bool = True,
        next_code_if_spent: bool = False,
    ) -> str:
        """Sign in and check the device out; returns the device-session handle (the whole answer,
        with `sso` and `locker_options`, is kept in `checkout_answer`)."""
        response = await self.try_check_out(
            person, totp=totp, badge=badge, with_totp=with_totp, next_code_if_spent=next_code_if_spent
        )
        answer = _ok(response)
        self.checkout_answer = answer
        self.handle, self.user_id = answer["handle"], answer.get("user_id")
        return self.handle

    async def session(self) -> dict[str, Any]:
        """The Locker app's view of its device session."""
        return _ok(await self._proved("GET", self._locker(f"/device-sessions/{self.handle}")))

    async def heartbeat(self) -> httpx.Response:
        """User activity in the Locker app."""
        return await self._proved("POST", self._locker(f"/device-sessions/{self.handle}/activity"))

    async def verify_face(
        self, person: Person | None = None, match: float = 0.98, liveness: float = 0.97
    ) -> dict[str, Any]:
        """Challenge, then a face result signed by the device key (the provider's verdict), for
        the person given or the user who checked the device out."""
        challenge = _ok(await self._proved("POST", self._locker(f"/device-sessions/{self.handle}/face/challenge")))
        result = sign_device_result(
            self.key,
            {
                "challenge": challenge["challenge"],
                "sub": person.user_id if person else self.user_id,
                "match_score": match,
                "liveness_score": liveness,
                "iat": int(time.time()),
            },
            "face-result+jwt",
        )
        return _ok(
            await self._proved(
                "POST", self._locker(f"/device-sessions/{self.handle}/face/result"), json={"result": result}
            )
        )

    async def check_in(self) -> dict[str, Any]:
        """The user checks the device back in."""
        return _ok(await self._proved("POST", self._locker(f"/device-sessions/{self.handle}/checkin")))

    def check_in_request(self) -> tuple[str, dict[str, str]]:
        """(URL, headers) of the checkin POST as the Locker app sends it, its device proof signed
        now: for a benchmark that sends it itself and times it from the moment it is sent."""
        url = self._locker(f"/device-sessions/{self.handle}/checkin")
        return url, {"Device-Proof": sign_device_proof(self.key, "POST", url, handle=self.handle)}

    async def complete(self, url: str) -> httpx.Response:
        """What the SSO extension does with an app's authorization request to the issuer: send it
        with the device-session handle and a fresh device proof over exactly that URL, and hand
        the answer (a redirect with a code or an error) back to the app. No redirect is followed."""
        headers = {}
        if self.handle:
            headers = {
                "Lanyard-Device-Session": self.handle,
                "Lanyard-Device-Proof": sign_device_proof(self.key, "GET", url, handle=self.handle),
            }
        return await self.http.get(url, headers=headers, follow_redirects=False)

    async def sso(
        self, app: App, *, scope: str = "openid profile email offline_access", extra: dict[str, str] | None = None
    ) -> Authorization:
        """The SSO extension completes an app's authorization request (code + PKCE) silently."""
        verifier, challenge = pkce()
        nonce, state = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        query = {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": app.redirect_uri,
            "scope": scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **(extra or {}),
        }
        url = f"{self.base_url}/e/{self.enterprise_id}/authorize?{urlencode(query)}"
        response = await self.complete(url)
        location = response.headers.get("location")
        params: dict[str, str] = {}
        if location:
            parts = urlsplit(location)
            params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        return Authorization(response.status_code, location, params, verifier, nonce)


async def redeem(http: httpx.AsyncClient, issuer: str, app: App, auth: Authorization) -> dict[str, Any]:
    """The app exchanges its code at the token endpoint (public: PKCE only; confidential: basic auth)."""
    data = {
        "grant_type": "authorization_code",
        "code": auth.code,
        "redirect_uri": app.redirect_uri,
        "code_verifier": auth.verifier,
    }
    auth_header = _client_auth(app, data)
    return _ok(await http.post(f"{issuer}/token", data=data, auth=auth_header))


async def refresh(http: httpx.AsyncClient, issuer: str, app: App, refresh_token: str) -> httpx.Response:
    """The app refreshes (raw response: callers look at refusals too)."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await http.post(f"{issuer}/token", data=data, auth=_client_auth(app, data))


async def introspect(http: httpx.AsyncClient, issuer: str, app: App, token: str) -> dict[str, Any]:
    """A resource server asks whether a token is active (authenticated as a confidential app)."""
    return _ok(
        await http.post(f"{issuer}/introspect", data={"token": token}, auth=(app.client_id, app.client_secret or ""))
    )


def _client_auth(app: App, data: dict[str, Any]) -> tuple[str, str] | None:
    if app.client_secret:
        return (app.client_id, app.client_secret)
    data["client_id"] = app.client_id
    return None


REDIRECTS = (301, 302, 303, 307, 308)


async def browse(device: Device, url: str, browser: httpx.AsyncClient, max_hops: int = 10) -> httpx.Response:
    """A web view on the device opens `url` (a web app's sign-in page, say) and follows its
    redirects with `browser` (which keeps the app's cookies); the request to the issuer's
    authorize endpoint is the one the SSO extension intercepts and completes (`Device.complete`).
    Returns the first answer that is not a redirect."""
    authorize = f"{device.base_url}/e/{device.enterprise_id}/authorize"
    for _ in range(max_hops):
        if url.split("?", 1)[0] == authorize:
            response = await device.complete(url)
        else:
            response = await browser.get(url, follow_redirects=False)
        if response.status_code not in REDIRECTS:
            return response
        url = urljoin(str(response.request.url), response.headers["location"])
    raise RuntimeError(f"more than {max_hops} redirects from {url}")


async def verified_claims(http: httpx.AsyncClient, issuer: str, token: str) -> dict[str, Any]:
    """A JWT's claims after checking its signature against the issuer's JWKS (RS256/ES256)."""
    keys = KeySet.import_key_set(_ok(await http.get(f"{issuer}/jwks")))
    return jwt.decode(token, keys, algorithms=["RS256", "ES256"]).claims
